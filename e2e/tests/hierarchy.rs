//! The hierarchy half of HNC end to end (spec §3–§5): subnamespaces and their anchors, tree labels across
//! re-parenting, cycles and missing parents, cascading deletion, repair of tampered labels, excluded namespaces,
//! and a warm restart that writes nothing. Runs against apisim with a controller process, or against the cluster
//! in `HNC_E2E_KUBECONFIG` (where HNC is already deployed).

use std::collections::BTreeMap;
use std::time::Duration;

use hnc_e2e::{TestEnv, eventually};

const BINARY: &str = env!("CARGO_BIN_EXE_hnc-e2e-controller");
const CONVERGE: Duration = Duration::from_secs(60);

/// A test environment with one controller replica running (on apisim); `extra` flags go to the replica.
async fn env_with(extra: &[&str]) -> anyhow::Result<TestEnv> {
    let mut env = TestEnv::start(BINARY).await?;
    if !env.is_real_cluster() {
        let mut args = vec!["--no-webhooks"];
        args.extend_from_slice(extra);
        let r = env.start_replica("hnc", &args).await?;
        env.replica(r).wait_ready(CONVERGE).await?;
    }
    Ok(env)
}

fn depths(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

/// Waits until namespace `ns` carries exactly the tree labels `expected`.
async fn labels_become(env: &TestEnv, ns: &str, expected: BTreeMap<String, String>) -> anyhow::Result<()> {
    eventually(CONVERGE, &format!("tree labels of {ns} to be {expected:?}"), || async {
        let got = env.tree_labels(ns).await.ok()?;
        (got == expected).then_some(())
    })
    .await
}

/// Waits until `ns`'s HierarchyConfiguration has exactly the condition reasons `expected`.
async fn conditions_become(env: &TestEnv, ns: &str, expected: &[&str]) -> anyhow::Result<()> {
    eventually(CONVERGE, &format!("conditions of {ns} to be {expected:?}"), || async {
        let got = env.conditions(ns).await.ok()?;
        let reasons: Vec<&str> = got.iter().map(|(_, r)| r.as_str()).collect();
        (reasons == expected).then_some(())
    })
    .await
}

async fn gone(env: &TestEnv, ns: &str) -> anyhow::Result<()> {
    eventually(CONVERGE, &format!("namespace {ns} to be deleted"), || async {
        env.namespace(ns).await.ok()?.is_none().then_some(())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subnamespaces_follow_their_anchors() -> anyhow::Result<()> {
    let env = env_with(&[]).await?;
    let (parent, child, grandchild) = (env.ns("parent"), env.ns("child"), env.ns("grandchild"));
    env.create_namespace(&parent).await?;
    env.create_anchor(&parent, &child).await?;
    eventually(CONVERGE, "the subnamespace's anchor to be Ok", || async {
        (env.anchor_state(&parent, &child).await.ok()?? == "Ok").then_some(())
    })
    .await?;
    let created = env.namespace(&child).await?.expect("the subnamespace exists");
    assert_eq!(
        created.metadata.annotations.unwrap_or_default().get("hnc.x-k8s.io/subnamespace-of"),
        Some(&parent)
    );
    labels_become(&env, &child, depths(&[(&child, "0"), (&parent, "1")])).await?;
    eventually(CONVERGE, "the parent to list its child", || async {
        let status = env.hierarchy(&parent).await.ok()??.status?;
        (status.children == vec![child.clone()]).then_some(())
    })
    .await?;
    let parent_hc = env.hierarchy(&parent).await?.unwrap();
    assert!(
        parent_hc
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"hnc.x-k8s.io/hasSubnamespace".to_owned())
    );

    // Nested subnamespaces; this anchor has no spec at all (the CRD does not require one).
    env.create_anchor_without_spec(&child, &grandchild).await?;
    labels_become(&env, &grandchild, depths(&[(&grandchild, "0"), (&child, "1"), (&parent, "2")])).await?;

    // Deleting a leaf's anchor deletes the subnamespace, then the anchor goes.
    env.delete_anchor(&child, &grandchild).await?;
    gone(&env, &grandchild).await?;
    eventually(CONVERGE, "the deleted anchor to disappear", || async {
        env.anchor_state(&child, &grandchild).await.ok()?.is_none().then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anchor_cannot_take_over_an_existing_namespace() -> anyhow::Result<()> {
    let env = env_with(&[]).await?;
    let (parent, taken) = (env.ns("parent"), env.ns("taken"));
    env.create_namespace(&parent).await?;
    env.create_namespace(&taken).await?;
    env.create_anchor(&parent, &taken).await?;
    eventually(CONVERGE, "the anchor to be in Conflict", || async {
        (env.anchor_state(&parent, &taken).await.ok()?? == "Conflict").then_some(())
    })
    .await?;
    // Deleting a conflicted anchor never deletes the namespace (upstream issue #797).
    env.delete_anchor(&parent, &taken).await?;
    eventually(CONVERGE, "the anchor to go", || async {
        env.anchor_state(&parent, &taken).await.ok()?.is_none().then_some(())
    })
    .await?;
    assert!(env.namespace(&taken).await?.is_some_and(|ns| ns.metadata.deletion_timestamp.is_none()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reparenting_relabels_the_whole_subtree() -> anyhow::Result<()> {
    let env = env_with(&[]).await?;
    let [a, b, m, m1] = ["a", "b", "m", "m1"].map(|n| env.ns(n));
    for ns in [&a, &b, &m, &m1] {
        env.create_namespace(ns).await?;
    }
    env.set_parent(&m, Some(&a)).await?;
    env.set_parent(&m1, Some(&m)).await?;
    labels_become(&env, &m1, depths(&[(&m1, "0"), (&m, "1"), (&a, "2")])).await?;

    env.set_parent(&m, Some(&b)).await?;
    labels_become(&env, &m1, depths(&[(&m1, "0"), (&m, "1"), (&b, "2")])).await?;
    labels_become(&env, &m, depths(&[(&m, "0"), (&b, "1")])).await?;
    eventually(CONVERGE, "the old parent to forget its child", || async {
        let children = env.hierarchy(&a).await.ok()??.status.map(|s| s.children).unwrap_or_default();
        children.is_empty().then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cycle_halts_its_members_until_it_is_broken() -> anyhow::Result<()> {
    let env = env_with(&[]).await?;
    let [a, b, c, below] = ["a", "b", "c", "below"].map(|n| env.ns(n));
    for ns in [&a, &b, &c, &below] {
        env.create_namespace(ns).await?;
    }
    env.set_parent(&b, Some(&a)).await?;
    env.set_parent(&c, Some(&b)).await?;
    env.set_parent(&below, Some(&c)).await?;
    labels_become(&env, &below, depths(&[(&below, "0"), (&c, "1"), (&b, "2"), (&a, "3")])).await?;

    // Made behind the webhook's back (none runs here): a's parent becomes c.
    env.set_parent(&a, Some(&c)).await?;
    for ns in [&a, &b, &c] {
        conditions_become(&env, ns, &["InCycle"]).await?;
        labels_become(&env, ns, depths(&[(ns, "0")])).await?;
    }
    conditions_become(&env, &below, &["AncestorHaltActivities"]).await?;

    env.set_parent(&a, None).await?;
    for ns in [&a, &b, &c, &below] {
        conditions_become(&env, ns, &[]).await?;
    }
    labels_become(&env, &below, depths(&[(&below, "0"), (&c, "1"), (&b, "2"), (&a, "3")])).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_parent_halts_its_subtree() -> anyhow::Result<()> {
    let env = env_with(&[]).await?;
    let [p, c, g] = ["p", "c", "g"].map(|n| env.ns(n));
    for ns in [&p, &c, &g] {
        env.create_namespace(ns).await?;
    }
    env.set_parent(&c, Some(&p)).await?;
    env.set_parent(&g, Some(&c)).await?;
    labels_become(&env, &g, depths(&[(&g, "0"), (&c, "1"), (&p, "2")])).await?;

    env.delete_namespace(&p).await?;
    gone(&env, &p).await?;
    conditions_become(&env, &c, &["ParentMissing"]).await?;
    conditions_become(&env, &g, &["AncestorHaltActivities"]).await?;
    labels_become(&env, &c, depths(&[(&c, "0")])).await?;

    env.create_namespace(&p).await?;
    conditions_become(&env, &c, &[]).await?;
    conditions_become(&env, &g, &[]).await?;
    labels_become(&env, &g, depths(&[(&g, "0"), (&c, "1"), (&p, "2")])).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cascading_deletion_only_when_allowed() -> anyhow::Result<()> {
    let env = env_with(&[]).await?;
    let [root, allowed, leaf1, refused, leaf2] =
        ["root", "allowed", "leaf1", "refused", "leaf2"].map(|n| env.ns(n));
    env.create_namespace(&root).await?;
    env.create_anchor(&root, &allowed).await?;
    env.create_anchor(&root, &refused).await?;
    eventually(CONVERGE, "both subnamespaces", || async {
        (env.namespace(&allowed).await.ok()?.is_some() && env.namespace(&refused).await.ok()?.is_some())
            .then_some(())
    })
    .await?;
    env.create_anchor(&allowed, &leaf1).await?;
    env.create_anchor(&refused, &leaf2).await?;
    labels_become(&env, &leaf1, depths(&[(&leaf1, "0"), (&allowed, "1"), (&root, "2")])).await?;
    labels_become(&env, &leaf2, depths(&[(&leaf2, "0"), (&refused, "1"), (&root, "2")])).await?;
    env.edit_hierarchy(&allowed, |spec| spec.allow_cascading_deletion = Some(true)).await?;

    // Not a leaf and cascading deletion allowed: the subnamespace and everything below it go.
    env.delete_anchor(&root, &allowed).await?;
    gone(&env, &leaf1).await?;
    gone(&env, &allowed).await?;

    // Not a leaf and not allowed: the anchor goes, the namespace stays, now missing its anchor.
    env.delete_anchor(&root, &refused).await?;
    eventually(CONVERGE, "the refused anchor to go", || async {
        env.anchor_state(&root, &refused).await.ok()?.is_none().then_some(())
    })
    .await?;
    conditions_become(&env, &refused, &["SubnamespaceAnchorMissing"]).await?;
    assert!(env.namespace(&leaf2).await?.is_some());
    assert!(env.namespace(&refused).await?.is_some_and(|ns| ns.metadata.deletion_timestamp.is_none()));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tampered_tree_labels_are_repaired() -> anyhow::Result<()> {
    let env = env_with(&[]).await?;
    let (parent, child) = (env.ns("parent"), env.ns("child"));
    env.create_namespace(&parent).await?;
    env.create_namespace(&child).await?;
    env.set_parent(&child, Some(&parent)).await?;
    let expected = depths(&[(&child, "0"), (&parent, "1")]);
    labels_become(&env, &child, expected.clone()).await?;

    let parent_label = format!("{parent}.tree.hnc.x-k8s.io/depth");
    env.patch_namespace_labels(
        &child,
        &[(&parent_label, None), ("forged.tree.hnc.x-k8s.io/depth", Some("3"))],
    )
    .await?;
    labels_become(&env, &child, expected).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn excluded_namespaces_are_left_alone() -> anyhow::Result<()> {
    if std::env::var(hnc_e2e::REAL_CLUSTER_ENV).is_ok() {
        eprintln!("skipped: needs a controller started with this test's --excluded-namespace");
        return Ok(());
    }
    let mut env = TestEnv::start(BINARY).await?;
    let (excluded, child) = (env.ns("excluded"), env.ns("child"));
    let flag = format!("--excluded-namespace={excluded}");
    let r = env.start_replica("hnc", &["--no-webhooks", &flag]).await?;
    env.replica(r).wait_ready(CONVERGE).await?;

    env.create_namespace(&excluded).await?;
    env.create_namespace(&child).await?;
    env.set_parent(&child, Some(&excluded)).await?;
    conditions_become(&env, &child, &["IllegalParent"]).await?;
    labels_become(&env, &child, depths(&[(&child, "0")])).await?;
    let untouched = env.namespace(&excluded).await?.unwrap();
    let labels = untouched.metadata.labels.unwrap_or_default();
    assert!(!labels.contains_key("hnc.x-k8s.io/included-namespace"), "{labels:?}");
    assert!(labels.keys().all(|k| !k.ends_with(".tree.hnc.x-k8s.io/depth")), "no tree labels: {labels:?}");
    assert!(env.hierarchy(&excluded).await?.is_none(), "no HierarchyConfiguration is created there");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_restart_of_an_unchanged_forest_writes_nothing() -> anyhow::Result<()> {
    const ARGS: [&str; 5] = [
        "--no-webhooks",
        "--apiserver-qps-throttle=2000",
        "--excluded-namespace=kube-system",
        "--excluded-namespace=kube-public",
        "--excluded-namespace=kube-node-lease",
    ];
    let mut env = TestEnv::start(BINARY).await?;
    let Some(sim) = env.sim() else {
        eprintln!("skipped: counts writes with apisim's request log");
        return Ok(());
    };
    // 100 trees of 10: a root, 3 children, 6 grandchildren.
    let mut names = Vec::new();
    for t in 0..100 {
        let root = env.ns(&format!("t{t}"));
        let mut tree = vec![(root.clone(), None)];
        for c in 0..3 {
            let child = env.ns(&format!("t{t}-c{c}"));
            tree.push((child.clone(), Some(root.clone())));
            for g in 0..2 {
                tree.push((env.ns(&format!("t{t}-c{c}-g{g}")), Some(child.clone())));
            }
        }
        for (ns, parent) in tree {
            sim.create("", "namespaces", "", serde_json::json!({"metadata": {"name": ns}}))
                .map_err(|e| anyhow::anyhow!(e.message))?;
            if parent.is_none() {
                // A source per tree: the restart must not rewrite the HNCConfiguration's counts either.
                let role = serde_json::json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                    "metadata": {"name": "team", "namespace": ns}, "rules": []});
                sim.create("rbac.authorization.k8s.io", "roles", &ns, role)
                    .map_err(|e| anyhow::anyhow!(e.message))?;
            }
            if let Some(parent) = parent {
                let hc = serde_json::json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HierarchyConfiguration",
                    "metadata": {"name": "hierarchy", "namespace": ns}, "spec": {"parent": parent}});
                sim.create("hnc.x-k8s.io", "hierarchyconfigurations", &ns, hc)
                    .map_err(|e| anyhow::anyhow!(e.message))?;
            }
            names.push(ns);
        }
    }
    let last = names.last().unwrap().clone();
    let r = env.start_replica("hnc", &ARGS).await?;
    env.replica(r).wait_ready(CONVERGE).await?;
    labels_become(&env, &last, depths(&[(&last, "0"), (&env.ns("t99-c2"), "1"), (&env.ns("t99"), "2")]))
        .await?;
    env.replica(r).wait_idle(CONVERGE).await?;
    let cold = env.cluster_writes_by("hnc").len();
    let hierarchy_writes = env
        .cluster_writes_by("hnc")
        .into_iter()
        .filter(|w| w.resource == "namespaces" || w.resource == "hierarchyconfigurations")
        .count();
    // Namespaces: 1,000 label patches and `default`. HCs: 100 roots created, 300 children given their children.
    assert_eq!(hierarchy_writes, 1001 + 100 + 300, "the cold start writes exactly what is missing");
    let copies = env.cluster_writes_by("hnc").into_iter().filter(|w| w.resource == "roles").count();
    assert_eq!(copies, 900, "one copy of each root's Role in each of its 9 descendants");
    env.stop_replica(r)?;

    let r = env.start_replica("hnc", &ARGS).await?;
    env.replica(r).wait_ready(CONVERGE).await?;
    env.replica(r).wait_reconciled(names.len() as u64, CONVERGE).await?;
    env.replica(r).wait_idle(CONVERGE).await?;
    let warm: Vec<_> = env.cluster_writes_by("hnc").into_iter().skip(cold).collect();
    assert!(warm.is_empty(), "a warm restart wrote {} times: {:?}", warm.len(), &warm[..warm.len().min(5)]);
    Ok(())
}
