//! The propagation engine: the one task that owns this replica's [`ForestCache`].
//!
//! ```text
//!  per-type watches ──ObjectEvent──▶ ForestCache::apply/delete ──Dirty──┐
//!  hierarchy reconciler ──PropagationDirty (subtrees, all)──────────────┤
//!  HNCConfiguration ──active types──▶ start/stop watches, modes ──Type──┤
//!                                                                       ▼
//!                    plan(tree snapshot, cache snapshot, modes, dirty) on the rayon pool
//!                                                                       │ WriteBatch
//!                                   Writer ◀── materialized copies ◀────┘
//!                                      └── own outcomes ──▶ record_written (or re-plan via the RetryQueue)
//! ```
//!
//! Planning waits until the hierarchy is synced and every watched type has delivered its initial list, so a
//! restart never plans from a partial picture. A write submitted and not yet echoed is remembered: a re-plan
//! in that window does not write it again.
//!
//! The cache holds only the trees this replica owns or is assigned (its Lease about to be taken), so its memory
//! follows ownership; writes wait for the Lease. The watches start once this replica knows its trees (the
//! hierarchy synced, an assignment counted it), so even their first list keeps only those trees whole. Objects
//! of other trees are reduced by the watch task, before they are queued, to their key and (for a source) the
//! policy the cluster-wide source index keeps for admission; their namespaces are remembered as *unloaded*. Watched objects
//! are read without `managedFields` ([`WatchedObject`]), and the watches keep no set of every object's key: a
//! relist's deletions are found from what the engine holds ([`ObjectChange::Relisting`]). When unloaded namespaces become
//! owned (shards gained, or a subtree re-parented into an owned tree) they are *loaded* with lists while the
//! watches keep running: namespace by namespace when they are a small share of the cluster, one cluster-wide
//! paged list per type otherwise. Until a load completes, no write is planned into its namespaces or below
//! them — a copy is never judged from half of its tree. A listed object is ignored when the watch already delivered a newer
//! version or showed it deleted. Trees this replica no longer owns are evicted.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hnc_api::SyncMode;
use hnc_api::keys::labels;
use hnc_shard::propagation::{
    CopyOp, Dirty, DirtySet, ForestCache, ForestCacheReader, PlannedWrite, ResourceVersion, SourceNames,
    SourceNamesReader, TypeKey, TypeModes, plan,
};
use hnc_shard::{HierarchyView, NsName, TreeReader, TreeSnapshot};
use kube::Client;
use kube::core::ApiResource;
use kube::runtime::watcher::Event;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::events::EventRecorder;
use super::foreign;
use super::watched::WatchedObject;
use crate::config::reconciler::ActiveTypes;
use crate::hierarchy::reconciler::PropagationDirty;
use crate::ownership::Ownership;
use crate::watch::{EVENT_BUFFER, ObjectKey, RESYNC_PERIOD, key_of};
use crate::writer::{
    Body, Completed, LatencyGroup, ObjectRef, Outcome, PendingWrites, RetryQueue, WriteOp, WriteRequest,
    Writer, outcome_channel, retry_delay,
};

/// Loads of at most this many namespaces list them one by one, and are planned namespace by namespace when they
/// complete; larger ones are planned as a whole.
const NAMESPACE_LISTS_UP_TO: usize = 64;

/// Larger loads also list namespace by namespace while they cover at most 1/`NAMESPACE_LISTS_SHARE` of the
/// managed namespaces — a failover or a scale-out hands a replica a fraction of the trees, and listing only
/// those costs what they hold instead of what the whole cluster holds; beyond that, one cluster-wide paged list
/// per type. Measured on apisim only (docs/perf.md, §Faults under churn).
const NAMESPACE_LISTS_SHARE: usize = 4;

/// Lists of one load in flight at once.
const LOAD_CONCURRENCY: usize = 16;

/// Objects per page when loading.
const LOAD_PAGE: u32 = 500;

/// The most watch events ingested before a plan: how long the engine may go without acting on what it has
/// ingested. A limit of its own, tuned to the engine, like the hierarchy reconciler's
/// [`MAX_EVENTS_PER_FLUSH`](crate::hierarchy::reconciler::MAX_EVENTS_PER_FLUSH).
const MAX_EVENTS_PER_PLAN: usize = 4096;
/// The default of the most writes submitted and not yet finished (`--max-writes-in-flight`). A plan that would
/// submit more defers the rest as the names to plan again (a few dozen bytes each, against a kilobyte or more
/// for a queued write and its bookkeeping), and they are planned again, oldest first, once half of these have
/// finished: a cold start of a replica owning a million copies then holds two thousand writes at a time, not a
/// million. At a write rate of a few hundred to a few thousand per second, one to a few seconds of work — far
/// more than the writer's concurrency limit keeps at the API server. 2,000 rather than 10,000: at 20,000
/// namespaces a replica's peak memory is 4–15 % lower with it, convergence no slower (docs/perf.md §Cost per
/// replica at 20,000 and 100,000 namespaces).
pub const MAX_WRITES_IN_FLIGHT: usize = 2_000;
/// How often a propagated type's watch looks whether this replica knows its trees yet, before its first list.
const WAIT_FOR_TREES_POLL: Duration = Duration::from_millis(50);

/// A change to an object of a propagated type.
#[derive(Debug)]
pub struct ObjectEvent {
    /// The object's type.
    pub ty: TypeKey,
    /// What happened.
    pub change: ObjectChange,
    /// From the load with this id (a list) rather than the watch: ignored if the watch already showed
    /// something newer. A load's `Synced` marks it complete.
    pub load: Option<u64>,
}

/// What a watch or a load shows of one object, or of the whole type.
#[derive(Debug)]
pub enum ObjectChange {
    /// The object exists, as shown.
    Apply(WatchedObject),
    /// The object exists in a tree another replica owns. The watch reduced it to what the cluster-wide source
    /// index needs (its policy when it is a source, `None` when it is a copy) before queueing it, so that the
    /// queue and the engine's work for other replicas' trees stay small.
    Elsewhere {
        /// `(namespace, name)`.
        key: ObjectKey,
        /// The source's metadata and `type` (what its policy is made of); `None` for a copy.
        policy: Option<serde_json::Value>,
    },
    /// The object `(namespace, name)` was deleted.
    Delete(ObjectKey),
    /// The watch is listing: every object that exists is applied before the next `Synced`, and what the engine
    /// holds that the list did not show was deleted while the watch was down. The engine finds those itself,
    /// from what it holds, rather than have the watch keep the key of every object of the type (most of the
    /// cluster's objects, while the engine holds those of its own trees).
    Relisting,
    /// Every object that existed when the list was taken has been applied (a watch's list, or a load).
    Synced,
}

