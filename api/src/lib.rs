//! Types and well-known names of the `hnc.x-k8s.io/v1alpha2` API, wire-compatible with upstream HNC.
//!
//! * [`hierarchy`], [`anchor`], [`config`], [`hrq`] — one module per custom resource kind;
//! * [`condition`] — the condition shape HNC uses and every condition type and reason;
//! * [`keys`] — every label, annotation, finalizer and fixed object name HNC reads or writes;
//! * [`crd`] — rendering of the CustomResourceDefinitions (used by the `crdgen` binary and tests);
//! * [`validation`] — Kubernetes' name rules (DNS-1123 names, label keys and values) in the API server's words;
//! * [`label_selector`] — Kubernetes' label-selector grammar, parsed and matched;
//! * [`duration`] — Go's duration syntax (`?timeout=`, `--request-timeout`);
//! * [`quantity`] — Kubernetes resource quantities, exact, and their canonical text.
//!
//! No other crate spells an HNC label, annotation, finalizer, condition type or reason as a string literal.

pub mod anchor;
pub mod condition;
pub mod config;
pub mod crd;
pub mod duration;
pub mod hierarchy;
pub mod hrq;
pub mod keys;
pub mod label_selector;
pub mod quantity;
mod schema;
pub mod validation;

pub use anchor::{SubnamespaceAnchor, SubnamespaceAnchorSpec, SubnamespaceAnchorStatus};
pub use condition::Condition;
pub use config::{
    HNCConfiguration, HNCConfigurationSpec, HNCConfigurationStatus, ResourceSpec, ResourceStatus, SyncMode,
};
pub use hierarchy::{
    HierarchyConfiguration, HierarchyConfigurationSpec, HierarchyConfigurationStatus, MetaKvp,
};
pub use hrq::{HierarchicalResourceQuota, HierarchicalResourceQuotaSpec, HierarchicalResourceQuotaStatus};

/// The API group of every HNC custom resource.
pub const GROUP: &str = "hnc.x-k8s.io";
/// The only served (and storage) version.
pub const VERSION: &str = "v1alpha2";
/// `group/version` as it appears in `apiVersion`.
pub const API_VERSION: &str = "hnc.x-k8s.io/v1alpha2";
