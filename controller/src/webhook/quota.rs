//! The hierarchical quota webhooks (spec §8.9), on every replica with `--enable-hrq`:
//!
//! * [`QuotaStatusValidator`] (`resourcesquotasstatus.hnc.x-k8s.io`) judges the API server's own quota
//!   admission as it records a new usage in a namespace's singleton `hrq.hnc.x-k8s.io`: allowed only if no
//!   HRQ above goes over its `hard`. Unlike upstream, an allowed increase is first *charged* to every HRQ it
//!   counts against, by a write conditional on the HRQ's resourceVersion: two admissions under one HRQ, on
//!   any replicas, cannot both pass a check against the same total — the second one's write conflicts, it
//!   reads the HRQ again, and decides with the first one's charge counted (design: `docs/hrq.md`).
//! * [`HrqValidator`] (`hrq.hnc.x-k8s.io`) checks an HRQ's `spec.hard` as the API server checks a
//!   ResourceQuota's, by a dry-run create of one, and refuses HRQs in namespaces HNC does not manage.

use std::time::Duration;

use hnc_api::HierarchicalResourceQuota;
use hnc_api::keys::{annotations, names};
use hnc_shard::TreeReader;
use hnc_shard::hrq::{Charge, Charges, Exceeded, ResourceList, encode_charges};
use hnc_shard::view::NsName;
use k8s_openapi::api::core::v1::ResourceQuota;
use kube::api::{Patch, PatchParams, PostParams};
use kube::core::admission::{AdmissionRequest, AdmissionResponse, Operation};
use kube::core::response::{StatusCause, StatusDetails};
use kube::core::{DynamicObject, Status};
use kube::{Api, Client};
use serde_json::json;

use super::decode;
use super::review::{Handler, allow, deny};
use crate::hrq::QuotaView;
use crate::hrq::view::read_list;

/// The user kube-apiserver's quota admission writes ResourceQuota status as.
const API_SERVER_USER: &str = "system:apiserver";
/// How many times an admission reads an HRQ again after its charge lost a race.
const CHARGE_ROUNDS: usize = 8;
/// The longest one API call of a quota admission may take (the webhook's own timeout is the API server's).
const CALL_TIMEOUT: Duration = Duration::from_secs(3);

/// `resourcesquotasstatus.hnc.x-k8s.io`.
pub struct QuotaStatusValidator {
    view: QuotaView,
    tree: TreeReader,
    client: Client,
}

impl QuotaStatusValidator {
    /// The validator, deciding from `view` and `tree` and charging HRQs through `client`.
    pub fn new(view: QuotaView, tree: TreeReader, client: Client) -> Self {
        QuotaStatusValidator { view, tree, client }
    }

    /// Decides whether `ns` may use `proposed` (absolute amounts) from the view as it is now: the HRQs to charge,
    /// each with the version and charges the decision counted, or the HRQ it would exceed.
    fn decide(&self, ns: &NsName, proposed: &ResourceList) -> Result<Vec<ChargeBasis>, Exceeded> {
        let state = self.view.read();
        let tree = self.tree.load();
        let admission = state.model.admit(&*tree, ns, proposed)?;
        Ok(admission
            .hrqs
            .into_iter()
            .map(|(hrq_ns, hrq)| {
                let key = (hrq_ns, hrq);
                let version = state.hrqs.get(&key).map(|observed| observed.resource_version.clone());
                let charges = state.model.charges(&key.0, &key.1).cloned().unwrap_or_default();
                ChargeBasis { hrq_ns: key.0, hrq: key.1, version, charges }
            })
            .collect())
    }

