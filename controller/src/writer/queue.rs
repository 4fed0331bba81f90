//! The coalescing write queue.
//!
//! One slot per target object. A newer request for an object that is still queued replaces the queued one (it
//! was planned from fresher state); a request for an object whose write is in flight is parked and released when
//! that write finishes, so two writes to one object never race each other.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// FIFO of keys with at most one pending item per key and per-key exclusion while in flight.
#[derive(Debug)]
pub struct CoalescingQueue<K, V> {
    order: VecDeque<K>,
    queued: HashMap<K, V>,
    in_flight: HashMap<K, Option<V>>,
}

/// What `push` did with an item.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Newly queued.
    Queued,
    /// Replaced an older queued item for the same key (the older one is returned to the caller).
    Superseded,
    /// The key is being written; the item waits for that write to finish.
    Parked,
}

impl<K: Eq + Hash + Clone, V> Default for CoalescingQueue<K, V> {
    fn default() -> Self {
        CoalescingQueue { order: VecDeque::new(), queued: HashMap::new(), in_flight: HashMap::new() }
    }
}

impl<K: Eq + Hash + Clone, V> CoalescingQueue<K, V> {
    /// Adds `value` for `key`; returns what happened and, when superseding, the replaced item.
    pub fn push(&mut self, key: K, value: V) -> (Pushed, Option<V>) {
        if let Some(parked) = self.in_flight.get_mut(&key) {
            let old = parked.replace(value);
            return (if old.is_some() { Pushed::Superseded } else { Pushed::Parked }, old);
        }
        match self.queued.entry(key) {
            Entry::Occupied(mut slot) => {
                let old = std::mem::replace(slot.get_mut(), value);
                (Pushed::Superseded, Some(old))
            }
            Entry::Vacant(slot) => {
                self.order.push_back(slot.key().clone());
                slot.insert(value);
                (Pushed::Queued, None)
            }
        }
    }

    /// Takes the oldest queued item and marks its key in flight.
    pub fn pop(&mut self) -> Option<(K, V)> {
        while let Some(key) = self.order.pop_front() {
            if let Some(value) = self.queued.remove(&key) {
                self.in_flight.insert(key.clone(), None);
                return Some((key, value));
            }
        }
        None
    }

    /// Marks the write of `key` finished; a parked item for it is queued (at the back).
    pub fn done(&mut self, key: &K) {
        if let Some(Some(parked)) = self.in_flight.remove(key) {
            self.push(key.clone(), parked);
        }
    }

    /// Items waiting (queued or parked), not counting writes in flight.
    pub fn waiting(&self) -> usize {
        self.queued.len() + self.in_flight.values().filter(|p| p.is_some()).count()
    }

    /// Writes in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// True when nothing is queued, parked or in flight.
    pub fn is_idle(&self) -> bool {
        self.queued.is_empty() && self.in_flight.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_plan_supersedes_a_queued_one() {
        let mut q = CoalescingQueue::default();
        assert_eq!(q.push("a", 1), (Pushed::Queued, None));
        assert_eq!(q.push("b", 1), (Pushed::Queued, None));
        assert_eq!(q.push("a", 2), (Pushed::Superseded, Some(1)));
        assert_eq!(q.pop(), Some(("a", 2)), "keeps a's place in line");
        assert_eq!(q.pop(), Some(("b", 1)));
        assert_eq!(q.pop(), None);
    }

    #[test]
    fn writes_to_one_object_never_overlap() {
        let mut q = CoalescingQueue::default();
        q.push("a", 1);
        assert_eq!(q.pop(), Some(("a", 1)));
        assert_eq!(q.push("a", 2), (Pushed::Parked, None));
        assert_eq!(q.push("a", 3), (Pushed::Superseded, Some(2)));
        assert_eq!(q.pop(), None, "a is in flight");
        assert_eq!(q.waiting(), 1);
        q.done(&"a");
        assert_eq!(q.pop(), Some(("a", 3)));
        q.done(&"a");
        assert!(q.is_idle());
    }

    #[test]
    fn done_without_parked_item_frees_the_key() {
        let mut q = CoalescingQueue::default();
        q.push("a", 1);
        q.pop();
        q.done(&"a");
        assert_eq!(q.push("a", 2), (Pushed::Queued, None));
        assert_eq!(q.in_flight(), 0);
    }
}
