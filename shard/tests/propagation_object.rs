//! Canonical form, copies and hashes (spec §6.5), and the forest cache's ingestion and indexes.

mod propagation_model;

use hnc_api::keys::annotations::SELECT;
use hnc_api::keys::labels::{INHERITED_FROM, MANAGED_BY};
use hnc_shard::propagation::{
    CopyOp, Dirty, ForestCache, PlannedWrite, PropagationRules, ResourceVersion, SourceEntry, TypeKey,
    TypeStats, build_copy, canonical, clean_source, content_hash,
};
use pretty_assertions::assert_eq;
use propagation_model::*;
use serde_json::{Map, Value, json};
use std::sync::Arc;

fn rules() -> PropagationRules {
    PropagationRules {
        unpropagated_labels: vec!["drop-me".into()],
        unpropagated_annotations: vec!["example.com/secret-note".into()],
        nopropagation_labels: vec![],
    }
}

fn noisy_source() -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {
            "name": "cm", "namespace": "a", "uid": "u1", "resourceVersion": "7", "generation": 2,
            "creationTimestamp": "2026-01-01T00:00:00Z",
            "finalizers": [], "ownerReferences": [], "managedFields": [],
            "labels": {"keep": "1", "drop-me": "x", "a.tree.hnc.x-k8s.io/depth": "0", MANAGED_BY: "helm"},
            "annotations": {
                "note": "n", "example.com/secret-note": "s", SELECT: "env", "hnc.x-k8s.io/x": "y",
            },
        },
        "data": {"k": "v"}, "status": {"phase": "whatever"},
    })
}

#[test]
fn cleaned_and_canonical_forms() {
    let cleaned = clean_source(&noisy_source(), &rules());
    assert_eq!(cleaned["metadata"]["labels"]["drop-me"], Value::Null);
    assert_eq!(cleaned["metadata"]["labels"][MANAGED_BY], json!("hnc.x-k8s.io"));
    assert_eq!(cleaned["metadata"]["annotations"]["example.com/secret-note"], Value::Null);
    assert_eq!(cleaned["metadata"]["uid"], json!("u1"), "cleaning keeps everything else");
    assert_eq!(
        canonical(&cleaned),
        json!({
            "data": {"k": "v"},
            "metadata": {
                "name": "cm",
                "labels": {"keep": "1", MANAGED_BY: "hnc.x-k8s.io"},
                "annotations": {"note": "n"},
            },
        })
    );
}

#[test]
fn unpropagated_managed_by_is_removed_after_being_set() {
    let rules = PropagationRules { unpropagated_labels: vec![MANAGED_BY.into()], ..Default::default() };
    assert_eq!(clean_source(&noisy_source(), &rules)["metadata"]["labels"][MANAGED_BY], Value::Null);
}

#[test]
fn copies_carry_namespace_and_inherited_from_only() {
    let entry = SourceEntry::new(&config_map(), &noisy_source(), &rules()).expect("valid");
    assert_eq!(entry.canonical(), canonical(&clean_source(&noisy_source(), &rules())));
    let copy = build_copy(&entry, "child");
    assert_eq!(copy["metadata"]["namespace"], json!("child"));
    assert_eq!(copy["metadata"]["labels"][INHERITED_FROM], json!("a"));
    assert_eq!(copy["metadata"]["labels"]["a.tree.hnc.x-k8s.io/depth"], Value::Null);
    assert_eq!(copy["metadata"]["annotations"][SELECT], Value::Null);
    assert!(copy.get("apiVersion").is_none() && copy.get("kind").is_none(), "the writer sets TypeMeta");
    assert_eq!(copy["metadata"].as_object().map(Map::len), Some(4), "name, namespace, labels, annotations");
    assert_eq!(
        content_hash(&canonical(&copy)),
        entry.content_hash,
        "an up-to-date copy hashes like its source"
    );
    let update = PlannedWrite {
        ty: config_map(),
        namespace: "child".into(),
        name: "cm".into(),
        op: CopyOp::Update { source: Arc::new(entry), resource_version: ResourceVersion::parse("42") },
    };
    assert_eq!(update.body().expect("a body")["metadata"]["resourceVersion"], json!("42"));
}

