//! The process lifecycle: validate flags, log, bind the ops server, connect, check, run until SIGTERM/SIGINT.

use std::process::ExitCode;
use std::time::Duration;

use crate::flags::Flags;
use crate::ops::{DebugPages, OpsServer, Readiness};
use crate::replica::Replica;
use crate::{process_metrics, startup, telemetry};

/// How long to wait for the API server at startup before giving up with an error.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs the controller; the exit code says how it ended.
pub fn main(flags: Flags) -> ExitCode {
    if let Err(message) = flags.validate() {
        eprintln!("error: {message}");
        return ExitCode::from(2);
    }
    telemetry::init_logging(flags.debug_logs);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(flags)) {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::SUCCESS
        }
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "controller failed");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs until a termination signal, or returns the error that stopped it.
pub async fn run(mut flags: Flags) -> anyhow::Result<()> {
    // Signals are handled from the first moment: one that arrives while the process starts (the embedded server
    // coming up, the API server being reached) stops it as cleanly as one that arrives later.
    let mut stop = ShutdownSignal::listen()?;
    // Kept alive for the whole run: dropping it stops the embedded API server.
    let _embedded = match flags.embedded {
        true => {
            let (sim, controller_kubeconfig) = crate::embedded::start(&flags).await?;
            flags.kubeconfig = Some(controller_kubeconfig);
            // The embedded server calls webhooks by URL, on loopback, with a certificate HNC issues itself.
            if !flags.no_webhooks && flags.webhook_url_base.is_none() {
                flags.webhook_url_base = Some("https://127.0.0.1".to_owned());
                flags.enable_internal_cert_management = true;
                if flags.webhook_server_port == 443 {
                    flags.webhook_server_port = 0;
                }
            }
            // A development mode: keep every listener on loopback unless told otherwise.
            for addr in [&mut flags.health_probe_bind_address, &mut flags.metrics_addr] {
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
            }
            Some(sim)
        }
        false => None,
    };
    for flag in flags.ignored_upstream_flags() {
        tracing::warn!(flag, "upstream flag accepted for compatibility; it has no effect here");
    }
    let identity = flags.replica_identity();
    tracing::info!(replica = %identity, shards = flags.shards, namespace = %flags.namespace, "starting");

    let metrics = telemetry::install_metrics()?;
    let ready = Readiness::default();
    ready.register("api-server");
    let debug = DebugPages::default();
    // Bind first: liveness answers while we connect, readiness says what we wait for.
    let ops = OpsServer::start(
        flags.health_probe_bind_address,
        flags.metrics_addr,
        metrics,
        ready.clone(),
        debug.clone(),
    )
    .await?;

    let lag_probe_stop = tokio_util::sync::CancellationToken::new();
    let lag_probe = process_metrics::spawn_lag_probe(lag_probe_stop.clone());

    let outcome = async {
        let starting = async {
            let (client, config) = startup::connect(&flags, CONNECT_TIMEOUT).await?;
            startup::check_crds(&client, flags.enable_hrq).await?;
            startup::check_namespace(&client, &flags.namespace).await?;
            // The replica's own readiness gates are registered before the api-server gate opens, so /readyz
            // never answers 200 for a replica that has not started.
            let replica = Replica::start(&flags, client, &config, &ready, &debug)?;
            ready.set("api-server", true);
            anyhow::Ok(replica)
        };
        let mut replica = tokio::select! {
            replica = starting => replica?,
            () = stop.recv() => {
                tracing::info!("termination signal received while starting, shutting down");
                return Ok(());
            }
        };
        let outcome = tokio::select! {
            () = stop.recv() => {
                tracing::info!("termination signal received, shutting down");
                Ok(())
            }
            lost = replica.fatal() => Err(lost),
        };
        replica.shutdown().await;
        // The webhook server stopped accepting; the connections the API server holds end cleanly first.
        crate::webhook::tls::drained(crate::webhook::tls::IDLE_GRACE + crate::webhook::tls::DRAIN_TIMEOUT)
            .await;
        outcome
    }
    .await;
    lag_probe_stop.cancel();
    let _ = lag_probe.await;
    ops.shutdown().await;
    outcome
}

/// SIGTERM and SIGINT, handled (instead of killing the process) from [`ShutdownSignal::listen`] on.
struct ShutdownSignal {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl ShutdownSignal {
    fn listen() -> anyhow::Result<ShutdownSignal> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(ShutdownSignal { term: signal(SignalKind::terminate())?, int: signal(SignalKind::interrupt())? })
    }

    /// Resolves once either signal has arrived since [`ShutdownSignal::listen`].
    async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
