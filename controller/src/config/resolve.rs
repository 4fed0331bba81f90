//! Resolving `HNCConfiguration.spec.resources` into the set of propagated types (spec §1.4, §7 steps 2–3, §8.7).
//!
//! Pure: works on a [`Discovered`] snapshot of the API server's resources, so the reconciler and the
//! HNCConfiguration webhook reach the same verdicts, and every rule is tested without a server.

use hnc_api::condition::{reasons, types};
use hnc_api::config::{RBAC_GROUP, ROLE_BINDING_RESOURCE, ROLE_RESOURCE};
use hnc_api::{ResourceSpec, ResourceStatus, SyncMode};

/// One resource as discovery reports it (at its group's preferred version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredResource {
    /// API group, empty for core.
    pub group: String,
    /// The group's preferred version.
    pub version: String,
    /// Kind, e.g. `Secret`.
    pub kind: String,
    /// Plural resource name, e.g. `secrets`.
    pub plural: String,
    /// Singular resource name, e.g. `secret` (may be empty in discovery; then the lowercased kind is used).
    pub singular: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
}

impl DiscoveredResource {
    /// A resource whose singular name is its lowercased kind.
    pub fn new(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> Self {
        DiscoveredResource {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
            plural: plural.into(),
            singular: kind.to_ascii_lowercase(),
            namespaced,
        }
    }
}

/// The resources an API server serves, at their groups' preferred versions.
#[derive(Debug, Clone, Default)]
pub struct Discovered {
    resources: Vec<DiscoveredResource>,
}

impl Discovered {
    /// From a list of resources (subresources such as `pods/status` must already be left out).
    pub fn new(resources: Vec<DiscoveredResource>) -> Self {
        Discovered { resources }
    }

    /// Finds `resource` (plural or singular, case-insensitive like upstream's REST mapper) in `group`.
    pub fn find(&self, group: &str, resource: &str) -> Option<&DiscoveredResource> {
        let wanted = resource.to_ascii_lowercase();
        self.resources.iter().find(|r| {
            r.group == group
                && (r.plural == wanted
                    || r.singular == wanted
                    || (r.singular.is_empty() && r.kind.to_ascii_lowercase() == wanted))
        })
    }
}

/// A type HNC synchronizes, with the mode in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveType {
    /// The resolved resource.
    pub resource: DiscoveredResource,
    /// Effective mode.
    pub mode: SyncMode,
    /// Group as written in the spec (for status).
    pub spec_group: String,
    /// Resource as written in the spec (for status).
    pub spec_resource: String,
}

/// A cluster condition computed from the spec (type, reason, message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigCondition {
    /// Condition type.
    pub type_: &'static str,
    /// Condition reason.
    pub reason: &'static str,
    /// Message.
    pub message: String,
}

/// The outcome of resolving the spec.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resolution {
    /// Enforced types first (Role, RoleBinding), then spec entries in order; each GVK once.
    pub active: Vec<ActiveType>,
    /// Conditions, in the order found.
    pub conditions: Vec<ConfigCondition>,
}

