//! Every label, annotation, finalizer and fixed object name of upstream HNC (spec §2).

/// Labels HNC writes or reads.
pub mod labels {
    /// On propagated copies: the namespace holding the source. Its presence makes an object a copy.
    pub const INHERITED_FROM: &str = "hnc.x-k8s.io/inherited-from";
    /// On managed namespaces: always `"true"`; the objects webhook's namespaceSelector keys on it.
    pub const INCLUDED_NAMESPACE: &str = "hnc.x-k8s.io/included-namespace";
    /// Value of [`INCLUDED_NAMESPACE`] on managed namespaces.
    pub const INCLUDED_NAMESPACE_VALUE: &str = "true";
    /// On copies: set to [`MANAGED_BY_VALUE`], replacing the source's value.
    pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
    /// Value HNC writes into [`MANAGED_BY`] on copies.
    pub const MANAGED_BY_VALUE: &str = "hnc.x-k8s.io";
    /// Suffix of the per-ancestor tree labels `<ancestor>.tree.hnc.x-k8s.io/depth`.
    pub const TREE_LABEL_SUFFIX: &str = ".tree.hnc.x-k8s.io/depth";
    /// Marks the ResourceQuota singletons HNC owns for hierarchical quotas.
    pub const HRQ: &str = "hnc.x-k8s.io/hrq";
    /// Marks namespaces created by the e2e suite (not product behaviour).
    pub const TEST_NAMESPACE: &str = "hnc.x-k8s.io/testNamespace";

    /// The tree label key for `ancestor`: `<ancestor>.tree.hnc.x-k8s.io/depth`.
    pub fn tree_label(ancestor: &str) -> String {
        let mut key = String::with_capacity(ancestor.len() + TREE_LABEL_SUFFIX.len());
        key.push_str(ancestor);
        key.push_str(TREE_LABEL_SUFFIX);
        key
    }

    /// The ancestor named by a tree label key, or `None` if `key` is not a tree label.
    pub fn tree_label_ancestor(key: &str) -> Option<&str> {
        key.strip_suffix(TREE_LABEL_SUFFIX).filter(|a| !a.is_empty())
    }

    /// The deepest depth a tree label may carry. A tree of `n` namespaces is at most `n - 1` deep, and no
    /// cluster holds a million namespaces, so a larger value is not a depth; the bound also keeps every depth
    /// shifted by a chain of namespaces far from overflowing.
    pub const MAX_TREE_DEPTH: u32 = 1_000_000;

    /// The depth a tree label's value states: decimal digits only (no sign, blank or other text, leading zeros
    /// allowed as in Go's `strconv.Atoi`), at most [`MAX_TREE_DEPTH`]. Anything else is not a depth (`None`).
    pub fn parse_tree_depth(value: &str) -> Option<u32> {
        // Seven digits (after leading zeros) hold every valid depth; longer input is refused before parsing.
        let significant = value.trim_start_matches('0');
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) || significant.len() > 7 {
            return None;
        }
        let depth = if significant.is_empty() { 0 } else { significant.parse::<u32>().ok()? };
        (depth <= MAX_TREE_DEPTH).then_some(depth)
    }

    /// A tree label's value seen `by` levels further down, e.g. an external namespace's labels on its
    /// descendants; `None` when the value is not a depth or the result would exceed [`MAX_TREE_DEPTH`].
    pub fn shifted_tree_depth(value: &str, by: u32) -> Option<u32> {
        parse_tree_depth(value)?.checked_add(by).filter(|d| *d <= MAX_TREE_DEPTH)
    }
}

