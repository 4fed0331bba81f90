//! The hierarchy half of HNC on the controller side: hierarchy objects observed through watches feed the tree
//! index; the reconciler turns what the index derives into the minimal writes that make the cluster match.
//!
//! * [`ingest`] — watch events → compact observations;
//! * [`reconciler`] — the task owning the index: apply, publish, reconcile dirty namespaces, retry;
//! * [`diff`] — observed object + target → the smallest write, or none.

pub mod diff;
pub mod ingest;
pub mod reconciler;
