//! From a command to results: builds the two runtimes (the harness's `lt-harness` threads and apisim's
//! `lt-apisim` threads, so each one's CPU time can be read apart), runs the command's sessions and phases, and
//! writes the result, the summary and the plots.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::cli::{Cli, Command, Phase};
use crate::report::{self, Machine, PhaseResult, RunResult, TopologySummary};
use crate::session::Session;

/// Runs `cli`; the exit code says whether it worked.
pub fn main(cli: Cli) -> ExitCode {
    if let Command::ScalingPlot(args) = &cli.command {
        return match crate::plot::scaling_from_runs(args) {
            Ok(()) => {
                println!("plot in {}", args.out.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    let build = |name: &str| {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).thread_name(name).enable_all().build()
    };
    let (harness, sim) = match (build("lt-harness"), build("lt-apisim")) {
        (Ok(h), Ok(s)) => (h, s),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: cannot start the async runtimes: {e}");
            return ExitCode::FAILURE;
        }
    };
    // On SIGINT/SIGTERM the run is dropped, and with it every controller process it started.
    let outcome = harness.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            outcome = run(&cli, sim.handle()) => outcome,
            _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
            _ = term.recv() => Err(anyhow::anyhow!("terminated")),
        }
    });
    // apisim's runtime is dropped here, outside any async context.
    drop(harness);
    drop(sim);
    match outcome {
        Ok(out) => {
            println!("results in {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the command; returns the output directory.
pub async fn run(cli: &Cli, sim: &tokio::runtime::Handle) -> anyhow::Result<PathBuf> {
    let command = &cli.command;
    let Some(opts) = command.common() else {
        anyhow::bail!("{} runs no scenario", command.name());
    };
    let mut opts = opts.clone();
    // The slow-webhooks fault needs replicas that serve webhooks.
    if matches!(command, Command::Faults(_)) && opts.faults.contains(&crate::cli::FaultKind::SlowWebhooks) {
        opts.webhooks = true;
    }
    // Hierarchical quotas: the replicas enforce them in the ResourceQuota-status webhook, so they serve webhooks.
    if matches!(command, Command::Quota(_)) {
        opts.webhooks = true;
        if !opts.controller_args.iter().any(|a| a == "--enable-hrq" || a.starts_with("--enable-hrq=")) {
            opts.controller_args.push("--enable-hrq".to_owned());
        }
    }
    let opts = &opts;
    let spec = opts.topology_spec();
    let default_out = match command {
        Command::Quota(_) => format!("loadtest-out/quota-{}", format!("{:?}", spec.shape).to_lowercase()),
        _ => format!("loadtest-out/{}-{}", command.name(), spec.label()),
    };
    let out = opts.out.clone().unwrap_or_else(|| PathBuf::from(default_out));
    std::fs::create_dir_all(&out)?;
    let progress = !opts.no_progress;
    let mut machine = Machine::describe();
    let mut phases: Vec<PhaseResult> = Vec::new();
    let mut summary = None;
    let mut load_s = 0.0;

    let replica_counts = match command {
        Command::Capacity(_) => opts.replica_counts.clone(),
        _ => vec![opts.replicas],
    };
    let mut capacity_runs = Vec::new();
    // A failure still leaves a result with every phase measured before it.
    let mut error = None;
    for replicas in replica_counts {
        let mut session = match Session::prepare(opts, sim, replicas, &out, progress).await {
            Ok(s) => s,
            Err(e) => {
                error = Some(e);
                break;
            }
        };
        load_s = session.load_s;
        summary = Some(session.summary.clone());
        let outcome = run_phases(&mut session, command, progress, &mut phases).await;
        let teardown = session.teardown().await;
        match outcome.and_then(|ramp| teardown.map(|()| ramp)) {
            Ok(Some(ramp)) => capacity_runs.push(ramp),
            Ok(None) => {}
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let slo = opts.slo;
    for p in &phases {
        if let Some(fault) = &p.fault {
            let file = out.join(format!("latency-fault-{}.svg", fault.fault));
            crate::plot::latency_over_time(
                &file,
                &format!("churn through {} on {}", fault.fault, spec.label()),
                &p.samples,
                None,
                &[(fault.injected_s, "fault injected"), (fault.ended_s, "fault ended")]
                    .into_iter()
                    .chain(fault.restarted_s.map(|s| (s, "killed replica started again")))
                    .collect::<Vec<_>>(),
            )?;
        }
        if matches!(p.phase.as_str(), "churn" | "burst" | "failover" | "scale-out") && !p.samples.is_empty() {
            let file = out.join(format!("latency-{}.svg", p.phase));
            crate::plot::latency_over_time(
                &file,
                &format!("{} on {}", p.phase, spec.label()),
                &p.samples,
                None,
                &[],
            )?;
        }
        if p.phase == "cold" && p.replicas == opts.replicas {
            let file = out.join("cold-progress.svg");
            crate::plot::cold_progress(
                &file,
                &format!("cold start of {} ({} replica(s))", spec.label(), p.replicas),
                &p.progress,
            )?;
        }
    }
    if !capacity_runs.is_empty() {
        crate::plot::capacity_curve(
            &out.join("capacity.svg"),
            &format!("SLO capacity on {}", spec.label()),
            &capacity_runs,
            slo,
        )?;
        for run in &capacity_runs {
            let file = out.join(format!("latency-capacity-r{}.svg", run.replicas));
            crate::plot::latency_over_time(
                &file,
                &format!("capacity ramp, {} replica(s)", run.replicas),
                &run.samples,
                Some(slo),
                &[],
            )?;
        }
        phases.extend(capacity_runs);
    }
    machine.load_average_at_end = report::load_average();
    let result = RunResult {
        command: std::env::args().collect::<Vec<_>>().join(" "),
        scenario: command.name().into(),
        machine,
        options: opts.clone(),
        topology: summary.unwrap_or_else(|| TopologySummary::of_spec(&spec)),
        load_s,
        phases,
        error: error.as_ref().map(|e| format!("{e:#}")),
    };
    report::write(&out, &result)?;
    if progress {
        eprintln!("{}", report::markdown(&result));
    }
    match error {
        Some(e) => Err(e.context(format!("partial results in {}", out.display()))),
        None => Ok(out),
    }
}

/// The cold start and then the command's phases; a capacity command returns its ramp.
async fn run_phases(
    session: &mut Session,
    command: &Command,
    progress: bool,
    phases: &mut Vec<PhaseResult>,
) -> anyhow::Result<Option<PhaseResult>> {
    let opts = session.opts.clone();
    // The quota scenario loads its HierarchicalResourceQuotas with the topology, before the replicas start.
    let quota_start = match command {
        Command::Quota(_) => Some(session.load_quotas(progress).await?),
        _ => None,
    };
    let mut cold = session.cold(progress).await?;
    let converged = cold.converged_s.is_some();
    cold.phase = if matches!(command, Command::Capacity(_)) {
        format!("cold ({} replica(s))", session.replica_count())
    } else {
        "cold".into()
    };
    phases.push(cold);
    if !converged {
        anyhow::bail!("the cold start did not converge; later phases skipped");
    }
    if let Command::Capacity(_) = command {
        return Ok(Some(session.ramp(progress).await?));
    }
    if let Command::Faults(_) = command {
        session.faults(progress, phases).await?;
        return Ok(None);
    }
    if let Some(start) = quota_start {
        phases.push(session.quota(progress, start).await?);
        return Ok(None);
    }
    for phase in command.phases() {
        let result = match phase {
            Phase::Cold => continue,
            Phase::Warm => session.warm(progress).await?,
            Phase::Churn => session.churn("churn", opts.rate, opts.duration, progress).await?,
            Phase::Burst => session.burst(progress).await?,
            Phase::Failover => session.failover(progress).await?,
            Phase::ScaleOut => session.scale_out(progress).await?,
        };
        phases.push(result);
    }
    Ok(None)
}
