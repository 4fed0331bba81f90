//! Smoke run of the `slow-webhooks` fault (not a measurement), in a test binary of its own: the check that no
//! controller outlives the run looks at every controller process, so harness runs must not overlap.

use std::process::Command;

use serde_json::Value;

mod support;

use support::{CONTROLLER, HARNESS, controllers_running};

/// The slow-webhooks fault: the replicas serve HNC's webhooks behind the harness's forwarder, every write is
/// admitted through them, and while they answer past the objects webhook's 2 s timeout, writes of propagated
/// kinds are refused (500) — after which every change still converges.
#[test]
fn slow_webhooks_on_a_small_forest() {
    let out = tempfile::tempdir().unwrap();
    let status = Command::new(HARNESS)
        .args(["faults", "--faults", "slow-webhooks", "--topology", "forest", "--trees", "8"])
        .args(["--namespaces", "40", "--replicas", "2", "--rate", "5", "--fault-duration", "4"])
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
            "40",
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
    assert!(
        controllers_running().is_empty(),
        "controller processes outlived the run: {:?}",
        controllers_running()
    );

    let result: Value =
        serde_json::from_slice(&std::fs::read(out.path().join("result.json")).unwrap()).unwrap();
    let phase = &result["phases"][1];
    assert_eq!(phase["phase"], "fault slow-webhooks");
    let fault = &phase["fault"];
    assert!(fault["changes"].as_u64().unwrap() > 0, "{fault}");
    assert_eq!(fault["lost"], 0, "{phase}");
    assert_eq!(fault["duplicate_writers"], 0, "{phase}");
    assert!(fault["converged_after_end_s"].as_f64().is_some(), "{fault}");
    let refused = &fault["writes_refused_500"];
    assert!(refused["harness"].as_u64().unwrap() > 0, "churn writes met the timed-out webhook: {fault}");
    assert_eq!(fault["harness_write_failures"], 0, "and succeeded once retried: {fault}");
    let logs = std::fs::read_to_string(out.path().join("logs").join("lt-r0.log")).unwrap();
    assert!(logs.contains("webhook server listening"), "the replica served webhooks");
}
