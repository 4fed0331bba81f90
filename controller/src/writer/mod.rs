//! The writer: every API write the controller makes goes through here.
//!
//! ```text
//!  planner / reconcilers ──submit──▶ FairQueue ──▶ dispatcher ──permit──▶ write task ──fence?──▶ API server
//!   (a lane per submission,          (flows, then     (concurrency limit,        │                    │
//!    a flow per submitter)            lanes, round     Retry-After pause,         └── outcome ◀─ classify┘
//!                                     robin)           optional rate ceiling)
//! ```
//!
//! * fair queueing ([`FairQueue`]): each submission is a lane, served round robin with the other lanes of its
//!   flow, and flows round robin with each other, so a fresh change never waits behind a backlog; the newest
//!   plan per object wins, and writes to one object never overlap;
//! * the API server's capacity is measured, not configured ([`ConcurrencyLimit`]): an adaptive concurrency limit
//!   (slow start, then Vegas-style on latency, halved on 429/5xx); a 429 or 503 with `Retry-After` pauses every
//!   new attempt for that long, not just the one request; `--apiserver-qps-throttle`, when set, adds a hard
//!   ceiling in writes per second ([`AdaptiveRate`], AIMD below it);
//! * transient failures retried with exponential backoff and full jitter, honouring `retryAfterSeconds`;
//! * optimistic concurrency: a 409 Conflict is never retried blindly — it is reported so the caller re-plans from
//!   fresh state; `Recreate` (RoleBinding roleRef) deletes with a resourceVersion precondition, then creates;
//! * the fence (ownership) check runs right before every attempt: a replica that lost a shard stops writing for it
//!   at once, and the new owner's first plan covers whatever was dropped; a write may also carry a
//!   [`Precondition`], a read made right before it is sent that confirms what the plan assumed (a write into
//!   another replica's copies when this replica's view of the hierarchy may lag the API server's);
//! * outcomes go back to whoever submitted the write: each handle may carry its own bounded outcome channel
//!   ([`Writer::reporting_to`]), and every [`Completed`] is sent to the channel of the handle that submitted the
//!   request; a handle without one submits fire-and-forget (see [`OUTCOME_BUFFER`] for why waiting for room in
//!   a full channel cannot deadlock);
//! * [`PendingWrites`]: a submitter's record of its writes sent and not yet settled, so that a re-plan in that
//!   window does not write twice, and [`RetryQueue`]: one delay queue for the re-plans that outcomes schedule;
//! * metrics: writes by verb/resource/outcome, write latency, batch sizes, queue depth, lanes, the concurrency
//!   limit and writes in flight, the rate the writer allows itself, Retry-After pauses, and the propagation
//!   latency from a source change to the last of its copies written ([`LatencyGroup`]).

mod exec;
mod limit;
mod pending;
mod queue;
mod rate;

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kube::Client;
use kube::core::ApiResource;
use parking_lot::Mutex;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use limit::{ConcurrencyLimit, LimitConfig};
pub use pending::{PendingWrites, RetryQueue, retry_delay};
pub use queue::{FairQueue, Lane, Pushed};
pub use rate::{AdaptiveRate, RateConfig, Signal};

/// The object a write targets.
#[derive(Clone, Debug)]
pub struct ObjectRef {
    /// Group, version, kind and plural of the object's type.
    pub resource: Arc<ApiResource>,
    /// Namespace, `None` for cluster-scoped objects.
    pub namespace: Option<String>,
    /// Object name.
    pub name: String,
}

impl ObjectRef {
    /// A reference to `namespace/name` of `resource`.
    pub fn new(resource: Arc<ApiResource>, namespace: Option<&str>, name: &str) -> Self {
        ObjectRef { resource, namespace: namespace.map(str::to_owned), name: name.to_owned() }
    }

    /// `plural.group` (or `plural` for the core group): the metric label for the resource.
    pub fn resource_label(&self) -> String {
        if self.resource.group.is_empty() {
            self.resource.plural.clone()
        } else {
            format!("{}.{}", self.resource.plural, self.resource.group)
        }
    }
}

