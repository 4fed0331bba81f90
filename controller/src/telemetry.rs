//! Structured JSON logs (tracing) and the Prometheus metrics recorder.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Installs JSON logging to stdout. `RUST_LOG` overrides the level chosen by `--debug-logs`.
pub fn init_logging(debug: bool) {
    let default = if debug { "debug,hyper=info,rustls=info,tower=info" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // A second initialization (tests starting several controllers in one process) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_target(true)
        .with_env_filter(filter)
        .try_init();
}

/// Latency buckets (seconds) shared by every HNC histogram: 1 ms … 60 s.
pub const LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// Buckets (seconds) for admission latency, which is answered from memory in tens of microseconds: the
/// shared buckets would put every request in the first one.
pub const WEBHOOK_BUCKETS: &[f64] =
    &[0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.25, 1.0, 2.0];

/// Buckets (writes) for `hnc_write_batch_size`: one plan can emit one write or a hundred thousand.
pub const BATCH_SIZE_BUCKETS: &[f64] =
    &[1.0, 2.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 10000.0, 50000.0, 200000.0];

/// Installs the process-wide metrics recorder and returns the handle that renders `/metrics`.
pub fn install_metrics() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full("hnc_webhook_duration_seconds".to_owned()), WEBHOOK_BUCKETS)?
        .set_buckets_for_metric(Matcher::Full("hnc_write_batch_size".to_owned()), BATCH_SIZE_BUCKETS)?
        .set_buckets_for_metric(
            Matcher::Full(crate::process_metrics::EVENT_LOOP_LAG.to_owned()),
            crate::process_metrics::LAG_BUCKETS,
        )?
        .install_recorder()
        .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
    describe_metrics();
    Ok(handle)
}

fn describe_metrics() {
    metrics::describe_gauge!("hnc_build_info", "Always 1; labelled with the controller version.");
    metrics::describe_gauge!("hnc_ready", "1 when every readiness gate is open.");
    metrics::describe_gauge!("hnc_webhook_connections", "Webhook server connections open now.");
    metrics::describe_counter!(
        "hnc_webhook_connections_closed_total",
        "Webhook connections the server closed at a limit: handshake_timeout, handshake_evicted (too many \
         handshakes in progress, the oldest is closed), header_timeout."
    );
    metrics::describe_counter!(
        "hnc_webhook_accept_errors_total",
        "Failed accepts on the webhook port (e.g. out of file descriptors), each followed by a pause."
    );
    metrics::describe_counter!(
        "hnc_webhook_rejected_requests_total",
        "Webhook requests answered with an error by a limit: body_too_large (413), timeout (503)."
    );
    metrics::describe_counter!(
        "hnc_webhook_server_check_failures_total",
        "SubjectAccessReviews (check=access_review) and namespace reads (check=namespace) made by a webhook that \
         timed out or failed; the request was denied."
    );
    metrics::describe_counter!(
        "hnc_write_transient_errors_total",
        "Write attempts answered with 429 (reason=throttled), a 5xx (server_error) or not at all \
         (unanswered: timeout, connection failure); each is retried after a backoff or the server's Retry-After."
    );
    metrics::describe_counter!(
        "hnc_hrq_denials_total",
        "Uses the ResourceQuota-status webhook denied because a hierarchical quota would be exceeded."
    );
    metrics::describe_counter!(
        "hnc_hrq_charge_conflicts_total",
        "Charges of a use on an HRQ that lost a race with another admission's charge and were decided again."
    );
    metrics::gauge!("hnc_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}
