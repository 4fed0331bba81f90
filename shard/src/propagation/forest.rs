//! `ForestCache`: what this replica knows of propagated objects, per type — sources in full (cleaned,
//! canonical, policy parsed, shared by `Arc`) and copies as fingerprints only.
//!
//! Concurrency: one task owns the `ForestCache` and applies watch events to a private working state;
//! `publish` makes that state visible as an immutable [`ForestCacheSnapshot`] through an `ArcSwap`, the same
//! pattern as the tree index. A planner holding a snapshot never blocks ingestion and is never blocked by it;
//! publishing is O(number of types), because every map is persistent (imbl) and shares structure with the
//! previous one.
//!
//! Layout, chosen for memory: per type, a persistent hash map namespace → `Arc<NsObjects>`, where `NsObjects`
//! holds that namespace's sources and copy fingerprints in two small sorted vectors. Updating one object
//! copies only that namespace's vectors (once per publish; later updates in the same window mutate in place).
//! A second persistent map name → namespaces answers "where does this name exist". Names and namespace names
//! are interned, so a name present in 10,000 namespaces is stored once. Memory grows only with what is
//! ingested; `retain_namespaces` evicts trees this replica no longer owns.

use std::collections::BTreeMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use serde_json::Value;

use super::batch::{CopyOp, PlannedWrite};
use super::dirty::Dirty;
use super::object::{
    ContentHash, ObjName, ObjectError, ObjectMeta, PropagationRules, ResourceVersion, SourceEntry, TypeKey,
    canonical, content_hash, role_ref_hash,
};
use crate::NsName;

type PersistentMap<K, V> = imbl::GenericHashMap<K, V, ahash::RandomState, imbl::shared_ptr::DefaultSharedPtr>;

/// A copy as the cache remembers it: enough to decide whether it is up to date, and to update or delete it.
/// Its namespace is the key of the [`NsObjects`] holding it, so it is not repeated here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CopyFingerprint {
    pub name: ObjName,
    /// Value of the `hnc.x-k8s.io/inherited-from` label.
    pub inherited_from: NsName,
    /// Hash of the copy's canonical form; equal to the source entry's hash when the copy is up to date.
    pub content_hash: ContentHash,
    /// Hash of `roleRef` for RoleBindings, 0 otherwise.
    pub role_ref_hash: u64,
    pub resource_version: ResourceVersion,
    /// The copy has a deletionTimestamp: the planner leaves it alone until it is gone.
    pub terminating: bool,
    /// Recorded by [`ForestCache::record_written`] and not yet confirmed by a watch event.
    pub optimistic: bool,
}

impl CopyFingerprint {
    fn same_state(&self, other: &CopyFingerprint) -> bool {
        self.inherited_from == other.inherited_from
            && self.content_hash == other.content_hash
            && self.role_ref_hash == other.role_ref_hash
            && self.terminating == other.terminating
    }
}

/// The objects of one type in one namespace, sorted by name.
#[derive(Clone, Debug)]
pub struct NsObjects {
    namespace: NsName,
    sources: Vec<Arc<SourceEntry>>,
    copies: Vec<CopyFingerprint>,
}

impl NsObjects {
    fn new(namespace: NsName) -> Self {
        NsObjects { namespace, sources: Vec::new(), copies: Vec::new() }
    }

    pub fn namespace(&self) -> &NsName {
        &self.namespace
    }

    /// Sources, sorted by name.
    pub fn sources(&self) -> &[Arc<SourceEntry>] {
        &self.sources
    }

    /// Copy fingerprints, sorted by name.
    pub fn copies(&self) -> &[CopyFingerprint] {
        &self.copies
    }

    pub fn source(&self, name: &str) -> Option<&Arc<SourceEntry>> {
        self.source_index(name).ok().map(|i| &self.sources[i])
    }

    pub fn copy(&self, name: &str) -> Option<&CopyFingerprint> {
        self.copy_index(name).ok().map(|i| &self.copies[i])
    }

