//! Label and field selectors, parsed and matched as kube-apiserver does. Label selectors are Kubernetes'
//! grammar as [`hnc_api::label_selector`] parses it, the parser HNC itself uses.

pub use hnc_api::label_selector::LabelSelector;

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

    #[test]
    fn field_selectors() {
        let f = FieldSelector::parse("metadata.name=x,metadata.namespace!=kube-system").unwrap();
        assert!(f.matches("default", "x"));
        assert!(!f.matches("kube-system", "x"));
        assert!(FieldSelector::parse("spec.nodeName=n").is_err());
    }
}
