//! The four exception annotations (`propagate.hnc.x-k8s.io/{select,treeSelect,none,all}`, spec §6.4), the
//! built-in exclusions, and the per-destination decision "should this source propagate to D" (§6.3).
//!
//! The parsers are public because the objects webhook (§8.8) must accept exactly what propagation accepts: a
//! value the webhook lets through must never become a `CannotParseSelector` event later. Sources are parsed
//! once when they enter the forest cache ([`PropagationPolicy`]); evaluating a destination is then only label
//! look-ups.
//!
//! `select` follows Kubernetes' own label-selector grammar as upstream parses it
//! (`metav1.ParseToLabelSelector`): same tokens, same key/value validation, `>`/`<` rejected. Two deliberate
//! differences: `k!=v` is accepted, as spec §6.4 lists it (the apimachinery version upstream vendors rejects
//! it with "\"!=\" is not a valid label selector operator"), and a key repeated with `=` is an AND of both
//! requirements (upstream's conversion to `matchLabels` silently keeps only one of them). The parser is
//! [`hnc_api::label_selector`], which apisim uses too; names and label values are checked by
//! [`hnc_api::validation`], so a reason reads as the API server's (upstream's treeSelect error says the same).

use std::collections::BTreeMap;

use hnc_api::SyncMode;
use hnc_api::keys::{annotations, labels};
use hnc_api::label_selector::ParseError;
pub use hnc_api::label_selector::{LabelSelector, Operator, Requirement};
use hnc_api::validation::dns1123_label_errors;
use serde_json::Value;

use super::object::{PropagationRules, TypeKey};

/// A selector annotation that cannot be used, with a message meant for the object's author (it becomes a
/// webhook denial or a `CannotParseSelector` Warning event).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid {annotation} annotation {value:?}: {problem}")]
pub struct SelectorError {
    /// The annotation key, e.g. `propagate.hnc.x-k8s.io/select`.
    pub annotation: &'static str,
    /// The annotation's value as written.
    pub value: String,
    /// What is wrong with it.
    pub problem: SelectorProblem,
}

/// What is wrong with a selector annotation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SelectorProblem {
    /// The label selector does not follow the grammar.
    #[error("{0}")]
    Syntax(String),
    /// A label key is not a valid qualified name.
    #[error("label key {key:?}: {reason}")]
    InvalidKey { key: String, reason: String },
    /// A label value is not valid.
    #[error("value {value:?} for key {key:?}: {reason}")]
    InvalidValue { key: String, value: String, reason: String },
    /// `>` and `<` parse but label selectors on objects do not support them.
    #[error("operator {0:?} isn't supported in label selectors; use =, ==, !=, in, notin, a key or !key")]
    UnsupportedOperator(&'static str),
    /// A `treeSelect` segment is empty (a leading, doubled or trailing comma, or only blanks).
    #[error("segment {position} is empty; remove the extra comma or write a namespace name")]
    EmptySegment { position: usize },
    /// A `treeSelect` segment is not a namespace name.
    #[error("{name:?} is not a valid namespace name: {reason}")]
    InvalidNamespaceName { name: String, reason: String },
    /// A `treeSelect` with several non-negated namespaces can never match anything.
    #[error("should only have one non-negated namespace, but got multiple: {}", .0.join(", "))]
    MultipleNonNegated(Vec<String>),
    /// `none`/`all` is not a boolean.
    #[error("must be a boolean: true, false, t, f, 1, 0 (TRUE/True/FALSE/False also accepted) or empty")]
    NotABool,
}

impl SelectorError {
    fn new(annotation: &'static str, value: &str, problem: SelectorProblem) -> Self {
        SelectorError { annotation, value: value.to_owned(), problem }
    }
}

impl From<ParseError> for SelectorProblem {
    fn from(error: ParseError) -> Self {
        match error {
            ParseError::Syntax(message) => SelectorProblem::Syntax(message),
            ParseError::InvalidKey { key, reason } => SelectorProblem::InvalidKey { key, reason },
            ParseError::InvalidValue { key, value, reason } => {
                SelectorProblem::InvalidValue { key, value, reason }
            }
            ParseError::UnsupportedOperator(op) => SelectorProblem::UnsupportedOperator(op),
        }
    }
}

/// A parsed `treeSelect` annotation: at most one namespace whose subtree is selected, minus excluded
/// subtrees. Evaluated through the tree labels `<ns>.tree.hnc.x-k8s.io/depth` of the destination.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeSelector {
    /// Tree-label key of the non-negated namespace, if any.
    include: Option<String>,
    /// Tree-label keys of the negated namespaces.
    exclude: Vec<String>,
}