    /// Every name held here (sources and copies), sorted and unique.
    pub fn names(&self) -> impl Iterator<Item = &ObjName> {
        let mut s = self.sources.iter().map(|e| &e.name).peekable();
        let mut c = self.copies.iter().map(|f| &f.name).peekable();
        std::iter::from_fn(move || match (s.peek(), c.peek()) {
            (Some(a), Some(b)) if a <= b => s.next(),
            (Some(_), Some(_)) => c.next(),
            (Some(_), None) => s.next(),
            (None, _) => c.next(),
        })
    }

    fn is_empty(&self) -> bool {
        self.sources.is_empty() && self.copies.is_empty()
    }

    fn source_index(&self, name: &str) -> Result<usize, usize> {
        self.sources.binary_search_by(|e| (*e.name).cmp(name))
    }

    fn copy_index(&self, name: &str) -> Result<usize, usize> {
        self.copies.binary_search_by(|f| (*f.name).cmp(name))
    }

    fn remove_source(&mut self, name: &str) -> Option<Arc<SourceEntry>> {
        self.source_index(name).ok().map(|i| self.sources.remove(i))
    }

    fn remove_copy(&mut self, name: &str) -> Option<CopyFingerprint> {
        self.copy_index(name).ok().map(|i| self.copies.remove(i))
    }
}

/// Sorted namespace names: a vector while small, a persistent set once large (a name copied into 10,000
/// namespaces must not cost a 10,000-element copy per update).
#[derive(Clone, Debug)]
enum NsSet {
    Small(Vec<NsName>),
    Large(imbl::OrdSet<NsName>),
}

const NS_SET_SMALL_MAX: usize = 64;

impl Default for NsSet {
    fn default() -> Self {
        NsSet::Small(Vec::new())
    }
}

impl NsSet {
    fn insert(&mut self, ns: NsName) {
        match self {
            NsSet::Small(v) => {
                if let Err(i) = v.binary_search(&ns) {
                    v.insert(i, ns);
                    if v.len() > NS_SET_SMALL_MAX {
                        *self = NsSet::Large(v.drain(..).collect());
                    }
                }
            }
            NsSet::Large(s) => {
                s.insert(ns);
            }
        }
    }

    fn remove(&mut self, ns: &str) {
        match self {
            NsSet::Small(v) => {
                if let Ok(i) = v.binary_search_by(|x| (**x).cmp(ns)) {
                    v.remove(i);
                }
            }
            NsSet::Large(s) => {
                s.remove(ns);
                if s.len() <= NS_SET_SMALL_MAX / 2 {
                    *self = NsSet::Small(s.iter().cloned().collect());
                }
            }
        }
    }

    fn is_empty(&self) -> bool {
        match self {
            NsSet::Small(v) => v.is_empty(),
            NsSet::Large(s) => s.is_empty(),
        }
    }

    fn iter(&self) -> NsSetIter<'_> {
        match self {
            NsSet::Small(v) => NsSetIter::Small(v.iter()),
            NsSet::Large(s) => NsSetIter::Large(s.iter()),
        }
    }
}

/// Namespaces holding a name, in sorted order.
pub enum NsSetIter<'a> {
    Small(std::slice::Iter<'a, NsName>),
    Large(imbl::ordset::Iter<'a, NsName, imbl::shared_ptr::DefaultSharedPtr>),
    Empty,
}

impl<'a> Iterator for NsSetIter<'a> {
    type Item = &'a NsName;

    fn next(&mut self) -> Option<&'a NsName> {
        match self {
            NsSetIter::Small(i) => i.next(),
            NsSetIter::Large(i) => i.next(),
            NsSetIter::Empty => None,
        }
    }
}

#[derive(Clone, Debug, Default)]
struct NameHolders {
    sources: NsSet,
    copies: NsSet,
}

/// Number of sources and copies of one type (HNCConfiguration `numSourceObjects` / `numPropagatedObjects`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TypeStats {
    pub sources: usize,
    pub copies: usize,
}

/// Everything the cache holds for one type.
#[derive(Clone, Debug, Default)]
pub struct TypeForest {
    by_ns: PersistentMap<NsName, Arc<NsObjects>>,
    by_name: PersistentMap<ObjName, Arc<NameHolders>>,
    stats: TypeStats,
}

