//! The webhook server every replica runs, and [`start`], which wires it into a replica:
//!
//! * binds `--webhook-server-port` (0 picks a free port) on 127.0.0.1 when `--webhook-url-base` names a
//!   loopback host, on every interface otherwise, and logs the bound address (`webhook_addr`);
//! * serves upstream's paths (spec §8.1) over rustls with the certificate the Secret holds, reloaded without
//!   restart; readiness gate [`secret::READY_GATE`] stays closed until one is loaded; every stage of a
//!   connection is bounded ([`super::limits`]);
//! * on the leader (never on `--webhooks-only` replicas, which write nothing) keeps the certificate Secret
//!   (`--enable-internal-cert-management`) and the webhook configurations current.
//!
//! With `--no-webhooks` nothing is served or registered; a leader that manages certificates still keeps the
//! Secret and the `caBundle`/objects rules of configurations installed by others (upstream's HA layout, where
//! a separate deployment serves the webhooks).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use axum::Router;
use axum::routing::post;
use hnc_shard::TreeReader;
use hnc_shard::propagation::{PropagationRules, SourceNamesReader};
use kube::Client;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::anchor::AnchorValidator;
use super::hierarchy::HierarchyValidator;
use super::hncconfig::{CachedDiscovery, ConfigValidator, DiscoverySource};
use super::namespace::{NamespaceMutator, NamespaceValidator};
use super::objects::ObjectsValidator;
use super::quota::{HrqValidator, QuotaStatusValidator, QuotaWebhooks};
use super::review::{Handler, serve};
use super::server_checks::ApiServerChecks;
use super::tls::{self, ReloadableCert};
use super::{Context, paths, sources};
use crate::config::reconciler::ActiveTypes;
use crate::flags::Flags;
use crate::ops::Readiness;
use crate::ownership::Ownership;
use crate::singletons::registration::{Endpoint, Scope, Upkeep, url_has_port, url_host};
use crate::singletons::secret::{self, READY_GATE};
use crate::writer::Writer;

/// Everything [`start`] needs from the replica.
pub struct Inputs<'a> {
    /// The replica's flags.
    pub flags: &'a Flags,
    /// API client (watches, SubjectAccessReviews, discovery).
    pub client: Client,
    /// The hierarchy index.
    pub tree: TreeReader,
    /// Every source in the cluster by name and namespace, behind the conflict checks.
    pub sources: SourceNamesReader,
    /// The active types and modes.
    pub active: watch::Receiver<ActiveTypes>,
    /// Who leads (writes the Secret and the configurations).
    pub ownership: Ownership,
    /// Where the leader's writes go.
    pub writer: Writer,
    /// Readiness gates.
    pub ready: &'a Readiness,
    /// With `--enable-hrq`: the quota view the HRQ webhooks decide from.
    pub quota: Option<crate::hrq::QuotaView>,
}

/// The router serving every handler at its path.
pub fn router(ctx: Context, discovery: Arc<dyn DiscoverySource>, quota: Option<QuotaWebhooks>) -> Router {
    fn route<H: Handler>(router: Router, path: &str, handler: H) -> Router {
        router.route(path, post(serve::<H>).with_state(Arc::new(handler)))
    }
    let mut router = Router::new();
    router = route(router, paths::MUTATE_NAMESPACE, NamespaceMutator::new(ctx.clone()));
    router = route(router, paths::VALIDATE_NAMESPACE, NamespaceValidator::new(ctx.clone()));
    router = route(router, paths::VALIDATE_HIERARCHY, HierarchyValidator::new(ctx.clone()));
    router = route(router, paths::VALIDATE_ANCHOR, AnchorValidator::new(ctx.clone()));
    router = route(router, paths::VALIDATE_CONFIG, ConfigValidator::new(ctx.clone(), discovery));
    if let Some(quota) = quota {
        let status = QuotaStatusValidator::new(quota.view, ctx.tree.clone(), quota.client.clone());
        router = route(router, paths::VALIDATE_RQ_STATUS, status);
        router = route(router, paths::VALIDATE_HRQ, HrqValidator::new(ctx.tree.clone(), quota.client));
    }
    route(router, paths::VALIDATE_OBJECTS, ObjectsValidator::new(ctx))
}

