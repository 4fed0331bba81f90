//! One measured environment: a target loaded with a topology, the harness's watches and model over it, and the
//! controller replicas under test; plus the phases run in it (cold start, warm restart, churn, burst).
//!
//! ```text
//!  prepare: target ◀─load── topology + sources      watches ──▶ tracker ◀── model.expected()
//!  cold:    start replicas ─▶ wait: every expected key observed, replicas ready, writers idle
//!  warm:    stop replicas, start them again ─▶ ready, planned, then `settle` s: count writes (must be 0)
//!  churn:   at `rate`/s: pick a change ─▶ model delta ─▶ tracker.register ─▶ write ─▶ ack ─▶ latency
//!  burst:   one new source in the largest root at a time, until all its copies are observed
//!  quota:   an HRQ in every root; at `rate`/s: create or delete a pod ─▶ admitted or denied (HNC's quota webhook);
//!           pods per tree against the budget, HRQ status against the pods
//! ```
//!
//! One module per phase: `cold` (cold start, warm restart), `churn` (and the changes it makes), `burst`,
//! `failover` (failover, scale-out), `capacity` (the ramp), `faults` (each fault of `hnc-loadtest faults` under
//! churn), `quota` (`hnc-loadtest quota`: pods created and deleted under hierarchical resource quotas, the budget
//! checked and HRQ status convergence measured).
//!
//! Each phase is measured by a [`Meter`]: writes from apisim's log (per replica user) or the controllers'
//! metrics, CPU and peak RSS per replica from /proc, apisim's and the harness's CPU by thread name, API requests.

mod burst;
mod capacity;
mod churn;
mod cold;
mod failover;
mod faults;
mod quota;

pub use churn::parse_mix;
pub use quota::QuotaStart;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use indicatif::{ProgressBar, ProgressStyle};
use kube::api::{Api, DeleteParams, DynamicObject};
use kube::core::ApiResource;
use parking_lot::Mutex;
use rand::SeedableRng;
use rand::rngs::StdRng;
use serde_json::json;

use crate::cli::{Common, HierarchyMode};
use crate::model::{Model, source_name};
use crate::objects::{PropType, api_resource, fingerprint_json, hnc_configuration, policy_crd, prop_types};
use crate::procstat::{self, Usage};
use crate::prom;
use crate::replicas::{Launch, Replica};
use crate::report::{PhaseResult, ProcessUsage, TopologySummary, Writes};
use crate::target::{LoadItem, SimLoad, Target};
use crate::topology::Topology;
use crate::tracker::Tracker;
use crate::webhooks::WebhookFront;

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
    /// The forwarder in front of the replicas' webhooks, when they serve them.
    _webhook_front: Option<WebhookFront>,
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
    /// Namespaces re-parenting churn moved between trees (each with its descendants), since last cleared.
    moved: Vec<String>,
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

        let webhook_front = if opts.webhooks {
            if opts.kubeconfig.is_some() || !opts.replica_metrics_urls.is_empty() {
                bail!(
                    "--webhooks (and the slow-webhooks fault) need the embedded apisim and replicas the harness starts"
                );
            }
            Some(WebhookFront::start().await?)
        } else {
            None
        };
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
                webhooks: webhook_front.as_ref().map(WebhookFront::endpoints),
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
            _webhook_front: webhook_front,
            replica_count: replicas,
            logs,
            _scratch: scratch,
            rng: StdRng::seed_from_u64(opts.seed.wrapping_add(0x5eed)),
            original,
            movable,
            pool,
            created_subns: Vec::new(),
            moved: Vec::new(),
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
        // Each replica's admission latency over the phase.
        for (id, m) in &after {
            let before = meter
                .controller_writes
                .get(id)
                .map(|b| prom::buckets(b, "hnc_webhook_duration_seconds"))
                .unwrap_or_default();
            let delta = prom::bucket_delta(&prom::buckets(m, "hnc_webhook_duration_seconds"), &before);
            let reviews = delta.last().map_or(0.0, |(_, n)| *n);
            if let Some(p99) = prom::quantile(&delta, 0.99) {
                result.admission_by_replica.insert(id.clone(), (reviews.round() as u64, p99));
            }
        }

        for r in &self.replicas {
            let before = meter.usage.get(&r.id).copied().unwrap_or_default();
            // A replica killed and started again in the phase: its new process's usage alone.
            let u = if r.usage.cpu_s < before.cpu_s { r.usage } else { r.usage.since(&before) };
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
