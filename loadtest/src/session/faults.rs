//! Faults under churn (`hnc-loadtest faults`): for each fault in turn, churn at `--rate` for
//! `--fault-baseline` s, inject the fault, keep churning through it and for `--fault-after` s after it ends, then
//! drain. Each fault is one phase, measured like churn, plus:
//!
//! * changes lost — churn changes never observed converged within `--drain` s (must be 0);
//! * writes fenced — the replicas' `hnc_writes_total{outcome="fenced"}` over the phase (a killed replica's
//!   counter as last scraped, at most 2 s before it died);
//! * duplicate writers — accepted writes by a replica into a tree whose shard Lease it did not hold at that
//!   moment, by apisim's own record of Lease writes ([`duplicate_writers`]; must be 0);
//! * convergence after the fault — from its end until every change made before it ended was observed;
//! * churn latency through it, plotted with the fault's start and end.
//!
//! ```text
//!  harness task:  churn ─────────────────────────────────────────────────────────── drain ─▶ measure
//!  fault task:    baseline ─▶ inject ─▶ hold (restart what exits on its own) ─▶ end ─▶ (restart a killed one)
//! ```
//!
//! The fault task owns the replica processes while it runs; the harness's churn retries its own writes while
//! the API server is down or throttles, so a fault never changes what the harness asked for.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hnc_apisim::{ApiSim, FaultRule, WriteRecord};
use hnc_shard::ShardRing;
use parking_lot::Mutex;

use super::{Session, bar_spinner};
use crate::cli::FaultKind;
use crate::prom;
use crate::replicas::{Launch, Replica, user_of};
use crate::report::{FaultResult, LatencyStats, PhaseResult, RefusedWrites};

/// The user prefix apisim attributes replica writes to (see [`user_of`]).
const REPLICA_USER_PREFIX: &str = "system:serviceaccount:hnc-system:";

/// How long the harness retries one of its own churn writes (the API server down, throttling, failing).
const HARNESS_PATIENCE: Duration = Duration::from_secs(90);

/// What the replicas' coordination runs with: their defaults, or what `--controller-arg` overrides.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LeaseSettings {
    pub duration: Duration,
    pub shards: u32,
    pub namespace: String,
}

impl LeaseSettings {
    /// The controller's defaults (15 s leases, 32 shards, `hnc-system`) with `args`' `--lease-duration`,
    /// `--shards` and `--namespace` (as `--flag=value` or `--flag value`).
    pub(crate) fn from_args(args: &[String]) -> anyhow::Result<LeaseSettings> {
        let mut settings = LeaseSettings {
            duration: Duration::from_secs(15),
            shards: 32,
            namespace: hnc_api::keys::names::DEFAULT_NAMESPACE.to_owned(),
        };
        let mut i = 0;
        while i < args.len() {
            let (flag, value) = match args[i].split_once('=') {
                Some((f, v)) => (f, Some(v.to_owned())),
                None => (args[i].as_str(), args.get(i + 1).cloned()),
            };
            let consumed = if args[i].contains('=') { 1 } else { 2 };
            match flag {
                "--lease-duration" => {
                    let v = value.context("--lease-duration needs a value")?;
                    settings.duration = go_duration(&v)
                        .with_context(|| format!("--lease-duration {v:?} is not a duration"))?;
                    i += consumed;
                }
                "--shards" => {
                    let v = value.context("--shards needs a value")?;
                    settings.shards = v.parse().with_context(|| format!("--shards {v:?}"))?;
                    i += consumed;
                }
                "--namespace" => {
                    settings.namespace = value.context("--namespace needs a value")?;
                    i += consumed;
                }
                _ => i += 1,
            }
        }
        Ok(settings)
    }
}

/// A Go duration as the controller's flags take it: `15s`, `500ms`, `1m30s`, `1.5s`.
fn go_duration(text: &str) -> Option<Duration> {
    let mut total = 0.0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let number: f64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let scale = match &rest[..unit] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += number * scale;
        rest = &rest[unit..];
    }
    Some(Duration::from_secs_f64(total))
}

/// Where a namespace's writes belong, for [`duplicate_writers`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// In a tree whose root hashes to this shard.
    Shard(u32),
    /// In a tree, but it moved between trees during the phase: not checked.
    Moved,
    /// Not a namespace of the harness's forest (the API server's own, HNC's): not checked.
    Outside,
}

/// What [`duplicate_writers`] found.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct DuplicateReport {
    /// Accepted replica writes into the forest that were checked.
    pub checked: u64,
    /// Accepted replica writes into namespaces that moved between trees (left out).
    pub unchecked: u64,
    /// Checked writes by a replica that did not hold the tree's shard at that moment.
    pub duplicates: u64,
    /// The first few duplicates, described.
    pub examples: Vec<String>,
    /// The duplicates' (user, time).
    pub offenders: Vec<(String, Instant)>,
}

