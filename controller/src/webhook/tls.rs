//! HTTPS serving with a certificate that can be replaced at any time without restarting: every new TLS
//! handshake picks up the certificate current at that moment. The accept loop and each connection keep to
//! the [`Limits`] of [`super::limits`]: a bounded number of connections, bounded handshakes and header reads,
//! and a pause instead of a spin when accepting fails.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use parking_lot::Mutex;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use super::limits::{self, ACCEPT_BACKOFF_MAX, ACCEPT_BACKOFF_MIN, Limits};

/// The serving certificate, swappable while serving.
#[derive(Default)]
pub struct ReloadableCert {
    current: ArcSwapOption<CertifiedKey>,
}

impl fmt::Debug for ReloadableCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadableCert").field("loaded", &self.current.load().is_some()).finish()
    }
}

impl ReloadableCert {
    /// Replaces the certificate (chain PEM + private key PEM). Handshakes already done keep their certificate.
    pub fn load(&self, cert_pem: &str, key_pem: &str) -> anyhow::Result<()> {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|e| anyhow::anyhow!("invalid serving certificate PEM: {e}"))?;
        if chain.is_empty() {
            anyhow::bail!("serving certificate PEM holds no certificate");
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| anyhow::anyhow!("invalid serving key PEM: {e}"))?;
        let signing = rustls::crypto::ring::sign::any_supported_type(&key)
            .map_err(|e| anyhow::anyhow!("unsupported serving key: {e}"))?;
        self.current.store(Some(Arc::new(CertifiedKey::new(chain, signing))));
        metrics::counter!("hnc_webhook_certificate_loads_total").increment(1);
        Ok(())
    }

    /// True once a certificate has been loaded.
    pub fn is_loaded(&self) -> bool {
        self.current.load().is_some()
    }
}

impl ResolvesServerCert for ReloadableCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.load_full()
    }
}

/// A rustls server configuration (HTTP/1.1 and HTTP/2) that asks `cert` for the certificate on every handshake.
pub fn server_config(cert: Arc<ReloadableCert>) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_no_client_auth()
        .with_cert_resolver(cert);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}

/// A source of connections: the webhook port's [`TcpListener`], or a scripted one in tests.
pub trait Accept: Send + 'static {
    /// A connection.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The next connection, or why none could be accepted.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;
}

impl Accept for TcpListener {
    type Stream = TcpStream;

    fn accept(&mut self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send {
        TcpListener::accept(self)
    }
}

/// The pause after a failed accept: [`ACCEPT_BACKOFF_MIN`] doubling to [`ACCEPT_BACKOFF_MAX`], back to the
/// minimum after a success. Without it an error that persists (EMFILE: the process is out of descriptors)
/// would spin the loop at full speed, and no descriptor would be freed any sooner.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Self {
        Backoff { next: ACCEPT_BACKOFF_MIN }
    }

    fn failed(&mut self) -> Duration {
        let pause = self.next;
        self.next = (pause * 2).min(ACCEPT_BACKOFF_MAX);
        pause
    }

    fn succeeded(&mut self) {
        self.next = ACCEPT_BACKOFF_MIN;
    }
}

/// True for accept errors about one connection (its client gave up before it was accepted), which say
/// nothing about the server's resources and need no pause.
fn is_connection_error(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset | io::ErrorKind::Interrupted
    )
}

/// The TLS handshakes in progress; past the limit, a new one closes the oldest (see [`super::limits`]).
struct Handshakes {
    max: usize,
    pending: Mutex<(u64, BTreeMap<u64, CancellationToken>)>,
}

/// One handshake in progress: `evicted` fires when a newer one takes its place. Leaves the set when dropped.
struct HandshakeSlot {
    id: u64,
    evicted: CancellationToken,
    handshakes: Arc<Handshakes>,
}

impl Handshakes {
    fn new(max: usize) -> Arc<Self> {
        Arc::new(Handshakes { max: max.max(1), pending: Mutex::new((0, BTreeMap::new())) })
    }

