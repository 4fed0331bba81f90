//! The objects validator, `objects.hnc.x-k8s.io` (spec §8.8), for every type in `Propagate` or
//! `AllowPropagate` mode (the registration's rules follow the active types; other types are allowed at once).
//!
//! * Sources: the `*.hnc.x-k8s.io` annotation keys must be the four selector annotations; changed selectors
//!   must parse exactly as propagation parses them (so an accepted value never becomes a
//!   `CannotParseSelector` event later — a malformed `treeSelect`, trailing comma included, is a 400 naming
//!   the problem); at most one selector; and a new or changed source must not overwrite same-named sources in
//!   descendants. Its selectors are evaluated against each descendant's own labels (upstream uses the source
//!   namespace's labels, spec §18 item 3, so negative `treeSelect`s wrongly counted as conflicts and positive
//!   ones wrongly passed).
//! * Copies (carrying `hnc.x-k8s.io/inherited-from`): cannot be created, deleted (unless their namespace is
//!   terminating) or changed by anyone but HNC; status-only updates pass.

use std::collections::BTreeMap;

use hnc_api::keys::{annotations, labels};
use hnc_shard::TreeSnapshot;
use hnc_shard::propagation::{
    PropagationPolicy, SelectorError, TypeKey, canonical, clean_source, parse_bool_annotation, parse_select,
    parse_tree_select,
};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use serde_json::Value;

use super::Context;
use super::review::{Handler, allow, deny};
use super::server_checks::NamespaceState;
use crate::config::resolve::ActiveType;

/// `objects.hnc.x-k8s.io`.
pub struct ObjectsValidator {
    ctx: Context,
}

impl ObjectsValidator {
    /// The validator.
    pub fn new(ctx: Context) -> Self {
        ObjectsValidator { ctx }
    }
}

/// An object's labels or annotations (absent = empty).
fn string_map<'a>(object: Option<&'a Value>, field: &str) -> BTreeMap<&'a str, &'a str> {
    object
        .and_then(|o| o.get("metadata"))
        .and_then(|m| m.get(field))
        .and_then(Value::as_object)
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.as_str(), v.as_str()?))).collect())
        .unwrap_or_default()
}

fn to_value(object: Option<&DynamicObject>) -> Result<Option<Value>, String> {
    object.map(serde_json::to_value).transpose().map_err(|e| format!("while decoding object: {e}"))
}

