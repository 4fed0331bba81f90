//! The resource types apisim serves: built-in kinds and those registered by CustomResourceDefinitions.

use std::sync::Arc;

use serde_json::Value;

/// A servable resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    /// API group ("" for core).
    pub group: String,
    /// Served versions; the first is the preferred (storage) version.
    pub versions: Vec<String>,
    /// Plural name (the URL segment).
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names for kubectl.
    pub short_names: Vec<String>,
    /// Whether `/status` is a separate subresource (then the main resource ignores status changes).
    pub status_subresource: bool,
    /// Verbs supported.
    pub verbs: Vec<&'static str>,
    /// For custom resources: the CRD's name and its `openAPIV3Schema`.
    pub crd: Option<(String, Value)>,
}

impl ResourceType {
    /// `group/version` of the preferred version (`v1` for core).
    pub fn api_version(&self) -> String {
        api_version(&self.group, &self.versions[0])
    }

    /// `(group, plural)`, the store key.
    pub fn key(&self) -> (String, String) {
        (self.group.clone(), self.plural.clone())
    }
}

/// `group/version`, or `version` for the core group.
pub fn api_version(group: &str, version: &str) -> String {
    if group.is_empty() { version.to_owned() } else { format!("{group}/{version}") }
}

const ALL_VERBS: [&str; 8] =
    ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"];

fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    short: &[&str],
) -> Arc<ResourceType> {
    Arc::new(ResourceType {
        group: group.into(),
        versions: vec![version.into()],
        plural: plural.into(),
        singular: kind.to_ascii_lowercase(),
        kind: kind.into(),
        namespaced,
        short_names: short.iter().map(|s| (*s).to_owned()).collect(),
        status_subresource: matches!(
            plural,
            "namespaces"
                | "pods"
                | "resourcequotas"
                | "customresourcedefinitions"
                | "deployments"
                | "services"
                | "poddisruptionbudgets"
        ),
        verbs: ALL_VERBS.to_vec(),
        crd: None,
    })
}

/// A create-only review type of `authorization.k8s.io` (answered, never stored).
fn review(plural: &str, kind: &str) -> Arc<ResourceType> {
    let mut t = (*builtin("authorization.k8s.io", "v1", plural, kind, false, &[])).clone();
    t.verbs = vec!["create"];
    Arc::new(t)
}

/// The built-in resource types.
pub fn builtins() -> Vec<Arc<ResourceType>> {
    vec![
        builtin("", "v1", "namespaces", "Namespace", false, &["ns"]),
        builtin("", "v1", "configmaps", "ConfigMap", true, &["cm"]),
        // Stored as sent and never run: registered so that `kubectl create role --resource=pods` finds the
        // type, as on any cluster.
        builtin("", "v1", "pods", "Pod", true, &["po"]),
        builtin("", "v1", "secrets", "Secret", true, &[]),
        builtin("", "v1", "serviceaccounts", "ServiceAccount", true, &["sa"]),
        // Stored, defaulted and validated, never run (workloads.rs): HNC's installation manifests are created
        // against apisim with a server-side dry run.
        builtin("", "v1", "services", "Service", true, &["svc"]),
        builtin("apps", "v1", "deployments", "Deployment", true, &["deploy"]),
        builtin("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, &["pdb"]),
        builtin("", "v1", "resourcequotas", "ResourceQuota", true, &["quota"]),
        builtin("", "v1", "limitranges", "LimitRange", true, &["limits"]),
        builtin("", "v1", "events", "Event", true, &["ev"]),
        builtin("events.k8s.io", "v1", "events", "Event", true, &["ev"]),
        builtin("rbac.authorization.k8s.io", "v1", "roles", "Role", true, &[]),
        builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true, &[]),
        builtin("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, &[]),
        builtin("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false, &[]),
        builtin("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", true, &["netpol"]),
        builtin("coordination.k8s.io", "v1", "leases", "Lease", true, &[]),
        builtin(
            "admissionregistration.k8s.io",
            "v1",
            "validatingwebhookconfigurations",
            "ValidatingWebhookConfiguration",
            false,
            &[],
        ),
        builtin(
            "admissionregistration.k8s.io",
            "v1",
            "mutatingwebhookconfigurations",
            "MutatingWebhookConfiguration",
            false,
            &[],
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
        ),
        review("subjectaccessreviews", "SubjectAccessReview"),
        review("selfsubjectaccessreviews", "SelfSubjectAccessReview"),
    ]
}
