//! `HNCConfiguration`: the cluster singleton (`config`) that selects which kinds are propagated and how, and
//! reports per-kind statistics and cluster conditions (spec §1.4, §7).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Condition;

/// The group of the two enforced types.
pub const RBAC_GROUP: &str = "rbac.authorization.k8s.io";
/// Enforced type: always `Propagate`, never listed in the spec.
pub const ROLE_RESOURCE: &str = "roles";
/// Enforced type: always `Propagate`, never listed in the spec.
pub const ROLE_BINDING_RESOURCE: &str = "rolebindings";

/// How objects of one kind are synchronized.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum SyncMode {
    /// Copy sources to descendants, delete obsolete copies, overwrite conflicting objects.
    Propagate,
    /// Leave the kind alone: nothing tracked, copies left in place.
    Ignore,
    /// Delete every copy; never overwrite descendants' objects.
    Remove,
    /// Like `Propagate`, but only for objects that opt in with a selector annotation.
    AllowPropagate,
}

impl SyncMode {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Propagate => "Propagate",
            SyncMode::Ignore => "Ignore",
            SyncMode::Remove => "Remove",
            SyncMode::AllowPropagate => "AllowPropagate",
        }
    }

    /// True for the modes in which HNC writes copies.
    pub fn propagates(self) -> bool {
        matches!(self, SyncMode::Propagate | SyncMode::AllowPropagate)
    }
}

/// Desired state of HNC's cluster-wide configuration.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hnc.x-k8s.io",
    version = "v1alpha2",
    kind = "HNCConfiguration",
    plural = "hncconfigurations",
    singular = "hncconfiguration",
    status = "HNCConfigurationStatus",
    doc = "HNCConfiguration is a cluster-wide configuration for HNC as a whole. See details in http://bit.ly/hnc-type-configuration",
    crates(
        kube_core = "kube::core",
        k8s_openapi = "k8s_openapi",
        schemars = "schemars",
        serde = "serde",
        serde_json = "serde_json"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct HNCConfigurationSpec {
    /// Resources defines the cluster-wide settings for resource synchronization. Note that 'roles' and
    /// 'rolebindings' are pre-configured by HNC with 'Propagate' mode and are omitted in the spec. Any
    /// configuration of 'roles' or 'rolebindings' are not allowed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceSpec>,
}

/// Desired synchronization of one resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceSpec {
    /// Group of the resource defined below. This is used to unambiguously identify the resource. It may be
    /// omitted for core resources (e.g. "secrets").
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub group: String,
    /// Resource to be configured.
    pub resource: String,
    /// Synchronization mode of the kind. If the field is empty, it will be treated as "Propagate".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::non_nullable::<SyncMode>")]
    pub mode: Option<SyncMode>,
}

impl ResourceSpec {
    /// The effective mode: empty means `Propagate`.
    pub fn effective_mode(&self) -> SyncMode {
        self.mode.unwrap_or(SyncMode::Propagate)
    }
}

/// Observed state of HNC's cluster-wide configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HNCConfigurationStatus {
    /// Resources indicates the observed synchronization states of the resources.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub resources: Vec<ResourceStatus>,
    /// Conditions describes the errors, if any. If there are any conditions with "ActivitiesHalted" reason, this
    /// means that HNC cannot function in the affected namespaces. The HierarchyConfiguration object in each of
    /// the affected namespaces will have more information.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// Observed synchronization of one resource.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ResourceStatus {
    /// The API group of the resource being synchronized.
    pub group: String,
    /// The API version used by HNC when propagating this resource.
    pub version: String,
    /// The resource being synchronized.
    pub resource: String,
    /// Mode describes the synchronization mode of the kind. Typically, it will be the same as the mode in the
    /// spec, except when the reconciler has fallen behind or for resources with an enforced default
    /// synchronization mode, such as RBAC objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::non_nullable::<String>")]
    pub mode: Option<String>,
    /// Tracks the number of objects that are being propagated to descendant namespaces. The propagated objects
    /// are created by HNC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::count")]
    pub num_propagated_objects: Option<i64>,
    /// Tracks the number of objects that are created by users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::count")]
    pub num_source_objects: Option<i64>,
}
