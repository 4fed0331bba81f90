//! Failover (the leader is killed) and scale-out (a replica is added), each under churn, with the time until
//! shard ownership settled again.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::Session;
use crate::prom;
use crate::replicas::Replica;
use crate::report::PhaseResult;

impl Session {
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
}

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
