//! Shard → replica assignment: pure, deterministic, balanced by weight, moving as little as it can.
//!
//! The leader re-assigns for two reasons, and each has its own entry point:
//!
//! * [`assign`] — membership changed. Shards of surviving replicas stay where they are. Shards of departed
//!   replicas (and unowned ones) are placed heaviest first on the least-loaded replica. Replicas that own
//!   nothing yet (newcomers) are then filled from the heaviest replicas until the loads are inside the
//!   balance band. Nothing else moves: adding a replica moves shards only onto it, removing one moves only
//!   its shards.
//! * [`rebalance`] — weights drifted (the leader calls it once max/mean crosses a threshold above the target,
//!   so it does not flap). Moves shards from replicas above the band to replicas below it until inside it.
//!
//! The band is `mean / target ..= mean × target` with `target` = [`BALANCE_TARGET`] (1.25) for [`assign`]. A
//! move always shrinks the heavier of the two replicas involved, so the sum of squared loads falls with each
//! move and the loops end; a shard heavier than the band cannot be split, so "balanced" is then "as close as
//! moves of whole shards get". Ties break on shard id and replica id: the same inputs give the same
//! assignment.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};

/// The balance target: a replica's weight at most 1.25 × the mean (and a newcomer's at least mean / 1.25).
pub const BALANCE_TARGET: f64 = 1.25;

/// A replica's identity (its `holderIdentity` on every Lease it holds).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ReplicaId(pub String);

impl ReplicaId {
    /// The identity as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for ReplicaId {
    fn from(s: &str) -> Self {
        ReplicaId(s.to_owned())
    }
}

impl From<String> for ReplicaId {
    fn from(s: String) -> Self {
        ReplicaId(s)
    }
}

/// Which replica owns each shard (index = shard id); `None` = nobody.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Assignment {
    owners: Vec<Option<ReplicaId>>,
}

impl Assignment {
    /// `shard_count` shards, none owned.
    pub fn unowned(shard_count: u32) -> Self {
        Assignment { owners: vec![None; shard_count as usize] }
    }

    /// From per-shard owners.
    pub fn from_owners(owners: Vec<Option<ReplicaId>>) -> Self {
        Assignment { owners }
    }

    /// Per-shard owners (index = shard id).
    pub fn owners(&self) -> &[Option<ReplicaId>] {
        &self.owners
    }

    /// Number of shards.
    pub fn shard_count(&self) -> u32 {
        self.owners.len() as u32
    }

    /// The owner of `shard`.
    pub fn owner(&self, shard: u32) -> Option<&ReplicaId> {
        self.owners.get(shard as usize).and_then(Option::as_ref)
    }

    /// The shards `replica` owns.
    pub fn shards_of(&self, replica: &ReplicaId) -> BTreeSet<u32> {
        (0..self.shard_count()).filter(|&s| self.owner(s) == Some(replica)).collect()
    }

    /// Total weight per replica; every one of `replicas` appears, owners outside it too.
    pub fn loads(&self, weights: &[u64], replicas: &[ReplicaId]) -> BTreeMap<ReplicaId, u128> {
        let mut loads: BTreeMap<ReplicaId, u128> = replicas.iter().map(|r| (r.clone(), 0)).collect();
        for (shard, owner) in self.owners.iter().enumerate() {
            if let Some(owner) = owner {
                *loads.entry(owner.clone()).or_default() += u128::from(weight(weights, shard));
            }
        }
        loads
    }

    /// Heaviest replica's weight / mean weight over `replicas` (1.0 when there is no weight or no replica).
    pub fn imbalance(&self, weights: &[u64], replicas: &[ReplicaId]) -> f64 {
        let loads = self.loads(weights, replicas);
        let total: u128 = loads.values().sum();
        let max = loads.values().copied().max().unwrap_or(0);
        if total == 0 || loads.is_empty() {
            return 1.0;
        }
        max as f64 * loads.len() as f64 / total as f64
    }

