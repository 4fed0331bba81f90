//! One measured environment: a target loaded with a topology, the harness's watches and model over it, and the
//! controller replicas under test; plus the phases run in it (cold start, warm restart, churn, burst).
//!
//! ```text
//!  prepare: target ◀─load── topology + sources      watches ──▶ tracker ◀── model.expected()
//!  cold:    start replicas ─▶ wait: every expected key observed, replicas ready, writers idle
//!  warm:    stop replicas, start them again ─▶ ready, planned, then `settle` s: count writes (must be 0)
//!  churn:   at `rate`/s: pick a change ─▶ model delta ─▶ tracker.register ─▶ write ─▶ ack ─▶ latency
//!  burst:   one new source in the largest root at a time, until all its copies are observed
//! ```
//!
//! Each phase is measured by a [`Meter`]: writes from apisim's log (per replica user) or the controllers'
//! metrics, CPU and peak RSS per replica from /proc, apisim's and the harness's CPU by thread name, API requests.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::ApiResource;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::cli::{Common, HierarchyMode};
use crate::model::{Delta, Model, Source, source_name};
use crate::objects::{PropType, api_resource, fingerprint_json, hnc_configuration, policy_crd, prop_types};
use crate::procstat::{self, Usage};
use crate::prom;
use crate::replicas::{Launch, Replica};
use crate::report::{LatencyStats, PhaseResult, ProcessUsage, TopologySummary, Writes};
use crate::target::{LoadItem, SimLoad, Target};
use crate::topology::{NS_PREFIX, Topology};
use crate::tracker::{Completed, Tracker};

/// Namespaces the API server has of its own, which the controllers are told to leave alone.
const SYSTEM_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

fn namespaces() -> ApiResource {
    api_resource("", "v1", "Namespace", "namespaces")
}
fn hierarchies() -> ApiResource {
    api_resource(hnc_api::GROUP, "v1alpha2", "HierarchyConfiguration", "hierarchyconfigurations")
}
fn anchors() -> ApiResource {
    api_resource(hnc_api::GROUP, "v1alpha2", "SubnamespaceAnchor", "subnamespaceanchors")
}

/// The kinds of change churn makes.
const KINDS: [&str; 6] = ["create", "update", "delete", "subns-create", "subns-delete", "reparent"];

/// Parses `create=3,update=4,...` into weights in [`KINDS`] order.
pub fn parse_mix(mix: &str) -> anyhow::Result<[f64; 6]> {
    let mut weights = [0.0; 6];
    for part in mix.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (kind, weight) =
            part.split_once('=').with_context(|| format!("--mix: {part:?} is not KIND=WEIGHT"))?;
        let i = KINDS
            .iter()
            .position(|k| *k == kind.trim())
            .with_context(|| format!("--mix: unknown kind {kind:?} (kinds: {})", KINDS.join(", ")))?;
        weights[i] = weight.trim().parse().with_context(|| format!("--mix: bad weight in {part:?}"))?;
    }
    anyhow::ensure!(weights.iter().any(|w| *w > 0.0), "--mix: every weight is 0");
    Ok(weights)
}

/// Counters a phase is measured against.
struct Meter {
    started: Instant,
    write_index: Option<usize>,
    usage: HashMap<String, Usage>,
    sim_cpu: f64,
    harness_cpu: f64,
    process_cpu: f64,
    requests: Option<BTreeMap<String, f64>>,
    controller_writes: BTreeMap<String, Vec<prom::Sample>>,
}

/// A churn change, chosen and applied to the model, waiting to be written.
struct Change {
    kind: &'static str,
    delta: Delta,
    write: Write,
}

enum Write {
    Create(Vec<(ApiResource, String, Value)>),
    Patch(Vec<(ApiResource, String, String, Value)>),
    Delete(Vec<(ApiResource, String, String)>),
}

pub struct Session {
    pub opts: Common,
    target: Target,
    client: kube::Client,
    http: reqwest::Client,
    types: Vec<PropType>,
    model: Model,
    tracker: Arc<Mutex<Tracker>>,
    watches: Vec<tokio::task::JoinHandle<()>>,
    replicas: Vec<Replica>,
    launch: Option<Launch>,
    replica_count: usize,
    logs: PathBuf,
    _scratch: tempfile::TempDir,
    rng: StdRng,
    /// Namespaces of the loaded topology (never deleted by churn).
    original: Vec<String>,
    /// Loaded full namespaces that have a parent (re-parent candidates).
    movable: Vec<String>,
    /// Sources churn may update or delete: (namespace, name).
    pool: Vec<(String, String)>,
    /// Subnamespaces churn created: (parent, name, change id).
    created_subns: Vec<(String, String, u64)>,
    counter: usize,
    max_depth: usize,
    pub summary: TopologySummary,
    pub load_s: f64,
    /// Writes necessary for the cold start, computed when the load is observed.
    cold_necessary: usize,
    mix: [f64; 6],
}

