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
//! requirements (upstream's conversion to `matchLabels` silently keeps only one of them).

use std::collections::BTreeMap;
use std::fmt;

use hnc_api::SyncMode;
use hnc_api::keys::{annotations, labels};
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
    #[error("label key {key:?} {reason}")]
    InvalidKey { key: String, reason: String },
    /// A label value is not valid.
    #[error("value {value:?} for key {key:?} {reason}")]
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

/// How one requirement of a label selector compares a label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operator {
    /// `k`: the label is present.
    Exists,
    /// `!k`: the label is absent.
    DoesNotExist,
    /// `k=v`, `k==v`, `k in (a,b)`: the label is present with one of the values.
    In,
    /// `k!=v`, `k notin (a,b)`: the label is absent or has none of the values.
    NotIn,
}

/// One comma-separated term of a label selector.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    /// Sorted and deduplicated; empty for `Exists`/`DoesNotExist`.
    values: Vec<String>,
}

impl Requirement {
    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The comparison.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values compared against (sorted, deduplicated).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let has = |v: &String| self.values.binary_search(v).is_ok();
        match self.operator {
            Operator::Exists => labels.contains_key(&self.key),
            Operator::DoesNotExist => !labels.contains_key(&self.key),
            Operator::In => labels.get(&self.key).is_some_and(has),
            Operator::NotIn => !labels.get(&self.key).is_some_and(has),
        }
    }
}

/// A parsed `select` annotation: requirements ANDed together. Empty selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// True when the selector has no requirement (an empty or blank annotation): it has no effect.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, in the order written.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// True when every requirement holds for `labels`.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
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
    SelectParser::new(value)
        .parse()
        .map_err(|problem| SelectorError::new(annotations::SELECT, value, problem))
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
        if let Err(reason) = check_dns1123_label(name) {
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

// ---- label-selector grammar -------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token<'a> {
    End,
    /// A word; `in`/`notin` are words too, and only become operators right after a key.
    Word(&'a str),
    Comma,
    Open,
    Close,
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
}

impl fmt::Display for Token<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = match self {
            Token::End => "end of string",
            Token::Word(w) => return write!(f, "'{w}'"),
            Token::Comma => "','",
            Token::Open => "'('",
            Token::Close => "')'",
            Token::Not => "'!'",
            Token::Eq => "'='",
            Token::DoubleEq => "'=='",
            Token::NotEq => "'!='",
            Token::Gt => "'>'",
            Token::Lt => "'<'",
        };
        f.write_str(s)
    }
}

fn is_special(b: u8) -> bool {
    matches!(b, b'=' | b'!' | b'(' | b')' | b',' | b'>' | b'<')
}

fn is_blank(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Splits like Kubernetes' lexer: blanks separate, the special bytes form the longest operator they can, and
/// everything else is a word. Specials and blanks are ASCII, so every slice falls on a char boundary.
fn tokenize(input: &str) -> Vec<Token<'_>> {
    let bytes = input.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if is_blank(b) {
            i += 1;
            continue;
        }
        if is_special(b) {
            let next = bytes.get(i + 1).copied();
            let (token, len) = match (b, next) {
                (b'!', Some(b'=')) => (Token::NotEq, 2),
                (b'=', Some(b'=')) => (Token::DoubleEq, 2),
                (b'!', _) => (Token::Not, 1),
                (b'=', _) => (Token::Eq, 1),
                (b'(', _) => (Token::Open, 1),
                (b')', _) => (Token::Close, 1),
                (b',', _) => (Token::Comma, 1),
                (b'>', _) => (Token::Gt, 1),
                _ => (Token::Lt, 1),
            };
            tokens.push(token);
            i += len;
            continue;
        }
        let start = i;
        while i < bytes.len() && !is_special(bytes[i]) && !is_blank(bytes[i]) {
            i += 1;
        }
        tokens.push(Token::Word(&input[start..i]));
    }
    tokens.push(Token::End);
    tokens
}