impl PartialEq for ObjectRef {
    fn eq(&self, other: &Self) -> bool {
        self.resource.group == other.resource.group
            && self.resource.plural == other.resource.plural
            && self.namespace == other.namespace
            && self.name == other.name
    }
}

impl Eq for ObjectRef {}

impl Hash for ObjectRef {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.resource.group.hash(state);
        self.resource.plural.hash(state);
        self.namespace.hash(state);
        self.name.hash(state);
    }
}

/// An object to send. Copies are built right before they are sent, from the shared source they come from, so
/// that a queue of a hundred thousand planned copies holds shared sources rather than as many JSON documents.
#[derive(Clone)]
pub enum Body {
    /// Built already.
    Ready(serde_json::Value),
    /// Built when sent.
    Deferred(Arc<dyn Fn() -> serde_json::Value + Send + Sync>),
}

impl Body {
    /// The object.
    pub fn build(&self) -> serde_json::Value {
        match self {
            Body::Ready(value) => value.clone(),
            Body::Deferred(build) => build(),
        }
    }
}

impl From<serde_json::Value> for Body {
    fn from(value: serde_json::Value) -> Self {
        Body::Ready(value)
    }
}

impl std::fmt::Debug for Body {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Body::Ready(value) => value.fmt(f),
            Body::Deferred(_) => f.write_str("<built when sent>"),
        }
    }
}

/// What to do to the target.
#[derive(Clone, Debug)]
pub enum WriteOp {
    /// Create the object (JSON, complete with apiVersion/kind/metadata).
    Create(Body),
    /// Replace the object; `metadata.resourceVersion` must be the version the plan was made from.
    Update(Body),
    /// JSON merge patch; include `metadata.resourceVersion` to make it conditional.
    MergePatch(serde_json::Value),
    /// Delete, only if the object is still at `resource_version` and still the object with `uid` (each
    /// precondition when given). A failed precondition is a 409: the caller re-plans from what it observes.
    Delete {
        /// Version precondition; it also pins the object, since a re-created object has another version.
        resource_version: Option<String>,
        /// Uid precondition, for deletes that must not depend on the version (a namespace's labels change
        /// under other writers, its identity does not).
        uid: Option<String>,
    },
    /// Delete (conditional on the given version) and create anew — for changes to immutable fields such as a
    /// RoleBinding's `roleRef`. The fence is checked again between the two requests.
    Recreate {
        /// Version the delete is conditional on.
        resource_version: Option<String>,
        /// The object to create afterwards.
        object: Body,
    },
}

impl WriteOp {
    /// Create `object`, built already.
    pub fn create(object: serde_json::Value) -> Self {
        WriteOp::Create(Body::Ready(object))
    }

    /// Replace with `object`, built already.
    pub fn update(object: serde_json::Value) -> Self {
        WriteOp::Update(Body::Ready(object))
    }

    /// The API verb, as used in metrics.
    pub fn verb(&self) -> &'static str {
        match self {
            WriteOp::Create(_) => "create",
            WriteOp::Update(_) => "update",
            WriteOp::MergePatch(_) => "patch",
            WriteOp::Delete { .. } => "delete",
            WriteOp::Recreate { .. } => "recreate",
        }
    }
}

/// Measures "source changed → last copy written": shared by every write planned for one source change; the
/// latency is recorded when the last of them completes (the last clone is dropped), unless one of them failed.
#[derive(Debug)]
pub struct LatencyGroup {
    started: Instant,
    failed: AtomicBool,
}

impl LatencyGroup {
    /// A group for a change first observed at `started`.
    pub fn new(started: Instant) -> Arc<Self> {
        Arc::new(LatencyGroup { started, failed: AtomicBool::new(false) })
    }

    fn fail(&self) {
        self.failed.store(true, Ordering::Relaxed);
    }
}

impl Drop for LatencyGroup {
    fn drop(&mut self) {
        if !self.failed.load(Ordering::Relaxed) {
            metrics::histogram!("hnc_propagation_latency_seconds")
                .record(self.started.elapsed().as_secs_f64());
        }
    }
}

