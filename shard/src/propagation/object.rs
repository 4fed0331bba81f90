//! What a propagated object looks like (spec §6.5): the *cleaned source* the forest keeps, the *canonical
//! form* two objects are compared in, its content hash, and the copy written into a destination.
//!
//! The content hash stands in for upstream's `reflect.DeepEqual(canonical(copy), canonical(source))`: the
//! cache keeps only the hash of each copy, never the copy. It is xxh3-128 over a self-delimiting encoding of
//! the JSON value that visits object keys in sorted order. serde_json's `Map` is sorted today (no crate in
//! the workspace enables `preserve_order`, checked with `cargo tree -e features -i serde_json`), but sorting
//! here keeps the hash independent of insertion order even if a future dependency turns that feature on, and
//! streaming the encoding into the hasher avoids serializing a buffer per object.

use std::sync::Arc;

use hnc_api::keys::{is_hnc_metadata_key, labels};
use serde_json::{Map, Value};
use xxhash_rust::xxh3::Xxh3;

use crate::NsName;

/// An object name. Shared, cheap to clone; the forest cache interns them.
pub type ObjName = Arc<str>;

/// A propagated type: API group (empty for core) and kind. Versions are not part of it, as in upstream's
/// objects webhook, which matches types by group and kind.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeKey {
    pub group: Arc<str>,
    pub kind: Arc<str>,
}

impl TypeKey {
    pub fn new(group: &str, kind: &str) -> Self {
        TypeKey { group: Arc::from(group), kind: Arc::from(kind) }
    }

    /// The type named by an object's `apiVersion` (`group/version`, or `version` for core) and `kind`.
    pub fn of_object(object: &Value) -> Self {
        let api_version = object.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
        let kind = object.get("kind").and_then(Value::as_str).unwrap_or("");
        TypeKey::new(group, kind)
    }

    /// RoleBindings' `roleRef` is immutable on the API server: changing it takes a delete and a create.
    pub fn is_role_binding(&self) -> bool {
        &*self.group == hnc_api::config::RBAC_GROUP && &*self.kind == "RoleBinding"
    }
}

/// The manager flags that shape copies and exclusions (`--unpropagated-label`, `--unpropagated-annotation`,
/// `--nopropagation-label key=value`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PropagationRules {
    pub unpropagated_labels: Vec<String>,
    pub unpropagated_annotations: Vec<String>,
    /// `(key, value)` pairs; an object carrying one exactly (the value may be empty) is never propagated.
    pub nopropagation_labels: Vec<(String, String)>,
}

/// An object the forest cache cannot use.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    #[error("object is malformed: {0}")]
    Malformed(String),
}

/// 128-bit content hash of a canonical form.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ContentHash(pub [u64; 2]);

/// The fields of `metadata` the forest cache needs, checked. Labels and annotations that are not strings are
/// rejected here rather than silently dropped: the API server never produces them.
#[derive(Debug)]
pub(crate) struct ObjectMeta<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub resource_version: &'a str,
    /// Value of `hnc.x-k8s.io/inherited-from`, if the label is present (with any value).
    pub inherited_from: Option<&'a str>,
    pub terminating: bool,
}

impl<'a> ObjectMeta<'a> {
    pub fn read(object: &'a Value) -> Result<Self, ObjectError> {
        let bad = |m: String| ObjectError::Malformed(m);
        let meta = object
            .as_object()
            .ok_or_else(|| bad("not a JSON object".to_owned()))?
            .get("metadata")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("metadata is missing or not an object".to_owned()))?;
        let string = |field: &str| -> Result<&'a str, ObjectError> {
            match meta.get(field) {
                None | Some(Value::Null) => Ok(""),
                Some(Value::String(s)) => Ok(s.as_str()),
                Some(_) => Err(bad(format!("metadata.{field} is not a string"))),
            }
        };
        let name = string("name")?;
        let namespace = string("namespace")?;
        if name.is_empty() {
            return Err(bad("metadata.name is missing".to_owned()));
        }
        if namespace.is_empty() {
            return Err(bad(format!(
                "{name}: metadata.namespace is missing (propagated types are namespaced)"
            )));
        }
        let mut inherited_from = None;
        for field in ["labels", "annotations"] {
            match meta.get(field) {
                None | Some(Value::Null) => {}
                Some(Value::Object(map)) => {
                    for (k, v) in map {
                        let v = v
                            .as_str()
                            .ok_or_else(|| bad(format!("metadata.{field}[{k:?}] is not a string")))?;
                        if field == "labels" && k == labels::INHERITED_FROM {
                            inherited_from = Some(v);
                        }
                    }
                }
                Some(_) => return Err(bad(format!("metadata.{field} is not an object"))),
            }
        }
        Ok(ObjectMeta {
            name,
            namespace,
            resource_version: string("resourceVersion")?,
            inherited_from,
            terminating: meta.get("deletionTimestamp").is_some_and(|v| !v.is_null()),
        })
    }
}

