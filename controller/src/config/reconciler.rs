//! The HNCConfiguration reconciler (spec §7).
//!
//! Every replica resolves `config`'s `spec.resources` against discovery and publishes the active types and
//! their modes, which its propagation engine follows. Only the leader writes: it creates `config` when missing
//! and keeps its status (per-type counts, cluster conditions, the namespace-condition summary) current —
//! written only when it differs, at most once per refresh, with unchanged conditions keeping their time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use hnc_api::condition::{carry_transition_times, reasons, types};
use hnc_api::{Condition, HNCConfiguration, HNCConfigurationStatus, ResourceSpec, ResourceStatus};
use hnc_shard::TreeReader;
use kube::Client;
use kube::core::ApiResource;
use serde_json::json;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::discovery::discover;
use super::resolve::{ActiveType, Discovered, TypeCounts, resolve, status_resources};
use crate::ownership::Ownership;
use crate::watch::Change;
use crate::writer::{Completed, ObjectRef, Outcome, WriteOp, WriteRequest, Writer, outcome_channel};

/// How often status is refreshed (upstream: 10 s). Counts change without an event reaching this reconciler,
/// so this is how far the status may lag them; the summary is recomputed only when the tree changed.
pub const REFRESH_PERIOD: Duration = Duration::from_secs(2);
/// How often discovery is re-read without a CRD event (every minute).
const REDISCOVER_EVERY: u32 = 30;

/// The types propagation follows, with their modes; Role and RoleBinding always first.
pub type ActiveTypes = Arc<Vec<ActiveType>>;

/// Per-type counts for status; `None` while propagation has not counted everything yet (the status then keeps
/// the counts it shows, so a restart does not rewrite them from zero upwards).
pub type CountsFn = Arc<dyn Fn(&ActiveType) -> Option<TypeCounts> + Send + Sync>;

/// What the reconciler reacts to besides its own timer.
#[derive(Debug)]
pub enum ConfigEvent {
    /// The HNCConfiguration watch.
    Config(Change<HNCConfiguration>),
    /// A CustomResourceDefinition was added or changed: types may have appeared.
    CrdsChanged,
    /// Whether `hncconfigurations.hnc.x-k8s.io` is being deleted (then `config` is never recreated).
    ConfigCrdDeleting(bool),
}

#[derive(Debug, Clone, Default)]
struct ObservedConfig {
    resource_version: String,
    resources: Vec<ResourceSpec>,
    status: HNCConfigurationStatus,
}

/// The reconciler. Build with [`ConfigReconciler::new`], then [`ConfigReconciler::run`].
pub struct ConfigReconciler {
    client: Client,
    writer: Writer,
    /// Outcomes of the writes of `config`, until [`ConfigReconciler::run`] takes them.
    outcomes: Option<mpsc::Receiver<Completed>>,
    ownership: Ownership,
    tree: TreeReader,
    counts: CountsFn,
    active_tx: watch::Sender<ActiveTypes>,
    observed: Option<ObservedConfig>,
    listed: bool,
    crd_deleting: bool,
    discovered: Option<Discovered>,
    pending_from: Option<String>,
    resource: Arc<ApiResource>,
    /// When the status was last computed: the namespace-condition summary walks every namespace, so it is
    /// computed at most once per [`STATUS_MIN_INTERVAL`] however many events arrive.
    status_at: Option<tokio::time::Instant>,
    /// A status computation was skipped by that limit and is owed.
    status_due: bool,
    /// The tree the last summary was computed from, and the summary: reused while the tree is unchanged.
    summary_of: Option<(Arc<hnc_shard::TreeSnapshot>, Summary)>,
    /// How long the last summary took: the interval also grows to ten times that, so the summary never takes
    /// more than a tenth of a core however large the forest.
    summary_took: Duration,
}

