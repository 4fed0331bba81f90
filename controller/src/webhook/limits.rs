//! What one client may cost the webhook server, and what happens beyond it. The server is on the admission
//! path of every namespace, hierarchy and propagated-object write in the cluster, so no client — a slow one,
//! a broken one, or a flood of either — may make it unavailable to the API server.
//!
//! | stage | limit | beyond it |
//! |---|---|---|
//! | accept | [`MAX_CONNECTIONS`] open connections | new connections wait in the kernel's listen backlog |
//! | accept errors (EMFILE, ENFILE, ENOBUFS, …) | — | the loop pauses, [`ACCEPT_BACKOFF_MIN`] doubling to [`ACCEPT_BACKOFF_MAX`], back to the minimum after a success |
//! | TLS handshake | [`HANDSHAKE_TIMEOUT`] | the connection is closed |
//! | TLS handshake | [`MAX_PENDING_HANDSHAKES`] at once | the oldest unfinished handshake is closed |
//! | first request | its headers within [`HEADER_READ_TIMEOUT`] of the handshake | the connection is closed |
//! | later HTTP/1.1 requests | their headers within [`KEEP_ALIVE_TIMEOUT`] of the previous answer | the connection is closed |
//! | request | the API server's `?timeout=` (10 s unless the webhook configures less), at most [`REQUEST_TIMEOUT_CAP`] | 503 |
//! | request body | [`MAX_BODY_BYTES`] | 413 |
//! | SubjectAccessReview, namespace read | [`SERVER_CHECK_TIMEOUT`], at most half the request's remaining time | the request is denied (see [`super::server_checks`]) |
//!
//! Why a full server queues connections in the backlog instead of closing them: the API server's webhook
//! client treats a refused or reset connection as a failed call, and with `failurePolicy: Fail` that denies the
//! user's write at once; a connection waiting in the backlog is served as soon as a slot frees, and slots free
//! quickly because every stage before a request is bounded. What the backlog alone would not bound is a flood
//! of connections that never finish their handshake: each would hold a slot for [`HANDSHAKE_TIMEOUT`] and the
//! API server's connection would wait behind all of them. So unfinished handshakes have their own, smaller
//! limit, and a new connection over it closes the *oldest* unfinished handshake — the API server completes a
//! handshake in milliseconds, so the oldest one still unfinished is almost never a legitimate client's.
//!
//! Metrics: `hnc_webhook_connections` (open now), `hnc_webhook_connections_closed_total{reason}`
//! (`handshake_timeout`, `handshake_evicted`, `header_timeout`), `hnc_webhook_accept_errors_total`,
//! `hnc_webhook_rejected_requests_total{reason}` (`body_too_large`, `timeout`).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tokio::time::Instant;

/// Connections open at once. The API server keeps a handful per webhook and instance (HTTP/2 multiplexes its
/// calls), so this is far above any legitimate need, and low enough that their buffers and tasks stay small.
pub const MAX_CONNECTIONS: usize = 512;

/// The first pause after a failed accept.
pub const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);

/// The longest pause between accepts while they keep failing: long enough that a persistent error costs
/// nothing, short enough that accepting resumes within a second of descriptors being freed.
pub const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// TLS handshakes in progress at once; a new connection beyond this closes the oldest one (see the module docs).
pub const MAX_PENDING_HANDSHAKES: usize = 128;

/// A TLS handshake takes milliseconds; one not finished after this is a stalled or hostile client.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// The headers of a connection's first request must arrive within this after its handshake: the API server's
/// default webhook timeout, so a client this slow could not be an API server waiting for an answer.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an HTTP/1.1 connection may wait for its next request's headers (hyper measures the idle wait and the
/// header read as one). Long enough not to close connections the API server keeps for reuse in between calls.
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(60);

/// The longest a request may take, read to answer, whatever its `?timeout=` says: webhooks may be configured
/// with at most 30 s.
pub const REQUEST_TIMEOUT_CAP: Duration = Duration::from_secs(30);

