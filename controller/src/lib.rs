//! The controller binary's library: flags, startup checks, the ops server (health, readiness, metrics) and the
//! process lifecycle. Reconcilers, the writer and webhooks plug into [`run`].

pub mod config;
pub mod crds;
pub mod embedded;
pub mod flags;
pub mod hierarchy;
pub mod hrq;
pub mod ops;
pub mod ownership;
pub mod process_metrics;
pub mod propagation;
pub mod replica;
pub mod run;
pub mod singletons;
pub mod startup;
pub mod tasks;
pub mod telemetry;
pub mod watch;
pub mod webhook;
pub mod writer;
