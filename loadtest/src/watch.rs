//! The harness's own watches: every propagated type, Namespaces, HierarchyConfigurations and anchors, reduced to
//! the tracker's keys and value hashes as events arrive (objects are never kept). Only the harness's namespaces
//! (`lt-…`) and objects (`lt…`) are looked at.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::core::ApiResource;
use kube::runtime::{WatchStreamExt, watcher};
use parking_lot::Mutex;
use tokio::task::JoinHandle;

use crate::model::{self, Key};
use crate::objects::{PropType, api_resource, fingerprint};
use crate::topology::NS_PREFIX;
use crate::tracker::Tracker;

/// What one watch reduces objects to.
#[derive(Debug, Clone)]
enum Reducer {
    Object(&'static str),
    Namespace,
    Hierarchy,
    Anchor,
}

impl Reducer {
    /// The key prefixes of everything this watch reports (for pruning after a relist).
    fn prefixes(&self) -> Vec<String> {
        match self {
            Reducer::Object(tag) => vec![format!("o:{tag}/")],
            Reducer::Namespace => vec!["l:".into()],
            Reducer::Hierarchy => vec!["h:".into(), "p:".into()],
            Reducer::Anchor => vec!["a:".into()],
        }
    }

    /// The keys an object stands for, with their values.
    fn reduce(&self, o: &DynamicObject) -> Vec<(Key, u64)> {
        self.reduce_one(o).into_iter().chain(self.reduce_parent(o)).collect()
    }

    /// `p:` of an HC: its `spec.parent`, when set.
    fn reduce_parent(&self, o: &DynamicObject) -> Option<(Key, u64)> {
        let Reducer::Hierarchy = self else { return None };
        let ns = o.metadata.namespace.as_deref().filter(|ns| ns.starts_with(NS_PREFIX))?;
        let parent = o.data["spec"]["parent"].as_str().filter(|p| !p.is_empty());
        let value = match (parent, o.metadata.deletion_timestamp.is_some()) {
            (Some(p), false) => model::parent_value(p),
            _ => 0,
        };
        Some((model::parent_key(ns), value))
    }

    fn reduce_one(&self, o: &DynamicObject) -> Option<(Key, u64)> {
        let name = o.metadata.name.as_deref()?;
        let ns = o.metadata.namespace.as_deref().unwrap_or_default();
        let deleting = o.metadata.deletion_timestamp.is_some();
        match self {
            Reducer::Object(tag) => {
                if !name.starts_with("lt") || !ns.starts_with(NS_PREFIX) {
                    return None;
                }
                let labels = o.metadata.labels.as_ref();
                let from =
                    labels.and_then(|l| l.get("hnc.x-k8s.io/inherited-from")).map_or("", String::as_str);
                let fp = fingerprint(&o.data, labels, o.metadata.annotations.as_ref());
                let value = if deleting { 0 } else { model::object_value(from, fp) };
                Some((model::object_key(tag, ns, name), value))
            }
            Reducer::Namespace => {
                if !name.starts_with(NS_PREFIX) {
                    return None;
                }
                let value = if deleting {
                    crate::objects::hash_of("terminating")
                } else {
                    let empty = BTreeMap::new();
                    model::labels_value(o.metadata.labels.as_ref().unwrap_or(&empty).iter())
                };
                Some((model::labels_key(name), value))
            }
            Reducer::Hierarchy => {
                if !ns.starts_with(NS_PREFIX) {
                    return None;
                }
                let children: Vec<String> = o.data["status"]["children"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|c| c.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default();
                Some((model::children_key(ns), model::children_value(&children)))
            }
            Reducer::Anchor => {
                if !ns.starts_with(NS_PREFIX) {
                    return None;
                }
                let status =
                    if deleting { "deleting" } else { o.data["status"]["status"].as_str().unwrap_or("") };
                Some((model::anchor_key(ns, name), model::anchor_value(status)))
            }
        }
    }

    fn gone(&self, o: &DynamicObject) -> Vec<Key> {
        self.reduce(o).into_iter().map(|(k, _)| k).collect()
    }
}

/// Starts every watch; each bumps `tracker.synced_watches` once its first list is in. Returns the tasks and how
/// many watches there are.
pub fn start(
    client: &kube::Client,
    types: &[PropType],
    tracker: Arc<Mutex<Tracker>>,
) -> (Vec<JoinHandle<()>>, usize) {
    let mut watches: Vec<(ApiResource, Reducer)> =
        types.iter().map(|t| (t.resource.clone(), Reducer::Object(t.tag))).collect();
    watches.push((api_resource("", "v1", "Namespace", "namespaces"), Reducer::Namespace));
    watches.push((
        api_resource(hnc_api::GROUP, "v1alpha2", "HierarchyConfiguration", "hierarchyconfigurations"),
        Reducer::Hierarchy,
    ));
    watches.push((
        api_resource(hnc_api::GROUP, "v1alpha2", "SubnamespaceAnchor", "subnamespaceanchors"),
        Reducer::Anchor,
    ));
    let n = watches.len();
    let tasks = watches
        .into_iter()
        .map(|(ar, reducer)| {
            let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
            tokio::spawn(run(api, reducer, tracker.clone()))
        })
        .collect();
    (tasks, n)
}

async fn run(api: Api<DynamicObject>, reducer: Reducer, tracker: Arc<Mutex<Tracker>>) {
    let mut stream = watcher(api, watcher::Config::default().page_size(2000)).default_backoff().boxed();
    let mut listed: Option<HashSet<Key>> = None;
    let mut first_sync = true;
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(e) => e,
            Err(error) => {
                tracing_free_warn(&reducer, &error);
                continue;
            }
        };
        match event {
            watcher::Event::Init => listed = Some(HashSet::new()),
            watcher::Event::InitApply(o) => {
                let mut t = tracker.lock();
                for (k, v) in reducer.reduce(&o) {
                    if let Some(l) = listed.as_mut() {
                        l.insert(k.clone());
                    }
                    t.observe(k, v);
                }
            }
            watcher::Event::InitDone => {
                let mut t = tracker.lock();
                if let Some(l) = listed.take() {
                    for prefix in reducer.prefixes() {
                        t.forget_unlisted(&prefix, &l);
                    }
                }
                if std::mem::take(&mut first_sync) {
                    t.synced_watches += 1;
                }
            }
            watcher::Event::Apply(o) => {
                let mut t = tracker.lock();
                for (k, v) in reducer.reduce(&o) {
                    t.observe(k, v);
                }
            }
            watcher::Event::Delete(o) => {
                let mut t = tracker.lock();
                for k in reducer.gone(&o) {
                    t.observe(k, 0);
                }
            }
        }
    }
}

fn tracing_free_warn(reducer: &Reducer, error: &watcher::Error) {
    eprintln!("warning: harness watch {:?}: {error}", reducer.prefixes());
}
