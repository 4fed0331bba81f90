//! Where the assignment lives: ConfigMap `hnc-shard-assignment` (name configurable) in the HNC namespace, one
//! key `assignment.json` holding a [`PublishedAssignment`]. The leader writes it (with the resourceVersion it
//! read, so a deposed leader's late write fails with 409); every replica reads it once per retry period and
//! ignores any epoch lower than one it has already seen.
//!
//! ```json
//! {"epoch": 7, "leader": "hnc-0", "shardCount": 4, "replicas": ["hnc-0", "hnc-1"],
//!  "owners": ["hnc-0", "hnc-1", "hnc-1", "hnc-0"], "weights": [120, 80, 45, 90]}
//! ```
//!
//! A ConfigMap rather than an annotation on the leader Lease: the assignment changes rarely while the lease
//! is rewritten every retry period, and `kubectl get configmap hnc-shard-assignment -o yaml` is where an
//! operator looks.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, ObjectMeta, PostParams};
use serde::{Deserialize, Serialize};

use crate::assignment::{Assignment, ReplicaId};
use crate::lease::LeaseError;

/// The ConfigMap key holding the JSON document.
pub const ASSIGNMENT_KEY: &str = "assignment.json";

/// The published shard assignment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PublishedAssignment {
    /// Increases by one with every publication, across leaders.
    pub epoch: u64,
    /// Identity of the leader that published it.
    pub leader: ReplicaId,
    /// Number of shards (= `owners.len()`).
    pub shard_count: u32,
    /// The live replicas the assignment was computed for (sorted).
    pub replicas: Vec<ReplicaId>,
    /// Owner per shard (index = shard id).
    pub owners: Assignment,
    /// Weight per shard the leader balanced by.
    pub weights: Vec<u64>,
}

/// Reads and writes the assignment ConfigMap.
pub(crate) struct AssignmentStore {
    api: Api<ConfigMap>,
    name: String,
    timeout: Duration,
}

impl AssignmentStore {
    pub(crate) fn new(api: Api<ConfigMap>, name: impl Into<String>, timeout: Duration) -> Self {
        AssignmentStore { api, name: name.into(), timeout }
    }

    /// The current document and the ConfigMap's resourceVersion; `Ok(None)` when there is no ConfigMap yet.
    /// A ConfigMap whose document does not parse counts as absent (the leader overwrites it).
    pub(crate) async fn read(&self) -> Result<Option<(Option<PublishedAssignment>, String)>, LeaseError> {
        let Some(cm) = self.call(self.api.get_opt(&self.name)).await? else { return Ok(None) };
        let rv = cm.metadata.resource_version.clone().unwrap_or_default();
        let doc = cm
            .data
            .as_ref()
            .and_then(|d| d.get(ASSIGNMENT_KEY))
            .and_then(|json| serde_json::from_str::<PublishedAssignment>(json).ok());
        Ok(Some((doc, rv)))
    }

    /// Writes `doc`: creates the ConfigMap when `resource_version` is None, otherwise replaces it only if it
    /// still has that version. Returns the new resourceVersion.
    pub(crate) async fn write(
        &self,
        doc: &PublishedAssignment,
        resource_version: Option<String>,
    ) -> Result<String, LeaseError> {
        let json = serde_json::to_string(doc).expect("the document serializes");
        let cm = ConfigMap {
            metadata: ObjectMeta {
                name: Some(self.name.clone()),
                resource_version: resource_version.clone(),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(ASSIGNMENT_KEY.to_owned(), json)])),
            ..Default::default()
        };
        let written = match resource_version {
            None => self.call(self.api.create(&PostParams::default(), &cm)).await?,
            Some(_) => self.call(self.api.replace(&self.name, &PostParams::default(), &cm)).await?,
        };
        Ok(written.metadata.resource_version.unwrap_or_default())
    }

    async fn call<T>(&self, request: impl Future<Output = Result<T, kube::Error>>) -> Result<T, LeaseError> {
        crate::lease::call(&self.name, self.timeout, request).await
    }
}
