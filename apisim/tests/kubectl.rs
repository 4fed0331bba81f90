//! Real kubectl binaries against apisim: the oldest and newest the machine ships (`kubectl.1.27`, `kubectl.1.33`
//! beside `kubectl`). Limitations, all asserted elsewhere or listed in the crate docs: apisim serves no OpenAPI
//! documents, so kubectl runs with `--validate=false`; it speaks JSON only, so kubectl's protobuf-only typed
//! generators (`kubectl create configmap`) are not used.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod support;

use hnc_apisim::{ApiSim, Config};
use serde_json::json;

fn kubectl_dir() -> Option<PathBuf> {
    let which = Command::new("sh").args(["-c", "readlink -f \"$(command -v kubectl)\""]).output().ok()?;
    let path = PathBuf::from(String::from_utf8(which.stdout).ok()?.trim());
    path.parent().map(Path::to_path_buf)
}

struct Kubectl {
    binary: PathBuf,
    kubeconfig: PathBuf,
}

impl Kubectl {
    fn run(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new(&self.binary)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .env("HOME", self.kubeconfig.parent().unwrap()) // keep ~/.kube untouched
            .output()
            .unwrap();
        let text =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.success(), text)
    }

    fn ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.run(args);
        assert!(ok, "kubectl {args:?} failed:\n{text}");
        text
    }
}

const MANIFEST: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  labels: {app: demo}
data:
  mode: a
---
apiVersion: v1
kind: Namespace
metadata:
  name: team-a
";

const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, shortNames: [wd]}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              size: {type: integer}
";

async fn conformance(version: &str) {
    let Some(dir) = kubectl_dir() else {
        eprintln!("skipped: no kubectl on PATH");
        return;
    };
    let binary = dir.join(format!("kubectl.{version}"));
    if !binary.exists() {
        eprintln!("skipped: {} not found", binary.display());
        return;
    }
    let sim = ApiSim::start(Config::default()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = tmp.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig, sim.admin_token()).unwrap();
    std::fs::write(tmp.path().join("manifest.yaml"), MANIFEST).unwrap();
    std::fs::write(tmp.path().join("crd.yaml"), CRD).unwrap();
    let k = Kubectl { binary, kubeconfig };
    let manifest = tmp.path().join("manifest.yaml");
    let manifest = manifest.to_str().unwrap();

    // create, get, list with a selector, apply
    assert!(k.ok(&["create", "-f", manifest, "--validate=false"]).contains("configmap/settings created"));
    assert!(k.ok(&["get", "namespace", "team-a", "-o", "jsonpath={.status.phase}"]).contains("Active"));
    assert_eq!(k.ok(&["get", "configmaps", "-l", "app=demo", "-o", "name"]).trim(), "configmap/settings");
    assert!(k.ok(&["get", "configmaps", "-l", "app!=demo", "-o", "name"]).trim().is_empty());
    k.ok(&["apply", "-f", manifest, "--validate=false"]);

    // every patch type
    k.ok(&["patch", "configmap", "settings", "--type=merge", "-p", r#"{"data":{"mode":"b"}}"#]);
    k.ok(&["patch", "configmap", "settings", "-p", r#"{"data":{"mode":"c"}}"#]);
    k.ok(&[
        "patch",
        "configmap",
        "settings",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/data/mode","value":"d"}]"#,
    ]);
    assert_eq!(k.ok(&["get", "configmap", "settings", "-o", "jsonpath={.data.mode}"]), "d");

    // watch sees a change made while it runs
    let mut watch = Command::new(&k.binary)
        .arg("--kubeconfig")
        .arg(&k.kubeconfig)
        .args(["get", "configmaps", "--watch", "--output-watch-events", "-o", "json", "--request-timeout=4s"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await;
    k.ok(&["label", "configmap", "settings", "watched=yes"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    let events = String::from_utf8_lossy(&out.stdout);
    assert!(events.contains("\"MODIFIED\"") && events.contains("\"watched\":\"yes\""), "{events}");

    // a CRD and its custom resources, including the schema being enforced
    k.ok(&["apply", "-f", tmp.path().join("crd.yaml").to_str().unwrap(), "--validate=false"]);
    std::fs::write(tmp.path().join("w.yaml"), "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: team-a}\nspec: {size: 3}\n").unwrap();
    k.ok(&["create", "-f", tmp.path().join("w.yaml").to_str().unwrap(), "--validate=false"]);
    assert_eq!(k.ok(&["get", "wd", "w1", "-n", "team-a", "-o", "jsonpath={.spec.size}"]), "3");
    std::fs::write(tmp.path().join("bad.yaml"), "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2, namespace: team-a}\nspec: {size: big}\n").unwrap();
    let (ok, text) =
        k.run(&["create", "-f", tmp.path().join("bad.yaml").to_str().unwrap(), "--validate=false"]);
    assert!(!ok && text.contains("spec.size"), "{text}");

    // a create denied by a registered webhook shows the webhook's message
    let (url, ca) = support::webhook_server().await;
    sim.create("admissionregistration.k8s.io", "validatingwebhookconfigurations", "", json!({
        "metadata": {"name": "deny"},
        "webhooks": [{"name": "deny.example.com", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "clientConfig": {"url": format!("{url}/validate"), "caBundle": ca},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["configmaps"]}]}]
    })).unwrap();
    std::fs::write(
        tmp.path().join("denied.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: forbidden-cm}\n",
    )
    .unwrap();
    let (ok, text) =
        k.run(&["create", "-f", tmp.path().join("denied.yaml").to_str().unwrap(), "--validate=false"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains(
            "admission webhook \"deny.example.com\" denied the request: forbidden-cm is not allowed here"
        ),
        "{text}"
    );

    // deletion, including a namespace with content
    k.ok(&["delete", "-f", manifest]);
    let (ok, text) = k.run(&["get", "namespace", "team-a"]);
    assert!(!ok && text.contains("NotFound"), "{text}");
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_27() {
    conformance("1.27").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_33() {
    conformance("1.33").await;
}