/// A read made with the writer's client right before a write is sent (after the fence), confirming what the
/// plan assumed: `Ok(false)` leaves the write unsent with [`Outcome::Stale`]; an error counts as the attempt's
/// (a 429 or 5xx is retried like a failed write).
#[derive(Clone)]
pub struct Precondition(
    pub Arc<dyn Fn(Client) -> futures::future::BoxFuture<'static, Result<bool, kube::Error>> + Send + Sync>,
);

impl std::fmt::Debug for Precondition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<precondition>")
    }
}

/// One write to make.
#[derive(Clone, Debug)]
pub struct WriteRequest {
    /// The object written.
    pub target: ObjectRef,
    /// The write.
    pub op: WriteOp,
    /// The namespace whose tree this write serves: the fence lets it through only while this replica owns that
    /// tree. Usually the target's namespace; for a subnamespace being created, its parent.
    pub scope: Arc<str>,
    /// Latency group of the source change this write serves, if any.
    pub latency: Option<Arc<LatencyGroup>>,
    /// The submitter's own number for this write, returned in its [`Completed`]: several writes of one object
    /// can be outstanding (one in flight, a newer one parked), and their outcomes must not be confused.
    pub tag: u64,
    /// Checked right before every attempt, if any.
    pub precondition: Option<Precondition>,
}

impl WriteRequest {
    /// A write of `target` serving the tree of `scope`.
    pub fn new(target: ObjectRef, op: WriteOp, scope: &str) -> Self {
        WriteRequest { target, op, scope: scope.into(), latency: None, tag: 0, precondition: None }
    }
}

/// How a write ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The API server applied it (a delete of an absent object counts).
    Written,
    /// 409: the object changed since the plan (or already exists); re-plan from fresh state.
    Conflict,
    /// 404 on update/patch: the object is gone; re-plan.
    Gone,
    /// Not written: this replica no longer owns the object's tree.
    Fenced,
    /// Not written: the write's [`Precondition`] found the plan was made from a view older than the API
    /// server's state.
    Stale,
    /// Replaced by a newer plan for the same object before it was attempted.
    Superseded,
    /// Failed permanently or after all retries.
    Failed {
        /// HTTP status, when the API server answered.
        code: Option<u16>,
        /// What went wrong.
        message: String,
    },
}

impl Outcome {
    fn label(&self) -> &'static str {
        match self {
            Outcome::Written => "written",
            Outcome::Conflict => "conflict",
            Outcome::Gone => "gone",
            Outcome::Fenced => "fenced",
            Outcome::Stale => "stale",
            Outcome::Superseded => "superseded",
            Outcome::Failed { .. } => "failed",
        }
    }
}

/// A finished write, reported to whoever needs to react (re-plan on conflict, emit events on failure).
#[derive(Clone, Debug)]
pub struct Completed {
    /// The object.
    pub target: ObjectRef,
    /// Verb attempted.
    pub verb: &'static str,
    /// Result.
    pub outcome: Outcome,
    /// The object's resourceVersion after a successful create, update or patch.
    pub resource_version: Option<String>,
    /// The request's [`WriteRequest::tag`].
    pub tag: u64,
}

/// Writer tuning.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// The adaptive concurrency limit.
    pub limit: LimitConfig,
    /// A hard ceiling on attempts per second (with AIMD below it); `None`: no ceiling, the concurrency limit
    /// alone finds what the API server takes.
    pub rate: Option<RateConfig>,
    /// Attempts for transient failures before reporting `Failed`.
    pub max_attempts: u32,
    /// First retry delay (doubled each attempt, full jitter).
    pub base_backoff: Duration,
    /// Largest retry delay.
    pub max_backoff: Duration,
    /// The write window: each request of an attempt is committed within this time of the fence check that let
    /// it through, or not at all (see `exec`). Must be shorter than `lease duration − renew deadline`;
    /// [`write_window`] derives it from the Lease timing.
    pub attempt_timeout: Duration,
}

