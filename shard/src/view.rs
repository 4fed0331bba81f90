//! The read-only view of the hierarchy that propagation planning needs.
//!
//! `tree::TreeSnapshot` implements it for production; tests implement it with brute-force models. Keeping the
//! planner behind this trait lets the forest cache and planner be tested without building a full index.

use std::collections::BTreeMap;
use std::sync::Arc;

/// A namespace name. Shared, cheap to clone.
pub type NsName = Arc<str>;

/// Namespace labels as HNC computes them (user labels plus the tree labels HNC maintains).
pub type Labels = BTreeMap<String, String>;

/// What the propagation planner may ask about the hierarchy. All methods are cycle-safe.
pub trait HierarchyView: Send + Sync {
    /// True when `ns` exists on the API server and HNC manages it (not excluded, matches the included regex).
    fn is_managed(&self, ns: &str) -> bool;

    /// Strict ancestors of `ns`, nearest first (parent, grandparent, ...). The walk stops before repeating a
    /// namespace (cycles) and at namespaces that do not exist. Empty for roots and unknown namespaces.
    fn ancestors(&self, ns: &str) -> Vec<NsName>;

    /// Strict descendants of `ns` in any order, each once (cycle-safe). Empty for leaves and unknown namespaces.
    fn descendants(&self, ns: &str) -> Vec<NsName>;

    /// Labels of `ns` as HNC computes them, tree labels included; `None` for unknown namespaces.
    fn labels(&self, ns: &str) -> Option<Arc<Labels>>;

    /// `Some(h)` when `ns` is affected by a halt: `h` is `ns` itself or the ancestor carrying an
    /// `ActivitiesHalted` condition. Nothing may be created, updated or deleted in such a namespace.
    fn halted_by(&self, ns: &str) -> Option<NsName>;

    /// The root of the tree `ns` belongs to: the top of its parent chain (which may name a namespace that does
    /// not exist yet, so that ownership does not move when a missing parent appears). For a namespace in or
    /// below a cycle, the lexicographically smallest cycle member. Ownership (sharding) is decided per root.
    fn root(&self, ns: &str) -> NsName;
}
