//! What the leader alone writes: the cluster singletons around admission (spec §4, §6).
//!
//! Every replica serves the webhooks ([`crate::webhook`]); one replica, the leader, keeps what they depend on
//! and what exists once per cluster:
//!
//! * [`certs`] — HNC's self-managed PKI: a CA and a serving certificate, when to re-issue or rotate them;
//! * [`secret`] — the Secret `hnc-webhook-server-cert` holding them. Every replica watches it and loads each
//!   new serving certificate into its server; with `--enable-internal-cert-management` the leader creates it
//!   and rotates what it holds;
//! * [`registration`] — the validating and mutating webhook configurations (endpoint, `caBundle`, the objects
//!   entry's rules following the propagated types) and the leader's upkeep of them.
//!
//! Each write here is submitted with the cluster scope `""`, which only the leader's fence lets through, and is
//! made only when what is stored differs from what must be. [`crate::webhook::start`] starts the Secret's watch
//! and the upkeep next to the server.
//!
//! Two other leader-only writes live with what they derive from: the `config` HNCConfiguration's status is
//! written by [`crate::config::reconciler`], which every replica runs to resolve the propagated types (only
//! the leader's status write differs), and the shard assignment is published by `hnc-leader`'s duties.

pub mod certs;
pub mod registration;
pub mod secret;
