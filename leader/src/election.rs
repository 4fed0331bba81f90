//! Leader election over one Lease, client-go style: every retry period the leader renews and everyone else
//! tries to take the lease (which succeeds only once it is released or expired by their observation). The
//! leader fence opens with each successful renewal for the renew deadline; a leader that cannot renew stops
//! leading at the deadline, before anyone else may take over at lease expiry.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::coordinator::Shared;
use crate::lease::Attempt;
use crate::metrics as m;

/// Value of the lease-kind label on the leader lease.
pub(crate) const KIND: &str = "leader";

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let config = &shared.config;
    let mut lock = shared.lease_lock(config.leader_lease.clone(), KIND);
    loop {
        let attempt = tokio::select! {
            _ = stop.cancelled() => break,
            a = lock.try_acquire() => a,
        };
        let mut expiry = None;
        shared.contact(&attempt);
        match attempt {
            Ok(Attempt::Held { sent, .. }) => {
                shared.leader.renewed(sent, config.renew_deadline);
            }
            Ok(Attempt::HeldByOther { expires, .. }) => {
                shared.leader.revoke();
                lock.forget_held();
                expiry = Some(expires);
            }
            Ok(Attempt::LostRace) => {
                shared.leader.revoke();
                lock.forget_held();
            }
            Err(e) => {
                metrics::counter!(m::LEASE_ERRORS, "kind" => KIND).increment(1);
                tracing::debug!(identity = %shared.me, "leader lease: {e}");
            }
        }
        shared.refresh_leader();
        // Candidates spread out their attempts (client-go's jitter factor 1.2), but try again right as the
        // lease they saw expires rather than up to a retry period later; the leader renews on time.
        let pause = if shared.leader.holds() {
            config.retry_period
        } else {
            let jittered = config.retry_period.mul_f64(1.0 + 0.2 * rand::random::<f64>());
            expiry.map_or(jittered, |at| jittered.min(until_just_after(at)))
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(pause) => {}
        }
    }
    shared.leader.close();
    shared.refresh_leader();
    match lock.release().await {
        Ok(true) => tracing::info!(identity = %shared.me, "released the leader lease"),
        Ok(false) => {}
        Err(e) => tracing::warn!(identity = %shared.me, "releasing the leader lease: {e}"),
    }
}

/// The pause until just after `at` (a few milliseconds of jitter keep candidates from colliding exactly).
pub(crate) fn until_just_after(at: tokio::time::Instant) -> std::time::Duration {
    let jitter = std::time::Duration::from_millis(5 + rand::random::<u64>() % 45);
    at.saturating_duration_since(tokio::time::Instant::now()) + jitter
}
