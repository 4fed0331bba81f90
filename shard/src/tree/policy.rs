//! Which namespaces HNC manages, and which namespace labels and annotations HierarchyConfigurations may set
//! (spec §3, §4.5).
//!
//! Every regex is matched against whole strings, anchored as `^(?:pattern)$`: a top-level alternation `a|b`
//! means "exactly a or exactly b". Upstream anchors by plain concatenation (`^a|b$`, spec §18 item 18), which also
//! matched `a…` and `…b`; the README's compatibility section documents the difference.

use std::collections::BTreeSet;

use regex::Regex;

/// A regex matched against whole strings. Displayed as the user wrote it.
#[derive(Debug, Clone)]
pub struct AnchoredRegex {
    source: String,
    regex: Regex,
}

impl AnchoredRegex {
    /// Compiles `pattern` anchored as `^(?:pattern)$`.
    pub fn new(pattern: &str) -> Result<Self, regex::Error> {
        Ok(AnchoredRegex { source: pattern.to_owned(), regex: Regex::new(&format!("^(?:{pattern})$"))? })
    }

    /// True when the whole of `s` matches.
    pub fn is_match(&self, s: &str) -> bool {
        self.regex.is_match(s)
    }

    /// The pattern as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The anchored form, as quoted in "does not match the regex" messages.
    pub fn anchored(&self) -> &str {
        self.regex.as_str()
    }
}

/// The administrator's choice of managed namespaces and managed labels/annotations.
#[derive(Debug, Clone)]
pub struct NamespacePolicy {
    excluded: BTreeSet<String>,
    included: AnchoredRegex,
    /// The included regex is the default `.*`: no need to run it on every question.
    includes_everything: bool,
    managed_labels: Vec<AnchoredRegex>,
    managed_annotations: Vec<AnchoredRegex>,
}

impl Default for NamespacePolicy {
    /// Everything managed, nothing excluded, no managed labels or annotations.
    fn default() -> Self {
        NamespacePolicy::new(
            std::iter::empty::<String>(),
            AnchoredRegex::new(".*").expect("constant regex"),
            Vec::new(),
            Vec::new(),
        )
    }
}

impl NamespacePolicy {
    /// A policy excluding `excluded`, including only names matching `included`, and allowing the given managed
    /// label and annotation key patterns.
    pub fn new(
        excluded: impl IntoIterator<Item = impl Into<String>>,
        included: AnchoredRegex,
        managed_labels: Vec<AnchoredRegex>,
        managed_annotations: Vec<AnchoredRegex>,
    ) -> Self {
        NamespacePolicy {
            excluded: excluded.into_iter().map(Into::into).collect(),
            includes_everything: included.source() == ".*",
            included,
            managed_labels,
            managed_annotations,
        }
    }

    /// Why HNC must not manage `name`, or `None` when it does. The empty name ("no parent") is managed.
    pub fn why_unmanaged(&self, name: &str) -> Option<String> {
        if name.is_empty() {
            return None;
        }
        if self.excluded.contains(name) {
            return Some("excluded by the HNC administrator".to_owned());
        }
        if !self.includes_everything && !self.included.is_match(name) {
            return Some(format!(
                "does not match the regex set by the HNC administrator: `{}`",
                self.included.anchored()
            ));
        }
        None
    }

    /// True when HNC manages `name`.
    pub fn is_managed(&self, name: &str) -> bool {
        self.why_unmanaged(name).is_none()
    }

    /// True when a HierarchyConfiguration may set the namespace label `key`.
    pub fn is_managed_label(&self, key: &str) -> bool {
        self.managed_labels.iter().any(|re| re.is_match(key))
    }

    /// True when a HierarchyConfiguration may set the namespace annotation `key`.
    pub fn is_managed_annotation(&self, key: &str) -> bool {
        self.managed_annotations.iter().any(|re| re.is_match(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(excluded: &[&str], included: &str) -> NamespacePolicy {
        NamespacePolicy::new(
            excluded.iter().copied(),
            AnchoredRegex::new(included).unwrap(),
            vec![AnchoredRegex::new(r".*\.example\.com/.*").unwrap()],
            vec![],
        )
    }

    #[test]
    fn excluded_and_regex_reasons_match_upstream_wording() {
        let p = policy(&["kube-system"], "team-.*");
        assert_eq!(p.why_unmanaged(""), None, "no parent counts as managed");
        assert_eq!(p.why_unmanaged("kube-system").unwrap(), "excluded by the HNC administrator");
        assert_eq!(
            p.why_unmanaged("other").unwrap(),
            "does not match the regex set by the HNC administrator: `^(?:team-.*)$`"
        );
        assert!(p.is_managed("team-a"));
    }

    #[test]
    fn alternation_is_anchored_as_a_group() {
        let p = policy(&[], "a|b");
        assert!(p.is_managed("a") && p.is_managed("b"));
        assert!(!p.is_managed("ab") && !p.is_managed("xb"));
    }

    #[test]
    fn managed_keys() {
        let p = policy(&[], ".*");
        assert!(p.is_managed_label("team.example.com/env"));
        assert!(!p.is_managed_label("env"));
        assert!(!p.is_managed_annotation("team.example.com/env"));
    }
}
