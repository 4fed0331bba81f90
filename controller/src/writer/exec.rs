//! One attempt of one write against the API server, and the classification of its result.
//!
//! Every request of an attempt is bounded by the write window (`WriterConfig::attempt_timeout`), measured from
//! the fence check that let it through: the server is told the remaining time with kube-apiserver's `timeout`
//! query parameter — it then answers 504 instead of committing a write that reaches storage after the deadline
//! (`WithRequestDeadline` and the handlers' finisher) — and the client stops waiting [`CLIENT_GRACE`] later,
//! time for that 504 to arrive, so the outcome is known rather than guessed. So a
//! write the fence let through while this replica held the tree's Lease is committed within the window or not
//! at all, and the window is shorter than `lease duration − renew deadline`: before another replica can take
//! the Lease over, every write of the old holder is settled (design invariant 1).
//!
//! What the window cannot cover: time between the last check and the request leaving the process (a replica
//! suspended inside those few instructions sends once it wakes). Updates, patches and deletes are conditional
//! on the resourceVersion or uid they were planned from, so such a late write can still not overwrite what the
//! new holder wrote; only a late create can land, and the new holder then sees an object it did not plan and
//! removes it.

use std::time::Duration;

use kube::Client;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::core::{DynamicObject, Request, Resource};
use serde::Deserialize;
use tokio::time::Instant;

use super::{ObjectRef, Outcome, Precondition, WriteOp};

/// The result of one attempt.
pub(super) enum Attempt {
    /// Finished, successfully or not; no retry. Carries the object's new resourceVersion when it was written.
    Done(Outcome, Option<String>),
    /// Worth retrying: throttled, server error, timeout or connection failure.
    Transient { code: Option<u16>, message: String, retry_after: Option<Duration> },
}

/// Sends one attempt's requests, each within `window` of the fence check before it. `fence` is asked again
/// between the two requests of a recreate; the first request's check was made by the caller.
pub(super) async fn execute(
    client: &Client,
    target: &ObjectRef,
    op: &WriteOp,
    window: Duration,
    fence: impl Fn() -> bool,
) -> Attempt {
    let request = Request::new(DynamicObject::url_path(&target.resource, target.namespace.as_deref()));
    let send = |built: Result<http::Request<Vec<u8>>, kube::core::request::Error>, verb: Verb| {
        let deadline = Instant::now() + window;
        async move {
            match built {
                Ok(built) => classify(send_within(client, built, deadline).await, verb),
                Err(e) => Attempt::Done(
                    Outcome::Failed { code: None, message: format!("cannot build the request: {e}") },
                    None,
                ),
            }
        }
    };
    match op {
        WriteOp::Create(object) => match body(&object.build()) {
            Ok(data) => send(request.create(&PostParams::default(), data), Verb::Create).await,
            Err(outcome) => Attempt::Done(outcome, None),
        },
        WriteOp::Update(object) => match body(&object.build()) {
            Ok(data) => send(request.replace(&target.name, &PostParams::default(), data), Verb::Update).await,
            Err(outcome) => Attempt::Done(outcome, None),
        },
        WriteOp::MergePatch(patch) => {
            send(request.patch(&target.name, &PatchParams::default(), &Patch::Merge(patch)), Verb::Update)
                .await
        }
        WriteOp::Delete { resource_version, uid } => {
            send(request.delete(&target.name, &delete_params(resource_version, uid)), Verb::Delete).await
        }
        WriteOp::Recreate { resource_version, object } => {
            let data = match body(&object.build()) {
                Ok(data) => data,
                Err(outcome) => return Attempt::Done(outcome, None),
            };
            let deleted =
                send(request.delete(&target.name, &delete_params(resource_version, &None)), Verb::Delete)
                    .await;
            match deleted {
                Attempt::Done(Outcome::Written, _) => {}
                other => return other,
            }
            // The create is a write of its own: it needs the Lease as much as the delete did.
            if !fence() {
                return Attempt::Done(Outcome::Fenced, None);
            }
            // The object may linger while its finalizers run; AlreadyExists then reads as a Conflict and the
            // caller re-plans once the deletion is observed.
            send(request.create(&PostParams::default(), data), Verb::Create).await
        }
    }
}

