//! The entry point: [`Coordinator::start`] runs every lease loop of one replica and returns the
//! [`CoordinatorHandle`] the controller asks (fences, leadership, held shards, debug snapshot, shutdown).
//!
//! ```text
//!                            ┌────────────────────────── one replica ──────────────────────────┐
//! Lease <leader>         ◀─▶ │ election    renew or take the leader lease ─▶ leader fence      │─▶ is_leader
//! Lease <p>-replica-<id> ◀─  │ membership  renew own lease, facts in annotations               │
//! all labelled Leases    ─▶  │ observer    LIST → Observations (expiry memory), contact clock  │─▶ api_lost
//! ConfigMap assignment   ─▶  │ follower    newest epoch → assigned shards → fences (un)wanted  │
//! Lease <p>-shard-<n>    ◀─▶ │ shards      acquire assigned, renew held, release assigned away │─▶ holds
//! ConfigMap assignment   ◀─  │ duties      (leader) live replicas + weights → assign, publish  │
//!                            └─────────────────────────────────────────────────────────────────┘
//! ```
//!
//! Every loop ticks once per retry period. Fences are deadlines (see `fence`), so `holds` and `is_leader`
//! turn false on their own when renewals stop succeeding; the watch channels follow within a fraction of a
//! retry period. When no request has reached the API server for a whole lease duration the coordinator stops
//! (every fence closed), [`CoordinatorHandle::api_lost`] fires and the join handle returns
//! [`CoordinatorError::ApiUnreachable`]: the controller exits. [`CoordinatorHandle::shutdown`] stops acting
//! at once, lets the leader publish an assignment without this replica, and releases every lease so a rolling
//! restart hands over without waiting for expiry.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use kube::Client;
use kube::api::Api;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::assignment::{BALANCE_TARGET, ReplicaId};
use crate::fence::LeaseFence;
use crate::lease::{LeaseError, LeaseLock, Observations};
use crate::metrics as m;
use crate::publication::PublishedAssignment;
use crate::{duties, election, membership, observer, shards};

/// Per-shard namespace counts from the controller's index (index = shard id), or None while the index is not
/// complete yet (the first assignment waits for them, so that it is balanced). Called by the leader once per
/// retry period; it must be cheap.
pub type WeightsFn = Arc<dyn Fn() -> Option<Vec<u64>> + Send + Sync>;

/// How one replica coordinates. [`CoordinatorConfig::new`] fills in the defaults.
#[derive(Clone, Debug)]
pub struct CoordinatorConfig {
    /// Namespace of every Lease and of the assignment ConfigMap (HNC's own namespace).
    pub namespace: String,
    /// This replica's identity, unique among live replicas (the pod name); it names the membership lease, so
    /// lowercase alphanumerics, '-' and '.'. A restarted replica with the same identity resumes its leases at
    /// once.
    pub identity: String,
    /// Number of shards; every replica must agree.
    pub shard_count: u32,
    /// Name of the leader Lease. Default `hnc-controller-leader`.
    pub leader_lease: String,
    /// Prefix of the membership (`<prefix>-replica-<identity>`) and shard (`<prefix>-shard-<n>`) Leases.
    /// Default `hnc`.
    pub lease_prefix: String,
    /// Name of the ConfigMap holding the assignment. Default `hnc-shard-assignment`.
    pub assignment_config_map: String,
    /// How long others wait after a lease's last observed change before taking it. Default 15 s.
    pub lease_duration: Duration,
    /// A holder that has not renewed successfully for this long stops acting. Default 10 s.
    pub renew_deadline: Duration,
    /// Interval between attempts of every loop. Default 2 s.
    pub retry_period: Duration,
    /// The leader re-balances when the heaviest replica's weight exceeds this × the mean (it re-balances
    /// down to [`BALANCE_TARGET`], so weights must drift again before the next move). Default 1.5.
    pub rebalance_threshold: f64,
    /// Minimum time between two weight-driven re-balances. Default 60 s.
    pub rebalance_cooldown: Duration,
}

