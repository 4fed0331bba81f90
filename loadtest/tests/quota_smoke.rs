//! Smoke run of the quota scenario (not a measurement), in a test binary of its own: the check that no controller
//! outlives the run looks at every controller process, so harness runs must not overlap.

mod support;

use support::run_harness;

/// Five trees of five namespaces under HRQs of 4 pods, pods created and deleted at 40/s for 5 s: the trees fill
/// up, so some creates are admitted and others denied by HNC's ResourceQuota-status webhook (which the replicas
/// serve behind the harness's forwarder, with `--enable-hrq`); no tree ever holds more pods than its budget, and
/// every HRQ's status ends at its tree's pod count.
#[test]
fn quota_churn_on_a_small_forest() {
    let out = tempfile::tempdir().unwrap();
    let mut args = vec!["quota", "--trees", "5", "--namespaces", "25", "--quota-budget", "4"];
    args.extend(["--rate", "40", "--duration", "5", "--idle", "1", "--timeout", "60", "--drain", "20"]);
    let result = run_harness(&args, out.path());
    assert_eq!(result["scenario"], "quota");
    assert_eq!(result["topology"]["namespaces"], 25);
    let phase = &result["phases"][1];
    assert_eq!(phase["phase"], "quota", "{result}");
    let q = &phase["quota"];
    eprintln!(
        "quota smoke: {} operations; creates {} admitted, {} denied by the webhook ({} with room), {} by the \
         ResourceQuota, {} other errors; create latency p50/p99/max {}/{}/{} s; max tree usage {}, {} samples over \
         the budget; status agreement {}; convergence p50/p99/max {}/{}/{} s over {} trees",
        q["operations"],
        q["creates_admitted"],
        q["denied_by_hrq_webhook"],
        q["denied_with_room"],
        q["denied_by_resource_quota"],
        q["creates_other_errors"],
        q["create_latency"]["p50_s"],
        q["create_latency"]["p99_s"],
        q["create_latency"]["max_s"],
        q["max_tree_usage"],
        q["budget_exceeded_samples"],
        q["status_agreement"],
        q["convergence"]["p50_s"],
        q["convergence"]["p99_s"],
        q["convergence"]["max_s"],
        q["trees_converged"],
    );
    assert_eq!(q["hrqs"], 5, "{q}");
    assert!(q["singletons_created_s"].as_f64().is_some_and(|s| s > 0.0), "quota cold start measured: {q}");

    assert!(q["operations"].as_u64().unwrap() >= 150, "about 200 operations at 40/s for 5 s: {q}");
    assert!(q["creates_admitted"].as_u64().unwrap() > 0, "{q}");
    // Denials by HNC's webhook, not only by a namespace's own ResourceQuota: the webhook is called and decides.
    assert!(q["denied_by_hrq_webhook"].as_u64().unwrap() > 0, "the quota webhook denied creates: {q}");
    assert!(
        q["denial_example"].as_str().unwrap().contains(
            "admission webhook \"resourcesquotasstatus.hnc.x-k8s.io\" denied the request: exceeded hierarchical quota"
        ),
        "{q}"
    );
    assert_eq!(q["creates_other_errors"], 0, "{q}");
    assert_eq!(q["deletes_failed"], 0, "{q}");
    assert!(q["webhook_denied"].as_f64().unwrap() > 0.0, "the replicas counted their denials: {q}");
    assert!(q["create_latency"]["p99_s"].as_f64().unwrap() > 0.0, "{q}");

    assert!(q["usage_samples"].as_u64().unwrap() >= 10, "pods counted every 250 ms: {q}");
    assert_eq!(q["budget_exceeded_samples"], 0, "no tree over its budget: {q}");
    assert!(q["max_tree_usage"].as_f64().unwrap() <= 1.0, "{q}");
    assert!(q["max_tree_pods"].as_u64().unwrap() >= 3, "the trees filled up: {q}");

    let changed = q["trees_changed"].as_u64().unwrap();
    assert!(changed > 0, "{q}");
    assert_eq!(q["trees_converged"], changed, "every HRQ status converged: {q}");
    assert!(q["status_samples"].as_u64().unwrap() > 0, "{q}");

    let replica = phase["processes"].as_array().unwrap().iter().find(|p| p["name"] == "lt-r0").unwrap();
    assert!(replica["cpu_s"].as_f64().unwrap() > 0.0, "{replica}");
    let summary = std::fs::read_to_string(out.path().join("summary.md")).unwrap();
    assert!(summary.contains("## Hierarchical quotas"), "{summary}");
    let logs = std::fs::read_to_string(out.path().join("logs").join("lt-r0.log")).unwrap();
    assert!(logs.contains("webhook server listening"), "the replica served webhooks");
}
