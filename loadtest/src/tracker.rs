//! Expected state against observed state, key by key, and the latency of every change.
//!
//! ```text
//!  model deltas ──register(kind, delta)──▶ expected ─┐
//!                                                     ├─ mismatched keys ─▶ converged? (none left)
//!  harness watches ──observe(key, value)──▶ observed ─┘          │
//!                                                     awaiting key → action ─▶ action done when its last
//!                                                                             HNC-owned key matches
//! ```
//!
//! A change's latency runs from the API server's acknowledgement of the harness's write to the moment the
//! harness's own watches have shown every key HNC must change for it (every copy created, updated or deleted,
//! every label and status). A later change to the same key supersedes the earlier change, whose latency is then
//! not recorded (it is counted as superseded).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use serde::Serialize;

use crate::model::{Delta, Key, Owner, default_of};

/// A change whose latency is known.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Completed {
    pub kind: &'static str,
    /// Acknowledgement time, seconds since the tracker's epoch.
    pub at_s: f64,
    /// When the change was registered (before its write was sent), seconds since the tracker's epoch.
    pub registered_s: f64,
    pub latency_s: f64,
}

#[derive(Debug)]
struct Pending {
    kind: &'static str,
    remaining: usize,
    registered: Instant,
    acked: Option<Instant>,
    done: Option<Instant>,
    superseded: bool,
}

/// The state tracker (shared behind a mutex by the watches and the scenario).
#[derive(Debug)]
pub struct Tracker {
    expected: HashMap<Key, u64>,
    observed: HashMap<Key, u64>,
    mismatched: HashSet<Key>,
    awaiting: HashMap<Key, u64>,
    actions: HashMap<u64, Pending>,
    next_id: u64,
    epoch: Instant,
    /// Every change completed since the last [`Tracker::take_completed`].
    completed: Vec<Completed>,
    /// Changes superseded before they completed.
    pub superseded: u64,
    /// Since when nothing has been mismatched (None while something is).
    pub converged_since: Option<Instant>,
    /// Watches that have delivered their initial list.
    pub synced_watches: usize,
    /// Watch events received.
    pub events: u64,
}

impl Tracker {
    pub fn new(epoch: Instant) -> Tracker {
        Tracker {
            expected: HashMap::new(),
            observed: HashMap::new(),
            mismatched: HashSet::new(),
            awaiting: HashMap::new(),
            actions: HashMap::new(),
            next_id: 0,
            epoch,
            completed: Vec::new(),
            superseded: 0,
            converged_since: Some(epoch),
            synced_watches: 0,
            events: 0,
        }
    }

    fn value(map: &HashMap<Key, u64>, key: &str) -> u64 {
        map.get(key).copied().unwrap_or_else(|| default_of(key))
    }

    /// Sets the whole expected state (before the controllers start). Returns the HNC-owned keys that differ
    /// from what is observed now: the writes necessary to converge.
    pub fn expect_all(&mut self, keys: Vec<(Key, u64, Owner)>) -> usize {
        let mut differing: Vec<Key> = Vec::new();
        for (key, value, owner) in keys {
            if owner == Owner::Controller && Self::value(&self.observed, &key) != value {
                differing.push(key.clone());
            }
            self.expected.insert(key.clone(), value);
            self.refresh(&key);
        }
        let necessary = crate::model::distinct_objects(differing.iter().map(|k| &**k));
        // Stale HNC-owned state the model does not expect (left over on a real cluster) must be removed too.
        let stale: Vec<Key> =
            self.observed.keys().filter(|k| !self.expected.contains_key(*k)).cloned().collect();
        for key in stale {
            self.refresh(&key);
        }
        necessary
    }

    /// Records a change the harness is about to write; its latency clock starts at [`Tracker::ack`].
    pub fn register(&mut self, kind: &'static str, delta: &Delta) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut remaining = 0;
        for (key, value, owner) in &delta.changes {
            self.expected.insert(key.clone(), *value);
            if let Some(old) = self.awaiting.remove(key) {
                self.supersede(old);
            }
            if *owner == Owner::Controller && Self::value(&self.observed, key) != *value {
                self.awaiting.insert(key.clone(), id);
                remaining += 1;
            }
            self.refresh(key);
        }
        let now = Instant::now();
        let done = (remaining == 0).then_some(now);
        self.actions
            .insert(id, Pending { kind, remaining, registered: now, acked: None, done, superseded: false });
        id
    }

    fn supersede(&mut self, id: u64) {
        if let Some(p) = self.actions.get_mut(&id) {
            p.superseded = true;
            p.remaining = p.remaining.saturating_sub(1);
            if p.remaining == 0 {
                p.done.get_or_insert_with(Instant::now);
            }
        }
        self.finish_if_done(id);
    }

    /// The harness's write for change `id` was acknowledged.
    pub fn ack(&mut self, id: u64) {
        if let Some(p) = self.actions.get_mut(&id) {
            p.acked = Some(Instant::now());
        }
        self.finish_if_done(id);
    }

    /// The harness's write for change `id` failed: it will never complete.
    pub fn fail(&mut self, id: u64) {
        self.actions.remove(&id);
        self.awaiting.retain(|_, a| *a != id);
    }

    fn finish_if_done(&mut self, id: u64) {
        let Some(p) = self.actions.get(&id) else { return };
        let (Some(acked), Some(done)) = (p.acked, p.done) else { return };
        let p = self.actions.remove(&id).expect("present");
        if p.superseded {
            self.superseded += 1;
            return;
        }
        self.completed.push(Completed {
            kind: p.kind,
            at_s: acked.duration_since(self.epoch).as_secs_f64(),
            registered_s: p.registered.saturating_duration_since(self.epoch).as_secs_f64(),
            latency_s: done.saturating_duration_since(acked).as_secs_f64(),
        });
    }

