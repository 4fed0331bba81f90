//! `SubnamespaceAnchor`: an anchor named `C` in namespace `P` requests a subnamespace `C` of `P` (spec §1.3, §5).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::MetaKvp;

/// Labels and annotations for the subnamespace the anchor requests.
#[derive(CustomResource, Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[kube(
    group = "hnc.x-k8s.io",
    version = "v1alpha2",
    kind = "SubnamespaceAnchor",
    plural = "subnamespaceanchors",
    singular = "subnamespaceanchor",
    shortname = "subns",
    namespaced,
    status = "SubnamespaceAnchorStatus",
    doc = "SubnamespaceAnchor is the Schema for the subnamespace API. See details at http://bit.ly/hnc-self-serve-ux.",
    crates(
        kube_core = "kube::core",
        k8s_openapi = "k8s_openapi",
        schemars = "schemars",
        serde = "serde",
        serde_json = "serde_json"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct SubnamespaceAnchorSpec {
    /// Labels is a list of labels and values to apply to the current subnamespace and all of its descendants.
    /// All label keys must match a regex specified on the command line by --managed-namespace-label.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<MetaKvp>,
    /// Annotations is a list of annotations and values to apply to the current subnamespace and all of its
    /// descendants. All annotation keys must match a regex specified on the command line by
    /// --managed-namespace-annotation.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<MetaKvp>,
}

/// The state of a subnamespace anchor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum AnchorState {
    /// The subnamespace has not been created yet (the default when the anchor is new).
    Missing,
    /// The subnamespace exists and names this anchor's namespace as its parent.
    Ok,
    /// A namespace of the same name exists but is not a subnamespace of this anchor's namespace.
    Conflict,
    /// The anchor asks for a namespace HNC may not manage (excluded or not matching the included regex).
    Forbidden,
}

impl AnchorState {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            AnchorState::Missing => "Missing",
            AnchorState::Ok => "Ok",
            AnchorState::Conflict => "Conflict",
            AnchorState::Forbidden => "Forbidden",
        }
    }

    /// Parses a wire value; unknown values (the schema has no enum) are `None`.
    pub fn parse(value: &str) -> Option<AnchorState> {
        Some(match value {
            "Missing" => AnchorState::Missing,
            "Ok" => AnchorState::Ok,
            "Conflict" => AnchorState::Conflict,
            "Forbidden" => AnchorState::Forbidden,
            _ => return None,
        })
    }
}

/// Observed state of the anchor.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SubnamespaceAnchorStatus {
    /// Describes the state of the subnamespace anchor: `Missing`, `Ok`, `Conflict` or `Forbidden`. Kept a plain
    /// string (no enum in the schema) exactly as upstream, so unknown values written by other tools are preserved.
    #[serde(rename = "status", default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::non_nullable::<String>")]
    pub state: Option<String>,
}

impl SubnamespaceAnchorStatus {
    /// The parsed state, if it is one HNC knows.
    pub fn parsed(&self) -> Option<AnchorState> {
        self.state.as_deref().and_then(AnchorState::parse)
    }
}
