//! ResourceQuota as kube-apiserver's quota admission plugin and kube-controller-manager's quota controller
//! enforce it, for the resources HNC's hierarchical quotas are used with:
//!
//! * **what an object uses**: `count/<plural>` (`count/<plural>.<group>` outside the core group) for every kind;
//!   `pods`, `services`, `configmaps`, `secrets`, `persistentvolumeclaims`, `replicationcontrollers` and
//!   `resourcequotas` for those core kinds; for a pod, `requests.cpu` (also `cpu`), `requests.memory` (also
//!   `memory`), `limits.cpu` and `limits.memory` — the sum over its containers, or an init container's amount
//!   when that is larger. Not modelled: `services.loadbalancers`/`nodeports`, storage classes, scopes and
//!   scope selectors, extended resources; a quota naming only those is never exceeded here.
//! * **admission** (creates; the plugin runs after the validating webhooks): for every quota of the namespace
//!   whose `status.hard` names something the object uses — a quota the controller has not filled in yet
//!   (`status.used` lacking a charged resource) refuses with `status unknown for quota`; a new usage beyond
//!   `status.hard` refuses with `exceeded quota: <name>, requested: …, used: …, limited: …`, both 403
//!   Forbidden; otherwise the new usage is written to the quota's status as `system:apiserver`, through the
//!   admission webhooks for `resourcequotas/status` — a webhook denying it fails the original create with its
//!   denial (HNC's hierarchical quota relies on exactly this). A dry run is checked and not charged.
//! * **the quota controller**: a quota created or changed gets `status.hard` = `spec.hard` and `status.used` =
//!   what the namespace's objects use; a delete in a namespace with quotas recomputes their usage
//!   (replenishment). Done at once here; the real controller does it within seconds.
//!
//! Charges are serialized (kube-apiserver's quota evaluator serializes them per namespace), so two concurrent
//! creates cannot both take the last unit.
//!
//! `spec.hard` is validated on create and update as kube-apiserver's `ValidateResourceQuotaSpec` does
//! ([`validate_spec`]).

use std::cmp::Ordering;
use std::collections::BTreeMap;

use hnc_api::quantity::{self, Quantity};
use hnc_api::validation;
use serde_json::{Value, json};

use crate::admission;
use crate::error::{ApiError, Cause};
use crate::go_quantity::GoQuantity;
use crate::managed::Writer;
use crate::resources::ResourceType;
use crate::server::{Shared, User};
use crate::store::Store;

/// Amounts by resource name.
type Usage = BTreeMap<String, Quantity>;

const QUOTAS: (&str, &str) = ("", "resourcequotas");

/// The kinds whose objects count under their plural name, as kube's legacy object-count evaluators do.
const COUNTED_BY_PLURAL: [&str; 7] = [
    "pods",
    "services",
    "configmaps",
    "secrets",
    "persistentvolumeclaims",
    "replicationcontrollers",
    "resourcequotas",
];

/// What one object of `t` uses.
fn usage_of(t: &ResourceType, obj: &Value) -> Usage {
    let one = Quantity::from_int(1);
    let mut usage = Usage::new();
    let count = if t.group.is_empty() {
        format!("count/{}", t.plural)
    } else {
        format!("count/{}.{}", t.plural, t.group)
    };
    usage.insert(count, one);
    if t.group.is_empty() && COUNTED_BY_PLURAL.contains(&t.plural.as_str()) {
        usage.insert(t.plural.clone(), one);
    }
    if t.group.is_empty() && t.plural == "pods" {
        for (name, amount) in pod_resources(obj) {
            usage.insert(name, amount);
        }
    }
    usage
}