    /// A watch saw `key` with `value` (ABSENT for a deletion).
    pub fn observe(&mut self, key: Key, value: u64) {
        self.events += 1;
        if value == crate::model::ABSENT || value == default_of(&key) {
            self.observed.remove(&key);
        } else {
            self.observed.insert(key.clone(), value);
        }
        self.refresh(&key);
    }

    /// Keys with `prefix` that a relist did not return are gone.
    pub fn forget_unlisted(&mut self, prefix: &str, listed: &HashSet<Key>) {
        let gone: Vec<Key> =
            self.observed.keys().filter(|k| k.starts_with(prefix) && !listed.contains(*k)).cloned().collect();
        for key in gone {
            self.observe(key, 0);
        }
    }

    fn refresh(&mut self, key: &Key) {
        let matched = Self::value(&self.expected, key) == Self::value(&self.observed, key);
        if matched {
            if self.mismatched.remove(key) && self.mismatched.is_empty() {
                self.converged_since = Some(Instant::now());
            }
            if let Some(id) = self.awaiting.remove(key) {
                if let Some(p) = self.actions.get_mut(&id) {
                    p.remaining = p.remaining.saturating_sub(1);
                    if p.remaining == 0 {
                        p.done = Some(Instant::now());
                    }
                }
                self.finish_if_done(id);
            }
        } else if self.mismatched.insert(key.clone()) {
            self.converged_since = None;
        }
    }

    /// Keys whose observed value differs from the expected one.
    pub fn mismatched(&self) -> usize {
        self.mismatched.len()
    }

    /// A few mismatched keys, for error messages.
    pub fn sample_mismatched(&self, n: usize) -> Vec<String> {
        let mut keys: Vec<String> = self.mismatched.iter().take(n).map(|k| k.to_string()).collect();
        keys.sort();
        keys
    }

    /// A few keys that pending changes still wait for, with the change's kind, for diagnosis.
    pub fn sample_awaited(&self, n: usize) -> Vec<String> {
        let mut keys: Vec<String> = self
            .awaiting
            .iter()
            .filter_map(|(k, id)| Some(format!("{} ({})", k, self.actions.get(id)?.kind)))
            .collect();
        keys.sort();
        keys.truncate(n);
        keys
    }

    /// A few keys pending changes still wait for (sorted).
    pub fn awaited_keys(&self, n: usize) -> Vec<Key> {
        let mut keys: Vec<Key> = self.awaiting.keys().cloned().collect();
        keys.sort();
        keys.truncate(n);
        keys
    }

    /// Number of keys expected.
    pub fn expected_len(&self) -> usize {
        self.expected.len()
    }

    /// Changes registered and not yet completed.
    pub fn pending(&self) -> usize {
        self.actions.len()
    }

    /// True when change `id` has completed (or was superseded or failed).
    pub fn is_finished(&self, id: u64) -> bool {
        !self.actions.contains_key(&id)
    }

    /// Drains the completed changes.
    pub fn take_completed(&mut self) -> Vec<Completed> {
        std::mem::take(&mut self.completed)
    }

    /// Abandons every pending change (at the end of a phase), returning how many there were.
    pub fn abandon_pending(&mut self) -> usize {
        let n = self.actions.len();
        self.actions.clear();
        self.awaiting.clear();
        n
    }

    /// Seconds since the epoch.
    pub fn since_epoch(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.epoch).as_secs_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(changes: &[(&str, u64, Owner)]) -> Delta {
        Delta { changes: changes.iter().map(|(k, v, o)| (Key::from(*k), *v, *o)).collect() }
    }

    #[test]
    fn a_change_completes_when_its_last_hnc_key_is_observed_after_the_ack() {
        let mut t = Tracker::new(Instant::now());
        let id = t.register(
            "create",
            &delta(&[
                ("o:role/a/x", 5, Owner::Harness),
                ("o:role/b/x", 6, Owner::Controller),
                ("o:role/c/x", 7, Owner::Controller),
            ]),
        );
        assert_eq!(t.mismatched(), 3);
        t.observe("o:role/a/x".into(), 5);
        t.observe("o:role/b/x".into(), 6);
        t.ack(id);
        assert!(t.take_completed().is_empty(), "c is still missing");
        t.observe("o:role/c/x".into(), 7);
        let done = t.take_completed();
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].kind, "create");
        assert_eq!(t.mismatched(), 0);
        assert!(t.converged_since.is_some());
    }

    #[test]
    fn a_newer_change_to_the_same_key_supersedes_the_older_one() {
        let mut t = Tracker::new(Instant::now());
        let first = t.register("update", &delta(&[("o:role/b/x", 6, Owner::Controller)]));
        t.ack(first);
        let second = t.register("delete", &delta(&[("o:role/b/x", 0, Owner::Controller)]));
        t.ack(second);
        assert_eq!(t.superseded, 1);
        assert_eq!(t.pending(), 0, "b/x was never observed, so the delete is already satisfied");
        assert_eq!(t.take_completed().len(), 1);
    }

    #[test]
    fn expect_all_counts_the_hnc_keys_that_differ() {
        let mut t = Tracker::new(Instant::now());
        t.observe("l:a".into(), 9);
        t.observe("o:role/a/x".into(), 3);
        let necessary = t.expect_all(vec![
            ("l:a".into(), 10, Owner::Controller),
            ("h:a".into(), 1, Owner::Controller),
            ("o:role/a/x".into(), 3, Owner::Harness),
            ("o:role/b/x".into(), 4, Owner::Controller),
        ]);
        assert_eq!(necessary, 2, "labels of a and the copy in b; an absent HC already has no children");
        assert_eq!(t.mismatched(), 2);
    }
}