impl CoordinatorConfig {
    /// The defaults (15 s / 10 s / 2 s, like client-go) for `identity` in `namespace` with `shard_count`
    /// shards.
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>, shard_count: u32) -> Self {
        CoordinatorConfig {
            namespace: namespace.into(),
            identity: identity.into(),
            shard_count,
            leader_lease: "hnc-controller-leader".into(),
            lease_prefix: "hnc".into(),
            assignment_config_map: "hnc-shard-assignment".into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
            rebalance_threshold: 1.5,
            rebalance_cooldown: Duration::from_secs(60),
        }
    }

    /// Name of the membership Lease of `identity`.
    pub fn replica_lease(&self, identity: &str) -> String {
        format!("{}-replica-{identity}", self.lease_prefix)
    }

    /// Name of the Lease of `shard`.
    pub fn shard_lease(&self, shard: u32) -> String {
        format!("{}-shard-{shard}", self.lease_prefix)
    }

    fn validate(&self) -> Result<(), CoordinatorError> {
        let bad = |why: String| Err(CoordinatorError::Config(why));
        // Lease and ConfigMap names are DNS subdomains, checked by the workspace's one name validator.
        let names = [
            self.leader_lease.clone(),
            self.assignment_config_map.clone(),
            self.replica_lease(&self.identity),
            self.shard_lease(self.shard_count.saturating_sub(1)),
        ];
        for name in &names {
            let problems = hnc_api::validation::dns1123_subdomain_errors(name);
            if !problems.is_empty() {
                return bad(format!(
                    "{name:?} is not a valid object name (check identity and lease_prefix): {}",
                    problems.join("; ")
                ));
            }
        }
        if self.shard_count == 0 {
            return bad("shard_count must be at least 1".into());
        }
        if self.lease_duration < Duration::from_secs(1) {
            return bad("lease_duration must be at least 1s (leases count whole seconds)".into());
        }
        if !(self.retry_period < self.renew_deadline && self.renew_deadline < self.lease_duration) {
            return bad("need retry_period < renew_deadline < lease_duration".into());
        }
        // Also refuses NaN.
        if self.rebalance_threshold.partial_cmp(&BALANCE_TARGET).is_none_or(|o| o.is_lt()) {
            return bad(format!("rebalance_threshold must be at least {BALANCE_TARGET}"));
        }
        Ok(())
    }
}

/// Why the coordinator stopped (other than a requested shutdown).
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// The configuration is unusable.
    #[error("invalid coordinator configuration: {0}")]
    Config(String),
    /// No request reached the API server for longer than the lease duration.
    #[error(
        "no request has reached the API server for {since:?} (> lease duration); last error: {last_error}"
    )]
    ApiUnreachable {
        /// Time since the last request that reached the API server.
        since: Duration,
        /// The last failure (a transport error, a timeout, 5xx, 401/403, 429).
        last_error: String,
    },
    /// A coordination loop panicked.
    #[error("a coordination loop failed: {0}")]
    TaskFailed(String),
}

/// What `/debug/shards` shows.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardsSnapshot {
    /// This replica.
    pub identity: ReplicaId,
    /// Whether this replica is the leader now.
    pub is_leader: bool,
    /// The live holder of the leader lease, as observed.
    pub leader: Option<String>,
    /// Shards this replica holds (fence open) now.
    pub held: Vec<u32>,
    /// Shards the newest assignment gives this replica.
    pub assigned: Vec<u32>,
    /// Replicas whose membership lease is live, as observed.
    pub live_replicas: Vec<ReplicaId>,
    /// Observed live holder of each shard lease (index = shard id).
    pub shard_holders: Vec<Option<String>>,
    /// The newest assignment seen.
    pub assignment: Option<PublishedAssignment>,
}

