//! The tree index: every namespace with its parent link, children and anchors, built from watch events by a
//! single writer and published to any number of readers as immutable snapshots.
//!
//! ```text
//!   watch events ──▶ TreeIndex::apply_* (one task) ──▶ working TreeSnapshot ──publish()──▶ ArcSwap ──▶ readers
//!                         │                                 (persistent maps:                (webhooks, planner,
//!                         └──▶ Affected { hierarchy, propagation }   O(1) to clone)            ownership)
//! ```
//!
//! Nodes live in persistent (`imbl`) maps, so a snapshot is a pointer copy and a mutation copies only the path it
//! touches: readers never block the writer or each other, and publishing after every batch of events is cheap.
//!
//! A node exists for every namespace observed, every namespace named as a parent (missing parents appear as
//! non-existing nodes holding their children, as upstream's forest does), and every namespace holding an
//! anchor or a HierarchyConfiguration; it is dropped when none of these holds any more.

use std::collections::BTreeSet;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::names::NameMap;
use super::observed::{ObservedAnchor, ObservedHierarchy, ObservedNamespace};
use super::policy::NamespacePolicy;
use crate::view::NsName;

/// One namespace as the index knows it.
#[derive(Debug, Clone)]
pub struct NsNode {
    pub(crate) name: NsName,
    pub(crate) namespace: Option<Arc<ObservedNamespace>>,
    pub(crate) hierarchy: Option<Arc<ObservedHierarchy>>,
    pub(crate) anchors: NameMap<Arc<ObservedAnchor>>,
    pub(crate) parent: Option<NsName>,
    pub(crate) children: NameMap<()>,
}

impl NsNode {
    fn new(name: NsName) -> Self {
        NsNode {
            name,
            namespace: None,
            hierarchy: None,
            anchors: NameMap::new(),
            parent: None,
            children: NameMap::new(),
        }
    }

    /// The namespace's name.
    pub fn name(&self) -> &NsName {
        &self.name
    }

    /// The Namespace object, if observed.
    pub fn namespace(&self) -> Option<&ObservedNamespace> {
        self.namespace.as_deref()
    }

    /// The HierarchyConfiguration singleton, if observed.
    pub fn hierarchy(&self) -> Option<&ObservedHierarchy> {
        self.hierarchy.as_deref()
    }

    /// Anchors in this namespace, by name (sorted).
    pub fn anchors(&self) -> impl Iterator<Item = (&NsName, &ObservedAnchor)> {
        self.anchors.iter().map(|(k, v)| (k, &**v))
    }

    /// One anchor of this namespace.
    pub fn anchor(&self, name: &str) -> Option<&ObservedAnchor> {
        self.anchors.get(name).map(|a| &**a)
    }

    /// The parent link (may name a namespace that does not exist or is not managed).
    pub fn parent(&self) -> Option<&NsName> {
        self.parent.as_ref()
    }

    /// Direct children, sorted.
    pub fn children(&self) -> impl Iterator<Item = &NsName> {
        self.children.keys()
    }

    fn is_empty(&self) -> bool {
        self.namespace.is_none()
            && self.hierarchy.is_none()
            && self.anchors.is_empty()
            && self.children.is_empty()
    }
}

/// Which CRDs of HNC are being deleted (spec §10): their objects are wound down without destroying anything.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DeletingCrds {
    /// `hierarchyconfigurations.hnc.x-k8s.io` is absent or has a deletionTimestamp.
    pub hierarchy: bool,
    /// `subnamespaceanchors.hnc.x-k8s.io` is absent or has a deletionTimestamp.
    pub anchors: bool,
}

/// An immutable view of the whole hierarchy. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TreeSnapshot {
    pub(crate) nodes: imbl::HashMap<NsName, Arc<NsNode>>,
    /// Anchor name → namespaces holding an anchor of that name.
    pub(crate) anchors_by_name: imbl::HashMap<NsName, NameMap<()>>,
    /// Namespaces whose hierarchy is managed by an external tool.
    pub(crate) externals: imbl::OrdSet<NsName>,
    pub(crate) policy: Arc<NamespacePolicy>,
    pub(crate) synced: bool,
    pub(crate) deleting_crds: DeletingCrds,
    pub(crate) generation: u64,
    /// Derived facts, computed on first use; replaced whenever the writer changes anything (created lazily:
    /// the writer changes the index far more often than it asks it questions while the initial lists load).
    pub(crate) memo: Arc<std::sync::OnceLock<super::memo::Memo>>,
}

