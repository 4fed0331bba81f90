//! The hierarchy half of HNC on the controller side: hierarchy objects observed through watches feed the tree
//! index; the planner in `hnc-shard` (`hnc_shard::tree::plan`) turns what the index derives into the minimal
//! writes that make the cluster match, and the reconciler submits them.
//!
//! * [`ingest`] — watch events → compact observations;
//! * [`reconciler`] — the task owning the index: apply, publish, plan dirty namespaces, submit, retry.

pub mod ingest;
pub mod reconciler;
