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
