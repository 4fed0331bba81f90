//! The few questions a validator must put to the API server because the index cannot answer them:
//!
//! * "is this user an admin of namespace N?" — a SubjectAccessReview for `update` on
//!   `hierarchyconfigurations.hnc.x-k8s.io` in N, exactly as upstream asks it (spec §8.5 step 6, §17);
//! * "does namespace N exist, and is it terminating?" — for an orphan's missing parent (which the index may
//!   not have caught up with) and, before denying the deletion of a propagated copy, for the copy's
//!   namespace.
//!
//! Both run only on rare paths: re-parenting and denials. SubjectAccessReviews are not writes and are made by
//! `--webhooks-only` replicas too, as upstream's webhook replicas do.
//!
//! Each call is bounded: [`SERVER_CHECK_TIMEOUT`], and at most half the time the API server still waits for the
//! admission answer ([`limits::server_check_budget`]). A call that times out or fails is an error, and the
//! request is **denied** (fail closed: an unanswered permission check never lets a re-parenting through) with
//! a 500 whose message says which check could not be completed and why, e.g.
//! `Internal error occurred: while checking authz for "a", the proposed parent: the authorization check could
//! not be completed: the API server did not answer within 5s`. Each failure is
//! counted in `hnc_webhook_server_check_failures_total{check,reason}` (`check`: `access_review` or
//! `namespace`; `reason`: `timeout` or `error`) and logged.

use std::future::Future;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::PostParams;
use kube::{Api, Client};

use super::limits::{self, SERVER_CHECK_TIMEOUT};

/// What the API server says about a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceState {
    /// Not found.
    Absent,
    /// Exists and is not being deleted.
    Active,
    /// Has a deletionTimestamp.
    Terminating,
}

/// The API server questions validators ask. Errors are messages for a 500 denial.
pub trait ServerChecks: Send + Sync {
    /// True when `user` may update HierarchyConfigurations in `namespace` (HNC's notion of an admin of it).
    fn is_admin<'a>(&'a self, user: &'a UserInfo, namespace: &'a str) -> BoxFuture<'a, Result<bool, String>>;

    /// The namespace as the API server sees it now (an uncached read).
    fn namespace_state<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<NamespaceState, String>>;
}

/// [`ServerChecks`] against the API server, with the replica's client, each call bounded (see the module docs).
pub struct ApiServerChecks {
    client: Client,
    timeout: Duration,
}

impl ApiServerChecks {
    /// Checks made with `client`, each within [`SERVER_CHECK_TIMEOUT`].
    pub fn new(client: Client) -> Self {
        Self::with_timeout(client, SERVER_CHECK_TIMEOUT)
    }

    /// Checks made with `client`, each within `timeout` (and half the request's remaining time).
    pub fn with_timeout(client: Client, timeout: Duration) -> Self {
        ApiServerChecks { client, timeout }
    }

    /// Runs `call` within the budget; a timeout or an error becomes a message saying what could not be done.
    async fn bounded<T>(
        &self,
        check: &'static str,
        what: &str,
        call: impl Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, String> {
        let budget = limits::server_check_budget(self.timeout);
        let failure = match tokio::time::timeout(budget, call).await {
            Ok(Ok(answer)) => return Ok(answer),
            Ok(Err(error)) => ("error", format!("{what}: {error}")),
            Err(_) => ("timeout", format!("{what}: the API server did not answer within {budget:?}")),
        };
        metrics::counter!("hnc_webhook_server_check_failures_total", "check" => check, "reason" => failure.0)
            .increment(1);
        tracing::warn!(check, reason = failure.0, error = %failure.1, "webhook server check failed; denying");
        Err(failure.1)
    }
}

/// The SubjectAccessReview upstream sends: `update` on `hierarchyconfigurations` in `namespace`, any version,
/// no object name, as `user` with its groups, uid and extra attributes.
pub fn admin_review(user: &UserInfo, namespace: &str) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                namespace: Some(namespace.to_owned()),
                verb: Some("update".to_owned()),
                group: Some(hnc_api::GROUP.to_owned()),
                version: Some("*".to_owned()),
                resource: Some("hierarchyconfigurations".to_owned()),
                ..Default::default()
            }),
            user: user.username.clone(),
            groups: user.groups.clone(),
            uid: user.uid.clone(),
            extra: user.extra.clone(),
            ..Default::default()
        },
        ..Default::default()
    }
}