/// What a change to the index requires the controller to revisit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Affected {
    /// Namespaces whose Namespace, HierarchyConfiguration and anchors must be reconciled.
    pub hierarchy: BTreeSet<NsName>,
    /// Namespaces whose subtree (the namespace included) must be re-planned for propagation.
    pub propagation: BTreeSet<NsName>,
}

impl Affected {
    /// Adds everything `other` names.
    pub fn merge(&mut self, other: Affected) {
        self.hierarchy.extend(other.hierarchy);
        self.propagation.extend(other.propagation);
    }

    /// True when nothing needs revisiting.
    pub fn is_empty(&self) -> bool {
        self.hierarchy.is_empty() && self.propagation.is_empty()
    }
}

/// Shared read access to the latest published snapshot.
#[derive(Debug, Clone)]
pub struct TreeReader {
    published: Arc<ArcSwap<TreeSnapshot>>,
}

impl TreeReader {
    /// The latest published snapshot. Never blocks.
    pub fn load(&self) -> Arc<TreeSnapshot> {
        self.published.load_full()
    }
}

/// The single writer of the hierarchy.
#[derive(Debug)]
pub struct TreeIndex {
    working: TreeSnapshot,
    published: Arc<ArcSwap<TreeSnapshot>>,
}

impl TreeIndex {
    /// An empty index (not yet synced) under `policy`.
    pub fn new(policy: NamespacePolicy) -> Self {
        let working = TreeSnapshot {
            nodes: imbl::HashMap::new(),
            anchors_by_name: imbl::HashMap::new(),
            externals: imbl::OrdSet::new(),
            policy: Arc::new(policy),
            synced: false,
            deleting_crds: DeletingCrds::default(),
            generation: 0,
            memo: Arc::default(),
        };
        let published = Arc::new(ArcSwap::from_pointee(working.clone()));
        TreeIndex { working, published }
    }

    /// A handle readers use to load published snapshots.
    pub fn reader(&self) -> TreeReader {
        TreeReader { published: self.published.clone() }
    }

    /// The writer's current (possibly unpublished) state.
    pub fn current(&self) -> &TreeSnapshot {
        &self.working
    }

    /// Publishes the current state to readers and returns it.
    pub fn publish(&mut self) -> Arc<TreeSnapshot> {
        self.working.generation += 1;
        let snapshot = Arc::new(self.working.clone());
        self.published.store(snapshot.clone());
        snapshot
    }

    /// Marks the initial lists of Namespaces, HierarchyConfigurations and anchors complete (or not). No
    /// condition is judged before: a child listed before its parent is not "missing" its parent.
    pub fn set_synced(&mut self, synced: bool) {
        self.working.synced = synced;
        self.touched();
    }

    /// The latest published snapshot.
    pub fn latest(&self) -> Arc<TreeSnapshot> {
        self.published.load_full()
    }

    /// Forgets derived facts after a change.
    fn touched(&mut self) {
        self.working.memo = Arc::default();
    }

    /// Records which HNC CRDs are being deleted. Everything is revisited when this changes.
    pub fn set_deleting_crds(&mut self, deleting: DeletingCrds) -> bool {
        let changed = self.working.deleting_crds != deleting;
        self.working.deleting_crds = deleting;
        self.touched();
        changed
    }

    /// Records a Namespace.
    pub fn apply_namespace(&mut self, name: &str, observed: ObservedNamespace) -> Affected {
        self.change(name, |node| {
            if node.namespace.as_deref() == Some(&observed) {
                return false;
            }
            node.namespace = Some(Arc::new(observed));
            true
        })
        .unwrap_or_default()
    }

    /// Forgets a Namespace (deleted).
    pub fn delete_namespace(&mut self, name: &str) -> Affected {
        self.change(name, |node| node.namespace.take().is_some()).unwrap_or_default()
    }

