//! The binary's lifecycle against apisim with HNC's CRDs: it syncs the hierarchy, becomes ready, serves health and
//! metrics, and exits 0 on SIGTERM and SIGINT.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hnc_apisim::{ApiSim, Config};

/// apisim with HNC's CRDs and namespace, and an admin kubeconfig for it in `dir`.
async fn cluster(dir: &std::path::Path) -> (ApiSim, std::path::PathBuf) {
    let sim = ApiSim::start(Config::default()).await.unwrap();
    support::install_hnc_crds(&sim);
    sim.create("", "namespaces", "", serde_json::json!({"metadata": {"name": "hnc-system"}})).unwrap();
    let path = dir.join("kubeconfig");
    sim.write_kubeconfig(&path, sim.admin_token()).unwrap();
    (sim, path)
}

struct Running {
    child: Child,
    health: String,
    metrics: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the controller and reads the ops addresses from its JSON log.
fn start(kubeconfig: &std::path::Path, separate_ports: bool) -> Running {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hnc-controller"));
    // Webhooks need a certificate Secret these tests do not provide; they are tested in e2e/tests/webhooks.rs.
    cmd.arg("--kubeconfig")
        .arg(kubeconfig)
        .arg("--no-webhooks")
        .env_remove("KUBECONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    if separate_ports {
        cmd.args(["--metrics-addr=127.0.0.1:0", "--health-probe-bind-address=127.0.0.1:0"]);
    } else {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        cmd.arg(format!("--metrics-addr=127.0.0.1:{port}"))
            .arg(format!("--health-probe-bind-address=127.0.0.1:{port}"));
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let (health, metrics) = loop {
        let line = lines.next().expect("controller exited before listening").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        if v["message"] == "ops server listening" {
            break (
                v["health_addr"].as_str().unwrap().to_owned(),
                v["metrics_addr"].as_str().unwrap().to_owned(),
            );
        }
    };
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Running { child, health, metrics }
}

async fn wait_ready(health: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(resp) = reqwest::get(format!("http://{health}/readyz")).await
            && resp.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "not ready within 20 s");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Blocks this thread until the controller exits: the tests run on a multi-threaded runtime so that apisim keeps
/// answering meanwhile (a controller shutting down releases its Leases, and waits for answers).
fn signal_and_wait(child: &mut Child, signal: &str) -> std::process::ExitStatus {
    assert!(Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap().success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "controller ignored {signal}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_serves_health_and_metrics_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, kubeconfig) = cluster(dir.path()).await;
    let mut running = start(&kubeconfig, true);
    assert_ne!(running.health, running.metrics);
    wait_ready(&running.health).await;

    let healthz = reqwest::get(format!("http://{}/healthz", running.health)).await.unwrap();
    assert_eq!((healthz.status().as_u16(), healthz.text().await.unwrap()), (200, "ok".to_owned()));
    let metrics =
        reqwest::get(format!("http://{}/metrics", running.metrics)).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("hnc_build_info{version=\""), "{metrics}");
    assert!(metrics.contains("hnc_ready 1"), "{metrics}");
    let wrong_port = reqwest::get(format!("http://{}/metrics", running.health)).await.unwrap();
    assert_eq!(wrong_port.status(), 404, "metrics are served on their own port");
    process_and_runtime_metrics_are_plausible(&running.metrics).await;

    let status = signal_and_wait(&mut running.child, "-TERM");
    assert!(status.success(), "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_port_serves_everything_and_sigint_stops() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, kubeconfig) = cluster(dir.path()).await;
    let mut running = start(&kubeconfig, false);
    assert_eq!(running.health, running.metrics);
    wait_ready(&running.health).await;
    let metrics = reqwest::get(format!("http://{}/metrics", running.health)).await.unwrap();
    assert_eq!(metrics.status(), 200);
    let status = signal_and_wait(&mut running.child, "-INT");
    assert!(status.success(), "{status}");
}

/// The value of the unlabelled sample `name` in Prometheus text.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
}

/// `process_*` (read at each scrape) and the async runtime's health, with values a running controller has.
async fn process_and_runtime_metrics_are_plausible(metrics: &str) {
    // The lag probe records every 250 ms: wait for a few of its samples.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let text = reqwest::get(format!("http://{metrics}/metrics")).await.unwrap().text().await.unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let started = sample(&text, "process_start_time_seconds");
    assert!(started <= now + 1.0 && now - started < 3600.0, "started at {started}, now {now}");
    assert!(sample(&text, "process_resident_memory_bytes") > 1024.0 * 1024.0, "{text}");
    assert!(sample(&text, "process_virtual_memory_bytes") >= sample(&text, "process_resident_memory_bytes"));
    assert!(sample(&text, "process_cpu_seconds_total") > 0.0, "{text}");
    let (open, max) = (sample(&text, "process_open_fds"), sample(&text, "process_max_fds"));
    assert!(open >= 3.0 && (max == 0.0 || open <= max), "{open} of {max} file descriptors");
    assert!(sample(&text, "process_threads") >= sample(&text, "hnc_runtime_workers"));
    assert!(sample(&text, "hnc_runtime_workers") >= 1.0, "{text}");
    assert!(sample(&text, "hnc_runtime_alive_tasks") >= 1.0, "{text}");
    sample(&text, "hnc_runtime_global_queue_depth");
    assert!(sample(&text, "hnc_runtime_event_loop_lag_seconds_count") >= 2.0, "{text}");
    for described in
        ["process_resident_memory_bytes", "hnc_runtime_event_loop_lag_seconds", "hnc_runtime_workers"]
    {
        assert!(text.contains(&format!("# HELP {described} ")), "{described} has no description");
    }
}
