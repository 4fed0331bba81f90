//! `metadata.managedFields` as kube-apiserver keeps them for Update operations (every POST, PUT and PATCH
//! that is not server-side apply).
//!
//! Each write is attributed to a *manager* (the `fieldManager` parameter, else the User-Agent up to its first
//! `/`). The fields the write changed — compared with the stored object, or with the kind's zero value on
//! create — join that manager's set and leave every other manager's; fields it removed leave every set. An
//! entry whose set becomes empty is dropped, and an object no manager owns anything of has no
//! `managedFields` at all. Sets are serialized as `FieldsV1`:
//!
//! ```text
//!  {"f:metadata": {"f:labels": {".": {}, "f:team": {}}},      f:<field>       a field of a map or struct
//!   "f:rules": {},                                            k:{"uid":"…"}   an element of a keyed list
//!   "f:metadata": {"f:finalizers": {"v:\"x/y\"": {}}}}        v:"…"           an element of a set
//!                                                             "."             the node itself is a member
//! ```
//!
//! Granularity follows the kind's schema: lists are atomic (one leaf) unless the schema says `set` or `map`,
//! and a few structs are atomic (a RoleBinding's `roleRef`, label selectors). Built-in kinds take that from
//! the table in [`crate::kinds`], custom resources from their CRD's `x-kubernetes-list-type`,
//! `x-kubernetes-list-map-keys` and `x-kubernetes-map-type`. TypeMeta and the metadata the server owns
//! (name, namespace, uid, resourceVersion, ...) are never in a set, as kube-apiserver strips them.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

/// How a node of an object is tracked.
#[derive(Debug, Clone, PartialEq)]
pub enum Shape {
    /// One leaf: scalars, atomic lists and atomic structs.
    Atomic,
    /// A map or struct whose fields are tracked one by one.
    Granular,
    /// A list of scalars tracked element by element (`v:`).
    Set,
    /// A list of structs keyed by these fields (`k:`).
    Keyed(Vec<String>),
}

/// Answers the shape of the node at a path (field names; `*` for a list element).
pub trait Schema {
    /// The shape of the node at `path`, whose current value is `value`.
    fn shape(&self, path: &[&str], value: &Value) -> Shape;
}

/// A set of field paths in `FieldsV1`'s shape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FieldSet {
    member: bool,
    children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    /// True when no path is a member.
    pub fn is_empty(&self) -> bool {
        !self.member && self.children.values().all(FieldSet::is_empty)
    }

    fn child(&mut self, key: String) -> &mut FieldSet {
        self.children.entry(key).or_default()
    }

    /// Adds every member of `other`.
    pub fn union(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (k, v) in &other.children {
            self.child(k.clone()).union(v);
        }
    }

    /// Removes every member of `other`.
    pub fn subtract(&mut self, other: &FieldSet) {
        if other.member {
            self.member = false;
        }
        for (k, v) in &other.children {
            if let Some(mine) = self.children.get_mut(k) {
                mine.subtract(v);
                if mine.is_empty() {
                    self.children.remove(k);
                }
            }
        }
    }

    /// Parses `FieldsV1` JSON; None when it is not of that shape.
    pub fn from_json(value: &Value) -> Option<FieldSet> {
        let map = value.as_object()?;
        let mut set = FieldSet { member: map.is_empty(), children: BTreeMap::new() };
        for (k, v) in map {
            if k == "." {
                set.member = true;
            } else {
                set.children.insert(k.clone(), FieldSet::from_json(v)?);
            }
        }
        Some(set)
    }

    /// `FieldsV1` JSON of the children (the root itself is never a member).
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        if self.member && !self.children.is_empty() {
            out.insert(".".into(), json!({}));
        }
        for (k, v) in &self.children {
            if !v.is_empty() {
                out.insert(k.clone(), v.to_json());
            }
        }
        Value::Object(out)
    }

    fn strip(&mut self) {
        for top in ["f:apiVersion", "f:kind"] {
            self.children.remove(top);
        }
        if let Some(meta) = self.children.get_mut("f:metadata") {
            meta.member = false;
            for owned in [
                "name",
                "namespace",
                "creationTimestamp",
                "selfLink",
                "uid",
                "clusterName",
                "generation",
                "managedFields",
                "resourceVersion",
            ] {
                meta.children.remove(&format!("f:{owned}"));
            }
            if meta.is_empty() {
                self.children.remove("f:metadata");
            }
        }
    }
}

