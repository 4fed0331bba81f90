//! Quota churn (`hnc-loadtest quota`): hierarchical resource quotas under a steady stream of pod creates and
//! deletes — the measurement of issue 17 (1,000 namespaces under 100 HRQs, pods created and deleted at 100/s).
//!
//! ```text
//!  load:   the topology + one HRQ `budget` (pods: --quota-budget) in every root; replicas get --enable-hrq and
//!          serve webhooks behind the harness's forwarder
//!  cold:   the ordinary cold start, then until every namespace has its ResourceQuota `hrq.hnc.x-k8s.io`, every
//!          HRQ shows 0 pods used and HNC's ResourceQuota-status webhook is registered
//!  churn:  --rate/s, open loop: a random namespace ─▶ create a pod there (½, or when it has none) or delete one
//!          every 250 ms: list the pods ─▶ pods per tree against the budget, and against HRQ status.used.pods
//!  after:  per tree, its last pod change (apisim's write log) ─▶ its HRQ's status.used.pods = its pods (HRQ watch)
//! ```
//!
//! A pod create goes through apisim's quota admission, which charges the namespace's ResourceQuota and sends the
//! new usage through HNC's `resourcequotas/status` webhook; the webhook's denial (403, `exceeded hierarchical
//! quota`) is what keeps a tree within its budget. The webhook is served by the replicas, so the scenario needs
//! the embedded apisim.
//!
//! Besides the figures (`QuotaResult` in the report), the creates HNC's webhook denied although the tree had
//! room by the harness's own count are counted, and two files are kept beside the replicas' logs for diagnosis:
//! `quota-operations.csv` (every operation: sent, answered, namespace, pod, outcome) and
//! `hrqs-after-quota-churn.json` (the HRQs once their status converged, charges included).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use hnc_api::keys::{labels, names};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::core::ApiResource;
use kube::runtime::{WatchStreamExt, watcher};
use parking_lot::Mutex;
use rand::Rng;
use serde_json::{Value, json};
use tokio::task::JoinHandle;

use super::{Session, bar, bar_spinner};
use crate::cli::SimProfile;
use crate::objects::api_resource;
use crate::prom;
use crate::report::{PhaseResult, QuotaResult, Spread};
use crate::topology::Topology;

/// The HRQ in every root.
const HRQ_NAME: &str = "budget";
/// Label on the harness's pods (the sampler lists by it).
const POD_LABEL: &str = "loadtest.hnc.dev/quota-churn";
/// Requests in flight beyond which an operation is skipped rather than started (open loop, bounded).
const IN_FLIGHT_LIMIT: usize = 512;
/// How often pods are counted per tree during the churn.
const SAMPLE_PERIOD: Duration = Duration::from_millis(250);
/// How often the HRQ statuses are looked at while waiting for them to converge.
const CONVERGENCE_POLL: Duration = Duration::from_millis(20);
/// What HRQ status convergence should take, per tree.
const CONVERGENCE_GOAL_S: f64 = 1.0;
/// HNC's ResourceQuota-status webhook.
const QUOTA_WEBHOOK: &str = "resourcesquotasstatus.hnc.x-k8s.io";
/// The user apisim attributes a replica's writes to starts with this (see `replicas::user_of`).
const REPLICA_USER_PREFIX: &str = "system:serviceaccount:hnc-system:";
/// Examples kept of each kind of failure.
const EXAMPLES: usize = 5;
/// A denial counts as made with room in the tree only if deletes this much older than the create left room: far
/// beyond the replicas' watch lag.
const ROOM_MARGIN: Duration = Duration::from_secs(1);

fn hrqs() -> ApiResource {
    api_resource(hnc_api::GROUP, "v1alpha2", "HierarchicalResourceQuota", "hierarchicalresourcequotas")
}
fn pods() -> ApiResource {
    api_resource("", "v1", "Pod", "pods")
}
fn resource_quotas() -> ApiResource {
    api_resource("", "v1", "ResourceQuota", "resourcequotas")
}

/// Where the quota cold start is measured from: the moment before the replicas start.
#[derive(Debug, Clone, Copy)]
pub struct QuotaStart {
    at: Instant,
    write_index: Option<usize>,
}

/// The loaded hierarchy as trees: each tree is a root and its descendants, and has one HRQ (in the root).
#[derive(Debug)]
struct Forest {
    /// Tree index → its root namespace.
    roots: Vec<String>,
    /// Every namespace, in creation order.
    namespaces: Vec<String>,
    /// Namespace → tree index.
    tree_of: HashMap<String, usize>,
}

impl Forest {
    fn of(topology: &Topology) -> Forest {
        let mut roots = Vec::new();
        let mut tree = vec![0; topology.len()];
        for (i, n) in topology.nodes.iter().enumerate() {
            // Parents come before their children.
            tree[i] = match n.parent {
                Some(p) => tree[p],
                None => {
                    roots.push(n.name.clone());
                    roots.len() - 1
                }
            };
        }
        let namespaces: Vec<String> = topology.nodes.iter().map(|n| n.name.clone()).collect();
        let tree_of = namespaces.iter().cloned().zip(tree).collect();
        Forest { roots, namespaces, tree_of }
    }