/// State every loop shares.
pub(crate) struct Shared {
    pub(crate) config: CoordinatorConfig,
    pub(crate) me: ReplicaId,
    pub(crate) client: Client,
    pub(crate) weights: WeightsFn,
    pub(crate) observations: Arc<Observations>,
    pub(crate) leader: LeaseFence,
    pub(crate) shards: Vec<LeaseFence>,
    leader_tx: watch::Sender<bool>,
    held_tx: watch::Sender<BTreeSet<u32>>,
    pub(crate) assigned_tx: watch::Sender<BTreeSet<u32>>,
    assignment: Mutex<Option<PublishedAssignment>>,
    ignored_epoch: std::sync::atomic::AtomicU64,
    /// Set once an applied assignment listed this replica among the live ones.
    member_of_an_assignment: std::sync::atomic::AtomicBool,
    /// Annotations for this replica's membership lease.
    pub(crate) facts: Mutex<BTreeMap<String, String>>,
    last_contact: Mutex<Instant>,
    last_error: Mutex<Option<String>>,
    /// When the observer last completed a LIST (the leader waits for one after it is elected).
    pub(crate) last_list: Mutex<Option<Instant>>,
    /// When this coordinator started.
    pub(crate) started: Instant,
    /// Asks the observer for a LIST now rather than at its next period (a new leader wants a fresh view).
    pub(crate) relist: tokio::sync::Notify,
    api_lost_tx: watch::Sender<bool>,
    shutdown: CancellationToken,
    done_tx: watch::Sender<bool>,
}

impl Shared {
    /// A lock on lease `name` of `kind` for this replica.
    pub(crate) fn lease_lock(&self, name: String, kind: &str) -> LeaseLock {
        LeaseLock::new(
            self.leases_api(),
            name,
            kind,
            self.me.as_str(),
            self.config.lease_duration,
            self.request_timeout(),
            self.observations.clone(),
        )
    }

    pub(crate) fn leases_api(&self) -> Api<Lease> {
        Api::namespaced(self.client.clone(), &self.config.namespace)
    }

    /// Every request gives up after the renew deadline: an answer later than that is useless to a renewal.
    pub(crate) fn request_timeout(&self) -> Duration {
        self.config.renew_deadline
    }

    /// Notes the outcome of a request for the API-contact clock.
    pub(crate) fn contact<T>(&self, result: &Result<T, LeaseError>) {
        match result {
            Err(e) if !e.reached_api() => *self.last_error.lock() = Some(e.to_string()),
            _ => *self.last_contact.lock() = Instant::now(),
        }
    }

    pub(crate) fn since_contact(&self) -> Duration {
        self.last_contact.lock().elapsed()
    }

    /// A receiver of leadership changes (what [`Shared::refresh_leader`] publishes).
    pub(crate) fn leadership(&self) -> watch::Receiver<bool> {
        self.leader_tx.subscribe()
    }

    /// Brings the leadership watch (and gauge) in line with the leader fence.
    pub(crate) fn refresh_leader(&self) {
        let now = self.leader.holds();
        self.leader_tx.send_if_modified(|was| {
            let changed = *was != now;
            if changed {
                tracing::info!(identity = %self.me, leader = now, "leadership changed");
                metrics::gauge!(m::IS_LEADER).set(if now { 1.0 } else { 0.0 });
            }
            *was = now;
            changed
        });
    }

    /// Brings the held-shards watch (and metrics) in line with the shard fences.
    pub(crate) fn refresh_held(&self) {
        self.held_tx.send_if_modified(|held| {
            let now: BTreeSet<u32> = (0..self.config.shard_count).filter(|&s| self.holds(s)).collect();
            if now == *held {
                return false;
            }
            let gained = now.difference(held).count() as u64;
            let lost = held.difference(&now).count() as u64;
            tracing::info!(identity = %self.me, ?now, gained, lost, "held shards changed");
            metrics::counter!(m::SHARD_LEASE_CHANGES, "direction" => "gained").increment(gained);
            metrics::counter!(m::SHARD_LEASE_CHANGES, "direction" => "lost").increment(lost);
            metrics::gauge!(m::SHARDS_HELD).set(now.len() as f64);
            *held = now;
            true
        });
    }

    pub(crate) fn holds(&self, shard: u32) -> bool {
        self.shards.get(shard as usize).is_some_and(LeaseFence::holds)
    }

