//! What the hierarchy should look like, derived from a snapshot: namespace conditions (spec §1.6.1), tree labels
//! and managed labels/annotations (§4.4–§4.6), HierarchyConfiguration contents (§4.3, §4.7) and anchor states
//! and actions (§5). Pure functions of the snapshot; the controller diffs them against what it observed and
//! writes only the difference.

use std::collections::BTreeMap;
use std::sync::Arc;

use hnc_api::anchor::AnchorState;
use hnc_api::condition::{ANCESTOR_HALT_TRANSITION_TIME, reasons, types};
use hnc_api::keys::labels as label_keys;
use hnc_api::{Condition, MetaKvp};

use super::index::TreeSnapshot;
use super::strings::StringMap;
use crate::view::{Labels, NsName};

/// Labels and annotations HNC must set on, or remove from, a Namespace. Keys not mentioned are the user's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceTarget {
    /// Labels that must have exactly these values.
    pub set_labels: BTreeMap<String, String>,
    /// Labels that must be absent.
    pub remove_labels: Vec<String>,
    /// Annotations that must have exactly these values.
    pub set_annotations: BTreeMap<String, String>,
    /// Annotations that must be absent.
    pub remove_annotations: Vec<String>,
}

/// What a namespace's HierarchyConfiguration must say.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HierarchyTarget {
    /// Whether the object should be created when it does not exist (upstream creates one only when it has
    /// something to say: a plain root has none).
    pub should_exist: bool,
    /// For subnamespaces: the spec HNC enforces (parent from the annotation, labels/annotations from the anchor).
    pub spec_rewrite: Option<SpecRewrite>,
    /// `status.children`, sorted.
    pub children: Vec<String>,
    /// `status.conditions`, in order. An empty `lastTransitionTime` is stamped by the writer, or carried over
    /// from the stored condition when that says the same thing.
    pub conditions: Vec<Condition>,
    /// Whether the `hnc.x-k8s.io/hasSubnamespace` finalizer must be present.
    pub has_subnamespace_finalizer: bool,
}

/// The part of an HC spec HNC owns for a subnamespace.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SpecRewrite {
    /// `spec.parent`.
    pub parent: String,
    /// `spec.labels`.
    pub labels: Vec<MetaKvp>,
    /// `spec.annotations`.
    pub annotations: Vec<MetaKvp>,
}

/// What an anchor must say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnchorTarget {
    /// `status.status`; `None` leaves it as it is.
    pub state: Option<AnchorState>,
    /// Whether HNC's `hnc.x-k8s.io` finalizer must be present.
    pub finalizer: bool,
}

/// What to do about one anchor (spec §5.1, §5.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorAction {
    /// Bring the anchor to `target`; create the subnamespace first when `create_namespace`.
    Ensure {
        /// State and finalizer.
        target: AnchorTarget,
        /// The subnamespace does not exist and must be created.
        create_namespace: bool,
    },
    /// The anchor is being deleted and so must its subnamespace be (the finalizer stays until it is gone).
    DeleteSubnamespace,
    /// Nothing to do until something changes (e.g. the subnamespace is terminating).
    Wait,
}

/// Sets `cond` in `list` the way upstream's `SetStatusCondition` does: one condition per type, a later one
/// replacing an earlier one of the same type in place.
fn set_condition(list: &mut Vec<Condition>, type_: &str, reason: &str, message: String) {
    let cond = Condition::new(type_, reason, message, "");
    match list.iter_mut().find(|c| c.type_ == type_) {
        Some(slot) => *slot = cond,
        None => list.push(cond),
    }
}

