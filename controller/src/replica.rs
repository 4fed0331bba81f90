//! Everything one replica runs once it is connected, wired together.
//!
//! ```text
//!  Namespace/HC/anchor watches ─▶ HierarchyReconciler (owns TreeIndex) ─snapshots─▶ TreeReader ─┐
//!                                      │ subtrees to re-plan                                   │
//!  per-type object watches ──────▶ PropagationEngine (owns ForestCache) ◀─ active types ─┐      │
//!                                      │                                                │      │
//!  HNCConfiguration + CRD watches ─▶ ConfigReconciler ──────────────────────────────────┘      │
//!                                      │ all writes                                            │
//!                                      ▼                                                       │
//!                                   Writer ── fence: Ownership over the latest snapshot ◀───────┘
//!                                      └─ outcomes, routed back to whoever planned the write
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use hnc_api::{HNCConfiguration, HierarchyConfiguration, SubnamespaceAnchor};
use hnc_leader::{Coordinator, CoordinatorConfig, CoordinatorHandle, WeightsFn};
use hnc_shard::propagation::{ForestCache, ForestCacheReader, PropagationRules, TypeKey};
use hnc_shard::ring::DEFAULT_VIRTUAL_NODES;
use hnc_shard::{ShardRing, TreeIndex, TreeReader};
use k8s_openapi::api::core::v1::Namespace;
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
use crate::ops::{DebugPages, Readiness};
use crate::ownership::{Ownership, ShardedOwnership};
use crate::propagation::engine::{EngineInput, PropagationEngine};
use crate::watch::{EVENT_BUFFER, SpecOptional, feed, feed_spec_optional};
use crate::writer::{self, Completed, Fence, Writer, WriterConfig};

/// The running parts of a replica.
pub struct Replica {
    /// Snapshots of the hierarchy, for webhooks and diagnostics.
    pub tree: TreeReader,
    /// Snapshots of the propagation cache.
    pub cache: ForestCacheReader,
    /// The writer every API write goes through.
    pub writer: Writer,
    stop: CancellationToken,
    tasks: JoinSet<()>,
    coordinator: Option<(CoordinatorHandle, CoordinatorTask)>,
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
        let mut tasks = JoinSet::new();
        let index = TreeIndex::new(flags.namespace_policy());
        let tree = index.reader();
        let ring = ShardRing::new(flags.shards, DEFAULT_VIRTUAL_NODES);
        // Bumped whenever this replica gains or loses shards or leadership.
        let (ownership_tx, ownership_rx) = watch::channel(0u64);
        let (ownership, coordinator) = if flags.webhooks_only {
            (Ownership::Nothing, None)
        } else {
            let (coordinator, task) = start_coordinator(flags, client.clone(), tree.clone(), ring.clone())?;
            let page = coordinator.clone();
            debug.register(
                "shards",
                Arc::new(move |_: &BTreeMap<String, String>| {
                    serde_json::to_value(page.snapshot()).unwrap_or_default()
                }),
            );
            let (mut held, mut leading) = (coordinator.held_shards(), coordinator.leadership());
            tasks.spawn(async move {
                loop {
                    tokio::select! {
                        changed = held.changed() => if changed.is_err() { return },
                        changed = leading.changed() => if changed.is_err() { return },
                    }
                    ownership_tx.send_modify(|v| *v += 1);
                }
            });
            let ownership =
                Ownership::Shards(Arc::new(ShardedOwnership::new(ring.clone(), coordinator.clone())));
            (ownership, Some((coordinator, task)))
        };

        // The writer, and the routing of its outcomes back to whoever planned each write.
        let fence: Fence = {
            let (tree, ownership) = (tree.clone(), ownership.clone());
            Arc::new(move |scope: &str| ownership.owns(&*tree.load(), scope))
        };
        let (outcomes_tx, mut outcomes_rx) = mpsc::unbounded_channel::<Completed>();
        let (writer, writer_task) = Writer::start(
            writer::writer_client(config)?,
            WriterConfig::from_flag(flags.apiserver_qps_throttle),
            fence,
            Some(outcomes_tx),
        );
        tasks.spawn(async move {
            let _ = writer_task.await;
        });
        let (hierarchy_out_tx, hierarchy_out_rx) = mpsc::unbounded_channel();
        let (config_tx, config_rx) = mpsc::channel::<ConfigEvent>(256);
        let (engine_tx, engine_rx) = mpsc::unbounded_channel::<EngineInput>();
        {
            let (config_tx, engine_tx) = (config_tx.clone(), engine_tx.clone());
            tasks.spawn(async move {
                while let Some(done) = outcomes_rx.recv().await {
                    let r = &done.target.resource;
                    match (r.group.as_str(), r.plural.as_str()) {
                        ("", "namespaces")
                        | (hnc_api::GROUP, "hierarchyconfigurations" | "subnamespaceanchors") => {
                            let _ = hierarchy_out_tx.send(done);
                        }
                        (hnc_api::GROUP, "hncconfigurations") => {
                            let _ = config_tx.send(ConfigEvent::Written(done)).await;
                        }
                        ("", "events") => {}
                        _ => {
                            let _ = engine_tx.send(EngineInput::Written(done));
                        }
                    }
                }
            });
        }

