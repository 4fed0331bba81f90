//! apisim driven by the real kube client over HTTPS: the strict behaviours controllers depend on.

use std::time::Duration;

use futures::StreamExt;
use hnc_apisim::{ApiSim, Config};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{
    Api, DeleteParams, ListParams, ObjectList, Patch, PatchParams, PostParams, WatchEvent, WatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::watcher;
use kube::{Client, ResourceExt};
use serde_json::json;

async fn client(sim: &ApiSim) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(&sim.kubeconfig_yaml(sim.admin_token())).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    Client::try_from(config).unwrap()
}

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

fn ns(name: &str) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name}})).unwrap()
}

fn code(e: kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("not an API error: {other}"),
    }
}

#[tokio::test]
async fn stale_updates_conflict_and_duplicates_already_exist() {
    let sim = ApiSim::start(Config::default()).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client(&sim).await, "default");
    let created = api.create(&PostParams::default(), &cm("a")).await.unwrap();
    assert!(created.uid().is_some() && created.creation_timestamp().is_some());
    assert_eq!(code(api.create(&PostParams::default(), &cm("a")).await.unwrap_err()), 409);

    let mut first = created.clone();
    first.data = Some([("k".to_owned(), "1".to_owned())].into());
    api.replace("a", &PostParams::default(), &first).await.unwrap();
    let mut stale = created;
    stale.data = Some([("k".to_owned(), "2".to_owned())].into());
    assert_eq!(code(api.replace("a", &PostParams::default(), &stale).await.unwrap_err()), 409);

    // A merge patch carrying a stale resourceVersion is a precondition too.
    let patch = json!({"metadata": {"resourceVersion": "1"}, "data": {"k": "3"}});
    assert_eq!(code(api.patch("a", &PatchParams::default(), &Patch::Merge(&patch)).await.unwrap_err()), 409);
    assert_eq!(code(api.create(&PostParams::default(), &cm("Not_Valid")).await.unwrap_err()), 422);
    assert_eq!(code(api.get("missing").await.unwrap_err()), 404);
}

#[tokio::test]
async fn watcher_recovers_from_410_by_relisting() {
    let sim = ApiSim::start(Config { history_window: 5, ..Default::default() }).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client(&sim).await, "default");
    api.create(&PostParams::default(), &cm("before")).await.unwrap();

    let stream = watcher(api.clone(), watcher::Config::default()).boxed();
    let mut stream = stream;
    // Initial list.
    let mut seen = Vec::new();
    while let Some(event) = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.unwrap() {
        match event.unwrap() {
            watcher::Event::InitApply(o) => seen.push(o.name_any()),
            watcher::Event::InitDone => break,
            _ => {}
        }
    }
    assert_eq!(seen, ["before"]);

    // The watch is dropped and history compacted while changes happen: resuming gets 410, the watcher relists.
    sim.compact();
    sim.faults().drop_watches();
    for i in 0..10 {
        api.create(&PostParams::default(), &cm(&format!("during-{i}"))).await.unwrap();
    }
    let mut relisted = Vec::new();
    let mut saw_init = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let event = tokio::time::timeout_at(deadline, stream.next()).await.expect("watcher relists").unwrap();
        match event {
            Ok(watcher::Event::Init) => saw_init = true,
            Ok(watcher::Event::InitApply(o)) if saw_init => relisted.push(o.name_any()),
            Ok(watcher::Event::InitDone) if saw_init => break,
            _ => {}
        }
    }
    assert_eq!(relisted.len(), 11, "{relisted:?}");
    // Only a 410 makes the watcher relist: a second LIST proves the resumed watch was refused as expired.
    assert!(sim.request_count("LIST", "configmaps") >= 2, "recovered by relisting");
}