impl TreeSnapshot {
    /// The conditions `name` carries itself (not the synthesized ancestor condition), in upstream's computation
    /// order, at most one per type, with empty transition times. Empty for unmanaged or unobserved namespaces.
    pub fn own_conditions(&self, name: &str) -> Vec<Condition> {
        let mut out = Vec::new();
        let Some(node) = self.node(name) else { return out };
        if node.namespace.is_none() || !self.policy.is_managed(name) {
            return out;
        }
        if self.deleting_crds.hierarchy && node.hierarchy.is_some() {
            set_condition(
                &mut out,
                types::ACTIVITIES_HALTED,
                reasons::DELETING_CRD,
                "The HierarchyConfiguration CRD is being deleted; all propagation is disabled.".into(),
            );
        }
        if self.external_manager(name).is_none() {
            if let Some(parent) = &node.parent {
                if !self.policy.is_managed(parent) {
                    set_condition(
                        &mut out,
                        types::ACTIVITIES_HALTED,
                        reasons::ILLEGAL_PARENT,
                        format!("Parent {parent:?} is an unmanaged namespace"),
                    );
                } else if !self.exists(parent) {
                    set_condition(
                        &mut out,
                        types::ACTIVITIES_HALTED,
                        reasons::PARENT_MISSING,
                        format!("Parent {parent:?} does not exist"),
                    );
                }
            }
            if let Some(cycle) = self.cycle(name) {
                let names: Vec<&str> = cycle.iter().map(|n| &**n).collect();
                set_condition(
                    &mut out,
                    types::ACTIVITIES_HALTED,
                    reasons::IN_CYCLE,
                    format!("Namespace is a member of the cycle: {}", names.join(" <- ")),
                );
            }
            if self.subnamespace_parent(name).is_some() && !self.has_parent_anchor(name) {
                set_condition(
                    &mut out,
                    types::BAD_CONFIGURATION,
                    reasons::SUBNAMESPACE_ANCHOR_MISSING,
                    "The anchor is missing in the parent namespace".into(),
                );
            }
        }
        let (labels, annotations) = self.spec_labels_and_annotations(name);
        for kvp in labels.iter().filter(|kvp| !self.policy.is_managed_label(&kvp.key)) {
            set_condition(
                &mut out,
                types::BAD_CONFIGURATION,
                reasons::ILLEGAL_MANAGED_LABEL,
                format!("Not a legal managed label (set via --managed-namespace-label): {}", kvp.key),
            );
        }
        for kvp in annotations.iter().filter(|kvp| !self.policy.is_managed_annotation(&kvp.key)) {
            set_condition(
                &mut out,
                types::BAD_CONFIGURATION,
                reasons::ILLEGAL_MANAGED_ANNOTATION,
                format!(
                    "Not a legal managed annotation (set via --managed-namespace-annotation): {}",
                    kvp.key
                ),
            );
        }
        out
    }

    /// True when `name` itself carries an `ActivitiesHalted` condition.
    pub fn is_halted(&self, name: &str) -> bool {
        if let Some(halted) = self.memo().halted.get(name) {
            return *halted;
        }
        let halted = self.own_conditions(name).iter().any(Condition::halts);
        self.memo().halted.insert(name.into(), halted);
        halted
    }

    /// The nearest namespace at or above `name` that is halted by a condition of its own (upstream's
    /// "halted root"), or `None`. Nothing may be created, updated or deleted in a namespace that has one.
    pub fn halted_root(&self, name: &str) -> Option<NsName> {
        let mut path: Vec<NsName> = Vec::new();
        let mut current: NsName = name.into();
        let root = loop {
            if let Some(known) = self.memo().halted_root.get(&current) {
                break known.clone();
            }
            if self.is_halted(&current) {
                break Some(current);
            }
            path.push(current.clone());
            match self.parent(&current) {
                // A chain longer than the index can only be a cycle, whose members are all halted.
                Some(p) if path.len() <= self.nodes.len() => current = p.clone(),
                _ => break None,
            }
        };
        for n in path {
            self.memo().halted_root.insert(n, root.clone());
        }
        root
    }

