//! The Secret `hnc-webhook-server-cert` in HNC's namespace: every replica serves the certificate it holds and
//! reloads it whenever it changes (no restart); with `--enable-internal-cert-management` the leader creates
//! it, re-issues the serving certificate before it expires or when the names it must cover change, and
//! replaces the CA before it expires (see [`super::certs`] for the policy).
//!
//! Without internal management something else (cert-manager, an operator) keeps the Secret filled; only its
//! `tls.crt` and `tls.key` are read then.

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine;
use hnc_api::keys::names;
use k8s_openapi::api::core::v1::Secret;
use kube::core::ApiResource;
use kube::runtime::watcher;
use kube::{Api, Client};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::sync::{mpsc, watch};

use super::certs::{self, CertBundle, CertError, Renewal, ServingNames, TLS_CERT_KEY, TLS_KEY_KEY};
use crate::ops::Readiness;
use crate::watch::{Change, feed};
use crate::webhook::tls::ReloadableCert;
use crate::writer::{ObjectRef, WriteOp, WriteRequest};

/// The readiness gate that stays closed until a serving certificate is loaded.
pub const READY_GATE: &str = "webhook-certs";

/// The Secret as last observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedSecret {
    /// `metadata.resourceVersion`.
    pub resource_version: String,
    /// `type`, kept when the leader rewrites the data.
    pub type_: Option<String>,
    /// `data`, decoded.
    pub data: BTreeMap<String, Vec<u8>>,
}

impl ObservedSecret {
    fn of(secret: &Secret) -> Self {
        ObservedSecret {
            resource_version: secret.metadata.resource_version.clone().unwrap_or_default(),
            type_: secret.type_.clone(),
            data: secret.data.iter().flatten().map(|(k, v)| (k.clone(), v.0.clone())).collect(),
        }
    }

    fn text(&self, key: &str) -> Option<&str> {
        self.data.get(key).and_then(|v| std::str::from_utf8(v).ok()).filter(|s| !s.is_empty())
    }

    /// The CA certificates (`ca.crt`), base64-encoded as a webhook configuration's `caBundle`.
    pub fn ca_bundle(&self) -> Option<String> {
        self.text(certs::CA_CERT_KEY).map(|pem| base64::engine::general_purpose::STANDARD.encode(pem))
    }
}

/// What the Secret's watch last showed. Published for the leader's upkeep, which must not take "not listed
/// yet" for "absent": it would create a Secret (a new CA) where one exists.
#[derive(Debug, Clone, Default)]
pub enum SecretState {
    /// The watch has not listed yet.
    #[default]
    Unlisted,
    /// Listed: there is no such Secret.
    Absent,
    /// The Secret as last seen.
    Present(Arc<ObservedSecret>),
}

impl SecretState {
    /// True once the watch has listed.
    pub fn is_listed(&self) -> bool {
        !matches!(self, SecretState::Unlisted)
    }

    /// The Secret, when it is known to exist.
    pub fn observed(&self) -> Option<&ObservedSecret> {
        match self {
            SecretState::Present(observed) => Some(observed),
            _ => None,
        }
    }
}

/// Every replica: watches the Secret, loads each new serving certificate into `cert` and opens [`READY_GATE`]
/// once one is loaded; publishes what it saw on `state` (kept with no receiver, as on `--webhooks-only`
/// replicas). Runs until cancelled.
pub async fn watch_secret(
    client: Client,
    namespace: String,
    cert: Arc<ReloadableCert>,
    ready: Readiness,
    state: watch::Sender<SecretState>,
) {
    let (tx, mut rx) = mpsc::channel(16);
    let api: Api<Secret> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={}", names::WEBHOOK_CERT_SECRET));
    let watch = tokio::spawn(feed(api, config, tx, "secrets".to_owned(), |c| c));
    let mut loaded: Option<(String, String)> = None;
    let mut seen = false;
    while let Some(change) = rx.recv().await {
        match change {
            Change::Apply(secret) => {
                seen = true;
                let observed = ObservedSecret::of(&secret);
                if load(&cert, &observed, &mut loaded) {
                    ready.set(READY_GATE, true);
                }
                state.send_replace(SecretState::Present(Arc::new(observed)));
            }
            Change::Delete(_) => {
                tracing::warn!(
                    secret = names::WEBHOOK_CERT_SECRET,
                    "webhook certificate Secret deleted; serving the last certificate loaded"
                );
                state.send_replace(SecretState::Absent);
            }
            Change::Synced => {
                if !seen {
                    state.send_replace(SecretState::Absent);
                    tracing::info!(
                        namespace,
                        secret = names::WEBHOOK_CERT_SECRET,
                        "waiting for the webhook certificate Secret \
                         (--enable-internal-cert-management makes the leader create it)"
                    );
                }
            }
        }
    }
    watch.abort();
}

/// Loads the Secret's serving certificate into `cert` unless it is the one `loaded` already; true once one
/// is loaded.
fn load(cert: &ReloadableCert, observed: &ObservedSecret, loaded: &mut Option<(String, String)>) -> bool {
    let (Some(cert_pem), Some(key_pem)) = (observed.text(TLS_CERT_KEY), observed.text(TLS_KEY_KEY)) else {
        return loaded.is_some();
    };
    let pair = (cert_pem.to_owned(), key_pem.to_owned());
    if loaded.as_ref() == Some(&pair) {
        return true;
    }
    match cert.load(cert_pem, key_pem) {
        Ok(()) => {
            tracing::info!(
                secret = names::WEBHOOK_CERT_SECRET,
                resource_version = %observed.resource_version,
                "webhook serving certificate loaded"
            );
            *loaded = Some(pair);
        }
        Err(error) => {
            tracing::warn!(%error, "webhook serving certificate not loaded; keeping the previous one");
        }
    }
    loaded.is_some()
}

