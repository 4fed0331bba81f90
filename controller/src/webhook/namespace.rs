//! The namespace mutator and validator (spec §8.3, §8.4).
//!
//! * `namespacelabel.hnc.x-k8s.io` adds `hnc.x-k8s.io/included-namespace: "true"` to managed namespaces that
//!   lack it (never fixes a wrong value, never touches unmanaged namespaces; no service-account bypass).
//! * `namespaces.hnc.x-k8s.io` keeps the included-namespace label honest, reserves names used by external
//!   hierarchies, keeps tree labels HNC's alone, keeps namespaces with HNC parents from being handed to an
//!   external manager, and refuses deletions that would orphan subnamespaces or bypass their anchors.

use std::collections::BTreeMap;

use hnc_api::keys::{annotations, labels};
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use serde_json::json;

use super::Context;
use super::review::{Handler, allow, deny};

const RESOURCE: &str = "namespaces";
const INCLUDED_LABEL_DOCS: &str = "See https://github.com/kubernetes-sigs/hierarchical-namespaces/blob/master/\
     docs/user-guide/concepts.md#included-namespace-label for detail";

/// `namespacelabel.hnc.x-k8s.io`.
pub struct NamespaceMutator {
    ctx: Context,
}

impl NamespaceMutator {
    /// The mutator.
    pub fn new(ctx: Context) -> Self {
        NamespaceMutator { ctx }
    }
}

impl Handler for NamespaceMutator {
    fn name(&self) -> &'static str {
        "namespacelabel.hnc.x-k8s.io"
    }

    async fn review(&self, request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let Some(ns) = request.object.as_ref() else {
            return deny::bad_request(AdmissionResponse::from(request), "the request carries no Namespace");
        };
        let name = ns.metadata.name.as_deref().unwrap_or(&request.name);
        let labels = ns.metadata.labels.as_ref();
        if !self.ctx.tree.load().policy().is_managed(name)
            || labels.is_some_and(|l| l.contains_key(labels::INCLUDED_NAMESPACE))
        {
            return AdmissionResponse::from(request);
        }
        let patch = match labels {
            Some(_) => json!([{
                "op": "add",
                "path": format!("/metadata/labels/{}", escape(labels::INCLUDED_NAMESPACE)),
                "value": labels::INCLUDED_NAMESPACE_VALUE,
            }]),
            None => json!([{
                "op": "add",
                "path": "/metadata/labels",
                "value": {labels::INCLUDED_NAMESPACE: labels::INCLUDED_NAMESPACE_VALUE},
            }]),
        };

        let patch: json_patch::Patch = serde_json::from_value(patch).expect("a well-formed JSON patch");
        match AdmissionResponse::from(request).with_patch(patch) {
            Ok(resp) => resp,
            Err(error) => deny::internal(AdmissionResponse::from(request), &error.to_string()),
        }
    }
}

/// JSON pointer escaping of one path segment.
fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// `namespaces.hnc.x-k8s.io`.
pub struct NamespaceValidator {
    ctx: Context,
}

impl NamespaceValidator {
    /// The validator.
    pub fn new(ctx: Context) -> Self {
        NamespaceValidator { ctx }
    }
}

/// The parts of a Namespace the validator looks at.
struct Ns<'a> {
    name: &'a str,
    labels: Option<&'a BTreeMap<String, String>>,
    annotations: Option<&'a BTreeMap<String, String>>,
}

impl<'a> Ns<'a> {
    fn of(object: &'a DynamicObject, fallback_name: &'a str) -> Self {
        Ns {
            name: object.metadata.name.as_deref().unwrap_or(fallback_name),
            labels: object.metadata.labels.as_ref(),
            annotations: object.metadata.annotations.as_ref(),
        }
    }

    fn label(&self, key: &str) -> Option<&'a str> {
        self.labels.and_then(|l| l.get(key)).map(String::as_str)
    }

    fn annotation(&self, key: &str) -> Option<&'a str> {
        self.annotations.and_then(|a| a.get(key)).map(String::as_str)
    }

    fn tree_labels(&self) -> impl Iterator<Item = (&'a String, &'a String)> {
        self.labels.into_iter().flatten().filter(|(k, _)| k.contains(labels::TREE_LABEL_SUFFIX))
    }
}