/// The `NamespaceCondition` cluster condition, when some namespaces have conditions: its reason and message.
pub type Summary = Option<(&'static str, String)>;

/// The shortest time between two computations of the HNCConfiguration status.
const STATUS_MIN_INTERVAL: Duration = Duration::from_secs(1);

impl ConfigReconciler {
    /// A reconciler writing through `writer` (its outcomes come back to this reconciler); `counts` reports what
    /// propagation knows per type.
    pub fn new(
        client: Client,
        writer: Writer,
        ownership: Ownership,
        tree: TreeReader,
        counts: CountsFn,
    ) -> Self {
        let (outcomes_tx, outcomes) = outcome_channel();
        ConfigReconciler {
            client,
            writer: writer.reporting_to(outcomes_tx),
            outcomes: Some(outcomes),
            ownership,
            tree,
            counts,
            active_tx: watch::channel(Arc::new(Vec::new())).0,
            observed: None,
            listed: false,
            status_at: None,
            status_due: false,
            summary_took: Duration::ZERO,
            summary_of: None,
            crd_deleting: false,
            discovered: None,
            pending_from: None,
            resource: Arc::new(ApiResource::erase::<HNCConfiguration>(&())),
        }
    }

    /// The active types, updated whenever the resolution changes.
    pub fn active_types(&self) -> watch::Receiver<ActiveTypes> {
        self.active_tx.subscribe()
    }

    /// Runs until `stop`; `ownership_changed` fires when leadership may have changed.
    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<ConfigEvent>,
        mut ownership_changed: watch::Receiver<u64>,
        stop: CancellationToken,
    ) {
        let mut outcomes = self.outcomes.take().expect("run is called once");
        let mut tick = tokio::time::interval(REFRESH_PERIOD);
        let mut ticks = 0u32;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                event = events.recv() => match event {
                    None => return,
                    Some(ConfigEvent::Config(change)) => self.observe(change),
                    Some(ConfigEvent::CrdsChanged) => self.discovered = None,
                    Some(ConfigEvent::ConfigCrdDeleting(deleting)) => self.crd_deleting = deleting,
                },
                Some(done) = outcomes.recv() => self.written(&done),
                Ok(()) = ownership_changed.changed() => {}
                _ = tokio::time::sleep(STATUS_MIN_INTERVAL / 4), if self.status_due => {}
                _ = tick.tick() => {
                    ticks += 1;
                    if ticks.is_multiple_of(REDISCOVER_EVERY) {
                        self.discovered = None;
                    }
                }
            }
            if self.listed {
                self.reconcile().await;
            }
        }
    }

    fn observe(&mut self, change: Change<HNCConfiguration>) {
        match change {
            Change::Apply(config)
                if config.metadata.name.as_deref() == Some(hnc_api::keys::names::CONFIG) =>
            {
                let rv = config.metadata.resource_version.clone().unwrap_or_default();
                if self.pending_from.as_ref().is_some_and(|p| *p != rv) {
                    self.pending_from = None;
                }
                self.observed = Some(ObservedConfig {
                    resource_version: rv,
                    resources: config.spec.resources.clone(),
                    status: config.status.clone().unwrap_or_default(),
                });
            }
            Change::Apply(_) => {}
            Change::Delete((_, name)) if name == hnc_api::keys::names::CONFIG => {
                self.observed = None;
                self.pending_from = None;
            }
            Change::Delete(_) => {}
            Change::Synced => self.listed = true,
        }
    }

    async fn reconcile(&mut self) {
        if self.discovered.is_none() {
            match discover(&self.client).await {
                Ok(discovered) => self.discovered = Some(discovered),
                Err(error) => {
                    tracing::warn!(%error, "discovery failed; HNCConfiguration will be resolved again shortly");
                    return;
                }
            }
        }
        let Some(discovered) = &self.discovered else { return };
        let spec = self.observed.as_ref().map(|o| o.resources.clone()).unwrap_or_default();
        let resolution = match resolve(&spec, discovered) {
            Ok(resolution) => resolution,
            Err(error) => {
                tracing::warn!(%error, "cannot resolve the enforced types; retrying");
                return;
            }
        };
        if **self.active_tx.borrow() != resolution.active {
            tracing::info!(
                types = ?resolution.active.iter().map(|t| format!("{}:{}", t.resource.plural, t.mode.as_str())).collect::<Vec<_>>(),
                "propagated types changed"
            );
            self.active_tx.send_replace(Arc::new(resolution.active.clone()));
        }

        let tree = self.tree.load();
        if !tree.is_synced() {
            return;
        }
        // Only the leader writes the status, one write at a time.
        if !self.ownership.is_leader() || self.pending_from.is_some() {
            return;
        }
        let now_instant = tokio::time::Instant::now();
        let interval = STATUS_MIN_INTERVAL.max(self.summary_took * 10);
        if self.status_at.is_some_and(|at| now_instant - at < interval) {
            self.status_due = true;
            return;
        }
        self.status_at = Some(now_instant);
        self.status_due = false;
        let mut conditions: Vec<Condition> = Vec::new();
        for c in &resolution.conditions {
            set_condition(&mut conditions, c.type_, c.reason, c.message.clone());
        }
        let summary = match &self.summary_of {
            Some((of, summary)) if Arc::ptr_eq(of, &tree) => summary.clone(),
            _ => {
                let summary = namespace_condition_summary(&tree);
                self.summary_took = now_instant.elapsed();
                self.summary_of = Some((tree.clone(), summary.clone()));
                summary
            }
        };
        if let Some((reason, message)) = summary {
            set_condition(&mut conditions, types::NAMESPACE_CONDITION, reason, message);
        }
        let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let stored = self.observed.as_ref().map(|o| o.status.resources.as_slice()).unwrap_or_default();
        let status = HNCConfigurationStatus {
            resources: status_resources(&resolution.active, |t| {
                (self.counts)(t).unwrap_or_else(|| stored_counts(stored, t))
            }),
            conditions,
        };
        let target = ObjectRef::new(self.resource.clone(), None, hnc_api::keys::names::CONFIG);
        match &self.observed {
            None if self.crd_deleting => {}
            None => {
                let mut status = status;
                stamp(&mut status.conditions, &[], &now);
                let object = json!({
                    "apiVersion": hnc_api::API_VERSION, "kind": "HNCConfiguration",
                    "metadata": {"name": hnc_api::keys::names::CONFIG}, "spec": {}, "status": status,
                });
                self.pending_from = Some(String::new());
                self.writer.submit(WriteRequest::new(target, WriteOp::create(object), ""));
            }
            Some(observed) => {
                let mut status = status;
                stamp(&mut status.conditions, &observed.status.conditions, &now);
                if status == observed.status {
                    return;
                }
                let patch = json!({
                    "metadata": {"resourceVersion": observed.resource_version},
                    "status": {
                        "resources": status.resources,
                        "conditions": if status.conditions.is_empty() { json!(null) } else { json!(status.conditions) },
                    },
                });
                self.pending_from = Some(observed.resource_version.clone());
                self.writer.submit(WriteRequest::new(target, WriteOp::MergePatch(patch), ""));
            }
        }
    }

    /// A write that did not land is forgotten, so the next refresh plans again; one that landed stays pending
    /// until the watch shows it (unless it changed nothing, and so will never be shown).
    fn written(&mut self, done: &Completed) {
        let landed_unchanged = done.resource_version.is_some() && done.resource_version == self.pending_from;
        if done.outcome != Outcome::Written || landed_unchanged {
            self.pending_from = None;
        }
    }
}

