//! The HNCConfiguration validator, `hncconfigurations.hnc.x-k8s.io` (spec §8.7): `config` cannot be deleted,
//! every `spec.resources` entry must resolve to a namespaced type that is not one of the enforced types
//! (Role, RoleBinding) nor a repeat, and switching a type to propagation must not overwrite sources in
//! descendants.
//!
//! Entries are judged by [`crate::config::resolve::resolve`], the function the HNCConfiguration reconciler
//! uses, over the same discovery, so the webhook never accepts what the reconciler would then report as a bad
//! configuration (nor the reverse). Two upstream quirks are fixed (spec §18 item 4): the conflict denial
//! names `config` (upstream says `hierarchy`), and an entry without a mode, which means `Propagate`, is
//! checked for conflicts like `Propagate`.
//!
//! Like upstream, conflicts can only be seen for types whose sources HNC already tracks (types currently in
//! `Remove` mode); a type coming from `Ignore`, or new to the configuration, has no tracked sources.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use hnc_api::condition::reasons;
use hnc_api::keys::names;
use hnc_api::{HNCConfiguration, ResourceSpec, SyncMode};
use hnc_shard::TreeSnapshot;
use hnc_shard::propagation::{PropagationPolicy, TypeKey};
use hnc_shard::view::HierarchyView;
use kube::Client;
use kube::core::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use parking_lot::Mutex;

use super::fields::FieldError;
use super::review::{Handler, allow, deny};
use super::sources::SourceIndex;
use super::{Context, decode};
use crate::config::resolve::{ActiveType, Discovered, Resolution, resolve};

const RESOURCE: &str = "hncconfigurations.hnc.x-k8s.io";

/// How long a discovery snapshot is trusted before it is read again.
const DISCOVERY_TTL: Duration = Duration::from_secs(30);

/// The API server's resources, as the HNCConfiguration reconciler sees them.
pub trait DiscoverySource: Send + Sync {
    /// A snapshot; `refresh` forces a new read (used when an entry does not resolve against a cached one).
    fn discovered(&self, refresh: bool) -> BoxFuture<'_, Result<(Arc<Discovered>, bool), String>>;
}

/// Discovery through the API server, cached for [`DISCOVERY_TTL`]. Returns whether the snapshot is fresh.
pub struct CachedDiscovery {
    client: Client,
    cached: Mutex<Option<(Instant, Arc<Discovered>)>>,
}

impl CachedDiscovery {
    /// Discovery with `client`.
    pub fn new(client: Client) -> Self {
        CachedDiscovery { client, cached: Mutex::new(None) }
    }
}

impl DiscoverySource for CachedDiscovery {
    fn discovered(&self, refresh: bool) -> BoxFuture<'_, Result<(Arc<Discovered>, bool), String>> {
        Box::pin(async move {
            if !refresh
                && let Some((at, discovered)) = self.cached.lock().clone()
                && at.elapsed() < DISCOVERY_TTL
            {
                return Ok((discovered, false));
            }
            let discovered = Arc::new(
                crate::config::discovery::discover(&self.client)
                    .await
                    .map_err(|e| format!("cannot read the API server's resources: {e}"))?,
            );
            *self.cached.lock() = Some((Instant::now(), discovered.clone()));
            Ok((discovered, true))
        })
    }
}

/// `hncconfigurations.hnc.x-k8s.io`.
pub struct ConfigValidator {
    ctx: Context,
    discovery: Arc<dyn DiscoverySource>,
}

impl ConfigValidator {
    /// The validator, resolving types through `discovery`.
    pub fn new(ctx: Context, discovery: Arc<dyn DiscoverySource>) -> Self {
        ConfigValidator { ctx, discovery }
    }
}

impl Handler for ConfigValidator {
    fn name(&self) -> &'static str {
        "hncconfigurations.hnc.x-k8s.io"
    }

    async fn review(&self, request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        if self.ctx.is_hnc_service_account(request) {
            return allow(request, "HNC SA");
        }
        let resp = || AdmissionResponse::from(request);
        if request.operation == Operation::Delete {
            // Objects of other names cannot be created (the CRD allows only `config`), but old ones may
            // linger.
            if request.name == names::CONFIG {
                return deny::forbidden(
                    resp(),
                    RESOURCE,
                    names::CONFIG,
                    "deleting the 'config' object is forbidden",
                );
            }
            return allow(request, "");
        }
        let config: HNCConfiguration = match decode(request.object.as_ref()) {
            Ok(config) => config,
            Err(error) => return deny::bad_request(resp(), &error),
        };
        let spec = &config.spec.resources;
        let mut refresh = false;
        let (errors, resolution) = loop {
            let (discovered, fresh) = match self.discovery.discovered(refresh).await {
                Ok(d) => d,
                Err(error) => return deny::internal(resp(), &error),
            };
            let (errors, resolution) = match check_types(spec, &discovered) {
                Ok(checked) => checked,
                Err(error) => return deny::internal(resp(), &error),
            };
            // A type installed since the last read (a new CRD) must not be refused for a stale snapshot.
            if errors.is_empty() || fresh {
                break (errors, resolution);
            }
            refresh = true;
        };
        if !errors.is_empty() {
            return deny::invalid(resp(), "HNCConfiguration", hnc_api::GROUP, names::CONFIG, &errors);
        }
        let tree = self.ctx.tree.load();
        let sources = (self.ctx.sources)();
        let current = self.ctx.active.borrow().clone();
        for t in resolution.active.iter().filter(|t| t.mode.propagates()) {
            let already = current.iter().any(|c| c.resource == t.resource && c.mode.propagates());
            if already {
                continue;
            }
            let key = TypeKey::new(&t.resource.group, &t.resource.kind);
            let lines = conflicts(&tree, &*sources, &key, t.mode);
            if !lines.is_empty() {
                let detail = format!(
                    "Cannot update configuration because setting type \"{}\" to 'Propagate' mode or \
                     'AllowPropagate' mode would overwrite user-created object(s):\n{}\nTo fix this, please \
                     rename or remove the conflicting objects first.",
                    gvk(t),
                    lines.join("\n")
                );
                return deny::conflict(resp(), RESOURCE, names::CONFIG, &detail);
            }
        }
        allow(request, "")
    }
}

