//! Capacity: churn stages at growing rates until the latency SLO breaks, refined by bisection.

use super::Session;
use crate::report::{PhaseResult, ProcessUsage};
use crate::tracker::Completed;

impl Session {
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
        samples.extend(stage.samples.iter().map(|c| Completed {
            at_s: c.at_s + *offset,
            registered_s: c.registered_s + *offset,
            ..*c
        }));
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
}
