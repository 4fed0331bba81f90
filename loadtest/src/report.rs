//! What a run produces: the result structure (written as `result.json`), its Markdown summary (`summary.md`),
//! and the latency statistics both are built from.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::procstat::Usage;
use crate::tracker::Completed;

/// The machine and moment of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub date: String,
    pub cpu_model: String,
    pub cores: usize,
    pub mem_total_gib: f64,
    pub load_average_at_start: String,
    pub load_average_at_end: String,
    pub git_revision: String,
}

impl Machine {
    pub fn describe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name").and_then(|v| v.split_once(':')).map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0.0);
        let git_revision = std::process::Command::new("git")
            .args(["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "--short", "HEAD"])
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        Machine {
            date: jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string(),
            cpu_model,
            cores: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            mem_total_gib: (mem_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            load_average_at_start: load_average(),
            load_average_at_end: String::new(),
            git_revision,
        }
    }
}

/// `/proc/loadavg`'s first three fields.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Latency statistics of completed changes.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LatencyStats {
    pub count: usize,
    pub p50_s: f64,
    pub p90_s: f64,
    pub p99_s: f64,
    pub max_s: f64,
    pub mean_s: f64,
    /// Per change kind: (count, p50, p99, max).
    pub by_kind: BTreeMap<String, (usize, f64, f64, f64)>,
    /// Changes superseded by a later change to the same objects before completing.
    pub superseded: u64,
    /// Changes still incomplete when the phase gave up on them (counted at infinite latency in the p99).
    pub unfinished: usize,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

impl LatencyStats {
    /// Statistics of `done`, with `unfinished` changes counted as infinitely slow.
    pub fn of(done: &[Completed], superseded: u64, unfinished: usize) -> LatencyStats {
        let mut all: Vec<f64> = done.iter().map(|c| c.latency_s).collect();
        all.sort_by(f64::total_cmp);
        let mut with_unfinished = all.clone();
        with_unfinished.extend(std::iter::repeat_n(f64::INFINITY, unfinished));
        let mut by_kind: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for c in done {
            by_kind.entry(c.kind.to_owned()).or_default().push(c.latency_s);
        }
        LatencyStats {
            count: all.len(),
            p50_s: percentile(&with_unfinished, 0.50),
            p90_s: percentile(&with_unfinished, 0.90),
            p99_s: percentile(&with_unfinished, 0.99),
            max_s: with_unfinished.last().copied().unwrap_or(0.0),
            mean_s: if all.is_empty() { 0.0 } else { all.iter().sum::<f64>() / all.len() as f64 },
            by_kind: by_kind
                .into_iter()
                .map(|(k, mut v)| {
                    v.sort_by(f64::total_cmp);
                    let n = v.len();
                    (k, (n, percentile(&v, 0.5), percentile(&v, 0.99), v[n - 1]))
                })
                .collect(),
            superseded,
            unfinished,
        }
    }
}

/// Writes of one phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Writes {
    /// Writes the model says HNC must make (see `model`).
    pub necessary: usize,
    /// Successful writes by the replicas to the objects the model covers (namespaces, HCs, anchors, copies).
    pub made: u64,
    /// made / necessary (1.00 is the target; None when nothing was necessary).
    pub ratio: Option<f64>,
    /// Failed write attempts by the replicas (409 conflicts, 429 throttling, ...).
    pub failed: u64,
    /// Writes to other resources (HNCConfiguration status, Events, Leases), by `VERB resource code`.
    pub other: BTreeMap<String, u64>,
    /// Everything the replicas wrote, per replica, by `VERB resource code` (apisim's write log; on a cluster
    /// the controllers' `hnc_writes_total` by `verb resource outcome`).
    pub by_replica: BTreeMap<String, BTreeMap<String, u64>>,
    /// Objects the replicas wrote more than once in the phase (apisim), and the ten written most.
    pub objects_written_repeatedly: usize,
    pub most_written: Vec<(String, u64)>,
}

/// Usage of one process (or thread group).
#[derive(Debug, Clone, Serialize)]
pub struct ProcessUsage {
    pub name: String,
    /// CPU seconds during this phase.
    pub cpu_s: f64,
    /// Peak RSS of the process over its life so far, MiB.
    pub peak_rss_mib: Option<f64>,
}

/// One step of a capacity ramp.
#[derive(Debug, Clone, Serialize)]
pub struct Stage {
    pub target_rate: f64,
    pub achieved_rate: f64,
    pub latency: LatencyStats,
    pub within_slo: bool,
    /// Writes the replicas made and the stage made necessary.
    pub writes_made: u64,
    pub writes_necessary: usize,
    /// CPU seconds during the stage, replicas and thread groups.
    pub cpu_s: BTreeMap<String, f64>,
}

/// The result of one phase.
#[derive(Debug, Clone, Default, Serialize)]
pub struct PhaseResult {
    pub phase: String,
    pub replicas: usize,
    pub wall_s: f64,
    /// Cold: seconds from starting the controllers until every expected key was observed.
    pub converged_s: Option<f64>,
    /// Seconds until the last write by a replica (apisim only).
    pub last_write_s: Option<f64>,
    /// Seconds until each replica's /readyz answered 200.
    pub ready_s: Vec<f64>,
    pub writes: Writes,
    pub latency: Option<LatencyStats>,
    /// The controllers' own `hnc_propagation_latency_seconds` over the phase (p50, p99), from buckets.
    pub controller_latency_p50_p99_s: Option<(f64, f64)>,
    /// Each replica's admission reviews over the phase, from its `hnc_webhook_duration_seconds` (time in the
    /// handler, every webhook): (reviews, p99 seconds). Empty without webhooks.
    pub admission_by_replica: BTreeMap<String, (u64, f64)>,
    pub processes: Vec<ProcessUsage>,
    /// API requests by `VERB resource` during the phase (apisim).
    pub requests: BTreeMap<String, f64>,
    /// Totals by verb.
    pub requests_by_verb: BTreeMap<String, f64>,
    /// Changes issued (churn/burst), by kind.
    pub changes: BTreeMap<String, u64>,
    /// Capacity ramp stages.
    pub stages: Vec<Stage>,
    /// Capacity: highest rate within the SLO.
    pub capacity_per_s: Option<f64>,
    /// A fault phase: what was injected and what it did.
    pub fault: Option<FaultResult>,
    /// The quota phase (`hnc-loadtest quota`): pod operations under hierarchical quotas.
    pub quota: Option<QuotaResult>,
    pub notes: Vec<String>,
    /// Completed changes (for plots), capped.
    #[serde(skip)]
    pub samples: Vec<Completed>,
    /// (seconds, fraction of expected keys matched, writes so far) during a cold start.
    #[serde(skip)]
    pub progress: Vec<(f64, f64, f64)>,
}

/// One fault injected under churn (`hnc-loadtest faults`). Times are seconds since the phase started.
#[derive(Debug, Clone, Default, Serialize)]
pub struct FaultResult {
    /// The fault's name on the command line.
    pub fault: String,
    /// What was done, exactly.
    pub action: String,
    pub injected_s: f64,
    /// When the fault ended: for a SIGKILL, when the killed replica's Leases expired (kill + lease duration,
    /// the earliest its trees may change hands); SIGCONT; the replicas or the API server serving again; the
    /// injected errors removed; the last watch dropped.
    pub ended_s: f64,
    /// A killed replica: when it was started again.
    pub restarted_s: Option<f64>,
    /// Churn changes made in the phase (before, during and after the fault).
    pub changes: u64,
    /// Changes never observed converged within the drain deadline (must be 0).
    pub lost: usize,
    /// Changes whose write the harness could not make (the API server refused or was unreachable for longer
    /// than the harness retries); not the controllers' doing, and not counted as lost.
    pub harness_write_failures: usize,
    /// Writes the replicas' fences refused during the phase (`hnc_writes_total{outcome="fenced"}`).
    pub fenced: u64,
    /// Accepted writes by a replica into a tree whose shard Lease it did not hold at that moment, by apisim's
    /// record of Lease writes (must be 0; None on a cluster).
    pub duplicate_writers: Option<u64>,
    /// Writes checked for duplicate writers, and writes left out (namespaces that moved between trees).
    pub writes_checked: u64,
    pub writes_unchecked: u64,
    /// A few of the duplicate writes, for diagnosis.
    pub duplicate_examples: Vec<String>,
    /// Seconds from the fault's end until every change made before it ended was observed converged (0 when
    /// all had converged by the end; None when some never did).
    pub converged_after_end_s: Option<f64>,
    /// The goal for `converged_after_end_s`: lease duration + 2 s.
    pub goal_s: f64,
    /// Replica processes that exited on their own during the phase and were started again by the harness.
    pub restarted_after_exit: Vec<String>,
    /// Writes the API server answered 500 during the phase, the harness's and the replicas' (a webhook that
    /// timed out under failurePolicy Fail, in `slow-webhooks`; the injected 500s in `error-burst`).
    pub writes_refused_500: Option<RefusedWrites>,
}

/// Percentiles of a set of durations, in seconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Spread {
    pub count: usize,
    pub p50_s: f64,
    pub p99_s: f64,
    pub max_s: f64,
    pub mean_s: f64,
}