/// The write window for a Lease timing: four fifths of `lease duration − renew deadline` (4 s at the default
/// 15 s / 10 s). A fence stays open at most `renew deadline` after the renewal that opened it, and no other
/// replica takes the Lease over before `lease duration` after that renewal; a write let through at the last
/// moment is settled at the server before then, with a fifth of the gap to spare for the request's travel.
pub fn write_window(lease_duration: Duration, renew_deadline: Duration) -> Duration {
    lease_duration.saturating_sub(renew_deadline).mul_f64(0.8)
}

impl WriterConfig {
    /// Adaptive, with no ceiling: the default (`--apiserver-qps-throttle` unset or 0).
    pub fn adaptive() -> Self {
        WriterConfig {
            limit: LimitConfig::default(),
            rate: None,
            max_attempts: 8,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
            attempt_timeout: write_window(Duration::from_secs(15), Duration::from_secs(10)),
        }
    }

    /// Adaptive under a hard ceiling of `qps` writes per second.
    pub fn with_qps(qps: f64) -> Self {
        WriterConfig { rate: Some(RateConfig::with_max(qps)), ..Self::adaptive() }
    }

    /// What `--apiserver-qps-throttle` means: a positive value is a ceiling, 0 none.
    pub fn from_flag(qps: f64) -> Self {
        if qps > 0.0 { Self::with_qps(qps) } else { Self::adaptive() }
    }
}

/// Builds the writer's client from a client configuration. The writer owns retries and rate adaptation, so the
/// kube client's own retry of 429/503/504 is switched off — otherwise throttling would be retried invisibly and
/// the adaptive rate would never learn the API server is overloaded.
pub fn writer_client(config: &kube::Config) -> Result<Client, kube::Error> {
    let mut config = config.clone();
    config.default_retry = false;
    Client::try_from(config)
}

/// Answers "may this replica write for the tree of this namespace now?" — called with a write's `scope` right
/// before every attempt. (In a replica it asks the shard leases' own fences, through the ownership.)
pub type Fence = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Room in a submitter's outcome channel ([`outcome_channel`]).
///
/// Bounded, so outcomes a submitter has not read yet (the propagation engine while it plans a large round)
/// never pile up in a queue of their own: past this many, each stays with its write, which counts as in flight
/// until its outcome is delivered — memory the write held anyway. The writer waits for room inside the task of
/// that write, holding no send permit and no lock: other writes, of every flow, go on, and only a newer write
/// of the same object stays parked behind it. A submitter never waits for the writer (submitting only locks the
/// queue for a moment), so the wait ends when the submitter next drains its channel: no deadlock. The one
/// outcome reported from inside a submission — [`Outcome::Superseded`], to the handle whose queued write was
/// replaced, possibly the submitter itself — is never waited for: when the channel is full, a task of its own
/// delivers it.
pub const OUTCOME_BUFFER: usize = 1024;

/// A channel for a submitter's outcomes, of [`OUTCOME_BUFFER`] capacity; give the sender to
/// [`Writer::reporting_to`].
pub fn outcome_channel() -> (mpsc::Sender<Completed>, mpsc::Receiver<Completed>) {
    mpsc::channel(OUTCOME_BUFFER)
}

/// The flow of writers that were not given one.
pub const DEFAULT_FLOW: &str = "default";

struct Inner {
    client: Client,
    config: WriterConfig,
    fence: Fence,
    queue: Mutex<FairQueue<ObjectRef, Queued, &'static str>>,
    gate: Arc<Gate>,
    work: Notify,
    idle: Notify,
    stop: CancellationToken,
}

/// A write waiting in the queue, with the channel its outcome goes to.
struct Queued {
    request: WriteRequest,
    reply: Option<mpsc::Sender<Completed>>,
}

/// Handle to the running writer. Cloning shares it (flow and outcome channel included); [`Writer::with_flow`]
/// shares it under another flow, [`Writer::reporting_to`] with another outcome channel.
#[derive(Clone)]
pub struct Writer {
    inner: Arc<Inner>,
    flow: &'static str,
    outcomes: Option<mpsc::Sender<Completed>>,
}

