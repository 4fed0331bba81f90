//! `HierarchicalResourceQuota`: one quota for a namespace and all of its descendants (spec §1.5, §9).

use std::collections::BTreeMap;

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A quantity as written by users and the API server (`"1.5"`, `500m`, `10Gi` or a plain integer).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Quantity {
    /// An integer written without quotes.
    Int(i64),
    /// Any quantity string.
    String(String),
}

/// Map of resource name (e.g. `pods`, `requests.cpu`) to quantity.
pub type ResourceList = BTreeMap<String, Quantity>;

/// Desired hard limits to enforce for a namespace and its descendants.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hnc.x-k8s.io",
    version = "v1alpha2",
    kind = "HierarchicalResourceQuota",
    plural = "hierarchicalresourcequotas",
    singular = "hierarchicalresourcequota",
    shortname = "hrq",
    namespaced,
    status = "HierarchicalResourceQuotaStatus",
    doc = "HierarchicalResourceQuota sets aggregate quota restrictions enforced for a namespace and descendant namespaces",
    printcolumn = r#"{"name":"Request","type":"string","jsonPath":".status.requestsSummary"}"#,
    printcolumn = r#"{"name":"Limit","type":"string","jsonPath":".status.limitsSummary"}"#,
    crates(
        kube_core = "kube::core",
        k8s_openapi = "k8s_openapi",
        schemars = "schemars",
        serde = "serde",
        serde_json = "serde_json"
    )
)]
pub struct HierarchicalResourceQuotaSpec {
    /// Hard is the set of desired hard limits for each named resource
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "crate::schema::resource_list")]
    pub hard: ResourceList,
}

/// Enforced hard limits and observed use for a namespace and its descendants.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HierarchicalResourceQuotaStatus {
    /// Hard is the set of enforced hard limits for each named resource
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "crate::schema::resource_list")]
    pub hard: ResourceList,
    /// Used is the current observed total usage of the resource in the namespace and its descendant namespaces.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "crate::schema::resource_list")]
    pub used: ResourceList,
    /// RequestsSummary is used by kubectl get hrq, and summarizes the relevant information from
    /// .status.hard.requests and .status.used.requests.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub requests_summary: String,
    /// LimitsSummary is used by kubectl get hrq, and summarizes the relevant information from
    /// .status.hard.limits and .status.used.limits.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub limits_summary: String,
    /// Conditions: `Exceeded` while the subtree uses more than hard allows (usage that existed before the
    /// quota or its lowering, or a namespace moved in with its usage); new uses of those resources are denied.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<crate::Condition>,
}
