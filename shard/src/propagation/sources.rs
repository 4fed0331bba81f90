//! Every source of every propagated type in the cluster, by name and namespace, with its propagation policy —
//! and nothing else: no object body, no copies.
//!
//! The forest cache holds full sources and copy fingerprints only for the trees this replica owns. Admission
//! must still judge, on any replica, whether a new source would overwrite a same-named object below it or
//! whether a re-parent would; those checks need only which namespaces hold a source of a given name and how it
//! may propagate. This index answers that for the whole cluster at a few dozen bytes per source. Like the
//! forest cache it is written by one task and published as immutable snapshots (persistent maps, so a snapshot
//! is a pointer copy).

use std::sync::Arc;

use arc_swap::ArcSwap;
use hnc_api::keys::labels;
use serde_json::Value;

use super::object::{ObjName, PropagationRules, TypeKey, clean_source};
use super::selector::PropagationPolicy;
use crate::NsName;

#[derive(Clone, Debug, Default)]
struct TypeSources {
    by_name: imbl::HashMap<ObjName, imbl::OrdMap<NsName, Arc<PropagationPolicy>>>,
    by_ns: imbl::HashMap<NsName, imbl::OrdMap<ObjName, Arc<PropagationPolicy>>>,
    count: usize,
}

/// A snapshot of the index.
#[derive(Clone, Debug, Default)]
pub struct SourceNamesSnapshot {
    types: imbl::HashMap<TypeKey, TypeSources>,
}

impl SourceNamesSnapshot {
    /// Calls `visit` with every namespace holding a source of `ty` named `name`, with its policy.
    pub fn holders(&self, ty: &TypeKey, name: &str, mut visit: impl FnMut(&NsName, &PropagationPolicy)) {
        let Some(holders) = self.types.get(ty).and_then(|t| t.by_name.get(name)) else { return };
        for (ns, policy) in holders {
            visit(ns, policy);
        }
    }

    /// True when `namespace` holds a source of `ty` named `name`.
    pub fn holds(&self, ty: &TypeKey, namespace: &str, name: &str) -> bool {
        self.types.get(ty).and_then(|t| t.by_ns.get(namespace)).is_some_and(|names| names.contains_key(name))
    }

    /// Calls `visit` with the name and policy of every source of `ty` in `namespace`.
    pub fn sources_in(
        &self,
        ty: &TypeKey,
        namespace: &str,
        mut visit: impl FnMut(&ObjName, &PropagationPolicy),
    ) {
        let Some(names) = self.types.get(ty).and_then(|t| t.by_ns.get(namespace)) else { return };
        for (name, policy) in names {
            visit(name, policy);
        }
    }

    /// Calls `visit` with every namespace holding at least one source of `ty`.
    pub fn namespaces_with_sources(&self, ty: &TypeKey, mut visit: impl FnMut(&NsName)) {
        let Some(t) = self.types.get(ty) else { return };
        for ns in t.by_ns.keys() {
            visit(ns);
        }
    }

    /// Number of sources of `ty`.
    pub fn count(&self, ty: &TypeKey) -> usize {
        self.types.get(ty).map_or(0, |t| t.count)
    }

    /// Every `(namespace, name)` of `ty` the index holds.
    pub fn keys(&self, ty: &TypeKey) -> Vec<(NsName, ObjName)> {
        let Some(t) = self.types.get(ty) else { return Vec::new() };
        t.by_ns.iter().flat_map(|(ns, names)| names.keys().map(move |n| (ns.clone(), n.clone()))).collect()
    }
}

/// Shared read access to the latest published snapshot.
#[derive(Clone, Debug)]
pub struct SourceNamesReader(Arc<ArcSwap<SourceNamesSnapshot>>);

impl SourceNamesReader {
    /// The latest published snapshot. Never blocks.
    pub fn load(&self) -> Arc<SourceNamesSnapshot> {
        self.0.load_full()
    }
}

/// The writer of the index.
#[derive(Debug)]
pub struct SourceNames {
    rules: PropagationRules,
    state: SourceNamesSnapshot,
    published: Arc<ArcSwap<SourceNamesSnapshot>>,
}

impl SourceNames {
    /// An empty index; `rules` are the flags that shape a source's policy (as for the forest cache).
    pub fn new(rules: PropagationRules) -> Self {
        SourceNames { rules, state: SourceNamesSnapshot::default(), published: Arc::default() }
    }

