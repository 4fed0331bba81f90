//! The leader's duties, once per retry period while the leader fence holds:
//!
//! 1. live replicas from the observed membership leases; shard weights = namespaces (the controller's
//!    callback) + objects (published by the replica that owns the shard — for a departed owner, its last
//!    report) + 1, so an empty shard still counts;
//! 2. membership changed (a replica appeared, departed, or a shard has no live owner) → [`assign`], followed
//!    in the same epoch by [`rebalance`] if the result is above `rebalance_threshold`; otherwise, max/mean
//!    above the threshold and the cooldown passed → [`rebalance`] down to [`BALANCE_TARGET`] — the gap
//!    between threshold and target is the hysteresis;
//! 3. a changed assignment is published with epoch + 1, the leader fence checked right before the write;
//! 4. metrics from the leader's view: per-shard weight, imbalance, shards without a live holder and how long
//!    they were without one.
//!
//! On shutdown a leader publishes a last assignment without itself, so its shards move at once.

use std::sync::Arc;
use std::time::Duration;

use kube::api::Api;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::assignment::{Assignment, BALANCE_TARGET, ReplicaId, assign, rebalance};
use crate::coordinator::Shared;
use crate::lease::LeaseError;
use crate::membership::{live_members, observed_members, shard_objects};
use crate::metrics as m;
use crate::publication::{AssignmentStore, PublishedAssignment};

pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let store = AssignmentStore::new(
        Api::namespaced(shared.client.clone(), &shared.config.namespace),
        shared.config.assignment_config_map.clone(),
        shared.request_timeout(),
    );
    let mut state: Option<Leading> = None;
    let mut leadership = shared.leadership();
    loop {
        // A leader that has not decided yet (no assignment read, no membership view newer than its election)
        // looks again soon: after a failover, every tick it waits is time the departed replica's trees have
        // no writer.
        let settling = state.as_ref().is_some_and(|l| !l.settled(&shared));
        let wait = if settling { shared.config.retry_period / 8 } else { shared.config.retry_period };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
            // Elected: act now, not a retry period later.
            _ = leadership.changed() => {}
        }
        if !shared.leader.holds() {
            if state.take().is_some() {
                clear_leader_metrics(&shared);
            }
            continue;
        }
        let leading = state.get_or_insert_with(|| {
            shared.relist.notify_one();
            Leading::new(&shared)
        });
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = leading.tick(&shared, &store) => {}
        }
    }
    if let Some(leading) = &mut state
        && shared.leader.holds()
    {
        leading.farewell(&shared, &store).await;
    }
    if state.is_some() {
        clear_leader_metrics(&shared);
    }
}

/// The leader-only gauges of a former leader would otherwise keep reporting its last view.
fn clear_leader_metrics(shared: &Shared) {
    for shard in 0..shared.config.shard_count {
        metrics::gauge!(m::SHARD_WEIGHT, "shard" => shard.to_string()).set(0.0);
    }
    metrics::gauge!(m::SHARD_IMBALANCE).set(0.0);
    metrics::gauge!(m::SHARDS_UNOWNED).set(0.0);
    metrics::gauge!(m::UNOWNED_LONGEST_SECONDS).set(0.0);
}

/// What a leader remembers between ticks; dropped when leadership is lost.
struct Leading {
    since: Instant,
    /// The assignment as published and the ConfigMap's resourceVersion (None = no ConfigMap); None = read
    /// first.
    published: Option<(Option<PublishedAssignment>, Option<String>)>,
    /// Objects per shard as last reported by its owner.
    objects: Vec<u64>,
    weights: Vec<u64>,
    unowned_since: Vec<Option<Instant>>,
    last_rebalance: Option<Instant>,
}

impl Leading {
    fn new(shared: &Shared) -> Self {
        let n = shared.config.shard_count as usize;
        Leading {
            since: Instant::now(),
            published: None,
            objects: vec![0; n],
            weights: vec![1; n],
            unowned_since: vec![None; n],
            last_rebalance: None,
        }
    }

