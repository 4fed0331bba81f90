//! The OpenAPI documents kubectl reads to validate manifests (`kubectl apply` / `create -f` with the default
//! `--validate=strict`) and to explain kinds (`kubectl explain`): `/openapi/v3` (an index of group-versions),
//! `/openapi/v3/<api|apis/group>/<version>` (OpenAPI 3.0 JSON) and `/openapi/v2` (Swagger 2.0, as gnostic
//! protobuf when asked for it, which is what every kubectl asks for, or JSON).
//!
//! Built-in kinds' schemas are k8s-openapi's (its `schemars` implementations, generated from upstream's spec);
//! custom resources' are their CRD's `openAPIV3Schema`, read from the store on every request so they follow CRDs
//! being added and removed. Each kind's schema carries `x-kubernetes-group-version-kind`, which is how kubectl
//! finds it. No document lists a PATCH operation taking `fieldValidation`, so kubectl validates on its side
//! (apisim does not implement server-side field validation for built-in kinds) and says so as it would to any
//! server lacking it: `ValidationError(Role.rules[0]): unknown field "x" in io.k8s.api.rbac.v1.PolicyRule`.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use k8s_openapi::schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use serde_json::{Map, Value, json};

use crate::error::ApiError;
use crate::resources::ResourceType;
use crate::server::{Shared, error_response, json_response};

const REF_V3: &str = "#/components/schemas/";
const REF_V2: &str = "#/definitions/";
const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";
const PROTOBUF_V2: &str = "application/com.github.proto-openapi.spec.v2";

/// Answers `/openapi/<rest>`.
pub(crate) fn serve(shared: &Shared, rest: &[&str], headers: &HeaderMap) -> Response {
    let kinds = kinds(shared);
    match rest {
        ["v2"] => {
            let wants_protobuf = headers
                .get("accept")
                .and_then(|a| a.to_str().ok())
                .is_some_and(|a| a.contains(PROTOBUF_V2) || a.contains("protobuf"));
            let schemas = closure(&kinds, |_| true);
            if wants_protobuf {
                let body = swagger_protobuf(&schemas);
                ([("content-type", "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")], body)
                    .into_response()
            } else {
                let definitions: Map<String, Value> =
                    schemas.into_iter().map(|(name, s)| (name, to_v2(&s))).collect();
                json_response(
                    200,
                    json!({"swagger": "2.0", "info": info(), "paths": {}, "definitions": definitions}),
                )
            }
        }
        ["v3"] => {
            let mut paths = Map::new();
            for gv in group_versions(&kinds) {
                let hash = document_hash(&v3_document(&kinds, &gv));
                let path = gv_path(&gv);
                paths.insert(
                    path.clone(),
                    json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={hash}")}),
                );
            }
            json_response(200, json!({"paths": paths}))
        }
        ["v3", "api", version] => gv_document(&kinds, ("", version)),
        ["v3", "apis", group, version] => gv_document(&kinds, (group, version)),
        _ => error_response(&ApiError::not_found("", "openapi", &rest.join("/"))),
    }
}

fn gv_document(kinds: &[Kind], (group, version): (&str, &str)) -> Response {
    let gv = (group.to_owned(), version.to_owned());
    if !group_versions(kinds).contains(&gv) {
        return error_response(&ApiError::not_found("", "openapi", &gv_path(&gv)));
    }
    let doc = v3_document(kinds, &gv);
    let mut response = json_response(200, doc);
    // The hash in the index's URL changes with the document, so a client may keep what it fetched.
    if let Ok(v) = "public, immutable".parse() {
        response.headers_mut().insert("cache-control", v);
    }
    response
}

/// A kind apisim serves and its schema's name (`io.k8s.api.rbac.v1.Role`, `io.x-k8s.hnc.v1alpha2.…`).
struct Kind {
    group: String,
    version: String,
    kind: String,
    plural: String,
    namespaced: bool,
    name: String,
    /// A custom resource's schema; built-in schemas are in [`builtin_schemas`].
    schema: Option<Value>,
}

fn kinds(shared: &Shared) -> Vec<Kind> {
    let store = shared.store.lock();
    let mut out = Vec::new();
    for t in store.types() {
        for version in &t.versions {
            if let Some(kind) = kind_of(t, version) {
                out.push(kind);
            }
        }
    }
    out
}

