//! What the API server last said about the three hierarchy objects, kept compact: the fields HNC reasons about
//! and compares before writing. The tree index holds these and nothing else, so a replica's memory for the
//! hierarchy is bytes per namespace.

use hnc_api::keys::annotations;
use hnc_api::{HierarchyConfigurationSpec, HierarchyConfigurationStatus, MetaKvp};

use super::StringMap;

/// A Namespace as last observed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedNamespace {
    /// `metadata.uid`: which namespace of this name it is. A namespace deleted and created again under the same
    /// name is another object, and a delete planned against the first must not remove the second.
    pub uid: String,
    /// `metadata.resourceVersion`.
    pub resource_version: String,
    /// `metadata.labels`.
    pub labels: StringMap,
    /// `metadata.annotations`.
    pub annotations: StringMap,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
}

impl ObservedNamespace {
    /// The `hnc.x-k8s.io/subnamespace-of` annotation, if non-empty.
    pub fn subnamespace_of(&self) -> Option<&str> {
        self.annotations.get(annotations::SUBNAMESPACE_OF).filter(|p| !p.is_empty())
    }

    /// The external manager named by `hnc.x-k8s.io/managed-by`, if the namespace is external (the annotation is
    /// set to anything but empty or `hnc.x-k8s.io`, spec §4.6).
    pub fn external_manager(&self) -> Option<&str> {
        self.annotations
            .get(annotations::MANAGED_BY)
            .filter(|m| !m.is_empty() && *m != annotations::MANAGED_BY_INTERNAL)
    }
}

/// A HierarchyConfiguration (the singleton `hierarchy`) as last observed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservedHierarchy {
    /// `metadata.resourceVersion`.
    pub resource_version: String,
    /// `metadata.finalizers`.
    pub finalizers: Vec<String>,
    /// `spec`.
    pub spec: HierarchyConfigurationSpec,
    /// `status`.
    pub status: HierarchyConfigurationStatus,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
}

/// A SubnamespaceAnchor as last observed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedAnchor {
    /// `metadata.resourceVersion`.
    pub resource_version: String,
    /// `metadata.finalizers`.
    pub finalizers: Vec<String>,
    /// `spec.labels`: managed labels of the subnamespace.
    pub labels: Vec<MetaKvp>,
    /// `spec.annotations`: managed annotations of the subnamespace.
    pub annotations: Vec<MetaKvp>,
    /// `status.status` as written (may be a value HNC does not know).
    pub state: Option<String>,
    /// `metadata.deletionTimestamp` is set.
    pub deleting: bool,
}

impl ObservedAnchor {
    /// True when HNC's finalizer `hnc.x-k8s.io` is on the anchor.
    pub fn has_finalizer(&self) -> bool {
        self.finalizers.iter().any(|f| f == hnc_api::keys::finalizers::ANCHOR)
    }
}