/// The leader's next write to the Secret, with the reason, or `None` when the stored bundle is good for
/// `names` at `now`.
pub fn plan(
    observed: Option<&ObservedSecret>,
    namespace: &str,
    names: &ServingNames,
    now: OffsetDateTime,
) -> Result<Option<(WriteRequest, String)>, CertError> {
    let bundle = observed.and_then(|o| certs::from_secret_data(&o.data));
    let (fresh, reason) = match certs::assess(bundle.as_ref(), names, now) {
        Renewal::Keep => return Ok(None),
        Renewal::Serving(reason) => match &bundle {
            Some(bundle) => (certs::reissue_serving(bundle, names, now)?, reason),
            None => (certs::rotate_ca(None, names, now)?, reason),
        },
        Renewal::All(reason) => (certs::rotate_ca(bundle.as_ref(), names, now)?, reason),
    };
    let target = ObjectRef::new(
        Arc::new(ApiResource::erase::<Secret>(&())),
        Some(namespace),
        names::WEBHOOK_CERT_SECRET,
    );
    let op = match observed {
        None => WriteOp::create(secret_object(namespace, None, None, &fresh, &BTreeMap::new())),
        Some(o) => WriteOp::update(secret_object(
            namespace,
            Some(&o.resource_version),
            o.type_.as_deref(),
            &fresh,
            &o.data,
        )),
    };
    Ok(Some((WriteRequest::new(target, op, ""), reason)))
}

/// The Secret holding `bundle`; data keys other than the bundle's are kept.
fn secret_object(
    namespace: &str,
    resource_version: Option<&str>,
    type_: Option<&str>,
    bundle: &CertBundle,
    previous: &BTreeMap<String, Vec<u8>>,
) -> Value {
    let b64 = |bytes: &[u8]| Value::String(base64::engine::general_purpose::STANDARD.encode(bytes));
    let mut data: serde_json::Map<String, Value> =
        previous.iter().map(|(k, v)| (k.clone(), b64(v))).collect();
    for (k, v) in certs::to_secret_data(bundle) {
        data.insert(k, b64(&v));
    }
    let mut metadata = json!({"name": names::WEBHOOK_CERT_SECRET, "namespace": namespace});
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    let mut secret = json!({"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "data": data});
    if let Some(t) = type_ {
        secret["type"] = json!(t);
    }
    secret
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> ServingNames {
        ServingNames::for_service(names::WEBHOOK_SERVICE, "hnc-system")
    }

    fn observed_from(request: &WriteRequest, rv: &str) -> ObservedSecret {
        let object = match &request.op {
            WriteOp::Create(o) | WriteOp::Update(o) => o.build(),
            other => panic!("unexpected {other:?}"),
        };
        let secret: Secret = serde_json::from_value(object).unwrap();
        let mut observed = ObservedSecret::of(&secret);
        observed.resource_version = rv.into();
        observed
    }

    #[test]
    fn the_leader_creates_then_keeps_then_renews() {
        let now = OffsetDateTime::now_utc();
        let (create, reason) = plan(None, "hnc-system", &names(), now).unwrap().unwrap();
        assert!(matches!(create.op, WriteOp::Create(_)), "{reason}");
        assert_eq!(&*create.scope, "", "a cluster singleton: only the leader's write passes the fence");
        let stored = observed_from(&create, "5");
        assert!(stored.ca_bundle().is_some());
        assert!(plan(Some(&stored), "hnc-system", &names(), now).unwrap().is_none());

        // Serving in URL mode too: the serving certificate is re-issued under the same CA.
        let mut wider = names();
        wider.ips.push("127.0.0.1".parse().unwrap());
        let (update, reason) = plan(Some(&stored), "hnc-system", &wider, now).unwrap().unwrap();
        assert!(reason.contains("127.0.0.1"), "{reason}");
        let WriteOp::Update(object) = &update.op else { panic!("an update") };
        let object = object.build();
        assert_eq!(object["metadata"]["resourceVersion"], "5");
        let renewed = observed_from(&update, "6");
        assert_eq!(renewed.ca_bundle(), stored.ca_bundle());
        assert!(plan(Some(&renewed), "hnc-system", &wider, now).unwrap().is_none());
    }

    #[test]
    fn a_secret_without_a_usable_ca_gets_a_new_one_and_keeps_its_other_keys() {
        let now = OffsetDateTime::now_utc();
        let empty = ObservedSecret {
            resource_version: "1".into(),
            type_: Some("kubernetes.io/tls".into()),
            data: [("extra".to_owned(), b"kept".to_vec())].into(),
        };
        let (update, _) = plan(Some(&empty), "hnc-system", &names(), now).unwrap().unwrap();
        let WriteOp::Update(object) = &update.op else { panic!("an update") };
        let object = object.build();
        assert_eq!(object["type"], "kubernetes.io/tls");
        assert_eq!(object["data"]["extra"], base64::engine::general_purpose::STANDARD.encode("kept"));
        assert!(plan(Some(&observed_from(&update, "2")), "hnc-system", &names(), now).unwrap().is_none());
    }
}
