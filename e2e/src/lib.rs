//! The end-to-end harness.
//!
//! By default a test gets an in-process `apisim` (HTTPS, real admission and RBAC) with HNC's CRDs installed, and
//! starts controller replicas as child processes it can kill and restart. With `HNC_E2E_KUBECONFIG` set, the same
//! tests run against that cluster instead (where HNC is expected to be deployed already); scenarios that need to
//! kill processes are skipped there with a message.
//!
//! Every process and port a test opens is released when its [`TestEnv`] is dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod cluster;
pub mod forest;
pub mod forwarder;
pub mod tools;

use anyhow::{Context, bail};
use cluster::run_id;
use kube::Client;
use kube::config::{Config, KubeConfigOptions, Kubeconfig};

/// HNC's namespace in the test environment (the controller's default `--namespace`).
pub const HNC_NAMESPACE: &str = "hnc-system";

/// Environment variable naming a kubeconfig of a real cluster to run against.
pub const REAL_CLUSTER_ENV: &str = "HNC_E2E_KUBECONFIG";

/// A cluster for one test, with the controller replicas the test started.
pub struct TestEnv {
    /// Admin client.
    pub client: Client,
    sim: Option<hnc_apisim::ApiSim>,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
    controller_binary: PathBuf,
    replicas: Vec<Option<Replica>>,
    run_id: String,
}

impl TestEnv {
    /// apisim with HNC's CRDs (or the real cluster from `HNC_E2E_KUBECONFIG`). `controller_binary` is
    /// `env!("CARGO_BIN_EXE_hnc-e2e-controller")` in the calling test.
    pub async fn start(controller_binary: &str) -> anyhow::Result<TestEnv> {
        Self::start_with(controller_binary, true).await
    }

    /// Like [`TestEnv::start`], optionally without installing the CRDs (apisim only).
    pub async fn start_with(controller_binary: &str, install_crds: bool) -> anyhow::Result<TestEnv> {
        let dir = tempfile::tempdir()?;
        if let Ok(path) = std::env::var(REAL_CLUSTER_ENV) {
            let client = client_from(&Kubeconfig::read_from(&path)?).await?;
            return Ok(TestEnv {
                client,
                sim: None,
                kubeconfig: PathBuf::from(path),
                dir,
                controller_binary: controller_binary.into(),
                replicas: Vec::new(),
                run_id: run_id(),
            });
        }
        let sim = hnc_apisim::ApiSim::start(hnc_apisim::Config::default()).await?;
        let kubeconfig = dir.path().join("kubeconfig");
        sim.write_kubeconfig(&kubeconfig, sim.admin_token())?;
        if install_crds {
            hnc_apisim::install_crds_from_dir(&sim, &crds_dir()).await?;
        }
        // HNC's namespace, as an installation creates it: Leases and the webhook certificate live there.
        sim.create("", "namespaces", "", serde_json::json!({"metadata": {"name": HNC_NAMESPACE}}))
            .map_err(|e| anyhow::anyhow!("cannot create {HNC_NAMESPACE}: {}", e.message))?;
        let client = client_from(&Kubeconfig::from_yaml(&sim.kubeconfig_yaml(sim.admin_token()))?).await?;
        Ok(TestEnv {
            client,
            sim: Some(sim),
            kubeconfig,
            dir,
            controller_binary: controller_binary.into(),
            replicas: Vec::new(),
            run_id: run_id(),
        })
    }

    /// The simulated API server, or `None` against a real cluster.
    pub fn sim(&self) -> Option<&hnc_apisim::ApiSim> {
        self.sim.as_ref()
    }

    /// True when running against `HNC_E2E_KUBECONFIG`.
    pub fn is_real_cluster(&self) -> bool {
        self.sim.is_none()
    }

    /// Starts a controller replica (apisim only) with its own user, so apisim can attribute its writes.
    /// Returns its index. Waits until it serves `/healthz`.
    pub async fn start_replica(&mut self, id: &str, extra_args: &[&str]) -> anyhow::Result<usize> {
        let Some(sim) = &self.sim else { bail!("replicas are deployed by the cluster, not by the test") };
        let token = format!("token-{id}");
        sim.add_user(
            &token,
            &replica_user(id),
            &["system:serviceaccounts", "system:serviceaccounts:hnc-system", "system:masters"],
        );
        let kubeconfig = self.dir.path().join(format!("kubeconfig-{id}"));
        sim.write_kubeconfig(&kubeconfig, &token)?;
        let replica =
            Replica::spawn(&self.controller_binary, &kubeconfig, id, self.dir.path(), extra_args).await?;
        self.replicas.push(Some(replica));
        Ok(self.replicas.len() - 1)
    }

