//! Builders for the validators' unit tests: a small forest (`Forest::new().ns("a").child("b", "a")`),
//! sources, active types, a scripted API server, and admission requests from JSON objects.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::future::BoxFuture;
use hnc_api::SyncMode;
use hnc_shard::TreeIndex;
use hnc_shard::propagation::{PropagationRules, SourceNames, TypeKey};
use hnc_shard::tree::{AnchoredRegex, NamespacePolicy, ObservedAnchor, ObservedHierarchy, ObservedNamespace};
use k8s_openapi::api::authentication::v1::UserInfo;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, AdmissionReview};
use parking_lot::Mutex;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::Context;
use super::hncconfig::DiscoverySource;
use super::server_checks::{NamespaceState, ServerChecks};
use crate::config::resolve::{ActiveType, Discovered, DiscoveredResource};

/// A requester.
pub struct User {
    pub name: &'static str,
    pub groups: &'static [&'static str],
}

/// An ordinary user.
pub const USER: &User = &User { name: "alice", groups: &["system:authenticated"] };

/// One of HNC's service accounts.
pub const HNC_SA: &User = &User {
    name: "system:serviceaccount:hnc-system:hnc-controller",
    groups: &["system:serviceaccounts", "system:serviceaccounts:hnc-system", "system:authenticated"],
};

/// The API server as a validator sees it, scripted.
#[derive(Default)]
pub struct FakeServer {
    admins: Mutex<BTreeSet<(String, String)>>,
    namespaces: Mutex<BTreeMap<String, NamespaceState>>,
    failure: Mutex<Option<String>>,
    reviews: Mutex<Vec<String>>,
}

impl FakeServer {
    /// Makes `user` an admin of `namespace`.
    pub fn grant(&self, user: &str, namespace: &str) {
        self.admins.lock().insert((user.to_owned(), namespace.to_owned()));
    }

    /// What the server says about `namespace` (absent unless set).
    pub fn set_namespace(&self, namespace: &str, state: NamespaceState) {
        self.namespaces.lock().insert(namespace.to_owned(), state);
    }

    /// Every later call fails with `message`.
    pub fn fail_with(&self, message: &str) {
        *self.failure.lock() = Some(message.to_owned());
    }

    /// `user@namespace` of every access review so far.
    pub fn reviews(&self) -> Vec<String> {
        self.reviews.lock().clone()
    }
}

impl ServerChecks for FakeServer {
    fn is_admin<'a>(&'a self, user: &'a UserInfo, namespace: &'a str) -> BoxFuture<'a, Result<bool, String>> {
        let name = user.username.clone().unwrap_or_default();
        self.reviews.lock().push(format!("{name}@{namespace}"));
        let result = match self.failure.lock().clone() {
            Some(message) => Err(message),
            None => Ok(self.admins.lock().contains(&(name, namespace.to_owned()))),
        };
        Box::pin(async move { result })
    }

    fn namespace_state<'a>(&'a self, namespace: &'a str) -> BoxFuture<'a, Result<NamespaceState, String>> {
        let result = match self.failure.lock().clone() {
            Some(message) => Err(message),
            None => Ok(self.namespaces.lock().get(namespace).copied().unwrap_or(NamespaceState::Absent)),
        };
        Box::pin(async move { result })
    }
}

struct StaticDiscovery(Arc<Discovered>);

impl DiscoverySource for StaticDiscovery {
    fn discovered(&self, _refresh: bool) -> BoxFuture<'_, Result<(Arc<Discovered>, bool), String>> {
        let d = self.0.clone();
        Box::pin(async move { Ok((d, true)) })
    }
}

