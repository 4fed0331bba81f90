//! Webhook latency under load: one replica's webhook server (the real router, rustls, hot-reloadable
//! certificate) over HTTPS on loopback, driven open-loop at a fixed rate with a realistic request mix against
//! a forest of 10,000 namespaces, and the server-side latency (request received → response written, TLS and
//! the network excluded) reported as p50/p99/max, overall and per webhook.
//!
//! SubjectAccessReviews are answered in-process at once, so re-parenting is measured without the API server
//! round trip the spec requires (that cost is the API server's, and is reported by
//! `hnc_webhook_access_review_duration_seconds` in production).
//!
//! ```sh
//! cargo run --release -p hnc-controller --example webhook_load -- --rate 1000 --seconds 30
//! ```
//!
//! Mix: 20% namespace mutations, 20% namespace validations (label edits), 15% HierarchyConfiguration updates
//! with the parent unchanged, 5% re-parenting inside a tree (index checks, conflict check, access review),
//! 30% object creates (leaves, mid-tree with descendants to check, roots that would overwrite a descendant's
//! source), 5% edits of propagated copies, 5% anchor creates.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Request;
use axum::middleware::{self, Next};
use axum::response::Response;
use clap::Parser;
use futures::future::BoxFuture;
use hnc_api::SyncMode;
use hnc_controller::config::reconciler::ActiveTypes;
use hnc_controller::config::resolve::{ActiveType, Discovered, DiscoveredResource};
use hnc_controller::singletons::certs::{self, ServingNames};
use hnc_controller::webhook::hncconfig::DiscoverySource;
use hnc_controller::webhook::server_checks::{NamespaceState, ServerChecks};
use hnc_controller::webhook::tls::{self, ReloadableCert};
use hnc_controller::webhook::{Context, paths, server, sources};
use hnc_shard::TreeIndex;
use hnc_shard::propagation::{PropagationRules, SourceNames, TypeKey};
use hnc_shard::tree::{NamespacePolicy, ObservedAnchor, ObservedHierarchy, ObservedNamespace};
use k8s_openapi::api::authentication::v1::UserInfo;
use parking_lot::Mutex;
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
struct Args {
    /// Requests per second, sent open-loop (a slow answer does not slow the sender).
    #[arg(long, default_value_t = 1000)]
    rate: u32,
    /// Measured seconds (after a 2 s warm-up).
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Trees of 10 namespaces each (root, 3 children, 6 grandchildren).
    #[arg(long, default_value_t = 1000)]
    trees: usize,
}

/// Access reviews and namespace reads answered in-process: everyone is an admin, every namespace is active.
struct Instant0;

impl ServerChecks for Instant0 {
    fn is_admin<'a>(&'a self, _: &'a UserInfo, _: &'a str) -> BoxFuture<'a, Result<bool, String>> {
        Box::pin(async { Ok(true) })
    }
    fn namespace_state<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<NamespaceState, String>> {
        Box::pin(async { Ok(NamespaceState::Active) })
    }
}

struct StaticDiscovery(Arc<Discovered>);

impl DiscoverySource for StaticDiscovery {
    fn discovered(&self, _: bool) -> BoxFuture<'_, Result<(Arc<Discovered>, bool), String>> {
        let d = self.0.clone();
        Box::pin(async move { Ok((d, false)) })
    }
}

fn rbac(kind: &str, plural: &str) -> DiscoveredResource {
    DiscoveredResource {
        group: "rbac.authorization.k8s.io".into(),
        version: "v1".into(),
        kind: kind.into(),
        plural: plural.into(),
        singular: kind.to_ascii_lowercase(),
        namespaced: true,
    }
}

fn names(tree: usize) -> (String, [String; 3], [String; 6]) {
    let root = format!("t{tree}");
    let children = [0, 1, 2].map(|c| format!("t{tree}-c{c}"));
    let grandchildren = [0, 1, 2, 3, 4, 5].map(|g| format!("t{tree}-c{}-g{}", g / 2, g % 2));
    (root, children, grandchildren)
}

fn role(kind: &str, ns: &str, name: &str, labels: Value, annotations: Value) -> Value {
    let mut object = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
        "metadata": {"name": name, "namespace": ns, "labels": labels, "annotations": annotations, "resourceVersion": "1"}});
    if kind == "Role" {
        object["rules"] = json!([{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]}]);
    } else {
        object["roleRef"] =
            json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"});
        object["subjects"] = json!([{"kind": "Group", "name": format!("{ns}-team")}]);
    }
    object
}

