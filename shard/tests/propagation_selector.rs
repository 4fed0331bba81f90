//! Selector annotations and built-in exclusions (spec §6.3, §6.4).

mod propagation_model;

use hnc_api::SyncMode::{self, AllowPropagate, Ignore, Propagate, Remove};
use hnc_api::keys::annotations::{ALL, NONE, OPENSHIFT_DESCRIPTION, SELECT, TREE_SELECT};
use hnc_shard::propagation::selector::Operator;
use hnc_shard::propagation::{
    PropagationRules, SelectorProblem, parse_bool_annotation, parse_select, parse_tree_select,
    should_propagate, validate_selector_annotation,
};
use propagation_model::*;
use serde_json::{Value, json};

fn matches(selector: &str, pairs: &[(&str, &str)]) -> bool {
    parse_select(selector).expect("parses").matches(&labels_of(pairs))
}

fn select_problem(selector: &str) -> SelectorProblem {
    parse_select(selector).expect_err("must not parse").problem
}

#[test]
fn select_every_operator() {
    assert!(matches("a", &[("a", "")]) && !matches("a", &[("b", "1")]));
    assert!(matches("!a", &[("b", "1")]) && !matches("!a", &[("a", "1")]));
    assert!(matches("a=1", &[("a", "1")]) && !matches("a=1", &[("a", "2")]) && !matches("a=1", &[]));
    assert!(matches("a==1", &[("a", "1")]) && !matches("a==1", &[("a", "2")]));
    assert!(matches("a!=1", &[("a", "2")]) && matches("a!=1", &[]) && !matches("a!=1", &[("a", "1")]));
    assert!(
        matches("a in (1, 2)", &[("a", "2")])
            && !matches("a in (1,2)", &[("a", "3")])
            && !matches("a in (1)", &[])
    );
    assert!(
        matches("a notin (1,2)", &[("a", "3")])
            && matches("a notin (1)", &[])
            && !matches("a notin (1,2)", &[("a", "1")])
    );
}

#[test]
fn select_comma_is_and_and_blank_is_empty() {
    assert!(matches("a=1, !b, c in (x)", &[("a", "1"), ("c", "x")]));
    assert!(!matches("a=1, !b", &[("a", "1"), ("b", "")]));
    assert!(parse_select("").expect("parses").is_empty());
    assert!(parse_select("  \t").expect("parses").is_empty());
    assert_eq!(parse_select("x,y").expect("parses").requirements().len(), 2);
}

#[test]
fn select_edge_forms_match_kubernetes() {
    // Empty values: `a=` and `a in ()` mean the empty string; `in`/`notin` are ordinary words outside
    // operators.
    assert!(matches("a=", &[("a", "")]) && !matches("a=", &[("a", "x")]));
    assert!(matches("a in ()", &[("a", "")]));
    assert!(matches("a in (x,)", &[("a", "")]) && matches("a in (x,)", &[("a", "x")]));
    assert!(matches("in in (in, notin)", &[("in", "notin")]));
    assert!(matches("example.com/team=a_b.c-d", &[("example.com/team", "a_b.c-d")]));
    let selector = parse_select("k notin (b,a,b)").expect("parses");
    let r = &selector.requirements()[0];
    assert_eq!(
        (r.key(), r.operator(), r.values()),
        ("k", Operator::NotIn, &["a".to_owned(), "b".to_owned()][..])
    );
}