    /// Records the HierarchyConfiguration of `namespace`.
    pub fn apply_hierarchy(&mut self, namespace: &str, observed: ObservedHierarchy) -> Affected {
        self.change(namespace, |node| {
            if node.hierarchy.as_deref() == Some(&observed) {
                return false;
            }
            node.hierarchy = Some(Arc::new(observed));
            true
        })
        .unwrap_or_default()
    }

    /// Forgets the HierarchyConfiguration of `namespace` (deleted).
    pub fn delete_hierarchy(&mut self, namespace: &str) -> Affected {
        self.change(namespace, |node| node.hierarchy.take().is_some()).unwrap_or_default()
    }

    /// Records the anchor `namespace/name`.
    pub fn apply_anchor(&mut self, namespace: &str, name: &str, observed: ObservedAnchor) -> Affected {
        self.change_anchor(namespace, name, Some(observed))
    }

    /// Forgets the anchor `namespace/name` (deleted).
    pub fn delete_anchor(&mut self, namespace: &str, name: &str) -> Affected {
        self.change_anchor(namespace, name, None)
    }

    fn change_anchor(&mut self, namespace: &str, name: &str, observed: Option<ObservedAnchor>) -> Affected {
        let child: NsName = name.into();
        let old_spec = self.anchor_spec(namespace, name);
        let new_spec = observed.as_ref().map(|a| (a.labels.clone(), a.annotations.clone()));
        let changed = self.change(namespace, |node| match observed {
            Some(anchor) => {
                if node.anchors.get(&child).map(|a| &**a) == Some(&anchor) {
                    return false;
                }
                node.anchors.insert(child.clone(), Arc::new(anchor));
                true
            }
            None => node.anchors.remove(&child).is_some(),
        });
        let Some(mut affected) = changed else { return Affected::default() };
        let mut holders = self.working.anchors_by_name.get(&child).cloned().unwrap_or_default();
        if self.working.node(namespace).is_some_and(|n| n.anchors.contains_key(&child)) {
            holders.add(namespace.into());
        } else {
            holders.remove(namespace);
        }
        if holders.is_empty() {
            self.working.anchors_by_name.remove(&child);
        } else {
            self.working.anchors_by_name.insert(child.clone(), holders);
        }
        self.touched();
        if !self.working.synced {
            return affected;
        }
        // The anchor decides the child's SubnamespaceAnchorMissing condition and, through its spec, the child's
        // managed labels and annotations, which flow down the child's subtree.
        affected.hierarchy.insert(child.clone());
        if old_spec != new_spec {
            affected.hierarchy.extend(self.working.descendants(&child));
            affected.propagation.insert(child);
        }
        affected
    }

