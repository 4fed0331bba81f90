//! What each kind does beyond plain storage, as kube-apiserver v1.32 does it (the recorded answers in
//! `../shared/conformance/` are the reference; where they say nothing, the behaviour of kube-apiserver's own
//! registry strategies is modelled and named in a comment).
//!
//! Built-in kinds are Go structs on the real server, so what a client reads back is Go's JSON encoding of
//! what it sent, after decoding with defaults: empty `omitempty` maps and lists vanish, a nil slice without
//! `omitempty` reads `null`, a struct without `omitempty` is always there. Custom resources are stored as the
//! JSON they were sent (after pruning), and keep their TypeMeta even as list items.

use serde_json::{Map, Value, json};

use crate::managed::{Schema, Shape};
use crate::resources::ResourceType;

/// The rbac API group.
const RBAC: &str = "rbac.authorization.k8s.io";

impl ResourceType {
    /// True for kinds registered by a CustomResourceDefinition.
    pub fn is_custom(&self) -> bool {
        self.crd.is_some()
    }

    /// Whether list items carry apiVersion and kind: only for custom resources, whose items are whole
    /// unstructured objects; a built-in list is a typed list whose items have no TypeMeta.
    pub fn list_items_have_type_meta(&self) -> bool {
        self.is_custom()
    }

    /// Whether a PUT of a missing object creates it (`AllowCreateOnUpdate` of the kind's registry strategy).
    pub fn creates_on_update(&self) -> bool {
        matches!(
            (self.group.as_str(), self.plural.as_str()),
            (RBAC, _)
                | ("", "limitranges" | "events")
                | ("coordination.k8s.io", "leases")
                | ("events.k8s.io", _)
        )
    }

    /// Whether objects carry `metadata.generation` (their strategies set it on create).
    pub fn has_generation(&self) -> bool {
        self.is_custom()
            || matches!(
                (self.group.as_str(), self.plural.as_str()),
                ("networking.k8s.io", "networkpolicies")
                    | ("apps", "deployments")
                    | ("policy", "poddisruptionbudgets")
                    | ("apiextensions.k8s.io", _)
                    | ("admissionregistration.k8s.io", _)
            )
    }

    /// Whether a change to `old` → `new` bumps the generation: any change outside metadata, and outside
    /// status when status is a subresource.
    pub fn bumps_generation(&self, old: &Value, new: &Value) -> bool {
        let strip = |v: &Value| -> Map<String, Value> {
            let mut m = v.as_object().cloned().unwrap_or_default();
            for k in ["metadata", "apiVersion", "kind"] {
                m.remove(k);
            }
            if self.status_subresource {
                m.remove("status");
            }
            m
        };
        self.has_generation() && strip(old) != strip(new)
    }

    /// The kind's zero value as Go encodes it (no TypeMeta, metadata with a null creationTimestamp for
    /// built-ins): what a create is compared with for managedFields, and the body of a watch bookmark.
    pub fn zero(&self) -> Value {
        if self.is_custom() {
            return json!({});
        }
        let mut zero = match (self.group.as_str(), self.kind.as_str()) {
            ("", "Namespace" | "ResourceQuota" | "Service") | ("policy", "PodDisruptionBudget") => {
                json!({"spec": {}, "status": {}})
            }
            ("apps", "Deployment") => json!({
                "spec": {"selector": null, "template": {"metadata": {"creationTimestamp": null}, "spec": {"containers": null}}, "strategy": {}},
                "status": {},
            }),
            ("", "LimitRange") => json!({"spec": {"limits": null}}),
            ("authorization.k8s.io", _) => json!({"spec": {}, "status": {"allowed": false}}),
            ("networking.k8s.io", "NetworkPolicy") => json!({"spec": {"podSelector": {}}}),
            ("coordination.k8s.io", "Lease") => json!({"spec": {}}),
            (RBAC, "Role" | "ClusterRole") => json!({"rules": null}),
            (RBAC, "RoleBinding" | "ClusterRoleBinding") => {
                json!({"roleRef": {"apiGroup": "", "kind": "", "name": ""}})
            }
            _ => json!({}),
        };
        zero["metadata"] = json!({"creationTimestamp": null});
        zero
    }

