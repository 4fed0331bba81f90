//! The writer: every API write the controller makes goes through here.
//!
//! ```text
//!  planner / reconcilers ──submit──▶ CoalescingQueue ──▶ N workers ──fence?──rate token──▶ API server
//!                                      (newest plan                 │                       │
//!                                       per object wins)            └── outcome ◀── classify ┘
//! ```
//!
//! * bounded concurrency (`concurrency` workers) and an adaptive rate (AIMD on 429/5xx/slow responses);
//! * transient failures retried with exponential backoff and full jitter, honouring `retryAfterSeconds`;
//! * optimistic concurrency: a 409 Conflict is never retried blindly — it is reported so the caller re-plans from
//!   fresh state; `Recreate` (RoleBinding roleRef) deletes with a resourceVersion precondition, then creates;
//! * the fence (ownership) check runs right before every attempt: a replica that lost a shard stops writing for it
//!   at once, and the new owner's first plan covers whatever was dropped;
//! * metrics: writes by verb/resource/outcome, write latency, batch sizes, queue depth, current rate, and the
//!   propagation latency from a source change to the last of its copies written ([`LatencyGroup`]).

mod exec;
mod queue;
mod rate;

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kube::Client;
use kube::core::ApiResource;
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub use queue::{CoalescingQueue, Pushed};
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
    /// Delete, optionally only if the object is still at `resource_version`.
    Delete {
        /// Precondition; `None` deletes whatever is there.
        resource_version: Option<String>,
    },
    /// Delete (conditional on the given version) and create anew — for changes to immutable fields such as a
    /// RoleBinding's `roleRef`.
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
}

