//! Admission webhooks for the replicas the harness starts, as a Deployment has them: every replica serves them,
//! and the API server reaches them through one address in front of all replicas — the webhook Service there, a
//! TCP forwarder here. Each replica serves on a port of its own, chosen the first time it starts and kept for
//! the session, so a replica started again comes back where the forwarder looks for it. The replicas register
//! the forwarder's URL and manage the serving certificate themselves (the leader issues it).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// How long the forwarder tries one replica before the next: a killed replica refuses at once, a stopped one
/// (SIGSTOP) accepts in the kernel and then never answers, which only the API server's webhook timeout ends.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// The forwarder and the replicas' ports. Dropping it stops the forwarder.
#[derive(Debug)]
pub struct WebhookFront {
    endpoints: WebhookEndpoints,
    task: JoinHandle<()>,
}

/// What a replica needs to serve webhooks behind the forwarder; cheap to clone (shared).
#[derive(Debug, Clone)]
pub struct WebhookEndpoints {
    front: SocketAddr,
    ports: Arc<Mutex<HashMap<String, u16>>>,
}

impl WebhookFront {
    /// Starts the forwarder on 127.0.0.1.
    pub async fn start() -> anyhow::Result<WebhookFront> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let endpoints =
            WebhookEndpoints { front: listener.local_addr()?, ports: Arc::new(Mutex::new(HashMap::new())) };
        let ports = endpoints.ports.clone();
        let next = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let mut backends: Vec<u16> = ports.lock().values().copied().collect();
                backends.sort_unstable();
                let first = next.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(forward(inbound, backends, first));
            }
        });
        Ok(WebhookFront { endpoints, task })
    }

    /// The replicas' view of it.
    pub fn endpoints(&self) -> WebhookEndpoints {
        self.endpoints.clone()
    }
}

impl Drop for WebhookFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl WebhookEndpoints {
    /// The controller flags for replica `id`: serve webhooks on its port, register the forwarder's URL, keep
    /// the certificate current.
    pub fn args(&self, id: &str) -> anyhow::Result<Vec<String>> {
        let port = self.port(id)?;
        Ok(vec![
            format!("--webhook-url-base=https://{}", self.front),
            format!("--webhook-server-port={port}"),
            "--enable-internal-cert-management".to_owned(),
        ])
    }

    /// Replica `id`'s port: a free one the first time, the same one after.
    fn port(&self, id: &str) -> anyhow::Result<u16> {
        let mut ports = self.ports.lock();
        if let Some(port) = ports.get(id) {
            return Ok(*port);
        }
        let port = std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port();
        ports.insert(id.to_owned(), port);
        Ok(port)
    }
}

/// Connects `inbound` to the first replica that accepts, trying them round-robin from `first`.
async fn forward(mut inbound: TcpStream, backends: Vec<u16>, first: usize) {
    for k in 0..backends.len() {
        let port = backends[(first + k) % backends.len()];
        let connect = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(("127.0.0.1", port)));
        if let Ok(Ok(mut outbound)) = connect.await {
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            return;
        }
    }
}
