//! Hierarchical resource quotas end to end (spec §1.5, §8.9, §9; issue 17): apisim's ResourceQuota admission
//! charges each namespace's singleton `hrq.hnc.x-k8s.io` and calls HNC's `resourcequotas/status` webhook over
//! HTTPS, as kube-apiserver does. Upstream's e2e scenarios (limits are the strictest of the ancestry, sibling
//! usage counts against the common ancestor, denials in upstream's words, the `kubectl get hrq` summaries,
//! clean-up), then the concurrent-creates race upstream admits, across a handover of the trees.
//!
//! Against a real cluster these are skipped: they start replicas with `--enable-hrq`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use hnc_api::HierarchicalResourceQuota;
use hnc_e2e::forest::{SHORT_LEASE_ARGS, assignment};
use hnc_e2e::{TestEnv, eventually};
use hnc_shard::ShardRing;
use hnc_shard::ring::DEFAULT_VIRTUAL_NODES;
use k8s_openapi::api::core::v1::{Event, Pod, ResourceQuota, Secret};
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

const BINARY: &str = env!("CARGO_BIN_EXE_hnc-e2e-controller");
const CONVERGE: Duration = Duration::from_secs(60);
const SINGLETON: &str = "hrq.hnc.x-k8s.io";

/// A replica serving and registering HNC's webhooks (by URL, on loopback) with hierarchical quotas on.
const HRQ_ARGS: [&str; 5] = [
    "--webhook-server-port=0",
    "--webhook-url-base=https://127.0.0.1",
    "--enable-internal-cert-management",
    "--apiserver-qps-throttle=500",
    "--enable-hrq",
];

async fn hrq_env(replicas: &[&str], extra: &[&str]) -> anyhow::Result<Option<(TestEnv, Vec<usize>)>> {
    let mut env = TestEnv::start(BINARY).await?;
    if env.is_real_cluster() {
        eprintln!("skipped: starts replicas with --enable-hrq");
        return Ok(None);
    }
    let mut args = HRQ_ARGS.to_vec();
    args.extend_from_slice(extra);
    let mut started = Vec::new();
    for id in replicas {
        started.push(env.start_replica(id, &args).await?);
    }
    for r in &started {
        env.replica(*r).wait_ready(CONVERGE).await?;
    }
    // The quota webhooks are registered once the leader serves its certificate.
    let configs: Api<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration> =
        Api::all(env.client.clone());
    eventually(CONVERGE, "the quota webhooks to be registered", || async {
        let vwc = configs.get_opt("hnc-validating-webhook-configuration").await.ok()??;
        let hooks = vwc.webhooks?;
        let registered = ["hrq.hnc.x-k8s.io", "resourcesquotasstatus.hnc.x-k8s.io"]
            .iter()
            .all(|name| hooks.iter().any(|h| h.name == *name && h.client_config.ca_bundle.is_some()));
        registered.then_some(())
    })
    .await?;
    Ok(Some((env, started)))
}

async fn namespace(env: &TestEnv, name: &str, parent: Option<&str>) -> anyhow::Result<()> {
    env.create_namespace(name).await?;
    if let Some(parent) = parent {
        env.set_parent(name, Some(parent)).await?;
    }
    Ok(())
}

async fn put_hrq(client: &Client, ns: &str, name: &str, hard: serde_json::Value) -> Result<(), kube::Error> {
    let api: Api<HierarchicalResourceQuota> = Api::namespaced(client.clone(), ns);
    if api.get_opt(name).await?.is_some() {
        let patch = json!({"spec": {"hard": null}});
        api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await?;
        let patch = json!({"spec": {"hard": hard}});
        return api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.map(drop);
    }
    let hrq: HierarchicalResourceQuota = serde_json::from_value(json!({"apiVersion": "hnc.x-k8s.io/v1alpha2",
        "kind": "HierarchicalResourceQuota", "metadata": {"name": name, "namespace": ns}, "spec": {"hard": hard}}))
    .expect("an HRQ");
    api.create(&PostParams::default(), &hrq).await.map(drop)
}

