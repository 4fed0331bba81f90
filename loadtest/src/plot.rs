//! SVG plots (plotters' SVG backend needs no system fonts): propagation latency over time, cold-start progress,
//! the capacity curve (p99 latency against churn rate, one line per replica count), and per-replica cost
//! against the replica count.

use std::path::Path;

use anyhow::anyhow;
use plotters::prelude::*;

use crate::report::PhaseResult;
use crate::tracker::Completed;

const PALETTE: [RGBColor; 5] = [BLUE, RED, GREEN, MAGENTA, CYAN];

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plotting: {e:?}")
}

/// At most `max` points: every slow one (the top 2 %, what the eye looks for) and an even sample of the rest,
/// so a plot of a long run stays a small file.
/// A white 960×540 SVG canvas at `path`.
fn canvas(path: &Path) -> anyhow::Result<DrawingArea<SVGBackend<'_>, plotters::coord::Shift>> {
    let root = SVGBackend::new(path, (960, 540)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    Ok(root)
}

/// A chart on `root` with every plot's title, margin and axis label areas.
fn chart_builder<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    title: &str,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut builder = ChartBuilder::on(root);
    builder.caption(title, ("sans-serif", 20)).margin(12).x_label_area_size(40).y_label_area_size(60);
    builder
}

/// Draws the legend of `chart`'s labelled series (at plotters' default place unless `position` says) and writes
/// the file.
fn finish<'a, 'b: 'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, SVGBackend<'b>, CT>,
    root: &DrawingArea<SVGBackend<'b>, plotters::coord::Shift>,
    position: Option<SeriesLabelPosition>,
) -> anyhow::Result<()> {
    let mut legend = chart.configure_series_labels();
    if let Some(position) = position {
        legend.position(position);
    }
    legend.background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(err)?;
    root.present().map_err(err)
}

fn thin(samples: &[Completed], max: usize) -> Vec<Completed> {
    if samples.len() <= max {
        return samples.to_vec();
    }
    let mut latencies: Vec<f64> = samples.iter().map(|c| c.latency_s).collect();
    latencies.sort_by(f64::total_cmp);
    let slow = latencies[latencies.len() * 98 / 100];
    let step = samples.len().div_ceil(max);
    samples
        .iter()
        .enumerate()
        .filter(|(i, c)| c.latency_s >= slow || i % step == 0)
        .map(|(_, c)| *c)
        .collect()
}

