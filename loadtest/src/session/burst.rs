//! Burst: one new source at a time into the largest tree, measured until every copy is observed.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::churn::perform;
use super::{Session, bar};
use crate::report::{LatencyStats, PhaseResult};

impl Session {
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
            c.registered_s -= epoch_offset;
        }
        result.latency = Some(LatencyStats::of(&all, 0, 0));
        result.samples = all;
        self.finish(&meter, &mut result, necessary).await;
        Ok(result)
    }
}