/// The counts `status.resources` already shows for `t` (zero when it shows none).
fn stored_counts(stored: &[ResourceStatus], t: &ActiveType) -> TypeCounts {
    stored
        .iter()
        .find(|r| r.group == t.spec_group && r.resource == t.spec_resource)
        .map(|r| TypeCounts {
            propagated: r.num_propagated_objects.unwrap_or(0),
            sources: r.num_source_objects.unwrap_or(0),
        })
        .unwrap_or_default()
}

/// Conditions keep their time when unchanged; new ones get `now`.
fn stamp(conditions: &mut [Condition], stored: &[Condition], now: &str) {
    for c in conditions.iter_mut() {
        c.last_transition_time = now.to_owned();
    }
    carry_transition_times(conditions, stored);
}

/// One condition per type, a later one replacing an earlier one in place (upstream's `SetStatusCondition`).
fn set_condition(list: &mut Vec<Condition>, type_: &str, reason: &str, message: String) {
    let cond = Condition::new(type_, reason, message, "");
    match list.iter_mut().find(|c| c.type_ == type_) {
        Some(slot) => *slot = cond,
        None => list.push(cond),
    }
}

/// The namespace conditions upstream summarises, by condition type, in the order they are considered. Like
/// upstream, the illegal-managed-label/annotation reasons are listed under `ActivitiesHalted` (where they never
/// occur), so they are counted as zero.
const SUMMARISED: [(&str, &[&str]); 2] = [
    (types::BAD_CONFIGURATION, &[reasons::SUBNAMESPACE_ANCHOR_MISSING]),
    (
        types::ACTIVITIES_HALTED,
        &[
            reasons::ANCESTOR_HALT_ACTIVITIES,
            reasons::DELETING_CRD,
            reasons::ILLEGAL_MANAGED_ANNOTATION,
            reasons::ILLEGAL_MANAGED_LABEL,
            reasons::ILLEGAL_PARENT,
            reasons::IN_CYCLE,
            reasons::PARENT_MISSING,
        ],
    ),
];

