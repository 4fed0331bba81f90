//! One attempt of one write against the API server, and the classification of its result.

use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::DynamicObject;
use serde::Deserialize;

use super::{ObjectRef, Outcome, WriteOp};

/// The result of one attempt.
pub(super) enum Attempt {
    /// Finished, successfully or not; no retry. Carries the object's new resourceVersion when it was written.
    Done(Outcome, Option<String>),
    /// Worth retrying: throttled, server error, timeout or connection failure.
    Transient { code: Option<u16>, message: String, retry_after: Option<std::time::Duration> },
}

pub(super) async fn execute(client: &Client, target: &ObjectRef, op: &WriteOp) -> Attempt {
    let api: Api<DynamicObject> = match &target.namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &*target.resource),
        None => Api::all_with(client.clone(), &*target.resource),
    };
    match op {
        WriteOp::Create(object) => match to_dynamic(&object.build()) {
            Ok(obj) => classify(
                api.create(&PostParams::default(), &obj).await.map(|o| o.metadata.resource_version),
                Verb::Create,
            ),
            Err(outcome) => Attempt::Done(outcome, None),
        },
        WriteOp::Update(object) => match to_dynamic(&object.build()) {
            Ok(obj) => classify(
                api.replace(&target.name, &PostParams::default(), &obj)
                    .await
                    .map(|o| o.metadata.resource_version),
                Verb::Update,
            ),
            Err(outcome) => Attempt::Done(outcome, None),
        },
        WriteOp::MergePatch(patch) => classify(
            api.patch(&target.name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .map(|o| o.metadata.resource_version),
            Verb::Update,
        ),
        WriteOp::Delete { resource_version } => classify(
            api.delete(&target.name, &delete_params(resource_version)).await.map(|_| None),
            Verb::Delete,
        ),
        WriteOp::Recreate { resource_version, object } => {
            let deleted = classify(
                api.delete(&target.name, &delete_params(resource_version)).await.map(|_| None),
                Verb::Delete,
            );
            match deleted {
                Attempt::Done(Outcome::Written, _) => {}
                other => return other,
            }
            match to_dynamic(&object.build()) {
                // The object may linger while its finalizers run; AlreadyExists then reads as a Conflict and the
                // caller re-plans once the deletion is observed.
                Ok(obj) => classify(
                    api.create(&PostParams::default(), &obj).await.map(|o| o.metadata.resource_version),
                    Verb::Create,
                ),
                Err(outcome) => Attempt::Done(outcome, None),
            }
        }
    }
}

fn delete_params(resource_version: &Option<String>) -> DeleteParams {
    let mut params = DeleteParams::default();
    if resource_version.is_some() {
        params.preconditions = Some(Preconditions { resource_version: resource_version.clone(), uid: None });
    }
    params
}

fn to_dynamic(object: &serde_json::Value) -> Result<DynamicObject, Outcome> {
    DynamicObject::deserialize(object)
        .map_err(|e| Outcome::Failed { code: None, message: format!("object to write is malformed: {e}") })
}

#[derive(Clone, Copy, PartialEq)]
enum Verb {
    Create,
    Update,
    Delete,
}

fn classify(result: Result<Option<String>, kube::Error>, verb: Verb) -> Attempt {
    let status = match result {
        Ok(resource_version) => return Attempt::Done(Outcome::Written, resource_version),
        Err(kube::Error::Api(status)) => status,
        Err(other) => {
            // Transport-level failures (connection refused/reset, timeouts) are transient by nature.
            return Attempt::Transient { code: None, message: other.to_string(), retry_after: None };
        }
    };
    let code = status.code;
    let message = if status.message.is_empty() { status.reason.clone() } else { status.message.clone() };
    match code {
        404 if verb == Verb::Delete => Attempt::Done(Outcome::Written, None),
        404 => Attempt::Done(Outcome::Gone, None),
        409 => Attempt::Done(Outcome::Conflict, None),
        429 | 500 | 502 | 503 | 504 => {
            let retry_after = status
                .details
                .as_ref()
                .map(|d| d.retry_after_seconds)
                .filter(|s| *s > 0)
                .map(|s| std::time::Duration::from_secs(u64::from(s)));
            Attempt::Transient { code: Some(code), message, retry_after }
        }
        _ => Attempt::Done(Outcome::Failed { code: Some(code), message }, None),
    }
}