/// Duplicate writers, by the API server's own record (`writes`, in the order it served them).
///
/// Each shard's holder timeline comes from the accepted writes of Lease `<prefix>shard-<n>` in
/// `lease_namespace`: an accepted write (acquire, renewal or release) by replica X at `r` makes X the holder
/// until `r + lease_duration`, unless another replica's write of that Lease is accepted earlier — the server
/// accepts a Lease write only from the holder or from a replica taking over one it saw expire, so that write
/// ends X's tenure. (A release is recorded like a renewal, which can only favour X.)
///
/// A duplicate write is an accepted (2xx) write, at index `check_from` or later, by a replica (a user
/// starting with [`REPLICA_USER_PREFIX`]) into a namespace of the forest — a namespaced object there, or the
/// Namespace itself — whose shard (by `place`) that replica did not hold at that instant. Events are not
/// fenced writes and are left out; so are namespaces `place` says moved between trees.
pub(crate) fn duplicate_writers(
    writes: &[WriteRecord],
    check_from: usize,
    lease_duration: Duration,
    lease_namespace: &str,
    place: &dyn Fn(&str) -> Placement,
    origin: Instant,
) -> DuplicateReport {
    let shard_prefix = "hnc-shard-";
    let mut holders: HashMap<u32, (&str, Instant)> = HashMap::new();
    let mut report = DuplicateReport::default();
    let rel = |t: Instant| {
        if t >= origin {
            t.duration_since(origin).as_secs_f64()
        } else {
            -origin.duration_since(t).as_secs_f64()
        }
    };
    for (i, w) in writes.iter().enumerate() {
        if !(200..300).contains(&w.code) || !w.user.starts_with(REPLICA_USER_PREFIX) {
            continue;
        }
        if w.resource == "leases" && w.namespace == lease_namespace {
            if let Some(shard) = w.name.strip_prefix(shard_prefix).and_then(|n| n.parse::<u32>().ok()) {
                holders.insert(shard, (w.user.as_str(), w.at + lease_duration));
            }
            continue;
        }
        if i < check_from || w.resource == "events" {
            continue;
        }
        let namespace = match (w.namespace.as_str(), w.resource.as_str()) {
            ("", "namespaces") => w.name.as_str(),
            ("", _) => continue,
            (ns, _) => ns,
        };
        let shard = match place(namespace) {
            Placement::Outside => continue,
            Placement::Moved => {
                report.unchecked += 1;
                continue;
            }
            Placement::Shard(s) => s,
        };
        report.checked += 1;
        let holder = holders.get(&shard).copied();
        let held = holder.is_some_and(|(user, until)| user == w.user && w.at <= until);
        if !held {
            report.duplicates += 1;
            report.offenders.push((w.user.clone(), w.at));
            if report.examples.len() < 10 {
                let who = |u: &str| u.strip_prefix(REPLICA_USER_PREFIX).unwrap_or(u).to_owned();
                let holder = holder.map_or("nobody".to_owned(), |(user, until)| {
                    format!("{} until {:+.2} s", who(user), rel(until))
                });
                report.examples.push(format!(
                    "{} {} {} {namespace}/{} (code {}) at {:+.2} s; shard {shard} held by {holder}",
                    who(&w.user),
                    w.verb,
                    w.resource,
                    w.name,
                    w.code,
                    rel(w.at)
                ));
            }
        }
    }
    report
}

/// The replica processes while a fault runs, with what it takes to start one again.
struct FaultTask {
    replicas: Vec<Replica>,
    launch: Launch,
    http: reqwest::Client,
    sim: Option<Arc<ApiSim>>,
    logs: PathBuf,
    kubeconfigs: HashMap<String, PathBuf>,
    fault: FaultKind,
    /// Fenced writes of replicas no longer running (as last scraped).
    fenced_retired: f64,
    /// Per running replica: its fenced counter at the phase start (0 for one started since), and as last seen.
    fenced_seen: HashMap<String, (f64, f64)>,
    last_scrape: Instant,
    /// A replica suspended with SIGSTOP: neither scraped nor supervised.
    stopped: Option<String>,
    restarted_after_exit: Vec<String>,
    restarts: usize,
}

/// What the fault task did.
struct Injected {
    action: String,
    injected: Instant,
    ended: Instant,
    /// For a kill: when the killed replica was started again.
    restarted: Option<Instant>,
    /// For holder-stop: the replica suspended.
    suspended: Option<String>,
}

impl FaultTask {
    async fn metrics(&self, r: &Replica) -> Option<Vec<prom::Sample>> {
        let text = self.http.get(&r.metrics_url).timeout(Duration::from_secs(2)).send().await.ok()?;
        Some(prom::parse(&text.text().await.ok()?))
    }

