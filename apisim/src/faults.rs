//! Fault injection, changeable at runtime from tests: added latency and error rates per verb/resource, per-user
//! rate limits, dropping every open watch, forced compaction (handled by the store), and a load profile that
//! makes writes cost what they cost on a real API server ([`LoadProfile`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::response::Response;
use parking_lot::RwLock;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast};

use crate::error::ApiError;

/// A rule: requests matching `verb`, `resource` and `user` (None = any) get `latency` added and fail with
/// `error` with probability `error_rate`.
#[derive(Debug, Clone, Default)]
pub struct FaultRule {
    /// Verb as in metrics (`GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `DELETE`); None = any.
    pub verb: Option<String>,
    /// Resource plural; None = any.
    pub resource: Option<String>,
    /// Authenticated user name; None = any. Fails one client (one replica) while others work.
    pub user: Option<String>,
    /// Latency added before the request is served.
    pub latency: Duration,
    /// HTTP code to fail with (429, 500, 503, ...).
    pub error: Option<u16>,
    /// Probability of failing, 0..=1.
    pub error_rate: f64,
    /// `retryAfterSeconds` to advertise with a 429.
    pub retry_after: Option<u32>,
}

/// A token bucket per user, like API Priority and Fairness gives each flow a share: a user over its rate gets
/// 429 with `Retry-After`.
#[derive(Debug)]
struct UserLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: std::time::Instant,
}

/// A load profile for measurements: mutating requests (`POST`, `PUT`, `PATCH`, `DELETE`) behave as on a real
/// kube-apiserver with API Priority and Fairness — each holds one of a fixed number of seats for its storage
/// commit; a request finding every seat taken waits in a bounded FIFO queue; a request finding the queue full,
/// or waiting longer than `queue_timeout`, gets 429 with `Retry-After: 1` and kube-apiserver's Status body. Reads
/// and watches are not limited.
///
/// The defaults ([`LoadProfile::realistic`]) model one controller's view of a default kube-apiserver:
/// * `commit_latency` 5 ms: an etcd write on SSD — a WAL fsync plus a Raft round between three members,
///   a few ms — plus the API server's own encoding and admission work;
/// * `seats` 200: `--max-mutating-requests-inflight=200`, the mutating limit without APF. With APF (the default
///   since 1.20) the server's 600 seats (`--max-requests-inflight` 400 + the 200) are split by nominal concurrency
///   shares, and service accounts land in `workload-low` (100 of 245 shares: ⌈600 × 100 / 245⌉ = 245 seats,
///   shared with every other service account's requests), `global-default` gets 20 shares (49 seats);
/// * `queue_length` 300: APF deals one flow (one service account) a hand of 6 of the level's 128 queues of 50
///   requests (`workload-low` and `global-default` alike), so one client can have up to 6 × 50 waiting;
/// * `queue_timeout` 15 s: APF gives up on a queued request after a quarter of the 60 s request timeout.
///
/// On this machine apisim's CPU saturates long before 200 seats × 5 ms (40,000 writes/s) do, so latency then grows
/// the way a CPU-bound API server's does; a test that wants 429s uses tight `seats` and `queue_length`.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadProfile {
    /// Time a mutating request holds its seat before it is served (the storage commit).
    pub commit_latency: Duration,
    /// Mutating requests served at once.
    pub seats: usize,
    /// Mutating requests that may wait for a seat; beyond that, 429.
    pub queue_length: usize,
    /// Longest wait for a seat before 429.
    pub queue_timeout: Duration,
}

impl LoadProfile {
    /// The defaults described above.
    pub fn realistic() -> Self {
        LoadProfile {
            commit_latency: Duration::from_millis(5),
            seats: 200,
            queue_length: 300,
            queue_timeout: Duration::from_secs(15),
        }
    }
}

/// What the load profile did since it was set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProfileStats {
    /// Mutating requests that got a seat.
    pub admitted: u64,
    /// Mutating requests answered 429.
    pub rejected: u64,
    /// Most requests waiting for a seat at once.
    pub peak_waiting: u64,
    /// Total time admitted requests waited for their seat.
    pub waited: Duration,
}

/// The load profile in force and its counters.
#[derive(Debug)]
struct Admission {
    profile: LoadProfile,
    seats: Arc<Semaphore>,
    waiting: AtomicU64,
    admitted: AtomicU64,
    rejected: AtomicU64,
    peak_waiting: AtomicU64,
    waited_nanos: AtomicU64,
}

