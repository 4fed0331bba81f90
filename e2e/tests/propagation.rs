//! The policy half of HNC end to end (spec §6, §7): copies follow their sources through create, update,
//! delete and re-parenting; conflicting objects are overwritten; the exception annotations and built-in
//! exclusions; a halted subtree is frozen and then converges; RoleBinding roleRef changes; types added,
//! switched to Remove and custom resources through the HNCConfiguration.

use std::collections::BTreeMap;
use std::time::Duration;

use hnc_e2e::{TestEnv, eventually, metric_sum};
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use kube::api::{DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const BINARY: &str = env!("CARGO_BIN_EXE_hnc-e2e-controller");
const CONVERGE: Duration = Duration::from_secs(60);

async fn env() -> anyhow::Result<TestEnv> {
    let mut env = TestEnv::start(BINARY).await?;
    if !env.is_real_cluster() {
        let r = env.start_replica("hnc", &["--no-webhooks", "--apiserver-qps-throttle=500"]).await?;
        env.replica(r).wait_ready(CONVERGE).await?;
    }
    Ok(env)
}

fn role(name: &str, verbs: &[&str], annotations: &[(&str, &str)]) -> Role {
    Role {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            annotations: Some(annotations.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()),
            ..Default::default()
        },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["pods".into()]),
            verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
            ..Default::default()
        }]),
    }
}

async fn create_role(env: &TestEnv, ns: &str, role: &Role) -> anyhow::Result<()> {
    Api::<Role>::namespaced(env.client.clone(), ns).create(&PostParams::default(), role).await?;
    Ok(())
}

/// `Some(inherited-from)` of the role `name` in `ns` (`Some("")` for a source), `None` if absent.
async fn role_origin(env: &TestEnv, ns: &str, name: &str) -> Option<String> {
    let role = Api::<Role>::namespaced(env.client.clone(), ns).get_opt(name).await.ok()??;
    Some(role.labels().get("hnc.x-k8s.io/inherited-from").cloned().unwrap_or_default())
}

async fn copy_from(env: &TestEnv, ns: &str, name: &str, source: &str) -> anyhow::Result<()> {
    eventually(CONVERGE, &format!("{ns}/{name} to be a copy from {source}"), || async {
        (role_origin(env, ns, name).await? == source).then_some(())
    })
    .await
}

async fn no_role(env: &TestEnv, ns: &str, name: &str) -> anyhow::Result<()> {
    eventually(CONVERGE, &format!("{ns}/{name} to be absent"), || async {
        role_origin(env, ns, name).await.is_none().then_some(())
    })
    .await
}

/// root ← mid ← leaf, plus `other` (a separate root).
async fn forest(env: &TestEnv) -> anyhow::Result<[String; 4]> {
    let names = ["root", "mid", "leaf", "other"].map(|n| env.ns(n));
    for ns in &names {
        env.create_namespace(ns).await?;
    }
    env.set_parent(&names[1], Some(&names[0])).await?;
    env.set_parent(&names[2], Some(&names[1])).await?;
    Ok(names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_follow_their_source() -> anyhow::Result<()> {
    let env = env().await?;
    let [root, mid, leaf, other] = forest(&env).await?;
    create_role(&env, &root, &role("admin", &["get"], &[])).await?;
    copy_from(&env, &mid, "admin", &root).await?;
    copy_from(&env, &leaf, "admin", &root).await?;
    assert!(role_origin(&env, &other, "admin").await.is_none());
    let copy = Api::<Role>::namespaced(env.client.clone(), &leaf).get("admin").await?;
    assert_eq!(copy.labels().get("app.kubernetes.io/managed-by").map(String::as_str), Some("hnc.x-k8s.io"));

    // An update reaches every copy.
    let patch = json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]});
    Api::<Role>::namespaced(env.client.clone(), &root)
        .patch("admin", &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    eventually(CONVERGE, "the update to reach the leaf", || async {
        let copy = Api::<Role>::namespaced(env.client.clone(), &leaf).get("admin").await.ok()?;
        (copy.rules?.first()?.verbs.len() == 2).then_some(())
    })
    .await?;

    // Re-parenting: the leaf moves under `other` and loses the copy; `other`'s own role reaches it.
    create_role(&env, &other, &role("other-role", &["get"], &[])).await?;
    env.set_parent(&leaf, Some(&other)).await?;
    no_role(&env, &leaf, "admin").await?;
    copy_from(&env, &leaf, "other-role", &other).await?;

    // Deleting the source deletes its copies.
    Api::<Role>::namespaced(env.client.clone(), &root).delete("admin", &DeleteParams::default()).await?;
    no_role(&env, &mid, "admin").await?;
    Ok(())
}

