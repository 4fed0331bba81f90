//! "Do I own this namespace's tree?" — the one question every write path asks before writing.
//!
//! A namespace belongs to the tree of its root (`HierarchyView::root`). With a single replica this replica owns
//! everything; a `--webhooks-only` replica owns nothing; with sharding, roots hash to shards and this replica
//! owns the shards it holds Leases for. No code path writes around this check: reconcilers use it to decide
//! what to plan, and the writer's fence calls it again right before each attempt.

use std::sync::Arc;

use hnc_leader::CoordinatorHandle;
use hnc_shard::{HierarchyView, ShardRing};

/// Decides which shard a root tree belongs to and whether this replica may write for it now.
pub trait ShardOwnership: Send + Sync {
    /// True while this replica holds (and may write for) the shard of `root`.
    fn holds_root(&self, root: &str) -> bool;

    /// True while this replica is the leader, which alone writes cluster singletons.
    fn is_leader(&self) -> bool;
}

/// Ownership through the shard coordinator: a root's shard comes from the ring, and the replica may write for
/// it while the coordinator's fence for that shard is open (it closes by itself when renewals fail).
pub struct ShardedOwnership {
    ring: ShardRing,
    coordinator: CoordinatorHandle,
}

impl ShardedOwnership {
    /// Ownership of the shards `coordinator` holds, roots placed by `ring`.
    pub fn new(ring: ShardRing, coordinator: CoordinatorHandle) -> Self {
        ShardedOwnership { ring, coordinator }
    }
}

impl ShardOwnership for ShardedOwnership {
    fn holds_root(&self, root: &str) -> bool {
        self.coordinator.holds(self.ring.shard_of(root))
    }

    fn is_leader(&self) -> bool {
        self.coordinator.is_leader()
    }
}

/// This replica's write scope.
#[derive(Clone)]
pub enum Ownership {
    /// Single replica: every tree.
    Everything,
    /// Webhooks-only replica: no tree.
    Nothing,
    /// Sharded: the trees whose shard this replica holds.
    Shards(Arc<dyn ShardOwnership>),
}

impl std::fmt::Debug for Ownership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Ownership::Everything => "Everything",
            Ownership::Nothing => "Nothing",
            Ownership::Shards(_) => "Shards",
        })
    }
}

impl Ownership {
    /// True when this replica may write objects of namespace `ns` (and the Namespace `ns` itself). The empty
    /// name stands for cluster singletons (`config`, webhook configurations), which only the leader writes.
    pub fn owns(&self, view: &dyn HierarchyView, ns: &str) -> bool {
        if ns.is_empty() {
            return self.is_leader();
        }
        match self {
            Ownership::Everything => true,
            Ownership::Nothing => false,
            Ownership::Shards(shards) => shards.holds_root(&view.root(ns)),
        }
    }
}

impl Ownership {
    /// True when this replica writes cluster singletons.
    pub fn is_leader(&self) -> bool {
        match self {
            Ownership::Everything => true,
            Ownership::Nothing => false,
            Ownership::Shards(shards) => shards.is_leader(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hnc_shard::{Labels, NsName};

    /// Two trees: a←b and x.
    struct TwoTrees;
    impl HierarchyView for TwoTrees {
        fn is_managed(&self, _: &str) -> bool {
            true
        }
        fn ancestors(&self, ns: &str) -> Vec<NsName> {
            if ns == "b" { vec!["a".into()] } else { vec![] }
        }
        fn descendants(&self, ns: &str) -> Vec<NsName> {
            if ns == "a" { vec!["b".into()] } else { vec![] }
        }
        fn labels(&self, _: &str) -> Option<Arc<Labels>> {
            None
        }
        fn halted_by(&self, _: &str) -> Option<NsName> {
            None
        }
        fn root(&self, ns: &str) -> NsName {
            if ns == "b" { "a".into() } else { ns.into() }
        }
    }

    struct HoldsA;
    impl ShardOwnership for HoldsA {
        fn holds_root(&self, root: &str) -> bool {
            root == "a"
        }
        fn is_leader(&self) -> bool {
            false
        }
    }

    #[test]
    fn ownership_follows_the_root() {
        let sharded = Ownership::Shards(Arc::new(HoldsA));
        assert!(sharded.owns(&TwoTrees, "a"));
        assert!(sharded.owns(&TwoTrees, "b"), "b is in a's tree");
        assert!(!sharded.owns(&TwoTrees, "x"));
        assert!(Ownership::Everything.owns(&TwoTrees, "x"));
        assert!(!Ownership::Nothing.owns(&TwoTrees, "a"));
        assert!(!sharded.owns(&TwoTrees, ""), "cluster singletons are the leader's");
        assert!(Ownership::Everything.owns(&TwoTrees, ""));
    }
}
