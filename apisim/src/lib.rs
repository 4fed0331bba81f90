//! apisim: an in-process Kubernetes API server for tests, load tests and the embedded development mode.
//!
//! It answers as kube-apiserver v1.32 does, checked by `tests/conformance.rs`, which replays a script recorded
//! against a real kube-apiserver and fails on any difference but the few listed with their reasons in
//! `tests/conformance/differences.json`. Where the recording says nothing, the behaviour of kube-apiserver's
//! registry and admission code is modelled, and the module that does it names what it follows.
//!
//! ```text
//!  server    HTTP: routing, authentication, RBAC, admission webhooks, list/watch, discovery, metrics, faults
//!  protobuf  request bodies in protobuf (kubectl's generators) → JSON      openapi   /openapi/v2, /openapi/v3
//!  store     objects, resourceVersions, history (410), finalizers, namespace termination, CRDs
//!  kinds     per-kind behaviour: decoding defaults, Go's JSON shape, generation, create-on-update
//!  managed   managedFields of Update operations       schema   CRD structural schemas: pruning, validation
//!  quota     ResourceQuota: admission charges (through the resourcequotas/status webhooks), the quota controller
//! ```
//!
//! It is strict where kube-apiserver is strict — a lenient double hides the bugs production finds:
//! one global resourceVersion; optimistic concurrency; AlreadyExists; validation of names, labels, custom
//! resources and ResourceQuotas' `spec.hard`; finalizers and `deletionTimestamp`; namespaces that terminate, refuse new content and (with the
//! namespace controller on, as in a cluster) delete their contents and then disappear; watches from a
//! resourceVersion with bookmarks and **410 Gone** once that version has left the bounded history; RBAC with
//! SubjectAccessReview; admission webhooks with their failure policies; ResourceQuota admission and the quota
//! controller's accounting for object counts and pods' compute requests and limits; discovery; bearer-token authentication
//! over HTTPS; `apiserver_request_total{verb,resource,code}` and a per-user write log; fault injection (latency,
//! error rates, dropped watches, compaction); and a load profile that makes writes cost what they cost on a
//! real API server (seats, queueing, 429 with Retry-After; [`LoadProfile`]).
//!
//! Not simulated: server-side apply, strategic-merge semantics for lists (strategic merge patches are applied
//! as JSON merge patches), server-side field validation (`fieldValidation=Strict`) and its warnings.

mod admission;
mod error;
mod faults;
mod go_quantity;
mod kinds;
mod managed;
mod openapi;
mod protobuf;
mod quota;
mod rbac;
mod resources;
mod schema;
mod selector;
mod server;
mod store;
mod workloads;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use parking_lot::{Mutex, RwLock};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;
pub use faults::{FaultRule, Faults, LoadProfile, ProfileStats, RuleId};
pub use server::{User, WriteRecord};

/// How to run the server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Changes kept for watches; older resourceVersions get 410 Gone.
    pub history_window: usize,
    /// HTTPS port on 127.0.0.1 (0 = any free port).
    pub https_port: u16,
    /// Plain HTTP port on 127.0.0.1 (0 = any free port).
    pub http_port: u16,
    /// Interval between watch bookmarks (besides the one 2 s before a watch's deadline).
    pub bookmark_interval: Duration,
    /// Empty and remove terminating namespaces, as kube-controller-manager's namespace controller does in a
    /// cluster. Off, terminating namespaces stay terminating, as on a kube-apiserver running alone (the
    /// conformance recording was made on one).
    pub namespace_controller: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            history_window: 100_000,
            https_port: 0,
            http_port: 0,
            bookmark_interval: Duration::from_secs(60),
            namespace_controller: true,
        }
    }
}

/// A running API server. Dropping it (or [`ApiSim::shutdown`]) stops it and frees its ports.
pub struct ApiSim {
    shared: Arc<server::Shared>,
    https: SocketAddr,
    http: SocketAddr,
    ca_pem: String,
    admin_token: String,
    tls: Arc<rustls::ServerConfig>,
    /// The runtime it was started on, which serves it after a restart too (whoever asks for the restart).
    runtime: tokio::runtime::Handle,
    /// The listeners' tasks and what stops them; locked across a whole restart or shutdown.
    serving: tokio::sync::Mutex<Serving>,
}