#[test]
fn typemeta_present_or_not_hashes_alike() {
    // kube-apiserver's list items carry no apiVersion/kind; its watch events and write answers do. A source
    // listed at start and its copy seen through the watch must still compare equal.
    let listed = {
        let mut s = noisy_source();
        let fields = s.as_object_mut().unwrap();
        fields.remove("apiVersion");
        fields.remove("kind");
        s
    };
    let entry = SourceEntry::new(&config_map(), &listed, &rules()).expect("valid");
    let mut watched_copy = build_copy(&entry, "child");
    watched_copy["apiVersion"] = json!("v1");
    watched_copy["kind"] = json!("ConfigMap");
    watched_copy["metadata"]["managedFields"] = json!([{"manager": "hnc", "operation": "Update"}]);
    assert_eq!(content_hash(&canonical(&watched_copy)), entry.content_hash);
}

#[test]
fn hash_is_stable_and_sensitive() {
    let a = json!({"kind": "X", "spec": {"a": 1, "b": [true, null, "s"]}});
    let mut reordered = Map::new();
    reordered.insert("spec".into(), json!({"b": [true, null, "s"], "a": 1}));
    reordered.insert("kind".into(), json!("X"));
    assert_eq!(content_hash(&a), content_hash(&Value::Object(reordered)));
    assert_eq!(content_hash(&a), content_hash(&a.clone()));
    for different in [
        json!({"kind": "X", "spec": {"a": 2, "b": [true, null, "s"]}}),
        json!({"kind": "X", "spec": {"a": 1, "b": [null, true, "s"]}}),
        json!({"kind": "X", "spec": {"a": "1", "b": [true, null, "s"]}}),
        json!({"kind": "X", "spec": {"a": 1.0, "b": [true, null, "s"]}}),
    ] {
        assert_ne!(content_hash(&a), content_hash(&different), "{different}");
    }
    assert_ne!(content_hash(&json!(["ab", "c"])), content_hash(&json!(["a", "bc"])));
}

#[test]
fn forest_classifies_indexes_and_counts() {
    let mut cache = ForestCache::new(PropagationRules::default());
    let r = role();
    let dirty = cache.apply(&r, &mk_src("a", "x")).expect("valid");
    assert_eq!(dirty, Some(Dirty::Name { ty: r.clone(), name: "x".into(), namespace: "a".into() }));
    let entry = cache.current().source(&r, "a", "x").expect("source").clone();
    cache.apply(&r, &build_copy(&entry, "b")).expect("valid");
    cache
        .apply(&r, &with_label(mk_src("c", "x"), INHERITED_FROM, ""))
        .expect("an empty value still makes a copy");
    cache.apply(&r, &mk_src("c", "y")).expect("valid");
    let snap = cache.publish();
    assert_eq!(snap.stats(&r), TypeStats { sources: 2, copies: 2 });
    let forest = snap.forest(&r).expect("type cached");
    assert_eq!(forest.copy_namespaces("x").map(|n| n.to_string()).collect::<Vec<_>>(), ["b", "c"]);
    assert_eq!(forest.source_namespaces("x").map(|n| n.to_string()).collect::<Vec<_>>(), ["a"]);
    let names: Vec<String> = forest.namespace("c").expect("c").names().map(|n| n.to_string()).collect();
    assert_eq!(names, ["x", "y"]);
    let copy = snap.copy(&r, "b", "x").expect("copy");
    assert_eq!((copy.content_hash, &*copy.inherited_from), (entry.content_hash, "a"));
    assert!(Arc::ptr_eq(&copy.inherited_from, &entry.namespace), "namespace names are interned");

    // A copy overwriting a source (and back) moves between the indexes.
    cache.apply(&r, &build_copy(&entry, "c")).expect("valid");
    assert_eq!(cache.current().stats(&r), TypeStats { sources: 2, copies: 2 });
    assert!(cache.current().source(&r, "c", "x").is_none());
    assert_eq!(
        cache.delete(&r, "c", "x"),
        Some(Dirty::Name { ty: r.clone(), name: "x".into(), namespace: "c".into() })
    );
    assert_eq!(cache.delete(&r, "c", "x"), None);
    assert_eq!(snap.stats(&r), TypeStats { sources: 2, copies: 2 }, "published snapshots never change");
}

#[test]
fn only_propagation_relevant_changes_are_dirty() {
    let mut cache = ForestCache::new(PropagationRules::default());
    let r = role();
    cache.apply(&r, &mk_src("a", "x")).expect("valid");
    let mut bumped = mk_src("a", "x");
    bumped["metadata"]["resourceVersion"] = json!("2");
    bumped["status"] = json!({"anything": 1});
    assert_eq!(cache.apply(&r, &bumped).expect("valid"), None, "resourceVersion/status only");
    assert!(
        cache.apply(&r, &with_annotation(bumped.clone(), SELECT, "env")).expect("valid").is_some(),
        "selector"
    );
    assert!(cache.apply(&r, &with_finalizer(mk_src("a", "x"))).expect("valid").is_some(), "finalizers");
    assert!(cache.apply(&r, &mk_role("a", "x", "list")).expect("valid").is_some(), "content");
}

