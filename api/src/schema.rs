//! Schema fragments shared by the CRD types: the patterns and shapes controller-gen emits upstream.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};

/// `metav1.Condition.type`: `(dns1123SubdomainFmt/)?(qualifiedNameFmt)`.
pub(crate) const CONDITION_TYPE_PATTERN: &str = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$";

/// `metav1.Condition.reason`.
pub(crate) const CONDITION_REASON_PATTERN: &str = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$";

/// The pattern of a `resource.Quantity` in int-or-string form.
const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// A `corev1.ResourceList`: a map of resource name to quantity (int-or-string).
pub(crate) fn resource_list(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "additionalProperties": {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "pattern": QUANTITY_PATTERN,
            "x-kubernetes-int-or-string": true
        }
    })
}

/// Forces the schema of an `Option<T>` field to be `T`'s without `nullable`, as controller-gen does for
/// `omitempty` fields (the API server then rejects explicit nulls exactly like upstream's CRDs).
pub(crate) fn non_nullable<T: JsonSchema>(generator: &mut SchemaGenerator) -> Schema {
    T::json_schema(generator)
}

/// A non-negative integer count (`+kubebuilder:validation:Minimum=0` on a Go `*int`).
pub(crate) fn count(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "integer", "minimum": 0 })
}

/// `metav1.Condition.observedGeneration`.
pub(crate) fn generation(_: &mut SchemaGenerator) -> Schema {
    json_schema!({ "type": "integer", "format": "int64", "minimum": 0 })
}