    /// Defaults applied when a body is decoded, before admission and managedFields: they count as the
    /// writer's (kube-apiserver's `SetDefaults_*` functions).
    pub fn decode_defaults(&self, obj: &mut Value) {
        if self.is_custom() {
            return;
        }
        match (self.group.as_str(), self.kind.as_str()) {
            // SetDefaults_Namespace: the label is the name, whatever the client sent.
            ("", "Namespace") => {
                if let Some(name) = obj.pointer("/metadata/name").and_then(Value::as_str).map(str::to_owned)
                    && let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut)
                {
                    let labels = meta.entry("labels").or_insert_with(|| json!({}));
                    if !labels.is_object() {
                        *labels = json!({});
                    }
                    labels["kubernetes.io/metadata.name"] = json!(name);
                }
            }
            // SetDefaults_Secret, and the v1 → internal conversion that merges stringData into data.
            ("", "Secret") => {
                if obj.get("type").is_none_or(|t| t.is_null() || t == "") {
                    obj["type"] = json!("Opaque");
                }
                if let Some(Value::Object(strings)) = obj.as_object_mut().and_then(|o| o.remove("stringData"))
                {
                    use base64::Engine;
                    let data =
                        obj.as_object_mut().expect("checked").entry("data").or_insert_with(|| json!({}));
                    if !data.is_object() {
                        *data = json!({});
                    }
                    for (k, v) in strings {
                        let text = v.as_str().unwrap_or_default();
                        data[k] = json!(base64::engine::general_purpose::STANDARD.encode(text));
                    }
                }
            }
            // SetDefaults_Subject: users and groups are RBAC subjects.
            (RBAC, "RoleBinding" | "ClusterRoleBinding") => {
                for subject in obj.get_mut("subjects").and_then(Value::as_array_mut).into_iter().flatten() {
                    let kind = subject.get("kind").and_then(Value::as_str).unwrap_or_default();
                    if matches!(kind, "User" | "Group") && subject.get("apiGroup").is_none_or(|g| g == "") {
                        subject["apiGroup"] = json!(RBAC);
                    }
                }
            }
            (group, kind) => crate::workloads::decode_defaults(group, kind, obj),
        }
    }

    /// Go's JSON encoding of a built-in object: `omitempty` fields that are empty are dropped, nil slices
    /// without `omitempty` read `null`. A no-op for custom resources.
    pub fn go_shape(&self, obj: &mut Value) {
        if self.is_custom() {
            return;
        }
        let Some(fields) = obj.as_object_mut() else { return };
        if let Some(meta) = fields.get_mut("metadata").and_then(Value::as_object_mut) {
            drop_empty(meta, &["labels", "annotations", "finalizers", "ownerReferences", "managedFields"]);
        }
        match (self.group.as_str(), self.kind.as_str()) {
            ("", "ConfigMap") => drop_empty(fields, &["data", "binaryData"]),
            ("", "Secret") => drop_empty(fields, &["data", "stringData"]),
            ("", "Namespace") => {
                for part in ["spec", "status"] {
                    let v = fields.entry(part).or_insert_with(|| json!({}));
                    if !v.is_object() {
                        *v = json!({});
                    }
                }
                if let Some(spec) = fields.get_mut("spec").and_then(Value::as_object_mut) {
                    drop_empty(spec, &["finalizers"]);
                }
            }
            (RBAC, "Role" | "ClusterRole") => {
                let rules = fields.entry("rules").or_insert(Value::Null);
                if rules.as_array().is_some_and(Vec::is_empty) {
                    *rules = Value::Null;
                }
                for rule in rules.as_array_mut().into_iter().flatten() {
                    if let Some(rule) = rule.as_object_mut() {
                        drop_empty(rule, &["apiGroups", "resources", "resourceNames", "nonResourceURLs"]);
                        let verbs = rule.entry("verbs").or_insert(Value::Null);
                        if verbs.as_array().is_some_and(Vec::is_empty) {
                            *verbs = Value::Null;
                        }
                    }
                }
            }
            (RBAC, "RoleBinding" | "ClusterRoleBinding") => drop_empty(fields, &["subjects"]),
            _ => {}
        }
    }
}

