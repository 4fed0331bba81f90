//! The monitoring as shipped, against a real Prometheus: three replicas (webhooks and hierarchical quotas on) are
//! scraped every second by `prometheus` with `manifests/deploy/alerts/hnc.rules.yaml` loaded, while a short load
//! runs — trees with sources, a subnamespace, an HRQ at its budget, admission requests (some denied), a few writes
//! refused or throttled by the API server. Then every expression of the Grafana dashboard and the signal of every
//! alert must return series, and Prometheus must have loaded every rule without error. `promtool check rules`
//! checks the rules file first.
//!
//! Needs `prometheus` and `promtool` (e2e/src/tools.rs); skipped against a real cluster (it starts replicas).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hnc_e2e::forest::{forest_names, load_forest, propagated, put_role};
use hnc_e2e::{HNC_NAMESPACE, TestEnv, eventually, replica_user, tools};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::api::rbac::v1::Role;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::{Value, json};

const BINARY: &str = env!("CARGO_BIN_EXE_hnc-e2e-controller");
const CONVERGE: Duration = Duration::from_secs(60);
/// The scrape job; the alerts' `up{job=...}` names the metrics Service, as the ServiceMonitor's targets are named.
const JOB: &str = "hnc-controller-manager-metrics-service";
const REPLICAS: [&str; 3] = ["prom-0", "prom-1", "prom-2"];
const REPLICA_ARGS: [&str; 9] = [
    "--webhook-server-port=0",
    "--webhook-url-base=https://127.0.0.1",
    "--enable-internal-cert-management",
    "--enable-hrq",
    "--apiserver-qps-throttle=500",
    "--shards=8",
    "--lease-duration=3s",
    "--renew-deadline=2s",
    "--retry-period=500ms",
];

fn deploy(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/deploy").join(file)
}

