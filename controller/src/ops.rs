//! The plain-HTTP operations server: `/healthz` (liveness), `/readyz` (readiness gates), `/metrics`
//! (Prometheus text; the process's and runtime's figures are read at each scrape: `process_metrics.rs`). Served apart from the webhook port so probes and scrapes never compete with admission.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::process_metrics::ProcessMetrics;

/// Named readiness gates. The replica is ready when every registered gate is open.
#[derive(Clone, Default)]
pub struct Readiness {
    gates: Arc<Mutex<BTreeMap<&'static str, bool>>>,
}

impl Readiness {
    /// Registers `gate`, closed.
    pub fn register(&self, gate: &'static str) {
        self.gates.lock().entry(gate).or_insert(false);
        self.publish();
    }

    /// Opens or closes `gate` (registering it if needed).
    pub fn set(&self, gate: &'static str, open: bool) {
        self.gates.lock().insert(gate, open);
        self.publish();
    }

    /// Registers `gate`, closed, and returns the task that opens it once `synced` turns true (it never opens if
    /// the sender is dropped first).
    pub fn open_when(
        &self,
        gate: &'static str,
        mut synced: tokio::sync::watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.register(gate);
        let gates = self.clone();
        async move {
            if synced.wait_for(|s| *s).await.is_ok() {
                gates.set(gate, true);
            }
        }
    }

    /// The gates still closed; empty when ready.
    pub fn pending(&self) -> Vec<&'static str> {
        self.gates.lock().iter().filter(|(_, open)| !**open).map(|(g, _)| *g).collect()
    }

    fn publish(&self) {
        metrics::gauge!("hnc_ready").set(if self.pending().is_empty() { 1.0 } else { 0.0 });
    }
}

/// Produces the JSON of a `/debug/...` page from the request's query parameters.
pub type DebugPage = Arc<dyn Fn(&BTreeMap<String, String>) -> serde_json::Value + Send + Sync>;

/// Renders metric families in the Prometheus text format at scrape time, for values that are a function of
/// state the replica holds anyway (and whose series must disappear with it, which recorded gauges cannot).
pub type ScrapeMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// Diagnostic pages, and metrics computed at scrape time, registered once the parts that know them are running
/// (a page is 404 until then).
#[derive(Clone, Default)]
pub struct DebugPages {
    pages: Arc<Mutex<BTreeMap<&'static str, DebugPage>>>,
    metrics: Arc<Mutex<BTreeMap<&'static str, ScrapeMetrics>>>,
}

impl DebugPages {
    /// Serves `page` at `/debug/<name>`.
    pub fn register(&self, name: &'static str, page: DebugPage) {
        self.pages.lock().insert(name, page);
    }

    fn get(&self, name: &str) -> Option<DebugPage> {
        self.pages.lock().get(name).cloned()
    }

    /// Appends what `render` produces to every `/metrics` answer.
    pub fn register_metrics(&self, name: &'static str, render: ScrapeMetrics) {
        self.metrics.lock().insert(name, render);
    }

    fn scrape(&self) -> String {
        let sources: Vec<ScrapeMetrics> = self.metrics.lock().values().cloned().collect();
        sources.iter().map(|render| render()).collect()
    }
}

#[derive(Clone)]
struct OpsState {
    metrics: PrometheusHandle,
    process: ProcessMetrics,
    ready: Readiness,
    debug: DebugPages,
}

/// The running ops server(s).
pub struct OpsServer {
    /// Where `/healthz` and `/readyz` are served.
    pub health_addr: SocketAddr,
    /// Where `/metrics` is served.
    pub metrics_addr: SocketAddr,
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl OpsServer {
    /// Binds the health and metrics addresses (one listener when they are equal) and starts serving.
    pub async fn start(
        health: SocketAddr,
        metrics: SocketAddr,
        handle: PrometheusHandle,
        ready: Readiness,
        debug: DebugPages,
    ) -> anyhow::Result<OpsServer> {
        let state = OpsState { metrics: handle, process: ProcessMetrics::new(), ready, debug };
        let stop = CancellationToken::new();
        let routes = |with_health: bool, with_metrics: bool| {
            let mut router = Router::new();
            if with_health {
                router = router
                    .route("/healthz", get(healthz))
                    .route("/readyz", get(readyz))
                    .route("/debug/{page}", get(debug_page));
            }
            if with_metrics {
                router = router.route("/metrics", get(render_metrics));
            }
            router.with_state(state.clone())
        };
        let bind = |addr: SocketAddr| async move {
            TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))
        };
        let mut tasks = Vec::new();
        // Equal addresses share one listener; port 0 ("any free port") asked twice means two listeners.
        let (health_addr, metrics_addr) = if health == metrics && health.port() != 0 {
            let listener = bind(health).await?;
            let addr = listener.local_addr()?;
            tasks.push(serve(listener, routes(true, true), stop.clone()));
            (addr, addr)
        } else {
            let h = bind(health).await?;
            let m = bind(metrics).await?;
            let (ha, ma) = (h.local_addr()?, m.local_addr()?);
            tasks.push(serve(h, routes(true, false), stop.clone()));
            tasks.push(serve(m, routes(false, true), stop.clone()));
            (ha, ma)
        };
        tracing::info!(%health_addr, %metrics_addr, "ops server listening");
        Ok(OpsServer { health_addr, metrics_addr, stop, tasks })
    }

    /// Stops accepting connections and waits for in-flight requests.
    pub async fn shutdown(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

fn serve(listener: TcpListener, router: Router, stop: CancellationToken) -> JoinHandle<()> {
    tokio::spawn(async move {
        let result =
            axum::serve(listener, router).with_graceful_shutdown(async move { stop.cancelled().await }).await;
        if let Err(error) = result {
            tracing::error!(%error, "ops server failed");
        }
    })
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(state): State<OpsState>) -> impl IntoResponse {
    let pending = state.ready.pending();
    if pending.is_empty() {
        (StatusCode::OK, "ok".to_owned())
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, format!("waiting for: {}", pending.join(", ")))
    }
}

async fn debug_page(
    State(state): State<OpsState>,
    Path(page): Path<String>,
    Query(query): Query<BTreeMap<String, String>>,
) -> impl IntoResponse {
    match state.debug.get(&page) {
        Some(render) => (StatusCode::OK, axum::Json(render(&query))).into_response(),
        None => (StatusCode::NOT_FOUND, format!("no debug page {page:?}")).into_response(),
    }
}

async fn render_metrics(State(state): State<OpsState>) -> impl IntoResponse {
    state.process.collect();
    state.metrics.run_upkeep();
    let mut text = state.metrics.render();
    text.push_str(&state.debug.scrape());
    ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
