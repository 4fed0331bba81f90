//! The command line: one subcommand per scenario, each taking the topology, target and output options.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use serde::Serialize;

use crate::topology::{Distribution, Shape, TopologySpec};

const EXAMPLES: &str = "\
Examples (release build: cargo run --release -p hnc-loadtest -- ...):
  hnc-loadtest cold --topology wide --size 500
  hnc-loadtest warm --topology full --size 20
  hnc-loadtest cold --topology skewer --size 100
  hnc-loadtest cold --topology forest --trees 2000 --namespaces 20000 --objects 1 --replicas 1
  hnc-loadtest churn --topology forest --trees 200 --namespaces 2000 --rate 20 --duration 60
  hnc-loadtest burst --topology wide --size 10000
  hnc-loadtest capacity --topology forest --trees 200 --namespaces 2000 --replica-counts 1,2,4
  hnc-loadtest run --phases cold,warm,churn --topology wide --size 20 --duration 5
  hnc-loadtest faults --topology forest --trees 2000 --namespaces 20000 --replicas 3 --rate 20 \
      --out docs/perf/faults-forest-20k-r3
  hnc-loadtest quota   # 1,000 namespaces under 100 HRQs of 20 pods, pods created and deleted at 100/s for 60 s
  hnc-loadtest quota --replicas 3 --sim-profile realistic --quota-budget 10 --duration 30
  hnc-loadtest cold --kubeconfig ~/.kube/config --topology wide --size 100   # a real cluster
  hnc-loadtest scaling-plot docs/perf/scale-forest-20k-r1 docs/perf/scale-forest-20k-r2 \
      docs/perf/scale-forest-20k-r4 --out docs/perf/scaling-forest-20k.svg
Results go to --out (default loadtest-out/<scenario>-<topology>; quota: loadtest-out/quota-<shape>): result.json,
summary.md, *.svg.";

/// Load harness for the hierarchical namespace controller: synthetic topologies, cold start, warm restart,
/// churn, burst, SLO capacity, faults and hierarchical quotas, against an embedded apisim (default) or a cluster.
#[derive(Debug, Parser)]
#[command(name = "hnc-loadtest", version, about, after_help = EXAMPLES)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the topology, start the controller(s), measure until converged.
    Cold(Common),
    /// Cold start, then restart the controller(s): an unchanged cluster must see 0 writes.
    Warm(Common),
    /// Cold start, then a steady rate of changes for a duration; propagation latency and writes per change.
    Churn(Common),
    /// Cold start, then one new source at a time into the root with the most descendants.
    Burst(Common),
    /// For each replica count: cold start, then ramp the churn rate to the highest at which p99 propagation
    /// latency stays within the SLO.
    Capacity(Common),
    /// Any sequence of phases, e.g. `--phases cold,warm,churn` (what the smoke test runs).
    Run(Common),
    /// Cold start, then each of `--faults` in turn under churn at `--rate`: changes lost, writes fenced,
    /// duplicate writers seen by apisim, convergence after the fault, latency through it. Needs 2+ replicas.
    Faults(Common),
    /// Quota churn: a HierarchicalResourceQuota `budget` (`pods: --quota-budget`) in every root, the replicas
    /// with `--enable-hrq` and webhooks; cold start until every namespace has its quota, then pods created and
    /// deleted in random namespaces at `--rate` for `--duration`: creates admitted and denied, their latency,
    /// pods per tree against the budget, HRQ status agreement and convergence. Defaults: 1,000 namespaces in
    /// 100 uniform trees, 100 operations/s for 60 s.
    #[command(
        mut_arg("topology", |a| a.default_value("forest")),
        mut_arg("trees", |a| a.default_value("100")),
        mut_arg("namespaces", |a| a.default_value("1000")),
        mut_arg("distribution", |a| a.default_value("uniform")),
        mut_arg("objects", |a| a.default_value("0")),
        mut_arg("rate", |a| a.default_value("100")),
        mut_arg("duration", |a| a.default_value("60"))
    )]
    Quota(Common),
    /// Draws how per-replica cost scales from the results of runs of one topology at different replica counts
    /// (their `result.json`): each replica's CPU-s and peak RSS of the cold start as a share of the
    /// 1-replica run's, against the replica count. Needs a 1-replica run among them.
    ScalingPlot(ScalingPlotArgs),
}