/// Every page of a paged list shows the first page's state, and a watch from the list's resourceVersion
/// delivers exactly the changes made while paging: a client that lists and then watches never misses one.
#[tokio::test]
async fn paged_lists_are_consistent_and_watches_resume_from_them() {
    let sim = ApiSim::start(Config::default()).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client(&sim).await, "default");
    for name in ["a", "b", "c", "d", "e"] {
        api.create(&PostParams::default(), &cm(name)).await.unwrap();
    }
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    let names = |l: &ObjectList<ConfigMap>| l.items.iter().map(|o| o.name_any()).collect::<Vec<_>>();
    assert_eq!(names(&first), ["a", "b"]);
    let rv = first.metadata.resource_version.clone().unwrap();
    let token = first.metadata.continue_.clone().unwrap();

    // While the client pages: an object already returned changes, one not yet returned is deleted, and one
    // is created that would sort into a later page.
    let mut changed = api.get("a").await.unwrap();
    changed.data = Some([("k".to_owned(), "new".to_owned())].into());
    api.replace("a", &PostParams::default(), &changed).await.unwrap();
    api.delete("d", &DeleteParams::default()).await.unwrap();
    api.create(&PostParams::default(), &cm("cc")).await.unwrap();

    let mut rest = Vec::new();
    let mut token = Some(token);
    while let Some(t) = token {
        let page = api.list(&ListParams::default().limit(2).continue_token(&t)).await.unwrap();
        assert_eq!(
            page.metadata.resource_version.as_deref(),
            Some(rv.as_str()),
            "every page is as of the first"
        );
        rest.extend(names(&page));
        token = page.metadata.continue_.filter(|t| !t.is_empty());
    }
    assert_eq!(rest, ["c", "d", "e"], "the state when the list began: d still there, cc not yet");

    // Watching from the list's version replays exactly the three changes.
    let mut events = api.watch(&WatchParams::default(), &rv).await.unwrap().boxed();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let event =
            tokio::time::timeout(Duration::from_secs(5), events.next()).await.unwrap().unwrap().unwrap();
        seen.push(match event {
            WatchEvent::Added(o) => format!("added {}", o.name_any()),
            WatchEvent::Modified(o) => format!("modified {}", o.name_any()),
            WatchEvent::Deleted(o) => format!("deleted {}", o.name_any()),
            other => format!("{other:?}"),
        });
    }
    assert_eq!(seen, ["modified a", "deleted d", "added cc"]);
}

/// `remainingItemCount` counts what is left of the list as of its first page, not what is stored now.
#[tokio::test]
async fn the_remaining_count_is_as_of_the_first_page() {
    let sim = ApiSim::start(Config::default()).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client(&sim).await, "default");
    for name in ["a", "b", "c", "d", "e"] {
        api.create(&PostParams::default(), &cm(name)).await.unwrap();
    }
    let first = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(first.metadata.remaining_item_count, Some(3));
    // Stored after "c" now: d, f, g; when the list began: d, e.
    api.delete("e", &DeleteParams::default()).await.unwrap();
    api.create(&PostParams::default(), &cm("f")).await.unwrap();
    api.create(&PostParams::default(), &cm("g")).await.unwrap();
    let token = first.metadata.continue_.unwrap();
    let second = api.list(&ListParams::default().limit(1).continue_token(&token)).await.unwrap();
    assert_eq!(second.items.iter().map(|o| o.name_any()).collect::<Vec<_>>(), ["c"]);
    assert_eq!(second.metadata.remaining_item_count, Some(2));
    // A list in another namespace counts only its own.
    let other: Api<ConfigMap> = Api::namespaced(client(&sim).await, "kube-system");
    other.create(&PostParams::default(), &cm("x")).await.unwrap();
    other.create(&PostParams::default(), &cm("y")).await.unwrap();
    let page = api.list(&ListParams::default().limit(2)).await.unwrap();
    assert_eq!(page.metadata.remaining_item_count, Some(4), "c, d, f, g: kube-system's are not counted");
}