    /// Reads every running replica's fenced-writes counter.
    async fn scrape(&mut self) {
        for i in 0..self.replicas.len() {
            let id = self.replicas[i].id.clone();
            if self.stopped.as_deref() == Some(id.as_str()) {
                continue;
            }
            if let Some(m) = self.metrics(&self.replicas[i]).await {
                let fenced = prom::sum(&m, "hnc_writes_total", &[("outcome", "fenced")]);
                self.fenced_seen.entry(id).or_insert((fenced, fenced)).1 = fenced;
            }
        }
        self.last_scrape = Instant::now();
    }

    /// Stops counting replica `id`'s fenced writes (it is about to die or has died).
    fn retire(&mut self, id: &str) {
        if let Some((base, last)) = self.fenced_seen.remove(id) {
            self.fenced_retired += last - base;
        }
    }

    /// Starts replica `id` again (its previous log kept under another name).
    async fn respawn(&mut self, id: &str) -> anyhow::Result<()> {
        self.restarts += 1;
        respawn(
            &mut self.replicas,
            &self.launch,
            &self.kubeconfigs,
            &self.logs,
            id,
            self.fault,
            self.restarts,
        )
        .await?;
        self.fenced_seen.insert(id.to_owned(), (0.0, 0.0));
        Ok(())
    }

    /// Starts again, as a Deployment would, any replica that exited on its own.
    async fn supervise(&mut self) -> anyhow::Result<()> {
        let mut exited = Vec::new();
        for r in &mut self.replicas {
            if self.stopped.as_deref() == Some(r.id.as_str()) {
                continue;
            }
            if let Some(status) = r.exited() {
                exited.push(format!("{} ({status})", r.id));
            }
        }
        for note in exited {
            let id = note.split(' ').next().unwrap_or_default().to_owned();
            self.retire(&id);
            self.replicas.retain(|r| r.id != id);
            self.respawn(&id).await?;
            self.restarted_after_exit.push(note);
        }
        Ok(())
    }

    /// Waits `d`, restarting replicas that exit and reading their counters every 2 s.
    async fn hold(&mut self, d: Duration) -> anyhow::Result<()> {
        let until = Instant::now() + d;
        while Instant::now() < until {
            tokio::time::sleep(
                until.saturating_duration_since(Instant::now()).min(Duration::from_millis(250)),
            )
            .await;
            self.supervise().await?;
            if self.last_scrape.elapsed() >= Duration::from_secs(2) {
                self.scrape().await;
            }
        }
        Ok(())
    }

    /// The leader's index, and every replica's index with the shards it holds.
    async fn roles(&self) -> anyhow::Result<(Option<usize>, Vec<(usize, f64)>)> {
        let mut leader = None;
        let mut held = Vec::new();
        for (i, r) in self.replicas.iter().enumerate() {
            let m = self.metrics(r).await.with_context(|| format!("cannot read {}'s metrics", r.id))?;
            if prom::sum(&m, "hnc_is_leader", &[]) == 1.0 {
                leader = Some(i);
            }
            held.push((i, prom::sum(&m, "hnc_shards_held", &[])));
        }
        Ok((leader, held))
    }

    /// A replica holding shards: one that is not the leader if any such holds some.
    async fn holder(&self) -> anyhow::Result<(usize, f64, bool)> {
        let (leader, held) = self.roles().await?;
        let pick = held
            .iter()
            .filter(|(_, n)| *n > 0.0)
            .max_by(|a, b| {
                (Some(a.0) != leader, a.1).partial_cmp(&(Some(b.0) != leader, b.1)).expect("finite")
            })
            .copied()
            .context("no replica reports holding a shard (hnc_shards_held)")?;
        Ok((pick.0, pick.1, Some(pick.0) == leader))
    }

    /// SIGKILLs replica `i`; the fault ends when its Leases expire (the earliest a survivor may take its work
    /// over). It stays down for `down` (at least that long: with the same identity it would resume its Leases)
    /// and is then started again.
    async fn kill(
        &mut self,
        i: usize,
        what: &str,
        down: Duration,
        lease: Duration,
    ) -> anyhow::Result<Injected> {
        self.scrape().await;
        let id = self.replicas[i].id.clone();
        let injected = Instant::now();
        self.replicas[i].kill()?;
        self.retire(&id);
        self.replicas.remove(i);
        let down = down.max(lease);
        self.hold(down).await?;
        self.respawn(&id).await?;
        Ok(Injected {
            action: format!(
                "SIGKILL {what} {id}; the fault ends when its Leases expire ({:.1} s); started again {:.1} s after \
                 the kill",
                lease.as_secs_f64(),
                down.as_secs_f64()
            ),
            injected,
            ended: injected + lease,
            restarted: Some(Instant::now()),
            suspended: None,
        })
    }