/// A mutating request's seat under the load profile, held until dropped.
#[derive(Debug)]
pub(crate) struct Seat(#[allow(dead_code)] OwnedSemaphorePermit);

/// Names a rule added with [`Faults::add`], to remove it alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RuleId(u64);

/// The fault injection handle.
#[derive(Debug)]
pub struct Faults {
    rules: RwLock<Vec<(RuleId, FaultRule)>>,
    next_rule: AtomicU64,
    limits: parking_lot::Mutex<std::collections::HashMap<String, UserLimit>>,
    drop_watches: broadcast::Sender<()>,
    profile: RwLock<Option<Arc<Admission>>>,
    webhook_latency: RwLock<Duration>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            rules: RwLock::new(Vec::new()),
            next_rule: AtomicU64::new(0),
            limits: Default::default(),
            drop_watches: broadcast::channel(16).0,
            profile: RwLock::new(None),
            webhook_latency: RwLock::new(Duration::ZERO),
        }
    }
}

impl Faults {
    /// Adds a rule; the id removes it again.
    pub fn add(&self, rule: FaultRule) -> RuleId {
        let id = RuleId(self.next_rule.fetch_add(1, Ordering::Relaxed));
        self.rules.write().push((id, rule));
        id
    }

    /// Removes the rule `id` (no effect if it is gone already).
    pub fn remove(&self, id: RuleId) {
        self.rules.write().retain(|(r, _)| *r != id);
    }

    /// Makes every admission webhook answer `latency` later, as a slow or overloaded webhook server would
    /// (zero: as fast as it can). A call whose latency reaches the webhook's `timeoutSeconds` fails as a
    /// timed-out call does — after the timeout — and its `failurePolicy` decides.
    pub fn set_webhook_latency(&self, latency: Duration) {
        *self.webhook_latency.write() = latency;
    }

    /// The latency [`Faults::set_webhook_latency`] set.
    pub fn webhook_latency(&self) -> Duration {
        *self.webhook_latency.read()
    }

    /// Removes every rule.
    pub fn clear(&self) {
        self.rules.write().clear();
    }

    /// Limits `user` to `rate` requests per second with bursts of `burst` (watches are not counted).
    pub fn rate_limit(&self, user: &str, rate: f64, burst: u32) {
        let burst = f64::from(burst.max(1));
        self.limits.lock().insert(
            user.to_owned(),
            UserLimit { rate, burst, tokens: burst, last: std::time::Instant::now() },
        );
    }

    /// Takes a token for `user`; `Some(seconds)` to wait when it has none.
    pub(crate) fn throttle(&self, user: &str) -> Option<u32> {
        let mut limits = self.limits.lock();
        let limit = limits.get_mut(user)?;
        let now = std::time::Instant::now();
        limit.tokens =
            (limit.tokens + now.duration_since(limit.last).as_secs_f64() * limit.rate).min(limit.burst);
        limit.last = now;
        if limit.tokens >= 1.0 {
            limit.tokens -= 1.0;
            None
        } else {
            Some(((1.0 - limit.tokens) / limit.rate).ceil().max(1.0) as u32)
        }
    }

    /// Puts `profile` in force (None: writes are free again) and restarts its counters. Requests already
    /// holding or waiting for a seat finish under the previous profile.
    pub fn set_profile(&self, profile: Option<LoadProfile>) {
        *self.profile.write() = profile.map(|profile| {
            Arc::new(Admission {
                seats: Arc::new(Semaphore::new(profile.seats.max(1))),
                profile,
                waiting: AtomicU64::new(0),
                admitted: AtomicU64::new(0),
                rejected: AtomicU64::new(0),
                peak_waiting: AtomicU64::new(0),
                waited_nanos: AtomicU64::new(0),
            })
        });
    }

    /// The load profile in force.
    pub fn profile(&self) -> Option<LoadProfile> {
        self.profile.read().as_ref().map(|a| a.profile.clone())
    }

    /// What the load profile in force did since it was set (zeros without one).
    pub fn profile_stats(&self) -> ProfileStats {
        let Some(a) = self.profile.read().clone() else { return ProfileStats::default() };
        ProfileStats {
            admitted: a.admitted.load(Ordering::Relaxed),
            rejected: a.rejected.load(Ordering::Relaxed),
            peak_waiting: a.peak_waiting.load(Ordering::Relaxed),
            waited: Duration::from_nanos(a.waited_nanos.load(Ordering::Relaxed)),
        }
    }