    fn enter(self: &Arc<Self>) -> HandshakeSlot {
        let mut pending = self.pending.lock();
        let (next_id, slots) = &mut *pending;
        while slots.len() >= self.max {
            if let Some((_, oldest)) = slots.pop_first() {
                oldest.cancel();
            }
        }
        let id = *next_id;
        *next_id += 1;
        let evicted = CancellationToken::new();
        slots.insert(id, evicted.clone());
        HandshakeSlot { id, evicted, handshakes: self.clone() }
    }
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        self.handshakes.pending.lock().1.remove(&self.id);
    }
}

/// Counts one open connection in `hnc_webhook_connections` while it lives.
struct OpenConnection;

/// Webhook connections open in this process, for [`drained`].
static OPEN_CONNECTIONS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl OpenConnection {
    fn new() -> Self {
        metrics::gauge!("hnc_webhook_connections").increment(1.0);
        OPEN_CONNECTIONS.fetch_add(1, Ordering::Relaxed);
        OpenConnection
    }
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        metrics::gauge!("hnc_webhook_connections").decrement(1.0);
        OPEN_CONNECTIONS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Waits until every webhook connection of a stopped server has ended (see [`connection`]), at most `limit`:
/// the process exits after this, and an exit would cut the connections the API server still holds.
pub async fn drained(limit: Duration) {
    let deadline = tokio::time::Instant::now() + limit;
    while OPEN_CONNECTIONS.load(Ordering::Relaxed) > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn closed(reason: &'static str) {
    metrics::counter!("hnc_webhook_connections_closed_total", "reason" => reason).increment(1);
}

/// Serves `router` over TLS on `listener` until `stop` is cancelled, within the default [`Limits`].
pub async fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    router: Router,
    stop: CancellationToken,
) {
    serve_with(listener, config, router, Limits::default(), stop).await;
}

/// Serves `router` over TLS on `listener` until `stop` is cancelled, within `limits` (see [`super::limits`]).
pub async fn serve_with(
    mut listener: impl Accept,
    config: Arc<rustls::ServerConfig>,
    router: Router,
    limits: Limits,
    stop: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(config);
    let router = limits::bound_requests(router, &limits);
    let limits = Arc::new(limits);
    // A connection is accepted only with a slot free: beyond the cap, new connections wait in the kernel's
    // backlog, where the API server's connection is served as soon as any slot frees, rather than being closed
    // and failing its call (see the module docs of `limits`).
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let handshakes = Handshakes::new(limits.max_pending_handshakes);
    let mut backoff = Backoff::new();
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the connection semaphore is never closed"),
            _ = stop.cancelled() => return,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => {
                    backoff.succeeded();
                    conn
                }
                Err(error) if is_connection_error(&error) => {
                    tracing::debug!(%error, "webhook connection lost before it was accepted");
                    continue;
                }
                Err(error) => {
                    metrics::counter!("hnc_webhook_accept_errors_total").increment(1);
                    let pause = backoff.failed();
                    tracing::warn!(%error, ?pause, "webhook accept failed; pausing before the next one");
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => continue,
                        _ = stop.cancelled() => return,
                    }
                }
            },
            _ = stop.cancelled() => return,
        };
        let handshake = handshakes.enter();
        tokio::spawn(connection(
            stream,
            peer,
            acceptor.clone(),
            router.clone(),
            limits.clone(),
            handshake,
            stop.clone(),
            slot,
        ));
    }
}

