//! A TCP forwarder on loopback standing for a Service in front of several webhook servers: a URL-based
//! webhook registration names one address, the forwarder's, and the forwarder's backends are the replicas.
//! Connections go to the backends in turn (as kube-proxy spreads them); a backend that refuses a connection
//! is skipped for the next. A test changes the backends as a Service's endpoints change: a replica is added
//! once it is ready and removed before it stops.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};

/// The forwarder; it stops when dropped.
pub struct Forwarder {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where it forwards to.
    pub backends: Arc<Mutex<Vec<SocketAddr>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Forwarder {
    /// Listens on a free loopback port, with no backend yet.
    pub async fn start() -> anyhow::Result<Forwarder> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let backends: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
        let shared = backends.clone();
        let next = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let mut candidates = shared.lock().expect("not poisoned").clone();
                if !candidates.is_empty() {
                    let first = next.fetch_add(1, Ordering::Relaxed) % candidates.len();
                    candidates.rotate_left(first);
                }
                tokio::spawn(async move {
                    for backend in candidates {
                        if let Ok(mut outbound) = TcpStream::connect(backend).await {
                            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                            return;
                        }
                    }
                });
            }
        });
        Ok(Forwarder { addr, backends, task })
    }

    /// Replaces the backends.
    pub fn set_backends(&self, backends: Vec<SocketAddr>) {
        *self.backends.lock().expect("not poisoned") = backends;
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        self.task.abort();
    }
}
