//! HNC's two webhook configurations, `hnc-validating-webhook-configuration` and
//! `hnc-mutating-webhook-configuration`: what they must say (spec §8.1), and the leader's upkeep of them.
//!
//! * Endpoint: `--webhook-url-base` registers URL-based entries (`<base><path>`; a base without a port gets
//!   the port the server bound), for running outside a cluster; otherwise entries name the Service
//!   `hnc-webhook-service` in HNC's namespace.
//! * `caBundle`: the CA of the certificate Secret when HNC manages its certificates; left as found otherwise
//!   (cert-manager's CA injector, or the manifests, own it then).
//! * The `objects.hnc.x-k8s.io` entry's rules follow the active types (spec §7 step 4) — kept here rather
//!   than in the HNCConfiguration reconciler, so that propagation never depends on a configuration existing
//!   (spec §18 item 8).
//!
//! Only fields HNC sets are compared, so fields the API server defaults (`matchPolicy`, `scope`,
//! `timeoutSeconds`, a service's `port`, ...) never cause a rewrite, and entries added by others are kept.
//! A replica serving webhooks creates and completes the configurations — except Service-based ones when
//! something else manages the certificate: a Service's certificate is never publicly trusted, so a
//! configuration without its `caBundle` would make every namespace write fail; those configurations belong
//! with the certificate (the manifests, cert-manager's CA injector) and only their objects rules are kept
//! here. A replica started with `--no-webhooks` but managing certificates (upstream's HA layout) likewise only
//! keeps `caBundle` and the objects rules of configurations that exist.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hnc_api::keys::{labels, names};
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::{Value, json};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::certs::ServingNames;
use super::secret::{self, SecretState};
use crate::config::reconciler::ActiveTypes;
use crate::config::resolve::ActiveType;
use crate::ownership::Ownership;
use crate::watch::{Change, feed};
use crate::webhook::paths::{
    MUTATE_NAMESPACE, VALIDATE_ANCHOR, VALIDATE_CONFIG, VALIDATE_HIERARCHY, VALIDATE_HRQ, VALIDATE_NAMESPACE,
    VALIDATE_OBJECTS, VALIDATE_RQ_STATUS,
};
use crate::webhook::tls::ReloadableCert;
use crate::writer::{ObjectRef, WriteOp, WriteRequest, Writer};

/// How often certificates and configurations are re-checked without another reason; also how soon a replica
/// that becomes the leader takes over (the checks compare in memory; they cost no API call).
const RECHECK_PERIOD: Duration = Duration::from_secs(10);
/// A write not yet reflected by the watch is not repeated within this time.
const WRITE_PATIENCE: Duration = Duration::from_secs(30);

/// Where the API server reaches the webhooks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `clientConfig.url = <base><path>`.
    Url(String),
    /// `clientConfig.service = {name: hnc-webhook-service, namespace, path}`.
    Service {
        /// HNC's namespace.
        namespace: String,
    },
}

impl Endpoint {
    fn client_config(&self, path: &str) -> Value {
        match self {
            Endpoint::Url(base) => json!({"url": format!("{}{path}", base.trim_end_matches('/'))}),
            Endpoint::Service { namespace } => {
                json!({"service": {"name": names::WEBHOOK_SERVICE, "namespace": namespace, "path": path}})
            }
        }
    }

    /// The names the serving certificate must cover — the one the API server dials: the Service's
    /// `<service>.<namespace>.svc`, or the URL's host — and those a new certificate also names (the Service's
    /// other names).
    pub fn serving_names(&self, namespace: &str) -> ServingNames {
        let service = ServingNames::for_service(names::WEBHOOK_SERVICE, namespace);
        let Endpoint::Url(base) = self else { return service };
        let mut out = ServingNames {
            optional_dns: service.dns.into_iter().chain(service.optional_dns).collect(),
            ..Default::default()
        };
        if let Some(host) = url_host(base) {
            match host.trim_start_matches('[').trim_end_matches(']').parse() {
                Ok(ip) => out.ips.push(ip),
                Err(_) => out.dns.push(host.to_owned()),
            }
        }
        out
    }
}

