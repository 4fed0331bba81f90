//! `HierarchyConfiguration`: the per-namespace singleton (`hierarchy`) that names a namespace's parent and reports
//! its children and conditions (spec §1.2).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Condition;

/// A label or annotation to apply to a namespace and all of its descendants.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MetaKvp {
    /// Key of the label or annotation; must conform to the Kubernetes rules for label/annotation keys.
    pub key: String,
    /// Value of the label or annotation; label values are far more restricted than annotation values.
    pub value: String,
}

/// Desired state of a namespace's place in the hierarchy.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hnc.x-k8s.io",
    version = "v1alpha2",
    kind = "HierarchyConfiguration",
    plural = "hierarchyconfigurations",
    singular = "hierarchyconfiguration",
    namespaced,
    status = "HierarchyConfigurationStatus",
    doc = "Hierarchy is the Schema for the hierarchies API",
    crates(
        kube_core = "kube::core",
        k8s_openapi = "k8s_openapi",
        schemars = "schemars",
        serde = "serde",
        serde_json = "serde_json"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct HierarchyConfigurationSpec {
    /// Parent indicates the parent of this namespace, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::non_nullable::<String>")]
    pub parent: Option<String>,
    /// AllowCascadingDeletion indicates if the subnamespaces of this namespace are allowed to cascading delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::non_nullable::<bool>")]
    pub allow_cascading_deletion: Option<bool>,
    /// Lables is a list of labels and values to apply to the current namespace and all of its descendants. All
    /// label keys must match a regex specified on the command line by --managed-namespace-label. A namespace
    /// cannot have a KVP that conflicts with one of its ancestors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<MetaKvp>,
    /// Annotations is a list of annotations and values to apply to the current namespace and all of its
    /// descendants. All annotation keys must match a regex specified on the command line by
    /// --managed-namespace-annotation. A namespace cannot have a KVP that conflicts with one of its ancestors.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<MetaKvp>,
}

/// Observed state of a namespace's place in the hierarchy.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HierarchyConfigurationStatus {
    /// Children indicates the direct children of this namespace, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<String>,
    /// Conditions describes the errors, if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

impl HierarchyConfigurationSpec {
    /// `spec.parent`, with an empty string meaning "root" as upstream treats it.
    pub fn parent_name(&self) -> Option<&str> {
        self.parent.as_deref().filter(|p| !p.is_empty())
    }
}
