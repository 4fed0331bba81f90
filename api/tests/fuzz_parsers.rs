//! Bad input never panics the API crate's parsers: label selectors, Kubernetes names, tree-label depths and
//! the custom resources decoded from JSON. Each property runs a bounded number of cases in CI; a longer run
//! sets `PROPTEST_CASES` (see docs/testing.md).

use std::collections::BTreeMap;

use hnc_api::keys::labels::{self, MAX_TREE_DEPTH, parse_tree_depth, shifted_tree_depth};
use hnc_api::label_selector::{LabelSelector, Operator};
use hnc_api::quantity::{self, canonical};
use hnc_api::validation::{
    dns1123_label_errors, dns1123_subdomain_errors, label_value_errors, path_segment_errors,
    qualified_name_errors,
};
use hnc_api::{HNCConfiguration, HierarchicalResourceQuota, HierarchyConfiguration, SubnamespaceAnchor};
use proptest::prelude::*;
use serde_json::Value;

/// `cases` per property, unless `PROPTEST_CASES` asks for another number.
fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() { default.cases } else { cases };
    ProptestConfig { cases, ..default }
}

/// Quantity-shaped text: signs, fractions, every suffix, huge and tiny values, and junk after the number.
fn quantity_text() -> impl Strategy<Value = String> {
    let sign = prop_oneof![Just(""), Just("-"), Just("+")];
    let number = prop_oneof!["[0-9]{0,4}", "[0-9]{0,3}\\.[0-9]{0,12}", "[0-9]{30,45}", "0\\.0{0,60}[1-9]"];
    let suffix = prop_oneof![
        "(n|u|m|k|M|G|T|P|E)?",
        "(Ki|Mi|Gi|Ti|Pi|Ei)",
        "[eE]-?[0-9]{1,3}",
        "[eE][0-9]{10,12}",
        ".{0,2}"
    ];
    (sign, number, suffix).prop_map(|(s, n, x)| format!("{s}{n}{x}"))
}

/// Text built from the selector grammar's pieces, blanks, and a few bytes that are not ASCII.
fn selector_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("=".to_owned()),
        Just("==".to_owned()),
        Just("!=".to_owned()),
        Just("!".to_owned()),
        Just(",".to_owned()),
        Just("(".to_owned()),
        Just(")".to_owned()),
        Just(">".to_owned()),
        Just("<".to_owned()),
        Just(" in ".to_owned()),
        Just(" notin ".to_owned()),
        Just(" ".to_owned()),
        Just("\t".to_owned()),
        Just("/".to_owned()),
        Just("é".to_owned()),
        Just("\u{0}".to_owned()),
        "[a-z0-9._-]{0,5}",
        "[A-Za-z0-9./_-]{60,70}",
    ];
    prop::collection::vec(piece, 0..14).prop_map(|pieces| pieces.concat())
}

fn label_key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z]([a-z0-9_.-]{0,6}[a-z0-9])?",
        "[a-z]{1,4}(\\.[a-z]{1,4}){0,2}/[A-Za-z]([A-Za-z0-9_.-]{0,6}[A-Za-z0-9])?",
        Just("in".to_owned()),
        Just("notin".to_owned()),
    ]
}

fn label_value() -> impl Strategy<Value = String> {
    prop_oneof![Just(String::new()), "[A-Za-z0-9]([A-Za-z0-9_.-]{0,6}[A-Za-z0-9])?", Just("in".to_owned())]
}

/// A requirement as it is meant (operator, key, values), and one of the ways to write it.
#[derive(Clone, Debug)]
struct Written {
    key: String,
    operator: Operator,
    values: Vec<String>,
    text: String,
}

fn written_requirement() -> impl Strategy<Value = Written> {
    (label_key(), 0..6usize, prop::collection::vec(label_value(), 1..4), any::<bool>()).prop_map(
        |(key, form, values, spaced)| {
            let sp = if spaced { " " } else { "" };
            let (operator, values, text) = match form {
                0 => (Operator::Exists, vec![], key.clone()),
                1 => (Operator::DoesNotExist, vec![], format!("!{sp}{key}")),
                2 => (Operator::In, vec![values[0].clone()], format!("{key}{sp}={sp}{}", values[0])),
                3 => (Operator::In, vec![values[0].clone()], format!("{key}{sp}=={sp}{}", values[0])),
                4 => (Operator::NotIn, vec![values[0].clone()], format!("{key}{sp}!={sp}{}", values[0])),
                _ => {
                    let text = format!("{key} in{sp}({sp}{}{sp})", values.join(&format!("{sp},{sp}")));
                    (Operator::In, values, text)
                }
            };
            Written { key, operator, values, text }
        },
    )
}

fn labels_strategy() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(label_key(), label_value(), 0..5)
}