    /// The running replica at `index`.
    pub fn replica(&self, index: usize) -> &Replica {
        self.replicas[index].as_ref().expect("replica was stopped")
    }

    /// Kills a replica with SIGKILL (no cleanup on its side).
    pub fn kill_replica(&mut self, index: usize) {
        if let Some(mut replica) = self.replicas[index].take() {
            let _ = replica.child.kill();
            let _ = replica.child.wait();
        }
    }

    /// Suspends a replica with SIGSTOP: it keeps its connections but does nothing until resumed.
    pub fn pause_replica(&self, index: usize) -> anyhow::Result<()> {
        self.replica(index).signal("STOP")
    }

    /// Resumes a replica suspended by [`TestEnv::pause_replica`] (SIGCONT).
    pub fn resume_replica(&self, index: usize) -> anyhow::Result<()> {
        self.replica(index).signal("CONT")
    }

    /// Waits for a replica to exit by itself; its exit status, or an error after `timeout`.
    pub async fn wait_exit(
        &mut self,
        index: usize,
        timeout: Duration,
    ) -> anyhow::Result<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let replica = self.replicas[index].as_mut().context("replica already stopped")?;
            if let Some(status) = replica.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("replica {} still running after {timeout:?}:\n{}", replica.id, replica.log_text());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn stop_replica(&mut self, index: usize) -> anyhow::Result<std::process::ExitStatus> {
        let mut replica = self.replicas[index].take().context("replica already stopped")?;
        replica.terminate()
    }

    /// Writes made by replica `id` so far (apisim only).
    pub fn writes_by(&self, id: &str) -> Vec<hnc_apisim::WriteRecord> {
        let user = replica_user(id);
        self.sim
            .as_ref()
            .map(|s| s.writes().into_iter().filter(|w| w.user == user).collect())
            .unwrap_or_default()
    }

    /// Writes replica `id` made to the cluster's state (apisim only): everything but its coordination — Leases,
    /// objects in HNC's own namespace (shard assignment, webhook certificate) and the webhook configurations.
    pub fn cluster_writes_by(&self, id: &str) -> Vec<hnc_apisim::WriteRecord> {
        const PLUMBING: [&str; 3] =
            ["leases", "validatingwebhookconfigurations", "mutatingwebhookconfigurations"];
        self.writes_by(id)
            .into_iter()
            .filter(|w| !PLUMBING.contains(&w.resource.as_str()) && w.namespace != HNC_NAMESPACE)
            .collect()
    }

    /// The address replica `index` serves its webhooks on, once it has logged it.
    pub fn webhook_addr(&self, index: usize) -> Option<SocketAddr> {
        let log = std::fs::read_to_string(&self.replica(index).log).ok()?;
        log.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).find_map(|v| {
            (v["message"] == "webhook server listening").then(|| v["webhook_addr"].as_str()?.parse().ok())?
        })
    }

    /// The kubeconfig the admin client uses (for kubectl).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if self.is_real_cluster() {
            self.cleanup_real_cluster();
        }
        for replica in self.replicas.iter_mut().filter_map(Option::take) {
            drop(replica);
        }
    }
}

/// A controller process.
pub struct Replica {
    child: Child,
    /// Replica identity.
    pub id: String,
    /// Where it serves `/healthz` and `/readyz`.
    pub health: SocketAddr,
    /// Where it serves `/metrics`.
    pub metrics: SocketAddr,
    /// Its JSON log.
    pub log: PathBuf,
}

