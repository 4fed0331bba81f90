//! RBAC authorization from the stored Roles, ClusterRoles and their bindings, as kube-apiserver's RBAC
//! authorizer decides: users, groups and service accounts as subjects; `*` wildcards for verbs, groups and
//! resources; `resource/subresource`; `resourceNames`; `system:masters` may do anything.

use serde_json::Value;

use crate::server::User;
use crate::store::Store;

/// What a request wants to do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// RBAC verb: get, list, watch, create, update, patch, delete.
    pub verb: String,
    /// API group ("" for core).
    pub group: String,
    /// Resource plural.
    pub resource: String,
    /// Subresource, if any.
    pub subresource: String,
    /// Namespace ("" for cluster-scoped requests).
    pub namespace: String,
    /// Object name ("" for collections).
    pub name: String,
}

/// Decides whether `user` may perform `attrs`; the string says which binding allowed it.
pub fn authorize(store: &Store, user: &User, attrs: &Attributes) -> (bool, String) {
    if user.groups.iter().any(|g| g == "system:masters") {
        return (true, "system:masters".into());
    }
    let bindings = store.all_objects("rbac.authorization.k8s.io", "clusterrolebindings").into_iter().chain(
        if attrs.namespace.is_empty() {
            Vec::new()
        } else {
            store.objects_in("rbac.authorization.k8s.io", "rolebindings", &attrs.namespace)
        },
    );
    for binding in bindings {
        if !binds(&binding, user) {
            continue;
        }
        let role_ref = &binding["roleRef"];
        let role_name = role_ref["name"].as_str().unwrap_or_default();
        let role = match role_ref["kind"].as_str() {
            Some("ClusterRole") => store.object("rbac.authorization.k8s.io", "clusterroles", "", role_name),
            Some("Role") => store.object(
                "rbac.authorization.k8s.io",
                "roles",
                binding.pointer("/metadata/namespace").and_then(Value::as_str).unwrap_or_default(),
                role_name,
            ),
            _ => None,
        };
        let Some(role) = role else { continue };
        if role["rules"].as_array().into_iter().flatten().any(|rule| allows(rule, attrs)) {
            let kind = binding["kind"].as_str().unwrap_or("binding");
            let name = binding.pointer("/metadata/name").and_then(Value::as_str).unwrap_or_default();
            return (true, format!("RBAC: allowed by {kind} \"{name}\""));
        }
    }
    (false, String::new())
}

fn binds(binding: &Value, user: &User) -> bool {
    binding["subjects"].as_array().into_iter().flatten().any(|s| {
        let name = s["name"].as_str().unwrap_or_default();
        match s["kind"].as_str() {
            Some("User") => user.name == name,
            Some("Group") => user.groups.iter().any(|g| g == name),
            Some("ServiceAccount") => {
                let ns = s["namespace"].as_str().unwrap_or_default();
                user.name == format!("system:serviceaccount:{ns}:{name}")
            }
            _ => false,
        }
    })
}

fn allows(rule: &Value, attrs: &Attributes) -> bool {
    let has = |field: &str, want: &str| {
        rule[field].as_array().into_iter().flatten().filter_map(Value::as_str).any(|v| v == "*" || v == want)
    };
    let resource = if attrs.subresource.is_empty() {
        attrs.resource.clone()
    } else {
        format!("{}/{}", attrs.resource, attrs.subresource)
    };
    let resource_ok = rule["resources"].as_array().into_iter().flatten().filter_map(Value::as_str).any(|r| {
        r == "*" || r == resource || (!attrs.subresource.is_empty() && r == format!("{}/*", attrs.resource))
    });
    let names: Vec<&str> =
        rule["resourceNames"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    has("verbs", &attrs.verb)
        && has("apiGroups", &attrs.group)
        && resource_ok
        && (names.is_empty() || (!attrs.name.is_empty() && names.contains(&attrs.name.as_str())))
}

/// The message kube-apiserver gives when RBAC denies a request.
pub fn forbidden_message(user: &User, attrs: &Attributes) -> String {
    let what = if attrs.subresource.is_empty() {
        format!("resource \"{}\"", attrs.resource)
    } else {
        format!("resource \"{}/{}\"", attrs.resource, attrs.subresource)
    };
    let scope = if attrs.namespace.is_empty() {
        "at the cluster scope".to_owned()
    } else {
        format!("in the namespace \"{}\"", attrs.namespace)
    };
    format!("User \"{}\" cannot {} {what} in API group \"{}\" {scope}", user.name, attrs.verb, attrs.group)
}