    /// Error rules on every replica's writes of `resources` while `d` passes.
    async fn errors(
        &mut self,
        resources: &[String],
        errors: &[(u16, f64, Option<u32>)],
        d: Duration,
    ) -> anyhow::Result<(Instant, Instant)> {
        let sim = self.sim.clone().context("injected API errors need the embedded apisim")?;
        let users: Vec<String> = self.replicas.iter().map(|r| user_of(&r.id)).collect();
        let injected = Instant::now();
        let mut ids = Vec::new();
        for user in &users {
            for verb in ["POST", "PUT", "PATCH", "DELETE"] {
                for resource in resources {
                    for (code, rate, retry_after) in errors {
                        ids.push(sim.faults().add(FaultRule {
                            verb: Some(verb.into()),
                            resource: Some(resource.clone()),
                            user: Some(user.clone()),
                            error: Some(*code),
                            error_rate: *rate,
                            retry_after: *retry_after,
                            ..Default::default()
                        }));
                    }
                }
            }
        }
        let held = self.hold(d).await;
        for id in ids {
            sim.faults().remove(id);
        }
        held?;
        Ok((injected, Instant::now()))
    }

    async fn inject(
        &mut self,
        baseline: Duration,
        d: Duration,
        lease: Duration,
        apiserver_down: Duration,
        webhook_latency: Duration,
        resources: &[String],
    ) -> anyhow::Result<Injected> {
        self.hold(baseline).await?;
        let fault = self.fault;
        match fault {
            FaultKind::LeaderKill => {
                let (leader, _) = self.roles().await?;
                let i = leader.context("no replica reports hnc_is_leader 1")?;
                self.kill(i, "the leader", d, lease).await
            }
            FaultKind::HolderKill => {
                let (i, shards, leads) = self.holder().await?;
                let what = format!(
                    "the holder of {shards} shard(s){}",
                    if leads { " (the leader: no other replica held any)" } else { "" }
                );
                self.kill(i, &what, d, lease).await
            }
            FaultKind::HolderStop => {
                let (i, shards, leads) = self.holder().await?;
                self.scrape().await;
                let id = self.replicas[i].id.clone();
                let injected = Instant::now();
                self.replicas[i].signal("STOP")?;
                self.stopped = Some(id.clone());
                let suspended = lease + Duration::from_secs(3);
                let held = self.hold(suspended).await;
                let resumed = self.replicas[i].signal("CONT");
                self.stopped = None;
                held?;
                resumed?;
                Ok(Injected {
                    action: format!(
                        "SIGSTOP {id}, holder of {shards} shard(s){}, for {:.1} s (lease + 3 s), then SIGCONT",
                        if leads { " and the leader" } else { "" },
                        suspended.as_secs_f64()
                    ),
                    injected,
                    ended: Instant::now(),
                    restarted: None,
                    suspended: Some(id),
                })
            }
            FaultKind::RestartAll => {
                self.scrape().await;
                let injected = Instant::now();
                for r in &self.replicas {
                    r.signal("TERM")?;
                }
                let mut ids = Vec::new();
                for mut r in std::mem::take(&mut self.replicas) {
                    r.stop().await?;
                    ids.push(r.id.clone());
                }
                for id in &ids {
                    self.retire(id);
                }
                for id in &ids {
                    self.respawn(id).await?;
                }
                Ok(Injected {
                    action: format!(
                        "SIGTERM every replica ({}) at once, then started them all again",
                        ids.join(", ")
                    ),
                    injected,
                    ended: Instant::now(),
                    restarted: None,
                    suspended: None,
                })
            }
            FaultKind::ApiserverRestart => {
                let sim = self.sim.clone().context("apiserver-restart needs the embedded apisim")?;
                self.scrape().await;
                let injected = Instant::now();
                sim.restart(apiserver_down).await?;
                let ended = Instant::now();
                Ok(Injected {
                    action: format!(
                        "restarted apisim: every connection and watch closed, down {:.1} s, objects kept, watch \
                         history empty (resumes from before get 410)",
                        apiserver_down.as_secs_f64()
                    ),
                    injected,
                    ended,
                    restarted: None,
                    suspended: None,
                })
            }
            FaultKind::ThrottleStorm => {
                let (injected, ended) = self.errors(resources, &[(429, 0.5, Some(1))], d).await?;
                Ok(Injected {
                    action: format!(
                        "429 with Retry-After: 1 on 50 % of the replicas' writes of {} for {:.0} s",
                        resources.join(", "),
                        d.as_secs_f64()
                    ),
                    injected,
                    ended,
                    restarted: None,
                    suspended: None,
                })
            }
            FaultKind::ErrorBurst => {
                // 15 % 500, then 15 % of all (0.15 / 0.85 of the rest) 503.
                let errors = [(500, 0.15, None), (503, 0.15 / 0.85, None)];
                let (injected, ended) = self.errors(resources, &errors, d).await?;
                Ok(Injected {
                    action: format!(
                        "500 on 15 % and 503 on 15 % of the replicas' writes of {} for {:.0} s",
                        resources.join(", "),
                        d.as_secs_f64()
                    ),
                    injected,
                    ended,
                    restarted: None,
                    suspended: None,
                })
            }
            FaultKind::WatchDrop => {
                let sim = self.sim.clone().context("watch-drop needs the embedded apisim")?;
                let injected = Instant::now();
                for k in 0..4 {
                    if k > 0 {
                        self.hold(d / 3).await?;
                    }
                    if k % 2 == 1 {
                        sim.compact();
                    }
                    sim.faults().drop_watches();
                }
                Ok(Injected {
                    action: format!(
                        "dropped every watch 4 times over {:.0} s, compacting the history before the 2nd and 4th \
                         (those resumes get 410 and relist)",
                        d.as_secs_f64()
                    ),
                    injected,
                    ended: Instant::now(),
                    restarted: None,
                    suspended: None,
                })
            }
            FaultKind::SlowWebhooks => {
                let sim = self.sim.clone().context("slow-webhooks needs the embedded apisim")?;
                let injected = Instant::now();
                sim.faults().set_webhook_latency(webhook_latency);
                let held = self.hold(d).await;
                sim.faults().set_webhook_latency(Duration::ZERO);
                held?;
                // HNC registers its objects webhook with timeoutSeconds 2, the others with the default 10.
                let effect = |timeout: u64, what: &str| {
                    if webhook_latency >= Duration::from_secs(timeout) {
                        format!("{what} ({timeout} s timeout, failurePolicy Fail) failed")
                    } else {
                        format!("{what} ({timeout} s timeout) were admitted late")
                    }
                };
                Ok(Injected {
                    action: format!(
                        "every admission webhook answered {:.1} s late for {:.0} s: writes of propagated kinds {}, \
                         writes of namespaces and HNC's objects {}",
                        webhook_latency.as_secs_f64(),
                        d.as_secs_f64(),
                        effect(2, "").trim_start(),
                        effect(10, "").trim_start()
                    ),
                    injected,
                    ended: Instant::now(),
                    restarted: None,
                    suspended: None,
                })
            }
        }
    }
}