    /// Records `charge` for `ns` on the HRQ of `basis`, conditional on the version the decision counted — not
    /// the version the view shows now: another admission's charge may have reached the view since, and a write
    /// conditional on that newer version would succeed without the decision having counted it. Ok(true):
    /// charged; Ok(false): the HRQ changed since the decision (the view now shows it as it is); Err: the API
    /// call failed.
    async fn charge(&self, basis: &ChargeBasis, ns: &NsName, charge: &Charge) -> Result<bool, String> {
        let ChargeBasis { hrq_ns, hrq, version, charges } = basis;
        let Some(version) = version else { return Ok(false) };
        let mut charges = charges.clone();
        charges.insert(ns.clone(), charge.clone());
        let api: Api<HierarchicalResourceQuota> = Api::namespaced(self.client.clone(), hrq_ns);
        let patch = json!({"metadata": {
            "resourceVersion": version,
            "annotations": {annotations::HRQ_CHARGES: encode_charges(&charges)},
        }});
        let params = PatchParams::default();
        let patch = Patch::Merge(&patch);
        match tokio::time::timeout(CALL_TIMEOUT, api.patch(hrq, &params, &patch)).await {
            Ok(Ok(fresh)) => {
                self.view.write().apply_hrq(&fresh);
                Ok(true)
            }
            Ok(Err(kube::Error::Api(status))) if status.code == 409 => {
                let read = tokio::time::timeout(CALL_TIMEOUT, api.get_opt(hrq)).await;
                match read {
                    Ok(Ok(Some(fresh))) => {
                        self.view.write().apply_hrq(&fresh);
                    }
                    Ok(Ok(None)) => self.view.write().delete_hrq(hrq_ns, hrq),
                    Ok(Err(error)) => return Err(error.to_string()),
                    Err(_) => return Err("reading the hierarchical quota timed out".to_owned()),
                }
                metrics::counter!("hnc_hrq_charge_conflicts_total").increment(1);
                Ok(false)
            }
            Ok(Err(kube::Error::Api(status))) if status.code == 404 => {
                self.view.write().delete_hrq(hrq_ns, hrq);
                Ok(false)
            }
            Ok(Err(error)) => Err(error.to_string()),
            Err(_) => Err("recording the use on the hierarchical quota timed out".to_owned()),
        }
    }
}

/// One HRQ an admission must charge, as the decision saw it.
struct ChargeBasis {
    hrq_ns: NsName,
    hrq: String,
    /// The HRQ's resourceVersion the decision read (None: the view has no such HRQ any more).
    version: Option<String>,
    /// The charges the decision counted.
    charges: Charges,
}

impl Handler for QuotaStatusValidator {
    fn name(&self) -> &'static str {
        "resourcesquotasstatus.hnc.x-k8s.io"
    }

    async fn review(&self, request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        if request.name != names::HRQ_RESOURCE_QUOTA
            || request.user_info.username.as_deref() != Some(API_SERVER_USER)
            || request.operation != Operation::Update
        {
            return allow(request, "not a usage recorded in an HNC quota");
        }
        let resp = || AdmissionResponse::from(request);
        let quota = match decode::<ResourceQuota>(request.object.as_ref()) {
            Ok(quota) => quota,
            Err(error) => return deny::bad_request(resp(), &error),
        };
        let from =
            request.old_object.as_ref().and_then(|o| o.metadata.resource_version.clone()).unwrap_or_default();
        let ns: NsName = request.namespace.as_deref().unwrap_or_default().into();
        let proposed: ResourceList = quota
            .status
            .as_ref()
            .and_then(|s| s.used.as_ref())
            .into_iter()
            .flatten()
            .filter_map(|(r, q)| Some((r.clone(), hnc_api::quantity::parse(&q.0)?)))
            .collect();
        if !self.view.read().is_synced() {
            return deny::unavailable(resp(), "hierarchical quotas are not loaded yet on this replica");
        }
        let charge = Charge { from, used: proposed.clone(), at: jiff::Timestamp::now().as_second() };
        for _ in 0..CHARGE_ROUNDS {
            let bases = match self.decide(&ns, &proposed) {
                Ok(bases) => bases,
                Err(exceeded) => {
                    metrics::counter!("hnc_hrq_denials_total").increment(1);
                    return forbidden(resp(), exceeded.to_string());
                }
            };
            let mut all_charged = true;
            for basis in &bases {
                match self.charge(basis, &ns, &charge).await {
                    Ok(true) => {}
                    Ok(false) => {
                        all_charged = false;
                        break;
                    }
                    Err(error) => {
                        let (hrq_ns, hrq) = (&basis.hrq_ns, &basis.hrq);
                        tracing::warn!(namespace = %ns, %error, "could not charge a hierarchical quota");
                        return deny::internal(
                            resp(),
                            &format!(
                                "could not record the use on hierarchical quota {hrq_ns}/{hrq}: {error}"
                            ),
                        );
                    }
                }
            }
            if all_charged {
                return allow(request, "within every hierarchical quota");
            }
        }
        deny::unavailable(
            resp(),
            "too many concurrent uses of the same hierarchical quota; the API server retries this request",
        )
    }
}

