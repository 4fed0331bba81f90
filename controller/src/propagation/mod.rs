//! The policy half of HNC on the controller side: per-type watches feed the forest cache, the planner (in
//! `hnc-shard`) decides the writes, the writer performs them.
//!
//! * [`engine`] — the task owning the cache: ingest, configure types, plan, submit, follow outcomes;
//! * [`events`] — Warning Events about propagation problems;
//! * [`foreign`] — writes into copies another replica made, checked against the API server's hierarchy;
//! * [`watched`] — the objects the engine watches, read without `managedFields`.

pub mod engine;
pub mod events;
pub mod foreign;
pub mod watched;