/// A regression test for copies written twice on kube-apiserver: sources listed at start carry no TypeMeta,
/// copies seen through the watch do, the server defaults RoleBinding subjects and turns empty rules into
/// null, and objects carry managedFields. None of that may make a copy look out of date.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_copy_is_written_once() -> anyhow::Result<()> {
    let mut env = TestEnv::start(BINARY).await?;
    let [root, mid, leaf, _] = forest(&env).await?;
    create_role(&env, &root, &role("viewer", &["get"], &[])).await?;
    let empty = Role {
        metadata: ObjectMeta { name: Some("empty".into()), ..Default::default() },
        rules: Some(vec![]),
    };
    create_role(&env, &root, &empty).await?;
    let binding = RoleBinding {
        metadata: ObjectMeta { name: Some("viewers".into()), ..Default::default() },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: "viewer".into(),
        },
        // No apiGroup: the server defaults it for users and groups.
        subjects: Some(vec![
            Subject { kind: "User".into(), name: "alice".into(), ..Default::default() },
            Subject { kind: "Group".into(), name: "devs".into(), ..Default::default() },
        ]),
    };
    Api::<RoleBinding>::namespaced(env.client.clone(), &root)
        .create(&PostParams::default(), &binding)
        .await?;
    // Started after the sources exist, so that it lists them.
    let replica = match env.is_real_cluster() {
        true => None,
        false => Some(env.start_replica("hnc", &["--no-webhooks", "--apiserver-qps-throttle=500"]).await?),
    };
    if let Some(r) = replica {
        env.replica(r).wait_ready(CONVERGE).await?;
    }
    for name in ["viewer", "empty"] {
        copy_from(&env, &leaf, name, &root).await?;
    }
    eventually(CONVERGE, "the binding to reach the leaf", || async {
        Api::<RoleBinding>::namespaced(env.client.clone(), &leaf).get_opt("viewers").await.ok()?.map(|_| ())
    })
    .await?;
    if replica.is_none() {
        return Ok(());
    }
    // Every echo of those copies has been planned from, and whatever that wrote has been sent.
    everything_before_is_processed(&env, &root, &leaf, "marker-cold").await?;
    let copies = |env: &TestEnv, from: usize| -> BTreeMap<(String, String, String), usize> {
        let mut count = BTreeMap::new();
        for w in env.cluster_writes_by("hnc").into_iter().skip(from) {
            if (w.resource == "roles" || w.resource == "rolebindings") && !w.name.starts_with("marker-") {
                *count.entry((w.resource, w.namespace, w.name)).or_default() += 1;
            }
        }
        count
    };
    let cold = copies(&env, 0);
    assert_eq!(cold.len(), 6, "three copies in each of mid and leaf: {cold:?}");
    assert!(cold.values().all(|n| *n == 1), "a copy was written more than once: {cold:?}");

    // An update of the source writes each copy once more, and nothing else.
    let before = env.cluster_writes_by("hnc").len();
    let patch = json!({"rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]});
    Api::<Role>::namespaced(env.client.clone(), &root)
        .patch("viewer", &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    eventually(CONVERGE, "the update to reach the leaf", || async {
        let copy = Api::<Role>::namespaced(env.client.clone(), &leaf).get("viewer").await.ok()?;
        (copy.rules?.first()?.verbs.len() == 2).then_some(())
    })
    .await?;
    everything_before_is_processed(&env, &root, &leaf, "marker-update").await?;
    let update = copies(&env, before);
    let expected: BTreeMap<_, _> = [&mid, &leaf]
        .iter()
        .map(|ns| (("roles".to_owned(), (*ns).clone(), "viewer".to_owned()), 1))
        .collect();
    assert_eq!(update, expected);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_object_below_is_overwritten_and_the_highest_source_wins() -> anyhow::Result<()> {
    let env = env().await?;
    let [root, mid, leaf, _] = forest(&env).await?;
    create_role(&env, &leaf, &role("shared", &["delete"], &[])).await?;
    create_role(&env, &mid, &role("shared", &["list"], &[])).await?;
    copy_from(&env, &leaf, "shared", &mid).await?;
    create_role(&env, &root, &role("shared", &["get"], &[])).await?;
    copy_from(&env, &mid, "shared", &root).await?;
    copy_from(&env, &leaf, "shared", &root).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exception_annotations_choose_destinations() -> anyhow::Result<()> {
    let env = env().await?;
    let [root, mid, leaf, _] = forest(&env).await?;
    create_role(&env, &root, &role("nowhere", &["get"], &[("propagate.hnc.x-k8s.io/none", "true")])).await?;
    let not_mid = format!("!{mid}");
    create_role(&env, &root, &role("not-mid", &["get"], &[("propagate.hnc.x-k8s.io/treeSelect", &not_mid)]))
        .await?;
    env.patch_namespace_labels(&leaf, &[("tier", Some("gold"))]).await?;
    create_role(&env, &root, &role("gold", &["get"], &[("propagate.hnc.x-k8s.io/select", "tier=gold")]))
        .await?;
    create_role(&env, &root, &role("broken", &["get"], &[("propagate.hnc.x-k8s.io/treeSelect", "a,")]))
        .await?;
    create_role(&env, &root, &role("plain", &["get"], &[])).await?;

    // Everything is judged once the plain role has arrived everywhere.
    copy_from(&env, &leaf, "plain", &root).await?;
    copy_from(&env, &leaf, "gold", &root).await?;
    assert!(role_origin(&env, &mid, "gold").await.is_none(), "selectors see each destination's labels");
    assert!(role_origin(&env, &mid, "not-mid").await.is_none());
    assert!(role_origin(&env, &leaf, "not-mid").await.is_none(), "the leaf is in mid's subtree");
    for ns in [&mid, &leaf] {
        assert!(role_origin(&env, ns, "nowhere").await.is_none());
        assert!(role_origin(&env, ns, "broken").await.is_none(), "a bad treeSelect propagates nowhere");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_halted_subtree_is_frozen_then_converges() -> anyhow::Result<()> {
    let env = env().await?;
    let [root, mid, leaf, other] = forest(&env).await?;
    let other_child = env.ns("other-child");
    env.create_namespace(&other_child).await?;
    env.set_parent(&other_child, Some(&other)).await?;
    create_role(&env, &root, &role("r", &["get"], &[])).await?;
    copy_from(&env, &leaf, "r", &root).await?;

    // A cycle halts mid and leaf: deleting the source changes nothing there until the cycle is broken.
    env.set_parent(&root, Some(&leaf)).await?;
    eventually(CONVERGE, "mid to be halted", || async {
        let c = env.conditions(&mid).await.ok()?;
        c.iter().any(|(t, _)| t == "ActivitiesHalted").then_some(())
    })
    .await?;
    Api::<Role>::namespaced(env.client.clone(), &root).delete("r", &DeleteParams::default()).await?;
    // A Role created after the deletion reaches the controller after it on the same watch: once its copy is
    // written in a healthy tree, the deletion has been planned, and whatever that plan wrote has been sent.
    create_role(&env, &other, &role("later", &["get"], &[])).await?;
    copy_from(&env, &other_child, "later", &other).await?;
    writes_sent(&env).await?;
    assert_eq!(role_origin(&env, &leaf, "r").await, Some(root.clone()), "frozen while halted");

    env.set_parent(&root, None).await?;
    no_role(&env, &leaf, "r").await?;
    no_role(&env, &mid, "r").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolebinding_whose_role_ref_changes_is_recreated() -> anyhow::Result<()> {
    let env = env().await?;
    let [root, mid, _, _] = forest(&env).await?;
    let binding = |role: &str| RoleBinding {
        metadata: ObjectMeta { name: Some("rb".into()), ..Default::default() },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: role.to_owned(),
        },
        subjects: Some(vec![Subject { kind: "User".into(), name: "alice".into(), ..Default::default() }]),
    };
    let api = Api::<RoleBinding>::namespaced(env.client.clone(), &root);
    api.create(&PostParams::default(), &binding("first")).await?;
    let copies = Api::<RoleBinding>::namespaced(env.client.clone(), &mid);
    eventually(CONVERGE, "the binding to be copied", || async {
        (copies.get_opt("rb").await.ok()??.role_ref.name == "first").then_some(())
    })
    .await?;
    // roleRef is immutable: the source is replaced, and the copy has to be deleted and created again.
    api.delete("rb", &DeleteParams::default()).await?;
    api.create(&PostParams::default(), &binding("second")).await?;
    eventually(CONVERGE, "the copy to follow the new roleRef", || async {
        (copies.get_opt("rb").await.ok()??.role_ref.name == "second").then_some(())
    })
    .await?;
    Ok(())
}

/// Creates a Role and a RoleBinding `name` in `root` and waits until their copies are in `leaf` and the replica
/// has sent every write. Each type's watch delivers events in order, so by then every event of either type
/// from before has been planned from, and what those plans wrote has reached the API server.
async fn everything_before_is_processed(
    env: &TestEnv,
    root: &str,
    leaf: &str,
    name: &str,
) -> anyhow::Result<()> {
    create_role(env, root, &role(name, &["get"], &[])).await?;
    let binding = RoleBinding {
        metadata: ObjectMeta { name: Some(name.to_owned()), ..Default::default() },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "Role".into(),
            name: name.into(),
        },
        subjects: None,
    };
    Api::<RoleBinding>::namespaced(env.client.clone(), root).create(&PostParams::default(), &binding).await?;
    copy_from(env, leaf, name, root).await?;
    eventually(CONVERGE, &format!("{leaf}/{name} RoleBinding to be copied"), || async {
        Api::<RoleBinding>::namespaced(env.client.clone(), leaf).get_opt(name).await.ok()?.map(|_| ())
    })
    .await?;
    writes_sent(env).await
}

/// Waits until the replica (apisim only) has sent every write submitted so far: nothing queued, nothing in
/// flight.
async fn writes_sent(env: &TestEnv) -> anyhow::Result<()> {
    if env.is_real_cluster() {
        return Ok(());
    }
    let replica = env.replica(0);
    eventually(CONVERGE, "the replica to have sent every write", || async {
        let metrics = replica.get_metrics().await.ok()?;
        let idle =
            ["hnc_write_queue_depth", "hnc_write_in_flight"].iter().all(|m| metric_sum(&metrics, m) == 0.0);
        idle.then_some(())
    })
    .await
}

async fn set_resources(env: &TestEnv, resources: serde_json::Value) -> anyhow::Result<()> {
    let api = Api::<hnc_api::HNCConfiguration>::all(env.client.clone());
    eventually(CONVERGE, "the config object to exist", || async { api.get_opt("config").await.ok()? })
        .await?;
    api.patch("config", &PatchParams::default(), &Patch::Merge(json!({"spec": {"resources": resources}})))
        .await?;
    Ok(())
}

async fn config_map(env: &TestEnv, ns: &str, name: &str) -> Option<ConfigMap> {
    Api::<ConfigMap>::namespaced(env.client.clone(), ns).get_opt(name).await.ok()?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn types_are_added_and_removed_at_runtime() -> anyhow::Result<()> {
    let env = env().await?;
    let [root, mid, leaf, _] = forest(&env).await?;
    let cm = ConfigMap {
        metadata: ObjectMeta { name: Some("settings".into()), ..Default::default() },
        data: Some(BTreeMap::from([("k".to_owned(), "v".to_owned())])),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(env.client.clone(), &root).create(&PostParams::default(), &cm).await?;
    let secret = Secret {
        metadata: ObjectMeta { name: Some("token".into()), ..Default::default() },
        type_: Some("kubernetes.io/service-account-token".into()),
        ..Default::default()
    };
    Api::<Secret>::namespaced(env.client.clone(), &root).create(&PostParams::default(), &secret).await?;

    set_resources(&env, json!([{"resource": "configmaps", "mode": "Propagate"}, {"resource": "secrets"}]))
        .await?;
    eventually(CONVERGE, "the ConfigMap to be copied", || async {
        config_map(&env, &leaf, "settings").await.map(drop)
    })
    .await?;
    assert!(
        config_map(&env, &mid, "kube-root-ca.crt")
            .await
            .is_none_or(|c| !c.labels().contains_key("hnc.x-k8s.io/inherited-from"))
    );
    let secrets = Api::<Secret>::namespaced(env.client.clone(), &mid);
    assert!(secrets.get_opt("token").await?.is_none(), "service-account tokens are never propagated");

    // Status reports the types and their counts.
    eventually(CONVERGE, "config status to count the ConfigMap", || async {
        let config = Api::<hnc_api::HNCConfiguration>::all(env.client.clone()).get("config").await.ok()?;
        let status = config.status?;
        let cm = status.resources.iter().find(|r| r.resource == "configmaps")?;
        (cm.num_source_objects? >= 1 && cm.num_propagated_objects? >= 2).then_some(())
    })
    .await?;

    set_resources(&env, json!([{"resource": "configmaps", "mode": "Remove"}])).await?;
    eventually(CONVERGE, "Remove to delete the copies", || async {
        config_map(&env, &leaf, "settings").await.is_none().then_some(())
    })
    .await?;
    assert!(config_map(&env, &root, "settings").await.is_some(), "the source stays");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_resources_propagate() -> anyhow::Result<()> {
    let env = env().await?;
    if env.is_real_cluster() {
        eprintln!("skipped: installs a CRD");
        return Ok(());
    }
    let crd = json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Namespaced",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {"size": {"type": "integer"}}}}}}}]}
    });
    env.sim()
        .unwrap()
        .create("apiextensions.k8s.io", "customresourcedefinitions", "", crd)
        .map_err(|e| anyhow::anyhow!(e.message))?;
    let [root, _, leaf, _] = forest(&env).await?;
    let widget = json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w", "namespace": root}, "spec": {"size": 3}});
    env.sim()
        .unwrap()
        .create("example.com", "widgets", &root, widget)
        .map_err(|e| anyhow::anyhow!(e.message))?;
    set_resources(&env, json!([{"group": "example.com", "resource": "widgets"}])).await?;
    let resource = kube::core::ApiResource {
        group: "example.com".into(),
        version: "v1".into(),
        api_version: "example.com/v1".into(),
        kind: "Widget".into(),
        plural: "widgets".into(),
    };
    let api: Api<kube::core::DynamicObject> = Api::namespaced_with(env.client.clone(), &leaf, &resource);
    eventually(CONVERGE, "the widget to be copied", || async {
        let w = api.get_opt("w").await.ok()??;
        (w.data["spec"]["size"] == 3).then_some(())
    })
    .await?;
    Ok(())
}

/// A fresh change never waits behind a backlog: while a cold start still has thousands of copies to write
/// (held back by a write ceiling), a new source in a small, separate tree reaches its child long before the
/// backlog is done. With one FIFO of writes it waited for all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_source_is_not_queued_behind_a_cold_start() -> anyhow::Result<()> {
    let mut env = TestEnv::start(BINARY).await?;
    let Some(sim) = env.sim() else {
        eprintln!("skipped: builds its backlog with apisim's direct writes");
        return Ok(());
    };
    // A wide tree: 300 children of `big`, 10 Roles in `big` → 3,000 copies to write.
    let big = env.ns("big");
    let mut setup = vec![(big.clone(), None)];
    for c in 0..300 {
        setup.push((env.ns(&format!("big-{c}")), Some(big.clone())));
    }
    let (small, small_child) = (env.ns("small"), env.ns("small-child"));
    setup.push((small.clone(), None));
    setup.push((small_child.clone(), Some(small.clone())));
    for (ns, parent) in &setup {
        sim.create("", "namespaces", "", json!({"metadata": {"name": ns}}))
            .map_err(|e| anyhow::anyhow!(e.message))?;
        if let Some(parent) = parent {
            let hc = json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HierarchyConfiguration",
                "metadata": {"name": "hierarchy", "namespace": ns}, "spec": {"parent": parent}});
            sim.create("hnc.x-k8s.io", "hierarchyconfigurations", ns, hc)
                .map_err(|e| anyhow::anyhow!(e.message))?;
        }
    }
    for i in 0..10 {
        let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": format!("bulk-{i}"), "namespace": big}, "rules": []});
        sim.create("rbac.authorization.k8s.io", "roles", &big, role)
            .map_err(|e| anyhow::anyhow!(e.message))?;
    }
    const BACKLOG: usize = 3000;
    // 200 writes/s: the backlog takes about 15 s however fast the machine is.
    let r = env.start_replica("hnc", &["--no-webhooks", "--apiserver-qps-throttle=200"]).await?;
    env.replica(r).wait_ready(CONVERGE).await?;
    let bulk_copies = |env: &TestEnv| {
        env.cluster_writes_by("hnc")
            .iter()
            .filter(|w| w.resource == "roles" && w.name.starts_with("bulk-"))
            .count()
    };
    eventually(CONVERGE, "the cold start's copies to be under way", || async {
        (bulk_copies(&env) >= 100).then_some(())
    })
    .await?;
    create_role(&env, &small, &role("fresh", &["get"], &[])).await?;
    copy_from(&env, &small_child, "fresh", &small).await?;
    let done = bulk_copies(&env);
    eprintln!("the fresh copy was observed after {done} of {BACKLOG} backlog copies");
    assert!(
        done < BACKLOG / 2,
        "the fresh source's copy waited for {done} of the backlog's {BACKLOG} copies to be written first"
    );
    Ok(())
}
