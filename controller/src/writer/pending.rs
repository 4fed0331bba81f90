//! A submitter's side of its writes: which are on their way ([`PendingWrites`]), and when an object whose write
//! did not land is looked at again ([`retry_delay`], [`RetryQueue`]). The hierarchy reconciler and the
//! propagation engine both keep their writes this way.

use std::collections::HashMap;
use std::future::poll_fn;
use std::time::Duration;

use tokio_util::time::DelayQueue;

use super::{Completed, ObjectRef, Outcome, WriteRequest};

/// Writes submitted and not yet settled, by object: for each, the newest write submitted and its tag.
///
/// While a write is pending, planning the same write again must not submit it twice ([`PendingWrites::get`]
/// tells what is on its way). Several writes of one object can be outstanding at once — one in flight, a newer
/// one parked behind it — so each submission gets a fresh [`WriteRequest::tag`], and an outcome counts only
/// when it carries the tag of the newest ([`PendingWrites::outcome_of`]): the older write's outcome is
/// ignored, the newer one reports for itself. When a write is settled is the submitter's call: when its
/// outcome arrives ([`PendingWrites::settle`]), or when the watch shows its result
/// ([`PendingWrites::remove_if`]).
#[derive(Debug)]
pub struct PendingWrites<W> {
    writes: HashMap<ObjectRef, (u64, W)>,
    next_tag: u64,
}

impl<W> Default for PendingWrites<W> {
    fn default() -> Self {
        PendingWrites { writes: HashMap::new(), next_tag: 0 }
    }
}

impl<W> PendingWrites<W> {
    /// No writes pending.
    pub fn new() -> Self {
        Self::default()
    }

    /// The newest write pending for `target`.
    pub fn get(&self, target: &ObjectRef) -> Option<&W> {
        self.writes.get(target).map(|(_, write)| write)
    }

    /// Records `write` as the newest pending for `request`'s target, and tags `request` so that its outcome is
    /// told apart from an older write's. Call right before submitting `request`.
    pub fn insert(&mut self, request: &mut WriteRequest, write: W) {
        self.next_tag += 1;
        request.tag = self.next_tag;
        self.writes.insert(request.target.clone(), (self.next_tag, write));
    }

    /// The pending write `done` reports on; `None` when a newer write of the object was submitted since, or
    /// the write is no longer pending.
    pub fn outcome_of(&self, done: &Completed) -> Option<&W> {
        self.writes.get(&done.target).filter(|(tag, _)| *tag == done.tag).map(|(_, write)| write)
    }

    /// Settles the pending write `done` reports on and returns it (see [`PendingWrites::outcome_of`]).
    pub fn settle(&mut self, done: &Completed) -> Option<W> {
        self.outcome_of(done)?;
        self.writes.remove(&done.target).map(|(_, write)| write)
    }

    /// Settles the write pending for `target` if `settled` says so.
    pub fn remove_if(&mut self, target: &ObjectRef, settled: impl FnOnce(&W) -> bool) -> Option<W> {
        if !settled(self.get(target)?) {
            return None;
        }
        self.writes.remove(target).map(|(_, write)| write)
    }

    /// Writes pending.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// True when no write is pending.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

/// How soon to plan an object again after its write ended with `outcome`; `None` when there is nothing to
/// retry (written, or superseded by a newer plan that reports for itself).
pub fn retry_delay(outcome: &Outcome) -> Option<Duration> {
    match outcome {
        Outcome::Written | Outcome::Superseded => None,
        // The state a conflict or a vanished object is judged from arrives through the watch; look again
        // shortly in case it arrived before this outcome.
        Outcome::Conflict | Outcome::Gone => Some(Duration::from_millis(200)),
        // Not owned at write time (a re-parent moved the namespace into a tree another replica, or nobody yet,
        // owns; or the shard lease lapsed for a moment): look again shortly. If this replica owns the tree by
        // then the write is planned again; if not, the plan skips it and the owner's own plan covers it.
        Outcome::Fenced => Some(Duration::from_secs(1)),
        // The view the write was planned from lags the API server: its watch brings the change that makes the
        // plan different; look again in case the re-plan it causes found the write still in flight.
        Outcome::Stale => Some(Duration::from_secs(1)),
        Outcome::Failed { .. } => Some(Duration::from_secs(5)),
    }
}

/// Items to hand back after a delay: one timer wheel for all of a task's retries, rather than a sleeping task
/// per retry.
#[derive(Debug)]
pub struct RetryQueue<T> {
    queue: DelayQueue<T>,
}

impl<T> Default for RetryQueue<T> {
    fn default() -> Self {
        RetryQueue { queue: DelayQueue::new() }
    }
}

impl<T> RetryQueue<T> {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Hands `item` back from [`RetryQueue::next`] after `delay`.
    pub fn schedule(&mut self, item: T, delay: Duration) {
        self.queue.insert(item, delay);
    }

