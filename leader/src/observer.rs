//! The observer: twice per retry period (and at once when a new leader asks) one LIST of every labelled Lease
//! (leader, replicas, shards) feeds the expiry memory, so that a replica that is handed a shard — or becomes
//! leader — already knows how long each lease has gone unchanged and need not wait a full extra duration.
//! Expiry is judged from when a record was first seen, so the listing period is how late a dead holder's
//! lease can be judged expired (half a retry period: one LIST of a few dozen Leases per second per replica
//! by default). It also keeps the watch channels in step
//! with fences that lapse by time, and declares the API lost after a lease duration without contact.

use std::sync::Arc;
use std::time::Duration;

use kube::api::ListParams;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::coordinator::{Shared, api_lost};
use crate::lease::{LEASE_KIND_LABEL, call};

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    tokio::join!(list(&shared, &stop), refresh(&shared, &stop));
}

async fn list(shared: &Shared, stop: &CancellationToken) {
    let api = shared.leases_api();
    let params = ListParams::default().labels(LEASE_KIND_LABEL);
    loop {
        let listed = tokio::select! {
            _ = stop.cancelled() => return,
            r = call("leases", shared.request_timeout(), api.list(&params)) => r,
        };
        shared.contact(&listed);
        match listed {
            Ok(list) => {
                shared.observations.observe_list(&list.items, Instant::now());
                *shared.last_list.lock() = Some(Instant::now());
            }
            Err(e) => tracing::debug!(identity = %shared.me, "listing leases: {e}"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(shared.config.retry_period / 2) => {}
            _ = shared.relist.notified() => {}
        }
    }
}

/// Fences lapse on their own; this is how soon the watch channels follow, and where a lost API is noticed.
async fn refresh(shared: &Shared, stop: &CancellationToken) {
    let every = (shared.config.retry_period / 4).max(Duration::from_millis(10));
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
        shared.refresh_leader();
        shared.refresh_held();
        if shared.since_contact() > shared.config.lease_duration {
            api_lost(shared);
            return;
        }
    }
}