        // Hierarchy: three watches feed the reconciler that owns the tree index.
        let (events_tx, events_rx) = mpsc::channel(EVENT_BUFFER);
        let watch_config = watcher::Config::default();
        tasks.spawn(feed(
            Api::<Namespace>::all(client.clone()),
            watch_config.clone(),
            events_tx.clone(),
            "namespaces".to_owned(),
            HierarchyEvent::Namespace,
        ));
        tasks.spawn(feed_spec_optional(
            Api::<SpecOptional<HierarchyConfiguration>>::all(client.clone()),
            watch_config.clone(),
            events_tx.clone(),
            "hierarchyconfigurations".to_owned(),
            HierarchyEvent::Hierarchy,
        ));
        tasks.spawn(feed_spec_optional(
            Api::<SpecOptional<SubnamespaceAnchor>>::all(client.clone()),
            watch_config.clone(),
            events_tx.clone(),
            "subnamespaceanchors".to_owned(),
            HierarchyEvent::Anchor,
        ));
        tasks.spawn(crate::crds::watch_crds(client.clone(), config_tx.clone(), events_tx));
        let (propagation_tx, mut propagation_rx) = mpsc::unbounded_channel();
        {
            let engine_tx = engine_tx.clone();
            tasks.spawn(async move {
                while let Some(dirty) = propagation_rx.recv().await {
                    let _ = engine_tx.send(EngineInput::Hierarchy(dirty));
                }
            });
        }
        let reconciler = HierarchyReconciler::new(
            index,
            writer.with_flow("hierarchy"),
            ownership.clone(),
            Some(propagation_tx),
        );
        let mut synced = reconciler.synced();
        ready.register("hierarchy");
        let gate = ready.clone();
        tasks.spawn(async move {
            if synced.wait_for(|s| *s).await.is_ok() {
                gate.set("hierarchy", true);
            }
        });
        tasks.spawn(reconciler.run(events_rx, hierarchy_out_rx, ownership_rx.clone(), stop.clone()));

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
        );
        let cache = engine.cache_reader();
        debug.register(
            "namespace",
            namespace_page(tree.clone(), cache.clone(), ring.clone(), ownership.clone()),
        );
        if let Some((coordinator, _)) = &coordinator {
            tasks.spawn(publish_shard_objects(coordinator.clone(), tree.clone(), cache.clone(), ring));
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

        // ---- Admission webhooks (crate::webhook): served unless --no-webhooks; the leader keeps the
        // certificate Secret and the webhook configurations current. ----
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
            },
            &mut tasks,
            &stop,
        )?;
        // ---- end of admission webhooks ----

        tasks.spawn(feed_spec_optional(
            Api::<SpecOptional<HNCConfiguration>>::all(client),
            watch_config.fields(&format!("metadata.name={}", hnc_api::keys::names::CONFIG)),
            config_tx,
            "hncconfigurations".to_owned(),
            ConfigEvent::Config,
        ));
        tasks.spawn(config_reconciler.run(config_rx, ownership_rx.clone(), stop.clone()));
        tasks.spawn(engine.run(engine_rx, active, ownership_rx, stop.clone()));
        Ok(Replica { tree, cache, writer, stop, tasks, coordinator })
    }

    /// Resolves when this replica must stop: it lost the API server for longer than a lease duration (its fences
    /// are already closed). Never resolves for a replica without a coordinator.
    pub async fn fatal(&mut self) -> anyhow::Error {
        let Some((coordinator, task)) = &mut self.coordinator else { return std::future::pending().await };
        tokio::select! {
            _ = coordinator.api_lost() => anyhow::anyhow!("lost the API server for longer than the lease duration"),
            result = task => match result {
                Ok(Ok(())) => anyhow::anyhow!("the shard coordinator stopped"),
                Ok(Err(error)) => anyhow::anyhow!("shard coordination failed: {error}"),
                Err(error) => anyhow::anyhow!("shard coordination crashed: {error}"),
            },
        }
    }

    /// Stops every task: reconcilers first, then the writer after its in-flight writes, then hands the shards
    /// over (leases released) so other replicas take over at once.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        self.writer.shutdown();
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        if let Some((coordinator, task)) = self.coordinator.take() {
            coordinator.shutdown().await;
            let _ = task.await;
        }
    }
}

