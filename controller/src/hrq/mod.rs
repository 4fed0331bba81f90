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

use std::fmt::Write;
use std::sync::Arc;

use hnc_shard::TreeReader;

use crate::ops::ScrapeMetrics;
use crate::ownership::Ownership;

/// `hnc_hrq_used` and `hnc_hrq_hard` (by namespace, hrq and resource) for the HRQs of the trees this replica
/// owns, from their status as last observed: rendered at scrape time, so an HRQ deleted or handed over drops out
/// of this replica's series at once.
pub fn usage_metrics(view: QuotaView, tree: TreeReader, ownership: Ownership) -> ScrapeMetrics {
    Arc::new(move || {
        let tree = tree.load();
        let state = view.read();
        let (mut used, mut hard) = (String::new(), String::new());
        let escape = |v: &str| v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        for ((ns, name), hrq) in &state.hrqs {
            if !ownership.owns(&*tree, ns) {
                continue;
            }
            let labels = |resource: &str| {
                format!(
                    "hrq_namespace=\"{}\",hrq=\"{}\",resource=\"{}\"",
                    escape(ns),
                    escape(name),
                    escape(resource)
                )
            };
            for (resource, amount) in view::read_list(&hrq.status.used).0 {
                let _ = writeln!(used, "hnc_hrq_used{{{}}} {}", labels(&resource), amount.to_f64());
            }
            for (resource, amount) in &hrq.hard {
                let _ = writeln!(hard, "hnc_hrq_hard{{{}}} {}", labels(resource), amount.to_f64());
            }
        }
        let mut text = String::new();
        text.push_str(
            "# HELP hnc_hrq_used What the subtree of a hierarchical quota uses, as its status reports it ",
        );
        text.push_str("(on the replica owning its tree).\n# TYPE hnc_hrq_used gauge\n");
        text.push_str(&used);
        text.push_str(
            "# HELP hnc_hrq_hard The limits of a hierarchical quota (on the replica owning its tree).\n",
        );
        text.push_str("# TYPE hnc_hrq_hard gauge\n");
        text.push_str(&hard);
        text
    })
}