/// A pod's compute requests and limits: containers summed, then raised to any larger init container's.
fn pod_resources(pod: &Value) -> Usage {
    let amounts =
        |container: &Value, kind: &str, resource: &str| quantity_of(&container["resources"][kind][resource]);
    let mut out = Usage::new();
    for (kind, resource) in
        [("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory")]
    {
        let containers = pod["spec"]["containers"].as_array().into_iter().flatten();
        let mut total: Option<Quantity> = None;
        for c in containers {
            if let Some(q) = amounts(c, kind, resource) {
                total = Some(match total {
                    Some(t) => t.checked_add(q).unwrap_or(t),
                    None => q,
                });
            }
        }
        for init in pod["spec"]["initContainers"].as_array().into_iter().flatten() {
            if let Some(q) = amounts(init, kind, resource)
                && total.is_none_or(|t| q.checked_cmp(&t) == Some(Ordering::Greater))
            {
                total = Some(q);
            }
        }
        if let Some(total) = total {
            out.insert(format!("{kind}.{resource}"), total);
            if kind == "requests" {
                out.insert(resource.to_owned(), total);
            }
        }
    }
    out
}

/// A quantity as JSON carries it: a string, or a bare number (int-or-string).
fn quantity_of(value: &Value) -> Option<Quantity> {
    match value {
        Value::String(s) => quantity::parse(s),
        Value::Number(n) => quantity::parse(&n.to_string()),
        _ => None,
    }
}

fn resource_list(value: &Value) -> Usage {
    value
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(name, q)| Some((name.clone(), quantity_of(q)?)))
        .collect()
}

fn to_json(usage: &Usage) -> Value {
    Value::Object(usage.iter().map(|(r, q)| (r.clone(), json!(q.canonical().unwrap_or_default()))).collect())
}

fn pretty(usage: &Usage) -> String {
    usage
        .iter()
        .map(|(r, q)| format!("{r}={}", q.canonical().unwrap_or_default()))
        .collect::<Vec<_>>()
        .join(",")
}

/// Resource names known without a domain (`standardResources`).
const STANDARD_RESOURCES: [&str; 20] = [
    "cpu",
    "memory",
    "ephemeral-storage",
    "requests.cpu",
    "requests.memory",
    "requests.ephemeral-storage",
    "limits.cpu",
    "limits.memory",
    "limits.ephemeral-storage",
    "pods",
    "resourcequotas",
    "services",
    "replicationcontrollers",
    "secrets",
    "configmaps",
    "persistentvolumeclaims",
    "storage",
    "requests.storage",
    "services.nodeports",
    "services.loadbalancers",
];

/// Resource names a quota may limit without a domain (`standardQuotaResources`): the standard ones but `storage`.
fn is_standard_quota_resource(name: &str) -> bool {
    name != "storage" && is_standard_resource(name)
}

/// `IsStandardResourceName`: the standard names and the hugepages ones.
fn is_standard_resource(name: &str) -> bool {
    STANDARD_RESOURCES.contains(&name)
        || name.starts_with("hugepages-")
        || name.starts_with("requests.hugepages-")
}

/// `IsIntegerResourceName`: object counts, and extended resources (a domain other than `*kubernetes.io`, not a
/// `requests.` name, and still a qualified name with `requests.` before it).
fn is_integer_resource(name: &str) -> bool {
    const COUNTS: [&str; 9] = [
        "pods",
        "resourcequotas",
        "services",
        "replicationcontrollers",
        "secrets",
        "configmaps",
        "persistentvolumeclaims",
        "services.nodeports",
        "services.loadbalancers",
    ];
    COUNTS.contains(&name)
        || (name.contains('/')
            && !name.contains("kubernetes.io/")
            && !name.starts_with("requests.")
            && validation::qualified_name_errors(&format!("requests.{name}")).is_empty())
}

