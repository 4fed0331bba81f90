//! Smoke run of `hnc-loadtest faults` (not a measurement): a tiny forest, two replicas with short leases, a
//! holder SIGKILLed and a 429 storm under churn. It checks that every fault phase is reported with its
//! changes, lost changes, fenced writes, duplicate writers and convergence, that its plot is written, that the
//! killed replica was started again, and that no controller process outlives the run.

use std::time::{Duration, Instant};

mod support;

use support::{SHORT_LEASE_ARGS, run_harness};

#[test]
fn a_holder_kill_and_a_throttle_storm_on_a_small_forest() {
    let out = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let mut args =
        vec!["faults", "--faults", "holder-kill,throttle-storm", "--topology", "forest", "--trees", "8"];
    args.extend(["--namespaces", "40", "--replicas", "2", "--rate", "5", "--fault-duration", "3"]);
    args.extend([
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
    ]);
    args.extend(SHORT_LEASE_ARGS);
    let result = run_harness(&args, out.path());
    assert!(started.elapsed() < Duration::from_secs(150));
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
