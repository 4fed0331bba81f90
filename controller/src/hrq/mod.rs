//! Hierarchical resource quotas (`--enable-hrq`; spec §1.5, §9; the design across shards is `docs/hrq.md`).
//!
//! ```text
//!  HRQ watch ───────────┐                      ┌─▶ singleton ResourceQuotas (spec.hard = Limits(N))   owned
//!  singleton RQ watch ──┴▶ QuotaReconciler ────┼─▶ HRQ status (hard, used, summaries)                  trees
//!                          │ keeps QuotaView    └─▶ charges pruned once recorded                        only
//!  hierarchy notices ──────┘      │
//!                                 ▼ read by the resourcequotas/status webhook on every replica
//! ```
//!
//! * [`view`] — the cluster-wide view every replica keeps: HRQs, singletons, and the accounting model;
//! * [`reconciler`] — the owner's writes, and the task that keeps the view.
//!
//! The admission decisions are in [`crate::webhook::quota`].

pub mod reconciler;
pub mod view;

pub use reconciler::{QuotaEvent, QuotaReconciler};
pub use view::{QuotaState, QuotaView};
