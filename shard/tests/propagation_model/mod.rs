//! Shared by the propagation tests: a brute-force `HierarchyView` and builders that keep tests short.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use hnc_api::SyncMode;
use hnc_api::keys::labels;
use hnc_shard::propagation::{
    CopyOp, DirtySet, ForestCache, PlannedWrite, PropagationRules, TypeKey, TypeModes, WriteBatch, plan,
};
use hnc_shard::{HierarchyView, Labels, NsName};
use serde_json::{Value, json};

/// One namespace of the model.
#[derive(Clone, Debug)]
pub struct NsModel {
    pub parent: Option<String>,
    pub labels: Labels,
    pub halted: bool,
    pub managed: bool,
}

/// A hierarchy as a plain map, every query answered by walking it. Namespaces exist iff they are in the map;
/// parents may name missing namespaces and may form cycles.
#[derive(Clone, Debug, Default)]
pub struct ModelView {
    pub nss: BTreeMap<String, NsModel>,
}

impl ModelView {
    pub fn add(&mut self, name: &str, parent: Option<&str>) {
        let model = NsModel {
            parent: parent.map(str::to_owned),
            labels: Labels::new(),
            halted: false,
            managed: true,
        };
        self.nss.insert(name.to_owned(), model);
    }

    pub fn set_parent(&mut self, name: &str, parent: Option<&str>) {
        self.nss.get_mut(name).expect("namespace exists").parent = parent.map(str::to_owned);
    }

    pub fn set_label(&mut self, name: &str, key: &str, value: &str) {
        self.nss.get_mut(name).expect("namespace exists").labels.insert(key.to_owned(), value.to_owned());
    }

    pub fn set_halted(&mut self, name: &str, halted: bool) {
        self.nss.get_mut(name).expect("namespace exists").halted = halted;
    }

    pub fn set_managed(&mut self, name: &str, managed: bool) {
        self.nss.get_mut(name).expect("namespace exists").managed = managed;
    }

    /// True when following parents from `ns` comes back to `ns`.
    pub fn in_cycle(&self, ns: &str) -> bool {
        let mut seen = std::collections::BTreeSet::new();
        let mut cur = ns.to_owned();
        while let Some(parent) = self.nss.get(&cur).and_then(|m| m.parent.clone()) {
            if parent == ns {
                return true;
            }
            if !seen.insert(parent.clone()) {
                return false;
            }
            cur = parent;
        }
        false
    }

    pub fn chain(&self, ns: &str) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        let mut cur = ns.to_owned();
        while let Some(parent) = self.nss.get(&cur).and_then(|m| m.parent.clone()) {
            if parent == ns || out.contains(&parent) || !self.nss.contains_key(&parent) {
                break;
            }
            out.push(parent.clone());
            cur = parent;
        }
        out
    }
}

impl HierarchyView for ModelView {
    fn is_managed(&self, ns: &str) -> bool {
        self.nss.get(ns).is_some_and(|m| m.managed)
    }

    fn ancestors(&self, ns: &str) -> Vec<NsName> {
        self.chain(ns).into_iter().map(NsName::from).collect()
    }

    fn descendants(&self, ns: &str) -> Vec<NsName> {
        self.nss
            .keys()
            .filter(|d| *d != ns && self.chain(d).iter().any(|a| a == ns))
            .map(|d| NsName::from(d.as_str()))
            .collect()
    }

    fn labels(&self, ns: &str) -> Option<Arc<Labels>> {
        let model = self.nss.get(ns)?;
        let mut out = model.labels.clone();
        out.insert(labels::tree_label(ns), "0".to_owned());
        for (depth, a) in self.chain(ns).iter().enumerate() {
            out.insert(labels::tree_label(a), (depth + 1).to_string());
        }
        Some(Arc::new(out))
    }

    /// A namespace is halted when flagged, or when it is a member of a parent cycle (`InCycle`, spec §1.6.1).
    fn halted_by(&self, ns: &str) -> Option<NsName> {
        std::iter::once(ns.to_owned())
            .chain(self.chain(ns))
            .find(|n| self.nss.get(n).is_some_and(|m| m.halted) || self.in_cycle(n))
            .map(|n| NsName::from(n.as_str()))
    }

    fn root(&self, ns: &str) -> NsName {
        NsName::from(self.chain(ns).last().map_or(ns, String::as_str))
    }
}

pub fn role() -> TypeKey {
    TypeKey::new("rbac.authorization.k8s.io", "Role")
}

pub fn role_binding() -> TypeKey {
    TypeKey::new("rbac.authorization.k8s.io", "RoleBinding")
}

