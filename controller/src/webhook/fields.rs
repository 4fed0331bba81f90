//! Field errors for 422 `Invalid` denials, rendered as the API server renders `field.ErrorList`s (the name
//! rules they report are [`hnc_api::validation`]'s). Also the check shared by the HierarchyConfiguration and
//! anchor validators: the managed labels and annotations a spec may set (spec §8.5 step 4).

use std::fmt;

use hnc_api::MetaKvp;
use hnc_api::validation::{label_value_errors, qualified_name_errors};
use hnc_shard::tree::NamespacePolicy;

/// What is wrong with a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// `Invalid value: <value>: <detail>`.
    Invalid,
    /// `Duplicate value: <value>`.
    Duplicate,
}

/// One field error, e.g. `spec.labels: Invalid value: "team": not a managed label and cannot be configured`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the field, e.g. `spec.resources[2]`.
    pub field: String,
    /// The kind of error.
    pub problem: Problem,
    /// The offending value as printed: strings quoted, group-resources bare (as Go prints a `Stringer`).
    pub value: String,
    /// Why, if anything more is to be said.
    pub detail: String,
}

impl FieldError {
    /// An invalid string value (printed quoted).
    pub fn invalid(field: impl Into<String>, value: &str, detail: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            problem: Problem::Invalid,
            value: format!("{value:?}"),
            detail: detail.into(),
        }
    }

    /// An invalid value printed as is.
    pub fn invalid_bare(field: impl Into<String>, value: &str, detail: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            problem: Problem::Invalid,
            value: value.to_owned(),
            detail: detail.into(),
        }
    }

    /// A value that repeats an earlier one (printed as is).
    pub fn duplicate(field: impl Into<String>, value: &str) -> Self {
        FieldError {
            field: field.into(),
            problem: Problem::Duplicate,
            value: value.to_owned(),
            detail: String::new(),
        }
    }

    /// The `reason` of the `details.causes` entry.
    pub fn cause_reason(&self) -> &'static str {
        match self.problem {
            Problem::Invalid => "FieldValueInvalid",
            Problem::Duplicate => "FieldValueDuplicate",
        }
    }

    /// The message without the field path (the `details.causes` message).
    pub fn body(&self) -> String {
        let kind = match self.problem {
            Problem::Invalid => "Invalid value",
            Problem::Duplicate => "Duplicate value",
        };
        if self.detail.is_empty() {
            format!("{kind}: {}", self.value)
        } else {
            format!("{kind}: {}: {}", self.value, self.detail)
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.body())
    }
}

/// The errors joined as the API server joins an aggregate: one error alone, several as `[a, b]`.
pub fn aggregate(errors: &[FieldError]) -> String {
    match errors {
        [one] => one.to_string(),
        many => format!("[{}]", many.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")),
    }
}

/// Checks the managed labels and annotations of a HierarchyConfiguration or anchor spec: keys must be
/// qualified names matching a `--managed-namespace-label`/`--managed-namespace-annotation` pattern, label
/// values valid. Annotation values are not restricted.
pub fn managed_metadata_errors(
    policy: &NamespacePolicy,
    labels: &[MetaKvp],
    annotations: &[MetaKvp],
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    for kvp in labels {
        let key_errors = qualified_name_errors(&kvp.key);
        if !key_errors.is_empty() {
            errors.push(FieldError::invalid("spec.labels", &kvp.key, key_errors.join("; ")));
        } else if !policy.is_managed_label(&kvp.key) {
            errors.push(FieldError::invalid(
                "spec.labels",
                &kvp.key,
                "not a managed label and cannot be configured",
            ));
        }
        let value_errors = label_value_errors(&kvp.value);
        if !value_errors.is_empty() {
            errors.push(FieldError::invalid(
                format!("spec.labels[{}]", kvp.key),
                &kvp.value,
                value_errors.join("; "),
            ));
        }
    }
    for kvp in annotations {
        let key_errors = qualified_name_errors(&kvp.key);
        if !key_errors.is_empty() {
            errors.push(FieldError::invalid("spec.annotations", &kvp.key, key_errors.join("; ")));
        } else if !policy.is_managed_annotation(&kvp.key) {
            errors.push(FieldError::invalid(
                "spec.annotations",
                &kvp.key,
                "not a managed annotation and cannot be configured",
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use hnc_shard::tree::AnchoredRegex;

    fn kvp(key: &str, value: &str) -> MetaKvp {
        MetaKvp { key: key.into(), value: value.into() }
    }

    #[test]
    fn managed_metadata_needs_legal_managed_keys_and_values() {
        let policy = NamespacePolicy::new(
            Vec::<String>::new(),
            AnchoredRegex::new(".*").unwrap(),
            vec![AnchoredRegex::new(r"team\.example\.com/.*").unwrap()],
            vec![],
        );
        let errors = managed_metadata_errors(
            &policy,
            &[kvp("team.example.com/env", "prod"), kvp("env", "x"), kvp("team.example.com/bad", "-x-")],
            &[kvp("team.example.com/owner", "anything goes")],
        );
        let rendered: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(rendered.len(), 3, "{rendered:?}");
        assert_eq!(
            rendered[0],
            "spec.labels: Invalid value: \"env\": not a managed label and cannot be configured"
        );
        assert!(
            rendered[1]
                .starts_with("spec.labels[team.example.com/bad]: Invalid value: \"-x-\": a valid label")
        );
        assert_eq!(
            rendered[2],
            "spec.annotations: Invalid value: \"team.example.com/owner\": not a managed annotation and cannot be \
             configured"
        );
        assert_eq!(aggregate(&errors[..1]), rendered[0]);
        assert!(aggregate(&errors).starts_with("[spec.labels: ") && aggregate(&errors).ends_with(']'));
    }
}