/// Annotations HNC writes or reads.
pub mod annotations {
    /// On a subnamespace: the name of its parent. With the anchor, the source of truth for "is a subnamespace".
    pub const SUBNAMESPACE_OF: &str = "hnc.x-k8s.io/subnamespace-of";
    /// On a namespace: empty or [`MANAGED_BY_INTERNAL`] = HNC-managed; anything else = an external hierarchy.
    pub const MANAGED_BY: &str = "hnc.x-k8s.io/managed-by";
    /// The value of [`MANAGED_BY`] meaning "managed by HNC itself".
    pub const MANAGED_BY_INTERNAL: &str = "hnc.x-k8s.io";
    /// On sources: a label selector evaluated against each destination namespace's labels.
    pub const SELECT: &str = "propagate.hnc.x-k8s.io/select";
    /// On sources: namespace-name shorthand (`a`, `!b, !c`) for tree-label selectors.
    pub const TREE_SELECT: &str = "propagate.hnc.x-k8s.io/treeSelect";
    /// On sources: boolean; true = propagate nowhere.
    pub const NONE: &str = "propagate.hnc.x-k8s.io/none";
    /// On sources: boolean; true = propagate everywhere (meaningful in `AllowPropagate` mode).
    pub const ALL: &str = "propagate.hnc.x-k8s.io/all";
    /// The four selector annotations, in the order upstream lists them.
    pub const SELECTORS: [&str; 4] = [SELECT, TREE_SELECT, NONE, ALL];
    /// On HierarchicalResourceQuotas: the uses admitted under the HRQ and not yet recorded by the API server's
    /// quota in their namespace (this implementation's; upstream has no such annotation and ignores it).
    pub const HRQ_CHARGES: &str = "hnc.x-k8s.io/hrq-charges";
    /// Objects carrying this annotation are never propagated (an undocumented upstream exclusion, kept).
    pub const OPENSHIFT_DESCRIPTION: &str = "openshift.io/description";
}

/// Finalizers HNC places.
pub mod finalizers {
    /// On a HierarchyConfiguration whose namespace holds subnamespace anchors.
    pub const HAS_SUBNAMESPACE: &str = "hnc.x-k8s.io/hasSubnamespace";
    /// On every SubnamespaceAnchor HNC reconciles (exactly the group name).
    pub const ANCHOR: &str = "hnc.x-k8s.io";
}

/// Fixed object names.
pub mod names {
    /// The singleton HierarchyConfiguration in every namespace.
    pub const HIERARCHY: &str = "hierarchy";
    /// The singleton cluster-scoped HNCConfiguration.
    pub const CONFIG: &str = "config";
    /// The ResourceQuota singleton HNC maintains per namespace for hierarchical quotas.
    pub const HRQ_RESOURCE_QUOTA: &str = "hrq.hnc.x-k8s.io";
    /// Prefix of the dry-run ResourceQuota used to validate an HRQ's `spec.hard`.
    pub const HRQ_VALIDATING_RQ_PREFIX: &str = "hnc-x-k8s-io-hrq-validating-rq-";
    /// HNC's own namespace by default.
    pub const DEFAULT_NAMESPACE: &str = "hnc-system";
    /// Validating webhook configuration.
    pub const VALIDATING_WEBHOOK_CONFIGURATION: &str = "hnc-validating-webhook-configuration";
    /// Mutating webhook configuration.
    pub const MUTATING_WEBHOOK_CONFIGURATION: &str = "hnc-mutating-webhook-configuration";
    /// The objects webhook entry whose rules follow the propagated types.
    pub const OBJECTS_WEBHOOK: &str = "objects.hnc.x-k8s.io";
    /// Service in front of the webhook server.
    pub const WEBHOOK_SERVICE: &str = "hnc-webhook-service";
    /// Secret holding the webhook CA and serving certificate.
    pub const WEBHOOK_CERT_SECRET: &str = "hnc-webhook-server-cert";
    /// Common name of HNC's self-managed CA.
    pub const CA_NAME: &str = "hnc-ca";
    /// Organization of HNC's self-managed CA.
    pub const CA_ORGANIZATION: &str = "hnc";
    /// `source.component` of every Event HNC emits.
    pub const EVENT_SOURCE: &str = "hnc.x-k8s.io";
    /// The controller Deployment.
    pub const DEPLOYMENT: &str = "hnc-controller-manager";
}