/// Starts replica `id` again into `replicas`, keeping its previous log as `<id>-<fault>-<n>.log`.
async fn respawn(
    replicas: &mut Vec<Replica>,
    launch: &Launch,
    kubeconfigs: &HashMap<String, PathBuf>,
    logs: &std::path::Path,
    id: &str,
    fault: FaultKind,
    n: usize,
) -> anyhow::Result<()> {
    let log = logs.join(format!("{id}.log"));
    if log.exists() {
        let _ = std::fs::rename(&log, logs.join(format!("{id}-{}-{n}.log", fault.name())));
    }
    let kubeconfig = kubeconfigs.get(id).with_context(|| format!("no kubeconfig for {id}"))?;
    replicas.push(Replica::spawn(launch, kubeconfig, id, logs).await?);
    replicas.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(())
}

impl Session {
    /// Every fault of `--faults` in turn, each a phase pushed onto `phases`.
    pub async fn faults(&mut self, progress: bool, phases: &mut Vec<PhaseResult>) -> anyhow::Result<()> {
        let Some(launch) = self.launch.clone() else {
            bail!("faults needs replicas the harness starts (not --replica-metrics-url)");
        };
        if self.replicas.len() < 2 {
            bail!("faults needs 2 or more replicas (--replicas 3)");
        }
        let lease = LeaseSettings::from_args(&launch.extra_args)?;
        for fault in self.opts.faults.clone() {
            let result = self.fault(fault, &launch, &lease, progress).await?;
            phases.push(result);
        }
        Ok(())
    }

    /// Where each namespace's writes belong: its tree's shard, by the model's roots now and at `before`,
    /// unless it is in `moved`.
    fn placements(
        &self,
        before: &HashMap<String, String>,
        moved: &HashSet<String>,
    ) -> HashMap<String, Option<String>> {
        let mut roots: HashMap<String, Option<String>> =
            before.iter().map(|(ns, root)| (ns.clone(), Some(root.clone()))).collect();
        roots.extend(self.roots().into_iter().map(|(ns, root)| (ns, Some(root))));
        for ns in moved {
            roots.insert(ns.clone(), None);
        }
        roots
    }

    /// Every namespace of the model with its tree's root.
    fn roots(&self) -> HashMap<String, String> {
        self.model
            .nodes
            .keys()
            .map(|ns| {
                let root = self.model.ancestors(ns).last().map_or(ns.clone(), |r| (*r).to_owned());
                (ns.clone(), root)
            })
            .collect()
    }

