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

use futures::future::BoxFuture;
use k8s_openapi::api::authentication::v1::UserInfo;
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::PostParams;
use kube::{Api, Client};

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

/// [`ServerChecks`] against the API server, with the replica's client.
pub struct ApiServerChecks {
    client: Client,
}

impl ApiServerChecks {
    /// Checks made with `client`.
    pub fn new(client: Client) -> Self {
        ApiServerChecks { client }
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
            let result = api.create(&PostParams::default(), &admin_review(user, namespace)).await;
            metrics::histogram!("hnc_webhook_access_review_duration_seconds")
                .record(started.elapsed().as_secs_f64());
            let review = result.map_err(|e| e.to_string())?;
            Ok(review.status.is_some_and(|s| s.allowed))
        })
    }

    fn namespace_state<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<NamespaceState, String>> {
        Box::pin(async move {
            let api: Api<Namespace> = Api::all(self.client.clone());
            match api.get_opt(namespace).await.map_err(|e| e.to_string())? {
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
}