impl Writer {
    /// Starts the writer. `client` should come from [`writer_client`]. The handle returned submits into
    /// [`DEFAULT_FLOW`] and reports no outcomes; see [`Writer::with_flow`] and [`Writer::reporting_to`].
    pub fn start(
        client: Client,
        config: WriterConfig,
        fence: Fence,
    ) -> (Writer, tokio::task::JoinHandle<()>) {
        let gate = Arc::new(Gate::new(&config));
        let inner = Arc::new(Inner {
            client,
            config,
            fence,
            queue: Mutex::new(FairQueue::default()),
            gate,
            work: Notify::new(),
            idle: Notify::new(),
            stop: CancellationToken::new(),
        });
        inner.gate.publish();
        // At 0 from the start, so that a rate over them is 0 rather than absent until the first error.
        for reason in TRANSIENT_REASONS {
            metrics::counter!("hnc_write_transient_errors_total", "reason" => reason).increment(0);
        }
        let handle = tokio::spawn(dispatch(inner.clone()));
        (Writer { inner, flow: DEFAULT_FLOW, outcomes: None }, handle)
    }

    /// The same writer, submitting into `flow`: flows share throughput equally, whatever the number of
    /// submissions each makes (the hierarchy reconciler's thousands of one-write reconciles get one share, the
    /// propagation engine's plan rounds another). A submitter of its own: it reports no outcomes until given a
    /// channel with [`Writer::reporting_to`].
    pub fn with_flow(&self, flow: &'static str) -> Writer {
        Writer { inner: self.inner.clone(), flow, outcomes: None }
    }

    /// The same writer and flow, reporting the outcome of every write submitted through the handle returned
    /// (and its clones) on `outcomes` — from [`outcome_channel`], see [`OUTCOME_BUFFER`]. The receiver must be
    /// drained for as long as writes are outstanding.
    pub fn reporting_to(&self, outcomes: mpsc::Sender<Completed>) -> Writer {
        Writer { inner: self.inner.clone(), flow: self.flow, outcomes: Some(outcomes) }
    }

    /// The same writer and flow, reporting no outcomes (fire-and-forget writes, such as Events).
    pub fn unreported(&self) -> Writer {
        Writer { inner: self.inner.clone(), flow: self.flow, outcomes: None }
    }

    /// Queues one write, as a lane of its own.
    pub fn submit(&self, request: WriteRequest) {
        self.submit_batch(vec![request]);
    }

    /// Queues a batch of writes as one lane of this writer's flow (recorded as one batch in metrics).
    pub fn submit_batch(&self, batch: Vec<WriteRequest>) {
        if batch.is_empty() {
            return;
        }
        metrics::histogram!("hnc_write_batch_size").record(batch.len() as f64);
        let mut superseded = Vec::new();
        {
            let mut queue = self.inner.queue.lock();
            let lane = queue.open_lane(self.flow);
            for request in batch {
                let queued = Queued { request, reply: self.outcomes.clone() };
                let (_, old) = queue.push(queued.request.target.clone(), queued, lane);
                superseded.extend(old);
            }
            queue_gauges(&queue);
        }
        for old in superseded {
            let done = record(&old.request, Outcome::Superseded, None);
            if let Some(reply) = old.reply {
                reply_without_waiting(reply, done);
            }
        }
        self.inner.work.notify_one();
    }

    /// Writes waiting (queued or parked behind an in-flight write of the same object).
    pub fn queue_depth(&self) -> usize {
        self.inner.queue.lock().waiting()
    }

    /// Writes per second the writer allows itself now: the ceiling's current rate when one is set, else the
    /// concurrency limit over the latest latency (infinite before the first measurement).
    pub fn current_rate(&self) -> f64 {
        self.inner.gate.state.lock().rate()
    }

    /// The current concurrency limit.
    pub fn concurrency_limit(&self) -> usize {
        self.inner.gate.state.lock().limit.limit()
    }

