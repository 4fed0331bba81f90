//! Root trees → shards by consistent hashing.
//!
//! A namespace belongs to the tree of its root, and a root tree to one of `--shards` shards. Shards are placed
//! on a hash ring with virtual nodes, so changing the shard count moves only the trees it must. The key hashed is
//! the xxh3 of the root's name, a stable function: every replica, whatever its build, puts a root in the same
//! shard. Which replica holds a shard is the leader's assignment, not the ring's business.

use hashring::HashRing;
use xxhash_rust::xxh3::xxh3_64;

/// Shard identifier, `0..shard_count`.
pub type ShardId = u32;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct VirtualNode {
    shard: ShardId,
    replica: u32,
}

/// Maps root namespace names to shards.
#[derive(Debug, Clone)]
pub struct ShardRing {
    ring: HashRing<VirtualNode>,
    shards: u32,
}

/// Virtual nodes per shard: enough that 64 shards get tree counts within a few percent of each other.
pub const DEFAULT_VIRTUAL_NODES: u32 = 128;

impl ShardRing {
    /// A ring of `shards` shards (at least 1) with `virtual_nodes` points each.
    pub fn new(shards: u32, virtual_nodes: u32) -> Self {
        let shards = shards.max(1);
        let mut ring = HashRing::new();
        let nodes = (0..shards)
            .flat_map(|shard| (0..virtual_nodes.max(1)).map(move |replica| VirtualNode { shard, replica }))
            .collect();
        ring.batch_add(nodes);
        ShardRing { ring, shards }
    }

    /// Number of shards.
    pub fn shard_count(&self) -> u32 {
        self.shards
    }

    /// The shard of the tree rooted at `root`.
    pub fn shard_of(&self, root: &str) -> ShardId {
        self.ring.get(&xxh3_64(root.as_bytes())).map(|n| n.shard).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placement_is_stable_and_in_range() {
        let a = ShardRing::new(64, DEFAULT_VIRTUAL_NODES);
        let b = ShardRing::new(64, DEFAULT_VIRTUAL_NODES);
        for i in 0..1000 {
            let root = format!("team-{i}");
            assert_eq!(a.shard_of(&root), b.shard_of(&root));
            assert!(a.shard_of(&root) < 64);
        }
    }

    #[test]
    fn trees_spread_over_every_shard() {
        let ring = ShardRing::new(64, DEFAULT_VIRTUAL_NODES);
        let mut counts = vec![0u32; 64];
        for i in 0..64_000 {
            counts[ring.shard_of(&format!("root-{i}")) as usize] += 1;
        }
        let (min, max) = (*counts.iter().min().unwrap(), *counts.iter().max().unwrap());
        // Expected 1,000 each; the ring keeps every shard within a modest band of that.
        assert!(min > 600 && max < 1500, "min {min} max {max}");
    }

    #[test]
    fn adding_a_shard_moves_only_trees_onto_it() {
        let before = ShardRing::new(16, DEFAULT_VIRTUAL_NODES);
        let after = ShardRing::new(17, DEFAULT_VIRTUAL_NODES);
        let mut moved = 0;
        for i in 0..10_000 {
            let root = format!("root-{i}");
            let (b, a) = (before.shard_of(&root), after.shard_of(&root));
            if a != b {
                assert_eq!(a, 16, "a tree may only move to the new shard");
                moved += 1;
            }
        }
        assert!(moved > 0 && moved < 1200, "about 1/17 of trees move: {moved}");
    }
}
