//! Smoke run of `hnc-loadtest faults` (not a measurement): a tiny forest, two replicas with short leases, a
//! holder SIGKILLed and a 429 storm under churn. It checks that every fault phase is reported with its
//! changes, lost changes, fenced writes, duplicate writers and convergence, that its plot is written, that the
//! killed replica was started again, and that no controller process outlives the run.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

mod support;

use support::{CONTROLLER, HARNESS, controllers_running};

#[test]
fn a_holder_kill_and_a_throttle_storm_on_a_small_forest() {
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let status = Command::new(HARNESS)
        .args(["faults", "--faults", "holder-kill,throttle-storm", "--topology", "forest", "--trees", "8"])
        .args(["--namespaces", "40", "--replicas", "2", "--rate", "5", "--fault-duration", "3"])
        .args([
            "--fault-baseline",
            "2",
            "--fault-after",
            "2",
            "--idle",
            "1",
            "--timeout",
            "60",
            "--drain",
            "30",
        ])
        .args([
            "--controller-arg=--lease-duration=3s",
            "--controller-arg=--renew-deadline=2s",
            "--controller-arg=--retry-period=500ms",
            "--controller-arg=--shards=8",
        ])
        .args(["--no-progress", "--controller-binary", CONTROLLER, "--out"])
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success(), "the harness failed: {status}");
    assert!(started.elapsed() < Duration::from_secs(150));
    assert!(
        controllers_running().is_empty(),
        "controller processes outlived the run: {:?}",
        controllers_running()
    );

    let result: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("result.json")).unwrap()).unwrap();
    let phases = result["phases"].as_array().unwrap();
    let names: Vec<&str> = phases.iter().map(|p| p["phase"].as_str().unwrap()).collect();
    assert_eq!(names, ["cold", "fault holder-kill", "fault throttle-storm"]);
    for p in &phases[1..] {
        let fault = &p["fault"];
        assert!(fault["changes"].as_u64().unwrap() > 0, "{fault}");
        assert_eq!(fault["lost"], 0, "{p}");
        assert_eq!(fault["duplicate_writers"], 0, "{p}");
        assert!(fault["writes_checked"].as_u64().unwrap() > 0, "apisim's write log was checked: {fault}");
        assert!(fault["fenced"].as_u64().is_some());
        assert!(fault["converged_after_end_s"].as_f64().is_some(), "{fault}");
        assert!(fault["ended_s"].as_f64().unwrap() >= fault["injected_s"].as_f64().unwrap());
        assert!(p["latency"]["count"].as_u64().unwrap() > 0);
        let plot = out.path().join(format!("latency-fault-{}.svg", fault["fault"].as_str().unwrap()));
        assert!(plot.exists(), "{} written", plot.display());
    }
    let kill = &phases[1]["fault"];
    assert!(kill["action"].as_str().unwrap().starts_with("SIGKILL"), "{kill}");
    assert!(kill["restarted_s"].as_f64().is_some(), "the killed replica was started again: {kill}");
    assert_eq!(phases[2]["replicas"], 2, "the storm ran with both replicas");
    let failed = phases[2]["writes"]["by_replica"].as_object().unwrap().values().flat_map(|w| {
        w.as_object().unwrap().iter().filter(|(k, _)| k.ends_with(" 429")).map(|(_, n)| n.as_u64().unwrap())
    });
    assert!(failed.sum::<u64>() > 0, "the replicas' writes met 429s: {}", phases[2]["writes"]);
    let summary = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
    assert!(summary.contains("| holder-kill |") && summary.contains("| throttle-storm |"), "{summary}");
}