/// A continue token older than the change history gets 410 Expired, as after an etcd compaction.
#[tokio::test]
async fn continue_tokens_expire_with_the_history() {
    let sim = ApiSim::start(Config::default()).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client(&sim).await, "default");
    for name in ["a", "b", "c"] {
        api.create(&PostParams::default(), &cm(name)).await.unwrap();
    }
    let first = api.list(&ListParams::default().limit(1)).await.unwrap();
    let token = first.metadata.continue_.unwrap();
    api.delete("c", &DeleteParams::default()).await.unwrap();
    sim.compact();
    let err = api.list(&ListParams::default().limit(1).continue_token(&token)).await.unwrap_err();
    assert_eq!(code(err), 410);
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() {
    let sim = ApiSim::start(Config::default()).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client(&sim).await, "default");
    let mut obj = cm("held");
    obj.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    api.create(&PostParams::default(), &obj).await.unwrap();
    api.delete("held", &DeleteParams::default()).await.unwrap();
    let held = api.get("held").await.unwrap();
    assert!(held.metadata.deletion_timestamp.is_some());
    api.patch("held", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": null}})))
        .await
        .unwrap();
    assert_eq!(code(api.get("held").await.unwrap_err()), 404);
}

#[tokio::test]
async fn namespaces_terminate_refuse_content_and_disappear() {
    let sim = ApiSim::start(Config::default()).await.unwrap();
    let c = client(&sim).await;
    let namespaces: Api<Namespace> = Api::all(c.clone());
    namespaces.create(&PostParams::default(), &ns("doomed")).await.unwrap();
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "doomed");
    cms.create(&PostParams::default(), &cm("plain")).await.unwrap();
    let mut held = cm("held");
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &held).await.unwrap();

    namespaces.delete("doomed", &DeleteParams::default()).await.unwrap();
    let terminating = namespaces.get("doomed").await.unwrap();
    assert_eq!(terminating.status.unwrap().phase.as_deref(), Some("Terminating"));
    assert_eq!(code(cms.get("plain").await.unwrap_err()), 404, "contents are deleted");
    assert_eq!(code(cms.create(&PostParams::default(), &cm("new")).await.unwrap_err()), 403);

    cms.patch("held", &PatchParams::default(), &Patch::Merge(json!({"metadata": {"finalizers": []}})))
        .await
        .unwrap();
    assert_eq!(code(namespaces.get("doomed").await.unwrap_err()), 404, "gone once empty");
    assert_eq!(
        code(
            Api::<ConfigMap>::namespaced(c, "nowhere")
                .create(&PostParams::default(), &cm("x"))
                .await
                .unwrap_err()
        ),
        404
    );
}

#[tokio::test]
async fn hnc_crds_install_and_enforce_their_schemas() {
    let sim = ApiSim::start(Config::default()).await.unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds");
    assert_eq!(hnc_apisim::install_crds_from_dir(&sim, &dir).await.unwrap(), 4);
    let c = client(&sim).await;
    let resources = c.list_api_group_resources("hnc.x-k8s.io/v1alpha2").await.unwrap();
    let mut names: Vec<_> = resources.resources.iter().map(|r| r.name.clone()).collect();
    names.sort();
    assert_eq!(
        names,
        ["hierarchicalresourcequotas", "hierarchyconfigurations", "hncconfigurations", "subnamespaceanchors"]
    );

    let hcs: Api<hnc_api_like::Hc> = Api::namespaced_with(c.clone(), "default", &hnc_api_like::resource());
    let good = serde_json::from_value(
        json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HierarchyConfiguration",
        "metadata": {"name": "hierarchy"}, "spec": {"parent": "kube-public", "unknownField": 1}}),
    )
    .unwrap();
    let created = hcs.create(&PostParams::default(), &good).await.unwrap();
    assert_eq!(created.data["spec"], json!({"parent": "kube-public"}), "unknown fields are pruned");
    let wrong_name = serde_json::from_value(
        json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HierarchyConfiguration",
        "metadata": {"name": "other"}, "spec": {}}),
    )
    .unwrap();
    let err = hcs.create(&PostParams::default(), &wrong_name).await.unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422);
            assert!(s.message.contains("metadata.name") && s.message.contains("hierarchy"), "{}", s.message);
        }
        other => panic!("{other}"),
    }
}

