//! The hierarchy reconciler: the one task that owns the [`TreeIndex`].
//!
//! ```text
//!  watches (Namespace, HC, anchor) ──HierarchyEvent──▶ apply to TreeIndex ──▶ publish snapshot (webhooks, planner)
//!                                                          │ Affected
//!                                                          ▼
//!   dirty namespaces ──▶ hnc_shard::tree::plan::plan(snapshot, dirty, owned) ──HierarchyBatch──┐
//!          ▲               (pure; on a blocking thread, in parallel, for large rounds)        │
//!          │                                                                                  ▼
//!          │                  PendingWrites: skip what is already on its way ──▶ Writer ──▶ API server
//!          │                                                                       │
//!          └── RetryQueue ◀── own outcomes (409, 404, fenced, failed) ◀─────────────┘
//!
//!   propagation dirty subtrees ◀── Affected
//! ```
//!
//! This module is the I/O shell around the planner: it applies watch events, publishes snapshots, decides what
//! is dirty, and submits what the planner returns. Nothing is judged before the initial lists of all three
//! kinds are complete, so a restart never shows the spurious `ParentMissing` upstream shows while its caches
//! fill. Writes happen only on real differences, each conditional on the resourceVersion it was planned from; a
//! write submitted but not yet echoed by the watch stays in [`PendingWrites`], so re-planning in that window
//! does not write twice.
//!
//! Writes pending at once are bounded by `--max-writes-in-flight`: a round with more dirty namespaces is planned
//! in chunks of as many owned namespaces as there is room for writes (a namespace usually needs one; a chunk
//! whose namespaces need several overshoots), and the namespaces left over wait, as names, until half of that
//! room is free again (fresh changes ahead of them). A cold start of a replica owning tens of thousands of
//! namespaces then holds a few thousand planned patches at a time, not one per namespace.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use hnc_api::{HierarchyConfiguration, SubnamespaceAnchor};
use hnc_shard::tree::plan::{PARALLEL_FROM, plan};
use hnc_shard::tree::{HierarchyKind, HierarchyOp, HierarchyWrite, TreeIndex};
use hnc_shard::{NsName, TreeReader, TreeSnapshot};
use k8s_openapi::api::core::v1::Namespace;
use kube::core::ApiResource;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::ingest::{self, HierarchyEvent};
use crate::ownership::Ownership;
use crate::watch::{Change, RESYNC_PERIOD};
use crate::writer::{
    Completed, ObjectRef, Outcome, PendingWrites, RetryQueue, WriteOp, WriteRequest, Writer, outcome_channel,
    retry_delay,
};

/// The most watch events applied before the index is published and dirty namespaces reconciled (see the
/// propagation engine's `MAX_EVENTS_PER_PLAN` for its counterpart).
pub const MAX_EVENTS_PER_FLUSH: usize = 2048;

/// The three hierarchy kinds as the writer addresses them.
#[derive(Clone)]
pub struct HierarchyResources {
    namespace: Arc<ApiResource>,
    hierarchy: Arc<ApiResource>,
    anchor: Arc<ApiResource>,
}

impl Default for HierarchyResources {
    fn default() -> Self {
        HierarchyResources {
            namespace: Arc::new(ApiResource::erase::<Namespace>(&())),
            hierarchy: Arc::new(ApiResource::erase::<HierarchyConfiguration>(&())),
            anchor: Arc::new(ApiResource::erase::<SubnamespaceAnchor>(&())),
        }
    }
}

impl HierarchyResources {
    /// The resource of `kind`.
    pub fn of(&self, kind: HierarchyKind) -> &Arc<ApiResource> {
        match kind {
            HierarchyKind::Namespace => &self.namespace,
            HierarchyKind::Hierarchy => &self.hierarchy,
            HierarchyKind::Anchor => &self.anchor,
        }
    }
}

/// Where subtrees whose propagation must be re-planned are sent.
pub type PropagationSink = mpsc::UnboundedSender<PropagationDirty>;