impl Handler for NamespaceValidator {
    fn name(&self) -> &'static str {
        "namespaces.hnc.x-k8s.io"
    }

    async fn review(&self, request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        if self.ctx.is_hnc_service_account(request) {
            return allow(request, "HNC SA");
        }
        let decoded = match request.operation {
            Operation::Delete => request.old_object.as_ref(),
            _ => request.object.as_ref(),
        };
        let Some(object) = decoded else {
            return deny::bad_request(AdmissionResponse::from(request), "the request carries no Namespace");
        };
        let ns = Ns::of(object, &request.name);
        let old = match request.operation {
            Operation::Update => request.old_object.as_ref().map(|o| Ns::of(o, &request.name)),
            _ => None,
        };
        let resp = || AdmissionResponse::from(request);
        let tree = self.ctx.tree.load();
        let denial = match request.operation {
            Operation::Create => self
                .included_label(&tree, &ns, None)
                .or_else(|| reserved_by_external(&tree, &ns))
                .or_else(|| tree_label_change(&ns, None)),
            Operation::Update => self
                .included_label(&tree, &ns, old.as_ref())
                .or_else(|| external_with_parent(&tree, &ns))
                .or_else(|| tree_label_change(&ns, old.as_ref())),
            Operation::Delete => bypasses_anchor(&tree, &ns).or_else(|| orphans_subnamespaces(&tree, &ns)),
            Operation::Connect => None,
        };
        match denial {
            Some(Denial::Forbidden(detail)) => deny::forbidden(resp(), RESOURCE, ns.name, &detail),
            Some(Denial::Conflict(detail)) => deny::conflict(resp(), RESOURCE, ns.name, &detail),
            None => allow(request, ""),
        }
    }
}

enum Denial {
    Forbidden(String),
    Conflict(String),
}

impl NamespaceValidator {
    /// The included-namespace label must be `"true"` on managed namespaces and absent on unmanaged ones; only
    /// checked when the label's presence or value changes (always on CREATE).
    fn included_label(
        &self,
        tree: &hnc_shard::TreeSnapshot,
        ns: &Ns<'_>,
        old: Option<&Ns<'_>>,
    ) -> Option<Denial> {
        let value = ns.label(labels::INCLUDED_NAMESPACE);
        if let Some(old) = old
            && old.label(labels::INCLUDED_NAMESPACE) == value
        {
            return None;
        }
        let managed = tree.policy().is_managed(ns.name);
        if !managed && value.is_some() {
            return Some(Denial::Forbidden(format!(
                "you cannot enforce webhook rules on this unmanaged namespace using the {:?} label. \
                 {INCLUDED_LABEL_DOCS}",
                labels::INCLUDED_NAMESPACE
            )));
        }
        if managed && value != Some(labels::INCLUDED_NAMESPACE_VALUE) {
            return Some(Denial::Forbidden(format!(
                "you cannot change the value of the {:?} label. It has to be set as true on all managed \
                 namespaces. {INCLUDED_LABEL_DOCS}",
                labels::INCLUDED_NAMESPACE
            )));
        }
        None
    }
}

/// A name that appears in an external namespace's tree labels belongs to that external hierarchy.
fn reserved_by_external(tree: &hnc_shard::TreeSnapshot, ns: &Ns<'_>) -> Option<Denial> {
    let reserved = labels::tree_label(ns.name);
    tree.externals().find_map(|external| {
        let external_labels = tree.computed_labels(external)?;
        external_labels.contains_key(&reserved).then(|| {
            let manager = tree.external_manager(external).unwrap_or_default();
            Denial::Conflict(format!("is reserved by the external hierarchy manager {manager:?}"))
        })
    })
}

/// A namespace with an HNC parent cannot be handed to an external manager.
fn external_with_parent(tree: &hnc_shard::TreeSnapshot, ns: &Ns<'_>) -> Option<Denial> {
    let manager = ns
        .annotation(annotations::MANAGED_BY)
        .filter(|m| !m.is_empty() && *m != annotations::MANAGED_BY_INTERNAL)?;
    let parent = tree.parent(ns.name)?;
    Some(Denial::Forbidden(format!(
        "is a child of {parent:?}. Namespaces with parents defined by HNC cannot also be managed \
         externally. To manage this namespace with {manager:?}, first make it a root in HNC"
    )))
}

