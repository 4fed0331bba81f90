//! The fair, coalescing write queue: which queued write is sent next.
//!
//! Writes arrive in *lanes* (one `submit_batch` call: one plan round of the propagation engine, one reconcile),
//! and lanes belong to *flows* (who submitted: propagation, hierarchy, ...). `pop` serves flows round robin and,
//! within a flow, its lanes round robin — deficit round robin with every write costing one — so a plan round of
//! 99 writes queued next to a 10,000-write cold start gets every other write sent and is done after about 2×99
//! write times instead of after the whole backlog. A flow that opens many tiny lanes gets no more than one flow's
//! share.
//!
//! One slot per target object, as before: a newer request for a queued object replaces the queued one (it was
//! planned from fresher state) and joins the newer lane (in place when it is the same lane); a request for an
//! object whose write is in flight is parked and queued in its lane when that write finishes, so two writes to
//! one object never race. Every operation is O(1) amortised: lanes hold keys with a sequence number, and an entry
//! whose item was superseded or moved is skipped when it reaches the front.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

/// A lane: one submission's writes, served in order, in turn with the other lanes of its flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lane<F> {
    id: u64,
    flow: F,
}

impl<F: Copy> Lane<F> {
    /// The flow the lane belongs to.
    pub fn flow(&self) -> F {
        self.flow
    }
}

/// What `push` did with an item.
#[derive(Debug, PartialEq, Eq)]
pub enum Pushed {
    /// Newly queued.
    Queued,
    /// Replaced an older queued or parked item for the same key (the older one is returned to the caller).
    Superseded,
    /// The key is being written; the item waits for that write to finish.
    Parked,
}

#[derive(Debug)]
struct Slot<V, F> {
    value: V,
    lane: Lane<F>,
    seq: u64,
}

#[derive(Debug)]
struct LaneQueue<K> {
    /// Keys in submission order, each with the sequence number of the push that put it here.
    order: VecDeque<(K, u64)>,
}

/// Fair queue of keys with at most one pending item per key and per-key exclusion while in flight.
#[derive(Debug)]
pub struct FairQueue<K, V, F> {
    queued: HashMap<K, Slot<V, F>>,
    /// Keys being written, with the item parked behind the write (if any) and the lane it was submitted in.
    in_flight: HashMap<K, Option<(V, Lane<F>)>>,
    parked: usize,
    /// Lanes that have entries (possibly stale ones), by id.
    lanes: HashMap<u64, LaneQueue<K>>,
    /// Per flow with lanes, its lanes in round-robin order.
    flows: HashMap<F, VecDeque<u64>>,
    /// Flows with lanes, in round-robin order.
    turn: VecDeque<F>,
    next_lane: u64,
    next_seq: u64,
}

impl<K, V, F> Default for FairQueue<K, V, F> {
    fn default() -> Self {
        FairQueue {
            queued: HashMap::new(),
            in_flight: HashMap::new(),
            parked: 0,
            lanes: HashMap::new(),
            flows: HashMap::new(),
            turn: VecDeque::new(),
            next_lane: 0,
            next_seq: 0,
        }
    }
}

impl<K: Eq + Hash + Clone, V, F: Eq + Hash + Copy> FairQueue<K, V, F> {
    /// A new lane in `flow`. It takes its turn once something is pushed into it and leaves the rotation when
    /// it is empty; an empty lane costs nothing.
    pub fn open_lane(&mut self, flow: F) -> Lane<F> {
        self.next_lane += 1;
        Lane { id: self.next_lane, flow }
    }