impl TreeSelector {
    /// True when the annotation was empty.
    pub fn is_empty(&self) -> bool {
        self.include.is_none() && self.exclude.is_empty()
    }

    /// True when the destination with these labels is in the selected subtree and in no excluded one.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.include.as_ref().is_none_or(|k| labels.contains_key(k))
            && self.exclude.iter().all(|k| !labels.contains_key(k))
    }
}

/// Parses a `propagate.hnc.x-k8s.io/select` value. An empty or blank value yields an empty selector.
pub fn parse_select(value: &str) -> Result<LabelSelector, SelectorError> {
    LabelSelector::parse(value).map_err(|e| SelectorError::new(annotations::SELECT, value, e.into()))
}

/// Parses a `propagate.hnc.x-k8s.io/treeSelect` value: comma-separated namespace names, each optionally
/// prefixed by `!`, at most one without `!`. An empty value yields an empty selector; an empty segment is an
/// error (upstream crashes on it).
pub fn parse_tree_select(value: &str) -> Result<TreeSelector, SelectorError> {
    let err = |problem| SelectorError::new(annotations::TREE_SELECT, value, problem);
    let mut selector = TreeSelector::default();
    if value.is_empty() {
        return Ok(selector);
    }
    let mut non_negated = Vec::new();
    for (i, segment) in value.split(',').enumerate() {
        let segment = segment.trim();
        if segment.is_empty() {
            return Err(err(SelectorProblem::EmptySegment { position: i + 1 }));
        }
        let (negated, name) = match segment.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, segment),
        };
        let name_errors = dns1123_label_errors(name);
        if !name_errors.is_empty() {
            let reason = name_errors.join("; ");
            return Err(err(SelectorProblem::InvalidNamespaceName { name: name.to_owned(), reason }));
        }
        let key = labels::tree_label(name);
        if negated {
            selector.exclude.push(key);
        } else {
            non_negated.push(name.to_owned());
            selector.include = Some(key);
        }
    }
    if non_negated.len() > 1 {
        return Err(err(SelectorProblem::MultipleNonNegated(non_negated)));
    }
    Ok(selector)
}

/// Parses a `none`/`all` annotation with Go's `strconv.ParseBool` rules; empty means false.
pub fn parse_bool_annotation(annotation: &'static str, value: &str) -> Result<bool, SelectorError> {
    match value {
        "" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        _ => Err(SelectorError::new(annotation, value, SelectorProblem::NotABool)),
    }
}

/// Checks a value for one of the four selector annotations, as the objects webhook must (§8.8 steps 2–4).
/// Keys other than the four are accepted without looking at the value.
pub fn validate_selector_annotation(key: &str, value: &str) -> Result<(), SelectorError> {
    match key {
        annotations::SELECT => parse_select(value).map(drop),
        annotations::TREE_SELECT => parse_tree_select(value).map(drop),
        annotations::NONE => parse_bool_annotation(annotations::NONE, value).map(drop),
        annotations::ALL => parse_bool_annotation(annotations::ALL, value).map(drop),
        _ => Ok(()),
    }
}

/// Everything about a source that decides where it may propagate, parsed once. Two sources with equal
/// policies and equal content hashes propagate identically, which is how the forest cache tells a change that
/// needs re-planning from a resourceVersion bump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PropagationPolicy {
    // Errors are boxed: they are rare, and sources are kept for every tree this replica owns.
    select: Result<LabelSelector, Box<SelectorError>>,
    tree_select: Result<TreeSelector, Box<SelectorError>>,
    none: Result<bool, Box<SelectorError>>,
    all: Result<bool, Box<SelectorError>>,
    /// A built-in exclusion of §6.4 step 5 applies.
    excluded: bool,
    has_finalizers: bool,
    service_account_token: bool,
}

const SERVICE_ACCOUNT_TOKEN: &str = "kubernetes.io/service-account-token";
const HELM_RELEASE: &str = "helm.sh/release.v1";
const EXCLUDED_CONFIG_MAPS: [&str; 2] = ["istio-ca-root-cert", "kube-root-ca.crt"];