impl Spread {
    /// The spread of `values` (seconds).
    pub fn of(values: &[f64]) -> Spread {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Spread {
            count: sorted.len(),
            p50_s: percentile(&sorted, 0.50),
            p99_s: percentile(&sorted, 0.99),
            max_s: sorted.last().copied().unwrap_or(0.0),
            mean_s: if sorted.is_empty() { 0.0 } else { sorted.iter().sum::<f64>() / sorted.len() as f64 },
        }
    }
}

/// The quota phase: pods created and deleted in random namespaces under hierarchical quotas. Times are seconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct QuotaResult {
    /// The API server: embedded apisim and its load profile, or a cluster.
    pub api_server: String,
    /// `spec.hard.pods` of every HRQ.
    pub budget: u64,
    /// HRQs (one per tree, in its root) and the namespaces under them.
    pub hrqs: usize,
    pub namespaces_under_hrqs: usize,
    /// Cold start of quotas, from the replicas' start: until the last namespace's ResourceQuota
    /// `hrq.hnc.x-k8s.io` was created, and until the last HRQ's status was first written (apisim's write log).
    pub singletons_created_s: Option<f64>,
    pub hrq_status_written_s: Option<f64>,
    /// From the replicas' start until the harness saw everything ready for the churn: every singleton with its
    /// limits and usage, every HRQ status at 0 used, the quota webhook registered.
    pub ready_s: f64,
    pub target_rate: f64,
    pub achieved_rate: f64,
    pub duration_s: f64,
    /// Operations started, and operations not started because `in_flight_limit` requests were outstanding.
    pub operations: u64,
    pub skipped_at_in_flight_limit: u64,
    pub in_flight_limit: usize,
    pub creates: u64,
    pub creates_admitted: u64,
    /// 403 for the quota: HNC's webhook (`exceeded hierarchical quota`) plus the namespace's own ResourceQuota
    /// (`exceeded quota: hrq.hnc.x-k8s.io`, when one namespace alone holds the whole budget).
    pub creates_denied_by_quota: u64,
    pub denied_by_hrq_webhook: u64,
    pub denied_by_resource_quota: u64,
    pub creates_other_errors: u64,
    /// Denials by HNC's webhook although the tree had room by the harness's own count: fewer pods than the
    /// budget counting every create admitted before the denial was answered, and only the deletes done 1 s or
    /// more before the denied create was sent (so not the replicas' watch lag).
    pub denied_with_room: u64,
    pub denied_with_room_examples: Vec<String>,
    pub deletes: u64,
    pub deletes_failed: u64,
    /// Request latency as the harness saw it (the admission path, the quota webhook included).
    pub create_latency: Spread,
    pub admitted_latency: Spread,
    pub denied_latency: Spread,
    pub delete_latency: Spread,
    pub denial_example: Option<String>,
    pub error_examples: Vec<String>,
    /// Pods per tree against the budget, every 250 ms during the churn and once after it (pods listed).
    pub usage_samples: u64,
    pub usage_sample_errors: u64,
    /// The highest pods / budget of any tree in any sample.
    pub max_tree_usage: f64,
    pub max_tree_pods: u64,
    /// (tree, sample) pairs with more pods than the budget (must be 0).
    pub budget_exceeded_samples: u64,
    pub exceeded_examples: Vec<String>,
    pub pods_at_end: u64,
    /// During the churn, per tree and sample: HRQ `status.used.pods` against the pods listed.
    pub status_samples: u64,
    pub status_agreeing: u64,
    pub status_agreement: f64,
    pub status_mean_abs_error: f64,
    pub status_max_abs_error: u64,
    /// After the last operation, per tree: from its last pod change (apisim's write log) until its HRQ's
    /// `status.used.pods` equalled its pod count (the harness's HRQ watch).
    pub convergence: Spread,
    pub convergence_goal_s: f64,
    pub trees_changed: usize,
    pub trees_converged: usize,
    /// Trees whose status still differed at the deadline: `namespace: status vs pods`.
    pub trees_not_converged: Vec<String>,
    /// The replicas' own counters over the phase: the ResourceQuota-status webhook's decisions, the denials it
    /// counted, and the charge writes that lost a race.
    pub webhook_allowed: f64,
    pub webhook_denied: f64,
    pub webhook_denials_counted: f64,
    pub charge_conflicts: f64,
}