/// Why the enforced types could not be resolved (the reconcile is retried, nothing is written).
#[derive(Debug, thiserror::Error)]
#[error("the API server does not serve {0}.rbac.authorization.k8s.io as a namespaced resource")]
pub struct EnforcedTypeMissing(&'static str);

fn is_enforced(group: &str, resource: &DiscoveredResource) -> bool {
    group == RBAC_GROUP && (resource.plural == ROLE_RESOURCE || resource.plural == ROLE_BINDING_RESOURCE)
}

/// Resolves `spec` against `discovered`.
pub fn resolve(spec: &[ResourceSpec], discovered: &Discovered) -> Result<Resolution, EnforcedTypeMissing> {
    let mut out = Resolution::default();
    for plural in [ROLE_RESOURCE, ROLE_BINDING_RESOURCE] {
        let resource = discovered
            .find(RBAC_GROUP, plural)
            .filter(|r| r.namespaced)
            .ok_or(EnforcedTypeMissing(plural))?
            .clone();
        out.active.push(ActiveType {
            resource,
            mode: SyncMode::Propagate,
            spec_group: RBAC_GROUP.to_owned(),
            spec_resource: plural.to_owned(),
        });
    }
    for entry in spec {
        let gr = group_resource(&entry.group, &entry.resource);
        let Some(resource) = discovered.find(&entry.group, &entry.resource) else {
            out.conditions.push(ConfigCondition {
                type_: types::BAD_CONFIGURATION,
                reason: reasons::RESOURCE_NOT_FOUND,
                message: format!("no matches for {}/, Resource={}", entry.group, entry.resource),
            });
            continue;
        };
        if !resource.namespaced {
            out.conditions.push(ConfigCondition {
                type_: types::BAD_CONFIGURATION,
                reason: reasons::RESOURCE_NOT_NAMESPACED,
                message: format!("resource \"{}.{}\" is not namespaced", entry.resource, entry.group),
            });
            continue;
        }
        if is_enforced(&entry.group, resource) {
            out.conditions.push(ConfigCondition {
                type_: types::BAD_CONFIGURATION,
                reason: reasons::MULTIPLE_CONFIGURATIONS_FOR_TYPE,
                message: format!(
                    "The sync mode for {gr} is enforced by HNC as \"Propagate\" and cannot be overridden"
                ),
            });
            continue;
        }
        if let Some(first) = out.active.iter().find(|a| a.resource == *resource) {
            out.conditions.push(ConfigCondition {
                type_: types::BAD_CONFIGURATION,
                reason: reasons::MULTIPLE_CONFIGURATIONS_FOR_TYPE,
                message: format!(
                    "Multiple sync mode settings found for \"{gr}\"; all but one (\"{}\") will be ignored",
                    first.mode.as_str()
                ),
            });
            continue;
        }
        out.active.push(ActiveType {
            resource: resource.clone(),
            mode: entry.effective_mode(),
            spec_group: entry.group.clone(),
            spec_resource: entry.resource.clone(),
        });
    }
    Ok(out)
}

/// `resource.group` as Kubernetes prints a GroupResource (`secrets` for core).
fn group_resource(group: &str, resource: &str) -> String {
    if group.is_empty() { resource.to_owned() } else { format!("{resource}.{group}") }
}

/// Per-type counts the propagation engine reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TypeCounts {
    /// Copies written or found up to date.
    pub propagated: i64,
    /// Sources known.
    pub sources: i64,
}