/// The forest: namespaces with their tree links and anchors, and the sources of Role and RoleBinding.
fn build(trees: usize) -> Context {
    let mut index = TreeIndex::new(NamespacePolicy::default());
    let mut cache = SourceNames::new(PropagationRules::default());
    let included = |_: &str| {
        let mut ns = ObservedNamespace::default();
        ns.labels.insert("hnc.x-k8s.io/included-namespace".into(), "true".into());
        ns.labels.insert("team".into(), "platform".into());
        ns
    };
    for t in 0..trees {
        let (root, children, grandchildren) = names(t);
        index.apply_namespace(&root, included(&root));
        for (i, child) in children.iter().enumerate() {
            let mut ns = included(child);
            ns.annotations.insert("hnc.x-k8s.io/subnamespace-of".into(), root.clone());
            index.apply_namespace(child, ns);
            let hc = ObservedHierarchy {
                spec: hnc_api::HierarchyConfigurationSpec {
                    parent: Some(root.clone()),
                    ..Default::default()
                },
                ..Default::default()
            };
            index.apply_hierarchy(child, hc);
            index.apply_anchor(
                &root,
                child,
                ObservedAnchor { state: Some("Ok".into()), ..Default::default() },
            );
            add(
                &mut cache,
                &TypeKey::new("rbac.authorization.k8s.io", "RoleBinding"),
                &role("RoleBinding", child, &format!("team-{i}"), json!({}), json!({})),
            );
        }
        for (g, grandchild) in grandchildren.iter().enumerate() {
            index.apply_namespace(grandchild, included(grandchild));
            let parent = children[g / 2].clone();
            let hc = ObservedHierarchy {
                spec: hnc_api::HierarchyConfigurationSpec { parent: Some(parent), ..Default::default() },
                ..Default::default()
            };
            index.apply_hierarchy(grandchild, hc);
            add(
                &mut cache,
                &TypeKey::new("rbac.authorization.k8s.io", "Role"),
                &role("Role", grandchild, "local-reader", json!({}), json!({})),
            );
        }
        add(
            &mut cache,
            &TypeKey::new("rbac.authorization.k8s.io", "Role"),
            &role("Role", &root, "tenant-reader", json!({}), json!({})),
        );
        add(
            &mut cache,
            &TypeKey::new("rbac.authorization.k8s.io", "RoleBinding"),
            &role("RoleBinding", &root, "tenant-admins", json!({}), json!({})),
        );
    }
    index.set_synced(true);
    index.publish();
    let active: ActiveTypes = Arc::new(vec![
        ActiveType {
            resource: rbac("Role", "roles"),
            mode: SyncMode::Propagate,
            spec_group: String::new(),
            spec_resource: String::new(),
        },
        ActiveType {
            resource: rbac("RoleBinding", "rolebindings"),
            mode: SyncMode::Propagate,
            spec_group: String::new(),
            spec_resource: String::new(),
        },
    ]);
    // The active types never change during the run; a receiver keeps the last value after its sender is gone.
    let (_, active) = watch::channel(active);
    let reader = cache.reader();
    cache.publish();
    Context {
        tree: index.reader(),
        sources: sources::from_source_names(reader),
        active,
        hnc_namespace: "hnc-system".into(),
        rules: Arc::new(PropagationRules::default()),
        server: Arc::new(Instant0),
    }
}

/// An UPDATE of the HierarchyConfiguration of `ns`.
fn hierarchy_update(ns: &str, object: Value, old: Value) -> Value {
    review(
        ("hnc.x-k8s.io", "v1alpha2", "HierarchyConfiguration"),
        "hierarchyconfigurations",
        "UPDATE",
        Some(ns),
        "hierarchy",
        object,
        old,
    )
}

fn review(
    kind: (&str, &str, &str),
    resource: &str,
    op: &str,
    ns: Option<&str>,
    name: &str,
    object: Value,
    old: Value,
) -> Value {
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {
        "uid": format!("{:x}", rand::random::<u64>()),
        "kind": {"group": kind.0, "version": kind.1, "kind": kind.2},
        "resource": {"group": kind.0, "version": kind.1, "resource": resource},
        "name": name, "namespace": ns, "operation": op,
        "userInfo": {"username": "alice", "groups": ["system:authenticated", "tenants"]},
        "object": object, "oldObject": old, "dryRun": false}})
}

fn namespace(name: &str, parent_label: Option<&str>, extra: &str) -> Value {
    let mut labels = json!({"hnc.x-k8s.io/included-namespace": "true", "team": "platform", "env": extra});
    labels[format!("{name}.tree.hnc.x-k8s.io/depth")] = json!("0");
    if let Some(p) = parent_label {
        labels[format!("{p}.tree.hnc.x-k8s.io/depth")] = json!("1");
    }
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

fn hc(ns: &str, parent: &str, cascade: bool) -> Value {
    json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HierarchyConfiguration",
        "metadata": {"name": "hierarchy", "namespace": ns}, "spec": {"parent": parent, "allowCascadingDeletion": cascade}})
}