    /// Takes a newer assignment: shards assigned away stop at once (their fences become unwanted).
    pub(crate) fn apply_assignment(&self, doc: PublishedAssignment) {
        let mut current = self.assignment.lock();
        if current.as_ref().is_some_and(|c| c.epoch > doc.epoch) || current.as_ref() == Some(&doc) {
            return;
        }
        if doc.shard_count != self.config.shard_count || doc.owners.shard_count() != doc.shard_count {
            // Once per epoch: the assignment is read every retry period.
            if self.ignored_epoch.swap(doc.epoch, std::sync::atomic::Ordering::Relaxed) == doc.epoch {
                return;
            }
            tracing::warn!(
                epoch = doc.epoch,
                published = doc.shard_count,
                ours = self.config.shard_count,
                "ignoring an assignment for a different shard count"
            );
            return;
        }
        let mine = doc.owners.shards_of(&self.me);
        for (shard, fence) in self.shards.iter().enumerate() {
            fence.set_wanted(mine.contains(&(shard as u32)));
        }
        metrics::gauge!(m::ASSIGNMENT_EPOCH).set(doc.epoch as f64);
        let member = doc.replicas.contains(&self.me);
        *current = Some(doc);
        drop(current);
        self.assigned_tx.send_if_modified(|assigned| {
            let changed = *assigned != mine;
            *assigned = mine;
            changed
        });
        // After the assigned shards: whoever reads "known" then reads them too.
        if member {
            self.member_of_an_assignment.store(true, std::sync::atomic::Ordering::Release);
        }
        self.refresh_held();
    }

    /// The newest assignment seen.
    pub(crate) fn assignment(&self) -> Option<PublishedAssignment> {
        self.assignment.lock().clone()
    }

    fn close_everything(&self) {
        self.leader.close();
        for fence in &self.shards {
            fence.close();
        }
        self.refresh_leader();
        self.refresh_held();
    }
}

/// Starts coordination for one replica.
#[derive(Debug)]
pub struct Coordinator;

impl Coordinator {
    /// Spawns every loop (needs a Tokio runtime). The join handle ends after [`CoordinatorHandle::shutdown`]
    /// (`Ok`) or when the API server has been unreachable for longer than the lease duration (`Err`).
    /// Aborting it aborts every loop and closes every fence without releasing anything, as a crash would:
    /// others take over after expiry.
    pub fn start(
        client: Client,
        config: CoordinatorConfig,
        weights: WeightsFn,
    ) -> Result<(CoordinatorHandle, JoinHandle<Result<(), CoordinatorError>>), CoordinatorError> {
        config.validate()?;
        metrics::gauge!(m::LEASE_DURATION_SECONDS).set(config.lease_duration.as_secs_f64());
        // Counters exist from the start, at 0: a rate over them is 0 rather than absent until the first event.
        for kind in [crate::election::KIND, crate::membership::KIND, crate::shards::KIND] {
            metrics::counter!(m::LEASE_ERRORS, "kind" => kind).increment(0);
        }
        for direction in ["gained", "lost"] {
            metrics::counter!(m::SHARD_LEASE_CHANGES, "direction" => direction).increment(0);
        }
        for reason in ["membership", "rebalance", "shutdown"] {
            metrics::counter!(m::HANDOVERS, "reason" => reason).increment(0);
        }
        let shards = (0..config.shard_count).map(|_| LeaseFence::new(false)).collect();
        let shared = Arc::new(Shared {
            me: ReplicaId(config.identity.clone()),
            config,
            client,
            weights,
            observations: Arc::default(),
            leader: LeaseFence::new(true),
            shards,
            leader_tx: watch::channel(false).0,
            held_tx: watch::channel(BTreeSet::new()).0,
            assigned_tx: watch::channel(BTreeSet::new()).0,
            assignment: Mutex::new(None),
            ignored_epoch: Default::default(),
            member_of_an_assignment: Default::default(),
            facts: Mutex::new(BTreeMap::new()),
            last_contact: Mutex::new(Instant::now()),
            last_error: Mutex::new(None),
            last_list: Mutex::new(None),
            started: Instant::now(),
            relist: tokio::sync::Notify::new(),
            api_lost_tx: watch::channel(false).0,
            shutdown: CancellationToken::new(),
            done_tx: watch::channel(false).0,
        });
        metrics::gauge!(m::IS_LEADER).set(0.0);
        metrics::gauge!(m::SHARDS_HELD).set(0.0);
        let task = tokio::spawn(supervise(shared.clone()));
        Ok((CoordinatorHandle { shared }, task))
    }
}

