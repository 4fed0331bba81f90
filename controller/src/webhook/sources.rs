//! "Which namespaces hold a source of type T named N, and how may it propagate?" — the one question the
//! objects validator (spec §8.8 step 6), the HierarchyConfiguration validator's re-parent conflict check
//! (§8.5) and the HNCConfiguration validator (§8.7 step 4) ask about propagated objects.
//!
//! It sits behind [`SourceIndex`] so that its backing can change without touching the validators. Today the
//! forest cache snapshot answers it: every replica's propagation engine watches every object of every active
//! type, so the snapshot holds every source in the cluster. When the cache is sharded down to the trees a
//! replica owns, a cluster-wide index (names and policies only, no object bodies) will implement this trait
//! instead, so that replicas that do not own a tree still answer for it.

use std::sync::Arc;

use hnc_shard::propagation::{ForestCacheReader, ForestCacheSnapshot, PropagationPolicy, TypeKey};

/// Sources of propagated types, by type, name and namespace. Callbacks avoid allocating on the hot path.
pub trait SourceIndex: Send + Sync {
    /// Calls `visit` with every namespace holding a source of `ty` named `name`, and that source's policy.
    fn holders(&self, ty: &TypeKey, name: &str, visit: &mut dyn FnMut(&str, &PropagationPolicy));

    /// True when `namespace` holds a source of `ty` named `name`.
    fn holds(&self, ty: &TypeKey, namespace: &str, name: &str) -> bool;

    /// Calls `visit` with the name and policy of every source of `ty` in `namespace`.
    fn sources_in(&self, ty: &TypeKey, namespace: &str, visit: &mut dyn FnMut(&str, &PropagationPolicy));

    /// Calls `visit` with every namespace holding at least one source of `ty`.
    fn namespaces_with_sources(&self, ty: &TypeKey, visit: &mut dyn FnMut(&str));
}

/// Loads the current [`SourceIndex`]; called once per request, so a request sees one consistent snapshot.
pub type SourceIndexLoader = Arc<dyn Fn() -> Arc<dyn SourceIndex> + Send + Sync>;

impl SourceIndex for ForestCacheSnapshot {
    fn holders(&self, ty: &TypeKey, name: &str, visit: &mut dyn FnMut(&str, &PropagationPolicy)) {
        let Some(forest) = self.forest(ty) else { return };
        for ns in forest.source_namespaces(name) {
            if let Some(source) = forest.namespace(ns).and_then(|objs| objs.source(name)) {
                visit(ns, &source.policy);
            }
        }
    }

    fn holds(&self, ty: &TypeKey, namespace: &str, name: &str) -> bool {
        self.source(ty, namespace, name).is_some()
    }

    fn sources_in(&self, ty: &TypeKey, namespace: &str, visit: &mut dyn FnMut(&str, &PropagationPolicy)) {
        let Some(objs) = self.forest(ty).and_then(|f| f.namespace(namespace)) else { return };
        for source in objs.sources() {
            visit(&source.name, &source.policy);
        }
    }

    fn namespaces_with_sources(&self, ty: &TypeKey, visit: &mut dyn FnMut(&str)) {
        let Some(forest) = self.forest(ty) else { return };
        for objs in forest.namespaces().filter(|o| !o.sources().is_empty()) {
            visit(objs.namespace());
        }
    }
}

/// The index backed by this replica's forest cache.
pub fn from_forest_cache(reader: ForestCacheReader) -> SourceIndexLoader {
    Arc::new(move || -> Arc<dyn SourceIndex> { reader.load() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hnc_shard::propagation::{ForestCache, PropagationRules};
    use serde_json::json;

    #[test]
    fn the_forest_cache_answers_by_name_and_by_namespace() {
        let mut cache = ForestCache::new(PropagationRules::default());
        let ty = TypeKey::new("", "ConfigMap");
        for (ns, name, copy) in [("a", "x", false), ("b", "x", false), ("c", "x", true), ("b", "y", false)] {
            let mut labels = json!({});
            if copy {
                labels = json!({"hnc.x-k8s.io/inherited-from": "a"});
            }
            let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": ns, "labels": labels, "resourceVersion": "1"}});
            cache.apply(&ty, &object).unwrap();
        }
        let index: Arc<dyn SourceIndex> = cache.publish();
        let mut holders = Vec::new();
        index.holders(&ty, "x", &mut |ns, _| holders.push(ns.to_owned()));
        assert_eq!(holders, ["a", "b"], "copies are not sources");
        assert!(index.holds(&ty, "b", "x") && !index.holds(&ty, "c", "x"));
        let mut names = Vec::new();
        index.sources_in(&ty, "b", &mut |name, _| names.push(name.to_owned()));
        assert_eq!(names, ["x", "y"]);
        let mut namespaces = Vec::new();
        index.namespaces_with_sources(&ty, &mut |ns| namespaces.push(ns.to_owned()));
        namespaces.sort();
        assert_eq!(namespaces, ["a", "b"]);
        index.holders(&TypeKey::new("", "Secret"), "x", &mut |_, _| panic!("no secrets"));
    }
}