    /// Every condition of `name` as stored in its HierarchyConfiguration: the synthesized
    /// `AncestorHaltActivities` first when an ancestor is halted, then its own.
    pub fn conditions(&self, name: &str) -> Vec<Condition> {
        let own = self.own_conditions(name);
        if own.iter().any(Condition::halts) {
            return own;
        }
        match self.halted_root(name) {
            Some(root) if *root != *name => {
                let mut all = vec![Condition::new(
                    types::ACTIVITIES_HALTED,
                    reasons::ANCESTOR_HALT_ACTIVITIES,
                    format!(
                        "Propagation paused in {name:?} and its descendants due to ActivitiesHalted condition \
                         on ancestor {root:?}"
                    ),
                    ANCESTOR_HALT_TRANSITION_TIME,
                )];
                all.extend(own);
                all
            }
            _ => own,
        }
    }

    /// The managed labels and annotations `name`'s spec asks for, legal or not: the anchor's for a subnamespace
    /// whose anchor exists (the anchor's spec wins), otherwise the HierarchyConfiguration's.
    fn spec_labels_and_annotations(&self, name: &str) -> (Vec<MetaKvp>, Vec<MetaKvp>) {
        if let Some(parent) = self.subnamespace_parent(name)
            && let Some(anchor) = self.node(parent).and_then(|p| p.anchor(name))
        {
            return (anchor.labels.clone(), anchor.annotations.clone());
        }
        match self.node(name).and_then(|n| n.hierarchy()) {
            Some(hc) => (hc.spec.labels.clone(), hc.spec.annotations.clone()),
            None => (Vec::new(), Vec::new()),
        }
    }

    /// The managed labels `name` contributes to itself and its descendants: the legal ones of its spec, plus,
    /// for an external namespace, the managed-pattern labels it already carries. Sorted by key.
    pub fn own_managed_labels(&self, name: &str) -> Vec<(String, String)> {
        let (labels, _) = self.spec_labels_and_annotations(name);
        let observed = self.node(name).and_then(|n| n.namespace()).map(|n| &n.labels);
        self.managed_pairs(name, &labels, observed, |key| self.policy.is_managed_label(key))
    }

    /// Like [`TreeSnapshot::own_managed_labels`], for annotations.
    pub fn own_managed_annotations(&self, name: &str) -> Vec<(String, String)> {
        let (_, annotations) = self.spec_labels_and_annotations(name);
        let observed = self.node(name).and_then(|n| n.namespace()).map(|n| &n.annotations);
        self.managed_pairs(name, &annotations, observed, |key| self.policy.is_managed_annotation(key))
    }

    fn managed_pairs(
        &self,
        name: &str,
        spec: &[MetaKvp],
        observed: Option<&StringMap>,
        legal: impl Fn(&str) -> bool,
    ) -> Vec<(String, String)> {
        let mut out: BTreeMap<String, String> = spec
            .iter()
            .filter(|kvp| legal(&kvp.key))
            .map(|kvp| (kvp.key.clone(), kvp.value.clone()))
            .collect();
        if self.external_manager(name).is_some()
            && let Some(observed) = observed
        {
            out.extend(observed.iter().filter(|(k, _)| legal(k)).map(|(k, v)| (k.to_owned(), v.to_owned())));
        }
        out.into_iter().collect()
    }