impl WriteRequest {
    /// A write of `target` serving the tree of `scope`.
    pub fn new(target: ObjectRef, op: WriteOp, scope: &str) -> Self {
        WriteRequest { target, op, scope: scope.into(), latency: None, tag: 0 }
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
    /// Concurrent writes.
    pub concurrency: usize,
    /// Rate limits.
    pub rate: RateConfig,
    /// Attempts for transient failures before reporting `Failed`.
    pub max_attempts: u32,
    /// First retry delay (doubled each attempt, full jitter).
    pub base_backoff: Duration,
    /// Largest retry delay.
    pub max_backoff: Duration,
}

impl WriterConfig {
    /// Defaults for a write ceiling of `qps` writes per second.
    pub fn with_qps(qps: f64) -> Self {
        WriterConfig {
            concurrency: 16,
            rate: RateConfig::with_max(qps),
            max_attempts: 8,
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(10),
        }
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
/// before every attempt.
pub type Fence = Arc<dyn Fn(&str) -> bool + Send + Sync>;

struct Inner {
    client: Client,
    config: WriterConfig,
    fence: Fence,
    queue: Mutex<CoalescingQueue<ObjectRef, WriteRequest>>,
    rate: Mutex<AdaptiveRate>,
    work: Notify,
    idle: Notify,
    outcomes: Option<mpsc::UnboundedSender<Completed>>,
    stop: CancellationToken,
}

/// Handle to the running writer. Cloning shares it.
#[derive(Clone)]
pub struct Writer {
    inner: Arc<Inner>,
}

impl Writer {
    /// Starts the workers. `client` should come from [`writer_client`]. Finished writes are reported on
    /// `outcomes` when given.
    pub fn start(
        client: Client,
        config: WriterConfig,
        fence: Fence,
        outcomes: Option<mpsc::UnboundedSender<Completed>>,
    ) -> (Writer, tokio::task::JoinHandle<()>) {
        let inner = Arc::new(Inner {
            client,
            rate: Mutex::new(AdaptiveRate::new(config.rate.clone(), Instant::now())),
            config,
            fence,
            queue: Mutex::new(CoalescingQueue::default()),
            work: Notify::new(),
            idle: Notify::new(),
            outcomes,
            stop: CancellationToken::new(),
        });
        let workers = inner.clone();
        let handle = tokio::spawn(async move {
            let mut set = JoinSet::new();
            for _ in 0..workers.config.concurrency.max(1) {
                set.spawn(worker(workers.clone()));
            }
            while set.join_next().await.is_some() {}
        });
        (Writer { inner }, handle)
    }

    /// Queues one write.
    pub fn submit(&self, request: WriteRequest) {
        self.submit_batch(vec![request]);
    }

    /// Queues a batch of writes (recorded as one batch in metrics).
    pub fn submit_batch(&self, batch: Vec<WriteRequest>) {
        if batch.is_empty() {
            return;
        }
        metrics::histogram!("hnc_write_batch_size").record(batch.len() as f64);
        let mut superseded = Vec::new();
        {
            let mut queue = self.inner.queue.lock();
            for request in batch {
                let (_, old) = queue.push(request.target.clone(), request);
                superseded.extend(old);
            }
            metrics::gauge!("hnc_write_queue_depth").set(queue.waiting() as f64);
        }
        for old in superseded {
            report(&self.inner, &old, Outcome::Superseded, None);
        }
        self.inner.work.notify_waiters();
    }

    /// Writes waiting (queued or parked behind an in-flight write of the same object).
    pub fn queue_depth(&self) -> usize {
        self.inner.queue.lock().waiting()
    }

    /// Current adaptive rate, writes per second.
    pub fn current_rate(&self) -> f64 {
        self.inner.rate.lock().rate()
    }

    /// Resolves once nothing is queued or in flight.
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

    /// Stops the workers after their current write.
    pub fn shutdown(&self) {
        self.inner.stop.cancel();
    }
}

async fn worker(inner: Arc<Inner>) {
    loop {
        let notified = inner.work.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let next = inner.queue.lock().pop();
        let Some((key, request)) = next else {
            tokio::select! {
                _ = &mut notified => continue,
                _ = inner.stop.cancelled() => return,
            }
        };
        let outcome = tokio::select! {
            outcome = write_with_retries(&inner, &request) => outcome,
            _ = inner.stop.cancelled() => return,
        };
        report(&inner, &request, outcome.0, outcome.1);
        let idle = {
            let mut queue = inner.queue.lock();
            queue.done(&key);
            metrics::gauge!("hnc_write_queue_depth").set(queue.waiting() as f64);
            queue.is_idle()
        };
        // A parked write may have been released.
        inner.work.notify_waiters();
        if idle {
            inner.idle.notify_waiters();
        }
    }
}

fn report(inner: &Inner, request: &WriteRequest, outcome: Outcome, resource_version: Option<String>) {
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
    if let Some(tx) = &inner.outcomes {
        let _ = tx.send(Completed {
            target: request.target.clone(),
            verb,
            outcome,
            resource_version,
            tag: request.tag,
        });
    }
}

async fn write_with_retries(inner: &Inner, request: &WriteRequest) -> (Outcome, Option<String>) {
    let mut attempt = 0;
    loop {
        attempt += 1;
        if !(inner.fence)(&request.scope) {
            return (Outcome::Fenced, None);
        }
        acquire_token(inner).await;
        if !(inner.fence)(&request.scope) {
            return (Outcome::Fenced, None);
        }
        let started = Instant::now();
        let result = exec::execute(&inner.client, &request.target, &request.op).await;
        let elapsed = started.elapsed();
        metrics::histogram!("hnc_write_duration_seconds", "verb" => request.op.verb())
            .record(elapsed.as_secs_f64());
        match result {
            exec::Attempt::Done(outcome, resource_version) => {
                let mut rate = inner.rate.lock();
                rate.observe(Signal::Ok(elapsed), Instant::now());
                // Also after a recovery: the gauge follows the probing back up, not only the backoffs.
                metrics::gauge!("hnc_write_rate_limit").set(rate.rate());
                drop(rate);
                return (outcome, resource_version);
            }
            exec::Attempt::Transient { code, message, retry_after } => {
                {
                    let mut rate = inner.rate.lock();
                    rate.observe(Signal::Congested, Instant::now());
                    metrics::gauge!("hnc_write_rate_limit").set(rate.rate());
                }
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

async fn acquire_token(inner: &Inner) {
    loop {
        let wait = match inner.rate.lock().try_acquire(Instant::now()) {
            Ok(()) => return,
            Err(wait) => wait,
        };
        tokio::time::sleep(wait).await;
    }
}

/// Exponential backoff with full jitter: uniform in [0, min(max, base × 2^(attempt-1))].
fn backoff(config: &WriterConfig, attempt: u32) -> Duration {
    let exp = config.base_backoff.saturating_mul(1u32 << (attempt - 1).min(16));
    let cap = exp.min(config.max_backoff);
    cap.mul_f64(rand::random::<f64>())
}
