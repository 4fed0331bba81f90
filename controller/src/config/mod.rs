//! The `HNCConfiguration` singleton: which kinds are propagated, in which mode, and the status HNC reports.

pub mod discovery;
pub mod reconciler;
pub mod resolve;
