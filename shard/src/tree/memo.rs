//! Facts derived from a snapshot, computed once per snapshot on first use.
//!
//! A snapshot never changes, so what is derived from it — whether a namespace is halted, its halted root, its
//! tree labels, its root — stays true for the snapshot's lifetime. Deriving them naively walks the ancestors at
//! every level (quadratic in depth); memoized, a planner or webhook asking about 10,000 namespaces of one tree
//! computes each ancestor's facts once. Readers on several threads may race to compute the same fact; both
//! get the same answer, so the race is harmless. The writer starts a fresh memo after every mutation.

use std::collections::BTreeMap;
use std::sync::Arc;

use dashmap::DashMap;

use crate::view::{Labels, NsName};

/// The memoized facts of one snapshot.
#[derive(Debug, Default)]
pub(crate) struct Memo {
    pub(crate) halted: DashMap<NsName, bool>,
    pub(crate) halted_root: DashMap<NsName, Option<NsName>>,
    pub(crate) hierarchy_labels: DashMap<NsName, Arc<BTreeMap<String, String>>>,
    pub(crate) computed_labels: DashMap<NsName, Option<Arc<Labels>>>,
    pub(crate) root: DashMap<NsName, NsName>,
}
