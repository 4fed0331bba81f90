//! Admission webhooks (spec §8): every validator and the namespace mutator, answered on every replica from
//! the read-replicated indexes, over HTTPS with a certificate reloaded without restart.
//!
//! ```text
//!  API server ──HTTPS──▶ server (rustls, ReloadableCert) ──▶ one Handler per path ──▶ TreeSnapshot,
//!                                  ▲                              │                     SourceIndex,
//!  Secret hnc-webhook-server-cert ─┘ (every replica reloads)      │ SubjectAccessReview  active types
//!                                                                 ▼ (re-parenting only)
//! ```
//!
//! This module is admission only. The certificate, its Secret and the webhook configurations are cluster
//! singletons the leader alone writes: they live in [`crate::singletons`], which [`start`] wires in.
//!
//! * [`namespace`], [`hierarchy`], [`anchor`], [`hncconfig`], [`objects`] — one validator per kind (and the
//!   mutator), each a [`review::Handler`];
//! * [`sources`] — the source-object question the conflict checks ask, behind a trait;
//! * [`server_checks`] — SubjectAccessReviews and the rare uncached namespace reads;
//! * [`fields`] — field errors and Kubernetes name rules for 422 denials;
//! * [`review`] — AdmissionReview plumbing, denials shaped like upstream's, decision metrics;
//! * [`tls`] — HTTPS with a certificate swapped in without restart, the accept loop and each connection;
//! * [`limits`] — what one client may cost the server: connections, handshakes, header reads, request time
//!   and size, and the time an API call made for a request may take;
//! * [`paths`] — the paths served, which the webhook configurations point at;
//! * [`server`] — the router, the listener and [`start`], the entry point the replica calls;
//! * [`quota`] — the HierarchicalResourceQuota validator and the ResourceQuota status validator (§8.9), served
//!   with `--enable-hrq`;

pub mod anchor;
pub mod fields;
pub mod hierarchy;
pub mod hncconfig;
pub mod limits;
pub mod namespace;
pub mod objects;
pub mod paths;
pub mod quota;
pub mod review;
pub mod server;
pub mod server_checks;
pub mod sources;
pub mod tls;

pub use server::{Inputs, start};

#[cfg(test)]
mod fuzz;
#[cfg(test)]
mod testing;

use std::sync::Arc;

use hnc_shard::TreeReader;
use hnc_shard::propagation::PropagationRules;
use kube::core::DynamicObject;
use kube::core::admission::AdmissionRequest;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use crate::config::reconciler::ActiveTypes;
use crate::config::resolve::ActiveType;
use server_checks::ServerChecks;
use sources::SourceIndexLoader;

/// What every validator reads. Cheap to clone; all of it shared.
#[derive(Clone)]
pub struct Context {
    /// The hierarchy index.
    pub tree: TreeReader,
    /// Sources of propagated types.
    pub sources: SourceIndexLoader,
    /// The propagated types and their modes, as the HNCConfiguration reconciler resolved them.
    pub active: watch::Receiver<ActiveTypes>,
    /// HNC's namespace: its service accounts bypass the validators.
    pub hnc_namespace: Arc<str>,
    /// The propagation flags (`--nopropagation-label` decides what may propagate).
    pub rules: Arc<PropagationRules>,
    /// SubjectAccessReviews and uncached reads.
    pub server: Arc<dyn ServerChecks>,
}

impl Context {
    /// True for any service account of HNC's namespace, as upstream decides.
    pub fn is_hnc_service_account(&self, request: &AdmissionRequest<DynamicObject>) -> bool {
        review::is_hnc_service_account(request, &self.hnc_namespace)
    }

    /// The active type of `group` and `kind` (any version), if any.
    pub fn active_type(&self, group: &str, kind: &str) -> Option<ActiveType> {
        self.active.borrow().iter().find(|t| t.resource.group == group && t.resource.kind == kind).cloned()
    }

    /// The types currently in `Propagate` or `AllowPropagate` mode.
    pub fn propagating_types(&self) -> Vec<ActiveType> {
        self.active.borrow().iter().filter(|t| t.mode.propagates()).cloned().collect()
    }
}

/// Reads a request's object as `T`; the error is a 400 detail. A missing `spec` reads as an empty one, as Go
/// decodes it (the CRDs do not default it, so an anchor created with metadata alone arrives without one).
pub(crate) fn decode<T: DeserializeOwned>(object: Option<&DynamicObject>) -> Result<T, String> {
    let object = object.ok_or("the request carries no object")?;
    let mut value = serde_json::to_value(object).map_err(|e| format!("cannot read the object: {e}"))?;
    if let Some(fields) = value.as_object_mut()
        && fields.get("spec").is_none_or(serde_json::Value::is_null)
    {
        fields.insert("spec".to_owned(), serde_json::json!({}));
    }
    serde_json::from_value(value).map_err(|e| format!("cannot decode the object: {e}"))
}
