//! `--embedded`: an in-process API server (apisim) with HNC's CRDs installed, for trying HNC without a cluster.

use std::path::PathBuf;

use hnc_apisim::{ApiSim, Config};

use crate::flags::Flags;

/// Starts apisim on 127.0.0.1, installs the CRDs generated from `hnc-api`'s types, creates HNC's namespace
/// (`--namespace`, where the webhook certificate lives) and writes the admin kubeconfig to
/// `--embedded-kubeconfig`. Returns the server and the kubeconfig the controller itself uses: a service account
/// of HNC's namespace, so that its own writes pass its webhooks as upstream's do.
pub async fn start(flags: &Flags) -> anyhow::Result<(ApiSim, PathBuf)> {
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

fn is_addr_in_use(error: &anyhow::Error) -> bool {
    error
        .chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::AddrInUse)
}
