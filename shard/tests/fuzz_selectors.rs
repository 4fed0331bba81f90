//! Bad input never panics propagation's parsers: the four selector annotations, and source objects of any
//! shape (metadata fields of the wrong type, garbage annotations) through the policy, the canonical form, the
//! hashes and the copy. Each property runs a bounded number of cases in CI; a longer run sets
//! `PROPTEST_CASES` (see docs/testing.md).

use std::collections::BTreeMap;

use hnc_api::SyncMode;
use hnc_api::keys::annotations::{ALL, NONE, SELECT, SELECTORS, TREE_SELECT};
use hnc_api::validation::dns1123_label_errors;
use hnc_shard::propagation::{
    PropagationPolicy, PropagationRules, SelectorProblem, SourceEntry, TypeKey, build_copy, canonical,
    clean_source, content_hash, parse_bool_annotation, parse_select, parse_tree_select, should_propagate,
    validate_selector_annotation,
};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// `cases` per property, unless `PROPTEST_CASES` asks for another number.
fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() { default.cases } else { cases };
    ProptestConfig { cases, ..default }
}

/// treeSelect-like text: names, `!`, commas, blanks, and characters no name may hold.
fn tree_select_text() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        "[a-z0-9-]{0,6}",
        Just("!".to_owned()),
        Just(",".to_owned()),
        Just(" ".to_owned()),
        Just("\u{a0}".to_owned()),
        Just("é".to_owned()),
        Just("A".to_owned()),
        Just(".".to_owned()),
        "[a-z]{62,66}",
    ];
    prop::collection::vec(piece, 0..10).prop_map(|p| p.concat())
}

fn annotation_value() -> impl Strategy<Value = String> {
    prop_oneof![
        tree_select_text(),
        "[a-z=!(), ]{0,16}",
        Just("true".to_owned()),
        Just("True".to_owned()),
        Just("tRuE".to_owned()),
        Just("1".to_owned()),
        any::<String>(),
    ]
}

fn dest_labels() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        prop_oneof![
            "[a-c]\\.tree\\.hnc\\.x-k8s\\.io/depth",
            "[a-c]",
            Just("hnc.x-k8s.io/included-namespace".to_owned())
        ],
        prop_oneof!["[0-9]{1,3}", Just(String::new()), Just("4294967295".to_owned()), ".{0,4}"],
        0..6,
    )
}

/// JSON of any shape, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,10}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(".{0,6}", inner, 0..5)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A source object: a valid Role-like object whose metadata fields are sometimes replaced by junk.
fn source_object() -> impl Strategy<Value = Value> {
    let annotations = prop::collection::btree_map(
        prop_oneof![Just(SELECT), Just(TREE_SELECT), Just(NONE), Just(ALL), Just("openshift.io/description")],
        annotation_value(),
        0..4,
    );
    let junk = prop::option::weighted(0.3, (0..7usize, json_value()));
    (annotations, junk, prop_oneof![Just("Role"), Just("Secret"), Just("ConfigMap"), Just("RoleBinding")])
        .prop_map(|(annotations, junk, kind)| {
            let api_version = if kind.starts_with("Role") { "rbac.authorization.k8s.io/v1" } else { "v1" };
            let mut object = json!({
                "apiVersion": api_version, "kind": kind,
                "metadata": {"name": "r", "namespace": "a", "resourceVersion": "7",
                    "labels": {"app": "x"}, "annotations": annotations, "finalizers": []},
                "rules": [], "roleRef": {"kind": "Role", "name": "r"}, "type": "Opaque",
            });
            if let Some((at, value)) = junk {
                let field =
                    ["name", "namespace", "resourceVersion", "labels", "annotations", "finalizers", ""][at];
                match object["metadata"].as_object_mut() {
                    Some(meta) if !field.is_empty() => {
                        meta.insert(field.to_owned(), value);
                    }
                    _ => object["metadata"] = value,
                }
            }
            object
        })
}

