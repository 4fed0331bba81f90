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

/// A request as plain HTTP, and the answer's status code and body.
async fn call(sim: &ApiSim, method: reqwest::Method, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .request(method, format!("{}{path}", sim.http_url()))
        .bearer_auth(sim.admin_token());
    if let Some(body) = body {
        request = request.json(body);
    }
    let answer = request.send().await.unwrap();
    (answer.status().as_u16(), answer.json().await.unwrap())
}

fn quota_json(name: &str, hard: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": name}, "spec": {"hard": hard}})
}

/// The 422 kube-apiserver answers for `causes` (field, message) of ResourceQuota `name`.
fn invalid(name: &str, causes: &[(&str, &str)]) -> Value {
    let listed: Vec<String> = causes.iter().map(|(field, message)| format!("{field}: {message}")).collect();
    let listed = if listed.len() == 1 { listed[0].clone() } else { format!("[{}]", listed.join(", ")) };
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("ResourceQuota \"{name}\" is invalid: {listed}"), "reason": "Invalid", "code": 422,
        "details": {"name": name, "kind": "ResourceQuota", "causes": causes.iter().map(|(field, message)| json!(
            {"reason": "FieldValueInvalid", "message": message, "field": field})).collect::<Vec<_>>()},
    })
}

const QUOTAS: &str = "/api/v1/namespaces/team/resourcequotas";

#[tokio::test]
async fn spec_hard_is_validated_on_create_and_dry_run_create() {
    let sim = ApiSim::start(Config::default()).await.unwrap();
    sim.create("", "namespaces", "", json!({"metadata": {"name": "team"}})).unwrap();
    let post = |path: &'static str, hard: Value| {
        let sim = &sim;
        async move { call(sim, reqwest::Method::POST, path, Some(&quota_json("q", hard))).await }
    };
    let unknown = invalid(
        "q",
        &[
            (
                "spec.hard[foobar]",
                "Invalid value: \"foobar\": must be a standard resource type or fully qualified",
            ),
            ("spec.hard[foobar]", "Invalid value: \"foobar\": must be a standard resource for quota"),
        ],
    );
    assert_eq!(post(QUOTAS, json!({"foobar": "1"})).await, (422, unknown.clone()));
    // HNC's hierarchical quota webhook relays what a dry run answers.
    let dry_run = "/api/v1/namespaces/team/resourcequotas?dryRun=All";
    assert_eq!(post(dry_run, json!({"foobar": "1"})).await, (422, unknown));

    let negative =
        invalid("q", &[("spec.hard[pods]", "Invalid value: \"-1\": must be greater than or equal to 0")]);
    assert_eq!(post(dry_run, json!({"pods": "-1"})).await, (422, negative));
    // The Quantity is passed by value to field.Invalid, which prints it with %#v.
    let fractional = invalid(
        "q",
        &[(
            "spec.hard[pods]",
            "Invalid value: resource.Quantity{i:resource.int64Amount{value:1500, scale:-3}, \
             d:resource.infDecAmount{Dec:(*inf.Dec)(nil)}, s:\"1500m\", Format:\"DecimalSI\"}: must be an integer",
        )],
    );
    assert_eq!(post(dry_run, json!({"pods": "1500m"})).await, (422, fractional));

    let valid = json!({"requests.cpu": "1.5", "count/configmaps": "3", "requests.nvidia.com/gpu": "2"});
    let (code, created) = post(dry_run, valid.clone()).await;
    assert_eq!(code, 201, "{created}");
    assert_eq!(created["spec"]["hard"]["count/configmaps"], "3");
    let (code, list) = call(&sim, reqwest::Method::GET, QUOTAS, None).await;
    assert_eq!((code, list["items"].clone()), (200, json!([])), "the dry run stored nothing");
    assert_eq!(post(QUOTAS, valid).await.0, 201);
}

#[tokio::test]
async fn spec_hard_is_validated_on_update() {
    let sim = ApiSim::start(Config::default()).await.unwrap();
    sim.create("", "namespaces", "", json!({"metadata": {"name": "team"}})).unwrap();
    let (code, _) =
        call(&sim, reqwest::Method::POST, QUOTAS, Some(&quota_json("q", json!({"pods": "2"})))).await;
    assert_eq!(code, 201);
    let (code, answer) = call(
        &sim,
        reqwest::Method::PUT,
        &format!("{QUOTAS}/q"),
        Some(&quota_json("q", json!({"pods": "-1"}))),
    )
    .await;
    assert_eq!(
        (code, answer),
        (
            422,
            invalid("q", &[("spec.hard[pods]", "Invalid value: \"-1\": must be greater than or equal to 0")])
        )
    );
    let (_, stored) = call(&sim, reqwest::Method::GET, &format!("{QUOTAS}/q"), None).await;
    assert_eq!(stored["spec"]["hard"], json!({"pods": "2"}));
}