/// Arguments of `hnc-loadtest scaling-plot`.
#[derive(Debug, Clone, Args)]
pub struct ScalingPlotArgs {
    /// Result directories (or their result.json), one per replica count.
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// The SVG to write.
    #[arg(long)]
    pub out: PathBuf,
    /// The goal drawn as a horizontal line (share of the 1-replica cost).
    #[arg(long, default_value_t = 0.3)]
    pub goal: f64,
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Cold(_) => "cold",
            Command::Warm(_) => "warm",
            Command::Churn(_) => "churn",
            Command::Burst(_) => "burst",
            Command::Capacity(_) => "capacity",
            Command::Run(_) => "run",
            Command::Faults(_) => "faults",
            Command::Quota(_) => "quota",
            Command::ScalingPlot(_) => "scaling-plot",
        }
    }

    /// The options of a command that runs a scenario (`None` for `scaling-plot`).
    pub fn common(&self) -> Option<&Common> {
        Some(match self {
            Command::Cold(c)
            | Command::Warm(c)
            | Command::Churn(c)
            | Command::Burst(c)
            | Command::Capacity(c)
            | Command::Run(c)
            | Command::Faults(c)
            | Command::Quota(c) => c,
            Command::ScalingPlot(_) => return None,
        })
    }

    /// The phases this command runs after loading and the cold start.
    pub fn phases(&self) -> Vec<Phase> {
        match self {
            Command::Cold(_)
            | Command::Capacity(_)
            | Command::Faults(_)
            | Command::Quota(_)
            | Command::ScalingPlot(_) => vec![],
            Command::Warm(_) => vec![Phase::Warm],
            Command::Churn(_) => vec![Phase::Churn],
            Command::Burst(_) => vec![Phase::Burst],
            Command::Run(c) => c.phases.iter().copied().filter(|p| *p != Phase::Cold).collect(),
        }
    }
}

/// A step of a run. Every run starts with `cold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Cold,
    Warm,
    Churn,
    Burst,
    /// SIGKILL the leader while churn runs (`--rate`, `--duration`); needs 2+ replicas.
    Failover,
    /// Start one more replica while churn runs; measures the shard handovers.
    #[serde(rename = "scale-out")]
    ScaleOut,
}

/// A fault `hnc-loadtest faults` injects while churn runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL the leader; start it again after --fault-duration.
    LeaderKill,
    /// SIGKILL a replica holding shards (not the leader when another holds any); start it again after
    /// --fault-duration.
    HolderKill,
    /// SIGSTOP a replica holding shards for lease duration + 3 s, then SIGCONT it.
    HolderStop,
    /// SIGTERM every replica at once, then start them all again.
    RestartAll,
    /// Restart apisim (its objects kept, its watch history not) after --apiserver-down s down.
    ApiserverRestart,
    /// 429 with Retry-After: 1 on half of the replicas' writes for --fault-duration.
    ThrottleStorm,
    /// 500 or 503 on 30 % of the replicas' writes for --fault-duration.
    ErrorBurst,
    /// Every watch dropped four times over --fault-duration, the history compacted before every other drop
    /// (those resumes get 410 and relist).
    WatchDrop,
    /// Every admission webhook answers --webhook-latency late for --fault-duration. Needs the replicas to serve
    /// webhooks: a run whose --faults include it starts them with webhooks (as with --webhooks).
    SlowWebhooks,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::LeaderKill => "leader-kill",
            FaultKind::HolderKill => "holder-kill",
            FaultKind::HolderStop => "holder-stop",
            FaultKind::RestartAll => "restart-all",
            FaultKind::ApiserverRestart => "apiserver-restart",
            FaultKind::ThrottleStorm => "throttle-storm",
            FaultKind::ErrorBurst => "error-burst",
            FaultKind::WatchDrop => "watch-drop",
            FaultKind::SlowWebhooks => "slow-webhooks",
        }
    }
}

/// How the hierarchy is expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HierarchyMode {
    /// Full namespaces with HierarchyConfiguration `spec.parent` (upstream's `kubectl hns set`).
    Parent,
    /// Subnamespaces: an anchor in the parent and the `subnamespace-of` annotation on the child.
    Anchors,
}

/// apisim's load profiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SimProfile {
    /// Writes cost seats and an etcd-like commit; 429 with Retry-After when the queue is full.
    Realistic,
}