impl PropagationPolicy {
    /// Parses the policy of `object` (of type `ty`). Reads leniently: labels, annotations or fields that are
    /// not strings count as absent, so that malformed input can never panic here.
    pub fn new(ty: &TypeKey, object: &Value, rules: &PropagationRules) -> Self {
        let meta = object.get("metadata");
        let string_map = |field: &str| -> BTreeMap<&str, &str> {
            meta.and_then(|m| m.get(field))
                .and_then(Value::as_object)
                .map(|m| m.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_str()?))).collect())
                .unwrap_or_default()
        };
        let annots = string_map("annotations");
        let object_labels = string_map("labels");
        let annotation = |key: &str| annots.get(key).copied().unwrap_or("");
        let name = meta.and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("");
        let secret_type = object.get("type").and_then(Value::as_str);
        let core = ty.group.is_empty();
        let is_secret = core && &*ty.kind == "Secret";

        let excluded = (is_secret && secret_type == Some(HELM_RELEASE))
            || (core && &*ty.kind == "ConfigMap" && EXCLUDED_CONFIG_MAPS.contains(&name))
            || rules
                .nopropagation_labels
                .iter()
                .any(|(k, v)| object_labels.get(k.as_str()) == Some(&v.as_str()))
            || annots.contains_key(annotations::OPENSHIFT_DESCRIPTION);
        let has_finalizers =
            meta.and_then(|m| m.get("finalizers")).and_then(Value::as_array).is_some_and(|f| !f.is_empty());

        PropagationPolicy {
            select: parse_select(annotation(annotations::SELECT)).map_err(Box::new),
            tree_select: parse_tree_select(annotation(annotations::TREE_SELECT)).map_err(Box::new),
            none: parse_bool_annotation(annotations::NONE, annotation(annotations::NONE)).map_err(Box::new),
            all: parse_bool_annotation(annotations::ALL, annotation(annotations::ALL)).map_err(Box::new),
            excluded,
            has_finalizers,
            service_account_token: is_secret && secret_type == Some(SERVICE_ACCOUNT_TOKEN),
        }
    }

    /// §6.3 and §6.4: may this source propagate to a destination with `dest_labels` in `mode`? Checks run in
    /// upstream's order, so the same error surfaces first. `Ignore` behaves like `Remove`: no propagation.
    pub fn allows(
        &self,
        dest_labels: &BTreeMap<String, String>,
        mode: SyncMode,
    ) -> Result<bool, SelectorError> {
        let mut propagate = mode == SyncMode::Propagate;
        let select = self.select.as_ref().map_err(|e| unbox(e))?;
        if !select.is_empty() {
            propagate = true;
            if !select.matches(dest_labels) {
                return Ok(false);
            }
        }
        let tree = self.tree_select.as_ref().map_err(|e| unbox(e))?;
        if !tree.is_empty() {
            propagate = true;
            if !tree.matches(dest_labels) {
                return Ok(false);
            }
        }
        if *self.none.as_ref().map_err(|e| unbox(e))? {
            return Ok(false);
        }
        if *self.all.as_ref().map_err(|e| unbox(e))? {
            propagate = true;
        }
        if self.excluded || !propagate {
            return Ok(false);
        }
        Ok(mode.propagates() && !self.has_finalizers && !self.service_account_token)
    }

    /// The first selector error in evaluation order, if any annotation does not parse.
    pub fn error(&self) -> Option<&SelectorError> {
        let errors = [self.select.as_ref().err(), self.tree_select.as_ref().err()];
        errors
            .into_iter()
            .chain([self.none.as_ref().err(), self.all.as_ref().err()])
            .flatten()
            .next()
            .map(|e| &**e)
    }

    /// True when the source carries finalizers (it can never propagate; §6.7 wants a Warning about it).
    pub fn has_finalizers(&self) -> bool {
        self.has_finalizers
    }
}

fn unbox(error: &SelectorError) -> SelectorError {
    error.clone()
}

/// §6.3/§6.4 for one object: should `object` (its type read from `apiVersion`/`kind`) propagate to a
/// destination namespace labelled `dest_labels`, in `mode`, under `rules`? Includes the built-in exclusions,
/// finalizers, service-account tokens and mode `Remove`. The planner evaluates the cleaned source; the
/// webhook may pass the object as submitted.
pub fn should_propagate(
    object: &Value,
    dest_labels: &BTreeMap<String, String>,
    mode: SyncMode,
    rules: &PropagationRules,
) -> Result<bool, SelectorError> {
    let ty = TypeKey::of_object(object);
    PropagationPolicy::new(&ty, object, rules).allows(dest_labels, mode)
}
