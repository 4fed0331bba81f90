//! A running apisim with HNC's CRDs, a kubeconfig for it, and the real `kubectl-hns` binary run against it with
//! its environment isolated (own HOME, no KUBECONFIG), so the user's ~/.kube is never read.

#![allow(dead_code)] // each test binary uses a different part

use std::path::{Path, PathBuf};
use std::process::Output;

use hnc_apisim::{ApiSim, Config, install_crds_from_dir};
use serde_json::{Value, json};

/// The plugin binary Cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_kubectl-hns");

pub struct Env {
    pub sim: ApiSim,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
}

/// What one run printed and how it exited.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, 0, "expected success:\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        &self.stdout
    }

    /// Asserts exit status 1 and returns stdout.
    #[track_caller]
    pub fn failed(&self) -> &str {
        assert_eq!(self.code, 1, "expected failure:\nstdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        &self.stdout
    }
}

impl Env {
    pub async fn start() -> Env {
        Env::start_with_crds(|_| true).await
    }

    /// Like [`Env::start`], with only the CRD files of `manifests/crds` whose name `keep` accepts.
    pub async fn start_with_crds(keep: impl Fn(&str) -> bool) -> Env {
        let sim = ApiSim::start(Config::default()).await.expect("apisim starts");
        let dir = tempfile::tempdir().expect("temp dir");
        let crds = dir.path().join("crds");
        std::fs::create_dir(&crds).expect("CRD dir");
        let all = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds");
        for file in std::fs::read_dir(&all).expect("manifests/crds").map(|e| e.expect("entry").path()) {
            let name = file.file_name().and_then(|n| n.to_str()).expect("utf-8 name").to_owned();
            if keep(&name) {
                std::fs::copy(&file, crds.join(&name)).expect("CRD copied");
            }
        }
        install_crds_from_dir(&sim, &crds).await.expect("CRDs install");
        let kubeconfig = dir.path().join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig, sim.admin_token()).expect("kubeconfig written");
        Env { sim, dir, kubeconfig }
    }

    /// Runs `kubectl-hns --kubeconfig <admin kubeconfig> ARGS`.
    pub async fn hns(&self, args: &[&str]) -> Run {
        self.hns_with(&self.kubeconfig, args).await
    }

    /// Runs `kubectl-hns --kubeconfig KUBECONFIG ARGS`.
    pub async fn hns_with(&self, kubeconfig: &Path, args: &[&str]) -> Run {
        let mut all = vec!["--kubeconfig", kubeconfig.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        self.hns_raw(&all).await
    }

    /// Runs `kubectl-hns ARGS` with no kubeconfig flag.
    pub async fn hns_raw(&self, args: &[&str]) -> Run {
        let out = tokio::process::Command::new(BIN)
            .args(args)
            .env_remove("KUBECONFIG")
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env("HOME", self.dir.path())
            .output()
            .await
            .expect("kubectl-hns runs");
        Run::from(out)
    }

    /// A kubeconfig for a user with `token` whose context namespace is `namespace`.
    pub fn kubeconfig_for(&self, file: &str, token: &str, namespace: &str) -> PathBuf {
        let path = self.dir.path().join(file);
        let yaml =
            self.sim.kubeconfig_yaml(token).replace("namespace: default", &format!("namespace: {namespace}"));
        std::fs::write(&path, yaml).expect("kubeconfig written");
        path
    }

    /// A kube client as the admin, to check what the plugin wrote.
    pub async fn client(&self) -> kube::Client {
        let kubeconfig = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig reads");
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await.expect("config");
        kube::Client::try_from(config).expect("client")
    }

    pub fn namespace(&self, name: &str) {
        self.create("", "namespaces", "", json!({"metadata": {"name": name}}));
    }

    /// A namespace annotated as a subnamespace of `parent`.
    pub fn subnamespace(&self, name: &str, parent: &str) {
        self.create(
            "",
            "namespaces",
            "",
            json!({"metadata": {"name": name, "annotations": {"hnc.x-k8s.io/subnamespace-of": parent}}}),
        );
    }

    /// A HierarchyConfiguration with the status a controller would have written.
    pub fn hierarchy(&self, ns: &str, parent: &str, children: &[&str], conditions: &[(&str, &str, &str)]) {
        let conditions: Vec<Value> = conditions
            .iter()
            .map(|(t, r, m)| {
                json!({"type": t, "status": "True", "reason": r, "message": m,
                       "lastTransitionTime": "2025-01-01T00:00:00Z"})
            })
            .collect();
        let mut spec = json!({});
        if !parent.is_empty() {
            spec["parent"] = json!(parent);
        }
        self.create(
            "hnc.x-k8s.io",
            "hierarchyconfigurations",
            ns,
            json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HierarchyConfiguration",
                   "metadata": {"name": "hierarchy", "namespace": ns},
                   "spec": spec, "status": {"children": children, "conditions": conditions}}),
        );
    }

    /// A namespace with the tree labels HNC gives it: depth 0 for itself, then 1, 2, ... for `ancestors`
    /// (parent first).
    pub fn labelled_namespace(&self, name: &str, ancestors: &[&str]) {
        let mut labels = serde_json::Map::new();
        for (depth, ns) in std::iter::once(name).chain(ancestors.iter().copied()).enumerate() {
            labels.insert(format!("{ns}.tree.hnc.x-k8s.io/depth"), json!(depth.to_string()));
        }
        self.create("", "namespaces", "", json!({"metadata": {"name": name, "labels": labels}}));
    }

    /// A HierarchicalResourceQuota `ns/name` with `hard`, and the status a controller would have written when
    /// `used` is given.
    pub fn hrq(&self, ns: &str, name: &str, hard: Value, used: Option<Value>) {
        let mut hrq = json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HierarchicalResourceQuota",
                             "metadata": {"name": name, "namespace": ns}, "spec": {"hard": hard}});
        if let Some(used) = used {
            hrq["status"] = json!({"hard": hard, "used": used});
        }
        self.create("hnc.x-k8s.io", "hierarchicalresourcequotas", ns, hrq);
    }

    /// A SubnamespaceAnchor `ns/name`, with `state` as its status if not empty.
    pub fn anchor(&self, ns: &str, name: &str, state: &str) {
        let mut anchor = json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "SubnamespaceAnchor",
                                "metadata": {"name": name, "namespace": ns}});
        if !state.is_empty() {
            anchor["status"] = json!({"status": state});
        }
        self.create("hnc.x-k8s.io", "subnamespaceanchors", ns, anchor);
    }

    #[track_caller]
    pub fn create(&self, group: &str, plural: &str, ns: &str, obj: Value) -> Value {
        match self.sim.create(group, plural, ns, obj) {
            Ok(created) => created,
            Err(e) => panic!("creating {plural} in {ns:?}: {}", e.message),
        }
    }
}