/// The host of an `https://host[:port][/path]` URL.
pub fn url_host(url: &str) -> Option<&str> {
    let rest = url.strip_prefix("https://")?;
    let authority = rest.split('/').next()?;
    let host = match authority.rfind(':') {
        Some(i) if !authority[i..].contains(']') => &authority[..i],
        _ => authority,
    };
    (!host.is_empty()).then_some(host)
}

/// True when the URL names an explicit port.
pub fn url_has_port(url: &str) -> bool {
    let Some(rest) = url.strip_prefix("https://") else { return false };
    let authority = rest.split('/').next().unwrap_or_default();
    authority.rfind(':').is_some_and(|i| !authority[i..].contains(']'))
}

fn entry(name: &str, endpoint: &Endpoint, path: &str, failure_policy: &str, rules: Value) -> Value {
    json!({
        "name": name,
        "admissionReviewVersions": ["v1"],
        "clientConfig": endpoint.client_config(path),
        "failurePolicy": failure_policy,
        "sideEffects": "None",
        "rules": rules,
    })
}

fn rule(group: &str, version: &str, operations: &[&str], resource: &str) -> Value {
    json!([{
        "apiGroups": [group], "apiVersions": [version], "operations": operations, "resources": [resource],
    }])
}

/// The validating entries in upstream's order; the objects entry's rules are `objects_rules` (`None`: the
/// active types are not known yet, so whatever rules the entry has are kept).
/// With `hrq`, the two hierarchical quota entries follow (spec §8.1).
pub fn validating_entries(endpoint: &Endpoint, objects_rules: Option<Value>, hrq: bool) -> Vec<Value> {
    let hnc = hnc_api::GROUP;
    let version = hnc_api::VERSION;
    let mut objects = entry(names::OBJECTS_WEBHOOK, endpoint, VALIDATE_OBJECTS, "Fail", json!([]));
    match objects_rules {
        Some(rules) => objects["rules"] = rules,
        None => {
            objects.as_object_mut().map(|o| o.remove("rules"));
        }
    }
    objects["timeoutSeconds"] = json!(2);
    objects["namespaceSelector"] =
        json!({"matchLabels": {labels::INCLUDED_NAMESPACE: labels::INCLUDED_NAMESPACE_VALUE}});
    let mut entries = vec![
        entry(
            "subnamespaceanchors.hnc.x-k8s.io",
            endpoint,
            VALIDATE_ANCHOR,
            "Fail",
            rule(hnc, version, &["CREATE", "UPDATE", "DELETE"], "subnamespaceanchors"),
        ),
        entry(
            "hierarchyconfigurations.hnc.x-k8s.io",
            endpoint,
            VALIDATE_HIERARCHY,
            "Fail",
            rule(hnc, version, &["CREATE", "UPDATE"], "hierarchyconfigurations"),
        ),
        entry(
            "hncconfigurations.hnc.x-k8s.io",
            endpoint,
            VALIDATE_CONFIG,
            "Fail",
            rule(hnc, version, &["CREATE", "UPDATE", "DELETE"], "hncconfigurations"),
        ),
        entry(
            "namespaces.hnc.x-k8s.io",
            endpoint,
            VALIDATE_NAMESPACE,
            "Fail",
            rule("", "v1", &["DELETE", "CREATE", "UPDATE"], "namespaces"),
        ),
        objects,
    ];
    if hrq {
        entries.push(entry(
            "hrq.hnc.x-k8s.io",
            endpoint,
            VALIDATE_HRQ,
            "Fail",
            rule(hnc, version, &["CREATE", "UPDATE"], "hierarchicalresourcequotas"),
        ));
        // Fail-open as upstream's: with HNC unreachable, namespaces under a hierarchical quota can still create
        // objects (each namespace's own quota still holds; the subtree's budget is then not enforced).
        entries.push(entry(
            "resourcesquotasstatus.hnc.x-k8s.io",
            endpoint,
            VALIDATE_RQ_STATUS,
            "Ignore",
            rule("", "v1", &["UPDATE"], "resourcequotas/status"),
        ));
    }
    entries
}