impl Handler for ObjectsValidator {
    fn name(&self) -> &'static str {
        "objects.hnc.x-k8s.io"
    }

    async fn review(&self, request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let Some(namespace) = request.namespace.as_deref() else {
            return allow(request, "cluster-scoped object");
        };
        if !self.ctx.tree.load().policy().is_managed(namespace) {
            return allow(request, &format!("unmanaged namespace {namespace}"));
        }
        let Some(ty) =
            self.ctx.active_type(&request.kind.group, &request.kind.kind).filter(|t| t.mode.propagates())
        else {
            return allow(request, "Non-propagate-mode types");
        };
        if self.ctx.is_hnc_service_account(request) {
            return allow(request, "HNC SA");
        }
        let resp = || AdmissionResponse::from(request);
        let (new, old) = match (to_value(request.object.as_ref()), to_value(request.old_object.as_ref())) {
            (Ok(new), Ok(old)) => (new, old),
            (Err(error), _) | (_, Err(error)) => return deny::bad_request(resp(), &error),
        };
        let resource = if request.resource.group.is_empty() {
            request.resource.resource.clone()
        } else {
            format!("{}.{}", request.resource.resource, request.resource.group)
        };
        let name = format!("{namespace}/{}", request.name);
        let new_source =
            string_map(new.as_ref(), "labels").get(labels::INHERITED_FROM).map(|s| s.to_string());
        let old_source =
            string_map(old.as_ref(), "labels").get(labels::INHERITED_FROM).map(|s| s.to_string());

        if new_source.is_none() && old_source.is_none() {
            // Deleting a source is always allowed.
            let Some(new) = new.as_ref() else { return allow(request, "source object") };
            if let Some(problem) = selector_problem(new, old.as_ref()) {
                return deny::bad_request(resp(), &problem);
            }
            let conflicts = self.conflicts(namespace, &request.name, new, &ty);
            if !conflicts.is_empty() {
                let detail = format!(
                    "would overwrite objects in the following descendant namespace(s): {}. To fix this, \
                     choose a different name for the object, or remove the conflicting objects from the listed \
                     namespaces",
                    conflicts.join(",")
                );
                return deny::conflict(resp(), &resource, &name, &detail);
            }
            return allow(request, "source object");
        }

        match request.operation {
            Operation::Create => {
                let detail = format!("cannot create objects with the label {:?}", labels::INHERITED_FROM);
                deny::forbidden(resp(), &resource, &name, &detail)
            }
            Operation::Delete => {
                let source = old_source.unwrap_or_default();
                // A terminating namespace must never be blocked by HNC (upstream issue #1130).
                let indexed =
                    self.ctx.tree.load().node(namespace).and_then(|n| n.namespace().map(|ns| ns.deleting));
                if indexed == Some(true) {
                    return allow(
                        request,
                        "allowing deletion of propagated object since namespace is being deleted",
                    );
                }
                // The index may lag behind the namespace's deletion: ask before denying.
                match self.ctx.server.namespace_state(namespace).await {
                    Ok(NamespaceState::Absent | NamespaceState::Terminating) => allow(
                        request,
                        "allowing deletion of propagated object since namespace is being deleted",
                    ),
                    Ok(NamespaceState::Active) => {
                        let detail = format!("cannot delete object propagated from namespace {source:?}");
                        deny::forbidden(resp(), &resource, &name, &detail)
                    }
                    Err(error) => deny::internal(
                        resp(),
                        &format!(
                            "cannot delete object propagated from namespace {source} with error: {error}"
                        ),
                    ),
                }
            }
            Operation::Update => {
                if new_source != old_source {
                    let detail = format!("cannot modify the label {:?}", labels::INHERITED_FROM);
                    return deny::forbidden(resp(), &resource, &name, &detail);
                }
                let (new, old) = (new.unwrap_or_default(), old.unwrap_or_default());
                let changed = canonical(&new) != canonical(&old)
                    || string_map(Some(&new), "labels") != string_map(Some(&old), "labels")
                    || string_map(Some(&new), "annotations") != string_map(Some(&old), "annotations");
                if changed {
                    let detail = format!(
                        "cannot modify object propagated from namespace {:?}",
                        old_source.unwrap_or_default()
                    );
                    return deny::forbidden(resp(), &resource, &name, &detail);
                }
                allow(request, "no illegal updates to propagated object")
            }
            Operation::Connect => deny::internal(resp(), "unknown operation: CONNECT"),
        }
    }
}

impl ObjectsValidator {
    /// Descendants of `namespace` holding a same-named source of `ty` that `object` would overwrite, judged
    /// with each descendant's labels, sorted.
    fn conflicts(&self, namespace: &str, name: &str, object: &Value, ty: &ActiveType) -> Vec<String> {
        let tree = self.ctx.tree.load();
        if tree.node(namespace).is_none_or(|n| n.children().next().is_none()) {
            return Vec::new();
        }
        let key = TypeKey::new(&ty.resource.group, &ty.resource.kind);
        // Judged as propagation will judge it: the cleaned source's policy.
        let policy = PropagationPolicy::new(&key, &clean_source(object, &self.ctx.rules), &self.ctx.rules);
        let sources = (self.ctx.sources)();
        let overwrites = |holder: &str| {
            tree.computed_labels(holder)
                .is_some_and(|labels| policy.allows(&labels, ty.mode).unwrap_or(false))
        };
        let mut found = Vec::new();
        // Look where there is less to look: in a small subtree, or, below a large one, among the (hopefully
        // few) namespaces holding the name.
        match small_subtree(&tree, namespace) {
            Some(descendants) => {
                for d in descendants.iter().filter(|d| sources.holds(&key, d, name)) {
                    if overwrites(d) {
                        found.push(d.to_string());
                    }
                }
            }
            None => sources.holders(&key, name, &mut |holder, _| {
                if holder != namespace && is_descendant(&tree, holder, namespace) && overwrites(holder) {
                    found.push(holder.to_owned());
                }
            }),
        }
        found.sort();
        found
    }
}

