//! The owner's side of hierarchical quotas: for the trees this replica owns, keeps every namespace's singleton
//! ResourceQuota `hrq.hnc.x-k8s.io` at Limits(N), every HRQ's status at its subtree's recorded usage, and the
//! charges HRQs carry pruned once the recorded usage shows them (spec §9; design in `docs/hrq.md`).
//!
//! The same task keeps the replica's [`QuotaView`] current from the two watches, so a webhooks-only replica
//! (which owns nothing) runs it too.
//!
//! Writes are plans from the view, checked against what the view shows, and submitted through the writer
//! fenced by the tree they serve. A singleton's `spec.hard` and an HRQ's `status` are written by merge patch
//! without a resourceVersion: the API server updates the singleton's status and the webhooks update the HRQ's
//! charges all the time, and a conditional write would lose every race with them; what is written is a pure
//! function of the view and the owner is the only writer of these fields. Pruning charges is conditional on the
//! HRQ's resourceVersion, since webhooks add charges concurrently.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use hnc_api::HierarchicalResourceQuota;
use hnc_api::condition::{Condition, carry_transition_times, reasons as condition_reasons, types};
use hnc_api::keys::{annotations, events as reasons, labels, names};
use hnc_shard::hrq::{ResourceList, encode_charges, live_charges, over_limit, summaries};
use hnc_shard::view::{HierarchyView, NsName};
use hnc_shard::{TreeReader, TreeSnapshot};
use k8s_openapi::api::core::v1::ResourceQuota;
use kube::core::ApiResource;
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::view::{QuotaState, QuotaView};
use crate::hierarchy::reconciler::PropagationDirty;
use crate::ownership::Ownership;
use crate::propagation::events::EventRecorder;
use crate::watch::Change;
use crate::writer::{Completed, ObjectRef, Outcome, WriteOp, WriteRequest, Writer, outcome_channel};

/// What the reconciler hears from its two watches.
#[derive(Debug)]
pub enum QuotaEvent {
    /// The HRQ watch.
    Hrq(Change<HierarchicalResourceQuota>),
    /// The singleton ResourceQuota watch (label `hnc.x-k8s.io/hrq=true`).
    Singleton(Change<ResourceQuota>),
}

/// The least time between two planning rounds: changes arriving meanwhile are planned together.
const ROUND_INTERVAL: Duration = Duration::from_millis(50);
/// How long a write that succeeded is not repeated while the view does not show it yet.
const ECHO_WAIT: Duration = Duration::from_secs(5);
/// The first delay before a failed write is planned again; it doubles with each failure in a row.
const FAILURE_BACKOFF: Duration = Duration::from_millis(500);
/// The longest such delay.
const MAX_FAILURE_BACKOFF: Duration = Duration::from_secs(30);
/// How often charges are checked for pruning without another reason.
const PRUNE_PERIOD: Duration = Duration::from_secs(2);

/// Which part of which object a write sets: writes of one part are not repeated while in flight.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Part {
    Singleton(NsName),
    Hrq(NsName, String),
}

/// A write submitted: what it set, and when it succeeded with which resourceVersion.
#[derive(Debug)]
struct Sent {
    body: String,
    tag: u64,
    done: Option<(Instant, Option<String>)>,
}

/// The reconciler. Build with [`QuotaReconciler::new`], then [`QuotaReconciler::run`].
pub struct QuotaReconciler {
    view: QuotaView,
    tree: TreeReader,
    ownership: Ownership,
    writer: Writer,
    outcomes: Option<mpsc::Receiver<Completed>>,
    events: EventRecorder,
    rq: Arc<ApiResource>,
    hrq: Arc<ApiResource>,
    sync_interval: Option<Duration>,
    dirty_status: BTreeSet<(NsName, String)>,
    dirty_singletons: BTreeSet<NsName>,
    all_dirty: bool,
    sent: HashMap<Part, Sent>,
    /// When to look again at parts whose write was held back waiting for its echo, and which.
    recheck: Option<Instant>,
    rechecks: HashSet<Part>,
    /// Writes of each part that failed in a row, and until when the part is not written again (back-off).
    failures: HashMap<Part, (u32, Instant)>,
    /// The conditions last written into each HRQ's status.
    sent_conditions: HashMap<Part, Vec<Condition>>,
    tags: HashMap<u64, Part>,
    next_tag: u64,
    synced_tx: watch::Sender<bool>,
}

