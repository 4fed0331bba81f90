//! Everything one replica runs once it is connected, wired together.
//!
//! ```text
//!  Namespace/HC/anchor watches ─▶ HierarchyReconciler (owns TreeIndex) ─snapshots─▶ TreeReader ──┐
//!                                      │ subtrees to re-plan                                     │
//!  per-type object watches ──────▶ PropagationEngine (owns ForestCache) ◀─ active types ─┐        │
//!                                                                                        │        │
//!  HNCConfiguration + CRD watches ─▶ ConfigReconciler ───────────────────────────────────┘        │
//!                                                                                                 │
//!  each of the three ──writes (in its flow)───▶ Writer ── fence: Ownership over the latest snapshot ◀┘
//!         ▲                                       │
//!         └────── its own outcome channel ◀───────┘
//! ```
//!
//! Every long-running part is a named core task ([`CoreTasks`]): if one ends or panics, [`Replica::fatal`]
//! resolves and the replica stops holding work (see [`crate::tasks`]).
//!
//! Each reconciler makes its own writer handle ([`Writer::reporting_to`]), so every outcome goes straight back
//! to whoever submitted the write; this module only wires. What replicas report about shards (the leader's
//! weights, `/debug/shards`, `/debug/namespace`) lives in [`crate::ownership`].

use std::sync::Arc;

use hnc_api::{HNCConfiguration, HierarchicalResourceQuota, HierarchyConfiguration, SubnamespaceAnchor};
use hnc_leader::{Coordinator, CoordinatorConfig, CoordinatorHandle};
use hnc_shard::propagation::{ForestCache, ForestCacheReader, PropagationRules, TypeKey};
use hnc_shard::ring::DEFAULT_VIRTUAL_NODES;
use hnc_shard::{ShardRing, TreeIndex, TreeReader};
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::reconciler::{ConfigEvent, ConfigReconciler, CountsFn};
use crate::config::resolve::TypeCounts;
use crate::flags::Flags;
use crate::hierarchy::ingest::HierarchyEvent;
use crate::hierarchy::reconciler::HierarchyReconciler;
use crate::hrq::{QuotaEvent, QuotaReconciler, QuotaView};
use crate::ops::{DebugPages, Readiness};
use crate::ownership::{self, Ownership, ShardedOwnership};
use crate::propagation::engine::PropagationEngine;
use crate::tasks::CoreTasks;
use crate::watch::{EVENT_BUFFER, SpecOptional, feed, feed_spec_optional};
use crate::writer::{self, Fence, Writer, WriterConfig};

/// The readiness gate a replica holds open while all its core tasks run.
pub const READY_GATE: &str = "replica";

/// The running parts of a replica.
pub struct Replica {
    /// Snapshots of the hierarchy, for webhooks and diagnostics.
    pub tree: TreeReader,
    /// Snapshots of the propagation cache.
    pub cache: ForestCacheReader,
    /// The writer every API write goes through.
    pub writer: Writer,
    stop: CancellationToken,
    core: CoreTasks,
    /// Tasks that end by themselves (readiness gates waiting for a first sync).
    helpers: JoinSet<()>,
    coordinator: Option<(CoordinatorHandle, CoordinatorTask)>,
    ready: Readiness,
}

type CoordinatorTask = tokio::task::JoinHandle<Result<(), hnc_leader::CoordinatorError>>;

