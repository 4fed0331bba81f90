//! Measures the writer against apisim under its realistic load profile (writes hold one of a fixed number of seats
//! for an etcd-like commit, queue beyond them, 429 with Retry-After when the queue is full). Not a test: it
//! prints figures for docs and reviews.
//!
//! ```sh
//! # writes/s at the default configuration (adaptive), and under the old default ceiling of 50/s:
//! cargo run --release -p hnc-controller --example writer_load -- throughput --qps 0
//! cargo run --release -p hnc-controller --example writer_load -- throughput --qps 50
//! # how long a 99-write batch submitted right after a 10,000-write batch takes:
//! cargo run --release -p hnc-controller --example writer_load -- fairness --qps 0
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hnc_apisim::{ApiSim, LoadProfile};
use hnc_controller::writer::{
    ObjectRef, Outcome, WriteOp, WriteRequest, Writer, WriterConfig, outcome_channel,
};
use kube::core::ApiResource;
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// `throughput`: writes/s over a fixed time; `fairness`: a small batch queued behind a large one.
    #[arg(value_parser = ["throughput", "fairness"])]
    mode: String,
    /// The writer's --apiserver-qps-throttle: 0 adaptive (the default), >0 a hard ceiling.
    #[arg(long, default_value_t = 0.0)]
    qps: f64,
    /// Seats for writes (kube-apiserver: --max-mutating-requests-inflight=200).
    #[arg(long, default_value_t = 200)]
    seats: usize,
    /// Writes that may wait for a seat before 429.
    #[arg(long, default_value_t = 300)]
    queue: usize,
    /// Commit latency of a write, milliseconds.
    #[arg(long, default_value_t = 5)]
    commit_ms: u64,
    /// throughput: seconds measured (after 2 s of warm-up).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// fairness: writes queued first.
    #[arg(long, default_value_t = 10_000)]
    backlog: usize,
    /// fairness: writes submitted right after.
    #[arg(long, default_value_t = 99)]
    batch: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sim = ApiSim::start(hnc_apisim::Config::default()).await?;
    sim.faults().set_profile(Some(LoadProfile {
        commit_latency: Duration::from_millis(args.commit_ms),
        seats: args.seats,
        queue_length: args.queue,
        ..LoadProfile::realistic()
    }));
    let kubeconfig = kube::config::Kubeconfig::from_yaml(&sim.kubeconfig_yaml(sim.admin_token()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?;
    let (tx, mut rx) = outcome_channel();
    let (writer, _task) = Writer::start(
        hnc_controller::writer::writer_client(&config)?,
        WriterConfig::from_flag(args.qps),
        Arc::new(|_: &str| true),
    );
    let writer = writer.reporting_to(tx);
    let resource = Arc::new(ApiResource::erase::<k8s_openapi::api::core::v1::ConfigMap>(&()));
    let create = |name: String, tag: u64| {
        let body = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": "default"}});
        let mut r = WriteRequest::new(
            ObjectRef::new(resource.clone(), Some("default"), &name),
            WriteOp::create(body),
            "default",
        );
        r.tag = tag;
        r
    };
    println!(
        "apisim realistic profile: {} seats, {} queued, {} ms commit; writer --apiserver-qps-throttle={}",
        args.seats, args.queue, args.commit_ms, args.qps
    );

    match args.mode.as_str() {
        "throughput" => {
            // More than can be written in the time: the writer is never short of work.
            let total = ((args.seconds + 2) as usize * 20_000).min(1_000_000);
            writer.submit_batch((0..total).map(|i| create(format!("t-{i}"), 0)).collect());
            let warm_up = Instant::now() + Duration::from_secs(2);
            while Instant::now() < warm_up {
                rx.recv().await;
            }
            let before = sim.faults().profile_stats();
            let started = Instant::now();
            let end = started + Duration::from_secs(args.seconds);
            let mut done = 0u64;
            let mut limits = Vec::new();
            let mut next_sample = started;
            while Instant::now() < end {
                let Ok(Some(c)) = tokio::time::timeout_at(end.into(), rx.recv()).await else { break };
                if c.outcome == Outcome::Written {
                    done += 1;
                }
                if Instant::now() >= next_sample {
                    limits.push(writer.concurrency_limit());
                    next_sample += Duration::from_millis(500);
                }
            }
            let elapsed = started.elapsed().as_secs_f64();
            let after = sim.faults().profile_stats();
            let admitted = after.admitted - before.admitted;
            let rejected = after.rejected - before.rejected;
            limits.sort_unstable();
            println!("writes/s: {:.0} ({done} in {elapsed:.1} s)", done as f64 / elapsed);
            println!(
                "429s: {rejected} of {} requests ({:.2}%)",
                admitted + rejected,
                100.0 * rejected as f64 / (admitted + rejected).max(1) as f64
            );
            println!(
                "at the server: {:.1} requests waiting for a seat on average, {:.2} ms mean wait per write",
                (after.waited - before.waited).as_secs_f64() / elapsed,
                (after.waited - before.waited).as_secs_f64() * 1e3 / admitted.max(1) as f64
            );
            println!(
                "concurrency limit over the run: min {} median {} max {}",
                limits.first().unwrap_or(&0),
                limits.get(limits.len() / 2).unwrap_or(&0),
                limits.last().unwrap_or(&0)
            );
        }
        _ => {
            writer.submit_batch((0..args.backlog).map(|i| create(format!("b-{i}"), 0)).collect());
            let submitted = Instant::now();
            writer.submit_batch((0..args.batch).map(|i| create(format!("f-{i}"), 1)).collect());
            let (mut fresh, mut backlog) = (0, 0);
            while fresh < args.batch {
                let c = rx.recv().await.expect("writer running");
                if c.tag == 1 { fresh += 1 } else { backlog += 1 }
            }
            println!(
                "the {}-write batch completed {:.2} s after it was submitted, with {backlog} of the {} backlog \
                 writes done",
                args.batch,
                submitted.elapsed().as_secs_f64(),
                args.backlog
            );
        }
    }
    writer.shutdown();
    sim.shutdown().await;
    Ok(())
}
