//! What every replica knows about hierarchical quotas: each HRQ (its `hard`, status and charges) and each
//! singleton ResourceQuota `hrq.hnc.x-k8s.io` (its `hard` and the usage the API server recorded), cluster-wide,
//! from two watches. The admission webhook decides from it on any replica; the owner's reconciler plans from
//! it. Behind a lock: the reconciler task writes (watch events, fresh objects a webhook fetched), webhooks read.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use hnc_api::keys::{annotations, labels, names};
use hnc_api::{HierarchicalResourceQuota, HierarchicalResourceQuotaStatus};
use hnc_shard::hrq::{QuotaModel, ResourceList, decode_charges};
use hnc_shard::view::NsName;
use k8s_openapi::api::core::v1::ResourceQuota;
use parking_lot::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// An HRQ as last observed.
#[derive(Debug, Clone, Default)]
pub struct ObservedHrq {
    /// Its resourceVersion: charges are written conditionally on it.
    pub resource_version: String,
    /// `spec.hard`, read exactly.
    pub hard: ResourceList,
    /// `spec.hard` as written (status.hard copies it).
    pub hard_as_written: hnc_api::hrq::ResourceList,
    /// Resources of `spec.hard` whose amount is not a quantity (its validator refuses them; left out of `hard`).
    pub unreadable: Vec<String>,
    /// Its status.
    pub status: HierarchicalResourceQuotaStatus,
    /// Its charges annotation as written (`None`: absent).
    pub charges_text: Option<String>,
}

/// A singleton ResourceQuota as last observed.
#[derive(Debug, Clone, Default)]
pub struct ObservedSingleton {
    /// Its resourceVersion (charges name the version they were made from).
    pub resource_version: String,
    /// Its uid (deletes are conditional on it).
    pub uid: String,
    /// `spec.hard`.
    pub hard: ResourceList,
    /// `status.used`: the namespace's usage as the API server recorded it.
    pub used: ResourceList,
    /// Carries HNC's label and no-propagation annotation.
    pub marked: bool,
}

/// The state behind a [`QuotaView`].
#[derive(Debug, Default)]
pub struct QuotaState {
    /// Limits, recorded usage and charges, for the accounting rules.
    pub model: QuotaModel,
    /// Every HRQ, by (namespace, name).
    pub hrqs: BTreeMap<(NsName, String), ObservedHrq>,
    /// Every singleton, by namespace.
    pub singletons: HashMap<NsName, ObservedSingleton>,
    /// The HRQ watch has listed.
    pub hrqs_synced: bool,
    /// The singleton watch has listed.
    pub singletons_synced: bool,
}

impl QuotaState {
    /// Both watches have listed: the view is complete.
    pub fn is_synced(&self) -> bool {
        self.hrqs_synced && self.singletons_synced
    }

    /// Records `hrq` (from the watch, or read fresh by a webhook).
    pub fn apply_hrq(&mut self, hrq: &HierarchicalResourceQuota) -> Option<NsName> {
        let ns: NsName = hrq.metadata.namespace.as_deref()?.into();
        let name = hrq.metadata.name.clone()?;
        let (hard, unreadable) = read_list(&hrq.spec.hard);
        let charges_text =
            hrq.metadata.annotations.as_ref().and_then(|a| a.get(annotations::HRQ_CHARGES)).cloned();
        let charges = charges_text.as_deref().map(decode_charges).unwrap_or_default();
        self.model.set_hrq(&ns, &name, hard.clone());
        self.model.set_charges(&ns, &name, charges);
        self.hrqs.insert(
            (ns.clone(), name),
            ObservedHrq {
                resource_version: hrq.metadata.resource_version.clone().unwrap_or_default(),
                hard,
                hard_as_written: hrq.spec.hard.clone(),
                unreadable,
                status: hrq.status.clone().unwrap_or_default(),
                charges_text,
            },
        );
        Some(ns)
    }

    /// Forgets HRQ `name` in `ns`.
    pub fn delete_hrq(&mut self, ns: &str, name: &str) {
        self.model.remove_hrq(ns, name);
        self.hrqs.remove(&(NsName::from(ns), name.to_owned()));
    }

    /// Records a ResourceQuota from the singleton watch (others are ignored).
    pub fn apply_singleton(&mut self, rq: &ResourceQuota) -> Option<NsName> {
        if rq.metadata.name.as_deref() != Some(names::HRQ_RESOURCE_QUOTA) {
            return None;
        }
        let ns: NsName = rq.metadata.namespace.as_deref()?.into();
        let quantities =
            |list: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>| {
                list.into_iter()
                    .flatten()
                    .filter_map(|(r, q)| Some((r.clone(), hnc_api::quantity::parse(&q.0)?)))
                    .collect::<ResourceList>()
            };
        let hard = quantities(rq.spec.as_ref().and_then(|s| s.hard.as_ref()));
        let used = quantities(rq.status.as_ref().and_then(|s| s.used.as_ref()));
        let marked =
            rq.metadata.labels.as_ref().and_then(|l| l.get(labels::HRQ)).is_some_and(|v| v == "true")
                && rq
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(annotations::NONE))
                    .is_some_and(|v| v == "true");
        let version = rq.metadata.resource_version.clone().unwrap_or_default();
        self.model.record_usage(&ns, used.clone(), &version);
        self.singletons.insert(
            ns.clone(),
            ObservedSingleton {
                resource_version: rq.metadata.resource_version.clone().unwrap_or_default(),
                uid: rq.metadata.uid.clone().unwrap_or_default(),
                hard,
                used,
                marked,
            },
        );
        Some(ns)
    }

    /// Forgets the singleton of `ns`.
    pub fn delete_singleton(&mut self, ns: &str) {
        self.model.forget_usage(ns);
        self.singletons.remove(ns);
    }
}

/// Reads a resource list as written in an HRQ: the amounts that are quantities, and the names of those that are
/// not.
pub fn read_list(list: &hnc_api::hrq::ResourceList) -> (ResourceList, Vec<String>) {
    let mut read = ResourceList::new();
    let mut unreadable = Vec::new();
    for (resource, amount) in list {
        let quantity = match amount {
            hnc_api::hrq::Quantity::Int(n) => Some(hnc_api::quantity::Quantity::from_int(*n)),
            hnc_api::hrq::Quantity::String(text) => hnc_api::quantity::parse(text),
        };
        match quantity {
            Some(q) => {
                read.insert(resource.clone(), q);
            }
            None => unreadable.push(resource.clone()),
        }
    }
    (read, unreadable)
}

/// The shared view. Cheap to clone.
#[derive(Clone, Default)]
pub struct QuotaView(Arc<RwLock<QuotaState>>);

impl QuotaView {
    /// An empty view (not synced).
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the state (held briefly: webhooks decide under it).
    pub fn read(&self) -> RwLockReadGuard<'_, QuotaState> {
        self.0.read()
    }

    /// Changes the state.
    pub fn write(&self) -> RwLockWriteGuard<'_, QuotaState> {
        self.0.write()
    }
}