/// What every alert rule's expression compares: each must return series while the alert is not firing. Each
/// signal is a part of the alert's expression (checked, whitespace aside), and every alert must be listed.
const ALERT_SIGNALS: &[(&str, &[&str])] = &[
    (
        "HncPropagationLatencyBudgetBurnFast",
        &[
            "hnc:propagation_latency_over_1s:ratio_rate1h",
            "hnc:propagation_latency_over_1s:ratio_rate5m",
            "hnc:propagation_latency_over_1s:ratio_rate6h",
            "hnc:propagation_latency_over_1s:ratio_rate30m",
        ],
    ),
    (
        "HncPropagationLatencyBudgetBurnSlow",
        &[
            "hnc:propagation_latency_over_1s:ratio_rate1d",
            "hnc:propagation_latency_over_1s:ratio_rate2h",
            "hnc:propagation_latency_over_1s:ratio_rate3d",
            "hnc:propagation_latency_over_1s:ratio_rate6h",
        ],
    ),
    (
        "HncShardWithoutHolder",
        &[
            "max by (namespace) (hnc_shard_unowned_longest_seconds)",
            "max by (namespace) (hnc_lease_duration_seconds)",
        ],
    ),
    ("HncNoLeader", &["max by (namespace) (hnc_is_leader)"]),
    (
        "HncWriteErrors",
        &["sum by (namespace) (rate(hnc_writes_total{outcome=\"failed\"}[10m])) / sum by (namespace) \
           (rate(hnc_writes_total[10m]))"],
    ),
    (
        "HncWritesThrottled",
        &["sum by (namespace) (rate(hnc_write_transient_errors_total{reason=\"throttled\"}[10m])) / sum by \
           (namespace) (rate(hnc_write_duration_seconds_count[10m]))"],
    ),
    (
        "HncWebhookLatencyHigh",
        &["histogram_quantile(0.99, sum by (namespace, le) (rate(hnc_webhook_duration_seconds_bucket[5m])))"],
    ),
    (
        "HncWebhookDenialSpike",
        &[
            "sum by (namespace) (rate(hnc_webhook_requests_total{decision=\"denied\"}[5m])) / sum by (namespace) \
             (rate(hnc_webhook_requests_total[5m]))",
            "sum by (namespace) (rate(hnc_webhook_requests_total{decision=\"denied\"}[5m]))",
        ],
    ),
    ("HncReplicaNotReady", &["hnc_ready"]),
    ("HncTargetDown", &["up{job=\"hnc-controller-manager-metrics-service\"}"]),
    (
        "HncHrqNearBudget",
        &[
            "max by (namespace, hrq_namespace, hrq, resource) (hnc_hrq_used) / max by (namespace, hrq_namespace, \
           hrq, resource) (hnc_hrq_hard > 0)",
        ],
    ),
    (
        "HncHrqOverBudget",
        &[
            "max by (namespace, hrq_namespace, hrq, resource) (hnc_hrq_used) / max by (namespace, hrq_namespace, \
           hrq, resource) (hnc_hrq_hard > 0)",
        ],
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_answers_every_dashboard_query_and_alert_signal() -> anyhow::Result<()> {
    let (Some(prometheus), Some(promtool)) = (tools::prometheus(), tools::promtool()) else { return Ok(()) };
    let started = Instant::now();
    let rules_file = deploy("alerts/hnc.rules.yaml").canonicalize()?;
    let check = Command::new(&promtool).arg("check").arg("rules").arg(&rules_file).output()?;
    assert!(
        check.status.success(),
        "promtool check rules: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let rules: Value = serde_saphyr::from_str(&std::fs::read_to_string(&rules_file)?)?;
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(deploy("dashboards/hnc.json"))?)?;

    let mut env = TestEnv::start(BINARY).await?;
    if env.is_real_cluster() {
        eprintln!("skipped: starts replicas and a Prometheus scraping them on loopback");
        return Ok(());
    }
    let mut replicas = Vec::new();
    for id in REPLICAS {
        replicas.push(env.start_replica(id, &REPLICA_ARGS).await?);
    }
    let targets: Vec<(String, SocketAddr)> =
        replicas.iter().map(|r| (env.replica(*r).id.clone(), env.replica(*r).metrics)).collect();
    let prom = PrometheusServer::start(&prometheus, &targets, &rules_file)?;
    for r in &replicas {
        env.replica(*r).wait_ready(CONVERGE).await?;
    }
    webhooks_registered(&env).await?;

    drive_load(&env).await?;

    // Every target scraped, and a few more scrapes so that every rate has samples after the load.
    eventually(CONVERGE, "Prometheus to scrape all three replicas", || async {
        let up = prom.query("sum(up)").await.ok()?;
        (up.first()?["value"][1].as_str()? == "3").then_some(())
    })
    .await
    .with_context(|| prom.log())?;
    tokio::time::sleep(Duration::from_secs(4)).await;

    let mut failures = Vec::new();
    // The dashboard: every panel's expressions and the variables' queries.
    for (panel, expr) in dashboard_queries(&dashboard) {
        if let Err(e) = prom.query_with_series(&expr).await {
            failures.push(format!("dashboard panel {panel:?}: {expr}\n    {e:#}"));
        }
    }
    // The rules: loaded and evaluated without error, each alert's signals and each recording rule with series.
    let listed = alerts_and_records(&rules);
    let wanted: Vec<&str> = ALERT_SIGNALS.iter().map(|(name, _)| *name).collect();
    let alerts: Vec<&str> = listed.iter().filter(|r| !r.record).map(|r| r.name.as_str()).collect();
    assert_eq!(alerts, wanted, "ALERT_SIGNALS must list every alert of the rules file, in order");
    for rule in &listed {
        let queries: Vec<String> = match rule.record {
            true => vec![rule.name.clone()],
            false => {
                let signals = ALERT_SIGNALS.iter().find(|(n, _)| *n == rule.name).map(|(_, s)| *s).unwrap();
                for signal in signals {
                    assert!(
                        squash(&rule.expr).contains(&squash(signal)),
                        "{}: the signal {signal:?} is not part of its expression {:?}",
                        rule.name,
                        rule.expr
                    );
                }
                signals.iter().map(|s| (*s).to_owned()).collect()
            }
        };
        for query in queries {
            if let Err(e) = prom.query_with_series(&query).await {
                failures.push(format!("rule {}: {query}\n    {e:#}", rule.name));
            }
        }
    }
    failures.extend(prom.rule_health(listed.len()).await?);
    // The process metrics are plausible on every replica.
    for (check, query) in [
        ("resident memory above 1 MiB", "process_resident_memory_bytes > 1048576"),
        ("started within the last hour", "time() - process_start_time_seconds < 3600"),
        ("CPU time used", "process_cpu_seconds_total > 0"),
        ("open file descriptors", "process_open_fds > 0"),
        ("event-loop lag measured", "hnc_runtime_event_loop_lag_seconds_count > 0"),
        ("runtime workers", "hnc_runtime_workers > 0"),
    ] {
        match prom.query(&format!("count({query})")).await {
            Ok(result) if result.first().and_then(|s| s["value"][1].as_str()) == Some("3") => {}
            other => failures.push(format!("{check} ({query}) on every replica: {other:?}")),
        }
    }
    assert!(failures.is_empty(), "{} failed:\n{}\n{}", failures.len(), failures.join("\n"), prom.log());
    eprintln!("prometheus test took {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The quota and objects webhooks are registered (with their CA) once the leader has its certificate.
async fn webhooks_registered(env: &TestEnv) -> anyhow::Result<()> {
    let configs: Api<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration> =
        Api::all(env.client.clone());
    eventually(CONVERGE, "the webhooks to be registered", || async {
        let vwc = configs.get_opt("hnc-validating-webhook-configuration").await.ok()??;
        let hooks = vwc.webhooks?;
        ["hrq.hnc.x-k8s.io", "resourcesquotasstatus.hnc.x-k8s.io", "objects.hnc.x-k8s.io"]
            .iter()
            .all(|name| hooks.iter().any(|h| h.name == *name && h.client_config.ca_bundle.is_some()))
            .then_some(())
    })
    .await
}

/// Trees with propagated sources, a subnamespace, an HRQ at its budget with a use denied, a copy's deletion
/// denied, and copies whose writes the API server first refuses (403, so some writes fail) and then throttles
/// (429 with Retry-After).
async fn drive_load(env: &TestEnv) -> anyhow::Result<()> {
    let sim = env.sim().expect("apisim");
    let trees = forest_names(env, 4);
    load_forest(env, &trees)?;
    for [root, ..] in &trees {
        put_role(env, root, "reader", "get").await?;
    }
    eventually(CONVERGE, "the sources to be copied", || propagated(env, &trees)).await?;

    // A subnamespace, through its anchor.
    let sub = env.ns("prom-sub");
    env.create_anchor(&trees[0][0], &sub).await?;
    eventually(CONVERGE, "the subnamespace", || async { env.namespace(&sub).await.ok()?.map(drop) }).await?;

    // An HRQ at its budget: two secrets of two; a third is denied.
    let quota_root = &trees[1][0];
    let hrq = json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HierarchicalResourceQuota",
        "metadata": {"name": "budget", "namespace": quota_root}, "spec": {"hard": {"secrets": "2"}}});
    let hrqs: Api<hnc_api::HierarchicalResourceQuota> = Api::namespaced(env.client.clone(), quota_root);
    hrqs.create(&PostParams::default(), &serde_json::from_value(hrq)?).await?;
    let secret = |ns: &str, name: &str| -> anyhow::Result<Secret> {
        Ok(serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}}))?)
    };
    eventually(CONVERGE, "the HRQ's singleton ResourceQuota", || async {
        Api::<k8s_openapi::api::core::v1::ResourceQuota>::namespaced(env.client.clone(), &trees[1][1])
            .get_opt("hrq.hnc.x-k8s.io")
            .await
            .ok()?
            .map(drop)
    })
    .await?;
    for (ns, name) in [(&trees[1][1], "s1"), (&trees[1][2], "s2")] {
        Api::<Secret>::namespaced(env.client.clone(), ns)
            .create(&PostParams::default(), &secret(ns, name)?)
            .await?;
    }
    let denied = Api::<Secret>::namespaced(env.client.clone(), quota_root)
        .create(&PostParams::default(), &secret(quota_root, "s3")?)
        .await;
    assert!(matches!(denied, Err(kube::Error::Api(ref s)) if s.code == 403), "over the HRQ: {denied:?}");

    // A copy cannot be deleted: the objects webhook denies it.
    let copies: Api<Role> = Api::namespaced(env.client.clone(), &trees[0][1]);
    let denied = copies.delete("reader", &DeleteParams::default()).await;
    assert!(matches!(denied, Err(kube::Error::Api(ref s)) if s.code == 403), "deleting a copy: {denied:?}");

    // Copy writes refused outright for a moment (failed writes), then throttled (retried after Retry-After).
    let faults = sim.faults();
    let refuse = |error: u16, error_rate: f64, retry_after: Option<u32>| {
        let rules: Vec<_> = REPLICAS
            .iter()
            .map(|id| {
                faults.add(hnc_apisim::FaultRule {
                    verb: Some("POST".to_owned()),
                    resource: Some("roles".to_owned()),
                    user: Some(replica_user(id)),
                    latency: Duration::ZERO,
                    error: Some(error),
                    error_rate,
                    retry_after,
                })
            })
            .collect();
        rules
    };
    // Copy writes refused (403), then throttled (429 with Retry-After), until one of each was answered.
    for (code, rate, retry_after, role, verb) in
        [(403, 1.0, None, "refused", "list"), (429, 0.5, Some(1), "throttled", "watch")]
    {
        let installed = refuse(code, rate, retry_after);
        for [root, ..] in &trees {
            put_role(env, root, role, verb).await?;
        }
        eventually(CONVERGE, &format!("a copy write answered {code}"), || async {
            let answered = sim.writes().iter().filter(|w| w.resource == "roles" && w.code == code).count();
            (answered >= 2).then_some(())
        })
        .await?;
        installed.into_iter().for_each(|id| faults.remove(id));
    }
    eventually(CONVERGE, "every source copied after the faults", || propagated(env, &trees)).await?;

    // A namespace moved into a tree: the hierarchy webhook asks the API server whether its user may do that
    // (a SubjectAccessReview).
    let moved = env.ns("prom-moved");
    env.create_namespace(&moved).await?;
    env.set_parent(&moved, Some(&trees[2][0])).await?;
    Ok(())
}