impl QuotaReconciler {
    /// A reconciler writing through `writer` (its outcomes come back here) for the trees `ownership` grants;
    /// `sync_interval` is `--hrq-sync-interval` (a full recount; `None` disables it).
    pub fn new(
        view: QuotaView,
        tree: TreeReader,
        ownership: Ownership,
        writer: Writer,
        sync_interval: Option<Duration>,
    ) -> Self {
        let (outcomes_tx, outcomes) = outcome_channel();
        let writer = writer.reporting_to(outcomes_tx);
        QuotaReconciler {
            view,
            tree,
            ownership,
            events: EventRecorder::new(writer.clone()),
            writer,
            outcomes: Some(outcomes),
            rq: Arc::new(ApiResource::erase::<ResourceQuota>(&())),
            hrq: Arc::new(ApiResource::erase::<HierarchicalResourceQuota>(&())),
            sync_interval,
            dirty_status: BTreeSet::new(),
            dirty_singletons: BTreeSet::new(),
            all_dirty: true,
            sent: HashMap::new(),
            recheck: None,
            rechecks: HashSet::new(),
            failures: HashMap::new(),
            sent_conditions: HashMap::new(),
            tags: HashMap::new(),
            next_tag: 0,
            synced_tx: watch::channel(false).0,
        }
    }

    /// True once both watches have listed (the view is complete and webhooks may decide from it).
    pub fn synced(&self) -> watch::Receiver<bool> {
        self.synced_tx.subscribe()
    }