/// The causes kube-apiserver finds in a ResourceQuota's `spec.hard` (pkg/apis/core/validation:
/// `ValidateResourceQuotaSpec` → `ValidateResourceQuotaResourceName`, `ValidateResourceQuantityValue`), key by
/// key in sorted order (Go visits the map in random order). Values are read as decoding leaves them, rounded up
/// to milli units; a value decoding would refuse is not looked at here.
pub(crate) fn validate_spec(quota: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    let Some(hard) = quota.pointer("/spec/hard").and_then(Value::as_object) else { return causes };
    let mut keys: Vec<&String> = hard.keys().collect();
    keys.sort();
    for name in keys {
        let field = format!("spec.hard[{name}]");
        let invalid = |detail: &str| Cause::invalid(&field, format!("Invalid value: {name:?}: {detail}"));
        // validateResourceName: a qualified name's errors alone, else a bare name must be a standard one.
        let name_errors = validation::qualified_name_errors(name);
        let bare = !name.contains('/');
        causes.extend(name_errors.iter().map(|e| invalid(e)));
        if name_errors.is_empty() && bare && !is_standard_resource(name) {
            causes.push(invalid("must be a standard resource type or fully qualified"));
        }
        if bare && !is_standard_quota_resource(name) {
            causes.push(invalid("must be a standard resource for quota"));
        }
        let Some(amount) = GoQuantity::from_json(&hard[name]) else { continue };
        if amount.is_negative() {
            // ValidateNonnegativeQuantity passes value.String().
            let message = format!("Invalid value: {:?}: must be greater than or equal to 0", amount.string());
            causes.push(Cause::invalid(&field, message));
        }
        if is_integer_resource(name) && !amount.is_whole() {
            // The Quantity itself is passed, which field.Error prints with %#v.
            let message = format!("Invalid value: {}: must be an integer", amount.go_syntax());
            causes.push(Cause::invalid(&field, message));
        }
    }
    causes
}

