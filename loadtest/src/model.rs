//! The harness's model of what a converged cluster looks like, and what each change must cost.
//!
//! The state is a map from [`Key`] to a value hash (0 = absent). Keys name the parts of API objects HNC owns:
//!
//! | key | object | value | written by |
//! |---|---|---|---|
//! | `o:<type>/<ns>/<name>` | a source or a copy | (inherited-from, content fingerprint) | harness (source) / HNC (copy) |
//! | `l:<ns>` | Namespace | its tree labels + `included-namespace` | HNC (subnamespaces: created/deleted by HNC) |
//! | `h:<ns>` | HierarchyConfiguration | `status.children` (absent = empty) | HNC |
//! | `p:<ns>` | HierarchyConfiguration | `spec.parent` | harness (full namespaces) / HNC (subnamespaces) |
//! | `a:<parent>/<child>` | SubnamespaceAnchor | `status.status` (`deleting` while finalized) | HNC |
//!
//! *Writes necessary* for a change are the objects with an HNC-owned key whose value it changes: one create,
//! update, patch or delete each — nothing can reach the new state with fewer. That is the minimum; a subnamespace
//! created with its labels in one write, or an HC created with its `spec.parent` and children, counts once.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use crate::objects::{PropType, hash_of};
use crate::topology::Topology;

/// A key of the state map (see the module docs).
pub type Key = Box<str>;

/// Value of keys that are absent.
pub const ABSENT: u64 = 0;
/// Value of an `h:` key whose HierarchyConfiguration is absent or has no children.
pub const NO_CHILDREN: u64 = 1;

/// Who changes a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owner {
    Harness,
    Controller,
}

/// The default value of `key` when it is not in a map.
pub fn default_of(key: &str) -> u64 {
    if key.starts_with("h:") { NO_CHILDREN } else { ABSENT }
}

pub fn object_key(tag: &str, ns: &str, name: &str) -> Key {
    format!("o:{tag}/{ns}/{name}").into()
}
pub fn labels_key(ns: &str) -> Key {
    format!("l:{ns}").into()
}
pub fn children_key(ns: &str) -> Key {
    format!("h:{ns}").into()
}
pub fn parent_key(ns: &str) -> Key {
    format!("p:{ns}").into()
}
pub fn anchor_key(parent: &str, child: &str) -> Key {
    format!("a:{parent}/{child}").into()
}

/// Value of an object key.
pub fn object_value(inherited_from: &str, fingerprint: u64) -> u64 {
    hash_of(&(inherited_from, fingerprint))
}

/// Value of an `l:` key from a namespace's labels: only HNC's tree labels and `included-namespace` count.
pub fn labels_value<'a>(labels: impl Iterator<Item = (&'a String, &'a String)>) -> u64 {
    let hnc: BTreeMap<&String, &String> = labels
        .filter(|(k, _)| {
            k.ends_with(".tree.hnc.x-k8s.io/depth") || k.as_str() == "hnc.x-k8s.io/included-namespace"
        })
        .collect();
    hash_of(&hnc)
}

/// Value of an `h:` key from `status.children`.
pub fn children_value(children: &[String]) -> u64 {
    if children.is_empty() {
        return NO_CHILDREN;
    }
    let mut sorted = children.to_vec();
    sorted.sort();
    hash_of(&sorted)
}

/// Value of a `p:` key from `spec.parent`.
pub fn parent_value(parent: &str) -> u64 {
    hash_of(&("parent", parent))
}

/// Value of an `a:` key from `status.status` (or "deleting").
pub fn anchor_value(status: &str) -> u64 {
    hash_of(&("anchor", status))
}

/// A source the harness created: all propagated types share its name.
#[derive(Debug, Clone)]
pub struct Source {
    pub name: String,
    /// Content fingerprint per type (index into the run's types).
    pub fingerprints: Vec<u64>,
    pub generation: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Node {
    pub parent: Option<String>,
    pub children: BTreeSet<String>,
    /// A subnamespace (anchor in the parent) rather than a full namespace (HC `spec.parent`).
    pub sub: bool,
    pub sources: Vec<Source>,
}

/// One change to the expected state.
#[derive(Debug, Default)]
pub struct Delta {
    /// Keys and their new values.
    pub changes: Vec<(Key, u64, Owner)>,
}

impl Delta {
    /// Objects with an HNC-owned key this change changes: the writes it makes necessary.
    pub fn necessary(&self) -> usize {
        distinct_objects(
            self.changes.iter().filter(|(_, _, o)| *o == Owner::Controller).map(|(k, _, _)| &**k),
        )
    }
}

/// The API object a key is part of: `h:` and `p:` are two fields of one HierarchyConfiguration, which one write
/// can set together.
pub fn object_of(key: &str) -> std::borrow::Cow<'_, str> {
    match key.strip_prefix("h:").or_else(|| key.strip_prefix("p:")) {
        Some(ns) => format!("hc:{ns}").into(),
        None => key.into(),
    }
}