    /// Shards whose owner differs between `self` and `other` (shards beyond either's length count as moved).
    pub fn moved_from(&self, other: &Assignment) -> Vec<u32> {
        let n = self.owners.len().max(other.owners.len());
        (0..n)
            .filter(|&s| self.owners.get(s).cloned().flatten() != other.owners.get(s).cloned().flatten())
            .map(|s| s as u32)
            .collect()
    }
}

/// Every (donor, taker) pair in preference order, a replica never paired with itself.
fn pairs(donors: &[usize], takers: &[usize]) -> Vec<(usize, usize)> {
    donors.iter().flat_map(|&d| takers.iter().filter(move |&&t| t != d).map(move |&t| (d, t))).collect()
}

fn weight(weights: &[u64], shard: usize) -> u64 {
    weights.get(shard).copied().unwrap_or(0)
}

/// Re-assigns after a membership change: one shard per entry of `weights`, over `replicas` (any order,
/// duplicates ignored), keeping every shard of `previous` whose owner is still a replica. See the module
/// docs.
pub fn assign(weights: &[u64], replicas: &[ReplicaId], previous: &Assignment) -> Assignment {
    let mut b = Balancer::new(weights, replicas, previous);
    if b.replicas.is_empty() {
        return Assignment::unowned(weights.len() as u32);
    }
    let newcomers: BTreeSet<usize> = (0..b.replicas.len()).filter(|&r| b.shards[r].is_empty()).collect();
    let orphans = b.place_orphans();
    // Shards that must move anyway (orphans) may go anywhere; anything else only onto a newcomer.
    b.balance(BALANCE_TARGET, &newcomers, false, |shard, to| {
        orphans.contains(&shard) || newcomers.contains(&to)
    });
    b.finish()
}

/// Re-balances after weights drifted: keeps `previous` except for the moves (heaviest replicas to lightest,
/// or swaps) that bring every replica inside `mean / target ..= mean × target`. Shards of non-`replicas` are
/// placed as in [`assign`]. When single moves and swaps cannot reach the band but packing afresh does, the
/// fresh packing is used, its bins matched to the previous owners so that as much weight as possible stays
/// put.
pub fn rebalance(weights: &[u64], replicas: &[ReplicaId], previous: &Assignment, target: f64) -> Assignment {
    let target = target.max(1.0);
    let mut b = Balancer::new(weights, replicas, previous);
    if b.replicas.is_empty() {
        return Assignment::unowned(weights.len() as u32);
    }
    b.place_orphans();
    let everyone: BTreeSet<usize> = (0..b.replicas.len()).collect();
    b.balance(target, &everyone, true, |_, _| true);
    let heaviest_shard = weights.iter().copied().max().unwrap_or(0) as f64;
    let bound = (b.mean() * target).max(heaviest_shard);
    if b.max_load() as f64 <= bound {
        return b.finish();
    }
    let mut packed = Balancer::new(weights, &b.replicas, &Assignment::default());
    packed.place_orphans();
    packed.balance(target, &everyone, true, |_, _| true);
    if packed.max_load() >= b.max_load() {
        return b.finish();
    }
    packed.relabel_like(previous);
    packed.finish()
}

/// Working state: replicas by index (sorted by id), each shard's owner index, loads and shard sets.
struct Balancer<'a> {
    weights: &'a [u64],
    replicas: Vec<ReplicaId>,
    owner: Vec<Option<usize>>,
    loads: Vec<u128>,
    shards: Vec<BTreeSet<usize>>,
}

impl<'a> Balancer<'a> {
    fn new(weights: &'a [u64], replicas: &[ReplicaId], previous: &Assignment) -> Self {
        let replicas: Vec<ReplicaId> =
            replicas.iter().cloned().collect::<BTreeSet<_>>().into_iter().collect();
        let index: BTreeMap<&ReplicaId, usize> = replicas.iter().enumerate().map(|(i, r)| (r, i)).collect();
        let mut b = Balancer {
            weights,
            owner: vec![None; weights.len()],
            loads: vec![0; replicas.len()],
            shards: vec![BTreeSet::new(); replicas.len()],
            replicas: Vec::new(),
        };
        for shard in 0..weights.len() {
            if let Some(&r) = previous.owners.get(shard).and_then(Option::as_ref).and_then(|o| index.get(o)) {
                b.put(shard, r);
            }
        }
        b.replicas = replicas;
        b
    }