impl Session {
    /// Starts the target, loads the topology, starts the harness's watches and waits until they have seen the
    /// load. `replicas` controllers will be started by [`Session::cold`].
    pub async fn prepare(
        opts: &Common,
        sim_runtime: &tokio::runtime::Handle,
        replicas: usize,
        out: &std::path::Path,
        progress: bool,
    ) -> anyhow::Result<Session> {
        let scratch = tempfile::tempdir()?;
        let logs = out.join("logs");
        std::fs::create_dir_all(&logs)?;
        let target = match &opts.kubeconfig {
            Some(k) => Target::cluster(k),
            None => {
                let load = SimLoad {
                    rate_limit: opts.sim_rate_limit,
                    burst: opts.sim_burst,
                    latency_ms: opts.sim_latency_ms,
                    profile_seats: opts
                        .sim_profile
                        .map(|_| opts.sim_seats.unwrap_or(hnc_apisim::LoadProfile::realistic().seats)),
                };
                Target::start_sim(sim_runtime, load, scratch.path()).await?
            }
        };
        let client = target.admin_client().await?;
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        let types = prop_types(opts.configmaps, opts.custom_resources);
        let spec = opts.topology_spec();
        let topology = Topology::generate(&spec)?;
        let anchors_mode = opts.hierarchy == HierarchyMode::Anchors;
        let model = Model::new(&topology, &types, opts.objects, anchors_mode, |t, ns, name| {
            fingerprint_json(&types[t].source(ns, name, 1))
        });

        let launch = if opts.replica_metrics_urls.is_empty() {
            let binary = match &opts.controller_binary {
                Some(b) => b.clone(),
                None => default_controller_binary()?,
            };
            Some(Launch {
                binary,
                qps: opts.qps,
                extra_args: opts.controller_args.clone(),
                excluded: SYSTEM_NAMESPACES.iter().map(|s| (*s).to_owned()).collect(),
            })
        } else {
            None
        };

        let depths = topology.depths();
        let counts = topology.descendant_counts();
        let sources = topology.len() * opts.objects;
        let summary = TopologySummary {
            label: spec.label(),
            namespaces: topology.len(),
            trees: topology.roots(),
            max_depth: depths.iter().copied().max().unwrap_or(0),
            largest_tree: topology
                .nodes
                .iter()
                .enumerate()
                .filter(|(_, n)| n.parent.is_none())
                .map(|(i, _)| counts[i] + 1)
                .max()
                .unwrap_or(0),
            sources,
            expected_copies: depths.iter().sum::<usize>() * opts.objects * types.len(),
            types: types.iter().map(|t| t.tag.to_owned()).collect(),
        };

        // Load.
        let items = load_items(&topology, &types, opts, anchors_mode);
        let bar = bar(progress, items.len() as u64, "loading the topology");
        let load_started = Instant::now();
        target.load(&client, items, &bar).await?;
        let load_s = load_started.elapsed().as_secs_f64();
        bar.finish_and_clear();

        // Watch it.
        let tracker = Arc::new(Mutex::new(Tracker::new(Instant::now())));
        let (watches, n) = crate::watch::start(&client, &types, tracker.clone());
        let bar = bar_spinner(progress, "harness watches listing the load");
        let deadline = Instant::now() + Duration::from_secs(600);
        while tracker.lock().synced_watches < n {
            if Instant::now() > deadline {
                bail!("the harness's watches did not list the load within 600 s");
            }
            bar.tick();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bar.finish_and_clear();
        let cold_necessary = tracker.lock().expect_all(model.expected());

        let original: Vec<String> = topology.nodes.iter().map(|n| n.name.clone()).collect();
        let movable = if anchors_mode {
            Vec::new()
        } else {
            topology.nodes.iter().filter(|n| n.parent.is_some()).map(|n| n.name.clone()).collect()
        };
        let pool = model
            .nodes
            .iter()
            .flat_map(|(ns, node)| node.sources.iter().map(move |s| (ns.clone(), s.name.clone())))
            .collect();
        Ok(Session {
            opts: opts.clone(),
            target,
            client,
            http,
            types,
            model,
            tracker,
            watches,
            replicas: Vec::new(),
            launch,
            replica_count: replicas,
            logs,
            _scratch: scratch,
            rng: StdRng::seed_from_u64(opts.seed.wrapping_add(0x5eed)),
            original,
            movable,
            pool,
            created_subns: Vec::new(),
            counter: 0,
            max_depth: summary.max_depth.max(2),
            summary,
            load_s,
            cold_necessary,
            mix: parse_mix(&opts.mix)?,
        })
    }

    // --- replicas ------------------------------------------------------------------------------------------

    async fn start_replicas(&mut self) -> anyhow::Result<()> {
        match &self.launch {
            Some(launch) => {
                for i in 0..self.replica_count {
                    let id = format!("lt-r{i}");
                    let kubeconfig = self.target.replica_kubeconfig(&id)?;
                    let log_dir = self.logs.clone();
                    self.replicas.push(Replica::spawn(launch, &kubeconfig, &id, &log_dir).await?);
                }
            }
            None => {
                self.replicas = self
                    .opts
                    .replica_metrics_urls
                    .iter()
                    .enumerate()
                    .map(|(i, u)| Replica::external(i, u))
                    .collect();
            }
        }
        Ok(())
    }

    async fn stop_replicas(&mut self) -> anyhow::Result<()> {
        for r in &mut self.replicas {
            r.stop().await?;
        }
        if self.launch.is_some() {
            self.replicas.clear();
        }
        Ok(())
    }

    fn sample_replicas(&mut self) -> anyhow::Result<()> {
        for r in &mut self.replicas {
            r.sample()?;
        }
        Ok(())
    }

    /// For keys still awaited after a drain: how each running replica sees the namespace (its
    /// `/debug/namespace` page: root, shard, ownership, cached objects) and, on apisim, the last writes of the
    /// object, so a lost change can be traced to the replica that should have made it.
    async fn diagnose(&self, keys: &[crate::model::Key]) -> Vec<String> {
        let mut notes = Vec::new();
        let writes = self.target.sim().map(|sim| sim.writes_from(0)).unwrap_or_default();
        for key in keys {
            let ns = diagnosed_namespace(key);
            // A copy's source namespace follows the harness's naming of sources (`<prefix><i>.<namespace>`).
            let source_ns =
                key.strip_prefix("o:").and_then(|k| k.rsplit('/').next()?.split_once('.')).map(|(_, s)| s);
            for (ns, r) in
                std::iter::once(ns).chain(source_ns).flat_map(|ns| self.replicas.iter().map(move |r| (ns, r)))
            {
                let Some(health) = r.health else { continue };
                let url = format!("http://{health}/debug/namespace?name={ns}");
                let page = match self.http.get(&url).send().await {
                    Ok(response) => response.text().await.unwrap_or_else(|e| e.to_string()),
                    Err(e) => e.to_string(),
                };
                notes.push(format!("{key}: replica {} sees {ns}: {page}", r.id));
            }
            if let Some(name) = key.strip_prefix("o:").and_then(|k| k.rsplit('/').next()) {
                let ns = diagnosed_namespace(key);
                let recent: Vec<String> = writes
                    .iter()
                    .filter(|w| w.namespace == ns && w.name == name)
                    .rev()
                    .take(6)
                    .map(|w| {
                        let user = w.user.rsplit(':').next().unwrap_or_default();
                        format!("{user} {} {} {:.1}s ago", w.verb, w.code, w.at.elapsed().as_secs_f64())
                    })
                    .collect();
                notes.push(format!("{key}: last writes {recent:?}"));
            }
        }
        notes
    }

    async fn queue_depth(&self) -> f64 {
        let mut depth = 0.0;
        for r in &self.replicas {
            if let Ok(m) = r.metrics(&self.http).await {
                depth += prom::sum(&m, "hnc_write_queue_depth", &[]);
            }
        }
        depth
    }

    /// Writes served so far (Lease renewals left out): apisim's count, or the replicas' `hnc_writes_total` on a cluster.
    async fn writes_so_far(&self) -> f64 {
        if let Some(n) = self.target.work_write_count() {
            return n as f64;
        }
        let mut n = 0.0;
        for r in &self.replicas {
            if let Ok(m) = r.metrics(&self.http).await {
                n += prom::sum(&m, "hnc_writes_total", &[]);
            }
        }
        n
    }

    /// Waits until nothing was written for `idle` seconds and every write queue is empty.
    async fn wait_idle(&mut self, idle: f64, deadline: Instant) -> anyhow::Result<()> {
        let mut last = self.writes_so_far().await;
        let mut since = Instant::now();
        loop {
            tokio::time::sleep(Duration::from_millis(250)).await;
            self.sample_replicas()?;
            let now = self.writes_so_far().await;
            if now != last {
                last = now;
                since = Instant::now();
            } else if since.elapsed().as_secs_f64() >= idle && self.queue_depth().await == 0.0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the controllers were still writing at the deadline");
            }
        }
    }

