//! Watching CustomResourceDefinitions: a new CRD may make a configured type resolvable, and HNC's own CRDs
//! being deleted changes what HNC may do (spec §10: never create HierarchyConfigurations or `config` during an
//! uninstall, never delete subnamespaces because their anchors are going away).

use std::collections::BTreeMap;

use futures::StreamExt;
use hnc_shard::tree::DeletingCrds;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::mpsc;

use crate::config::reconciler::ConfigEvent;
use crate::hierarchy::ingest::HierarchyEvent;

const HIERARCHY_CRD: &str = "hierarchyconfigurations.hnc.x-k8s.io";
const ANCHOR_CRD: &str = "subnamespaceanchors.hnc.x-k8s.io";
const CONFIG_CRD: &str = "hncconfigurations.hnc.x-k8s.io";

/// Watches CRDs forever, telling the config reconciler about any change and the hierarchy reconciler which of
/// HNC's CRDs are being deleted (absent, or carrying a deletionTimestamp).
pub async fn watch_crds(
    client: Client,
    config: mpsc::Sender<ConfigEvent>,
    hierarchy: mpsc::Sender<HierarchyEvent>,
) {
    let api: Api<CustomResourceDefinition> = Api::all(client);
    let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    // Every CRD: name → being deleted. One of HNC's that is absent counts as deleted.
    let mut crds: BTreeMap<String, bool> = BTreeMap::new();
    let mut listing: Option<BTreeMap<String, bool>> = None;
    let mut reported: Option<(DeletingCrds, bool)> = None;
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(event) => event,
            Err(error) => {
                metrics::counter!("hnc_watch_errors_total", "kind" => "customresourcedefinitions")
                    .increment(1);
                tracing::warn!(%error, "CRD watch failed; retrying with backoff");
                continue;
            }
        };
        let mut settled = true;
        match event {
            watcher::Event::Init => {
                listing = Some(BTreeMap::new());
                settled = false;
            }
            watcher::Event::InitApply(crd) => {
                if let (Some(list), Some(name)) = (&mut listing, crd.metadata.name.clone()) {
                    list.insert(name, crd.metadata.deletion_timestamp.is_some());
                }
                settled = false;
            }
            watcher::Event::InitDone => crds = listing.take().unwrap_or_default(),
            watcher::Event::Apply(crd) => {
                if let Some(name) = crd.metadata.name.clone() {
                    crds.insert(name, crd.metadata.deletion_timestamp.is_some());
                }
            }
            watcher::Event::Delete(crd) => {
                if let Some(name) = crd.metadata.name.as_deref() {
                    crds.remove(name);
                }
            }
        }
        if !settled {
            continue;
        }
        if config.send(ConfigEvent::CrdsChanged).await.is_err() {
            return;
        }
        let deleting = |name: &str| crds.get(name).copied().unwrap_or(true);
        let now = (
            DeletingCrds { hierarchy: deleting(HIERARCHY_CRD), anchors: deleting(ANCHOR_CRD) },
            deleting(CONFIG_CRD),
        );
        if reported != Some(now) {
            reported = Some(now);
            if hierarchy.send(HierarchyEvent::DeletingCrds(now.0)).await.is_err()
                || config.send(ConfigEvent::ConfigCrdDeleting(now.1)).await.is_err()
            {
                return;
            }
        }
    }
}
