//! Bad input never panics the webhooks: arbitrary bytes, arbitrary JSON and valid AdmissionReviews with one
//! part replaced by junk (the operation, the kind, the user, the object or old object, a spec field, a
//! selector annotation, a tree label) go through [`serve`] to every handler. The property: an answer is always
//! a well-formed AdmissionReview response — `allowed` set, the request's uid echoed whenever the body carries
//! one, a denial with a code and a message, a patch that is base64 of a JSON patch.
//!
//! Each property runs a bounded number of cases in CI; a longer run sets `PROPTEST_CASES` (see
//! docs/testing.md).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use base64::Engine;
use proptest::prelude::*;
use serde_json::{Value, json};

use super::anchor::AnchorValidator;
use super::hierarchy::HierarchyValidator;
use super::hncconfig::ConfigValidator;
use super::namespace::{NamespaceMutator, NamespaceValidator};
use super::objects::ObjectsValidator;
use super::review::{Handler, serve};
use super::testing::Forest;
use hnc_api::SyncMode;
use hnc_shard::propagation::TypeKey;

/// `cases` per property, unless `PROPTEST_CASES` asks for another number.
fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() { default.cases } else { cases };
    ProptestConfig { cases, ..default }
}

/// Every handler, over a small forest with a subnamespace, an external namespace with junk tree labels and
/// sources carrying selectors.
struct Handlers {
    mutator: Arc<NamespaceMutator>,
    namespaces: Arc<NamespaceValidator>,
    hierarchy: Arc<HierarchyValidator>,
    anchors: Arc<AnchorValidator>,
    config: Arc<ConfigValidator>,
    objects: Arc<ObjectsValidator>,
}

impl Handlers {
    fn new() -> Self {
        let role = TypeKey::new("rbac.authorization.k8s.io", "Role");
        let forest = Forest::new()
            .ns("a")
            .child("b", "a")
            .sub("c", "a")
            .allow_cascading("c")
            .deleting_ns("d")
            .external(
                "ext",
                "argo",
                &[
                    ("outer.tree.hnc.x-k8s.io/depth", "4294967295"),
                    ("far.tree.hnc.x-k8s.io/depth", "18446744073709551616"),
                    ("usize.tree.hnc.x-k8s.io/depth", "18446744073709551615"),
                    ("word.tree.hnc.x-k8s.io/depth", "x"),
                ],
            )
            .excluded("kube-system")
            .managed_label("team/.*")
            .active("", "v1", "ConfigMap", "configmaps", SyncMode::AllowPropagate)
            .source(&role, "a", "r", json!({"propagate.hnc.x-k8s.io/treeSelect": "b, !c"}))
            .source(&role, "b", "r", json!({"propagate.hnc.x-k8s.io/select": "x in (1,2)"}))
            .source(&role, "c", "bad", json!({"propagate.hnc.x-k8s.io/select": "(("}));
        forest.server.grant("alice", "a");
        let ctx = forest.context();
        Handlers {
            mutator: Arc::new(NamespaceMutator::new(ctx.clone())),
            namespaces: Arc::new(NamespaceValidator::new(ctx.clone())),
            hierarchy: Arc::new(HierarchyValidator::new(ctx.clone())),
            anchors: Arc::new(AnchorValidator::new(ctx.clone())),
            config: Arc::new(ConfigValidator::new(ctx.clone(), forest.discovery())),
            objects: Arc::new(ObjectsValidator::new(ctx)),
        }
    }

    /// The answers of every handler to `body`.
    async fn answers(&self, body: &[u8]) -> Vec<(&'static str, Value)> {
        vec![
            answer(&self.mutator, body).await,
            answer(&self.namespaces, body).await,
            answer(&self.hierarchy, body).await,
            answer(&self.anchors, body).await,
            answer(&self.config, body).await,
            answer(&self.objects, body).await,
        ]
    }
}