/// 403 with upstream's message as is (the API server prefixes the webhook's name).
fn forbidden(resp: AdmissionResponse, message: String) -> AdmissionResponse {
    let mut resp = resp.deny(&message);
    resp.result = Status::failure(&message, "Forbidden").with_code(403);
    resp
}

/// `hrq.hnc.x-k8s.io`.
pub struct HrqValidator {
    tree: TreeReader,
    client: Client,
}

impl HrqValidator {
    /// The validator; `client` makes the dry-run ResourceQuota creates.
    pub fn new(tree: TreeReader, client: Client) -> Self {
        HrqValidator { tree, client }
    }
}

impl Handler for HrqValidator {
    fn name(&self) -> &'static str {
        "hrq.hnc.x-k8s.io"
    }

    async fn review(&self, request: &AdmissionRequest<DynamicObject>) -> AdmissionResponse {
        let resp = || AdmissionResponse::from(request);
        let hrq = match decode::<HierarchicalResourceQuota>(request.object.as_ref()) {
            Ok(hrq) => hrq,
            Err(error) => return deny::bad_request(resp(), &error),
        };
        // Status and charges change without the limits changing: nothing to check.
        if request.operation == Operation::Update
            && let Ok(old) = decode::<HierarchicalResourceQuota>(request.old_object.as_ref())
            && old.spec.hard == hrq.spec.hard
        {
            return allow(request, "limits unchanged");
        }
        let ns = request.namespace.clone().unwrap_or_default();
        if let Some(why) = self.tree.load().policy().why_unmanaged(&ns) {
            let detail = format!(
                "namespace {ns:?} is not managed by HNC ({why}): a hierarchical quota there would never be enforced"
            );
            return deny::forbidden(
                resp(),
                "hierarchicalresourcequotas.hnc.x-k8s.io",
                &request.name,
                &detail,
            );
        }
        let (_, unreadable) = read_list(&hrq.spec.hard);
        if let Some(resource) = unreadable.first() {
            return invalid(resp(), format!("spec.hard[{resource}]: Invalid value: not a quantity"));
        }
        // The API server's own validation of a ResourceQuota with these limits.
        let probe = json!({
            "apiVersion": "v1",
            "kind": "ResourceQuota",
            "metadata": {
                "name": format!("{}{:020x}", names::HRQ_VALIDATING_RQ_PREFIX, rand::random::<u128>() >> 48),
                "namespace": ns,
            },
            "spec": {"hard": hrq.spec.hard},
        });
        let probe: ResourceQuota = match serde_json::from_value(probe) {
            Ok(probe) => probe,
            Err(error) => return deny::bad_request(resp(), &format!("cannot read spec.hard: {error}")),
        };
        let api: Api<ResourceQuota> = Api::namespaced(self.client.clone(), &ns);
        let params = PostParams { dry_run: true, ..Default::default() };
        match tokio::time::timeout(CALL_TIMEOUT, api.create(&params, &probe)).await {
            Ok(Ok(_)) => allow(request, "limits are valid"),
            Ok(Err(kube::Error::Api(status))) => {
                // Upstream relays the API server's message without its "ResourceQuota "…" is invalid: " head.
                let message = match status.message.split_once(": ") {
                    Some((_, rest)) => rest.to_owned(),
                    None => status.message.clone(),
                };
                invalid(resp(), message)
            }
            Ok(Err(error)) => deny::internal(resp(), &format!("could not validate spec.hard: {error}")),
            Err(_) => {
                deny::internal(resp(), "could not validate spec.hard: the API server did not answer in time")
            }
        }
    }
}

/// 422 Invalid with `message` for `.spec.hard`, as upstream answers.
fn invalid(resp: AdmissionResponse, message: String) -> AdmissionResponse {
    let mut resp = resp.deny(&message);
    let mut status = Status::failure(&message, "Invalid").with_code(422);
    status.details = Some(StatusDetails {
        name: String::new(),
        group: String::new(),
        kind: String::new(),
        uid: String::new(),
        causes: vec![StatusCause {
            reason: String::new(),
            message: message.clone(),
            field: ".spec.hard".to_owned(),
        }],
        retry_after_seconds: 0,
    });
    resp.result = status;
    resp
}