/// Each change's latency at the time it was made, with a rolling p99 over 5-second windows, and `markers`:
/// moments drawn as labelled vertical lines (a fault's start and end).
pub fn latency_over_time(
    path: &Path,
    title: &str,
    samples: &[Completed],
    slo: Option<f64>,
    markers: &[(f64, &str)],
) -> anyhow::Result<()> {
    if samples.is_empty() {
        return Ok(());
    }
    let xmax =
        samples.iter().map(|c| c.at_s).chain(markers.iter().map(|m| m.0)).fold(0.0, f64::max).max(1.0) * 1.02;
    let ymax = samples.iter().map(|c| c.latency_s).fold(slo.unwrap_or(0.0), f64::max).max(0.01) * 1.1;
    let root = canvas(path)?;
    let mut chart = chart_builder(&root, title).build_cartesian_2d(0.0..xmax, 0.0..ymax).map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("time since the phase started (s)")
        .y_desc("source change → every copy observed (s)")
        .draw()
        .map_err(err)?;
    chart
        .draw_series(
            thin(samples, 600).iter().map(|c| Circle::new((c.at_s, c.latency_s), 2, BLUE.mix(0.5).filled())),
        )
        .map_err(err)?
        .label("one change")
        .legend(|(x, y)| Circle::new((x, y), 3, BLUE.filled()));
    let window = 5.0;
    let mut rolling = Vec::new();
    let mut start = 0.0;
    while start < xmax {
        let mut v: Vec<f64> = samples
            .iter()
            .filter(|c| c.at_s >= start && c.at_s < start + window)
            .map(|c| c.latency_s)
            .collect();
        if !v.is_empty() {
            v.sort_by(f64::total_cmp);
            let rank = ((0.99 * v.len() as f64).ceil() as usize).clamp(1, v.len());
            rolling.push((start + window / 2.0, v[rank - 1]));
        }
        start += window;
    }
    chart
        .draw_series(LineSeries::new(rolling, RED.stroke_width(2)))
        .map_err(err)?
        .label("p99 per 5 s")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    if let Some(slo) = slo {
        chart
            .draw_series(LineSeries::new(vec![(0.0, slo), (xmax, slo)], BLACK.mix(0.6)))
            .map_err(err)?
            .label("SLO")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.6)));
    }
    for (i, (x, label)) in markers.iter().enumerate() {
        let color = PALETTE[(i + 2) % PALETTE.len()];
        chart
            .draw_series(LineSeries::new(vec![(*x, 0.0), (*x, ymax)], color.stroke_width(2)))
            .map_err(err)?
            .label(format!("{label} ({x:.1} s)"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    finish(&mut chart, &root, None)
}

/// Fraction of the expected state observed over time during a cold start, and the replicas' writes.
pub fn cold_progress(path: &Path, title: &str, progress: &[(f64, f64, f64)]) -> anyhow::Result<()> {
    if progress.len() < 2 {
        return Ok(());
    }
    let step = progress.len().div_ceil(400);
    let progress: Vec<(f64, f64, f64)> = progress
        .iter()
        .enumerate()
        .filter(|(i, _)| i % step == 0 || *i == progress.len() - 1)
        .map(|(_, p)| *p)
        .collect();
    let xmax = progress.last().map_or(1.0, |p| p.0).max(0.1);
    let wmax = progress.iter().map(|p| p.2).fold(1.0, f64::max);
    let root = canvas(path)?;
    let mut chart = chart_builder(&root, title)
        .right_y_label_area_size(70)
        .build_cartesian_2d(0.0..xmax, 0.0..1.0)
        .map_err(err)?
        .set_secondary_coord(0.0..xmax, 0.0..wmax * 1.05);
    chart
        .configure_mesh()
        .x_desc("seconds since the controllers started")
        .y_desc("expected state observed (fraction)")
        .draw()
        .map_err(err)?;
    chart
        .configure_secondary_axes()
        .y_desc("writes by the controllers")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(progress.iter().map(|p| (p.0, p.1)), BLUE.stroke_width(2)))
        .map_err(err)?
        .label("observed / expected")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE.stroke_width(2)));
    chart
        .draw_secondary_series(LineSeries::new(progress.iter().map(|p| (p.0, p.2)), RED.stroke_width(2)))
        .map_err(err)?
        .label("writes")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED.stroke_width(2)));
    finish(&mut chart, &root, Some(SeriesLabelPosition::LowerRight))
}

/// p99 latency per churn rate, one line per replica count, with the SLO.
pub fn capacity_curve(path: &Path, title: &str, runs: &[PhaseResult], slo: f64) -> anyhow::Result<()> {
    let points: Vec<(f64, f64)> =
        runs.iter().flat_map(|r| r.stages.iter().map(|s| (s.target_rate, s.latency.p99_s))).collect();
    if points.is_empty() {
        return Ok(());
    }
    let xmax = points.iter().map(|p| p.0).fold(1.0, f64::max) * 1.1;
    // Stages that failed outright (unfinished changes) are drawn at the top of the chart.
    let finite_max = points.iter().map(|p| p.1).filter(|y| y.is_finite()).fold(slo, f64::max);
    let ymax = (finite_max * 1.2).min(slo * 20.0).max(slo * 1.5);
    let root = canvas(path)?;
    let mut chart = chart_builder(&root, title).build_cartesian_2d(0.0..xmax, 0.0..ymax).map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("churn rate (changes/s)")
        .y_desc("p99 propagation latency (s)")
        .draw()
        .map_err(err)?;
    for (i, run) in runs.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        // Refinement stages run after the ramp: draw by rate, not by time.
        let mut line: Vec<(f64, f64)> =
            run.stages.iter().map(|s| (s.target_rate, s.latency.p99_s.min(ymax))).collect();
        line.sort_by(|a, b| a.0.total_cmp(&b.0));
        let label = format!(
            "{} replica(s): capacity {}",
            run.replicas,
            run.capacity_per_s.map_or("none".into(), |c| format!("{c:.0}/s"))
        );
        chart
            .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))
            .map_err(err)?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        chart.draw_series(line.into_iter().map(|p| Circle::new(p, 3, color.filled()))).map_err(err)?;
    }
    chart
        .draw_series(LineSeries::new(vec![(0.0, slo), (xmax, slo)], BLACK.mix(0.6)))
        .map_err(err)?
        .label(format!("SLO p99 ≤ {slo} s"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.6)));
    finish(&mut chart, &root, Some(SeriesLabelPosition::UpperLeft))
}