/// The listening half of a running server: the accept loops and every connection they started end when `stop`
/// is cancelled.
struct Serving {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl ApiSim {
    /// Starts serving on 127.0.0.1.
    pub async fn start(config: Config) -> anyhow::Result<ApiSim> {
        let admin_token = format!("admin-{:032x}", rand::random::<u128>());
        let mut tokens = HashMap::new();
        tokens.insert(
            admin_token.clone(),
            User {
                name: "admin".into(),
                groups: vec!["system:masters".into(), "system:authenticated".into()],
            },
        );
        let shared = Arc::new(server::Shared {
            store: Mutex::new(store::Store::new(config.history_window, config.namespace_controller)),
            tokens: RwLock::new(tokens),
            faults: Faults::default(),
            requests: Mutex::new(Default::default()),
            writes: Mutex::new(Vec::new()),
            bookmark_interval: config.bookmark_interval,
            down: Default::default(),
            webhook_clients: Default::default(),
            quota_charges: Default::default(),
        });
        let (ca_pem, tls) = tls_config()?;
        let https_listener = TcpListener::bind(("127.0.0.1", config.https_port)).await?;
        let http_listener = TcpListener::bind(("127.0.0.1", config.http_port)).await?;
        let (https, http) = (https_listener.local_addr()?, http_listener.local_addr()?);
        let runtime = tokio::runtime::Handle::current();
        let serving = listen(&runtime, &shared, &tls, https_listener, http_listener);
        Ok(ApiSim {
            runtime,
            shared,
            https,
            http,
            ca_pem,
            admin_token,
            tls,
            serving: tokio::sync::Mutex::new(serving),
        })
    }