/// Checks a write's precondition: `None` when it holds (or there is none), otherwise how the attempt ends —
/// [`Outcome::Stale`], or the read's failure classified like a write's (a 429, 5xx or lost connection is
/// transient).
pub(super) async fn precondition(client: &Client, check: Option<&Precondition>) -> Option<Attempt> {
    match (check?.0)(client.clone()).await {
        Ok(true) => None,
        Ok(false) => Some(Attempt::Done(Outcome::Stale, None)),
        Err(e) => Some(classify(Err(e), Verb::Update)),
    }
}

/// What the writer reads from an answer: the object's new version (a delete's Status has none).
#[derive(Deserialize, Default)]
struct Answer {
    #[serde(default)]
    metadata: AnswerMeta,
}

#[derive(Deserialize, Default)]
struct AnswerMeta {
    #[serde(rename = "resourceVersion")]
    resource_version: Option<String>,
}

/// Sends `request` telling the server to give up at `deadline` (the `timeout` parameter), and stops waiting
/// [`CLIENT_GRACE`] after it. A request whose deadline passed before it was sent is not sent.
async fn send_within(
    client: &Client,
    request: http::Request<Vec<u8>>,
    deadline: Instant,
) -> Result<Option<String>, kube::Error> {
    let remaining = deadline.saturating_duration_since(Instant::now());
    if remaining < MIN_SERVER_TIMEOUT {
        return Err(timed_out("the write window closed before the request was sent"));
    }
    let request = with_server_timeout(request, remaining);
    match tokio::time::timeout_at(deadline + CLIENT_GRACE, client.request::<Answer>(request)).await {
        Ok(answer) => answer.map(|a| a.metadata.resource_version),
        Err(_) => Err(timed_out("no answer within the write window")),
    }
}

/// How much longer than the server the client waits: for the server's own 504 at the deadline to arrive. The
/// server's deadline, not this, bounds when a write can be committed.
const CLIENT_GRACE: Duration = Duration::from_millis(250);

/// The shortest `timeout` worth sending; below it the request would only be refused.
const MIN_SERVER_TIMEOUT: Duration = Duration::from_millis(10);

/// Adds kube-apiserver's `timeout` query parameter (a Go duration; whole milliseconds, rounded down so the
/// server gives up no later than the client).
pub(super) fn with_server_timeout(
    request: http::Request<Vec<u8>>,
    timeout: Duration,
) -> http::Request<Vec<u8>> {
    let (mut parts, body) = request.into_parts();
    let uri = parts.uri.to_string();
    let separator = if uri.contains('?') { '&' } else { '?' };
    let with_timeout = format!("{uri}{separator}timeout={}ms", timeout.as_millis());
    if let Ok(uri) = with_timeout.parse() {
        parts.uri = uri;
    }
    http::Request::from_parts(parts, body)
}

fn timed_out(message: &str) -> kube::Error {
    kube::Error::Service(message.into())
}

fn delete_params(resource_version: &Option<String>, uid: &Option<String>) -> DeleteParams {
    let mut params = DeleteParams::default();
    if resource_version.is_some() || uid.is_some() {
        params.preconditions =
            Some(Preconditions { resource_version: resource_version.clone(), uid: uid.clone() });
    }
    params
}

/// The JSON body of a create or update, checked to be an object the API server can take.
fn body(object: &serde_json::Value) -> Result<Vec<u8>, Outcome> {
    DynamicObject::deserialize(object)
        .map_err(|e| Outcome::Failed { code: None, message: format!("object to write is malformed: {e}") })?;
    serde_json::to_vec(object)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_is_told_the_remaining_window() {
        let request = http::Request::post("/api/v1/namespaces/a/configmaps").body(Vec::new()).unwrap();
        let request = with_server_timeout(request, Duration::from_micros(3_999_900));
        assert_eq!(request.uri().to_string(), "/api/v1/namespaces/a/configmaps?timeout=3999ms");
        let request = http::Request::delete("/api/v1/namespaces/a?dryRun=All").body(Vec::new()).unwrap();
        let request = with_server_timeout(request, Duration::from_secs(4));
        assert_eq!(request.uri().to_string(), "/api/v1/namespaces/a?dryRun=All&timeout=4000ms");
    }

    #[test]
    fn deletes_carry_both_preconditions_when_given() {
        let params = delete_params(&None, &Some("u-1".into()));
        let pre = params.preconditions.unwrap();
        assert_eq!((pre.uid.as_deref(), pre.resource_version), (Some("u-1"), None));
        assert!(delete_params(&None, &None).preconditions.is_none());
    }
}
