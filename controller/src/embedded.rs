//! `--embedded`: an in-process API server (apisim) with HNC's CRDs installed, for trying HNC without a cluster.
//!
//! Built with the cargo feature `embedded` (on by default). The deployment build turns it off
//! (`--no-default-features`), so the production binary carries no test double; `--embedded` is then refused
//! at startup with [`NOT_BUILT`].

use std::path::PathBuf;

#[cfg(feature = "embedded")]
use hnc_apisim::{ApiSim, Config};

use crate::flags::Flags;

/// True when this binary was built with the `embedded` feature and can run `--embedded`.
pub const AVAILABLE: bool = cfg!(feature = "embedded");

/// Why `--embedded` is refused by a binary built without the `embedded` feature.
pub const NOT_BUILT: &str = "--embedded is not available: this hnc-controller was built without the `embedded` \
     feature (as the deployment build is, to leave the embedded API server out); build it with the default \
     features to use it, e.g. `cargo run -p hnc-controller -- --embedded`";

/// The embedded API server; dropping it stops the server.
#[cfg(feature = "embedded")]
pub type Server = ApiSim;

/// The embedded API server, which a build without the `embedded` feature cannot have.
#[cfg(not(feature = "embedded"))]
#[derive(Debug)]
pub enum Server {}

/// Without the `embedded` feature: always the [`NOT_BUILT`] error.
#[cfg(not(feature = "embedded"))]
pub async fn start(_flags: &Flags) -> anyhow::Result<(Server, PathBuf)> {
    anyhow::bail!(NOT_BUILT)
}

/// Starts apisim on 127.0.0.1, installs the CRDs generated from `hnc-api`'s types, creates HNC's namespace
/// (`--namespace`, where the webhook certificate lives) and writes the admin kubeconfig to
/// `--embedded-kubeconfig`. Returns the server and the kubeconfig the controller itself uses: a service account
/// of HNC's namespace, so that its own writes pass its webhooks as upstream's do.
#[cfg(feature = "embedded")]
pub async fn start(flags: &Flags) -> anyhow::Result<(Server, PathBuf)> {
    let port = flags.embedded_port;
    let sim = match ApiSim::start(Config { https_port: port, ..Default::default() }).await {
        Ok(sim) => sim,
        // 6443 is also where a local k3s or kube-apiserver listens: say so and take any free port.
        Err(e) if port != 0 && is_addr_in_use(&e) => {
            let sim = ApiSim::start(Config { https_port: 0, ..Default::default() })
                .await
                .map_err(|e| anyhow::anyhow!("cannot start the embedded API server on 127.0.0.1: {e}"))?;
            tracing::warn!(port, server = %sim.https_url(), "port taken; the embedded API server uses another");
            eprintln!(
                "127.0.0.1:{port} is taken (a local Kubernetes API server?); the embedded API server listens on {} instead",
                sim.https_url()
            );
            sim
        }
        Err(e) => anyhow::bail!("cannot start the embedded API server on 127.0.0.1:{port}: {e}"),
    };
    for (_, crd) in hnc_api::crd::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        sim.create("apiextensions.k8s.io", "customresourcedefinitions", "", serde_json::to_value(&crd)?)
            .map_err(|e| anyhow::anyhow!("cannot install CRD {name}: {}", e.message))?;
    }
    let ns = &flags.namespace;
    sim.create("", "namespaces", "", serde_json::json!({"metadata": {"name": ns}}))
        .map_err(|e| anyhow::anyhow!("cannot create namespace {ns}: {}", e.message))?;
    let path = &flags.embedded_kubeconfig;
    sim.write_kubeconfig(path, sim.admin_token())
        .map_err(|e| anyhow::anyhow!("cannot write the embedded kubeconfig to {}: {e}", path.display()))?;
    let token = format!("{:032x}", rand::random::<u128>());
    let service_accounts = format!("system:serviceaccounts:{ns}");
    let user = format!("system:serviceaccount:{ns}:{}", hnc_api::keys::names::DEPLOYMENT);
    sim.add_user(&token, &user, &["system:serviceaccounts", &service_accounts, "system:masters"]);
    let controller_kubeconfig = path.with_extension("controller.kubeconfig");
    sim.write_kubeconfig(&controller_kubeconfig, &token).map_err(|e| {
        anyhow::anyhow!(
            "cannot write the controller's kubeconfig to {}: {e}",
            controller_kubeconfig.display()
        )
    })?;
    tracing::info!(server = %sim.https_url(), kubeconfig = %path.display(), "embedded API server running");
    eprintln!(
        "embedded API server: {}; kubeconfig: {}\ntry: kubectl --kubeconfig {} get namespaces",
        sim.https_url(),
        path.display(),
        path.display()
    );
    Ok((sim, controller_kubeconfig))
}

#[cfg(feature = "embedded")]
fn is_addr_in_use(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::AddrInUse)
}
