//! Warning Events about propagation (spec §6.7), emitted once per distinct problem by this process rather
//! than on every reconcile as upstream does, so a converged cluster sees no Event writes.

use std::collections::HashSet;
use std::sync::Arc;

use hnc_api::keys::{events as reasons, names};
use hnc_shard::propagation::{PlannedEvent, PlannedWrite};
use k8s_openapi::api::core::v1::Event;
use kube::core::ApiResource;
use serde_json::json;

use crate::writer::{ObjectRef, WriteOp, WriteRequest, Writer};

/// Most distinct events remembered; beyond it the memory is cleared and repeats become possible.
const REMEMBERED: usize = 100_000;

/// Writes Events through the writer, each distinct (object, reason, message) once.
pub struct EventRecorder {
    writer: Writer,
    events: Arc<ApiResource>,
    emitted: HashSet<(String, String, &'static str, String)>,
}

impl EventRecorder {
    /// A recorder writing through `writer`.
    pub fn new(writer: Writer) -> Self {
        EventRecorder { writer, events: Arc::new(ApiResource::erase::<Event>(&())), emitted: HashSet::new() }
    }

    /// An event the planner found (bad selector, finalizers), on the source object.
    pub fn planned(&mut self, event: &PlannedEvent, resource: Option<Arc<ApiResource>>) {
        let Some(resource) = resource else { return };
        self.warning(&resource, &event.namespace, &event.name, event.reason, event.message.clone());
    }

    /// A write that failed for good: `CannotUpdateObject` on the destination and `CannotPropagateObject` on the
    /// source, as upstream reports them.
    pub fn write_failed(&mut self, write: &PlannedWrite, resource: Option<Arc<ApiResource>>, error: &str) {
        let Some(resource) = resource else { return };
        let action = if write.op.source().is_some() { "write" } else { "remove" };
        match write.source_namespace() {
            Some(source) => {
                let message =
                    format!("Could not {action} from source namespace {:?}: {error}", source.as_ref());
                self.warning(
                    &resource,
                    &write.namespace,
                    &write.name,
                    reasons::CANNOT_UPDATE_OBJECT,
                    message,
                );
                let message = format!(
                    "Could not {action} to destination namespace {:?}: {error}",
                    write.namespace.as_ref()
                );
                self.warning(
                    &resource,
                    &source.clone(),
                    &write.name,
                    reasons::CANNOT_PROPAGATE_OBJECT,
                    message,
                );
            }
            None => {
                let message = format!("Could not {action}: {error}");
                self.warning(
                    &resource,
                    &write.namespace,
                    &write.name,
                    reasons::CANNOT_UPDATE_OBJECT,
                    message,
                );
            }
        }
    }

    /// A Warning Event on `namespace/name` of type `involved`, unless this one was emitted already.
    pub fn warning(
        &mut self,
        involved: &ApiResource,
        namespace: &str,
        name: &str,
        reason: &'static str,
        message: String,
    ) {
        if self.emitted.len() >= REMEMBERED {
            self.emitted.clear();
        }
        if !self.emitted.insert((namespace.to_owned(), name.to_owned(), reason, message.clone())) {
            return;
        }
        let now = jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
        let event_name = format!("{name}.{:016x}", rand::random::<u64>());
        let body = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": event_name, "namespace": namespace},
            "involvedObject": {
                "apiVersion": involved.api_version, "kind": involved.kind, "namespace": namespace, "name": name,
            },
            "reason": reason,
            "message": message,
            "type": "Warning",
            "source": {"component": names::EVENT_SOURCE},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        });
        let target = ObjectRef::new(self.events.clone(), Some(namespace), &event_name);
        metrics::counter!("hnc_events_total", "reason" => reason).increment(1);
        self.writer.submit(WriteRequest::new(target, WriteOp::create(body), namespace));
    }
}
