//! Fault injection, changeable at runtime from tests: added latency and error rates per verb/resource, dropping
//! every open watch, and forced compaction (handled by the store).

use std::time::Duration;

use parking_lot::RwLock;
use tokio::sync::broadcast;

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

/// The fault injection handle.
#[derive(Debug)]
pub struct Faults {
    rules: RwLock<Vec<FaultRule>>,
    limits: parking_lot::Mutex<std::collections::HashMap<String, UserLimit>>,
    drop_watches: broadcast::Sender<()>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            rules: RwLock::new(Vec::new()),
            limits: Default::default(),
            drop_watches: broadcast::channel(16).0,
        }
    }
}

impl Faults {
    /// Adds a rule.
    pub fn add(&self, rule: FaultRule) {
        self.rules.write().push(rule);
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
        for rule in rules.iter() {
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
