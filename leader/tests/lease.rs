//! The lease primitives against apisim over HTTPS: optimistic concurrency, release, and expiry judged by
//! local observation rather than by the remote renewTime.

mod support;

use std::sync::Arc;
use std::time::Duration;

use hnc_leader::lease::{Attempt, LeaseLock, Observations};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::{Api, PostParams};
use serde_json::json;
use support::{NAMESPACE, client_as, sim};

const SECOND: Duration = Duration::from_secs(1);

fn lock(api: &Api<Lease>, identity: &str, observations: &Arc<Observations>) -> LeaseLock {
    LeaseLock::new(api.clone(), "demo", "shard", identity, SECOND, SECOND * 5, observations.clone())
}

fn is_held(a: &Attempt) -> bool {
    matches!(a, Attempt::Held { .. })
}

#[tokio::test]
async fn acquire_renew_release_and_take_over() {
    let sim = sim().await;
    let api: Api<Lease> = Api::namespaced(client_as(&sim, "admin-a").await, NAMESPACE);
    let (obs_a, obs_b) = (Arc::new(Observations::default()), Arc::new(Observations::default()));
    let (mut a, mut b) = (lock(&api, "a", &obs_a), lock(&api, "b", &obs_b));

    assert!(matches!(a.try_acquire().await.unwrap(), Attempt::Held { acquired: true, .. }), "created");
    assert!(matches!(a.try_acquire().await.unwrap(), Attempt::Held { acquired: false, .. }), "renewed");
    assert_eq!(held_by(b.try_acquire().await.unwrap()).as_deref(), Some("a"));

    let lease = api.get("demo").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("a"));
    assert_eq!(spec.lease_duration_seconds, Some(1));
    assert!(spec.acquire_time.is_some() && spec.renew_time.is_some());
    assert_eq!(lease.metadata.labels.unwrap()["hnc.x-k8s.io/lease"], "shard");

    assert!(a.release().await.unwrap());
    assert_eq!(
        api.get("demo").await.unwrap().spec.unwrap().holder_identity,
        None,
        "released = holder cleared"
    );
    // Released: b takes it at once, without waiting for expiry, and the takeover is counted.
    assert!(matches!(b.try_acquire().await.unwrap(), Attempt::Held { acquired: true, .. }));
    let spec = api.get("demo").await.unwrap().spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("b"));
    assert_eq!(spec.lease_transitions, Some(2), "a took it (1), b took it (2)");
    // a's renewal of its stale copy loses (409) and a re-reads: b holds it.
    assert_eq!(held_by(a.try_acquire().await.unwrap()).as_deref(), Some("b"));
    assert!(!a.release().await.unwrap(), "a does not release what it does not hold");
}

#[tokio::test]
async fn a_concurrent_writer_wins_the_race_and_the_loser_sees_409() {
    let sim = sim().await;
    let api: Api<Lease> = Api::namespaced(client_as(&sim, "admin-a").await, NAMESPACE);
    let obs = Arc::new(Observations::default());
    let mut a = lock(&api, "a", &obs);
    a.try_acquire().await.unwrap();
    // Someone rewrites the lease behind a's back (here: an operator); a's next renewal PUTs a stale version,
    // gets 409, re-reads and finds itself no longer the holder.
    let mut lease = api.get("demo").await.unwrap();
    lease.spec.as_mut().unwrap().holder_identity = Some("operator".into());
    api.replace("demo", &PostParams::default(), &lease).await.unwrap();
    assert_eq!(held_by(a.try_acquire().await.unwrap()).as_deref(), Some("operator"));
    assert!(!a.believes_held());
}

#[tokio::test]
async fn expiry_is_judged_by_local_observation_not_by_renew_time() {
    let sim = sim().await;
    let api: Api<Lease> = Api::namespaced(client_as(&sim, "admin-a").await, NAMESPACE);
    // A holder whose clock runs an hour ahead: its renewTime is in our future. A client comparing renewTime
    // with its own clock would wait an hour; we wait one lease duration after first seeing the record.
    let future = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    let ghost = json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": "demo", "namespace": NAMESPACE},
        "spec": {"holderIdentity": "ghost", "leaseDurationSeconds": 1,
                 "renewTime": future.strftime("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()}
    });
    api.create(&PostParams::default(), &serde_json::from_value(ghost).unwrap()).await.unwrap();
    let obs = Arc::new(Observations::default());
    let mut b = lock(&api, "b", &obs);
    let first_seen = tokio::time::Instant::now();
    let Attempt::HeldByOther { holder, expires } = b.try_acquire().await.unwrap() else {
        panic!("the ghost holds it until its lease expires by our observation")
    };
    assert_eq!(holder, "ghost");
    assert!(expires >= first_seen + SECOND, "expiry is one lease duration after we first saw the record");
    assert!(expires <= tokio::time::Instant::now() + SECOND);
    loop {
        let attempt = b.try_acquire().await.unwrap();
        if is_held(&attempt) {
            break;
        }
        assert!(first_seen.elapsed() < SECOND * 10, "never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(first_seen.elapsed() >= SECOND, "not before a full duration of our own observation");

    // And a holder that keeps renewing never expires, however old its renewTime looks.
    let mut c = lock(&api, "c", &Arc::new(Observations::default()));
    for _ in 0..8 {
        assert!(is_held(&b.try_acquire().await.unwrap()));
        assert!(!is_held(&c.try_acquire().await.unwrap()), "c must not take a lease b keeps renewing");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The holder of an attempt that found the lease held by someone else.
fn held_by(attempt: Attempt) -> Option<String> {
    match attempt {
        Attempt::HeldByOther { holder, .. } => Some(holder),
        _ => None,
    }
}
