//! CPU time and peak memory of processes and of named thread groups, from `/proc` — CPU seconds, not wall
//! time: on a 2-core machine wall time says little about what a process costs.

use std::path::Path;
use std::sync::OnceLock;

use serde::Serialize;

/// CPU seconds (user + system) and peak resident memory of one process, or a group of threads.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq)]
pub struct Usage {
    pub cpu_s: f64,
    /// `VmHWM`, MiB (None for thread groups: memory is per process).
    pub peak_rss_mib: Option<f64>,
}

fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// (comm, utime + stime in seconds) from a `stat` file.
fn read_stat(path: &Path) -> Option<(String, f64)> {
    let text = std::fs::read_to_string(path).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_owned();
    let fields: Vec<&str> = text[close + 2..].split_whitespace().collect();
    // Fields 14 and 15 of stat; `fields` starts at field 3.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((comm, (utime + stime) / clock_ticks()))
}

/// Usage of process `pid`, or None once it has exited.
pub fn process(pid: u32) -> Option<Usage> {
    let (_, cpu_s) = read_stat(Path::new(&format!("/proc/{pid}/stat")))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    Some(Usage { cpu_s, peak_rss_mib: Some(kib / 1024.0) })
}

/// CPU seconds of this process's threads whose name starts with `prefix` (live threads only).
pub fn threads(prefix: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else { return 0.0 };
    dir.filter_map(Result::ok)
        .filter_map(|e| read_stat(&e.path().join("stat")))
        .filter(|(comm, _)| comm.starts_with(prefix))
        .map(|(_, cpu)| cpu)
        .sum()
}

/// Usage of this whole process.
pub fn this_process() -> Usage {
    process(std::process::id()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_used_some_memory_and_reports_its_threads() {
        let u = this_process();
        assert!(u.peak_rss_mib.unwrap() > 1.0);
        let busy = std::thread::Builder::new()
            .name("lt-probe".into())
            .spawn(|| {
                let start = std::time::Instant::now();
                let mut x = 0u64;
                while start.elapsed().as_millis() < 300 {
                    x = x.wrapping_mul(31).wrapping_add(1);
                }
                std::hint::black_box(x);
                threads("lt-probe")
            })
            .unwrap();
        let cpu = busy.join().unwrap();
        assert!(cpu > 0.1, "a thread spinning for 300 ms used {cpu} CPU-s");
    }
}