async fn create_secret(client: &Client, ns: &str, name: &str) -> Result<(), kube::Error> {
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}})).unwrap();
    Api::<Secret>::namespaced(client.clone(), ns).create(&PostParams::default(), &secret).await.map(drop)
}

/// The singleton's `spec.hard` in `ns`, canonical amounts; None when there is none.
async fn singleton(client: &Client, ns: &str) -> Option<BTreeMap<String, String>> {
    let rq = Api::<ResourceQuota>::namespaced(client.clone(), ns).get_opt(SINGLETON).await.ok()??;
    Some(rq.spec?.hard?.into_iter().map(|(r, q)| (r, hnc_api::quantity::canonical(&q.0))).collect())
}

fn list(items: &[(&str, &str)]) -> BTreeMap<String, String> {
    items.iter().map(|(r, q)| ((*r).to_owned(), (*q).to_owned())).collect()
}

async fn hrq_status(client: &Client, ns: &str, name: &str) -> Option<(BTreeMap<String, String>, String)> {
    let hrq = Api::<HierarchicalResourceQuota>::namespaced(client.clone(), ns).get_opt(name).await.ok()??;
    let status = hrq.status?;
    let used = status
        .used
        .iter()
        .map(|(r, q)| {
            let text = match q {
                hnc_api::hrq::Quantity::Int(n) => n.to_string(),
                hnc_api::hrq::Quantity::String(s) => hnc_api::quantity::canonical(s),
            };
            (r.clone(), text)
        })
        .collect();
    Some((used, status.requests_summary))
}

