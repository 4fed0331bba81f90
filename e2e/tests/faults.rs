//! What a replica does when part of it fails or it is suspended mid-write (design invariants 1 and 4):
//!
//! * a core task that panics makes the replica stop holding work — it exits non-zero and releases its Leases —
//!   so its trees get a new writer instead of stalling behind a replica that still renews its Leases;
//! * a replica that cannot reach the API server for longer than a lease stops in order and exits non-zero (its
//!   peers cannot tell it from a dead one, so it must not go on writing), without a panic on the way out;
//! * a holder suspended (SIGSTOP) while its writes are delayed at the API server never has one of them
//!   accepted after the replica that took its trees over has written: every write carries the write window as
//!   the server's `timeout`, shorter than `lease duration − renew deadline`.
//!
//! apisim only: these scenarios inject faults into processes and into the API server.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use hnc_apisim::FaultRule;
use hnc_e2e::forest::{
    CONVERGE, SHORT_LEASE, SHORT_LEASE_ARGS, forest_names, load_forest, propagated, put_role,
};
use hnc_e2e::{TestEnv, eventually, replica_user};
use k8s_openapi::api::rbac::v1::Role;
use kube::Api;

const BINARY: &str = env!("CARGO_BIN_EXE_hnc-e2e-controller");
const LEASE: Duration = SHORT_LEASE;
const ARGS: [&str; 6] = SHORT_LEASE_ARGS;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_core_task_panics_hands_its_trees_over() -> anyhow::Result<()> {
    let mut env = TestEnv::start(BINARY).await?;
    if env.is_real_cluster() {
        eprintln!("skipped on a real cluster: injects faults into the controller's processes");
        return Ok(());
    }
    let trees = forest_names(&env, 8);
    load_forest(&env, &trees)?;
    // The first replica takes every tree; the second joins once it has.
    let first = env.start_replica("p1", &ARGS).await?;
    env.replica(first).wait_ready(CONVERGE).await?;
    for [root, ..] in &trees {
        put_role(&env, root, "before", "get").await?;
    }
    eventually(CONVERGE, "propagation by p1", || propagated(&env, &trees)).await?;
    let second = env.start_replica("p2", &ARGS).await?;
    env.replica(second).wait_ready(CONVERGE).await?;

    let (code, body) = env.replica(first).get_health("/debug/fault?panic=propagation-engine").await?;
    assert_eq!(code, 200, "{body}");
    let injected = Instant::now();
    let status = env.wait_exit(first, CONVERGE).await?;
    let exited = injected.elapsed();
    assert!(!status.success(), "a replica that cannot work exits non-zero: {status}");
    let log = env.replica(first).log_text();
    assert!(log.contains("core task propagation-engine panicked"), "the log says why:\n{log}");

    // Every tree, whichever replica held it, is maintained again.
    for [root, ..] in &trees {
        put_role(&env, root, "after", "list").await?;
    }
    eventually(CONVERGE, "propagation after p1's engine failed", || propagated(&env, &trees)).await?;
    eprintln!(
        "p1 exited {exited:?} after its engine panicked; every tree converged {:?} after (lease {LEASE:?})",
        injected.elapsed()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_cut_off_from_the_api_server_for_longer_than_a_lease_exits_without_panicking()
-> anyhow::Result<()> {
    let mut env = TestEnv::start(BINARY).await?;
    if env.is_real_cluster() {
        eprintln!("skipped on a real cluster: restarts the API server");
        return Ok(());
    }
    let replica = env.start_replica("cut", &ARGS).await?;
    env.replica(replica).wait_ready(CONVERGE).await?;
    // Down for three lease durations: the coordinator gives up after one without a request reaching the
    // server, and the replica stops.
    let sim = env.sim().context("apisim")?;
    sim.restart(LEASE * 3).await?;
    let status = env.wait_exit(replica, CONVERGE).await?;
    assert!(!status.success(), "a replica that lost the API server exits non-zero: {status}");
    let log = env.replica(replica).log_text();
    assert!(!log.contains("panicked"), "it stops in order, without a panic:\n{log}");
    assert!(log.contains("coordination stops"), "the log says why:\n{log}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_write_of_a_suspended_holder_lands_after_its_successor_has_written() -> anyhow::Result<()> {
    let mut env = TestEnv::start(BINARY).await?;
    if env.is_real_cluster() {
        eprintln!("skipped on a real cluster: suspends processes and delays the API server");
        return Ok(());
    }
    let trees = forest_names(&env, 8);
    load_forest(&env, &trees)?;
    let old = env.start_replica("s1", &ARGS).await?;
    env.replica(old).wait_ready(CONVERGE).await?;
    for [root, ..] in &trees {
        put_role(&env, root, "base", "get").await?;
    }
    eventually(CONVERGE, "propagation by s1", || propagated(&env, &trees)).await?;

    // s1's creates of Roles now take 10 s at the server — far longer than the lease. A new source in every root
    // makes s1 send them; then s1 is suspended with the requests in the server's hands.
    env.sim().expect("apisim").faults().add(FaultRule {
        verb: Some("POST".into()),
        resource: Some("roles".into()),
        user: Some(replica_user("s1")),
        latency: Duration::from_secs(10),
        ..Default::default()
    });
    let sent_before = env.sim().expect("apisim").write_count();
    for [root, ..] in &trees {
        put_role(&env, root, "doomed", "watch").await?;
    }
    // s1 has sent its creates once the server holds them: they show in its request counts only when answered,
    // so wait for s1's writer to report them in flight instead.
    eventually(CONVERGE, "s1 sending its creates", || async {
        let metrics = env.replica(old).get_metrics().await.ok()?;
        (hnc_e2e::metric_sum(&metrics, "hnc_write_in_flight") > 0.0).then_some(())
    })
    .await?;
    env.pause_replica(old)?;
    let paused = Instant::now();
    // The sources s1 was copying go away, and another source changes: whoever holds the trees next must delete
    // nothing (no copy exists) and update every "base" copy.
    for [root, ..] in &trees {
        Api::<Role>::namespaced(env.client.clone(), root).delete("doomed", &Default::default()).await?;
        put_role(&env, root, "base", "list").await?;
    }
    let new = env.start_replica("s2", &ARGS).await?;
    env.replica(new).wait_ready(CONVERGE).await?;
    eventually(CONVERGE, "propagation by s2 while s1 is suspended", || propagated(&env, &trees)).await?;
    // Past the delayed requests' 10 s: had any been applied, a "doomed" copy would exist now (and s2 would be
    // deleting it again).
    let delayed_until = paused + Duration::from_secs(11);
    tokio::time::sleep(delayed_until.saturating_duration_since(Instant::now())).await;
    eventually(CONVERGE, "convergence after the delayed requests ended", || propagated(&env, &trees)).await?;

    let writes = env.sim().expect("apisim").writes_from(sent_before);
    let accepted = |w: &&hnc_apisim::WriteRecord| (200..300).contains(&w.code) && w.resource == "roles";
    let successor_first = writes
        .iter()
        .filter(accepted)
        .filter(|w| w.user == replica_user("s2"))
        .map(|w| w.at)
        .min()
        .expect("s2 wrote copies");
    let late: Vec<_> = writes
        .iter()
        .filter(accepted)
        .filter(|w| w.user == replica_user("s1") && w.at > successor_first)
        .collect();
    assert!(late.is_empty(), "writes of the suspended holder accepted after its successor wrote: {late:?}");
    let dropped = writes
        .iter()
        .filter(|w| w.user == replica_user("s1") && w.resource == "roles" && w.code == 504)
        .count();
    assert!(dropped > 0, "s1's delayed creates reached the server and were dropped at their deadline");
    eprintln!("{dropped} delayed creates of the suspended holder were answered 504 and not applied");
    env.kill_replica(old);
    Ok(())
}