/// A relist of one type in progress.
struct Relist {
    /// Loads with this id or a later one started after the relist did.
    loads_from: u64,
    /// The objects the engine holds that the list (or such a load) has shown so far, as 64-bit hashes of
    /// `(namespace, name)`: a warm restart's first list shows every source of the cluster and every copy of the
    /// owned trees (hundreds of thousands of keys at 100,000 namespaces), and a hash is an eighth of what a
    /// key and its name's allocation take. Two keys share a hash with a chance of about one in 2⁶⁴ / held
    /// objects per object deleted while the watch was down; such an object would be forgotten at the next
    /// relist or when its deletion's event arrives, not never.
    seen: HashSet<u64>,
    /// The hasher of `seen`'s keys, seeded anew for every relist.
    keys: std::hash::RandomState,
}

impl Relist {
    fn new(loads_from: u64) -> Self {
        Relist { loads_from, seen: HashSet::new(), keys: std::hash::RandomState::new() }
    }

    fn key(&self, ns: &str, name: &str) -> u64 {
        use std::hash::BuildHasher as _;
        self.keys.hash_one((ns, name))
    }

    fn see(&mut self, ns: &str, name: &str) {
        let key = self.key(ns, name);
        self.seen.insert(key);
    }

    fn has_seen(&self, ns: &str, name: &str) -> bool {
        self.seen.contains(&self.key(ns, name))
    }
}

struct TypeWatch {
    resource: Arc<ApiResource>,
    mode: SyncMode,
    synced: bool,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

/// The engine. Build with [`PropagationEngine::new`], then [`PropagationEngine::run`].
pub struct PropagationEngine {
    client: Client,
    cache: ForestCache,
    /// Every source in the cluster, owned tree or not, by name: what admission needs on any replica.
    sources: SourceNames,
    dirty: DirtySet,
    dirty_since: Option<Instant>,
    watches: HashMap<TypeKey, TypeWatch>,
    tree: TreeReader,
    writer: Writer,
    ownership: Ownership,
    /// Writes submitted and not yet finished, by object (the newest plan's write): settled by their outcome,
    /// which also records a written copy in the cache.
    in_flight: PendingWrites<PlannedWrite>,
    outcomes: Option<mpsc::Receiver<Completed>>,
    events: EventRecorder,
    object_tx: mpsc::Sender<ObjectEvent>,
    object_rx: Option<mpsc::Receiver<ObjectEvent>>,
    /// Objects to plan again after a write that did not land.
    retries: RetryQueue<Dirty>,
    /// The most writes in flight (see [`MAX_WRITES_IN_FLIGHT`]).
    max_in_flight: usize,
    /// Planned writes left unsubmitted while `max_in_flight` were in flight, as names to plan again, and since
    /// when the oldest of them has waited.
    deferred: VecDeque<Dirty>,
    deferred_since: Option<Instant>,
    /// Namespaces whose objects were dropped or evicted because another replica owns their tree.
    unloaded: HashSet<NsName>,
    /// Loads in progress, by id: the namespaces each lists. Writes into them and below them wait.
    loads: HashMap<u64, HashSet<NsName>>,
    /// When each load started, for its log line and `hnc_namespace_load_duration_seconds`.
    load_started: HashMap<u64, Instant>,
    next_load: u64,
    /// Objects the watch showed deleted while a load was in progress: a listed copy of one is older.
    tombstones: HashSet<(TypeKey, NsName, String)>,
    /// Types whose watch is listing, with the objects the engine holds that the list has shown so far.
    relisting: HashMap<TypeKey, Relist>,
    /// True once every watched type has listed and the first plan ran: the cache's counts are complete.
    counted: Arc<AtomicBool>,
    /// Turns true once, when every type's first list has reached the source index: admission's conflict checks
    /// are complete from then on.
    sources_synced: watch::Sender<bool>,
}

impl PropagationEngine {
    /// An engine writing through `writer` (the outcomes of its copies come back to this engine; its Events are
    /// not followed) for the trees `ownership` grants.
    pub fn new(
        client: Client,
        cache: ForestCache,
        tree: TreeReader,
        writer: Writer,
        ownership: Ownership,
    ) -> Self {
        let (object_tx, object_rx) = mpsc::channel(EVENT_BUFFER);
        let (outcomes_tx, outcomes) = outcome_channel();
        PropagationEngine {
            client,
            sources: SourceNames::new(cache.rules().clone()),
            cache,
            dirty: DirtySet::new(),
            dirty_since: None,
            watches: HashMap::new(),
            tree,
            events: EventRecorder::new(writer.unreported()),
            writer: writer.reporting_to(outcomes_tx),
            ownership,
            in_flight: PendingWrites::new(),
            outcomes: Some(outcomes),
            object_tx,
            object_rx: Some(object_rx),
            retries: RetryQueue::new(),
            max_in_flight: MAX_WRITES_IN_FLIGHT,
            deferred: VecDeque::new(),
            deferred_since: None,
            unloaded: HashSet::new(),
            loads: HashMap::new(),
            load_started: HashMap::new(),
            next_load: 0,
            tombstones: HashSet::new(),
            relisting: HashMap::new(),
            counted: Arc::new(AtomicBool::new(false)),
            sources_synced: watch::channel(false).0,
        }
    }

    /// At most `max` writes submitted and not yet finished (`--max-writes-in-flight`); at least one.
    pub fn with_max_writes_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max.max(1);
        self
    }

    /// Readers of the published cache (statistics, shard weights).
    pub fn cache_reader(&self) -> ForestCacheReader {
        self.cache.reader()
    }

    /// True once the cache's per-type counts are complete (every type listed, first plan done); until then
    /// the HNCConfiguration status keeps the counts it already shows rather than publish partial ones.
    pub fn counts_known(&self) -> Arc<AtomicBool> {
        self.counted.clone()
    }

    /// Turns true once every propagated type has been listed into the source index (the readiness gate of
    /// admission's conflict checks; types added later do not close it again).
    pub fn sources_synced(&self) -> watch::Receiver<bool> {
        self.sources_synced.subscribe()
    }

