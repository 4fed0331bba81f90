//! Fault injection, changeable at runtime from tests: added latency and error rates per verb/resource, dropping
//! every open watch, and forced compaction (handled by the store).

use std::time::Duration;

use parking_lot::RwLock;
use tokio::sync::broadcast;

/// A rule: requests matching `verb` and `resource` (None = any) get `latency` added and fail with `error`
/// with probability `error_rate`.
#[derive(Debug, Clone, Default)]
pub struct FaultRule {
    /// Verb as in metrics (`GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `DELETE`); None = any.
    pub verb: Option<String>,
    /// Resource plural; None = any.
    pub resource: Option<String>,
    /// Latency added before the request is served.
    pub latency: Duration,
    /// HTTP code to fail with (429, 500, 503, ...).
    pub error: Option<u16>,
    /// Probability of failing, 0..=1.
    pub error_rate: f64,
    /// `retryAfterSeconds` to advertise with a 429.
    pub retry_after: Option<u32>,
}

/// The fault injection handle.
#[derive(Debug)]
pub struct Faults {
    rules: RwLock<Vec<FaultRule>>,
    drop_watches: broadcast::Sender<()>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults { rules: RwLock::new(Vec::new()), drop_watches: broadcast::channel(16).0 }
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

    /// Ends every open watch now (clients must re-watch or relist).
    pub fn drop_watches(&self) {
        let _ = self.drop_watches.send(());
    }

    pub(crate) fn watch_drops(&self) -> broadcast::Receiver<()> {
        self.drop_watches.subscribe()
    }

    /// The latency to add and the error to return, if any, for one request.
    pub(crate) fn decide(&self, verb: &str, resource: &str) -> (Duration, Option<(u16, Option<u32>)>) {
        let rules = self.rules.read();
        let mut latency = Duration::ZERO;
        let mut error = None;
        for rule in rules.iter() {
            if rule.verb.as_deref().is_some_and(|v| v != verb)
                || rule.resource.as_deref().is_some_and(|r| r != resource)
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