fn kind_of(t: &ResourceType, version: &str) -> Option<Kind> {
    let (name, schema) = match &t.crd {
        Some((_, schema)) => {
            let reversed: Vec<&str> = t.group.split('.').rev().collect();
            let name = format!("{}.{version}.{}", reversed.join("."), t.kind);
            (name, Some(custom_resource_schema(schema)))
        }
        None => (builtin_schemas().1.get(&(t.group.clone(), t.kind.clone()))?.clone(), None),
    };
    Some(Kind {
        group: t.group.clone(),
        version: version.to_owned(),
        kind: t.kind.clone(),
        plural: t.plural.clone(),
        namespaced: t.namespaced,
        name,
        schema,
    })
}

/// A CRD's schema as the real server publishes it: typed apiVersion and kind, metadata as ObjectMeta.
fn custom_resource_schema(schema: &Value) -> Value {
    let mut schema = if schema.is_object() { schema.clone() } else { json!({"type": "object"}) };
    let props = schema.as_object_mut().expect("an object").entry("properties").or_insert_with(|| json!({}));
    if let Some(props) = props.as_object_mut() {
        props.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."}));
        props.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."}));
        props.insert(
            "metadata".into(),
            json!({"allOf": [{"$ref": format!("{REF_V3}{OBJECT_META}")}], "description": "Standard object's metadata."}),
        );
    }
    schema
}

/// Built-in kinds' schemas, generated once: (every schema by name, schema name by (group, kind)).
type Builtins = (BTreeMap<String, Value>, BTreeMap<(String, String), String>);

fn builtin_schemas() -> &'static Builtins {
    static BUILTINS: OnceLock<Builtins> = OnceLock::new();
    BUILTINS.get_or_init(|| {
        use k8s_openapi::api::{
            admissionregistration::v1 as admission, apps::v1 as apps, authorization::v1 as authorization,
            coordination::v1 as coordination, core::v1 as core, events::v1 as events,
            networking::v1 as networking, policy::v1 as policy, rbac::v1 as rbac,
        };
        use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;

        let mut generator = SchemaGenerator::new(SchemaSettings::openapi3());
        let mut kinds = BTreeMap::new();
        let mut add = |group: &str, kind: &str, name: String| {
            kinds.insert((group.to_owned(), kind.to_owned()), name);
        };
        macro_rules! register {
            ($($group:literal, $kind:literal => $ty:ty;)*) => {$(
                generator.subschema_for::<$ty>();
                add($group, $kind, <$ty as JsonSchema>::schema_name().into_owned());
            )*};
        }
        register! {
            "", "Namespace" => core::Namespace;
            "", "ConfigMap" => core::ConfigMap;
            "", "Pod" => core::Pod;
            "", "Secret" => core::Secret;
            "", "ServiceAccount" => core::ServiceAccount;
            "", "Service" => core::Service;
            "apps", "Deployment" => apps::Deployment;
            "policy", "PodDisruptionBudget" => policy::PodDisruptionBudget;
            "", "ResourceQuota" => core::ResourceQuota;
            "", "LimitRange" => core::LimitRange;
            "", "Event" => core::Event;
            "events.k8s.io", "Event" => events::Event;
            "rbac.authorization.k8s.io", "Role" => rbac::Role;
            "rbac.authorization.k8s.io", "RoleBinding" => rbac::RoleBinding;
            "rbac.authorization.k8s.io", "ClusterRole" => rbac::ClusterRole;
            "rbac.authorization.k8s.io", "ClusterRoleBinding" => rbac::ClusterRoleBinding;
            "networking.k8s.io", "NetworkPolicy" => networking::NetworkPolicy;
            "coordination.k8s.io", "Lease" => coordination::Lease;
            "admissionregistration.k8s.io", "ValidatingWebhookConfiguration" => admission::ValidatingWebhookConfiguration;
            "admissionregistration.k8s.io", "MutatingWebhookConfiguration" => admission::MutatingWebhookConfiguration;
            "apiextensions.k8s.io", "CustomResourceDefinition" => apiextensions::CustomResourceDefinition;
            "authorization.k8s.io", "SubjectAccessReview" => authorization::SubjectAccessReview;
            "authorization.k8s.io", "SelfSubjectAccessReview" => authorization::SelfSubjectAccessReview;
        }
        let mut schemas: BTreeMap<String, Value> = generator.take_definitions(true).into_iter().collect();
        // kube-apiserver's schemas of a CRD's free-form JSON values (`default`, `enum`, `example`) and of the
        // fields that take a schema or something else carry no type: their Go types' `OpenAPISchemaType()`
        // returns nil (apiextensions/v1 types_jsonschema.go). k8s-openapi says `object`, with which kubectl's
        // validation refuses a CRD listing strings in an `enum`.
        for name in ["JSON", "JSONSchemaPropsOrArray", "JSONSchemaPropsOrBool", "JSONSchemaPropsOrStringArray"] {
            let name = format!("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1.{name}");
            if let Some(Value::Object(schema)) = schemas.get_mut(&name) {
                schema.remove("type");
            }
        }
        for name in kinds.values() {
            // k8s-openapi's Rust types make metadata required; upstream's schemas (and kubectl) do not.
            if let Some(Value::Array(required)) = schemas.get_mut(name).and_then(|s| s.get_mut("required")) {
                required.retain(|r| r != "metadata");
            }
        }
        (schemas, kinds)
    })
}