/// `status.resources`, sorted by group then resource (spec §1.4): counts are present unless the mode is
/// `Ignore`; source counts only for the propagating modes.
pub fn status_resources(
    active: &[ActiveType],
    counts: impl Fn(&ActiveType) -> TypeCounts,
) -> Vec<ResourceStatus> {
    let mut out: Vec<ResourceStatus> = active
        .iter()
        .map(|t| {
            let c = counts(t);
            ResourceStatus {
                group: t.spec_group.clone(),
                version: t.resource.version.clone(),
                resource: t.spec_resource.clone(),
                mode: Some(t.mode.as_str().to_owned()),
                num_propagated_objects: (t.mode != SyncMode::Ignore).then_some(c.propagated),
                num_source_objects: t.mode.propagates().then_some(c.sources),
            }
        })
        .collect();
    out.sort_by(|a, b| (&a.group, &a.resource).cmp(&(&b.group, &b.resource)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(group: &str, version: &str, kind: &str, plural: &str, namespaced: bool) -> DiscoveredResource {
        DiscoveredResource::new(group, version, kind, plural, namespaced)
    }

    fn cluster() -> Discovered {
        Discovered::new(vec![
            res("", "v1", "Secret", "secrets", true),
            res("", "v1", "ConfigMap", "configmaps", true),
            res("", "v1", "Node", "nodes", false),
            res(RBAC_GROUP, "v1", "Role", "roles", true),
            res(RBAC_GROUP, "v1", "RoleBinding", "rolebindings", true),
            res("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", true),
        ])
    }

    fn spec(entries: &[(&str, &str, Option<SyncMode>)]) -> Vec<ResourceSpec> {
        entries
            .iter()
            .map(|(g, r, m)| ResourceSpec { group: (*g).into(), resource: (*r).into(), mode: *m })
            .collect()
    }

    #[test]
    fn enforced_types_always_lead_and_empty_mode_means_propagate() {
        let out = resolve(&spec(&[("", "secrets", None)]), &cluster()).unwrap();
        let names: Vec<_> = out.active.iter().map(|a| (a.resource.plural.as_str(), a.mode)).collect();
        assert_eq!(
            names,
            [
                ("roles", SyncMode::Propagate),
                ("rolebindings", SyncMode::Propagate),
                ("secrets", SyncMode::Propagate)
            ]
        );
        assert!(out.conditions.is_empty());
    }

    #[test]
    fn singular_names_resolve_and_enforced_types_cannot_be_overridden() {
        let out = resolve(&spec(&[(RBAC_GROUP, "role", Some(SyncMode::Ignore))]), &cluster()).unwrap();
        assert_eq!(out.active.len(), 2);
        assert_eq!(out.conditions[0].reason, reasons::MULTIPLE_CONFIGURATIONS_FOR_TYPE);
        assert_eq!(
            out.conditions[0].message,
            "The sync mode for role.rbac.authorization.k8s.io is enforced by HNC as \"Propagate\" and cannot be overridden"
        );
    }

    #[test]
    fn duplicates_keep_the_first_entry() {
        let out = resolve(
            &spec(&[("", "secrets", Some(SyncMode::Remove)), ("", "secret", Some(SyncMode::Propagate))]),
            &cluster(),
        )
        .unwrap();
        assert_eq!(out.active[2].mode, SyncMode::Remove);
        assert_eq!(
            out.conditions[0].message,
            "Multiple sync mode settings found for \"secret\"; all but one (\"Remove\") will be ignored"
        );
    }

    #[test]
    fn unknown_and_cluster_scoped_resources_are_reported() {
        let out = resolve(
            &spec(&[
                ("example.com", "widgets", None),
                ("", "nodes", None),
                ("networking.k8s.io", "networkpolicies", None),
            ]),
            &cluster(),
        )
        .unwrap();
        assert_eq!(out.active.len(), 3, "the valid entry still applies");
        assert_eq!(out.conditions[0].reason, reasons::RESOURCE_NOT_FOUND);
        assert!(out.conditions[0].message.contains("widgets"));
        assert_eq!(out.conditions[1].reason, reasons::RESOURCE_NOT_NAMESPACED);
        assert_eq!(out.conditions[1].message, "resource \"nodes.\" is not namespaced");
    }

    #[test]
    fn missing_rbac_aborts_resolution() {
        let err = resolve(&[], &Discovered::new(vec![res("", "v1", "Secret", "secrets", true)])).unwrap_err();
        assert!(err.to_string().contains("roles"));
    }

    #[test]
    fn status_is_sorted_and_counts_follow_the_mode() {
        let out = resolve(
            &spec(&[
                ("networking.k8s.io", "networkpolicies", Some(SyncMode::AllowPropagate)),
                ("", "secrets", Some(SyncMode::Ignore)),
                ("", "configmaps", Some(SyncMode::Remove)),
            ]),
            &cluster(),
        )
        .unwrap();
        let counts = |t: &ActiveType| match t.resource.plural.as_str() {
            "configmaps" => TypeCounts { propagated: 3, sources: 2 },
            _ => TypeCounts::default(),
        };
        let status = status_resources(&out.active, counts);
        let order: Vec<_> = status.iter().map(|s| (s.group.as_str(), s.resource.as_str())).collect();
        assert_eq!(
            order,
            [
                ("", "configmaps"),
                ("", "secrets"),
                ("networking.k8s.io", "networkpolicies"),
                (RBAC_GROUP, "rolebindings"),
                (RBAC_GROUP, "roles")
            ]
        );
        assert_eq!((status[0].num_propagated_objects, status[0].num_source_objects), (Some(3), None));
        assert_eq!((status[1].num_propagated_objects, status[1].num_source_objects), (None, None));
        assert_eq!((status[2].num_propagated_objects, status[2].num_source_objects), (Some(0), Some(0)));
    }
}