impl Replica {
    /// Starts the replica's tasks. `ready` gets a `hierarchy` gate, opened once the hierarchy is synced;
    /// `debug` gets `/debug/shards` and `/debug/namespace?name=NS`.
    pub fn start(
        flags: &Flags,
        client: Client,
        config: &kube::Config,
        ready: &Readiness,
        debug: &DebugPages,
    ) -> anyhow::Result<Replica> {
        let stop = CancellationToken::new();
        let mut core = CoreTasks::default();
        let mut helpers = JoinSet::new();
        #[cfg(feature = "fault-injection")]
        debug.register("fault", core.fault_page());
        let index = TreeIndex::new(flags.namespace_policy());
        let tree = index.reader();
        let ring = ShardRing::new(flags.shards, DEFAULT_VIRTUAL_NODES);
        // Bumped whenever this replica gains or loses shards (assigned or held) or leadership.
        let (ownership_tx, ownership_rx) = watch::channel(0u64);
        let (ownership, coordinator) = if flags.webhooks_only {
            (Ownership::Nothing, None)
        } else {
            let (coordinator, task) = start_coordinator(flags, client.clone(), tree.clone(), ring.clone())?;
            debug.register("shards", ownership::shards_page(coordinator.clone()));
            let (mut held, mut leading) = (coordinator.held_shards(), coordinator.leadership());
            let mut assigned = coordinator.assigned_shards();
            core.spawn("ownership-notifier", async move {
                loop {
                    tokio::select! {
                        changed = held.changed() => if changed.is_err() { return },
                        changed = assigned.changed() => if changed.is_err() { return },
                        changed = leading.changed() => if changed.is_err() { return },
                    }
                    ownership_tx.send_modify(|v| *v += 1);
                }
            });
            let ownership =
                Ownership::Shards(Arc::new(ShardedOwnership::new(ring.clone(), coordinator.clone())));
            (ownership, Some((coordinator, task)))
        };

        // The writer. Every write goes through it; each submitter follows its own outcomes.
        let fence: Fence = {
            let (tree, ownership) = (tree.clone(), ownership.clone());
            Arc::new(move |scope: &str| ownership.owns(&*tree.load(), scope))
        };
        let writer_config = WriterConfig {
            attempt_timeout: writer::write_window(flags.lease_duration, flags.renew_deadline),
            ..WriterConfig::from_flag(flags.apiserver_qps_throttle)
        };
        let (writer, writer_task) = Writer::start(writer::writer_client(config)?, writer_config, fence);
        core.spawn("writer", async move {
            if let Err(error) = writer_task.await
                && error.is_panic()
            {
                std::panic::resume_unwind(error.into_panic());
            }
        });
        let (config_tx, config_rx) = mpsc::channel::<ConfigEvent>(256);

        // Hierarchy: three watches feed the reconciler that owns the tree index.
        let (events_tx, events_rx) = mpsc::channel(EVENT_BUFFER);
        let watch_config = watcher::Config::default();
        core.spawn(
            "namespace-watch",
            feed(
                Api::<Namespace>::all(client.clone()),
                watch_config.clone(),
                events_tx.clone(),
                "namespaces".to_owned(),
                HierarchyEvent::Namespace,
            ),
        );
        core.spawn(
            "hierarchyconfiguration-watch",
            feed_spec_optional(
                Api::<SpecOptional<HierarchyConfiguration>>::all(client.clone()),
                watch_config.clone(),
                events_tx.clone(),
                "hierarchyconfigurations".to_owned(),
                HierarchyEvent::Hierarchy,
            ),
        );
        core.spawn(
            "subnamespaceanchor-watch",
            feed_spec_optional(
                Api::<SpecOptional<SubnamespaceAnchor>>::all(client.clone()),
                watch_config.clone(),
                events_tx.clone(),
                "subnamespaceanchors".to_owned(),
                HierarchyEvent::Anchor,
            ),
        );
        core.spawn("crd-watch", crate::crds::watch_crds(client.clone(), config_tx.clone(), events_tx));
        // Hierarchy changes propagation must follow go straight to the engine.
        let (propagation_tx, propagation_rx) = mpsc::unbounded_channel();
        // With --enable-hrq the quota reconciler hears of hierarchy changes too: usage moves with namespaces.
        let (quota_notices_tx, quota_notices_rx) = mpsc::unbounded_channel();
        let mut notices = vec![propagation_tx];
        if flags.enable_hrq {
            notices.push(quota_notices_tx);
        }
        let reconciler =
            HierarchyReconciler::new(index, writer.with_flow("hierarchy"), ownership.clone(), notices)
                .with_max_writes_in_flight(flags.max_writes_in_flight as usize);
        helpers.spawn(ready.open_when("hierarchy", reconciler.synced()));
        core.spawn("hierarchy-reconciler", reconciler.run(events_rx, ownership_rx.clone(), stop.clone()));

        // Propagation: the engine owns the forest cache; the config reconciler tells it what to propagate.
        let rules = PropagationRules {
            unpropagated_labels: flags.unpropagated_labels.clone(),
            unpropagated_annotations: flags.unpropagated_annotations.clone(),
            nopropagation_labels: flags.nopropagation_labels.clone(),
        };
        let engine = PropagationEngine::new(
            client.clone(),
            ForestCache::new(rules),
            tree.clone(),
            writer.with_flow("propagation"),
            ownership.clone(),
        )
        .with_max_writes_in_flight(flags.max_writes_in_flight as usize);
        let cache = engine.cache_reader();
        // Admission's conflict checks read the source index: a replica is not ready before every propagated
        // type's first list has reached it.
        helpers.spawn(ready.open_when("sources", engine.sources_synced()));
        debug.register(
            "namespace",
            ownership::namespace_page(tree.clone(), cache.clone(), ring.clone(), ownership.clone()),
        );
        if let Some((coordinator, _)) = &coordinator {
            core.spawn(
                "shard-publisher",
                ownership::publish_shard_objects(coordinator.clone(), tree.clone(), cache.clone(), ring),
            );
        }
        let counts: CountsFn = {
            let cache = cache.clone();
            let known = engine.counts_known();
            Arc::new(move |t| {
                if !known.load(std::sync::atomic::Ordering::Relaxed) {
                    return None;
                }
                let stats = cache.load().stats(&TypeKey::new(&t.resource.group, &t.resource.kind));
                Some(TypeCounts { propagated: stats.copies as i64, sources: stats.sources as i64 })
            })
        };
        let config_reconciler =
            ConfigReconciler::new(client.clone(), writer.clone(), ownership.clone(), tree.clone(), counts);
        let active = config_reconciler.active_types();

        // ---- Hierarchical quotas (crate::hrq), with --enable-hrq: every replica keeps the quota view from two
        // cluster-wide watches; the owner of a tree writes its singleton ResourceQuotas and HRQ statuses. ----
        let quota = match flags.enable_hrq {
            false => None,
            true => {
                let view = QuotaView::new();
                let (quota_tx, quota_rx) = mpsc::channel(EVENT_BUFFER);
                core.spawn(
                    "hrq-watch",
                    feed_spec_optional(
                        Api::<SpecOptional<HierarchicalResourceQuota>>::all(client.clone()),
                        watch_config.clone(),
                        quota_tx.clone(),
                        "hierarchicalresourcequotas".to_owned(),
                        QuotaEvent::Hrq,
                    ),
                );
                core.spawn(
                    "resourcequota-watch",
                    feed(
                        Api::<ResourceQuota>::all(client.clone()),
                        watch_config.clone().labels(&format!("{}=true", hnc_api::keys::labels::HRQ)),
                        quota_tx,
                        "resourcequotas".to_owned(),
                        QuotaEvent::Singleton,
                    ),
                );
                let sync_interval = (!flags.hrq_sync_interval.is_zero()).then_some(flags.hrq_sync_interval);
                let reconciler = QuotaReconciler::new(
                    view.clone(),
                    tree.clone(),
                    ownership.clone(),
                    writer.with_flow("hrq"),
                    sync_interval,
                );
                helpers.spawn(ready.open_when("hrq", reconciler.synced()));
                // At 0 from the start: a rate over them is 0 rather than absent until the first event.
                metrics::counter!("hnc_hrq_denials_total").increment(0);
                metrics::counter!("hnc_hrq_charge_conflicts_total").increment(0);
                debug.register_metrics(
                    "hrq",
                    crate::hrq::usage_metrics(view.clone(), tree.clone(), ownership.clone()),
                );
                core.spawn(
                    "hrq-reconciler",
                    reconciler.run(quota_rx, quota_notices_rx, ownership_rx.clone(), stop.clone()),
                );
                Some(view)
            }
        };

        // ---- Admission webhooks (crate::webhook): served unless --no-webhooks; the leader keeps the
        // certificate Secret and the webhook configurations current. ----
        let mut webhook_tasks = JoinSet::new();
        crate::webhook::start(
            crate::webhook::Inputs {
                flags,
                client: client.clone(),
                tree: tree.clone(),
                sources: engine.source_names_reader(),
                active: active.clone(),
                ownership,
                writer: writer.clone(),
                ready,
                quota,
            },
            &mut webhook_tasks,
            &stop,
        )?;
        core.spawn_group("webhooks", webhook_tasks);
        // ---- end of admission webhooks ----

        core.spawn(
            "hncconfiguration-watch",
            feed_spec_optional(
                Api::<SpecOptional<HNCConfiguration>>::all(client),
                watch_config.fields(&format!("metadata.name={}", hnc_api::keys::names::CONFIG)),
                config_tx,
                "hncconfigurations".to_owned(),
                ConfigEvent::Config,
            ),
        );
        core.spawn("config-reconciler", config_reconciler.run(config_rx, ownership_rx.clone(), stop.clone()));
        core.spawn("propagation-engine", engine.run(propagation_rx, active, ownership_rx, stop.clone()));
        ready.set(READY_GATE, true);
        Ok(Replica { tree, cache, writer, stop, core, helpers, coordinator, ready: ready.clone() })
    }