/// A hierarchy change propagation must follow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropagationDirty {
    /// Re-plan these namespaces and their subtrees.
    Subtrees(Vec<NsName>),
    /// The hierarchy became complete (or was rebuilt): re-plan everything.
    All,
}

/// A write submitted and not yet seen echoed: the resourceVersion it was planned from ("" = object absent) and
/// the namespace to reconcile again if it fails.
#[derive(Debug)]
struct Pending {
    planned_from: String,
    owner: NsName,
}

/// The hierarchy reconciler's state. Build with [`HierarchyReconciler::new`], then [`HierarchyReconciler::run`].
pub struct HierarchyReconciler {
    index: TreeIndex,
    writer: Writer,
    ownership: Ownership,
    resources: HierarchyResources,
    pending: PendingWrites<Pending>,
    outcomes: Option<mpsc::Receiver<Completed>>,
    retries: RetryQueue<NsName>,
    synced: BTreeSet<HierarchyKind>,
    dirty: BTreeSet<NsName>,
    all_dirty: bool,
    /// Dirty namespaces not planned yet because `max_in_flight` writes were pending, oldest first.
    deferred: VecDeque<NsName>,
    /// The most writes pending at once (`--max-writes-in-flight`).
    max_in_flight: usize,
    changed: bool,
    propagation: Vec<PropagationSink>,
    /// Notices for the propagation engine not sent yet: they go out in [`HierarchyReconciler::flush`] right
    /// after the snapshot they describe is published, never before — the engine plans from the snapshot it
    /// loads when a notice arrives, and an older one would not show the change (a subnamespace not yet under
    /// its parent got no copies until the next resync).
    unannounced: Unannounced,
    synced_tx: watch::Sender<bool>,
}

/// Propagation notices gathered since the last publish.
#[derive(Default)]
struct Unannounced {
    all: bool,
    subtrees: BTreeSet<NsName>,
}

impl HierarchyReconciler {
    /// A reconciler writing through `writer` (its outcomes come back to this reconciler) for the trees
    /// `ownership` grants.
    pub fn new(
        index: TreeIndex,
        writer: Writer,
        ownership: Ownership,
        propagation: Vec<PropagationSink>,
    ) -> Self {
        let (outcomes_tx, outcomes) = outcome_channel();
        HierarchyReconciler {
            index,
            writer: writer.reporting_to(outcomes_tx),
            ownership,
            resources: HierarchyResources::default(),
            pending: PendingWrites::new(),
            outcomes: Some(outcomes),
            retries: RetryQueue::new(),
            synced: BTreeSet::new(),
            dirty: BTreeSet::new(),
            all_dirty: false,
            deferred: VecDeque::new(),
            max_in_flight: crate::propagation::engine::MAX_WRITES_IN_FLIGHT,
            changed: false,
            propagation,
            unannounced: Unannounced::default(),
            synced_tx: watch::channel(false).0,
        }
    }

