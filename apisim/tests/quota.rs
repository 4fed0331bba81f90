//! ResourceQuota as kube-apiserver's quota admission and kube-controller-manager's quota controller enforce it:
//! the controller fills `status`, creates are charged and refused beyond `hard`, deletes give usage back, a pod
//! is charged its containers' requests and limits, a dry run is not charged, and the status update that charges
//! a quota goes through the `resourcequotas/status` webhooks (what HNC's hierarchical quota relies on).

mod support;

use hnc_apisim::{ApiSim, Config};
use k8s_openapi::api::core::v1::{ConfigMap, Pod, ResourceQuota};
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::{Value, json};
use support::webhook_server;

async fn client(sim: &ApiSim) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(&sim.kubeconfig_yaml(sim.admin_token())).unwrap();
    Client::try_from(
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap(),
    )
    .unwrap()
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

fn quota(name: &str, hard: Value) -> ResourceQuota {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"hard": hard}})).unwrap()
}

fn pod(name: &str, cpu: &str) -> Pod {
    serde_json::from_value(json!({"metadata": {"name": name}, "spec": {"containers": [
        {"name": "a", "image": "x", "resources": {"requests": {"cpu": cpu}, "limits": {"cpu": "2"}}}
    ]}}))
    .unwrap()
}

fn denial(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.message),
        other => panic!("{other}"),
    }
}

fn status(q: &ResourceQuota) -> (Value, Value) {
    let s = serde_json::to_value(q.status.clone().unwrap()).unwrap();
    (s["hard"].clone(), s["used"].clone())
}

#[tokio::test]
async fn creates_are_charged_refused_beyond_hard_and_deletes_give_back() {
    let sim = ApiSim::start(Config::default()).await.unwrap();
    sim.create("", "namespaces", "", json!({"metadata": {"name": "team"}})).unwrap();
    let c = client(&sim).await;
    let quotas: Api<ResourceQuota> = Api::namespaced(c.clone(), "team");
    let configmaps: Api<ConfigMap> = Api::namespaced(c.clone(), "team");
    let existing = configmaps.list(&Default::default()).await.unwrap().items.len();

    let created = quotas
        .create(&PostParams::default(), &quota("q", json!({"configmaps": "2", "count/secrets": "1"})))
        .await
        .unwrap();
    let (hard, used) = status(&quotas.get("q").await.unwrap());
    assert_eq!(hard, json!({"configmaps": "2", "count/secrets": "1"}), "the controller copies spec.hard");
    assert_eq!(used, json!({"configmaps": existing.to_string(), "count/secrets": "0"}));
    assert!(created.metadata.resource_version.is_some());

    for name in (existing..2).map(|i| format!("c{i}")) {
        configmaps.create(&PostParams::default(), &cm(&name)).await.unwrap();
    }
    let (code, message) = denial(configmaps.create(&PostParams::default(), &cm("over")).await.unwrap_err());
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "configmaps \"over\" is forbidden: exceeded quota: q, requested: configmaps=1, used: configmaps=2, limited: \
         configmaps=2"
    );
    // A dry run is checked, and not charged.
    let dry = PostParams { dry_run: true, ..Default::default() };
    assert_eq!(denial(configmaps.create(&dry, &cm("over")).await.unwrap_err()).0, 403);

    let first = configmaps.list(&Default::default()).await.unwrap().items[0].metadata.name.clone().unwrap();
    configmaps.delete(&first, &DeleteParams::default()).await.unwrap();
    assert_eq!(status(&quotas.get("q").await.unwrap()).1["configmaps"], "1", "replenished");
    configmaps.create(&dry, &cm("again")).await.unwrap();
    assert_eq!(status(&quotas.get("q").await.unwrap()).1["configmaps"], "1", "the dry run took nothing");
    configmaps.create(&PostParams::default(), &cm("again")).await.unwrap();
    assert_eq!(status(&quotas.get("q").await.unwrap()).1["configmaps"], "2");
}

#[tokio::test]
async fn a_pod_is_charged_its_containers_requests_exactly() {
    let sim = ApiSim::start(Config::default()).await.unwrap();
    sim.create("", "namespaces", "", json!({"metadata": {"name": "team"}})).unwrap();
    let c = client(&sim).await;
    let quotas: Api<ResourceQuota> = Api::namespaced(c.clone(), "team");
    quotas
        .create(
            &PostParams::default(),
            &quota("compute", json!({"requests.cpu": "1", "pods": "5", "limits.cpu": "10"})),
        )
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(c, "team");
    pods.create(&PostParams::default(), &pod("a", "0.3")).await.unwrap();
    pods.create(&PostParams::default(), &pod("b", "700m")).await.unwrap();
    let (_, used) = status(&quotas.get("compute").await.unwrap());
    assert_eq!(used, json!({"limits.cpu": "4", "pods": "2", "requests.cpu": "1"}), "0.3 + 0.7 is exactly 1");
    let (code, message) = denial(pods.create(&PostParams::default(), &pod("c", "1m")).await.unwrap_err());
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "pods \"c\" is forbidden: exceeded quota: compute, requested: requests.cpu=1m, used: requests.cpu=1, \
         limited: requests.cpu=1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charge_goes_through_the_quota_status_webhooks() {
    let (url, ca) = webhook_server().await;
    let sim = ApiSim::start(Config::default()).await.unwrap();
    sim.create("", "namespaces", "", json!({"metadata": {"name": "team"}})).unwrap();
    // The test webhook denies objects named forbidden-*: here, status updates of the quota of that name.
    sim.create(
        "admissionregistration.k8s.io",
        "validatingwebhookconfigurations",
        "",
        json!({
        "metadata": {"name": "quota-status"}, "webhooks": [{
            "name": "quota.example.com", "admissionReviewVersions": ["v1"], "sideEffects": "None",
            "failurePolicy": "Fail", "timeoutSeconds": 2,
            "clientConfig": {"url": format!("{url}/validate"), "caBundle": ca},
            "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["UPDATE"],
                       "resources": ["resourcequotas/status"], "scope": "Namespaced"}]}]}),
    )
    .unwrap();
    let c = client(&sim).await;
    Api::<ResourceQuota>::namespaced(c.clone(), "team")
        .create(&PostParams::default(), &quota("forbidden-q", json!({"configmaps": "10"})))
        .await
        .unwrap();
    let configmaps: Api<ConfigMap> = Api::namespaced(c, "team");
    let (code, message) = denial(configmaps.create(&PostParams::default(), &cm("x")).await.unwrap_err());
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "admission webhook \"quota.example.com\" denied the request: forbidden-q is not allowed here"
    );
    assert!(configmaps.get_opt("x").await.unwrap().is_none(), "the create failed with the charge");
}