/// Writes answered 500, by who made them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RefusedWrites {
    pub harness: u64,
    pub replicas: u64,
}

/// Everything a run produced.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub command: String,
    pub scenario: String,
    pub machine: Machine,
    pub options: crate::cli::Common,
    pub topology: TopologySummary,
    pub load_s: f64,
    pub phases: Vec<PhaseResult>,
    /// Why the run stopped early, if it did.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TopologySummary {
    pub label: String,
    pub namespaces: usize,
    pub trees: usize,
    pub max_depth: usize,
    pub largest_tree: usize,
    pub sources: usize,
    pub expected_copies: usize,
    pub types: Vec<String>,
}

impl TopologySummary {
    /// What is known of a topology that was never loaded.
    pub fn of_spec(spec: &crate::topology::TopologySpec) -> TopologySummary {
        TopologySummary {
            label: spec.label(),
            namespaces: 0,
            trees: 0,
            max_depth: 0,
            largest_tree: 0,
            sources: 0,
            expected_copies: 0,
            types: Vec::new(),
        }
    }
}

impl Usage {
    /// `self - before` in CPU; peak RSS as of now.
    pub fn since(&self, before: &Usage) -> Usage {
        Usage { cpu_s: self.cpu_s - before.cpu_s, peak_rss_mib: self.peak_rss_mib }
    }
}