    /// At most `max` writes pending at once (`--max-writes-in-flight`); at least one.
    pub fn with_max_writes_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max.max(1);
        self
    }

    /// Readers of the published snapshots.
    pub fn reader(&self) -> TreeReader {
        self.index.reader()
    }

    /// Turns true once the hierarchy has been judged for the first time (initial lists complete).
    pub fn synced(&self) -> watch::Receiver<bool> {
        self.synced_tx.subscribe()
    }

    /// Runs until `stop`: applies `events`, reconciles, follows the outcomes of its writes; re-checks
    /// everything when `ownership_changed` fires and every [`RESYNC_PERIOD`].
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<HierarchyEvent>,
        mut ownership_changed: watch::Receiver<u64>,
        stop: CancellationToken,
    ) {
        let mut outcomes = self.outcomes.take().expect("run is called once");
        metrics::gauge!("hnc_hierarchy_deferred_namespaces").set(0.0);
        let mut resync = tokio::time::interval(RESYNC_PERIOD);
        resync.tick().await;
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => return,
                // Outcomes first: draining them is cheap, and the writer waits while the channel is full.
                Some(done) = outcomes.recv() => {
                    self.completed(done);
                    while let Ok(done) = outcomes.try_recv() {
                        self.completed(done);
                    }
                }
                event = events.recv() => {
                    let Some(event) = event else { return };
                    self.apply(event);
                    for _ in 1..MAX_EVENTS_PER_FLUSH {
                        match events.try_recv() {
                            Ok(event) => self.apply(event),
                            Err(_) => break,
                        }
                    }
                }
                ns = self.retries.next() => { self.dirty.insert(ns); }
                Ok(()) = ownership_changed.changed() => { self.all_dirty = true; }
                _ = resync.tick() => { self.all_dirty = true; }
            }
            self.flush().await;
        }
    }

    /// Applies one watch event to the index.
    pub fn apply(&mut self, event: HierarchyEvent) {
        let affected = match event {
            HierarchyEvent::Namespace(change) => match change {
                Change::Apply(ns) => match ingest::namespace(&ns) {
                    Some((name, observed)) => {
                        self.echoed(HierarchyKind::Namespace, None, &name, &observed.resource_version);
                        self.index.apply_namespace(&name, observed)
                    }
                    None => return,
                },
                Change::Delete((_, name)) => {
                    self.echoed(HierarchyKind::Namespace, None, &name, "");
                    self.index.delete_namespace(&name)
                }
                Change::Synced => return self.kind_synced(HierarchyKind::Namespace),
            },
            HierarchyEvent::Hierarchy(change) => match change {
                Change::Apply(hc) => match ingest::hierarchy(&hc) {
                    Some((ns, observed)) => {
                        let rv = observed.resource_version.clone();
                        self.echoed(
                            HierarchyKind::Hierarchy,
                            Some(&ns),
                            hnc_api::keys::names::HIERARCHY,
                            &rv,
                        );
                        self.index.apply_hierarchy(&ns, observed)
                    }
                    None => return,
                },
                Change::Delete((ns, name)) if name == hnc_api::keys::names::HIERARCHY => {
                    self.echoed(HierarchyKind::Hierarchy, Some(&ns), &name, "");
                    self.index.delete_hierarchy(&ns)
                }
                Change::Delete(_) => return,
                Change::Synced => return self.kind_synced(HierarchyKind::Hierarchy),
            },
            HierarchyEvent::Anchor(change) => match change {
                Change::Apply(anchor) => match ingest::anchor(&anchor) {
                    Some(((ns, name), observed)) => {
                        let rv = observed.resource_version.clone();
                        self.echoed(HierarchyKind::Anchor, Some(&ns), &name, &rv);
                        self.index.apply_anchor(&ns, &name, observed)
                    }
                    None => return,
                },
                Change::Delete((ns, name)) => {
                    self.echoed(HierarchyKind::Anchor, Some(&ns), &name, "");
                    self.index.delete_anchor(&ns, &name)
                }
                Change::Synced => return self.kind_synced(HierarchyKind::Anchor),
            },
            HierarchyEvent::DeletingCrds(deleting) => {
                if self.index.set_deleting_crds(deleting) {
                    tracing::info!(?deleting, "HNC CRDs being deleted changed; revisiting every namespace");
                    self.changed = true;
                    self.all_dirty = true;
                }
                return;
            }
        };
        if affected.is_empty() {
            return;
        }
        self.changed = true;
        self.dirty.extend(affected.hierarchy);
        if self.index.current().is_synced() && !self.propagation.is_empty() {
            self.unannounced.subtrees.extend(affected.propagation);
        }
    }

    /// The watch showed `resource_version` for an object: a pending write planned from an older version is no
    /// longer pending.
    fn echoed(&mut self, kind: HierarchyKind, namespace: Option<&str>, name: &str, resource_version: &str) {
        if self.pending.is_empty() {
            return;
        }
        let key = ObjectRef::new(self.resources.of(kind).clone(), namespace, name);
        self.pending.remove_if(&key, |p| p.planned_from != resource_version);
    }

    fn kind_synced(&mut self, kind: HierarchyKind) {
        self.synced.insert(kind);
        if self.synced.len() == 3 && !self.index.current().is_synced() {
            tracing::info!(namespaces = self.index.current().namespace_count(), "hierarchy synced");
            self.index.set_synced(true);
            self.changed = true;
            self.all_dirty = true;
            self.unannounced.all = true;
            let _ = self.synced_tx.send(true);
        }
    }

    /// Sends the propagation notices gathered since the last publish; called once the snapshot showing their
    /// changes is published.
    fn announce(&mut self) {
        let unannounced = std::mem::take(&mut self.unannounced);
        let notice = if unannounced.all {
            PropagationDirty::All
        } else if !unannounced.subtrees.is_empty() {
            PropagationDirty::Subtrees(unannounced.subtrees.into_iter().collect())
        } else {
            return;
        };
        for sink in &self.propagation {
            let _ = sink.send(notice.clone());
        }
    }

    fn completed(&mut self, done: Completed) {
        if done.outcome == Outcome::Written {
            // A write that changed nothing keeps its resourceVersion and is never echoed by the watch.
            if let Some(rv) = &done.resource_version
                && self.pending.outcome_of(&done).is_some_and(|p| p.planned_from == *rv)
            {
                self.pending.settle(&done);
            }
            return;
        }
        let Some(delay) = retry_delay(&done.outcome) else { return };
        let Some(pending) = self.pending.settle(&done) else { return };
        self.retries.schedule(pending.owner, delay);
    }

    /// Publishes the index if it changed, plans the dirty namespaces this replica owns, as many as there is
    /// room for (see the module documentation), and submits the writes not already on their way. Rounds of at
    /// least [`PARALLEL_FROM`] namespaces are planned on a blocking thread (in parallel), so a full resync of a
    /// large forest never holds up an async worker.
    pub async fn flush(&mut self) {
        let room = self.max_in_flight.saturating_sub(self.pending.len());
        let deferred_due = !self.deferred.is_empty() && room >= self.max_in_flight.div_ceil(2);
        if !self.changed && self.dirty.is_empty() && !self.all_dirty && !deferred_due {
            return;
        }
        let snapshot = if self.changed {
            self.changed = false;
            self.index.publish()
        } else {
            Arc::new(self.index.current().clone())
        };
        self.announce();
        if !snapshot.is_synced() {
            return;
        }
        // Fresh changes first, then what waited for room; everything when everything is dirty.
        let mut todo: VecDeque<NsName> = if std::mem::take(&mut self.all_dirty) {
            self.dirty.clear();
            self.deferred.clear();
            snapshot.nodes().map(|n| n.name().clone()).collect()
        } else {
            let mut todo: VecDeque<NsName> = std::mem::take(&mut self.dirty).into_iter().collect();
            if deferred_due {
                todo.extend(self.deferred.drain(..));
            }
            todo
        };
        let now = jiff::Timestamp::now().round(jiff::Unit::Second).unwrap_or_else(|_| jiff::Timestamp::now());
        let now = now.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        loop {
            let room = self.max_in_flight.saturating_sub(self.pending.len());
            // Namespaces of other replicas' trees plan nothing: they take no room and are not kept.
            let mut chunk = Vec::with_capacity(room.min(todo.len()));
            while chunk.len() < room {
                let Some(ns) = todo.pop_front() else { break };
                if self.ownership.owns(&*snapshot, &ns) {
                    chunk.push(ns);
                }
            }
            if chunk.is_empty() {
                break;
            }
            if !self.plan_and_submit(&snapshot, chunk, &now).await {
                return;
            }
        }
        // What is left goes ahead of what already waited (unless that was drained into it).
        let left: Vec<NsName> = todo.into_iter().filter(|ns| self.ownership.owns(&*snapshot, ns)).collect();
        for ns in left.into_iter().rev() {
            self.deferred.push_front(ns);
        }
        metrics::gauge!("hnc_hierarchy_deferred_namespaces").set(self.deferred.len() as f64);
    }

    /// Plans `dirty` (owned namespaces) and submits the writes; false when planning failed (everything is
    /// reconciled again).
    async fn plan_and_submit(&mut self, snapshot: &Arc<TreeSnapshot>, dirty: Vec<NsName>, now: &str) -> bool {
        let batch = if dirty.len() >= PARALLEL_FROM {
            let (ownership, snapshot, now) = (self.ownership.clone(), snapshot.clone(), now.to_owned());
            let planning = tokio::task::spawn_blocking(move || {
                plan(&snapshot, &dirty, &|ns: &str| ownership.owns(&*snapshot, ns), &now)
            });
            match planning.await {
                Ok(batch) => batch,
                Err(error) => {
                    tracing::error!(%error, "hierarchy planning failed; reconciling everything again");
                    self.all_dirty = true;
                    return false;
                }
            }
        } else {
            plan(snapshot, &dirty, &|ns: &str| self.ownership.owns(&**snapshot, ns), now)
        };
        metrics::counter!("hnc_reconcilers_hierconfig_total").increment(batch.reconciled as u64);
        for write in batch.writes {
            match (write.kind, &write.op) {
                (HierarchyKind::Namespace, HierarchyOp::MergePatch(_)) => {
                    metrics::counter!("hnc_reconcilers_hierconfig_namespace_writes_total").increment(1);
                }
                (HierarchyKind::Hierarchy, _) => {
                    metrics::counter!("hnc_reconcilers_hierconfig_hierconfig_writes_total").increment(1);
                }
                _ => {}
            }
            self.submit(write);
        }
        true
    }

    /// Submits a planned write unless the same write (planned from the same version) is already on its way.
    fn submit(&mut self, write: HierarchyWrite) {
        let HierarchyWrite { kind, namespace, name, op, planned_from, owner } = write;
        let target = ObjectRef::new(self.resources.of(kind).clone(), namespace.as_deref(), &name);
        if self.pending.get(&target).is_some_and(|p| p.planned_from == planned_from) {
            return;
        }
        let op = match op {
            HierarchyOp::Create(object) => WriteOp::create(object),
            HierarchyOp::MergePatch(patch) => WriteOp::MergePatch(patch),
            HierarchyOp::Delete { uid } => {
                WriteOp::Delete { resource_version: None, uid: Some(uid).filter(|u| !u.is_empty()) }
            }
        };
        let mut request = WriteRequest::new(target, op, &owner);
        self.pending.insert(&mut request, Pending { planned_from, owner });
        self.writer.submit(request);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use hnc_api::HierarchyConfiguration;
    use hnc_shard::TreeIndex;
    use k8s_openapi::api::core::v1::Namespace;
    use tokio::sync::mpsc;

    use super::*;
    use crate::writer::{Writer, WriterConfig, writer_client};

    fn namespace(name: &str, rv: &str) -> HierarchyEvent {
        let ns = serde_json::from_value(
            serde_json::json!({"metadata": {"name": name, "uid": name, "resourceVersion": rv}}),
        );
        HierarchyEvent::Namespace(Change::Apply(ns.unwrap()))
    }

    fn parent(child: &str, parent: &str) -> HierarchyEvent {
        let hc: HierarchyConfiguration = serde_json::from_value(serde_json::json!({
            "apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HierarchyConfiguration",
            "metadata": {"name": "hierarchy", "namespace": child, "resourceVersion": "9"},
            "spec": {"parent": parent}}))
        .unwrap();
        HierarchyEvent::Hierarchy(Change::Apply(hc))
    }

    /// The propagation engine plans from the snapshot it loads when a notice arrives: a notice must never
    /// arrive before the snapshot showing its change is published.
    #[tokio::test]
    async fn propagation_hears_of_a_change_only_once_its_snapshot_is_published() {
        // Nothing is owned, so nothing is written: the client is never used.
        let client = writer_client(&kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
        let (writer, _task) = Writer::start(client, WriterConfig::adaptive(), Arc::new(|_: &str| false));
        let (tx, mut notices) = mpsc::unbounded_channel();
        let mut reconciler = HierarchyReconciler::new(
            TreeIndex::new(Default::default()),
            writer,
            Ownership::Nothing,
            vec![tx],
        );
        let reader = reconciler.reader();
        reconciler.apply(namespace("p", "1"));
        reconciler.apply(namespace("c", "2"));
        reconciler.apply(HierarchyEvent::Namespace(Change::<Namespace>::Synced));
        reconciler.apply(HierarchyEvent::Hierarchy(Change::Synced));
        reconciler.apply(HierarchyEvent::Anchor(Change::Synced));
        assert!(notices.try_recv().is_err(), "synced, but not published yet");
        reconciler.flush().await;
        assert!(matches!(notices.try_recv(), Ok(PropagationDirty::All)));
        assert!(reader.load().is_synced());

        reconciler.apply(parent("c", "p"));
        assert!(notices.try_recv().is_err(), "c is under p, but the published snapshot does not say so yet");
        assert_eq!(reader.load().parent("c"), None);
        reconciler.flush().await;
        let Ok(PropagationDirty::Subtrees(roots)) = notices.try_recv() else {
            panic!("a notice after publishing")
        };
        assert!(roots.iter().any(|r| &**r == "c"), "{roots:?}");
        assert_eq!(reader.load().parent("c").map(|p| &**p), Some("p"));
    }

    /// A cold start plans no more than the room for pending writes allows; the rest waits as names and is
    /// planned once half of the room is free again.
    #[tokio::test]
    async fn a_large_round_is_planned_as_room_for_its_writes_frees_up() {
        // Every write is fenced before it is sent: the client is never used.
        let client = writer_client(&kube::Config::new("http://127.0.0.1:9".parse().unwrap())).unwrap();
        let (writer, _task) = Writer::start(client, WriterConfig::adaptive(), Arc::new(|_: &str| false));
        let mut reconciler = HierarchyReconciler::new(
            TreeIndex::new(Default::default()),
            writer,
            Ownership::Everything,
            vec![],
        )
        .with_max_writes_in_flight(10);
        let mut outcomes = reconciler.outcomes.take().unwrap();
        for i in 0..35 {
            reconciler.apply(namespace(&format!("ns-{i:02}"), "1"));
        }
        reconciler.apply(HierarchyEvent::Namespace(Change::<Namespace>::Synced));
        reconciler.apply(HierarchyEvent::Hierarchy(Change::Synced));
        reconciler.apply(HierarchyEvent::Anchor(Change::Synced));
        reconciler.flush().await;
        // Each root needs its tree label: one write per namespace.
        assert_eq!((reconciler.pending.len(), reconciler.deferred.len()), (10, 25));

        // Settling four writes leaves less than half of the room free: nothing more is planned.
        let mut settle = async |reconciler: &mut HierarchyReconciler, n: usize| {
            for _ in 0..n {
                reconciler.completed(outcomes.recv().await.unwrap());
            }
        };
        settle(&mut reconciler, 4).await;
        reconciler.flush().await;
        assert_eq!((reconciler.pending.len(), reconciler.deferred.len()), (6, 25));
        settle(&mut reconciler, 1).await;
        reconciler.flush().await;
        assert_eq!((reconciler.pending.len(), reconciler.deferred.len()), (10, 20));
        // Fresh changes go ahead of what waits.
        reconciler.apply(namespace("fresh", "1"));
        settle(&mut reconciler, 10).await;
        reconciler.flush().await;
        assert_eq!((reconciler.pending.len(), reconciler.deferred.len()), (10, 11));
        let fresh = ObjectRef::new(reconciler.resources.namespace.clone(), None, "fresh");
        assert!(reconciler.pending.get(&fresh).is_some(), "the fresh namespace is planned first");
    }
}