/// Number of distinct objects among `keys`.
pub fn distinct_objects<'a>(keys: impl Iterator<Item = &'a str>) -> usize {
    keys.map(object_of).collect::<HashSet<_>>().len()
}

/// The expected hierarchy and sources.
#[derive(Debug, Clone)]
pub struct Model {
    pub nodes: HashMap<String, Node>,
    pub type_tags: Vec<&'static str>,
}

impl Model {
    /// The model of `topology` loaded with `objects` sources of every type per namespace; `anchors` makes every
    /// non-root a subnamespace. `fingerprint(type index, ns, name)` gives a source's content fingerprint.
    pub fn new(
        topology: &Topology,
        types: &[PropType],
        objects: usize,
        anchors: bool,
        fingerprint: impl Fn(usize, &str, &str) -> u64,
    ) -> Model {
        let mut nodes: HashMap<String, Node> = HashMap::with_capacity(topology.len());
        for n in &topology.nodes {
            let parent = n.parent.map(|p| topology.nodes[p].name.clone());
            if let Some(p) = &parent {
                nodes.get_mut(p).expect("parents come first").children.insert(n.name.clone());
            }
            let sources = (0..objects)
                .map(|i| {
                    let name = source_name("lt", i, &n.name);
                    Source {
                        fingerprints: (0..types.len()).map(|t| fingerprint(t, &n.name, &name)).collect(),
                        name,
                        generation: 1,
                    }
                })
                .collect();
            let sub = anchors && parent.is_some();
            nodes.insert(n.name.clone(), Node { parent, children: BTreeSet::new(), sub, sources });
        }
        Model { nodes, type_tags: types.iter().map(|t| t.tag).collect() }
    }

    /// Ancestors of `ns`, nearest first.
    pub fn ancestors(&self, ns: &str) -> Vec<&str> {
        let mut out = Vec::new();
        let mut current = self.nodes.get(ns).and_then(|n| n.parent.as_deref());
        while let Some(p) = current {
            out.push(p);
            current = self.nodes.get(p).and_then(|n| n.parent.as_deref());
        }
        out
    }

    /// Descendants of `ns` (not `ns`), parents before children.
    pub fn descendants(&self, ns: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut stack: Vec<&str> = vec![ns];
        while let Some(n) = stack.pop() {
            if let Some(node) = self.nodes.get(n) {
                for c in node.children.iter().rev() {
                    out.push(c.clone());
                    stack.push(c);
                }
            }
        }
        out
    }

    pub fn depth(&self, ns: &str) -> usize {
        self.ancestors(ns).len()
    }

    /// Every key `ns` contributes to the expected state, with its owner.
    pub fn expected_for(&self, ns: &str, out: &mut Vec<(Key, u64, Owner)>) {
        let Some(node) = self.nodes.get(ns) else { return };
        let ancestors = self.ancestors(ns);
        let mut labels: BTreeMap<String, String> = BTreeMap::new();
        labels.insert("hnc.x-k8s.io/included-namespace".into(), "true".into());
        for (depth, a) in std::iter::once(ns).chain(ancestors.iter().copied()).enumerate() {
            labels.insert(format!("{a}.tree.hnc.x-k8s.io/depth"), depth.to_string());
        }
        out.push((labels_key(ns), labels_value(labels.iter()), Owner::Controller));
        let children: Vec<String> = node.children.iter().cloned().collect();
        out.push((children_key(ns), children_value(&children), Owner::Controller));
        if let Some(parent) = &node.parent {
            // HNC writes a subnamespace's spec.parent (creating its HC); a full namespace's is the user's.
            let owner = if node.sub { Owner::Controller } else { Owner::Harness };
            out.push((parent_key(ns), parent_value(parent), owner));
            if node.sub {
                out.push((anchor_key(parent, ns), anchor_value("Ok"), Owner::Controller));
            }
        }
        for s in &node.sources {
            for (t, tag) in self.type_tags.iter().enumerate() {
                out.push((object_key(tag, ns, &s.name), object_value("", s.fingerprints[t]), Owner::Harness));
            }
        }
        for a in ancestors {
            for s in &self.nodes[a].sources {
                for (t, tag) in self.type_tags.iter().enumerate() {
                    out.push((
                        object_key(tag, ns, &s.name),
                        object_value(a, s.fingerprints[t]),
                        Owner::Controller,
                    ));
                }
            }
        }
    }