    /// Under a load profile, a mutating request waits for a seat and then for its commit; the seat is held
    /// until the returned guard is dropped (after the request is served). `Err` is the 429 to answer, also when
    /// the request's `deadline` passes while it waits (API Priority and Fairness rejects a queued request whose
    /// context ends).
    pub(crate) async fn seat(&self, verb: &str, deadline: Option<Instant>) -> Result<Option<Seat>, Response> {
        if !matches!(verb, "POST" | "PUT" | "PATCH" | "DELETE") {
            return Ok(None);
        }
        let Some(a) = self.profile.read().clone() else { return Ok(None) };
        let seat = match a.seats.clone().try_acquire_owned() {
            Ok(seat) => seat,
            Err(_) => {
                let waiting = a.waiting.fetch_add(1, Ordering::Relaxed) + 1;
                let started = Instant::now();
                let seat = if waiting > a.profile.queue_length as u64 {
                    None
                } else {
                    a.peak_waiting.fetch_max(waiting, Ordering::Relaxed);
                    let wait = deadline.map_or(a.profile.queue_timeout, |d| {
                        a.profile.queue_timeout.min(d.saturating_duration_since(Instant::now()))
                    });
                    tokio::time::timeout(wait, a.seats.clone().acquire_owned())
                        .await
                        .ok()
                        .and_then(Result::ok)
                };
                a.waiting.fetch_sub(1, Ordering::Relaxed);
                let Some(seat) = seat else {
                    a.rejected.fetch_add(1, Ordering::Relaxed);
                    return Err(too_many_requests());
                };
                a.waited_nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
                seat
            }
        };
        a.admitted.fetch_add(1, Ordering::Relaxed);
        tokio::time::sleep(a.profile.commit_latency).await;
        Ok(Some(Seat(seat)))
    }

    /// Ends every open watch now (clients must re-watch or relist).
    pub fn drop_watches(&self) {
        let _ = self.drop_watches.send(());
    }

    pub(crate) fn watch_drops(&self) -> broadcast::Receiver<()> {
        self.drop_watches.subscribe()
    }

    /// The latency to add and the error to return, if any, for one request.
    pub(crate) fn decide(
        &self,
        verb: &str,
        resource: &str,
        user: &str,
    ) -> (Duration, Option<(u16, Option<u32>)>) {
        let rules = self.rules.read();
        let mut latency = Duration::ZERO;
        let mut error = None;
        for (_, rule) in rules.iter() {
            if rule.verb.as_deref().is_some_and(|v| v != verb)
                || rule.resource.as_deref().is_some_and(|r| r != resource)
                || rule.user.as_deref().is_some_and(|u| u != user)
            {
                continue;
            }
            latency += rule.latency;
            if error.is_none() && rule.error.is_some() && rand::random::<f64>() < rule.error_rate {
                error = rule.error.map(|code| (code, rule.retry_after));
            }
        }
        (latency, error)
    }
}

/// kube-apiserver's answer when API Priority and Fairness rejects a request: 429, `Retry-After: 1` and
/// `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Too many requests, please try
/// again later.","reason":"TooManyRequests","details":{"retryAfterSeconds":1},"code":429}`.
fn too_many_requests() -> Response {
    let mut response = crate::server::error_response(&ApiError::throttled(1));
    response.headers_mut().insert("Retry-After", axum::http::HeaderValue::from_static("1"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_removed_rule_stops_applying_and_the_others_stay() {
        let faults = Faults::default();
        let slow = faults.add(FaultRule { latency: Duration::from_millis(5), ..Default::default() });
        let failing = faults.add(FaultRule {
            verb: Some("POST".into()),
            error: Some(429),
            error_rate: 1.0,
            retry_after: Some(1),
            ..Default::default()
        });
        assert_ne!(slow, failing);
        assert_eq!(faults.decide("POST", "roles", "u"), (Duration::from_millis(5), Some((429, Some(1)))));
        faults.remove(failing);
        assert_eq!(faults.decide("POST", "roles", "u"), (Duration::from_millis(5), None));
        faults.remove(failing);
        faults.remove(slow);
        assert_eq!(faults.decide("POST", "roles", "u"), (Duration::ZERO, None));
    }
}