fn metadata_map_mut<'a>(object: &'a mut Value, field: &str) -> Option<&'a mut Map<String, Value>> {
    let meta = object.as_object_mut()?.entry("metadata").or_insert_with(|| Value::Object(Map::new()));
    let meta = meta.as_object_mut()?;
    let map = meta.entry(field).or_insert_with(|| Value::Object(Map::new()));
    if map.is_null() {
        *map = Value::Object(Map::new());
    }
    map.as_object_mut()
}

/// The cleaned source (§6.5): the unpropagated annotations and labels removed, and
/// `app.kubernetes.io/managed-by: hnc.x-k8s.io` set. As upstream, the label is set before the unpropagated
/// labels are removed, so `--unpropagated-label app.kubernetes.io/managed-by` removes it.
pub fn clean_source(source: &Value, rules: &PropagationRules) -> Value {
    let mut cleaned = source.clone();
    if let Some(annots) = metadata_map_mut(&mut cleaned, "annotations") {
        for key in &rules.unpropagated_annotations {
            annots.remove(key);
        }
    }
    if let Some(object_labels) = metadata_map_mut(&mut cleaned, "labels") {
        object_labels
            .insert(labels::MANAGED_BY.to_owned(), Value::String(labels::MANAGED_BY_VALUE.to_owned()));
        for key in &rules.unpropagated_labels {
            object_labels.remove(key);
        }
    }
    cleaned
}

/// The canonical form (§6.5): `status` dropped, `metadata` reduced to `name` and the labels and annotations
/// that are not HNC metadata; the content at top level (spec, data, rules, roleRef, ...) kept. Empty
/// label/annotation maps are left out, so "none" and "empty" compare equal.
///
/// TypeMeta (`apiVersion`, `kind`) is left out too: objects are always compared within one type, and an API
/// server sends it on some answers and not on others (kube-apiserver's list items have none, its watch events
/// do), so a form that kept it would see every listed source differ from its watched copies.
pub fn canonical(object: &Value) -> Value {
    let Some(fields) = object.as_object() else {
        return object.clone();
    };
    let mut out = Map::new();
    for (k, v) in fields {
        if !matches!(k.as_str(), "status" | "metadata" | "apiVersion" | "kind") {
            out.insert(k.clone(), v.clone());
        }
    }
    let meta = fields.get("metadata");
    let mut canonical_meta = Map::new();
    if let Some(name) = meta.and_then(|m| m.get("name")) {
        canonical_meta.insert("name".to_owned(), name.clone());
    }
    for field in ["labels", "annotations"] {
        let kept: Map<String, Value> = meta
            .and_then(|m| m.get(field))
            .and_then(Value::as_object)
            .map(|m| {
                m.iter()
                    .filter(|(k, _)| !is_hnc_metadata_key(k))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect()
            })
            .unwrap_or_default();
        if !kept.is_empty() {
            canonical_meta.insert(field.to_owned(), Value::Object(kept));
        }
    }
    out.insert("metadata".to_owned(), Value::Object(canonical_meta));
    Value::Object(out)
}

/// xxh3-128 of `value`, independent of the order its maps were built in.
pub fn content_hash(value: &Value) -> ContentHash {
    let mut hasher = Xxh3::new();
    feed(&mut hasher, value);
    let h = hasher.digest128();
    ContentHash([h as u64, (h >> 64) as u64])
}

/// Hash of a RoleBinding's `roleRef` (absent hashes like `null`), so the planner can tell an update from a
/// delete-and-recreate.
pub fn role_ref_hash(object: &Value) -> u64 {
    let mut hasher = Xxh3::new();
    feed(&mut hasher, object.get("roleRef").unwrap_or(&Value::Null));
    hasher.digest()
}

/// A self-delimiting encoding (type tag, then lengths before contents), so distinct values cannot collide by
/// concatenation.
fn feed(h: &mut Xxh3, value: &Value) {
    let len = |h: &mut Xxh3, n: usize| h.update(&(n as u64).to_le_bytes());
    match value {
        Value::Null => h.update(b"n"),
        Value::Bool(b) => h.update(if *b { b"t" } else { b"f" }),
        Value::Number(n) => {
            let s = n.to_string();
            h.update(b"#");
            len(h, s.len());
            h.update(s.as_bytes());
        }
        Value::String(s) => {
            h.update(b"s");
            len(h, s.len());
            h.update(s.as_bytes());
        }
        Value::Array(items) => {
            h.update(b"[");
            len(h, items.len());
            for item in items {
                feed(h, item);
            }
        }
        Value::Object(map) => {
            h.update(b"{");
            len(h, map.len());
            let sorted = map.keys().zip(map.keys().skip(1)).all(|(a, b)| a < b);
            if sorted {
                for (k, v) in map {
                    feed_entry(h, k, v);
                }
            } else {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
                for (k, v) in entries {
                    feed_entry(h, k, v);
                }
            }
        }
    }
}

