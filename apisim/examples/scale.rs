//! Measures apisim at scale: memory holding 100,000 namespaces and 1,000,000 small objects, and write
//! throughput over HTTPS through the kube client while several watches (like controller replicas) stream every
//! change.
//!
//! `cargo run --release -p hnc-apisim --example scale -- [namespaces] [objects per namespace] [seconds] [writers] [watches]`

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use hnc_apisim::{ApiSim, Config};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kb / 1024.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<u64> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let namespaces = *args.first().unwrap_or(&100_000);
    let per_ns = *args.get(1).unwrap_or(&10);
    let seconds = *args.get(2).unwrap_or(&10);
    let writers = *args.get(3).unwrap_or(&32);
    let watches = *args.get(4).unwrap_or(&3);

    let sim = ApiSim::start(Config::default()).await?;
    let rss_empty = rss_mib();
    let started = Instant::now();
    for n in 0..namespaces {
        sim.create("", "namespaces", "", json!({"metadata": {"name": format!("ns-{n}")}}))
            .map_err(|e| anyhow::anyhow!(e.message))?;
        for o in 0..per_ns {
            sim.create("", "configmaps", &format!("ns-{n}"), json!({
                "metadata": {"name": format!("cm-{o}"), "labels": {"app": "load"}}, "data": {"key": "value"}
            }))
            .map_err(|e| anyhow::anyhow!(e.message))?;
        }
    }
    let load_secs = started.elapsed().as_secs_f64();
    let objects = sim.object_count();
    let rss_loaded = rss_mib();

    let kubeconfig = Kubeconfig::from_yaml(&sim.kubeconfig_yaml(sim.admin_token()))?;
    let mut config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    config.default_retry = false;
    let client = kube::Client::try_from(config)?;

    // Watches from "now", like controllers after their initial list.
    let received = Arc::new(AtomicU64::new(0));
    let all: Api<ConfigMap> = Api::all(client.clone());
    let rv = all
        .list_metadata(&kube::api::ListParams::default().limit(1))
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    for _ in 0..watches {
        let (all, rv, received) = (all.clone(), rv.clone(), received.clone());
        tokio::spawn(async move {
            let mut stream =
                all.watch(&WatchParams::default().timeout(290), &rv).await.expect("watch").boxed();
            while let Some(Ok(event)) = stream.next().await {
                if matches!(event, WatchEvent::Added(_)) {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(300)).await;

    let written = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut tasks = Vec::new();
    for w in 0..writers {
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), &format!("ns-{}", w % namespaces.max(1)));
        let (written, failed) = (written.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while Instant::now() < deadline {
                let cm: ConfigMap = serde_json::from_value(
                    json!({"metadata": {"name": format!("w{w}-{i}")}, "data": {"k": "v"}}),
                )
                .unwrap();
                match api.create(&PostParams::default(), &cm).await {
                    Ok(_) => written.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
                i += 1;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let writes = written.load(Ordering::Relaxed);
    // Let the watches drain.
    let drain_deadline = Instant::now() + Duration::from_secs(20);
    while received.load(Ordering::Relaxed) < writes * watches && Instant::now() < drain_deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let result = json!({
        "namespaces": namespaces,
        "objects_stored": objects,
        "bulk_load_seconds": (load_secs * 10.0).round() / 10.0,
        "rss_mib_empty": rss_empty.round(),
        "rss_mib_loaded": rss_loaded.round(),
        "http_writers": writers,
        "http_write_seconds": seconds,
        "http_writes": writes,
        "http_write_failures": failed.load(Ordering::Relaxed),
        "http_writes_per_second": (writes as f64 / seconds as f64).round(),
        "watches": watches,
        "watch_events_received": received.load(Ordering::Relaxed),
        "watch_events_expected": writes * watches,
        "rss_mib_end": rss_mib().round(),
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    Ok(())
}
