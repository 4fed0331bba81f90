//! The API server under test: apisim embedded in the harness process on a runtime of its own (threads named
//! `lt-apisim`, so its CPU time is told apart from the harness's `lt-harness` threads), or any cluster through a
//! kubeconfig. Owns loading objects fast (apisim: in memory, without HTTP; a cluster: concurrent requests),
//! replica credentials, simulated load (per-replica rate limits, added latency, a realistic load profile) and the
//! write log.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, anyhow};
use futures::{StreamExt, TryStreamExt};
use hnc_apisim::{ApiSim, FaultRule};
use kube::api::{Api, DynamicObject, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::ApiResource;
use serde::Serialize;
use serde_json::Value;

use crate::prom;
use crate::replicas::user_of;
use crate::topology::NS_PREFIX;

/// Simulated API server load.
#[derive(Debug, Clone, Default, Serialize)]
pub struct SimLoad {
    /// Requests per second each replica may make (API Priority and Fairness-like 429s beyond it).
    pub rate_limit: Option<f64>,
    pub burst: u32,
    /// Latency added to every request.
    pub latency_ms: u64,
    /// Seats for writes under apisim's realistic load profile, when it is on.
    pub profile_seats: Option<usize>,
}

/// Where the harness runs against.
pub enum Target {
    Sim { sim: std::sync::Arc<ApiSim>, load: SimLoad, dir: PathBuf, work: parking_lot::Mutex<WorkCount> },
    Cluster { kubeconfig: PathBuf },
}

/// One object to load: `(group, version, plural, namespace, object)`.
pub type LoadItem = (ApiResource, String, Value);

/// Writes served, grouped: `user → "VERB resource code" → count`.
pub type WriteCounts = BTreeMap<String, BTreeMap<String, u64>>;

/// A summary of apisim's write log over a phase.
#[derive(Debug, Default)]
pub struct WriteLog {
    pub counts: WriteCounts,
    pub last: Option<std::time::Instant>,
    /// Objects replicas wrote more than once, most first (at most 10).
    pub most_written: Vec<(String, u64)>,
    /// How many objects replicas wrote more than once.
    pub repeated_objects: usize,
    /// Lease writes (replica coordination), left out of everything above.
    pub lease_writes: u64,
}

/// Writes apisim served other than Lease updates, counted incrementally: `(records scanned, work writes)`.
#[derive(Debug, Default)]
pub struct WorkCount(usize, usize);

/// Lease renewals are the replicas' steady heartbeat, not work: a sharded controller renews its shard leases
/// forever, so "no write for N seconds" must not count them.
fn is_coordination(resource: &str) -> bool {
    resource == "leases"
}

impl Target {
    /// Starts apisim on `runtime` (its own threads) with `dir` for kubeconfigs.
    pub async fn start_sim(
        runtime: &tokio::runtime::Handle,
        load: SimLoad,
        dir: &Path,
    ) -> anyhow::Result<Target> {
        let config = hnc_apisim::Config { history_window: 1_000_000, ..Default::default() };
        let sim = runtime.spawn(ApiSim::start(config)).await??;
        for (_, crd) in hnc_api::crd::all() {
            sim.create("apiextensions.k8s.io", "customresourcedefinitions", "", serde_json::to_value(&crd)?)
                .map_err(|e| anyhow!("installing HNC's CRDs: {}", e.message))?;
        }
        if load.latency_ms > 0 {
            sim.faults()
                .add(FaultRule { latency: Duration::from_millis(load.latency_ms), ..Default::default() });
        }
        if let Some(seats) = load.profile_seats {
            sim.faults()
                .set_profile(Some(hnc_apisim::LoadProfile { seats, ..hnc_apisim::LoadProfile::realistic() }));
        }
        Ok(Target::Sim { sim: std::sync::Arc::new(sim), load, dir: dir.to_owned(), work: Default::default() })
    }

    /// A cluster reached through `kubeconfig`.
    pub fn cluster(kubeconfig: &Path) -> Target {
        Target::Cluster { kubeconfig: kubeconfig.to_owned() }
    }

    pub fn sim(&self) -> Option<&ApiSim> {
        match self {
            Target::Sim { sim, .. } => Some(sim),
            Target::Cluster { .. } => None,
        }
    }

    /// apisim, shared (for a fault task that restarts it or changes its faults while the harness churns).
    pub fn shared_sim(&self) -> Option<std::sync::Arc<ApiSim>> {
        match self {
            Target::Sim { sim, .. } => Some(sim.clone()),
            Target::Cluster { .. } => None,
        }
    }

    /// An admin client for the harness.
    pub async fn admin_client(&self) -> anyhow::Result<kube::Client> {
        let kubeconfig = match self {
            Target::Sim { sim, .. } => Kubeconfig::from_yaml(&sim.kubeconfig_yaml(sim.admin_token()))?,
            Target::Cluster { kubeconfig } => Kubeconfig::read_from(kubeconfig)
                .with_context(|| format!("cannot read kubeconfig {}", kubeconfig.display()))?,
        };
        let mut config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
        config.read_timeout = Some(Duration::from_secs(300));
        Ok(kube::Client::try_from(config)?)
    }

    /// The kubeconfig replica `id` runs with: against apisim a user of its own (rate limited if configured).
    pub fn replica_kubeconfig(&self, id: &str) -> anyhow::Result<PathBuf> {
        match self {
            Target::Sim { sim, load, dir, .. } => {
                let token = format!("token-{id}");
                let user = user_of(id);
                sim.add_user(
                    &token,
                    &user,
                    &["system:serviceaccounts", "system:serviceaccounts:hnc-system", "system:masters"],
                );
                if let Some(rate) = load.rate_limit {
                    sim.faults().rate_limit(&user, rate, load.burst);
                }
                let path = dir.join(format!("kubeconfig-{id}"));
                sim.write_kubeconfig(&path, &token)?;
                Ok(path)
            }
            Target::Cluster { kubeconfig } => Ok(kubeconfig.clone()),
        }
    }

    /// Creates `items` (in order for apisim; with bounded concurrency, keeping namespaces first, on a cluster).
    /// Objects that already exist are an error: the harness loads into a clean target.
    pub async fn load(
        &self,
        client: &kube::Client,
        items: Vec<LoadItem>,
        progress: &indicatif::ProgressBar,
    ) -> anyhow::Result<()> {
        match self {
            Target::Sim { sim, .. } => {
                for (ar, ns, obj) in items {
                    sim.create(&ar.group, &ar.plural, &ns, obj)
                        .map_err(|e| anyhow!("loading {}: {}", ar.plural, e.message))?;
                    progress.inc(1);
                }
            }
            Target::Cluster { .. } => {
                // Namespaces (cluster-scoped) must exist before their contents: two waves.
                let (first, second): (Vec<_>, Vec<_>) =
                    items.into_iter().partition(|(_, ns, _)| ns.is_empty());
                for wave in [first, second] {
                    futures::stream::iter(wave)
                        .map(|(ar, ns, obj)| {
                            let client = client.clone();
                            async move {
                                let api: Api<DynamicObject> = if ns.is_empty() {
                                    Api::all_with(client, &ar)
                                } else {
                                    Api::namespaced_with(client, &ns, &ar)
                                };
                                let obj: DynamicObject = serde_json::from_value(obj)?;
                                let name = obj.metadata.name.clone().unwrap_or_default();
                                match api.create(&PostParams::default(), &obj).await {
                                    // A cluster with HNC installed already has its namespace, `config` and
                                    // CRDs; the harness's own namespaces must be new.
                                    Err(kube::Error::Api(e))
                                        if e.code == 409 && ns.is_empty() && !name.starts_with(NS_PREFIX) => {
                                    }
                                    other => {
                                        other.with_context(|| format!("creating {} {name}", ar.plural))?;
                                    }
                                }
                                anyhow::Ok(())
                            }
                        })
                        .buffer_unordered(32)
                        .inspect_ok(|_| progress.inc(1))
                        .try_collect::<Vec<()>>()
                        .await?;
                }
            }
        }
        Ok(())
    }

    /// Number of writes apisim has served so far (None on a cluster).
    pub fn write_count(&self) -> Option<usize> {
        self.sim().map(ApiSim::write_count)
    }

    /// Writes apisim served so far other than Lease updates (see [`is_coordination`]).
    pub fn work_write_count(&self) -> Option<usize> {
        let Target::Sim { sim, work, .. } = self else { return None };
        let mut work = work.lock();
        let new = sim.writes_from(work.0);
        work.0 += new.len();
        work.1 += new.iter().filter(|w| !is_coordination(&w.resource)).count();
        Some(work.1)
    }

    /// Writes apisim served from index `from` on: by user, the time of the last one by a replica, and the
    /// objects replicas wrote most often (at least twice), most first.
    pub fn writes_since(&self, from: usize) -> Option<WriteLog> {
        let sim = self.sim()?;
        let mut log = WriteLog::default();
        let mut per_object: HashMap<String, u64> = HashMap::new();
        for w in sim.writes_from(from) {
            if is_coordination(&w.resource) {
                log.lease_writes += 1;
                continue;
            }
            if w.user.starts_with("system:serviceaccount:hnc-system:") {
                log.last = Some(log.last.map_or(w.at, |l: std::time::Instant| l.max(w.at)));
                *per_object.entry(format!("{} {}/{}", w.resource, w.namespace, w.name)).or_default() += 1;
            }
            *log.counts
                .entry(w.user)
                .or_default()
                .entry(format!("{} {} {}", w.verb, w.resource, w.code))
                .or_default() += 1;
        }
        let mut repeated: Vec<(String, u64)> = per_object.into_iter().filter(|(_, n)| *n >= 2).collect();
        repeated.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        log.repeated_objects = repeated.len();
        repeated.truncate(10);
        log.most_written = repeated;
        Some(log)
    }

    /// apisim's `apiserver_request_total` samples (None on a cluster).
    pub async fn request_totals(&self, http: &reqwest::Client) -> Option<BTreeMap<String, f64>> {
        let sim = self.sim()?;
        let text = http
            .get(format!("{}/metrics", sim.http_url()))
            .bearer_auth(sim.admin_token())
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let mut out = BTreeMap::new();
        for s in prom::parse(&text).into_iter().filter(|s| s.name == "apiserver_request_total") {
            let key = format!(
                "{} {}",
                s.labels.get("verb").map_or("", String::as_str),
                s.labels.get("resource").map_or("", String::as_str)
            );
            *out.entry(key).or_insert(0.0) += s.value;
        }
        Some(out)
    }
}