    /// The whole expected state.
    pub fn expected(&self) -> Vec<(Key, u64, Owner)> {
        let mut out = Vec::new();
        for ns in self.nodes.keys() {
            self.expected_for(ns, &mut out);
        }
        out
    }

    /// Keys of the namespaces in `scope`, for diffing around a change.
    fn snapshot(&self, scope: &[String]) -> HashMap<Key, (u64, Owner)> {
        let mut out = Vec::new();
        for ns in scope {
            self.expected_for(ns, &mut out);
        }
        out.into_iter().map(|(k, v, o)| (k, (v, o))).collect()
    }

    /// Applies `change` and returns the keys it changed, looking only at the namespaces in `scope` (which must
    /// cover every namespace whose keys the change can touch, before and after it).
    pub fn apply(&mut self, scope: &[String], change: impl FnOnce(&mut Model)) -> Delta {
        let before = self.snapshot(scope);
        change(self);
        let after = self.snapshot(scope);
        let mut delta = Delta::default();
        for (k, (v, o)) in &after {
            if before.get(k).map_or(default_of(k), |b| b.0) != *v {
                delta.changes.push((k.clone(), *v, *o));
            }
        }
        for (k, (v, o)) in before {
            if !after.contains_key(&k) && v != default_of(&k) {
                // Objects in a namespace that is gone are deleted with it by the API server, not by HNC.
                let gone_with_namespace = (k.starts_with("o:") || k.starts_with("p:"))
                    && !self.nodes.contains_key(key_namespace(&k));
                let owner = if gone_with_namespace { Owner::Harness } else { o };
                delta.changes.push((k.clone(), default_of(&k), owner));
            }
        }
        delta
    }

    /// Namespaces whose keys a change to the sources of `ns` touches.
    pub fn source_scope(&self, ns: &str) -> Vec<String> {
        std::iter::once(ns.to_owned()).chain(self.descendants(ns)).collect()
    }

    /// Namespaces whose keys moving `ns` from `old` to `new` parent (or creating/deleting it) touches.
    pub fn move_scope(&self, ns: &str, old: Option<&str>, new: Option<&str>) -> Vec<String> {
        let mut scope: Vec<String> = old.into_iter().chain(new).map(str::to_owned).collect();
        scope.extend(self.source_scope(ns));
        let unique: HashSet<String> = scope.drain(..).collect();
        unique.into_iter().collect()
    }

    /// Sets the parent of `ns` (None = root), keeping children sets consistent.
    pub fn set_parent(&mut self, ns: &str, parent: Option<&str>) {
        let old = self.nodes.get(ns).and_then(|n| n.parent.clone());
        if let Some(o) = old.and_then(|old| self.nodes.get_mut(&old)) {
            o.children.remove(ns);
        }
        if let Some(p) = parent {
            self.nodes.get_mut(p).expect("parent exists").children.insert(ns.to_owned());
        }
        self.nodes.get_mut(ns).expect("namespace exists").parent = parent.map(str::to_owned);
    }

    /// Adds a leaf namespace under `parent`.
    pub fn add_namespace(&mut self, ns: &str, parent: &str, sub: bool) {
        self.nodes.insert(ns.to_owned(), Node { sub, ..Default::default() });
        self.set_parent(ns, Some(parent));
    }

    /// Removes a leaf namespace.
    pub fn remove_namespace(&mut self, ns: &str) {
        self.set_parent(ns, None);
        self.nodes.remove(ns);
    }
}

/// The namespace an `o:` (`o:<type>/<ns>/<name>`) or `p:` key is in.
pub fn key_namespace(key: &str) -> &str {
    match key.strip_prefix("p:") {
        Some(ns) => ns,
        None => key.split('/').nth(1).unwrap_or_default(),
    }
}