/// One request of the mix: (path, body).
fn next_request(rng: &mut impl Rng, trees: usize) -> (&'static str, &'static str, Value) {
    let t = rng.random_range(0..trees);
    let (root, children, grandchildren) = names(t);
    let c = rng.random_range(0..3);
    let g = rng.random_range(0..6);
    let rbac = ("rbac.authorization.k8s.io", "v1", "Role");
    let roll = rng.random_range(0..100);
    match roll {
        0..20 => {
            let new = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": grandchildren[g], "labels": {"env": "dev"}}});
            let old = namespace(&grandchildren[g], None, "prod");
            (
                "namespace mutate",
                paths::MUTATE_NAMESPACE,
                review(("", "v1", "Namespace"), "namespaces", "UPDATE", None, &grandchildren[g], new, old),
            )
        }
        20..40 => {
            let (new, old) =
                (namespace(&children[c], Some(&root), "dev"), namespace(&children[c], Some(&root), "prod"));
            (
                "namespace validate",
                paths::VALIDATE_NAMESPACE,
                review(("", "v1", "Namespace"), "namespaces", "UPDATE", None, &children[c], new, old),
            )
        }
        40..55 => {
            let parent = &children[g / 2];
            let (new, old) = (hc(&grandchildren[g], parent, true), hc(&grandchildren[g], parent, false));
            (
                "hierarchy (unchanged parent)",
                paths::VALIDATE_HIERARCHY,
                hierarchy_update(&grandchildren[g], new, old),
            )
        }
        55..60 => {
            let (from, to) = (&children[g / 2], &children[(g / 2 + 1) % 3]);
            let (new, old) = (hc(&grandchildren[g], to, false), hc(&grandchildren[g], from, false));
            (
                "hierarchy (re-parent)",
                paths::VALIDATE_HIERARCHY,
                hierarchy_update(&grandchildren[g], new, old),
            )
        }
        60..90 => {
            let (ns, name) = match roll {
                60..75 => (grandchildren[g].clone(), format!("app-{}", rng.random_range(0..1000))),
                75..85 => (children[c].clone(), format!("app-{}", rng.random_range(0..1000))),
                _ => (root.clone(), "local-reader".to_owned()),
            };
            let object = role(
                "Role",
                &ns,
                &name,
                json!({}),
                json!({"propagate.hnc.x-k8s.io/treeSelect": format!("!{}", grandchildren[0])}),
            );
            (
                "object create",
                paths::VALIDATE_OBJECTS,
                review(rbac, "roles", "CREATE", Some(&ns), &name, object, Value::Null),
            )
        }
        90..95 => {
            let copy = |verbs: Value| {
                let mut r = role(
                    "Role",
                    &grandchildren[g],
                    "tenant-reader",
                    json!({"hnc.x-k8s.io/inherited-from": root}),
                    json!({}),
                );
                r["rules"][0]["verbs"] = verbs;
                r
            };
            (
                "object update (copy)",
                paths::VALIDATE_OBJECTS,
                review(
                    rbac,
                    "roles",
                    "UPDATE",
                    Some(&grandchildren[g]),
                    "tenant-reader",
                    copy(json!(["*"])),
                    copy(json!(["get", "list"])),
                ),
            )
        }
        _ => {
            let name = format!("t{t}-c{}", rng.random_range(3..100));
            let anchor = json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "SubnamespaceAnchor", "metadata": {"name": name, "namespace": root}});
            (
                "anchor create",
                paths::VALIDATE_ANCHOR,
                review(
                    ("hnc.x-k8s.io", "v1alpha2", "SubnamespaceAnchor"),
                    "subnamespaceanchors",
                    "CREATE",
                    Some(&root),
                    &name,
                    anchor,
                    Value::Null,
                ),
            )
        }
    }
}