struct SelectParser<'a> {
    tokens: Vec<Token<'a>>,
    pos: usize,
}

impl<'a> SelectParser<'a> {
    fn new(input: &'a str) -> Self {
        SelectParser { tokens: tokenize(input), pos: 0 }
    }

    fn peek(&self) -> Token<'a> {
        self.tokens.get(self.pos).copied().unwrap_or(Token::End)
    }

    fn next(&mut self) -> Token<'a> {
        let t = self.peek();
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        t
    }

    fn parse(mut self) -> Result<LabelSelector, SelectorProblem> {
        let mut requirements = Vec::new();
        loop {
            match self.peek() {
                Token::Word(_) | Token::Not => {
                    requirements.push(self.requirement()?);
                    match self.next() {
                        Token::End => break,
                        Token::Comma => {
                            let t = self.peek();
                            if !matches!(t, Token::Word(_) | Token::Not) {
                                return Err(syntax(format!("found {t}, expected a key or '!key' after ','")));
                            }
                        }
                        t => return Err(syntax(format!("found {t}, expected ',' or end of string"))),
                    }
                }
                Token::End => break,
                t => return Err(syntax(format!("found {t}, expected '!', a key or end of string"))),
            }
        }
        Ok(LabelSelector { requirements })
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorProblem> {
        let negated = self.peek() == Token::Not;
        if negated {
            self.next();
        }
        let key = match self.next() {
            Token::Word(w) => w,
            t => return Err(syntax(format!("found {t}, expected a label key"))),
        };
        if let Err(reason) = check_qualified_name(key) {
            return Err(SelectorProblem::InvalidKey { key: key.to_owned(), reason });
        }
        let bare = matches!(self.peek(), Token::End | Token::Comma);
        if negated || bare {
            let operator = if negated { Operator::DoesNotExist } else { Operator::Exists };
            return Ok(Requirement { key: key.to_owned(), operator, values: Vec::new() });
        }
        let (operator, values) = match self.next() {
            Token::Word("in") => (Operator::In, self.value_set(key)?),
            Token::Word("notin") => (Operator::NotIn, self.value_set(key)?),
            Token::Eq | Token::DoubleEq => (Operator::In, vec![self.exact_value(key)?]),
            Token::NotEq => (Operator::NotIn, vec![self.exact_value(key)?]),
            Token::Gt => return Err(SelectorProblem::UnsupportedOperator(">")),
            Token::Lt => return Err(SelectorProblem::UnsupportedOperator("<")),
            t => {
                return Err(syntax(format!(
                    "found {t} after key {key:?}, expected one of: in, notin, =, ==, !="
                )));
            }
        };
        let mut values = values;
        for v in &values {
            if let Err(reason) = check_label_value(v) {
                return Err(SelectorProblem::InvalidValue { key: key.to_owned(), value: v.clone(), reason });
            }
        }
        values.sort();
        values.dedup();
        Ok(Requirement { key: key.to_owned(), operator, values })
    }

    /// `( v1, v2, ... )`; empty entries (`(a,,b)`, `(a,)`, `()`) mean the empty value, as in Kubernetes.
    fn value_set(&mut self, key: &str) -> Result<Vec<String>, SelectorProblem> {
        match self.next() {
            Token::Open => {}
            t => return Err(syntax(format!("found {t}, expected '(' to open the values of {key:?}"))),
        }
        let mut values = Vec::new();
        let mut expect_value = true;
        loop {
            match self.next() {
                Token::Word(w) if expect_value => {
                    values.push(w.to_owned());
                    expect_value = false;
                }
                Token::Comma => {
                    if expect_value {
                        values.push(String::new());
                    }
                    expect_value = true;
                }
                Token::Close => {
                    if expect_value {
                        values.push(String::new());
                    }
                    return Ok(values);
                }
                Token::End => return Err(syntax(format!("missing ')' after the values of {key:?}"))),
                t if expect_value => {
                    return Err(syntax(format!(
                        "found {t} in the values of {key:?}, expected a value, ',' or ')'"
                    )));
                }
                t => return Err(syntax(format!("found {t} in the values of {key:?}, expected ',' or ')'"))),
            }
        }
    }

    /// The value after `=`, `==` or `!=`; nothing before `,` or the end means the empty value.
    fn exact_value(&mut self, key: &str) -> Result<String, SelectorProblem> {
        match self.peek() {
            Token::End | Token::Comma => Ok(String::new()),
            Token::Word(w) => {
                self.next();
                Ok(w.to_owned())
            }
            t => Err(syntax(format!("found {t}, expected a value for {key:?}"))),
        }
    }
}

