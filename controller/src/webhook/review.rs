//! AdmissionReview plumbing shared by every webhook: parsing, the HNC service-account bypass, responses
//! shaped like upstream's (`Status` errors with the same codes and reasons, spec §8.2), and decision metrics.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use kube::core::{DynamicObject, Status};

/// A webhook: one per kind (and the namespace mutator), answering from memory.
pub trait Handler: Send + Sync + 'static {
    /// The webhook's registered name, e.g. `namespaces.hnc.x-k8s.io` (a metric label).
    fn name(&self) -> &'static str;

    /// Decides one request. Must not block: answer from the index; the only API calls allowed on this path
    /// are SubjectAccessReviews, where the spec requires a permission check.
    fn review(
        &self,
        request: &AdmissionRequest<DynamicObject>,
    ) -> impl std::future::Future<Output = AdmissionResponse> + Send;
}

/// An allowed response carrying an informational message (upstream's `webhooks.Allow`).
pub fn allow(request: &AdmissionRequest<DynamicObject>, message: &str) -> AdmissionResponse {
    let mut resp = AdmissionResponse::from(request);
    resp.result.message = message.to_owned();
    resp
}

/// Denial helpers producing upstream's status codes and reasons.
pub mod deny {
    use super::*;
    use crate::webhook::fields::{self, FieldError};
    use kube::core::response::{StatusCause, StatusDetails};

    fn with(resp: AdmissionResponse, code: u16, reason: &str, message: String) -> AdmissionResponse {
        let mut resp = resp.deny(&message);
        resp.result = Status::failure(&message, reason).with_code(code);
        resp
    }

    /// 403 Forbidden: `<resource> "<name>" is forbidden: <detail>`.
    pub fn forbidden(resp: AdmissionResponse, resource: &str, name: &str, detail: &str) -> AdmissionResponse {
        with(resp, 403, "Forbidden", format!("{resource} \"{name}\" is forbidden: {detail}"))
    }

    /// 409 Conflict: `Operation cannot be fulfilled on <resource> "<name>": <detail>`.
    pub fn conflict(resp: AdmissionResponse, resource: &str, name: &str, detail: &str) -> AdmissionResponse {
        with(
            resp,
            409,
            "Conflict",
            format!("Operation cannot be fulfilled on {resource} \"{name}\": {detail}"),
        )
    }

    /// 422 Invalid: `<Kind>.<group> "<name>" is invalid: <field errors>`, with one `details.causes` entry per
    /// field error, as the API server reports a `field.ErrorList`.
    pub fn invalid(
        resp: AdmissionResponse,
        kind: &str,
        group: &str,
        name: &str,
        errors: &[FieldError],
    ) -> AdmissionResponse {
        let message = format!("{kind}.{group} \"{name}\" is invalid: {}", fields::aggregate(errors));
        let mut resp = with(resp, 422, "Invalid", message);
        resp.result.details = Some(StatusDetails {
            name: name.to_owned(),
            group: group.to_owned(),
            kind: kind.to_owned(),
            causes: errors
                .iter()
                .map(|e| StatusCause {
                    reason: e.cause_reason().to_owned(),
                    message: e.body(),
                    field: e.field.clone(),
                })
                .collect(),
            uid: String::new(),
            retry_after_seconds: 0,
        });
        resp
    }

    /// 400 BadRequest.
    pub fn bad_request(resp: AdmissionResponse, detail: &str) -> AdmissionResponse {
        with(resp, 400, "BadRequest", detail.to_owned())
    }

    /// 401 Unauthorized.
    pub fn unauthorized(resp: AdmissionResponse, detail: &str) -> AdmissionResponse {
        with(resp, 401, "Unauthorized", detail.to_owned())
    }

    /// 503 ServiceUnavailable.
    pub fn unavailable(resp: AdmissionResponse, detail: &str) -> AdmissionResponse {
        with(resp, 503, "ServiceUnavailable", detail.to_owned())
    }

    /// 500 InternalError.
    pub fn internal(resp: AdmissionResponse, detail: &str) -> AdmissionResponse {
        with(resp, 500, "InternalError", format!("Internal error occurred: {detail}"))
    }
}

/// True when the requester is one of HNC's own service accounts: any service account in HNC's namespace, as
/// upstream decides (spec: the `system:serviceaccounts:<hnc-namespace>` group).
pub fn is_hnc_service_account(request: &AdmissionRequest<DynamicObject>, hnc_namespace: &str) -> bool {
    let group = format!("system:serviceaccounts:{hnc_namespace}");
    request.user_info.groups.as_ref().is_some_and(|groups| groups.contains(&group))
}

/// Axum handler serving `H` at its path.
pub async fn serve<H: Handler>(State(handler): State<Arc<H>>, body: Bytes) -> Response {
    let started = Instant::now();
    let (operation, response) = match parse(&body) {
        Ok(request) => {
            let operation = format!("{:?}", request.operation).to_uppercase();
            (operation, handler.review(&request).await)
        }
        Err(response) => ("UNKNOWN".to_owned(), *response),
    };
    let decision = if response.allowed { "allowed" } else { "denied" };
    metrics::counter!("hnc_webhook_requests_total", "webhook" => handler.name(), "operation" => operation,
        "decision" => decision)
    .increment(1);
    metrics::histogram!("hnc_webhook_duration_seconds", "webhook" => handler.name())
        .record(started.elapsed().as_secs_f64());
    let review = response.into_review();
    match review.response.as_ref().and_then(|r| r.patch.as_deref()) {
        // kube-core writes the patch as an array of bytes; Go's []byte (and so the API server) reads either
        // that or base64, but base64 is what every API server writes and every client expects.
        Some(patch) => {
            let patch = base64::engine::general_purpose::STANDARD.encode(patch);
            match serde_json::to_value(&review) {
                Ok(mut value) => {
                    value["response"]["patch"] = serde_json::Value::String(patch);
                    Json(value).into_response()
                }
                Err(error) => Json(
                    deny::internal(AdmissionResponse::invalid("patch"), &error.to_string()).into_review(),
                )
                .into_response(),
            }
        }
        None => Json(review).into_response(),
    }
}

