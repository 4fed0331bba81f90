//! Kubernetes' label-selector grammar (`labels.Parse`, as `metav1.ParseToLabelSelector` uses it): the same
//! lexer and tokens, the same key and value validation ([`crate::validation`]); `>` and `<` are recognised and
//! refused, as label selectors on objects do not support them. `k!=v` is accepted, and a key repeated with `=`
//! is an AND of both requirements.
//!
//! One parser for every selector HNC reads: the `propagate.hnc.x-k8s.io/select` annotation (hnc-shard wraps
//! its errors with the annotation), and apisim's `labelSelector` query parameter and webhook object selectors.

use std::collections::BTreeMap;
use std::fmt;

use crate::validation::{label_value_errors, qualified_name_errors};

/// Why a label selector does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The selector does not follow the grammar.
    Syntax(String),
    /// A label key is not a valid qualified name.
    InvalidKey {
        /// The key as written.
        key: String,
        /// The API server's messages, joined with `; `.
        reason: String,
    },
    /// A label value is not valid.
    InvalidValue {
        /// The key the value is compared with.
        key: String,
        /// The value as written.
        value: String,
        /// The API server's messages, joined with `; `.
        reason: String,
    },
    /// `>` or `<`: they parse, but label selectors on objects do not support them.
    UnsupportedOperator(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Syntax(message) => f.write_str(message),
            ParseError::InvalidKey { key, reason } => write!(f, "label key {key:?}: {reason}"),
            ParseError::InvalidValue { key, value, reason } => {
                write!(f, "value {value:?} for key {key:?}: {reason}")
            }
            ParseError::UnsupportedOperator(op) => write!(
                f,
                "operator {op:?} isn't supported in label selectors; use =, ==, !=, in, notin, a key or !key"
            ),
        }
    }
}

impl std::error::Error for ParseError {}

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

/// A parsed label selector: requirements ANDed together. Empty selects everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Parses a label selector. An empty or blank one yields an empty selector.
    pub fn parse(input: &str) -> Result<Self, ParseError> {
        SelectParser::new(input).parse()
    }

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

/// The canonical text of a requirement: `k`, `!k`, `k=v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, values sorted.
/// It parses back to an equal requirement.
impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key = &self.key;
        match (self.operator, self.values.as_slice()) {
            (Operator::Exists, _) => write!(f, "{key}"),
            (Operator::DoesNotExist, _) => write!(f, "!{key}"),
            (Operator::In, [value]) => write!(f, "{key}={value}"),
            (Operator::NotIn, [value]) => write!(f, "{key}!={value}"),
            (Operator::In, values) => write!(f, "{key} in ({})", values.join(",")),
            (Operator::NotIn, values) => write!(f, "{key} notin ({})", values.join(",")),
        }
    }
}

/// The canonical text of a selector: its requirements in order, joined with `,`; empty for an empty selector.
/// It parses back to an equal selector.
impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, requirement) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{requirement}")?;
        }
        Ok(())
    }
}

