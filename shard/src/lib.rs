//! Pure model of a sharded Hierarchical Namespace Controller. No I/O, no kube client.
//!
//! ```text
//!  watch events ──▶ tree::TreeIndex (single writer) ──publish──▶ tree::TreeSnapshot (immutable, shared)
//!                                                                   ├──▶ tree::plan::plan(snapshot, dirty) ──▶ HierarchyBatch
//!                                                                   │ implements view::HierarchyView
//!  watch events ──▶ forest::ForestCache (per shard) ─────────────┐  │
//!                                                                ▼  ▼
//!                                                   planner::plan(view, cache, dirty) ──▶ WriteBatch
//!  ring::ShardRing: root tree name ──▶ shard id (consistent hashing)
//! ```
//!
//! The controller feeds these structures from watches and turns their outputs into API writes; everything
//! here is deterministic and tested without a cluster.

pub mod hrq;
pub mod propagation;
pub mod ring;
pub mod tree;
pub mod view;

pub use ring::ShardRing;
pub use tree::{TreeIndex, TreeReader, TreeSnapshot};
pub use view::{HierarchyView, Labels, NsName};
