//! The propagation engine against apisim through the real binary: apisim slows the controller's writes so that a
//! change arrives while a copy's write is on its way, or fails its watches while objects are deleted.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use hnc_apisim::{ApiSim, Config, FaultRule};
use k8s_openapi::api::rbac::v1::Role;
use kube::api::{Api, DeleteParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

const CONTROLLER_USER: &str = "system:serviceaccount:hnc-system:hnc";

struct Controller {
    child: Child,
    metrics: String,
    health: String,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Controller {
    /// Starts the controller as [`CONTROLLER_USER`] and reads its metrics address from its JSON log.
    fn start(sim: &ApiSim, dir: &std::path::Path) -> Controller {
        Controller::start_with(sim, dir, &[])
    }

    /// [`Controller::start`] with `extra` arguments.
    fn start_with(sim: &ApiSim, dir: &std::path::Path, extra: &[&str]) -> Controller {
        sim.add_user("hnc-token", CONTROLLER_USER, &["system:serviceaccounts", "system:masters"]);
        let kubeconfig = dir.join("kubeconfig-hnc");
        sim.write_kubeconfig(&kubeconfig, "hnc-token").unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_hnc-controller"))
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--no-webhooks", "--metrics-addr=127.0.0.1:0", "--health-probe-bind-address=127.0.0.1:0"])
            .args(extra)
            .env_remove("KUBECONFIG")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let (metrics, health) = loop {
            let line = lines.next().expect("controller exited before listening").unwrap();
            let v: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
            if v["message"] == "ops server listening" {
                let addr = |field: &str| v[field].as_str().unwrap().to_owned();
                break (addr("metrics_addr"), addr("health_addr"));
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Controller { child, metrics, health }
    }

    /// `/readyz`'s status code and body.
    async fn readyz(&self) -> (u16, String) {
        match reqwest::get(format!("http://{}/readyz", self.health)).await {
            Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
            Err(e) => (0, e.to_string()),
        }
    }

    /// The sum of metric `name` over its label sets (0 when not reported).
    async fn metric(&self, name: &str) -> f64 {
        let Ok(response) = reqwest::get(format!("http://{}/metrics", self.metrics)).await else { return 0.0 };
        let text = response.text().await.unwrap_or_default();
        text.lines()
            .filter(|l| l.strip_prefix(name).is_some_and(|rest| rest.starts_with(['{', ' '])))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn role(ns: &str, name: &str) -> serde_json::Value {
    json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": name, "namespace": ns}, "rules": []})
}

/// apisim with HNC's CRDs and the namespaces `hnc-system`, `parent` and `child` (a child of `parent`), and an
/// admin client.
async fn parent_and_child() -> (ApiSim, kube::Client) {
    let sim = ApiSim::start(Config::default()).await.unwrap();
    support::install_hnc_crds(&sim);
    for ns in ["hnc-system", "parent", "child"] {
        sim.create("", "namespaces", "", json!({"metadata": {"name": ns}})).unwrap();
    }
    sim.create(
        "hnc.x-k8s.io",
        "hierarchyconfigurations",
        "child",
        json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HierarchyConfiguration",
            "metadata": {"name": "hierarchy", "namespace": "child"}, "spec": {"parent": "parent"}}),
    )
    .unwrap();
    let admin = {
        let kubeconfig = Kubeconfig::from_yaml(&sim.kubeconfig_yaml(sim.admin_token())).unwrap();
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
        kube::Client::try_from(config).unwrap()
    };
    (sim, admin)
}

/// The propagated types' watches keep no list of the cluster's objects; the engine finds what a relist implies
/// from what it holds: a source deleted while its watch was down takes its copies with it, and a copy deleted
/// meanwhile is created again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_deleted_while_the_watch_was_down_is_followed_after_the_relist() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, admin) = parent_and_child().await;
    let (sources, copies) =
        (Api::<Role>::namespaced(admin.clone(), "parent"), Api::<Role>::namespaced(admin, "child"));
    let controller = Controller::start(&sim, dir.path());
    for name in ["kept", "gone"] {
        sim.create("rbac.authorization.k8s.io", "roles", "parent", role("parent", name)).unwrap();
    }
    for name in ["kept", "gone"] {
        eventually(&format!("the copy {name}"), Duration::from_secs(60), || async {
            copies.get_opt(name).await.ok().flatten().is_some()
        })
        .await;
    }

    // The controller's Role watch and lists fail; meanwhile a source and a copy are deleted and the history is
    // compacted, so the watch cannot resume: it must list again.
    let down: Vec<_> = ["WATCH", "LIST"]
        .into_iter()
        .map(|verb| {
            sim.faults().add(FaultRule {
                verb: Some(verb.into()),
                resource: Some("roles".into()),
                user: Some(CONTROLLER_USER.into()),
                error: Some(500),
                error_rate: 1.0,
                ..Default::default()
            })
        })
        .collect();
    sim.faults().drop_watches();
    tokio::time::sleep(Duration::from_millis(300)).await;
    sources.delete("gone", &DeleteParams::default()).await.unwrap();
    copies.delete("kept", &DeleteParams::default()).await.unwrap();
    sim.compact();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for rule in down {
        sim.faults().remove(rule);
    }

    eventually("the copy of the deleted source to go", Duration::from_secs(60), || async {
        copies.get_opt("gone").await.ok().flatten().is_none()
    })
    .await;
    eventually("the deleted copy to be created again", Duration::from_secs(60), || async {
        copies.get_opt("kept").await.ok().flatten().is_some()
    })
    .await;
    drop(controller);
    sim.shutdown().await;
}

/// Admission's conflict checks read the source index: a replica whose Role list cannot complete is not ready,
/// and says what it waits for; it becomes ready once the list goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_is_not_ready_before_every_type_is_listed_into_the_source_index() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, _admin) = parent_and_child().await;
    let failing = sim.faults().add(FaultRule {
        verb: Some("LIST".into()),
        resource: Some("roles".into()),
        user: Some(CONTROLLER_USER.into()),
        error: Some(500),
        error_rate: 1.0,
        ..Default::default()
    });
    let controller = Controller::start(&sim, dir.path());
    // Long enough for everything else (the hierarchy, the other types) to be listed.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (code, body) = controller.readyz().await;
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("sources"), "{body}");
    assert!(!body.contains("hierarchy"), "the hierarchy is listed: {body}");
    sim.faults().remove(failing);
    eventually("the replica to be ready", Duration::from_secs(60), || async {
        controller.readyz().await.0 == 200
    })
    .await;
    drop(controller);
    sim.shutdown().await;
}

/// A source deleted while the create of its copy is on its way: the copy lands after the engine has seen the
/// deletion, and must then be deleted too (not left until the next full resync, ten minutes later).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_whose_source_is_deleted_while_it_is_being_created_is_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, admin) = parent_and_child().await;
    let (sources, copies) =
        (Api::<Role>::namespaced(admin.clone(), "parent"), Api::<Role>::namespaced(admin, "child"));
    let controller = Controller::start(&sim, dir.path());

    // Propagation works: a first source is copied.
    sim.create("rbac.authorization.k8s.io", "roles", "parent", role("parent", "first")).unwrap();
    eventually("the first copy", Duration::from_secs(60), || async {
        copies.get_opt("first").await.ok().flatten().is_some()
    })
    .await;

    // The controller's creates of Roles now take 2 s to be answered.
    sim.faults().add(FaultRule {
        verb: Some("POST".into()),
        resource: Some("roles".into()),
        user: Some(CONTROLLER_USER.into()),
        latency: Duration::from_secs(2),
        ..Default::default()
    });
    // Whether the create's answer or its watch event reaches the controller first is a race; the first is the
    // one that left the copy behind. Several copies make it all but certain that one of them meets it.
    let names: Vec<String> = (0..4).map(|i| format!("r{i}")).collect();
    let planned = controller.metric("hnc_planned_writes_total").await;
    for name in &names {
        sim.create("rbac.authorization.k8s.io", "roles", "parent", role("parent", name)).unwrap();
    }
    eventually("the copies' creates to be submitted", Duration::from_secs(30), || async {
        controller.metric("hnc_planned_writes_total").await >= planned + names.len() as f64
    })
    .await;
    for name in &names {
        sources.delete(name, &DeleteParams::default()).await.unwrap();
    }

    // The copies are created (the deletions reached the controller while the creates were on their way) and
    // deleted.
    let writes_of = |sim: &ApiSim, user: &str, verb: &str, ns: &str, name: &str| {
        sim.writes().iter().position(|w| {
            w.user == user && w.verb == verb && w.namespace == ns && w.name == name && w.code < 300
        })
    };
    for name in &names {
        eventually(&format!("child/{name} to be created"), Duration::from_secs(30), || async {
            writes_of(&sim, CONTROLLER_USER, "POST", "child", name).is_some()
        })
        .await;
        assert!(
            writes_of(&sim, "admin", "DELETE", "parent", name)
                < writes_of(&sim, CONTROLLER_USER, "POST", "child", name),
            "the source {name} was deleted before its copy's create was answered"
        );
    }
    for name in &names {
        eventually(&format!("child/{name} to be deleted again"), Duration::from_secs(30), || async {
            copies.get_opt(name).await.ok().flatten().is_none()
        })
        .await;
        assert!(
            writes_of(&sim, CONTROLLER_USER, "DELETE", "child", name).is_some(),
            "the controller deleted it"
        );
    }
    sim.shutdown().await;
}