/// Where the webhooks are registered, and the address to listen on.
fn endpoint_and_bind(flags: &Flags) -> anyhow::Result<(Endpoint, SocketAddr)> {
    let port = flags.webhook_server_port;
    match &flags.webhook_url_base {
        Some(base) => {
            let host = url_host(base).ok_or_else(|| {
                anyhow::anyhow!("--webhook-url-base {base:?} must look like https://HOST[:PORT]")
            })?;
            let loopback = host == "localhost"
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            let ip = if loopback { Ipv4Addr::LOCALHOST } else { Ipv4Addr::UNSPECIFIED };
            Ok((Endpoint::Url(base.trim_end_matches('/').to_owned()), (ip, port).into()))
        }
        None => Ok((
            Endpoint::Service { namespace: flags.namespace.clone() },
            (Ipv4Addr::UNSPECIFIED, port).into(),
        )),
    }
}

/// Starts the webhook server and the leader's upkeep as tasks of the replica, stopped by `stop`. Returns the
/// address served, or `None` with `--no-webhooks`.
pub fn start(
    inputs: Inputs<'_>,
    tasks: &mut JoinSet<()>,
    stop: &CancellationToken,
) -> anyhow::Result<Option<SocketAddr>> {
    let flags = inputs.flags;
    let (mut endpoint, bind) = endpoint_and_bind(flags)?;
    let (secret_tx, secret_rx) = watch::channel(secret::SecretState::default());
    let serve_webhooks = !flags.no_webhooks;
    let cert = Arc::new(ReloadableCert::default());
    let mut addr = None;
    if serve_webhooks {
        let listener = std::net::TcpListener::bind(bind)
            .map_err(|e| anyhow::anyhow!("cannot listen for webhooks on {bind}: {e}"))?;
        listener.set_nonblocking(true)?;
        let listener = TcpListener::from_std(listener)?;
        let bound = listener.local_addr()?;
        if let Endpoint::Url(base) = &mut endpoint
            && !url_has_port(base)
        {
            base.push_str(&format!(":{}", bound.port()));
        }
        tracing::info!(webhook_addr = %bound, endpoint = ?endpoint, "webhook server listening");
        let rules = PropagationRules {
            unpropagated_labels: flags.unpropagated_labels.clone(),
            unpropagated_annotations: flags.unpropagated_annotations.clone(),
            nopropagation_labels: flags.nopropagation_labels.clone(),
        };
        let ctx = Context {
            tree: inputs.tree,
            sources: sources::from_source_names(inputs.sources),
            active: inputs.active.clone(),
            hnc_namespace: flags.namespace.as_str().into(),
            rules: Arc::new(rules),
            server: Arc::new(ApiServerChecks::new(inputs.client.clone())),
        };
        let quota = inputs.quota.clone().map(|view| QuotaWebhooks { view, client: inputs.client.clone() });
        let router = router(ctx, Arc::new(CachedDiscovery::new(inputs.client.clone())), quota);
        inputs.ready.register(READY_GATE);
        tasks.spawn(tls::serve(listener, tls::server_config(cert.clone()), router, stop.clone()));
        addr = Some(bound);
    }
    let manage_certs = flags.enable_internal_cert_management && !flags.webhooks_only;
    if serve_webhooks || manage_certs {
        let (client, namespace, cert, ready) =
            (inputs.client.clone(), flags.namespace.clone(), cert.clone(), inputs.ready.clone());
        let stop = stop.clone();
        tasks.spawn(async move {
            tokio::select! {
                _ = secret::watch_secret(client, namespace, cert, ready, secret_tx) => {}
                _ = stop.cancelled() => {}
            }
        });
    }
    // --webhooks-only replicas write nothing: no Secret, no configurations.
    if !flags.webhooks_only && (serve_webhooks || manage_certs) {
        let upkeep = Upkeep {
            client: inputs.client,
            writer: inputs.writer,
            ownership: inputs.ownership,
            endpoint,
            scope: if serve_webhooks { Scope::Register } else { Scope::PatchExisting },
            manage_certs,
            namespace: flags.namespace.clone(),
            cert: serve_webhooks.then_some(cert),
            secret: secret_rx,
            active: inputs.active,
            hrq: flags.enable_hrq,
        };
        tasks.spawn(upkeep.run(stop.clone()));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::singletons::certs::{self, ServingNames};
    use crate::webhook::testing::Forest;
    use serde_json::json;

    fn flags(args: &[&str]) -> Flags {
        use clap::Parser;
        Flags::try_parse_from(std::iter::once("hnc-controller").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn loopback_urls_bind_loopback_only() {
        let (endpoint, bind) =
            endpoint_and_bind(&flags(&["--webhook-url-base=https://127.0.0.1", "--webhook-server-port=0"]))
                .unwrap();
        assert_eq!(endpoint, Endpoint::Url("https://127.0.0.1".into()));
        assert_eq!(bind, "127.0.0.1:0".parse().unwrap());
        let (endpoint, bind) = endpoint_and_bind(&flags(&["--namespace=hnc"])).unwrap();
        assert_eq!(endpoint, Endpoint::Service { namespace: "hnc".into() });
        assert_eq!(bind, "0.0.0.0:443".parse().unwrap());
        assert!(endpoint_and_bind(&flags(&["--webhook-url-base=http://x"])).is_err());
    }

    /// The router over real HTTPS: each path reaches its handler, and an unparseable review is answered.
    #[tokio::test]
    async fn every_path_is_served_over_tls() {
        let forest = Forest::new().ns("a");
        let names = ServingNames { ips: vec!["127.0.0.1".parse().unwrap()], ..Default::default() };
        let bundle = certs::issue(&names, time::OffsetDateTime::now_utc()).unwrap();
        let cert = Arc::new(ReloadableCert::default());
        cert.load(&bundle.cert_pem, &bundle.key_pem).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("https://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let stop = CancellationToken::new();
        let app = router(forest.context(), forest.discovery(), None);
        let server = tokio::spawn(tls::serve(listener, tls::server_config(cert), app, stop.clone()));
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(bundle.ca_cert_pem.as_bytes()).unwrap())
            .build()
            .unwrap();
        let review = |kind: &str, group: &str, resource: &str, object: serde_json::Value| {
            json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
                "uid": "u", "kind": {"group": group, "version": "v1", "kind": kind},
                "resource": {"group": group, "version": "v1", "resource": resource},
                "name": "x", "namespace": object["metadata"]["namespace"], "operation": "CREATE",
                "userInfo": {"username": "alice"}, "object": object}})
        };
        let tree_labelled = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "x",
            "labels": {"hnc.x-k8s.io/included-namespace": "true", "x.tree.hnc.x-k8s.io/depth": "0"}}});
        let cases = [
            (paths::MUTATE_NAMESPACE, review("Namespace", "", "namespaces", tree_labelled.clone()), true),
            (paths::VALIDATE_NAMESPACE, review("Namespace", "", "namespaces", tree_labelled), false),
            (
                paths::VALIDATE_ANCHOR,
                review(
                    "SubnamespaceAnchor",
                    "hnc.x-k8s.io",
                    "subnamespaceanchors",
                    json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "SubnamespaceAnchor", "metadata": {"name": "a", "namespace": "a"}}),
                ),
                false,
            ),
            (
                paths::VALIDATE_HIERARCHY,
                review(
                    "HierarchyConfiguration",
                    "hnc.x-k8s.io",
                    "hierarchyconfigurations",
                    json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HierarchyConfiguration", "metadata": {"name": "hierarchy", "namespace": "a"}, "spec": {"parent": "a"}}),
                ),
                false,
            ),
            (
                paths::VALIDATE_CONFIG,
                review(
                    "HNCConfiguration",
                    "hnc.x-k8s.io",
                    "hncconfigurations",
                    json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HNCConfiguration", "metadata": {"name": "config"}, "spec": {}}),
                ),
                true,
            ),
            (
                paths::VALIDATE_OBJECTS,
                review(
                    "Role",
                    "rbac.authorization.k8s.io",
                    "roles",
                    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r", "namespace": "a", "labels": {"hnc.x-k8s.io/inherited-from": "p"}}}),
                ),
                false,
            ),
        ];
        for (path, body, allowed) in cases {
            let answer: serde_json::Value =
                client.post(format!("{base}{path}")).json(&body).send().await.unwrap().json().await.unwrap();
            assert_eq!(answer["response"]["uid"], "u", "{path}: {answer}");
            assert_eq!(answer["response"]["allowed"], allowed, "{path}: {answer}");
        }
        let garbage: serde_json::Value = client
            .post(format!("{base}{}", paths::VALIDATE_NAMESPACE))
            .body("{}")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(garbage["response"]["allowed"], false);
        stop.cancel();
        server.await.unwrap();
    }
}
