//! What the API server last told us about hierarchy objects, kept compact: only the fields HNC compares before
//! writing, so a replica's memory is bytes per namespace rather than whole objects.

use std::collections::{BTreeMap, HashMap};

use hnc_api::{HierarchyConfiguration, SubnamespaceAnchor};
use k8s_openapi::api::core::v1::Namespace;

use super::diff::{ObservedAnchor, ObservedHierarchy, ObservedNamespace};

/// Observed Namespaces, HierarchyConfigurations and anchors, by name.
#[derive(Debug, Default)]
pub struct ObservedStore {
    namespaces: HashMap<String, ObservedNamespace>,
    hierarchies: HashMap<String, ObservedHierarchy>,
    /// parent namespace → anchor name → anchor.
    anchors: HashMap<String, BTreeMap<String, ObservedAnchor>>,
}

impl ObservedStore {
    /// Records a Namespace.
    pub fn apply_namespace(&mut self, ns: &Namespace) {
        let meta = &ns.metadata;
        let Some(name) = meta.name.clone() else { return };
        self.namespaces.insert(
            name,
            ObservedNamespace {
                resource_version: meta.resource_version.clone().unwrap_or_default(),
                labels: meta.labels.clone().unwrap_or_default(),
                annotations: meta.annotations.clone().unwrap_or_default(),
                deleting: meta.deletion_timestamp.is_some(),
            },
        );
    }

    /// Forgets a Namespace.
    pub fn delete_namespace(&mut self, name: &str) {
        self.namespaces.remove(name);
    }

    /// Records a HierarchyConfiguration (only the singleton `hierarchy` counts; others are ignored).
    pub fn apply_hierarchy(&mut self, hc: &HierarchyConfiguration) {
        let meta = &hc.metadata;
        let (Some(ns), Some(name)) = (meta.namespace.clone(), meta.name.as_deref()) else { return };
        if name != hnc_api::keys::names::HIERARCHY {
            return;
        }
        self.hierarchies.insert(
            ns,
            ObservedHierarchy {
                resource_version: meta.resource_version.clone().unwrap_or_default(),
                finalizers: meta.finalizers.clone().unwrap_or_default(),
                spec: hc.spec.clone(),
                status: hc.status.clone().unwrap_or_default(),
                deleting: meta.deletion_timestamp.is_some(),
            },
        );
    }

    /// Forgets the HierarchyConfiguration of `namespace`.
    pub fn delete_hierarchy(&mut self, namespace: &str) {
        self.hierarchies.remove(namespace);
    }

    /// Records an anchor.
    pub fn apply_anchor(&mut self, anchor: &SubnamespaceAnchor) {
        let meta = &anchor.metadata;
        let (Some(ns), Some(name)) = (meta.namespace.clone(), meta.name.clone()) else { return };
        self.anchors.entry(ns).or_default().insert(
            name,
            ObservedAnchor {
                resource_version: meta.resource_version.clone().unwrap_or_default(),
                finalizers: meta.finalizers.clone().unwrap_or_default(),
                state: anchor.status.as_ref().and_then(|s| s.state.clone()),
                deleting: meta.deletion_timestamp.is_some(),
            },
        );
    }

    /// Forgets an anchor.
    pub fn delete_anchor(&mut self, namespace: &str, name: &str) {
        if let Some(anchors) = self.anchors.get_mut(namespace) {
            anchors.remove(name);
            if anchors.is_empty() {
                self.anchors.remove(namespace);
            }
        }
    }

    /// The Namespace, if it exists.
    pub fn namespace(&self, name: &str) -> Option<&ObservedNamespace> {
        self.namespaces.get(name)
    }

    /// The HierarchyConfiguration of `namespace`, if it exists.
    pub fn hierarchy(&self, namespace: &str) -> Option<&ObservedHierarchy> {
        self.hierarchies.get(namespace)
    }

    /// The anchors in `namespace`, by name.
    pub fn anchors(&self, namespace: &str) -> impl Iterator<Item = (&String, &ObservedAnchor)> {
        self.anchors.get(namespace).into_iter().flatten()
    }

    /// One anchor.
    pub fn anchor(&self, namespace: &str, name: &str) -> Option<&ObservedAnchor> {
        self.anchors.get(namespace).and_then(|a| a.get(name))
    }

    /// Every namespace name observed.
    pub fn namespace_names(&self) -> impl Iterator<Item = &String> {
        self.namespaces.keys()
    }

    /// Number of namespaces observed.
    pub fn len(&self) -> usize {
        self.namespaces.len()
    }

    /// True when no namespace is observed.
    pub fn is_empty(&self) -> bool {
        self.namespaces.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hnc_api::{SubnamespaceAnchorSpec, SubnamespaceAnchorStatus};
    use kube::api::ObjectMeta;

    #[test]
    fn only_the_singleton_hierarchy_counts() {
        let mut store = ObservedStore::default();
        let mut hc = HierarchyConfiguration::new("other", Default::default());
        hc.metadata.namespace = Some("a".into());
        store.apply_hierarchy(&hc);
        assert!(store.hierarchy("a").is_none());
        hc.metadata.name = Some("hierarchy".into());
        hc.metadata.resource_version = Some("12".into());
        store.apply_hierarchy(&hc);
        assert_eq!(store.hierarchy("a").unwrap().resource_version, "12");
    }

    #[test]
    fn anchors_are_grouped_by_parent() {
        let mut store = ObservedStore::default();
        let anchor = SubnamespaceAnchor {
            metadata: ObjectMeta {
                namespace: Some("p".into()),
                name: Some("c".into()),
                ..Default::default()
            },
            spec: SubnamespaceAnchorSpec::default(),
            status: Some(SubnamespaceAnchorStatus { state: Some("Ok".into()) }),
        };
        store.apply_anchor(&anchor);
        assert_eq!(store.anchor("p", "c").unwrap().state.as_deref(), Some("Ok"));
        assert_eq!(store.anchors("p").count(), 1);
        store.delete_anchor("p", "c");
        assert_eq!(store.anchors("p").count(), 0);
    }
}
