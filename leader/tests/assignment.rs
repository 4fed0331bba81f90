//! Property tests of the shard assignment on heavy-tailed weights: balance, minimal movement, determinism.

use hnc_leader::{Assignment, BALANCE_TARGET, ReplicaId, assign, rebalance};
use proptest::prelude::*;

/// 64 Pareto-distributed weights (tail index 1–2, minimum 100): a few shards dwarf the rest, as a few huge
/// trees do in real clusters.
fn heavy_tailed() -> impl Strategy<Value = Vec<u64>> {
    (100u32..=200, prop::collection::vec(1u32..=10_000, 64)).prop_map(|(alpha, us)| {
        let alpha = f64::from(alpha) / 100.0;
        us.into_iter().map(|u| (100.0 / (f64::from(u) / 10_000.0).powf(1.0 / alpha)) as u64).collect()
    })
}

fn replicas(n: usize) -> Vec<ReplicaId> {
    (0..n).map(|i| ReplicaId(format!("hnc-{i}"))).collect()
}

/// The best any assignment can do: the target, or the heaviest shard when it alone exceeds the target.
fn achievable(weights: &[u64], replicas: usize) -> f64 {
    let mean = weights.iter().sum::<u64>() as f64 / replicas as f64;
    BALANCE_TARGET.max(*weights.iter().max().unwrap() as f64 / mean)
}

fn owned_by_listed(a: &Assignment, reps: &[ReplicaId]) -> bool {
    a.owners().iter().all(|o| o.as_ref().is_some_and(|o| reps.contains(o)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// From nothing, every shard gets a listed owner and max/mean ≤ 1.25 (or the heaviest shard alone).
    #[test]
    fn from_scratch_is_balanced(weights in heavy_tailed(), n in 1usize..=8) {
        let reps = replicas(n);
        let a = assign(&weights, &reps, &Assignment::default());
        prop_assert!(owned_by_listed(&a, &reps));
        prop_assert!(a.imbalance(&weights, &reps) <= achievable(&weights, n) + 1e-9,
            "imbalance {} > {}", a.imbalance(&weights, &reps), achievable(&weights, n));
    }

    /// Adding a replica moves shards only onto it, and the result is balanced.
    #[test]
    fn adding_a_replica_moves_shards_only_onto_it(weights in heavy_tailed(), n in 1usize..=7) {
        let before = assign(&weights, &replicas(n), &Assignment::default());
        let grown = replicas(n + 1);
        let newcomer = &grown[n];
        let after = assign(&weights, &grown, &before);
        let moved = after.moved_from(&before);
        prop_assert!(!moved.is_empty(), "the newcomer gets work");
        for shard in moved {
            prop_assert_eq!(after.owner(shard), Some(newcomer), "shard {} moved between old replicas", shard);
        }
        prop_assert!(after.imbalance(&weights, &grown) <= achievable(&weights, n + 1) + 1e-9,
            "imbalance {}", after.imbalance(&weights, &grown));
    }

    /// Removing a replica moves exactly its shards.
    #[test]
    fn removing_a_replica_moves_only_its_shards(
        weights in heavy_tailed(),
        n in 2usize..=8,
        gone in 0usize..8,
    ) {
        let reps = replicas(n);
        let before = assign(&weights, &reps, &Assignment::default());
        let departed = reps[gone % n].clone();
        let left: Vec<ReplicaId> = reps.iter().filter(|r| **r != departed).cloned().collect();
        let after = assign(&weights, &left, &before);
        prop_assert!(owned_by_listed(&after, &left));
        let moved: std::collections::BTreeSet<u32> = after.moved_from(&before).into_iter().collect();
        prop_assert_eq!(moved, before.shards_of(&departed));
    }

    /// Re-balancing any assignment (even a random, lopsided one) reaches the band.
    #[test]
    fn rebalance_reaches_the_band(
        weights in heavy_tailed(),
        n in 1usize..=8,
        owners in prop::collection::vec(0usize..10, 64),
    ) {
        let reps = replicas(n);
        // Owner indices ≥ n are departed replicas (or nobody).
        let previous = Assignment::from_owners(
            owners.iter().map(|&i| (i < n).then(|| reps[i].clone())).collect());
        let after = rebalance(&weights, &reps, &previous, BALANCE_TARGET);
        prop_assert!(owned_by_listed(&after, &reps));
        prop_assert!(after.imbalance(&weights, &reps) <= achievable(&weights, n) + 1e-9,
            "imbalance {}", after.imbalance(&weights, &reps));
        // And a balanced assignment is left alone.
        prop_assert_eq!(rebalance(&weights, &reps, &after, BALANCE_TARGET), after);
    }

    /// Membership unchanged: nothing moves, however the weights drifted (that is `rebalance`'s job).
    #[test]
    fn same_membership_moves_nothing(weights in heavy_tailed(), drifted in heavy_tailed(), n in 1usize..=8) {
        let reps = replicas(n);
        let a = assign(&weights, &reps, &Assignment::default());
        prop_assert_eq!(assign(&drifted, &reps, &a), a);
    }

    /// The order replicas are listed in (and duplicates) does not matter.
    #[test]
    fn deterministic(weights in heavy_tailed(), n in 1usize..=8, rotate in 0usize..8) {
        let reps = replicas(n);
        let mut shuffled = reps.clone();
        shuffled.rotate_left(rotate % n);
        shuffled.reverse();
        shuffled.push(reps[0].clone());
        let a = assign(&weights, &reps, &Assignment::default());
        prop_assert_eq!(&assign(&weights, &shuffled, &Assignment::default()), &a);
        let mut drifted = weights.clone();
        drifted.reverse();
        prop_assert_eq!(
            rebalance(&drifted, &reps, &a, BALANCE_TARGET),
            rebalance(&drifted, &shuffled, &a, BALANCE_TARGET)
        );
    }
}

#[test]
fn replacing_a_replica_hands_its_shards_to_the_newcomer_first() {
    // Rolling restart: hnc-1 leaves, hnc-3 arrives in the same membership change.
    let weights: Vec<u64> = (0..32).map(|i| 10 + i * 7 % 13).collect();
    let before = assign(&weights, &replicas(3), &Assignment::default());
    let now = vec![ReplicaId::from("hnc-0"), ReplicaId::from("hnc-2"), ReplicaId::from("hnc-3")];
    let after = assign(&weights, &now, &before);
    for shard in after.moved_from(&before) {
        assert!(
            before.owner(shard) == Some(&"hnc-1".into()) || after.owner(shard) == Some(&"hnc-3".into()),
            "shard {shard}: only hnc-1's shards and shards onto hnc-3 move"
        );
    }
    assert!(after.imbalance(&weights, &now) <= BALANCE_TARGET);
}