    fn trees(&self) -> usize {
        self.roots.len()
    }
}

/// The HRQs as the harness's watch last saw them, per tree.
#[derive(Debug, Default)]
struct Statuses {
    /// `status.hard.pods` and `status.used.pods`.
    hard: Vec<Option<u64>>,
    used: Vec<Option<u64>>,
    /// Every change of `status.used.pods` seen, with when it arrived.
    history: Vec<Vec<(Instant, Option<u64>)>>,
    /// The watch's first list is in.
    synced: bool,
}

impl Statuses {
    fn new(trees: usize) -> Statuses {
        Statuses {
            hard: vec![None; trees],
            used: vec![None; trees],
            history: vec![Vec::new(); trees],
            synced: false,
        }
    }

    fn observe(&mut self, tree: usize, hard: Option<u64>, used: Option<u64>) {
        self.hard[tree] = hard;
        if self.used[tree] != used || self.history[tree].is_empty() {
            self.used[tree] = used;
            self.history[tree].push((Instant::now(), used));
        }
    }
}

/// `pods` in a resource list (`status.hard`, `status.used`): a count, as a number or a quantity string.
fn pods_in(list: &Value) -> Option<u64> {
    match list.get("pods")? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok().or_else(|| whole(hnc_api::quantity::parse(s)?)),
        _ => None,
    }
}

/// The whole number `q` is (`1k`, `5.0`), if it is one.
fn whole(q: hnc_api::quantity::Quantity) -> Option<u64> {
    use std::cmp::Ordering;
    let (mut lo, mut hi) = (0u64, 1 << 53);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match hnc_api::quantity::Quantity::from_int(mid as i64).checked_cmp(&q)? {
            Ordering::Less => lo = mid + 1,
            _ => hi = mid,
        }
    }
    (hnc_api::quantity::Quantity::from_int(lo as i64).checked_cmp(&q)? == Ordering::Equal).then_some(lo)
}

/// Watches the HRQs named [`HRQ_NAME`] in the roots into `statuses`.
fn watch_statuses(client: &kube::Client, forest: &Forest, statuses: Arc<Mutex<Statuses>>) -> JoinHandle<()> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &hrqs());
    let roots: HashMap<String, usize> =
        forest.roots.iter().cloned().enumerate().map(|(i, r)| (r, i)).collect();
    tokio::spawn(async move {
        let tree = |o: &DynamicObject| {
            (o.metadata.name.as_deref() == Some(HRQ_NAME))
                .then(|| roots.get(o.metadata.namespace.as_deref()?).copied())
                .flatten()
        };
        let mut stream = watcher(api, watcher::Config::default()).default_backoff().boxed();
        while let Some(event) = stream.next().await {
            let event = match event {
                Ok(e) => e,
                Err(error) => {
                    eprintln!("warning: harness watch of HierarchicalResourceQuotas: {error}");
                    continue;
                }
            };
            match event {
                watcher::Event::Init => {}
                watcher::Event::InitApply(o) | watcher::Event::Apply(o) => {
                    if let Some(t) = tree(&o) {
                        let status = &o.data["status"];
                        statuses.lock().observe(t, pods_in(&status["hard"]), pods_in(&status["used"]));
                    }
                }
                watcher::Event::Delete(o) => {
                    if let Some(t) = tree(&o) {
                        statuses.lock().observe(t, None, None);
                    }
                }
                watcher::Event::InitDone => statuses.lock().synced = true,
            }
        }
    })
}

/// The harness's pods per tree, listed.
async fn pods_per_tree(client: &kube::Client, forest: &Forest) -> anyhow::Result<Vec<u64>> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &pods());
    let list = api.list(&ListParams::default().labels(&format!("{POD_LABEL}=true"))).await?;
    let mut counts = vec![0; forest.trees()];
    for pod in &list.items {
        if let Some(t) = pod.metadata.namespace.as_ref().and_then(|ns| forest.tree_of.get(ns)) {
            counts[*t] += 1;
        }
    }
    Ok(counts)
}

/// What the samples of pods per tree found.
#[derive(Debug, Default)]
struct Samples {
    rounds: u64,
    errors: u64,
    max_usage: f64,
    max_pods: u64,
    exceeded: u64,
    exceeded_examples: Vec<String>,
    status: u64,
    agreeing: u64,
    abs_error_sum: u64,
    max_abs_error: u64,
}

