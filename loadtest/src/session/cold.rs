//! Cold start (the controllers start on the loaded topology) and warm restart (they restart on the converged
//! cluster, which must cost no write).

use std::time::{Duration, Instant};

use anyhow::bail;

use super::{Session, bar, bar_spinner};
use crate::prom;
use crate::report::PhaseResult;

impl Session {
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
}
