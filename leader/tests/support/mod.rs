//! Shared setup for the apisim-backed tests: a client per replica (its own user, so faults can target it) and
//! a wait helper that polls a condition with a generous deadline.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use hnc_apisim::ApiSim;
use kube::Client;
use kube::config::{KubeConfigOptions, Kubeconfig};

/// The namespace every test coordinates in.
pub const NAMESPACE: &str = "hnc-system";

/// Starts apisim with the HNC namespace.
pub async fn sim() -> ApiSim {
    let sim = ApiSim::start(hnc_apisim::Config::default()).await.unwrap();
    sim.create("", "namespaces", "", serde_json::json!({"metadata": {"name": NAMESPACE}})).unwrap();
    sim
}

/// A client authenticated as `user` (a cluster admin), without kube's own retries so that injected faults
/// reach the coordinator as they happen.
pub async fn client_as(sim: &ApiSim, user: &str) -> Client {
    let token = format!("token-{user}");
    sim.add_user(&token, user, &["system:masters"]);
    let kubeconfig = Kubeconfig::from_yaml(&sim.kubeconfig_yaml(&token)).unwrap();
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    config.default_retry = false;
    Client::try_from(config).unwrap()
}

/// Polls `condition` every 20 ms until it holds; panics with `what` after `timeout`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