    /// Runs until `stop`. `hierarchy` carries the hierarchy reconciler's notices (a namespace moved: usage and
    /// limits move with it); `ownership_changed` fires when this replica gains or loses trees.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<QuotaEvent>,
        mut hierarchy: mpsc::UnboundedReceiver<PropagationDirty>,
        mut ownership_changed: watch::Receiver<u64>,
        stop: CancellationToken,
    ) {
        let mut outcomes = self.outcomes.take().expect("run is called once");
        let mut prune = tokio::time::interval(PRUNE_PERIOD);
        let mut recount = self.sync_interval.map(tokio::time::interval);
        let mut last_round = Instant::now();
        let mut tree_generation = 0;
        loop {
            let due = self.all_dirty || !self.dirty_status.is_empty() || !self.dirty_singletons.is_empty();
            tokio::select! {
                _ = stop.cancelled() => return,
                event = events.recv() => match event {
                    None => return,
                    Some(event) => {
                        self.observe(event);
                        // Drain what is queued: one round for a burst.
                        while let Ok(event) = events.try_recv() {
                            self.observe(event);
                        }
                    }
                },
                notice = hierarchy.recv() => match notice {
                    // The hierarchy reconciler stopped: the replica is stopping.
                    None => return,
                    Some(_) => self.all_dirty = true,
                },
                Some(done) = outcomes.recv() => self.completed(done),
                Ok(()) = ownership_changed.changed() => self.all_dirty = true,
                _ = prune.tick() => self.mark_charged(),
                _ = async { recount.as_mut().expect("checked").tick().await }, if recount.is_some() => {
                    self.all_dirty = true;
                }
                _ = tokio::time::sleep_until(self.recheck.unwrap_or(last_round)), if self.recheck.is_some() => {
                    self.recheck = None;
                    for part in std::mem::take(&mut self.rechecks) {
                        self.mark(part);
                    }
                }
                _ = tokio::time::sleep_until(last_round + ROUND_INTERVAL), if due => {}
            }
            let tree = self.tree.load();
            if tree.generation() != tree_generation && tree.is_synced() {
                tree_generation = tree.generation();
                self.all_dirty = true;
            }
            let due = self.all_dirty || !self.dirty_status.is_empty() || !self.dirty_singletons.is_empty();
            if due && last_round.elapsed() >= ROUND_INTERVAL {
                last_round = Instant::now();
                self.round();
            }
        }
    }

    fn observe(&mut self, event: QuotaEvent) {
        enum Changed {
            Hrq(NsName),
            Usage(NsName),
            Everything,
        }
        let echo = match &event {
            QuotaEvent::Hrq(Change::Apply(hrq)) => hrq
                .metadata
                .namespace
                .as_deref()
                .zip(hrq.metadata.name.clone())
                .map(|(ns, name)| (Part::Hrq(ns.into(), name), hrq.metadata.resource_version.clone())),
            QuotaEvent::Singleton(Change::Apply(rq)) => rq
                .metadata
                .namespace
                .as_deref()
                .map(|ns| (Part::Singleton(ns.into()), rq.metadata.resource_version.clone())),
            _ => None,
        };
        let view = self.view.clone();
        let mut state = view.write();
        let changed = match event {
            QuotaEvent::Hrq(Change::Apply(hrq)) => state.apply_hrq(&hrq).map(Changed::Hrq),
            QuotaEvent::Hrq(Change::Delete((ns, name))) => {
                state.delete_hrq(&ns, &name);
                Some(Changed::Hrq(ns.as_str().into()))
            }
            QuotaEvent::Hrq(Change::Synced) => {
                state.hrqs_synced = true;
                Some(Changed::Everything)
            }
            QuotaEvent::Singleton(Change::Apply(rq)) => state.apply_singleton(&rq).map(Changed::Usage),
            QuotaEvent::Singleton(Change::Delete((ns, name))) => {
                (name == names::HRQ_RESOURCE_QUOTA).then(|| {
                    state.delete_singleton(&ns);
                    Changed::Usage(ns.as_str().into())
                })
            }
            QuotaEvent::Singleton(Change::Synced) => {
                state.singletons_synced = true;
                Some(Changed::Everything)
            }
        };
        let synced = state.is_synced();
        drop(state);
        self.synced_tx.send_if_modified(|s| std::mem::replace(s, synced) != synced);
        if let Some((part, version)) = &echo {
            self.echoed(part, version.as_deref());
        }
        match changed {
            Some(Changed::Hrq(ns)) => self.hrq_changed(&ns),
            Some(Changed::Usage(ns)) => self.usage_changed(&ns),
            Some(Changed::Everything) => self.all_dirty = true,
            None => {}
        }
    }

    fn mark(&mut self, part: Part) {
        match part {
            Part::Singleton(ns) => {
                self.dirty_singletons.insert(ns);
            }
            Part::Hrq(ns, name) => {
                self.dirty_status.insert((ns, name));
            }
        }
    }

    /// The resourceVersion the view shows for the object `part` writes.
    fn observed_version(&self, part: &Part) -> Option<String> {
        let state = self.view.read();
        match part {
            Part::Singleton(ns) => state.singletons.get(ns).map(|s| s.resource_version.clone()),
            Part::Hrq(ns, name) => {
                state.hrqs.get(&(ns.clone(), name.clone())).map(|h| h.resource_version.clone())
            }
        }
    }

    /// The watch showed `part`'s object at `version`: a write of it that produced that version is seen, and from
    /// now on the view is at least as new as that write.
    fn echoed(&mut self, part: &Part, version: Option<&str>) {
        if let Some(sent) = self.sent.get(part)
            && let Some((_, Some(written))) = &sent.done
            && version == Some(written.as_str())
        {
            self.sent.remove(part);
        }
    }

    /// An HRQ in `ns` changed: the limits of its subtree and the statuses along its ancestry.
    fn hrq_changed(&mut self, ns: &NsName) {
        let tree = self.tree.load();
        self.dirty_singletons.insert(ns.clone());
        self.dirty_singletons.extend(tree.descendants(ns));
        self.ancestry_dirty(&*tree, ns);
    }

    /// The recorded usage of `ns` changed: the statuses of the HRQs above it, and its singleton (the user may
    /// have changed or deleted it).
    fn usage_changed(&mut self, ns: &NsName) {
        let tree = self.tree.load();
        self.dirty_singletons.insert(ns.clone());
        self.ancestry_dirty(&*tree, ns);
    }

    fn ancestry_dirty(&mut self, tree: &dyn HierarchyView, ns: &NsName) {
        let state = self.view.read();
        for at in std::iter::once(ns.clone()).chain(tree.ancestors(ns)) {
            if let Some(hrqs) = state.model.hrqs_in(&at) {
                self.dirty_status.extend(hrqs.keys().map(|name| (at.clone(), name.clone())));
            }
        }
    }

    /// Every HRQ carrying charges: they may be due for pruning.
    fn mark_charged(&mut self) {
        let state = self.view.read();
        let charged: Vec<_> =
            state.hrqs.iter().filter(|(_, h)| h.charges_text.is_some()).map(|(k, _)| k.clone()).collect();
        drop(state);
        self.dirty_status.extend(charged);
    }

    fn completed(&mut self, done: Completed) {
        let Some(part) = self.tags.remove(&done.tag) else { return };
        match &done.outcome {
            Outcome::Written => {
                self.failures.remove(&part);
                if let Some(sent) = self.sent.get_mut(&part)
                    && sent.tag == done.tag
                {
                    sent.done = Some((Instant::now(), done.resource_version.clone()));
                    // The watch may have shown the write already.
                    if done.resource_version.is_some()
                        && self.observed_version(&part) == done.resource_version
                    {
                        self.sent.remove(&part);
                    }
                }
                return;
            }
            Outcome::Failed { message, .. } => {
                if let Part::Singleton(ns) = &part {
                    self.cannot_write_singleton(ns, message);
                }
                // Planned again after a back-off (a refusal that lasts is not retried in a loop).
                let count = self.failures.get(&part).map_or(1, |(n, _)| n.saturating_add(1));
                let delay = FAILURE_BACKOFF.saturating_mul(1 << (count - 1).min(6)).min(MAX_FAILURE_BACKOFF);
                let due = Instant::now() + delay;
                self.failures.insert(part.clone(), (count, due));
                tracing::warn!(?part, error = %message, retry_in = ?delay, "hierarchical quota write failed");
                if self.sent.get(&part).is_some_and(|s| s.tag == done.tag) {
                    self.sent.remove(&part);
                }
                self.recheck = Some(self.recheck.map_or(due, |r| r.min(due)));
                self.rechecks.insert(part);
                return;
            }
            Outcome::Conflict | Outcome::Gone | Outcome::Fenced | Outcome::Stale | Outcome::Superseded => {}
        }
        if self.sent.get(&part).is_some_and(|s| s.tag == done.tag) {
            self.sent.remove(&part);
        }
        self.mark(part);
    }

    /// upstream's `CannotWriteResourceQuota`, on every HRQ in the namespace's ancestry.
    fn cannot_write_singleton(&mut self, ns: &NsName, error: &str) {
        let tree = self.tree.load();
        let view = self.view.clone();
        let state = view.read();
        let mut on = Vec::new();
        for at in std::iter::once(ns.clone()).chain(tree.ancestors(ns)) {
            if let Some(hrqs) = state.model.hrqs_in(&at) {
                on.extend(hrqs.keys().map(|name| (at.clone(), name.clone())));
            }
        }
        drop(state);
        let message =
            format!("could not create/update lower-level ResourceQuota in namespace {ns:?}: {error}");
        for (at, name) in on {
            self.events.warning(&self.hrq, &at, &name, reasons::CANNOT_WRITE_RESOURCE_QUOTA, message.clone());
        }
    }

    /// One planning round over what is dirty.
    fn round(&mut self) {
        let tree = self.tree.load();
        let view = self.view.clone();
        let state = view.read();
        if !state.is_synced() || !tree.is_synced() {
            return;
        }
        if std::mem::take(&mut self.all_dirty) {
            self.dirty_status.extend(state.hrqs.keys().cloned());
            self.dirty_singletons.extend(state.singletons.keys().cloned());
            for (ns, _) in state.hrqs.keys() {
                self.dirty_singletons.insert(ns.clone());
                self.dirty_singletons.extend(tree.descendants(ns));
            }
        }
        let singletons = std::mem::take(&mut self.dirty_singletons);
        let statuses = std::mem::take(&mut self.dirty_status);
        let mut writes = Vec::new();
        for ns in singletons {
            if !self.ownership.owns(&*tree, &ns) {
                continue;
            }
            if let Some(write) = self.plan_singleton(&state, &tree, &ns) {
                writes.push(write);
            }
        }
        let now = jiff::Timestamp::now().as_second();
        let mut over = Vec::new();
        for (ns, name) in statuses {
            if !state.hrqs.contains_key(&(ns.clone(), name.clone())) {
                let part = Part::Hrq(ns, name);
                self.sent.remove(&part);
                self.sent_conditions.remove(&part);
                continue;
            }
            if !self.ownership.owns(&*tree, &ns) {
                continue;
            }
            writes.extend(self.plan_hrq(&state, &*tree, &ns, &name, now, &mut over));
        }
        drop(state);
        for (ns, name, message) in over {
            self.events.warning(&self.hrq, &ns, &name, reasons::OVER_HIERARCHICAL_QUOTA, message);
        }
        let writes: Vec<WriteRequest> =
            writes.into_iter().filter_map(|(part, request)| self.register(part, request)).collect();
        self.writer.submit_batch(writes);
    }

    /// Keeps `request` unless the same write is in flight or succeeded a moment ago and the view has not
    /// caught up; tags it.
    /// A write the watch has not shown yet is not repeated: while in flight, and for [`ECHO_WAIT`] after it
    /// succeeded (the part is looked at again then, in case no event comes); a part whose last write failed is
    /// not written until its back-off ends.
    fn register(&mut self, part: Part, mut request: WriteRequest) -> Option<WriteRequest> {
        if let Some((_, until)) = self.failures.get(&part)
            && *until > Instant::now()
        {
            let due = *until;
            self.recheck = Some(self.recheck.map_or(due, |r| r.min(due)));
            self.rechecks.insert(part);
            return None;
        }
        let body = format!("{:?}", request.op);
        if let Some(sent) = self.sent.get(&part)
            && sent.body == body
        {
            match &sent.done {
                None => return None,
                Some((at, _)) if at.elapsed() < ECHO_WAIT => {
                    let due = *at + ECHO_WAIT;
                    self.recheck = Some(self.recheck.map_or(due, |r| r.min(due)));
                    self.rechecks.insert(part);
                    return None;
                }
                Some(_) => {}
            }
        }
        self.next_tag += 1;
        request.tag = self.next_tag;
        self.tags.insert(request.tag, part.clone());
        self.sent.insert(part, Sent { body, tag: request.tag, done: None });
        Some(request)
    }

    fn plan_singleton(
        &mut self,
        state: &QuotaState,
        tree: &TreeSnapshot,
        ns: &NsName,
    ) -> Option<(Part, WriteRequest)> {
        let part = Part::Singleton(ns.clone());
        let target = ObjectRef::new(self.rq.clone(), Some(ns), names::HRQ_RESOURCE_QUOTA);
        // A namespace that is gone or being deleted is left alone (its singleton goes with it); one HNC does not
        // manage (any more) loses HNC's singleton: no HRQ applies there.
        let observed = tree.node(ns).and_then(|n| n.namespace());
        if observed.is_none_or(|n| n.deleting) {
            self.sent.remove(&part);
            return None;
        }
        if !tree.is_managed(ns) {
            return match state.singletons.get(ns) {
                Some(observed) if observed.marked => {
                    let op = WriteOp::Delete { resource_version: None, uid: Some(observed.uid.clone()) };
                    Some((part, WriteRequest::new(target, op, ns)))
                }
                _ => {
                    self.sent.remove(&part);
                    None
                }
            };
        }
        let limits = state.model.limits(tree, ns);
        let op = match state.singletons.get(ns) {
            None if limits.is_empty() => None,
            Some(observed) if limits.is_empty() => {
                Some(WriteOp::Delete { resource_version: None, uid: Some(observed.uid.clone()) })
            }
            None => Some(WriteOp::create(json!({
                "apiVersion": "v1",
                "kind": "ResourceQuota",
                "metadata": {
                    "name": names::HRQ_RESOURCE_QUOTA,
                    "namespace": &**ns,
                    "labels": {labels::HRQ: "true"},
                    "annotations": {annotations::NONE: "true"},
                },
                "spec": {"hard": written(&limits)},
            }))),
            Some(observed) if observed.marked && same(&observed.hard, &limits) => None,
            Some(observed) => {
                let mut hard = written(&limits);
                for resource in observed.hard.keys().filter(|r| !limits.contains_key(*r)) {
                    hard[resource] = Value::Null;
                }
                Some(WriteOp::MergePatch(json!({
                    "metadata": {"labels": {labels::HRQ: "true"}, "annotations": {annotations::NONE: "true"}},
                    "spec": {"hard": hard},
                })))
            }
        };
        match op {
            None => {
                self.sent.remove(&part);
                None
            }
            Some(op) => Some((part, WriteRequest::new(target, op, ns))),
        }
    }

    fn plan_hrq(
        &mut self,
        state: &QuotaState,
        tree: &dyn HierarchyView,
        ns: &NsName,
        name: &str,
        now: i64,
        over: &mut Vec<(NsName, String, String)>,
    ) -> Option<(Part, WriteRequest)> {
        let observed = state.hrqs.get(&(ns.clone(), name.to_owned()))?;
        let target = ObjectRef::new(self.hrq.clone(), Some(ns), name);
        // Status: hard as written in spec, used = the subtree's recorded usage.
        let used = state.model.hrq_usage(tree, ns, name).unwrap_or_default();
        let (requests, limits) = summaries(&observed.hard, &used);
        let part = Part::Hrq(ns.clone(), name.to_owned());
        let current_used = super::view::read_list(&observed.status.used).0;
        let exceeded = over_limit(&observed.hard, &used);
        let mut conditions = Vec::new();
        if !exceeded.is_empty() {
            let text = |q: &hnc_api::quantity::Quantity| q.canonical().unwrap_or_default();
            let amounts: Vec<String> =
                exceeded.iter().map(|(r, u, h)| format!("{r}: {}/{}", text(u), text(h))).collect();
            let message = format!(
                "the subtree of {ns:?} uses more than this quota allows ({}); new uses of these resources are \
                 denied until usage goes down",
                amounts.join(", ")
            );
            over.push((ns.clone(), name.to_owned(), message.clone()));
            let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
            conditions.push(Condition::new(
                types::EXCEEDED,
                condition_reasons::SUBTREE_OVER_LIMIT,
                message,
                now,
            ));
            // Unchanged conditions keep their time: as stored, or as last sent (so that a write the view does
            // not show yet is not rewritten with a new time, see `register`).
            if let Some(sent) = self.sent_conditions.get(&part) {
                carry_transition_times(&mut conditions, sent);
            }
            carry_transition_times(&mut conditions, &observed.status.conditions);
        }
        let status_current = observed.status.hard == observed.hard_as_written
            && same(&current_used, &used)
            && observed.status.requests_summary == requests
            && observed.status.limits_summary == limits
            && observed.status.conditions.len() == conditions.len()
            && observed.status.conditions.iter().zip(&conditions).all(|(a, b)| a.same_as(b));
        // Charges the recorded usage shows by now (or too old to matter) go; an annotation that does not read
        // counts as no charges and goes too.
        let charges = match state.model.charges(ns, name) {
            Some(charges) => {
                let live =
                    live_charges(charges, |charged, charge| state.model.charge_pending(charged, charge), now);
                (live.len() != charges.len())
                    .then(|| if live.is_empty() { Value::Null } else { Value::String(encode_charges(&live)) })
            }
            None => observed.charges_text.is_some().then_some(Value::Null),
        };
        if status_current && charges.is_none() {
            self.sent.remove(&part);
            self.sent_conditions.remove(&part);
            return None;
        }
        // One write per object (the writer keeps only the newest plan of an object): the status, and the
        // charges when some go — then conditional on the version they were read from.
        let mut patch = json!({});
        if !status_current {
            let mut hard = serde_json::to_value(&observed.hard_as_written).unwrap_or_else(|_| json!({}));
            for resource in observed.status.hard.keys().filter(|r| !observed.hard_as_written.contains_key(*r))
            {
                hard[resource] = Value::Null;
            }
            let mut used_json = written(&used);
            for resource in observed.status.used.keys().filter(|r| !used.contains_key(*r)) {
                used_json[resource] = Value::Null;
            }
            let conditions_json = if conditions.is_empty() { Value::Null } else { json!(conditions) };
            patch["status"] = json!({"hard": hard, "used": used_json, "requestsSummary": requests,
                "limitsSummary": limits, "conditions": conditions_json});
            self.sent_conditions.insert(part.clone(), conditions);
        }
        if let Some(charges) = charges {
            patch["metadata"] = json!({
                "resourceVersion": observed.resource_version,
                "annotations": {annotations::HRQ_CHARGES: charges},
            });
        }
        Some((part, WriteRequest::new(target, WriteOp::MergePatch(patch), ns)))
    }
}

/// Equal amounts for the same resources.
fn same(a: &ResourceList, b: &ResourceList) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|((r, q), (s, p))| r == s && q.checked_cmp(p) == Some(std::cmp::Ordering::Equal))
}

/// A resource list as JSON, amounts in canonical form.
fn written(list: &ResourceList) -> Value {
    Value::Object(
        list.iter().map(|(r, q)| (r.clone(), Value::String(q.canonical().unwrap_or_default()))).collect(),
    )
}