    /// The tree labels and managed labels HNC puts on `name` (spec §4.4): walking up from `name` at depth 0,
    /// each namespace's `<ns>.tree.hnc.x-k8s.io/depth` and managed labels (higher ancestors win), an external
    /// namespace's own tree labels shifted by its depth, stopping after a halted namespace.
    ///
    /// Computed as `own(n)` overlaid with the parent's labels shifted one level down, memoized per snapshot.
    pub fn hierarchy_labels(&self, name: &str) -> Arc<BTreeMap<String, String>> {
        // Walk up until a memoized ancestor or a namespace where the walk stops.
        let mut chain: Vec<NsName> = Vec::new();
        let mut current: NsName = name.into();
        let mut above: Option<Arc<BTreeMap<String, String>>> = loop {
            if let Some(known) = self.memo().hierarchy_labels.get(&current) {
                break Some(known.clone());
            }
            chain.push(current.clone());
            if self.external_manager(&current).is_some() || self.is_halted(&current) {
                break None;
            }
            match self.parent(&current) {
                Some(p) if chain.len() <= self.nodes.len() => current = p.clone(),
                _ => break None,
            }
        };
        for n in chain.iter().rev() {
            let mut set = BTreeMap::new();
            set.insert(label_keys::tree_label(n), "0".to_owned());
            set.extend(self.own_managed_labels(n));
            if self.external_manager(n).is_some() {
                if let Some(ns) = self.node(n).and_then(|node| node.namespace()) {
                    for (key, value) in &ns.labels {
                        if label_keys::tree_label_ancestor(key).is_some()
                            && label_keys::parse_tree_depth(value).is_some()
                        {
                            set.insert(key.to_owned(), value.to_owned());
                        }
                    }
                }
            } else if let Some(parent_labels) = &above {
                for (key, value) in parent_labels.iter() {
                    let shifted = match label_keys::tree_label_ancestor(key) {
                        // A depth that would pass the bound is dropped, never wrapped.
                        Some(_) => match label_keys::shifted_tree_depth(value, 1) {
                            Some(depth) => depth.to_string(),
                            None => continue,
                        },
                        None => value.clone(),
                    };
                    set.insert(key.clone(), shifted);
                }
            }
            let set = Arc::new(set);
            self.memo().hierarchy_labels.insert(n.clone(), set.clone());
            above = Some(set);
        }
        above.expect("the chain holds at least `name`")
    }

    /// The managed annotations HNC puts on `name` (spec §4.5): like the labels walk, without tree labels; none
    /// on external namespaces.
    pub fn hierarchy_annotations(&self, name: &str) -> BTreeMap<String, String> {
        let mut set = BTreeMap::new();
        if self.external_manager(name).is_some() {
            return set;
        }
        let mut current: NsName = name.into();
        let mut seen = std::collections::BTreeSet::new();
        loop {
            seen.insert(current.clone());
            set.extend(self.own_managed_annotations(&current));
            if self.is_halted(&current) {
                break;
            }
            match self.parent(&current) {
                Some(p) if !seen.contains(p) => current = p.clone(),
                _ => break,
            }
        }
        set
    }

    /// The labels and annotations HNC must set on or remove from the Namespace `name`, or `None` when the
    /// Namespace has not been observed.
    pub fn namespace_target(&self, name: &str) -> Option<NamespaceTarget> {
        let ns = self.node(name)?.namespace()?;
        if !self.policy.is_managed(name) {
            return Some(NamespaceTarget {
                remove_labels: vec![label_keys::INCLUDED_NAMESPACE.to_owned()],
                ..Default::default()
            });
        }
        let mut target =
            NamespaceTarget { set_labels: (*self.hierarchy_labels(name)).clone(), ..Default::default() };
        target.set_labels.insert(
            label_keys::INCLUDED_NAMESPACE.to_owned(),
            label_keys::INCLUDED_NAMESPACE_VALUE.to_owned(),
        );
        if self.external_manager(name).is_some() {
            return Some(target);
        }
        target.set_annotations = self.hierarchy_annotations(name);
        target.remove_labels = ns
            .labels
            .keys()
            .filter(|k| !target.set_labels.contains_key(*k))
            .filter(|k| label_keys::tree_label_ancestor(k).is_some() || self.policy.is_managed_label(k))
            .map(str::to_owned)
            .collect();
        target.remove_annotations = ns
            .annotations
            .keys()
            .filter(|k| !target.set_annotations.contains_key(*k) && self.policy.is_managed_annotation(k))
            .map(str::to_owned)
            .collect();
        Some(target)
    }

    /// The labels of `name` as HNC computes them — what it observed with HNC's own labels applied — which
    /// selectors are evaluated against. `None` when the Namespace has not been observed.
    pub fn computed_labels(&self, name: &str) -> Option<Arc<Labels>> {
        if let Some(known) = self.memo().computed_labels.get(name) {
            return known.clone();
        }
        let labels = self.computed_labels_uncached(name);
        self.memo().computed_labels.insert(name.into(), labels.clone());
        labels
    }