/// A replica holds at most `--max-writes-in-flight` copy writes at a time; what a plan finds beyond that waits as
/// names and is planned again as writes finish. Every copy is still written, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_beyond_the_in_flight_bound_wait_and_are_all_made_once() {
    const CHILDREN: usize = 40;
    const SOURCES: usize = 3;
    let dir = tempfile::tempdir().unwrap();
    let (sim, admin) = parent_and_child().await;
    for i in 0..CHILDREN {
        let name = format!("kid-{i}");
        sim.create("", "namespaces", "", json!({"metadata": {"name": name}})).unwrap();
        sim.create(
            "hnc.x-k8s.io",
            "hierarchyconfigurations",
            &name,
            json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HierarchyConfiguration",
                "metadata": {"name": "hierarchy", "namespace": name}, "spec": {"parent": "parent"}}),
        )
        .unwrap();
    }
    for s in 0..SOURCES {
        sim.create("rbac.authorization.k8s.io", "roles", "parent", role("parent", &format!("source-{s}")))
            .unwrap();
    }
    let controller = Controller::start_with(&sim, dir.path(), &["--max-writes-in-flight=7"]);
    // `child` is a child of `parent` too.
    let expected = (CHILDREN + 1) * SOURCES;
    let roles: Api<Role> = Api::all(admin);
    eventually("every copy", Duration::from_secs(120), || async {
        let listed = roles.list(&Default::default()).await.map(|l| l.items).unwrap_or_default();
        listed.iter().filter(|r| r.metadata.namespace.as_deref() != Some("parent")).count() == expected
    })
    .await;
    assert!(
        controller.metric("hnc_propagation_deferred_writes_total").await > 0.0,
        "a plan of {expected} copies with room for 7 deferred some"
    );
    let creates = sim
        .writes()
        .into_iter()
        .filter(|w| w.user == CONTROLLER_USER && w.resource == "roles" && w.verb == "POST")
        .count();
    assert_eq!(creates, expected, "each copy is created once");
    drop(controller);
    sim.shutdown().await;
}
