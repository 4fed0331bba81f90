//! The health of the process and of its async runtime, on `/metrics` beside HNC's own metrics:
//!
//! * `process_*` — CPU seconds, resident and virtual memory, open and maximum file descriptors, start time,
//!   threads — the names every Prometheus client library uses, read from `/proc` (metrics-process) at each
//!   scrape;
//! * `hnc_runtime_workers`, `hnc_runtime_alive_tasks`, `hnc_runtime_global_queue_depth` — the tokio runtime's
//!   own counts, read at each scrape;
//! * `hnc_runtime_event_loop_lag_seconds` — a task sleeps [`LAG_PROBE_INTERVAL`] again and again and records
//!   how much later than asked it woke. Every task on the runtime shares its workers: a lag of tens of
//!   milliseconds means work that blocks a worker (or a CPU limit throttling the process) delays lease renewals,
//!   webhook answers and writes alike.

use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How long the lag probe sleeps between measurements (four a second: cheap, and enough samples for a p99 over
/// a minute).
pub const LAG_PROBE_INTERVAL: Duration = Duration::from_millis(250);

/// Buckets (seconds) for `hnc_runtime_event_loop_lag_seconds`. tokio's timer has millisecond resolution, so an
/// idle runtime wakes within a millisecond or two; tens of milliseconds is a busy or blocked runtime.
pub const LAG_BUCKETS: &[f64] =
    &[0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

const WORKERS: &str = "hnc_runtime_workers";
const ALIVE_TASKS: &str = "hnc_runtime_alive_tasks";
const GLOBAL_QUEUE_DEPTH: &str = "hnc_runtime_global_queue_depth";
/// The lag histogram's name.
pub const EVENT_LOOP_LAG: &str = "hnc_runtime_event_loop_lag_seconds";

/// Reads the process's and the runtime's figures into the recorder; call before rendering `/metrics`.
#[derive(Clone)]
pub struct ProcessMetrics {
    process: metrics_process::Collector,
}

impl ProcessMetrics {
    /// Describes every metric of this module (the recorder must be installed).
    pub fn new() -> ProcessMetrics {
        let process = metrics_process::Collector::default();
        process.describe();
        metrics::describe_gauge!(WORKERS, "Worker threads of the controller's async runtime.");
        metrics::describe_gauge!(ALIVE_TASKS, "Tasks alive on the controller's async runtime.");
        metrics::describe_gauge!(
            GLOBAL_QUEUE_DEPTH,
            "Tasks waiting in the async runtime's global queue for a worker (a persistently non-zero depth means \
             the workers cannot keep up)."
        );
        metrics::describe_histogram!(
            EVENT_LOOP_LAG,
            metrics::Unit::Seconds,
            "How much later than asked a task sleeping 250 ms on the async runtime wakes up."
        );
        ProcessMetrics { process }
    }

    /// Records the current figures.
    pub fn collect(&self) {
        self.process.collect();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let m = runtime.metrics();
            metrics::gauge!(WORKERS).set(m.num_workers() as f64);
            metrics::gauge!(ALIVE_TASKS).set(m.num_alive_tasks() as f64);
            metrics::gauge!(GLOBAL_QUEUE_DEPTH).set(m.global_queue_depth() as f64);
        }
    }
}

impl Default for ProcessMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Starts the event-loop lag probe on the current runtime; it ends when `stop` is cancelled.
pub fn spawn_lag_probe(stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let lag = metrics::histogram!(EVENT_LOOP_LAG);
        loop {
            let asked = Instant::now() + LAG_PROBE_INTERVAL;
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep_until(asked) => {}
            }
            lag.record(Instant::now().saturating_duration_since(asked).as_secs_f64());
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_probe_records_how_late_a_blocked_runtime_woke_it_and_stops_when_told() {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(EVENT_LOOP_LAG.to_owned()),
                LAG_BUCKETS,
            )
            .unwrap()
            .build_recorder();
        let handle = recorder.handle();
        let _guard = metrics::set_default_local_recorder(&recorder);
        let stop = CancellationToken::new();
        let probe = spawn_lag_probe(stop.clone());
        tokio::task::yield_now().await;
        // The probe sleeps until 250 ms from now; the runtime's only thread is blocked until 400 ms: it wakes
        // about 150 ms late.
        std::thread::sleep(Duration::from_millis(400));
        tokio::time::sleep(Duration::from_millis(20)).await;
        stop.cancel();
        probe.await.unwrap();
        let text = handle.render();
        let sample = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse::<f64>().ok())
                .unwrap_or_else(|| panic!("no {name} in {text}"))
        };
        assert_eq!(sample(&format!("{EVENT_LOOP_LAG}_count")), 1.0, "{text}");
        let late = sample(&format!("{EVENT_LOOP_LAG}_sum"));
        assert!((0.1..0.4).contains(&late), "woke {late} s late: {text}");
        assert_eq!(sample(&format!("{EVENT_LOOP_LAG}_bucket{{le=\"0.1\"}}")), 0.0, "{text}");
    }
}