    fn w(&self, shard: usize) -> u128 {
        u128::from(self.weights[shard])
    }

    fn put(&mut self, shard: usize, r: usize) {
        if let Some(old) = self.owner[shard].replace(r) {
            self.loads[old] -= self.w(shard);
            self.shards[old].remove(&shard);
        }
        self.loads[r] += self.w(shard);
        self.shards[r].insert(shard);
    }

    /// Unowned shards, heaviest first, each on the replica that is lightest at that moment (LPT); fewer
    /// shards breaks ties so that zero-weight shards still spread out. Returns the shards placed.
    fn place_orphans(&mut self) -> BTreeSet<usize> {
        let mut orphans: Vec<usize> = (0..self.weights.len()).filter(|&s| self.owner[s].is_none()).collect();
        orphans.sort_by_key(|&s| (std::cmp::Reverse(self.weights[s]), s));
        for &shard in &orphans {
            let r = (0..self.replicas.len())
                .min_by_key(|&r| (self.loads[r], self.shards[r].len(), r))
                .expect("at least one replica");
            self.put(shard, r);
        }
        orphans.into_iter().collect()
    }

    /// Moves shards (only those `movable(shard, to)` allows) until no replica is above `mean × target` and no
    /// replica of `fill` is below `mean / target`, or no move helps. With `swaps`, when no single move helps,
    /// two shards of different weight may trade places.
    fn balance(
        &mut self,
        target: f64,
        fill: &BTreeSet<usize>,
        swaps: bool,
        movable: impl Fn(usize, usize) -> bool,
    ) {
        let total: u128 = self.loads.iter().sum();
        if total == 0 {
            return;
        }
        let mean = total as f64 / self.replicas.len() as f64;
        let (hi, lo) = (mean * target, mean / target);
        // Each move lowers the sum of squared loads, so this bound is never reached in practice; it only
        // makes termination obvious.
        for _ in 0..self.weights.len() * self.replicas.len() + 1 {
            let mut by_load: Vec<usize> = (0..self.replicas.len()).collect();
            by_load.sort_by_key(|&r| (self.loads[r], self.shards[r].len(), r));
            let heavy_first: Vec<usize> = by_load.iter().rev().copied().collect();
            let over: Vec<usize> =
                heavy_first.iter().copied().filter(|&r| self.loads[r] as f64 > hi).collect();
            let under: Vec<usize> = by_load
                .iter()
                .copied()
                .filter(|&r| fill.contains(&r) && (self.loads[r] as f64) < lo)
                .collect();
            if over.is_empty() && under.is_empty() {
                return;
            }
            // Relieve the replicas above the band first, then fill those below it.
            let phases: [Vec<(usize, usize)>; 2] = [pairs(&over, &by_load), pairs(&heavy_first, &under)];
            // First choice: a move that leaves neither side past the mean (no overshoot); else the move that
            // evens the pair best; else (if allowed) the swap that does.
            let moved = phases.iter().find_map(|phase| {
                let phase = phase.iter().copied();
                phase
                    .clone()
                    .find_map(|(d, t)| self.move_within_mean(d, t, mean, &movable).map(|s| (s, t)))
                    .or_else(|| {
                        phase.clone().find_map(|(d, t)| self.evening_move(d, t, &movable).map(|s| (s, t)))
                    })
            });
            if let Some((shard, to)) = moved {
                self.put(shard, to);
                continue;
            }
            let swap = phases
                .iter()
                .filter(|_| swaps)
                .find_map(|phase| phase.iter().find_map(|&(d, t)| self.evening_swap(d, t)));
            let Some((a, b)) = swap else { return };
            let (da, db) = (self.owner[a].expect("owned"), self.owner[b].expect("owned"));
            self.put(a, db);
            self.put(b, da);
        }
    }

