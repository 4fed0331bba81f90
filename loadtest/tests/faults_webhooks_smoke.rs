//! Smoke run of the `slow-webhooks` fault (not a measurement), in a test binary of its own: the check that no
//! controller outlives the run looks at every controller process, so harness runs must not overlap.

mod support;

use support::{SHORT_LEASE_ARGS, run_harness};

/// The slow-webhooks fault: the replicas serve HNC's webhooks behind the harness's forwarder, every write is
/// admitted through them, and while they answer past the objects webhook's 2 s timeout, writes of propagated
/// kinds are refused (500) — after which every change still converges.
#[test]
fn slow_webhooks_on_a_small_forest() {
    let out = tempfile::tempdir().unwrap();
    let mut args = vec!["faults", "--faults", "slow-webhooks", "--topology", "forest", "--trees", "8"];
    args.extend(["--namespaces", "40", "--replicas", "2", "--rate", "5", "--fault-duration", "4"]);
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
        "40",
    ]);
    args.extend(SHORT_LEASE_ARGS);
    let result = run_harness(&args, out.path());
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