/// What a written requirement means, evaluated directly.
fn reference_matches(w: &Written, labels: &BTreeMap<String, String>) -> bool {
    let value = labels.get(&w.key);
    match w.operator {
        Operator::Exists => value.is_some(),
        Operator::DoesNotExist => value.is_none(),
        Operator::In => value.is_some_and(|v| w.values.contains(v)),
        Operator::NotIn => !value.is_some_and(|v| w.values.contains(v)),
    }
}

/// JSON of any shape, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("apiVersion".to_owned()),
                    Just("kind".to_owned()),
                    Just("metadata".to_owned()),
                    Just("spec".to_owned()),
                    Just("status".to_owned()),
                    Just("name".to_owned()),
                    Just("parent".to_owned()),
                    Just("resources".to_owned()),
                    ".{0,8}"
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid object of each kind with one field replaced by `value`, at one of a few paths.
fn mutated_object(kind: usize, path: usize, value: Value) -> Value {
    let mut object = match kind {
        0 => serde_json::json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HierarchyConfiguration",
            "metadata": {"name": "hierarchy", "namespace": "a"},
            "spec": {"parent": "p", "allowCascadingDeletion": true, "labels": [{"key": "k", "value": "v"}]},
            "status": {"children": ["c"], "conditions": []}}),
        1 => serde_json::json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "SubnamespaceAnchor",
            "metadata": {"name": "c", "namespace": "a"}, "spec": {"labels": []}, "status": {"status": "Ok"}}),
        2 => serde_json::json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HNCConfiguration",
            "metadata": {"name": "config"}, "spec": {"resources": [{"resource": "secrets", "mode": "Propagate"}]}}),
        _ => serde_json::json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HierarchicalResourceQuota",
            "metadata": {"name": "q", "namespace": "a"}, "spec": {"hard": {"pods": "10"}}}),
    };
    let pointer =
        ["/metadata", "/metadata/name", "/spec", "/status", "/spec/labels", "/spec/resources", ""][path];
    match object.pointer_mut(pointer) {
        Some(slot) if !pointer.is_empty() => *slot = value,
        _ => object["spec"] = serde_json::json!({"parent": value, "resources": [{"mode": 7}], "hard": []}),
    }
    object
}

/// Decoding never panics; what decodes re-encodes to JSON that decodes to the same object again.
fn decodes_stably<T>(input: &Value) -> Result<(), TestCaseError>
where
    T: serde::de::DeserializeOwned + serde::Serialize,
{
    if let Ok(typed) = serde_json::from_value::<T>(input.clone()) {
        let encoded = serde_json::to_value(&typed).expect("serializes");
        let again: T = serde_json::from_value(encoded.clone())
            .map_err(|e| TestCaseError::fail(format!("re-encoded object does not decode: {e}")))?;
        prop_assert_eq!(serde_json::to_value(&again).expect("serializes"), encoded);
    }
    Ok(())
}

