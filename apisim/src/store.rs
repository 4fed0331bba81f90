//! The object store: every object of every type, one global resourceVersion, and a bounded history of changes
//! that watches replay from. Requests older than the history get 410 Gone, exactly as after an etcd compaction.
//!
//! One mutex guards it; each operation is a few map operations under it (no scans of other types), so the store
//! sustains thousands of writes per second on one core.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use hnc_api::validation;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use crate::error::{ApiError, Cause};
use crate::kinds::KindSchema;
use crate::managed::{self, Writer};
use crate::resources::{self, ResourceType};
use crate::schema;
use crate::selector::{FieldSelector, LabelSelector};

/// `(group, plural)`.
pub type TypeKey = (String, String);

/// A stored object with its `(namespace, name)` key.
type Entry<'a> = (&'a (String, String), &'a Arc<Value>);

/// One page of a list.
#[derive(Debug, Default)]
pub struct Page {
    /// The objects.
    pub items: Vec<Arc<Value>>,
    /// The last key returned, when more follow.
    pub last: Option<(String, String)>,
    /// How many more match after this page.
    pub remaining: usize,
}

/// Merges two iterators sorted by key (no key in both) into one sorted iterator.
fn merge_by_key<'a>(
    a: impl Iterator<Item = Entry<'a>>,
    b: impl Iterator<Item = Entry<'a>>,
) -> impl Iterator<Item = Entry<'a>> {
    let (mut a, mut b) = (a.peekable(), b.peekable());
    std::iter::from_fn(move || match (a.peek(), b.peek()) {
        (Some(x), Some(y)) if y.0 < x.0 => b.next(),
        (Some(_), _) => a.next(),
        (None, _) => b.next(),
    })
}

/// One change, as watches deliver it.
#[derive(Debug, Clone)]
pub struct Change {
    /// resourceVersion of the change.
    pub rv: u64,
    /// Type of the object.
    pub key: TypeKey,
    /// Namespace ("" for cluster-scoped).
    pub namespace: String,
    /// `ADDED`, `MODIFIED` or `DELETED`.
    pub kind: &'static str,
    /// The object after the change (before, for deletions).
    pub object: Arc<Value>,
    /// The object as stored before the change (None for `ADDED`): what a list as of an earlier
    /// resourceVersion shows.
    pub previous: Option<Arc<Value>>,
}

/// What an update did: replaced the object, or created it (a PUT of a missing object, where allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// Replaced (or left unchanged).
    Updated,
    /// Created.
    Created,
}

/// The outcome of a delete.
#[derive(Debug)]
pub enum Deleted {
    /// Removed; here is its last state.
    Gone(Value),
    /// Marked for deletion; finalizers (or namespace contents) hold it.
    Pending(Value),
}

/// All state.
pub struct Store {
    rv: u64,
    types: BTreeMap<TypeKey, Arc<ResourceType>>,
    objects: HashMap<TypeKey, BTreeMap<(String, String), Arc<Value>>>,
    history: VecDeque<Arc<Change>>,
    history_window: usize,
    /// Watches from a resourceVersion below this get 410 Gone.
    compacted_below: u64,
    events: broadcast::Sender<Arc<Change>>,
    /// Whether terminating namespaces are emptied and removed, as kube-controller-manager's namespace
    /// controller does in a cluster.
    namespace_controller: bool,
}