    /// True once the leader may decide: it has read the assignment and has a membership view listed after its
    /// election. A replica elected right after it started (a cold start of the whole Deployment) also gives the
    /// others half a retry period to register, and decides from a list taken after that — replicas register
    /// the moment they start, so peers started together are seen — rather than assigning every shard to itself
    /// and moving most of them a moment later. Every write of a cold start waits for this first assignment, so the wait is kept short: a
    /// replica that starts later is given its shards when it registers. A replica that has been running knows
    /// its peers already and acts at once.
    ///
    /// A cold-started leader also waits for the shard weights (its tree index complete), so that the first
    /// assignment is balanced rather than re-balanced a moment later with shards moving mid-start; it stops
    /// waiting for them after a lease duration.
    fn settled(&self, shared: &Shared) -> bool {
        let now = Instant::now();
        let floor = self.since.max(shared.started + shared.config.retry_period / 2);
        let weighed = now >= shared.started + shared.config.lease_duration || (shared.weights)().is_some();
        self.published.is_some()
            && now >= floor
            && shared.last_list.lock().is_some_and(|at| at >= floor)
            && weighed
    }

    async fn tick(&mut self, shared: &Shared, store: &AssignmentStore) {
        if self.published.is_none() {
            let read = store.read().await;
            shared.contact(&read);
            match read {
                Ok(None) => self.published = Some((None, None)),
                Ok(Some((doc, rv))) => self.published = Some((doc, Some(rv))),
                Err(e) => {
                    tracing::warn!(identity = %shared.me, "leader reading the assignment: {e}");
                    return;
                }
            }
        }
        if !self.settled(shared) {
            // The view that decides must include everyone who registered during the wait: list once it is over.
            let floor = self.since.max(shared.started + shared.config.retry_period / 2);
            if Instant::now() >= floor && shared.last_list.lock().is_none_or(|at| at < floor) {
                shared.relist.notify_one();
            }
            return;
        }
        let now = Instant::now();
        let members = live_members(shared, now);
        let live: Vec<ReplicaId> = members.keys().cloned().collect();
        let previous = self.previous(shared);
        // Object counts come from every replica's last report, so a departed replica's shards are placed by
        // their real weight rather than re-balanced once their new owners have reported.
        self.observe_weights(shared, &observed_members(shared), &previous);
        self.observe_unowned(shared, now);
        if live.is_empty() {
            return;
        }
        let imbalance = previous.imbalance(&self.weights, &live);
        metrics::gauge!(m::SHARD_IMBALANCE).set(imbalance);

        let published_replicas = self.doc().map(|d| d.replicas.clone());
        let orphaned = previous.owners().iter().any(|o| o.as_ref().is_none_or(|o| !live.contains(o)));
        let (next, reason) = if orphaned || published_replicas.as_ref() != Some(&live) {
            let mut next = assign(&self.weights, &live, &previous);
            // A departed replica's heavy shard may not fit anyone's headroom: rather than publish an
            // assignment the drift rule would undo next tick, re-balance in the same epoch.
            if next.imbalance(&self.weights, &live) > shared.config.rebalance_threshold {
                next = rebalance(&self.weights, &live, &next, BALANCE_TARGET);
            }
            (next, "membership")
        } else if imbalance > shared.config.rebalance_threshold
            && self.last_rebalance.is_none_or(|at| now - at >= shared.config.rebalance_cooldown)
        {
            self.last_rebalance = Some(now);
            tracing::info!(identity = %shared.me, imbalance, "weights drifted: re-balancing");
            (rebalance(&self.weights, &live, &previous, BALANCE_TARGET), "rebalance")
        } else {
            return;
        };
        if next == previous && published_replicas.as_ref() == Some(&live) {
            return;
        }
        self.publish(shared, store, next, live, &previous, reason).await;
    }

    /// The last published owners, sized to the shard count (a different count leaves the rest unowned).
    fn previous(&self, shared: &Shared) -> Assignment {
        let n = shared.config.shard_count as usize;
        let mut owners = self.doc().map(|d| d.owners.owners().to_vec()).unwrap_or_default();
        owners.resize(n, None);
        Assignment::from_owners(owners)
    }

    fn doc(&self) -> Option<&PublishedAssignment> {
        self.published.as_ref().and_then(|(doc, _)| doc.as_ref())
    }

