//! Watches that never lose a deletion.
//!
//! kube-runtime's watcher relists after a dropped watch or a 410 Gone and replays the full list as
//! `Init`/`InitApply`/`InitDone`; objects deleted while the watch was down simply do not appear in that list.
//! [`RelistTracker`] turns that into explicit deletions, so the indexes fed from watches converge after any
//! outage. [`feed`] runs a watcher with backoff forever and forwards [`Change`]s.

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::BuildHasher as _;

use futures::StreamExt;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

/// Watch events buffered between a set of watches and the task that consumes them (the hierarchy watches and the
/// hierarchy reconciler; the propagated types' watches and the propagation engine). A full buffer holds the
/// watches back rather than growing.
pub const EVENT_BUFFER: usize = 8192;

/// How often the tasks fed from watches re-check everything they own without an event (the hierarchy
/// reconciler, the propagation engine): a safety net for anything missed; all no-ops on a converged cluster.
pub const RESYNC_PERIOD: std::time::Duration = std::time::Duration::from_secs(600);

/// `namespace/name` (empty namespace for cluster-scoped objects).
pub type ObjectKey = (String, String);

/// What an index must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Change<K> {
    /// Add or replace the object.
    Apply(K),
    /// Remove the object (seen deleted, or missing from a relist).
    Delete(ObjectKey),
    /// Every object that existed at (re)list time has been delivered: the index is complete for this kind.
    Synced,
}

/// Tracks keys across relists and reports the objects a relist no longer contains as deletions.
#[derive(Debug, Default)]
pub struct RelistTracker {
    /// Every object the watch has shown and not seen deleted, as `namespace/name` in one allocation (a tuple
    /// of two `String`s takes twice the memory, and the hierarchy watches hold every namespace and
    /// HierarchyConfiguration of the cluster). Kubernetes names never contain `/`.
    known: HashSet<Box<str>>,
    /// While a list runs: what it has shown, as 64-bit hashes of the keys (a list of every namespace of a
    /// 100,000-namespace cluster would otherwise hold a second copy of every key). Two keys share a hash with a
    /// chance of about one in 2⁶⁴ / listed objects per object deleted while the watch was down; such an object
    /// would be reported deleted at the next relist, or by its own event, instead of now.
    relisting: Option<(HashSet<u64>, std::hash::RandomState)>,
}

impl RelistTracker {
    /// Translates one watcher event into index changes.
    pub fn handle<K: Resource>(&mut self, event: Event<K>) -> Vec<Change<K>> {
        match event {
            Event::Apply(obj) => {
                self.known.insert(joined(&obj));
                vec![Change::Apply(obj)]
            }
            Event::Delete(obj) => {
                self.known.remove(&*joined(&obj));
                vec![Change::Delete(key_of(&obj))]
            }
            Event::Init => {
                self.relisting = Some((HashSet::new(), std::hash::RandomState::new()));
                Vec::new()
            }
            Event::InitApply(obj) => {
                let key = joined(&obj);
                if let Some((seen, hasher)) = &mut self.relisting {
                    seen.insert(hasher.hash_one(&*key));
                }
                self.known.insert(key);
                vec![Change::Apply(obj)]
            }
            Event::InitDone => {
                let (seen, hasher) = self.relisting.take().unwrap_or_default();
                let gone: Vec<Box<str>> = self
                    .known
                    .iter()
                    .filter(|key| !seen.contains(&hasher.hash_one(&***key)))
                    .cloned()
                    .collect();
                let mut changes = Vec::with_capacity(gone.len() + 1);
                for key in gone {
                    self.known.remove(&key);
                    let (ns, name) = key.split_once('/').unwrap_or(("", &key));
                    changes.push(Change::Delete((ns.to_owned(), name.to_owned())));
                }
                changes.push(Change::Synced);
                changes
            }
        }
    }
}

/// `namespace/name` of an object (`/name` for a cluster-scoped one), the key [`RelistTracker`] keeps.
fn joined<K: Resource>(obj: &K) -> Box<str> {
    let meta = obj.meta();
    let (ns, name) =
        (meta.namespace.as_deref().unwrap_or_default(), meta.name.as_deref().unwrap_or_default());
    let mut key = String::with_capacity(ns.len() + 1 + name.len());
    key.push_str(ns);
    key.push('/');
    key.push_str(name);
    key.into_boxed_str()
}

/// The `(namespace, name)` of an object.
pub fn key_of<K: Resource>(obj: &K) -> ObjectKey {
    (obj.meta().namespace.clone().unwrap_or_default(), obj.meta().name.clone().unwrap_or_default())
}