#[test]
fn select_errors_name_the_problem() {
    for bad in ["a in (b", "a in b", "=a", ", a", "a,", "a b", "a=(", "!a=b", "a in (b c)", "a = b = c"] {
        let err = parse_select(bad).expect_err(bad);
        assert!(matches!(err.problem, SelectorProblem::Syntax(_)), "{bad}: {err}");
        assert!(err.to_string().contains(SELECT) && err.to_string().contains(bad), "{err}");
    }
    assert_eq!(select_problem("a>1"), SelectorProblem::UnsupportedOperator(">"));
    assert_eq!(select_problem("a<1"), SelectorProblem::UnsupportedOperator("<"));
    assert!(matches!(select_problem("-a"), SelectorProblem::InvalidKey { .. }));
    assert!(matches!(select_problem("a/b/c"), SelectorProblem::InvalidKey { .. }));
    assert!(matches!(select_problem("Bad_Prefix/a"), SelectorProblem::InvalidKey { .. }));
    assert!(matches!(select_problem(&"k".repeat(64)), SelectorProblem::InvalidKey { .. }));
    assert!(matches!(select_problem("a=b$"), SelectorProblem::InvalidValue { .. }));
    assert!(matches!(select_problem("a in (ok, -bad)"), SelectorProblem::InvalidValue { .. }));
    assert!(matches!(select_problem("é"), SelectorProblem::InvalidKey { .. }));
}

#[test]
fn tree_select_forms() {
    let tree = labels_of(&[("child.tree.hnc.x-k8s.io/depth", "0"), ("parent.tree.hnc.x-k8s.io/depth", "1")]);
    let sel = |v: &str| parse_tree_select(v).expect("parses");
    assert!(sel("child").matches(&tree) && !sel("other").matches(&tree));
    assert!(!sel("!child").matches(&tree) && sel("!other").matches(&tree));
    assert!(sel(" parent , !other ").matches(&tree) && !sel("parent, !child").matches(&tree));
    assert!(sel("").is_empty() && sel("").matches(&tree));
}

#[test]
fn tree_select_errors_never_panic() {
    let problem = |v: &str| parse_tree_select(v).expect_err(v).problem;
    assert_eq!(problem("a,"), SelectorProblem::EmptySegment { position: 2 });
    assert_eq!(problem(",a"), SelectorProblem::EmptySegment { position: 1 });
    assert_eq!(problem(" "), SelectorProblem::EmptySegment { position: 1 });
    assert_eq!(problem("a,,b"), SelectorProblem::EmptySegment { position: 2 });
    assert_eq!(problem("a, b"), SelectorProblem::MultipleNonNegated(vec!["a".into(), "b".into()]));
    assert!(matches!(problem("!"), SelectorProblem::InvalidNamespaceName { .. }));
    assert!(matches!(problem("Upper"), SelectorProblem::InvalidNamespaceName { .. }));
    assert!(matches!(problem("! a"), SelectorProblem::InvalidNamespaceName { .. }));
    let message = parse_tree_select("a, b").expect_err("two").to_string();
    assert!(
        message.contains(TREE_SELECT) && message.contains("should only have one non-negated namespace"),
        "{message}"
    );
}

#[test]
fn bool_annotations_follow_go_parse_bool() {
    for yes in ["1", "t", "T", "TRUE", "true", "True"] {
        assert_eq!(parse_bool_annotation(NONE, yes), Ok(true));
    }
    for no in ["", "0", "f", "F", "FALSE", "false", "False"] {
        assert_eq!(parse_bool_annotation(ALL, no), Ok(false));
    }
    for bad in ["yes", "tRUE", " true", "2"] {
        let err = parse_bool_annotation(ALL, bad).expect_err(bad);
        assert_eq!(err.problem, SelectorProblem::NotABool);
        assert!(err.to_string().contains(ALL));
    }
    assert!(validate_selector_annotation(NONE, "nope").is_err());
    assert!(validate_selector_annotation("example.com/other", "a in (").is_ok());
}

fn decide(object: &Value, dest: &[(&str, &str)], mode: SyncMode) -> bool {
    should_propagate(object, &labels_of(dest), mode, &PropagationRules::default()).expect("no selector error")
}

#[test]
fn modes_and_opt_in() {
    let plain = mk_src("a", "r");
    assert!(decide(&plain, &[], Propagate));
    assert!(
        !decide(&plain, &[], AllowPropagate) && !decide(&plain, &[], Remove) && !decide(&plain, &[], Ignore)
    );
    assert!(decide(&with_annotation(plain.clone(), ALL, "true"), &[], AllowPropagate));
    assert!(decide(&with_annotation(plain.clone(), SELECT, "env"), &[("env", "x")], AllowPropagate));
    assert!(decide(
        &with_annotation(plain.clone(), TREE_SELECT, "b"),
        &[("b.tree.hnc.x-k8s.io/depth", "1")],
        AllowPropagate
    ));
    assert!(
        !decide(&with_annotation(plain.clone(), SELECT, " "), &[], AllowPropagate),
        "a blank select opts nothing in"
    );
    assert!(!decide(&with_annotation(plain, ALL, "true"), &[], Remove));
}