    /// Adds `value` for `key` in `lane`; returns what happened and, when superseding, the replaced item.
    pub fn push(&mut self, key: K, value: V, lane: Lane<F>) -> (Pushed, Option<V>) {
        if let Some(parked) = self.in_flight.get_mut(&key) {
            let old = parked.replace((value, lane)).map(|(old, _)| old);
            if old.is_none() {
                self.parked += 1;
                return (Pushed::Parked, None);
            }
            return (Pushed::Superseded, old);
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        match self.queued.entry(key) {
            Entry::Occupied(mut entry) => {
                let slot = entry.get_mut();
                let old = std::mem::replace(&mut slot.value, value);
                if slot.lane != lane {
                    // The newer plan's lane: the old entry goes stale and is skipped when reached.
                    slot.lane = lane;
                    slot.seq = seq;
                    let key = entry.key().clone();
                    self.enqueue(key, seq, lane);
                }
                (Pushed::Superseded, Some(old))
            }
            Entry::Vacant(slot) => {
                let key = slot.key().clone();
                slot.insert(Slot { value, lane, seq });
                self.enqueue(key, seq, lane);
                (Pushed::Queued, None)
            }
        }
    }

    /// Takes the next item by round robin over flows, then over the lanes of the flow, and marks its key in
    /// flight.
    pub fn pop(&mut self) -> Option<(K, V)> {
        while let Some(&flow) = self.turn.front() {
            let ring = self.flows.get_mut(&flow).expect("a flow in turn has lanes");
            let Some(&lane_id) = ring.front() else {
                self.flows.remove(&flow);
                self.turn.pop_front();
                continue;
            };
            let lane = self.lanes.get_mut(&lane_id).expect("a lane in a ring is stored");
            let mut found = None;
            while let Some((key, seq)) = lane.order.pop_front() {
                if self.queued.get(&key).is_some_and(|slot| slot.seq == seq) {
                    found = Some(key);
                    break;
                }
            }
            // Next turn: this lane goes to the back of its flow, and the flow to the back of the flows.
            ring.pop_front();
            if lane.order.is_empty() {
                self.lanes.remove(&lane_id);
            } else {
                ring.push_back(lane_id);
            }
            self.turn.pop_front();
            if ring.is_empty() {
                self.flows.remove(&flow);
            } else {
                self.turn.push_back(flow);
            }
            if let Some(key) = found {
                let slot = self.queued.remove(&key).expect("checked above");
                self.in_flight.insert(key.clone(), None);
                return Some((key, slot.value));
            }
        }
        None
    }

    /// Marks the write of `key` finished; a parked item for it is queued at the back of its lane.
    pub fn done(&mut self, key: &K) {
        if let Some(Some((parked, lane))) = self.in_flight.remove(key) {
            self.parked -= 1;
            self.push(key.clone(), parked, lane);
        }
    }

    /// Items waiting (queued or parked), not counting writes in flight.
    pub fn waiting(&self) -> usize {
        self.queued.len() + self.parked
    }

    /// Writes in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Lanes with queued items (an upper bound: a lane whose items were all superseded counts until its turn).
    pub fn lanes(&self) -> usize {
        self.lanes.len()
    }

    /// True when nothing is queued, parked or in flight.
    pub fn is_idle(&self) -> bool {
        self.queued.is_empty() && self.in_flight.is_empty()
    }

    fn enqueue(&mut self, key: K, seq: u64, lane: Lane<F>) {
        match self.lanes.entry(lane.id) {
            Entry::Occupied(mut queue) => queue.get_mut().order.push_back((key, seq)),
            Entry::Vacant(slot) => {
                slot.insert(LaneQueue { order: VecDeque::from([(key, seq)]) });
                let ring = self.flows.entry(lane.flow).or_default();
                if ring.is_empty() {
                    self.turn.push_back(lane.flow);
                }
                ring.push_back(lane.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Queue = FairQueue<u32, u32, &'static str>;

    #[test]
    fn newer_plan_supersedes_a_queued_one_in_place_within_its_lane() {
        let mut q = Queue::default();
        let lane = q.open_lane("p");
        assert_eq!(q.push(1, 1, lane), (Pushed::Queued, None));
        assert_eq!(q.push(2, 1, lane), (Pushed::Queued, None));
        assert_eq!(q.push(1, 2, lane), (Pushed::Superseded, Some(1)));
        assert_eq!(q.pop(), Some((1, 2)), "keeps 1's place in line");
        assert_eq!(q.pop(), Some((2, 1)));
        assert_eq!(q.pop(), None);
        assert_eq!(q.lanes(), 0);
    }

    #[test]
    fn newer_plan_in_another_lane_takes_that_lanes_place() {
        let mut q = Queue::default();
        let old = q.open_lane("p");
        for key in 0..5 {
            q.push(key, 0, old);
        }
        let new = q.open_lane("p");
        q.push(9, 1, new);
        assert_eq!(q.push(0, 1, new), (Pushed::Superseded, Some(0)));
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(order, vec![(1, 0), (9, 1), (2, 0), (0, 1), (3, 0), (4, 0)]);
        assert_eq!(q.waiting(), 0);
    }

    #[test]
    fn writes_to_one_object_never_overlap() {
        let mut q = Queue::default();
        let lane = q.open_lane("p");
        q.push(1, 1, lane);
        assert_eq!(q.pop(), Some((1, 1)));
        let later = q.open_lane("p");
        assert_eq!(q.push(1, 2, later), (Pushed::Parked, None));
        assert_eq!(q.push(1, 3, later), (Pushed::Superseded, Some(2)));
        assert_eq!(q.pop(), None, "1 is in flight");
        assert_eq!(q.waiting(), 1);
        q.done(&1);
        assert_eq!(q.waiting(), 1);
        assert_eq!(q.pop(), Some((1, 3)));
        q.done(&1);
        assert!(q.is_idle());
    }

    #[test]
    fn done_without_parked_item_frees_the_key() {
        let mut q = Queue::default();
        let lane = q.open_lane("p");
        q.push(1, 1, lane);
        q.pop();
        q.done(&1);
        assert_eq!(q.push(1, 2, lane), (Pushed::Queued, None));
        assert_eq!(q.in_flight(), 0);
    }

    /// The FIFO this queue replaced sent a batch of 10 queued after 10,000 writes at positions 10,001–10,010.
    #[test]
    fn a_small_batch_is_not_queued_behind_a_backlog() {
        let mut q = Queue::default();
        let cold = q.open_lane("p");
        for key in 0..10_000 {
            q.push(key, 0, cold);
        }
        let fresh = q.open_lane("p");
        for key in 100_000..100_010 {
            q.push(key, 1, fresh);
        }
        let mut last_fresh = 0;
        let mut n = 0;
        while let Some((key, lane)) = q.pop() {
            n += 1;
            if lane == 1 {
                last_fresh = n;
            }
            q.done(&key);
        }
        assert_eq!(n, 10_010);
        assert!(last_fresh <= 2 * 10, "the batch of 10 finished at pop {last_fresh}, not after the backlog");
    }

    #[test]
    fn a_flow_of_many_small_lanes_gets_one_flows_share() {
        let mut q = Queue::default();
        for key in 0..1_000 {
            let lane = q.open_lane("hierarchy");
            q.push(key, 0, lane);
        }
        let fresh = q.open_lane("propagation");
        for key in 100_000..100_010 {
            q.push(key, 1, fresh);
        }
        let popped: Vec<_> = (0..20).map(|_| q.pop().unwrap().1).collect();
        assert_eq!(popped.iter().filter(|lane| **lane == 1).count(), 10, "{popped:?}");
    }

    #[test]
    fn a_parked_write_goes_back_to_its_own_lane() {
        let mut q = Queue::default();
        let big = q.open_lane("p");
        q.push(1, 0, big);
        assert_eq!(q.pop(), Some((1, 0)));
        for key in 2..100 {
            q.push(key, 0, big);
        }
        let small = q.open_lane("p");
        q.push(1, 1, small);
        q.done(&1);
        assert_eq!(q.pop(), Some((2, 0)));
        assert_eq!(q.pop(), Some((1, 1)), "the released write takes its lane's turn");
    }

    #[test]
    fn a_million_queued_writes_with_churn() {
        // No timing here: this only shows the structure stays linear (each operation O(1) amortised) where a
        // quadratic one would not finish.
        let mut q = Queue::default();
        let n = 1_000_000;
        let first = q.open_lane("p");
        for key in 0..n {
            q.push(key, 0, first);
        }
        // Supersede every other write from many small lanes, leaving stale entries behind.
        for chunk in (0..n).step_by(2).collect::<Vec<_>>().chunks(100) {
            let lane = q.open_lane("p");
            for &key in chunk {
                q.push(key, 1, lane);
            }
        }
        assert_eq!(q.waiting(), n as usize);
        let mut popped = 0;
        while let Some((key, _)) = q.pop() {
            q.done(&key);
            popped += 1;
        }
        assert_eq!(popped, n);
        assert!(q.is_idle());
        assert_eq!(q.lanes(), 0);
    }

    /// Random pushes, pops and completions against a model: every pushed item is popped once or reported
    /// superseded, never two in flight for one key, and the counts agree.
    #[test]
    fn random_operations_keep_the_guarantees() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut q: FairQueue<u32, u64, u8> = FairQueue::default();
        let mut lanes = vec![q.open_lane(0)];
        let mut in_flight = std::collections::HashSet::new();
        let (mut pushed, mut popped, mut superseded) = (0u64, 0u64, 0u64);
        for step in 0..200_000u64 {
            match rng.random_range(0..10) {
                0 => lanes.push(q.open_lane(rng.random_range(0..3))),
                1..=5 => {
                    let lane = lanes[rng.random_range(0..lanes.len())];
                    let (_, old) = q.push(rng.random_range(0..500), step, lane);
                    pushed += 1;
                    superseded += u64::from(old.is_some());
                }
                6..=7 => {
                    if let Some((key, _)) = q.pop() {
                        assert!(in_flight.insert(key), "two writes of {key} in flight");
                        popped += 1;
                    }
                }
                _ => {
                    if let Some(&key) = in_flight.iter().next() {
                        in_flight.remove(&key);
                        q.done(&key);
                    }
                }
            }
            assert_eq!(q.in_flight(), in_flight.len());
            assert_eq!(pushed, popped + superseded + q.waiting() as u64);
        }
    }
}