async fn answer<H: Handler>(handler: &Arc<H>, body: &[u8]) -> (&'static str, Value) {
    let response = serve(State(handler.clone()), Bytes::copy_from_slice(body)).await;
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap_or_default();
    (handler.name(), serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// Checks one answer to `body`; the error says what is wrong with it.
fn check_answer(body: &[u8], webhook: &str, review: &Value) -> Result<(), String> {
    let fail = |what: &str| Err(format!("{webhook}: {what}: {review}"));
    if review["apiVersion"] != "admission.k8s.io/v1" || review["kind"] != "AdmissionReview" {
        return fail("not an AdmissionReview");
    }
    let response = &review["response"];
    let Some(allowed) = response["allowed"].as_bool() else { return fail("no `allowed`") };
    let Some(uid) = response["uid"].as_str() else { return fail("no uid") };
    let sent_uid = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.pointer("/request/uid").and_then(Value::as_str).map(str::to_owned));
    if let Some(sent) = sent_uid
        && sent != uid
    {
        return fail(&format!("uid {uid:?} instead of {sent:?}"));
    }
    if !allowed {
        let code = response["status"]["code"].as_u64().unwrap_or(0);
        let message = response["status"]["message"].as_str().unwrap_or("");
        if !(400..600).contains(&code) || message.is_empty() {
            return fail("a denial without a code or a message");
        }
    }
    if let Some(patch) = response.get("patch") {
        let decoded = patch
            .as_str()
            .and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok())
            .and_then(|p| serde_json::from_slice::<json_patch::Patch>(&p).ok());
        if decoded.is_none() || response["patchType"] != "JSONPatch" {
            return fail("a patch that is not base64 of a JSON patch");
        }
    }
    Ok(())
}

/// JSON of any shape, nested a few levels, with the keys AdmissionReviews use.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,10}".prop_map(Value::String),
        Just(json!("4294967295")),
        Just(json!("CREATE")),
        Just(json!("ext")),
        Just(json!("b")),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        let key = prop_oneof![
            Just("request".to_owned()),
            Just("uid".to_owned()),
            Just("kind".to_owned()),
            Just("operation".to_owned()),
            Just("object".to_owned()),
            Just("metadata".to_owned()),
            Just("name".to_owned()),
            Just("spec".to_owned()),
            Just("labels".to_owned()),
            ".{0,6}"
        ];
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map(key, inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A valid object of each kind the webhooks see.
fn object(kind: usize, name: &str, namespace: &str) -> Value {
    match kind {
        0 => json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name,
            "labels": {"hnc.x-k8s.io/included-namespace": "true", "a.tree.hnc.x-k8s.io/depth": "0"},
            "annotations": {"hnc.x-k8s.io/subnamespace-of": "a"}}}),
        1 => json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HierarchyConfiguration",
            "metadata": {"name": "hierarchy", "namespace": namespace},
            "spec": {"parent": "a", "labels": [{"key": "team/x", "value": "1"}]}}),
        2 => json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "SubnamespaceAnchor",
            "metadata": {"name": name, "namespace": namespace}, "spec": {}, "status": {"status": "Ok"}}),
        3 => json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HNCConfiguration",
            "metadata": {"name": "config"},
            "spec": {"resources": [{"resource": "configmaps", "mode": "Propagate"}, {"group": "x", "resource": "y"}]}}),
        _ => json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "r", "namespace": namespace,
                "annotations": {"propagate.hnc.x-k8s.io/treeSelect": "b, !c"}},
            "rules": []}),
    }
}

const KINDS: [(&str, &str, &str, &str); 5] = [
    ("", "v1", "Namespace", "namespaces"),
    ("hnc.x-k8s.io", "v1alpha2", "HierarchyConfiguration", "hierarchyconfigurations"),
    ("hnc.x-k8s.io", "v1alpha2", "SubnamespaceAnchor", "subnamespaceanchors"),
    ("hnc.x-k8s.io", "v1alpha2", "HNCConfiguration", "hncconfigurations"),
    ("rbac.authorization.k8s.io", "v1", "Role", "roles"),
];