fn denial(result: Result<(), kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(s)) => (s.code, s.message),
        Err(other) => (0, other.to_string()),
        Ok(()) => (200, String::new()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hierarchical_quotas_limit_subtrees_and_report_their_usage() -> anyhow::Result<()> {
    let Some((env, replicas)) = hrq_env(&["q1"], &["--excluded-namespace=kube-system"]).await? else {
        return Ok(());
    };
    let c = env.client.clone();
    let (p, c1, c2, g) = (env.ns("hrq-p"), env.ns("hrq-c1"), env.ns("hrq-c2"), env.ns("hrq-g"));
    namespace(&env, &p, None).await?;
    namespace(&env, &c1, Some(&p)).await?;
    namespace(&env, &c2, Some(&p)).await?;
    namespace(&env, &g, Some(&c1)).await?;

    // The singleton of each namespace asks for the strictest limits of its ancestry.
    put_hrq(&c, &p, "foo", json!({"secrets": "3", "pods": 3})).await?;
    put_hrq(&c, &c1, "bar", json!({"secrets": "100", "requests.cpu": "50"})).await?;
    let inherited = list(&[("pods", "3"), ("requests.cpu", "50"), ("secrets", "3")]);
    for (ns, want) in
        [(&p, list(&[("pods", "3"), ("secrets", "3")])), (&c1, inherited.clone()), (&g, inherited)]
    {
        eventually(CONVERGE, &format!("the singleton of {ns}"), || async {
            (singleton(&c, ns).await? == want).then_some(())
        })
        .await?;
    }
    eventually(CONVERGE, "the singleton of the sibling", || async {
        (singleton(&c, &c2).await? == list(&[("pods", "3"), ("secrets", "3")])).then_some(())
    })
    .await?;

    // A singleton HNC cannot write is reported on every HRQ above (upstream's CannotWriteResourceQuota), retried
    // with back-off, and written once it can be.
    let z = env.ns("hrq-z");
    namespace(&env, &z, Some(&c1)).await?;
    let sim = env.sim().expect("apisim");
    let refusal = sim.faults().add(hnc_apisim::FaultRule {
        verb: Some("POST".to_owned()),
        resource: Some("resourcequotas".to_owned()),
        user: Some(hnc_e2e::replica_user("q1")),
        latency: Duration::ZERO,
        error: Some(403),
        error_rate: 1.0,
        retry_after: None,
    });
    eventually(CONVERGE, "CannotWriteResourceQuota on foo and bar", || async {
        let mut found = 0;
        for (ns, hrq) in [(&p, "foo"), (&c1, "bar")] {
            let events = Api::<Event>::namespaced(c.clone(), ns).list(&ListParams::default()).await.ok()?;
            found += usize::from(events.items.iter().any(|e| {
                e.reason.as_deref() == Some("CannotWriteResourceQuota")
                    && e.involved_object.name.as_deref() == Some(hrq)
                    && e.message.as_deref().is_some_and(|m| {
                        m.contains(&format!(
                            "could not create/update lower-level ResourceQuota in namespace \"{z}\""
                        ))
                    })
            }));
        }
        (found == 2).then_some(())
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let refused = sim.writes().iter().filter(|w| w.resource == "resourcequotas" && w.namespace == z).count();
    assert!(refused <= 6, "{refused} refused creates in 2 s: retried without back-off");
    sim.faults().remove(refusal);
    eventually(CONVERGE, "the singleton once writes are allowed", || async {
        singleton(&c, &z).await.map(drop)
    })
    .await?;
    env.delete_namespace(&z).await?;

    // HNC's singleton left in a namespace HNC does not manage (say, excluded since it was written) is removed.
    let left: ResourceQuota = serde_json::from_value(json!({"metadata": {"name": SINGLETON,
        "namespace": "kube-system", "labels": {"hnc.x-k8s.io/hrq": "true"},
        "annotations": {"propagate.hnc.x-k8s.io/none": "true"}}, "spec": {"hard": {"pods": "1"}}}))?;
    Api::<ResourceQuota>::namespaced(c.clone(), "kube-system").create(&PostParams::default(), &left).await?;
    eventually(CONVERGE, "the singleton in the excluded namespace to go", || async {
        singleton(&c, "kube-system").await.is_none().then_some(())
    })
    .await?;

    // A singleton is HNC's: deleted or edited by someone else, it is put back.
    let quotas = Api::<ResourceQuota>::namespaced(c.clone(), &c2);
    quotas.delete(SINGLETON, &DeleteParams::default()).await?;
    eventually(CONVERGE, "the deleted singleton to be recreated", || async {
        (singleton(&c, &c2).await? == list(&[("pods", "3"), ("secrets", "3")])).then_some(())
    })
    .await?;
    let edit = json!({"spec": {"hard": {"secrets": "300", "pods": null}}});
    quotas.patch(SINGLETON, &PatchParams::default(), &Patch::Merge(&edit)).await?;
    eventually(CONVERGE, "the edited singleton to be restored", || async {
        (singleton(&c, &c2).await? == list(&[("pods", "3"), ("secrets", "3")])).then_some(())
    })
    .await?;

    // Usage in siblings adds up in the common ancestor's HRQ, summaries as `kubectl get hrq` shows them.
    create_secret(&c, &c1, "s1").await?;
    create_secret(&c, &c2, "s2").await?;
    eventually(CONVERGE, "foo's status to show both secrets", || async {
        let (used, summary) = hrq_status(&c, &p, "foo").await?;
        (used == list(&[("pods", "0"), ("secrets", "2")]) && summary == "pods: 0/3, secrets: 2/3")
            .then_some(())
    })
    .await?;
    eventually(CONVERGE, "bar's status to show c1's secret", || async {
        let (used, _) = hrq_status(&c, &c1, "bar").await?;
        (used == list(&[("requests.cpu", "0"), ("secrets", "1")])).then_some(())
    })
    .await?;

    // The third secret fits anywhere in the subtree; the fourth is denied everywhere, in upstream's words.
    create_secret(&c, &g, "s3").await?;
    let (code, message) = denial(create_secret(&c, &p, "s4").await);
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains(&format!(
            "exceeded hierarchical quota in namespace \"{p}\": \"foo\", requested: secrets=1, used: secrets=3, \
             limited: secrets=3"
        )),
        "{message}"
    );
    assert!(message.contains("resourcesquotasstatus.hnc.x-k8s.io"), "{message}");
    let (code, _) = denial(create_secret(&c, &c2, "s4").await);
    assert_eq!(code, 403);
    // The owner reports each HRQ's usage and limits as metrics; denials are counted.
    let used = format!("hnc_hrq_used{{hrq_namespace=\"{p}\",hrq=\"foo\",resource=\"secrets\"}} 3");
    let hard = format!("hnc_hrq_hard{{hrq_namespace=\"{p}\",hrq=\"foo\",resource=\"secrets\"}} 3");
    let metrics = eventually(CONVERGE, "the HRQ metrics", || async {
        let metrics = env.replica(replicas[0]).get_metrics().await.ok()?;
        (metrics.lines().any(|l| l == used) && metrics.lines().any(|l| l == hard)).then_some(metrics)
    })
    .await?;
    assert!(hnc_e2e::metric_sum(&metrics, "hnc_hrq_denials_total") >= 2.0);

    // Freed usage can be used again.
    Api::<Secret>::namespaced(c.clone(), &g).delete("s3", &DeleteParams::default()).await?;
    eventually(CONVERGE, "the freed secret to be usable in the parent", || async {
        create_secret(&c, &p, "s4").await.ok()
    })
    .await?;

    // Bad limits are refused by the HRQ validator, with the API server's own words.
    let (code, message) = denial(put_hrq(&c, &p, "bad", json!({"foobar": "1"})).await);
    assert_eq!(code, 422, "{message}");
    assert!(message.contains("spec.hard[foobar]"), "{message}");
    assert!(message.contains("must be a standard resource for quota"), "{message}");
    let (code, message) = denial(put_hrq(&c, &p, "bad", json!({"pods": "-1"})).await);
    assert_eq!(code, 422, "{message}");
    assert!(message.contains("must be greater than or equal to 0"), "{message}");
    let (code, message) = denial(put_hrq(&c, "kube-system", "bad", json!({"pods": "1"})).await);
    assert_eq!(code, 403, "{message}");
    assert!(message.contains("not managed by HNC"), "{message}");

    // A namespace moved in with its usage takes a full subtree over its budget: the hierarchy change is legal,
    // the over-use is reported (status, condition, event) and further uses are denied.
    let x = env.ns("hrq-x");
    namespace(&env, &x, None).await?;
    create_secret(&c, &x, "x1").await?;
    create_secret(&c, &x, "x2").await?;
    env.set_parent(&x, Some(&p)).await?;
    eventually(CONVERGE, "foo's status over its limit, with the Exceeded condition", || async {
        let hrq = Api::<HierarchicalResourceQuota>::namespaced(c.clone(), &p).get_opt("foo").await.ok()??;
        let status = hrq.status?;
        let exceeded = status.conditions.iter().any(|cond| {
            cond.type_ == "Exceeded"
                && cond.reason == "SubtreeOverLimit"
                && cond.message.contains("secrets: 5/3")
        });
        (status.requests_summary == "pods: 0/3, secrets: 5/3" && exceeded).then_some(())
    })
    .await?;
    eventually(CONVERGE, "an OverHierarchicalQuota event on foo", || async {
        let events = Api::<Event>::namespaced(c.clone(), &p).list(&ListParams::default()).await.ok()?;
        events
            .items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("OverHierarchicalQuota")
                    && e.involved_object.name.as_deref() == Some("foo")
            })
            .then_some(())
    })
    .await?;
    eventually(CONVERGE, "the moved namespace's singleton", || async {
        (singleton(&c, &x).await? == list(&[("pods", "3"), ("secrets", "3")])).then_some(())
    })
    .await?;
    let (code, message) = denial(create_secret(&c, &x, "x3").await);
    assert_eq!(code, 403, "{message}");
    // Pods are still within the budget: an over-used resource blocks only itself.
    Api::<Pod>::namespaced(c.clone(), &x).create(&PostParams::default(), &pod(&x, "fits")).await?;

    // Raising the limit clears the condition.
    put_hrq(&c, &p, "foo", json!({"secrets": "10", "pods": 3})).await?;
    eventually(CONVERGE, "foo back within its limit", || async {
        let hrq = Api::<HierarchicalResourceQuota>::namespaced(c.clone(), &p).get_opt("foo").await.ok()??;
        let status = hrq.status?;
        (status.requests_summary == "pods: 1/3, secrets: 5/10" && status.conditions.is_empty()).then_some(())
    })
    .await?;
    env.set_parent(&x, None).await?;

    // A namespace moved out of every HRQ's subtree loses its singleton; deleting the HRQs removes the rest.
    env.set_parent(&c2, None).await?;
    eventually(CONVERGE, "the moved namespace's singleton to go", || async {
        singleton(&c, &c2).await.is_none().then_some(())
    })
    .await?;
    for (ns, name) in [(&c1, "bar"), (&p, "foo")] {
        Api::<HierarchicalResourceQuota>::namespaced(c.clone(), ns)
            .delete(name, &DeleteParams::default())
            .await?;
    }
    for ns in [&p, &c1, &g] {
        eventually(CONVERGE, &format!("the singleton of {ns} to go"), || async {
            singleton(&c, ns).await.is_none().then_some(())
        })
        .await?;
    }
    // Each change above was written once or a few times, never in a loop.
    let writes = env.writes_by("q1");
    let hrq_writes = writes.iter().filter(|w| w.resource == "hierarchicalresourcequotas").count();
    let singleton_writes = writes.iter().filter(|w| w.resource == "resourcequotas").count();
    eprintln!("HRQ writes: {hrq_writes}, singleton writes: {singleton_writes}");
    assert!(hrq_writes <= 40, "{hrq_writes} HRQ writes");
    assert!(singleton_writes <= 40, "{singleton_writes} singleton writes");
    Ok(())
}