    /// Readers of the cluster-wide source index (admission's conflict checks).
    pub fn source_names_reader(&self) -> SourceNamesReader {
        self.sources.reader()
    }

    /// Runs until `stop`, following the hierarchy reconciler's `hierarchy` changes. `ownership_changed` fires
    /// when this replica gains or loses shards.
    pub async fn run(
        mut self,
        mut hierarchy: mpsc::UnboundedReceiver<PropagationDirty>,
        mut active: watch::Receiver<ActiveTypes>,
        mut ownership_changed: watch::Receiver<u64>,
        stop: CancellationToken,
    ) {
        let mut objects = self.object_rx.take().expect("run is called once");
        let mut outcomes = self.outcomes.take().expect("run is called once");
        let mut was_synced = false;
        // At 0 from the start, so that a rate over them is 0 rather than absent until the first deferral or list.
        metrics::counter!("hnc_propagation_deferred_writes_total").increment(0);
        metrics::counter!("hnc_namespace_lists_total").increment(0);
        metrics::gauge!("hnc_propagation_deferred_writes").set(0.0);
        let mut resync = tokio::time::interval(RESYNC_PERIOD);
        resync.tick().await;
        self.configure(&active.borrow_and_update().clone());
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                Ok(()) = active.changed() => {
                    let types = active.borrow_and_update().clone();
                    self.configure(&types);
                }
                Some(dirty) = hierarchy.recv() => {
                    self.hierarchy_changed(dirty);
                    while let Ok(dirty) = hierarchy.try_recv() {
                        self.hierarchy_changed(dirty);
                    }
                }
                Some(done) = outcomes.recv() => {
                    self.completed(done);
                    while let Ok(done) = outcomes.try_recv() {
                        self.completed(done);
                    }
                }
                Some(event) = objects.recv() => {
                    self.ingest(event);
                    for _ in 1..MAX_EVENTS_PER_PLAN {
                        match objects.try_recv() {
                            Ok(event) => self.ingest(event),
                            Err(_) => break,
                        }
                    }
                }
                dirty = self.retries.next() => self.mark(dirty),
                Ok(()) = ownership_changed.changed() => {
                    self.follow_ownership(None);
                    // Trees whose Lease was just taken may be cached already (kept while assigned): plan them.
                    self.mark(Dirty::All);
                }
                _ = resync.tick() => self.mark(Dirty::All),
            }
            if !was_synced && self.tree.load().is_synced() {
                // Objects arriving before the hierarchy was complete were kept whatever their tree.
                was_synced = true;
                self.follow_ownership(None);
            }
            // Readers (status counts, webhooks) see what the watches and writes have shown so far.
            self.cache.publish();
            self.sources.publish();
            self.plan_if_ready().await;
        }
        for (_, w) in self.watches.drain() {
            w.stop.cancel();
            w.task.abort();
        }
    }

    fn mark(&mut self, dirty: Dirty) {
        self.dirty_since.get_or_insert_with(Instant::now);
        self.dirty.insert(dirty);
    }

    /// Follows the HNCConfiguration: watches every type not in `Ignore`, forgets the others.
    fn configure(&mut self, types: &ActiveTypes) {
        let mut wanted: HashMap<TypeKey, (Arc<ApiResource>, SyncMode)> = HashMap::new();
        for t in types.iter().filter(|t| t.mode != SyncMode::Ignore) {
            let r = &t.resource;
            let resource = ApiResource::from_gvk_with_plural(
                &kube::core::GroupVersionKind::gvk(&r.group, &r.version, &r.kind),
                &r.plural,
            );
            wanted.insert(TypeKey::new(&r.group, &r.kind), (Arc::new(resource), t.mode));
        }
        let gone: Vec<TypeKey> =
            self.watches.keys().filter(|ty| !wanted.contains_key(*ty)).cloned().collect();
        for ty in gone {
            if let Some(w) = self.watches.remove(&ty) {
                tracing::info!(kind = %w.resource.kind, group = %w.resource.group, "no longer propagating type");
                w.stop.cancel();
                w.task.abort();
            }
            self.cache.remove_type(&ty);
            self.sources.remove_type(&ty);
        }
        for (ty, (resource, mode)) in wanted {
            match self.watches.get_mut(&ty) {
                Some(w) if w.mode == mode => {}
                Some(w) => {
                    tracing::info!(kind = %resource.kind, from = w.mode.as_str(), to = mode.as_str(), "type mode changed");
                    w.mode = mode;
                    self.mark(Dirty::Type { ty });
                }
                None => {
                    tracing::info!(kind = %resource.kind, group = %resource.group, mode = mode.as_str(), "propagating type");
                    // Its objects are not counted until its list has arrived and been planned.
                    self.counted.store(false, Ordering::Relaxed);
                    let stop = CancellationToken::new();
                    let task = tokio::spawn(watch_type(
                        self.client.clone(),
                        ty.clone(),
                        resource.clone(),
                        (self.tree.clone(), self.ownership.clone()),
                        self.object_tx.clone(),
                        stop.clone(),
                    ));
                    self.watches.insert(ty, TypeWatch { resource, mode, synced: false, stop, task });
                }
            }
        }
    }

    fn hierarchy_changed(&mut self, dirty: PropagationDirty) {
        match dirty {
            PropagationDirty::All => self.mark(Dirty::All),
            PropagationDirty::Subtrees(roots) => {
                self.follow_ownership(Some(&roots));
                for namespace in roots {
                    self.mark(Dirty::Subtree { namespace });
                }
            }
        }
    }

    fn ingest(&mut self, event: ObjectEvent) {
        let ObjectEvent { ty, change, load } = event;
        let dirty = match change {
            ObjectChange::Apply(object) => {
                // Objects of a load started since the relist began count as listed too: that load's list is newer
                // than the relist's, so what it shows was not deleted while the watch was down — even when the
                // watch's list passed the object while its namespace was still another replica's (reduced to
                // `Elsewhere`: nothing held, nothing remembered). Forgetting it would leave the cache without a
                // copy that exists, and the plan would create it again and again, each create a 409.
                let listed = self
                    .relisting
                    .get(&ty)
                    .is_some_and(|r| load.is_none_or(|id| id >= r.loads_from))
                    .then(|| key_of(&object));
                let dirty = self.ingest_object(&ty, object, load);
                if let Some((ns, name)) = listed {
                    self.listed(&ty, &ns, &name);
                }
                dirty
            }
            ObjectChange::Elsewhere { key: (ns, name), policy } => {
                self.ingest_elsewhere(&ty, &ns, &name, policy.as_ref());
                if self.relisting.contains_key(&ty) {
                    // The watch reduced it, but the namespace is this replica's now: a load in progress may
                    // hold it by the end of the list, and the list showed that it exists.
                    if self.ownership.expects(&*self.tree.load(), &ns) {
                        if let Some(relist) = self.relisting.get_mut(&ty) {
                            relist.see(&ns, &name);
                        }
                    } else {
                        self.listed(&ty, &ns, &name);
                    }
                }
                None
            }
            ObjectChange::Delete((ns, name)) => self.forget(&ty, &ns, &name),
            ObjectChange::Relisting => {
                // A type's first list is planned as a whole once it completes (nothing is planned before):
                // marking it so now keeps the list's objects from each adding a name to plan.
                if self.watches.get(&ty).is_some_and(|w| !w.synced) {
                    self.mark(Dirty::Type { ty: ty.clone() });
                }
                self.relisting.insert(ty, Relist::new(self.next_load + 1));
                return;
            }
            ObjectChange::Synced => {
                if let Some(id) = load {
                    return self.loaded(id);
                }
                if let Some(relist) = self.relisting.remove(&ty) {
                    self.forget_unlisted(&ty, &relist);
                }
                if let Some(w) = self.watches.get_mut(&ty)
                    && !w.synced
                {
                    w.synced = true;
                    self.mark(Dirty::Type { ty });
                }
                if self.watches.values().all(|w| w.synced) {
                    self.sources_synced.send_if_modified(|synced| !std::mem::replace(synced, true));
                }
                return;
            }
        };
        if let Some(dirty) = dirty {
            self.mark(dirty);
        }
    }

    /// Ingests one object from a watch or, with `load`, from a load's list.
    fn ingest_object(&mut self, ty: &TypeKey, object: WatchedObject, load: Option<u64>) -> Option<Dirty> {
        let ns = object.metadata.namespace.as_deref().unwrap_or_default();
        let name = object.metadata.name.as_deref().unwrap_or_default();
        if let Some(id) = load {
            // A load fills in only the namespaces it was started for, and never overrides the watch.
            let wanted = self.loads.get(&id).is_some_and(|namespaces| namespaces.contains(ns));
            if !wanted
                || self.is_stale(ty, &object)
                || self.tombstones.contains(&(ty.clone(), ns.into(), name.to_owned()))
            {
                return None;
            }
        }
        let tree = self.tree.load();
        if !tree.policy().is_managed(ns) {
            return None;
        }
        if load.is_none() {
            self.sources.apply(ty, ns, name, &policy_fields(&object));
        }
        // Before the hierarchy is complete a namespace's tree is not known: keep everything, and evict
        // what is not ours once it is.
        if tree.is_synced() && !self.ownership.expects(&*tree, ns) {
            self.unloaded.insert(ns.into());
            return None;
        }
        let (ns, name) = (ns.to_owned(), name.to_owned());
        match self.cache.apply(ty, &object.into_value()) {
            Ok(dirty) => dirty,
            Err(error) => {
                tracing::warn!(%error, kind = %ty.kind, namespace = ns, name, "ignoring a malformed object");
                None
            }
        }
    }

    /// Ingests an object the watch found in a tree another replica owns.
    fn ingest_elsewhere(&mut self, ty: &TypeKey, ns: &str, name: &str, policy: Option<&serde_json::Value>) {
        let tree = self.tree.load();
        if !tree.policy().is_managed(ns) {
            return;
        }
        match policy {
            Some(policy) => self.sources.apply(ty, ns, name, policy),
            None => self.sources.delete(ty, ns, name),
        }
        let ns = NsName::from(ns);
        if !tree.is_synced() || !self.ownership.expects(&*tree, &ns) {
            self.unloaded.insert(ns);
            return;
        }
        // The watch decided before this replica gained the tree (a handover, or a re-parent into an owned tree):
        // the object's body is not here. A load in progress lists what the namespace holds now, newer than this
        // event; otherwise the namespace is listed now.
        if !self.loads.values().any(|l| l.contains(&ns)) {
            self.unloaded.insert(ns.clone());
            self.follow_ownership(Some(&[ns]));
        }
    }

    /// During a relist of `ty`: the list showed `namespace/name`; remembered if the engine holds it.
    fn listed(&mut self, ty: &TypeKey, ns: &str, name: &str) {
        if self.holds(ty, ns, name)
            && let Some(relist) = self.relisting.get_mut(ty)
        {
            relist.see(ns, name);
        }
    }

    /// Forgets an object the API server no longer has.
    fn forget(&mut self, ty: &TypeKey, ns: &str, name: &str) -> Option<Dirty> {
        if !self.loads.is_empty() {
            self.tombstones.insert((ty.clone(), ns.into(), name.to_owned()));
        }
        self.sources.delete(ty, ns, name);
        self.cache.delete(ty, ns, name)
    }

    /// True when the source index or the cache holds the object.
    fn holds(&self, ty: &TypeKey, ns: &str, name: &str) -> bool {
        let cache = self.cache.current();
        self.sources.current().holds(ty, ns, name)
            || cache.source(ty, ns, name).is_some()
            || cache.copy(ty, ns, name).is_some()
    }

    /// A list of `ty` completed: forgets what the engine holds that the list did not show. What is held is
    /// walked in place (the source index, then the cache), and only what is gone is collected.
    fn forget_unlisted(&mut self, ty: &TypeKey, relist: &Relist) {
        let mut gone: HashSet<(NsName, String)> = self
            .sources
            .current()
            .keys(ty)
            .into_iter()
            .filter(|(ns, name)| !relist.has_seen(ns, name))
            .map(|(ns, name)| (ns, name.to_string()))
            .collect();
        if let Some(forest) = self.cache.current().forest(ty) {
            for objects in forest.namespaces() {
                let ns = objects.namespace();
                gone.extend(
                    objects
                        .names()
                        .filter(|name| !relist.has_seen(ns, name))
                        .map(|name| (ns.clone(), name.to_string())),
                );
            }
        }
        if !gone.is_empty() {
            tracing::info!(kind = %ty.kind, objects = gone.len(), "objects deleted while the watch was down");
        }
        for (ns, name) in gone {
            if let Some(dirty) = self.forget(ty, &ns, &name) {
                self.mark(dirty);
            }
        }
    }

    /// True when the cache already holds a newer version of `object` than this (listed) one.
    fn is_stale(&self, ty: &TypeKey, object: &WatchedObject) -> bool {
        let (Some(ns), Some(name)) = (object.metadata.namespace.as_deref(), object.metadata.name.as_deref())
        else {
            return false;
        };
        let listed = ResourceVersion::parse(object.metadata.resource_version.as_deref().unwrap_or_default());
        let cache = self.cache.current();
        let cached = cache
            .source(ty, ns, name)
            .map(|s| s.resource_version.clone())
            .or_else(|| cache.copy(ty, ns, name).map(|c| c.resource_version.clone()));
        cached.is_some_and(|cached| listed.is_older_than(&cached))
    }

    /// Makes the cache hold exactly the owned trees among `roots`' subtrees (or everywhere, for `None`):
    /// evicts the rest and loads namespaces that became owned.
    fn follow_ownership(&mut self, roots: Option<&[NsName]>) {
        if matches!(self.ownership, Ownership::Everything) {
            return;
        }
        let tree = self.tree.load();
        if !tree.is_synced() {
            return;
        }
        let scope: Option<HashSet<NsName>> = roots.map(|roots| {
            roots.iter().flat_map(|r| std::iter::once(r.clone()).chain(tree.descendants(r))).collect()
        });
        let in_scope = |ns: &str| scope.as_ref().is_none_or(|s| s.contains(ns));
        let mut evicted = Vec::new();
        self.cache.retain_namespaces(|ns| {
            let keep = !in_scope(ns) || self.ownership.expects(&*tree, ns);
            if !keep {
                evicted.push(NsName::from(ns));
            }
            keep
        });
        if !evicted.is_empty() {
            tracing::debug!(namespaces = evicted.len(), "evicted namespaces whose tree is no longer owned");
        }
        let gained: Vec<NsName> = self
            .unloaded
            .iter()
            .filter(|ns| in_scope(ns) && self.ownership.expects(&*tree, ns))
            .cloned()
            .collect();
        self.unloaded.extend(evicted);
        if gained.is_empty() {
            return;
        }
        for ns in &gained {
            self.unloaded.remove(ns);
        }
        self.load(gained);
    }

    /// Lists the objects of `namespaces`, which became owned, while the watches keep running: namespace by
    /// namespace (several at once) when they are few or a small share of the cluster, otherwise one cluster-wide
    /// paged list per type. Writes into them and below them wait until the load completes. A failed list is
    /// retried with backoff (a 410 on a continued list starts that list over); the load never completes
    /// with a gap.
    fn load(&mut self, namespaces: Vec<NsName>) {
        let Some(any_type) = self.watches.keys().next().cloned() else { return };
        if namespaces.is_empty() {
            return;
        }
        self.next_load += 1;
        let id = self.next_load;
        let managed = self.tree.load().namespace_count();
        let by_namespace = namespaces.len() <= NAMESPACE_LISTS_UP_TO
            || namespaces.len().saturating_mul(NAMESPACE_LISTS_SHARE) <= managed;
        tracing::info!(
            namespaces = namespaces.len(),
            by_namespace,
            "loading namespaces whose trees became owned"
        );
        metrics::counter!("hnc_namespace_lists_total").increment(namespaces.len() as u64);
        self.counted.store(false, Ordering::Relaxed);
        self.loads.insert(id, namespaces.iter().cloned().collect());
        self.load_started.insert(id, Instant::now());
        let scopes: Vec<Option<NsName>> =
            if by_namespace { namespaces.into_iter().map(Some).collect() } else { vec![None] };
        let types: Vec<(TypeKey, Arc<ApiResource>)> =
            self.watches.iter().map(|(ty, w)| (ty.clone(), w.resource.clone())).collect();
        let (client, tx) = (self.client.clone(), self.object_tx.clone());
        tokio::spawn(async move {
            use futures::StreamExt as _;
            // Up to LOAD_CONCURRENCY lists at once, the types side by side: a cluster-wide load lasts as long as
            // its largest type's list, a namespace-wise one as long as its namespaces' lists spread over them.
            let jobs: Vec<(Option<NsName>, TypeKey, Arc<ApiResource>)> = scopes
                .into_iter()
                .flat_map(|scope| types.iter().map(move |(ty, r)| (scope.clone(), ty.clone(), r.clone())))
                .collect();
            let sender = tx.clone();
            let listed = futures::stream::iter(jobs)
                .map(move |(scope, ty, resource)| {
                    let (client, tx) = (client.clone(), sender.clone());
                    async move {
                        let api: kube::Api<WatchedObject> = match &scope {
                            Some(ns) => kube::Api::namespaced_with(client, ns, &*resource),
                            None => kube::Api::all_with(client, &*resource),
                        };
                        let what = format!(
                            "{} in {}",
                            resource.plural,
                            scope.as_deref().unwrap_or("all namespaces")
                        );
                        let wrap = |object| ObjectEvent {
                            ty: ty.clone(),
                            change: ObjectChange::Apply(object),
                            load: Some(id),
                        };
                        list_into(&api, &what, &tx, wrap).await
                    }
                })
                .buffer_unordered(LOAD_CONCURRENCY)
                .all(|listed| async move { listed })
                .await;
            if listed {
                let _ =
                    tx.send(ObjectEvent { ty: any_type, change: ObjectChange::Synced, load: Some(id) }).await;
            }
        });
    }

    /// A load completed: plan what waited for it.
    fn loaded(&mut self, id: u64) {
        let Some(namespaces) = self.loads.remove(&id) else { return };
        if self.loads.is_empty() {
            self.tombstones.clear();
        }
        let seconds = self.load_started.remove(&id).map_or(0.0, |started| started.elapsed().as_secs_f64());
        metrics::histogram!("hnc_namespace_load_duration_seconds").record(seconds);
        if namespaces.len() > NAMESPACE_LISTS_UP_TO {
            tracing::info!(
                namespaces = namespaces.len(),
                seconds,
                "loaded namespaces whose trees became owned"
            );
        } else {
            tracing::debug!(
                namespaces = namespaces.len(),
                seconds,
                "loaded namespaces whose trees became owned"
            );
        }
        if namespaces.len() > NAMESPACE_LISTS_UP_TO {
            self.mark(Dirty::All);
        } else {
            for namespace in namespaces {
                self.mark(Dirty::Subtree { namespace });
            }
        }
    }

    /// True when a write into `ns` (owned) must wait because the objects of `ns` or of an ancestor are not all
    /// known yet: a load covers one of them, or one is still unloaded — the tree became owned and the
    /// hierarchy's notice has not reached the engine yet. The topmost unloaded one goes into `to_load`.
    fn waits_for_load(&self, tree: &TreeSnapshot, ns: &NsName, to_load: &mut HashSet<NsName>) -> bool {
        if self.loads.is_empty() && self.unloaded.is_empty() {
            return false;
        }
        let chain = std::iter::once(ns.clone()).chain(tree.ancestors(ns));
        let mut waits = false;
        let mut topmost_unloaded = None;
        for n in chain {
            if self.loads.values().any(|l| l.contains(&n)) {
                waits = true;
            } else if self.unloaded.contains(&n) {
                topmost_unloaded = Some(n);
            }
        }
        if let Some(n) = topmost_unloaded {
            to_load.insert(n);
            waits = true;
        }
        waits
    }

    fn completed(&mut self, done: Completed) {
        // An outcome of an older write of an object planned again since is not settled: the newer write's own
        // outcome decides what happens next.
        let Some(write) = self.in_flight.settle(&done) else { return };
        match &done.outcome {
            Outcome::Written => {
                self.cache.record_written(&write, done.resource_version.as_deref().unwrap_or_default());
            }
            Outcome::Failed { message, .. } => {
                let resource = self.resource_of(&write.ty);
                self.events.write_failed(&write, resource, message);
            }
            // Only a newer plan supersedes a write, and the newer one holds the slot (see above).
            Outcome::Superseded | Outcome::Fenced | Outcome::Stale | Outcome::Conflict | Outcome::Gone => {}
        }
        // Fenced, a conflict, a vanished object or a failure: plan the object again shortly (see retry_delay).
        let dirty = Dirty::Name { ty: write.ty, name: write.name, namespace: write.namespace };
        if let Some(delay) = retry_delay(&done.outcome) {
            self.retries.schedule(dirty, delay);
        } else if done.outcome == Outcome::Written {
            // A change that arrived while the write was on its way was planned from the object as it was before
            // (a source deleted before its copy's create landed found no copy to delete), and the write's echo
            // matches what is recorded now, so it plans nothing: plan the object again from what it is now.
            self.mark(dirty);
        }
    }

    /// Plans when there is something to plan and the picture is complete.
    async fn plan_if_ready(&mut self) {
        let room = self.max_in_flight.saturating_sub(self.in_flight.len());
        if !self.deferred.is_empty() && room >= self.max_in_flight.div_ceil(2) {
            // Oldest first, as many as there is room for (planning them all each time would plan the rest
            // again and again). They count their latency from when they were first due.
            let since = self.deferred_since;
            for dirty in self.deferred.drain(..room.min(self.deferred.len())) {
                self.dirty.insert(dirty);
            }
            if self.deferred.is_empty() {
                self.deferred_since = None;
            }
            let since = since.unwrap_or_else(Instant::now);
            self.dirty_since = Some(self.dirty_since.map_or(since, |now| now.min(since)));
            metrics::gauge!("hnc_propagation_deferred_writes").set(self.deferred.len() as f64);
        }
        if self.dirty.is_empty() {
            return;
        }
        let tree = self.tree.load();
        if !tree.is_synced() || self.watches.values().any(|w| !w.synced) {
            return;
        }
        let dirty = self.dirty.take();
        let mut since = self.dirty_since.take().unwrap_or_else(Instant::now);
        if dirty.is_all() {
            // Planning everything plans what was deferred too (and defers again what still does not fit).
            self.deferred.clear();
            metrics::gauge!("hnc_propagation_deferred_writes").set(0.0);
            if let Some(deferred_since) = self.deferred_since.take() {
                since = since.min(deferred_since);
            }
        }
        let cache = self.cache.current().clone();
        let planned_from = cache.clone();
        let modes: TypeModes = self.watches.iter().map(|(ty, w)| (ty.clone(), w.mode)).collect();
        let started = Instant::now();
        let planning = {
            let tree = tree.clone();
            tokio::task::spawn_blocking(move || plan(&*tree, &cache, &modes, &dirty))
        };
        let batch = match planning.await {
            Ok(batch) => batch,
            Err(error) => {
                tracing::error!(%error, "planning failed; re-planning everything");
                self.mark(Dirty::All);
                return;
            }
        };
        metrics::histogram!("hnc_plan_duration_seconds").record(started.elapsed().as_secs_f64());
        // Before the HNCConfiguration is resolved there are no types at all, and a plan of nothing counts nothing;
        // while a load runs, the namespaces it fills are not counted yet.
        if !self.watches.is_empty() && self.loads.is_empty() {
            self.counted.store(true, Ordering::Relaxed);
        }
        for event in batch.events.iter().filter(|e| self.ownership.owns(&*tree, &e.namespace)) {
            self.events.planned(event, self.resource_of(&event.ty));
        }
        if batch.writes.is_empty() {
            return;
        }
        // Created with the first write sent: a plan whose writes all wait (for a load, for room) measures nothing.
        let mut latency: Option<Arc<LatencyGroup>> = None;
        let mut requests = Vec::with_capacity(batch.writes.len().min(self.max_in_flight));
        let mut to_load = HashSet::new();
        for write in batch.writes {
            let Some(resource) = self.resource_of(&write.ty) else { continue };
            if !self.ownership.owns(&*tree, &write.namespace)
                || self.waits_for_load(&tree, &write.namespace, &mut to_load)
            {
                continue;
            }
            let target = ObjectRef::new(resource.clone(), Some(&write.namespace), &write.name);
            if self.in_flight.get(&target).is_some_and(|w| same_write(w, &write)) {
                continue;
            }
            if self.in_flight.len() >= self.max_in_flight {
                metrics::counter!("hnc_propagation_deferred_writes_total").increment(1);
                self.deferred_since.get_or_insert(since);
                self.deferred.push_back(Dirty::Name {
                    ty: write.ty,
                    name: write.name,
                    namespace: write.namespace,
                });
                continue;
            }
            let op = to_writer_op(&write, &resource);
            let mut request = WriteRequest::new(target, op, &write.namespace);
            request.latency = Some(latency.get_or_insert_with(|| LatencyGroup::new(since)).clone());
            if !matches!(write.op, CopyOp::Create { .. })
                && let Some(copy) = planned_from.copy(&write.ty, &write.namespace, &write.name)
            {
                let owns = |ns: &str| self.ownership.owns(&*tree, ns);
                request.precondition =
                    foreign::precondition_for(&*tree, owns, &write.namespace, &copy.inherited_from);
            }
            self.in_flight.insert(&mut request, write);
            requests.push(request);
        }
        drop(latency);
        metrics::counter!("hnc_planned_writes_total").increment(requests.len() as u64);
        metrics::gauge!("hnc_propagation_deferred_writes").set(self.deferred.len() as f64);
        self.writer.submit_batch(requests);
        if !to_load.is_empty() {
            // The held writes are planned again when the load completes.
            let roots: Vec<NsName> = to_load.into_iter().collect();
            self.follow_ownership(Some(&roots));
        }
    }

    fn resource_of(&self, ty: &TypeKey) -> Option<Arc<ApiResource>> {
        self.watches.get(ty).map(|w| w.resource.clone())
    }
}