/// Subtrees up to this size are searched namespace by namespace.
const SMALL_SUBTREE: usize = 256;

/// The strict descendants of `namespace` when there are at most [`SMALL_SUBTREE`] of them (cycle-safe).
fn small_subtree(tree: &TreeSnapshot, namespace: &str) -> Option<Vec<hnc_shard::NsName>> {
    let mut seen: Vec<hnc_shard::NsName> = Vec::new();
    let mut frontier: Vec<hnc_shard::NsName> = tree.children(namespace);
    while let Some(next) = frontier.pop() {
        if *next == *namespace || seen.contains(&next) {
            continue;
        }
        if seen.len() == SMALL_SUBTREE {
            return None;
        }
        frontier.extend(tree.node(&next).into_iter().flat_map(|n| n.children().cloned()));
        seen.push(next);
    }
    Some(seen)
}

/// True when `ancestor` is above `ns` in the hierarchy (cycle-safe).
fn is_descendant(tree: &TreeSnapshot, ns: &str, ancestor: &str) -> bool {
    let chain = tree.ancestry(ns);
    chain[..chain.len() - 1].iter().any(|a| **a == *ancestor)
}

/// The first problem with a source's `hnc.x-k8s.io` annotations, as a 400 detail (spec §8.8 steps 1–5).
/// Selectors are only parsed when they change, so an object stored with a bad selector can still be edited.
fn selector_problem(new: &Value, old: Option<&Value>) -> Option<String> {
    let new_annotations = string_map(Some(new), "annotations");
    let old_annotations = string_map(old, "annotations");
    for key in new_annotations.keys() {
        let prefix = key.split('/').next().unwrap_or_default();
        let in_group = prefix.split_once('.').is_some_and(|(_, rest)| rest == hnc_api::GROUP);
        if in_group && !annotations::SELECTORS.contains(key) {
            return Some(format!(
                "invalid HNC exceptions annotation: {key}, should be one of the following: {}",
                annotations::SELECTORS.join("; ")
            ));
        }
    }
    fn value<'v>(map: &BTreeMap<&str, &'v str>, key: &str) -> &'v str {
        map.get(key).copied().unwrap_or_default()
    }
    let changed = |key: &str| {
        let v = value(&new_annotations, key);
        (!v.is_empty() && v != value(&old_annotations, key)).then_some(v)
    };
    let describe = |e: SelectorError| format!("value {:?}: {}", e.value, e.problem);
    if let Some(v) = changed(annotations::SELECT)
        && let Err(e) = parse_select(v)
    {
        return Some(format!(
            "invalid Kubernetes labelSelector: while parsing {:?} {}",
            annotations::SELECT,
            describe(e)
        ));
    }
    if let Some(v) = changed(annotations::TREE_SELECT)
        && let Err(e) = parse_tree_select(v)
    {
        return Some(format!("invalid HNC {:?} {}", annotations::TREE_SELECT, describe(e)));
    }
    for key in [annotations::NONE, annotations::ALL] {
        if let Some(v) = changed(key)
            && let Err(e) = parse_bool_annotation(key, v)
        {
            return Some(format!("invalid {key} {}", describe(e)));
        }
    }
    let selector_changed =
        annotations::SELECTORS.iter().any(|k| value(&new_annotations, k) != value(&old_annotations, k));
    let present: Vec<&str> =
        annotations::SELECTORS.iter().copied().filter(|k| !value(&new_annotations, k).is_empty()).collect();
    if selector_changed && present.len() > 1 {
        return Some(format!(
            "cannot have more than one selector at the same time, but got multiple: {}",
            present.join(", ")
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::testing::*;
    use serde_json::json;

    fn role(ns: &str, name: &str, annotations: Value, labels: Value) -> Value {
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": name, "namespace": ns, "annotations": annotations, "labels": labels},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})
    }

    fn source(ns: &str, name: &str, annotations: Value) -> Value {
        role(ns, name, annotations, json!({}))
    }

    fn copy(ns: &str, name: &str, from: &str) -> Value {
        role(ns, name, json!({}), json!({"hnc.x-k8s.io/inherited-from": from}))
    }

    fn role_key() -> TypeKey {
        TypeKey::new("rbac.authorization.k8s.io", "Role")
    }

    #[tokio::test]
    async fn unmanaged_namespaces_and_other_types_are_not_judged() {
        let forest = Forest::new().excluded("kube-system").ns("a");
        let v = ObjectsValidator::new(forest.context());
        assert_allowed(v.review(&create(copy("kube-system", "r", "x"), USER)).await);
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "a",
            "labels": {"hnc.x-k8s.io/inherited-from": "x"}}});
        assert_allowed(v.review(&create(cm, USER)).await);
    }

    #[tokio::test]
    async fn copies_belong_to_hnc() {
        let forest = Forest::new().ns("p").child("c", "p").deleting_ns("dying");
        let v = ObjectsValidator::new(forest.context());
        assert_denied(
            v.review(&create(copy("c", "r", "p"), USER)).await,
            403,
            "roles.rbac.authorization.k8s.io \"c/r\" is forbidden: cannot create objects with the label \"hnc.x-k8s.io/inherited-from\"",
        );
        let mut edited = copy("c", "r", "p");
        edited["rules"][0]["verbs"] = json!(["get", "list"]);
        assert_denied(
            v.review(&update(edited.clone(), copy("c", "r", "p"), USER)).await,
            403,
            "cannot modify object propagated from namespace \"p\"",
        );
        let mut relabelled = copy("c", "r", "p");
        relabelled["metadata"]["labels"]["extra"] = json!("x");
        assert_denied(
            v.review(&update(relabelled, copy("c", "r", "p"), USER)).await,
            403,
            "cannot modify object propagated",
        );
        assert_denied(
            v.review(&update(copy("c", "r", "q"), copy("c", "r", "p"), USER)).await,
            403,
            "cannot modify the label \"hnc.x-k8s.io/inherited-from\"",
        );
        assert_denied(
            v.review(&update(source("c", "r", json!({})), copy("c", "r", "p"), USER)).await,
            403,
            "cannot modify the label",
        );
        let mut status_only = copy("c", "r", "p");
        status_only["status"] = json!({"observed": 1});
        assert_allowed(v.review(&update(status_only, copy("c", "r", "p"), USER)).await);
        assert_allowed(v.review(&update(edited, copy("c", "r", "p"), HNC_SA)).await);

        forest.server.set_namespace("c", NamespaceState::Active);
        assert_denied(
            v.review(&delete(copy("c", "r", "p"), USER)).await,
            403,
            "cannot delete object propagated from namespace \"p\"",
        );
        assert_allowed(v.review(&delete(copy("dying", "r", "p"), USER)).await);
        forest.server.set_namespace("c", NamespaceState::Terminating);
        assert_allowed(v.review(&delete(copy("c", "r", "p"), USER)).await);
        forest.server.fail_with("timeout");
        assert_denied(v.review(&delete(copy("p", "r", "x"), USER)).await, 500, "timeout");
    }

    #[tokio::test]
    async fn selector_annotations_are_validated_when_they_change() {
        let forest = Forest::new().ns("a");
        let v = ObjectsValidator::new(forest.context());
        let check = |annotations: Value| create(source("a", "r", annotations), USER);
        assert_denied(
            v.review(&check(json!({"propagate.hnc.x-k8s.io/selectt": "x"}))).await,
            400,
            "invalid HNC exceptions annotation: propagate.hnc.x-k8s.io/selectt, should be one of the following: propagate.hnc.x-k8s.io/select; propagate.hnc.x-k8s.io/treeSelect; propagate.hnc.x-k8s.io/none; propagate.hnc.x-k8s.io/all",
        );
        assert_denied(
            v.review(&check(json!({"foo.hnc.x-k8s.io/x": "x"}))).await,
            400,
            "invalid HNC exceptions annotation",
        );
        assert_allowed(v.review(&check(json!({"a.b.hnc.x-k8s.io/x": "x", "hnc.x-k8s.io/x": "y"}))).await);
        assert_denied(
            v.review(&check(json!({"propagate.hnc.x-k8s.io/select": "a in (b"}))).await,
            400,
            "invalid Kubernetes labelSelector: while parsing \"propagate.hnc.x-k8s.io/select\" value \"a in (b\"",
        );
        let resp = v.review(&check(json!({"propagate.hnc.x-k8s.io/treeSelect": "child,"}))).await;
        assert_denied(
            resp,
            400,
            "invalid HNC \"propagate.hnc.x-k8s.io/treeSelect\" value \"child,\": segment 2 is empty; remove the extra comma or write a namespace name",
        );
        assert_denied(
            v.review(&check(json!({"propagate.hnc.x-k8s.io/treeSelect": "a, b"}))).await,
            400,
            "should only have one non-negated namespace, but got multiple: a, b",
        );
        assert_denied(
            v.review(&check(json!({"propagate.hnc.x-k8s.io/treeSelect": "Not_A_Name"}))).await,
            400,
            "\"Not_A_Name\" is not a valid namespace name",
        );
        assert_denied(
            v.review(&check(json!({"propagate.hnc.x-k8s.io/none": "yes"}))).await,
            400,
            "invalid propagate.hnc.x-k8s.io/none value \"yes\": must be a boolean",
        );
        assert_denied(
            v.review(&check(
                json!({"propagate.hnc.x-k8s.io/none": "true", "propagate.hnc.x-k8s.io/all": "false"}),
            ))
            .await,
            400,
            "cannot have more than one selector at the same time, but got multiple: propagate.hnc.x-k8s.io/none, propagate.hnc.x-k8s.io/all",
        );
        // An object stored with selectors that no longer pass may still be edited as long as they do not
        // change.
        let stored = source(
            "a",
            "r",
            json!({"propagate.hnc.x-k8s.io/treeSelect": "x,", "propagate.hnc.x-k8s.io/none": "true"}),
        );
        let mut edited = stored.clone();
        edited["rules"] = json!([]);
        assert_allowed(v.review(&update(edited, stored.clone(), USER)).await);
        assert_allowed(v.review(&delete(stored, USER)).await);
    }

    #[tokio::test]
    async fn sources_must_not_overwrite_descendants_judged_by_each_descendants_labels() {
        let forest = Forest::new()
            .ns("p")
            .child("c1", "p")
            .child("c2", "p")
            .child("g", "c1")
            .ns("elsewhere")
            .source(&role_key(), "c1", "r", json!({}))
            .source(&role_key(), "g", "r", json!({}))
            .source(&role_key(), "elsewhere", "r", json!({}))
            .source(&role_key(), "p", "r", json!({}));
        let v = ObjectsValidator::new(forest.context());
        let resp = v.review(&create(source("p", "r", json!({})), USER)).await;
        assert_denied(
            resp,
            409,
            "Operation cannot be fulfilled on roles.rbac.authorization.k8s.io \"p/r\": would overwrite objects in the following descendant namespace(s): c1,g. To fix this, choose a different name for the object, or remove the conflicting objects from the listed namespaces",
        );
        // Negative treeSelect: c1's subtree is excluded, so nothing is overwritten (upstream saw a conflict).
        assert_allowed(
            v.review(&create(source("p", "r", json!({"propagate.hnc.x-k8s.io/treeSelect": "!c1"})), USER))
                .await,
        );
        // Positive treeSelect: only g is selected, and g holds the name (upstream saw no conflict).
        assert_denied(
            v.review(&create(source("p", "r", json!({"propagate.hnc.x-k8s.io/treeSelect": "g"})), USER))
                .await,
            409,
            "descendant namespace(s): g.",
        );
        assert_allowed(
            v.review(&create(source("p", "r", json!({"propagate.hnc.x-k8s.io/none": "true"})), USER)).await,
        );
        assert_allowed(v.review(&create(source("c2", "r", json!({})), USER)).await);
        assert_allowed(v.review(&create(source("p", "unique", json!({})), USER)).await);
    }
}