    fn observe_weights(
        &mut self,
        shared: &Shared,
        members: &std::collections::BTreeMap<ReplicaId, crate::lease::Observed>,
        owners: &Assignment,
    ) {
        // A shard's object count comes from its owner only: a previous owner's report is stale.
        for (replica, seen) in members {
            for (shard, objects) in shard_objects(seen) {
                if owners.owner(shard) == Some(replica)
                    && let Some(slot) = self.objects.get_mut(shard as usize)
                {
                    *slot = objects;
                }
            }
        }
        let namespaces = (shared.weights)().unwrap_or_default();
        for (shard, weight) in self.weights.iter_mut().enumerate() {
            let ns = namespaces.get(shard).copied().unwrap_or(0);
            *weight = ns.saturating_add(self.objects[shard]).saturating_add(1);
            metrics::gauge!(m::SHARD_WEIGHT, "shard" => shard.to_string()).set(*weight as f64);
        }
    }

    fn observe_unowned(&mut self, shared: &Shared, now: Instant) {
        let mut unowned = 0;
        let mut longest = Duration::ZERO;
        for (shard, since) in self.unowned_since.iter_mut().enumerate() {
            let lease = shared.config.shard_lease(shard as u32);
            let held = shared.observations.get(&lease).is_some_and(|o| o.live_holder(now).is_some());
            match (held, *since) {
                (true, Some(at)) => {
                    metrics::histogram!(m::UNOWNED_SECONDS).record((now - at).as_secs_f64());
                    *since = None;
                }
                (false, None) => *since = Some(now),
                _ => {}
            }
            unowned += usize::from(!held);
            if let Some(at) = *since {
                longest = longest.max(now - at);
            }
        }
        metrics::gauge!(m::SHARDS_UNOWNED).set(unowned as f64);
        metrics::gauge!(m::UNOWNED_LONGEST_SECONDS).set(longest.as_secs_f64());
    }

    async fn publish(
        &mut self,
        shared: &Shared,
        store: &AssignmentStore,
        next: Assignment,
        live: Vec<ReplicaId>,
        previous: &Assignment,
        reason: &'static str,
    ) {
        let Some((doc, rv)) = &self.published else { return };
        // Epochs never go back, even if the ConfigMap was deleted: we also remember the newest we followed.
        let epoch = doc.as_ref().map_or(0, |d| d.epoch).max(shared.assignment().map_or(0, |d| d.epoch)) + 1;
        let handovers = next.moved_from(previous).iter().filter(|&&s| previous.owner(s).is_some()).count();
        let doc = PublishedAssignment {
            epoch,
            leader: shared.me.clone(),
            shard_count: shared.config.shard_count,
            replicas: live,
            owners: next,
            weights: self.weights.clone(),
        };
        // The fence, right before the write: a deposed leader publishes nothing.
        if !shared.leader.holds() {
            return;
        }
        let written = store.write(&doc, rv.clone()).await;
        shared.contact(&written);
        match written {
            Ok(rv) => {
                let imbalance = doc.owners.imbalance(&doc.weights, &doc.replicas);
                tracing::info!(identity = %shared.me, epoch, reason, handovers, imbalance,
                    replicas = ?doc.replicas, "published shard assignment");
                metrics::counter!(m::HANDOVERS, "reason" => reason).increment(handovers as u64);
                shared.apply_assignment(doc.clone());
                self.published = Some((Some(doc), Some(rv)));
            }
            Err(LeaseError::Api { source: kube::Error::Api(s), .. }) if s.code == 409 => {
                // Someone else wrote it (a former leader's late write, an operator): read it again.
                self.published = None;
            }
            Err(e) => tracing::warn!(identity = %shared.me, "publishing the assignment: {e}"),
        }
    }

    /// Shutdown of a leader: publish an assignment without this replica, so its shards move at once.
    async fn farewell(&mut self, shared: &Shared, store: &AssignmentStore) {
        if self.doc().is_none() {
            return;
        }
        let others: Vec<ReplicaId> =
            live_members(shared, Instant::now()).into_keys().filter(|r| *r != shared.me).collect();
        if others.is_empty() {
            return;
        }
        let previous = self.previous(shared);
        let next = assign(&self.weights, &others, &previous);
        self.publish(shared, store, next, others, &previous, "shutdown").await;
    }
}
