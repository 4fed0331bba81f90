//! The planner's output: the writes that make the cluster match the desired copies, and the Warning events
//! the planner can already tell (§6.7). Writes carry the shared source entry rather than a built object, so a
//! plan over 100,000 destinations allocates no JSON; the controller materializes each write when it performs
//! it.

use std::sync::Arc;

use serde_json::Value;

use super::object::{ObjName, ResourceVersion, SourceEntry, TypeKey, build_copy, set_resource_version};
use crate::NsName;

/// What to do to one copy (or a conflicting object in its place). Not to be confused with the writer's
/// API-level write operation in the controller: the engine turns each `CopyOp` into one of those.
#[derive(Clone, Debug)]
pub enum CopyOp {
    /// Nothing of that name exists: create the copy.
    Create { source: Arc<SourceEntry> },
    /// A stale copy, or a conflicting user object being overwritten: update it at `resource_version`.
    Update { source: Arc<SourceEntry>, resource_version: ResourceVersion },
    /// A RoleBinding whose `roleRef` differs (immutable on the API server): delete at `resource_version`,
    /// then create the copy.
    Recreate { source: Arc<SourceEntry>, resource_version: ResourceVersion },
    /// A copy without a source that may propagate here: delete it (404 is success).
    Delete { resource_version: ResourceVersion },
}

impl CopyOp {
    /// The source the copy comes from (`None` for deletes).
    pub fn source(&self) -> Option<&Arc<SourceEntry>> {
        match self {
            CopyOp::Create { source } | CopyOp::Update { source, .. } | CopyOp::Recreate { source, .. } => {
                Some(source)
            }
            CopyOp::Delete { .. } => None,
        }
    }

    /// The resourceVersion the write is conditional on (`None` for creates).
    pub fn resource_version(&self) -> Option<&ResourceVersion> {
        match self {
            CopyOp::Create { .. } => None,
            CopyOp::Update { resource_version, .. }
            | CopyOp::Recreate { resource_version, .. }
            | CopyOp::Delete { resource_version } => Some(resource_version),
        }
    }

    /// Short verb for logs and metrics.
    pub fn verb(&self) -> &'static str {
        match self {
            CopyOp::Create { .. } => "create",
            CopyOp::Update { .. } => "update",
            CopyOp::Recreate { .. } => "recreate",
            CopyOp::Delete { .. } => "delete",
        }
    }
}

/// One planned write on object `namespace/name` of type `ty`.
#[derive(Clone, Debug)]
pub struct PlannedWrite {
    pub ty: TypeKey,
    pub namespace: NsName,
    pub name: ObjName,
    pub op: CopyOp,
}

impl PlannedWrite {
    /// The namespace of the source the copy comes from (`None` for deletes).
    pub fn source_namespace(&self) -> Option<&NsName> {
        self.op.source().map(|s| &s.namespace)
    }

    /// The object to send: the copy for creates and recreates, the copy with the current resourceVersion for
    /// updates, nothing for deletes.
    pub fn body(&self) -> Option<Value> {
        let source = self.op.source()?;
        let mut copy = build_copy(source, &self.namespace);
        if let CopyOp::Update { resource_version, .. } = &self.op {
            set_resource_version(&mut copy, resource_version);
        }
        Some(copy)
    }

    fn order(&self, other: &PlannedWrite) -> std::cmp::Ordering {
        (&self.ty, &self.namespace, &self.name).cmp(&(&other.ty, &other.namespace, &other.name))
    }
}

/// A Warning event on a source object (source component `hnc.x-k8s.io`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PlannedEvent {
    pub ty: TypeKey,
    pub namespace: NsName,
    pub name: ObjName,
    /// `CannotParseSelector` or `CannotPropagateObject`.
    pub reason: &'static str,
    pub message: String,
}

/// Everything one planning round decided, sorted by (type, namespace, name) so equal inputs give equal
/// batches.
#[derive(Clone, Debug, Default)]
pub struct WriteBatch {
    pub writes: Vec<PlannedWrite>,
    pub events: Vec<PlannedEvent>,
}

impl WriteBatch {
    /// True when there is nothing to write (events do not count: they change nothing).
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }

    pub(crate) fn normalize(&mut self) {
        debug_assert!(
            self.writes.is_sorted_by(|a, b| a.order(b).is_lt()),
            "the planner assembles writes in order"
        );
        self.events.sort_unstable();
        self.events.dedup();
    }
}