    /// Records an added or changed object of `ty` (`namespace/name`). Only its metadata and `type` are read,
    /// so callers may pass a reduced object. An object carrying `hnc.x-k8s.io/inherited-from` is a copy: if a
    /// source of that name was recorded, it is forgotten.
    pub fn apply(&mut self, ty: &TypeKey, namespace: &str, name: &str, object: &Value) {
        let is_copy = object
            .pointer("/metadata/labels")
            .and_then(Value::as_object)
            .is_some_and(|l| l.contains_key(labels::INHERITED_FROM));
        if is_copy {
            self.delete(ty, namespace, name);
            return;
        }
        let policy = Arc::new(PropagationPolicy::new(ty, &clean_source(object, &self.rules), &self.rules));
        let t = self.state.types.entry(ty.clone()).or_default();
        let (ns, n): (NsName, ObjName) = (namespace.into(), name.into());
        let mut holders = t.by_name.get(&n).cloned().unwrap_or_default();
        let added = holders.insert(ns.clone(), policy.clone()).is_none();
        t.by_name.insert(n.clone(), holders);
        let mut names = t.by_ns.get(&ns).cloned().unwrap_or_default();
        names.insert(n, policy);
        t.by_ns.insert(ns, names);
        if added {
            t.count += 1;
        }
    }

    /// Forgets the source `namespace/name` of `ty`, if recorded.
    pub fn delete(&mut self, ty: &TypeKey, namespace: &str, name: &str) {
        let Some(t) = self.state.types.get_mut(ty) else { return };
        let Some(mut names) = t.by_ns.get(namespace).cloned() else { return };
        if names.remove(name).is_none() {
            return;
        }
        t.count -= 1;
        if names.is_empty() {
            t.by_ns.remove(namespace);
        } else {
            t.by_ns.insert(namespace.into(), names);
        }
        if let Some(mut holders) = t.by_name.get(name).cloned() {
            holders.remove(namespace);
            if holders.is_empty() {
                t.by_name.remove(name);
            } else {
                t.by_name.insert(name.into(), holders);
            }
        }
    }

    /// Forgets every source of `ty`.
    pub fn remove_type(&mut self, ty: &TypeKey) {
        self.state.types.remove(ty);
    }

    /// The writer's current state.
    pub fn current(&self) -> &SourceNamesSnapshot {
        &self.state
    }

    /// Makes the current state visible to readers.
    pub fn publish(&self) -> Arc<SourceNamesSnapshot> {
        let snapshot = Arc::new(self.state.clone());
        self.published.store(snapshot.clone());
        snapshot
    }

    /// A handle for readers.
    pub fn reader(&self) -> SourceNamesReader {
        SourceNamesReader(self.published.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value, annotations: Value) -> Value {
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"labels": labels, "annotations": annotations}})
    }

    #[test]
    fn sources_are_indexed_by_name_and_namespace_and_copies_are_not() {
        let ty = TypeKey::new("", "ConfigMap");
        let mut index = SourceNames::new(PropagationRules::default());
        index.apply(&ty, "a", "x", &obj(json!({}), json!({})));
        index.apply(&ty, "b", "x", &obj(json!({}), json!({"propagate.hnc.x-k8s.io/none": "true"})));
        index.apply(&ty, "b", "y", &obj(json!({}), json!({})));
        index.apply(&ty, "c", "x", &obj(json!({"hnc.x-k8s.io/inherited-from": "a"}), json!({})));
        let snap = index.publish();
        let mut holders = Vec::new();
        snap.holders(&ty, "x", |ns, policy| {
            holders.push((
                ns.to_string(),
                policy.allows(&Default::default(), hnc_api::SyncMode::Propagate).unwrap_or(false),
            ))
        });
        assert_eq!(holders, [("a".to_owned(), true), ("b".to_owned(), false)]);
        assert!(snap.holds(&ty, "b", "y") && !snap.holds(&ty, "c", "x"));
        assert_eq!(snap.count(&ty), 3);

        // A source that becomes a copy (overwritten by propagation) leaves the index.
        index.apply(&ty, "b", "x", &obj(json!({"hnc.x-k8s.io/inherited-from": "a"}), json!({})));
        index.delete(&ty, "b", "y");
        let snap = index.publish();
        assert_eq!(snap.count(&ty), 1);
        assert_eq!(snap.keys(&ty), vec![(NsName::from("a"), ObjName::from("x"))]);
        index.remove_type(&ty);
        assert_eq!(index.publish().count(&ty), 0);
    }
}
