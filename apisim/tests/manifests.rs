//! HNC's installation manifests, checked by an API server before anyone deploys them: every kustomize overlay
//! in `manifests/overlays`, and the migration bridge in `manifests/migration/bridge`, is rendered with
//! `kubectl kustomize` and created with `kubectl create --dry-run=server` against apisim, with kubectl's default
//! client-side validation (which reads apisim's OpenAPI documents, so a misspelt field fails) and apisim's
//! server-side validation of each kind (a Deployment whose selector misses its pod labels, a Service port out of
//! range, ...). The Prometheus Operator's kinds come from `fixtures/monitoring.coreos.com-crds.yaml`.
//!
//! As on a cluster, a dry run of a namespaced object needs its namespace to exist: cluster-scoped objects are
//! dry-run first, then the installation's Namespace is created for real, then the namespaced objects are
//! dry-run. Nothing else may be stored afterwards.

use std::path::{Path, PathBuf};

mod support;
#[path = "../../e2e/src/tools.rs"]
mod tools;

use hnc_apisim::{ApiSim, Config};
use serde_json::Value;
use support::kubectl::Kubectl;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The documents of a rendered multi-document YAML stream.
fn documents(yaml: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(yaml).unwrap().into_iter().filter(|d| !d.is_null()).collect()
}

fn to_yaml_stream(docs: &[&Value]) -> String {
    // JSON is YAML: one document per object.
    docs.iter().map(|d| format!("---\n{}\n", serde_json::to_string(d).unwrap())).collect()
}

/// Starts apisim with the Prometheus Operator's kinds registered, and a kubectl for it.
async fn cluster(tmp: &Path) -> Option<(ApiSim, Kubectl)> {
    let binary = tools::kubectl()?;
    let sim = ApiSim::start(Config::default()).await.unwrap();
    let kubeconfig = tmp.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig, sim.admin_token()).unwrap();
    let k = Kubectl { binary, kubeconfig };
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/monitoring.coreos.com-crds.yaml");
    k.ok(&["create", "-f", fixture.to_str().unwrap()]);
    Some((sim, k))
}

/// Dry-runs the create of `docs` (written to `file`) and returns kubectl's output; panics unless every object
/// was reported created.
fn dry_run_create(k: &Kubectl, file: &Path, docs: &[&Value]) -> String {
    std::fs::write(file, to_yaml_stream(docs)).unwrap();
    let out = k.ok(&["create", "--dry-run=server", "-f", file.to_str().unwrap()]);
    let created = out.lines().filter(|l| l.ends_with(" created (server dry run)")).count();
    assert_eq!(created, docs.len(), "every object is created by the dry run:\n{out}");
    out
}