/// True when two planned writes of one object would send the same thing.
fn same_write(a: &PlannedWrite, b: &PlannedWrite) -> bool {
    a.op.verb() == b.op.verb()
        && match (a.op.source(), b.op.source()) {
            (Some(x), Some(y)) => x.namespace == y.namespace && x.same_propagation(y),
            (None, None) => true,
            _ => false,
        }
}

/// The writer's operation for a planned write; copies are built when sent (see [`Body`]), with the apiVersion
/// and kind of the version this replica watches (the planner's copies carry no TypeMeta).
fn to_writer_op(write: &PlannedWrite, resource: &ApiResource) -> WriteOp {
    let body = || {
        let write = write.clone();
        let (api_version, kind) = (resource.api_version.clone(), resource.kind.clone());
        Body::Deferred(Arc::new(move || {
            let mut body = write.body().unwrap_or_default();
            if let Some(fields) = body.as_object_mut() {
                fields.insert("apiVersion".into(), api_version.clone().into());
                fields.insert("kind".into(), kind.clone().into());
            }
            body
        }))
    };
    match &write.op {
        CopyOp::Create { .. } => WriteOp::Create(body()),
        CopyOp::Update { .. } => WriteOp::Update(body()),
        CopyOp::Recreate { resource_version, .. } => {
            WriteOp::Recreate { resource_version: Some(resource_version.to_string()), object: body() }
        }
        CopyOp::Delete { resource_version } => {
            WriteOp::Delete { resource_version: Some(resource_version.to_string()), uid: None }
        }
    }
}

