//! `kubectl hns ...` through the real kubectl: kubectl finds `kubectl-hns` on PATH and passes it the rest of the
//! command line. Uses the newest versioned kubectl beside the machine's `kubectl` (`kubectl.1.33`, …), else
//! `kubectl` itself. Without kubectl the test fails, unless `HNC_ALLOW_MISSING_TOOLS=1` (see `tools`).

mod support;
#[path = "../../e2e/src/tools.rs"]
mod tools;

use std::path::{Path, PathBuf};
use std::process::Command;

use pretty_assertions::assert_eq;
use support::{BIN, Env};

fn find_kubectl() -> Option<PathBuf> {
    let kubectl = tools::kubectl()?;
    let dir = kubectl.parent()?;
    let versioned = (20..=40).rev().map(|minor| dir.join(format!("kubectl.1.{minor}"))).find(|p| p.is_file());
    Some(versioned.unwrap_or(kubectl))
}

fn kubectl(kubectl: &Path, plugin_dir: &Path, home: &Path, args: &[&str]) -> (bool, String, String) {
    let path = format!("{}:{}", plugin_dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new(kubectl)
        .args(args)
        .env("PATH", path)
        .env("HOME", home)
        .env_remove("KUBECONFIG")
        .output()
        .expect("kubectl runs");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_runs_the_plugin_from_path() {
    let Some(binary) = find_kubectl() else { return };
    let env = Env::start().await;
    let plugin_dir = env.dir.path().join("bin");
    std::fs::create_dir(&plugin_dir).unwrap();
    std::os::unix::fs::symlink(BIN, plugin_dir.join("kubectl-hns")).unwrap();

    let (ok, stdout, stderr) = kubectl(&binary, &plugin_dir, env.dir.path(), &["hns", "version"]);
    assert!(ok, "{} hns version: {stderr}", binary.display());
    assert_eq!(stdout, format!("kubectl-hns version {}\n", env!("CARGO_PKG_VERSION")));

    env.namespace("acme");
    env.hierarchy("acme", "", &["team-a"], &[]);
    env.subnamespace("team-a", "acme");
    env.hierarchy("team-a", "acme", &[], &[]);
    let kubeconfig = env.kubeconfig.to_str().unwrap();
    let (ok, stdout, stderr) =
        kubectl(&binary, &plugin_dir, env.dir.path(), &["hns", "tree", "acme", "--kubeconfig", kubeconfig]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout, "acme\n└── [s] team-a\n\n[s] indicates subnamespaces\n");

    // The plugin's exit status comes through kubectl.
    let (ok, stdout, _) =
        kubectl(&binary, &plugin_dir, env.dir.path(), &["hns", "tree", "--kubeconfig", kubeconfig]);
    assert!(!ok);
    assert_eq!(
        stdout,
        "Error: Must specify the root of the tree(s) to display or else specify --all-namespaces\n"
    );
    env.sim.shutdown().await;
}