/// Every kind's schema with its group-version-kind, plus every schema they reference, by name.
fn closure(kinds: &[Kind], include: impl Fn(&Kind) -> bool) -> BTreeMap<String, Value> {
    let builtins = &builtin_schemas().0;
    let mut out = BTreeMap::new();
    let mut pending = Vec::new();
    for kind in kinds.iter().filter(|k| include(k)) {
        let Some(mut schema) = kind.schema.clone().or_else(|| builtins.get(&kind.name).cloned()) else {
            continue;
        };
        let gvk = json!({"group": kind.group, "version": kind.version, "kind": kind.kind});
        let entry: &mut Value = out.entry(kind.name.clone()).or_insert_with(|| {
            schema["x-kubernetes-group-version-kind"] = json!([]);
            schema
        });
        // One schema may serve several versions of a custom resource.
        if let Some(list) = entry["x-kubernetes-group-version-kind"].as_array_mut() {
            list.push(gvk);
        }
        references(&out[&kind.name], &mut pending);
    }
    while let Some(name) = pending.pop() {
        if out.contains_key(&name) {
            continue;
        }
        if let Some(schema) = builtins.get(&name) {
            references(schema, &mut pending);
            out.insert(name, schema.clone());
        }
    }
    out
}

/// The schema names `schema` refers to.
fn references(schema: &Value, out: &mut Vec<String>) {
    match schema {
        Value::Object(map) => {
            if let Some(name) = map.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix(REF_V3)) {
                out.push(name.to_owned());
            }
            map.values().for_each(|v| references(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| references(v, out)),
        _ => {}
    }
}

fn group_versions(kinds: &[Kind]) -> Vec<(String, String)> {
    let mut gvs: Vec<(String, String)> = kinds.iter().map(|k| (k.group.clone(), k.version.clone())).collect();
    gvs.sort();
    gvs.dedup();
    gvs
}

fn gv_path((group, version): &(String, String)) -> String {
    if group.is_empty() { format!("api/{version}") } else { format!("apis/{group}/{version}") }
}

fn info() -> Value {
    json!({"title": "Kubernetes", "version": "v1.33.0"})
}

/// One group-version's OpenAPI 3.0 document. Each kind has one path, its objects' `get`, tagged with its
/// group-version-kind: that is how `kubectl explain` maps a resource to its schema. No PATCH operation is
/// listed, so kubectl finds no `fieldValidation` parameter and validates manifests itself, and computes
/// strategic merge patches from its own built-in types rather than from these schemas, which lack the
/// patch-merge-key extensions.
fn v3_document(kinds: &[Kind], (group, version): &(String, String)) -> Value {
    let in_gv = |k: &Kind| &k.group == group && &k.version == version;
    let schemas = closure(kinds, in_gv);
    let mut paths = Map::new();
    for k in kinds.iter().filter(|k| in_gv(k)) {
        let prefix = if k.group.is_empty() { "/api".to_owned() } else { format!("/apis/{}", k.group) };
        let scope = if k.namespaced { "/namespaces/{namespace}" } else { "" };
        let schema = json!({"$ref": format!("{REF_V3}{}", k.name)});
        paths.insert(
            format!("{prefix}/{}{scope}/{}/{{name}}", k.version, k.plural),
            json!({"get": {
                "operationId": format!("read{}", k.kind),
                "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}},
                "x-kubernetes-action": "get",
                "x-kubernetes-group-version-kind": {"group": k.group, "version": k.version, "kind": k.kind},
            }}),
        );
    }
    json!({"openapi": "3.0.0", "info": info(), "paths": paths, "components": {"schemas": schemas}})
}

fn document_hash(doc: &Value) -> String {
    let mut hasher = std::hash::DefaultHasher::new();
    doc.to_string().hash(&mut hasher);
    format!("{:016X}", hasher.finish())
}

/// An OpenAPI 3.0 schema in Swagger 2.0 form: references point at `#/definitions/`, and a reference wrapped in
/// `allOf` (the form 3.0 needs to carry a description beside it) is unwrapped, since kubectl's v2 reader ignores
/// `allOf`.
fn to_v2(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out: Map<String, Value> = map.iter().map(|(k, v)| (k.clone(), to_v2(v))).collect();
            if let Some(Value::String(r)) = out.get_mut("$ref")
                && let Some(name) = r.strip_prefix(REF_V3)
            {
                *r = format!("{REF_V2}{name}");
            }
            if let Some(Value::Array(all_of)) = out.get("allOf")
                && let [Value::Object(only)] = all_of.as_slice()
                && only.len() == 1
                && let Some(r) = only.get("$ref").cloned()
            {
                out.remove("allOf");
                out.insert("$ref".into(), r);
            }
            out.remove("nullable");
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(to_v2).collect()),
        other => other.clone(),
    }
}