    async fn fault(
        &mut self,
        fault: FaultKind,
        launch: &Launch,
        lease: &LeaseSettings,
        progress: bool,
    ) -> anyhow::Result<PhaseResult> {
        let opts = self.opts.clone();
        anyhow::ensure!(opts.rate > 0.0, "--rate must be positive");
        let needs_sim = matches!(
            fault,
            FaultKind::ApiserverRestart
                | FaultKind::ThrottleStorm
                | FaultKind::ErrorBurst
                | FaultKind::WatchDrop
                | FaultKind::SlowWebhooks
        );
        if needs_sim && self.target.sim().is_none() {
            bail!("fault {} needs the embedded apisim (no --kubeconfig)", fault.name());
        }
        let mut kubeconfigs = HashMap::new();
        for r in &self.replicas {
            kubeconfigs.insert(r.id.clone(), self.target.replica_kubeconfig(&r.id)?);
        }
        let resources: Vec<String> = ["namespaces", "hierarchyconfigurations", "subnamespaceanchors"]
            .into_iter()
            .map(str::to_owned)
            .chain(self.types.iter().map(|t| t.resource.plural.clone()))
            .collect();

        let meter = self.meter().await;
        let mut result = PhaseResult { phase: format!("fault {}", fault.name()), ..Default::default() };
        let roots_before = self.roots();
        self.moved.clear();
        let write_index = self.target.write_count();
        let started = Instant::now();
        let epoch_offset = self.tracker.lock().since_epoch(started);

        let mut task = FaultTask {
            replicas: std::mem::take(&mut self.replicas),
            launch: launch.clone(),
            http: self.http.clone(),
            sim: self.target.shared_sim(),
            logs: self.logs.clone(),
            kubeconfigs,
            fault,
            fenced_retired: 0.0,
            fenced_seen: HashMap::new(),
            last_scrape: Instant::now(),
            stopped: None,
            restarted_after_exit: Vec::new(),
            restarts: 0,
        };
        task.scrape().await;
        let secs = Duration::from_secs_f64;
        let (baseline, d, down) =
            (secs(opts.fault_baseline), secs(opts.fault_duration), secs(opts.apiserver_down));
        let webhook_latency = secs(opts.webhook_latency);
        let lease_duration = lease.duration;
        let script = tokio::spawn(async move {
            let outcome = task.inject(baseline, d, lease_duration, down, webhook_latency, &resources).await;
            (task, outcome)
        });

        // Churn until the fault task is done and `--fault-after` s have passed since the fault ended.
        let bar = bar_spinner(progress, &format!("fault {}", fault.name()));
        let interval = Duration::from_secs_f64(1.0 / opts.rate);
        let failures = Arc::new(Mutex::new(Vec::<String>::new()));
        let mut writes = tokio::task::JoinSet::new();
        let mut necessary = 0;
        let mut issued = 0u64;
        let mut next = started;
        let mut script = Some(script);
        let mut finished = None;
        let mut churn_until: Option<Instant> = None;
        loop {
            tokio::time::sleep_until(next.into()).await;
            next += interval;
            if script.as_ref().is_some_and(|s| s.is_finished()) {
                let (task, outcome) = script.take().expect("present").await?;
                let done = (task, outcome);
                churn_until = Some(match &done.1 {
                    Ok(injected) => (injected.ended + secs(opts.fault_after)).max(Instant::now()),
                    Err(_) => Instant::now(),
                });
                finished = Some(done);
            }
            if churn_until.is_some_and(|u| Instant::now() >= u) {
                break;
            }
            let (kind, n) = self.issue_change(&mut writes, &failures, Some(HARNESS_PATIENCE));
            necessary += n;
            *result.changes.entry(kind.to_owned()).or_default() += 1;
            issued += 1;
            while writes.try_join_next().is_some() {}
            let pending = self.tracker.lock().pending();
            bar.set_message(format!(
                "fault {} at {:.0} s: {issued} changes, {pending} pending",
                fault.name(),
                started.elapsed().as_secs_f64()
            ));
        }
        let (mut task, outcome) = finished.expect("the loop ends after the fault task");
        let achieved = issued as f64 / started.elapsed().as_secs_f64();
        while writes.join_next().await.is_some() {}
        let drain_until = Instant::now() + Duration::from_secs_f64(opts.drain);
        while self.tracker.lock().pending() > 0 && Instant::now() < drain_until {
            bar.set_message(format!(
                "fault {}: draining, {} pending",
                fault.name(),
                self.tracker.lock().pending()
            ));
            let _ = task.supervise().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bar.finish_and_clear();
        let supervised = task.supervise().await;
        task.scrape().await;
        let fenced =
            task.fenced_retired + task.fenced_seen.values().map(|(base, last)| last - base).sum::<f64>();
        let restarted_after_exit = std::mem::take(&mut task.restarted_after_exit);
        self.replicas = std::mem::take(&mut task.replicas);
        self.replica_count = self.replicas.len();
        let injected = outcome.with_context(|| format!("fault {}", fault.name()))?;
        supervised?;

        let awaited = self.tracker.lock().awaited_keys(4);
        if !awaited.is_empty() {
            result.notes.extend(self.diagnose(&awaited).await);
        }
        let (mut done, superseded, lost) = {
            let mut t = self.tracker.lock();
            if t.pending() > 0 {
                result.notes.push(format!("lost: still awaiting e.g. {:?}", t.sample_awaited(6)));
            }
            let lost = t.abandon_pending();
            let superseded = std::mem::take(&mut t.superseded);
            (t.take_completed(), superseded, lost)
        };
        for c in &mut done {
            c.at_s -= epoch_offset;
            c.registered_s -= epoch_offset;
        }
        let rel = |t: Instant| t.saturating_duration_since(started).as_secs_f64();
        let (injected_s, ended_s) = (rel(injected.injected), rel(injected.ended));
        let converged_after_end_s = (lost == 0).then(|| {
            done.iter()
                .filter(|c| c.registered_s <= ended_s)
                .map(|c| c.at_s + c.latency_s - ended_s)
                .fold(0.0, f64::max)
        });
        let harness_failures = failures.lock().clone();
        if !harness_failures.is_empty() {
            result.notes.push(format!(
                "{} harness writes failed after retrying, first: {}",
                harness_failures.len(),
                harness_failures[0]
            ));
        }
        result.notes.push(format!("achieved rate {achieved:.1}/s of {:.1}/s", opts.rate));

        let mut fault_result = FaultResult {
            fault: fault.name().into(),
            action: injected.action.clone(),
            injected_s,
            ended_s,
            changes: issued,
            lost,
            harness_write_failures: harness_failures.len(),
            fenced: fenced.round().max(0.0) as u64,
            converged_after_end_s,
            goal_s: lease.duration.as_secs_f64() + 2.0,
            restarted_s: injected.restarted.map(rel),
            restarted_after_exit,
            ..Default::default()
        };
        if let (Some(sim), Some(from)) = (self.target.sim(), write_index) {
            let moved: HashSet<String> = self.moved.drain(..).collect();
            let roots = self.placements(&roots_before, &moved);
            let ring = ShardRing::new(lease.shards, hnc_shard::ring::DEFAULT_VIRTUAL_NODES);
            let place = |ns: &str| match roots.get(ns) {
                Some(Some(root)) => Placement::Shard(ring.shard_of(root)),
                Some(None) => Placement::Moved,
                None => Placement::Outside,
            };
            let report =
                duplicate_writers(&sim.writes(), from, lease.duration, &lease.namespace, &place, started);
            if let Some(id) = &injected.suspended {
                let user = user_of(id);
                let late =
                    report.offenders.iter().filter(|(u, at)| *u == user && *at >= injected.ended).count();
                let after: usize = sim
                    .writes_from(from)
                    .iter()
                    .filter(|w| w.user == user && w.at >= injected.ended && (200..300).contains(&w.code))
                    .filter(|w| w.resource != "leases")
                    .count();
                result.notes.push(format!(
                    "{id} after SIGCONT: {after} accepted writes (Leases aside), {late} of them into trees it did not hold"
                ));
            }
            let replica_users: HashSet<String> = self.replicas.iter().map(|r| user_of(&r.id)).collect();
            let mut refused = RefusedWrites::default();
            for w in sim.writes_from(from).iter().filter(|w| w.code == 500) {
                match replica_users.contains(&w.user) {
                    true => refused.replicas += 1,
                    false => refused.harness += 1,
                }
            }
            if fault == FaultKind::SlowWebhooks {
                result.notes.push(format!(
                    "writes answered 500 (a webhook timed out, failurePolicy Fail): {} by the harness (retried), {} by \
                     the replicas",
                    refused.harness, refused.replicas
                ));
            }
            fault_result.writes_refused_500 = Some(refused);
            fault_result.duplicate_writers = Some(report.duplicates);
            fault_result.writes_checked = report.checked;
            fault_result.writes_unchecked = report.unchecked;
            fault_result.duplicate_examples = report.examples;
        }
        result.fault = Some(fault_result);
        result.latency = Some(LatencyStats::of(&done, superseded, lost));
        result.samples = done;
        let idle_deadline = Instant::now() + Duration::from_secs_f64(opts.drain);
        if let Err(e) = self.wait_idle(opts.idle, idle_deadline).await {
            result.notes.push(format!("after the fault: {e:#}"));
        }
        self.finish(&meter, &mut result, necessary).await;
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        user: &str,
        resource: &str,
        namespace: &str,
        name: &str,
        code: u16,
        at: Instant,
    ) -> WriteRecord {
        WriteRecord {
            user: format!("{REPLICA_USER_PREFIX}{user}"),
            verb: "PUT".into(),
            resource: resource.into(),
            namespace: namespace.into(),
            name: name.into(),
            code,
            at,
        }
    }

    /// Namespaces `a*` are in shard 0's tree, `b*` in shard 1's, `moved` moved, anything else is outside.
    fn place(ns: &str) -> Placement {
        match ns {
            "moved" => Placement::Moved,
            n if n.starts_with('a') => Placement::Shard(0),
            n if n.starts_with('b') => Placement::Shard(1),
            _ => Placement::Outside,
        }
    }

    const LEASE: Duration = Duration::from_secs(15);

    #[test]
    fn writes_by_the_holder_within_its_lease_are_not_duplicates() {
        let t = Instant::now();
        let s = |secs: u64| t + Duration::from_secs(secs);
        let writes = vec![
            record("r0", "leases", "hnc-system", "hnc-shard-0", 200, s(0)),
            record("r1", "leases", "hnc-system", "hnc-shard-1", 201, s(0)),
            record("r0", "roles", "a1", "x", 201, s(1)),
            record("r1", "namespaces", "", "b1", 200, s(2)),
            record("r0", "leases", "hnc-system", "hnc-shard-0", 200, s(10)),
            // Within the renewed lease (10 + 15).
            record("r0", "rolebindings", "a2", "y", 200, s(24)),
            // Not checked: refused, an event, outside the forest, cluster-scoped, a moved namespace, the admin.
            record("r1", "roles", "a1", "x", 409, s(3)),
            record("r1", "events", "a1", "e", 201, s(3)),
            record("r1", "configmaps", "hnc-system", "hnc-shard-assignment", 200, s(3)),
            record("r1", "hncconfigurations", "", "config", 200, s(3)),
            record("r1", "roles", "moved", "x", 200, s(3)),
            WriteRecord { user: "admin".into(), ..record("r1", "roles", "a1", "x", 200, s(3)) },
        ];
        let report = duplicate_writers(&writes, 0, LEASE, "hnc-system", &place, t);
        assert_eq!((report.checked, report.unchecked, report.duplicates), (3, 1, 0), "{report:?}");
    }

    #[test]
    fn a_write_by_a_replica_that_lost_the_shard_is_a_duplicate() {
        let t = Instant::now();
        let s = |secs: u64| t + Duration::from_secs(secs);
        let writes = vec![
            record("r0", "leases", "hnc-system", "hnc-shard-0", 200, s(0)),
            record("r0", "roles", "a1", "x", 201, s(5)),
            // r1 takes shard 0 over (r0 was suspended, say); r0 wakes and writes within its old lease's 15 s.
            record("r1", "leases", "hnc-system", "hnc-shard-0", 200, s(8)),
            record("r1", "roles", "a1", "x", 200, s(9)),
            record("r0", "roles", "a1", "x", 200, s(10)),
            // A write into a tree nobody has held yet.
            record("r1", "roles", "b1", "z", 201, s(11)),
            // r1's own lease runs out at 8 + 15 = 23.
            record("r1", "roles", "a1", "w", 201, s(24)),
        ];
        let report = duplicate_writers(&writes, 0, LEASE, "hnc-system", &place, t);
        assert_eq!(report.checked, 5);
        assert_eq!(report.duplicates, 3, "{report:?}");
        assert!(
            report.examples[0].starts_with("r0 PUT roles a1/x (code 200) at +10.00 s; shard 0 held by r1")
        );
        assert!(report.examples[1].contains("shard 1 held by nobody"), "{:?}", report.examples);
        let offenders: Vec<&str> = report.offenders.iter().map(|(u, _)| u.as_str()).collect();
        assert_eq!(offenders, [user_of("r0"), user_of("r1"), user_of("r1")]);
    }

    #[test]
    fn only_writes_from_the_check_index_on_are_checked_but_earlier_leases_count() {
        let t = Instant::now();
        let s = |secs: u64| t + Duration::from_secs(secs);
        let writes = vec![
            record("r0", "leases", "hnc-system", "hnc-shard-0", 200, s(0)),
            record("r1", "roles", "a1", "x", 200, s(1)),
            record("r0", "roles", "a1", "x", 200, s(2)),
        ];
        let report = duplicate_writers(&writes, 2, LEASE, "hnc-system", &place, t);
        assert_eq!((report.checked, report.duplicates), (1, 0));
    }

    #[test]
    fn lease_settings_follow_the_controller_arguments() {
        let defaults = LeaseSettings::from_args(&[]).unwrap();
        assert_eq!((defaults.duration, defaults.shards), (Duration::from_secs(15), 32));
        let args: Vec<String> =
            ["--shards=16", "--lease-duration", "2.5s", "--renew-deadline=2s", "--namespace=hnc"]
                .map(str::to_owned)
                .to_vec();
        let s = LeaseSettings::from_args(&args).unwrap();
        assert_eq!((s.duration, s.shards, s.namespace.as_str()), (Duration::from_millis(2500), 16, "hnc"));
        assert_eq!(go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(go_duration("5x"), None);
        assert!(LeaseSettings::from_args(&["--lease-duration=soon".to_owned()]).is_err());
    }
}
