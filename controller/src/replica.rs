//! Everything one replica runs once it is connected: watches, the tree index, the writer and the reconcilers,
//! wired together.
//!
//! ```text
//!   Namespace / HC / anchor watches ──▶ HierarchyReconciler (owns TreeIndex) ──▶ TreeReader (snapshots)
//!                                              │ writes                              │
//!                                              ▼                                     ▼
//!                                  Writer (fence: Ownership over the snapshot) ◀── ownership
//! ```

use std::sync::Arc;

use hnc_api::{HierarchyConfiguration, SubnamespaceAnchor};
use hnc_shard::{TreeIndex, TreeReader};
use k8s_openapi::api::core::v1::Namespace;
use kube::runtime::watcher;
use kube::{Api, Client};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::flags::Flags;
use crate::hierarchy::ingest::HierarchyEvent;
use crate::hierarchy::reconciler::HierarchyReconciler;
use crate::ops::Readiness;
use crate::ownership::Ownership;
use crate::watch::feed;
use crate::writer::{self, Fence, Writer, WriterConfig};

/// Events buffered between the watches and the hierarchy reconciler.
const EVENT_BUFFER: usize = 8192;

/// The running parts of a replica.
pub struct Replica {
    /// Snapshots of the hierarchy, for webhooks and diagnostics.
    pub tree: TreeReader,
    /// The writer every API write goes through.
    pub writer: Writer,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl Replica {
    /// Starts the replica's tasks. `ready` gets a `hierarchy` gate, opened once the hierarchy is synced.
    pub fn start(
        flags: &Flags,
        client: Client,
        config: &kube::Config,
        ready: &Readiness,
    ) -> anyhow::Result<Replica> {
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let index = TreeIndex::new(flags.namespace_policy());
        let tree = index.reader();
        let ownership = if flags.webhooks_only { Ownership::Nothing } else { Ownership::Everything };

        let fence: Fence = {
            let (tree, ownership) = (tree.clone(), ownership.clone());
            Arc::new(move |scope: &str| ownership.owns(&*tree.load(), scope))
        };
        let (outcomes_tx, outcomes_rx) = mpsc::unbounded_channel();
        let writer_client = writer::writer_client(config)?;
        let (writer, writer_task) = Writer::start(
            writer_client,
            WriterConfig::with_qps(flags.apiserver_qps_throttle),
            fence,
            Some(outcomes_tx),
        );
        tasks.spawn(async move {
            let _ = writer_task.await;
        });

        let (events_tx, events_rx) = mpsc::channel(EVENT_BUFFER);
        let config = watcher::Config::default();
        tasks.spawn(feed(
            Api::<Namespace>::all(client.clone()),
            config.clone(),
            events_tx.clone(),
            "namespaces",
            HierarchyEvent::Namespace,
        ));
        tasks.spawn(feed(
            Api::<HierarchyConfiguration>::all(client.clone()),
            config.clone(),
            events_tx.clone(),
            "hierarchyconfigurations",
            HierarchyEvent::Hierarchy,
        ));
        tasks.spawn(feed(
            Api::<SubnamespaceAnchor>::all(client.clone()),
            config,
            events_tx,
            "subnamespaceanchors",
            HierarchyEvent::Anchor,
        ));

        let reconciler = HierarchyReconciler::new(index, writer.clone(), ownership, None);
        let mut synced = reconciler.synced();
        ready.register("hierarchy");
        let gate = ready.clone();
        tasks.spawn(async move {
            if synced.wait_for(|s| *s).await.is_ok() {
                gate.set("hierarchy", true);
            }
        });
        let (_ownership_tx, ownership_rx) = watch::channel(0u64);
        let reconciler_stop = stop.clone();
        tasks.spawn(async move {
            reconciler.run(events_rx, outcomes_rx, ownership_rx, reconciler_stop).await;
            // Keep the ownership channel open for as long as the reconciler runs.
            drop(_ownership_tx);
        });
        Ok(Replica { tree, writer, stop, tasks })
    }

    /// Stops every task: reconcilers first, then the writer after its in-flight writes.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        self.writer.shutdown();
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}