    fn anchor_spec(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<(Vec<hnc_api::MetaKvp>, Vec<hnc_api::MetaKvp>)> {
        let anchor = self.working.node(namespace)?.anchor(name)?;
        Some((anchor.labels.clone(), anchor.annotations.clone()))
    }

    /// Applies `edit` to the node of `name` (created if needed), then re-links its parent, drops it if it
    /// became empty, and reports what must be revisited; `None` when `edit` says nothing changed.
    fn change(&mut self, name: &str, edit: impl FnOnce(&mut NsNode) -> bool) -> Option<Affected> {
        // Until the initial lists are complete everything is revisited at sync; skip the bookkeeping.
        let judging = self.working.synced;
        let before = if judging { Digest::of(&self.working, name) } else { Digest::unknown() };
        let mut node = match self.working.nodes.get(name) {
            Some(node) => (**node).clone(),
            None => NsNode::new(name.into()),
        };
        if !edit(&mut node) {
            return None;
        }
        self.touched();
        let old_parent = node.parent.clone();
        let new_parent = self.working.desired_parent(&node);
        let old_sub_of = before.subnamespace_of.clone();
        self.working.nodes.insert(node.name.clone(), Arc::new(node));
        if old_parent != new_parent {
            self.relink(name, old_parent.as_deref(), new_parent.as_deref());
        }
        self.update_externals(name);
        let after = if judging { Digest::of(&self.working, name) } else { Digest::unknown() };
        self.gc(name);
        if !judging {
            return Some(Affected::default());
        }

        let mut affected = Affected::default();
        affected.hierarchy.insert(name.into());
        for p in [&old_parent, &new_parent].into_iter().flatten() {
            affected.hierarchy.insert(p.clone());
        }
        if before.structure != after.structure {
            affected.hierarchy.extend(self.working.descendants(name));
            affected.propagation.insert(name.into());
        } else if before.labels != after.labels {
            affected.propagation.insert(name.into());
        }
        // Anchors named after this namespace change state when it appears, disappears or changes its
        // subnamespace-of annotation; they are reconciled with the namespace holding them.
        if before.exists != after.exists || old_sub_of != after.subnamespace_of {
            if let Some(holders) = self.working.anchors_by_name.get(name) {
                affected.hierarchy.extend(holders.keys().cloned());
            }
            for p in [old_sub_of, after.subnamespace_of].into_iter().flatten() {
                affected.hierarchy.insert(p.as_str().into());
            }
        }
        Some(affected)
    }

    fn relink(&mut self, name: &str, old: Option<&str>, new: Option<&str>) {
        if let Some(old) = old
            && let Some(parent) = self.working.nodes.get(old)
        {
            let mut parent = (**parent).clone();
            parent.children.remove(name);
            self.working.nodes.insert(parent.name.clone(), Arc::new(parent));
            self.gc(old);
        }
        if let Some(new) = new {
            let mut parent = match self.working.nodes.get(new) {
                Some(parent) => (**parent).clone(),
                None => NsNode::new(new.into()),
            };
            parent.children.add(name.into());
            self.working.nodes.insert(parent.name.clone(), Arc::new(parent));
        }
        let mut node = (**self.working.nodes.get(name).expect("node was just inserted")).clone();
        node.parent = new.map(Into::into);
        self.working.nodes.insert(node.name.clone(), Arc::new(node));
        self.touched();
    }

    fn update_externals(&mut self, name: &str) {
        let external = self.working.external_manager(name).is_some();
        let was = self.working.externals.contains(name);
        if external != was {
            if external {
                self.working.externals.insert(name.into());
            } else {
                self.working.externals.remove(name);
            }
            self.touched();
        }
    }

    fn gc(&mut self, name: &str) {
        if self.working.nodes.get(name).is_some_and(|n| n.is_empty() && n.parent.is_none()) {
            self.working.nodes.remove(name);
            self.touched();
        }
    }
}

/// The facts about one namespace whose change forces its relatives to be revisited.
#[derive(Debug, PartialEq)]
struct Digest {
    exists: bool,
    subnamespace_of: Option<String>,
    /// Changes here alter the namespace's descendants (tree labels, halts, managed labels and annotations).
    structure: Option<Structure>,
    /// The labels selectors see; a change re-plans propagation into this namespace.
    labels: Option<Arc<crate::view::Labels>>,
}

#[derive(Debug, PartialEq)]
struct Structure {
    parent: Option<NsName>,
    exists: bool,
    external: Option<String>,
    halted: bool,
    managed_labels: Vec<(String, String)>,
    managed_annotations: Vec<(String, String)>,
    allow_cascading_deletion: bool,
}

impl Digest {
    fn unknown() -> Digest {
        Digest { exists: false, subnamespace_of: None, structure: None, labels: None }
    }

    fn of(tree: &TreeSnapshot, name: &str) -> Digest {
        let Some(node) = tree.node(name) else {
            return Digest { exists: false, subnamespace_of: None, structure: None, labels: None };
        };
        let structure = Structure {
            parent: node.parent.clone(),
            exists: tree.exists(name),
            external: tree.external_manager(name).map(str::to_owned),
            halted: tree.is_halted(name),
            managed_labels: tree.own_managed_labels(name),
            managed_annotations: tree.own_managed_annotations(name),
            allow_cascading_deletion: node
                .hierarchy
                .as_ref()
                .and_then(|h| h.spec.allow_cascading_deletion)
                .unwrap_or(false),
        };
        Digest {
            exists: structure.exists,
            subnamespace_of: node.namespace.as_ref().and_then(|n| n.subnamespace_of().map(str::to_owned)),
            structure: Some(structure),
            labels: tree.computed_labels(name),
        }
    }
}

impl TreeSnapshot {
    pub(crate) fn memo(&self) -> &super::memo::Memo {
        self.memo.get_or_init(Default::default)
    }