fn pod(ns: &str, name: &str) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9"}]}}))
    .expect("a Pod")
}

/// The race upstream admits on purpose: creates in sibling namespaces are charged to different ResourceQuotas,
/// so they do not conflict at the API server and can all pass a check against the same subtree total. Here
/// four siblings per tree create pods at once under an HRQ with room for ten, while the replica owning some
/// of the trees is killed and another takes them over: no tree ever holds more than ten pods.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creates_in_siblings_never_exceed_the_budget_across_a_handover() -> anyhow::Result<()> {
    let lease: Vec<&str> = SHORT_LEASE_ARGS
        .iter()
        .copied()
        .filter(|a| !a.starts_with("--no-webhooks") && !a.starts_with("--apiserver-qps"))
        .collect();
    let Some((mut env, replicas)) = hrq_env(&["h1", "h2"], &lease).await? else { return Ok(()) };
    let c = env.client.clone();
    const TREES: usize = 6;
    const CHILDREN: usize = 4;
    const BUDGET: usize = 10;
    const ATTEMPTS: usize = 8;
    let mut trees = Vec::new();
    for t in 0..TREES {
        let root = env.ns(&format!("race-{t}"));
        namespace(&env, &root, None).await?;
        let mut children = Vec::new();
        for k in 0..CHILDREN {
            let child = env.ns(&format!("race-{t}-{k}"));
            namespace(&env, &child, Some(&root)).await?;
            children.push(child);
        }
        put_hrq(&c, &root, "budget", json!({"pods": BUDGET.to_string()})).await?;
        trees.push((root, children));
    }
    for (_, children) in &trees {
        for child in children {
            eventually(CONVERGE, &format!("the singleton of {child}"), || async {
                singleton(&c, child).await.map(drop)
            })
            .await?;
        }
    }

    // The replica to kill: the one that is not the leader (the leader serves the webhooks); it must hold
    // some of the trees.
    let published = eventually(CONVERGE, "a published assignment", || assignment(&env)).await?;
    let leader = published.leader.as_str().to_owned();
    let victim = if leader == "h1" { 1 } else { 0 };
    let ring = ShardRing::new(16, DEFAULT_VIRTUAL_NODES);
    let victim_id = ["h1", "h2"][victim];
    let held: Vec<&String> = trees
        .iter()
        .map(|(root, _)| root)
        .filter(|root| published.owners.owner(ring.shard_of(root)).map(|r| r.as_str()) == Some(victim_id))
        .collect();
    eprintln!("killing {victim_id}, which holds {} of {TREES} trees", held.len());

    let admitted = Arc::new(AtomicUsize::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for (t, (_, children)) in trees.iter().enumerate() {
        for (k, child) in children.iter().enumerate() {
            let (c, child, admitted) = (c.clone(), child.clone(), admitted.clone());
            tasks.spawn(async move {
                let api = Api::<Pod>::namespaced(c, &child);
                for n in 0..ATTEMPTS {
                    let name = format!("p-{t}-{k}-{n}");
                    if api.create(&PostParams::default(), &pod(&child, &name)).await.is_ok() {
                        admitted.fetch_add(1, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            });
        }
    }
    tokio::time::sleep(Duration::from_millis(150)).await;
    env.kill_replica(replicas[victim]);
    while tasks.join_next().await.is_some() {}

    for (root, children) in &trees {
        let mut pods = 0;
        for child in children {
            pods += Api::<Pod>::namespaced(c.clone(), child).list(&ListParams::default()).await?.items.len();
        }
        assert!(pods <= BUDGET, "tree {root} holds {pods} pods, over its budget of {BUDGET}");
        eprintln!("{root}: {pods} pods");
        // The new owner reports the tree's real usage.
        eventually(CONVERGE, &format!("{root}'s HRQ status"), || async {
            let (used, _) = hrq_status(&c, root, "budget").await?;
            (used.get("pods").map(String::as_str) == Some(pods.to_string().as_str())).then_some(())
        })
        .await?;
    }
    assert!(admitted.load(Ordering::Relaxed) >= TREES, "creates were admitted at all");
    Ok(())
}

fn pod_requesting(ns: &str, name: &str, cpu: &str) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [{"name": "c", "image": "registry.k8s.io/pause:3.9",
            "resources": {"requests": {"cpu": cpu}, "limits": {"cpu": cpu}}}]}}))
    .expect("a Pod")
}