/// Only HNC sets, changes or removes tree labels.
fn tree_label_change(ns: &Ns<'_>, old: Option<&Ns<'_>>) -> Option<Denial> {
    let old_value = |key: &str| old.and_then(|o| o.label(key));
    if let Some((key, _)) = ns.tree_labels().find(|(k, v)| old_value(k) != Some(v.as_str())) {
        return Some(Denial::Forbidden(format!(
            "cannot set or modify tree label {key:?} in namespace {:?}; these can only be managed by HNC",
            ns.name
        )));
    }
    let removed = old?.tree_labels().find(|(k, _)| ns.label(k).is_none());
    removed.map(|(key, _)| {
        Denial::Forbidden(format!(
            "cannot remove tree label {key:?} in namespace {:?}; these can only be managed by HNC",
            ns.name
        ))
    })
}

/// A subnamespace whose anchor still exists is deleted through its anchor (spec §5.4; if the anchor is gone
/// the namespace may be deleted directly, upstream issue #847).
fn bypasses_anchor(tree: &hnc_shard::TreeSnapshot, ns: &Ns<'_>) -> Option<Denial> {
    let parent = ns.annotation(annotations::SUBNAMESPACE_OF).filter(|p| !p.is_empty())?;
    tree.node(parent)?.anchor(ns.name)?;
    Some(Denial::Forbidden(format!(
        "is a subnamespace. Please delete the anchor from the parent namespace {parent} to delete the \
         subnamespace"
    )))
}

