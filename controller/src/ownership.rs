//! "Do I own this namespace's tree?" — the one question every write path asks before writing.
//!
//! A namespace belongs to the tree of its root (`HierarchyView::root`). With a single replica this replica owns
//! everything; a `--webhooks-only` replica owns nothing; with sharding, roots hash to shards and this replica
//! owns the shards it holds Leases for. No code path writes around this check: reconcilers use it to decide
//! what to plan, and the writer's fence calls it again right before each attempt.
//!
//! Also here, what a replica reports about shards: the weights the leader balances them by ([`shard_weights`],
//! [`publish_shard_objects`]) and the `/debug/shards` and `/debug/namespace` pages.

use std::collections::BTreeMap;
use std::sync::Arc;

use hnc_leader::{CoordinatorHandle, WeightsFn};
use hnc_shard::propagation::ForestCacheReader;
use hnc_shard::{HierarchyView, ShardRing, TreeReader};

use crate::ops::DebugPage;

/// Decides which shard a root tree belongs to and whether this replica may write for it now.
pub trait ShardOwnership: Send + Sync {
    /// True while this replica holds (and may write for) the shard of `root`.
    fn holds_root(&self, root: &str) -> bool;

    /// True while this replica is the leader, which alone writes cluster singletons.
    fn is_leader(&self) -> bool;

    /// True while `root`'s shard is held or assigned to this replica (about to be held): its objects are worth
    /// keeping whole, since writing for it starts as soon as the fence opens.
    fn expects_root(&self, root: &str) -> bool {
        self.holds_root(root)
    }

    /// True once this replica knows which trees are its own (an assignment has counted it). Before that, every
    /// tree looks like another replica's.
    fn knows_its_trees(&self) -> bool {
        true
    }
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

    fn expects_root(&self, root: &str) -> bool {
        let shard = self.ring.shard_of(root);
        self.coordinator.holds(shard) || self.coordinator.is_assigned(shard)
    }

    fn knows_its_trees(&self) -> bool {
        self.coordinator.has_assignment()
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
    /// True when this replica owns `ns`'s tree or is about to (its shard is assigned here and the Lease not yet
    /// taken): what it keeps of the tree's objects. Writes still wait for [`Ownership::owns`].
    pub fn expects(&self, view: &dyn HierarchyView, ns: &str) -> bool {
        match self {
            Ownership::Everything => true,
            Ownership::Nothing => false,
            Ownership::Shards(shards) => shards.expects_root(&view.root(ns)),
        }
    }

    /// True once the trees this replica owns are known: always for one replica or a webhooks-only one; for
    /// shards, once it has been assigned some.
    pub fn knows_its_trees(&self) -> bool {
        match self {
            Ownership::Everything | Ownership::Nothing => true,
            Ownership::Shards(shards) => shards.knows_its_trees(),
        }
    }

    /// True when this replica writes cluster singletons.
    pub fn is_leader(&self) -> bool {
        match self {
            Ownership::Everything => true,
            Ownership::Nothing => false,
            Ownership::Shards(shards) => shards.is_leader(),
        }
    }
}

/// The leader's shard weights: the namespaces the tree index puts in each shard (`None` until the hierarchy is
/// synced).
pub fn shard_weights(tree: TreeReader, ring: ShardRing) -> WeightsFn {
    Arc::new(move || {
        let tree = tree.load();
        if !tree.is_synced() {
            return None;
        }
        let mut weights = vec![0u64; ring.shard_count() as usize];
        for node in tree.nodes().filter(|n| tree.exists(n.name())) {
            weights[ring.shard_of(&tree.root(node.name())) as usize] += 1;
        }
        Some(weights)
    })
}

/// How often a replica counts the objects it caches per shard (the leader's weights). The counts ride on the
/// membership lease's next renewal, so a shorter period costs one pass over the cache, not a write; it is
/// short so that a leader elected soon after a start or a failover places shards by their real weight.
const SHARD_OBJECTS_PERIOD: std::time::Duration = std::time::Duration::from_secs(5);

/// Reports, every [`SHARD_OBJECTS_PERIOD`], how many objects this replica caches per held shard.
pub async fn publish_shard_objects(
    coordinator: CoordinatorHandle,
    tree: TreeReader,
    cache: ForestCacheReader,
    ring: ShardRing,
) {
    let mut tick = tokio::time::interval(SHARD_OBJECTS_PERIOD);
    loop {
        tick.tick().await;
        let (tree, cache) = (tree.load(), cache.load());
        let mut objects: BTreeMap<u32, u64> = BTreeMap::new();
        for ty in cache.types() {
            let Some(forest) = cache.forest(ty) else { continue };
            for ns in forest.namespaces() {
                let count = (ns.sources().len() + ns.copies().len()) as u64;
                *objects.entry(ring.shard_of(&tree.root(ns.namespace()))).or_default() += count;
            }
        }
        coordinator.publish_shard_objects(&objects);
    }
}

/// `/debug/shards`: the coordinator's view of leadership, membership and the shards held.
pub fn shards_page(coordinator: CoordinatorHandle) -> DebugPage {
    Arc::new(move |_: &BTreeMap<String, String>| {
        serde_json::to_value(coordinator.snapshot()).unwrap_or_default()
    })
}

/// `/debug/namespace?name=NS`: what this replica believes about one namespace — its parent, its tree's root
/// and shard, whether this replica may write for it now, and which objects of it the propagation cache holds.
/// Comparing the page across replicas shows at once whether they agree on who owns a namespace.
pub fn namespace_page(
    tree: TreeReader,
    cache: ForestCacheReader,
    ring: ShardRing,
    ownership: Ownership,
) -> DebugPage {
    Arc::new(move |query: &BTreeMap<String, String>| {
        let Some(name) = query.get("name") else {
            return serde_json::json!({"error": "give the namespace as ?name=NS"});
        };
        let tree = tree.load();
        let root = tree.root(name);
        let cache = cache.load();
        let cached: BTreeMap<String, serde_json::Value> = cache
            .types()
            .filter_map(|ty| {
                let objects = cache.forest(ty)?.namespace(name)?;
                let hash = |h: &hnc_shard::propagation::ContentHash| format!("{:016x}", h.0[0]);
                let sources: BTreeMap<&str, String> = objects
                    .sources()
                    .iter()
                    .map(|s| (&*s.name, format!("rv {} hash {}", s.resource_version, hash(&s.content_hash))))
                    .collect();
                let copies: BTreeMap<&str, String> = objects
                    .copies()
                    .iter()
                    .map(|c| {
                        let from = &*c.inherited_from;
                        (
                            &*c.name,
                            format!("from {from} rv {} hash {}", c.resource_version, hash(&c.content_hash)),
                        )
                    })
                    .collect();
                let ty = if ty.group.is_empty() {
                    ty.kind.to_string()
                } else {
                    format!("{}.{}", ty.kind, ty.group)
                };
                Some((ty, serde_json::json!({"sources": sources, "copies": copies})))
            })
            .collect();
        serde_json::json!({
            "name": name,
            "exists": tree.exists(name),
            "parent": tree.parent(name).map(|p| p.to_string()),
            "root": &*root,
            "shard": ring.shard_of(&root),
            "owned": ownership.owns(&*tree, name),
            "treeGeneration": tree.generation(),
            "cached": cached,
        })
    })
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