#[test]
fn combinations_none_beats_all_and_selectors_intersect() {
    let both = with_annotation(with_annotation(mk_src("a", "r"), NONE, "true"), ALL, "true");
    assert!(!decide(&both, &[], Propagate) && !decide(&both, &[], AllowPropagate));
    let sel_tree = with_annotation(with_annotation(mk_src("a", "r"), SELECT, "env=prod"), TREE_SELECT, "!x");
    assert!(decide(&sel_tree, &[("env", "prod")], Propagate));
    assert!(!decide(&sel_tree, &[("env", "prod"), ("x.tree.hnc.x-k8s.io/depth", "2")], Propagate));
    assert!(!decide(&sel_tree, &[("env", "dev")], Propagate));
}

#[test]
fn errors_surface_in_upstream_order() {
    let rules = PropagationRules::default();
    let broken = with_annotation(with_annotation(mk_src("a", "r"), TREE_SELECT, "a,"), NONE, "maybe");
    let err = should_propagate(&broken, &labels_of(&[]), Propagate, &rules)
        .expect_err("treeSelect is checked first");
    assert_eq!(err.annotation, TREE_SELECT);
    // A select that does not match decides before a broken treeSelect is looked at, as upstream.
    let shadowed = with_annotation(with_annotation(mk_src("a", "r"), SELECT, "env"), TREE_SELECT, "a,");
    assert_eq!(should_propagate(&shadowed, &labels_of(&[]), Propagate, &rules), Ok(false));
}

#[test]
fn built_in_exclusions() {
    let secret = |ty: &str| {
        let meta = json!({"name": "s", "namespace": "a"});
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": ty})
    };
    assert!(!decide(&secret("helm.sh/release.v1"), &[], Propagate));
    assert!(
        !decide(&with_annotation(secret("helm.sh/release.v1"), ALL, "true"), &[], Propagate),
        "exclusions beat all"
    );
    assert!(!decide(&secret("kubernetes.io/service-account-token"), &[], Propagate));
    assert!(decide(&secret("Opaque"), &[], Propagate));
    assert!(!decide(&mk_cm("a", "istio-ca-root-cert"), &[], Propagate));
    assert!(!decide(&mk_cm("a", "kube-root-ca.crt"), &[], Propagate));
    assert!(decide(&mk_cm("a", "other"), &[], Propagate));
    assert!(!decide(&with_annotation(mk_src("a", "r"), OPENSHIFT_DESCRIPTION, ""), &[], Propagate));
    assert!(!decide(&with_finalizer(mk_src("a", "r")), &[], Propagate));
    let rules = PropagationRules {
        nopropagation_labels: vec![
            ("cattle.io/creator".into(), "norman".into()),
            ("empty".into(), String::new()),
        ],
        ..Default::default()
    };
    let check = |o: &Value| should_propagate(o, &labels_of(&[]), Propagate, &rules).expect("parses");
    assert!(!check(&with_label(mk_src("a", "r"), "cattle.io/creator", "norman")));
    assert!(check(&with_label(mk_src("a", "r"), "cattle.io/creator", "rancher")));
    assert!(!check(&with_label(mk_src("a", "r"), "empty", "")), "empty values match exactly");
    assert!(check(&mk_src("a", "r")), "a missing key never matches an empty value");
}

#[test]
fn malformed_objects_do_not_panic() {
    let rules = PropagationRules::default();
    for odd in
        [json!(null), json!([1]), json!({"metadata": 3}), json!({"metadata": {"annotations": {SELECT: 7}}})]
    {
        assert_eq!(should_propagate(&odd, &labels_of(&[]), Propagate, &rules), Ok(true), "{odd}");
    }
}