/// Serves one connection: the handshake, then HTTP until the client leaves, a limit closes it, or `stop`.
#[allow(clippy::too_many_arguments)]
async fn connection<S: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    stream: S,
    peer: SocketAddr,
    acceptor: TlsAcceptor,
    router: Router,
    limits: Arc<Limits>,
    handshake: HandshakeSlot,
    stop: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let _open = OpenConnection::new();
    let tls = tokio::select! {
        result = tokio::time::timeout(limits.handshake_timeout, acceptor.accept(stream)) => match result {
            Ok(Ok(tls)) => tls,
            Ok(Err(error)) => {
                tracing::debug!(%peer, %error, "TLS handshake failed");
                return;
            }
            Err(_) => {
                closed("handshake_timeout");
                tracing::debug!(%peer, "TLS handshake not finished in time; closing the connection");
                return;
            }
        },
        _ = handshake.evicted.cancelled() => {
            closed("handshake_evicted");
            tracing::debug!(%peer, "too many TLS handshakes in progress; closing the oldest");
            return;
        }
        _ = stop.cancelled() => return,
    };
    drop(handshake);

    let http2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    // hyper calls the service once a request's headers are in: until then, the connection has sent nothing
    // worth keeping it open for.
    let requested = Arc::new(AtomicBool::new(false));
    // Set once the server stops: HTTP/1.1 answers then say `Connection: close`.
    let closing = Arc::new(AtomicBool::new(false));
    let service = {
        let (requested, closing) = (requested.clone(), closing.clone());
        hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
            requested.store(true, Ordering::Relaxed);
            let answer = router.clone().oneshot(request.map(axum::body::Body::new));
            let closing = closing.clone();
            async move {
                let mut response = answer.await?;
                if closing.load(Ordering::Relaxed) {
                    response
                        .headers_mut()
                        .insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
                }
                Ok::<_, std::convert::Infallible>(response)
            }
        })
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.keep_alive_timeout);
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    let no_request = async {
        tokio::time::sleep(limits.header_read_timeout).await;
        if requested.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = conn.as_mut() => if let Err(error) = result {
            tracing::debug!(%peer, %error, "webhook connection ended with an error");
        },
        () = no_request => {
            closed("header_timeout");
            tracing::debug!(%peer, "no request headers in time; closing the connection");
        }
        _ = stop.cancelled() => {
            // The API server keeps connections open between calls. Dropped, an idle one would fail the next
            // call sent on it, and a request in flight would fail with it. Instead the client is told that the
            // connection ends and calls again on a new one, which the Service sends to another replica: over
            // HTTP/2 by GOAWAY at once (requests it had not started are retried by the client); over HTTP/1.1,
            // where closing an idle connection races the client's next call on it, by `Connection: close` on
            // the next answer, and only a connection idle for [`IDLE_GRACE`] is closed.
            closing.store(true, Ordering::Relaxed);
            if !http2 {
                let _ = tokio::time::timeout(IDLE_GRACE, conn.as_mut()).await;
            }
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, conn).await;
        }
    }
}