impl Samples {
    /// Pods per tree against the budget.
    fn usage(&mut self, counts: &[u64], budget: u64, forest: &Forest, at_s: f64) {
        self.rounds += 1;
        for (t, &n) in counts.iter().enumerate() {
            self.max_pods = self.max_pods.max(n);
            self.max_usage = self.max_usage.max(n as f64 / budget.max(1) as f64);
            if n > budget {
                self.exceeded += 1;
                if self.exceeded_examples.len() < EXAMPLES {
                    self.exceeded_examples.push(format!(
                        "tree {} held {n} pods (budget {budget}) at {at_s:.2} s",
                        forest.roots[t]
                    ));
                }
            }
        }
    }

    /// HRQ `status.used.pods` against the pods listed.
    fn status(&mut self, counts: &[u64], used: &[Option<u64>]) {
        for (&n, u) in counts.iter().zip(used) {
            self.status += 1;
            let error = u.map_or(n, |u| u.abs_diff(n));
            if error == 0 {
                self.agreeing += 1;
            }
            self.abs_error_sum += error;
            self.max_abs_error = self.max_abs_error.max(error);
        }
    }
}

/// How a pod operation ended.
#[derive(Debug)]
enum Outcome {
    Done,
    /// 403 from HNC's ResourceQuota-status webhook: a hierarchical quota would be exceeded.
    DeniedByWebhook(String),
    /// 403 from the namespace's own ResourceQuota (its `spec.hard` is the tree's budget).
    DeniedByQuota(String),
    Failed(String),
}

impl Outcome {
    fn of<T>(result: Result<T, kube::Error>) -> Outcome {
        match result {
            Ok(_) => Outcome::Done,
            Err(kube::Error::Api(s))
                if s.code == 403
                    && s.message.contains(QUOTA_WEBHOOK)
                    && s.message.contains("exceeded hierarchical quota") =>
            {
                Outcome::DeniedByWebhook(s.message.clone())
            }
            Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("exceeded quota:") => {
                Outcome::DeniedByQuota(s.message.clone())
            }
            Err(e) => Outcome::Failed(e.to_string()),
        }
    }
}

/// One pod operation, finished.
#[derive(Debug)]
struct Op {
    tree: usize,
    ns: usize,
    pod: String,
    create: bool,
    sent: Instant,
    latency_s: f64,
    finished: Instant,
    outcome: Outcome,
}

/// When a pod operation that counts for the budget was sent and answered.
#[derive(Debug, Clone, Copy)]
struct Timed {
    tree: usize,
    sent: Instant,
    finished: Instant,
}

/// The operations' outcomes, counted.
#[derive(Debug)]
struct Tally {
    creates: u64,
    admitted: u64,
    denied_by_webhook: u64,
    denied_by_quota: u64,
    create_errors: u64,
    deletes: u64,
    delete_errors: u64,
    admitted_s: Vec<f64>,
    denied_s: Vec<f64>,
    create_s: Vec<f64>,
    delete_s: Vec<f64>,
    denial_example: Option<String>,
    error_examples: Vec<String>,
    /// Per tree: when the harness last heard of a pod created or deleted there.
    last_change: Vec<Option<Instant>>,
    /// Creates admitted, deletes done, and creates HNC's webhook denied.
    admitted_ops: Vec<Timed>,
    deleted_ops: Vec<Timed>,
    denied_ops: Vec<(Timed, String)>,
    /// Every operation as a CSV line (kept beside the logs for diagnosis), times from `origin`.
    trace: Vec<String>,
    origin: Instant,
}

impl Tally {
    fn new(trees: usize, origin: Instant) -> Tally {
        Tally {
            creates: 0,
            admitted: 0,
            denied_by_webhook: 0,
            denied_by_quota: 0,
            create_errors: 0,
            deletes: 0,
            delete_errors: 0,
            admitted_s: Vec::new(),
            denied_s: Vec::new(),
            create_s: Vec::new(),
            delete_s: Vec::new(),
            denial_example: None,
            error_examples: Vec::new(),
            last_change: vec![None; trees],
            admitted_ops: Vec::new(),
            deleted_ops: Vec::new(),
            denied_ops: Vec::new(),
            trace: vec!["sent_s,answered_s,namespace,pod,operation,outcome".to_owned()],
            origin,
        }
    }