    /// Restarts the server the way kube-apiserver restarts with etcd intact: every listener, connection and
    /// watch closes at once (a request in flight is cut off; one that had reached the store stays applied),
    /// nothing is served for `down`, then the server listens again on the same ports with the same
    /// certificate, tokens, faults and objects.
    ///
    /// The watch history starts empty after the restart, as kube-apiserver's watch cache is rebuilt from etcd
    /// at the current revision: a watch or a paged list resuming from a resourceVersion older than the restart
    /// gets 410 Expired and its client relists; a watch from the current resourceVersion on resumes.
    pub async fn restart(&self, down: Duration) -> anyhow::Result<()> {
        let mut serving = self.serving.lock().await;
        self.shared.down.store(true, std::sync::atomic::Ordering::SeqCst);
        serving.stop.cancel();
        self.shared.faults.drop_watches();
        for task in serving.tasks.drain(..) {
            let _ = task.await;
        }
        self.shared.store.lock().compact();
        tokio::time::sleep(down).await;
        // The ports were ours a moment ago; a client's connection still closing may hold one briefly.
        let bind = |addr: SocketAddr| async move {
            let mut tries = 0;
            loop {
                match TcpListener::bind(addr).await {
                    Ok(l) => return Ok(l),
                    Err(e) if tries >= 50 => {
                        return Err(anyhow::anyhow!("cannot listen on {addr} again: {e}"));
                    }
                    Err(_) => {
                        tries += 1;
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        };
        let (https, http) = (self.https, self.http);
        let (https_listener, http_listener) =
            self.runtime.spawn(async move { anyhow::Ok((bind(https).await?, bind(http).await?)) }).await??;
        *serving = listen(&self.runtime, &self.shared, &self.tls, https_listener, http_listener);
        self.shared.down.store(false, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }

    /// `https://127.0.0.1:<port>`.
    pub fn https_url(&self) -> String {
        format!("https://{}", self.https)
    }

    /// `http://127.0.0.1:<port>` (still requires a bearer token).
    pub fn http_url(&self) -> String {
        format!("http://{}", self.http)
    }

    /// The CA certificate (PEM) that signs the serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Token of user `admin` in group `system:masters`.
    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    /// Adds a bearer token for `user` with `groups` (plus `system:authenticated`).
    pub fn add_user(&self, token: &str, user: &str, groups: &[&str]) {
        let mut groups: Vec<String> = groups.iter().map(|g| (*g).to_owned()).collect();
        groups.push("system:authenticated".into());
        self.shared.tokens.write().insert(token.to_owned(), User { name: user.to_owned(), groups });
    }

    /// A kubeconfig for the HTTPS endpoint with the CA embedded and `token` as credentials.
    pub fn kubeconfig_yaml(&self, token: &str) -> String {
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: apisim\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\n\
             users:\n- name: apisim-user\n  user:\n    token: {token}\ncontexts:\n- name: apisim\n  context:\n    cluster: apisim\n    \
             user: apisim-user\n    namespace: default\ncurrent-context: apisim\n",
            self.https_url()
        )
    }

    /// Writes [`ApiSim::kubeconfig_yaml`] to `path`.
    pub fn write_kubeconfig(&self, path: &Path, token: &str) -> anyhow::Result<()> {
        std::fs::write(path, self.kubeconfig_yaml(token))?;
        Ok(())
    }

    /// Fault injection.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Drops the change history: watches and lists resuming from any earlier resourceVersion get 410 Gone.
    pub fn compact(&self) {
        self.shared.store.lock().compact();
    }

    /// Requests served with `verb` (`GET`, `LIST`, `WATCH`, `POST`, `PUT`, `PATCH`, `DELETE`) on `resource`,
    /// any status code — the numbers `/metrics` reports.
    pub fn request_count(&self, verb: &str, resource: &str) -> u64 {
        self.shared
            .requests
            .lock()
            .iter()
            .filter(|((v, r, _), _)| v == verb && r == resource)
            .map(|(_, n)| n)
            .sum()
    }

    /// Every write served so far, with the user that made it.
    pub fn writes(&self) -> Vec<WriteRecord> {
        self.shared.writes.lock().clone()
    }

    /// The writes served from index `from` on (indexes as in [`ApiSim::writes`]).
    pub fn writes_from(&self, from: usize) -> Vec<WriteRecord> {
        let writes = self.shared.writes.lock();
        writes.get(from..).map(<[WriteRecord]>::to_vec).unwrap_or_default()
    }

    /// Number of writes (`POST`/`PUT`/`PATCH`/`DELETE`) served so far.
    pub fn write_count(&self) -> usize {
        self.shared.writes.lock().len()
    }

    /// Number of stored objects of every type.
    pub fn object_count(&self) -> usize {
        self.shared.store.lock().object_count()
    }

    /// Creates an object as the admin, bypassing HTTP (for fast test setup). `plural` of `group`.
    pub fn create(
        &self,
        group: &str,
        plural: &str,
        namespace: &str,
        obj: serde_json::Value,
    ) -> Result<serde_json::Value, ApiError> {
        let mut store = self.shared.store.lock();
        let t = store.resolve(group, plural).ok_or_else(|| ApiError::not_found(group, plural, ""))?;
        let (api_version, time) = (t.api_version(), store::now());
        let writer =
            managed::Writer { manager: "apisim", api_version: &api_version, subresource: None, time: &time };
        store.create(&t, namespace, obj, &writer, false)
    }

    /// Stops serving and waits for the listeners to close.
    pub async fn shutdown(&self) {
        let mut serving = self.serving.lock().await;
        serving.stop.cancel();
        for task in serving.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for ApiSim {
    fn drop(&mut self) {
        self.serving.get_mut().stop.cancel();
    }
}

/// Serves `shared` on both listeners until the returned [`Serving`] is stopped.
fn listen(
    runtime: &tokio::runtime::Handle,
    shared: &Arc<server::Shared>,
    tls: &Arc<rustls::ServerConfig>,
    https: TcpListener,
    http: TcpListener,
) -> Serving {
    let router = axum::Router::new().fallback(server::handle).with_state(shared.clone());
    let stop = CancellationToken::new();
    let tasks = vec![
        runtime.spawn(serve(http, None, router.clone(), stop.clone())),
        runtime.spawn(serve(https, Some(tls.clone()), router, stop.clone())),
    ];
    Serving { stop, tasks }
}

/// Creates every CRD found in the YAML files (multi-document allowed) of `dir`, in file-name order.
pub async fn install_crds_from_dir(sim: &ApiSim, dir: &Path) -> anyhow::Result<usize> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    let mut count = 0;
    for file in files {
        let text = std::fs::read_to_string(&file)?;
        let docs: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?;
        for doc in docs.into_iter().filter(|d| d["kind"] == "CustomResourceDefinition") {
            sim.create("apiextensions.k8s.io", "customresourcedefinitions", "", doc)
                .map_err(|e| anyhow::anyhow!("{}: {}", file.display(), e.message))?;
            count += 1;
        }
    }
    Ok(count)
}

fn tls_config() -> anyhow::Result<(String, Arc<rustls::ServerConfig>)> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name.push(DnType::CommonName, "apisim-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate()?;
    let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])?;
    let cert = params.signed_by(&key, &issuer)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key_der = rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![cert.der().clone()], key_der)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((ca_cert.pem(), Arc::new(config)))
}

/// Accepts connections (TLS when `tls` is given) until `stop`; every connection ends with it too, watches and
/// requests in flight included.
async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: axum::Router,
    stop: CancellationToken,
) {
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted { Ok((s, _)) => s, Err(_) => continue },
            _ = stop.cancelled() => return,
        };
        let (acceptor, router, stop) = (acceptor.clone(), router.clone(), stop.clone());
        tokio::spawn(async move {
            let service = hyper_util::service::TowerToHyperService::new(router);
            let builder = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new());
            match acceptor {
                Some(acceptor) => {
                    let tls = tokio::select! {
                        tls = acceptor.accept(stream) => match tls { Ok(tls) => tls, Err(_) => return },
                        _ = stop.cancelled() => return,
                    };
                    let conn =
                        builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(tls), service);
                    tokio::select! { _ = conn => {}, _ = stop.cancelled() => {} }
                }
                None => {
                    let conn =
                        builder.serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service);
                    tokio::select! { _ = conn => {}, _ = stop.cancelled() => {} }
                }
            }
        });
    }
}