/// A namespace with subnamespace children is only deleted when cascading deletion is allowed on it or above.
fn orphans_subnamespaces(tree: &hnc_shard::TreeSnapshot, ns: &Ns<'_>) -> Option<Denial> {
    if tree.allows_cascading_deletion(ns.name) {
        return None;
    }
    tree.children(ns.name).iter().any(|c| tree.subnamespace_parent(c).is_some()).then(|| {
        Denial::Forbidden(
            "contains subnamespaces. Please remove all subnamespaces before deleting this namespace, or set \
             'allowCascadingDeletion' to delete them automatically"
                .to_owned(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::testing::*;

    fn validator(forest: &Forest) -> NamespaceValidator {
        NamespaceValidator::new(forest.context())
    }

    fn ns(name: &str, labels: serde_json::Value, annotations: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": name, "labels": labels, "annotations": annotations}})
    }

    fn managed(name: &str) -> serde_json::Value {
        ns(name, json!({"hnc.x-k8s.io/included-namespace": "true"}), json!({}))
    }

    #[tokio::test]
    async fn the_mutator_adds_the_included_label_to_managed_namespaces_only() {
        let forest = Forest::new().excluded("kube-system");
        let mutator = NamespaceMutator::new(forest.context());
        let resp = mutator.review(&create(ns("a", json!(null), json!(null)), USER)).await;
        assert!(resp.allowed);
        let patch: serde_json::Value = serde_json::from_slice(resp.patch.as_ref().unwrap()).unwrap();
        assert_eq!(
            patch,
            json!([{"op": "add", "path": "/metadata/labels", "value": {"hnc.x-k8s.io/included-namespace": "true"}}])
        );
        let resp = mutator.review(&create(ns("a", json!({"x": "y"}), json!(null)), USER)).await;
        let patch: serde_json::Value = serde_json::from_slice(resp.patch.as_ref().unwrap()).unwrap();
        assert_eq!(patch[0]["path"], "/metadata/labels/hnc.x-k8s.io~1included-namespace");
        let wrong = ns("a", json!({"hnc.x-k8s.io/included-namespace": "false"}), json!(null));
        assert!(mutator.review(&create(wrong, USER)).await.patch.is_none(), "a wrong value is not fixed");
        assert!(
            mutator.review(&create(ns("kube-system", json!({}), json!(null)), USER)).await.patch.is_none()
        );
    }

    #[tokio::test]
    async fn the_included_label_is_checked_only_when_it_changes() {
        let forest = Forest::new().excluded("kube-system").ns("a");
        let v = validator(&forest);
        let excluded_with_label =
            ns("kube-system", json!({"hnc.x-k8s.io/included-namespace": "true"}), json!({}));
        assert_denied(
            v.review(&create(excluded_with_label.clone(), USER)).await,
            403,
            "you cannot enforce webhook rules on this unmanaged namespace",
        );
        let removed = ns("a", json!({}), json!({}));
        assert_denied(v.review(&update(removed, managed("a"), USER)).await, 403, "has to be set as true");
        let wrong = ns("a", json!({"hnc.x-k8s.io/included-namespace": "yes"}), json!({}));
        let unrelated = ns("a", json!({"hnc.x-k8s.io/included-namespace": "yes", "x": "1"}), json!({}));
        assert_allowed(v.review(&update(unrelated, wrong, USER)).await);
        let excluded_removing = ns("kube-system", json!({}), json!({}));
        assert_allowed(v.review(&update(excluded_removing, excluded_with_label, USER)).await);
        assert_allowed(v.review(&create(managed("b"), USER)).await);
    }

    #[tokio::test]
    async fn tree_labels_are_hncs_alone() {
        let forest = Forest::new().ns("a");
        let v = validator(&forest);
        let with_tree = |depth: &str| {
            ns(
                "a",
                json!({"hnc.x-k8s.io/included-namespace": "true", "a.tree.hnc.x-k8s.io/depth": depth}),
                json!({}),
            )
        };
        assert_denied(v.review(&create(with_tree("0"), USER)).await, 403, "cannot set or modify tree label");
        assert_denied(
            v.review(&update(with_tree("1"), with_tree("0"), USER)).await,
            403,
            "cannot set or modify",
        );
        assert_denied(
            v.review(&update(managed("a"), with_tree("0"), USER)).await,
            403,
            "cannot remove tree label",
        );
        assert_allowed(v.review(&update(with_tree("0"), with_tree("0"), USER)).await);
        assert_allowed(v.review(&update(with_tree("1"), with_tree("0"), HNC_SA)).await);
    }

    #[tokio::test]
    async fn external_hierarchies_reserve_their_names_and_parents_exclude_external_managers() {
        let forest = Forest::new()
            .external("ext", "argo", &[("outer.tree.hnc.x-k8s.io/depth", "1")])
            .ns("p")
            .child("c", "p");
        let v = validator(&forest);
        let resp = v.review(&create(managed("outer"), USER)).await;
        assert_denied(
            resp,
            409,
            "namespaces \"outer\": is reserved by the external hierarchy manager \"argo\"",
        );
        assert_allowed(v.review(&create(managed("other"), USER)).await);
        let handed_over = ns(
            "c",
            json!({"hnc.x-k8s.io/included-namespace": "true"}),
            json!({"hnc.x-k8s.io/managed-by": "argo"}),
        );
        assert_denied(
            v.review(&update(handed_over.clone(), managed("c"), USER)).await,
            403,
            "is a child of \"p\"",
        );
        let root = ns(
            "p",
            json!({"hnc.x-k8s.io/included-namespace": "true"}),
            json!({"hnc.x-k8s.io/managed-by": "argo"}),
        );
        assert_allowed(v.review(&update(root, managed("p"), USER)).await);
    }

    #[tokio::test]
    async fn deletions_go_through_anchors_and_respect_cascading_deletion() {
        let forest = Forest::new()
            .ns("p")
            .sub("s", "p")
            .ns("q")
            .child("full", "q")
            .ns("r")
            .sub("rs", "r")
            .allow_cascading("r");
        let v = validator(&forest);
        let sub = ns("s", json!({}), json!({"hnc.x-k8s.io/subnamespace-of": "p"}));
        assert_denied(
            v.review(&delete(sub, USER)).await,
            403,
            "is a subnamespace. Please delete the anchor from the parent namespace p",
        );
        assert_denied(v.review(&delete(managed("p"), USER)).await, 403, "contains subnamespaces");
        assert_allowed(v.review(&delete(managed("q"), USER)).await);
        assert_allowed(v.review(&delete(managed("r"), USER)).await);
        let anchorless = ns("gone", json!({}), json!({"hnc.x-k8s.io/subnamespace-of": "p"}));
        assert_allowed(v.review(&delete(anchorless, USER)).await);
    }
}