fn mode() -> impl Strategy<Value = SyncMode> {
    prop_oneof![
        Just(SyncMode::Propagate),
        Just(SyncMode::AllowPropagate),
        Just(SyncMode::Remove),
        Just(SyncMode::Ignore)
    ]
}

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn tree_select_parses_to_at_most_one_valid_namespace_or_names_the_problem(
        value in prop_oneof![tree_select_text(), any::<String>()],
        labels in dest_labels(),
    ) {
        match parse_tree_select(&value) {
            Ok(selector) => {
                let segments: Vec<&str> = if value.is_empty() { vec![] } else { value.split(',').map(str::trim).collect() };
                prop_assert_eq!(selector.is_empty(), segments.is_empty());
                prop_assert!(segments.iter().filter(|s| !s.starts_with('!')).count() <= 1);
                for s in segments {
                    let name = s.strip_prefix('!').unwrap_or(s);
                    prop_assert!(dns1123_label_errors(name).is_empty(), "{:?}", s);
                }
                selector.matches(&labels);
            }
            Err(error) => {
                prop_assert_eq!(error.annotation, TREE_SELECT);
                prop_assert_eq!(&error.value, &value);
                prop_assert!(!error.to_string().is_empty());
                if let SelectorProblem::EmptySegment { position } = error.problem {
                    prop_assert!(position >= 1 && position <= value.split(',').count());
                }
            }
        }
    }

    #[test]
    fn every_selector_annotation_is_accepted_exactly_when_propagation_can_use_it(
        key in prop_oneof![Just(SELECT), Just(TREE_SELECT), Just(NONE), Just(ALL), Just("other")],
        value in annotation_value(),
        labels in dest_labels(),
        mode in mode(),
    ) {
        let verdict = validate_selector_annotation(key, &value);
        let parsed_ok = match key {
            SELECT => parse_select(&value).is_ok(),
            TREE_SELECT => parse_tree_select(&value).is_ok(),
            NONE | ALL => parse_bool_annotation(NONE, &value).is_ok(),
            _ => true,
        };
        prop_assert_eq!(verdict.is_ok(), parsed_ok);
        // What the webhook accepts never becomes a selector error when propagating, and the reverse.
        let object = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "x", "namespace": "a", "annotations": {key: value}}});
        let decided = should_propagate(&object, &labels, mode, &PropagationRules::default());
        prop_assert_eq!(decided.is_ok(), verdict.is_ok() || !SELECTORS.contains(&key), "{:?}", decided);
    }

    #[test]
    fn source_objects_of_any_shape_are_read_without_panicking(
        object in prop_oneof![4 => source_object(), 1 => json_value()],
        labels in dest_labels(),
        mode in mode(),
    ) {
        let rules = PropagationRules {
            unpropagated_labels: vec!["app".into()],
            unpropagated_annotations: vec![NONE.into()],
            nopropagation_labels: vec![("app".into(), "x".into())],
        };
        let ty = TypeKey::of_object(&object);
        let policy = PropagationPolicy::new(&ty, &object, &rules);
        let allowed = policy.allows(&labels, mode);
        // An error surfaces only from an annotation that does not parse (and, in upstream's order, only once
        // the checks before it did not already decide).
        prop_assert!(allowed.is_ok() || policy.error().is_some());
        if policy.error().is_none() {
            prop_assert!(allowed.is_ok());
        }
        let cleaned = clean_source(&object, &rules);
        let canonical_form = canonical(&cleaned);
        prop_assert_eq!(content_hash(&canonical_form), content_hash(&canonical(&canonical_form)));
        if let Ok(entry) = SourceEntry::new(&ty, &object, &rules) {
            prop_assert_eq!(entry.canonical(), canonical_form);
            let copy = build_copy(&entry, "dest");
            prop_assert_eq!(&copy["metadata"]["namespace"], &json!("dest"));
        }
    }
}

#[test]
fn tree_select_edge_cases_are_errors_not_panics() {
    for bad in [",", "a,", ",a", "a,,b", " , ", "!", "!!a", "a,b", "é", "A"] {
        assert!(parse_tree_select(bad).is_err(), "{bad:?}");
    }
    let ok = parse_tree_select(" a ,\u{a0}!b ").expect("blanks around segments are trimmed");
    let labels: BTreeMap<String, String> =
        [("a.tree.hnc.x-k8s.io/depth".to_owned(), "1".to_owned())].into_iter().collect();
    assert!(ok.matches(&labels));
    assert!(
        PropagationPolicy::new(&TypeKey::new("", "Secret"), &Value::Object(Map::new()), &Default::default())
            .error()
            .is_none()
    );
}