    /// Resolves once nothing is queued or in flight. A write counts as in flight until its outcome is in its
    /// submitter's channel, so a caller waiting here must not leave a full channel of its own undrained.
    pub async fn idle(&self) {
        loop {
            let notified = self.inner.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.inner.queue.lock().is_idle() {
                return;
            }
            notified.await;
        }
    }

    /// Stops the writer; writes in flight are abandoned.
    pub fn shutdown(&self) {
        self.inner.stop.cancel();
    }
}

fn queue_gauges(queue: &FairQueue<ObjectRef, Queued, &'static str>) {
    metrics::gauge!("hnc_write_queue_depth").set(queue.waiting() as f64);
    metrics::gauge!("hnc_write_lanes").set(queue.lanes() as f64);
}

/// Takes a send permit, then the next write in fair order, and starts it; the permit is taken first so that the
/// queue chooses what to send at the moment something can be sent.
///
/// A write task that panics takes the dispatcher down with it (the panic is resumed here): its object would stay
/// "in flight" for ever, so the writer fails as a whole and the replica stops holding work (`crate::tasks`).
async fn dispatch(inner: Arc<Inner>) {
    let mut writes = JoinSet::new();
    loop {
        let permit = tokio::select! {
            permit = inner.gate.acquire() => permit,
            Some(ended) = writes.join_next() => {
                resume_panic(ended);
                continue;
            }
            _ = inner.stop.cancelled() => return,
        };
        let (key, queued) = loop {
            let notified = inner.work.notified();
            let next = inner.queue.lock().pop();
            if let Some(next) = next {
                break next;
            }
            tokio::select! {
                _ = notified => {}
                Some(ended) = writes.join_next() => resume_panic(ended),
                _ = inner.stop.cancelled() => return,
            }
        };
        writes.spawn(write(inner.clone(), key, queued, permit));
    }
}

fn resume_panic(ended: Result<(), tokio::task::JoinError>) {
    if let Err(error) = ended
        && error.is_panic()
    {
        std::panic::resume_unwind(error.into_panic());
    }
}

async fn write(inner: Arc<Inner>, key: ObjectRef, queued: Queued, permit: Permit) {
    let Queued { request, reply } = queued;
    // The send permit is returned when this ends, before the outcome is delivered (see OUTCOME_BUFFER).
    let (outcome, resource_version) = write_with_retries(&inner, &request, permit).await;
    let done = record(&request, outcome, resource_version);
    if let Some(reply) = reply {
        // Waits for room; a submitter gone is no one to tell.
        let _ = reply.send(done).await;
    }
    let idle = {
        let mut queue = inner.queue.lock();
        queue.done(&key);
        queue_gauges(&queue);
        queue.is_idle()
    };
    // A parked write may have been released.
    inner.work.notify_one();
    if idle {
        inner.idle.notify_waiters();
    }
}
/// Counts and logs a finished write, ends its latency group on failure, and returns its report.
fn record(request: &WriteRequest, outcome: Outcome, resource_version: Option<String>) -> Completed {
    let verb = request.op.verb();
    metrics::counter!("hnc_writes_total", "verb" => verb, "resource" => request.target.resource_label(),
        "outcome" => outcome.label())
    .increment(1);
    if let (Outcome::Failed { .. } | Outcome::Fenced, Some(group)) = (&outcome, &request.latency) {
        group.fail();
    }
    if let Outcome::Failed { code, message } = &outcome {
        tracing::warn!(verb, resource = %request.target.resource_label(),
            namespace = request.target.namespace.as_deref().unwrap_or(""), name = %request.target.name,
            code = code.unwrap_or(0), %message, "write failed");
    }
    Completed { target: request.target.clone(), verb, outcome, resource_version, tag: request.tag }
}

/// Delivers an outcome from inside a submission, where waiting for room could wait on the caller itself: at
/// once when there is room, otherwise from a task of its own (outside a runtime, with no task to wait in, it
/// is dropped).
fn reply_without_waiting(reply: mpsc::Sender<Completed>, done: Completed) {
    match reply.try_send(done) {
        Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
        Err(mpsc::error::TrySendError::Full(done)) => {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    let _ = reply.send(done).await;
                });
            }
        }
    }
}