    fn computed_labels_uncached(&self, name: &str) -> Option<Arc<Labels>> {
        let ns = self.node(name)?.namespace()?;
        let mut labels = ns.labels.to_btree();
        if !self.policy.is_managed(name) {
            labels.remove(label_keys::INCLUDED_NAMESPACE);
            return Some(Arc::new(labels));
        }
        let set = self.hierarchy_labels(name);
        if self.external_manager(name).is_none() {
            labels.retain(|k, _| {
                set.contains_key(k)
                    || (label_keys::tree_label_ancestor(k).is_none() && !self.policy.is_managed_label(k))
            });
        }
        labels.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
        labels.insert(
            label_keys::INCLUDED_NAMESPACE.to_owned(),
            label_keys::INCLUDED_NAMESPACE_VALUE.to_owned(),
        );
        Some(Arc::new(labels))
    }

    /// What the HierarchyConfiguration of `name` must say, or `None` when the Namespace has not been observed.
    /// For an unmanaged namespace only the finalizer and children are cleared (its conditions are left alone).
    pub fn hierarchy_target(&self, name: &str) -> Option<HierarchyTarget> {
        let node = self.node(name)?;
        let ns = node.namespace()?;
        let hc = node.hierarchy();
        if !self.policy.is_managed(name) {
            return Some(HierarchyTarget {
                conditions: hc.map(|h| h.status.conditions.clone()).unwrap_or_default(),
                ..Default::default()
            });
        }
        let spec_rewrite = self.subnamespace_parent(name).map(|parent| {
            let (labels, annotations) = match self.node(parent).and_then(|p| p.anchor(name)) {
                Some(anchor) => (anchor.labels.clone(), anchor.annotations.clone()),
                None => hc.map(|h| (h.spec.labels.clone(), h.spec.annotations.clone())).unwrap_or_default(),
            };
            SpecRewrite { parent: parent.to_owned(), labels, annotations }
        });
        let children: Vec<String> = node.children().map(|c| c.to_string()).collect();
        let conditions = self.conditions(name);
        let lone_deletion = hc.is_some_and(|h| h.deleting) && !ns.deleting;
        let should_exist = !self.deleting_crds.hierarchy
            && (spec_rewrite.is_some() || !children.is_empty() || !conditions.is_empty());
        Some(HierarchyTarget {
            should_exist,
            spec_rewrite,
            children,
            conditions,
            has_subnamespace_finalizer: !node.anchors.is_empty() && !lone_deletion,
        })
    }

    /// What to do about each anchor held by `name` (spec §5.1, §5.3), sorted by anchor name.
    pub fn anchor_actions(&self, name: &str) -> Vec<(NsName, AnchorAction)> {
        let Some(node) = self.node(name) else { return Vec::new() };
        node.anchors()
            .map(|(child, anchor)| (child.clone(), self.anchor_action(name, child, anchor)))
            .collect()
    }

