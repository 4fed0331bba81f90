//! Field errors for 422 `Invalid` denials, rendered as the API server renders `field.ErrorList`s, and the
//! Kubernetes name rules the validators check (DNS-1123 labels, qualified names, label values) with the API
//! server's wording. Also the check shared by the HierarchyConfiguration and anchor validators: the managed
//! labels and annotations a spec may set (spec §8.5 step 4).

use std::fmt;

use hnc_api::MetaKvp;
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

const DNS1123_LABEL_RULE: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or \
     '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for \
     validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";

const DNS1123_SUBDOMAIN_RULE: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric \
     characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex \
     used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";

const QUALIFIED_NAME_RULE: &str = "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and \
     must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used \
     for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]') with an optional DNS subdomain prefix and '/' \
     (e.g. 'example.com/MyName')";

const LABEL_VALUE_RULE: &str = "a valid label must be an empty string or consist of alphanumeric characters, '-', \
     '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or \
     '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')";

fn lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn dns1123_label_ok(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && lower_alnum(b[0])
        && lower_alnum(b[b.len() - 1])
        && b.iter().all(|&c| lower_alnum(c) || c == b'-')
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`.
fn qualified_word_ok(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_alphanumeric();
    !b.is_empty()
        && alnum(b[0])
        && alnum(b[b.len() - 1])
        && b.iter().all(|&c| alnum(c) || matches!(c, b'-' | b'_' | b'.'))
}

/// Why `s` is not a DNS-1123 label (a namespace name), in the API server's words; empty when it is one.
pub fn dns1123_label_errors(s: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if s.len() > 63 {
        errors.push("must be no more than 63 characters".to_owned());
    }
    if !dns1123_label_ok(s) {
        errors.push(DNS1123_LABEL_RULE.to_owned());
    }
    errors
}

/// Why `key` is not a qualified name (a label or annotation key); empty when it is one.
pub fn qualified_name_errors(key: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts[..] {
        [name] => name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push("prefix part must be non-empty".to_owned());
            } else {
                if prefix.len() > 253 {
                    errors.push("prefix part must be no more than 253 characters".to_owned());
                }
                if !prefix.split('.').all(dns1123_label_ok) {
                    errors.push(format!("prefix part {DNS1123_SUBDOMAIN_RULE}"));
                }
            }
            name
        }
        _ => {
            errors.push(QUALIFIED_NAME_RULE.to_owned());
            return errors;
        }
    };
    if name.is_empty() {
        errors.push("name part must be non-empty".to_owned());
    } else if name.len() > 63 {
        errors.push("name part must be no more than 63 characters".to_owned());
    }
    if !name.is_empty() && !qualified_word_ok(name) {
        errors.push(format!("name part {QUALIFIED_NAME_RULE}"));
    }
    errors
}

/// Why `value` is not a valid label value; empty when it is one.
pub fn label_value_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > 63 {
        errors.push("must be no more than 63 characters".to_owned());
    }
    if !value.is_empty() && !qualified_word_ok(value) {
        errors.push(LABEL_VALUE_RULE.to_owned());
    }
    errors
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
    fn names_follow_the_api_server_rules() {
        assert!(dns1123_label_errors("team-a").is_empty());
        assert_eq!(dns1123_label_errors("team.a").len(), 1);
        assert_eq!(dns1123_label_errors(&"a".repeat(64)).len(), 1);
        assert!(dns1123_label_errors("").iter().any(|e| e.contains("RFC 1123 label")));
        assert!(qualified_name_errors("example.com/team").is_empty());
        assert!(qualified_name_errors("Team_1.x").is_empty());
        assert!(qualified_name_errors("/x")[0].contains("prefix part must be non-empty"));
        assert!(qualified_name_errors("a/b/c")[0].contains("qualified name"));
        assert!(qualified_name_errors("Example.com/x")[0].starts_with("prefix part a lowercase RFC 1123"));
        assert!(label_value_errors("").is_empty());
        assert!(label_value_errors("-x")[0].starts_with("a valid label"));
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
