//! Lease-based leader election, replica membership, shard assignment and handover for N controller replicas.
//!
//! Root trees hash to shards elsewhere (`hnc-shard`); this crate deals only in shard ids, weights and replicas.
//! [`lease`] holds the Lease primitives (optimistic concurrency, expiry by local observation); [`assignment`]
//! balances shards across replicas by weight, moving as few as it can.

pub mod assignment;
pub mod lease;

pub use assignment::{Assignment, BALANCE_TARGET, ReplicaId, assign, rebalance};
