//! Real kubectl binaries against apisim: the oldest and newest the machine ships (`kubectl.1.27`, `kubectl.1.33`
//! beside `kubectl`), with kubectl's default client-side validation (which reads apisim's OpenAPI documents),
//! its protobuf-only generators (`kubectl create configmap ...`) and `kubectl explain`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

mod support;
use support::kubectl::Kubectl;
#[path = "../../e2e/src/tools.rs"]
mod tools;

use hnc_apisim::{ApiSim, Config};
use serde_json::json;

/// What HNC propagates, applied as a user would: no `--validate=false`.
const PROPAGATED: &str = "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: editor, namespace: team-a}
rules:
- apiGroups: [\"\"]
  resources: [configmaps]
  verbs: [get, update]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: editors, namespace: team-a}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: editor}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: Group, name: team-a-devs}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: same-team, namespace: team-a}
spec:
  podSelector: {}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: a}}
    ports:
    - {protocol: TCP, port: 8080}
    - {port: metrics}
  policyTypes: [Ingress]
---
apiVersion: hnc.x-k8s.io/v1alpha2
kind: HierarchyConfiguration
metadata: {name: hierarchy, namespace: team-a}
spec: {allowCascadingDeletion: true}
";

const UNKNOWN_FIELD: &str = "apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: misspelt, namespace: team-a}
rules:
- apiGroups: [\"\"]
  resources: [configmaps]
  verb: [get]
";

/// kubectl's typed generators and what they stored. From 1.32 on they send protobuf only (1.27 sends JSON).
fn generators(k: &Kubectl) {
    k.ok(&["create", "namespace", "team-b"]);
    k.ok(&[
        "create",
        "configmap",
        "literals",
        "-n",
        "team-b",
        "--from-literal=mode=fast",
        "--from-literal=size=3",
    ]);
    k.ok(&["create", "secret", "generic", "creds", "-n", "team-b", "--from-literal=password=hunter2"]);
    k.ok(&["create", "serviceaccount", "robot", "-n", "team-b"]);
    k.ok(&["create", "quota", "small", "-n", "team-b", "--hard=configmaps=5,requests.cpu=1500m"]);
    k.ok(&[
        "create",
        "role",
        "reader",
        "-n",
        "team-b",
        "--verb=get,list",
        "--resource=configmaps",
        "--resource-name=literals",
    ]);
    k.ok(&[
        "create",
        "rolebinding",
        "readers",
        "-n",
        "team-b",
        "--role=reader",
        "--user=alice",
        "--group=devs",
        "--serviceaccount=team-b:robot",
    ]);
    k.ok(&["create", "clusterrole", "ns-viewer", "--verb=get,list", "--resource=namespaces"]);
    k.ok(&["create", "clusterrolebinding", "ns-viewers", "--clusterrole=ns-viewer", "--group=devs"]);

    assert_eq!(k.get(&["namespace", "team-b"])["status"]["phase"], "Active");
    assert_eq!(
        k.get(&["configmap", "literals", "-n", "team-b"])["data"],
        json!({"mode": "fast", "size": "3"})
    );
    let secret = k.get(&["secret", "creds", "-n", "team-b"]);
    assert_eq!((&secret["data"], &secret["type"]), (&json!({"password": "aHVudGVyMg=="}), &json!("Opaque")));
    assert_eq!(k.get(&["serviceaccount", "robot", "-n", "team-b"])["metadata"]["namespace"], "team-b");
    assert_eq!(
        k.get(&["resourcequota", "small", "-n", "team-b"])["spec"],
        json!({"hard": {"configmaps": "5", "requests.cpu": "1500m"}})
    );
    assert_eq!(
        k.get(&["role", "reader", "-n", "team-b"])["rules"],
        json!([{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["literals"], "verbs": ["get", "list"]}])
    );
    let binding = k.get(&["rolebinding", "readers", "-n", "team-b"]);
    assert_eq!(
        binding["roleRef"],
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"})
    );
    assert_eq!(
        binding["subjects"],
        json!([
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"},
            {"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "devs"},
            {"kind": "ServiceAccount", "name": "robot", "namespace": "team-b"},
        ])
    );
    assert_eq!(
        k.get(&["clusterrole", "ns-viewer"])["rules"],
        json!([{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list"]}])
    );
    assert_eq!(
        k.get(&["clusterrolebinding", "ns-viewers"])["subjects"],
        json!([{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "devs"}])
    );
}

/// Client-side validation and `kubectl explain`, both reading apisim's OpenAPI documents.
fn openapi(k: &Kubectl, dir: &Path) {
    let propagated = dir.join("propagated.yaml");
    std::fs::write(&propagated, PROPAGATED).unwrap();
    let propagated = propagated.to_str().unwrap();
    let out = k.ok(&["apply", "-f", propagated]);
    assert!(out.contains("networkpolicy.networking.k8s.io/same-team created"), "{out}");
    assert!(out.contains("hierarchyconfiguration.hnc.x-k8s.io/hierarchy created"), "{out}");
    let policy = k.get(&["networkpolicy", "same-team", "-n", "team-a"]);
    assert_eq!(
        policy["spec"]["ingress"][0]["ports"],
        json!([{"protocol": "TCP", "port": 8080}, {"port": "metrics"}])
    );
    // Applied again with a change: a patch computed by kubectl, still validated.
    std::fs::write(dir.join("propagated.yaml"), PROPAGATED.replace("verbs: [get, update]", "verbs: [get]"))
        .unwrap();
    let out = k.ok(&["apply", "-f", propagated]);
    assert!(out.contains("role.rbac.authorization.k8s.io/editor configured"), "{out}");
    assert!(out.contains("rolebinding.rbac.authorization.k8s.io/editors unchanged"), "{out}");
    assert_eq!(k.get(&["role", "editor", "-n", "team-a"])["rules"][0]["verbs"], json!(["get"]));
    assert_eq!(
        k.get(&["hierarchyconfiguration", "hierarchy", "-n", "team-a"])["spec"]["allowCascadingDeletion"],
        true
    );

    // An unknown field is refused before anything is sent, as kubectl does for any server it validates for.
    let misspelt = dir.join("misspelt.yaml");
    std::fs::write(&misspelt, UNKNOWN_FIELD).unwrap();
    let (ok, text) = k.run(&["create", "-f", misspelt.to_str().unwrap(), "--validate=strict"]);
    assert!(!ok && text.contains(r#"unknown field "verb" in io.k8s.api.rbac.v1.PolicyRule"#), "{text}");
    let (ok, text) = k.run(&["get", "role", "misspelt", "-n", "team-a"]);
    assert!(!ok && text.contains("NotFound"), "{text}");
    let (ok, text) = k.run(&["apply", "-f", misspelt.to_str().unwrap()]);
    assert!(!ok && text.contains(r#"unknown field "verb""#), "{text}");
    // ... and a custom resource's too, from its CRD's schema.
    let bad_hierarchy = dir.join("bad-hierarchy.yaml");
    std::fs::write(
        &bad_hierarchy,
        "apiVersion: hnc.x-k8s.io/v1alpha2\nkind: HierarchyConfiguration\nmetadata: {name: hierarchy, namespace: team-a}\nspec: {parnt: x}\n",
    )
    .unwrap();
    let (ok, text) = k.run(&["apply", "-f", bad_hierarchy.to_str().unwrap()]);
    assert!(!ok && text.contains(r#"unknown field "parnt""#), "{text}");

    let out = k.ok(&["explain", "rolebinding.subjects"]);
    assert!(out.contains("KIND:       RoleBinding") && out.contains("FIELD: subjects <[]Subject>"), "{out}");
    assert!(out.contains("apiGroup") && out.contains("namespace"), "{out}");
    let out = k.ok(&["explain", "hierarchyconfiguration.spec"]);
    assert!(
        out.contains("KIND:       HierarchyConfiguration") && out.contains("allowCascadingDeletion"),
        "{out}"
    );
    let out = k.ok(&["explain", "networkpolicy.spec.ingress.ports"]);
    assert!(out.contains("endPort") && out.contains("protocol"), "{out}");
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
    let Some(binary) = tools::versioned_kubectl(version) else { return };
    let sim = ApiSim::start(Config::default()).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = tmp.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig, sim.admin_token()).unwrap();
    std::fs::write(tmp.path().join("manifest.yaml"), MANIFEST).unwrap();
    std::fs::write(tmp.path().join("crd.yaml"), CRD).unwrap();
    let k = Kubectl { binary, kubeconfig };
    let manifest = tmp.path().join("manifest.yaml");
    let manifest = manifest.to_str().unwrap();
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds");
    assert!(hnc_apisim::install_crds_from_dir(&sim, &crds).await.unwrap() > 0);

    // create, get, list with a selector, apply
    assert!(k.ok(&["create", "-f", manifest]).contains("configmap/settings created"));
    assert!(k.ok(&["get", "namespace", "team-a", "-o", "jsonpath={.status.phase}"]).contains("Active"));
    assert_eq!(k.ok(&["get", "configmaps", "-l", "app=demo", "-o", "name"]).trim(), "configmap/settings");
    assert!(k.ok(&["get", "configmaps", "-l", "app!=demo", "-o", "name"]).trim().is_empty());
    k.ok(&["apply", "-f", manifest]);

    generators(&k);
    openapi(&k, tmp.path());

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

    // watch sees a change made while it runs: the label is set once the watch has shown the existing object,
    // so the change cannot land before the watch starts however slow the machine is
    let mut watch = Command::new(&k.binary)
        .arg("--kubeconfig")
        .arg(&k.kubeconfig)
        .args([
            "get",
            "configmaps",
            "--watch",
            "--output-watch-events",
            "-o",
            "json",
            "--request-timeout=30s",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let reader = {
        let (mut stdout, seen) = (watch.stdout.take().unwrap(), seen.clone());
        std::thread::spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = stdout.read(&mut buf) {
                seen.lock().unwrap().push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        })
    };
    let shows = |what: &[&str]| {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if what.iter().all(|w| seen.lock().unwrap().contains(w)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    };
    assert!(shows(&["\"ADDED\"", "\"settings\""]), "{}", seen.lock().unwrap());
    k.ok(&["label", "configmap", "settings", "watched=yes"]);
    let modified =
        shows(&["\"MODIFIED\"", "\"watched\": \"yes\""]) || shows(&["\"MODIFIED\"", "\"watched\":\"yes\""]);
    let _ = watch.kill();
    let _ = watch.wait();
    let _ = reader.join();
    assert!(modified, "{}", seen.lock().unwrap());

    // a CRD and its custom resources, including the schema being enforced
    k.ok(&["apply", "-f", tmp.path().join("crd.yaml").to_str().unwrap()]);
    std::fs::write(tmp.path().join("w.yaml"), "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w1, namespace: team-a}\nspec: {size: 3}\n").unwrap();
    k.ok(&["create", "-f", tmp.path().join("w.yaml").to_str().unwrap()]);
    assert_eq!(k.ok(&["get", "wd", "w1", "-n", "team-a", "-o", "jsonpath={.spec.size}"]), "3");
    // The server enforces the schema too (kubectl would have caught this one itself: the server is the point).
    std::fs::write(tmp.path().join("bad.yaml"), "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w2, namespace: team-a}\nspec: {size: big}\n").unwrap();
    let (ok, text) =
        k.run(&["create", "-f", tmp.path().join("bad.yaml").to_str().unwrap(), "--validate=false"]);
    assert!(!ok && text.contains("spec.size"), "{text}");
    let (ok, text) = k.run(&["create", "-f", tmp.path().join("bad.yaml").to_str().unwrap()]);
    assert!(!ok && text.contains("ValidationError(Widget.spec.size)"), "{text}");
    // The OpenAPI documents follow CRDs as they come and go.
    assert!(k.ok(&["explain", "widget.spec"]).contains("size\t<integer>"));

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
    let (ok, text) = k.run(&["create", "-f", tmp.path().join("denied.yaml").to_str().unwrap()]);
    assert!(!ok, "{text}");
    assert!(
        text.contains(
            "admission webhook \"deny.example.com\" denied the request: forbidden-cm is not allowed here"
        ),
        "{text}"
    );

    k.ok(&["delete", "-f", tmp.path().join("crd.yaml").to_str().unwrap()]);
    let (ok, text) = k.run(&["explain", "widget.spec"]);
    assert!(!ok, "{text}");

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
