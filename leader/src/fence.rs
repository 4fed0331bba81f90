//! One lease's fence: "do I still hold this lease?". The controller's writer asks it (through its own write
//! `Fence`, which maps a write's namespace to a shard) right before every API write.
//!
//! It is a deadline, not a flag: a successful renewal sent at `t` extends it to `t + renew deadline`, and
//! [`LeaseFence::holds`] compares with the clock on every call. When renewals fail the fence turns false by
//! itself, at the deadline, whether or not any background task notices — fail-stop.
//!
//! Two gates keep a renewal that is still in flight from re-opening a fence that was shut on purpose:
//! `wanted` (a shard assigned away is unwanted until assigned back) and `closed` (shutdown, for good).

use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

#[derive(Debug)]
struct State {
    until: Option<Instant>,
    wanted: bool,
    closed: bool,
}

/// One lease's fence.
#[derive(Debug)]
pub(crate) struct LeaseFence {
    state: Mutex<State>,
}

impl LeaseFence {
    /// A fence that does not hold; renewals open it only while `wanted`.
    pub(crate) fn new(wanted: bool) -> Self {
        LeaseFence { state: Mutex::new(State { until: None, wanted, closed: false }) }
    }

    /// True while the last successful renewal is younger than the renew deadline.
    pub(crate) fn holds(&self) -> bool {
        self.state.lock().until.is_some_and(|until| Instant::now() < until)
    }

    /// When the fence lapses unless renewed (None when it does not hold).
    #[cfg(test)]
    pub(crate) fn until(&self) -> Option<Instant> {
        self.state.lock().until.filter(|&until| Instant::now() < until)
    }

    /// A renewal sent at `sent` succeeded. Returns true when this (re)opened a fence that did not hold.
    pub(crate) fn renewed(&self, sent: Instant, renew_deadline: Duration) -> bool {
        let mut state = self.state.lock();
        if state.closed || !state.wanted {
            return false;
        }
        let was = state.until.is_some_and(|until| Instant::now() < until);
        let until = sent + renew_deadline;
        state.until = Some(state.until.map_or(until, |old| old.max(until)));
        !was && Instant::now() < until
    }

    /// Stops holding now (a later renewal may open it again).
    pub(crate) fn revoke(&self) {
        self.state.lock().until = None;
    }

    /// Whether renewals may open the fence; unwanted also stops holding now.
    pub(crate) fn set_wanted(&self, wanted: bool) {
        let mut state = self.state.lock();
        state.wanted = wanted;
        if !wanted {
            state.until = None;
        }
    }

    /// Stops holding now and for good.
    pub(crate) fn close(&self) {
        let mut state = self.state.lock();
        state.until = None;
        state.closed = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lapses_by_itself_at_the_deadline() {
        let fence = LeaseFence::new(true);
        assert!(!fence.holds());
        assert!(fence.renewed(Instant::now(), Duration::from_millis(30)));
        assert!(fence.holds());
        std::thread::sleep(Duration::from_millis(40));
        assert!(!fence.holds(), "no renewal: the fence turns false without anyone revoking it");
    }

    #[test]
    fn closing_or_unwanting_wins_over_a_late_renewal() {
        let fence = LeaseFence::new(true);
        let sent = Instant::now();
        fence.renewed(sent, Duration::from_secs(10));
        fence.set_wanted(false);
        assert!(!fence.holds(), "assigned away: stops at once");
        assert!(!fence.renewed(sent, Duration::from_secs(10)), "a renewal in flight does not re-open it");
        fence.set_wanted(true);
        assert!(fence.renewed(sent, Duration::from_secs(10)));
        fence.close();
        assert!(!fence.renewed(sent, Duration::from_secs(10)));
        assert!(!fence.holds());
    }

    #[test]
    fn an_older_renewal_never_shortens_the_fence() {
        let fence = LeaseFence::new(true);
        let (early, late) = (Instant::now(), Instant::now() + Duration::from_secs(5));
        fence.renewed(late, Duration::from_secs(10));
        fence.renewed(early, Duration::from_secs(10));
        assert_eq!(fence.until(), Some(late + Duration::from_secs(10)));
        fence.revoke();
        assert!(!fence.holds());
    }
}
