//! Test support: a TLS admission webhook that denies configmaps named `forbidden-*` at `/validate` and adds
//! the label `mutated=yes` at `/mutate`; [`kubectl::Kubectl`], a kubectl binary run against apisim.

#![allow(dead_code)] // each test binary that includes `support` uses a different part

pub mod kubectl;

use std::sync::Arc;

use axum::Json;
use axum::routing::post;
use base64::Engine;
use serde_json::{Value, json};

/// Denies configmaps named `forbidden-*`; adds label `mutated=yes` at `/mutate`.
async fn review(Json(review): Json<Value>) -> Json<Value> {
    let req = &review["request"];
    let name = req["name"].as_str().unwrap_or_default();
    let mut response = json!({"uid": req["uid"], "allowed": true});
    if name.starts_with("forbidden-") {
        response = json!({"uid": req["uid"], "allowed": false,
            "status": {"code": 403, "reason": "Forbidden", "message": format!("{name} is not allowed here")}});
    }
    Json(json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}))
}

async fn mutate(Json(review): Json<Value>) -> Json<Value> {
    let req = &review["request"];
    let patch = json!([{"op": "add", "path": "/metadata/labels", "value": {"mutated": "yes"}}]);
    let patch = base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&patch).unwrap());
    Json(json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "response": {"uid": req["uid"], "allowed": true, "patchType": "JSONPatch", "patch": patch}}))
}

/// Serves the webhooks over TLS on loopback; returns (base URL, CA bundle base64).
pub async fn webhook_server() -> (String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert =
        CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap().signed_by(&key, &issuer).unwrap();
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
            )
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let router = axum::Router::new().route("/validate", post(review)).route("/mutate", post(mutate));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (acceptor, router) = (acceptor.clone(), router.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else { return };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (url, base64::engine::general_purpose::STANDARD.encode(ca.pem()))
}