/// The cold start of one run as the scaling plot reads it: replica count, and each replica's CPU-s and peak RSS.
#[derive(Debug, Clone, PartialEq)]
pub struct ScalingRun {
    pub replicas: usize,
    /// `(cpu_s, peak_rss_mib)` per replica.
    pub per_replica: Vec<(f64, f64)>,
}

/// Reads the cold phase of a `result.json` (or a directory holding one).
pub fn read_scaling_run(path: &Path) -> anyhow::Result<ScalingRun> {
    let file = if path.is_dir() { path.join("result.json") } else { path.to_path_buf() };
    let text = std::fs::read_to_string(&file).map_err(|e| anyhow!("reading {}: {e}", file.display()))?;
    let result: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| anyhow!("{} is not JSON: {e}", file.display()))?;
    let cold = result["phases"]
        .as_array()
        .and_then(|phases| phases.iter().find(|p| p["phase"] == "cold"))
        .ok_or_else(|| anyhow!("{} has no cold phase", file.display()))?;
    let replicas = cold["replicas"]
        .as_u64()
        .and_then(|r| usize::try_from(r).ok())
        .ok_or_else(|| anyhow!("{}: cold phase without a replica count", file.display()))?;
    // Replica processes are the ones with a peak RSS and a name that is not a parenthesized aggregate.
    let per_replica: Vec<(f64, f64)> = cold["processes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["name"].as_str().is_some_and(|n| !n.starts_with('(')))
        .filter_map(|p| Some((p["cpu_s"].as_f64()?, p["peak_rss_mib"].as_f64()?)))
        .collect();
    if per_replica.len() != replicas {
        return Err(anyhow!("{}: {} replicas, usage of {}", file.display(), replicas, per_replica.len()));
    }
    Ok(ScalingRun { replicas, per_replica })
}

/// `hnc-loadtest scaling-plot`: reads the runs and draws [`scaling`].
pub fn scaling_from_runs(args: &crate::cli::ScalingPlotArgs) -> anyhow::Result<()> {
    let runs = args.runs.iter().map(|p| read_scaling_run(p)).collect::<anyhow::Result<Vec<_>>>()?;
    scaling(&args.out, "Per-replica cost of the cold start against one replica's", &runs, args.goal)
}

