//! Watch events of the three hierarchy kinds, turned into the compact observations the tree index holds.

use hnc_api::{HierarchyConfiguration, SubnamespaceAnchor};
use hnc_shard::tree::{ObservedAnchor, ObservedHierarchy, ObservedNamespace, StringMap};
use k8s_openapi::api::core::v1::Namespace;

use crate::watch::{Change, ObjectKey};

/// One change to a hierarchy object, as the index consumes it.
#[derive(Debug)]
pub enum HierarchyEvent {
    /// A Namespace was added or changed, or is gone.
    Namespace(Change<Namespace>),
    /// A HierarchyConfiguration was added or changed, or is gone.
    Hierarchy(Change<HierarchyConfiguration>),
    /// A SubnamespaceAnchor was added or changed, or is gone.
    Anchor(Change<SubnamespaceAnchor>),
    /// Which of HNC's CRDs are being deleted (spec §10).
    DeletingCrds(hnc_shard::tree::DeletingCrds),
}

/// The kinds whose initial list must be complete before the hierarchy is judged: the three hierarchy kinds.
pub use hnc_shard::tree::HierarchyKind;

/// The name and observation of a Namespace.
pub fn namespace(ns: &Namespace) -> Option<(String, ObservedNamespace)> {
    let meta = &ns.metadata;
    Some((
        meta.name.clone()?,
        ObservedNamespace {
            uid: meta.uid.clone().unwrap_or_default(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            labels: meta.labels.as_ref().map(StringMap::from).unwrap_or_default(),
            annotations: meta.annotations.as_ref().map(StringMap::from).unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
        },
    ))
}

/// The namespace and observation of a HierarchyConfiguration; `None` for anything but the singleton
/// `hierarchy` (the CRD schema forbids other names; an object that slipped through is ignored, as upstream does).
pub fn hierarchy(hc: &HierarchyConfiguration) -> Option<(String, ObservedHierarchy)> {
    let meta = &hc.metadata;
    if meta.name.as_deref() != Some(hnc_api::keys::names::HIERARCHY) {
        return None;
    }
    Some((
        meta.namespace.clone()?,
        ObservedHierarchy {
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
            spec: hc.spec.clone(),
            status: hc.status.clone().unwrap_or_default(),
            deleting: meta.deletion_timestamp.is_some(),
        },
    ))
}

/// The key and observation of a SubnamespaceAnchor.
pub fn anchor(anchor: &SubnamespaceAnchor) -> Option<(ObjectKey, ObservedAnchor)> {
    let meta = &anchor.metadata;
    Some((
        (meta.namespace.clone()?, meta.name.clone()?),
        ObservedAnchor {
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            finalizers: meta.finalizers.clone().unwrap_or_default(),
            labels: anchor.spec.labels.clone(),
            annotations: anchor.spec.annotations.clone(),
            state: anchor.status.as_ref().and_then(|s| s.state.clone()),
            deleting: meta.deletion_timestamp.is_some(),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ObjectMeta;

    #[test]
    fn only_the_singleton_hierarchy_counts() {
        let mut hc = HierarchyConfiguration::new("other", Default::default());
        hc.metadata.namespace = Some("a".into());
        assert!(hierarchy(&hc).is_none());
        hc.metadata.name = Some("hierarchy".into());
        hc.metadata.resource_version = Some("12".into());
        let (ns, observed) = hierarchy(&hc).unwrap();
        assert_eq!((ns.as_str(), observed.resource_version.as_str()), ("a", "12"));
    }

    #[test]
    fn anchors_keep_their_spec_and_state() {
        let a = SubnamespaceAnchor {
            metadata: ObjectMeta {
                namespace: Some("p".into()),
                name: Some("c".into()),
                finalizers: Some(vec!["hnc.x-k8s.io".into()]),
                ..Default::default()
            },
            spec: Default::default(),
            status: Some(hnc_api::SubnamespaceAnchorStatus { state: Some("Ok".into()) }),
        };
        let (key, observed) = anchor(&a).unwrap();
        assert_eq!(key, ("p".to_owned(), "c".to_owned()));
        assert!(observed.has_finalizer());
        assert_eq!(observed.state.as_deref(), Some("Ok"));
    }
}
