//! Runs apisim until SIGINT/SIGTERM, writing a kubeconfig for kubectl and controllers.

use std::path::PathBuf;

use clap::Parser;

/// mimalloc rather than glibc's malloc: serving large paged lists over TLS, glibc spent half of the process's
/// CPU consolidating its heaps (perf, a 20,000-namespace relist storm).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An in-process Kubernetes API server for development and tests.
#[derive(Parser)]
#[command(name = "apisim", version, about)]
struct Args {
    /// HTTPS port on 127.0.0.1 (0 = any).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Plain HTTP port on 127.0.0.1 (0 = any).
    #[arg(long, default_value_t = 0)]
    http_port: u16,
    /// Where to write the admin kubeconfig.
    #[arg(long, default_value = "apisim.kubeconfig")]
    kubeconfig_out: PathBuf,
    /// Directory of CRD YAML files to install at start.
    #[arg(long)]
    crds: Option<PathBuf>,
    /// Changes kept for watches before 410 Gone.
    #[arg(long, default_value_t = 100_000)]
    history: usize,
    /// Leave terminating namespaces terminating, as a kube-apiserver without kube-controller-manager does.
    #[arg(long)]
    no_namespace_controller: bool,
    /// Load profile: `realistic` makes writes hold one of a fixed number of seats for an etcd-like commit
    /// latency, queue beyond that and get 429 + Retry-After when the queue is full, as kube-apiserver with API
    /// Priority and Fairness does (defaults: 5 ms, 200 seats, 300 queued).
    #[arg(long, value_enum, default_value = "none")]
    profile: Profile,
    /// `realistic` profile: commit latency of a write, milliseconds.
    #[arg(long, default_value_t = 5)]
    profile_commit_ms: u64,
    /// `realistic` profile: writes served at once.
    #[arg(long, default_value_t = 200)]
    profile_seats: usize,
    /// `realistic` profile: writes that may wait for a seat.
    #[arg(long, default_value_t = 300)]
    profile_queue: usize,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Profile {
    None,
    Realistic,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sim = hnc_apisim::ApiSim::start(hnc_apisim::Config {
        history_window: args.history,
        https_port: args.port,
        http_port: args.http_port,
        namespace_controller: !args.no_namespace_controller,
        ..Default::default()
    })
    .await?;
    if let Profile::Realistic = args.profile {
        sim.faults().set_profile(Some(hnc_apisim::LoadProfile {
            commit_latency: std::time::Duration::from_millis(args.profile_commit_ms),
            seats: args.profile_seats,
            queue_length: args.profile_queue,
            ..hnc_apisim::LoadProfile::realistic()
        }));
    }
    if let Some(dir) = &args.crds {
        let n = hnc_apisim::install_crds_from_dir(&sim, dir).await?;
        eprintln!("installed {n} CRDs from {}", dir.display());
    }
    sim.write_kubeconfig(&args.kubeconfig_out, sim.admin_token())?;
    eprintln!(
        "apisim serving {} (plain HTTP {}); kubeconfig: {}",
        sim.https_url(),
        sim.http_url(),
        args.kubeconfig_out.display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    sim.shutdown().await;
    Ok(())
}