    /// Counts `op`; returns the pod to remember when it was created.
    fn record(&mut self, op: Op, namespaces: &[String]) -> Option<(usize, String)> {
        let ns = &namespaces[op.ns];
        let timed = Timed { tree: op.tree, sent: op.sent, finished: op.finished };
        let outcome = match &op.outcome {
            Outcome::Done => "done".to_owned(),
            Outcome::DeniedByWebhook(m) | Outcome::DeniedByQuota(m) | Outcome::Failed(m) => {
                m.replace(',', ";").replace(['"', '\n'], "'")
            }
        };
        let rel = |t: Instant| t.saturating_duration_since(self.origin).as_secs_f64();
        self.trace.push(format!(
            "{:.4},{:.4},{ns},{},{},{outcome}",
            rel(op.sent),
            rel(op.finished),
            op.pod,
            if op.create { "create" } else { "delete" }
        ));
        if !op.create {
            self.deletes += 1;
            self.delete_s.push(op.latency_s);
            if let Outcome::Done = op.outcome {
                self.last_change[op.tree] = Some(op.finished);
                self.deleted_ops.push(timed);
            } else {
                self.delete_errors += 1;
                self.example(format!("deleting pod {ns}/{}: {:?}", op.pod, op.outcome));
            }
            return None;
        }
        self.creates += 1;
        self.create_s.push(op.latency_s);
        match op.outcome {
            Outcome::Done => {
                self.admitted += 1;
                self.admitted_s.push(op.latency_s);
                self.last_change[op.tree] = Some(op.finished);
                self.admitted_ops.push(timed);
                return Some((op.ns, op.pod));
            }
            Outcome::DeniedByWebhook(message) => {
                self.denied_by_webhook += 1;
                self.denied_s.push(op.latency_s);
                self.denied_ops.push((timed, format!("{ns}: {message}")));
                self.denial_example.get_or_insert(message);
            }
            Outcome::DeniedByQuota(message) => {
                self.denied_by_quota += 1;
                self.denied_s.push(op.latency_s);
                self.denial_example.get_or_insert(message);
            }
            Outcome::Failed(error) => {
                self.create_errors += 1;
                self.example(format!("creating pod {ns}/{}: {error}", op.pod));
            }
        }
        None
    }

    fn example(&mut self, text: String) {
        if self.error_examples.len() < EXAMPLES {
            self.error_examples.push(text);
        }
    }

    /// Creates HNC's webhook denied although the tree had room, by the harness's own count: fewer than `budget`
    /// pods even counting every create admitted before the denial was answered and only the deletes done
    /// [`ROOM_MARGIN`] before the denied create was sent. Returns how many, and examples.
    fn denied_with_room(&self, forest: &Forest, budget: u64, origin: Instant) -> (u64, Vec<String>) {
        let mut admitted: Vec<Vec<Instant>> = vec![Vec::new(); forest.trees()];
        let mut deleted: Vec<Vec<Instant>> = vec![Vec::new(); forest.trees()];
        for op in &self.admitted_ops {
            admitted[op.tree].push(op.sent);
        }
        for op in &self.deleted_ops {
            deleted[op.tree].push(op.finished);
        }
        for times in admitted.iter_mut().chain(deleted.iter_mut()) {
            times.sort_unstable();
        }
        let (mut count, mut examples) = (0, Vec::new());
        for (d, message) in &self.denied_ops {
            let created = admitted[d.tree].partition_point(|&at| at < d.finished) as u64;
            let gone = match d.sent.checked_sub(ROOM_MARGIN) {
                Some(before) => deleted[d.tree].partition_point(|&at| at < before) as u64,
                None => 0,
            };
            let at_most = created.saturating_sub(gone);
            if at_most < budget {
                count += 1;
                if examples.len() < EXAMPLES {
                    examples.push(format!(
                        "tree {} held at most {at_most} of {budget} pods when a create sent at {:.2} s was denied \
                         ({message})",
                        forest.roots[d.tree],
                        d.sent.saturating_duration_since(origin).as_secs_f64()
                    ));
                }
            }
        }
        (count, examples)
    }
}

impl Session {
    /// Loads one HRQ [`HRQ_NAME`] with `pods: --quota-budget` into every root of the loaded topology; returns
    /// the moment the quota cold start is measured from (the replicas start right after).
    pub async fn load_quotas(&mut self, progress: bool) -> anyhow::Result<QuotaStart> {
        anyhow::ensure!(self.opts.quota_budget >= 1, "--quota-budget must be at least 1");
        anyhow::ensure!(self.target.sim().is_some(), "the quota scenario needs the embedded apisim");
        let forest = Forest::of(&Topology::generate(&self.opts.topology_spec())?);
        let budget = self.opts.quota_budget.to_string();
        let items = forest
            .roots
            .iter()
            .map(|root| {
                let hrq = json!({
                    "apiVersion": format!("{}/v1alpha2", hnc_api::GROUP),
                    "kind": "HierarchicalResourceQuota",
                    "metadata": {"name": HRQ_NAME, "namespace": root},
                    "spec": {"hard": {"pods": budget}},
                });
                (hrqs(), root.clone(), hrq)
            })
            .collect::<Vec<_>>();
        let bar = bar(progress, items.len() as u64, "loading the hierarchical quotas");
        let started = Instant::now();
        self.target.load(&self.client, items, &bar).await?;
        bar.finish_and_clear();
        self.load_s += started.elapsed().as_secs_f64();
        Ok(QuotaStart { at: Instant::now(), write_index: self.target.write_count() })
    }

