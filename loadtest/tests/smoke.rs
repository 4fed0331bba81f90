//! Smoke run of the harness itself (not a speed test): wide-20 with one object per namespace through a cold
//! start, a warm restart and a few seconds of churn, against the embedded apisim with one controller process.
//! It checks that convergence is detected, that the writes necessary match the topology, that the warm restart
//! is counted (and writes nothing), that churn latency is recorded, that the result files are written, and that
//! no controller process outlives the run.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;

use support::run_harness;

fn phase<'a>(result: &'a Value, name: &str) -> &'a Value {
    result["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["phase"] == name)
        .unwrap_or_else(|| panic!("no {name} phase"))
}

#[test]
fn cold_warm_and_churn_on_wide_20() {
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut args =
        vec!["run", "--phases", "cold,warm,churn", "--topology", "wide", "--size", "20", "--objects", "1"];
    args.extend([
        "--rate",
        "5",
        "--duration",
        "3",
        "--idle",
        "1",
        "--settle",
        "2",
        "--timeout",
        "60",
        "--drain",
        "20",
    ]);
    let result = run_harness(&args, out.path());
    assert!(started.elapsed() < Duration::from_secs(120));
    assert_eq!(result["topology"]["namespaces"], 21);

    let cold = phase(&result, "cold");
    assert!(cold["converged_s"].as_f64().is_some_and(|s| s > 0.0), "convergence detected: {cold}");
    // 21 namespaces to label, the root's HierarchyConfiguration to create with its children, and a Role and a
    // RoleBinding copied into each of the 20 children.
    assert_eq!(cold["writes"]["necessary"], 21 + 1 + 40);
    assert!(cold["writes"]["made"].as_u64().unwrap() >= 62, "writes made are counted: {}", cold["writes"]);
    assert!(
        cold["processes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "lt-r0" && p["cpu_s"].as_f64().unwrap() > 0.0)
    );

    let warm = phase(&result, "warm");
    assert_eq!(warm["writes"]["made"], 0, "a warm restart writes nothing: {}", warm["writes"]);
    assert_eq!(warm["ready_s"].as_array().unwrap().len(), 1);

    let churn = phase(&result, "churn");
    let latency = &churn["latency"];
    assert!(latency["count"].as_u64().unwrap() > 0, "churn latency recorded: {latency}");
    assert_eq!(latency["unfinished"], 0, "{churn}");
    assert!(latency["p99_s"].as_f64().unwrap() < 20.0);
    assert!(churn["writes"]["necessary"].as_u64().unwrap() > 0);

    for file in ["summary.md", "cold-progress.svg", "latency-churn.svg"] {
        assert!(Path::new(&out.path().join(file)).exists(), "{file} written");
    }
    let summary = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
    assert!(summary.contains("| warm | 1 |"), "{summary}");
}
