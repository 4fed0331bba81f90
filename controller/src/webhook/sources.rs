//! "Which namespaces hold a source of type T named N, and how may it propagate?" — the one question the
//! objects validator (spec §8.8 step 6), the HierarchyConfiguration validator's re-parent conflict check
//! (§8.5) and the HNCConfiguration validator (§8.7 step 4) ask about propagated objects.
//!
//! It sits behind [`SourceIndex`] so that its backing can change without touching the validators. The
//! propagation engine's [`SourceNamesSnapshot`] answers it: a cluster-wide index of every source's name,
//! namespace and policy (no bodies), fed by the same watches as the forest cache, which itself holds only the
//! trees this replica owns. So every replica judges conflicts about every tree.

use std::sync::Arc;

use hnc_shard::propagation::{PropagationPolicy, SourceNamesReader, SourceNamesSnapshot, TypeKey};

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

impl SourceIndex for SourceNamesSnapshot {
    fn holders(&self, ty: &TypeKey, name: &str, visit: &mut dyn FnMut(&str, &PropagationPolicy)) {
        SourceNamesSnapshot::holders(self, ty, name, |ns, policy| visit(ns, policy));
    }

    fn holds(&self, ty: &TypeKey, namespace: &str, name: &str) -> bool {
        SourceNamesSnapshot::holds(self, ty, namespace, name)
    }

    fn sources_in(&self, ty: &TypeKey, namespace: &str, visit: &mut dyn FnMut(&str, &PropagationPolicy)) {
        SourceNamesSnapshot::sources_in(self, ty, namespace, |name, policy| visit(name, policy));
    }

    fn namespaces_with_sources(&self, ty: &TypeKey, visit: &mut dyn FnMut(&str)) {
        SourceNamesSnapshot::namespaces_with_sources(self, ty, |ns| visit(ns));
    }
}

/// The index backed by the propagation engine's cluster-wide source index.
pub fn from_source_names(reader: SourceNamesReader) -> SourceIndexLoader {
    Arc::new(move || -> Arc<dyn SourceIndex> { reader.load() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hnc_shard::propagation::{PropagationRules, SourceNames};
    use serde_json::json;

    #[test]
    fn the_source_names_answer_by_name_and_by_namespace() {
        let mut cache = SourceNames::new(PropagationRules::default());
        let ty = TypeKey::new("", "ConfigMap");
        for (ns, name, copy) in [("a", "x", false), ("b", "x", false), ("c", "x", true), ("b", "y", false)] {
            let mut labels = json!({});
            if copy {
                labels = json!({"hnc.x-k8s.io/inherited-from": "a"});
            }
            let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": ns, "labels": labels, "resourceVersion": "1"}});
            cache.apply(&ty, ns, name, &object);
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