const DNS1123_LABEL: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";
const DNS1123_SUBDOMAIN: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";
const QUALIFIED_WORD: &str = "^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$";

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn any_selector_text_parses_or_is_refused_and_parses_back_from_its_canonical_text(
        text in prop_oneof![selector_text(), any::<String>()],
        labels in labels_strategy(),
    ) {
        if let Ok(selector) = LabelSelector::parse(&text) {
            let canonical = selector.to_string();
            let reparsed = LabelSelector::parse(&canonical);
            prop_assert_eq!(reparsed, Ok(selector.clone()), "canonical {:?}", canonical);
            selector.matches(&labels);
        }
    }

    #[test]
    fn written_selectors_mean_what_they_say(
        requirements in prop::collection::vec(written_requirement(), 0..5),
        spaced in any::<bool>(),
        labels in labels_strategy(),
    ) {
        let text = requirements.iter().map(|w| w.text.as_str()).collect::<Vec<_>>().join(if spaced { " , " } else { "," });
        let selector = LabelSelector::parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        prop_assert_eq!(selector.requirements().len(), requirements.len());
        for (parsed, written) in selector.requirements().iter().zip(&requirements) {
            let mut values = written.values.clone();
            values.sort();
            values.dedup();
            prop_assert_eq!((parsed.key(), parsed.operator(), parsed.values()), (written.key.as_str(), written.operator, &values[..]));
        }
        let want = requirements.iter().all(|w| reference_matches(w, &labels));
        prop_assert_eq!(selector.matches(&labels), want, "{:?} on {:?}", text, labels);
        prop_assert_eq!(LabelSelector::parse(&selector.to_string()), Ok(selector));
    }

    #[test]
    fn name_validators_agree_with_the_api_servers_regexes(
        s in prop_oneof!["[a-z0-9.-]{0,8}", "[A-Za-z0-9./_ -]{0,12}", "[a-z]{60,70}", any::<String>()],
    ) {
        let label = regex::Regex::new(DNS1123_LABEL).unwrap();
        let subdomain = regex::Regex::new(DNS1123_SUBDOMAIN).unwrap();
        let word = regex::Regex::new(QUALIFIED_WORD).unwrap();
        prop_assert_eq!(dns1123_label_errors(&s).is_empty(), label.is_match(&s) && s.len() <= 63);
        prop_assert_eq!(dns1123_subdomain_errors(&s).is_empty(), subdomain.is_match(&s) && s.len() <= 253);
        prop_assert_eq!(label_value_errors(&s).is_empty(), s.is_empty() || (word.is_match(&s) && s.len() <= 63));
        let qualified = match s.split_once('/') {
            Some((prefix, name)) => !name.contains('/') && subdomain.is_match(prefix) && prefix.len() <= 253
                && word.is_match(name) && name.len() <= 63,
            None => word.is_match(&s) && s.len() <= 63,
        };
        prop_assert_eq!(qualified_name_errors(&s).is_empty(), qualified);
        path_segment_errors(&s);
    }

    #[test]
    fn a_tree_depth_is_a_small_decimal_number_or_nothing(
        value in prop_oneof!["[0-9]{0,12}", "[-+ 0-9a-z.]{0,6}", any::<String>(), any::<u32>().prop_map(|n| n.to_string())],
        by in prop_oneof![0..4u32, any::<u32>()],
    ) {
        match parse_tree_depth(&value) {
            Some(depth) => {
                prop_assert!(depth <= MAX_TREE_DEPTH);
                prop_assert!(value.bytes().all(|b| b.is_ascii_digit()));
                let significant = value.trim_start_matches('0');
                prop_assert_eq!(depth.to_string(), if significant.is_empty() { "0" } else { significant });
            }
            None => {
                let digits = !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit());
                // Only digits that state more than the bound are refused.
                let significant = value.trim_start_matches('0');
                let too_deep = significant.len() > 7 || significant.parse::<u32>().is_ok_and(|d| d > MAX_TREE_DEPTH);
                prop_assert!(!digits || too_deep, "{:?} refused", value);
            }
        }
        match shifted_tree_depth(&value, by) {
            Some(shifted) => {
                prop_assert!(shifted <= MAX_TREE_DEPTH);
                prop_assert_eq!(Some(shifted), parse_tree_depth(&value).map(|d| d + by));
            }
            None => prop_assert!(parse_tree_depth(&value).is_none_or(|d| u64::from(d) + u64::from(by) > u64::from(MAX_TREE_DEPTH))),
        }
        let key = labels::tree_label(&value);
        prop_assert_eq!(labels::tree_label_ancestor(&key), Some(value.as_str()).filter(|v| !v.is_empty()));
    }

    #[test]
    fn custom_resources_decode_from_any_json_without_panicking(
        value in json_value(),
        kind in 0..4usize,
        path in 0..7usize,
    ) {
        let mutated = mutated_object(kind, path, value.clone());
        for input in [&value, &mutated] {
            decodes_stably::<HierarchyConfiguration>(input)?;
            decodes_stably::<SubnamespaceAnchor>(input)?;
            decodes_stably::<HNCConfiguration>(input)?;
            decodes_stably::<HierarchicalResourceQuota>(input)?;
        }
        if let Some(state) = value.as_str()
            && let Some(parsed) = hnc_api::anchor::AnchorState::parse(state)
        {
            prop_assert_eq!(parsed.as_str(), state);
        }
    }
}

#[test]
fn the_bound_of_a_tree_depth_is_inclusive() {
    assert_eq!(parse_tree_depth(&MAX_TREE_DEPTH.to_string()), Some(MAX_TREE_DEPTH));
    assert_eq!(parse_tree_depth(&(MAX_TREE_DEPTH + 1).to_string()), None);
    assert_eq!(parse_tree_depth(&u32::MAX.to_string()), None);
    assert_eq!(parse_tree_depth(&u64::MAX.to_string()), None);
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn quantities_print_canonically_or_unchanged(text in prop_oneof![quantity_text(), any::<String>()]) {
        let once = canonical(&text);
        prop_assert_eq!(canonical(&once), once.clone(), "{:?} → {:?}", text, once);
    }

    #[test]
    fn quantity_arithmetic_is_exact_or_refused(a in quantity_text(), b in quantity_text()) {
        let (Some(a), Some(b)) = (quantity::parse(&a), quantity::parse(&b)) else { return Ok(()) };
        if let Some(sum) = a.checked_add(b) {
            let back = sum.checked_sub(b).expect("the sum's exponent is one both fit at");
            prop_assert_eq!(back.checked_cmp(&a), Some(std::cmp::Ordering::Equal));
        }
        if let (Some(ab), Some(ba)) = (a.checked_cmp(&b), b.checked_cmp(&a)) {
            prop_assert_eq!(ab, ba.reverse());
        }
    }
}