fn feed_entry(h: &mut Xxh3, key: &str, value: &Value) {
    h.update(&(key.len() as u64).to_le_bytes());
    h.update(key.as_bytes());
    feed(h, value);
}

/// A resourceVersion, compact when it is a decimal number (every API server in practice), opaque otherwise.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ResourceVersion {
    Number(u64),
    Opaque(Arc<str>),
}

impl ResourceVersion {
    pub fn parse(s: &str) -> Self {
        // A leading zero or sign would not round-trip through u64, so such values stay opaque.
        match s.parse::<u64>() {
            Ok(n) if n.to_string() == s => ResourceVersion::Number(n),
            _ => ResourceVersion::Opaque(Arc::from(s)),
        }
    }

    /// True when both are numbers and `self` is older. Opaque versions are never ordered.
    pub fn is_older_than(&self, other: &ResourceVersion) -> bool {
        matches!((self, other), (ResourceVersion::Number(a), ResourceVersion::Number(b)) if a < b)
    }
}

impl std::fmt::Display for ResourceVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ResourceVersion::Number(n) => write!(f, "{n}"),
            ResourceVersion::Opaque(s) => f.write_str(s),
        }
    }
}

/// A source as the forest keeps it: canonical form of the cleaned source, its hashes and its parsed policy.
/// Shared by `Arc` between the cache, snapshots and planned writes.
#[derive(Debug)]
pub struct SourceEntry {
    pub namespace: NsName,
    pub name: ObjName,
    /// Canonical form of the cleaned source (no TypeMeta) as compact JSON text: a `Value` tree
    /// costs several times more (every small map is a B-tree node), and only writes need the tree back.
    canonical_json: Box<str>,
    pub content_hash: ContentHash,
    /// Only meaningful for RoleBindings; 0 for other types.
    pub role_ref_hash: u64,
    pub resource_version: ResourceVersion,
    pub policy: super::selector::PropagationPolicy,
    /// The source has a deletionTimestamp: leave a same-named object here alone until it is gone.
    pub terminating: bool,
}

impl SourceEntry {
    /// Builds the entry for `source` of type `ty`: clean, canonicalize, hash, parse the policy.
    pub fn new(ty: &TypeKey, source: &Value, rules: &PropagationRules) -> Result<Self, ObjectError> {
        let meta = ObjectMeta::read(source)?;
        let cleaned = clean_source(source, rules);
        let canonical = canonical(&cleaned);
        Ok(SourceEntry {
            namespace: Arc::from(meta.namespace),
            name: Arc::from(meta.name),
            content_hash: content_hash(&canonical),
            role_ref_hash: if ty.is_role_binding() { role_ref_hash(&canonical) } else { 0 },
            resource_version: ResourceVersion::parse(meta.resource_version),
            policy: super::selector::PropagationPolicy::new(ty, &cleaned, rules),
            terminating: meta.terminating,
            canonical_json: canonical.to_string().into_boxed_str(),
        })
    }

    /// The canonical form of the cleaned source.
    pub fn canonical(&self) -> Value {
        // The text is our own serialization of a `Value`, so it always parses back.
        serde_json::from_str(&self.canonical_json).unwrap_or(Value::Null)
    }

    /// True when `other` would propagate exactly like `self` (same content, same policy), whatever their
    /// resourceVersions.
    pub fn same_propagation(&self, other: &SourceEntry) -> bool {
        self.content_hash == other.content_hash
            && self.role_ref_hash == other.role_ref_hash
            && self.policy == other.policy
            && self.terminating == other.terminating
    }
}

/// The copy of `source` to write into `dest_ns` (§6.5): the canonical cleaned source with
/// `metadata.namespace = dest_ns` and `hnc.x-k8s.io/inherited-from: <source namespace>`. No resourceVersion
/// (see [`set_resource_version`] for updates) and no TypeMeta: the writer sets the apiVersion and kind of the
/// version it writes.
pub fn build_copy(source: &SourceEntry, dest_ns: &str) -> Value {
    let mut copy = source.canonical();
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("namespace".to_owned(), Value::String(dest_ns.to_owned()));
    }
    if let Some(object_labels) = metadata_map_mut(&mut copy, "labels") {
        object_labels.insert(labels::INHERITED_FROM.to_owned(), Value::String(source.namespace.to_string()));
    }
    copy
}

/// Sets `metadata.resourceVersion`, as an update of an existing object requires.
pub fn set_resource_version(object: &mut Value, resource_version: &ResourceVersion) {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".to_owned(), Value::String(resource_version.to_string()));
    }
}
