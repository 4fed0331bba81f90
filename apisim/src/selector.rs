//! Label and field selectors, parsed and matched as kube-apiserver does.

use std::collections::BTreeMap;

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `k=v`, `k==v`, `k in (a,b)`.
    In(String, Vec<String>),
    /// `k!=v`, `k notin (a,b)` (also matches when the key is absent).
    NotIn(String, Vec<String>),
    /// `k`.
    Exists(String),
    /// `!k`.
    DoesNotExist(String),
}

/// A parsed label selector: all requirements must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector(pub Vec<Requirement>);

impl LabelSelector {
    /// Parses the `labelSelector` query syntax.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut reqs = Vec::new();
        for part in split_top_level(s) {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            reqs.push(parse_requirement(part)?);
        }
        Ok(LabelSelector(reqs))
    }

    /// True when `labels` satisfy every requirement.
    /// True when it selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.0.iter().all(|r| match r {
            Requirement::In(k, vs) => labels.get(k).is_some_and(|v| vs.contains(v)),
            Requirement::NotIn(k, vs) => labels.get(k).is_none_or(|v| !vs.contains(v)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
        })
    }
}

/// Splits on commas that are not inside parentheses.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(Requirement::DoesNotExist(valid_key(key.trim())?));
    }
    for (op, negate) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((k, v)) = part.split_once(op) {
            let (k, v) = (valid_key(k.trim())?, valid_value(v.trim())?);
            return Ok(if negate { Requirement::NotIn(k, vec![v]) } else { Requirement::In(k, vec![v]) });
        }
    }
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    if words.len() == 2 {
        let rest = words[1].trim();
        for (op, negate) in [("notin", true), ("in", false)] {
            if let Some(set) = rest.strip_prefix(op) {
                let set = set.trim();
                let inner = set.strip_prefix('(').and_then(|s| s.strip_suffix(')')).ok_or_else(|| {
                    format!("unable to parse requirement: expected '(' and ')' in {part:?}")
                })?;
                let values =
                    inner.split(',').map(|v| valid_value(v.trim())).collect::<Result<Vec<_>, _>>()?;
                let key = valid_key(words[0])?;
                return Ok(if negate {
                    Requirement::NotIn(key, values)
                } else {
                    Requirement::In(key, values)
                });
            }
        }
        return Err(format!("unable to parse requirement: unknown operator in {part:?}"));
    }
    Ok(Requirement::Exists(valid_key(part)?))
}

fn valid_key(k: &str) -> Result<String, String> {
    crate::validation::qualified_name(k).map_err(|e| format!("invalid label key {k:?}: {e}"))?;
    Ok(k.to_owned())
}

fn valid_value(v: &str) -> Result<String, String> {
    crate::validation::label_value(v).map_err(|e| format!("invalid label value {v:?}: {e}"))?;
    Ok(v.to_owned())
}

/// A field selector over `metadata.name` / `metadata.namespace` (the fields every resource supports).
#[derive(Debug, Clone, Default)]
pub struct FieldSelector(Vec<(String, bool, String)>);

impl FieldSelector {
    /// Parses `metadata.name=x,metadata.namespace!=y`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut out = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, negate, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, false, v)
            } else {
                return Err(format!("invalid field selector {part:?}"));
            };
            let field = field.trim();
            if field != "metadata.name" && field != "metadata.namespace" {
                return Err(format!("field label not supported: {field}"));
            }
            out.push((field.to_owned(), negate, value.trim().to_owned()));
        }
        Ok(FieldSelector(out))
    }

    /// True when the object's name and namespace satisfy the selector.
    /// True when it selects everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn matches(&self, namespace: &str, name: &str) -> bool {
        self.0.iter().all(|(field, negate, value)| {
            let actual = if field == "metadata.name" { name } else { namespace };
            (actual == value) != *negate
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect()
    }

    #[test]
    fn every_operator() {
        let l = labels(&[("env", "prod"), ("tier", "web"), ("a.tree.hnc.x-k8s.io/depth", "1")]);
        for (sel, want) in [
            ("env=prod", true),
            ("env==prod", true),
            ("env!=prod", false),
            ("missing!=x", true),
            ("env in (dev, prod)", true),
            ("env notin (dev,prod)", false),
            ("tier", true),
            ("!tier", false),
            ("!missing", true),
            ("a.tree.hnc.x-k8s.io/depth", true),
            ("env=prod,tier in (web),!missing", true),
            ("env=prod,tier=db", false),
            ("", true),
        ] {
            assert_eq!(LabelSelector::parse(sel).unwrap().matches(&l), want, "{sel}");
        }
    }

    #[test]
    fn malformed_selectors_are_errors() {
        for bad in ["env in dev", "env in (", "bad key!=x", "k=bad value", "env oops (a)"] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn field_selectors() {
        let f = FieldSelector::parse("metadata.name=x,metadata.namespace!=kube-system").unwrap();
        assert!(f.matches("default", "x"));
        assert!(!f.matches("kube-system", "x"));
        assert!(FieldSelector::parse("spec.nodeName=n").is_err());
    }
}