/// A custom resource read the way Go's decoding reads it: a missing or null `spec` is an empty one. HNC's CRDs
/// neither require nor default `spec`, so an anchor created with metadata alone is stored without one; a
/// typed watch would fail on it and stop seeing every other object of the kind.
#[derive(Debug, Clone)]
pub struct SpecOptional<K>(pub K);

impl<'de, K: DeserializeOwned> serde::Deserialize<'de> for SpecOptional<K> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut value = serde_json::Value::deserialize(deserializer)?;
        if let Some(fields) = value.as_object_mut()
            && fields.get("spec").is_none_or(serde_json::Value::is_null)
        {
            fields.insert("spec".to_owned(), serde_json::json!({}));
        }
        serde_json::from_value(value).map(SpecOptional).map_err(serde::de::Error::custom)
    }
}

impl<K: Resource<DynamicType = ()>> Resource for SpecOptional<K> {
    type DynamicType = ();
    type Scope = K::Scope;

    fn kind(dt: &()) -> std::borrow::Cow<'_, str> {
        K::kind(dt)
    }
    fn group(dt: &()) -> std::borrow::Cow<'_, str> {
        K::group(dt)
    }
    fn version(dt: &()) -> std::borrow::Cow<'_, str> {
        K::version(dt)
    }
    fn plural(dt: &()) -> std::borrow::Cow<'_, str> {
        K::plural(dt)
    }
    fn meta(&self) -> &kube::api::ObjectMeta {
        self.0.meta()
    }
    fn meta_mut(&mut self) -> &mut kube::api::ObjectMeta {
        self.0.meta_mut()
    }
}

/// [`feed`] for a custom resource whose `spec` may be absent (see [`SpecOptional`]).
pub async fn feed_spec_optional<K, E>(
    api: Api<SpecOptional<K>>,
    config: watcher::Config,
    tx: mpsc::Sender<E>,
    kind: String,
    wrap: impl Fn(Change<K>) -> E,
) where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let unwrap = move |change: Change<SpecOptional<K>>| {
        wrap(match change {
            Change::Apply(SpecOptional(obj)) => Change::Apply(obj),
            Change::Delete(key) => Change::Delete(key),
            Change::Synced => Change::Synced,
        })
    };
    feed(api, config, tx, kind, unwrap).await
}

/// Watches `api` forever (retrying with backoff after errors) and sends each change, wrapped by `wrap`, to `tx`.
/// Returns when `tx` is closed.
pub async fn feed<K, E>(
    api: Api<K>,
    config: watcher::Config,
    tx: mpsc::Sender<E>,
    kind: String,
    wrap: impl Fn(Change<K>) -> E,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let mut tracker = RelistTracker::default();
    let handle = move |event| tracker.handle(event).into_iter().map(&wrap).collect();
    feed_events(api, config, tx, kind, handle).await
}