    /// Shards `a` of `from` and `b` of `to` whose exchange evens the pair best, if any lowers its maximum.
    fn evening_swap(&self, from: usize, to: usize) -> Option<(usize, usize)> {
        let (ld, lt) = (self.loads[from], self.loads[to]);
        if ld <= lt {
            return None;
        }
        let gap = (ld - lt) as i128;
        let mut best: Option<(u128, usize, usize)> = None;
        for &a in &self.shards[from] {
            for &b in &self.shards[to] {
                let delta = self.w(a) as i128 - self.w(b) as i128;
                if delta <= 0 || delta >= gap {
                    continue;
                }
                let score = (gap - 2 * delta).unsigned_abs();
                if best.is_none_or(|(s, ..)| score < s) {
                    best = Some((score, a, b));
                }
            }
        }
        best.map(|(_, a, b)| (a, b))
    }

    /// The heaviest movable shard of `from` that fits both `from`'s excess and `to`'s deficit over the mean.
    fn move_within_mean(
        &self,
        from: usize,
        to: usize,
        mean: f64,
        movable: &impl Fn(usize, usize) -> bool,
    ) -> Option<usize> {
        let room = (self.loads[from] as f64 - mean).min(mean - self.loads[to] as f64);
        self.shards[from]
            .iter()
            .copied()
            .filter(|&s| self.w(s) > 0 && self.w(s) as f64 <= room && movable(s, to))
            .max_by_key(|&s| (self.w(s), std::cmp::Reverse(s)))
    }

    /// The movable shard of `from` whose move to `to` evens the pair best, if any lowers the pair's maximum.
    fn evening_move(&self, from: usize, to: usize, movable: &impl Fn(usize, usize) -> bool) -> Option<usize> {
        let (ld, lt) = (self.loads[from], self.loads[to]);
        if ld <= lt {
            return None;
        }
        let gap = ld - lt;
        self.shards[from]
            .iter()
            .copied()
            .filter(|&s| self.w(s) > 0 && self.w(s) < gap && movable(s, to))
            .min_by_key(|&s| ((gap as i128 - 2 * self.w(s) as i128).unsigned_abs(), s))
    }

    fn mean(&self) -> f64 {
        self.loads.iter().sum::<u128>() as f64 / self.replicas.len() as f64
    }

    fn max_load(&self) -> u128 {
        self.loads.iter().copied().max().unwrap_or(0)
    }

    /// Renames bins (the shard sets of a fresh packing) to replicas so that the most weight stays with its
    /// `previous` owner: greedily, largest overlap first. Loads and balance are unchanged.
    fn relabel_like(&mut self, previous: &Assignment) {
        let n = self.replicas.len();
        let index: BTreeMap<&ReplicaId, usize> =
            self.replicas.iter().enumerate().map(|(i, r)| (r, i)).collect();
        let mut overlap = vec![vec![0u128; n]; n];
        for (shard, &bin) in self.owner.iter().enumerate() {
            let prev = previous.owners.get(shard).and_then(Option::as_ref).and_then(|o| index.get(o));
            if let (Some(bin), Some(&prev)) = (bin, prev) {
                // +1: a zero-weight shard staying put still counts.
                overlap[bin][prev] += self.w(shard) + 1;
            }
        }
        let mut pairs: Vec<(u128, usize, usize)> = (0..n)
            .flat_map(|bin| (0..n).map(move |r| (bin, r)))
            .map(|(bin, r)| (overlap[bin][r], bin, r))
            .collect();
        pairs.sort_by_key(|&(o, bin, r)| (std::cmp::Reverse(o), bin, r));
        let (mut bin_to, mut taken) = (vec![None; n], vec![false; n]);
        for (_, bin, r) in pairs {
            if bin_to[bin].is_none() && !taken[r] {
                bin_to[bin] = Some(r);
                taken[r] = true;
            }
        }
        let owner: Vec<Option<usize>> =
            self.owner.iter().map(|o| o.map(|bin| bin_to[bin].expect("every bin matched"))).collect();
        let (mut loads, mut shards) = (vec![0; n], vec![BTreeSet::new(); n]);
        for (bin, r) in bin_to.iter().enumerate() {
            let r = r.expect("every bin matched");
            loads[r] = self.loads[bin];
            shards[r] = std::mem::take(&mut self.shards[bin]);
        }
        (self.owner, self.loads, self.shards) = (owner, loads, shards);
    }