/// The largest request body read. An UPDATE's AdmissionReview carries the new object (up to the API server's
/// 3 MiB request limit) and the stored one (up to etcd's 1.5 MiB), so 6 MiB admits every legitimate review;
/// axum's default of 2 MiB would refuse updates of large ConfigMaps and Secrets.
pub const MAX_BODY_BYTES: usize = 6 * 1024 * 1024;

/// The longest a SubjectAccessReview or uncached namespace read may take before the request is denied.
pub const SERVER_CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The limits one server applies; [`Limits::default`] is the constants above, tests shrink them.
#[derive(Debug, Clone)]
pub struct Limits {
    /// See [`MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// See [`MAX_PENDING_HANDSHAKES`].
    pub max_pending_handshakes: usize,
    /// See [`HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
    /// See [`HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// See [`KEEP_ALIVE_TIMEOUT`].
    pub keep_alive_timeout: Duration,
    /// See [`REQUEST_TIMEOUT_CAP`].
    pub request_timeout_cap: Duration,
    /// See [`MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            max_pending_handshakes: MAX_PENDING_HANDSHAKES,
            handshake_timeout: HANDSHAKE_TIMEOUT,
            header_read_timeout: HEADER_READ_TIMEOUT,
            keep_alive_timeout: KEEP_ALIVE_TIMEOUT,
            request_timeout_cap: REQUEST_TIMEOUT_CAP,
            max_body_bytes: MAX_BODY_BYTES,
        }
    }
}

tokio::task_local! {
    /// When the request being served must be answered by.
    static DEADLINE: Instant;
}

/// `router` with the request limits: the body limit and the request deadline.
pub fn bound_requests(router: Router, limits: &Limits) -> Router {
    router
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(middleware::from_fn_with_state(Arc::new(limits.clone()), bound_request))
}

/// Answers 503 when the request is not answered by its deadline (the smaller of its `?timeout=` and the cap),
/// and makes the deadline known to the API calls made on its behalf ([`server_check_budget`]).
async fn bound_request(State(limits): State<Arc<Limits>>, request: Request, next: Next) -> Response {
    let asked = request.uri().query().and_then(|query| {
        query.split('&').find_map(|pair| pair.strip_prefix("timeout=")).and_then(hnc_api::duration::parse_go)
    });
    let budget = asked.map_or(limits.request_timeout_cap, |asked| asked.min(limits.request_timeout_cap));
    let deadline = Instant::now() + budget;
    match tokio::time::timeout_at(deadline, DEADLINE.scope(deadline, next.run(request))).await {
        Ok(response) => {
            if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
                metrics::counter!("hnc_webhook_rejected_requests_total", "reason" => "body_too_large")
                    .increment(1);
            }
            response
        }
        Err(_) => {
            metrics::counter!("hnc_webhook_rejected_requests_total", "reason" => "timeout").increment(1);
            tracing::warn!(?budget, "webhook request not answered in time");
            let message = format!("the webhook did not answer within {budget:?}");
            (StatusCode::SERVICE_UNAVAILABLE, message).into_response()
        }
    }
}

/// How long an API call made for the request being served may take: [`SERVER_CHECK_TIMEOUT`] (or `cap`), and
/// at most half the time left before the request's deadline, so that a denial saying why still reaches the API
/// server before it gives up (and a second call still has time). Outside a request, `cap`.
pub fn server_check_budget(cap: Duration) -> Duration {
    match DEADLINE.try_with(|deadline| *deadline) {
        Ok(deadline) => cap.min(deadline.saturating_duration_since(Instant::now()) / 2),
        Err(_) => cap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_server_check_gets_half_the_time_left_and_at_most_its_cap() {
        let cap = Duration::from_secs(5);
        assert_eq!(server_check_budget(cap), cap);
        let in_request =
            |left: Duration| DEADLINE.scope(Instant::now() + left, async { server_check_budget(cap) });
        assert!(in_request(Duration::from_secs(60)).await == cap);
        let budget = in_request(Duration::from_secs(2)).await;
        assert!(budget <= Duration::from_secs(1) && budget > Duration::from_millis(500), "{budget:?}");
        assert_eq!(in_request(Duration::ZERO).await, Duration::ZERO);
    }
}
