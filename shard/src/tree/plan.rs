//! The hierarchy planner: (snapshot, dirty namespaces, ownership) → [`HierarchyBatch`]. Pure and deterministic.
//!
//! For every dirty namespace this replica owns, what the snapshot derives for it ([`desired`](super::desired):
//! its Namespace's tree labels and managed labels/annotations, its HierarchyConfiguration, its anchors and
//! their subnamespaces) is compared with what the watches last showed ([`diff`](super::diff)), and the smallest
//! write that closes each difference is planned — none at all on an unchanged cluster. Each write names the
//! resourceVersion it was planned from, so the controller can tell a write already on its way from a new one.
//!
//! Writes come out in the order of the dirty namespaces given, and for each namespace: its Namespace, its
//! HierarchyConfiguration, then its anchors in order (a subnamespace to create before the anchor's own write).
//! From [`PARALLEL_FROM`] namespaces on, namespaces are planned in parallel with rayon and collected in order,
//! so the thread count never shows in the result.

use hnc_api::keys::names;
use rayon::prelude::*;

use super::desired::AnchorAction;
use super::diff::{self, HierarchyOp};
use super::index::TreeSnapshot;
use crate::view::NsName;

/// Rounds of at least this many dirty namespaces are planned in parallel; smaller ones on the calling thread
/// (a controller runs those inline and the larger ones on a blocking thread).
pub const PARALLEL_FROM: usize = 256;

/// The three kinds of hierarchy objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HierarchyKind {
    /// Namespaces.
    Namespace,
    /// HierarchyConfigurations.
    Hierarchy,
    /// SubnamespaceAnchors.
    Anchor,
}

/// One planned write.
#[derive(Clone, Debug, PartialEq)]
pub struct HierarchyWrite {
    /// The kind of the object written.
    pub kind: HierarchyKind,
    /// The object's namespace; `None` for a Namespace (cluster-scoped).
    pub namespace: Option<NsName>,
    /// The object's name.
    pub name: NsName,
    /// The write.
    pub op: HierarchyOp,
    /// The resourceVersion of the object the write was planned from; empty when the object is absent.
    pub planned_from: String,
    /// The namespace whose reconcile planned the write: it is reconciled again if the write fails, and the
    /// write is fenced by its tree (for a subnamespace being created, the parent's).
    pub owner: NsName,
}

/// Everything one planning round decided.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HierarchyBatch {
    /// The writes, in the order described in the module documentation.
    pub writes: Vec<HierarchyWrite>,
    /// Dirty namespaces this replica owns, each reconciled (whether or not it needed a write).
    pub reconciled: usize,
}

impl HierarchyBatch {
    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

/// Plans the writes for every namespace of `dirty` that `owned` accepts. `now` (RFC 3339) stamps conditions
/// that changed. See the module documentation.
pub fn plan(
    snapshot: &TreeSnapshot,
    dirty: &[NsName],
    owned: &(dyn Fn(&str) -> bool + Sync),
    now: &str,
) -> HierarchyBatch {
    let one = |ns: &NsName| owned(ns.as_ref()).then(|| reconcile(snapshot, ns, now));
    let planned: Vec<Option<Vec<HierarchyWrite>>> = if dirty.len() >= PARALLEL_FROM {
        dirty.par_iter().map(one).collect()
    } else {
        dirty.iter().map(one).collect()
    };
    let reconciled = planned.iter().filter(|p| p.is_some()).count();
    HierarchyBatch { writes: planned.into_iter().flatten().flatten().collect(), reconciled }
}

/// The writes one namespace needs.
pub fn reconcile(snapshot: &TreeSnapshot, ns: &NsName, now: &str) -> Vec<HierarchyWrite> {
    let mut writes = Vec::new();
    let Some(node) = snapshot.node(ns) else { return writes };
    let Some(observed_ns) = node.namespace() else { return writes };
    let write = |kind, namespace: Option<&NsName>, name: &NsName, op, planned_from: &str| HierarchyWrite {
        kind,
        namespace: namespace.cloned(),
        name: name.clone(),
        op,
        planned_from: planned_from.to_owned(),
        owner: ns.clone(),
    };
    if let Some(target) = snapshot.namespace_target(ns)
        && let Some(op) = diff::namespace_patch(observed_ns, &target)
    {
        writes.push(write(HierarchyKind::Namespace, None, ns, op, &observed_ns.resource_version));
    }
    if let Some(target) = snapshot.hierarchy_target(ns) {
        let observed = node.hierarchy();
        if let Some(op) = diff::hierarchy_write(ns, observed, &target, observed_ns.deleting, now) {
            let rv = observed.map(|h| h.resource_version.as_str()).unwrap_or("");
            writes.push(write(HierarchyKind::Hierarchy, Some(ns), &names::HIERARCHY.into(), op, rv));
        }
    }
    for (child, action) in snapshot.anchor_actions(ns) {
        let Some(anchor) = node.anchor(&child) else { continue };
        match action {
            AnchorAction::Ensure { target, create_namespace } => {
                if create_namespace {
                    writes.push(write(
                        HierarchyKind::Namespace,
                        None,
                        &child,
                        diff::subnamespace(ns, &child),
                        "",
                    ));
                }
                if let Some(op) = diff::anchor_write(anchor, &target) {
                    writes.push(write(HierarchyKind::Anchor, Some(ns), &child, op, &anchor.resource_version));
                }
            }
            AnchorAction::DeleteSubnamespace => {
                let Some(sub) = snapshot.node(&child).and_then(|n| n.namespace()) else { continue };
                writes.push(write(
                    HierarchyKind::Namespace,
                    None,
                    &child,
                    HierarchyOp::Delete { uid: sub.uid.clone() },
                    &sub.resource_version,
                ));
            }
            AnchorAction::Wait => {}
        }
    }
    writes
}