impl Replica {
    async fn spawn(
        binary: &Path,
        kubeconfig: &Path,
        id: &str,
        dir: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Replica> {
        // HNC_E2E_LOG_DIR keeps replica logs after the test (they live in the test's temporary directory
        // otherwise).
        let log = match std::env::var_os("HNC_E2E_LOG_DIR") {
            Some(keep) => {
                std::fs::create_dir_all(&keep)?;
                PathBuf::from(keep).join(format!("{id}-{}.log", std::process::id()))
            }
            None => dir.join(format!("{id}.log")),
        };
        let out = std::fs::File::create(&log)?;
        let err = out.try_clone()?;
        let child = Command::new(binary)
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args([
                "--replica-id",
                id,
                "--health-probe-bind-address=127.0.0.1:0",
                "--metrics-addr=127.0.0.1:0",
            ])
            .args(extra)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut replica = Replica {
            child,
            id: id.to_owned(),
            health: ([0, 0, 0, 0], 0).into(),
            metrics: ([0, 0, 0, 0], 0).into(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((health, metrics)) = listening_addresses(&replica.log) {
                replica.health = health;
                replica.metrics = metrics;
                return Ok(replica);
            }
            if let Some(status) = replica.child.try_wait()? {
                bail!("replica {id} exited with {status} before listening:\n{}", replica.log_text());
            }
            if Instant::now() > deadline {
                bail!("replica {id} did not start listening within 30 s:\n{}", replica.log_text());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything the replica logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GET a path on the health server; returns (status, body).
    pub async fn get_health(&self, path: &str) -> anyhow::Result<(u16, String)> {
        get(self.health, path).await
    }

    /// GET `/metrics`.
    pub async fn get_metrics(&self) -> anyhow::Result<String> {
        Ok(get(self.metrics, "/metrics").await?.1)
    }

    /// Waits until `/readyz` answers 200.
    pub async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok((200, _)) = self.get_health("/readyz").await {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("replica {} not ready within {timeout:?}:\n{}", self.id, self.log_text());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The sum over every label set of the metric `name`, or 0 when it is not reported.
    pub async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        Ok(metric_sum(&self.get_metrics().await?, name))
    }

    /// Waits until the hierarchy reconciler has reconciled at least `n` namespaces since start.
    pub async fn wait_reconciled(&self, n: u64, timeout: Duration) -> anyhow::Result<()> {
        let what = format!("{} to reconcile {n} namespaces", self.id);
        eventually(timeout, &what, || async {
            (self.metric("hnc_reconcilers_hierconfig_total").await.ok()? >= n as f64).then_some(())
        })
        .await
    }

    /// Waits until the replica's writer has nothing queued and has written nothing for a second.
    pub async fn wait_idle(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = f64::NAN;
        loop {
            let metrics = self.get_metrics().await?;
            let written = metric_sum(&metrics, "hnc_writes_total");
            if written == last && metric_sum(&metrics, "hnc_write_queue_depth") == 0.0 {
                return Ok(());
            }
            last = written;
            if Instant::now() > deadline {
                bail!("replica {} still writing after {timeout:?}", self.id);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let status =
            Command::new("kill").args([&format!("-{signal}"), &self.child.id().to_string()]).status()?;
        if !status.success() {
            bail!("kill -{signal} {} failed: {status}", self.id);
        }
        Ok(())
    }

    fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status()?;
        if !status.success() {
            bail!("kill -TERM failed: {status}");
        }
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                bail!("replica {} ignored SIGTERM for 20 s", self.id);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The API user a replica started by [`TestEnv::start_replica`] writes as.
pub fn replica_user(id: &str) -> String {
    format!("system:serviceaccount:hnc-system:{id}")
}

/// Sums the samples of metric `name` (every label set) in Prometheus text.
pub fn metric_sum(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' ')))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Parses the "ops server listening" log line.
fn listening_addresses(log: &Path) -> Option<(SocketAddr, SocketAddr)> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).find_map(|v| {
        if v.get("message")?.as_str()? != "ops server listening" {
            return None;
        }
        Some((v.get("health_addr")?.as_str()?.parse().ok()?, v.get("metrics_addr")?.as_str()?.parse().ok()?))
    })
}

async fn get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let response = reqwest::get(format!("http://{addr}{path}")).await?;
    Ok((response.status().as_u16(), response.text().await?))
}

async fn client_from(kubeconfig: &Kubeconfig) -> anyhow::Result<Client> {
    let config = Config::from_custom_kubeconfig(kubeconfig.clone(), &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// `manifests/crds` of this repository.
pub fn crds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds")
}

/// Polls `check` until it returns `Some`, or fails after `timeout` with `what`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