/// Removes the named entries that are null, `{}` or `[]`.
fn drop_empty(map: &mut Map<String, Value>, keys: &[&str]) {
    for key in keys {
        let empty = match map.get(*key) {
            Some(Value::Null) => true,
            Some(Value::Object(m)) => m.is_empty(),
            Some(Value::Array(a)) => a.is_empty(),
            _ => false,
        };
        if empty {
            map.remove(*key);
        }
    }
}

/// The managedFields schema of a kind: which lists are sets or keyed, which structs are atomic.
pub struct KindSchema<'a>(pub &'a ResourceType);

impl Schema for KindSchema<'_> {
    fn shape(&self, path: &[&str], value: &Value) -> Shape {
        let t = self.0;
        match path {
            ["metadata", "finalizers"] => return Shape::Set,
            ["metadata", "ownerReferences"] => return Shape::Keyed(vec!["uid".into()]),
            _ => {}
        }
        if let Some((_, schema)) = &t.crd {
            return crd_shape(schema, path, value);
        }
        let atomic_struct = match (t.group.as_str(), t.kind.as_str(), path) {
            (RBAC, "RoleBinding" | "ClusterRoleBinding", ["roleRef"]) => true,
            // metav1.LabelSelector is `+structType=atomic`.
            ("networking.k8s.io", "NetworkPolicy", ["spec", "podSelector"]) => true,
            ("apps", "Deployment", ["spec", "selector"]) => true,
            ("policy", "PodDisruptionBudget", ["spec", "selector"]) => true,
            (
                "admissionregistration.k8s.io",
                _,
                ["webhooks", "*", "namespaceSelector" | "objectSelector"],
            ) => true,
            _ => false,
        };
        let keyed: Option<&[&str]> = match (t.group.as_str(), t.kind.as_str(), path) {
            ("", "ServiceAccount", ["secrets"]) => Some(&["name"]),
            ("admissionregistration.k8s.io", _, ["webhooks"]) => Some(&["name"]),
            ("admissionregistration.k8s.io", _, ["webhooks", "*", "matchConditions"]) => Some(&["name"]),
            // The pod template's `+listType=map` lists (core/v1 types.go).
            ("apps", "Deployment", ["spec", "template", "spec", rest @ ..]) => match rest {
                ["containers" | "initContainers"] => Some(&["name"]),
                ["containers" | "initContainers", "*", "ports"] => Some(&["containerPort", "protocol"]),
                ["containers" | "initContainers", "*", "env"] => Some(&["name"]),
                ["containers" | "initContainers", "*", "volumeMounts"] => Some(&["mountPath"]),
                ["volumes"] => Some(&["name"]),
                ["topologySpreadConstraints"] => Some(&["topologyKey", "whenUnsatisfiable"]),
                _ => None,
            },
            ("", "Service", ["spec", "ports"]) => Some(&["port", "protocol"]),
            _ => None,
        };
        match value {
            Value::Object(_) if !atomic_struct => Shape::Granular,
            Value::Array(_) if keyed.is_some() => {
                Shape::Keyed(keyed.unwrap_or_default().iter().map(|k| (*k).to_owned()).collect())
            }
            _ => Shape::Atomic,
        }
    }
}