    /// The node of `name`, if the index knows it.
    pub fn node(&self, name: &str) -> Option<&NsNode> {
        self.nodes.get(name).map(|n| &**n)
    }

    /// The managed-namespace policy.
    pub fn policy(&self) -> &NamespacePolicy {
        &self.policy
    }

    /// True once the initial lists are complete; no condition is judged before.
    pub fn is_synced(&self) -> bool {
        self.synced
    }

    /// Which HNC CRDs are being deleted.
    pub fn deleting_crds(&self) -> DeletingCrds {
        self.deleting_crds
    }

    /// Increases with every publication.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Number of namespaces observed (managed or not).
    pub fn namespace_count(&self) -> usize {
        self.nodes.values().filter(|n| n.namespace.is_some()).count()
    }

    /// Every node the index holds.
    pub fn nodes(&self) -> impl Iterator<Item = &NsNode> {
        self.nodes.values().map(|n| &**n)
    }

    /// True when the Namespace `name` has been observed and HNC manages it: it "exists" in the forest.
    pub fn exists(&self, name: &str) -> bool {
        self.node(name).is_some_and(|n| n.namespace.is_some()) && self.policy.is_managed(name)
    }

    /// The external manager of `name` (`hnc.x-k8s.io/managed-by`), if its hierarchy is managed elsewhere.
    pub fn external_manager(&self, name: &str) -> Option<&str> {
        self.node(name)?.namespace.as_deref()?.external_manager()
    }

    /// Namespaces whose hierarchy an external tool manages.
    pub fn externals(&self) -> impl Iterator<Item = &NsName> {
        self.externals.iter()
    }

    /// `Some(parent)` when `name` is a subnamespace: it carries `subnamespace-of`, is internal and is not being
    /// deleted (a terminating subnamespace is treated as a full namespace, spec §5.3).
    pub fn subnamespace_parent(&self, name: &str) -> Option<&str> {
        let ns = self.node(name)?.namespace.as_deref()?;
        if ns.deleting || ns.external_manager().is_some() {
            return None;
        }
        ns.subnamespace_of()
    }

    /// The parent `name` asks for, before any check: none for unmanaged, missing or external namespaces; the
    /// subnamespace-of annotation for subnamespaces; otherwise the HierarchyConfiguration's `spec.parent`.
    fn desired_parent(&self, node: &NsNode) -> Option<NsName> {
        let ns = node.namespace.as_deref()?;
        if !self.policy.is_managed(&node.name) || ns.external_manager().is_some() {
            return None;
        }
        if !ns.deleting
            && let Some(p) = ns.subnamespace_of()
        {
            return Some(p.into());
        }
        node.hierarchy.as_deref().and_then(|h| h.spec.parent_name()).map(Into::into)
    }

    /// The parent link of `name`.
    pub fn parent(&self, name: &str) -> Option<&NsName> {
        self.node(name)?.parent.as_ref()
    }

    /// Direct children of `name`, sorted.
    pub fn children(&self, name: &str) -> Vec<NsName> {
        self.node(name).map(|n| n.children.keys().cloned().collect()).unwrap_or_default()
    }

    /// Upstream's "ancestry": the chain from the top down to `name` itself (`[root, …, parent, name]`). On a
    /// cycle the chain starts with the first repeated namespace, so `name` is in a cycle exactly when the chain
    /// has more than one element and starts with `name`.
    pub fn ancestry(&self, name: &str) -> Vec<NsName> {
        let mut chain: Vec<NsName> = vec![name.into()];
        let mut seen: BTreeSet<&str> = BTreeSet::from([name]);
        let mut current = self.parent(name);
        while let Some(p) = current {
            chain.push(p.clone());
            if !seen.insert(p) {
                break;
            }
            current = self.parent(p);
        }
        chain.reverse();
        chain
    }