/// Runs the loops; on shutdown or lost API access stops them in order: leader duties first (a leader
/// publishes an assignment without this replica), then the rest (each releases its leases).
async fn supervise(shared: Arc<Shared>) -> Result<(), CoordinatorError> {
    let _stopped = Stopped(shared.clone());
    let (leading_stop, stop) = (CancellationToken::new(), CancellationToken::new());
    let mut leading = JoinSet::new();
    leading.spawn(duties::run(shared.clone(), leading_stop.clone()));
    let mut working = JoinSet::new();
    working.spawn(election::run(shared.clone(), stop.clone()));
    working.spawn(membership::run(shared.clone(), stop.clone()));
    working.spawn(observer::run(shared.clone(), stop.clone()));
    working.spawn(shards::follow(shared.clone(), stop.clone()));
    working.spawn(shards::run(shared.clone(), stop.clone()));

    let mut api_lost = shared.api_lost_tx.subscribe();
    let outcome = tokio::select! {
        _ = shared.shutdown.cancelled() => Ok(()),
        _ = api_lost.wait_for(|lost| *lost) => Err(CoordinatorError::ApiUnreachable {
            since: shared.since_contact(),
            last_error: shared.last_error.lock().clone().unwrap_or_default(),
        }),
        Some(Err(e)) = leading.join_next() => Err(CoordinatorError::TaskFailed(e.to_string())),
        Some(Err(e)) = working.join_next() => Err(CoordinatorError::TaskFailed(e.to_string())),
    };
    if let Err(e) = &outcome {
        // Nothing can be released without the API server: stop everything now, leases expire by themselves.
        tracing::error!(identity = %shared.me, "coordination stops: {e}");
        shared.close_everything();
        leading.abort_all();
        working.abort_all();
    }
    for fence in &shared.shards {
        fence.close();
    }
    shared.refresh_held();
    leading_stop.cancel();
    while leading.join_next().await.is_some() {}
    stop.cancel();
    while working.join_next().await.is_some() {}
    outcome
}

/// However the supervisor ends — returning, or aborted with its join handle — nothing is held afterwards and
/// [`CoordinatorHandle::shutdown`] returns.
struct Stopped(Arc<Shared>);

impl Drop for Stopped {
    fn drop(&mut self) {
        self.0.close_everything();
        self.0.done_tx.send_replace(true);
    }
}

/// What the controller holds: cheap to clone, every method is non-blocking except the async ones.
#[derive(Clone)]
pub struct CoordinatorHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for CoordinatorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorHandle").field("identity", &self.shared.me).finish()
    }
}

impl CoordinatorHandle {
    /// This replica's identity.
    pub fn identity(&self) -> &ReplicaId {
        &self.shared.me
    }

    /// Number of shards.
    pub fn shard_count(&self) -> u32 {
        self.shared.config.shard_count
    }

    /// The fence: true while this replica holds `shard`'s lease and its last successful renewal is younger
    /// than the renew deadline. Call it right before every write for the shard; it turns false by itself when
    /// renewals fail, and at once when the shard is assigned away or on shutdown.
    pub fn holds(&self, shard: u32) -> bool {
        self.shared.holds(shard)
    }

    /// True while this replica is the leader (same deadline rule as [`Self::holds`]).
    pub fn is_leader(&self) -> bool {
        self.shared.leader.holds()
    }

    /// Leadership changes.
    pub fn leadership(&self) -> watch::Receiver<bool> {
        self.shared.leader_tx.subscribe()
    }

    /// The set of held shards: load caches for gained shards, evict lost ones. It follows the fences within a
    /// fraction of a retry period; [`Self::holds`] is exact.
    pub fn held_shards(&self) -> watch::Receiver<BTreeSet<u32>> {
        self.shared.held_tx.subscribe()
    }

    /// The shards the newest assignment gives this replica (held or about to be).
    pub fn assigned_shards(&self) -> watch::Receiver<BTreeSet<u32>> {
        self.shared.assigned_tx.subscribe()
    }