/// Every PromQL expression of the dashboard, Grafana's variables replaced by values that fit the test's
/// targets, with the title of the panel (or variable) it belongs to. `label_values(METRIC, LABEL)` variable
/// queries become `METRIC` (they need its series).
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let vars: BTreeMap<&str, &str> = [
        ("$__rate_interval", "1m"),
        ("$__interval", "5s"),
        ("$__range", "1m"),
        ("$namespace", HNC_NAMESPACE),
        ("$pod", ".*"),
        ("$instance", ".*"),
    ]
    .into_iter()
    .collect();
    let substitute = |expr: &str| {
        // Longest names first: `$__rate_interval` before `$__interval`.
        let mut names: Vec<_> = vars.keys().collect();
        names.sort_by_key(|n| std::cmp::Reverse(n.len()));
        let mut out = expr.to_owned();
        for name in names {
            out = out.replace(&format!("${{{}}}", &name[1..]), vars[name]).replace(*name, vars[name]);
        }
        assert!(!out.contains('$'), "a Grafana variable the test does not know in {expr:?}");
        out
    };
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("a target's expr");
            queries.push((panel["title"].as_str().unwrap_or_default().to_owned(), substitute(expr)));
        }
    }
    for var in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        let Some(query) = var["query"]["query"].as_str() else { continue };
        let metric = query
            .strip_prefix("label_values(")
            .and_then(|q| q.rsplit_once(','))
            .map_or(query, |(metric, _)| metric.trim());
        queries.push((format!("variable {}", var["name"]), substitute(metric)));
    }
    assert!(queries.len() > 40, "only {} dashboard queries found", queries.len());
    queries
}

