//! HTTPS serving with a certificate that can be replaced at any time without restarting: every new TLS
//! handshake picks up the certificate current at that moment.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwapOption;
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

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

/// Serves `router` over TLS on `listener` until `stop` is cancelled.
pub async fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    router: Router,
    stop: CancellationToken,
) {
    let acceptor = TlsAcceptor::from(config);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(error) => {
                    tracing::warn!(%error, "webhook accept failed");
                    continue;
                }
            },
            _ = stop.cancelled() => return,
        };
        let acceptor = acceptor.clone();
        let service = TowerToHyperService::new(router.clone());
        let stop = stop.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(stream).await {
                Ok(tls) => tls,
                Err(error) => {
                    tracing::debug!(%peer, %error, "TLS handshake failed");
                    return;
                }
            };
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection(TokioIo::new(tls), service);
            tokio::select! {
                result = conn => if let Err(error) = result {
                    tracing::debug!(%peer, %error, "webhook connection ended with an error");
                },
                _ = stop.cancelled() => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::singletons::certs::{self, ServingNames};
    use axum::routing::get;

    fn loopback() -> ServingNames {
        ServingNames { dns: vec!["localhost".into()], ips: vec!["127.0.0.1".parse().unwrap()] }
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
}