fn resource(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> DiscoveredResource {
    DiscoveredResource::new(group, version, kind, plural, namespaced)
}

/// A cluster's worth of test state. Build, then call [`Forest::context`].
pub struct Forest {
    excluded: Vec<String>,
    managed_labels: Vec<AnchoredRegex>,
    namespaces: BTreeMap<String, ObservedNamespace>,
    hierarchies: BTreeMap<String, ObservedHierarchy>,
    anchors: Vec<(String, String)>,
    sources: Vec<Value>,
    active: Vec<ActiveType>,
    /// The scripted API server.
    pub server: Arc<FakeServer>,
}

impl Forest {
    /// An empty cluster where Role and RoleBinding propagate.
    pub fn new() -> Self {
        let rbac = "rbac.authorization.k8s.io";
        let mut forest = Forest {
            excluded: Vec::new(),
            managed_labels: Vec::new(),
            namespaces: BTreeMap::new(),
            hierarchies: BTreeMap::new(),
            anchors: Vec::new(),
            sources: Vec::new(),
            active: Vec::new(),
            server: Arc::new(FakeServer::default()),
        };
        forest = forest.active(rbac, "v1", "Role", "roles", SyncMode::Propagate);
        forest.active(rbac, "v1", "RoleBinding", "rolebindings", SyncMode::Propagate)
    }

    /// Excludes `name` from HNC.
    pub fn excluded(mut self, name: &str) -> Self {
        self.excluded.push(name.to_owned());
        self
    }

    /// Allows managed labels matching `pattern`.
    pub fn managed_label(mut self, pattern: &str) -> Self {
        self.managed_labels.push(AnchoredRegex::new(pattern).unwrap());
        self
    }

    /// A namespace.
    pub fn ns(mut self, name: &str) -> Self {
        let mut observed = ObservedNamespace::default();
        observed.labels.insert("hnc.x-k8s.io/included-namespace".into(), "true".into());
        self.namespaces.insert(name.to_owned(), observed);
        self
    }

    /// A namespace being deleted.
    pub fn deleting_ns(mut self, name: &str) -> Self {
        self = self.ns(name);
        self.namespaces.get_mut(name).unwrap().deleting = true;
        self
    }

    /// A label on a namespace.
    pub fn label(mut self, name: &str, key: &str, value: &str) -> Self {
        self.namespaces
            .get_mut(name)
            .expect("label an existing namespace")
            .labels
            .insert(key.into(), value.into());
        self
    }

    fn hierarchy(&mut self, name: &str) -> &mut ObservedHierarchy {
        self.hierarchies.entry(name.to_owned()).or_default()
    }

    /// A full namespace whose HierarchyConfiguration names `parent`.
    pub fn child(mut self, name: &str, parent: &str) -> Self {
        self = self.ns(name);
        self.hierarchy(name).spec.parent = Some(parent.to_owned());
        self
    }

    /// A namespace whose parent does not exist.
    pub fn orphan(self, name: &str, missing_parent: &str) -> Self {
        self.child(name, missing_parent)
    }

    /// A subnamespace of `parent`, with its anchor.
    pub fn sub(mut self, name: &str, parent: &str) -> Self {
        self = self.child(name, parent);
        let ns = self.namespaces.get_mut(name).unwrap();
        ns.annotations.insert("hnc.x-k8s.io/subnamespace-of".into(), parent.into());
        self.anchors.push((parent.to_owned(), name.to_owned()));
        self
    }

    /// A namespace managed by an external tool, carrying `labels`.
    pub fn external(mut self, name: &str, manager: &str, labels: &[(&str, &str)]) -> Self {
        self = self.ns(name);
        let ns = self.namespaces.get_mut(name).unwrap();
        ns.annotations.insert("hnc.x-k8s.io/managed-by".into(), manager.into());
        ns.labels.extend(labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        self
    }

    /// Sets `allowCascadingDeletion` on `name`.
    pub fn allow_cascading(mut self, name: &str) -> Self {
        self.hierarchy(name).spec.allow_cascading_deletion = Some(true);
        self
    }

    /// A source object `ty` `namespace/name` carrying `annotations`.
    pub fn source(mut self, ty: &TypeKey, namespace: &str, name: &str, annotations: Value) -> Self {
        let api_version = if ty.group.is_empty() { "v1".to_owned() } else { format!("{}/v1", ty.group) };
        self.sources.push(json!({"apiVersion": api_version, "kind": &*ty.kind,
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations, "resourceVersion": "1"}}));
        self
    }

    /// Sets the mode of a type (adding it to the active types).
    pub fn active(mut self, group: &str, version: &str, kind: &str, plural: &str, mode: SyncMode) -> Self {
        let resource = resource(group, version, kind, plural, true);
        self.active.retain(|t| t.resource != resource);
        self.active.push(ActiveType {
            resource,
            mode,
            spec_group: group.into(),
            spec_resource: plural.into(),
        });
        self
    }

    /// Discovery of a small cluster: core Secrets, ConfigMaps and Nodes, RBAC, NetworkPolicies.
    pub fn discovery(&self) -> Arc<dyn DiscoverySource> {
        let rbac = "rbac.authorization.k8s.io";
        Arc::new(StaticDiscovery(Arc::new(Discovered::new(vec![
            resource("", "v1", "Secret", "secrets", true),
            resource("", "v1", "ConfigMap", "configmaps", true),
            resource("", "v1", "Node", "nodes", false),
            resource(rbac, "v1", "Role", "roles", true),
            resource(rbac, "v1", "RoleBinding", "rolebindings", true),
            resource("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true),
        ]))))
    }

    /// The validators' context over everything built so far.
    pub fn context(&self) -> Context {
        let policy = NamespacePolicy::new(
            self.excluded.clone(),
            AnchoredRegex::new(".*").unwrap(),
            self.managed_labels.clone(),
            Vec::new(),
        );
        let mut index = TreeIndex::new(policy);
        for (name, ns) in &self.namespaces {
            index.apply_namespace(name, ns.clone());
        }
        for (name, hc) in &self.hierarchies {
            index.apply_hierarchy(name, hc.clone());
        }
        for (parent, child) in &self.anchors {
            let anchor = ObservedAnchor { state: Some("Ok".into()), ..Default::default() };
            index.apply_anchor(parent, child, anchor);
        }
        index.set_synced(true);
        index.publish();
        let mut names = SourceNames::new(PropagationRules::default());
        for object in &self.sources {
            let ns = object["metadata"]["namespace"].as_str().unwrap_or_default();
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            names.apply(&TypeKey::of_object(object), ns, name, object);
        }
        let snapshot = names.publish();
        let (_, active) = watch::channel(Arc::new(self.active.clone()));
        Context {
            tree: index.reader(),
            sources: Arc::new(move || snapshot.clone()),
            active,
            hnc_namespace: "hnc-system".into(),
            rules: Arc::new(PropagationRules::default()),
            server: self.server.clone(),
        }
    }
}

fn plural(kind: &str) -> String {
    match kind {
        "Namespace" => "namespaces".into(),
        "HierarchyConfiguration" => "hierarchyconfigurations".into(),
        "SubnamespaceAnchor" => "subnamespaceanchors".into(),
        "HNCConfiguration" => "hncconfigurations".into(),
        "NetworkPolicy" => "networkpolicies".into(),
        other => format!("{}s", other.to_ascii_lowercase()),
    }
}

fn request(
    operation: &str,
    object: Option<Value>,
    old: Option<Value>,
    user: &User,
) -> AdmissionRequest<DynamicObject> {
    let any = object.as_ref().or(old.as_ref()).expect("an object");
    let api_version = any["apiVersion"].as_str().unwrap_or("v1");
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let kind = any["kind"].as_str().unwrap_or_default();
    let review = json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "test-uid",
            "kind": {"group": group, "version": version, "kind": kind},
            "resource": {"group": group, "version": version, "resource": plural(kind)},
            "name": any["metadata"]["name"], "namespace": any["metadata"]["namespace"],
            "operation": operation,
            "userInfo": {"username": user.name, "groups": user.groups},
            "object": object, "oldObject": old, "dryRun": false,
        }
    });
    let review: AdmissionReview<DynamicObject> =
        serde_json::from_value(review).expect("a valid AdmissionReview");
    review.try_into().expect("a request")
}

/// A CREATE of `object`.
pub fn create(object: Value, user: &User) -> AdmissionRequest<DynamicObject> {
    request("CREATE", Some(object), None, user)
}

/// An UPDATE from `old` to `new`.
pub fn update(new: Value, old: Value, user: &User) -> AdmissionRequest<DynamicObject> {
    request("UPDATE", Some(new), Some(old), user)
}

/// A DELETE of `old`.
pub fn delete(old: Value, user: &User) -> AdmissionRequest<DynamicObject> {
    request("DELETE", None, Some(old), user)
}

/// Asserts an allowed response.
#[track_caller]
pub fn assert_allowed(resp: AdmissionResponse) {
    assert!(resp.allowed, "denied with {}: {}", resp.result.code, resp.result.message);
}

/// Asserts a denial with `code` whose message contains `fragment`.
#[track_caller]
pub fn assert_denied(resp: AdmissionResponse, code: u16, fragment: &str) {
    assert!(!resp.allowed, "allowed, expected {code} with {fragment:?}");
    assert_eq!(resp.result.code, code, "{}", resp.result.message);
    assert!(
        resp.result.message.contains(fragment),
        "{:?} does not contain {fragment:?}",
        resp.result.message
    );
}
