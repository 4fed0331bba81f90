//! Objects of propagated types as the engine reads them: everything but `metadata.managedFields`.
//!
//! Every replica watches every object of every propagated type (admission needs the whole cluster's sources on
//! any replica), so what one event costs to decode is paid by every replica for every write in the cluster —
//! the cost that does not shrink when replicas are added. kube-apiserver attaches `managedFields` to every
//! object (one entry per manager, a field set that mirrors the whole object: for a small Role or RoleBinding
//! copy, more bytes than the rest of the object together), and HNC never reads them: canonical forms, policies
//! and fingerprints are all made without them. [`WatchedObject`] is decoded straight from the API server's
//! bytes with the field skipped as it is parsed (serde's `IgnoredAny`: scanned, nothing allocated), instead of
//! built into a `DynamicObject` and then converted to a JSON value again.

use std::borrow::Cow;
use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{OwnerReference, Time};
use kube::Resource;
use kube::api::{ObjectMeta, TypeMeta};
use kube::core::{ApiResource, DynamicResourceScope};
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::{Map, Value};

/// An object of any kind without its `managedFields`: its TypeMeta, its metadata, and its other top-level
/// fields (`rules`, `data`, `spec`, ...) as JSON.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WatchedObject {
    /// `apiVersion` and `kind`, when the answer carried them (list items from kube-apiserver do not).
    pub types: Option<TypeMeta>,
    /// The metadata; `managed_fields` is always `None`.
    pub metadata: ObjectMeta,
    /// Every other top-level field.
    pub data: Map<String, Value>,
}

impl WatchedObject {
    /// The object as one JSON value (TypeMeta, metadata without `managedFields`, the rest), moving the body.
    pub fn into_value(self) -> Value {
        let mut fields = self.data;
        if let Some(types) = self.types {
            fields.insert("apiVersion".into(), types.api_version.into());
            fields.insert("kind".into(), types.kind.into());
        }
        // ObjectMeta serializes to an object of strings, maps and lists: it cannot fail.
        fields.insert("metadata".into(), serde_json::to_value(&self.metadata).unwrap_or(Value::Null));
        Value::Object(fields)
    }
}

/// The fields of `ObjectMeta` HNC reads; any other (`managedFields`, `selfLink`, fields added later) is skipped
/// unread.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metadata {
    name: Option<String>,
    generate_name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
    deletion_grace_period_seconds: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    finalizers: Option<Vec<String>>,
    owner_references: Option<Vec<OwnerReference>>,
}

impl From<Metadata> for ObjectMeta {
    fn from(m: Metadata) -> Self {
        ObjectMeta {
            name: m.name,
            generate_name: m.generate_name,
            namespace: m.namespace,
            uid: m.uid,
            resource_version: m.resource_version,
            generation: m.generation,
            creation_timestamp: m.creation_timestamp,
            deletion_timestamp: m.deletion_timestamp,
            deletion_grace_period_seconds: m.deletion_grace_period_seconds,
            labels: m.labels,
            annotations: m.annotations,
            finalizers: m.finalizers,
            owner_references: m.owner_references,
            ..ObjectMeta::default()
        }
    }
}

impl<'de> Deserialize<'de> for WatchedObject {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ObjectVisitor;

        impl<'de> Visitor<'de> for ObjectVisitor {
            type Value = WatchedObject;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a Kubernetes object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WatchedObject, A::Error> {
                let (mut api_version, mut kind): (Option<String>, Option<String>) = (None, None);
                let mut metadata: Option<Metadata> = None;
                let mut data = Map::new();
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    match &*key {
                        "apiVersion" => api_version = map.next_value()?,
                        "kind" => kind = map.next_value()?,
                        "metadata" => metadata = map.next_value()?,
                        _ => {
                            let value: Value = map.next_value()?;
                            data.insert(key.into_owned(), value);
                        }
                    }
                }
                let types = match (api_version, kind) {
                    (Some(api_version), Some(kind)) => Some(TypeMeta { api_version, kind }),
                    _ => None,
                };
                Ok(WatchedObject { types, metadata: metadata.map(Into::into).unwrap_or_default(), data })
            }
        }

        deserializer.deserialize_map(ObjectVisitor)
    }
}

impl Resource for WatchedObject {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }
    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }
    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }
    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }
    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.metadata
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn role() -> Value {
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {
                "name": "r", "namespace": "a", "uid": "u-1", "resourceVersion": "42",
                "creationTimestamp": "2026-12-07T10:00:00Z",
                "labels": {"hnc.x-k8s.io/inherited-from": "p"}, "annotations": {"x": "y"},
                "managedFields": [{"manager": "hnc", "operation": "Update", "apiVersion": "v1",
                    "time": "2026-12-07T10:00:00Z", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:hnc.x-k8s.io/inherited-from": {}}},
                        "f:rules": {}}}],
                "selfLink": "/apis/rbac.authorization.k8s.io/v1/namespaces/a/roles/r",
            },
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
        })
    }

    #[test]
    fn reads_everything_but_managed_fields() {
        let text = serde_json::to_vec(&role()).unwrap();
        let object: WatchedObject = serde_json::from_slice(&text).unwrap();
        assert_eq!(object.metadata.name.as_deref(), Some("r"));
        assert_eq!(object.metadata.namespace.as_deref(), Some("a"));
        assert_eq!(object.metadata.resource_version.as_deref(), Some("42"));
        assert!(object.metadata.managed_fields.is_none());
        assert_eq!(object.types.as_ref().map(|t| t.kind.as_str()), Some("Role"));

        let mut expected = role();
        let meta = expected["metadata"].as_object_mut().unwrap();
        meta.remove("managedFields");
        meta.remove("selfLink");
        assert_eq!(object.into_value(), expected);
    }

    #[test]
    fn reads_the_same_as_a_dynamic_object_apart_from_managed_fields() {
        let text = serde_json::to_vec(&role()).unwrap();
        let lean: WatchedObject = serde_json::from_slice(&text).unwrap();
        let mut full: kube::core::DynamicObject = serde_json::from_slice(&text).unwrap();
        full.metadata.managed_fields = None;
        full.metadata.self_link = None;
        assert_eq!(lean.into_value(), serde_json::to_value(&full).unwrap());
    }

    #[test]
    fn list_items_without_type_meta_and_malformed_objects() {
        let object: WatchedObject =
            serde_json::from_value(json!({"metadata": {"name": "x"}, "data": {}})).unwrap();
        assert!(object.types.is_none());
        assert_eq!(object.into_value(), json!({"metadata": {"name": "x"}, "data": {}}));
        assert!(serde_json::from_value::<WatchedObject>(json!([1])).is_err());
        assert!(serde_json::from_value::<WatchedObject>(json!({"metadata": {"name": 7}})).is_err());
        assert!(serde_json::from_value::<WatchedObject>(json!({"metadata": {"labels": {"a": 1}}})).is_err());
    }
}