fn f(x: f64) -> String {
    if x.is_infinite() {
        "∞".into()
    } else if x >= 100.0 {
        format!("{x:.0}")
    } else {
        format!("{x:.3}")
    }
}

/// The Markdown summary of `r`.
pub fn markdown(r: &RunResult) -> String {
    let mut s = String::new();
    let m = &r.machine;
    let _ = writeln!(s, "# hnc-loadtest: {} on {}\n", r.scenario, r.topology.label);
    let _ = writeln!(s, "`{}`\n", r.command);
    let _ = writeln!(
        s,
        "{} · {} × {} · {} GiB · load average {} → {} · git {}\n",
        m.date,
        m.cores,
        m.cpu_model,
        m.mem_total_gib,
        m.load_average_at_start,
        m.load_average_at_end,
        m.git_revision
    );
    let t = &r.topology;
    let _ = writeln!(
        s,
        "Topology: {} namespaces in {} trees (largest {}, depth ≤ {}), {} sources of {}, {} expected copies; loaded in {:.1} s.\n",
        t.namespaces,
        t.trees,
        t.largest_tree,
        t.max_depth,
        t.sources,
        t.types.join("+"),
        t.expected_copies,
        r.load_s
    );
    let _ = writeln!(
        s,
        "| phase | replicas | converged s | last write s | writes made / necessary | ratio | failed | latency p50 / p99 / max s | CPU-s per replica | peak RSS MiB |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
    for p in &r.phases {
        let replicas: Vec<&ProcessUsage> = p.processes.iter().filter(|u| !u.name.starts_with('(')).collect();
        let cpu: Vec<String> = replicas.iter().map(|u| format!("{:.1}", u.cpu_s)).collect();
        let rss: Vec<String> =
            replicas.iter().map(|u| u.peak_rss_mib.map_or("-".into(), |x| format!("{x:.0}"))).collect();
        let lat = p
            .latency
            .as_ref()
            .map_or("-".into(), |l| format!("{} / {} / {}", f(l.p50_s), f(l.p99_s), f(l.max_s)));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} |",
            p.phase,
            p.replicas,
            p.converged_s.map_or("-".into(), f),
            p.last_write_s.map_or("-".into(), f),
            p.writes.made,
            p.writes.necessary,
            p.writes.ratio.map_or("-".into(), |x| format!("{x:.2}")),
            p.writes.failed,
            lat,
            cpu.join(", "),
            rss.join(", "),
        );
    }
    let faults: Vec<(&PhaseResult, &FaultResult)> =
        r.phases.iter().filter_map(|p| Some((p, p.fault.as_ref()?))).collect();
    if !faults.is_empty() {
        let _ = writeln!(
            s,
            "\n| fault | changes | lost | writes fenced | duplicate writers | converged after the fault s (goal) | latency p50 / p99 / max s |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        for (p, fr) in faults {
            let lat = p
                .latency
                .as_ref()
                .map_or("-".into(), |l| format!("{} / {} / {}", f(l.p50_s), f(l.p99_s), f(l.max_s)));
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} (≤ {}) | {} |",
                fr.fault,
                fr.changes,
                fr.lost,
                fr.fenced,
                fr.duplicate_writers.map_or("-".into(), |d| d.to_string()),
                fr.converged_after_end_s.map_or("never".into(), f),
                f(fr.goal_s),
                lat
            );
        }
    }
    for q in r.phases.iter().filter_map(|p| p.quota.as_ref()) {
        quota_markdown(&mut s, q);
    }
    if let Some(e) = &r.error {
        let _ = writeln!(s, "\n**The run stopped early:** {e}");
    }
    for p in &r.phases {
        let _ = writeln!(s, "\n## {}\n", p.phase);
        for u in &p.processes {
            let _ = writeln!(
                s,
                "* {}: {:.2} CPU-s{}",
                u.name,
                u.cpu_s,
                u.peak_rss_mib.map_or(String::new(), |x| format!(", peak RSS {x:.0} MiB"))
            );
        }
        if let Some(fr) = &p.fault {
            let _ = writeln!(
                s,
                "* fault: {} — injected at {:.1} s, ended at {:.1} s; {} changes, {} lost, {} harness writes failed; \
                 {} writes fenced; duplicate writers {} ({} writes checked, {} in namespaces that moved left out)",
                fr.action,
                fr.injected_s,
                fr.ended_s,
                fr.changes,
                fr.lost,
                fr.harness_write_failures,
                fr.fenced,
                fr.duplicate_writers.map_or("not observable".into(), |d| d.to_string()),
                fr.writes_checked,
                fr.writes_unchecked
            );
            for example in &fr.duplicate_examples {
                let _ = writeln!(s, "  * duplicate write: {example}");
            }
            if !fr.restarted_after_exit.is_empty() {
                let _ =
                    writeln!(s, "  * exited on their own and started again: {:?}", fr.restarted_after_exit);
            }
        }
        if !p.ready_s.is_empty() {
            let ready: Vec<String> = p.ready_s.iter().map(|x| format!("{x:.2}")).collect();
            let _ = writeln!(s, "* ready after (s): {}", ready.join(", "));
        }
        if let Some((p50, p99)) = p.controller_latency_p50_p99_s {
            let _ = writeln!(
                s,
                "* controller-side propagation latency (its histogram): p50 {} s, p99 {} s",
                f(p50),
                f(p99)
            );
        }
        if !p.admission_by_replica.is_empty() {
            let per: Vec<String> = p
                .admission_by_replica
                .iter()
                .map(|(id, (n, p99))| format!("{id} {n} reviews, p99 {:.2} ms", p99 * 1000.0))
                .collect();
            let _ =
                writeln!(s, "* admission (replicas' histograms, time in the handler): {}", per.join("; "));
        }
        if let Some(l) = &p.latency {
            let _ = writeln!(
                s,
                "* changes completed: {}, superseded: {}, unfinished: {}; mean {} s",
                l.count,
                l.superseded,
                l.unfinished,
                f(l.mean_s)
            );
            for (kind, (n, p50, p99, max)) in &l.by_kind {
                let _ =
                    writeln!(s, "  * {kind}: {n}, p50 {} s, p99 {} s, max {} s", f(*p50), f(*p99), f(*max));
            }
        }
        if !p.changes.is_empty() {
            let _ = writeln!(s, "* changes issued: {:?}", p.changes);
        }
        if !p.requests_by_verb.is_empty() {
            let _ = writeln!(s, "* API requests by verb: {:?}", p.requests_by_verb);
        }
        if !p.writes.other.is_empty() {
            let _ = writeln!(s, "* other writes: {:?}", p.writes.other);
        }
        if p.writes.objects_written_repeatedly > 0 {
            let _ = writeln!(
                s,
                "* objects written more than once: {}, most: {:?}",
                p.writes.objects_written_repeatedly, p.writes.most_written
            );
        }
        for (replica, w) in &p.writes.by_replica {
            let _ = writeln!(s, "* writes by {replica}: {w:?}");
        }
        if !p.stages.is_empty() {
            let _ = writeln!(
                s,
                "\n| target rate /s | achieved /s | completed | p50 s | p99 s | max s | within SLO | writes made / necessary | CPU-s |"
            );
            let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|");
            for st in &p.stages {
                let cpu: Vec<String> = st.cpu_s.iter().map(|(k, v)| format!("{k} {v:.1}")).collect();
                let _ = writeln!(
                    s,
                    "| {:.1} | {:.1} | {} | {} | {} | {} | {} | {} / {} | {} |",
                    st.target_rate,
                    st.achieved_rate,
                    st.latency.count,
                    f(st.latency.p50_s),
                    f(st.latency.p99_s),
                    f(st.latency.max_s),
                    if st.within_slo { "yes" } else { "no" },
                    st.writes_made,
                    st.writes_necessary,
                    cpu.join(", ")
                );
            }
            let _ = writeln!(
                s,
                "\nCapacity: {}",
                p.capacity_per_s.map_or("none within the SLO".into(), |c| format!("{c:.1} changes/s"))
            );
        }
        for note in &p.notes {
            let _ = writeln!(s, "* note: {note}");
        }
    }
    s
}