impl Store {
    /// A store keeping `history_window` changes for watches, with the objects every cluster starts with.
    /// Like a real cluster's, its history begins after them: a watch or exact list from resourceVersion 1
    /// gets 410 Gone.
    pub fn new(history_window: usize, namespace_controller: bool) -> Self {
        let (events, _) = broadcast::channel(65536);
        let mut store = Store {
            rv: 1,
            types: BTreeMap::new(),
            objects: HashMap::new(),
            history: VecDeque::new(),
            history_window: history_window.max(1),
            compacted_below: 0,
            events,
            namespace_controller,
        };
        let writer = Writer { manager: "kube-apiserver", api_version: "v1", subresource: None, time: &now() };
        let rbac_writer = Writer { api_version: "rbac.authorization.k8s.io/v1", ..writer.clone() };
        for t in resources::builtins() {
            store.types.insert(t.key(), t);
        }
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
            store.create(&core("namespaces"), "", obj, &writer, false).expect("bootstrap namespaces");
        }
        // As in every cluster: any authenticated user may ask what it is allowed to do.
        let rbac = |plural: &str| store.resolve("rbac.authorization.k8s.io", plural).expect("builtin");
        let (role, binding) = (rbac("clusterroles"), rbac("clusterrolebindings"));
        store
            .create(&role, "", json!({"metadata": {"name": "system:basic-user"}, "rules": [{"apiGroups": ["authorization.k8s.io"],
                "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]}]}), &rbac_writer, false)
            .expect("bootstrap role");
        store
            .create(&binding, "", json!({"metadata": {"name": "system:basic-user"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:basic-user"},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "Group", "name": "system:authenticated"}]}), &rbac_writer, false)
            .expect("bootstrap binding");
        store.compact();
        store
    }

    /// The current resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Subscribes to changes from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Change>> {
        self.events.subscribe()
    }

    /// Every registered type.
    pub fn types(&self) -> impl Iterator<Item = &Arc<ResourceType>> {
        self.types.values()
    }

    /// Finds a type by group and plural (or singular / short name, as kubectl may send).
    pub fn resolve(&self, group: &str, resource: &str) -> Option<Arc<ResourceType>> {
        self.types.get(&(group.to_owned(), resource.to_owned())).cloned()
    }

    /// Drops all history: every watch or list resuming from an older resourceVersion gets 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted_below = self.rv + 1;
    }

    /// Changes after `since` for `key` (all namespaces when `namespace` is None), or 410 if compacted.
    pub fn changes_since(
        &self,
        key: &TypeKey,
        namespace: Option<&str>,
        since: u64,
    ) -> Result<Vec<Arc<Change>>, ApiError> {
        if since + 1 < self.compacted_below {
            return Err(ApiError::expired(format!(
                "too old resource version: {since} ({})",
                self.compacted_below
            )));
        }
        Ok(self
            .history
            .iter()
            .filter(|c| c.rv > since && c.key == *key && namespace.is_none_or(|ns| c.namespace == ns))
            .cloned()
            .collect())
    }

    /// Gets one object.
    pub fn get(&self, t: &ResourceType, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&t.key())
            .and_then(|m| m.get(&(namespace.to_owned(), name.to_owned())))
            .map(|o| (**o).clone())
            .ok_or_else(|| ApiError::not_found(&t.group, &t.plural, name))
    }

    /// Lists objects as of resourceVersion `at` (now, when `None`), sorted by namespace then name, starting after
    /// `continue_after`, at most `limit`. Like the API server, every page of a paged list shows the state at the
    /// first page's resourceVersion, so a client that lists page by page and then watches from that version
    /// sees every change exactly once; the pages are rebuilt from the change history, and a list whose version
    /// has left the history gets 410 Expired (the API server's answer to a continue token older than etcd's
    /// compaction).
    #[allow(clippy::too_many_arguments)]
    pub fn list(
        &self,
        t: &ResourceType,
        namespace: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        at: Option<u64>,
        continue_after: Option<&(String, String)>,
        limit: Option<usize>,
    ) -> Result<Page, ApiError> {
        let empty = BTreeMap::new();
        let map = self.objects.get(&t.key()).unwrap_or(&empty);
        // Objects changed since `at`, with their state at `at` (None: they did not exist yet).
        let mut then: BTreeMap<(String, String), Option<Arc<Value>>> = BTreeMap::new();
        if let Some(at) = at.filter(|&at| at < self.rv) {
            if at + 1 < self.compacted_below {
                return Err(ApiError::expired(format!(
                    "The provided continue parameter is too old to display a consistent list result (resourceVersion {at})"
                )));
            }
            let key = t.key();
            // Newest first: the last state written for an object is its state before the earliest change.
            for c in self.history.iter().rev().take_while(|c| c.rv > at) {
                if c.key != key || namespace.is_some_and(|ns| ns != c.namespace) {
                    continue;
                }
                let name = c.object["metadata"]["name"].as_str().unwrap_or_default().to_owned();
                then.insert((c.namespace.clone(), name), c.previous.clone());
            }
        }
        let start = match (namespace, continue_after) {
            (_, Some(after)) => std::ops::Bound::Excluded(after.clone()),
            (Some(ns), None) => std::ops::Bound::Included((ns.to_owned(), String::new())),
            (None, None) => std::ops::Bound::Unbounded,
        };
        let bounds = (start, std::ops::Bound::Unbounded);
        let in_scope = |ns: &str| namespace.is_none_or(|want| ns == want);
        let now = map.range::<(String, String), _>(bounds.clone()).filter(|(k, _)| !then.contains_key(*k));
        let earlier =
            then.range::<(String, String), _>(bounds.clone()).filter_map(|(k, v)| Some((k, v.as_ref()?)));
        let range = merge_by_key(now, earlier);
        let mut page = Page::default();
        let mut full = false;
        for ((ns, name), obj) in range {
            if !in_scope(ns) {
                if namespace.is_some_and(|want| ns.as_str() > want) {
                    break;
                }
                continue;
            }
            if !fields.matches(ns, name) || !(labels.is_empty() || labels.matches(&labels_of(obj))) {
                continue;
            }
            if limit.is_some_and(|l| page.items.len() >= l) {
                full = true;
                break;
            }
            page.last = Some((ns.clone(), name.clone()));
            page.items.push(obj.clone());
        }
        if !full {
            page.last = None;
            return Ok(page);
        }
        // What is left after a page is counted only for unfiltered lists, as kube-apiserver (etcd counts keys,
        // it does not evaluate selectors). Counted as the keys stored now after the page, corrected by the
        // changes since `at` — a plain walk of the keys, not the merged one above: a list's pages are served
        // while writes wait for the store, and a count per page must not cost a lookup per key.
        if labels.is_empty() && fields.is_empty() {
            let after = (
                std::ops::Bound::Excluded(page.last.clone().expect("a full page has a last key")),
                std::ops::Bound::Unbounded,
            );
            let stored =
                map.range::<(String, String), _>(after.clone()).take_while(|(k, _)| in_scope(&k.0)).count();
            let mut changed_since: isize = 0;
            for ((ns, name), was) in
                then.range::<(String, String), _>(after).take_while(|(k, _)| in_scope(&k.0))
            {
                let is = map.contains_key(&(ns.clone(), name.clone()));
                changed_since += isize::from(was.is_some()) - isize::from(is);
            }
            page.remaining = stored.saturating_add_signed(changed_since);
        }
        Ok(page)
    }

    /// Creates an object (`namespace` "" for cluster-scoped types), in kube-apiserver's order: the request's
    /// namespace, then decoding (defaults, pruning), managedFields, validation, and only then existence.
    pub fn create(
        &mut self,
        t: &ResourceType,
        namespace: &str,
        mut obj: Value,
        writer: &Writer<'_>,
        dry_run: bool,
    ) -> Result<Value, ApiError> {
        if !obj.get("metadata").is_none_or(Value::is_object) || !obj.is_object() {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object with an object metadata",
            ));
        }
        if obj.get("metadata").is_none() {
            obj["metadata"] = json!({});
        }
        if let Some(body_ns) = obj.pointer("/metadata/namespace").and_then(Value::as_str)
            && !body_ns.is_empty()
            && t.namespaced
            && body_ns != namespace
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if obj.pointer("/metadata/name").and_then(Value::as_str).is_none_or(str::is_empty)
            && let Some(prefix) = obj.pointer("/metadata/generateName").and_then(Value::as_str)
        {
            let name = format!("{prefix}{}", random_suffix());
            obj["metadata"]["name"] = json!(name);
        }
        let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
        if t.namespaced {
            self.check_namespace_accepts(t, namespace, &name)?;
        }
        t.decode_defaults(&mut obj);
        let schema_errors = prune_and_check(t, &mut obj);
        managed::record(&KindSchema(t), &t.zero(), &mut obj, writer);

        let meta = obj["metadata"].as_object_mut().expect("metadata is an object");
        meta.remove("resourceVersion");
        meta.remove("deletionTimestamp");
        meta.remove("deletionGracePeriodSeconds");
        meta.insert("uid".into(), json!(uuid()));
        meta.insert("creationTimestamp".into(), json!(now()));
        if t.namespaced {
            meta.insert("namespace".into(), json!(namespace));
        } else {
            meta.remove("namespace");
        }
        if t.has_generation() {
            meta.insert("generation".into(), json!(1));
        } else {
            meta.remove("generation");
        }
        obj["apiVersion"] = json!(t.api_version());
        obj["kind"] = json!(t.kind);
        if (t.group.as_str(), t.plural.as_str()) == ("", "namespaces") {
            obj["spec"] = json!({"finalizers": ["kubernetes"]});
            obj["status"] = json!({"phase": "Active"});
        }
        if let Some(status) = crate::workloads::initial_status(&t.group, &t.kind) {
            obj["status"] = status;
        }
        self.validate(t, &obj, None, schema_errors)?;
        let key = (namespace.to_owned(), name.clone());
        if self.objects.get(&t.key()).is_some_and(|m| m.contains_key(&key)) {
            return Err(ApiError::already_exists(&t.group, &t.plural, &name));
        }
        t.go_shape(&mut obj);
        if dry_run {
            return Ok(obj);
        }
        let obj = self.commit(t, namespace, obj, "ADDED");
        if t.plural == "customresourcedefinitions" {
            return self.register_crd(obj);
        }
        Ok(obj)
    }

    /// Replaces an object. `status_only` is set for the `/status` subresource. A PUT of a missing object
    /// creates it where the kind allows that (RBAC, leases, limit ranges, events); the answer then says
    /// `created`.
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &mut self,
        t: &ResourceType,
        namespace: &str,
        name: &str,
        mut obj: Value,
        status_only: bool,
        writer: &Writer<'_>,
        dry_run: bool,
    ) -> Result<(Value, Written), ApiError> {
        if !obj.is_object() || !obj.get("metadata").is_none_or(Value::is_object) {
            return Err(ApiError::bad_request(
                "the request body must be a JSON object with an object metadata",
            ));
        }
        let current = match self.get(t, namespace, name) {
            Ok(current) => current,
            Err(e) if e.code == 404 && t.creates_on_update() && !status_only => {
                if obj.get("metadata").is_none() {
                    obj["metadata"] = json!({});
                }
                obj["metadata"]["name"] = json!(name);
                if let Some(m) = obj["metadata"].as_object_mut() {
                    m.remove("resourceVersion");
                }
                return self.create(t, namespace, obj, writer, dry_run).map(|o| (o, Written::Created));
            }
            Err(e) => return Err(e),
        };
        if obj.get("metadata").is_none() {
            obj["metadata"] = json!({});
        }
        if let Some(body_name) = obj.pointer("/metadata/name").and_then(Value::as_str)
            && body_name != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        if let Some(body_ns) = obj.pointer("/metadata/namespace").and_then(Value::as_str)
            && !body_ns.is_empty()
            && t.namespaced
            && body_ns != namespace
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        if let Some(rv) = obj.pointer("/metadata/resourceVersion").and_then(Value::as_str)
            && !rv.is_empty()
            && rv != current["metadata"]["resourceVersion"]
        {
            return Err(ApiError::conflict(
                &t.group,
                &t.plural,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            ));
        }
        t.decode_defaults(&mut obj);
        let schema_errors = prune_and_check(t, &mut obj);
        // Fields the server owns.
        for field in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "namespace",
            "generation",
            "resourceVersion",
        ] {
            match current["metadata"].get(field) {
                Some(v) => obj["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = obj["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        obj["metadata"]["name"] = json!(name);
        obj["apiVersion"] = json!(t.api_version());
        obj["kind"] = json!(t.kind);
        if status_only {
            // Only status changes through the status subresource; metadata keeps what the client sent of
            // managedFields so that the write is recorded against the stored ones.
            let mut merged = current.clone();
            merged["status"] = obj.get("status").cloned().unwrap_or(Value::Null);
            if let Some(sent) = obj.pointer("/metadata/managedFields") {
                merged["metadata"]["managedFields"] = sent.clone();
            }
            obj = merged;
        } else if t.status_subresource {
            match current.get("status") {
                Some(s) => obj["status"] = s.clone(),
                None => {
                    if let Some(m) = obj.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        if (t.group.as_str(), t.plural.as_str()) == ("", "namespaces") && obj.get("spec").is_none() {
            obj["spec"] = current.get("spec").cloned().unwrap_or(Value::Null);
        }
        let writer = Writer { subresource: status_only.then_some("status"), ..writer.clone() };
        managed::record(&KindSchema(t), &current, &mut obj, &writer);
        self.check_immutable(t, &current, &obj, name)?;
        self.validate(t, &obj, Some(&current), schema_errors)?;
        if t.bumps_generation(&current, &obj) {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(1) + 1;
            obj["metadata"]["generation"] = json!(generation);
        }
        t.go_shape(&mut obj);
        if obj == current {
            // A no-op update does not bump the resourceVersion nor emit an event (as the real server).
            return Ok((current, Written::Updated));
        }
        if dry_run {
            return Ok((obj, Written::Updated));
        }
        let deleting = obj.pointer("/metadata/deletionTimestamp").is_some();
        if deleting && finalizers_of(&obj).is_empty() && t.plural != "namespaces" {
            // The last finalizer is gone: the object goes, and the answer is its last state.
            self.remove(t, namespace, name).expect("object exists");
            if t.namespaced {
                self.finish_namespace(namespace);
            }
            let mut last = obj;
            last["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            return Ok((last, Written::Updated));
        }
        let obj = self.commit(t, namespace, obj, "MODIFIED");
        if t.plural == "customresourcedefinitions" {
            return self.register_crd(obj).map(|o| (o, Written::Updated));
        }
        if t.plural == "namespaces" && deleting {
            self.finish_namespace(name);
        }
        Ok((obj, Written::Updated))
    }

    /// Deletes an object, honouring preconditions and finalizers; namespaces terminate first.
    pub fn delete(
        &mut self,
        t: &ResourceType,
        namespace: &str,
        name: &str,
        precondition_rv: Option<&str>,
        precondition_uid: Option<&str>,
        dry_run: bool,
    ) -> Result<Deleted, ApiError> {
        let current = self.get(t, namespace, name)?;
        // rest.BeforeDelete words these conflicts with the kind, not the resource.
        if let Some(uid) = precondition_uid
            && uid != current["metadata"]["uid"]
        {
            return Err(ApiError::conflict_kind(
                &t.group,
                &t.kind,
                name,
                &format!(
                    "the UID in the precondition ({uid}) does not match the UID in record ({}). The object might have been deleted and then recreated",
                    current["metadata"]["uid"].as_str().unwrap_or_default()
                ),
            ));
        }
        if let Some(rv) = precondition_rv
            && rv != current["metadata"]["resourceVersion"]
        {
            return Err(ApiError::conflict_kind(
                &t.group,
                &t.kind,
                name,
                &format!(
                    "the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record ({}). The object might have been modified",
                    current["metadata"]["resourceVersion"].as_str().unwrap_or_default()
                ),
            ));
        }
        if dry_run {
            return Ok(Deleted::Gone(current));
        }
        if t.plural == "namespaces" {
            if current.pointer("/metadata/deletionTimestamp").is_none() {
                let mut obj = current.clone();
                obj["metadata"]["deletionTimestamp"] = json!(now());
                obj["status"] = json!({"phase": "Terminating"});
                self.commit(t, namespace, obj, "MODIFIED");
            }
            self.finish_namespace(name);
            return Ok(match self.get(t, "", name) {
                Ok(obj) => Deleted::Pending(obj),
                Err(_) => Deleted::Gone(current),
            });
        }
        if !finalizers_of(&current).is_empty() {
            if current.pointer("/metadata/deletionTimestamp").is_some() {
                return Ok(Deleted::Pending(current));
            }
            let mut obj = current;
            obj["metadata"]["deletionTimestamp"] = json!(now());
            obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            return Ok(Deleted::Pending(self.commit(t, namespace, obj, "MODIFIED")));
        }
        let removed = self.remove(t, namespace, name).expect("object exists");
        if t.plural == "customresourcedefinitions" {
            self.unregister_crd(&removed);
        }
        if t.namespaced {
            self.finish_namespace(namespace);
        }
        Ok(Deleted::Gone(removed))
    }

    /// Every object of `group`/`plural`.
    pub fn all_objects(&self, group: &str, plural: &str) -> Vec<Arc<Value>> {
        self.objects
            .get(&(group.to_owned(), plural.to_owned()))
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    /// The objects of `group`/`plural` in `namespace`.
    pub fn objects_in(&self, group: &str, plural: &str, namespace: &str) -> Vec<Arc<Value>> {
        self.objects
            .get(&(group.to_owned(), plural.to_owned()))
            .map(|m| {
                m.range((namespace.to_owned(), String::new())..)
                    .take_while(|((ns, _), _)| ns == namespace)
                    .map(|(_, o)| o.clone())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// One object of `group`/`plural`, if present.
    pub fn object(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Arc<Value>> {
        self.objects
            .get(&(group.to_owned(), plural.to_owned()))?
            .get(&(namespace.to_owned(), name.to_owned()))
            .cloned()
    }

    /// Number of objects of every type.
    pub fn object_count(&self) -> usize {
        self.objects.values().map(BTreeMap::len).sum()
    }

    fn check_namespace_accepts(&self, t: &ResourceType, namespace: &str, name: &str) -> Result<(), ApiError> {
        let ns = self
            .objects
            .get(&core_key("namespaces"))
            .and_then(|m| m.get(&(String::new(), namespace.to_owned())))
            .ok_or_else(|| ApiError::not_found("", "namespaces", namespace))?;
        if ns.pointer("/metadata/deletionTimestamp").is_some() {
            let mut e = ApiError::forbidden(
                &t.group,
                &t.plural,
                name,
                &format!(
                    "unable to create new content in namespace {namespace} because it is being terminated"
                ),
            );
            if let Some(details) = e.details.as_mut() {
                details["causes"] = json!([{"reason": "NamespaceTerminating", "field": "metadata.namespace",
                    "message": format!("namespace {namespace} is being terminated")}]);
            }
            return Err(e);
        }
        Ok(())
    }

    fn check_immutable(
        &self,
        t: &ResourceType,
        current: &Value,
        new: &Value,
        name: &str,
    ) -> Result<(), ApiError> {
        let mut causes = Vec::new();
        match (t.group.as_str(), t.plural.as_str()) {
            ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings")
                if current.get("roleRef") != new.get("roleRef") =>
            {
                let field =
                    |k: &str| new.pointer(&format!("/roleRef/{k}")).and_then(Value::as_str).unwrap_or("");
                causes.push(Cause::invalid(
                    "roleRef",
                    format!(
                        "Invalid value: rbac.RoleRef{{APIGroup:{:?}, Kind:{:?}, Name:{:?}}}: cannot change roleRef",
                        field("apiGroup"),
                        field("kind"),
                        field("name")
                    ),
                ));
            }
            ("", "secrets") if current.get("type") != new.get("type") => causes.push(Cause::invalid(
                "type",
                format!("Invalid value: {}: field is immutable", new.get("type").unwrap_or(&Value::Null)),
            )),
            _ => {}
        }
        if current.get("immutable") == Some(&json!(true))
            && (current.get("data") != new.get("data") || current.get("binaryData") != new.get("binaryData"))
        {
            causes.push(Cause::forbidden(
                "data",
                "Forbidden: field is immutable when `immutable` is set".into(),
            ));
        }
        // ValidateObjectMetaUpdate: a terminating object takes no new finalizers (kube-apiserver reports this
        // cause twice; the message shows it once).
        if current.pointer("/metadata/deletionTimestamp").is_some() {
            let before = finalizers_of(current);
            let added: Vec<String> = finalizers_of(new)
                .into_iter()
                .filter(|f| !before.contains(f))
                .map(|f| format!("{f:?}"))
                .collect();
            if !added.is_empty() {
                let message = format!(
                    "Forbidden: no new finalizers can be added if the object is being deleted, found new finalizers []string{{{}}}",
                    added.join(", ")
                );
                causes.push(Cause::forbidden("metadata.finalizers", message.clone()));
                causes.push(Cause::forbidden("metadata.finalizers", message));
            }
        }
        if causes.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_causes(&t.kind, &t.group, name, causes))
        }
    }

    /// Validation after defaulting: the name, labels and annotations, required fields of built-ins, and the
    /// custom resource schema errors found while decoding.
    fn validate(
        &self,
        t: &ResourceType,
        obj: &Value,
        current: Option<&Value>,
        schema_errors: Vec<Cause>,
    ) -> Result<(), ApiError> {
        let name = obj.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default().to_owned();
        let mut causes = Vec::new();
        if current.is_none() {
            if name.is_empty() {
                causes.push(Cause {
                    reason: "FieldValueRequired",
                    field: "metadata.name".into(),
                    message: "Required value: name or generateName is required".into(),
                });
            } else {
                let name_errors = match (t.group.as_str(), t.plural.as_str()) {
                    ("", "namespaces") => validation::dns1123_label_errors(&name),
                    // RBAC objects only need to be valid path segments (e.g. `system:basic-user`).
                    ("rbac.authorization.k8s.io", _) => validation::path_segment_errors(&name),
                    _ => validation::dns1123_subdomain_errors(&name),
                };
                for e in name_errors {
                    causes.push(Cause::invalid("metadata.name", format!("Invalid value: \"{name}\": {e}")));
                }
            }
        }
        if let Some(meta) = obj.get("metadata").and_then(Value::as_object) {
            for field in ["labels", "annotations"] {
                for (k, v) in meta.get(field).and_then(Value::as_object).into_iter().flatten() {
                    for e in validation::qualified_name_errors(k) {
                        causes.push(Cause::invalid(
                            &format!("metadata.{field}"),
                            format!("Invalid value: \"{k}\": {e}"),
                        ));
                    }
                    if field == "labels" {
                        for e in validation::label_value_errors(v.as_str().unwrap_or("")) {
                            causes
                                .push(Cause::invalid("metadata.labels", format!("Invalid value: {v}: {e}")));
                        }
                    }
                }
            }
        }
        if matches!(
            (t.group.as_str(), t.plural.as_str()),
            ("rbac.authorization.k8s.io", "rolebindings" | "clusterrolebindings")
        ) && obj.get("roleRef").is_none_or(Value::is_null)
        {
            causes.push(Cause {
                reason: "FieldValueRequired",
                field: "roleRef".into(),
                message: "Required value".into(),
            });
        }
        // A status update keeps the stored spec, which was validated when it was written.
        if (t.group.as_str(), t.plural.as_str()) == ("", "resourcequotas") {
            causes.extend(crate::quota::validate_spec(obj));
        }
        causes.extend(crate::workloads::validate(&t.group, &t.kind, obj));
        causes.extend(schema_errors);
        if causes.is_empty() {
            Ok(())
        } else {
            Err(ApiError::invalid_causes(&t.kind, &t.group, &name, causes))
        }
    }

    /// Stores `obj` with a new resourceVersion and records the change.
    fn commit(&mut self, t: &ResourceType, namespace: &str, mut obj: Value, kind: &'static str) -> Value {
        self.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let name = obj["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let stored = Arc::new(obj);
        let previous =
            self.objects.entry(t.key()).or_default().insert((namespace.to_owned(), name), stored.clone());
        self.record(t, namespace, kind, stored.clone(), previous);
        (*stored).clone()
    }

    fn remove(&mut self, t: &ResourceType, namespace: &str, name: &str) -> Option<Value> {
        let obj = self.objects.get_mut(&t.key())?.remove(&(namespace.to_owned(), name.to_owned()))?;
        self.rv += 1;
        let mut last = (*obj).clone();
        last["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        self.record(t, namespace, "DELETED", Arc::new(last.clone()), Some(obj));
        Some(last)
    }

    fn record(
        &mut self,
        t: &ResourceType,
        namespace: &str,
        kind: &'static str,
        object: Arc<Value>,
        previous: Option<Arc<Value>>,
    ) {
        let change = Arc::new(Change {
            rv: self.rv,
            key: t.key(),
            namespace: namespace.to_owned(),
            kind,
            object,
            previous,
        });
        self.history.push_back(change.clone());
        while self.history.len() > self.history_window {
            if let Some(dropped) = self.history.pop_front() {
                self.compacted_below = dropped.rv + 1;
            }
        }
        let _ = self.events.send(change);
    }

    /// Drives a terminating namespace: deletes its contents (objects with finalizers wait), and removes it once
    /// it is empty.
    fn finish_namespace(&mut self, namespace: &str) {
        if !self.namespace_controller {
            return;
        }
        let ns_type = core("namespaces");
        let Ok(ns) = self.get(&ns_type, "", namespace) else { return };
        if ns.pointer("/metadata/deletionTimestamp").is_none() {
            return;
        }
        let keys: Vec<TypeKey> = self.objects.keys().cloned().collect();
        let mut remaining = 0;
        for key in keys {
            let Some(t) = self.types.get(&key).cloned() else { continue };
            if !t.namespaced {
                continue;
            }
            let names: Vec<String> = self
                .objects
                .get(&key)
                .map(|m| {
                    m.range((namespace.to_owned(), String::new())..)
                        .take_while(|((ns, _), _)| ns == namespace)
                        .map(|((_, n), _)| n.clone())
                        .collect()
                })
                .unwrap_or_default();
            for name in names {
                let current = self.get(&t, namespace, &name).expect("listed");
                if finalizers_of(&current).is_empty() {
                    self.remove(&t, namespace, &name);
                } else {
                    remaining += 1;
                    if current.pointer("/metadata/deletionTimestamp").is_none() {
                        let mut obj = current;
                        obj["metadata"]["deletionTimestamp"] = json!(now());
                        self.commit(&t, namespace, obj, "MODIFIED");
                    }
                }
            }
        }
        if remaining == 0 && finalizers_of(&ns).is_empty() {
            self.remove(&ns_type, "", namespace);
        }
    }

    fn register_crd(&mut self, crd: Value) -> Result<Value, ApiError> {
        let spec = &crd["spec"];
        let group = spec["group"].as_str().unwrap_or_default().to_owned();
        let names = &spec["names"];
        let plural = names["plural"].as_str().unwrap_or_default().to_owned();
        let name = crd["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let served: Vec<&Value> = spec["versions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|v| v["served"] == json!(true))
            .collect();
        let storage = served.iter().find(|v| v["storage"] == json!(true)).or(served.first()).copied();
        let Some(storage) = storage else {
            return Err(ApiError::invalid(
                "CustomResourceDefinition",
                "apiextensions.k8s.io",
                &name,
                "spec.versions",
                "Invalid value: must have exactly one version marked as storage version",
            ));
        };
        if name != format!("{plural}.{group}") {
            return Err(ApiError::invalid(
                "CustomResourceDefinition",
                "apiextensions.k8s.io",
                &name,
                "metadata.name",
                &format!("Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"),
            ));
        }
        let mut versions: Vec<String> = vec![storage["name"].as_str().unwrap_or_default().to_owned()];
        versions.extend(
            served
                .iter()
                .filter_map(|v| v["name"].as_str())
                .filter(|v| *v != versions[0])
                .map(str::to_owned)
                .collect::<Vec<_>>(),
        );
        let t = ResourceType {
            group: group.clone(),
            versions,
            plural: plural.clone(),
            singular: names["singular"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| names["kind"].as_str().unwrap_or_default().to_ascii_lowercase()),
            kind: names["kind"].as_str().unwrap_or_default().to_owned(),
            namespaced: spec["scope"] == json!("Namespaced"),
            short_names: names["shortNames"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect(),
            status_subresource: storage.pointer("/subresources/status").is_some(),
            // The CRD discovery controller lists custom resources' verbs in this order.
            verbs: vec!["delete", "deletecollection", "get", "list", "patch", "create", "update", "watch"],
            crd: Some((
                name.clone(),
                storage
                    .pointer("/schema/openAPIV3Schema")
                    .cloned()
                    .unwrap_or(json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})),
            )),
        };
        self.types.insert((group, plural), Arc::new(t));
        let mut obj = crd.clone();
        obj["status"] = json!({
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": now()},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": now()}
            ],
            "acceptedNames": names.clone(),
            "storedVersions": [storage["name"].clone()],
        });
        if obj.get("status") == crd.get("status") {
            return Ok(crd);
        }
        let crd_type = self.resolve("apiextensions.k8s.io", "customresourcedefinitions").expect("builtin");
        Ok(self.commit(&crd_type, "", obj, "MODIFIED"))
    }

    fn unregister_crd(&mut self, crd: &Value) {
        let key = (
            crd["spec"]["group"].as_str().unwrap_or_default().to_owned(),
            crd["spec"]["names"]["plural"].as_str().unwrap_or_default().to_owned(),
        );
        let Some(t) = self.types.remove(&key) else { return };
        let names: Vec<(String, String)> =
            self.objects.get(&key).map(|m| m.keys().cloned().collect()).unwrap_or_default();
        for (ns, name) in names {
            self.remove(&t, &ns, &name);
        }
        self.objects.remove(&key);
    }
}

/// Drops unknown fields as decoding does — a custom resource by its CRD's structural schema, a built-in kind by
/// its OpenAPI schema — and returns a custom resource's schema violations, which are reported with the other
/// validation errors.
fn prune_and_check(t: &ResourceType, obj: &mut Value) -> Vec<Cause> {
    match &t.crd {
        Some((_, schema)) => schema::validate(schema, obj),
        None => {
            crate::openapi::prune_unknown_fields(t, obj);
            Vec::new()
        }
    }
}

/// A core type (panics on unknown names; for built-ins only).
fn core(plural: &str) -> ResourceType {
    resources::builtins()
        .into_iter()
        .find(|t| t.group.is_empty() && t.plural == plural)
        .map(|t| (*t).clone())
        .expect("core type")
}

fn core_key(plural: &str) -> TypeKey {
    (String::new(), plural.to_owned())
}

/// `metadata.labels` as a map.
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned())).collect())
        .unwrap_or_default()
}

fn finalizers_of(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|f| f.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

/// RFC 3339 UTC with second precision, as metav1.Time.
pub fn now() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn uuid() -> String {
    let b: [u8; 16] = rand::random();
    format!(
        "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-4{:01x}{:02x}-{:01x}{:01x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
        b[0],
        b[1],
        b[2],
        b[3],
        b[4],
        b[5],
        b[6] & 0x0f,
        b[7],
        8 | (b[8] & 0x3),
        b[8] >> 4,
        b[9],
        b[10],
        b[11],
        b[12],
        b[13],
        b[14],
        b[15]
    )
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    (0..5).map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char).collect()
}