#[derive(Debug, Clone, Args, Serialize)]
pub struct Common {
    // --- topology ---------------------------------------------------------------------------------------
    /// Shape of the hierarchy.
    #[arg(long, value_enum, default_value = "wide", help_heading = "Topology")]
    pub topology: Shape,
    /// N: children (wide), children and grandchildren per child (full), chain length (skewer).
    #[arg(long, help_heading = "Topology")]
    pub size: Option<usize>,
    /// Forest: number of trees.
    #[arg(long, default_value_t = 2000, help_heading = "Topology")]
    pub trees: usize,
    /// Forest: total namespaces.
    #[arg(long, default_value_t = 20_000, help_heading = "Topology")]
    pub namespaces: usize,
    /// Forest: tree size distribution.
    #[arg(long, value_enum, default_value = "zipf", help_heading = "Topology")]
    pub distribution: Distribution,
    /// Forest: Zipf exponent (default 1.0) or Pareto shape α (default 1.2).
    #[arg(long, help_heading = "Topology")]
    pub skew: Option<f64>,
    /// Forest: deepest level (root = 0).
    #[arg(long, default_value_t = 4, help_heading = "Topology")]
    pub max_depth: usize,
    /// Seed of every random choice (forest shape, churn targets).
    #[arg(long, default_value_t = 1, help_heading = "Topology")]
    pub seed: u64,
    /// Source objects per namespace; one object = a Role + a RoleBinding (+ the optional types).
    #[arg(long, default_value_t = 1, help_heading = "Topology")]
    pub objects: usize,
    /// Also propagate a ConfigMap per object (configures the `config` HNCConfiguration).
    #[arg(long, help_heading = "Topology")]
    pub configmaps: bool,
    /// Also propagate a custom resource per object (installs the LoadtestPolicy CRD).
    #[arg(long, help_heading = "Topology")]
    pub custom_resources: bool,
    /// Full namespaces with `spec.parent`, or subnamespaces with anchors.
    #[arg(long, value_enum, default_value = "parent", help_heading = "Topology")]
    pub hierarchy: HierarchyMode,

    // --- controllers ------------------------------------------------------------------------------------
    /// Controller replicas to start.
    #[arg(long, default_value_t = 1, help_heading = "Controllers")]
    pub replicas: usize,
    /// Controller binary (default: hnc-loadtest-controller next to this binary).
    #[arg(long, help_heading = "Controllers")]
    pub controller_binary: Option<PathBuf>,
    /// The controllers' --apiserver-qps-throttle: a hard ceiling on each one's writes per second (0: none, the
    /// writer adapts to the API server alone).
    #[arg(long, default_value_t = 500.0, help_heading = "Controllers")]
    pub qps: f64,
    /// Extra argument for every controller (repeatable), e.g. --controller-arg=--shards=16.
    #[arg(long = "controller-arg", allow_hyphen_values = true, help_heading = "Controllers")]
    pub controller_args: Vec<String>,
    /// The replicas serve HNC's admission webhooks and register them, behind a forwarder the harness runs (the
    /// webhook Service of a Deployment), so every write the API server admits calls them. Embedded apisim only.
    #[arg(long, help_heading = "Controllers")]
    pub webhooks: bool,
    /// Measure replicas already running instead of starting any: their /metrics URLs (repeatable; needs
    /// --kubeconfig). Cold start then means "the topology loaded while they run".
    #[arg(long = "replica-metrics-url", requires = "kubeconfig", help_heading = "Controllers")]
    pub replica_metrics_urls: Vec<String>,

    // --- target -----------------------------------------------------------------------------------------
    /// Run against this cluster instead of the embedded apisim.
    #[arg(long, help_heading = "Target")]
    pub kubeconfig: Option<PathBuf>,
    /// apisim: requests per second each replica may make (429 with Retry-After beyond; watches are free).
    #[arg(long, help_heading = "Target")]
    pub sim_rate_limit: Option<f64>,
    /// apisim: burst of the per-replica rate limit.
    #[arg(long, default_value_t = 100, help_heading = "Target")]
    pub sim_burst: u32,
    /// apisim: latency added to every request, milliseconds.
    #[arg(long, default_value_t = 0, help_heading = "Target")]
    pub sim_latency_ms: u64,
    /// apisim: load profile. `realistic`: writes hold one of --sim-seats seats for an etcd-like 5 ms commit, wait
    /// in a queue of 300 beyond them and get 429 with Retry-After when it is full, as kube-apiserver does with
    /// API Priority and Fairness.
    #[arg(long, value_enum, help_heading = "Target")]
    pub sim_profile: Option<SimProfile>,
    /// apisim: seats for writes under --sim-profile (default 200, kube-apiserver's
    /// --max-mutating-requests-inflight).
    #[arg(long, requires = "sim_profile", help_heading = "Target")]
    pub sim_seats: Option<usize>,