/// Name of the `index`-th source in `ns` with `prefix` (`lt` for loaded sources, `ltc` for churn).
pub fn source_name(prefix: &str, index: usize, ns: &str) -> String {
    format!("{prefix}{index}.{ns}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objects::prop_types;
    use crate::topology::{Distribution, Shape, TopologySpec};

    fn wide(n: usize, objects: usize) -> Model {
        let spec = TopologySpec {
            shape: Shape::Wide,
            size: n,
            trees: 0,
            namespaces: 0,
            distribution: Distribution::Uniform,
            skew: None,
            max_depth: 3,
            seed: 1,
        };
        let t = Topology::generate(&spec).unwrap();
        Model::new(&t, &prop_types(false, false), objects, false, |t, _, _| 10 + t as u64)
    }

    #[test]
    fn a_new_source_in_a_root_needs_one_copy_per_descendant_and_type() {
        let mut m = wide(10, 1);
        let scope = m.source_scope("lt-w");
        let delta = m.apply(&scope, |m| {
            let s = Source { name: "ltc0.lt-w".into(), fingerprints: vec![100, 101], generation: 1 };
            m.nodes.get_mut("lt-w").unwrap().sources.push(s);
        });
        assert_eq!(delta.necessary(), 20);
        assert_eq!(delta.changes.len(), 22, "plus the two sources the harness writes");
    }

    #[test]
    fn deleting_a_source_removes_its_copies() {
        let mut m = wide(5, 1);
        let scope = m.source_scope("lt-w");
        let delta = m.apply(&scope, |m| m.nodes.get_mut("lt-w").unwrap().sources.clear());
        assert_eq!(delta.necessary(), 10);
        assert!(delta.changes.iter().all(|(_, v, _)| *v == ABSENT));
    }

    #[test]
    fn moving_a_leaf_changes_its_labels_copies_and_both_parents_children() {
        // lt-w-0 moves under lt-w-1: labels change, it gains lt-w-1's two copies, lt-w loses a child and lt-w-1
        // gains one.
        let mut m = wide(3, 1);
        let scope = m.move_scope("lt-w-0", Some("lt-w"), Some("lt-w-1"));
        let delta = m.apply(&scope, |m| m.set_parent("lt-w-0", Some("lt-w-1")));
        assert_eq!(delta.necessary(), 1 + 2 + 2, "{:?}", delta.changes);
        assert_eq!(delta.changes.len(), 6, "plus spec.parent, which the harness writes");
    }

    #[test]
    fn a_subnamespace_costs_its_namespace_anchor_parent_children_and_copies() {
        let mut m = wide(2, 1);
        let scope = m.move_scope("lt-new", None, Some("lt-w-0"));
        let delta = m.apply(&scope, |m| m.add_namespace("lt-new", "lt-w-0", true));
        // namespace (labels), anchor state, its HC (spec.parent), lt-w-0's HC (children), copies from lt-w-0
        // and lt-w (2 types each).
        assert_eq!(delta.necessary(), 1 + 1 + 1 + 1 + 4, "{:?}", delta.changes);
        let delta = m.apply(&scope, |m| m.remove_namespace("lt-new"));
        // Removing it undoes all of that but the copies and the HC, which go with the namespace.
        assert_eq!(delta.necessary(), 3, "{:?}", delta.changes);
    }

    #[test]
    fn an_hc_whose_parent_and_children_change_together_is_one_write() {
        let d = Delta {
            changes: vec![
                ("p:lt-a".into(), 5, Owner::Controller),
                ("h:lt-a".into(), 6, Owner::Controller),
                ("l:lt-a".into(), 7, Owner::Controller),
                ("o:role/lt-a/x".into(), 8, Owner::Harness),
            ],
        };
        assert_eq!(d.necessary(), 2);
    }

    #[test]
    fn the_cold_state_of_wide_3_has_the_expected_keys() {
        let m = wide(3, 1);
        let keys = m.expected();
        // 4 namespaces × (labels + children) + 3 parents + 4 × 2 sources + 3 × 2 copies.
        assert_eq!(keys.len(), 8 + 3 + 8 + 6);
        assert_eq!(keys.iter().filter(|(_, _, o)| *o == Owner::Controller).count(), 8 + 6);
    }
}
