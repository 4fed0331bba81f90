//! The objects the harness writes and how it recognises their copies: the propagated types (Role + RoleBinding
//! always, as upstream counts one "object"; optionally ConfigMaps and a custom resource from a CRD the harness
//! installs), source builders whose content changes with a generation number, and the content fingerprint a
//! copy must share with its source (spec §6.5: everything but HNC's metadata).

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use kube::core::ApiResource;
use serde_json::{Value, json};

/// Annotation carrying a source's generation, so every update changes the content copies must follow.
pub const GENERATION_ANNOTATION: &str = "loadtest.hnc.dev/generation";

/// Group of the custom resource the harness installs.
pub const CR_GROUP: &str = "loadtest.hnc.dev";

/// One propagated type.
#[derive(Debug, Clone)]
pub struct PropType {
    /// Short tag used in keys and reports (`role`, `rolebinding`, `configmap`, `policy`).
    pub tag: &'static str,
    pub resource: ApiResource,
}

/// The API resource `plural` of `group/version`, kind `kind`.
pub fn api_resource(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&kube::core::GroupVersionKind::gvk(group, version, kind), plural)
}

impl PropType {
    fn new(tag: &'static str, group: &str, version: &str, kind: &str, plural: &str) -> PropType {
        PropType { tag, resource: api_resource(group, version, kind, plural) }
    }

    /// The source object `name` in `namespace` at generation `generation`.
    pub fn source(&self, namespace: &str, name: &str, generation: u64) -> Value {
        let metadata = json!({
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/part-of": "hnc-loadtest"},
            "annotations": {GENERATION_ANNOTATION: generation.to_string()},
        });
        let mut object = match self.tag {
            "role" => json!({"rules": [{
                "apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"],
                "resourceNames": [format!("gen-{generation}")],
            }]}),
            "rolebinding" => json!({
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": format!("user-{generation}")}],
            }),
            "configmap" => json!({"data": {"generation": generation.to_string(), "owner": namespace}}),
            _ => json!({"spec": {"generation": generation as i64, "team": namespace}}),
        };
        object["apiVersion"] = self.resource.api_version.clone().into();
        object["kind"] = self.resource.kind.clone().into();
        object["metadata"] = metadata;
        object
    }
}

/// The propagated types for a run.
pub fn prop_types(configmaps: bool, custom_resources: bool) -> Vec<PropType> {
    let mut types = vec![
        PropType::new("role", "rbac.authorization.k8s.io", "v1", "Role", "roles"),
        PropType::new("rolebinding", "rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings"),
    ];
    if configmaps {
        types.push(PropType::new("configmap", "", "v1", "ConfigMap", "configmaps"));
    }
    if custom_resources {
        types.push(PropType::new("policy", CR_GROUP, "v1", "LoadtestPolicy", "loadtestpolicies"));
    }
    types
}

/// The CRD of the custom resource (`loadtestpolicies.loadtest.hnc.dev`, namespaced).
pub fn policy_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("loadtestpolicies.{CR_GROUP}")},
        "spec": {"group": CR_GROUP, "scope": "Namespaced",
            "names": {"plural": "loadtestpolicies", "singular": "loadtestpolicy", "kind": "LoadtestPolicy",
                "listKind": "LoadtestPolicyList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "spec": {"type": "object", "properties": {
                        "generation": {"type": "integer"}, "team": {"type": "string"}}}}}}}]}
    })
}

/// The `config` HNCConfiguration propagating the optional types (Roles and RoleBindings always propagate).
pub fn hnc_configuration(types: &[PropType]) -> Value {
    let resources: Vec<Value> = types
        .iter()
        .filter(|t| t.resource.group != "rbac.authorization.k8s.io")
        .map(|t| json!({"group": t.resource.group, "resource": t.resource.plural, "mode": "Propagate"}))
        .collect();
    json!({
        "apiVersion": hnc_api::API_VERSION, "kind": "HNCConfiguration",
        "metadata": {"name": hnc_api::keys::names::CONFIG},
        "spec": {"resources": resources},
    })
}

/// Hash of a value, never 0 or 1 (0 stands for "absent", 1 for "empty" in the state tracker).
pub fn hash_of<T: Hash + ?Sized>(value: &T) -> u64 {
    let mut h = DefaultHasher::new();
    value.hash(&mut h);
    h.finish().max(2)
}

fn is_hnc_key(key: &str) -> bool {
    key.contains("hnc.x-k8s.io") || key == "app.kubernetes.io/managed-by"
}

/// The content a copy shares with its source: every top-level field but `apiVersion`, `kind`, `metadata` and
/// `status`, plus labels and annotations without HNC's keys. Works on a full object or on the `data` of a
/// `DynamicObject` (whose metadata is passed separately).
pub fn fingerprint(
    body: &Value,
    labels: Option<&BTreeMap<String, String>>,
    annotations: Option<&BTreeMap<String, String>>,
) -> u64 {
    let mut h = DefaultHasher::new();
    if let Some(map) = body.as_object() {
        let mut keys: Vec<&String> = map.keys().collect();
        keys.sort();
        for k in
            keys.into_iter().filter(|k| !matches!(k.as_str(), "apiVersion" | "kind" | "metadata" | "status"))
        {
            k.hash(&mut h);
            hash_value(&map[k], &mut h);
        }
    }
    for map in [labels, annotations] {
        0xffu8.hash(&mut h);
        for (k, v) in map.into_iter().flatten().filter(|(k, _)| !is_hnc_key(k)) {
            k.hash(&mut h);
            v.hash(&mut h);
        }
    }
    h.finish().max(2)
}

/// The fingerprint of a full JSON object (what the harness sends).
pub fn fingerprint_json(object: &Value) -> u64 {
    let meta = |field: &str| -> Option<BTreeMap<String, String>> {
        let map = object.get("metadata")?.get(field)?.as_object()?;
        Some(map.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned()))).collect())
    };
    fingerprint(object, meta("labels").as_ref(), meta("annotations").as_ref())
}

fn hash_value(v: &Value, h: &mut DefaultHasher) {
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => (2u8, n.to_string()).hash(h),
        Value::String(s) => (3u8, s).hash(h),
        Value::Array(a) => {
            (4u8, a.len()).hash(h);
            a.iter().for_each(|x| hash_value(x, h));
        }
        Value::Object(m) => {
            (5u8, m.len()).hash(h);
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for k in keys {
                k.hash(h);
                hash_value(&m[k], h);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_shares_its_sources_fingerprint_and_a_new_generation_does_not() {
        for t in prop_types(true, true) {
            let source = t.source("lt-a", "lt0.lt-a", 1);
            let mut copy = source.clone();
            copy["metadata"]["namespace"] = "lt-b".into();
            copy["metadata"]["resourceVersion"] = "42".into();
            copy["metadata"]["labels"]["hnc.x-k8s.io/inherited-from"] = "lt-a".into();
            copy["metadata"]["labels"]["app.kubernetes.io/managed-by"] = "hnc.x-k8s.io".into();
            assert_eq!(fingerprint_json(&source), fingerprint_json(&copy), "{}", t.tag);
            assert_ne!(
                fingerprint_json(&source),
                fingerprint_json(&t.source("lt-a", "lt0.lt-a", 2)),
                "{}",
                t.tag
            );
        }
    }
}