/// The quota admission of a create of `obj` (type `t`) in `namespace`.
pub(crate) async fn charge(
    shared: &Shared,
    t: &ResourceType,
    namespace: &str,
    name: &str,
    obj: &Value,
    dry_run: bool,
) -> Result<(), ApiError> {
    if namespace.is_empty() || !t.namespaced {
        return Ok(());
    }
    // Most namespaces have no quota: they are not serialized.
    if shared.store.lock().objects_in(QUOTAS.0, QUOTAS.1, namespace).is_empty() {
        return Ok(());
    }
    let namespace_lock =
        shared.quota_charges.namespaces.lock().entry(namespace.to_owned()).or_default().clone();
    let _serial = namespace_lock.lock().await;
    let _worker = shared.quota_charges.workers.acquire().await;
    let quotas = shared.store.lock().objects_in(QUOTAS.0, QUOTAS.1, namespace);
    let uses = usage_of(t, obj);
    let mut charged = Vec::new();
    for quota in &quotas {
        let quota_name = quota["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let hard = resource_list(&quota["status"]["hard"]);
        let used = resource_list(&quota["status"]["used"]);
        let delta: Usage =
            uses.iter().filter(|(r, _)| hard.contains_key(*r)).map(|(r, q)| (r.clone(), *q)).collect();
        if delta.is_empty() {
            continue;
        }
        let forbidden = |message: String| ApiError::forbidden(&t.group, &t.plural, name, &message);
        if let Some(unknown) = delta.keys().find(|r| !used.contains_key(*r)) {
            return Err(forbidden(format!("status unknown for quota: {quota_name}, resource: {unknown}")));
        }
        let mut new_used = used.clone();
        let (mut requested, mut now, mut limited) = (Usage::new(), Usage::new(), Usage::new());
        for (resource, amount) in &delta {
            let before = used[resource];
            let after = before
                .checked_add(*amount)
                .ok_or_else(|| forbidden(format!("quota {quota_name}: {resource} overflows")))?;
            if after.checked_cmp(&hard[resource]) != Some(Ordering::Less)
                && after.checked_cmp(&hard[resource]) != Some(Ordering::Equal)
            {
                // Beyond the limit, or not comparable exactly: refused.
                requested.insert(resource.clone(), *amount);
                now.insert(resource.clone(), before);
                limited.insert(resource.clone(), hard[resource]);
            }
            new_used.insert(resource.clone(), after);
        }
        if !requested.is_empty() {
            return Err(forbidden(format!(
                "exceeded quota: {quota_name}, requested: {}, used: {}, limited: {}",
                pretty(&requested),
                pretty(&now),
                pretty(&limited)
            )));
        }
        charged.push((quota.clone(), new_used, delta));
    }
    if dry_run {
        return Ok(());
    }
    let apiserver = User { name: "system:apiserver".into(), groups: vec!["system:masters".into()] };
    let quota_type = shared.store.lock().resolve(QUOTAS.0, QUOTAS.1).expect("resourcequotas is built in");
    for (quota, new_used, delta) in charged {
        let mut proposed = (*quota).clone();
        proposed["status"]["used"] = to_json(&new_used);
        let quota_name = quota["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        let request = admission::Request {
            operation: "UPDATE",
            t: &quota_type,
            version: "v1",
            subresource: Some("status"),
            namespace,
            name: &quota_name,
            object: Some(proposed),
            old_object: Some((*quota).clone()),
            user: &apiserver,
            dry_run: false,
        };
        admission::admit(shared, request).await?;
        // Charged onto the quota as it is now: the controller may have recounted it while the webhooks ran.
        let mut store = shared.store.lock();
        let Some(current) = store.object(QUOTAS.0, QUOTAS.1, namespace, &quota_name) else { continue };
        let mut used = resource_list(&current["status"]["used"]);
        for (resource, amount) in &delta {
            let total = used.get(resource).map_or(Some(*amount), |u| u.checked_add(*amount));
            used.insert(resource.clone(), total.unwrap_or(*amount));
        }
        let mut updated = (*current).clone();
        updated["status"]["used"] = to_json(&used);
        let time = crate::store::now();
        let writer =
            Writer { manager: "kube-apiserver", api_version: "v1", subresource: Some("status"), time: &time };
        store.update(&quota_type, namespace, &quota_name, updated, true, &writer, false)?;
    }
    Ok(())
}

/// The quota controller's recalculation of every quota in `namespace` (or of `only` among them): `status.hard`
/// from `spec.hard`, `status.used` from the namespace's objects.
pub(crate) fn recalculate(store: &mut Store, namespace: &str, only: Option<&str>) {
    if namespace.is_empty() {
        return;
    }
    let quotas = store.objects_in(QUOTAS.0, QUOTAS.1, namespace);
    if quotas.is_empty() {
        return;
    }
    let Some(quota_type) = store.resolve(QUOTAS.0, QUOTAS.1) else { return };
    let mut in_use = Usage::new();
    for t in store.types().filter(|t| t.namespaced).cloned().collect::<Vec<_>>() {
        for obj in store.objects_in(&t.group, &t.plural, namespace) {
            for (resource, amount) in usage_of(&t, &obj) {
                let total = match in_use.get(&resource) {
                    Some(so_far) => so_far.checked_add(amount).unwrap_or(*so_far),
                    None => amount,
                };
                in_use.insert(resource, total);
            }
        }
    }
    for quota in quotas {
        let name = quota["metadata"]["name"].as_str().unwrap_or_default().to_owned();
        if only.is_some_and(|o| o != name) {
            continue;
        }
        let hard = quota["spec"]["hard"].clone();
        let used: Usage = resource_list(&hard)
            .keys()
            .map(|r| (r.clone(), in_use.get(r).copied().unwrap_or(Quantity::ZERO)))
            .collect();
        let status = json!({"hard": hard, "used": to_json(&used)});
        if quota["status"] == status {
            continue;
        }
        let mut updated = (*quota).clone();
        updated["status"] = status;
        let time = crate::store::now();
        let writer = Writer {
            manager: "kube-controller-manager",
            api_version: "v1",
            subresource: Some("status"),
            time: &time,
        };
        let _ = store.update(&quota_type, namespace, &name, updated, true, &writer, false);
    }
}
