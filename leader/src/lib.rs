//! Lease-based leader election, replica membership, shard assignment and handover for N controller replicas.
//!
//! Root trees hash to shards elsewhere (`hnc-shard`); this crate deals only in shard ids, weights and
//! replicas. The controller starts one [`Coordinator`] per replica and asks its [`CoordinatorHandle`]:
//!
//! ```no_run
//! # async fn run(client: kube::Client) -> anyhow::Result<()> {
//! use std::sync::Arc;
//! use hnc_leader::{Coordinator, CoordinatorConfig};
//!
//! let config = CoordinatorConfig::new("hnc-system", "hnc-controller-0", 64);
//! let namespaces_per_shard = Arc::new(|| Some(vec![0u64; 64])); // from the tree index, once complete
//! let (coordinator, task) = Coordinator::start(client, config, namespaces_per_shard)?;
//! let mut held = coordinator.held_shards(); // load caches for gained shards, evict lost ones
//! # let shard = 0;
//! if coordinator.holds(shard) { /* write for a tree of `shard` — check right before every write */ }
//! tokio::select! {
//!     _ = coordinator.api_lost() => anyhow::bail!("lost the API server"), // exit: fail-stop
//!     _ = tokio::signal::ctrl_c() => coordinator.shutdown().await,      // hand over quickly
//! }
//! task.await??;
//! # Ok(()) }
//! ```
//!
//! Everything lives in the HNC namespace:
//!
//! | object | name | written by | holds |
//! |---|---|---|---|
//! | Lease | `hnc-controller-leader` (configurable) | the leader | leadership |
//! | Lease | `hnc-replica-<identity>` | each replica | membership; facts in annotations |
//! | Lease | `hnc-shard-<n>` | the shard's holder | the right to write for shard n |
//! | ConfigMap | `hnc-shard-assignment` | the leader | [`PublishedAssignment`] (key `assignment.json`) |
//!
//! Leases carry the label `hnc.x-k8s.io/lease` = `leader` / `replica` / `shard`; a replica publishes the
//! objects it caches per held shard in annotation [`SHARD_OBJECTS_ANNOTATION`] of its membership lease.
//!
//! Modules: [`lease`] (the primitives), [`assignment`] (pure balancing), `election`, `membership`, `shards`,
//! `duties` (the leader's work), `observer`, `coordinator` (wiring), [`metrics`].

pub mod assignment;
mod coordinator;
mod duties;
mod election;
mod fence;
pub mod lease;
mod membership;
pub mod metrics;
mod observer;
mod publication;
mod shards;

pub use assignment::{Assignment, BALANCE_TARGET, ReplicaId, assign, rebalance};
pub use coordinator::{
    Coordinator, CoordinatorConfig, CoordinatorError, CoordinatorHandle, ShardsSnapshot, WeightsFn,
};
pub use membership::SHARD_OBJECTS_ANNOTATION;
pub use metrics::describe_metrics;
pub use publication::{ASSIGNMENT_KEY, PublishedAssignment};