/// What a source's propagation policy is made of: its metadata and, for Secrets, its `type`. Reduced so that
/// objects of trees another replica owns are indexed without converting their bodies.
fn policy_fields(object: &WatchedObject) -> serde_json::Value {
    let meta = &object.metadata;
    serde_json::json!({
        "metadata": {
            "name": meta.name, "namespace": meta.namespace, "labels": meta.labels,
            "annotations": meta.annotations, "finalizers": meta.finalizers,
        },
        "type": object.data.get("type"),
    })
}

/// Sends every object `api` lists, page by page, through `tx`. Failures are retried with backoff, and a
/// continued list that expired (410) starts over. False when the engine is gone.
async fn list_into(
    api: &kube::Api<WatchedObject>,
    what: &str,
    tx: &mpsc::Sender<ObjectEvent>,
    wrap: impl Fn(WatchedObject) -> ObjectEvent,
) -> bool {
    let mut token: Option<String> = None;
    let mut failures = 0u32;
    loop {
        let mut params = kube::api::ListParams::default().limit(LOAD_PAGE);
        if let Some(token) = &token {
            params = params.continue_token(token);
        }
        match api.list(&params).await {
            Ok(page) => {
                failures = 0;
                for object in page.items {
                    if tx.send(wrap(object)).await.is_err() {
                        return false;
                    }
                }
                match page.metadata.continue_ {
                    Some(next) if !next.is_empty() => token = Some(next),
                    _ => return true,
                }
            }
            Err(error) => {
                failures += 1;
                if matches!(&error, kube::Error::Api(status) if status.code == 410) {
                    token = None;
                }
                tracing::warn!(%error, what, failures, "listing objects of gained namespaces failed; retrying");
                let backoff = Duration::from_millis(100 << failures.min(8)).min(Duration::from_secs(30));
                tokio::time::sleep(backoff).await;
            }
        }
    }
}

