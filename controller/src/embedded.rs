//! `--embedded`: an in-process API server (apisim) with HNC's CRDs installed, for trying HNC without a cluster.

use hnc_apisim::{ApiSim, Config};

use crate::flags::Flags;

/// Starts apisim on 127.0.0.1, installs the CRDs generated from `hnc-api`'s types and writes the admin
/// kubeconfig to `--embedded-kubeconfig`.
pub async fn start(flags: &Flags) -> anyhow::Result<ApiSim> {
    let sim = ApiSim::start(Config { https_port: flags.embedded_port, ..Default::default() }).await.map_err(
        |e| anyhow::anyhow!("cannot start the embedded API server on 127.0.0.1:{}: {e}", flags.embedded_port),
    )?;
    for (_, crd) in hnc_api::crd::all() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        sim.create("apiextensions.k8s.io", "customresourcedefinitions", "", serde_json::to_value(&crd)?)
            .map_err(|e| anyhow::anyhow!("cannot install CRD {name}: {}", e.message))?;
    }
    let path = &flags.embedded_kubeconfig;
    sim.write_kubeconfig(path, sim.admin_token())
        .map_err(|e| anyhow::anyhow!("cannot write the embedded kubeconfig to {}: {e}", path.display()))?;
    tracing::info!(
        server = %sim.https_url(),
        kubeconfig = %path.display(),
        "embedded API server running; try: kubectl --kubeconfig {} get namespaces",
        path.display()
    );
    Ok(sim)
}