    /// After the cold start: waits for the quotas to be in place, then churns pods at `--rate` for `--duration`
    /// and measures admissions, the budget, and HRQ status (see the module docs).
    pub async fn quota(&mut self, progress: bool, start: QuotaStart) -> anyhow::Result<PhaseResult> {
        let opts = self.opts.clone();
        anyhow::ensure!(opts.rate > 0.0 && opts.duration > 0.0, "--rate and --duration must be positive");
        let budget = opts.quota_budget;
        let forest = Arc::new(Forest::of(&Topology::generate(&opts.topology_spec())?));
        let trees = forest.trees();
        let mut q = QuotaResult {
            api_server: self.api_server(),
            budget,
            hrqs: trees,
            namespaces_under_hrqs: forest.namespaces.len(),
            target_rate: opts.rate,
            in_flight_limit: IN_FLIGHT_LIMIT,
            convergence_goal_s: CONVERGENCE_GOAL_S,
            ..Default::default()
        };
        let mut result = PhaseResult { phase: "quota".into(), ..Default::default() };

        // The HRQ watch serves the wait for the quotas and every measurement after it.
        let statuses = Arc::new(Mutex::new(Statuses::new(trees)));
        let status_watch = watch_statuses(&self.client, &forest, statuses.clone());
        let outcome = self.quota_phase(progress, start, &forest, &statuses, &mut q, &mut result).await;
        status_watch.abort();
        outcome?;
        result.quota = Some(q);
        Ok(result)
    }

