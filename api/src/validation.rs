//! Kubernetes' name rules, with the API server's own words: DNS-1123 labels (namespace names) and subdomains
//! (most object names), path-segment names (RBAC objects), qualified names (label and annotation keys) and
//! label values.
//!
//! Each function returns what apimachinery's validation function of the same rule returns
//! (`IsDNS1123Label`, `IsDNS1123Subdomain`, `ValidatePathSegmentName`, `IsQualifiedName`, `IsValidLabelValue`):
//! every problem found, in its message; empty when the input is valid. The API server turns each message into
//! one `Invalid value` cause, and upstream HNC joins them into its denials, so every caller here — apisim's
//! validation, the webhooks' 422 denials, the selector annotations — says what kube-apiserver says.

const DNS1123_LABEL_MAX: usize = 63;
const DNS1123_SUBDOMAIN_MAX: usize = 253;
const QUALIFIED_NAME_MAX: usize = 63;
const LABEL_VALUE_MAX: usize = 63;

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

fn max_len(max: usize) -> String {
    format!("must be no more than {max} characters")
}

fn lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`.
fn is_dns1123_label(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && lower_alnum(b[0])
        && lower_alnum(b[b.len() - 1])
        && b.iter().all(|&c| lower_alnum(c) || c == b'-')
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`: the name part of a qualified name, and a non-empty label value.
fn is_qualified_word(s: &str) -> bool {
    let b = s.as_bytes();
    let alnum = |c: u8| c.is_ascii_alphanumeric();
    !b.is_empty()
        && alnum(b[0])
        && alnum(b[b.len() - 1])
        && b.iter().all(|&c| alnum(c) || matches!(c, b'-' | b'_' | b'.'))
}

/// Why `s` is not a DNS-1123 label (a namespace name); empty when it is one.
pub fn dns1123_label_errors(s: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if s.len() > DNS1123_LABEL_MAX {
        errors.push(max_len(DNS1123_LABEL_MAX));
    }
    if !is_dns1123_label(s) {
        errors.push(DNS1123_LABEL_RULE.to_owned());
    }
    errors
}

/// Why `s` is not a DNS-1123 subdomain (the name of most objects); empty when it is one.
pub fn dns1123_subdomain_errors(s: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if s.len() > DNS1123_SUBDOMAIN_MAX {
        errors.push(max_len(DNS1123_SUBDOMAIN_MAX));
    }
    if !s.split('.').all(is_dns1123_label) {
        errors.push(DNS1123_SUBDOMAIN_RULE.to_owned());
    }
    errors
}

/// Why `s` cannot be a name that is one URL path segment (the rule for RBAC object names, which may hold
/// `:`, e.g. `system:basic-user`); empty when it can.
pub fn path_segment_errors(s: &str) -> Vec<String> {
    if s == "." || s == ".." {
        return vec![format!("may not be '{s}'")];
    }
    ["/", "%"].iter().filter(|bad| s.contains(**bad)).map(|bad| format!("may not contain '{bad}'")).collect()
}

/// Why `key` is not a qualified name (a label or annotation key, `[prefix/]name`); empty when it is one.
pub fn qualified_name_errors(key: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let parts: Vec<&str> = key.split('/').collect();
    let name = match parts[..] {
        [name] => name,
        [prefix, name] => {
            if prefix.is_empty() {
                errors.push("prefix part must be non-empty".to_owned());
            } else {
                errors
                    .extend(dns1123_subdomain_errors(prefix).into_iter().map(|e| format!("prefix part {e}")));
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
    } else if name.len() > QUALIFIED_NAME_MAX {
        errors.push(format!("name part {}", max_len(QUALIFIED_NAME_MAX)));
    }
    if !name.is_empty() && !is_qualified_word(name) {
        errors.push(format!("name part {QUALIFIED_NAME_RULE}"));
    }
    errors
}

/// Why `value` is not a valid label value (empty, or a qualified name's name part); empty when it is one.
pub fn label_value_errors(value: &str) -> Vec<String> {
    let mut errors = Vec::new();
    if value.len() > LABEL_VALUE_MAX {
        errors.push(max_len(LABEL_VALUE_MAX));
    }
    if !value.is_empty() && !is_qualified_word(value) {
        errors.push(LABEL_VALUE_RULE.to_owned());
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns1123_labels() {
        assert!(dns1123_label_errors("team-a").is_empty());
        assert!(dns1123_label_errors("123-abc").is_empty());
        assert_eq!(dns1123_label_errors("team.a"), [DNS1123_LABEL_RULE]);
        assert_eq!(dns1123_label_errors("Team"), [DNS1123_LABEL_RULE]);
        assert_eq!(dns1123_label_errors("-a"), [DNS1123_LABEL_RULE]);
        assert_eq!(dns1123_label_errors(&"a".repeat(64)), ["must be no more than 63 characters"]);
        assert_eq!(dns1123_label_errors(&"A".repeat(64)).len(), 2);
        assert!(dns1123_label_errors("").iter().any(|e| e.contains("RFC 1123 label")));
    }

    #[test]
    fn dns1123_subdomains() {
        assert!(dns1123_subdomain_errors("hierarchyconfigurations.hnc.x-k8s.io").is_empty());
        assert_eq!(dns1123_subdomain_errors("-x"), [DNS1123_SUBDOMAIN_RULE]);
        assert_eq!(dns1123_subdomain_errors("a..b"), [DNS1123_SUBDOMAIN_RULE]);
        assert_eq!(dns1123_subdomain_errors("a_b"), [DNS1123_SUBDOMAIN_RULE]);
        assert_eq!(dns1123_subdomain_errors(&"a".repeat(254)), ["must be no more than 253 characters"]);
    }

    #[test]
    fn path_segments() {
        assert!(path_segment_errors("system:basic-user").is_empty());
        assert_eq!(path_segment_errors("a/b"), ["may not contain '/'"]);
        assert_eq!(path_segment_errors("a/%"), ["may not contain '/'", "may not contain '%'"]);
        assert_eq!(path_segment_errors(".."), ["may not be '..'"]);
    }

    #[test]
    fn qualified_names() {
        assert!(qualified_name_errors("example.com/team").is_empty());
        assert!(qualified_name_errors("Team_1.x").is_empty());
        assert!(qualified_name_errors("hnc.x-k8s.io/inherited-from").is_empty());
        assert!(qualified_name_errors("a.tree.hnc.x-k8s.io/depth").is_empty());
        assert!(qualified_name_errors("/x")[0].contains("prefix part must be non-empty"));
        assert!(qualified_name_errors("a/b/c")[0].contains("qualified name"));
        assert!(qualified_name_errors("Example.com/x")[0].starts_with("prefix part a lowercase RFC 1123"));
        assert_eq!(qualified_name_errors("x/"), ["name part must be non-empty"]);
        assert_eq!(qualified_name_errors(&"k".repeat(64)), ["name part must be no more than 63 characters"]);
        assert!(qualified_name_errors("bad key")[0].starts_with("name part a qualified name"));
    }

    #[test]
    fn label_values() {
        assert!(label_value_errors("").is_empty());
        assert!(label_value_errors("my_value.1").is_empty());
        assert!(label_value_errors("-x")[0].starts_with("a valid label"));
        assert!(label_value_errors("x y")[0].starts_with("a valid label"));
        assert_eq!(label_value_errors(&"v".repeat(64)), ["must be no more than 63 characters"]);
    }
}