    /// The members of the cycle `name` belongs to, rotated so the smallest name comes first and repeated last
    /// (`a <- c <- z <- a` once joined), or `None` when `name` is not in a cycle.
    pub fn cycle(&self, name: &str) -> Option<Vec<NsName>> {
        let ancestry = self.ancestry(name);
        if ancestry.len() == 1 || *ancestry[0] != *name {
            return None;
        }
        let members = &ancestry[1..];
        let start = (0..members.len()).min_by_key(|&i| &members[i]).unwrap_or(0);
        let mut cycle: Vec<NsName> = members[start..].iter().chain(&members[..start]).cloned().collect();
        cycle.push(members[start].clone());
        Some(cycle)
    }

    /// Strict descendants of `name`, each once (cycle-safe), in breadth-first order.
    pub fn descendants(&self, name: &str) -> Vec<NsName> {
        let mut out = Vec::new();
        let mut seen: ahash::AHashSet<NsName> = ahash::AHashSet::new();
        seen.insert(name.into());
        let mut frontier: Vec<NsName> = self.children(name);
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for child in frontier {
                if seen.insert(child.clone()) {
                    if let Some(node) = self.node(&child) {
                        next.extend(node.children.keys().cloned());
                    }
                    out.push(child);
                }
            }
            frontier = next;
        }
        out
    }

    /// The root of `name`'s tree: the top of its parent chain (which may be a namespace that does not exist yet,
    /// so ownership does not move when a missing parent appears); within or below a cycle, the smallest member
    /// of the cycle. Ownership (sharding) is decided per root.
    pub fn root(&self, name: &str) -> NsName {
        if let Some(root) = self.memo().root.get(name) {
            return root.clone();
        }
        let root = self.root_uncached(name);
        self.memo().root.insert(name.into(), root.clone());
        root
    }

    fn root_uncached(&self, name: &str) -> NsName {
        let ancestry = self.ancestry(name);
        let top = &ancestry[0];
        if ancestry.len() > 1 && ancestry[1..].contains(top) {
            // The chain ran into a cycle: every member of it has the same root.
            return self.cycle(top).and_then(|c| c.into_iter().next()).unwrap_or_else(|| top.clone());
        }
        top.clone()
    }

    /// True when making `parent` the parent of `name` would create a cycle; the message is upstream's.
    pub fn cycle_if_parent(&self, name: &str, parent: &str) -> Option<String> {
        if name == parent {
            return Some(format!("{parent:?} cannot be set as its own parent"));
        }
        let ancestry = self.ancestry(parent);
        let mut path = Vec::new();
        for anc in ancestry.iter().rev() {
            path.push(anc.to_string());
            if **anc == *name {
                return Some(format!(
                    "cycle when making {parent:?} the parent of {name:?}: current ancestry is {}",
                    path.join(" -> ")
                ));
            }
        }
        None
    }

    /// Upstream's `AllowsCascadingDeletion`: `name`'s own flag, or (not in a cycle) its parent's, recursively.
    pub fn allows_cascading_deletion(&self, name: &str) -> bool {
        let mut current: NsName = name.into();
        let mut seen = BTreeSet::new();
        loop {
            if !seen.insert(current.clone()) {
                return false;
            }
            let Some(node) = self.node(&current) else { return false };
            if node.hierarchy.as_ref().and_then(|h| h.spec.allow_cascading_deletion).unwrap_or(false) {
                return true;
            }
            if self.cycle(&current).is_some() {
                return false;
            }
            match &node.parent {
                Some(p) => current = p.clone(),
                None => return false,
            }
        }
    }

    /// Namespaces holding an anchor named `name`.
    pub fn anchor_holders(&self, name: &str) -> Vec<NsName> {
        self.anchors_by_name.get(name).map(|s| s.keys().cloned().collect()).unwrap_or_default()
    }

    /// True when `name` is a subnamespace whose anchor exists in its parent.
    pub fn has_parent_anchor(&self, name: &str) -> bool {
        self.subnamespace_parent(name)
            .and_then(|p| self.node(p))
            .is_some_and(|p| p.anchors.contains_key(name))
    }
}
