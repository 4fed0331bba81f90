//! Admission webhooks as the real server calls them: a TLS webhook (verified through caBundle) that denies,
//! one that mutates, namespaceSelector, and failurePolicy Fail vs Ignore when the webhook is down.

mod support;

use hnc_apisim::{ApiSim, Config};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, PostParams};
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

fn webhook(name: &str, url: &str, ca: &str, policy: &str, extra: Value) -> Value {
    let mut hook = json!({
        "name": name, "admissionReviewVersions": ["v1"], "sideEffects": "None", "failurePolicy": policy,
        "timeoutSeconds": 2, "clientConfig": {"url": url, "caBundle": ca},
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": ["configmaps"], "scope": "Namespaced"}]
    });
    if let (Some(h), Some(e)) = (hook.as_object_mut(), extra.as_object()) {
        h.extend(e.clone());
    }
    hook
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

fn denial(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.message),
        other => panic!("{other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn validating_and_mutating_webhooks_are_called() {
    let (url, ca) = webhook_server().await;
    let sim = ApiSim::start(Config::default()).await.unwrap();
    sim.create("admissionregistration.k8s.io", "validatingwebhookconfigurations", "", json!({
        "metadata": {"name": "deny"}, "webhooks": [webhook("deny.example.com", &format!("{url}/validate"), &ca, "Fail", json!({}))]})).unwrap();
    sim.create("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "", json!({
        "metadata": {"name": "label"}, "webhooks": [webhook("label.example.com", &format!("{url}/mutate"), &ca, "Fail",
            json!({"namespaceSelector": {"matchLabels": {"mutate": "true"}}}))]})).unwrap();
    sim.create("", "namespaces", "", json!({"metadata": {"name": "plain"}})).unwrap();
    sim.create("", "namespaces", "", json!({"metadata": {"name": "labelled", "labels": {"mutate": "true"}}}))
        .unwrap();
    let c = client(&sim).await;

    let plain: Api<ConfigMap> = Api::namespaced(c.clone(), "plain");
    let (code, message) = denial(plain.create(&PostParams::default(), &cm("forbidden-x")).await.unwrap_err());
    assert_eq!(code, 403);
    assert_eq!(
        message,
        "admission webhook \"deny.example.com\" denied the request: forbidden-x is not allowed here"
    );
    let allowed = plain.create(&PostParams::default(), &cm("fine")).await.unwrap();
    assert!(allowed.metadata.labels.is_none(), "the mutating webhook's namespaceSelector does not match");

    let labelled: Api<ConfigMap> = Api::namespaced(c, "labelled");
    let mutated = labelled.create(&PostParams::default(), &cm("fine")).await.unwrap();
    assert_eq!(mutated.metadata.labels.unwrap()["mutated"], "yes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_policy_decides_when_the_webhook_is_down() {
    let (_, ca) = webhook_server().await;
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("https://{}/validate", l.local_addr().unwrap())
    };
    let sim = ApiSim::start(Config::default()).await.unwrap();
    sim.create("", "namespaces", "", json!({"metadata": {"name": "strict", "labels": {"policy": "fail"}}}))
        .unwrap();
    sim.create(
        "",
        "namespaces",
        "",
        json!({"metadata": {"name": "lenient", "labels": {"policy": "ignore"}}}),
    )
    .unwrap();
    sim.create("admissionregistration.k8s.io", "validatingwebhookconfigurations", "", json!({
        "metadata": {"name": "down"}, "webhooks": [
            webhook("fail.example.com", &dead, &ca, "Fail", json!({"namespaceSelector": {"matchLabels": {"policy": "fail"}}})),
            webhook("ignore.example.com", &dead, &ca, "Ignore", json!({"namespaceSelector": {"matchExpressions": [{"key": "policy", "operator": "In", "values": ["ignore"]}]}}))
        ]})).unwrap();
    let c = client(&sim).await;
    let (code, message) = denial(
        Api::<ConfigMap>::namespaced(c.clone(), "strict")
            .create(&PostParams::default(), &cm("x"))
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 500);
    assert!(
        message.starts_with("Internal error occurred: failed calling webhook \"fail.example.com\""),
        "{message}"
    );
    Api::<ConfigMap>::namespaced(c, "lenient").create(&PostParams::default(), &cm("x")).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_whose_certificate_is_not_in_the_ca_bundle_is_a_failure() {
    let (url, _) = webhook_server().await;
    let (_, other_ca) = webhook_server().await;
    let sim = ApiSim::start(Config::default()).await.unwrap();
    sim.create("admissionregistration.k8s.io", "validatingwebhookconfigurations", "", json!({
        "metadata": {"name": "wrong-ca"}, "webhooks": [webhook("ca.example.com", &format!("{url}/validate"), &other_ca, "Fail", json!({}))]})).unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client(&sim).await, "default");
    let (code, message) = denial(api.create(&PostParams::default(), &cm("x")).await.unwrap_err());
    assert_eq!(code, 500, "{message}");
}

/// A slow webhook (injected latency): below its timeoutSeconds the write is admitted that much later; at or
/// beyond it the call fails after the timeout, and failurePolicy decides — Fail refuses the write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_webhook_delays_admission_and_fails_past_its_timeout() {
    let (url, ca) = webhook_server().await;
    let sim = ApiSim::start(Config::default()).await.unwrap();
    sim.create("admissionregistration.k8s.io", "validatingwebhookconfigurations", "", json!({
        "metadata": {"name": "slow"}, "webhooks": [webhook("slow.example.com", &format!("{url}/validate"), &ca, "Fail", json!({}))]}))
        .unwrap();
    sim.create("", "namespaces", "", json!({"metadata": {"name": "team"}})).unwrap();
    let configmaps: Api<ConfigMap> = Api::namespaced(client(&sim).await, "team");

    sim.faults().set_webhook_latency(std::time::Duration::from_millis(700));
    let started = std::time::Instant::now();
    configmaps.create(&PostParams::default(), &cm("late")).await.unwrap();
    let late = started.elapsed();
    assert!(late >= std::time::Duration::from_millis(700), "admitted after the latency: {late:?}");

    // timeoutSeconds 2.
    sim.faults().set_webhook_latency(std::time::Duration::from_secs(3));
    let started = std::time::Instant::now();
    let (code, message) =
        denial(configmaps.create(&PostParams::default(), &cm("refused")).await.unwrap_err());
    let failed = started.elapsed();
    assert_eq!(code, 500);
    assert!(message.contains("failed calling webhook \"slow.example.com\""), "{message}");
    assert!(message.contains("context deadline exceeded"), "{message}");
    assert!(
        failed >= std::time::Duration::from_secs(2) && failed < std::time::Duration::from_secs(3),
        "failed at the timeout, not after the latency: {failed:?}"
    );
    assert_eq!(
        configmaps.get_opt("refused").await.unwrap().map(|c| c.metadata.name),
        None,
        "the refused write was not applied"
    );

    sim.faults().set_webhook_latency(std::time::Duration::ZERO);
    configmaps.create(&PostParams::default(), &cm("fast")).await.unwrap();
}