    fn finish(self) -> Assignment {
        Assignment { owners: self.owner.iter().map(|o| o.map(|r| self.replicas[r].clone())).collect() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<ReplicaId> {
        names.iter().map(|&n| ReplicaId::from(n)).collect()
    }

    #[test]
    fn no_replicas_means_no_owners() {
        let a = assign(&[3, 4], &[], &Assignment::unowned(2));
        assert_eq!(a, Assignment::unowned(2));
    }

    #[test]
    fn weights_not_counts_decide() {
        // One heavy shard is worth the nine light ones together.
        let mut weights = vec![900];
        weights.extend([100; 9]);
        let a = assign(&weights, &ids(&["a", "b"]), &Assignment::default());
        let heavy_owner = a.owner(0).unwrap().clone();
        assert_eq!(a.shards_of(&heavy_owner), BTreeSet::from([0]));
        assert!((a.imbalance(&weights, &ids(&["a", "b"])) - 1.0).abs() < 1e-9);
    }

    #[test]
    fn zero_weights_still_spread_by_count() {
        let a = assign(&[0; 8], &ids(&["a", "b"]), &Assignment::default());
        assert_eq!(a.shards_of(&"a".into()).len(), 4);
        assert_eq!(a.shards_of(&"b".into()).len(), 4);
    }

    #[test]
    fn unchanged_membership_moves_nothing() {
        let weights = [5, 1, 1, 1, 9, 2];
        let r = ids(&["a", "b", "c"]);
        let first = assign(&weights, &r, &Assignment::default());
        assert_eq!(assign(&weights, &r, &first), first);
    }

    #[test]
    fn a_newcomer_gets_shards_even_when_nobody_is_over_the_band() {
        // 4 replicas at exactly the mean; with a 5th the old ones are at 1.25 × the new mean — inside the
        // band — but the newcomer at 0 is below mean / 1.25, so it is filled.
        let weights = [10; 20];
        let r4 = ids(&["a", "b", "c", "d"]);
        let before = assign(&weights, &r4, &Assignment::default());
        let r5 = ids(&["a", "b", "c", "d", "e"]);
        let after = assign(&weights, &r5, &before);
        assert!(after.shards_of(&"e".into()).len() >= 4, "{after:?}");
        assert!(after.moved_from(&before).iter().all(|&s| after.owner(s) == Some(&"e".into())));
    }

    #[test]
    fn rebalance_moves_from_heavy_to_light_and_stops_inside_the_band() {
        let r = ids(&["a", "b"]);
        let previous = Assignment::from_owners(vec![Some("a".into()); 4].into_iter().chain([None]).collect());
        let previous = assign(&[1, 1, 1, 1, 1], &r, &previous);
        // The weights drift: a's shards grow.
        let weights = [40, 30, 20, 10, 1];
        let before = previous.imbalance(&weights, &r);
        let after = rebalance(&weights, &r, &previous, BALANCE_TARGET);
        assert!(after.imbalance(&weights, &r) <= BALANCE_TARGET, "{before} → {after:?}");
    }

    #[test]
    fn shards_beyond_the_previous_length_are_placed_and_extra_ones_dropped() {
        let r = ids(&["a"]);
        let previous = Assignment::from_owners(vec![Some("a".into()), Some("x".into())]);
        let a = assign(&[1, 1, 1], &r, &previous);
        assert_eq!(a.owners(), &[Some("a".into()), Some("a".into()), Some("a".into())]);
        let shorter = assign(&[1], &r, &a);
        assert_eq!(shorter.shard_count(), 1);
    }
}
