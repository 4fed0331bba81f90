//! What the harness's end-to-end tests share.

/// The harness binary under test.
pub const HARNESS: &str = env!("CARGO_BIN_EXE_hnc-loadtest");
/// The controller binary the harness starts.
pub const CONTROLLER: &str = env!("CARGO_BIN_EXE_hnc-loadtest-controller");

/// Command lines of controller processes started from [`CONTROLLER`] that are still running.
pub fn controllers_running() -> Vec<String> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.starts_with(CONTROLLER))
        .collect()
}

/// Controller flags for the fault smoke runs: Leases short enough for a handover to fit in a test.
#[allow(dead_code)] // every test binary compiles this module; the harness smoke run starts no handover
pub const SHORT_LEASE_ARGS: [&str; 4] = [
    "--controller-arg=--lease-duration=3s",
    "--controller-arg=--renew-deadline=2s",
    "--controller-arg=--retry-period=500ms",
    "--controller-arg=--shards=8",
];

/// Runs the harness with `args` (then `--no-progress`, the controller under test and `--out out`), checks that it
/// succeeded and that no controller outlived it, and returns its `result.json`.
pub fn run_harness(args: &[&str], out: &std::path::Path) -> serde_json::Value {
    let status = std::process::Command::new(HARNESS)
        .args(args)
        .args(["--no-progress", "--controller-binary", CONTROLLER, "--out"])
        .arg(out)
        .status()
        .unwrap();
    assert!(status.success(), "the harness failed: {status}");
    assert!(
        controllers_running().is_empty(),
        "controller processes outlived the run: {:?}",
        controllers_running()
    );
    serde_json::from_slice(&std::fs::read(out.join("result.json")).unwrap()).unwrap()
}