    /// True once an assignment has counted this replica among the live ones (whether or not it gave it shards):
    /// from then on, a tree it neither holds nor is assigned is (save a handover in progress) another replica's.
    pub fn has_assignment(&self) -> bool {
        self.shared.member_of_an_assignment.load(std::sync::atomic::Ordering::Acquire)
    }

    /// True when the newest assignment gives this replica `shard` (held already, or about to be).
    pub fn is_assigned(&self, shard: u32) -> bool {
        self.shared.assigned_tx.borrow().contains(&shard)
    }

    /// Publishes how many objects this replica caches per shard it holds; the leader adds them to the shard
    /// weights. Written with the next membership renewal.
    pub fn publish_shard_objects(&self, objects: &BTreeMap<u32, u64>) {
        let json = serde_json::to_string(objects).expect("a map of numbers serializes");
        self.shared.facts.lock().insert(membership::SHARD_OBJECTS_ANNOTATION.to_owned(), json);
    }

    /// Publishes a small fact as annotation `key` on this replica's membership lease (next renewal).
    pub fn publish_fact(&self, key: impl Into<String>, value: impl Into<String>) {
        self.shared.facts.lock().insert(key.into(), value.into());
    }

    /// Resolves once no request has reached the API server for longer than the lease duration; by then every
    /// fence is closed and the coordinator has stopped. The controller exits on it.
    pub async fn api_lost(&self) {
        let _ = self.shared.api_lost_tx.subscribe().wait_for(|lost| *lost).await;
    }

    /// Stops acting for every shard at once, lets a leader publish an assignment without this replica,
    /// releases every lease (shards, membership, leader) and returns when all loops have ended.
    pub async fn shutdown(&self) {
        for fence in &self.shared.shards {
            fence.close();
        }
        self.shared.refresh_held();
        self.shared.shutdown.cancel();
        let _ = self.shared.done_tx.subscribe().wait_for(|done| *done).await;
    }

    /// The current view, for `/debug/shards`.
    pub fn snapshot(&self) -> ShardsSnapshot {
        let shared = &self.shared;
        let now = Instant::now();
        let observed =
            |name: &str| shared.observations.get(name).and_then(|o| o.live_holder(now).map(str::to_owned));
        ShardsSnapshot {
            identity: shared.me.clone(),
            is_leader: shared.leader.holds(),
            leader: observed(&shared.config.leader_lease),
            held: (0..shared.config.shard_count).filter(|&s| shared.holds(s)).collect(),
            assigned: shared.assigned_tx.borrow().iter().copied().collect(),
            live_replicas: membership::live_replicas(shared, now),
            shard_holders: (0..shared.config.shard_count)
                .map(|s| observed(&shared.config.shard_lease(s)))
                .collect(),
            assignment: shared.assignment(),
        }
    }
}

pub(crate) fn api_lost(shared: &Shared) {
    shared.api_lost_tx.send_replace(true);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configurations_that_cannot_work_are_refused() {
        let ok = CoordinatorConfig::new("hnc-system", "hnc-controller-7f9c.x", 64);
        assert!(ok.validate().is_ok());
        let refused = |change: fn(&mut CoordinatorConfig)| {
            let mut config = ok.clone();
            change(&mut config);
            config.validate().is_err()
        };
        assert!(refused(|c| c.identity = String::new()));
        assert!(refused(|c| c.identity = "Pod_1".into()));
        assert!(refused(|c| c.identity = "pod..1".into()));
        assert!(refused(|c| c.shard_count = 0));
        assert!(refused(|c| c.renew_deadline = c.lease_duration));
        assert!(refused(|c| c.retry_period = c.renew_deadline));
        assert!(refused(|c| {
            // Sub-second leases cannot be written: leaseDurationSeconds is whole seconds.
            c.lease_duration = Duration::from_millis(900);
            c.renew_deadline = Duration::from_millis(600);
            c.retry_period = Duration::from_millis(200);
        }));
        assert!(refused(|c| c.rebalance_threshold = 1.1));
        assert!(refused(|c| c.rebalance_threshold = f64::NAN));
        assert_eq!(ok.replica_lease("a"), "hnc-replica-a");
        assert_eq!(ok.shard_lease(3), "hnc-shard-3");
    }
}