impl TypeForest {
    /// The objects of this type in `ns`.
    pub fn namespace(&self, ns: &str) -> Option<&NsObjects> {
        self.by_ns.get(ns).map(|o| &**o)
    }

    /// Every namespace holding objects of this type, in no particular order.
    pub fn namespaces(&self) -> impl Iterator<Item = &NsObjects> {
        self.by_ns.values().map(|o| &**o)
    }

    /// Namespaces holding a source called `name`, sorted.
    pub fn source_namespaces(&self, name: &str) -> NsSetIter<'_> {
        self.by_name.get(name).map_or(NsSetIter::Empty, |h| h.sources.iter())
    }

    /// Namespaces holding a copy called `name`, sorted.
    pub fn copy_namespaces(&self, name: &str) -> NsSetIter<'_> {
        self.by_name.get(name).map_or(NsSetIter::Empty, |h| h.copies.iter())
    }

    pub fn stats(&self) -> TypeStats {
        self.stats
    }

    fn intern_ns(&self, ns: &str) -> NsName {
        self.by_ns.get_key_value(ns).map_or_else(|| Arc::from(ns), |(k, _)| k.clone())
    }

    fn intern_name(&self, name: &str) -> ObjName {
        self.by_name.get_key_value(name).map_or_else(|| Arc::from(name), |(k, _)| k.clone())
    }

    fn ns_mut(&mut self, ns: &NsName) -> &mut NsObjects {
        let slot = self.by_ns.entry(ns.clone()).or_insert_with(|| Arc::new(NsObjects::new(ns.clone())));
        Arc::make_mut(slot)
    }

    fn holders_mut(&mut self, name: &ObjName) -> &mut NameHolders {
        Arc::make_mut(self.by_name.entry(name.clone()).or_default())
    }

    fn drop_if_empty(&mut self, ns: &str, name: &str) {
        if self.by_ns.get(ns).is_some_and(|o| o.is_empty()) {
            self.by_ns.remove(ns);
        }
        if self.by_name.get(name).is_some_and(|h| h.sources.is_empty() && h.copies.is_empty()) {
            self.by_name.remove(name);
        }
    }

    /// Stores a source, replacing a same-named source or copy. True when propagation may change.
    fn put_source(&mut self, entry: Arc<SourceEntry>) -> bool {
        let (ns, name) = (entry.namespace.clone(), entry.name.clone());
        let objs = self.ns_mut(&ns);
        let had_copy = objs.remove_copy(&name).is_some();
        let previous = match objs.source_index(&name) {
            Ok(i) => Some(std::mem::replace(&mut objs.sources[i], entry.clone())),
            Err(i) => {
                objs.sources.reserve_exact(1);
                objs.sources.insert(i, entry.clone());
                None
            }
        };
        if had_copy {
            self.stats.copies -= 1;
            self.holders_mut(&name).copies.remove(&ns);
        }
        if previous.is_none() {
            self.stats.sources += 1;
            self.holders_mut(&name).sources.insert(ns);
        }
        had_copy || previous.is_none_or(|p| !p.same_propagation(&entry))
    }

    /// Stores a copy fingerprint in `ns`, replacing a same-named source or copy. With `from_watch`, an event
    /// older than an optimistically recorded write is ignored. True when propagation may change.
    fn put_copy(&mut self, ns: &NsName, fingerprint: CopyFingerprint, from_watch: bool) -> bool {
        let name = fingerprint.name.clone();
        let objs = self.ns_mut(ns);
        let had_source = objs.remove_source(&name).is_some();
        let (changed, added) = match objs.copy_index(&name) {
            Ok(i) => {
                let existing = &mut objs.copies[i];
                if from_watch
                    && existing.optimistic
                    && fingerprint.resource_version.is_older_than(&existing.resource_version)
                {
                    return had_source;
                }
                let changed = !existing.same_state(&fingerprint);
                *existing = fingerprint;
                (changed, false)
            }
            Err(i) => {
                // Exact growth: a copy bucket is cloned once per publish anyway, and slack would cost up to
                // half the bucket for every namespace.
                objs.copies.reserve_exact(1);
                objs.copies.insert(i, fingerprint);
                (true, true)
            }
        };
        if had_source {
            self.stats.sources -= 1;
            self.holders_mut(&name).sources.remove(ns);
        }
        if added {
            self.stats.copies += 1;
            self.holders_mut(&name).copies.insert(ns.clone());
        }
        changed || had_source
    }

    /// Removes whatever is stored as `ns/name`. True when something was there.
    fn remove(&mut self, ns: &str, name: &str) -> bool {
        let Some(slot) = self.by_ns.get_mut(ns) else {
            return false;
        };
        let objs = Arc::make_mut(slot);
        let removed_source = objs.remove_source(name).is_some();
        let removed_copy = objs.remove_copy(name).is_some();
        if let Some(slot) = self.by_name.get_mut(name) {
            let holders = Arc::make_mut(slot);
            if removed_source {
                holders.sources.remove(ns);
            }
            if removed_copy {
                holders.copies.remove(ns);
            }
        }
        self.stats.sources -= usize::from(removed_source);
        self.stats.copies -= usize::from(removed_copy);
        self.drop_if_empty(ns, name);
        removed_source || removed_copy
    }

    fn evict_namespace(&mut self, ns: &str) {
        let Some(objs) = self.by_ns.remove(ns) else {
            return;
        };
        for entry in &objs.sources {
            if let Some(slot) = self.by_name.get_mut(&*entry.name) {
                Arc::make_mut(slot).sources.remove(ns);
            }
            self.drop_if_empty(ns, &entry.name);
        }
        for copy in &objs.copies {
            if let Some(slot) = self.by_name.get_mut(&*copy.name) {
                Arc::make_mut(slot).copies.remove(ns);
            }
            self.drop_if_empty(ns, &copy.name);
        }
        self.stats.sources -= objs.sources.len();
        self.stats.copies -= objs.copies.len();
    }
}