/// The mutating entry.
pub fn mutating_entries(endpoint: &Endpoint) -> Vec<Value> {
    vec![entry(
        "namespacelabel.hnc.x-k8s.io",
        endpoint,
        MUTATE_NAMESPACE,
        "Ignore",
        rule("", "v1", &["CREATE", "UPDATE"], "namespaces"),
    )]
}

/// One rule per API group of the active types (any mode), listing their resources, any version,
/// CREATE/UPDATE/DELETE; sorted. `None` while no type is known.
pub fn objects_rules(active: &[ActiveType]) -> Option<Value> {
    if active.is_empty() {
        return None;
    }
    let mut by_group: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for t in active {
        by_group.entry(&t.resource.group).or_default().insert(&t.resource.plural);
    }
    Some(Value::Array(
        by_group
            .into_iter()
            .map(|(group, resources)| {
                json!({
                    "apiGroups": [group], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE", "DELETE"],
                    "resources": resources,
                })
            })
            .collect(),
    ))
}

/// True when every field `desired` sets has the same value in `observed` (objects: recursively, keys absent
/// from `desired` ignored; arrays: same length, element-wise).
pub fn covers(observed: &Value, desired: &Value) -> bool {
    match (observed, desired) {
        (Value::Object(o), Value::Object(d)) => {
            d.iter().all(|(k, v)| o.get(k).is_some_and(|ov| covers(ov, v)))
        }
        (Value::Array(o), Value::Array(d)) => {
            o.len() == d.len() && o.iter().zip(d).all(|(ov, dv)| covers(ov, dv))
        }
        _ => observed == desired,
    }
}