/// The quota phase's figures, in plain sentences.
fn quota_markdown(s: &mut String, q: &QuotaResult) {
    let spread = |x: &Spread| format!("p50 {} s, p99 {} s, max {} s", f(x.p50_s), f(x.p99_s), f(x.max_s));
    let _ = writeln!(s, "\n## Hierarchical quotas\n");
    let _ = writeln!(s, "* API server: {}.", q.api_server);
    let _ = writeln!(
        s,
        "* {} HRQs of {} pods, one in each root, over {} namespaces.",
        q.hrqs, q.budget, q.namespaces_under_hrqs
    );
    let _ = writeln!(
        s,
        "* Cold start of quotas, from the replicas' start: last ResourceQuota created at {} s, last HRQ status \
         first written at {} s, everything ready for the churn at {} s.",
        q.singletons_created_s.map_or("-".into(), f),
        q.hrq_status_written_s.map_or("-".into(), f),
        f(q.ready_s)
    );
    let _ = writeln!(
        s,
        "* Pod operations: {} in {} s ({:.1}/s of {:.1}/s asked); {} not started because {} were in flight.",
        q.operations,
        f(q.duration_s),
        q.achieved_rate,
        q.target_rate,
        q.skipped_at_in_flight_limit,
        q.in_flight_limit
    );
    let _ = writeln!(
        s,
        "* Creates: {}; admitted {}; denied by the quota {} ({} by HNC's webhook, {} by the namespace's own \
         ResourceQuota); other errors {}.",
        q.creates,
        q.creates_admitted,
        q.creates_denied_by_quota,
        q.denied_by_hrq_webhook,
        q.denied_by_resource_quota,
        q.creates_other_errors
    );
    let _ = writeln!(
        s,
        "* Denied by HNC's webhook although the tree had room (fewer pods than the budget counting every create \
         admitted by then, and only deletes done 1 s before): {}.",
        q.denied_with_room
    );
    let _ = writeln!(s, "* Deletes: {}; failed {}.", q.deletes, q.deletes_failed);
    let _ = writeln!(s, "* Create latency, all: {}.", spread(&q.create_latency));
    let _ = writeln!(s, "  * admitted: {}.", spread(&q.admitted_latency));
    let _ = writeln!(s, "  * denied: {}.", spread(&q.denied_latency));
    let _ = writeln!(s, "* Delete latency: {}.", spread(&q.delete_latency));
    let _ = writeln!(
        s,
        "* Budget: {} samples of the pods per tree; the fullest tree held {} pods, {:.0} % of its budget; \
         {} (tree, sample) pairs over the budget (must be 0); {} pods at the end.",
        q.usage_samples,
        q.max_tree_pods,
        q.max_tree_usage * 100.0,
        q.budget_exceeded_samples,
        q.pods_at_end
    );
    let _ = writeln!(
        s,
        "* HRQ status during the churn: {:.1} % of {} (tree, sample) pairs agreed with the pods listed; off by \
         {:.2} pods on average, {} at most.",
        q.status_agreement * 100.0,
        q.status_samples,
        q.status_mean_abs_error,
        q.status_max_abs_error
    );
    let _ = writeln!(
        s,
        "* HRQ status after the last operation, from each tree's last pod change until its status matched: {} \
         (goal {} s); {} of {} changed trees converged.",
        spread(&q.convergence),
        f(q.convergence_goal_s),
        q.trees_converged,
        q.trees_changed
    );
    let _ = writeln!(
        s,
        "* The replicas' ResourceQuota-status webhook: {} allowed, {} denied ({} counted as quota denials); {} \
         charge writes lost a race and were retried.",
        q.webhook_allowed, q.webhook_denied, q.webhook_denials_counted, q.charge_conflicts
    );
    if let Some(d) = &q.denial_example {
        let _ = writeln!(s, "* A denial: {d}");
    }
    for e in &q.error_examples {
        let _ = writeln!(s, "* An error: {e}");
    }
    for e in &q.exceeded_examples {
        let _ = writeln!(s, "* Over the budget: {e}");
    }
    for e in &q.denied_with_room_examples {
        let _ = writeln!(s, "* Denied with room: {e}");
    }
    for t in &q.trees_not_converged {
        let _ = writeln!(s, "* Not converged: {t}");
    }
}

/// Writes `result.json` and `summary.md` into `dir`.
pub fn write(dir: &Path, r: &RunResult) -> anyhow::Result<()> {
    std::fs::write(dir.join("result.json"), serde_json::to_string_pretty(r)?)?;
    std::fs::write(dir.join("summary.md"), markdown(r))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_count_unfinished_changes_as_infinitely_slow() {
        let done: Vec<Completed> = (1..=99)
            .map(|i| Completed { kind: "create", at_s: 0.0, registered_s: 0.0, latency_s: i as f64 / 100.0 })
            .collect();
        let l = LatencyStats::of(&done, 0, 0);
        assert_eq!((l.count, l.p50_s, l.p99_s, l.max_s), (99, 0.5, 0.99, 0.99));
        let l = LatencyStats::of(&done, 0, 2);
        assert!(l.p99_s.is_infinite(), "2 of 101 unfinished push p99 past every finite latency");
    }
}
