//! Controller replicas under test: child processes the harness starts (each with its own kubeconfig, and against
//! apisim its own user, so its writes can be attributed), or replicas already running that the harness only
//! reads `/metrics` from. Processes are stopped with SIGTERM (SIGKILL after 20 s) and killed on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::procstat::{self, Usage};
use crate::prom;

/// How a replica is reached.
#[derive(Debug)]
pub struct Replica {
    pub id: String,
    /// The process, when the harness started it.
    child: Option<Child>,
    pub pid: Option<u32>,
    pub health: Option<SocketAddr>,
    pub metrics_url: String,
    pub log: Option<PathBuf>,
    /// Last usage read while it ran (kept after it exits).
    pub usage: Usage,
    pub ready_after: Option<Duration>,
}

/// The user apisim attributes a replica's requests to.
pub fn user_of(id: &str) -> String {
    format!("system:serviceaccount:hnc-system:{id}")
}

/// What it takes to start a replica.
#[derive(Debug, Clone)]
pub struct Launch {
    pub binary: PathBuf,
    pub qps: f64,
    pub extra_args: Vec<String>,
    /// Namespaces the controllers must leave alone (the API server's own).
    pub excluded: Vec<String>,
    /// Serve admission webhooks behind the harness's forwarder (otherwise `--no-webhooks`).
    pub webhooks: Option<crate::webhooks::WebhookEndpoints>,
}

/// glibc's limit on malloc arenas, and the value the Deployment sets (see docs/scaling.md §Where the memory goes).
const MALLOC_ARENA_MAX: &str = "MALLOC_ARENA_MAX";
const DEPLOYMENT_MALLOC_ARENA_MAX: &str = "2";

impl Replica {
    /// Starts a controller process with `kubeconfig`; returns once it logged its listening addresses.
    pub async fn spawn(launch: &Launch, kubeconfig: &Path, id: &str, dir: &Path) -> anyhow::Result<Replica> {
        let log = dir.join(format!("{id}.log"));
        let out = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out.try_clone()?;
        let mut cmd = Command::new(&launch.binary);
        cmd.arg("--kubeconfig")
            .arg(kubeconfig)
            .args([
                "--replica-id",
                id,
                "--health-probe-bind-address=127.0.0.1:0",
                "--metrics-addr=127.0.0.1:0",
            ])
            .arg(format!("--apiserver-qps-throttle={}", launch.qps));
        match &launch.webhooks {
            Some(endpoints) => cmd.args(endpoints.args(id)?),
            None => cmd.arg("--no-webhooks"),
        };
        for ns in &launch.excluded {
            cmd.arg(format!("--excluded-namespace={ns}"));
        }
        // The allocator setting the Deployment gives every replica (manifests/deploy/20-deployment.yaml), unless
        // the harness's own environment says otherwise.
        if std::env::var_os(MALLOC_ARENA_MAX).is_none() {
            cmd.env(MALLOC_ARENA_MAX, DEPLOYMENT_MALLOC_ARENA_MAX);
        }
        let child = cmd
            .args(&launch.extra_args)
            .env_remove("KUBECONFIG")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start controller {}", launch.binary.display()))?;
        let pid = child.id();
        let mut replica = Replica {
            id: id.to_owned(),
            child: Some(child),
            pid: Some(pid),
            health: None,
            metrics_url: String::new(),
            log: Some(log.clone()),
            usage: Usage::default(),
            ready_after: None,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some((health, metrics)) = listening_addresses(&log) {
                replica.health = Some(health);
                replica.metrics_url = format!("http://{metrics}/metrics");
                return Ok(replica);
            }
            if let Some(status) = replica.child.as_mut().and_then(|c| c.try_wait().ok().flatten()) {
                bail!("controller {id} exited with {status} before listening:\n{}", tail(&log));
            }
            if Instant::now() > deadline {
                bail!("controller {id} did not start listening within 60 s:\n{}", tail(&log));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// A replica already running elsewhere, known by its metrics URL.
    pub fn external(index: usize, metrics_url: &str) -> Replica {
        Replica {
            id: format!("external-{index}"),
            child: None,
            pid: None,
            health: None,
            metrics_url: metrics_url.to_owned(),
            log: None,
            usage: Usage::default(),
            ready_after: None,
        }
    }

    /// Refreshes [`Replica::usage`] from /proc while the process runs; fails if it exited.
    pub fn sample(&mut self) -> anyhow::Result<()> {
        let Some(child) = self.child.as_mut() else { return Ok(()) };
        if let Some(status) = child.try_wait()? {
            bail!(
                "controller {} exited with {status}:\n{}",
                self.id,
                self.log.as_deref().map(tail).unwrap_or_default()
            );
        }
        if let Some(u) = self.pid.and_then(procstat::process) {
            self.usage = u;
        }
        Ok(())
    }

    /// True once `/readyz` answers 200 (always true for external replicas).
    pub async fn is_ready(&self, http: &reqwest::Client) -> bool {
        let Some(health) = self.health else { return true };
        matches!(http.get(format!("http://{health}/readyz")).send().await, Ok(r) if r.status().is_success())
    }

    /// The replica's metrics.
    pub async fn metrics(&self, http: &reqwest::Client) -> anyhow::Result<Vec<prom::Sample>> {
        Ok(prom::parse(&self.metrics_text(http).await?))
    }

    /// The replica's `/metrics` text.
    pub async fn metrics_text(&self, http: &reqwest::Client) -> anyhow::Result<String> {
        let text = http
            .get(&self.metrics_url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .with_context(|| format!("cannot read {}", self.metrics_url))?
            .text()
            .await?;
        Ok(text)
    }

    /// SIGTERM, then waits (SIGKILL after 20 s). Usage is sampled right before.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        let _ = self.sample_quietly();
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("controller {} ignored SIGTERM for 20 s", self.id);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL, as a crashed node would: no shard release, no lease hand-back. Usage is sampled right before.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else { bail!("replica {} was not started here", self.id) };
        let _ = self.sample_quietly();
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    /// Sends `signal` (`STOP`, `CONT`, `TERM`, ...) to the process without waiting for it.
    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let Some(pid) = self.pid.filter(|_| self.child.is_some()) else {
            bail!("replica {} was not started here", self.id)
        };
        let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status()?;
        anyhow::ensure!(status.success(), "kill -{signal} {pid} failed: {status}");
        Ok(())
    }

    /// How the process ended, if it did on its own (it is then reaped and forgotten).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.child.as_mut()?.try_wait().ok()??;
        self.child = None;
        Some(status)
    }

    fn sample_quietly(&mut self) -> Option<()> {
        self.usage = procstat::process(self.pid?)?;
        Some(())
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The last lines of a log, for error messages.
fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Parses the controller's "ops server listening" log line.
fn listening_addresses(log: &Path) -> Option<(SocketAddr, SocketAddr)> {
    let text = std::fs::read_to_string(log).ok()?;
    text.lines().filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok()).find_map(|v| {
        if v.get("message")?.as_str()? != "ops server listening" {
            return None;
        }
        Some((v.get("health_addr")?.as_str()?.parse().ok()?, v.get("metrics_addr")?.as_str()?.parse().ok()?))
    })
}