/// An immutable view of the cache, cheap to clone and safe to read from any thread.
#[derive(Clone, Debug, Default)]
pub struct ForestCacheSnapshot {
    types: BTreeMap<TypeKey, TypeForest>,
}

impl ForestCacheSnapshot {
    /// Types with anything cached, sorted.
    pub fn types(&self) -> impl Iterator<Item = &TypeKey> {
        self.types.keys()
    }

    pub fn forest(&self, ty: &TypeKey) -> Option<&TypeForest> {
        self.types.get(ty)
    }

    pub fn source(&self, ty: &TypeKey, ns: &str, name: &str) -> Option<&Arc<SourceEntry>> {
        self.forest(ty)?.namespace(ns)?.source(name)
    }

    pub fn copy(&self, ty: &TypeKey, ns: &str, name: &str) -> Option<&CopyFingerprint> {
        self.forest(ty)?.namespace(ns)?.copy(name)
    }

    /// Source and copy counts of one type (zero for unknown types).
    pub fn stats(&self, ty: &TypeKey) -> TypeStats {
        self.forest(ty).map(TypeForest::stats).unwrap_or_default()
    }
}

/// A handle other threads use to read the latest published snapshot.
#[derive(Clone)]
pub struct ForestCacheReader(Arc<ArcSwap<ForestCacheSnapshot>>);

impl ForestCacheReader {
    pub fn load(&self) -> Arc<ForestCacheSnapshot> {
        self.0.load_full()
    }
}

/// The single-writer cache. See the module documentation.
pub struct ForestCache {
    rules: PropagationRules,
    state: ForestCacheSnapshot,
    published: Arc<ArcSwap<ForestCacheSnapshot>>,
}

impl ForestCache {
    pub fn new(rules: PropagationRules) -> Self {
        ForestCache {
            rules,
            state: ForestCacheSnapshot::default(),
            published: Arc::new(ArcSwap::from_pointee(ForestCacheSnapshot::default())),
        }
    }

    pub fn rules(&self) -> &PropagationRules {
        &self.rules
    }