/// Records `hnc_namespace_conditions{Condition,Reason}` for every summarised pair (zeros included) and returns
/// the `NamespaceCondition` to report: `(reason = the namespace condition type, message)`. Only one survives
/// (one condition per type); upstream picks it in random map order, here the last non-zero pair in
/// [`SUMMARISED`] order wins, so a halt is shown in preference to a missing anchor.
pub fn namespace_condition_summary(tree: &hnc_shard::TreeSnapshot) -> Summary {
    let mut found: BTreeMap<(String, String), Vec<String>> = BTreeMap::new();
    for node in tree.nodes().filter(|n| tree.exists(n.name())) {
        for c in tree.conditions(node.name()) {
            found.entry((c.type_, c.reason)).or_default().push(node.name().to_string());
        }
    }
    let mut summary = None;
    for (type_, reasons) in SUMMARISED {
        for reason in reasons {
            let mut names = found.remove(&(type_.to_owned(), (*reason).to_owned())).unwrap_or_default();
            metrics::gauge!("hnc_namespace_conditions", "Condition" => type_, "Reason" => *reason)
                .set(names.len() as f64);
            if names.is_empty() {
                continue;
            }
            names.sort();
            let n = names.len();
            let quoted = |names: &[String]| names.join("\", \"");
            let message = match n {
                1 => format!("Namespaces {:?} is affected by {reason:?}", names[0]),
                2 | 3 => format!("{n} namespaces \"{}\" are affected by {reason:?}", quoted(&names)),
                _ => format!("{n} namespaces \"{}\" ... are affected by {reason:?}", quoted(&names[..3])),
            };
            summary = Some((type_, message));
        }
    }
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use hnc_shard::TreeIndex;
    use hnc_shard::tree::{NamespacePolicy, ObservedHierarchy, ObservedNamespace};

    fn orphan(index: &mut TreeIndex, name: &str, parent: &str) {
        index.apply_namespace(name, ObservedNamespace::default());
        let mut hc = ObservedHierarchy::default();
        hc.spec.parent = Some(parent.into());
        index.apply_hierarchy(name, hc);
    }

    #[test]
    fn summary_names_up_to_three_namespaces() {
        let mut index = TreeIndex::new(NamespacePolicy::default());
        index.set_synced(true);
        orphan(&mut index, "d", "gone");
        let (reason, message) = namespace_condition_summary(index.current()).unwrap();
        assert_eq!(
            (reason, message.as_str()),
            ("ActivitiesHalted", "Namespaces \"d\" is affected by \"ParentMissing\"")
        );
        orphan(&mut index, "e", "gone");
        let (_, message) = namespace_condition_summary(index.current()).unwrap();
        assert_eq!(message, "2 namespaces \"d\", \"e\" are affected by \"ParentMissing\"");
        for n in ["b", "c"] {
            orphan(&mut index, n, "gone");
        }
        let (_, message) = namespace_condition_summary(index.current()).unwrap();
        assert_eq!(message, "4 namespaces \"b\", \"c\", \"d\" ... are affected by \"ParentMissing\"");
    }

    #[test]
    fn a_clean_forest_has_no_summary() {
        let mut index = TreeIndex::new(NamespacePolicy::default());
        index.set_synced(true);
        index.apply_namespace("a", ObservedNamespace::default());
        assert!(namespace_condition_summary(index.current()).is_none());
    }
}
