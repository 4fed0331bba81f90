//! The condition shape HNC stores (`metav1.Condition`) and every condition type and reason it uses (spec §1.6).
//!
//! HNC keeps at most one condition per type on an object and always sets `status: "True"`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types.
pub mod types {
    /// Namespace condition: propagation and hierarchy changes are halted in this namespace and below.
    pub const ACTIVITIES_HALTED: &str = "ActivitiesHalted";
    /// Namespace or cluster condition: something is misconfigured but activities continue.
    pub const BAD_CONFIGURATION: &str = "BadConfiguration";
    /// Cluster condition: a type's objects cannot be synced.
    pub const OUT_OF_SYNC: &str = "OutOfSync";
    /// Cluster condition summarising namespace conditions across the forest.
    pub const NAMESPACE_CONDITION: &str = "NamespaceCondition";
    /// HierarchicalResourceQuota condition: the subtree uses more than `hard` allows (this implementation's;
    /// upstream's HRQ status has no conditions).
    pub const EXCEEDED: &str = "Exceeded";
}

/// Condition reasons.
pub mod reasons {
    // ActivitiesHalted
    pub const PARENT_MISSING: &str = "ParentMissing";
    pub const ILLEGAL_PARENT: &str = "IllegalParent";
    pub const IN_CYCLE: &str = "InCycle";
    pub const DELETING_CRD: &str = "DeletingCRD";
    pub const ANCESTOR_HALT_ACTIVITIES: &str = "AncestorHaltActivities";
    // BadConfiguration (namespace)
    pub const SUBNAMESPACE_ANCHOR_MISSING: &str = "SubnamespaceAnchorMissing";
    pub const ILLEGAL_MANAGED_LABEL: &str = "IllegalManagedLabel";
    pub const ILLEGAL_MANAGED_ANNOTATION: &str = "IllegalManagedAnnotation";
    // BadConfiguration (cluster)
    pub const MULTIPLE_CONFIGURATIONS_FOR_TYPE: &str = "MultipleConfigurationsForType";
    pub const RESOURCE_NOT_FOUND: &str = "ResourceNotFound";
    pub const RESOURCE_NOT_NAMESPACED: &str = "ResourceNotNamespaced";
    // BadConfiguration / OutOfSync catch-all
    pub const UNKNOWN: &str = "Unknown";
    // Exceeded (HierarchicalResourceQuota)
    pub const SUBTREE_OVER_LIMIT: &str = "SubtreeOverLimit";
}

/// `lastTransitionTime` of the synthesized `AncestorHaltActivities` condition (upstream's zero time).
pub const ANCESTOR_HALT_TRANSITION_TIME: &str = "1970-01-01T00:00:00Z";

/// A `metav1.Condition`, as stored in HNC statuses.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// Type of condition in CamelCase.
    #[serde(rename = "type")]
    #[schemars(length(max = 316), regex(pattern = crate::schema::CONDITION_TYPE_PATTERN))]
    pub type_: String,
    /// Status of the condition, one of True, False, Unknown. HNC always writes `True`.
    #[schemars(extend("enum" = ["True", "False", "Unknown"]))]
    pub status: String,
    /// The `.metadata.generation` the condition was set based upon (unused by HNC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::generation")]
    pub observed_generation: Option<i64>,
    /// Last time the condition transitioned, RFC 3339 (`2006-01-02T15:04:05Z`).
    #[schemars(extend("format" = "date-time"))]
    pub last_transition_time: String,
    /// Programmatic identifier of the reason for the last transition, CamelCase.
    #[schemars(length(min = 1, max = 1024), regex(pattern = crate::schema::CONDITION_REASON_PATTERN))]
    pub reason: String,
    /// Human-readable details about the transition.
    #[schemars(length(max = 32768))]
    pub message: String,
}

impl Condition {
    /// A `status: "True"` condition of `type_`/`reason`, transitioned at `now` (RFC 3339).
    pub fn new(type_: &str, reason: &str, message: impl Into<String>, now: impl Into<String>) -> Self {
        Condition {
            type_: type_.to_owned(),
            status: "True".to_owned(),
            observed_generation: None,
            last_transition_time: now.into(),
            reason: reason.to_owned(),
            message: message.into(),
        }
    }

    /// True when `self` and `other` say the same thing, ignoring when it was said.
    pub fn same_as(&self, other: &Condition) -> bool {
        self.type_ == other.type_
            && self.status == other.status
            && self.reason == other.reason
            && self.message == other.message
            && self.observed_generation == other.observed_generation
    }

    /// True for `ActivitiesHalted` conditions.
    pub fn halts(&self) -> bool {
        self.type_ == types::ACTIVITIES_HALTED
    }
}

/// Merges freshly computed conditions with the stored ones so that a condition that did not change keeps its
/// `lastTransitionTime` (upstream re-stamps it every reconcile, spec §18 item 7; we do not).
pub fn carry_transition_times(desired: &mut [Condition], stored: &[Condition]) {
    for cond in desired.iter_mut() {
        if let Some(old) = stored.iter().find(|old| old.same_as(cond)) {
            cond.last_transition_time.clone_from(&old.last_transition_time);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unchanged_conditions_keep_their_time() {
        let stored = vec![Condition::new(
            types::ACTIVITIES_HALTED,
            reasons::PARENT_MISSING,
            "m",
            "2024-01-01T00:00:00Z",
        )];
        let mut desired = vec![
            Condition::new(types::ACTIVITIES_HALTED, reasons::PARENT_MISSING, "m", "2025-05-05T00:00:00Z"),
            Condition::new(
                types::BAD_CONFIGURATION,
                reasons::ILLEGAL_MANAGED_LABEL,
                "x",
                "2025-05-05T00:00:00Z",
            ),
        ];
        carry_transition_times(&mut desired, &stored);
        assert_eq!(desired[0].last_transition_time, "2024-01-01T00:00:00Z");
        assert_eq!(desired[1].last_transition_time, "2025-05-05T00:00:00Z");
    }

    #[test]
    fn changed_message_is_a_transition() {
        let stored = vec![Condition::new(types::ACTIVITIES_HALTED, reasons::IN_CYCLE, "a <- b <- a", "t0")];
        let mut desired =
            vec![Condition::new(types::ACTIVITIES_HALTED, reasons::IN_CYCLE, "a <- c <- a", "t1")];
        carry_transition_times(&mut desired, &stored);
        assert_eq!(desired[0].last_transition_time, "t1");
    }
}