/// Each replica's CPU-s and peak RSS as a share of the 1-replica run's (points), their largest per replica
/// count (lines), the ideal 1/R and the goal.
pub fn scaling(path: &Path, title: &str, runs: &[ScalingRun], goal: f64) -> anyhow::Result<()> {
    let base = runs
        .iter()
        .find(|r| r.replicas == 1)
        .and_then(|r| r.per_replica.first().copied())
        .filter(|(cpu, rss)| *cpu > 0.0 && *rss > 0.0)
        .ok_or_else(|| anyhow!("a 1-replica run is needed as the baseline"))?;
    let mut runs = runs.to_vec();
    runs.sort_by_key(|r| r.replicas);
    let most = i32::try_from(runs.last().map_or(1, |r| r.replicas)).unwrap_or(i32::MAX - 1);
    let root = canvas(path)?;
    let mut chart = chart_builder(&root, title).build_cartesian_2d(0..most + 1, 0.0..1.1).map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("replicas")
        .y_desc("share of one replica's cost")
        .x_labels(most as usize + 2)
        .draw()
        .map_err(err)?;
    let x = |r: &ScalingRun| i32::try_from(r.replicas).unwrap_or(most);
    type Share = fn(&(f64, f64), (f64, f64)) -> f64;
    let series: [(&str, RGBColor, Share); 2] = [
        ("CPU-s", BLUE, |(cpu, _), (base, _)| cpu / base),
        ("peak RSS", RED, |(_, rss), (_, base)| rss / base),
    ];
    for (name, color, share) in series {
        let worst: Vec<(i32, f64)> = runs
            .iter()
            .map(|r| (x(r), r.per_replica.iter().map(|u| share(u, base)).fold(0.0, f64::max)))
            .collect();
        chart
            .draw_series(LineSeries::new(worst, color.stroke_width(2)))
            .map_err(err)?
            .label(format!("{name}, largest replica"))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
        let points: Vec<(i32, f64)> =
            runs.iter().flat_map(|r| r.per_replica.iter().map(move |u| (x(r), share(u, base)))).collect();
        chart.draw_series(points.into_iter().map(|p| Circle::new(p, 4, color.filled()))).map_err(err)?;
    }
    let ideal: Vec<(i32, f64)> = (1..=most).map(|r| (r, 1.0 / f64::from(r))).collect();
    chart
        .draw_series(LineSeries::new(ideal, BLACK.mix(0.4)))
        .map_err(err)?
        .label("1 / replicas")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.4)));
    chart
        .draw_series(LineSeries::new(vec![(0, goal), (most + 1, goal)], GREEN.stroke_width(1)))
        .map_err(err)?
        .label(format!("goal ≤ {goal}"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GREEN));
    finish(&mut chart, &root, Some(SeriesLabelPosition::UpperRight))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(replicas: usize, usage: &[(f64, f64)]) -> serde_json::Value {
        let mut processes: Vec<serde_json::Value> = usage
            .iter()
            .enumerate()
            .map(|(i, (cpu, rss))| serde_json::json!({"name": format!("lt-r{i}"), "cpu_s": cpu, "peak_rss_mib": rss}))
            .collect();
        processes.push(serde_json::json!({"name": "(apisim threads)", "cpu_s": 40.0, "peak_rss_mib": null}));
        serde_json::json!({"phases": [{"phase": "cold", "replicas": replicas, "processes": processes}]})
    }

    #[test]
    fn reads_each_replicas_usage_of_the_cold_start_and_draws_against_one_replica() {
        let dir = tempfile::tempdir().unwrap();
        let mut runs = Vec::new();
        for (r, usage) in [(1, vec![(100.0, 500.0)]), (2, vec![(50.0, 300.0), (45.0, 280.0)])] {
            let sub = dir.path().join(format!("r{r}"));
            std::fs::create_dir(&sub).unwrap();
            std::fs::write(sub.join("result.json"), result(r, &usage).to_string()).unwrap();
            runs.push(read_scaling_run(&sub).unwrap());
        }
        assert_eq!(runs[1], ScalingRun { replicas: 2, per_replica: vec![(50.0, 300.0), (45.0, 280.0)] });
        let svg = dir.path().join("scaling.svg");
        scaling(&svg, "t", &runs, 0.3).unwrap();
        assert!(std::fs::read_to_string(&svg).unwrap().contains("<svg"));
        // No baseline, or a result that does not add up: a clear error.
        assert!(scaling(&svg, "t", &runs[1..], 0.3).unwrap_err().to_string().contains("1-replica"));
        std::fs::write(dir.path().join("bad.json"), result(3, &[(1.0, 1.0)]).to_string()).unwrap();
        assert!(read_scaling_run(&dir.path().join("bad.json")).is_err());
        assert!(read_scaling_run(&dir.path().join("missing")).is_err());
    }
}