impl ServerChecks for ApiServerChecks {
    fn is_admin<'a>(&'a self, user: &'a UserInfo, namespace: &'a str) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let api: Api<SubjectAccessReview> = Api::all(self.client.clone());
            let review = admin_review(user, namespace);
            let result = self
                .bounded(
                    "access_review",
                    "the authorization check could not be completed",
                    api.create(&PostParams::default(), &review),
                )
                .await;
            metrics::histogram!("hnc_webhook_access_review_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            Ok(result?.status.is_some_and(|s| s.allowed))
        })
    }

    fn namespace_state<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<NamespaceState, String>> {
        Box::pin(async move {
            let api: Api<Namespace> = Api::all(self.client.clone());
            let what = format!("the namespace {namespace:?} could not be read");
            match self.bounded("namespace", &what, api.get_opt(namespace)).await? {
                None => Ok(NamespaceState::Absent),
                Some(ns) if ns.metadata.deletion_timestamp.is_some() => Ok(NamespaceState::Terminating),
                Some(_) => Ok(NamespaceState::Active),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::hierarchy::HierarchyValidator;
    use crate::webhook::review::Handler;
    use crate::webhook::testing::{Forest, USER, assert_denied, update};
    use axum::routing::post;
    use axum::{Json, Router};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn the_review_is_upstreams() {
        let user = UserInfo {
            username: Some("alice".into()),
            groups: Some(vec!["dev".into()]),
            uid: Some("u-1".into()),
            extra: Some([("scopes".to_owned(), vec!["a".to_owned()])].into()),
        };
        let review = serde_json::to_value(admin_review(&user, "team-a")).unwrap();
        assert_eq!(
            review["spec"],
            serde_json::json!({
                "resourceAttributes": {"namespace": "team-a", "verb": "update", "group": "hnc.x-k8s.io",
                    "version": "*", "resource": "hierarchyconfigurations"},
                "user": "alice", "groups": ["dev"], "uid": "u-1", "extra": {"scopes": ["a"]}
            })
        );
    }

    /// An API server answering SubjectAccessReviews with "not allowed" until `stall` is set, then never.
    async fn access_reviewer(stall: Arc<AtomicBool>) -> Client {
        let answer = move |Json(mut review): Json<serde_json::Value>| {
            let stall = stall.clone();
            async move {
                if stall.load(Ordering::Relaxed) {
                    std::future::pending::<()>().await;
                }
                review["status"] = serde_json::json!({"allowed": false});
                Json(review)
            }
        };
        let router = Router::new().route("/apis/authorization.k8s.io/v1/subjectaccessreviews", post(answer));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap()
    }

    /// A SubjectAccessReview the API server does not answer denies the re-parenting once the check's timeout
    /// has passed, saying the authorization check could not be completed; before the server stalls, the same
    /// checks reach it and get its verdict.
    #[tokio::test]
    async fn an_unanswered_access_review_denies_with_a_clear_message() {
        let stall = Arc::new(AtomicBool::new(false));
        let timeout = Duration::from_millis(500);
        let forest = Forest::new().ns("a").ns("b");
        let mut ctx = forest.context();
        ctx.server = Arc::new(ApiServerChecks::with_timeout(access_reviewer(stall.clone()).await, timeout));
        let validator = HierarchyValidator::new(ctx);
        let hc = |parent: Option<&str>| {
            serde_json::json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HierarchyConfiguration",
                "metadata": {"name": "hierarchy", "namespace": "b"}, "spec": {"parent": parent}})
        };
        let request = update(hc(Some("a")), hc(None), USER);

        let answered = validator.review(&request).await;
        assert_denied(answered, 401, "User alice is not authorized to modify the subtree of a");

        stall.store(true, Ordering::Relaxed);
        let started = std::time::Instant::now();
        let unanswered = tokio::time::timeout(timeout + Duration::from_secs(5), validator.review(&request))
            .await
            .expect("the review is answered once the access review times out");
        assert!(started.elapsed() >= timeout, "{:?}", started.elapsed());
        assert_denied(
            unanswered,
            500,
            "Internal error occurred: while checking authz for \"a\", the proposed parent: the authorization \
             check could not be completed: the API server did not answer within 500ms",
        );
    }
}