    /// Ingests an added or modified object of type `ty` from a watch (or list). An object carrying
    /// `hnc.x-k8s.io/inherited-from`, with any value, is a copy; anything else is a source. Returns the entry
    /// to add to the dirty set when the change can affect propagation (`None` for, e.g., a resourceVersion
    /// bump).
    pub fn apply(&mut self, ty: &TypeKey, object: &Value) -> Result<Option<Dirty>, ObjectError> {
        let meta = ObjectMeta::read(object)?;
        let forest = self.state.types.entry(ty.clone()).or_default();
        let ns = forest.intern_ns(meta.namespace);
        let name = forest.intern_name(meta.name);
        let changed = match meta.inherited_from {
            Some(from) => {
                let canonical = canonical(object);
                let fingerprint = CopyFingerprint {
                    name: name.clone(),
                    inherited_from: forest.intern_ns(from),
                    content_hash: content_hash(&canonical),
                    role_ref_hash: if ty.is_role_binding() { role_ref_hash(&canonical) } else { 0 },
                    resource_version: ResourceVersion::parse(meta.resource_version),
                    terminating: meta.terminating,
                    optimistic: false,
                };
                forest.put_copy(&ns, fingerprint, true)
            }
            None => {
                let mut entry = SourceEntry::new(ty, object, &self.rules)?;
                entry.namespace = ns.clone();
                entry.name = name.clone();
                forest.put_source(Arc::new(entry))
            }
        };
        Ok(changed.then(|| Dirty::Name { ty: ty.clone(), name, namespace: ns }))
    }

    /// Ingests a deletion. Returns the dirty entry when something was cached under that name.
    pub fn delete(&mut self, ty: &TypeKey, ns: &str, name: &str) -> Option<Dirty> {
        let forest = self.state.types.get_mut(ty)?;
        let (ns_arc, name_arc) = (forest.intern_ns(ns), forest.intern_name(name));
        let removed = forest.remove(ns, name);
        if forest.by_ns.is_empty() {
            self.state.types.remove(ty);
        }
        removed.then(|| Dirty::Name { ty: ty.clone(), name: name_arc, namespace: ns_arc })
    }

    /// Records a write the controller has just performed successfully, before its watch echo arrives, so that
    /// a plan in between does not repeat it. `resource_version` is the one the API server returned (ignored
    /// for deletes). A later watch event older than it is ignored.
    pub fn record_written(&mut self, write: &PlannedWrite, resource_version: &str) {
        let forest = self.state.types.entry(write.ty.clone()).or_default();
        match &write.op {
            CopyOp::Create { source } | CopyOp::Update { source, .. } | CopyOp::Recreate { source, .. } => {
                let fingerprint = CopyFingerprint {
                    name: write.name.clone(),
                    inherited_from: source.namespace.clone(),
                    content_hash: source.content_hash,
                    role_ref_hash: source.role_ref_hash,
                    resource_version: ResourceVersion::parse(resource_version),
                    terminating: false,
                    optimistic: true,
                };
                forest.put_copy(&write.namespace, fingerprint, false);
            }
            CopyOp::Delete { .. } => {
                forest.remove(&write.namespace, &write.name);
                if forest.by_ns.is_empty() {
                    self.state.types.remove(&write.ty);
                }
            }
        }
    }

    /// Forgets a type (its mode became `Ignore`, or it left the configuration).
    pub fn remove_type(&mut self, ty: &TypeKey) {
        self.state.types.remove(ty);
    }

    /// Keeps only namespaces for which `keep` is true (eviction when this replica stops owning trees).
    pub fn retain_namespaces(&mut self, mut keep: impl FnMut(&str) -> bool) {
        for forest in self.state.types.values_mut() {
            let evicted: Vec<NsName> = forest.by_ns.keys().filter(|ns| !keep(ns)).cloned().collect();
            for ns in evicted {
                forest.evict_namespace(&ns);
            }
        }
        self.state.types.retain(|_, f| !f.by_ns.is_empty());
    }

    /// The working state, including changes not yet published (for the owning task).
    pub fn current(&self) -> &ForestCacheSnapshot {
        &self.state
    }

    /// Makes the working state visible to readers and returns it.
    pub fn publish(&self) -> Arc<ForestCacheSnapshot> {
        let snapshot = Arc::new(self.state.clone());
        self.published.store(snapshot.clone());
        snapshot
    }

    /// A handle for readers on other threads; it sees what was last published.
    pub fn reader(&self) -> ForestCacheReader {
        ForestCacheReader(self.published.clone())
    }
}