    /// The next item whose delay is over. Never resolves while the queue is empty, so it can sit in a
    /// `select!` loop that schedules from its other branches.
    pub async fn next(&mut self) -> T {
        match poll_fn(|cx| self.queue.poll_expired(cx)).await {
            Some(expired) => expired.into_inner(),
            None => std::future::pending().await,
        }
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use kube::core::ApiResource;

    use super::*;
    use crate::writer::WriteOp;

    fn request(name: &str) -> WriteRequest {
        let resource = Arc::new(ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()));
        let target = ObjectRef::new(resource, Some("a"), name);
        WriteRequest::new(target, WriteOp::Delete { resource_version: None, uid: None }, "a")
    }

    fn completed(request: &WriteRequest, outcome: Outcome) -> Completed {
        Completed {
            target: request.target.clone(),
            verb: "delete",
            outcome,
            resource_version: None,
            tag: request.tag,
        }
    }

    #[test]
    fn only_the_newest_writes_outcome_settles_it() {
        let mut pending = PendingWrites::new();
        let mut older = request("x");
        pending.insert(&mut older, "older");
        let mut newer = request("x");
        pending.insert(&mut newer, "newer");
        assert_ne!(older.tag, newer.tag);
        assert_eq!(pending.get(&newer.target), Some(&"newer"));
        assert_eq!(pending.settle(&completed(&older, Outcome::Conflict)), None, "the older write's outcome");
        assert_eq!(pending.len(), 1);
        assert_eq!(pending.outcome_of(&completed(&newer, Outcome::Written)), Some(&"newer"));
        assert_eq!(pending.settle(&completed(&newer, Outcome::Written)), Some("newer"));
        assert!(pending.is_empty());
        assert_eq!(pending.settle(&completed(&newer, Outcome::Written)), None, "settled once");
    }

    #[test]
    fn remove_if_settles_only_what_the_predicate_says() {
        let mut pending = PendingWrites::new();
        let mut write = request("x");
        pending.insert(&mut write, "7".to_owned());
        assert_eq!(pending.remove_if(&write.target, |from| from != "7"), None);
        assert_eq!(pending.remove_if(&write.target, |from| from != "8").as_deref(), Some("7"));
        assert!(pending.is_empty());
        assert_eq!(pending.remove_if(&write.target, |_| true), None);
    }

    #[test]
    fn only_unsettled_outcomes_are_retried() {
        assert_eq!(retry_delay(&Outcome::Written), None);
        assert_eq!(retry_delay(&Outcome::Superseded), None);
        assert!(retry_delay(&Outcome::Conflict) < retry_delay(&Outcome::Fenced));
        let failed = Outcome::Failed { code: Some(500), message: String::new() };
        assert!(retry_delay(&Outcome::Fenced) < retry_delay(&failed));
    }

    #[tokio::test]
    async fn retries_come_back_in_delay_order() {
        let mut retries = RetryQueue::new();
        retries.schedule("late", Duration::from_millis(60));
        retries.schedule("soon", Duration::from_millis(10));
        let started = tokio::time::Instant::now();
        assert_eq!(retries.next().await, "soon");
        assert_eq!(retries.next().await, "late");
        assert!(started.elapsed() >= Duration::from_millis(60));
        assert!(retries.is_empty());
        let empty = tokio::time::timeout(Duration::from_millis(50), retries.next()).await;
        assert!(empty.is_err(), "an empty queue never resolves");
    }
}