    // --- phases -----------------------------------------------------------------------------------------
    /// `run` only: phases in order (cold is always first).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "cold", help_heading = "Phases")]
    pub phases: Vec<Phase>,
    /// Give up on convergence after this many seconds.
    #[arg(long, default_value_t = 1800, help_heading = "Phases")]
    pub timeout: u64,
    /// Writers count as idle after this many seconds without a write (and empty write queues).
    #[arg(long, default_value_t = 2.0, help_heading = "Phases")]
    pub idle: f64,
    /// Warm restart: how long the new replicas must stay write-free after they are ready.
    #[arg(long, default_value_t = 5.0, help_heading = "Phases")]
    pub settle: f64,
    /// Churn: changes per second (quota: pod operations per second).
    #[arg(long, default_value_t = 10.0, help_heading = "Phases")]
    pub rate: f64,
    /// Churn: seconds (quota: seconds of pod operations).
    #[arg(long, default_value_t = 30.0, help_heading = "Phases")]
    pub duration: f64,
    /// Churn mix, relative weights: create, update, delete (sources), subns-create, subns-delete, reparent.
    #[arg(
        long,
        default_value = "create=3,update=4,delete=2,subns-create=1,subns-delete=1,reparent=1",
        help_heading = "Phases"
    )]
    pub mix: String,
    /// Burst: how many sources to add one after the other.
    #[arg(long, default_value_t = 3, help_heading = "Phases")]
    pub bursts: usize,
    /// Capacity: replica counts to measure.
    #[arg(long, value_delimiter = ',', default_value = "1", help_heading = "Phases")]
    pub replica_counts: Vec<usize>,
    /// Capacity: first churn rate (changes/s).
    #[arg(long, default_value_t = 5.0, help_heading = "Phases")]
    pub start_rate: f64,
    /// Capacity: factor between stages.
    #[arg(long, default_value_t = 1.5, help_heading = "Phases")]
    pub step: f64,
    /// Capacity: highest rate tried.
    #[arg(long, default_value_t = 2000.0, help_heading = "Phases")]
    pub max_rate: f64,
    /// Capacity: bisection stages between the last rate within the SLO and the first beyond it.
    #[arg(long, default_value_t = 2, help_heading = "Phases")]
    pub refine: usize,
    /// Capacity: seconds per stage.
    #[arg(long, default_value_t = 20.0, help_heading = "Phases")]
    pub stage_seconds: f64,
    /// Capacity: the latency SLO (p99, seconds).
    #[arg(long, default_value_t = 1.0, help_heading = "Phases")]
    pub slo: f64,
    /// Churn/burst/capacity: seconds to wait for pending changes after a stage before counting them as failed.
    #[arg(long, default_value_t = 60.0, help_heading = "Phases")]
    pub drain: f64,

    // --- faults -----------------------------------------------------------------------------------------
    /// `faults` only: the faults to inject, in order.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "leader-kill,holder-kill,holder-stop,restart-all,apiserver-restart,throttle-storm,error-burst,watch-drop",
        help_heading = "Faults"
    )]
    pub faults: Vec<FaultKind>,
    /// Faults: how long a fault lasts (errors injected, watches dropped; a killed replica stays down).
    #[arg(long, default_value_t = 20.0, help_heading = "Faults")]
    pub fault_duration: f64,
    /// Faults: seconds of churn before each fault.
    #[arg(long, default_value_t = 5.0, help_heading = "Faults")]
    pub fault_baseline: f64,
    /// Faults: seconds of churn after each fault ends (then the churn's changes are drained).
    #[arg(long, default_value_t = 10.0, help_heading = "Faults")]
    pub fault_after: f64,
    /// Faults: seconds apisim stays down in `apiserver-restart` (a replica that reaches no API server for a
    /// lease duration exits, and is then started again by the harness).
    #[arg(long, default_value_t = 5.0, help_heading = "Faults")]
    pub apiserver_down: f64,
    /// Faults: how late every admission webhook answers in `slow-webhooks`, in seconds. HNC registers its
    /// objects webhook with a 2 s timeout and the others with 10 s; at the default 3 s, writes of propagated
    /// kinds fail (failurePolicy Fail) while hierarchy writes pass slowly.
    #[arg(long, default_value_t = 3.0, help_heading = "Faults")]
    pub webhook_latency: f64,

    // --- quota ------------------------------------------------------------------------------------------
    /// `quota` only: `spec.hard.pods` of the HierarchicalResourceQuota in every root (the pods each tree may
    /// hold).
    #[arg(long, default_value_t = 20, help_heading = "Quota")]
    pub quota_budget: u64,

    // --- output -----------------------------------------------------------------------------------------
    /// Output directory (created).
    #[arg(long, help_heading = "Output")]
    pub out: Option<PathBuf>,
    /// No progress bar.
    #[arg(long, help_heading = "Output")]
    pub no_progress: bool,
    /// On a cluster: leave the namespaces in place at the end.
    #[arg(long, help_heading = "Output")]
    pub keep: bool,
}

impl Common {
    /// The topology these options describe, with upstream's default sizes.
    pub fn topology_spec(&self) -> TopologySpec {
        let default_size = match self.topology {
            Shape::Wide => 500,
            Shape::Full => 20,
            Shape::Skewer => 100,
            Shape::Forest => 0,
        };
        TopologySpec {
            shape: self.topology,
            size: self.size.unwrap_or(default_size),
            trees: self.trees,
            namespaces: self.namespaces,
            distribution: self.distribution,
            skew: self.skew,
            max_depth: self.max_depth,
            seed: self.seed,
        }
    }
}