// ---- the grammar ------------------------------------------------------------------------------------------

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

    fn parse(mut self) -> Result<LabelSelector, ParseError> {
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

    fn requirement(&mut self) -> Result<Requirement, ParseError> {
        let negated = self.peek() == Token::Not;
        if negated {
            self.next();
        }
        let key = match self.next() {
            Token::Word(w) => w,
            t => return Err(syntax(format!("found {t}, expected a label key"))),
        };
        let key_errors = qualified_name_errors(key);
        if !key_errors.is_empty() {
            return Err(ParseError::InvalidKey { key: key.to_owned(), reason: key_errors.join("; ") });
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
            Token::Gt => return Err(ParseError::UnsupportedOperator(">")),
            Token::Lt => return Err(ParseError::UnsupportedOperator("<")),
            t => {
                return Err(syntax(format!(
                    "found {t} after key {key:?}, expected one of: in, notin, =, ==, !="
                )));
            }
        };
        let mut values = values;
        for v in &values {
            let value_errors = label_value_errors(v);
            if !value_errors.is_empty() {
                let reason = value_errors.join("; ");
                return Err(ParseError::InvalidValue { key: key.to_owned(), value: v.clone(), reason });
            }
        }
        values.sort();
        values.dedup();
        Ok(Requirement { key: key.to_owned(), operator, values })
    }

    /// `( v1, v2, ... )`; empty entries (`(a,,b)`, `(a,)`, `()`) mean the empty value, as in Kubernetes.
    fn value_set(&mut self, key: &str) -> Result<Vec<String>, ParseError> {
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
    fn exact_value(&mut self, key: &str) -> Result<String, ParseError> {
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

fn syntax(message: String) -> ParseError {
    ParseError::Syntax(message)
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
            ("env notin(dev)", true),
            ("tier", true),
            ("!tier", false),
            ("! tier", false),
            ("!missing", true),
            ("a.tree.hnc.x-k8s.io/depth", true),
            ("env=prod,tier in (web),!missing", true),
            ("env=prod,tier=db", false),
            ("env=prod,env=dev", false),
            ("tier in (web,)", true),
            ("", true),
            ("  ", true),
        ] {
            assert_eq!(LabelSelector::parse(sel).unwrap().matches(&l), want, "{sel}");
        }
    }

    #[test]
    fn malformed_selectors_are_errors() {
        for bad in [
            "env in dev",
            "env in (",
            "bad key!=x",
            "k=bad value",
            "env oops (a)",
            "a,",
            ",a",
            "a=b=c",
            "(a)",
        ] {
            assert!(matches!(LabelSelector::parse(bad), Err(ParseError::Syntax(_))), "{bad}");
        }
        assert!(matches!(LabelSelector::parse("-a"), Err(ParseError::InvalidKey { .. })));
        assert!(matches!(LabelSelector::parse("a/b/c"), Err(ParseError::InvalidKey { .. })));
        assert!(matches!(LabelSelector::parse("a=b$"), Err(ParseError::InvalidValue { .. })));
        assert!(matches!(LabelSelector::parse("a in (ok, -bad)"), Err(ParseError::InvalidValue { .. })));
        assert_eq!(LabelSelector::parse("a>1"), Err(ParseError::UnsupportedOperator(">")));
        assert_eq!(LabelSelector::parse("a<1"), Err(ParseError::UnsupportedOperator("<")));
    }

    #[test]
    fn errors_name_the_problem_in_the_api_servers_words() {
        let key = LabelSelector::parse("Bad_Prefix/a").unwrap_err().to_string();
        assert!(
            key.starts_with("label key \"Bad_Prefix/a\": prefix part a lowercase RFC 1123 subdomain"),
            "{key}"
        );
        let value = LabelSelector::parse("a=-x").unwrap_err().to_string();
        assert!(value.starts_with("value \"-x\" for key \"a\": a valid label must be"), "{value}");
    }

    #[test]
    fn requirements_are_kept_in_order_with_sorted_values() {
        let s = LabelSelector::parse("k notin (b,a,b), !x").unwrap();
        let r = s.requirements();
        assert_eq!(
            (r[0].key(), r[0].operator(), r[0].values()),
            ("k", Operator::NotIn, &["a".to_owned(), "b".to_owned()][..])
        );
        assert_eq!((r[1].key(), r[1].operator()), ("x", Operator::DoesNotExist));
    }

    #[test]
    fn the_canonical_text_parses_back_to_the_same_selector() {
        for (input, canonical) in [
            ("", ""),
            ("  a ", "a"),
            ("! a", "!a"),
            ("a==1", "a=1"),
            ("a in (1)", "a=1"),
            ("a=", "a="),
            ("a notin ( b ,a,b)", "a notin (a,b)"),
            ("a in (x,)", "a in (,x)"),
            ("a in ()", "a="),
            ("in in (in, notin), x!=y", "in in (in,notin),x!=y"),
        ] {
            let parsed = LabelSelector::parse(input).unwrap();
            assert_eq!(parsed.to_string(), canonical, "{input:?}");
            assert_eq!(LabelSelector::parse(canonical).unwrap(), parsed, "{input:?}");
        }
    }
}