/// A valid AdmissionReview of `kind` (an index into [`KINDS`]).
fn review(kind: usize, operation: &str, name: &str, namespace: &str, hnc: bool) -> Value {
    let (group, version, kind_name, resource) = KINDS[kind];
    let groups: &[&str] =
        if hnc { &["system:serviceaccounts:hnc-system"] } else { &["system:authenticated"] };
    let new = object(kind, name, namespace);
    let mut old = new.clone();
    old["metadata"]["labels"] = json!({"hnc.x-k8s.io/inherited-from": "a"});
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "u-1",
            "kind": {"group": group, "version": version, "kind": kind_name},
            "resource": {"group": group, "version": version, "resource": resource},
            "name": name, "namespace": if kind == 0 || kind == 3 { Value::Null } else { json!(namespace) },
            "operation": operation,
            "userInfo": {"username": "alice", "groups": groups},
            "object": if operation == "DELETE" { Value::Null } else { new },
            "oldObject": if operation == "CREATE" { Value::Null } else { old },
            "dryRun": false,
        }
    })
}

/// Where a mutation lands in a review.
const PATHS: [&str; 20] = [
    "/request/uid",
    "/request/kind",
    "/request/kind/kind",
    "/request/operation",
    "/request/name",
    "/request/namespace",
    "/request/userInfo",
    "/request/userInfo/groups",
    "/request/object",
    "/request/oldObject",
    "/request/object/metadata",
    "/request/object/metadata/name",
    "/request/object/metadata/labels",
    "/request/object/metadata/annotations",
    "/request/object/spec",
    "/request/object/spec/parent",
    "/request/object/spec/labels",
    "/request/object/spec/resources",
    "/request/oldObject/metadata/labels",
    "/request/object/status",
];

#[derive(Clone, Debug)]
enum Mutation {
    /// Replace (or add) the value at a path.
    Set(usize, Value),
    /// Remove the value at a path.
    Remove(usize),
    /// Set one label or annotation of the object to junk.
    Metadata { annotation: bool, key: String, value: String },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let key = prop_oneof![
        Just("propagate.hnc.x-k8s.io/select".to_owned()),
        Just("propagate.hnc.x-k8s.io/treeSelect".to_owned()),
        Just("propagate.hnc.x-k8s.io/none".to_owned()),
        Just("propagate.hnc.x-k8s.io/all".to_owned()),
        Just("hnc.x-k8s.io/managed-by".to_owned()),
        Just("hnc.x-k8s.io/subnamespace-of".to_owned()),
        Just("hnc.x-k8s.io/included-namespace".to_owned()),
        Just("hnc.x-k8s.io/inherited-from".to_owned()),
        "[a-z]{1,3}\\.tree\\.hnc\\.x-k8s\\.io/depth",
        ".{0,8}",
    ];
    let junk = prop_oneof![
        Just("4294967295".to_owned()),
        Just("-1".to_owned()),
        Just("((".to_owned()),
        Just("a, b".to_owned()),
        Just(",".to_owned()),
        Just("!!a".to_owned()),
        Just("true".to_owned()),
        "[a-z!=(), ]{0,12}",
        ".{0,8}",
    ];
    prop_oneof![
        3 => (0..PATHS.len(), json_value()).prop_map(|(p, v)| Mutation::Set(p, v)),
        1 => (0..PATHS.len()).prop_map(Mutation::Remove),
        3 => (any::<bool>(), key, junk).prop_map(|(annotation, key, value)| Mutation::Metadata { annotation, key, value }),
    ]
}