    fn anchor_action(&self, parent: &str, child: &str, anchor: &super::ObservedAnchor) -> AnchorAction {
        let release = |state| AnchorAction::Ensure {
            target: AnchorTarget { state, finalizer: false },
            create_namespace: false,
        };
        if !self.policy.is_managed(parent) {
            return release(None);
        }
        if !self.policy.is_managed(child) {
            return release(Some(AnchorState::Forbidden));
        }
        let sub = self.node(child).and_then(|n| n.namespace());
        let state = match sub {
            None => AnchorState::Missing,
            Some(ns) if ns.subnamespace_of() != Some(parent) => AnchorState::Conflict,
            Some(_) => AnchorState::Ok,
        };
        let terminating = sub.is_some_and(|ns| ns.deleting);
        if anchor.deleting {
            let has_finalizer = anchor.has_finalizer();
            let leaf_or_allowed = self.children(child).is_empty() || self.allows_cascading_deletion(child);
            if !self.deleting_crds.anchors
                && state == AnchorState::Ok
                && !terminating
                && has_finalizer
                && leaf_or_allowed
            {
                return AnchorAction::DeleteSubnamespace;
            }
            let finalize = match state {
                AnchorState::Ok => !terminating,
                AnchorState::Missing | AnchorState::Conflict | AnchorState::Forbidden => true,
            };
            return if has_finalizer && finalize { release(Some(state)) } else { AnchorAction::Wait };
        }
        AnchorAction::Ensure {
            target: AnchorTarget { state: Some(state), finalizer: true },
            create_namespace: state == AnchorState::Missing,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hnc_api::HierarchyConfigurationSpec;
    use hnc_api::keys::labels::MAX_TREE_DEPTH;

    use crate::TreeIndex;
    use crate::tree::{NamespacePolicy, ObservedHierarchy, ObservedNamespace};

    /// An external root `ext` carrying `labels`, with `chain` below it (each the child of the one before).
    fn below_external(labels: &[(&str, &str)], chain: &[&str]) -> TreeIndex {
        let mut index = TreeIndex::new(NamespacePolicy::default());
        let mut ext = ObservedNamespace::default();
        ext.annotations.insert("hnc.x-k8s.io/managed-by".into(), "other-tool".into());
        ext.labels.extend(labels.iter().copied());
        index.apply_namespace("ext", ext);
        let mut parent = "ext";
        for name in chain {
            index.apply_namespace(name, ObservedNamespace::default());
            let spec = HierarchyConfigurationSpec { parent: Some(parent.into()), ..Default::default() };
            index.apply_hierarchy(name, ObservedHierarchy { spec, ..Default::default() });
            parent = name;
        }
        index.set_synced(true);
        index
    }

    fn depth_of(labels: &BTreeMap<String, String>, ancestor: &str) -> Option<String> {
        labels.get(&format!("{ancestor}.tree.hnc.x-k8s.io/depth")).cloned()
    }

    #[test]
    fn an_external_depth_at_the_top_of_u32_is_dropped_instead_of_wrapping() {
        // 4294967295 used to be shifted with `depth + 1`: a panic in debug builds, a wrap to 0 in release.
        let index = below_external(&[("outer.tree.hnc.x-k8s.io/depth", "4294967295")], &["a"]);
        let t = index.current();
        assert_eq!(depth_of(&t.hierarchy_labels("ext"), "outer"), None);
        assert_eq!(depth_of(&t.hierarchy_labels("a"), "outer"), None);
        assert_eq!(depth_of(&t.hierarchy_labels("a"), "ext"), Some("1".into()));
    }

    #[test]
    fn external_depths_that_are_not_small_decimal_numbers_are_ignored() {
        let bound = MAX_TREE_DEPTH.to_string();
        let below_bound = (MAX_TREE_DEPTH - 1).to_string();
        let index = below_external(
            &[
                ("plus.tree.hnc.x-k8s.io/depth", "+1"),
                ("word.tree.hnc.x-k8s.io/depth", "one"),
                ("zeros.tree.hnc.x-k8s.io/depth", "007"),
                ("edge.tree.hnc.x-k8s.io/depth", &below_bound),
                ("top.tree.hnc.x-k8s.io/depth", &bound),
            ],
            &["a", "b"],
        );
        let t = index.current();
        let ext = t.hierarchy_labels("ext");
        assert_eq!(depth_of(&ext, "plus"), None);
        assert_eq!(depth_of(&ext, "word"), None);
        assert_eq!(
            depth_of(&ext, "zeros"),
            Some("007".into()),
            "an external's own labels are kept as written"
        );
        assert_eq!(depth_of(&ext, "top"), Some(bound.clone()));
        let a = t.hierarchy_labels("a");
        assert_eq!(depth_of(&a, "zeros"), Some("8".into()));
        assert_eq!(depth_of(&a, "edge"), Some(bound));
        assert_eq!(depth_of(&a, "top"), None, "past the bound");
        let b = t.hierarchy_labels("b");
        assert_eq!(depth_of(&b, "edge"), None, "past the bound one level further down");
        assert_eq!(depth_of(&b, "zeros"), Some("9".into()));
    }
}