#[test]
fn record_written_is_not_undone_by_stale_echoes() {
    let mut cache = ForestCache::new(PropagationRules::default());
    let r = role();
    cache.apply(&r, &mk_src("a", "x")).expect("valid");
    let source = cache.current().source(&r, "a", "x").expect("source").clone();
    let mut stale = with_label(mk_src("b", "x"), INHERITED_FROM, "a");
    stale["metadata"]["resourceVersion"] = json!("5");
    cache.apply(&r, &stale).expect("valid");
    let write = PlannedWrite {
        ty: r.clone(),
        namespace: "b".into(),
        name: "x".into(),
        op: CopyOp::Update { source: source.clone(), resource_version: ResourceVersion::parse("5") },
    };
    cache.record_written(&write, "9");
    let fp = cache.current().copy(&r, "b", "x").expect("copy").clone();
    assert_eq!(
        (fp.content_hash, fp.resource_version.clone(), fp.optimistic),
        (source.content_hash, ResourceVersion::Number(9), true)
    );
    assert_eq!(cache.apply(&r, &stale).expect("valid"), None, "an event older than the write is ignored");
    let mut echo = build_copy(&source, "b");
    echo["metadata"]["resourceVersion"] = json!("9");
    assert_eq!(cache.apply(&r, &echo).expect("valid"), None, "the echo confirms");
    assert!(!cache.current().copy(&r, "b", "x").expect("copy").optimistic);
    cache.record_written(
        &PlannedWrite { op: CopyOp::Delete { resource_version: ResourceVersion::parse("9") }, ..write },
        "",
    );
    assert!(cache.current().copy(&r, "b", "x").is_none());
}

#[test]
fn eviction_and_type_removal_free_everything() {
    let mut cache = ForestCache::new(PropagationRules::default());
    let (r, rb) = (role(), role_binding());
    for ns in ["a", "b", "c"] {
        cache.apply(&r, &mk_src(ns, "x")).expect("valid");
        cache.apply(&rb, &with_label(mk_rb(ns, "y", "x"), INHERITED_FROM, "p")).expect("valid");
    }
    cache.retain_namespaces(|ns| ns != "b");
    assert_eq!(cache.current().stats(&r), TypeStats { sources: 2, copies: 0 });
    assert_eq!(cache.current().stats(&rb), TypeStats { sources: 0, copies: 2 });
    assert_eq!(cache.current().forest(&r).expect("r").source_namespaces("x").count(), 2);
    cache.retain_namespaces(|_| false);
    assert_eq!(cache.current().types().count(), 0);
    cache.apply(&r, &mk_src("a", "x")).expect("valid");
    cache.remove_type(&r);
    assert!(cache.current().forest(&r).is_none());
}

#[test]
fn malformed_objects_are_refused_with_clear_errors() {
    let mut cache = ForestCache::new(PropagationRules::default());
    let ty = TypeKey::new("", "ConfigMap");
    let cases = [
        (json!("text"), "not a JSON object"),
        (json!({"kind": "ConfigMap"}), "metadata is missing"),
        (json!({"metadata": {"namespace": "a"}}), "metadata.name is missing"),
        (json!({"metadata": {"name": "x"}}), "metadata.namespace is missing"),
        (
            json!({"metadata": {"name": "x", "namespace": "a", "labels": {"k": 1}}}),
            "metadata.labels[\"k\"] is not a string",
        ),
        (
            json!({"metadata": {"name": "x", "namespace": "a", "annotations": []}}),
            "metadata.annotations is not an object",
        ),
        (json!({"metadata": {"name": 5, "namespace": "a"}}), "metadata.name is not a string"),
    ];
    for (object, message) in cases {
        let err = cache.apply(&ty, &object).expect_err("malformed");
        assert!(err.to_string().contains(message), "{err} should mention {message}");
    }
    assert_eq!(cache.current().types().count(), 0);
}

#[test]
fn role_binding_role_ref_hash() {
    let rb = role_binding();
    let a = SourceEntry::new(&rb, &mk_rb("a", "b", "reader"), &PropagationRules::default()).expect("valid");
    let b = SourceEntry::new(&rb, &mk_rb("a", "b", "writer"), &PropagationRules::default()).expect("valid");
    assert_ne!(a.role_ref_hash, b.role_ref_hash);
    let role_entry =
        SourceEntry::new(&role(), &mk_src("a", "b"), &PropagationRules::default()).expect("valid");
    assert_eq!(role_entry.role_ref_hash, 0);
}