/// The Swagger 2.0 document as gnostic's `openapi.v2.Document` protobuf message, which is the only form
/// kubectl reads `/openapi/v2` in. Field numbers are those of gnostic's OpenAPIv2.proto.
fn swagger_protobuf(schemas: &BTreeMap<String, Value>) -> Vec<u8> {
    let mut info = Vec::new();
    pb::string(&mut info, 1, "Kubernetes");
    pb::string(&mut info, 2, "v1.33.0");
    let mut definitions = Vec::new();
    for (name, schema) in schemas {
        pb::message(&mut definitions, 1, &named(name, &schema_protobuf(&to_v2(schema))));
    }
    let mut doc = Vec::new();
    pb::string(&mut doc, 1, "2.0");
    pb::message(&mut doc, 2, &info);
    pb::message(&mut doc, 8, &[]);
    pb::message(&mut doc, 9, &definitions);
    doc
}

/// gnostic's Named* { name = 1, value = 2 }.
fn named(name: &str, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    pb::string(&mut out, 1, name);
    pb::message(&mut out, 2, value);
    out
}

/// gnostic's `Any` { yaml = 2 }: JSON is YAML.
fn any(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    pb::string(&mut out, 2, &value.to_string());
    out
}

/// gnostic's `Schema`, for the parts kubectl reads: references, types, formats, descriptions, properties,
/// required fields, items, additional properties, allOf, enums, defaults and vendor extensions.
fn schema_protobuf(schema: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    let Some(map) = schema.as_object() else {
        return out;
    };
    let text = |k: &str| map.get(k).and_then(Value::as_str);
    if let Some(r) = text("$ref") {
        pb::string(&mut out, 1, r);
    }
    if let Some(format) = text("format") {
        pb::string(&mut out, 2, format);
    }
    if let Some(title) = text("title") {
        pb::string(&mut out, 3, title);
    }
    if let Some(description) = text("description") {
        pb::string(&mut out, 4, description);
    }
    if let Some(default) = map.get("default") {
        pb::message(&mut out, 5, &any(default));
    }
    if let Some(pattern) = text("pattern") {
        pb::string(&mut out, 13, pattern);
    }
    for required in map.get("required").and_then(Value::as_array).into_iter().flatten() {
        if let Some(r) = required.as_str() {
            pb::string(&mut out, 19, r);
        }
    }
    for value in map.get("enum").and_then(Value::as_array).into_iter().flatten() {
        pb::message(&mut out, 20, &any(value));
    }
    match map.get("additionalProperties") {
        Some(Value::Bool(b)) => {
            let mut item = Vec::new();
            pb::varint_field(&mut item, 2, u64::from(*b));
            pb::message(&mut out, 21, &item);
        }
        Some(s @ Value::Object(_)) => {
            let mut item = Vec::new();
            pb::message(&mut item, 1, &schema_protobuf(s));
            pb::message(&mut out, 21, &item);
        }
        _ => {}
    }
    if let Some(ty) = text("type") {
        let mut item = Vec::new();
        pb::string(&mut item, 1, ty);
        pb::message(&mut out, 22, &item);
    }
    let items: Vec<&Value> = match map.get("items") {
        Some(Value::Array(list)) => list.iter().collect(),
        Some(one @ Value::Object(_)) => vec![one],
        _ => vec![],
    };
    if !items.is_empty() {
        let mut item = Vec::new();
        for s in items {
            pb::message(&mut item, 1, &schema_protobuf(s));
        }
        pb::message(&mut out, 23, &item);
    }
    for s in map.get("allOf").and_then(Value::as_array).into_iter().flatten() {
        pb::message(&mut out, 24, &schema_protobuf(s));
    }
    if let Some(props) = map.get("properties").and_then(Value::as_object) {
        let mut properties = Vec::new();
        for (name, s) in props {
            pb::message(&mut properties, 1, &named(name, &schema_protobuf(s)));
        }
        pb::message(&mut out, 25, &properties);
    }
    for (name, value) in map.iter().filter(|(k, _)| k.starts_with("x-")) {
        pb::message(&mut out, 31, &named(name, &any(value)));
    }
    out
}