    async fn quota_phase(
        &mut self,
        progress: bool,
        start: QuotaStart,
        forest: &Arc<Forest>,
        statuses: &Arc<Mutex<Statuses>>,
        q: &mut QuotaResult,
        result: &mut PhaseResult,
    ) -> anyhow::Result<()> {
        let opts = self.opts.clone();
        let budget = opts.quota_budget;
        let trees = forest.trees();
        let spinner = bar_spinner(progress, "quota cold start: waiting for every namespace's ResourceQuota");
        let deadline = Instant::now() + Duration::from_secs(opts.timeout);
        loop {
            self.sample_replicas()?;
            let missing = self.quota_missing(forest, statuses, budget).await;
            let Some(missing) = missing else { break };
            if Instant::now() > deadline {
                bail!("the hierarchical quotas were not in place within {} s: {missing}", opts.timeout);
            }
            spinner.set_message(format!("quota cold start: {missing}"));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        spinner.finish_and_clear();
        q.ready_s = start.at.elapsed().as_secs_f64();
        if let (Some(sim), Some(from)) = (self.target.sim(), start.write_index) {
            let first_writes = |resource: &str, name: &str| {
                let mut first: HashMap<String, Instant> = HashMap::new();
                for w in sim.writes_from(from) {
                    if w.resource == resource
                        && w.name == name
                        && (200..300).contains(&w.code)
                        && w.user.starts_with(REPLICA_USER_PREFIX)
                    {
                        first.entry(w.namespace.clone()).or_insert(w.at);
                    }
                }
                first
            };
            let singletons = first_writes("resourcequotas", names::HRQ_RESOURCE_QUOTA);
            let hrq_status = first_writes("hierarchicalresourcequotas", HRQ_NAME);
            let last = |first: &HashMap<String, Instant>, of: &[String]| {
                of.iter()
                    .map(|ns| first.get(ns).map(|at| at.saturating_duration_since(start.at).as_secs_f64()))
                    .try_fold(0.0, |max: f64, s| s.map(|s| max.max(s)))
            };
            q.singletons_created_s = last(&singletons, &forest.namespaces);
            q.hrq_status_written_s = last(&hrq_status, &forest.roots);
        }

        // The churn.
        let meter = self.meter().await;
        let churn_writes = self.target.write_count();
        let started = Instant::now();
        let end = started + Duration::from_secs_f64(opts.duration);
        let interval = Duration::from_secs_f64(1.0 / opts.rate);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let sampler = {
            let (client, forest, statuses) = (self.client.clone(), forest.clone(), statuses.clone());
            tokio::spawn(async move {
                let mut samples = Samples::default();
                let mut tick = tokio::time::interval(SAMPLE_PERIOD);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                let mut stopped = stopped;
                loop {
                    tokio::select! {
                        _ = tick.tick() => {}
                        _ = &mut stopped => break,
                    }
                    match pods_per_tree(&client, &forest).await {
                        Ok(counts) => {
                            let used = statuses.lock().used.clone();
                            samples.usage(&counts, budget, &forest, started.elapsed().as_secs_f64());
                            samples.status(&counts, &used);
                        }
                        Err(_) => samples.errors += 1,
                    }
                }
                samples
            })
        };
        let bar = bar(progress, (opts.duration * 10.0) as u64, "quota churn");
        let permits = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT_LIMIT));
        let mut ops: tokio::task::JoinSet<Op> = tokio::task::JoinSet::new();
        let mut tally = Tally::new(trees, started);
        let mut pods_of: Vec<Vec<String>> = vec![Vec::new(); forest.namespaces.len()];
        let mut issued = 0u64;
        let mut skipped = 0u64;
        let mut next = started;
        let mut sampled = started;
        while Instant::now() < end {
            tokio::time::sleep_until(next.into()).await;
            next += interval;
            while let Some(op) = ops.try_join_next() {
                if let Some((ns, pod)) = tally.record(op?, &forest.namespaces) {
                    pods_of[ns].push(pod);
                }
            }
            let Ok(permit) = permits.clone().try_acquire_owned() else {
                skipped += 1;
                continue;
            };
            issued += 1;
            let ns = self.rng.random_range(0..forest.namespaces.len());
            let create = pods_of[ns].is_empty() || self.rng.random_bool(0.5);
            let pod = if create {
                self.counter += 1;
                format!("ltq-{}", self.counter)
            } else {
                let i = self.rng.random_range(0..pods_of[ns].len());
                pods_of[ns].swap_remove(i)
            };
            let namespace = forest.namespaces[ns].clone();
            let tree = forest.tree_of[&namespace];
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), &namespace, &pods());
            ops.spawn(async move {
                let _permit = permit;
                let sent = Instant::now();
                let outcome = if create {
                    let object: DynamicObject = serde_json::from_value(json!({
                        "apiVersion": "v1",
                        "kind": "Pod",
                        "metadata": {"name": pod, "namespace": namespace, "labels": {POD_LABEL: "true"}},
                        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]},
                    }))
                    .expect("a pod");
                    Outcome::of(api.create(&PostParams::default(), &object).await)
                } else {
                    Outcome::of(api.delete(&pod, &DeleteParams::default()).await)
                };
                let finished = Instant::now();
                let latency_s = finished.duration_since(sent).as_secs_f64();
                Op { tree, ns, pod, create, sent, latency_s, finished, outcome }
            });
            if sampled.elapsed() >= SAMPLE_PERIOD {
                sampled = Instant::now();
                self.sample_replicas()?;
                bar.set_position((started.elapsed().as_secs_f64() * 10.0).min(opts.duration * 10.0) as u64);
                bar.set_message(format!(
                    "quota churn at {:.0}/s: {issued} operations, {} admitted, {} denied, {} in flight",
                    opts.rate,
                    tally.admitted,
                    tally.denied_by_webhook + tally.denied_by_quota,
                    ops.len()
                ));
            }
        }
        q.duration_s = started.elapsed().as_secs_f64();
        q.achieved_rate = issued as f64 / q.duration_s;
        bar.set_message("quota churn: waiting for the operations in flight");
        while let Some(op) = ops.join_next().await {
            if let Some((ns, pod)) = tally.record(op?, &forest.namespaces) {
                pods_of[ns].push(pod);
            }
        }
        let _ = stop.send(());
        let mut samples = sampler.await?;
        // Once more after the last operation: these are the counts the HRQ statuses must reach.
        let counts = pods_per_tree(&self.client, forest).await.context("listing the pods after the churn")?;
        samples.usage(&counts, budget, forest, started.elapsed().as_secs_f64());
        let ops_done = Instant::now();

        // HRQ status convergence.
        bar.set_message("quota churn: waiting for the HRQ statuses to match the pods");
        let converge_until = ops_done + Duration::from_secs_f64(opts.drain);
        loop {
            let all = statuses.lock().used.iter().zip(&counts).all(|(u, n)| *u == Some(*n));
            if all || Instant::now() > converge_until {
                break;
            }
            tokio::time::sleep(CONVERGENCE_POLL).await;
        }
        bar.finish_and_clear();
        // Kept beside the logs for diagnosis: the HRQs as they were then (status, charges).
        if let Ok(list) =
            Api::<DynamicObject>::all_with(self.client.clone(), &hrqs()).list(&ListParams::default()).await
        {
            let _ = std::fs::write(
                self.logs.join("hrqs-after-quota-churn.json"),
                serde_json::to_string_pretty(&list.items).unwrap_or_default(),
            );
        }
        // Each tree's last pod change: apisim's record of the harness's successful pod writes, which has the
        // moment each was served; on a cluster, the moment the harness had the answer.
        let mut last_change = tally.last_change.clone();
        if let (Some(sim), Some(from)) = (self.target.sim(), churn_writes) {
            last_change = vec![None; trees];
            for w in sim.writes_from(from) {
                if w.resource != "pods"
                    || !(200..300).contains(&w.code)
                    || w.user.starts_with(REPLICA_USER_PREFIX)
                {
                    continue;
                }
                if let Some(&t) = forest.tree_of.get(&w.namespace) {
                    last_change[t] = Some(last_change[t].map_or(w.at, |l: Instant| l.max(w.at)));
                }
            }
        }
        let mut convergence = Vec::new();
        {
            let s = statuses.lock();
            for t in 0..trees {
                let Some(changed) = last_change[t] else { continue };
                q.trees_changed += 1;
                let target = Some(counts[t]);
                let history = &s.history[t];
                match history.iter().rposition(|(_, used)| *used != target) {
                    // As far as the watch saw, the status showed the final count all along.
                    None => convergence.push(0.0),
                    Some(k) if k + 1 == history.len() => q.trees_not_converged.push(format!(
                        "{}: status.used.pods {:?}, {} pods",
                        forest.roots[t], history[k].1, counts[t]
                    )),
                    Some(k) => {
                        convergence.push(history[k + 1].0.saturating_duration_since(changed).as_secs_f64())
                    }
                }
            }
        }
        q.trees_converged = convergence.len();
        q.convergence = Spread::of(&convergence);

        q.operations = issued;
        q.skipped_at_in_flight_limit = skipped;
        q.creates = tally.creates;
        q.creates_admitted = tally.admitted;
        q.denied_by_hrq_webhook = tally.denied_by_webhook;
        q.denied_by_resource_quota = tally.denied_by_quota;
        q.creates_denied_by_quota = tally.denied_by_webhook + tally.denied_by_quota;
        q.creates_other_errors = tally.create_errors;
        q.deletes = tally.deletes;
        q.deletes_failed = tally.delete_errors;
        q.create_latency = Spread::of(&tally.create_s);
        q.admitted_latency = Spread::of(&tally.admitted_s);
        q.denied_latency = Spread::of(&tally.denied_s);
        q.delete_latency = Spread::of(&tally.delete_s);
        (q.denied_with_room, q.denied_with_room_examples) = tally.denied_with_room(forest, budget, started);
        let _ = std::fs::write(self.logs.join("quota-operations.csv"), tally.trace.join("\n") + "\n");
        q.denial_example = tally.denial_example;
        q.error_examples = tally.error_examples;
        q.usage_samples = samples.rounds;
        q.usage_sample_errors = samples.errors;
        q.max_tree_usage = samples.max_usage;
        q.max_tree_pods = samples.max_pods;
        q.budget_exceeded_samples = samples.exceeded;
        q.exceeded_examples = samples.exceeded_examples;
        q.pods_at_end = counts.iter().sum();
        q.status_samples = samples.status;
        q.status_agreeing = samples.agreeing;
        q.status_agreement = samples.agreeing as f64 / samples.status.max(1) as f64;
        q.status_mean_abs_error = samples.abs_error_sum as f64 / samples.status.max(1) as f64;
        q.status_max_abs_error = samples.max_abs_error;
        let kept: usize = pods_of.iter().map(Vec::len).sum();
        if kept as u64 != q.pods_at_end {
            result.notes.push(format!(
                "the harness counted {kept} pods it created and did not delete; the API server lists {}",
                q.pods_at_end
            ));
        }

        // The replicas' own view of the webhook over the phase.
        for r in &self.replicas {
            let Ok(after) = r.metrics(&self.http).await else { continue };
            let before = meter.controller_writes.get(&r.id).map(Vec::as_slice).unwrap_or_default();
            let delta = |name: &str, filter: &[(&str, &str)]| {
                prom::sum(&after, name, filter) - prom::sum(before, name, filter)
            };
            let webhook = ("webhook", QUOTA_WEBHOOK);
            q.webhook_allowed += delta("hnc_webhook_requests_total", &[webhook, ("decision", "allowed")]);
            q.webhook_denied += delta("hnc_webhook_requests_total", &[webhook, ("decision", "denied")]);
            q.webhook_denials_counted += delta("hnc_hrq_denials_total", &[]);
            q.charge_conflicts += delta("hnc_hrq_charge_conflicts_total", &[]);
        }
        let mut changes = BTreeMap::new();
        changes.insert("pod create".to_owned(), q.creates);
        changes.insert("pod delete".to_owned(), q.deletes);
        result.changes = changes;
        result.notes.push(format!("achieved rate {:.1}/s of {:.1}/s", q.achieved_rate, opts.rate));

        let idle_deadline = Instant::now() + Duration::from_secs_f64(opts.drain);
        if let Err(e) = self.wait_idle(opts.idle, idle_deadline).await {
            result.notes.push(format!("after the quota churn: {e:#}"));
        }
        self.finish(&meter, result, 0).await;
        Ok(())
    }

    /// What is still missing before the churn may start (None: nothing): every namespace's singleton
    /// ResourceQuota with the budget and a usage, every HRQ's status at the budget and 0 used, and HNC's
    /// ResourceQuota-status webhook registered with its CA (before that, creates are not checked by it).
    async fn quota_missing(
        &self,
        forest: &Forest,
        statuses: &Mutex<Statuses>,
        budget: u64,
    ) -> Option<String> {
        let configs: Api<ValidatingWebhookConfiguration> = Api::all(self.client.clone());
        let registered = match configs.get_opt(names::VALIDATING_WEBHOOK_CONFIGURATION).await {
            Ok(Some(vwc)) => vwc
                .webhooks
                .unwrap_or_default()
                .iter()
                .any(|h| h.name == QUOTA_WEBHOOK && h.client_config.ca_bundle.is_some()),
            _ => false,
        };
        if !registered {
            return Some(format!("the {QUOTA_WEBHOOK} webhook is not registered yet"));
        }
        let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource_quotas());
        let listed = match api.list(&ListParams::default().labels(&format!("{}=true", labels::HRQ))).await {
            Ok(l) => l,
            Err(e) => return Some(format!("cannot list the ResourceQuotas: {e}")),
        };
        let ready = listed
            .items
            .iter()
            .filter(|rq| rq.metadata.name.as_deref() == Some(names::HRQ_RESOURCE_QUOTA))
            .filter(|rq| rq.metadata.namespace.as_ref().is_some_and(|ns| forest.tree_of.contains_key(ns)))
            .filter(|rq| {
                pods_in(&rq.data["spec"]["hard"]) == Some(budget)
                    && pods_in(&rq.data["status"]["used"]).is_some()
            })
            .count();
        if ready < forest.namespaces.len() {
            return Some(format!(
                "{ready} of {} namespaces have their ResourceQuota",
                forest.namespaces.len()
            ));
        }
        let s = statuses.lock();
        if !s.synced {
            return Some("the harness's HRQ watch has not listed them yet".into());
        }
        let shown =
            (0..forest.trees()).filter(|&t| s.hard[t] == Some(budget) && s.used[t] == Some(0)).count();
        if shown < forest.trees() {
            return Some(format!("{shown} of {} HRQs show their status", forest.trees()));
        }
        None
    }

    /// The API server, for the report: apisim and its load settings.
    fn api_server(&self) -> String {
        let o = &self.opts;
        if self.target.sim().is_none() {
            return "a cluster".into();
        }
        let profile = match o.sim_profile {
            Some(SimProfile::Realistic) => format!(
                "load profile realistic ({} write seats)",
                o.sim_seats.unwrap_or(hnc_apisim::LoadProfile::realistic().seats)
            ),
            None => "no load profile (writes served at once)".into(),
        };
        let limit = o.sim_rate_limit.map_or("no per-replica rate limit".into(), |r| {
            format!("each replica limited to {r} requests/s (burst {})", o.sim_burst)
        });
        format!("embedded apisim, {profile}, {limit}, {} ms added to every request", o.sim_latency_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topology::TopoNode;

    fn forest() -> Forest {
        let node = |name: &str, parent| TopoNode { name: name.to_owned(), parent };
        let topology = Topology {
            nodes: vec![node("a", None), node("a-1", Some(0)), node("b", None), node("a-1-1", Some(1))],
        };
        Forest::of(&topology)
    }

    #[test]
    fn namespaces_belong_to_their_roots_tree() {
        let f = forest();
        assert_eq!(f.roots, ["a", "b"]);
        assert_eq!((f.tree_of["a-1-1"], f.tree_of["a-1"], f.tree_of["b"]), (0, 0, 1));
    }

    #[test]
    fn pod_counts_are_read_from_numbers_and_quantities() {
        assert_eq!(pods_in(&json!({"pods": "3"})), Some(3));
        assert_eq!(pods_in(&json!({"pods": 4})), Some(4));
        assert_eq!(pods_in(&json!({"pods": "5.0"})), Some(5));
        assert_eq!(pods_in(&json!({"pods": "1k"})), Some(1000));
        assert_eq!(pods_in(&json!({"pods": "1500m"})), None);
        assert_eq!(pods_in(&json!({"cpu": "1"})), None);
        assert_eq!(pods_in(&Value::Null), None);
    }

    #[test]
    fn samples_count_trees_over_the_budget_and_status_errors() {
        let f = forest();
        let mut s = Samples::default();
        s.usage(&[2, 3], 2, &f, 1.0);
        assert_eq!((s.rounds, s.exceeded, s.max_pods), (1, 1, 3));
        assert_eq!(s.max_usage, 1.5);
        assert!(s.exceeded_examples[0].starts_with("tree b held 3 pods"), "{:?}", s.exceeded_examples);
        s.status(&[2, 3], &[Some(2), None]);
        assert_eq!((s.status, s.agreeing, s.abs_error_sum, s.max_abs_error), (2, 1, 3, 3));
    }

    #[test]
    fn a_denial_counts_as_made_with_room_only_beyond_the_margin() {
        let f = forest();
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut tally = Tally::new(f.trees(), t0);
        let timed = |sent, finished| Timed { tree: 0, sent: at(sent), finished: at(finished) };
        // Two pods created; one deleted at 1.1 s.
        tally.admitted_ops.extend([timed(0, 10), timed(100, 110)]);
        tally.deleted_ops.push(timed(1_000, 1_100));
        // Budget 2: a denial at 1.5 s may still be watch lag; at 2.5 s the tree had had room for 1.4 s.
        tally.denied_ops.push((timed(1_500, 1_510), "early".into()));
        tally.denied_ops.push((timed(2_500, 2_510), "late".into()));
        let (count, examples) = tally.denied_with_room(&f, 2, t0);
        assert_eq!(count, 1, "{examples:?}");
        assert!(
            examples[0].contains("held at most 1 of 2 pods") && examples[0].contains("late"),
            "{examples:?}"
        );
    }
}