/// Watches every object of one type cluster-wide until `stop`, starting once the hierarchy is synced and this
/// replica knows its trees. Objects of trees `ownership` neither grants nor is about to grant are reduced to
/// [`ObjectChange::Elsewhere`] here, before they are queued.
async fn watch_type(
    client: Client,
    ty: TypeKey,
    resource: Arc<ApiResource>,
    (tree, ownership): (TreeReader, Ownership),
    tx: mpsc::Sender<ObjectEvent>,
    stop: CancellationToken,
) {
    let api: kube::Api<WatchedObject> = kube::Api::all_with(client, &*resource);
    let kind = resource.plural.clone();
    let (wait_tree, wait_ownership) = (tree.clone(), ownership.clone());
    let config = kube::runtime::watcher::Config::default();
    let event = move |change| ObjectEvent { ty: ty.clone(), change, load: None };
    let exists = move |object: WatchedObject| {
        let snapshot = tree.load();
        let ns = object.metadata.namespace.as_deref().unwrap_or_default();
        if !snapshot.is_synced() || !ownership.knows_its_trees() || ownership.expects(&*snapshot, ns) {
            return ObjectChange::Apply(object);
        }
        let is_copy = object.metadata.labels.as_ref().is_some_and(|l| l.contains_key(labels::INHERITED_FROM));
        ObjectChange::Elsewhere { policy: (!is_copy).then(|| policy_fields(&object)), key: key_of(&object) }
    };
    let handle = move |e: Event<WatchedObject>| {
        vec![event(match e {
            Event::Apply(object) | Event::InitApply(object) => exists(object),
            Event::Delete(object) => ObjectChange::Delete(key_of(&object)),
            Event::Init => ObjectChange::Relisting,
            Event::InitDone => ObjectChange::Synced,
        })]
    };
    let feed = async {
        // The first list comes once this replica can tell its trees from the others': every object of a tree
        // it will not own is then reduced here, instead of arriving whole and its namespace being listed
        // again once the assignment shows it was ours.
        while !(wait_tree.load().is_synced() && wait_ownership.knows_its_trees()) {
            tokio::time::sleep(WAIT_FOR_TREES_POLL).await;
        }
        crate::watch::feed_events(api, config, tx, kind, handle).await
    };
    tokio::select! {
        _ = feed => {}
        _ = stop.cancelled() => {}
    }
}