/// `group/version, Kind=Kind`, as Go prints a GroupVersionKind.
fn gvk(t: &ActiveType) -> String {
    format!("{}/{}, Kind={}", t.resource.group, t.resource.version, t.resource.kind)
}

/// `resource.group` (`resource` for core), as Go prints a GroupResource.
fn group_resource(entry: &ResourceSpec) -> String {
    if entry.group.is_empty() {
        entry.resource.clone()
    } else {
        format!("{}.{}", entry.resource, entry.group)
    }
}

/// Field errors for the entries the reconciler would reject, and the resolution of the whole spec. Each entry
/// is judged by resolving the spec up to it: an entry the reconciler would skip adds a condition instead of
/// an active type, and that condition's reason decides the field error.
fn check_types(
    spec: &[ResourceSpec],
    discovered: &Discovered,
) -> Result<(Vec<FieldError>, Resolution), String> {
    let resolve = |entries: &[ResourceSpec]| resolve(entries, discovered).map_err(|e| e.to_string());
    let mut errors = Vec::new();
    let mut before = resolve(&[])?;
    let enforced: Vec<_> = before.active.iter().map(|t| t.resource.clone()).collect();
    for (i, entry) in spec.iter().enumerate() {
        let after = resolve(&spec[..=i])?;
        if after.active.len() == before.active.len() {
            let field = format!("spec.resources[{i}]");
            let gr = group_resource(entry);
            let condition = after.conditions.last().ok_or("an entry was skipped without a reason")?;
            let error = match condition.reason {
                reasons::MULTIPLE_CONFIGURATIONS_FOR_TYPE => {
                    let found = discovered.find(&entry.group, &entry.resource);
                    if found.is_some_and(|r| enforced.contains(r)) {
                        FieldError::invalid_bare(
                            field,
                            &gr,
                            "always uses the 'Propagate' mode and cannot be configured",
                        )
                    } else {
                        FieldError::duplicate(field, &gr)
                    }
                }
                _ => FieldError::invalid_bare(field, &gr, condition.message.clone()),
            };
            errors.push(error);
        }
        before = after;
    }
    Ok((errors, before))
}