/// How long a stopping server keeps an HTTP/1.1 connection open for the client's next call (answered with
/// `Connection: close`) before closing it.
pub const IDLE_GRACE: Duration = Duration::from_secs(2);
/// How long a stopping server then lets a connection finish the requests in flight (an admission call's
/// timeout is at most 30 s; HNC's are 2 and 10 s).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::singletons::certs::{self, ServingNames};
    use crate::webhook::limits::MAX_BODY_BYTES;
    use axum::routing::get;

    fn loopback() -> ServingNames {
        ServingNames {
            dns: vec!["localhost".into()],
            ips: vec!["127.0.0.1".parse().unwrap()],
            ..Default::default()
        }
    }

    async fn get_with_ca(url: &str, ca_pem: &str) -> reqwest::Result<String> {
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
            .build()
            .unwrap();
        client.get(url).send().await?.text().await
    }

    #[tokio::test]
    async fn serves_and_swaps_certificates_without_restart() {
        let now = time::OffsetDateTime::now_utc();
        let first = certs::issue(&loopback(), now).unwrap();
        let cert = Arc::new(ReloadableCert::default());
        cert.load(&first.cert_pem, &first.key_pem).unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://127.0.0.1:{}/ping", listener.local_addr().unwrap().port());
        let stop = CancellationToken::new();
        let router = Router::new().route("/ping", get(|| async { "pong" }));
        let server = tokio::spawn(serve(listener, server_config(cert.clone()), router, stop.clone()));

        assert_eq!(get_with_ca(&url, &first.ca_cert_pem).await.unwrap(), "pong");

        // A new CA and certificate: new connections see it at once; the old CA no longer verifies.
        let second = certs::issue(&loopback(), now).unwrap();
        cert.load(&second.cert_pem, &second.key_pem).unwrap();
        assert_eq!(get_with_ca(&url, &second.ca_cert_pem).await.unwrap(), "pong");
        assert!(get_with_ca(&url, &first.ca_cert_pem).await.is_err());

        stop.cancel();
        server.await.unwrap();
    }

    #[test]
    fn garbage_is_rejected_and_the_previous_certificate_kept() {
        let cert = ReloadableCert::default();
        assert!(cert.load("not pem", "not pem").is_err());
        assert!(!cert.is_loaded());
    }

    /// A server on a free loopback port with a fresh certificate: its address, the CA that verifies it, and
    /// the token stopping it.
    struct Running {
        addr: SocketAddr,
        ca_pem: String,
        stop: CancellationToken,
        server: tokio::task::JoinHandle<()>,
    }

    impl Running {
        async fn start(router: Router, limits: Limits) -> Running {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            Running::start_on(listener.local_addr().unwrap(), listener, router, limits)
        }

        fn start_on(addr: SocketAddr, listener: impl Accept, router: Router, limits: Limits) -> Running {
            let bundle = certs::issue(&loopback(), time::OffsetDateTime::now_utc()).unwrap();
            let cert = Arc::new(ReloadableCert::default());
            cert.load(&bundle.cert_pem, &bundle.key_pem).unwrap();
            let stop = CancellationToken::new();
            let server =
                tokio::spawn(serve_with(listener, server_config(cert), router, limits, stop.clone()));
            Running { addr, ca_pem: bundle.ca_cert_pem, stop, server }
        }

        fn url(&self, path: &str) -> String {
            format!("https://127.0.0.1:{}{path}", self.addr.port())
        }

        fn client(&self) -> reqwest::Client {
            reqwest::Client::builder()
                .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap())
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap()
        }

        /// A TLS connection that has finished its handshake and sent nothing else.
        async fn tls_connection(&self) -> tokio_rustls::client::TlsStream<TcpStream> {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(self.ca_pem.as_bytes()) {
                roots.add(cert.unwrap()).unwrap();
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let mut config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            let tcp = TcpStream::connect(self.addr).await.unwrap();
            let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
            tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp).await.unwrap()
        }

        async fn stop(self) {
            self.stop.cancel();
            self.server.await.unwrap();
        }
    }

    /// Reads until the server closes the connection (end of stream or reset).
    async fn closed_by_server(mut stream: impl AsyncRead + Unpin) {
        use tokio::io::AsyncReadExt;
        let mut buf = [0u8; 1024];
        while let Ok(n @ 1..) = stream.read(&mut buf).await {
            let _ = n;
        }
    }

    fn review(object: serde_json::Value, old: serde_json::Value) -> serde_json::Value {
        serde_json::json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
            "uid": "u", "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
            "resource": {"group": "", "version": "v1", "resource": "configmaps"},
            "name": "c", "namespace": "a", "operation": "UPDATE",
            "userInfo": {"username": "alice"}, "object": object, "oldObject": old}})
    }

    fn config_map(data_bytes: usize) -> serde_json::Value {
        serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "a"},
            "data": {"big": "x".repeat(data_bytes)}})
    }

    fn webhooks() -> Router {
        let forest = crate::webhook::testing::Forest::new().ns("a");
        crate::webhook::server::router(forest.context(), forest.discovery(), None)
    }

    /// Posts a ConfigMap update's review to the objects webhook; the HTTP status and the answer's `allowed`.
    async fn post_review(running: &Running, body: &serde_json::Value) -> (u16, Option<bool>) {
        let url = running.url(crate::webhook::paths::VALIDATE_OBJECTS);
        let response = running.client().post(url).json(body).send().await.unwrap();
        let status = response.status().as_u16();
        let answer: Option<serde_json::Value> = response.json().await.ok();
        (status, answer.and_then(|a| a["response"]["allowed"].as_bool()))
    }

    /// A client that connects and sends nothing, one that stalls in the middle of its ClientHello, and one that
    /// finishes its handshake but never sends a request are each closed once their timeout has passed.
    #[tokio::test]
    async fn stalled_handshakes_and_silent_connections_are_closed() {
        let limits = Limits {
            handshake_timeout: Duration::from_secs(1),
            header_read_timeout: Duration::from_secs(1),
            ..Limits::default()
        };
        let running = Running::start(webhooks(), limits.clone()).await;
        let started = tokio::time::Instant::now();
        let silent = TcpStream::connect(running.addr).await.unwrap();
        let mut partial = TcpStream::connect(running.addr).await.unwrap();
        // A TLS record header announcing a 512-byte handshake message, and one byte of it.
        tokio::io::AsyncWriteExt::write_all(&mut partial, &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
            .await
            .unwrap();
        let no_request = running.tls_connection().await;
        let bound = limits.handshake_timeout + Duration::from_secs(5);
        tokio::time::timeout(bound, closed_by_server(silent)).await.expect("a silent connection is closed");
        tokio::time::timeout(bound, closed_by_server(partial)).await.expect("a stalled handshake is closed");
        tokio::time::timeout(bound, closed_by_server(no_request))
            .await
            .expect("a connection without a request is closed");
        assert!(
            started.elapsed() >= limits.handshake_timeout,
            "closed before the timeout: {:?}",
            started.elapsed()
        );
        // The server is still serving.
        let (status, allowed) = post_review(&running, &review(config_map(1), config_map(1))).await;
        assert_eq!((status, allowed), (200, Some(true)));
        running.stop().await;
    }

    /// Twice the connection cap of clients that never start their handshake, and clients that finished theirs
    /// but send their headers a byte at a time, do not keep an AdmissionReview from being answered at once —
    /// although neither timeout (a minute here) has passed: the flood's oldest handshakes are closed to make
    /// room, and never more than the allowed number of them stay open.
    #[tokio::test]
    async fn a_flood_of_slow_clients_does_not_starve_admission() {
        let limits = Limits {
            max_connections: 8,
            max_pending_handshakes: 4,
            handshake_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(60),
            keep_alive_timeout: Duration::from_secs(60),
            ..Limits::default()
        };
        let running = Running::start(webhooks(), limits.clone()).await;
        let mut dribblers = tokio::task::JoinSet::new();
        for _ in 0..3 {
            let mut tls = running.tls_connection().await;
            dribblers.spawn(async move {
                use tokio::io::AsyncWriteExt;
                for byte in
                    b"POST /validate-objects HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json"
                {
                    if tls.write_all(&[*byte]).await.is_err() || tls.flush().await.is_err() {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
        }
        let mut flood = Vec::new();
        for _ in 0..2 * limits.max_connections {
            flood.push(TcpStream::connect(running.addr).await.unwrap());
        }

        let started = tokio::time::Instant::now();
        let (status, allowed) = post_review(&running, &review(config_map(1), config_map(1))).await;
        let took = started.elapsed();
        assert_eq!((status, allowed), (200, Some(true)));
        assert!(took < Duration::from_secs(3), "the review took {took:?}");

        // Positive signals: count the flood's connections as the server closes them, until enough have been.
        let expected = 2 * limits.max_connections - limits.max_pending_handshakes;
        let mut closing: futures::stream::FuturesUnordered<_> =
            flood.into_iter().map(closed_by_server).collect();
        let mut closed = 0;
        let _ = tokio::time::timeout(Duration::from_secs(10), async {
            while closed < expected && futures::StreamExt::next(&mut closing).await.is_some() {
                closed += 1;
            }
        })
        .await;
        assert!(closed >= expected, "only {closed} of the flood's connections were closed");
        dribblers.abort_all();
        running.stop().await;
    }

    /// A review of a large ConfigMap's update (4 MiB: more than axum's default limit) is answered; a body over
    /// the limit gets 413, and the server goes on serving.
    #[tokio::test]
    async fn oversized_bodies_get_413_and_large_reviews_are_answered() {
        let running = Running::start(webhooks(), Limits::default()).await;
        let large = review(config_map(2 << 20), config_map(2 << 20));
        assert_eq!(post_review(&running, &large).await, (200, Some(true)));
        let oversized = review(config_map(4 << 20), config_map(3 << 20));
        assert!(serde_json::to_vec(&oversized).unwrap().len() > MAX_BODY_BYTES);
        assert_eq!(post_review(&running, &oversized).await, (413, None));
        assert_eq!(post_review(&running, &review(config_map(1), config_map(1))).await, (200, Some(true)));
        running.stop().await;
    }

    /// A request not answered by the smaller of its `?timeout=` and the server's cap gets 503 then.
    #[tokio::test]
    async fn requests_are_answered_by_their_deadline() {
        let router = Router::new().route("/stall", axum::routing::post(std::future::pending::<()>));
        let limits = Limits { request_timeout_cap: Duration::from_secs(2), ..Limits::default() };
        let running = Running::start(router, limits).await;
        for (query, deadline) in
            [("timeout=1s", Duration::from_secs(1)), ("timeout=1m0s", Duration::from_secs(2))]
        {
            let started = tokio::time::Instant::now();
            let response =
                running.client().post(running.url(&format!("/stall?{query}"))).send().await.unwrap();
            let took = started.elapsed();
            assert_eq!(response.status(), 503, "{query}");
            assert!(took >= deadline && took < deadline + Duration::from_secs(5), "{query}: {took:?}");
        }
        running.stop().await;
    }

    /// Accepts from a real listener, but fails with EMFILE ("too many open files") until `failing_until`.
    struct OutOfDescriptors {
        listener: TcpListener,
        failing_until: std::time::Instant,
        errors: Arc<std::sync::atomic::AtomicUsize>,
    }

    impl Accept for OutOfDescriptors {
        type Stream = TcpStream;

        fn accept(&mut self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send {
            let fail = std::time::Instant::now() < self.failing_until;
            if fail {
                self.errors.fetch_add(1, Ordering::Relaxed);
            }
            let listener = &self.listener;
            async move {
                if fail {
                    // EMFILE on Linux and macOS.
                    Err(io::Error::from_raw_os_error(24))
                } else {
                    listener.accept().await
                }
            }
        }
    }

    /// A second of EMFILE from accept() is met with pauses (5 ms doubling), not a spinning loop, and a client
    /// that connected meanwhile is served once accepting works again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn accept_errors_pause_the_loop_instead_of_spinning_it() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let errors = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let window = Duration::from_secs(1);
        let failing = OutOfDescriptors {
            listener,
            failing_until: std::time::Instant::now() + window,
            errors: errors.clone(),
        };
        let router = Router::new().route("/ping", get(|| async { "pong" }));
        let running = Running::start_on(addr, failing, router, Limits::default());
        assert_eq!(
            running.client().get(running.url("/ping")).send().await.unwrap().text().await.unwrap(),
            "pong"
        );
        // 5 + 10 + 20 + ... ms: about eight attempts fit in the window; a spinning loop makes millions.
        let errors = errors.load(Ordering::Relaxed);
        assert!((3..=20).contains(&errors), "{errors} accept attempts failed in {window:?}");
        running.stop().await;
    }
}