fn mutate(review: &mut Value, mutation: &Mutation) {
    match mutation {
        Mutation::Set(path, value) => {
            let (parent, field) = PATHS[*path].rsplit_once('/').unwrap_or(("", ""));
            if let Some(Value::Object(map)) = review.pointer_mut(parent) {
                map.insert(field.to_owned(), value.clone());
            }
        }
        Mutation::Remove(path) => {
            let (parent, field) = PATHS[*path].rsplit_once('/').unwrap_or(("", ""));
            if let Some(Value::Object(map)) = review.pointer_mut(parent) {
                map.remove(field);
            }
        }
        Mutation::Metadata { annotation, key, value } => {
            let field = if *annotation { "annotations" } else { "labels" };
            if let Some(Value::Object(meta)) = review.pointer_mut("/request/object/metadata") {
                let map = meta.entry(field).or_insert_with(|| json!({}));
                if let Value::Object(map) = map {
                    map.insert(key.clone(), Value::String(value.clone()));
                }
            }
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime")
}

fn check_all(
    runtime: &tokio::runtime::Runtime,
    handlers: &Handlers,
    body: &[u8],
) -> Result<(), TestCaseError> {
    for (webhook, review) in runtime.block_on(handlers.answers(body)) {
        check_answer(body, webhook, &review).map_err(TestCaseError::fail)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(300))]

    #[test]
    fn arbitrary_bodies_get_a_well_formed_answer(
        body in prop_oneof![
            prop::collection::vec(any::<u8>(), 0..64),
            json_value().prop_map(|v| serde_json::to_vec(&v).unwrap_or_default()),
            json_value().prop_map(|v| serde_json::to_vec(&json!({"request": v})).unwrap_or_default()),
        ],
    ) {
        let (runtime, handlers) = (runtime(), Handlers::new());
        check_all(&runtime, &handlers, &body)?;
    }

    #[test]
    fn mutated_reviews_get_a_well_formed_answer(
        kind in 0..KINDS.len(),
        operation in prop_oneof![Just("CREATE"), Just("UPDATE"), Just("DELETE"), Just("CONNECT")],
        name in prop_oneof![Just("a"), Just("b"), Just("c"), Just("d"), Just("ext"), Just("new"), Just("kube-system"), Just(""), Just("Bad_Name")],
        namespace in prop_oneof![Just("a"), Just("b"), Just("c"), Just("ext"), Just("kube-system"), Just("gone"), Just("")],
        hnc in prop::bool::weighted(0.1),
        mutations in prop::collection::vec(mutation(), 0..4),
    ) {
        let mut body = review(kind, operation, name, namespace, hnc);
        for m in &mutations {
            mutate(&mut body, m);
        }
        let body = serde_json::to_vec(&body).expect("serializes");
        let (runtime, handlers) = (runtime(), Handlers::new());
        check_all(&runtime, &handlers, &body)?;
    }
}

#[test]
fn unmutated_reviews_are_decided_by_every_handler() {
    let (runtime, handlers) = (runtime(), Handlers::new());
    let webhooks = [
        "namespaces.hnc.x-k8s.io",
        "hierarchyconfigurations.hnc.x-k8s.io",
        "subnamespaceanchors.hnc.x-k8s.io",
        "hncconfigurations.hnc.x-k8s.io",
        "objects.hnc.x-k8s.io",
    ];
    for (kind, own) in webhooks.iter().enumerate() {
        for operation in ["CREATE", "UPDATE", "DELETE"] {
            let body = serde_json::to_vec(&review(kind, operation, "new", "a", false)).expect("serializes");
            for (webhook, answer) in runtime.block_on(handlers.answers(&body)) {
                check_answer(&body, webhook, &answer).unwrap();
                // The request is understood by the webhook of its kind (for the operations it is registered
                // for; HierarchyConfigurations are not checked on DELETE): not a bad request.
                if webhook == *own && !(kind == 1 && operation == "DELETE") {
                    assert_ne!(answer["response"]["status"]["code"], 400, "{webhook} {operation}: {answer}");
                }
            }
        }
    }
}