/// The HNC kinds as dynamic objects (apisim's tests do not depend on hnc-api).
mod hnc_api_like {
    pub type Hc = kube::core::DynamicObject;
    pub fn resource() -> kube::core::ApiResource {
        kube::core::ApiResource {
            group: "hnc.x-k8s.io".into(),
            version: "v1alpha2".into(),
            api_version: "hnc.x-k8s.io/v1alpha2".into(),
            kind: "HierarchyConfiguration".into(),
            plural: "hierarchyconfigurations".into(),
        }
    }
}

#[tokio::test]
async fn faults_and_per_user_rate_limits_answer_429_with_retry_after() {
    use hnc_apisim::FaultRule;
    let sim = ApiSim::start(Config::default()).await.unwrap();
    let mut config = kube::Config::from_custom_kubeconfig(
        Kubeconfig::from_yaml(&sim.kubeconfig_yaml(sim.admin_token())).unwrap(),
        &KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    config.default_retry = false; // see every 429 instead of kube's own retries
    let api: Api<ConfigMap> = Api::namespaced(Client::try_from(config).unwrap(), "default");

    sim.faults().rate_limit("admin", 1.0, 2);
    api.get("x").await.unwrap_err(); // 404: within the burst
    api.get("x").await.unwrap_err();
    match api.get("x").await.unwrap_err() {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 429);
            assert_eq!(s.details.unwrap().retry_after_seconds, 1);
        }
        other => panic!("{other}"),
    }
    sim.faults().rate_limit("admin", 1e6, 1_000_000);

    sim.faults().add(FaultRule {
        verb: Some("POST".into()),
        resource: Some("configmaps".into()),
        error: Some(503),
        error_rate: 1.0,
        ..Default::default()
    });
    assert_eq!(code(api.create(&PostParams::default(), &cm("x")).await.unwrap_err()), 503);
    assert_eq!(code(api.get("x").await.unwrap_err()), 404, "other verbs are untouched");
    sim.faults().clear();
    api.create(&PostParams::default(), &cm("x")).await.unwrap();
}

#[tokio::test]
async fn faults_can_target_one_user() {
    use hnc_apisim::FaultRule;
    let sim = ApiSim::start(Config::default()).await.unwrap();
    sim.add_user("token-b", "replica-b", &["system:masters"]);
    let as_user = |token: &str| {
        let kubeconfig = Kubeconfig::from_yaml(&sim.kubeconfig_yaml(token)).unwrap();
        async move {
            let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .unwrap();
            Api::<ConfigMap>::namespaced(Client::try_from(config).unwrap(), "default")
        }
    };
    let (admin, b) = (as_user(sim.admin_token()).await, as_user("token-b").await);

    sim.faults().add(FaultRule {
        user: Some("replica-b".into()),
        error: Some(500),
        error_rate: 1.0,
        ..Default::default()
    });
    assert_eq!(code(b.create(&PostParams::default(), &cm("from-b")).await.unwrap_err()), 500);
    assert_eq!(code(b.get("x").await.unwrap_err()), 500, "every verb of that user fails");
    admin.create(&PostParams::default(), &cm("from-admin")).await.unwrap();
    sim.faults().clear();
    b.create(&PostParams::default(), &cm("from-b")).await.unwrap();
}