/// The paths a write changed and removed, going from `old` to `new`.
#[derive(Debug, Default)]
pub struct Changes {
    /// Added or modified: they join the writer's set.
    pub changed: FieldSet,
    /// Gone: they leave every set.
    pub removed: FieldSet,
}

/// Compares two objects under `schema` (their managedFields are not compared).
pub fn diff(schema: &dyn Schema, old: &Value, new: &Value) -> Changes {
    let mut changes = Changes::default();
    let mut path = Vec::new();
    walk(
        schema,
        &mut path,
        present(Some(old)),
        present(Some(new)),
        &mut changes.changed,
        &mut changes.removed,
    );
    changes.changed.strip();
    changes.removed.strip();
    changes
}

/// Go decodes a JSON null like an absent field.
fn present(v: Option<&Value>) -> Option<&Value> {
    v.filter(|v| !v.is_null())
}

fn walk<'a>(
    schema: &dyn Schema,
    path: &mut Vec<&'a str>,
    old: Option<&'a Value>,
    new: Option<&'a Value>,
    changed: &mut FieldSet,
    removed: &mut FieldSet,
) {
    let Some(shape_of) = new.or(old) else { return };
    let shape = schema.shape(path, shape_of);
    match (old, new) {
        (None, None) => {}
        (Some(o), Some(n)) if o == n => {}
        (None, Some(n)) => {
            changed.member = true;
            descend(schema, path, &shape, None, n, changed, removed);
        }
        (Some(o), None) => {
            removed.member = true;
            let mut ignored = FieldSet::default();
            descend(schema, path, &shape, None, o, removed, &mut ignored);
        }
        (Some(o), Some(n)) => {
            let same_kind =
                matches!((o, n), (Value::Object(_), Value::Object(_)) | (Value::Array(_), Value::Array(_)));
            if shape == Shape::Atomic || !same_kind {
                changed.member = true;
            } else {
                descend(schema, path, &shape, Some(o), n, changed, removed);
            }
        }
    }
}

/// Recurses into the children of a granular node. With `old` None, every child of `new` is new; `removed`
/// then collects nothing (callers pass a scratch set).
fn descend<'a>(
    schema: &dyn Schema,
    path: &mut Vec<&'a str>,
    shape: &Shape,
    old: Option<&'a Value>,
    new: &'a Value,
    changed: &mut FieldSet,
    removed: &mut FieldSet,
) {
    match (shape, new) {
        (Shape::Granular, Value::Object(fields)) => {
            let old_fields = old.and_then(Value::as_object);
            let mut keys: Vec<&'a String> = fields.keys().collect();
            if let Some(of) = old_fields {
                keys.extend(of.keys().filter(|k| !fields.contains_key(*k)));
            }
            for k in keys {
                // The list itself is not a field anyone owns.
                if k == "managedFields" && path.as_slice() == ["metadata"] {
                    continue;
                }
                let key = format!("f:{k}");
                path.push(k.as_str());
                let (mut c, mut r) = (FieldSet::default(), FieldSet::default());
                walk(
                    schema,
                    path,
                    present(old_fields.and_then(|of| of.get(k))),
                    present(fields.get(k)),
                    &mut c,
                    &mut r,
                );
                path.pop();
                if !c.is_empty() {
                    changed.child(key.clone()).union(&c);
                }
                if !r.is_empty() {
                    removed.child(key).union(&r);
                }
            }
        }
        (Shape::Set, Value::Array(items)) => {
            let old_items = old.and_then(Value::as_array);
            for item in items {
                if old_items.is_none_or(|o| !o.contains(item)) {
                    changed.child(format!("v:{item}")).member = true;
                }
            }
            for item in old_items.into_iter().flatten() {
                if !items.contains(item) {
                    removed.child(format!("v:{item}")).member = true;
                }
            }
        }
        (Shape::Keyed(keys), Value::Array(items)) => {
            let key_of = |item: &Value| {
                let mut k = Map::new();
                for name in keys {
                    if let Some(v) = item.get(name) {
                        k.insert(name.clone(), v.clone());
                    }
                }
                format!("k:{}", Value::Object(k))
            };
            let old_items: Vec<(String, &'a Value)> =
                old.and_then(Value::as_array).into_iter().flatten().map(|o| (key_of(o), o)).collect();
            path.push("*");
            for item in items {
                let key = key_of(item);
                let before = old_items.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
                let (mut c, mut r) = (FieldSet::default(), FieldSet::default());
                walk(schema, path, before, Some(item), &mut c, &mut r);
                if !c.is_empty() {
                    changed.child(key.clone()).union(&c);
                }
                if !r.is_empty() {
                    removed.child(key).union(&r);
                }
            }
            for (key, item) in &old_items {
                if !items.iter().any(|i| key_of(i) == *key) {
                    let (mut r, mut ignored) = (FieldSet::default(), FieldSet::default());
                    walk(schema, path, Some(item), None, &mut ignored, &mut r);
                    removed.child(key.clone()).union(&r);
                }
            }
            path.pop();
        }
        // Scalars, atomic nodes, and a shape the value does not have: the node alone.
        _ => {}
    }
}

/// Who made a write, as kube-apiserver records it.
#[derive(Debug, Clone)]
pub struct Writer<'a> {
    /// Manager name.
    pub manager: &'a str,
    /// apiVersion of the request.
    pub api_version: &'a str,
    /// `status` for writes to the status subresource.
    pub subresource: Option<&'a str>,
    /// RFC 3339 time of the write.
    pub time: &'a str,
}

