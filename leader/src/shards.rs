//! Shard leases and handover. Each shard has a Lease `<prefix>-shard-<n>`; a replica acts for a shard only
//! while it holds that lease (its fence is open).
//!
//! ```text
//!  leader publishes epoch e: shard s  A ──▶ B
//!
//!  A (follow):  reads e ─▶ fence(s) unwanted: holds(s) = false at once
//!  A (run):                  └─▶ release lease s (holder cleared)
//!  B (follow):  reads e ─▶ fence(s) wanted
//!  B (run):     try lease s every retry period ─▶ taken once released (or expired by B's observation)
//!                                              ─▶ fence(s) open: holds(s) = true
//! ```
//!
//! A never holds after it sees epoch e, and B cannot take the lease before A released it or A's fence lapsed
//! (fence = renew deadline < lease duration = expiry), so no instant has both holding. `follow` reads the
//! assignment in its own loop so a slow read never delays renewals.

use std::collections::BTreeSet;
use std::sync::Arc;

use futures::StreamExt;
use kube::api::Api;
use tokio_util::sync::CancellationToken;

use crate::coordinator::Shared;
use crate::lease::{Attempt, LeaseLock};
use crate::metrics as m;
use crate::publication::AssignmentStore;

/// Value of the lease-kind label on shard leases.
pub(crate) const KIND: &str = "shard";

/// Shard lease requests in flight at once.
const CONCURRENCY: usize = 16;

/// Reads the assignment four times per retry period and applies any newer epoch: a replica handed the shards
/// of a departed one should not add a whole period to the time those trees have no writer. (One GET of one
/// small ConfigMap per replica every half second by default.)
pub(crate) async fn follow(shared: Arc<Shared>, stop: CancellationToken) {
    let store = AssignmentStore::new(
        Api::namespaced(shared.client.clone(), &shared.config.namespace),
        shared.config.assignment_config_map.clone(),
        shared.request_timeout(),
    );
    loop {
        let read = tokio::select! {
            _ = stop.cancelled() => return,
            r = store.read() => r,
        };
        shared.contact(&read);
        match read {
            Ok(Some((Some(doc), _))) => shared.apply_assignment(doc),
            Ok(_) => {}
            Err(e) => tracing::debug!(identity = %shared.me, "reading the assignment: {e}"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(shared.config.retry_period / 4) => {}
        }
    }
}

/// Acquires assigned shards, renews held ones, releases the ones assigned away; on stop releases everything.
pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let mut locks: Vec<LeaseLock> = (0..shared.config.shard_count)
        .map(|s| shared.lease_lock(shared.config.shard_lease(s), KIND))
        .collect();
    let mut assigned_rx = shared.assigned_tx.subscribe();
    loop {
        let assigned = assigned_rx.borrow_and_update().clone();
        let expiry = tokio::select! {
            _ = stop.cancelled() => break,
            expiry = tick(&shared, &mut locks, &assigned) => expiry,
        };
        shared.refresh_held();
        // An assigned shard still held by its previous holder is tried again right as its lease expires.
        let pause = expiry.map_or(shared.config.retry_period, |at| {
            shared.config.retry_period.min(crate::election::until_just_after(at))
        });
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
            // A new assignment: release and acquire now rather than at the next tick.
            _ = assigned_rx.changed() => {}
        }
    }
    for fence in &shared.shards {
        fence.close();
    }
    shared.refresh_held();
    // Only leases we may hold are asked about: the assigned ones and those our last write left us holding.
    let assigned = assigned_rx.borrow().clone();
    let releases = locks.iter_mut().enumerate().filter_map(|(shard, lock)| {
        let maybe_ours = lock.believes_held() || assigned.contains(&(shard as u32));
        let shared = &shared;
        maybe_ours.then_some(async move {
            match lock.release().await {
                Ok(true) => tracing::debug!(identity = %shared.me, shard, "released"),
                Ok(false) => {}
                Err(e) => tracing::warn!(identity = %shared.me, shard, "releasing: {e}"),
            }
        })
    });
    // Collected first: a lazy iterator held across an await trips the spawned future's `Send` check.
    let releases: Vec<_> = releases.collect();
    futures::stream::iter(releases).buffer_unordered(CONCURRENCY).collect::<Vec<()>>().await;
}

/// One round over the shards: renew or acquire the assigned ones, release the others. Returns the earliest
/// observed expiry among assigned shards another replica still holds.
async fn tick(
    shared: &Shared,
    locks: &mut [LeaseLock],
    assigned: &BTreeSet<u32>,
) -> Option<tokio::time::Instant> {
    let work = locks.iter_mut().enumerate().filter_map(|(shard, lock)| {
        let shard = shard as u32;
        let wanted = assigned.contains(&shard);
        (wanted || lock.believes_held()).then(|| one(shared, shard, lock, wanted))
    });
    let work: Vec<_> = work.collect();
    let expiries: Vec<Option<tokio::time::Instant>> =
        futures::stream::iter(work).buffer_unordered(CONCURRENCY).collect().await;
    expiries.into_iter().flatten().min()
}

async fn one(
    shared: &Shared,
    shard: u32,
    lock: &mut LeaseLock,
    wanted: bool,
) -> Option<tokio::time::Instant> {
    let fence = &shared.shards[shard as usize];
    if !wanted {
        // Assigned away: `follow` already shut the fence; hand the lease over now.
        let released = lock.release().await;
        shared.contact(&released);
        if let Err(e) = released {
            tracing::debug!(identity = %shared.me, shard, "releasing: {e}");
        }
        return None;
    }
    let attempt = lock.try_acquire().await;
    shared.contact(&attempt);
    match attempt {
        Ok(Attempt::Held { sent, acquired }) => {
            if fence.renewed(sent, shared.config.renew_deadline) && acquired {
                tracing::info!(identity = %shared.me, shard, "acquired shard lease");
            }
        }
        Ok(Attempt::HeldByOther { expires, .. }) => {
            fence.revoke();
            lock.forget_held();
            return Some(expires);
        }
        Ok(Attempt::LostRace) => {
            fence.revoke();
            lock.forget_held();
        }
        Err(e) => {
            metrics::counter!(m::LEASE_ERRORS, "kind" => KIND).increment(1);
            tracing::debug!(identity = %shared.me, shard, "shard lease: {e}");
        }
    }
    None
}