/// Sources of `ty` that an ancestor's same-named source would overwrite in `mode`, each ancestor source
/// judged against the labels of the namespace it would overwrite in. Lines sorted by namespace, name and
/// ancestor.
fn conflicts(tree: &TreeSnapshot, sources: &dyn SourceIndex, ty: &TypeKey, mode: SyncMode) -> Vec<String> {
    let mut holders_by_name: BTreeMap<String, usize> = BTreeMap::new();
    let mut namespaces = Vec::new();
    sources.namespaces_with_sources(ty, &mut |ns| namespaces.push(ns.to_owned()));
    for ns in &namespaces {
        sources.sources_in(ty, ns, &mut |name, _| *holders_by_name.entry(name.to_owned()).or_default() += 1);
    }
    let mut lines = Vec::new();
    for (name, _) in holders_by_name.iter().filter(|(_, count)| **count > 1) {
        let mut holders: HashMap<String, PropagationPolicy> = HashMap::new();
        sources.holders(ty, name, &mut |ns, policy| {
            holders.insert(ns.to_owned(), policy.clone());
        });
        let mut found = Vec::new();
        for dest in holders.keys().filter(|d| tree.exists(d)) {
            let Some(labels) = tree.computed_labels(dest) else { continue };
            for ancestor in tree.ancestors(dest).iter().rev() {
                if let Some(policy) = holders.get(&**ancestor)
                    && policy.allows(&labels, mode).unwrap_or(false)
                {
                    found.push((dest.clone(), ancestor.to_string()));
                }
            }
        }
        found.sort();
        lines.extend(found.into_iter().map(|(dest, ancestor)| {
            (
                dest.clone(),
                format!("  Object {name:?} in namespace {ancestor:?} would overwrite the one in {dest:?}"),
            )
        }));
    }
    lines.sort();
    lines.into_iter().map(|(_, line)| line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::testing::*;
    use serde_json::json;

    fn config(resources: serde_json::Value) -> serde_json::Value {
        json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HNCConfiguration",
            "metadata": {"name": "config"}, "spec": {"resources": resources}})
    }

    fn validator(forest: &Forest) -> ConfigValidator {
        ConfigValidator::new(forest.context(), forest.discovery())
    }

    #[tokio::test]
    async fn config_cannot_be_deleted() {
        let forest = Forest::new();
        let v = validator(&forest);
        assert_denied(
            v.review(&delete(config(json!([])), USER)).await,
            403,
            "hncconfigurations.hnc.x-k8s.io \"config\" is forbidden: deleting the 'config' object is forbidden",
        );
        let mut other = config(json!([]));
        other["metadata"]["name"] = json!("old");
        assert_allowed(v.review(&delete(other, USER)).await);
        assert_allowed(v.review(&delete(config(json!([])), HNC_SA)).await);
    }

    #[tokio::test]
    async fn entries_must_resolve_to_new_namespaced_types() {
        let forest = Forest::new();
        let v = validator(&forest);
        let resp = v
            .review(&update(
                config(
                    json!([{"group": "rbac.authorization.k8s.io", "resource": "roles", "mode": "Ignore"}]),
                ),
                config(json!([])),
                USER,
            ))
            .await;
        assert_eq!(
            resp.result.message,
            "HNCConfiguration.hnc.x-k8s.io \"config\" is invalid: spec.resources[0]: Invalid value: roles.rbac.authorization.k8s.io: always uses the 'Propagate' mode and cannot be configured"
        );
        assert_denied(resp, 422, "always uses the 'Propagate' mode");
        let resp = v
            .review(&create(
                config(json!([
                    {"resource": "secrets", "mode": "Propagate"},
                    {"resource": "secret", "mode": "Propagate"},
                    {"resource": "nodes"},
                    {"group": "example.com", "resource": "widgets"},
                ])),
                USER,
            ))
            .await;
        let causes: Vec<String> = resp
            .result
            .details
            .clone()
            .unwrap()
            .causes
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect();
        assert_eq!(
            causes,
            [
                "spec.resources[1]: Duplicate value: secret",
                "spec.resources[2]: Invalid value: nodes: resource \"nodes.\" is not namespaced",
                "spec.resources[3]: Invalid value: widgets.example.com: no matches for example.com/, Resource=widgets",
            ]
        );
        assert_allowed(
            v.review(&create(config(json!([{"resource": "secrets", "mode": "Remove"}])), USER)).await,
        );
    }

    #[tokio::test]
    async fn switching_to_propagation_must_not_overwrite_descendants() {
        let cm = TypeKey::new("", "ConfigMap");
        let forest = Forest::new()
            .ns("p")
            .child("c", "p")
            .child("d", "p")
            .ns("q")
            .child("qc", "q")
            .source(&cm, "p", "shared", json!({}))
            .source(&cm, "c", "shared", json!({}))
            .source(&cm, "d", "other", json!({}))
            .source(&cm, "q", "scoped", json!({"propagate.hnc.x-k8s.io/treeSelect": "!qc"}))
            .source(&cm, "qc", "scoped", json!({}))
            .active("", "v1", "ConfigMap", "configmaps", SyncMode::Remove);
        let v = validator(&forest);
        let old = config(json!([{"resource": "configmaps", "mode": "Remove"}]));
        for mode in [json!("Propagate"), json!(null)] {
            let resp = v
                .review(&update(config(json!([{"resource": "configmaps", "mode": mode}])), old.clone(), USER))
                .await;
            assert_eq!(resp.result.code, 409, "{}", resp.result.message);
            assert_eq!(
                resp.result.message,
                "Operation cannot be fulfilled on hncconfigurations.hnc.x-k8s.io \"config\": Cannot update configuration because setting type \"/v1, Kind=ConfigMap\" to 'Propagate' mode or 'AllowPropagate' mode would overwrite user-created object(s):\n  Object \"shared\" in namespace \"p\" would overwrite the one in \"c\"\nTo fix this, please rename or remove the conflicting objects first."
            );
        }
        // AllowPropagate only propagates sources that opt in: nothing is overwritten.
        let allow_mode = config(json!([{"resource": "configmaps", "mode": "AllowPropagate"}]));
        assert_allowed(v.review(&update(allow_mode, old.clone(), USER)).await);
    }

    #[tokio::test]
    async fn types_already_propagating_are_not_rechecked() {
        let cm = TypeKey::new("", "ConfigMap");
        let forest = Forest::new()
            .ns("p")
            .child("c", "p")
            .source(&cm, "p", "shared", json!({}))
            .source(&cm, "c", "shared", json!({}))
            .active("", "v1", "ConfigMap", "configmaps", SyncMode::AllowPropagate);
        let v = validator(&forest);
        let resp =
            v.review(&create(config(json!([{"resource": "configmaps", "mode": "Propagate"}])), USER)).await;
        assert_allowed(resp);
    }
}