/// Renders `overlay` and creates it with a server-side dry run, as described in the module documentation.
async fn check_overlay(overlay: &Path) {
    let tmp = tempfile::tempdir().unwrap();
    let Some((_sim, k)) = cluster(tmp.path()).await else { return };
    let rendered = k.ok(&["kustomize", overlay.to_str().unwrap()]);
    let docs = documents(&rendered);
    assert!(!docs.is_empty(), "{} renders nothing", overlay.display());
    let namespaced = |d: &Value| d.pointer("/metadata/namespace").is_some();
    let cluster_scoped: Vec<&Value> = docs.iter().filter(|d| !namespaced(d)).collect();
    let in_namespaces: Vec<&Value> = docs.iter().filter(|d| namespaced(d)).collect();
    if !cluster_scoped.is_empty() {
        dry_run_create(&k, &tmp.path().join("cluster-scoped.yaml"), &cluster_scoped);
    }

    let namespaces: Vec<&Value> =
        cluster_scoped.iter().copied().filter(|d| d["kind"] == "Namespace").collect();
    assert!(namespaces.len() <= 1, "one namespace, hnc-system");
    if namespaces.is_empty() {
        // A part applied into an existing installation (the migration bridge).
        k.ok(&["create", "namespace", "hnc-system"]);
    } else {
        std::fs::write(tmp.path().join("namespace.yaml"), to_yaml_stream(&namespaces)).unwrap();
        k.ok(&["create", "-f", tmp.path().join("namespace.yaml").to_str().unwrap()]);
    }
    dry_run_create(&k, &tmp.path().join("namespaced.yaml"), &in_namespaces);

    // A dry run stores nothing: no HNC CRD, no ClusterRole of HNC's, nothing in its namespace.
    let crds = k.ok(&["get", "customresourcedefinitions", "-o", "name"]);
    assert!(!crds.contains("hnc.x-k8s.io"), "{crds}");
    let roles = k.ok(&["get", "clusterroles", "-o", "name"]);
    assert!(!roles.contains("hnc-"), "{roles}");
    let stored = k.ok(&[
        "get",
        "deployments,services,poddisruptionbudgets,serviceaccounts,roles,rolebindings,configmaps,servicemonitors",
        "-n",
        "hnc-system",
        "-o",
        "name",
    ]);
    assert!(!stored.contains("hnc-"), "{stored}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_overlay_is_created_by_a_server_side_dry_run() {
    let mut overlays: Vec<PathBuf> = std::fs::read_dir(repo().join("manifests/overlays"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("kustomization.yaml").is_file())
        .collect();
    overlays.sort();
    let names: Vec<String> =
        overlays.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for expected in ["replicas-3", "webhooks-only", "hrq", "no-prometheus-operator"] {
        assert!(names.iter().any(|n| n == expected), "overlay {expected} missing from {names:?}");
    }
    for overlay in &overlays {
        check_overlay(overlay).await;
    }
}

/// The bridge of a switch from upstream HNC (docs/migration.md): a part applied into an existing installation.
#[tokio::test(flavor = "multi_thread")]
async fn the_migration_bridge_is_created_by_a_server_side_dry_run() {
    check_overlay(&repo().join("manifests/migration/bridge")).await;
}

/// The check can fail: mistakes a cluster refuses are refused here too, by kubectl's schema validation or by
/// the server's.
#[tokio::test(flavor = "multi_thread")]
async fn manifest_mistakes_are_refused_as_a_cluster_refuses_them() {
    let tmp = tempfile::tempdir().unwrap();
    let Some((_sim, k)) = cluster(tmp.path()).await else { return };
    let overlay = repo().join("manifests/overlays/replicas-3");
    let docs = documents(&k.ok(&["kustomize", overlay.to_str().unwrap()]));
    k.ok(&["create", "namespace", "hnc-system"]);
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let monitor = docs.iter().find(|d| d["kind"] == "ServiceMonitor").unwrap();
    let file = tmp.path().join("broken.yaml");
    let refused = |broken: Value| {
        std::fs::write(&file, to_yaml_stream(&[&broken])).unwrap();
        let (ok, out) = k.run(&["create", "--dry-run=server", "-f", file.to_str().unwrap()]);
        assert!(!ok, "a broken manifest must be refused:\n{out}");
        out
    };

    let mut misspelt = deployment.clone();
    misspelt["spec"]["replica"] = misspelt["spec"]["replicas"].take();
    let out = refused(misspelt);
    assert!(
        out.contains("unknown field \"spec.replica\"") || out.contains("unknown field \"replica\""),
        "{out}"
    );

    let mut unmatched = deployment.clone();
    unmatched["spec"]["template"]["metadata"]["labels"]["control-plane"] = "something-else".into();
    let out = refused(unmatched);
    assert!(out.contains("`selector` does not match template `labels`"), "{out}");

    let mut bad_probe = deployment.clone();
    bad_probe["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] =
        "healthz".into();
    let out = refused(bad_probe);
    assert!(out.contains("readinessProbe.httpGet.port"), "{out}");

    let mut bad_interval = monitor.clone();
    bad_interval["spec"]["endpoints"][0]["interval"] = "30 seconds".into();
    let out = refused(bad_interval);
    assert!(out.contains("spec.endpoints[0].interval"), "{out}");
}