/// [`feed`] without its relist tracking: each watcher event is turned into what `tx` carries by `handle`. For a
/// consumer that knows which objects it holds and finds the deletions a relist implies itself, so that no set
/// of every object's key is kept beside it (the propagation engine, whose types hold most of a cluster's
/// objects while it holds those of its own trees).
pub async fn feed_events<K, E>(
    api: Api<K>,
    config: watcher::Config,
    tx: mpsc::Sender<E>,
    kind: String,
    mut handle: impl FnMut(Event<K>) -> Vec<E>,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
{
    let mut listing: Option<(std::time::Instant, usize)> = None;
    let mut lists = 0u64;
    // At 0 from the start: a rate over it is 0 rather than absent until the first error.
    metrics::counter!("hnc_watch_errors_total", "kind" => kind.clone()).increment(0);
    let stream = watcher::watcher(api, config).default_backoff();
    futures::pin_mut!(stream);
    while let Some(item) = stream.next().await {
        match item {
            Ok(event) => {
                // A (re)list holds back every change of the kind until it completes: how long it took is what
                // a change made during a watch outage waited, so it is logged and measured.
                match &event {
                    // A list that failed and started over counts from its first attempt.
                    Event::Init => listing = Some((listing.map_or_else(std::time::Instant::now, |l| l.0), 0)),
                    Event::InitApply(_) => {
                        if let Some((_, objects)) = &mut listing {
                            *objects += 1;
                        }
                    }
                    Event::InitDone => {
                        if let Some((started, objects)) = listing.take() {
                            lists += 1;
                            let seconds = started.elapsed().as_secs_f64();
                            metrics::histogram!("hnc_watch_list_duration_seconds", "kind" => kind.clone())
                                .record(seconds);
                            if lists > 1 {
                                tracing::info!(kind, objects, seconds, "relisted after the watch was lost");
                            } else {
                                tracing::debug!(kind, objects, seconds, "listed");
                            }
                        }
                    }
                    Event::Apply(_) | Event::Delete(_) => {}
                }
                for item in handle(event) {
                    if tx.send(item).await.is_err() {
                        return;
                    }
                }
            }
            Err(error) => {
                metrics::counter!("hnc_watch_errors_total", "kind" => kind.clone()).increment(1);
                tracing::warn!(kind, %error, "watch failed; retrying with backoff");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    fn cm(ns: &str, name: &str) -> ConfigMap {
        ConfigMap {
            metadata: ObjectMeta {
                namespace: Some(ns.into()),
                name: Some(name.into()),
                ..Default::default()
            },
            ..Default::default()
        }
    }

    fn key(ns: &str, name: &str) -> ObjectKey {
        (ns.into(), name.into())
    }

    #[test]
    fn a_custom_resource_without_spec_reads_as_one_with_an_empty_spec() {
        let bare = serde_json::json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "SubnamespaceAnchor",
            "metadata": {"name": "a", "namespace": "p"}});
        assert!(serde_json::from_value::<hnc_api::SubnamespaceAnchor>(bare.clone()).is_err());
        let SpecOptional(anchor) =
            serde_json::from_value::<SpecOptional<hnc_api::SubnamespaceAnchor>>(bare).unwrap();
        assert_eq!(anchor.metadata.name.as_deref(), Some("a"));
        assert!(anchor.spec.labels.is_empty());
        let null = serde_json::json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HierarchyConfiguration",
            "metadata": {"name": "hierarchy", "namespace": "p"}, "spec": null});
        let SpecOptional(hc) =
            serde_json::from_value::<SpecOptional<hnc_api::HierarchyConfiguration>>(null).unwrap();
        assert_eq!(hc.spec.parent, None);
        let wrong = serde_json::json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HierarchyConfiguration",
            "metadata": {"name": "hierarchy", "namespace": "p"}, "spec": {"parent": 7}});
        assert!(serde_json::from_value::<SpecOptional<hnc_api::HierarchyConfiguration>>(wrong).is_err());
    }

    #[test]
    fn relist_reports_objects_deleted_while_the_watch_was_down() {
        let mut t = RelistTracker::default();
        assert_eq!(t.handle(Event::<ConfigMap>::Init), vec![]);
        t.handle(Event::InitApply(cm("a", "x")));
        t.handle(Event::InitApply(cm("a", "y")));
        assert_eq!(t.handle(Event::<ConfigMap>::InitDone), vec![Change::Synced]);
        t.handle(Event::Apply(cm("b", "z")));

        // The watch drops; x and z are deleted meanwhile; the relist shows only y.
        t.handle(Event::<ConfigMap>::Init);
        assert_eq!(t.handle(Event::InitApply(cm("a", "y"))), vec![Change::Apply(cm("a", "y"))]);
        let mut changes = t.handle(Event::<ConfigMap>::InitDone);
        let synced = changes.pop();
        changes.sort_by_key(|c| format!("{c:?}"));
        assert_eq!(changes, vec![Change::Delete(key("a", "x")), Change::Delete(key("b", "z"))]);
        assert_eq!(synced, Some(Change::Synced));
    }

    #[test]
    fn a_cluster_scoped_object_deleted_while_the_watch_was_down_is_reported_without_a_namespace() {
        use k8s_openapi::api::core::v1::Namespace;
        let ns = |name: &str| Namespace {
            metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
            ..Default::default()
        };
        let mut t = RelistTracker::default();
        t.handle(Event::Apply(ns("team-a")));
        t.handle(Event::Apply(ns("team-b")));
        t.handle(Event::<Namespace>::Init);
        t.handle(Event::InitApply(ns("team-b")));
        assert_eq!(
            t.handle(Event::<Namespace>::InitDone),
            vec![Change::Delete(key("", "team-a")), Change::Synced]
        );
        t.handle(Event::<Namespace>::Init);
        assert_eq!(
            t.handle(Event::<Namespace>::InitDone),
            vec![Change::Delete(key("", "team-b")), Change::Synced]
        );
    }

    #[test]
    fn deletions_are_forwarded_and_forgotten() {
        let mut t = RelistTracker::default();
        t.handle(Event::Apply(cm("a", "x")));
        assert_eq!(t.handle(Event::Delete(cm("a", "x"))), vec![Change::Delete(key("a", "x"))]);
        t.handle(Event::<ConfigMap>::Init);
        assert_eq!(t.handle(Event::<ConfigMap>::InitDone), vec![Change::Synced]);
    }
}