/// The HRQ webhooks' shared inputs.
#[derive(Clone)]
pub struct QuotaWebhooks {
    /// The quota view the reconciler keeps.
    pub view: QuotaView,
    /// Charges and dry runs.
    pub client: Client,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use kube::config::{KubeConfigOptions, Kubeconfig};
    use serde_json::json;

    use super::*;
    use crate::webhook::testing::Forest;

    fn pods(n: &str) -> ResourceList {
        [("pods".to_owned(), hnc_api::quantity::parse(n).unwrap())].into()
    }

    fn singleton(ns: &str, used: &str) -> ResourceQuota {
        serde_json::from_value(json!({
            "metadata": {"name": names::HRQ_RESOURCE_QUOTA, "namespace": ns, "resourceVersion": "1"},
            "spec": {"hard": {"pods": "1"}}, "status": {"hard": {"pods": "1"}, "used": {"pods": used}}}))
        .unwrap()
    }

    /// Two admissions in sibling namespaces decide from the same view, with room for one of them; the first
    /// to charge wins. The second's charge must be conditional on the HRQ as its decision saw it, so it
    /// conflicts even though the view, by then, shows the HRQ with the first one's charge — and deciding
    /// again, it is refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_charge_is_conditional_on_the_hrq_its_decision_counted() {
        let sim = hnc_apisim::ApiSim::start(Default::default()).await.unwrap();
        let crds = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds");
        hnc_apisim::install_crds_from_dir(&sim, &crds).await.unwrap();
        for ns in ["root", "a", "b"] {
            sim.create("", "namespaces", "", json!({"metadata": {"name": ns}})).unwrap();
        }
        let kubeconfig = Kubeconfig::from_yaml(&sim.kubeconfig_yaml(sim.admin_token())).unwrap();
        let config =
            kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
        let client = Client::try_from(config).unwrap();
        let hrqs: Api<HierarchicalResourceQuota> = Api::namespaced(client.clone(), "root");
        let hrq: HierarchicalResourceQuota = serde_json::from_value(json!({
            "apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HierarchicalResourceQuota",
            "metadata": {"name": "budget", "namespace": "root"}, "spec": {"hard": {"pods": "1"}}}))
        .unwrap();
        let hrq = hrqs.create(&PostParams::default(), &hrq).await.unwrap();

        let view = QuotaView::new();
        {
            let mut state = view.write();
            state.apply_hrq(&hrq);
            state.apply_singleton(&singleton("a", "0"));
            state.apply_singleton(&singleton("b", "0"));
            state.hrqs_synced = true;
            state.singletons_synced = true;
        }
        let tree = Forest::new().ns("root").child("a", "root").child("b", "root").context().tree;
        let validator = QuotaStatusValidator::new(view, tree, client);
        let (a, b): (NsName, NsName) = ("a".into(), "b".into());
        let in_a = validator.decide(&a, &pods("1")).expect("room for one pod");
        let in_b = validator.decide(&b, &pods("1")).expect("room for one pod");
        assert_eq!(in_a.len(), 1);
        let charge = Charge { from: "1".to_owned(), used: pods("1"), at: 0 };
        assert_eq!(validator.charge(&in_b[0], &b, &charge).await, Ok(true), "the first charge is recorded");
        assert_eq!(
            validator.charge(&in_a[0], &a, &charge).await,
            Ok(false),
            "a charge decided before the other one was recorded must conflict"
        );
        let again = validator.decide(&a, &pods("1"));
        assert!(again.is_err(), "deciding again counts b's charge: {:?}", again.map(|b| b.len()));
        let stored = hrqs.get("budget").await.unwrap();
        let charges = stored.metadata.annotations.unwrap_or_default();
        let charges = charges.get(annotations::HRQ_CHARGES).map(String::as_str).unwrap_or_default();
        assert!(charges.contains("\"b\"") && !charges.contains("\"a\""), "only b is charged: {charges}");
        sim.shutdown().await;
    }
}
