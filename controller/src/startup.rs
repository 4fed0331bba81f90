//! Connecting to the API server and checking that HNC can run there, with errors that say what to do.

use std::time::Duration;

use kube::Client;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};

use crate::flags::Flags;

/// Resources of `hnc.x-k8s.io/v1alpha2` the controller cannot run without.
const REQUIRED_RESOURCES: [&str; 3] = ["hierarchyconfigurations", "subnamespaceanchors", "hncconfigurations"];

/// Builds a client from `--kubeconfig` / `$KUBECONFIG` / `~/.kube/config` / in-cluster config, and checks the API
/// server answers within `timeout`. Returns the configuration too, for clients with other settings.
pub async fn connect(flags: &Flags, timeout: Duration) -> anyhow::Result<(Client, Config)> {
    let config = match &flags.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| anyhow::anyhow!("cannot read kubeconfig {}: {e}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| anyhow::anyhow!("invalid kubeconfig {}: {e}", path.display()))?
        }
        None => Config::infer().await.map_err(|e| {
            anyhow::anyhow!("no Kubernetes configuration found (set --kubeconfig or run in a cluster): {e}")
        })?,
    };
    let url = config.cluster_url.clone();
    let client = Client::try_from(config.clone())
        .map_err(|e| anyhow::anyhow!("cannot build a client for {url}: {e}"))?;
    match tokio::time::timeout(timeout, client.apiserver_version()).await {
        Ok(Ok(version)) => {
            tracing::info!(server = %url, version = %version.git_version, "connected to the API server");
            Ok((client, config))
        }
        Ok(Err(e)) => Err(anyhow::anyhow!("the API server at {url} is unreachable: {e}")),
        Err(_) => Err(anyhow::anyhow!("the API server at {url} did not answer within {timeout:?}")),
    }
}

/// Fails with the list of missing HNC CRDs, if any.
pub async fn check_crds(client: &Client, enable_hrq: bool) -> anyhow::Result<()> {
    let served: Vec<String> = match client.list_api_group_resources(hnc_api::API_VERSION).await {
        Ok(list) => list.resources.into_iter().map(|r| r.name).collect(),
        Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
        Err(e) => return Err(anyhow::anyhow!("cannot discover {}: {e}", hnc_api::API_VERSION)),
    };
    let mut required: Vec<&str> = REQUIRED_RESOURCES.to_vec();
    if enable_hrq {
        required.push("hierarchicalresourcequotas");
    }
    let missing: Vec<String> = required
        .into_iter()
        .filter(|r| !served.iter().any(|s| s == r))
        .map(|r| format!("{r}.{}", hnc_api::GROUP))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(anyhow::anyhow!(
        "HNC's CustomResourceDefinitions are not installed: {} (apply manifests/crds/ first)",
        missing.join(", ")
    ))
}

/// Fails unless HNC's own namespace (`--namespace`) exists: the coordination Leases, the shard assignment and
/// the webhook certificate live there.
pub async fn check_namespace(client: &Client, namespace: &str) -> anyhow::Result<()> {
    let api: kube::Api<k8s_openapi::api::core::v1::Namespace> = kube::Api::all(client.clone());
    match api.get_opt(namespace).await {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(anyhow::anyhow!(
            "HNC's namespace {namespace:?} does not exist: create it (manifests/deploy/ does) or pass --namespace"
        )),
        Err(e) => Err(anyhow::anyhow!("cannot read HNC's namespace {namespace:?}: {e}")),
    }
}