fn syntax(message: String) -> SelectorProblem {
    SelectorProblem::Syntax(message)
}

// ---- Kubernetes name validation ---------------------------------------------------------------------------

fn is_alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, the name part of label keys and non-empty label values.
fn is_qualified_word(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && is_alnum(b[0])
        && is_alnum(b[b.len() - 1])
        && b.iter().all(|&c| is_alnum(c) || matches!(c, b'-' | b'_' | b'.'))
}

const QUALIFIED_WORD_RULE: &str = concat!(
    "must consist of alphanumeric characters, '-', '_' or '.', ",
    "and must start and end with an alphanumeric character"
);

/// A lowercase RFC 1123 label: a namespace name.
pub(crate) fn check_dns1123_label(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if s.len() > 63 {
        return Err("must be no more than 63 characters".to_owned());
    }
    let b = s.as_bytes();
    let ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    if ok(b[0]) && ok(b[b.len() - 1]) && b.iter().all(|&c| ok(c) || c == b'-') {
        Ok(())
    } else {
        Err("must consist of lower case alphanumeric characters or '-', and must start and end with an \
             alphanumeric character"
            .to_owned())
    }
}

fn check_dns1123_subdomain(s: &str) -> Result<(), String> {
    if s.len() > 253 {
        return Err("must be no more than 253 characters".to_owned());
    }
    let ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let valid = s.split('.').all(|part| {
        let b = part.as_bytes();
        !b.is_empty() && ok(b[0]) && ok(b[b.len() - 1]) && b.iter().all(|&c| ok(c) || c == b'-')
    });
    if valid {
        Ok(())
    } else {
        Err("must be a lowercase RFC 1123 subdomain: lower case alphanumeric characters, '-' or '.', \
             starting and ending with an alphanumeric character"
            .to_owned())
    }
}

/// A label key: `[prefix/]name`, prefix a DNS subdomain, name at most 63 characters.
fn check_qualified_name(key: &str) -> Result<(), String> {
    let mut parts = key.split('/');
    let (prefix, name) = match (parts.next(), parts.next(), parts.next()) {
        (Some(name), None, _) => (None, name),
        (Some(prefix), Some(name), None) => (Some(prefix), name),
        _ => {
            return Err(
                "may contain at most one '/' (an optional DNS subdomain prefix, then a name)".to_owned()
            );
        }
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            return Err("has an empty prefix before '/'".to_owned());
        }
        check_dns1123_subdomain(prefix).map_err(|e| format!("has an invalid prefix: it {e}"))?;
    }
    if name.is_empty() {
        return Err("has an empty name part".to_owned());
    }
    if name.len() > 63 {
        return Err("has a name part longer than 63 characters".to_owned());
    }
    if !is_qualified_word(name) {
        return Err(format!("has an invalid name part: it {QUALIFIED_WORD_RULE}"));
    }
    Ok(())
}

fn check_label_value(value: &str) -> Result<(), String> {
    if value.len() > 63 {
        return Err("must be no more than 63 characters".to_owned());
    }
    if !value.is_empty() && !is_qualified_word(value) {
        return Err(format!("{QUALIFIED_WORD_RULE} (or be empty)"));
    }
    Ok(())
}
