//! The watch plumbing every reconciler stands on — kube's watcher, [`feed`] and its relist tracking — against
//! apisim: a watch that is dropped, relists across compactions and survives API server restarts while objects
//! are created and deleted ends with exactly the server's objects (no deletion lost, nothing deleted restored).

use std::collections::BTreeSet;
use std::time::Duration;

use hnc_controller::watch::{Change, feed};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::json;
use tokio::sync::mpsc;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relisting_watch_ends_with_the_servers_objects() {
    let sim = hnc_apisim::ApiSim::start(Default::default()).await.unwrap();
    let kubeconfig = Kubeconfig::from_yaml(&sim.kubeconfig_yaml(sim.admin_token())).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    let client = Client::try_from(config).unwrap();
    let n = 10_000;
    for i in 0..n {
        sim.create("", "configmaps", "default", json!({"metadata": {"name": format!("c{i}")}})).unwrap();
    }
    let (tx, mut rx) = mpsc::channel(1024);
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    tokio::spawn(feed(api.clone(), watcher::Config::default(), tx, "configmaps".into(), |c| c));
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let apply = |seen: &mut BTreeSet<String>, c: Change<ConfigMap>| match c {
        Change::Apply(o) => {
            seen.insert(o.metadata.name.unwrap());
        }
        Change::Delete((_, name)) => {
            seen.remove(&name);
        }
        Change::Synced => {}
    };
    // Churn: delete and create while the watch is dropped and the history compacted.
    let churn = {
        let api = api.clone();
        tokio::spawn(async move {
            for round in 0..100 {
                for i in (round * 50)..(round * 50 + 50) {
                    let _ = api.delete(&format!("c{i}"), &Default::default()).await;
                    let cm: ConfigMap =
                        serde_json::from_value(json!({"metadata": {"name": format!("n{round}-{i}")}}))
                            .unwrap();
                    let _ = api.create(&Default::default(), &cm).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    let faults = async {
        for i in 0..12 {
            tokio::time::sleep(Duration::from_millis(400)).await;
            if i % 3 == 0 {
                sim.restart(Duration::from_millis(300)).await.unwrap();
            } else {
                sim.compact();
                sim.faults().drop_watches();
            }
        }
    };
    let consume = async {
        loop {
            match tokio::time::timeout(Duration::from_millis(100), rx.recv()).await {
                Ok(Some(c)) => {
                    apply(&mut seen, c);
                    if seen.len().is_multiple_of(97) {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                    }
                }
                Ok(None) => break,
                Err(_) => {}
            }
            if churn.is_finished() {
                break;
            }
        }
    };
    tokio::join!(faults, consume);
    // Drain until quiet, then compare with the server.
    let server: BTreeSet<String> = api
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| o.metadata.name.unwrap())
        .collect();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seen != server && tokio::time::Instant::now() < deadline {
        if let Ok(Some(c)) = tokio::time::timeout(Duration::from_millis(200), rx.recv()).await {
            apply(&mut seen, c);
        }
    }
    let missing: Vec<_> = server.difference(&seen).take(5).collect();
    let extra: Vec<_> = seen.difference(&server).take(5).collect();
    assert!(
        seen == server,
        "{} missing (e.g. {missing:?}), {} extra (e.g. {extra:?})",
        server.difference(&seen).count(),
        seen.difference(&server).count()
    );
}