/// kube-apiserver's request deadline: a write still unserved when its `?timeout=` runs out is answered 504
/// and never applied; without the parameter (or within it) the same slow write is applied.
#[tokio::test]
async fn a_write_past_its_timeout_is_answered_504_and_not_applied() {
    use hnc_apisim::FaultRule;
    let sim = ApiSim::start(Config::default()).await.unwrap();
    let kubeconfig = Kubeconfig::from_yaml(&sim.kubeconfig_yaml(sim.admin_token())).unwrap();
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap();
    config.default_retry = false; // one 504, not kube's own retries of it with growing back-off
    let client = Client::try_from(config).unwrap();
    sim.faults().add(FaultRule {
        verb: Some("POST".into()),
        resource: Some("configmaps".into()),
        latency: Duration::from_millis(400),
        ..Default::default()
    });
    let post = |name: &str, timeout: &str| {
        let body = serde_json::to_vec(&cm(name)).unwrap();
        axum::http::Request::post(format!("/api/v1/namespaces/default/configmaps{timeout}"))
            .body(body)
            .unwrap()
    };
    let late = client.request::<ConfigMap>(post("late", "?timeout=100ms")).await.unwrap_err();
    match late {
        kube::Error::Api(s) => {
            assert_eq!((s.code, s.reason.as_str()), (504, "Timeout"));
            assert_eq!(
                s.message,
                "Timeout: request did not complete within requested timeout - context deadline exceeded"
            );
        }
        other => panic!("{other}"),
    }
    // The delayed request is over: it was dropped, not left to land later.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    assert_eq!(code(api.get("late").await.unwrap_err()), 404);
    client.request::<ConfigMap>(post("in-time", "?timeout=2s")).await.unwrap();
    client.request::<ConfigMap>(post("no-timeout", "")).await.unwrap();
    assert_eq!(code(client.request::<ConfigMap>(post("bad", "?timeout=soon")).await.unwrap_err()), 400);
}

/// A restart keeps every object, closes every watch, and serves again on the same address; a watcher re-watches
/// and sees later changes, and a watch resuming from a resourceVersion from before the restart gets 410 Expired
/// (the watch cache starts at the current revision).
#[tokio::test]
async fn a_watcher_survives_a_restart_and_older_versions_expire() {
    let sim = ApiSim::start(Config::default()).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client(&sim).await, "default");
    let before = api.create(&PostParams::default(), &cm("before")).await.unwrap();
    let mut stream = watcher(api.clone(), watcher::Config::default()).boxed();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(5), stream.next()).await.unwrap().unwrap();
        if let watcher::Event::InitDone = event.unwrap() {
            break;
        }
    }
    // Older than the newest version at the restart (a watch from the newest one resumes).
    let old_version = before.resource_version().unwrap();
    api.create(&PostParams::default(), &cm("also-before")).await.unwrap();
    let urls = (sim.https_url(), sim.http_url());

    let started = std::time::Instant::now();
    let restart = sim.restart(Duration::from_millis(700));
    let during = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        api.get("before").await
    };
    let (restarted, during) = tokio::join!(restart, during);
    restarted.unwrap();
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert!(during.is_err(), "nothing is served while the server is down");
    assert_eq!((sim.https_url(), sim.http_url()), urls, "the same ports");
    assert_eq!(
        api.get("before").await.unwrap().resource_version(),
        before.resource_version(),
        "objects kept"
    );

    let mut old = api.watch(&WatchParams::default(), &old_version).await.unwrap().boxed();
    match tokio::time::timeout(Duration::from_secs(5), old.next()).await.unwrap() {
        Some(Ok(WatchEvent::Error(e))) => assert_eq!(e.code, 410, "{e:?}"),
        other => panic!("a resourceVersion from before the restart is expired, got {other:?}"),
    }

    api.create(&PostParams::default(), &cm("after")).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let event = tokio::time::timeout_at(deadline, stream.next()).await.expect("the watcher sees 'after'");
        match event.unwrap() {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) if o.name_any() == "after" => break,
            _ => {}
        }
    }
    assert!(sim.request_count("WATCH", "configmaps") >= 2, "the watcher watched again");
}