/// Event reasons HNC emits (all Warning).
pub mod events {
    pub const CANNOT_PROPAGATE_OBJECT: &str = "CannotPropagateObject";
    pub const CANNOT_UPDATE_OBJECT: &str = "CannotUpdateObject";
    pub const CANNOT_PARSE_SELECTOR: &str = "CannotParseSelector";
    pub const CANNOT_WRITE_RESOURCE_QUOTA: &str = "CannotWriteResourceQuota";
    /// On an HRQ whose subtree uses more than its `hard` (usage that existed before the HRQ or its lowering, or a
    /// namespace with usage moved under it): this implementation's; upstream reports nothing.
    pub const OVER_HIERARCHICAL_QUOTA: &str = "OverHierarchicalQuota";
}

/// Namespaces excluded by the default installation (plus HNC's own namespace).
pub const DEFAULT_EXCLUDED_NAMESPACES: [&str; 3] = ["kube-system", "kube-public", "kube-node-lease"];

/// True when a label or annotation key is HNC metadata, stripped from copies: the part before the first `/`
/// ends with `hnc.x-k8s.io` (covers `hnc.x-k8s.io/*`, `propagate.hnc.x-k8s.io/*`, `*.tree.hnc.x-k8s.io/depth`).
/// Keys without `/` are never HNC metadata.
pub fn is_hnc_metadata_key(key: &str) -> bool {
    match key.split_once('/') {
        Some((prefix, _)) => prefix.ends_with(crate::GROUP),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_labels_round_trip() {
        assert_eq!(labels::tree_label("team-a"), "team-a.tree.hnc.x-k8s.io/depth");
        assert_eq!(labels::tree_label_ancestor("team-a.tree.hnc.x-k8s.io/depth"), Some("team-a"));
        assert_eq!(labels::tree_label_ancestor(".tree.hnc.x-k8s.io/depth"), None);
        assert_eq!(labels::tree_label_ancestor("hnc.x-k8s.io/inherited-from"), None);
    }

    #[test]
    fn tree_depths_are_small_decimal_numbers() {
        assert_eq!(labels::parse_tree_depth("0"), Some(0));
        assert_eq!(labels::parse_tree_depth("3"), Some(3));
        assert_eq!(labels::parse_tree_depth("007"), Some(7));
        assert_eq!(labels::parse_tree_depth("1000000"), Some(labels::MAX_TREE_DEPTH));
        assert_eq!(labels::parse_tree_depth("0000000000000000000001"), Some(1));
        for bad in ["", "+1", "-1", " 1", "1 ", "1.0", "x", "1000001", "4294967295", "4294967296", "٣"] {
            assert_eq!(labels::parse_tree_depth(bad), None, "{bad:?}");
        }
        assert_eq!(labels::shifted_tree_depth("2", 3), Some(5));
        assert_eq!(labels::shifted_tree_depth("999999", 1), Some(labels::MAX_TREE_DEPTH));
        assert_eq!(labels::shifted_tree_depth("1000000", 1), None);
        assert_eq!(labels::shifted_tree_depth("0", u32::MAX), None);
        assert_eq!(labels::shifted_tree_depth("garbage", 1), None);
    }

    #[test]
    fn hnc_metadata_keys() {
        assert!(is_hnc_metadata_key(labels::INHERITED_FROM));
        assert!(is_hnc_metadata_key(annotations::TREE_SELECT));
        assert!(is_hnc_metadata_key("a.tree.hnc.x-k8s.io/depth"));
        assert!(is_hnc_metadata_key("xhnc.x-k8s.io/anything"), "upstream matches by suffix of the prefix");
        assert!(!is_hnc_metadata_key(labels::MANAGED_BY));
        assert!(!is_hnc_metadata_key("hnc.x-k8s.io"));
        assert!(!is_hnc_metadata_key("hnc.x-k8s.io.example.com/x"));
    }
}
