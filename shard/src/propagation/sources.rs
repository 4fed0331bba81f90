//! Every source of every propagated type in the cluster, by name and namespace, with its propagation policy —
//! and nothing else: no object body, no copies.
//!
//! The forest cache holds full sources and copy fingerprints only for the trees this replica owns. Admission
//! must still judge, on any replica, whether a new source would overwrite a same-named object below it or
//! whether a re-parent would; those checks need only which namespaces hold a source of a given name and how it
//! may propagate. This index answers that for the whole cluster at about 250 bytes per source. Like the
//! forest cache it is written by one task and published as immutable snapshots (persistent maps, so a snapshot
//! is a pointer copy).

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::ops::Bound;
use std::sync::Arc;

use arc_swap::ArcSwap;
use hnc_api::keys::labels;
use serde_json::Value;

use super::object::{ObjName, PropagationRules, TypeKey, clean_source};
use super::selector::PropagationPolicy;
use crate::NsName;

/// One type's sources, in two flat persistent maps keyed by both names, so that "who holds a source named x"
/// and "what sources does namespace n hold" are both range scans. Flat maps matter: a persistent map per
/// namespace or per name allocates a whole B-tree node (kilobytes) for its one or two entries.
#[derive(Clone, Debug, Default)]
struct TypeSources {
    by_name: imbl::OrdMap<(ObjName, NsName), Arc<PropagationPolicy>>,
    by_ns: imbl::OrdMap<(NsName, ObjName), Arc<PropagationPolicy>>,
}

/// A key of two names ordered as the pair, so that borrowed `(&str, &str)` can look up an owned
/// `(Arc<str>, Arc<str>)` key: lookups and deletions (one per watched copy) allocate nothing.
trait NamePair {
    fn pair(&self) -> (&str, &str);
}

impl NamePair for (Arc<str>, Arc<str>) {
    fn pair(&self) -> (&str, &str) {
        (&self.0, &self.1)
    }
}

impl NamePair for (&str, &str) {
    fn pair(&self) -> (&str, &str) {
        *self
    }
}

impl<'a> Borrow<dyn NamePair + 'a> for (Arc<str>, Arc<str>) {
    fn borrow(&self) -> &(dyn NamePair + 'a) {
        self
    }
}

impl PartialEq for dyn NamePair + '_ {
    fn eq(&self, other: &Self) -> bool {
        self.pair() == other.pair()
    }
}

impl Eq for dyn NamePair + '_ {}

impl PartialOrd for dyn NamePair + '_ {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for dyn NamePair + '_ {
    fn cmp(&self, other: &Self) -> Ordering {
        self.pair().cmp(&other.pair())
    }
}

/// Visits the entries of `map` whose key starts with `first`, in order of the key's second part.
fn entries_under<'a, V>(
    map: &'a imbl::OrdMap<(Arc<str>, Arc<str>), V>,
    first: &'a str,
) -> impl Iterator<Item = (&'a Arc<str>, &'a V)> + 'a {
    let start: &dyn NamePair = &(first, "");
    map.range::<_, dyn NamePair>((Bound::Included(start), Bound::Unbounded))
        .take_while(move |((key, _), _)| &**key == first)
        .map(|((_, second), value)| (second, value))
}

/// The first part of `map`'s first key that starts with `first`, as the map holds it.
fn first_part<V>(map: &imbl::OrdMap<(Arc<str>, Arc<str>), V>, first: &str) -> Option<Arc<str>> {
    let start: &dyn NamePair = &(first, "");
    map.range::<_, dyn NamePair>((Bound::Included(start), Bound::Unbounded))
        .next()
        .filter(|((key, _), _)| &**key == first)
        .map(|((key, _), _)| key.clone())
}

/// A snapshot of the index.
#[derive(Clone, Debug, Default)]
pub struct SourceNamesSnapshot {
    types: imbl::HashMap<TypeKey, TypeSources>,
}

impl SourceNamesSnapshot {
    /// Calls `visit` with every namespace holding a source of `ty` named `name`, with its policy.
    pub fn holders(&self, ty: &TypeKey, name: &str, mut visit: impl FnMut(&NsName, &PropagationPolicy)) {
        let Some(t) = self.types.get(ty) else { return };
        for (ns, policy) in entries_under(&t.by_name, name) {
            visit(ns, policy);
        }
    }

    /// True when `namespace` holds a source of `ty` named `name`.
    pub fn holds(&self, ty: &TypeKey, namespace: &str, name: &str) -> bool {
        self.types.get(ty).is_some_and(|t| t.by_ns.contains_key(&(namespace, name) as &dyn NamePair))
    }

    /// Calls `visit` with the name and policy of every source of `ty` in `namespace`.
    pub fn sources_in(
        &self,
        ty: &TypeKey,
        namespace: &str,
        mut visit: impl FnMut(&ObjName, &PropagationPolicy),
    ) {
        let Some(t) = self.types.get(ty) else { return };
        for (name, policy) in entries_under(&t.by_ns, namespace) {
            visit(name, policy);
        }
    }

    /// Calls `visit` with every namespace holding at least one source of `ty`.
    pub fn namespaces_with_sources(&self, ty: &TypeKey, mut visit: impl FnMut(&NsName)) {
        let Some(t) = self.types.get(ty) else { return };
        let mut last: Option<&NsName> = None;
        for (ns, _) in t.by_ns.keys() {
            if last != Some(ns) {
                visit(ns);
                last = Some(ns);
            }
        }
    }