impl std::fmt::Debug for PropagationEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PropagationEngine").field("types", &self.watches.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use hnc_shard::TreeIndex;
    use hnc_shard::propagation::PropagationRules;

    use super::*;
    use crate::ownership::ShardOwnership;
    use crate::writer::{WriterConfig, writer_client};

    /// Owns every tree once `owned` is set, none before.
    struct Switch(Arc<AtomicBool>);

    impl ShardOwnership for Switch {
        fn holds_root(&self, _: &str) -> bool {
            self.0.load(Ordering::Relaxed)
        }
        fn is_leader(&self) -> bool {
            false
        }
    }

    fn role_copy(ns: &str, name: &str, from: &str) -> WatchedObject {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns, "resourceVersion": "5",
                "labels": {labels::INHERITED_FROM: from}},
            "rules": []}))
        .unwrap()
    }

    /// An engine over a synced hierarchy of parentless `namespaces`, writing to an address nothing answers
    /// (the tests here only ingest), for the trees `ownership` grants.
    fn engine_over(namespaces: &[&str], ownership: Ownership) -> PropagationEngine {
        let client = writer_client(&kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
        let (writer, _task) =
            Writer::start(client.clone(), WriterConfig::adaptive(), Arc::new(|_: &str| false));
        let mut index = TreeIndex::new(Default::default());
        for name in namespaces {
            let ns = serde_json::from_value(
                serde_json::json!({"metadata": {"name": name, "resourceVersion": "1"}}),
            );
            let (name, observed) = crate::hierarchy::ingest::namespace(&ns.unwrap()).unwrap();
            index.apply_namespace(&name, observed);
        }
        index.set_synced(true);
        index.publish();
        PropagationEngine::new(
            client,
            ForestCache::new(PropagationRules::default()),
            index.reader(),
            writer,
            ownership,
        )
    }

    /// The warm restart of four replicas at 1,000,000 copies: a replica's watch listed the Roles while a tree
    /// was still another replica's (each copy reduced, nothing held), the tree became its own, a load listed
    /// its copies, and the end of the watch's list then took them for deleted while the watch was down — the
    /// cache lost copies that exist, and the plan created them again and again (each a 409).
    #[tokio::test]
    async fn a_load_during_a_relist_keeps_what_it_listed() {
        let owned = Arc::new(AtomicBool::new(false));
        let mut engine = engine_over(&["root", "child"], Ownership::Shards(Arc::new(Switch(owned.clone()))));
        let ty = TypeKey::new("rbac.authorization.k8s.io", "Role");
        let event = |change, load| ObjectEvent { ty: ty.clone(), change, load };
        let held = |engine: &PropagationEngine, name: &str| {
            engine.cache.current().copy(&ty, "child", name).is_some()
        };

        engine.ingest(event(ObjectChange::Relisting, None));
        // The list passes the copies while the tree is another replica's.
        for name in ["a", "b"] {
            let key = ("child".to_owned(), name.to_owned());
            engine.ingest(event(ObjectChange::Elsewhere { key, policy: None }, None));
        }
        // The tree becomes this replica's; a load lists its namespaces (as `load` would).
        owned.store(true, Ordering::Relaxed);
        engine.next_load += 1;
        let id = engine.next_load;
        engine.loads.insert(id, ["root", "child"].into_iter().map(NsName::from).collect());
        for name in ["a", "b"] {
            engine.ingest(event(ObjectChange::Apply(role_copy("child", name, "root")), Some(id)));
        }
        assert!(held(&engine, "a") && held(&engine, "b"));
        // The watch's list ends: nothing it did not show was deleted.
        engine.ingest(event(ObjectChange::Synced, None));
        assert!(held(&engine, "a") && held(&engine, "b"), "copies a load listed during the relist are kept");

        // A copy held from before a relist and not shown by it is forgotten, as before.
        engine.ingest(event(ObjectChange::Relisting, None));
        engine.ingest(event(ObjectChange::Apply(role_copy("child", "a", "root")), None));
        engine.ingest(event(ObjectChange::Synced, None));
        assert!(held(&engine, "a") && !held(&engine, "b"), "b was deleted while the watch was down");
    }

    /// A type's first list is planned as a whole: the objects it shows add no entry each to what is dirty (at a
    /// warm restart of a 100,000-namespace cluster that was hundreds of thousands of names, all redundant).
    /// After it, a relist's changed objects are marked one by one again.
    #[tokio::test]
    async fn a_first_list_marks_its_type_not_each_object() {
        let mut engine = engine_over(&["root"], Ownership::Everything);
        let ty = TypeKey::new("rbac.authorization.k8s.io", "Role");
        engine.watches.insert(
            ty.clone(),
            TypeWatch {
                resource: Arc::new(ApiResource::erase::<k8s_openapi::api::rbac::v1::Role>(&())),
                mode: SyncMode::Propagate,
                synced: false,
                stop: CancellationToken::new(),
                task: tokio::spawn(async {}),
            },
        );
        let event = |change| ObjectEvent { ty: ty.clone(), change, load: None };
        let source = |name: &str, rv: &str| -> WatchedObject {
            let verbs = if rv == "5" { vec![] } else { vec!["get"] };
            serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "namespace": "root", "resourceVersion": rv},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": verbs}]}))
            .unwrap()
        };

        engine.ingest(event(ObjectChange::Relisting));
        for i in 0..1_000 {
            engine.ingest(event(ObjectChange::Apply(source(&format!("r{i}"), "5"))));
        }
        assert_eq!(engine.dirty.iter().collect::<Vec<_>>(), vec![Dirty::Type { ty: ty.clone() }]);
        engine.ingest(event(ObjectChange::Synced));
        assert!(engine.watches[&ty].synced);

        // A later relist (the watch expired): what changed is marked by name.
        engine.dirty.clear();
        engine.ingest(event(ObjectChange::Relisting));
        for i in 0..1_000 {
            engine
                .ingest(event(ObjectChange::Apply(source(&format!("r{i}"), if i < 3 { "6" } else { "5" }))));
        }
        engine.ingest(event(ObjectChange::Synced));
        let names: Vec<Dirty> = engine.dirty.iter().collect();
        assert_eq!(names.len(), 3, "{names:?}");
        assert!(names.iter().all(|d| matches!(d, Dirty::Name { .. })));
    }
}