/// `/debug/namespace?name=NS`: what this replica believes about one namespace — its parent, its tree's root
/// and shard, whether this replica may write for it now, and which objects of it the propagation cache holds.
/// Comparing the page across replicas shows at once whether they agree on who owns a namespace.
fn namespace_page(
    tree: TreeReader,
    cache: ForestCacheReader,
    ring: ShardRing,
    ownership: Ownership,
) -> crate::ops::DebugPage {
    Arc::new(move |query: &BTreeMap<String, String>| {
        let Some(name) = query.get("name") else {
            return serde_json::json!({"error": "give the namespace as ?name=NS"});
        };
        let tree = tree.load();
        let root = tree.root(name);
        let cache = cache.load();
        let cached: BTreeMap<String, serde_json::Value> = cache
            .types()
            .filter_map(|ty| {
                let objects = cache.forest(ty)?.namespace(name)?;
                let hash = |h: &hnc_shard::propagation::ContentHash| format!("{:016x}", h.0[0]);
                let sources: BTreeMap<&str, String> = objects
                    .sources()
                    .iter()
                    .map(|s| (&*s.name, format!("rv {} hash {}", s.resource_version, hash(&s.content_hash))))
                    .collect();
                let copies: BTreeMap<&str, String> = objects
                    .copies()
                    .iter()
                    .map(|c| {
                        let from = &*c.inherited_from;
                        (
                            &*c.name,
                            format!("from {from} rv {} hash {}", c.resource_version, hash(&c.content_hash)),
                        )
                    })
                    .collect();
                let ty = if ty.group.is_empty() {
                    ty.kind.to_string()
                } else {
                    format!("{}.{}", ty.kind, ty.group)
                };
                Some((ty, serde_json::json!({"sources": sources, "copies": copies})))
            })
            .collect();
        serde_json::json!({
            "name": name,
            "exists": tree.exists(name),
            "parent": tree.parent(name).map(|p| p.to_string()),
            "root": &*root,
            "shard": ring.shard_of(&root),
            "owned": ownership.owns(&*tree, name),
            "treeGeneration": tree.generation(),
            "cached": cached,
        })
    })
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
    let weights: WeightsFn = Arc::new(move || {
        let tree = tree.load();
        if !tree.is_synced() {
            return None;
        }
        let mut weights = vec![0u64; ring.shard_count() as usize];
        for node in tree.nodes().filter(|n| tree.exists(n.name())) {
            weights[ring.shard_of(&tree.root(node.name())) as usize] += 1;
        }
        Some(weights)
    });
    Coordinator::start(client, config, weights)
        .map_err(|e| anyhow::anyhow!("cannot start shard coordination: {e}"))
}

/// How often a replica counts the objects it caches per shard (the leader's weights). The counts ride on the
/// membership lease's next renewal, so a shorter period costs one pass over the cache, not a write; it is
/// short so that a leader elected soon after a start or a failover places shards by their real weight.
const SHARD_OBJECTS_PERIOD: std::time::Duration = std::time::Duration::from_secs(5);

/// Reports, every [`SHARD_OBJECTS_PERIOD`], how many objects this replica caches per held shard.
async fn publish_shard_objects(
    coordinator: CoordinatorHandle,
    tree: TreeReader,
    cache: ForestCacheReader,
    ring: ShardRing,
) {
    let mut tick = tokio::time::interval(SHARD_OBJECTS_PERIOD);
    loop {
        tick.tick().await;
        let (tree, cache) = (tree.load(), cache.load());
        let mut objects: BTreeMap<u32, u64> = BTreeMap::new();
        for ty in cache.types() {
            let Some(forest) = cache.forest(ty) else { continue };
            for ns in forest.namespaces() {
                let count = (ns.sources().len() + ns.copies().len()) as u64;
                *objects.entry(ring.shard_of(&tree.root(ns.namespace()))).or_default() += count;
            }
        }
        coordinator.publish_shard_objects(&objects);
    }
}