    // --- measurement -----------------------------------------------------------------------------------

    async fn meter(&mut self) -> Meter {
        let _ = self.sample_replicas();
        let mut controller_writes = BTreeMap::new();
        for r in &self.replicas {
            if let Ok(m) = r.metrics(&self.http).await {
                controller_writes.insert(r.id.clone(), m);
            }
        }
        self.tracker.lock().take_completed();
        Meter {
            started: Instant::now(),
            write_index: self.target.write_count(),
            usage: self.replicas.iter().map(|r| (r.id.clone(), r.usage)).collect(),
            sim_cpu: procstat::threads("lt-apisim"),
            harness_cpu: procstat::threads("lt-harness"),
            process_cpu: procstat::this_process().cpu_s,
            requests: self.target.request_totals(&self.http).await,
            controller_writes,
        }
    }

    /// Fills the measured parts of `result` for the phase since `meter`.
    async fn finish(&mut self, meter: &Meter, result: &mut PhaseResult, necessary: usize) {
        let _ = self.sample_replicas();
        result.wall_s = meter.started.elapsed().as_secs_f64();
        result.replicas = self.replicas.len().max(self.replica_count);
        let modelled: Vec<&str> = ["namespaces", "hierarchyconfigurations", "subnamespaceanchors"]
            .into_iter()
            .chain(self.types.iter().map(|t| t.resource.plural.as_str()))
            .collect();
        let mut writes = Writes { necessary, ..Default::default() };
        let mut after = BTreeMap::new();
        for r in &self.replicas {
            // Kept beside the logs for diagnosis: every metric a replica had at the end of the phase.
            if let Ok(text) = r.metrics_text(&self.http).await {
                let file = self.logs.join(format!(
                    "{}-{}.prom",
                    r.id,
                    result.phase.replace([' ', '/', '(', ')'], "_")
                ));
                let _ = std::fs::write(file, &text);
                after.insert(r.id.clone(), prom::parse(&text));
            }
        }
        if let Some(log) = meter.write_index.and_then(|i| self.target.writes_since(i)) {
            writes.most_written = log.most_written;
            writes.objects_written_repeatedly = log.repeated_objects;
            if log.lease_writes > 0 {
                result
                    .notes
                    .push(format!("lease writes (replica coordination, not counted): {}", log.lease_writes));
            }
            let last = log.last;
            for (user, by_kind) in log.counts {
                let Some(id) = user.strip_prefix("system:serviceaccount:hnc-system:") else { continue };
                for (kind, n) in &by_kind {
                    let mut parts = kind.split(' ');
                    let (_, resource, code) =
                        (parts.next(), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                    let ok = code.starts_with('2');
                    if !ok {
                        writes.failed += n;
                    } else if modelled.contains(&resource) {
                        writes.made += n;
                    } else {
                        *writes.other.entry(kind.clone()).or_default() += n;
                    }
                }
                writes.by_replica.insert(id.to_owned(), by_kind);
            }
            result.last_write_s = last.map(|l| l.saturating_duration_since(meter.started).as_secs_f64());
        } else {
            // A cluster: the controllers' own counters.
            for (id, m) in &after {
                let before = meter.controller_writes.get(id).map(Vec::as_slice).unwrap_or_default();
                let mut by_kind = BTreeMap::new();
                for s in m.iter().filter(|s| s.name == "hnc_writes_total") {
                    let old = before
                        .iter()
                        .find(|b| b.name == s.name && b.labels == s.labels)
                        .map_or(0.0, |b| b.value);
                    let n = (s.value - old).round() as u64;
                    if n == 0 {
                        continue;
                    }
                    let label = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
                    let (resource, outcome) = (label("resource"), label("outcome"));
                    let plural = resource.split('.').next().unwrap_or_default().to_owned();
                    if outcome != "written" {
                        writes.failed += n;
                    } else if modelled.contains(&plural.as_str()) {
                        writes.made += n;
                    } else {
                        *writes.other.entry(format!("{} {resource}", label("verb"))).or_default() += n;
                    }
                    by_kind.insert(format!("{} {resource} {outcome}", label("verb")), n);
                }
                writes.by_replica.insert(id.clone(), by_kind);
            }
        }
        writes.ratio = (necessary > 0).then(|| writes.made as f64 / necessary as f64);
        result.writes = writes;

        // The controllers' own latency histogram over the phase.
        let mut buckets: Vec<(f64, f64)> = Vec::new();
        for (id, m) in &after {
            let now = prom::buckets(m, "hnc_propagation_latency_seconds");
            let before = meter
                .controller_writes
                .get(id)
                .map(|b| prom::buckets(b, "hnc_propagation_latency_seconds"))
                .unwrap_or_default();
            for (le, n) in prom::bucket_delta(&now, &before) {
                match buckets.iter_mut().find(|(b, _)| *b == le) {
                    Some(slot) => slot.1 += n,
                    None => buckets.push((le, n)),
                }
            }
        }
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        result.controller_latency_p50_p99_s =
            prom::quantile(&buckets, 0.5).zip(prom::quantile(&buckets, 0.99));

        for r in &self.replicas {
            let before = meter.usage.get(&r.id).copied().unwrap_or_default();
            let u = r.usage.since(&before);
            if r.pid.is_some() {
                result.processes.push(ProcessUsage {
                    name: r.id.clone(),
                    cpu_s: u.cpu_s,
                    peak_rss_mib: u.peak_rss_mib,
                });
            }
        }
        if self.target.sim().is_some() {
            result.processes.push(ProcessUsage {
                name: "(apisim threads)".into(),
                cpu_s: procstat::threads("lt-apisim") - meter.sim_cpu,
                peak_rss_mib: None,
            });
        }
        result.processes.push(ProcessUsage {
            name: "(harness threads)".into(),
            cpu_s: procstat::threads("lt-harness") - meter.harness_cpu,
            peak_rss_mib: None,
        });
        let whole = procstat::this_process();
        result.processes.push(ProcessUsage {
            name: "(harness process: harness + apisim)".into(),
            cpu_s: whole.cpu_s - meter.process_cpu,
            peak_rss_mib: whole.peak_rss_mib,
        });
        if let (Some(before), Some(after)) = (&meter.requests, self.target.request_totals(&self.http).await) {
            for (k, v) in after {
                let d = v - before.get(&k).copied().unwrap_or(0.0);
                if d > 0.0 {
                    let verb = k.split(' ').next().unwrap_or_default().to_owned();
                    *result.requests_by_verb.entry(verb).or_default() += d;
                    result.requests.insert(k, d);
                }
            }
        }
    }

    // --- phases ----------------------------------------------------------------------------------------

    /// Starts the controllers on the loaded topology and waits until the expected state is observed, every
    /// replica is ready and the writers are idle.
    pub async fn cold(&mut self, progress: bool) -> anyhow::Result<PhaseResult> {
        let meter = self.meter().await;
        let mut result = PhaseResult { phase: "cold".into(), ..Default::default() };
        let started = Instant::now();
        self.start_replicas().await?;
        let total = self.tracker.lock().expected_len() as u64;
        let bar = bar(progress, total, "cold start: expected state observed");
        let deadline = started + Duration::from_secs(self.opts.timeout);
        let mut ready: Vec<Option<f64>> = vec![None; self.replicas.len()];
        let write_base = self.writes_so_far().await;
        let mut idle_since: Option<(Instant, f64)> = None;
        loop {
            self.sample_replicas()?;
            for (i, r) in self.replicas.iter().enumerate() {
                if ready[i].is_none() && r.is_ready(&self.http).await {
                    ready[i] = Some(started.elapsed().as_secs_f64());
                }
            }
            let (mismatched, converged) = {
                let t = self.tracker.lock();
                (t.mismatched(), t.converged_since)
            };
            let t = started.elapsed().as_secs_f64();
            let writes = self.writes_so_far().await - write_base;
            result.progress.push((t, 1.0 - mismatched as f64 / total.max(1) as f64, writes));
            bar.set_position(total - mismatched as u64);
            bar.set_message(format!("cold start: {writes:.0} writes; expected state observed"));
            if mismatched == 0 && ready.iter().all(Option::is_some) {
                match idle_since {
                    Some((since, w)) if w == writes => {
                        if since.elapsed().as_secs_f64() >= self.opts.idle && self.queue_depth().await == 0.0
                        {
                            result.converged_s =
                                converged.map(|c| c.saturating_duration_since(started).as_secs_f64());
                            break;
                        }
                    }
                    _ => idle_since = Some((Instant::now(), writes)),
                }
            } else {
                idle_since = None;
            }
            if Instant::now() > deadline {
                result.notes.push(format!(
                    "not converged after {} s: {mismatched} keys differ, e.g. {:?}",
                    self.opts.timeout,
                    self.tracker.lock().sample_mismatched(8)
                ));
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        bar.finish_and_clear();
        result.ready_s = ready.into_iter().flatten().collect();
        let necessary = self.cold_necessary;
        self.finish(&meter, &mut result, necessary).await;
        Ok(result)
    }

    /// Restarts every replica on the converged cluster and counts what the new ones write.
    pub async fn warm(&mut self, progress: bool) -> anyhow::Result<PhaseResult> {
        let mut result = PhaseResult { phase: "warm".into(), ..Default::default() };
        if self.launch.is_none() {
            bail!("a warm restart needs replicas the harness starts (not --replica-metrics-url)");
        }
        self.stop_replicas().await?;
        let meter = self.meter().await;
        let started = Instant::now();
        self.start_replicas().await?;
        let bar = bar_spinner(progress, "warm restart: waiting for the replicas to be ready and to plan");
        let deadline = started + Duration::from_secs(self.opts.timeout);
        let mut ready: Vec<Option<f64>> = vec![None; self.replicas.len()];
        loop {
            self.sample_replicas()?;
            let mut planned = true;
            for (i, r) in self.replicas.iter().enumerate() {
                if ready[i].is_none() && r.is_ready(&self.http).await {
                    ready[i] = Some(started.elapsed().as_secs_f64());
                }
                // Sharded replicas: every shard must have an owner again, and a replica holding none has nothing
                // to plan. (Controllers without the shard metrics count as holding everything.)
                let Ok(m) = r.metrics(&self.http).await else {
                    planned = false;
                    continue;
                };
                let has = |name: &str| m.iter().any(|s| s.name == name);
                let holds_none = has("hnc_shards_held") && prom::sum(&m, "hnc_shards_held", &[]) == 0.0;
                let unowned = has("hnc_shards_unowned") && prom::sum(&m, "hnc_shards_unowned", &[]) > 0.0;
                let plans = prom::sum(&m, "hnc_plan_duration_seconds_count", &[]);
                planned &= !unowned && (plans >= 1.0 || holds_none);
            }
            if ready.iter().all(Option::is_some) && planned {
                break;
            }
            if Instant::now() > deadline {
                bail!("the restarted replicas were not ready and planned within {} s", self.opts.timeout);
            }
            bar.tick();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // Whatever a restart writes, it writes right after its first plan: give it `settle` seconds.
        let settle_until = Instant::now() + Duration::from_secs_f64(self.opts.settle);
        while Instant::now() < settle_until {
            self.sample_replicas()?;
            bar.tick();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.wait_idle(self.opts.idle, deadline).await?;
        bar.finish_and_clear();
        result.ready_s = ready.into_iter().flatten().collect();
        let mismatched = self.tracker.lock().mismatched();
        if mismatched > 0 {
            result.notes.push(format!("{mismatched} keys differ from the expected state after the restart"));
        }
        self.finish(&meter, &mut result, 0).await;
        // A restart must write nothing at all, status and Events included.
        let total: u64 = result.writes.by_replica.values().flat_map(|m| m.values()).sum();
        result.notes.push(format!("writes of any kind by the restarted replicas: {total}"));
        Ok(result)
    }

    /// `rate` changes per second for `duration` seconds, then waits for them to complete.
    pub async fn churn(
        &mut self,
        name: &str,
        rate: f64,
        duration: f64,
        progress: bool,
    ) -> anyhow::Result<PhaseResult> {
        anyhow::ensure!(rate > 0.0 && duration > 0.0, "--rate and --duration must be positive");
        let meter = self.meter().await;
        let mut result = PhaseResult { phase: name.into(), ..Default::default() };
        let started = Instant::now();
        let end = started + Duration::from_secs_f64(duration);
        let interval = Duration::from_secs_f64(1.0 / rate);
        let bar = bar(progress, (duration * 10.0) as u64, "churn");
        let mut necessary = 0;
        let mut issued = 0u64;
        let failures = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut writes = tokio::task::JoinSet::new();
        let mut next = started;
        let epoch_offset = self.tracker.lock().since_epoch(started);
        while Instant::now() < end {
            tokio::time::sleep_until(next.into()).await;
            next += interval;
            let change = self.pick_change();
            necessary += change.delta.necessary();
            *result.changes.entry(change.kind.to_owned()).or_default() += 1;
            issued += 1;
            let id = self.tracker.lock().register(change.kind, &change.delta);
            if change.kind == "subns-create"
                && let Some(last) = self.created_subns.last_mut()
            {
                last.2 = id;
            }
            let (client, tracker, failures) = (self.client.clone(), self.tracker.clone(), failures.clone());
            writes.spawn(async move {
                match perform(&client, change.write).await {
                    Ok(()) => tracker.lock().ack(id),
                    Err(e) => {
                        tracker.lock().fail(id);
                        failures.lock().push(format!("{e:#}"));
                    }
                }
            });
            while writes.try_join_next().is_some() {}
            self.sample_replicas()?;
            bar.set_position((started.elapsed().as_secs_f64() * 10.0).min(duration * 10.0) as u64);
            let pending = self.tracker.lock().pending();
            bar.set_message(format!("churn at {rate:.1}/s: {issued} changes, {pending} pending"));
        }
        let achieved = issued as f64 / started.elapsed().as_secs_f64();
        while writes.join_next().await.is_some() {}
        // Drain: every change registered must complete, or it counts as unfinished.
        let drain_until = Instant::now() + Duration::from_secs_f64(self.opts.drain);
        while self.tracker.lock().pending() > 0 && Instant::now() < drain_until {
            self.sample_replicas()?;
            bar.set_message(format!("churn: draining, {} pending", self.tracker.lock().pending()));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bar.finish_and_clear();
        let awaited = self.tracker.lock().awaited_keys(4);
        if !awaited.is_empty() {
            result.notes.extend(self.diagnose(&awaited).await);
        }
        let (mut done, superseded, unfinished) = {
            let mut t = self.tracker.lock();
            if t.pending() > 0 {
                result.notes.push(format!(
                    "unfinished after the drain, still awaiting e.g. {:?}",
                    t.sample_awaited(6)
                ));
            }
            let unfinished = t.abandon_pending();
            let superseded = std::mem::take(&mut t.superseded);
            (t.take_completed(), superseded, unfinished)
        };
        for c in &mut done {
            c.at_s -= epoch_offset;
        }
        let failures = failures.lock().clone();
        if !failures.is_empty() {
            result.notes.push(format!("{} harness writes failed, first: {}", failures.len(), failures[0]));
        }
        result.notes.push(format!("achieved rate {achieved:.1}/s of {rate:.1}/s"));
        result.latency = Some(LatencyStats::of(&done, superseded, unfinished));
        result.samples = done;
        let idle_deadline = Instant::now() + Duration::from_secs_f64(self.opts.drain);
        if let Err(e) = self.wait_idle(self.opts.idle, idle_deadline).await {
            result.notes.push(format!("after the churn: {e:#}"));
        }
        self.finish(&meter, &mut result, necessary).await;
        Ok(result)
    }

    /// One new source at a time into the root with the most descendants, then an update of it, then its
    /// deletion; each step measured until every copy is observed to match it, and the writers idle before the
    /// next.
    pub async fn burst(&mut self, progress: bool) -> anyhow::Result<PhaseResult> {
        let meter = self.meter().await;
        let mut result = PhaseResult { phase: "burst".into(), ..Default::default() };
        let root = self
            .original
            .iter()
            .filter(|n| self.model.nodes.get(*n).is_some_and(|node| node.parent.is_none()))
            .max_by_key(|n| self.model.descendants(n).len())
            .cloned()
            .context("no root")?;
        let descendants = self.model.descendants(&root).len();
        result.notes.push(format!(
            "root {root} with {descendants} descendants; each burst creates, updates and deletes one source"
        ));
        let epoch_offset = self.tracker.lock().since_epoch(meter.started);
        let bar = bar(
            progress,
            3 * self.opts.bursts as u64,
            &format!("burst into {root} ({descendants} descendants)"),
        );
        let mut necessary = 0;
        let mut all = Vec::new();
        for _ in 0..self.opts.bursts {
            let mut created = Some(self.create_source(&root));
            let name = self.pool.last().map(|(_, name)| name.clone()).context("the new source is pooled")?;
            for step in 0..3 {
                let change = match step {
                    0 => created.take().context("created once")?,
                    1 => self.update_source_named(&root, &name).context("the burst's source exists")?,
                    _ => self.delete_source_named(&root, &name),
                };
                necessary += change.delta.necessary();
                *result.changes.entry(change.kind.into()).or_default() += 1;
                let id = self.tracker.lock().register(change.kind, &change.delta);
                match perform(&self.client, change.write).await {
                    Ok(()) => self.tracker.lock().ack(id),
                    Err(e) => bail!("burst: writing the source failed: {e:#}"),
                }
                let deadline =
                    Instant::now() + Duration::from_secs_f64(self.opts.drain.max(self.opts.timeout as f64));
                while !self.tracker.lock().is_finished(id) {
                    if Instant::now() > deadline {
                        bail!(
                            "burst: copies still not as expected at the deadline, e.g. {:?}",
                            self.tracker.lock().sample_mismatched(5)
                        );
                    }
                    self.sample_replicas()?;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                all.extend(self.tracker.lock().take_completed());
                bar.inc(1);
                self.wait_idle(self.opts.idle, deadline).await?;
            }
        }
        bar.finish_and_clear();
        for c in &mut all {
            c.at_s -= epoch_offset;
        }
        result.latency = Some(LatencyStats::of(&all, 0, 0));
        result.samples = all;
        self.finish(&meter, &mut result, necessary).await;
        Ok(result)
    }

    /// SIGKILLs the leader, then churns at `--rate` for `--duration` while the survivors take over. Reports when
    /// a survivor became leader and when every shard had a live holder again; the churn's latency (its max
    /// includes changes made while nobody owned their tree) says when the cluster converged.
    pub async fn failover(&mut self, progress: bool) -> anyhow::Result<PhaseResult> {
        if self.launch.is_none() || self.replicas.len() < 2 {
            bail!("failover needs 2 or more replicas the harness starts");
        }
        let mut leader = None;
        let mut shards = 0.0;
        for (i, r) in self.replicas.iter().enumerate() {
            let m = r.metrics(&self.http).await?;
            shards += prom::sum(&m, "hnc_shards_held", &[]);
            if prom::sum(&m, "hnc_is_leader", &[]) == 1.0 {
                leader = Some(i);
            }
        }
        let leader = leader.context("no replica reports hnc_is_leader 1")?;
        let mut victim = self.replicas.remove(leader);
        let urls: Vec<String> = self.replicas.iter().map(|r| r.metrics_url.clone()).collect();
        let started = Instant::now();
        victim.kill()?;
        let watcher = tokio::spawn(watch_ownership(self.http.clone(), urls, shards, None, started));
        let mut result = self.churn("failover", self.opts.rate, self.opts.duration, progress).await?;
        let times = watcher.await?;
        result.notes.insert(0, format!("killed the leader {} (SIGKILL); {shards} shards", victim.id));
        result.notes.insert(1, times.describe());
        self.note_unowned_histogram(&mut result).await;
        self.replica_count = self.replicas.len();
        Ok(result)
    }

    /// Starts one more replica, then churns at `--rate` for `--duration` while shards move to it. Reports when
    /// the new assignment was fully held (every shard by exactly its new holder).
    pub async fn scale_out(&mut self, progress: bool) -> anyhow::Result<PhaseResult> {
        let Some(launch) = self.launch.clone() else {
            bail!("scale-out needs replicas the harness starts (not --replica-metrics-url)");
        };
        let mut shards = 0.0;
        for r in &self.replicas {
            shards += prom::sum(&r.metrics(&self.http).await?, "hnc_shards_held", &[]);
        }
        // A fresh identity: after a failover the survivors' ids are not 0..len.
        let next = self
            .replicas
            .iter()
            .filter_map(|r| r.id.strip_prefix("lt-r")?.parse::<usize>().ok())
            .max()
            .map_or(0, |i| i + 1);
        let id = format!("lt-r{next}");
        let kubeconfig = self.target.replica_kubeconfig(&id)?;
        let started = Instant::now();
        let replica = Replica::spawn(&launch, &kubeconfig, &id, &self.logs).await?;
        let newcomer = replica.metrics_url.clone();
        self.replicas.push(replica);
        self.replica_count = self.replicas.len();
        let urls: Vec<String> = self.replicas.iter().map(|r| r.metrics_url.clone()).collect();
        let watcher = tokio::spawn(watch_ownership(self.http.clone(), urls, shards, Some(newcomer), started));
        let mut result = self.churn("scale-out", self.opts.rate, self.opts.duration, progress).await?;
        let times = watcher.await?;
        result.notes.insert(0, format!("started {id}; {shards} shards"));
        result.notes.insert(1, times.describe());
        self.note_unowned_histogram(&mut result).await;
        Ok(result)
    }

    /// The leader's `hnc_shard_unowned_seconds` (time each shard spent without a live holder), as a note.
    async fn note_unowned_histogram(&self, result: &mut PhaseResult) {
        for r in &self.replicas {
            let Ok(m) = r.metrics(&self.http).await else { continue };
            if prom::sum(&m, "hnc_is_leader", &[]) != 1.0 {
                continue;
            }
            let count = prom::sum(&m, "hnc_shard_unowned_seconds_count", &[]);
            let sum = prom::sum(&m, "hnc_shard_unowned_seconds_sum", &[]);
            let b = prom::buckets(&m, "hnc_shard_unowned_seconds");
            let p99 = prom::quantile(&b, 0.99);
            result.notes.push(format!(
                "leader {}: {count} shard(s) got a holder after being unowned, mean {:.2} s, p99 ≤ {} s",
                r.id,
                if count > 0.0 { sum / count } else { 0.0 },
                p99.map_or("-".into(), |v| format!("{v:.2}")),
            ));
        }
    }

    /// Capacity ramp in this session: stages of churn at growing rates until p99 exceeds the SLO, then
    /// `--refine` bisection stages between the last rate within the SLO and the first one beyond it.
    pub async fn ramp(&mut self, progress: bool) -> anyhow::Result<PhaseResult> {
        let mut result = PhaseResult { phase: "capacity".into(), ..Default::default() };
        let mut samples = Vec::new();
        let mut offset = 0.0;
        let (mut pass, mut fail): (Option<f64>, Option<f64>) = (None, None);
        let mut rate = self.opts.start_rate;
        let mut refinements = 0;
        loop {
            let within = self.stage(rate, progress, &mut result, &mut samples, &mut offset).await?;
            if within {
                pass = Some(pass.map_or(rate, |p: f64| p.max(rate)));
            } else {
                fail = Some(fail.map_or(rate, |f: f64| f.min(rate)));
            }
            rate = match (pass, fail) {
                (_, None) => rate * self.opts.step,
                (Some(p), Some(f)) if refinements < self.opts.refine => {
                    refinements += 1;
                    (p + f) / 2.0
                }
                _ => break,
            };
            if rate > self.opts.max_rate {
                break;
            }
        }
        result.capacity_per_s = pass;
        result.replicas = self.replica_count;
        result.samples = samples;
        Ok(result)
    }

    /// One churn stage of a ramp; true when it stayed within the SLO.
    async fn stage(
        &mut self,
        rate: f64,
        progress: bool,
        result: &mut PhaseResult,
        samples: &mut Vec<Completed>,
        offset: &mut f64,
    ) -> anyhow::Result<bool> {
        let stage =
            self.churn(&format!("churn at {rate:.1}/s"), rate, self.opts.stage_seconds, progress).await?;
        let latency = stage.latency.clone().unwrap_or_default();
        let achieved = stage
            .notes
            .iter()
            .find_map(|n| n.strip_prefix("achieved rate ")?.split('/').next()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        // A stage the harness could not drive at its rate says nothing about the controller.
        let within = latency.p99_s <= self.opts.slo && latency.unfinished == 0 && achieved >= 0.9 * rate;
        samples.extend(stage.samples.iter().map(|c| Completed { at_s: c.at_s + *offset, ..*c }));
        *offset += stage.wall_s;
        result.stages.push(crate::report::Stage {
            target_rate: rate,
            achieved_rate: achieved,
            latency,
            within_slo: within,
            writes_made: stage.writes.made,
            writes_necessary: stage.writes.necessary,
            cpu_s: stage
                .processes
                .iter()
                .filter(|p| !p.name.starts_with("(harness process"))
                .map(|p| (p.name.clone(), p.cpu_s))
                .collect(),
        });
        result.processes.extend(
            stage
                .processes
                .iter()
                .filter(|p| !p.name.starts_with('('))
                .map(|p| ProcessUsage { name: format!("{} at {rate:.1}/s", p.name), ..p.clone() }),
        );
        Ok(within)
    }

    // --- changes ---------------------------------------------------------------------------------------

    fn pick_change(&mut self) -> Change {
        let total: f64 = self.mix.iter().sum();
        let mut x = self.rng.random::<f64>() * total;
        let mut kind = 0;
        for (i, w) in self.mix.iter().enumerate() {
            if x < *w {
                kind = i;
                break;
            }
            x -= w;
        }
        let change = match KINDS[kind] {
            "update" => self.update_source(),
            "delete" => self.delete_source(),
            "subns-create" => Some(self.create_subnamespace()),
            "subns-delete" => self.delete_subnamespace(),
            "reparent" => self.reparent(),
            _ => None,
        };
        // A kind with no candidate right now (nothing to delete, nowhere to move) becomes a new source.
        change.unwrap_or_else(|| {
            let ns = self.original[self.rng.random_range(0..self.original.len())].clone();
            self.create_source(&ns)
        })
    }

    fn create_source(&mut self, ns: &str) -> Change {
        self.counter += 1;
        let name = source_name("ltc", self.counter, ns);
        let objects: Vec<Value> = self.types.iter().map(|t| t.source(ns, &name, 1)).collect();
        let source = Source {
            name: name.clone(),
            fingerprints: objects.iter().map(fingerprint_json).collect(),
            generation: 1,
        };
        let scope = self.model.source_scope(ns);
        let delta =
            self.model.apply(&scope, |m| m.nodes.get_mut(ns).expect("known namespace").sources.push(source));
        self.pool.push((ns.to_owned(), name));
        let writes =
            self.types.iter().zip(objects).map(|(t, o)| (t.resource.clone(), ns.to_owned(), o)).collect();
        Change { kind: "create", delta, write: Write::Create(writes) }
    }

    fn update_source(&mut self) -> Option<Change> {
        if self.pool.is_empty() {
            return None;
        }
        let (ns, name) = self.pool[self.rng.random_range(0..self.pool.len())].clone();
        self.update_source_named(&ns, &name)
    }

    fn update_source_named(&mut self, ns: &str, name: &str) -> Option<Change> {
        let (ns, name) = (ns.to_owned(), name.to_owned());
        let generation = self.model.nodes[&ns].sources.iter().find(|s| s.name == name)?.generation + 1;
        let objects: Vec<Value> = self.types.iter().map(|t| t.source(&ns, &name, generation)).collect();
        let fingerprints: Vec<u64> = objects.iter().map(fingerprint_json).collect();
        let scope = self.model.source_scope(&ns);
        let delta = self.model.apply(&scope, |m| {
            let s = m
                .nodes
                .get_mut(&ns)
                .and_then(|n| n.sources.iter_mut().find(|s| s.name == name))
                .expect("in pool");
            s.generation = generation;
            s.fingerprints = fingerprints;
        });
        let writes = self
            .types
            .iter()
            .zip(objects)
            .map(|(t, o)| (t.resource.clone(), ns.clone(), name.clone(), o))
            .collect();
        Some(Change { kind: "update", delta, write: Write::Patch(writes) })
    }

    fn delete_source(&mut self) -> Option<Change> {
        if self.pool.is_empty() {
            return None;
        }
        let (ns, name) = self.pool[self.rng.random_range(0..self.pool.len())].clone();
        Some(self.delete_source_named(&ns, &name))
    }

    fn delete_source_named(&mut self, ns: &str, name: &str) -> Change {
        self.pool.retain(|(n, s)| (n.as_str(), s.as_str()) != (ns, name));
        let (ns, name) = (ns.to_owned(), name.to_owned());
        let scope = self.model.source_scope(&ns);
        let delta = self.model.apply(&scope, |m| {
            if let Some(n) = m.nodes.get_mut(&ns) {
                n.sources.retain(|s| s.name != name);
            }
        });
        let writes = self.types.iter().map(|t| (t.resource.clone(), ns.clone(), name.clone())).collect();
        Change { kind: "delete", delta, write: Write::Delete(writes) }
    }

    fn create_subnamespace(&mut self) -> Change {
        self.counter += 1;
        let parent = self.original[self.rng.random_range(0..self.original.len())].clone();
        let child = format!("{NS_PREFIX}c{}", self.counter);
        let scope = self.model.move_scope(&child, None, Some(&parent));
        let delta = self.model.apply(&scope, |m| m.add_namespace(&child, &parent, true));
        let anchor = json!({
            "apiVersion": format!("{}/v1alpha2", hnc_api::GROUP), "kind": "SubnamespaceAnchor",
            "metadata": {"name": child, "namespace": parent},
            // Without a spec the controller's typed anchor watch cannot decode the object (see the report).
            "spec": {},
        });
        // The change id is filled in once registered; deletable once complete.
        self.created_subns.push((parent.clone(), child, u64::MAX));
        Change { kind: "subns-create", delta, write: Write::Create(vec![(anchors(), parent, anchor)]) }
    }

    fn delete_subnamespace(&mut self) -> Option<Change> {
        let tracker = self.tracker.lock();
        let ready: Vec<usize> = (0..self.created_subns.len())
            .filter(|&i| {
                let (_, child, id) = &self.created_subns[i];
                *id != u64::MAX
                    && tracker.is_finished(*id)
                    && self.model.nodes.get(child).is_some_and(|n| n.children.is_empty())
            })
            .collect();
        drop(tracker);
        if ready.is_empty() {
            return None;
        }
        let (parent, child, _) = self.created_subns.swap_remove(ready[self.rng.random_range(0..ready.len())]);
        // Its parent may have moved since: the anchor stays where it was created, in `parent`.
        let current_parent = self.model.nodes.get(&child).and_then(|n| n.parent.clone());
        let scope = self.model.move_scope(&child, current_parent.as_deref(), None);
        let delta = self.model.apply(&scope, |m| m.remove_namespace(&child));
        Some(Change { kind: "subns-delete", delta, write: Write::Delete(vec![(anchors(), parent, child)]) })
    }

    fn reparent(&mut self) -> Option<Change> {
        if self.movable.is_empty() {
            return None;
        }
        for _ in 0..20 {
            let ns = self.movable[self.rng.random_range(0..self.movable.len())].clone();
            let new = self.original[self.rng.random_range(0..self.original.len())].clone();
            let old = self.model.nodes.get(&ns)?.parent.clone();
            if new == ns
                || old.as_deref() == Some(new.as_str())
                || self.model.ancestors(&new).contains(&ns.as_str())
            {
                continue;
            }
            // Keep trees within the loaded depth (at least 2), so churn does not grow chains without bound.
            let depth = self.model.depth(&ns);
            let height =
                self.model.descendants(&ns).iter().map(|d| self.model.depth(d) - depth).max().unwrap_or(0);
            if self.model.depth(&new) + 1 + height > self.max_depth {
                continue;
            }
            let scope = self.model.move_scope(&ns, old.as_deref(), Some(&new));
            let delta = self.model.apply(&scope, |m| m.set_parent(&ns, Some(&new)));
            let patch = json!({"spec": {"parent": new}});
            let write =
                Write::Patch(vec![(hierarchies(), ns, hnc_api::keys::names::HIERARCHY.to_owned(), patch)]);
            return Some(Change { kind: "reparent", delta, write });
        }
        None
    }

    /// Stops everything; on a cluster also deletes the harness's namespaces unless `--keep`.
    pub async fn teardown(mut self) -> anyhow::Result<()> {
        self.stop_replicas().await?;
        for w in self.watches.drain(..) {
            w.abort();
        }
        if let Target::Cluster { .. } = self.target
            && !self.opts.keep
        {
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &namespaces());
            for ns in self.model.nodes.keys() {
                let _ = api.delete(ns, &DeleteParams::default()).await;
            }
        }
        if let Target::Sim { sim, .. } = self.target {
            sim.shutdown().await;
        }
        Ok(())
    }

    pub fn replica_count(&self) -> usize {
        self.replica_count
    }
}

/// Performs one change's writes as the harness (admin).
/// When, after `started`, the replicas at `urls` agreed again on shard ownership.
#[derive(Debug, Default)]
struct OwnershipTimes {
    /// First moment one of them reported being the leader.
    leader_s: Option<f64>,
    /// First moment of the final state: every shard held, none unowned (and the newcomer holding some).
    owned_s: Option<f64>,
    /// How the shards were spread over the replicas at the end.
    held: Vec<f64>,
}

impl OwnershipTimes {
    fn describe(&self) -> String {
        let s = |v: Option<f64>| v.map_or("never".into(), |v| format!("{v:.2} s"));
        format!(
            "leader present after {}; every shard held after {}; shards per replica at the end {:?}",
            s(self.leader_s),
            s(self.owned_s),
            self.held
        )
    }
}

/// Polls the replicas' metrics every 100 ms for up to 120 s until ownership has been settled for 3 s:
/// `shards` shards held in total, the leader sees none unowned, and `newcomer` (if given) holds some.
async fn watch_ownership(
    http: reqwest::Client,
    urls: Vec<String>,
    shards: f64,
    newcomer: Option<String>,
    started: Instant,
) -> OwnershipTimes {
    let mut times = OwnershipTimes::default();
    let mut settled: Option<(f64, Vec<f64>)> = None;
    let deadline = started + Duration::from_secs(120);
    while Instant::now() < deadline {
        let t = started.elapsed().as_secs_f64();
        let mut held = Vec::new();
        let (mut leader, mut newcomer_held, mut complete) = (false, 0.0, true);
        for url in &urls {
            let text = match http.get(url).timeout(Duration::from_secs(2)).send().await {
                Ok(r) => r.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            let m = prom::parse(&text);
            if m.is_empty() {
                complete = false;
                continue;
            }
            let h = prom::sum(&m, "hnc_shards_held", &[]);
            if prom::sum(&m, "hnc_is_leader", &[]) == 1.0 {
                leader = true;
            }
            if newcomer.as_deref() == Some(url.as_str()) {
                newcomer_held = h;
            }
            held.push(h);
        }
        if leader && times.leader_s.is_none() {
            times.leader_s = Some(t);
        }
        let total: f64 = held.iter().sum();
        // Every shard held (leases are exclusive, so the replicas' counts add up to the shard count only when
        // each shard has one holder). The leader's `hnc_shards_unowned` is not waited for: it is refreshed at
        // the leader's own pace and would add up to a retry period to the measurement.
        let done = complete && leader && total == shards && (newcomer.is_none() || newcomer_held > 0.0);
        match (&settled, done) {
            (Some((_, before)), true) if *before == held => {}
            (_, true) => settled = Some((t, held.clone())),
            (_, false) => settled = None,
        }
        if let Some((since, h)) = &settled
            && t - since >= 3.0
        {
            times.owned_s = Some(*since);
            times.held = h.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    times
}

async fn perform(client: &kube::Client, write: Write) -> anyhow::Result<()> {
    match write {
        Write::Create(items) => {
            for (ar, ns, obj) in items {
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
                let obj: DynamicObject = serde_json::from_value(obj)?;
                api.create(&PostParams::default(), &obj)
                    .await
                    .with_context(|| format!("creating a {} in {ns}", ar.kind))?;
            }
        }
        Write::Patch(items) => {
            for (ar, ns, name, patch) in items {
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                    .with_context(|| format!("patching {} {ns}/{name}", ar.kind))?;
            }
        }
        Write::Delete(items) => {
            for (ar, ns, name) in items {
                let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &ns, &ar);
                api.delete(&name, &DeleteParams::default())
                    .await
                    .with_context(|| format!("deleting {} {ns}/{name}", ar.kind))?;
            }
        }
    }
    Ok(())
}

/// Everything to create for `topology`, in an order the API server accepts.
fn load_items(topology: &Topology, types: &[PropType], opts: &Common, anchors_mode: bool) -> Vec<LoadItem> {
    let mut items: Vec<LoadItem> = Vec::new();
    let crds =
        api_resource("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions");
    if opts.custom_resources {
        items.push((crds, String::new(), policy_crd()));
    }
    items.push((
        namespaces(),
        String::new(),
        json!({"metadata": {"name": hnc_api::keys::names::DEFAULT_NAMESPACE}}),
    ));
    if types.len() > 2 {
        items.push((
            api_resource(hnc_api::GROUP, "v1alpha2", "HNCConfiguration", "hncconfigurations"),
            String::new(),
            hnc_configuration(types),
        ));
    }
    for n in &topology.nodes {
        let mut meta = json!({"name": n.name, "labels": {"loadtest.hnc.dev/harness": "true"}});
        if let (true, Some(p)) = (anchors_mode, n.parent) {
            meta["annotations"] =
                json!({ hnc_api::keys::annotations::SUBNAMESPACE_OF: topology.nodes[p].name });
        }
        items.push((
            namespaces(),
            String::new(),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": meta}),
        ));
    }
    for n in &topology.nodes {
        let Some(p) = n.parent else { continue };
        let parent = &topology.nodes[p].name;
        if anchors_mode {
            items.push((
                anchors(),
                parent.clone(),
                json!({"apiVersion": format!("{}/v1alpha2", hnc_api::GROUP), "kind": "SubnamespaceAnchor",
                    "metadata": {"name": n.name, "namespace": parent}, "spec": {}}),
            ));
        } else {
            items.push((
                hierarchies(),
                n.name.clone(),
                json!({"apiVersion": format!("{}/v1alpha2", hnc_api::GROUP), "kind": "HierarchyConfiguration",
                    "metadata": {"name": hnc_api::keys::names::HIERARCHY, "namespace": n.name},
                    "spec": {"parent": parent}}),
            ));
        }
    }
    for n in &topology.nodes {
        for i in 0..opts.objects {
            let name = source_name("lt", i, &n.name);
            for t in types {
                items.push((t.resource.clone(), n.name.clone(), t.source(&n.name, &name, 1)));
            }
        }
    }
    items
}

/// `hnc-loadtest-controller` next to the running binary (cargo builds both into the same directory).
fn default_controller_binary() -> anyhow::Result<PathBuf> {
    let me = std::env::current_exe()?;
    let dir = me.parent().ok_or_else(|| anyhow!("no directory for {}", me.display()))?;
    // Test binaries live in deps/; the package's binaries one level up.
    for candidate in [dir.join("hnc-loadtest-controller"), dir.join("../hnc-loadtest-controller")] {
        if candidate.exists() {
            return Ok(candidate);
        }
    }
    bail!(
        "no controller binary next to {} (build it with `cargo build -p hnc-loadtest`, or pass --controller-binary)",
        me.display()
    )
}

fn bar(progress: bool, len: u64, msg: &str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {pos}/{len} ({elapsed})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(msg.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn bar_spinner(progress: bool, msg: &str) -> ProgressBar {
    if !progress {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_message(msg.to_owned());
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

/// The namespace a state key is about: the object's namespace, the namespace of a label/children/parent key,
/// the child of an anchor key.
fn diagnosed_namespace(key: &str) -> &str {
    match key.split_once(':') {
        Some(("o" | "p", _)) => crate::model::key_namespace(key),
        Some(("a", rest)) => rest.rsplit('/').next().unwrap_or_default(),
        Some((_, ns)) => ns,
        None => key,
    }
}