/// Protobuf writing, for the few field kinds the Swagger document needs.
mod pb {
    pub fn varint(out: &mut Vec<u8>, mut v: u64) {
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    pub fn varint_field(out: &mut Vec<u8>, number: u64, v: u64) {
        varint(out, number << 3);
        varint(out, v);
    }

    pub fn message(out: &mut Vec<u8>, number: u64, bytes: &[u8]) {
        varint(out, (number << 3) | 2);
        varint(out, bytes.len() as u64);
        out.extend_from_slice(bytes);
    }

    pub fn string(out: &mut Vec<u8>, number: u64, s: &str) {
        message(out, number, s.as_bytes());
    }
}

/// Drops the fields a built-in kind's schema does not have, as kube-apiserver's decoding into its Go types
/// does (with the default `fieldValidation=Warn`; kubectl's own validation rejects them before they are sent).
/// Custom resources are pruned by their CRD's schema instead (`schema.rs`).
pub(crate) fn prune_unknown_fields(t: &ResourceType, obj: &mut Value) {
    if t.crd.is_some() {
        return;
    }
    let (schemas, kinds) = builtin_schemas();
    if let Some(schema) = kinds.get(&(t.group.clone(), t.kind.clone())).and_then(|name| schemas.get(name)) {
        prune(schemas, schema, obj, 0);
    }
}

/// The schema `schema` stands for: through a `$ref`, or an `allOf` of one (how schemars wraps a described
/// reference).
fn resolve<'a>(schemas: &'a BTreeMap<String, Value>, mut schema: &'a Value) -> &'a Value {
    for _ in 0..8 {
        let next = match schema.get("allOf").and_then(Value::as_array).map(Vec::as_slice) {
            Some([only]) => only,
            _ => schema,
        };
        match next.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix(REF_V3)) {
            Some(name) => match schemas.get(name) {
                Some(target) => schema = target,
                None => return next,
            },
            None => return next,
        }
    }
    schema
}

fn prune(schemas: &BTreeMap<String, Value>, schema: &Value, value: &mut Value, depth: usize) {
    let schema = resolve(schemas, schema);
    if depth > 64 || schema.get("x-kubernetes-preserve-unknown-fields").and_then(Value::as_bool) == Some(true)
    {
        return;
    }
    match value {
        Value::Object(fields) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                fields.retain(|k, _| props.contains_key(k));
                for (k, v) in fields.iter_mut() {
                    prune(schemas, &props[k], v, depth + 1);
                }
            } else if let Some(each) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for v in fields.values_mut() {
                    prune(schemas, each, v, depth + 1);
                }
            }
        }
        Value::Array(items) => {
            if let Some(each) = schema.get("items") {
                for v in items {
                    prune(schemas, each, v, depth + 1);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod prune_tests {
    use super::*;

    fn builtin(group: &str, kind: &str) -> ResourceType {
        crate::resources::builtins()
            .into_iter()
            .find(|t| t.group == group && t.kind == kind)
            .map(|t| (*t).clone())
            .expect("registered")
    }

    #[test]
    fn unknown_fields_of_built_in_kinds_are_dropped_as_go_decoding_drops_them() {
        let mut role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "colour": "red",
            "metadata": {"name": "r", "labels": {"a": "b"}, "bogus": 1},
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "shade": "dark"}]});
        prune_unknown_fields(&builtin("rbac.authorization.k8s.io", "Role"), &mut role);
        assert_eq!(
            role,
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                "metadata": {"name": "r", "labels": {"a": "b"}},
                "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]})
        );
        let mut cm = json!({"metadata": {"name": "c"}, "data": {"any-key": "v"}, "extra": true});
        prune_unknown_fields(&builtin("", "ConfigMap"), &mut cm);
        assert_eq!(cm, json!({"metadata": {"name": "c"}, "data": {"any-key": "v"}}));
        let mut policy = json!({"metadata": {"name": "p"}, "spec": {"podSelector": {"matchLabels": {"x": "y"}},
            "ingress": [{"ports": [{"port": 80, "protocol": "TCP", "nope": 1}]}]}});
        prune_unknown_fields(&builtin("networking.k8s.io", "NetworkPolicy"), &mut policy);
        assert_eq!(policy["spec"]["ingress"][0]["ports"][0], json!({"port": 80, "protocol": "TCP"}));
        assert_eq!(policy["spec"]["podSelector"], json!({"matchLabels": {"x": "y"}}));
    }
}