pub fn config_map() -> TypeKey {
    TypeKey::new("", "ConfigMap")
}

pub fn secret() -> TypeKey {
    TypeKey::new("", "Secret")
}

/// A Role source `ns/name` whose rules mention `verb`.
pub fn mk_role(ns: &str, name: &str, verb: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": name, "namespace": ns, "resourceVersion": "1", "uid": format!("{ns}-{name}")},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": [verb]}],
    })
}

/// A Role source `ns/name`.
pub fn mk_src(ns: &str, name: &str) -> Value {
    mk_role(ns, name, "get")
}

/// A RoleBinding source `ns/name` bound to Role `role_name`.
pub fn mk_rb(ns: &str, name: &str, role_name: &str) -> Value {
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": name, "namespace": ns, "resourceVersion": "1"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role_name},
        "subjects": [{"kind": "User", "name": "alice", "apiGroup": "rbac.authorization.k8s.io"}],
    })
}

/// A ConfigMap `ns/name`.
pub fn mk_cm(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns}, "data": {"k": "v"},
    })
}

pub fn with_annotation(mut object: Value, key: &str, value: &str) -> Value {
    object["metadata"]["annotations"][key] = json!(value);
    object
}

pub fn with_label(mut object: Value, key: &str, value: &str) -> Value {
    object["metadata"]["labels"][key] = json!(value);
    object
}

pub fn with_finalizer(mut object: Value) -> Value {
    object["metadata"]["finalizers"] = json!(["example.com/keep"]);
    object
}

pub fn labels_of(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// A short, sortable description of each write: `create b/role from a`, `delete c/role`.
pub fn describe(batch: &WriteBatch) -> Vec<String> {
    batch.writes.iter().map(describe_write).collect()
}

pub fn describe_write(w: &PlannedWrite) -> String {
    let target = format!("{}/{}", w.namespace, w.name);
    match &w.op {
        CopyOp::Create { source } => format!("create {target} from {}", source.namespace),
        CopyOp::Update { source, .. } => format!("update {target} from {}", source.namespace),
        CopyOp::Recreate { source, .. } => format!("recreate {target} from {}", source.namespace),
        CopyOp::Delete { .. } => format!("delete {target}"),
    }
}

/// A hierarchy, a cache and modes, with an in-memory "API server" that applies planned writes back to the
/// cache the way their watch events would.
pub struct World {
    pub view: ModelView,
    pub cache: ForestCache,
    pub modes: TypeModes,
    next_rv: u64,
}

impl World {
    pub fn new() -> Self {
        Self::with_rules(PropagationRules::default())
    }

    pub fn with_rules(rules: PropagationRules) -> Self {
        let modes =
            [(role(), SyncMode::Propagate), (role_binding(), SyncMode::Propagate)].into_iter().collect();
        World { view: ModelView::default(), cache: ForestCache::new(rules), modes, next_rv: 100 }
    }

    /// Adds namespaces from `child:parent` specs (`"a"` is a root).
    pub fn tree(&mut self, specs: &[&str]) {
        for spec in specs {
            match spec.split_once(':') {
                Some((child, parent)) => self.view.add(child, Some(parent)),
                None => self.view.add(spec, None),
            }
        }
    }

    /// Ingests an object of the type its apiVersion/kind names.
    pub fn put(&mut self, object: Value) {
        self.cache.apply(&TypeKey::of_object(&object), &object).expect("valid object");
    }

    pub fn plan(&self, dirty: &DirtySet) -> WriteBatch {
        plan(&self.view, self.cache.current(), &self.modes, dirty)
    }

    pub fn plan_all(&self) -> Vec<String> {
        describe(&self.plan(&DirtySet::all()))
    }

    /// Performs every write of `batch` against the model API server (the cache), as their watch echoes would.
    pub fn perform(&mut self, batch: &WriteBatch) {
        for w in &batch.writes {
            match w.body() {
                Some(mut body) => {
                    self.next_rv += 1;
                    body["metadata"]["resourceVersion"] = json!(self.next_rv.to_string());
                    self.cache.apply(&w.ty, &body).expect("copies are valid objects");
                }
                None => {
                    self.cache.delete(&w.ty, &w.namespace, &w.name);
                }
            }
        }
    }

    /// Plans everything and performs it, until nothing is left (at most 3 rounds; one should do).
    pub fn converge(&mut self) {
        for _ in 0..3 {
            let batch = self.plan(&DirtySet::all());
            if batch.is_empty() {
                return;
            }
            self.perform(&batch);
        }
        panic!("did not converge: {:?}", self.plan_all());
    }
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}