/// The shape of a custom resource's node from its structural schema: lists are atomic unless
/// `x-kubernetes-list-type` says `set` or `map`, maps and structs granular unless `x-kubernetes-map-type:
/// atomic`; fields the schema does not describe are deduced from the value.
fn crd_shape(schema: &Value, path: &[&str], value: &Value) -> Shape {
    let mut node = Some(schema);
    for step in path {
        node = node.and_then(|n| {
            if *step == "*" {
                n.get("items")
            } else {
                n.pointer(&format!("/properties/{}", step.replace('~', "~0").replace('/', "~1")))
                    .or_else(|| n.get("additionalProperties").filter(|a| a.is_object()))
            }
        });
    }
    let ext = |k: &str| node.and_then(|n| n.get(k)).and_then(Value::as_str);
    match value {
        Value::Array(_) => match ext("x-kubernetes-list-type") {
            Some("set") => Shape::Set,
            Some("map") => Shape::Keyed(
                node.and_then(|n| n.get("x-kubernetes-list-map-keys"))
                    .and_then(Value::as_array)
                    .map(|keys| keys.iter().filter_map(|k| k.as_str().map(str::to_owned)).collect())
                    .unwrap_or_default(),
            ),
            _ => Shape::Atomic,
        },
        Value::Object(_) if ext("x-kubernetes-map-type") != Some("atomic") => Shape::Granular,
        _ => Shape::Atomic,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin(group: &str, kind: &str) -> ResourceType {
        crate::resources::builtins()
            .into_iter()
            .find(|t| t.group == group && t.kind == kind)
            .map(|t| (*t).clone())
            .expect("registered")
    }

    #[test]
    fn decoding_defaults_namespace_label_secret_string_data_and_rbac_subjects() {
        let ns = builtin("", "Namespace");
        let mut obj = json!({"metadata": {"name": "a", "labels": {"kubernetes.io/metadata.name": "other"}}});
        ns.decode_defaults(&mut obj);
        assert_eq!(obj["metadata"]["labels"]["kubernetes.io/metadata.name"], "a");

        let secret = builtin("", "Secret");
        let mut obj = json!({"metadata": {"name": "s"}, "stringData": {"k": "v"}, "data": {"j": "dw=="}});
        secret.decode_defaults(&mut obj);
        assert_eq!(
            obj,
            json!({"metadata": {"name": "s"}, "type": "Opaque", "data": {"j": "dw==", "k": "dg=="}})
        );

        let rb = builtin(RBAC, "RoleBinding");
        let mut obj =
            json!({"subjects": [{"kind": "User", "name": "u"}, {"kind": "ServiceAccount", "name": "d"}]});
        rb.decode_defaults(&mut obj);
        assert_eq!(obj["subjects"][0]["apiGroup"], RBAC);
        assert!(obj["subjects"][1].get("apiGroup").is_none());
    }

    #[test]
    fn go_shape_drops_empty_omitempty_fields_and_nulls_empty_rules() {
        let role = builtin(RBAC, "Role");
        let mut obj = json!({"metadata": {"name": "r", "labels": {}}, "rules": []});
        role.go_shape(&mut obj);
        assert_eq!(obj, json!({"metadata": {"name": "r"}, "rules": null}));
        let cm = builtin("", "ConfigMap");
        let mut obj = json!({"metadata": {"name": "c", "finalizers": []}, "data": {}});
        cm.go_shape(&mut obj);
        assert_eq!(obj, json!({"metadata": {"name": "c"}}));
    }

    #[test]
    fn role_bindings_roleref_is_atomic_and_crd_list_types_are_read() {
        let rb = builtin(RBAC, "RoleBinding");
        assert_eq!(KindSchema(&rb).shape(&["roleRef"], &json!({})), Shape::Atomic);
        assert_eq!(KindSchema(&rb).shape(&["metadata", "labels"], &json!({})), Shape::Granular);
        let schema = json!({"properties": {"spec": {"properties": {
            "tags": {"type": "array", "x-kubernetes-list-type": "set"},
            "ports": {"type": "array", "x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["port"]}}}}});
        assert_eq!(crd_shape(&schema, &["spec", "tags"], &json!([])), Shape::Set);
        assert_eq!(crd_shape(&schema, &["spec", "ports"], &json!([])), Shape::Keyed(vec!["port".into()]));
        assert_eq!(crd_shape(&schema, &["spec", "other"], &json!([])), Shape::Atomic);
    }
}
