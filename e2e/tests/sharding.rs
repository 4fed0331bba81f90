//! Several replicas sharing the trees (design §4): each tree is written by one replica at a time, a new replica
//! takes only the shards it must, killed replicas (the leader, a holder, all of them) lose no change and write
//! nothing twice, a rolling restart under churn loses nothing, and a subtree moved between trees owned by
//! different replicas is maintained by its new owner. Every check reads apisim's log of who wrote what.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use hnc_e2e::forest::{
    CONVERGE, SHORT_LEASE, SHORT_LEASE_ARGS, assignment, forest_names, load_forest, propagated, put_role,
};
use hnc_e2e::{TestEnv, eventually};
use hnc_leader::PublishedAssignment;
use hnc_shard::ShardRing;
use hnc_shard::ring::DEFAULT_VIRTUAL_NODES;
use k8s_openapi::api::rbac::v1::Role;
use kube::{Api, ResourceExt};
use serde_json::json;

const BINARY: &str = env!("CARGO_BIN_EXE_hnc-e2e-controller");
const SHARDS: u32 = 16;
const LEASE: Duration = SHORT_LEASE;
const ARGS: [&str; 6] = SHORT_LEASE_ARGS;
/// How long after a re-parent the replica that owned the subtree may still write there: until its hierarchy
/// watch has shown it the move (milliseconds here; a second of margin for a loaded CI machine).
const HANDOVER_WINDOW: Duration = Duration::from_secs(1);

async fn start_replicas(env: &mut TestEnv, ids: &[&str]) -> anyhow::Result<Vec<usize>> {
    let mut started = Vec::new();
    for id in ids {
        started.push(env.start_replica(id, &ARGS).await?);
    }
    for r in &started {
        env.replica(*r).wait_ready(CONVERGE).await?;
    }
    Ok(started)
}

/// The replica the published assignment gives `root`'s tree to.
fn owner(assignment: &PublishedAssignment, root: &str) -> Option<String> {
    let ring = ShardRing::new(SHARDS, DEFAULT_VIRTUAL_NODES);
    assignment.owners.owner(ring.shard_of(root)).map(|r| r.as_str().to_owned())
}

fn replica_of(user: &str) -> String {
    user.rsplit(':').next().unwrap_or(user).to_owned()
}

