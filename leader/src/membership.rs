//! Membership: each replica renews its own Lease `<prefix>-replica-<identity>` (label `hnc.x-k8s.io/lease:
//! replica`) and publishes small facts in its annotations — at least the objects it caches per shard it
//! holds, which the leader adds to the shard weights. The live replicas are the holders of membership leases
//! that are not expired by local observation; a released one (graceful shutdown) is gone at once.

use std::collections::BTreeMap;
use std::sync::Arc;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::assignment::ReplicaId;
use crate::coordinator::Shared;
use crate::lease::{Attempt, Observed};
use crate::metrics as m;

/// Value of the lease-kind label on membership leases.
pub(crate) const KIND: &str = "replica";

/// Annotation on a membership lease: JSON object shard id → objects cached for it, e.g. `{"3":120,"7":4000}`.
pub const SHARD_OBJECTS_ANNOTATION: &str = "hnc.x-k8s.io/shard-objects";

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let mut lock = shared.lease_lock(shared.config.replica_lease(shared.me.as_str()), KIND);
    loop {
        lock.set_annotations(shared.facts.lock().clone());
        let attempt = tokio::select! {
            _ = stop.cancelled() => break,
            a = lock.try_acquire() => a,
        };
        shared.contact(&attempt);
        match attempt {
            Ok(Attempt::Held { .. }) => {}
            Ok(Attempt::HeldByOther { holder, .. }) => {
                tracing::error!(identity = %shared.me, %holder,
                    "another process holds this replica's membership lease: identities must be unique");
                lock.forget_held();
            }
            Ok(Attempt::LostRace) => lock.forget_held(),
            Err(e) => {
                metrics::counter!(m::LEASE_ERRORS, "kind" => KIND).increment(1);
                tracing::debug!(identity = %shared.me, "membership lease: {e}");
            }
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(shared.config.retry_period) => {}
        }
    }
    if let Err(e) = lock.release().await {
        tracing::warn!(identity = %shared.me, "releasing the membership lease: {e}");
    }
}

/// Live replicas (sorted), by their membership leases as observed.
pub(crate) fn live_replicas(shared: &Shared, now: Instant) -> Vec<ReplicaId> {
    live_members(shared, now).into_keys().collect()
}

/// Every replica whose membership lease was last seen with a holder, live or expired: a replica that died
/// without releasing still tells, through its last report, how heavy the shards it owned are.
pub(crate) fn observed_members(shared: &Shared) -> BTreeMap<ReplicaId, Observed> {
    members(shared, |seen| seen.holder.clone().filter(|h| !h.is_empty()))
}

/// Live replicas with their membership-lease observations.
pub(crate) fn live_members(shared: &Shared, now: Instant) -> BTreeMap<ReplicaId, Observed> {
    members(shared, |seen| seen.live_holder(now).map(str::to_owned))
}

/// Membership leases as observed, by the replica `holder` names (leases it names none of are left out).
fn members(shared: &Shared, holder: impl Fn(&Observed) -> Option<String>) -> BTreeMap<ReplicaId, Observed> {
    let prefix = format!("{}-replica-", shared.config.lease_prefix);
    shared
        .observations
        .of_kind(KIND)
        .into_iter()
        .filter(|(name, _)| name.starts_with(&prefix))
        .filter_map(|(_, seen)| Some((ReplicaId(holder(&seen)?), seen)))
        .collect()
}

/// The per-shard object counts a replica published (absent or malformed = none).
pub(crate) fn shard_objects(seen: &Observed) -> BTreeMap<u32, u64> {
    seen.annotations
        .get(SHARD_OBJECTS_ANNOTATION)
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default()
}