    /// Resolves when this replica must stop: a core task ended or panicked, or it lost the API server for longer
    /// than a lease duration (its fences are already closed). Closes the readiness gate [`READY_GATE`] at once;
    /// the caller then [shuts the replica down](Replica::shutdown), which releases its Leases.
    pub async fn fatal(&mut self) -> anyhow::Error {
        let coordination = async {
            let Some((coordinator, task)) = &mut self.coordinator else {
                return std::future::pending().await;
            };
            tokio::select! {
                _ = coordinator.api_lost() => {
                    anyhow::anyhow!("lost the API server for longer than the lease duration")
                }
                result = task => match result {
                    Ok(Ok(())) => anyhow::anyhow!("the shard coordinator stopped"),
                    Ok(Err(error)) => anyhow::anyhow!("shard coordination failed: {error}"),
                    Err(error) => anyhow::anyhow!("shard coordination crashed: {error}"),
                },
            }
        };
        let error = tokio::select! {
            error = coordination => error,
            error = self.core.ended() => error,
        };
        self.ready.set(READY_GATE, false);
        error
    }

    /// Stops every task: reconcilers first, then the writer after its in-flight writes, then hands the shards
    /// over (leases released) so other replicas take over at once.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        self.writer.shutdown();
        self.helpers.abort_all();
        self.core.shutdown().await;
        while self.helpers.join_next().await.is_some() {}
        if let Some((coordinator, task)) = self.coordinator.take() {
            coordinator.shutdown().await;
            // `fatal` may have awaited the task to its end already (the coordinator stopped by itself); a
            // JoinHandle polled again after that panics.
            if !task.is_finished() {
                let _ = task.await;
            }
        }
    }
}

/// Starts the shard coordinator; the leader weighs shards by the namespaces the tree index puts in them.
fn start_coordinator(
    flags: &Flags,
    client: Client,
    tree: TreeReader,
    ring: ShardRing,
) -> anyhow::Result<(CoordinatorHandle, CoordinatorTask)> {
    hnc_leader::describe_metrics();
    let mut config = CoordinatorConfig::new(&flags.namespace, flags.replica_identity(), flags.shards);
    config.leader_lease = flags.leader_election_id.clone();
    config.lease_duration = flags.lease_duration;
    config.renew_deadline = flags.renew_deadline;
    config.retry_period = flags.retry_period;
    Coordinator::start(client, config, ownership::shard_weights(tree, ring))
        .map_err(|e| anyhow::anyhow!("cannot start shard coordination: {e}"))
}