/// Parses an AdmissionReview; an unusable body yields a 400 BadRequest denial, like every other denial a
/// status with a code, that still echoes the request uid when one can be found, so the API server can match it.
fn parse(body: &[u8]) -> Result<AdmissionRequest<DynamicObject>, Box<AdmissionResponse>> {
    let invalid = |why: String| {
        let mut resp = deny::bad_request(AdmissionResponse::invalid(&why), &why);
        if let Some(uid) = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.pointer("/request/uid").and_then(|u| u.as_str()).map(str::to_owned))
        {
            resp.uid = uid;
        }
        Box::new(resp)
    };
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_slice(body).map_err(|e| invalid(format!("cannot parse AdmissionReview: {e}")))?;
    review.try_into().map_err(|_| invalid("AdmissionReview has no request".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::extract::State;
    use serde_json::json;

    struct DenyAll;
    impl Handler for DenyAll {
        fn name(&self) -> &'static str {
            "test.hnc.x-k8s.io"
        }
        async fn review(&self, request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
            deny::forbidden(AdmissionResponse::from(request), "namespaces", &request.name, "no")
        }
    }

    fn review_body(groups: &[&str]) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": "", "version": "v1", "kind": "Namespace"},
                "resource": {"group": "", "version": "v1", "resource": "namespaces"},
                "name": "team-a",
                "operation": "DELETE",
                "userInfo": {"username": "alice", "groups": groups},
                "oldObject": {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}},
                "dryRun": false
            }
        }))
        .unwrap()
    }

    /// The AdmissionReview a response carries.
    async fn answer(response: Response) -> AdmissionReview<DynamicObject> {
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        serde_json::from_slice(&body).unwrap()
    }

    #[tokio::test]
    async fn denials_carry_upstream_codes_and_messages() {
        let review = answer(serve(State(Arc::new(DenyAll)), Bytes::from(review_body(&[]))).await).await;
        let resp = review.response.unwrap();
        assert!(!resp.allowed);
        assert_eq!(resp.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(resp.result.code, 403);
        assert_eq!(resp.result.reason, "Forbidden");
        assert_eq!(resp.result.message, "namespaces \"team-a\" is forbidden: no");
    }

    #[tokio::test]
    async fn unparseable_requests_get_a_clear_invalid_answer_with_their_uid() {
        let review = answer(
            serve(State(Arc::new(DenyAll)), Bytes::from_static(br#"{"request": {"uid": "u-1", "kind": 5}}"#))
                .await,
        )
        .await;
        let resp = review.response.unwrap();
        assert!(!resp.allowed);
        assert_eq!(resp.uid, "u-1");
        assert!(resp.result.message.contains("cannot parse AdmissionReview"), "{}", resp.result.message);
        assert_eq!((resp.result.code, resp.result.reason.as_str()), (400, "BadRequest"));

        for body in
            [&b"not json"[..], b"", br#"{"request": null, "uid": "u-2"}"#, br#"{"request": {"uid": []}}"#]
        {
            let review = answer(serve(State(Arc::new(DenyAll)), Bytes::from_static(body)).await).await;
            let resp = review.response.unwrap();
            assert!(!resp.allowed);
            // A status without a code used to be sent for these: every denial now carries one.
            assert_eq!((resp.result.code, resp.result.reason.as_str()), (400, "BadRequest"), "{body:?}");
            assert!(!resp.result.message.is_empty());
        }
    }

    struct AddsLabel;
    impl Handler for AddsLabel {
        fn name(&self) -> &'static str {
            "test.hnc.x-k8s.io"
        }
        async fn review(&self, request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
            let patch =
                serde_json::from_value(json!([{"op": "add", "path": "/metadata/labels", "value": {}}]));
            AdmissionResponse::from(request).with_patch(patch.unwrap()).unwrap()
        }
    }

    #[tokio::test]
    async fn patches_are_sent_base64_encoded() {
        let response = serve(State(Arc::new(AddsLabel)), Bytes::from(review_body(&[]))).await;
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        let review: serde_json::Value = serde_json::from_slice(&body).unwrap();
        let patch = base64::engine::general_purpose::STANDARD
            .decode(review["response"]["patch"].as_str().expect("a base64 string"))
            .unwrap();
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&patch).unwrap(),
            json!([{"op": "add", "path": "/metadata/labels", "value": {}}])
        );
        assert_eq!(review["response"]["patchType"], "JSONPatch");
    }

    #[test]
    fn every_service_account_of_the_hnc_namespace_bypasses() {
        let hnc: AdmissionReview<DynamicObject> = serde_json::from_slice(&review_body(&[
            "system:serviceaccounts",
            "system:serviceaccounts:hnc-system",
        ]))
        .unwrap();
        let req: AdmissionRequest<DynamicObject> = hnc.try_into().unwrap();
        assert!(is_hnc_service_account(&req, "hnc-system"));
        assert!(!is_hnc_service_account(&req, "other"));
        let user: AdmissionReview<DynamicObject> =
            serde_json::from_slice(&review_body(&["system:authenticated"])).unwrap();
        let req: AdmissionRequest<DynamicObject> = user.try_into().unwrap();
        assert!(!is_hnc_service_account(&req, "hnc-system"));
    }
}