async fn write_with_retries(
    inner: &Inner,
    request: &WriteRequest,
    permit: Permit,
) -> (Outcome, Option<String>) {
    let mut permit = Some(permit);
    let mut attempt = 0;
    loop {
        attempt += 1;
        if !(inner.fence)(&request.scope) {
            return (Outcome::Fenced, None);
        }
        let held = match permit.take() {
            Some(permit) => {
                inner.gate.pause().await;
                permit
            }
            None => inner.gate.acquire().await,
        };
        if !(inner.fence)(&request.scope) {
            return (Outcome::Fenced, None);
        }
        let (sent, in_flight) = inner.gate.sending();
        let fence = || (inner.fence)(&request.scope);
        let result = match exec::precondition(&inner.client, request.precondition.as_ref()).await {
            Some(refused) => refused,
            None => {
                exec::execute(
                    &inner.client,
                    &request.target,
                    &request.op,
                    inner.config.attempt_timeout,
                    fence,
                )
                .await
            }
        };
        let elapsed = sent.elapsed();
        metrics::histogram!("hnc_write_duration_seconds", "verb" => request.op.verb())
            .record(elapsed.as_secs_f64());
        match result {
            exec::Attempt::Done(outcome, resource_version) => {
                inner.gate.answered(sent, Answer::Served { latency: elapsed, in_flight });
                return (outcome, resource_version);
            }
            exec::Attempt::Transient { code, message, retry_after } => {
                inner.gate.answered(sent, Answer::Congested { retry_after });
                let reason = match code {
                    Some(429) => TRANSIENT_REASONS[0],
                    Some(_) => TRANSIENT_REASONS[1],
                    None => TRANSIENT_REASONS[2],
                };
                metrics::counter!("hnc_write_transient_errors_total", "reason" => reason).increment(1);
                // Not holding a permit while waiting to retry: the limit counts requests at the server.
                drop(held);
                if attempt >= inner.config.max_attempts {
                    let message = format!("after {attempt} attempts: {message}");
                    return (Outcome::Failed { code, message }, None);
                }
                let delay = backoff(&inner.config, attempt).max(retry_after.unwrap_or_default());
                tracing::debug!(attempt, ?delay, code = code.unwrap_or(0), %message, "retrying write");
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// `hnc_write_transient_errors_total`'s reasons: 429, 5xx, no answer.
const TRANSIENT_REASONS: [&str; 3] = ["throttled", "server_error", "unanswered"];

/// How an attempt was answered, as far as the gate is concerned.
enum Answer {
    /// The server answered (success or a definite error) after `latency`, with `in_flight` writes outstanding.
    Served { latency: Duration, in_flight: usize },
    /// 429, 5xx, or no answer; `retry_after` when the server said when to come back.
    Congested { retry_after: Option<Duration> },
}

/// What an attempt must pass before it is sent: a permit of the adaptive concurrency limit (a semaphore resized
/// as the limit moves), the pause a `Retry-After` imposed, and a token of the rate ceiling when one is set.
struct Gate {
    permits: Arc<Semaphore>,
    state: Mutex<GateState>,
}

struct GateState {
    limit: ConcurrencyLimit,
    rate: Option<AdaptiveRate>,
    /// Permits in existence, available or held; above the limit after a decrease until enough are returned.
    issued: usize,
    in_flight: usize,
    paused_until: Option<Instant>,
}

impl GateState {
    fn rate(&self) -> f64 {
        match (&self.rate, self.limit.latency()) {
            (Some(rate), _) => rate.rate(),
            (None, Some(latency)) => self.limit.limit() as f64 / latency.as_secs_f64().max(1e-6),
            (None, None) => f64::INFINITY,
        }
    }
}

/// A send permit; returned (or retired, when the limit has shrunk below the permits in existence) on drop.
struct Permit {
    gate: Arc<Gate>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut state = self.gate.state.lock();
        if state.issued > state.limit.limit()
            && let Some(permit) = self.permit.take()
        {
            permit.forget();
            state.issued -= 1;
        }
    }
}

impl Gate {
    fn new(config: &WriterConfig) -> Self {
        let limit = ConcurrencyLimit::new(config.limit.clone());
        let issued = limit.limit();
        Gate {
            permits: Arc::new(Semaphore::new(issued)),
            state: Mutex::new(GateState {
                limit,
                rate: config.rate.clone().map(|rate| AdaptiveRate::new(rate, Instant::now())),
                issued,
                in_flight: 0,
                paused_until: None,
            }),
        }
    }

    /// A permit, once the pause (if any) is over and the rate ceiling (if any) allows.
    async fn acquire(self: &Arc<Self>) -> Permit {
        let permit = self.permits.clone().acquire_owned().await.expect("the semaphore is never closed");
        let permit = Permit { gate: self.clone(), permit: Some(permit) };
        loop {
            let wait = {
                let mut state = self.state.lock();
                let now = Instant::now();
                match state.paused_until {
                    Some(until) if until > now => Some(until - now),
                    _ => state.rate.as_mut().and_then(|rate| rate.try_acquire(now).err()),
                }
            };
            match wait {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return permit,
            }
        }
    }

    /// Waits out a `Retry-After` pause.
    async fn pause(&self) {
        loop {
            let until = self.state.lock().paused_until;
            match until.map(|until| until.saturating_duration_since(Instant::now())) {
                Some(wait) if !wait.is_zero() => tokio::time::sleep(wait).await,
                _ => return,
            }
        }
    }

    /// An attempt is being sent: when, and how many are outstanding with it.
    fn sending(&self) -> (Instant, usize) {
        let mut state = self.state.lock();
        state.in_flight += 1;
        metrics::gauge!("hnc_write_in_flight").set(state.in_flight as f64);
        (Instant::now(), state.in_flight)
    }

    /// The attempt sent at `sent` was answered.
    fn answered(&self, sent: Instant, answer: Answer) {
        let mut state = self.state.lock();
        let now = Instant::now();
        state.in_flight -= 1;
        match answer {
            Answer::Served { latency, in_flight } => {
                state.limit.on_success(sent, latency, in_flight, now);
                if let Some(rate) = &mut state.rate {
                    rate.observe(Signal::Ok(latency), now);
                }
            }
            Answer::Congested { retry_after } => {
                state.limit.on_congestion(sent, now);
                if let Some(rate) = &mut state.rate {
                    rate.observe(Signal::Congested, now);
                }
                if let Some(wait) = retry_after.filter(|w| !w.is_zero()) {
                    let until = now + wait;
                    if state.paused_until.is_none_or(|t| t < until) {
                        state.paused_until = Some(until);
                        metrics::counter!("hnc_write_pauses_total").increment(1);
                    }
                }
            }
        }
        self.resize(&mut state);
        drop(state);
        self.publish();
    }

    /// Brings the permits in existence to the limit: adds them at once; retires the available ones at once and
    /// the held ones as they are returned.
    fn resize(&self, state: &mut GateState) {
        let target = state.limit.limit();
        if target > state.issued {
            self.permits.add_permits(target - state.issued);
            state.issued = target;
        } else if target < state.issued {
            state.issued -= self.permits.forget_permits(state.issued - target);
        }
    }

    fn publish(&self) {
        let state = self.state.lock();
        metrics::gauge!("hnc_write_concurrency_limit").set(state.limit.limit() as f64);
        metrics::gauge!("hnc_write_in_flight").set(state.in_flight as f64);
        metrics::gauge!("hnc_write_rate_limit").set(state.rate());
    }
}

/// Exponential backoff with full jitter: uniform in [0, min(max, base × 2^(attempt-1))].
fn backoff(config: &WriterConfig, attempt: u32) -> Duration {
    let exp = config.base_backoff.saturating_mul(1u32 << (attempt - 1).min(16));
    let cap = exp.min(config.max_backoff);
    cap.mul_f64(rand::random::<f64>())
}