/// Decimal amounts add up exactly (upstream #292 concerns their parsing): three pods of `0.1` CPU fill a budget
/// of `300m`, written as a decimal string; a fourth of one millicore does not fit, and the HRQ shows `300m`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decimal_amounts_add_up_exactly() -> anyhow::Result<()> {
    let Some((env, _)) = hrq_env(&["d1"], &[]).await? else { return Ok(()) };
    let c = env.client.clone();
    let (p, a, b) = (env.ns("cpu-p"), env.ns("cpu-a"), env.ns("cpu-b"));
    namespace(&env, &p, None).await?;
    namespace(&env, &a, Some(&p)).await?;
    namespace(&env, &b, Some(&p)).await?;
    put_hrq(&c, &p, "cpu", json!({"requests.cpu": "0.3", "limits.cpu": "0.3"})).await?;
    for ns in [&p, &a, &b] {
        eventually(CONVERGE, &format!("the singleton of {ns}"), || async {
            (singleton(&c, ns).await? == list(&[("limits.cpu", "300m"), ("requests.cpu", "300m")]))
                .then_some(())
        })
        .await?;
    }
    let pods = |ns: &str| Api::<Pod>::namespaced(c.clone(), ns);
    pods(&a).create(&PostParams::default(), &pod_requesting(&a, "one", "0.1")).await?;
    pods(&b).create(&PostParams::default(), &pod_requesting(&b, "two", "100m")).await?;
    pods(&p).create(&PostParams::default(), &pod_requesting(&p, "three", "0.1")).await?;
    let (code, message) =
        denial(pods(&b).create(&PostParams::default(), &pod_requesting(&b, "four", "1m")).await.map(drop));
    assert_eq!(code, 403, "{message}");
    assert!(
        message.contains("requested: limits.cpu=1m, used: limits.cpu=300m, limited: limits.cpu=300m"),
        "{message}"
    );
    eventually(CONVERGE, "the HRQ to show exactly 300m", || async {
        let (_, summary) = hrq_status(&c, &p, "cpu").await?;
        let hrq = Api::<HierarchicalResourceQuota>::namespaced(c.clone(), &p).get_opt("cpu").await.ok()??;
        (summary == "requests.cpu: 300m/300m" && hrq.status?.limits_summary == "limits.cpu: 300m/300m")
            .then_some(())
    })
    .await?;
    Ok(())
}
