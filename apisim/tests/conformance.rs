//! apisim answers as kube-apiserver does: plays `conformance/kube-transcript.py` (a fixed script of 64 API
//! requests) against apisim and compares every answer with `conformance/kube-apiserver-v1.32.jsonl`, the same
//! script recorded against a real kube-apiserver v1.32 with etcd and this project's CRDs. Any difference fails,
//! except the few listed with their reasons in `conformance/differences.json`.
//!
//! The recorded server ran without kube-controller-manager (a deleted namespace stays `Terminating` and keeps
//! its content), so apisim runs here without its namespace controller.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

#[path = "../../e2e/src/tools.rs"]
mod tools;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

/// Rewrites both records of a step as one entry of `differences.json` says.
fn allow(records: &mut [Value], entry: &Value) {
    let step = entry["step"].as_str().expect("step");
    let path = entry["path"].as_str().expect("path");
    for record in records.iter_mut().filter(|r| r["id"] == step) {
        let Some(target) = record.pointer_mut(path) else { continue };
        if let Some([pattern, with]) = entry["replace"].as_array().map(Vec::as_slice) {
            let re = regex::Regex::new(pattern.as_str().expect("pattern")).expect("valid regex");
            if let Some(s) = target.as_str() {
                *target = Value::String(re.replace_all(s, with.as_str().expect("replacement")).into_owned());
            }
        }
        if let (Some(key), Some(list)) = (entry["sort_by"].as_str(), target.as_array_mut()) {
            list.sort_by(|a, b| a[key].as_str().cmp(&b[key].as_str()));
        }
    }
}

fn read_records(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("a JSON record per line"))
        .collect()
}

fn write_records(path: &Path, records: &[Value]) {
    let text: String = records.iter().map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).expect("write records");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apisim_answers_the_recorded_script_as_kube_apiserver_did() {
    let Some(python3) = tools::python3() else { return };
    let sim =
        hnc_apisim::ApiSim::start(hnc_apisim::Config { namespace_controller: false, ..Default::default() })
            .await
            .expect("apisim starts");
    let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds");
    hnc_apisim::install_crds_from_dir(&sim, &crds).await.expect("CRDs install");

    let out = tempfile::tempdir().expect("temp dir");
    let played = out.path().join("apisim.jsonl");
    let (server, token) = (sim.https_url(), sim.admin_token().to_owned());
    let script = dir().join("kube-transcript.py");
    let run = {
        let played = played.clone();
        let python3 = python3.clone();
        tokio::task::spawn_blocking(move || {
            Command::new(python3)
                .arg(&script)
                .args(["--server", &server, "--token", &token, "--out"])
                .arg(&played)
                .output()
                .expect("python3 runs")
        })
        .await
        .expect("the script finishes")
    };
    assert!(run.status.success(), "the script failed: {}", String::from_utf8_lossy(&run.stderr));

    let differences: Value = serde_json::from_str(
        &std::fs::read_to_string(dir().join("differences.json")).expect("differences.json"),
    )
    .expect("differences.json is JSON");
    let mut expected = read_records(&dir().join("kube-apiserver-v1.32.jsonl"));
    let mut actual = read_records(&played);
    for entry in differences["differences"].as_array().expect("a list of differences") {
        allow(&mut expected, entry);
        allow(&mut actual, entry);
    }
    let (expected_path, actual_path) = (out.path().join("expected.jsonl"), out.path().join("actual.jsonl"));
    write_records(&expected_path, &expected);
    write_records(&actual_path, &actual);
    let compare = Command::new(&python3)
        .arg(dir().join("kube-transcript.py"))
        .arg("--compare")
        .args([&expected_path, &actual_path])
        .output()
        .expect("python3 runs");
    assert!(
        compare.status.success(),
        "apisim differs from kube-apiserver:\n{}",
        String::from_utf8_lossy(&compare.stdout)
    );
    sim.shutdown().await;
}

#[test]
fn every_listed_difference_names_a_recorded_step_and_path() {
    let differences: Value =
        serde_json::from_str(&std::fs::read_to_string(dir().join("differences.json")).unwrap()).unwrap();
    let recorded = read_records(&dir().join("kube-apiserver-v1.32.jsonl"));
    for entry in differences["differences"].as_array().unwrap() {
        let step = entry["step"].as_str().unwrap();
        let record = recorded.iter().find(|r| r["id"] == step).unwrap_or_else(|| panic!("no step {step}"));
        assert!(record.pointer(entry["path"].as_str().unwrap()).is_some(), "{entry}: no such path");
        assert!(entry["why"].as_str().is_some_and(|w| w.len() > 20), "{entry}: say why");
    }
}