/// Sets every field `wanted` sets in `target`: objects field by field (fields `wanted` lacks, such as a
/// Service's defaulted `port`, stay), anything else replaced whole (a `rules` list is HNC's exactly).
fn merge_into(target: &mut Value, wanted: &Value) {
    match (target, wanted) {
        (Value::Object(t), Value::Object(w)) => {
            for (k, v) in w {
                match t.get_mut(k) {
                    Some(existing) => merge_into(existing, v),
                    None => {
                        t.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (target, wanted) => *target = wanted.clone(),
    }
}

/// How far the leader goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Create the configuration and its entries; set every field HNC owns.
    Register,
    /// Only keep `caBundle` and the objects rules of entries that exist.
    PatchExisting,
}

/// How far the upkeep may go: Service-based configurations are only completed by a leader that also owns
/// their certificate (see the module documentation).
pub fn effective_scope(endpoint: &Endpoint, manage_certs: bool, scope: Scope) -> Scope {
    match (endpoint, manage_certs) {
        (Endpoint::Service { .. }, false) => Scope::PatchExisting,
        _ => scope,
    }
}

/// The configuration `observed` (or a new one named `name` of `kind`) must become, or `None` when it already
/// says what it must. Entries found keep their place; entries of others are kept as they are. `ca_bundle` is set on every entry when given; otherwise each entry keeps its own.
pub fn plan(
    name: &str,
    kind: &str,
    observed: Option<&Value>,
    desired_entries: &[Value],
    ca_bundle: Option<&str>,
    scope: Scope,
) -> Option<WriteOp> {
    let observed_entries: Vec<Value> =
        observed.and_then(|o| o["webhooks"].as_array().cloned()).unwrap_or_default();
    let find = |name: &Value| observed_entries.iter().find(|e| e["name"] == *name);
    let mut merged_entries: BTreeMap<String, Value> = BTreeMap::new();
    for desired in desired_entries {
        let existing = find(&desired["name"]);
        let mut wanted = desired.clone();
        let ca = ca_bundle.map(str::to_owned).or_else(|| {
            existing
                .and_then(|e| e.pointer("/clientConfig/caBundle"))
                .and_then(Value::as_str)
                .map(str::to_owned)
        });
        if let Some(ca) = ca {
            wanted["clientConfig"]["caBundle"] = json!(ca);
        }
        let merged = match (existing, scope) {
            (None, Scope::PatchExisting) => continue,
            (None, Scope::Register) => wanted,
            // An entry saying what it must is kept as found, with the fields the API server defaulted.
            (Some(existing), Scope::Register) if covers(existing, &wanted) => existing.clone(),
            (Some(existing), Scope::Register) => {
                let mut merged = existing.clone();
                merge_into(&mut merged, &wanted);
                merged
            }
            (Some(existing), Scope::PatchExisting) => {
                let mut merged = existing.clone();
                if let Some(ca) = wanted.pointer("/clientConfig/caBundle") {
                    merged["clientConfig"]["caBundle"] = ca.clone();
                }
                if desired["name"] == names::OBJECTS_WEBHOOK
                    && let Some(rules) = wanted.get("rules")
                {
                    merged["rules"] = rules.clone();
                }
                merged
            }
        };
        merged_entries.insert(desired["name"].as_str().unwrap_or_default().to_owned(), merged);
    }
    if observed.is_none() && scope == Scope::PatchExisting {
        return None;
    }
    // The entries stay in the order found (upstream's installation lists the objects entry third, this
    // controller fifth: the order means nothing to a validating configuration, so it is no reason to write);
    // HNC's entries not found yet follow in HNC's order.
    let mut all: Vec<Value> = observed_entries
        .iter()
        .map(|e| e["name"].as_str().and_then(|n| merged_entries.remove(n)).unwrap_or_else(|| e.clone()))
        .collect();
    all.extend(
        desired_entries.iter().filter_map(|d| d["name"].as_str().and_then(|n| merged_entries.remove(n))),
    );
    let desired = json!({"webhooks": all});
    if observed.is_some_and(|o| covers(o, &desired)) {
        return None;
    }
    Some(match observed {
        None => WriteOp::create(json!({
            "apiVersion": "admissionregistration.k8s.io/v1", "kind": kind, "metadata": {"name": name},
            "webhooks": all,
        })),
        Some(o) => {
            let mut object = o.clone();
            object["webhooks"] = Value::Array(all);
            WriteOp::update(object)
        }
    })
}

/// What the leader's upkeep needs.
pub struct Upkeep {
    /// Client for the configuration watches.
    pub client: Client,
    /// Where writes go (scope `""`: only the leader's pass the fence).
    pub writer: Writer,
    /// Who leads.
    pub ownership: Ownership,
    /// Where the webhooks are reached (with [`Scope::PatchExisting`], only the certificate's names follow
    /// it).
    pub endpoint: Endpoint,
    /// How far to go.
    pub scope: Scope,
    /// Manage the certificate Secret and `caBundle`s.
    pub manage_certs: bool,
    /// HNC's namespace.
    pub namespace: String,
    /// This replica's serving certificate: configurations are registered only once it serves.
    pub cert: Option<Arc<ReloadableCert>>,
    /// The certificate Secret, as watched.
    pub secret: watch::Receiver<SecretState>,
    /// The active types.
    pub active: watch::Receiver<ActiveTypes>,
    /// Register the hierarchical quota webhooks (`--enable-hrq`).
    pub hrq: bool,
}

#[derive(Clone, Copy)]
enum Which {
    Validating = 0,
    Mutating = 1,
}

impl Upkeep {
    /// Runs until `stop`: on every change of the Secret, the configurations or the active types, and every
    /// [`RECHECK_PERIOD`], the leader brings the Secret and the configurations to what they must be.
    pub async fn run(mut self, stop: CancellationToken) {
        let (tx, mut configs) = mpsc::channel::<(Which, Change<DynamicObject>)>(16);
        let vwc = ApiResource::erase::<ValidatingWebhookConfiguration>(&());
        let mwc = ApiResource::erase::<MutatingWebhookConfiguration>(&());
        let mut watches = Vec::new();
        for (which, resource, name) in [
            (Which::Validating, vwc.clone(), names::VALIDATING_WEBHOOK_CONFIGURATION),
            (Which::Mutating, mwc.clone(), names::MUTATING_WEBHOOK_CONFIGURATION),
        ] {
            let api: Api<DynamicObject> = Api::all_with(self.client.clone(), &resource);
            let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
            let tx = tx.clone();
            let kind = resource.plural.clone();
            watches.push(tokio::spawn(feed(api, config, tx, kind, move |c| (which, c))));
        }
        let mut observed: [Option<Value>; 2] = [None, None];
        let mut listed = [false, false];
        let mut submitted: HashMap<&'static str, (String, Instant)> = HashMap::new();
        let mut tick = tokio::time::interval(RECHECK_PERIOD);
        let mut cert_check = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                Some((which, change)) = configs.recv() => {
                    let i = which as usize;
                    match change {
                        Change::Apply(object) => observed[i] = serde_json::to_value(&object).ok(),
                        Change::Delete(_) => observed[i] = None,
                        Change::Synced => listed[i] = true,
                    }
                }
                Ok(()) = self.secret.changed() => {}
                Ok(()) = self.active.changed() => {}
                _ = tick.tick() => submitted.retain(|_, (_, at)| at.elapsed() < WRITE_PATIENCE),
                // Until this replica serves a certificate, look again shortly (registering earlier would make
                // the API server call a webhook that cannot answer).
                _ = cert_check.tick(), if self.cert.as_ref().is_some_and(|c| !c.is_loaded()) => {}
            }
            if !self.ownership.is_leader() {
                continue;
            }
            let secret_state = self.secret.borrow().clone();
            if self.manage_certs && secret_state.is_listed() {
                self.keep_secret(secret_state.observed(), &mut submitted);
            }
            if !listed.iter().all(|l| *l) || self.cert.as_ref().is_some_and(|c| !c.is_loaded()) {
                continue;
            }
            let ca_bundle = match (self.manage_certs, secret_state.observed()) {
                (true, Some(s)) => s.ca_bundle(),
                // Managing certificates but no CA yet: nothing could verify the webhooks; wait for it.
                (true, None) => continue,
                (false, _) => None,
            };
            let rules = objects_rules(&self.active.borrow());
            let scope = effective_scope(&self.endpoint, self.manage_certs, self.scope);
            let plans = [
                (
                    names::VALIDATING_WEBHOOK_CONFIGURATION,
                    "ValidatingWebhookConfiguration",
                    &vwc,
                    validating_entries(&self.endpoint, rules, self.hrq),
                    &observed[Which::Validating as usize],
                ),
                (
                    names::MUTATING_WEBHOOK_CONFIGURATION,
                    "MutatingWebhookConfiguration",
                    &mwc,
                    mutating_entries(&self.endpoint),
                    &observed[Which::Mutating as usize],
                ),
            ];
            for (name, kind, resource, entries, current) in plans {
                let Some(op) = plan(name, kind, current.as_ref(), &entries, ca_bundle.as_deref(), scope)
                else {
                    continue;
                };
                let rv = current
                    .as_ref()
                    .and_then(|c| c.pointer("/metadata/resourceVersion"))
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                if submitted
                    .get(name)
                    .is_some_and(|(at_rv, at)| *at_rv == rv && at.elapsed() < WRITE_PATIENCE)
                {
                    continue;
                }
                tracing::info!(configuration = name, verb = op.verb(), "updating webhook configuration");
                submitted.insert(name, (rv, Instant::now()));
                let target = ObjectRef::new(Arc::new(resource.clone()), None, name);
                self.writer.submit(WriteRequest::new(target, op, ""));
            }
        }
        for w in watches {
            w.abort();
        }
    }

    fn keep_secret(
        &self,
        observed: Option<&secret::ObservedSecret>,
        submitted: &mut HashMap<&'static str, (String, Instant)>,
    ) {
        let rv = observed.map(|o| o.resource_version.clone()).unwrap_or_default();
        if submitted
            .get(names::WEBHOOK_CERT_SECRET)
            .is_some_and(|(at_rv, at)| *at_rv == rv && at.elapsed() < WRITE_PATIENCE)
        {
            return;
        }
        let names = self.endpoint.serving_names(&self.namespace);
        match secret::plan(observed, &self.namespace, &names, time::OffsetDateTime::now_utc()) {
            Ok(None) => {}
            Ok(Some((request, reason))) => {
                tracing::info!(
                    secret = names::WEBHOOK_CERT_SECRET,
                    reason,
                    "writing the webhook certificate"
                );
                submitted.insert(names::WEBHOOK_CERT_SECRET, (rv, Instant::now()));
                self.writer.submit(request);
            }
            Err(error) => tracing::error!(%error, "cannot issue the webhook certificate"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::resolve::DiscoveredResource;
    use hnc_api::SyncMode;

    fn active(group: &str, plural: &str, mode: SyncMode) -> ActiveType {
        ActiveType {
            resource: DiscoveredResource {
                group: group.into(),
                version: "v1".into(),
                kind: plural.into(),
                plural: plural.into(),
                singular: String::new(),
                namespaced: true,
            },
            mode,
            spec_group: group.into(),
            spec_resource: plural.into(),
        }
    }

    fn url() -> Endpoint {
        Endpoint::Url("https://127.0.0.1:9443/".into())
    }

    fn written(op: WriteOp) -> Value {
        match op {
            WriteOp::Create(o) | WriteOp::Update(o) => o.build(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn entries_are_upstreams() {
        let service = Endpoint::Service { namespace: "hnc-system".into() };
        let entries = validating_entries(&service, objects_rules(&[]), false);
        let names: Vec<&str> = entries.iter().map(|e| e["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "subnamespaceanchors.hnc.x-k8s.io",
                "hierarchyconfigurations.hnc.x-k8s.io",
                "hncconfigurations.hnc.x-k8s.io",
                "namespaces.hnc.x-k8s.io",
                "objects.hnc.x-k8s.io"
            ]
        );
        assert_eq!(
            entries[3],
            json!({
                "name": "namespaces.hnc.x-k8s.io", "admissionReviewVersions": ["v1"], "failurePolicy": "Fail",
                "sideEffects": "None",
                "clientConfig": {"service": {"name": "hnc-webhook-service", "namespace": "hnc-system", "path": "/validate-v1-namespace"}},
                "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["DELETE", "CREATE", "UPDATE"], "resources": ["namespaces"]}],
            })
        );
        let objects = &entries[4];
        assert_eq!(objects["timeoutSeconds"], 2);
        assert_eq!(
            objects["namespaceSelector"],
            json!({"matchLabels": {"hnc.x-k8s.io/included-namespace": "true"}})
        );
        assert!(objects.get("rules").is_none(), "rules unknown until the types are resolved");
        let mutating = mutating_entries(&url());
        assert_eq!(mutating[0]["failurePolicy"], "Ignore");
        assert_eq!(mutating[0]["clientConfig"], json!({"url": "https://127.0.0.1:9443/mutate-namespace"}));
    }

    #[test]
    fn objects_rules_group_the_active_types() {
        let rules = objects_rules(&[
            active("rbac.authorization.k8s.io", "roles", SyncMode::Propagate),
            active("rbac.authorization.k8s.io", "rolebindings", SyncMode::Propagate),
            active("", "secrets", SyncMode::Ignore),
        ]);
        assert_eq!(
            rules.unwrap(),
            json!([
                {"apiGroups": [""], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE", "DELETE"], "resources": ["secrets"]},
                {"apiGroups": ["rbac.authorization.k8s.io"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE", "DELETE"], "resources": ["rolebindings", "roles"]},
            ])
        );
    }

    #[test]
    fn registration_writes_once_and_ignores_server_defaults() {
        let rules = objects_rules(&[active("rbac.authorization.k8s.io", "roles", SyncMode::Propagate)]);
        let entries = validating_entries(&url(), rules.clone(), false);
        let created = written(
            plan("v", "ValidatingWebhookConfiguration", None, &entries, Some("Q0E="), Scope::Register)
                .unwrap(),
        );
        assert_eq!(created["webhooks"][0]["clientConfig"]["caBundle"], "Q0E=");
        assert_eq!(created["webhooks"][4]["clientConfig"]["url"], "https://127.0.0.1:9443/validate-objects");
        // The API server adds defaults and a foreign entry appears: nothing to write.
        let mut stored = created.clone();
        stored["metadata"]["resourceVersion"] = json!("7");
        for e in stored["webhooks"].as_array_mut().unwrap() {
            e["matchPolicy"] = json!("Equivalent");
            e["timeoutSeconds"] = e.get("timeoutSeconds").cloned().unwrap_or(json!(10));
            e["rules"][0]["scope"] = json!("*");
        }
        stored["webhooks"].as_array_mut().unwrap().push(json!({"name": "hrq.hnc.x-k8s.io"}));
        assert!(
            plan(
                "v",
                "ValidatingWebhookConfiguration",
                Some(&stored),
                &entries,
                Some("Q0E="),
                Scope::Register
            )
            .is_none()
        );
        // A new CA or new types: one update, defaults and the foreign entry kept.
        let more = objects_rules(&[
            active("rbac.authorization.k8s.io", "roles", SyncMode::Propagate),
            active("", "secrets", SyncMode::Propagate),
        ]);
        let updated = written(
            plan(
                "v",
                "ValidatingWebhookConfiguration",
                Some(&stored),
                &validating_entries(&url(), more, false),
                Some("TkVX"),
                Scope::Register,
            )
            .unwrap(),
        );
        assert_eq!(updated["metadata"]["resourceVersion"], "7");
        assert_eq!(updated["webhooks"][0]["clientConfig"]["caBundle"], "TkVX");
        assert_eq!(updated["webhooks"][0]["matchPolicy"], "Equivalent");
        assert_eq!(updated["webhooks"][4]["rules"].as_array().unwrap().len(), 2);
        assert_eq!(updated["webhooks"][5]["name"], "hrq.hnc.x-k8s.io");
        // Without certificate management, the CA found is kept.
        assert!(
            plan("v", "ValidatingWebhookConfiguration", Some(&stored), &entries, None, Scope::Register)
                .is_none()
        );
    }

    /// Upstream HNC v1.1's validating configuration as its installation and certificate rotator leave it
    /// (config/webhook/manifests.yaml with webhook_patch.yaml; the API server's defaults added).
    fn upstream_validating(ca: &str) -> Value {
        let hook = |name: &str, path: &str, rules: Value| {
            json!({
                "name": name, "admissionReviewVersions": ["v1"], "failurePolicy": "Fail", "sideEffects": "None",
                "matchPolicy": "Equivalent", "timeoutSeconds": 10, "namespaceSelector": {}, "objectSelector": {},
                "clientConfig": {"caBundle": ca, "service": {"name": "hnc-webhook-service", "namespace": "hnc-system", "path": path, "port": 443}},
                "rules": rules,
            })
        };
        let crd = |ops: Value, resource: &str| json!([{"apiGroups": ["hnc.x-k8s.io"], "apiVersions": ["v1alpha2"], "operations": ops, "resources": [resource], "scope": "*"}]);
        let mut objects = hook(
            "objects.hnc.x-k8s.io",
            "/validate-objects",
            json!([{"apiGroups": ["*"], "apiVersions": ["*"], "operations": ["CREATE", "UPDATE", "DELETE"], "resources": ["*"], "scope": "Namespaced"}]),
        );
        objects["timeoutSeconds"] = json!(2);
        objects["namespaceSelector"] = json!({"matchLabels": {"hnc.x-k8s.io/included-namespace": "true"}});
        json!({"metadata": {"name": "hnc-validating-webhook-configuration", "resourceVersion": "9"}, "webhooks": [
            hook("subnamespaceanchors.hnc.x-k8s.io", "/validate-hnc-x-k8s-io-v1alpha2-subnamespaceanchors", crd(json!(["CREATE", "UPDATE", "DELETE"]), "subnamespaceanchors")),
            hook("hierarchyconfigurations.hnc.x-k8s.io", "/validate-hnc-x-k8s-io-v1alpha2-hierarchyconfigurations", crd(json!(["CREATE", "UPDATE"]), "hierarchyconfigurations")),
            objects,
            hook("hncconfigurations.hnc.x-k8s.io", "/validate-hnc-x-k8s-io-v1alpha2-hncconfigurations", crd(json!(["CREATE", "UPDATE", "DELETE"]), "hncconfigurations")),
            hook("namespaces.hnc.x-k8s.io", "/validate-v1-namespace", json!([{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["DELETE", "CREATE", "UPDATE"], "resources": ["namespaces"], "scope": "*"}])),
        ]})
    }

    #[test]
    fn upstreams_configuration_is_taken_over_by_its_objects_rules_alone() {
        let service = Endpoint::Service { namespace: "hnc-system".into() };
        let installed = upstream_validating("VVBTVFJFQU0=");
        // Before the types are known: upstream's configuration already says everything HNC sets.
        let entries = validating_entries(&service, None, false);
        let kind = "ValidatingWebhookConfiguration";
        assert!(plan("v", kind, Some(&installed), &entries, Some("VVBTVFJFQU0="), Scope::Register).is_none());
        // Then the objects entry's rules narrow to the propagated types; nothing else changes, not the order.
        let rules = objects_rules(&[
            active("rbac.authorization.k8s.io", "roles", SyncMode::Propagate),
            active("rbac.authorization.k8s.io", "rolebindings", SyncMode::Propagate),
        ]);
        let entries = validating_entries(&service, rules.clone(), false);
        let updated = written(
            plan("v", kind, Some(&installed), &entries, Some("VVBTVFJFQU0="), Scope::Register).unwrap(),
        );
        let mut expected = installed.clone();
        expected["webhooks"][2]["rules"] = rules.unwrap();
        assert_eq!(updated, expected);
        assert!(plan("v", kind, Some(&updated), &entries, Some("VVBTVFJFQU0="), Scope::Register).is_none());
    }

    #[test]
    fn patching_touches_only_existing_entries() {
        assert!(
            plan(
                "v",
                "ValidatingWebhookConfiguration",
                None,
                &validating_entries(&url(), None, false),
                Some("Q0E="),
                Scope::PatchExisting
            )
            .is_none()
        );
        let installed = json!({"metadata": {"name": "v", "resourceVersion": "3"}, "webhooks": [
            {"name": "objects.hnc.x-k8s.io", "clientConfig": {"service": {"name": "hnc-webhook-service", "namespace": "x", "path": "/validate-objects"}}, "rules": []},
        ]});
        let rules = objects_rules(&[active("", "secrets", SyncMode::Propagate)]);
        let updated = written(
            plan(
                "v",
                "ValidatingWebhookConfiguration",
                Some(&installed),
                &validating_entries(&url(), rules, false),
                Some("Q0E="),
                Scope::PatchExisting,
            )
            .unwrap(),
        );
        let webhooks = updated["webhooks"].as_array().unwrap();
        assert_eq!(webhooks.len(), 1, "no entry is added");
        assert_eq!(webhooks[0]["clientConfig"]["service"]["namespace"], "x", "the endpoint is left alone");
        assert_eq!(webhooks[0]["clientConfig"]["caBundle"], "Q0E=");
        assert_eq!(webhooks[0]["rules"][0]["resources"], json!(["secrets"]));
    }

    #[test]
    fn service_registrations_are_completed_only_with_their_certificate() {
        let service = Endpoint::Service { namespace: "hnc-system".into() };
        assert_eq!(effective_scope(&service, false, Scope::Register), Scope::PatchExisting);
        assert_eq!(effective_scope(&service, true, Scope::Register), Scope::Register);
        assert_eq!(effective_scope(&url(), false, Scope::Register), Scope::Register);
        assert_eq!(effective_scope(&url(), true, Scope::PatchExisting), Scope::PatchExisting);
    }

    #[test]
    fn urls_and_serving_names() {
        assert_eq!(url_host("https://127.0.0.1:9443/x"), Some("127.0.0.1"));
        assert_eq!(url_host("https://hnc.example.com"), Some("hnc.example.com"));
        assert_eq!(url_host("https://[::1]:8443"), Some("[::1]"));
        assert!(url_has_port("https://127.0.0.1:9443"));
        assert!(!url_has_port("https://127.0.0.1"));
        assert!(!url_has_port("https://[::1]"));
        let names = url().serving_names("hnc-system");
        assert_eq!(names.ips, vec!["127.0.0.1".parse::<std::net::IpAddr>().unwrap()]);
        assert!(names.dns.is_empty(), "{names:?}");
        assert!(names.optional_dns.contains(&"hnc-webhook-service.hnc-system.svc".to_owned()));
        let service = Endpoint::Service { namespace: "hnc-system".into() }.serving_names("hnc-system");
        assert_eq!(service.dns, ["hnc-webhook-service.hnc-system.svc"], "the name the API server dials");
    }
}