/// Successful creates of the same object by any replica, which would mean a change written twice.
fn double_creates(env: &TestEnv, ids: &[&str]) -> Vec<(String, String)> {
    let mut seen = BTreeMap::new();
    for id in ids {
        for w in env.cluster_writes_by(id) {
            if w.verb == "POST" && w.code == 201 && w.resource == "roles" {
                *seen.entry((w.namespace, w.name)).or_insert(0) += 1;
            }
        }
    }
    seen.into_iter().filter(|(_, n)| *n > 1).map(|(k, _)| k).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tree_is_written_by_one_replica_and_a_fourth_takes_only_what_it_must() -> anyhow::Result<()> {
    let mut env = TestEnv::start(BINARY).await?;
    if env.is_real_cluster() {
        eprintln!("skipped: starts and kills replicas");
        return Ok(());
    }
    let trees = forest_names(&env, 48);
    load_forest(&env, &trees)?;
    start_replicas(&mut env, &["r1", "r2", "r3"]).await?;
    // Replicas join one by one, and the first of them may label trees that a later assignment moves; the
    // propagation of the roles below starts once the assignment counts all three.
    let settled = eventually(CONVERGE, "an assignment over the three replicas", || async {
        let a = assignment(&env).await?;
        (a.replicas.len() == 3).then_some(a)
    })
    .await?;
    let ids = ["r1", "r2", "r3"];
    let before: Vec<usize> = ids.iter().map(|id| env.cluster_writes_by(id).len()).collect();
    for [root, ..] in &trees {
        put_role(&env, root, "admin", "get").await?;
    }
    eventually(CONVERGE, "propagation across three replicas", || propagated(&env, &trees)).await?;

    // Every tree's copies come from one replica, the one the assignment names; nobody else wrote there. (A
    // re-balance by weight may move shards meanwhile; a tree's writer is then the owner under either.)
    let published = assignment(&env).await.expect("an assignment is published");
    let mut writers: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (id, skip) in ids.iter().zip(before) {
        for w in env.cluster_writes_by(id).into_iter().skip(skip).filter(|w| w.resource == "roles") {
            if let Some([root, ..]) = trees.iter().find(|t| t.contains(&w.namespace)) {
                writers.entry(root).or_default().insert(replica_of(&w.user));
            }
        }
    }
    let used: BTreeSet<String> = writers.values().flatten().cloned().collect();
    assert!(used.len() >= 2, "the work is shared: {used:?}");
    for [root, ..] in &trees {
        let owners: BTreeSet<String> =
            [&settled, &published].into_iter().filter_map(|a| owner(a, root)).collect();
        let wrote = writers.get(root.as_str()).cloned().unwrap_or_default();
        assert_eq!(wrote.len(), 1, "tree {root}: copies written by {wrote:?}");
        assert!(wrote.is_subset(&owners), "tree {root}: written by {wrote:?}, owned by {owners:?}");
    }
    assert!(double_creates(&env, &ids).is_empty());

    // A fourth replica: only shards moving onto it move, and the weights are balanced.
    let before = published;
    start_replicas(&mut env, &["r4"]).await?;
    let after = eventually(CONVERGE, "an assignment including r4", || async {
        let a = assignment(&env).await?;
        a.replicas.iter().any(|r| r.as_str() == "r4").then_some(a)
    })
    .await?;
    let moved = after.owners.moved_from(&before.owners);
    assert!(!moved.is_empty(), "r4 got shards");
    for shard in &moved {
        assert_eq!(
            after.owners.owner(*shard).map(|r| r.as_str()),
            Some("r4"),
            "shard {shard} moved elsewhere"
        );
    }
    let imbalance = after.owners.imbalance(&after.weights, &after.replicas);
    let mean = after.weights.iter().sum::<u64>() as f64 / after.replicas.len() as f64;
    let heaviest = *after.weights.iter().max().unwrap() as f64 / mean;
    assert!(imbalance <= hnc_leader::BALANCE_TARGET.max(heaviest) + 1e-9, "max/mean {imbalance}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_replicas_lose_no_change_and_write_nothing_twice() -> anyhow::Result<()> {
    let mut env = TestEnv::start(BINARY).await?;
    if env.is_real_cluster() {
        eprintln!("skipped: starts and kills replicas");
        return Ok(());
    }
    let ids = ["k1", "k2", "k3"];
    let trees = forest_names(&env, 24);
    load_forest(&env, &trees)?;
    let replicas = start_replicas(&mut env, &ids).await?;
    for [root, ..] in &trees {
        put_role(&env, root, "before", "get").await?;
    }
    eventually(CONVERGE, "initial propagation", || propagated(&env, &trees)).await?;

    // Kill the leader; change every tree at once; everything converges.
    let leader = assignment(&env).await.expect("published").leader.as_str().to_owned();
    let index = ids.iter().position(|id| *id == leader).expect("the leader is one of ours");
    env.kill_replica(replicas[index]);
    let killed = Instant::now();
    for [root, ..] in &trees {
        put_role(&env, root, "after-leader", "list").await?;
    }
    eventually(CONVERGE, "propagation after killing the leader", || propagated(&env, &trees)).await?;
    let took = killed.elapsed();
    eprintln!("converged {took:?} after killing the leader (lease {LEASE:?})");

    // Kill a holder that is not the leader now.
    let now = assignment(&env).await.expect("published");
    let holder = ids
        .iter()
        .enumerate()
        .find(|(i, id)| *i != index && **id != now.leader.as_str())
        .map(|(i, _)| i)
        .expect("a non-leader holder");
    env.kill_replica(replicas[holder]);
    for [root, ..] in &trees {
        put_role(&env, root, "after-holder", "watch").await?;
    }
    eventually(CONVERGE, "propagation after killing a holder", || propagated(&env, &trees)).await?;

    // Kill everything, change everything, start three again.
    for (i, r) in replicas.iter().enumerate() {
        if i != index && i != holder {
            env.kill_replica(*r);
        }
    }
    for [root, ..] in &trees {
        put_role(&env, root, "before", "delete").await?;
        put_role(&env, root, "after-all", "create").await?;
    }
    start_replicas(&mut env, &ids).await?;
    eventually(CONVERGE, "propagation after a full restart", || propagated(&env, &trees)).await?;
    assert!(
        double_creates(&env, &ids).is_empty(),
        "a copy was created twice: {:?}",
        double_creates(&env, &ids)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rolling_restart_under_churn_loses_no_change() -> anyhow::Result<()> {
    let mut env = TestEnv::start(BINARY).await?;
    if env.is_real_cluster() {
        eprintln!("skipped: restarts replicas");
        return Ok(());
    }
    let ids = ["c1", "c2", "c3"];
    let trees = forest_names(&env, 16);
    load_forest(&env, &trees)?;
    let mut replicas = start_replicas(&mut env, &ids).await?;
    let verbs = ["get", "list", "watch", "create", "update"];
    let mut round = 0usize;
    for (i, id) in ids.iter().enumerate() {
        // A burst of changes, then one replica restarts (SIGTERM: it hands its shards over), then more.
        for _ in 0..2 {
            for (t, [root, ..]) in trees.iter().enumerate() {
                put_role(&env, root, &format!("churn-{}", t % 3), verbs[round % verbs.len()]).await?;
                round += 1;
            }
        }
        let status = env.stop_replica(replicas[i])?;
        assert!(status.success(), "{id} stopped cleanly: {status}");
        for [root, ..] in &trees {
            put_role(&env, root, "during", verbs[round % verbs.len()]).await?;
            round += 1;
        }
        replicas[i] = env.start_replica(id, &ARGS).await?;
    }
    eventually(CONVERGE, "every change propagated after the rolling restart", || propagated(&env, &trees))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subtree_moved_to_another_replicas_tree_is_maintained_by_it() -> anyhow::Result<()> {
    let mut env = TestEnv::start(BINARY).await?;
    if env.is_real_cluster() {
        eprintln!("skipped: reads replica identities from apisim's write log");
        return Ok(());
    }
    let trees = forest_names(&env, 32);
    load_forest(&env, &trees)?;
    start_replicas(&mut env, &["m1", "m2"]).await?;
    let published = eventually(CONVERGE, "an assignment over both replicas", || async {
        let a = assignment(&env).await?;
        (a.replicas.len() == 2).then_some(a)
    })
    .await?;
    // Two trees owned by different replicas.
    let from =
        trees.iter().find(|[r, ..]| owner(&published, r).as_deref() == Some("m1")).expect("m1 owns a tree");
    let to =
        trees.iter().find(|[r, ..]| owner(&published, r).as_deref() == Some("m2")).expect("m2 owns a tree");
    let moved = &from[1];
    put_role(&env, &to[0], "destination", "get").await?;
    put_role(&env, moved, "local", "list").await?;
    let grandchild = env.ns("grandchild");
    env.create_namespace(&grandchild).await?;
    env.set_parent(&grandchild, Some(moved)).await?;
    let copied = |ns: String, name: &'static str| {
        let env = &env;
        async move {
            let role = Api::<Role>::namespaced(env.client.clone(), &ns).get_opt(name).await.ok()??;
            role.labels().contains_key("hnc.x-k8s.io/inherited-from").then_some(())
        }
    };
    eventually(CONVERGE, "the local role below the subtree", || copied(grandchild.clone(), "local")).await?;

    let moved_at = env.writes_by("m2").len();
    let move_sent = Instant::now();
    env.set_parent(moved, Some(&to[0])).await?;
    eventually(CONVERGE, "the new tree's role in the moved subtree", || {
        copied(grandchild.clone(), "destination")
    })
    .await?;
    put_role(&env, moved, "local", "watch").await?;
    eventually(CONVERGE, "the moved subtree's own change", || async {
        let role = Api::<Role>::namespaced(env.client.clone(), &grandchild).get_opt("local").await.ok()??;
        (role.rules?.first()?.verbs == ["watch"]).then_some(())
    })
    .await?;
    // After the move, writes in the moved subtree come from m2 only.
    let by_m2 = env.writes_by("m2").into_iter().skip(moved_at).filter(|w| w.namespace == grandchild).count();
    assert!(by_m2 >= 2, "m2 maintains the moved subtree");
    // Until m1 has seen the move it may still act on the subtree (it can even remove the copy m2 just made,
    // which m2 then writes again); past the handover window it writes nothing there.
    let late_m1: Vec<String> = env
        .cluster_writes_by("m1")
        .into_iter()
        .filter(|w| w.namespace == grandchild && w.at > move_sent + HANDOVER_WINDOW)
        .map(|w| format!("{} {}/{} {:?} after the move", w.verb, w.resource, w.name, w.at - move_sent))
        .collect();
    assert!(late_m1.is_empty(), "m1 wrote into a tree it no longer owns: {late_m1:?}");
    // The copy of the moved namespace's own role stays valid through the move: m2 loads the subtree before it
    // plans into it, so it never judges that copy from half of the subtree and deletes it.
    let deleted_local = env
        .writes_by("m2")
        .into_iter()
        .filter(|w| w.namespace == grandchild && w.name == "local" && w.verb == "DELETE")
        .count();
    let story = || -> Vec<String> {
        let mut writes: Vec<_> = ["m1", "m2"]
            .into_iter()
            .flat_map(|r| env.writes_by(r).into_iter().map(move |w| (r, w)))
            .filter(|(_, w)| w.namespace == grandchild || w.namespace == *moved)
            .collect();
        writes.sort_by_key(|(_, w)| w.at);
        writes
            .into_iter()
            .map(|(r, w)| {
                let at =
                    w.at.checked_duration_since(move_sent)
                        .map_or_else(|| format!("-{:?}", move_sent - w.at), |after| format!("+{after:?}"));
                format!("{at} {r} {} {} {}/{} {}", w.verb, w.resource, w.namespace, w.name, w.code)
            })
            .collect()
    };
    assert_eq!(
        deleted_local,
        0,
        "m2 deleted a copy that stayed valid; writes around the move: {:#?}",
        story()
    );
    // Both replicas agree where the moved namespace now lives, and only m2 owns and caches it. m1 evicts what
    // it cached there once its engine has heard of the move, which comes after the move is published.
    eventually(CONVERGE, "m1 evicting the moved namespace", || async {
        let (_, body) =
            env.replica(0).get_health(&format!("/debug/namespace?name={grandchild}")).await.ok()?;
        let view: serde_json::Value = serde_json::from_str(&body).ok()?;
        view["cached"].as_object().is_some_and(|c| c.is_empty()).then_some(())
    })
    .await?;
    let mut views = Vec::new();
    for index in 0..2 {
        let (status, body) =
            env.replica(index).get_health(&format!("/debug/namespace?name={grandchild}")).await?;
        assert_eq!(status, 200, "{body}");
        views.push(serde_json::from_str::<serde_json::Value>(&body)?);
    }
    for view in &views {
        assert_eq!(view["parent"], json!(moved), "{view}");
        assert_eq!(view["root"], json!(to[0]), "{view}");
    }
    assert_eq!(views[0]["owned"], json!(false), "m1 no longer owns it: {}", views[0]);
    assert_eq!(views[1]["owned"], json!(true), "m2 owns it: {}", views[1]);
    assert!(views[0]["cached"].as_object().is_some_and(|c| c.is_empty()), "m1 evicted it: {}", views[0]);
    let roles = &views[1]["cached"]["Role.rbac.authorization.k8s.io"];
    assert!(
        roles["copies"]["destination"].as_str().is_some_and(|c| c.starts_with(&format!("from {}", to[0]))),
        "{roles}"
    );
    Ok(())
}
