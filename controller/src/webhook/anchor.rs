//! The SubnamespaceAnchor validator, `subnamespaceanchors.hnc.x-k8s.io` (spec §8.6): anchor names are
//! namespace names, managed labels and annotations are legal, subnamespaces are created only in and as
//! managed namespaces and never take over an existing namespace, and an anchor whose subnamespace has
//! children is only deleted when cascading deletion is allowed.

use hnc_api::SubnamespaceAnchor;
use hnc_api::anchor::AnchorState;
use hnc_api::validation::dns1123_label_errors;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};

use super::fields::{FieldError, managed_metadata_errors};
use super::review::{Handler, allow, deny};
use super::{Context, decode};

const RESOURCE: &str = "subnamespaceanchors.hnc.x-k8s.io";

/// `subnamespaceanchors.hnc.x-k8s.io`.
pub struct AnchorValidator {
    ctx: Context,
}

impl AnchorValidator {
    /// The validator.
    pub fn new(ctx: Context) -> Self {
        AnchorValidator { ctx }
    }
}

impl Handler for AnchorValidator {
    fn name(&self) -> &'static str {
        "subnamespaceanchors.hnc.x-k8s.io"
    }

    async fn review(&self, request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        if self.ctx.is_hnc_service_account(request) {
            return allow(request, "HNC SA");
        }
        let resp = || AdmissionResponse::from(request);
        let decoded = match request.operation {
            Operation::Delete => decode::<SubnamespaceAnchor>(request.old_object.as_ref()),
            _ => decode::<SubnamespaceAnchor>(request.object.as_ref()),
        };
        let anchor = match decoded {
            Ok(anchor) => anchor,
            Err(error) => return deny::bad_request(resp(), &error),
        };
        let parent =
            anchor.metadata.namespace.clone().or_else(|| request.namespace.clone()).unwrap_or_default();
        let child = anchor.metadata.name.clone().unwrap_or_else(|| request.name.clone());
        if request.operation != Operation::Delete {
            let errors = dns1123_label_errors(&child);
            if !errors.is_empty() {
                let error = FieldError::invalid(
                    "metadata.name",
                    &child,
                    format!("not a valid namespace name: {}", errors.join("; ")),
                );
                return deny::invalid(resp(), "SubnamespaceAnchor", hnc_api::GROUP, &child, &[error]);
            }
        }
        let tree = self.ctx.tree.load();
        let errors = managed_metadata_errors(tree.policy(), &anchor.spec.labels, &anchor.spec.annotations);
        if !errors.is_empty() {
            return deny::invalid(resp(), "SubnamespaceAnchor", hnc_api::GROUP, &child, &errors);
        }
        match request.operation {
            Operation::Create => {
                if let Some(why) = tree.policy().why_unmanaged(&parent) {
                    let detail =
                        format!("cannot create a subnamespace in the unmanaged namespace {parent:?} ({why})");
                    return deny::forbidden(resp(), RESOURCE, &parent, &detail);
                }
                if let Some(why) = tree.policy().why_unmanaged(&child) {
                    let detail = format!(
                        "cannot create a subnamespace using the unmanaged namespace name {child:?} ({why})"
                    );
                    return deny::forbidden(resp(), RESOURCE, &child, &detail);
                }
                // Re-creating the missing anchor of an existing subnamespace is how it is repaired (issue
                // #501).
                let repairs_own_subnamespace = tree.parent(&child).is_some_and(|p| **p == *parent)
                    && tree.subnamespace_parent(&child).is_some();
                if tree.exists(&child) && !repairs_own_subnamespace {
                    let detail = "cannot create a subnamespace using an existing namespace";
                    return deny::conflict(resp(), RESOURCE, &child, detail);
                }
            }
            Operation::Delete => {
                let ok = anchor.status.as_ref().and_then(|s| s.parsed()) == Some(AnchorState::Ok);
                if ok && !tree.children(&child).is_empty() && !tree.allows_cascading_deletion(&child) {
                    let detail = format!(
                        "subnamespace {child} is not a leaf and doesn't allow cascading deletion. Please set \
                         allowCascadingDeletion flag or make it a leaf first"
                    );
                    return deny::forbidden(resp(), RESOURCE, &child, &detail);
                }
            }
            Operation::Update | Operation::Connect => {}
        }
        allow(request, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::testing::*;
    use serde_json::json;

    fn anchor(parent: &str, child: &str, state: Option<&str>) -> serde_json::Value {
        json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "SubnamespaceAnchor",
            "metadata": {"name": child, "namespace": parent}, "spec": {}, "status": {"status": state}})
    }

    #[tokio::test]
    async fn an_anchor_without_spec_is_an_anchor_with_an_empty_one() {
        let forest = Forest::new().ns("p");
        let v = AnchorValidator::new(forest.context());
        let bare = json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "SubnamespaceAnchor",
            "metadata": {"name": "new", "namespace": "p"}});
        assert_allowed(v.review(&create(bare, USER)).await);
    }

    #[tokio::test]
    async fn creation_needs_managed_names_that_are_free() {
        let forest = Forest::new().excluded("kube-system").ns("p").ns("taken").sub("s", "p").ns("q");
        let v = AnchorValidator::new(forest.context());
        assert_allowed(v.review(&create(anchor("p", "new", None), USER)).await);
        assert_denied(
            v.review(&create(anchor("kube-system", "x", None), USER)).await,
            403,
            "subnamespaceanchors.hnc.x-k8s.io \"kube-system\" is forbidden: cannot create a subnamespace in the \
             unmanaged namespace \"kube-system\" (excluded by the HNC administrator)",
        );
        assert_denied(
            v.review(&create(anchor("p", "kube-system", None), USER)).await,
            403,
            "using the unmanaged namespace name",
        );
        assert_denied(
            v.review(&create(anchor("p", "taken", None), USER)).await,
            409,
            "Operation cannot be fulfilled on subnamespaceanchors.hnc.x-k8s.io \"taken\": cannot create a subnamespace using an existing namespace",
        );
        assert_allowed(v.review(&create(anchor("p", "s", None), USER)).await);
        assert_denied(v.review(&create(anchor("q", "s", None), USER)).await, 409, "existing namespace");
        assert_allowed(v.review(&create(anchor("kube-system", "x", None), HNC_SA)).await);
    }

    #[tokio::test]
    async fn names_must_be_namespace_names_except_when_deleting() {
        let forest = Forest::new().ns("p");
        let v = AnchorValidator::new(forest.context());
        let resp = v.review(&create(anchor("p", "Bad.Name", None), USER)).await;
        assert!(resp.result.message.starts_with(
            "SubnamespaceAnchor.hnc.x-k8s.io \"Bad.Name\" is invalid: metadata.name: Invalid value: \"Bad.Name\": not a valid namespace name: a lowercase RFC 1123 label"
        ), "{}", resp.result.message);
        assert_denied(resp, 422, "not a valid namespace name");
        assert_allowed(v.review(&delete(anchor("p", "Bad.Name", None), USER)).await);
        let mut labelled = anchor("p", "ok", None);
        labelled["spec"]["labels"] = json!([{"key": "env", "value": "x"}]);
        assert_denied(v.review(&delete(labelled, USER)).await, 422, "not a managed label");
    }

    #[tokio::test]
    async fn non_leaf_subnamespaces_need_cascading_deletion() {
        let forest = Forest::new()
            .ns("p")
            .sub("s", "p")
            .sub("leaf", "p")
            .child("below", "s")
            .ns("q")
            .sub("t", "q")
            .child("below-t", "t")
            .allow_cascading("t");
        let v = AnchorValidator::new(forest.context());
        assert_denied(
            v.review(&delete(anchor("p", "s", Some("Ok")), USER)).await,
            403,
            "subnamespace s is not a leaf and doesn't allow cascading deletion",
        );
        assert_allowed(v.review(&delete(anchor("p", "s", Some("Conflict")), USER)).await);
        assert_allowed(v.review(&delete(anchor("p", "leaf", Some("Ok")), USER)).await);
        assert_allowed(v.review(&delete(anchor("q", "t", Some("Ok")), USER)).await);
    }
}