type Timings = Arc<Mutex<BTreeMap<String, Vec<Duration>>>>;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn summary(label: &str, samples: &mut [Duration]) -> String {
    samples.sort();
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    format!(
        "{label:<30} n={:>7}  p50={:>7.0} µs  p99={:>7.0} µs  max={:>8.0} µs",
        samples.len(),
        us(percentile(samples, 0.50)),
        us(percentile(samples, 0.99)),
        us(*samples.last().unwrap()),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let ctx = build(args.trees);
    eprintln!("forest of {} namespaces built in {:?}", args.trees * 10, started.elapsed());

    let rbac_discovered =
        Arc::new(Discovered::new(vec![rbac("Role", "roles"), rbac("RoleBinding", "rolebindings")]));
    let timings: Timings = Arc::default();
    let recording = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let app = {
        let (timings, recording) = (timings.clone(), recording.clone());
        server::router(ctx, Arc::new(StaticDiscovery(rbac_discovered)), None).layer(middleware::from_fn(
            move |request: Request, next: Next| {
                let (timings, recording) = (timings.clone(), recording.clone());
                async move {
                    let path = request.uri().path().to_owned();
                    let started = Instant::now();
                    // The response body is produced before the handler returns, so this covers parse, decide,
                    // serialize.
                    let response: Response = next.run(request).await;
                    if recording.load(std::sync::atomic::Ordering::Relaxed) {
                        timings.lock().entry(path).or_default().push(started.elapsed());
                    }
                    response
                }
            },
        ))
    };

    let loopback =
        ServingNames { dns: vec!["localhost".into()], ips: vec!["127.0.0.1".parse()?], ..Default::default() };
    let bundle = certs::issue(&loopback, time::OffsetDateTime::now_utc())?;
    let cert = Arc::new(ReloadableCert::default());
    cert.load(&bundle.cert_pem, &bundle.key_pem)?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("https://127.0.0.1:{}", listener.local_addr()?.port());
    let stop = CancellationToken::new();
    let serving = tokio::spawn(tls::serve(listener, tls::server_config(cert), app, stop.clone()));

    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(bundle.ca_cert_pem.as_bytes())?)
        .pool_max_idle_per_host(256)
        .build()?;
    let client_side: Timings = Arc::default();
    let denied: Arc<Mutex<BTreeMap<&'static str, usize>>> = Arc::default();
    let mut rng = rand::rng();
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let warmup = Duration::from_secs(2);
    let total = warmup + Duration::from_secs(args.seconds);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let begin = Instant::now();
    let mut in_flight = tokio::task::JoinSet::new();
    let mut failures = 0usize;
    let mut sent = 0usize;
    while begin.elapsed() < total {
        ticker.tick().await;
        if begin.elapsed() >= warmup && !recording.load(std::sync::atomic::Ordering::Relaxed) {
            recording.store(true, std::sync::atomic::Ordering::Relaxed);
        }
        let (label, path, body) = next_request(&mut rng, args.trees);
        let (client, client_side, measured) =
            (client.clone(), client_side.clone(), begin.elapsed() >= warmup);
        let denied = denied.clone();
        let url = format!("{base}{path}");
        sent += usize::from(measured);
        in_flight.spawn(async move {
            let started = Instant::now();
            let answer = client.post(url).json(&body).send().await.ok()?.json::<Value>().await.ok()?;
            let allowed = answer.get("response")?.get("allowed")?.as_bool()?;
            if measured {
                client_side.lock().entry(label.to_owned()).or_default().push(started.elapsed());
                *denied.lock().entry(label).or_default() += usize::from(!allowed);
            }
            Some(())
        });
        while let Some(done) = in_flight.try_join_next() {
            failures += usize::from(!matches!(done, Ok(Some(()))));
        }
    }
    while let Some(done) = in_flight.join_next().await {
        failures += usize::from(!matches!(done, Ok(Some(()))));
    }
    let elapsed = begin.elapsed() - warmup;
    stop.cancel();
    let _ = serving.await;

    let server_side = std::mem::take(&mut *timings.lock());
    let mut all: Vec<Duration> = server_side.values().flatten().copied().collect();
    println!(
        "sent {sent} requests in {:.1} s ({:.0}/s), {failures} failed; {} namespaces, {} cores",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64(),
        args.trees * 10,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!("server-side (request received → response ready; TLS and network excluded):");
    println!("  {}", summary("all webhooks", &mut all));
    for (path, mut samples) in server_side {
        println!("  {}", summary(&path, &mut samples));
    }
    println!("client-side round trip over HTTPS on loopback, by request kind:");
    let mut client_side = std::mem::take(&mut *client_side.lock());
    let mut all: Vec<Duration> = client_side.values().flatten().copied().collect();
    println!("  {}", summary("all", &mut all));
    let denied = std::mem::take(&mut *denied.lock());
    for (label, samples) in client_side.iter_mut() {
        let denials = denied.get(label.as_str()).copied().unwrap_or_default();
        println!("  {}  denied {denials}", summary(label, samples));
    }
    Ok(())
}

/// Indexes a source object the way the propagation engine's watch does.
fn add(index: &mut SourceNames, ty: &TypeKey, object: &serde_json::Value) {
    let ns = object["metadata"]["namespace"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    index.apply(ty, ns, name, object);
}