/// The manager of a request: `fieldManager`, else the User-Agent up to its first `/`, as kube-apiserver
/// names it.
pub fn manager_name(field_manager: Option<&str>, user_agent: Option<&str>) -> String {
    match field_manager.filter(|m| !m.is_empty()) {
        Some(m) => m.to_owned(),
        None => user_agent.unwrap_or("").split('/').next().unwrap_or("").chars().take(128).collect(),
    }
}

/// Sets `new`'s managedFields after a write from `old` (the stored object; the kind's zero value on create)
/// to `new` by `writer`. A client may replace the list by sending a different one; otherwise the stored one
/// is the starting point.
pub fn record(schema: &dyn Schema, old: &Value, new: &mut Value, writer: &Writer<'_>) {
    let stored = old.pointer("/metadata/managedFields").cloned().unwrap_or(Value::Null);
    let sent = new.pointer("/metadata/managedFields").cloned();
    let base = match sent {
        Some(list) if list != stored && list.is_array() => list,
        _ => stored,
    };
    let mut entries: Vec<(Map<String, Value>, FieldSet)> = base
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let e = e.as_object()?.clone();
            let set = FieldSet::from_json(e.get("fieldsV1").unwrap_or(&json!({})))?;
            Some((e, set))
        })
        .collect();

    let changes = diff(schema, old, new);
    let is_writer = |e: &Map<String, Value>| {
        e.get("manager").and_then(Value::as_str) == Some(writer.manager)
            && e.get("operation").and_then(Value::as_str) == Some("Update")
            && e.get("apiVersion").and_then(Value::as_str) == Some(writer.api_version)
            && e.get("subresource").and_then(Value::as_str) == writer.subresource
    };
    let mut found = false;
    for (entry, set) in &mut entries {
        if is_writer(entry) {
            found = true;
            let before = set.clone();
            set.union(&changes.changed);
            set.subtract(&changes.removed);
            if *set != before {
                entry.insert("time".into(), json!(writer.time));
            }
        } else {
            set.subtract(&changes.changed);
            set.subtract(&changes.removed);
        }
    }
    if !found && !changes.changed.is_empty() {
        let mut entry = Map::new();
        entry.insert("manager".into(), json!(writer.manager));
        entry.insert("operation".into(), json!("Update"));
        entry.insert("apiVersion".into(), json!(writer.api_version));
        entry.insert("time".into(), json!(writer.time));
        entry.insert("fieldsType".into(), json!("FieldsV1"));
        if let Some(sub) = writer.subresource {
            entry.insert("subresource".into(), json!(sub));
        }
        entries.push((entry, changes.changed));
    }
    entries.retain(|(_, set)| !set.is_empty());
    // As kube-apiserver orders them: by operation, then time, then manager.
    entries.sort_by(|(a, _), (b, _)| {
        let field =
            |e: &Map<String, Value>, k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        (field(a, "operation"), field(a, "time"), field(a, "manager")).cmp(&(
            field(b, "operation"),
            field(b, "time"),
            field(b, "manager"),
        ))
    });
    let list: Vec<Value> = entries
        .into_iter()
        .map(|(mut e, set)| {
            e.insert("fieldsV1".into(), set.to_json());
            Value::Object(e)
        })
        .collect();
    if let Some(meta) = new.get_mut("metadata").and_then(Value::as_object_mut) {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lists atomic except `metadata.finalizers` (a set) and `items` (keyed by name).
    struct Plain;

    impl Schema for Plain {
        fn shape(&self, path: &[&str], value: &Value) -> Shape {
            match (path, value) {
                (["metadata", "finalizers"], _) => Shape::Set,
                (["items"], _) => Shape::Keyed(vec!["name".into()]),
                (_, Value::Object(_)) => Shape::Granular,
                _ => Shape::Atomic,
            }
        }
    }

    fn writer(manager: &str) -> Writer<'_> {
        Writer { manager, api_version: "v1", subresource: None, time: "2026-01-01T00:00:00Z" }
    }

    fn fields(obj: &Value, i: usize) -> Value {
        obj["metadata"]["managedFields"][i]["fieldsV1"].clone()
    }

    #[test]
    fn create_owns_what_it_set_but_not_the_metadata_the_server_owns() {
        let zero = json!({"metadata": {"creationTimestamp": null}});
        let mut obj = json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "namespace": "n", "labels": {"a": "1"}, "finalizers": ["x/y"]},
            "data": {"k": "v"}, "list": [1, 2]});
        record(&Plain, &zero, &mut obj, &writer("kubectl"));
        assert_eq!(
            fields(&obj, 0),
            json!({"f:data": {".": {}, "f:k": {}}, "f:list": {},
                   "f:metadata": {"f:finalizers": {".": {}, "v:\"x/y\"": {}}, "f:labels": {".": {}, "f:a": {}}}})
        );
        assert_eq!(obj["metadata"]["managedFields"][0]["manager"], "kubectl");
        assert_eq!(obj["metadata"]["managedFields"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn a_second_manager_takes_the_fields_it_changes_and_removal_empties_an_entry() {
        let zero = json!({});
        let mut v1 = json!({"metadata": {"name": "c"}, "data": {"k": "v", "j": "w"}});
        record(&Plain, &zero, &mut v1, &writer("alice"));
        let mut v2 = v1.clone();
        v2["data"]["k"] = json!("changed");
        record(&Plain, &v1, &mut v2, &writer("bob"));
        assert_eq!(fields(&v2, 0), json!({"f:data": {".": {}, "f:j": {}}}), "alice keeps j");
        assert_eq!(fields(&v2, 1), json!({"f:data": {"f:k": {}}}), "bob took k");
        let mut v3 = v2.clone();
        v3["data"].as_object_mut().unwrap().remove("k");
        record(&Plain, &v2, &mut v3, &writer("alice"));
        assert_eq!(v3["metadata"]["managedFields"].as_array().unwrap().len(), 1, "bob owns nothing any more");
        let mut v4 = v3.clone();
        v4.as_object_mut().unwrap().remove("data");
        record(&Plain, &v3, &mut v4, &writer("alice"));
        assert!(v4["metadata"].get("managedFields").is_none(), "no owner, no managedFields");
    }

    #[test]
    fn keyed_lists_track_elements_and_unchanged_writes_keep_the_time() {
        let zero = json!({});
        let mut v1 = json!({"metadata": {}, "items": [{"name": "a", "x": 1}]});
        record(&Plain, &zero, &mut v1, &writer("m"));
        assert_eq!(
            fields(&v1, 0),
            json!({"f:items": {".": {}, "k:{\"name\":\"a\"}": {".": {}, "f:name": {}, "f:x": {}}}})
        );
        let mut again = v1.clone();
        record(&Plain, &v1, &mut again, &Writer { time: "2027-01-01T00:00:00Z", ..writer("m") });
        assert_eq!(again, v1, "a write that changes nothing changes no managedFields");
    }

    #[test]
    fn fields_v1_round_trips() {
        let j = json!({"f:a": {".": {}, "f:b": {}}, "f:c": {}});
        assert_eq!(FieldSet::from_json(&j).unwrap().to_json(), j);
        assert!(FieldSet::from_json(&json!({"f:a": 1})).is_none());
    }

    #[test]
    fn manager_names() {
        assert_eq!(manager_name(None, Some("kubectl/v1.33.0 (linux/amd64)")), "kubectl");
        assert_eq!(manager_name(Some("hnc"), Some("kube-rs/1")), "hnc");
        assert_eq!(manager_name(None, None), "");
    }
}