struct Rule {
    name: String,
    expr: String,
    record: bool,
}

fn alerts_and_records(rules: &Value) -> Vec<Rule> {
    rules["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["rules"].as_array().expect("rules"))
        .map(|r| {
            let (name, record) = match r["alert"].as_str() {
                Some(alert) => (alert, false),
                None => (r["record"].as_str().expect("alert or record"), true),
            };
            Rule { name: name.to_owned(), expr: r["expr"].as_str().expect("expr").to_owned(), record }
        })
        .collect()
}

/// `text` with every run of whitespace one space, and none inside parentheses' edges.
fn squash(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ").replace("( ", "(").replace(" )", ")")
}

/// A `prometheus` process on a free loopback port, storage in a temporary directory; killed and removed on drop.
struct PrometheusServer {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl PrometheusServer {
    fn start(
        binary: &Path,
        targets: &[(String, SocketAddr)],
        rules: &Path,
    ) -> anyhow::Result<PrometheusServer> {
        let dir = tempfile::tempdir()?;
        let mut scrape = String::new();
        for (pod, addr) in targets {
            scrape.push_str(&format!(
                "      - targets: ['{addr}']\n        labels: {{namespace: {HNC_NAMESPACE}, pod: {pod}}}\n"
            ));
        }
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\nrule_files:\n  - \
             '{}'\nscrape_configs:\n  - job_name: {JOB}\n    static_configs:\n{scrape}",
            rules.display()
        );
        let config_file = dir.path().join("prometheus.yml");
        std::fs::write(&config_file, config)?;
        // A free port: bound, read and released; Prometheus binds it a moment later.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        Ok(PrometheusServer { child, addr, dir, http: reqwest::Client::new() })
    }

    fn log(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        format!("prometheus log (last lines):\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"))
    }

    /// `/api/v1/query` at the current time: the result vector, or the error Prometheus reported.
    async fn query(&self, expr: &str) -> anyhow::Result<Vec<Value>> {
        let url = format!("http://{}/api/v1/query", self.addr);
        let body: Value = self.http.get(url).query(&[("query", expr)]).send().await?.json().await?;
        if body["status"] != "success" {
            bail!("{}: {}", body["errorType"], body["error"]);
        }
        if let Some(warnings) = body["warnings"].as_array().filter(|w| !w.is_empty()) {
            bail!("warnings: {warnings:?}");
        }
        Ok(body["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    async fn query_with_series(&self, expr: &str) -> anyhow::Result<()> {
        if self.query(expr).await?.is_empty() {
            bail!("no series");
        }
        Ok(())
    }

    /// What is wrong with the rules Prometheus loaded: a rule not loaded, not healthy, or never evaluated.
    async fn rule_health(&self, expected: usize) -> anyhow::Result<Vec<String>> {
        let url = format!("http://{}/api/v1/rules", self.addr);
        let body: Value = self.http.get(url).send().await?.json().await?;
        let mut problems = Vec::new();
        let mut seen = 0;
        for group in body["data"]["groups"].as_array().into_iter().flatten() {
            for rule in group["rules"].as_array().into_iter().flatten() {
                seen += 1;
                if rule["health"] != "ok" {
                    problems
                        .push(format!("rule {} is {}: {}", rule["name"], rule["health"], rule["lastError"]));
                }
            }
        }
        if seen != expected {
            problems.push(format!("Prometheus loaded {seen} rules, the file has {expected}"));
        }
        Ok(problems)
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