    /// Number of sources of `ty`.
    pub fn count(&self, ty: &TypeKey) -> usize {
        self.types.get(ty).map_or(0, |t| t.by_ns.len())
    }

    /// Every `(namespace, name)` of `ty` the index holds.
    pub fn keys(&self, ty: &TypeKey) -> Vec<(NsName, ObjName)> {
        let Some(t) = self.types.get(ty) else { return Vec::new() };
        t.by_ns.keys().cloned().collect()
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
    last_policy: Option<Arc<PropagationPolicy>>,
}

impl SourceNames {
    /// An empty index; `rules` are the flags that shape a source's policy (as for the forest cache).
    pub fn new(rules: PropagationRules) -> Self {
        SourceNames {
            rules,
            state: SourceNamesSnapshot::default(),
            published: Arc::default(),
            last_policy: None,
        }
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
        let policy = PropagationPolicy::new(ty, &clean_source(object, &self.rules), &self.rules);
        // Most sources carry no selector at all: consecutive equal policies share one allocation.
        let policy = match &self.last_policy {
            Some(last) if **last == policy => last.clone(),
            _ => Arc::new(policy),
        };
        self.last_policy = Some(policy.clone());
        let (ns, n) = (self.interned_namespace(namespace), self.interned_name(name));
        let t = self.state.types.entry(ty.clone()).or_default();
        t.by_name.insert((n.clone(), ns.clone()), policy.clone());
        t.by_ns.insert((ns, n), policy);
    }

    /// `namespace` as an `Arc` the index already holds (another source of that namespace, of any type), or a
    /// new one: a namespace's sources of every type share one allocation of its name.
    fn interned_namespace(&self, namespace: &str) -> NsName {
        self.state
            .types
            .values()
            .find_map(|t| first_part(&t.by_ns, namespace))
            .unwrap_or_else(|| namespace.into())
    }

    /// `name` as an `Arc` the index already holds (a source of that name in another namespace, of any type), or
    /// a new one: a name used in many namespaces (a team's `RoleBinding`, a default `NetworkPolicy`) is stored
    /// once.
    fn interned_name(&self, name: &str) -> ObjName {
        self.state.types.values().find_map(|t| first_part(&t.by_name, name)).unwrap_or_else(|| name.into())
    }

    /// Forgets the source `namespace/name` of `ty`, if recorded.
    pub fn delete(&mut self, ty: &TypeKey, namespace: &str, name: &str) {
        let Some(t) = self.state.types.get_mut(ty) else { return };
        if t.by_ns.remove(&(namespace, name) as &dyn NamePair).is_some() {
            t.by_name.remove(&(name, namespace) as &dyn NamePair);
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
    fn a_namespace_or_name_held_already_is_not_allocated_again() {
        let (role, binding) =
            (TypeKey::new("rbac.authorization.k8s.io", "Role"), TypeKey::new("", "ConfigMap"));
        let mut index = SourceNames::new(PropagationRules::default());
        index.apply(&role, "team-a", "admins", &obj(json!({}), json!({})));
        index.apply(&role, "team-b", "admins", &obj(json!({}), json!({})));
        index.apply(&binding, "team-a", "settings", &obj(json!({}), json!({})));
        let snap = index.publish();
        let keys = |ty: &TypeKey| snap.keys(ty);
        let (roles, maps) = (keys(&role), keys(&binding));
        assert_eq!(roles.len(), 2);
        assert!(Arc::ptr_eq(&roles[0].1, &roles[1].1), "one `admins` for both namespaces");
        assert!(Arc::ptr_eq(&roles[0].0, &maps[0].0), "one `team-a` for both types");
        assert!(!Arc::ptr_eq(&roles[0].0, &roles[1].0));
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

    #[test]
    fn range_scans_stop_at_the_next_name_and_namespace() {
        let ty = TypeKey::new("", "ConfigMap");
        let other = TypeKey::new("", "Secret");
        let mut index = SourceNames::new(PropagationRules::default());
        for (ns, name) in [("a", "x"), ("a", "x2"), ("ab", "x"), ("b", "w"), ("b", "x")] {
            index.apply(&ty, ns, name, &obj(json!({}), json!({})));
        }
        index.apply(&other, "a", "x", &obj(json!({}), json!({})));
        let snap = index.publish();
        let mut holders = Vec::new();
        snap.holders(&ty, "x", |ns, _| holders.push(ns.to_string()));
        assert_eq!(holders, ["a", "ab", "b"]);
        let mut names = Vec::new();
        snap.sources_in(&ty, "a", |name, _| names.push(name.to_string()));
        assert_eq!(names, ["x", "x2"]);
        let mut namespaces = Vec::new();
        snap.namespaces_with_sources(&ty, |ns| namespaces.push(ns.to_string()));
        assert_eq!(namespaces, ["a", "ab", "b"]);
        assert_eq!((snap.count(&ty), snap.count(&other)), (5, 1));
        assert!(snap.holds(&ty, "ab", "x") && !snap.holds(&ty, "ab", "x2"));

        index.delete(&ty, "a", "x");
        index.delete(&ty, "a", "x");
        let snap = index.publish();
        holders.clear();
        snap.holders(&ty, "x", |ns, _| holders.push(ns.to_string()));
        assert_eq!(holders, ["ab", "b"]);
        assert_eq!(snap.count(&ty), 4);
    }
}
