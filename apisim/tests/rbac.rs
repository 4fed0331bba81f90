//! RBAC: SubjectAccessReviews answered from stored roles and bindings, and enforced on non-admin users.

use hnc_apisim::{ApiSim, Config};
use k8s_openapi::api::authorization::v1::{ResourceAttributes, SubjectAccessReview, SubjectAccessReviewSpec};
use k8s_openapi::api::core::v1::ConfigMap;
use kube::Client;
use kube::api::{Api, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

#[path = "../../e2e/src/tools.rs"]
mod tools;

async fn client(sim: &ApiSim, token: &str) -> Client {
    let kubeconfig = Kubeconfig::from_yaml(&sim.kubeconfig_yaml(token)).unwrap();
    Client::try_from(
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await.unwrap(),
    )
    .unwrap()
}

fn sar(
    user: &str,
    groups: &[&str],
    verb: &str,
    resource: &str,
    group: &str,
    namespace: &str,
) -> SubjectAccessReview {
    SubjectAccessReview {
        spec: SubjectAccessReviewSpec {
            user: Some(user.into()),
            groups: Some(groups.iter().map(|g| (*g).to_owned()).collect()),
            resource_attributes: Some(ResourceAttributes {
                verb: Some(verb.into()),
                resource: Some(resource.into()),
                group: Some(group.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    }
}

async fn allowed(api: &Api<SubjectAccessReview>, review: &SubjectAccessReview) -> bool {
    api.create(&PostParams::default(), review).await.unwrap().status.unwrap().allowed
}

fn grant(sim: &ApiSim) {
    sim.create("rbac.authorization.k8s.io", "roles", "team-a", json!({
        "metadata": {"name": "hc-admin"},
        "rules": [{"apiGroups": ["hnc.x-k8s.io"], "resources": ["hierarchyconfigurations"], "verbs": ["update", "get"]},
                  {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}]
    })).unwrap();
    sim.create(
        "rbac.authorization.k8s.io",
        "rolebindings",
        "team-a",
        json!({
            "metadata": {"name": "alice-admin"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "hc-admin"},
            "subjects": [{"kind": "User", "name": "alice"}, {"kind": "Group", "name": "team-a-admins"},
                         {"kind": "ServiceAccount", "name": "bot", "namespace": "ci"}]
        }),
    )
    .unwrap();
}

#[tokio::test]
async fn subject_access_reviews_follow_roles_and_bindings() {
    let sim = ApiSim::start(Config::default()).await.unwrap();
    sim.create("", "namespaces", "", json!({"metadata": {"name": "team-a"}})).unwrap();
    let api: Api<SubjectAccessReview> = Api::all(client(&sim, sim.admin_token()).await);
    let hc = |user: &str, groups: &[&str], ns: &str| {
        sar(user, groups, "update", "hierarchyconfigurations", "hnc.x-k8s.io", ns)
    };

    assert!(!allowed(&api, &hc("alice", &[], "team-a")).await, "nothing granted yet");
    grant(&sim);
    assert!(allowed(&api, &hc("alice", &[], "team-a")).await);
    assert!(!allowed(&api, &hc("alice", &[], "default")).await, "a Role binds in its namespace only");
    assert!(allowed(&api, &hc("bob", &["team-a-admins"], "team-a")).await, "group subjects");
    assert!(
        allowed(&api, &hc("system:serviceaccount:ci:bot", &[], "team-a")).await,
        "service account subjects"
    );
    assert!(
        !allowed(&api, &sar("alice", &[], "delete", "hierarchyconfigurations", "hnc.x-k8s.io", "team-a"))
            .await,
        "verb"
    );
    assert!(
        !allowed(&api, &sar("alice", &[], "update", "hierarchyconfigurations", "other.io", "team-a")).await,
        "group"
    );
    assert!(allowed(&api, &sar("root", &["system:masters"], "delete", "anything", "x", "y")).await);

    // Cluster-wide grants through a ClusterRoleBinding.
    sim.create(
        "rbac.authorization.k8s.io",
        "clusterroles",
        "",
        json!({"metadata": {"name": "ns-reader"},
        "rules": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list"]}]}),
    )
    .unwrap();
    sim.create(
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        "",
        json!({"metadata": {"name": "readers"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "ns-reader"},
        "subjects": [{"kind": "Group", "name": "system:authenticated"}]}),
    )
    .unwrap();
    assert!(allowed(&api, &sar("carol", &["system:authenticated"], "list", "namespaces", "", "")).await);
}

#[tokio::test]
async fn requests_of_non_admin_users_are_authorized() {
    let sim = ApiSim::start(Config::default()).await.unwrap();
    sim.create("", "namespaces", "", json!({"metadata": {"name": "team-a"}})).unwrap();
    sim.add_user("alice-token", "alice", &[]);
    let cms: Api<ConfigMap> = Api::namespaced(client(&sim, "alice-token").await, "team-a");
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    match cms.create(&PostParams::default(), &cm).await.unwrap_err() {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403);
            assert_eq!(
                s.message,
                "configmaps is forbidden: User \"alice\" cannot create resource \"configmaps\" in API group \"\" \
                 in the namespace \"team-a\""
            );
        }
        other => panic!("{other}"),
    }
    grant(&sim);
    cms.create(&PostParams::default(), &cm).await.unwrap();
    let elsewhere: Api<ConfigMap> = Api::namespaced(client(&sim, "alice-token").await, "default");
    assert!(elsewhere.list(&Default::default()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_auth_can_i_as_another_user() {
    let Some(binary) = tools::versioned_kubectl("1.33") else { return };
    let sim = ApiSim::start(Config::default()).await.unwrap();
    let crds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds");
    hnc_apisim::install_crds_from_dir(&sim, &crds).await.unwrap();
    sim.create("", "namespaces", "", json!({"metadata": {"name": "team-a"}})).unwrap();
    grant(&sim);
    sim.add_user("alice-token", "alice", &[]);
    let tmp = tempfile::tempdir().unwrap();
    let kubeconfig = tmp.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig, "alice-token").unwrap();
    let can_i = |args: &[&str]| {
        let out = std::process::Command::new(&binary)
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["auth", "can-i"])
            .args(args)
            .env("HOME", tmp.path())
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(can_i(&["create", "configmaps", "-n", "team-a"]), "yes");
    assert_eq!(can_i(&["create", "configmaps", "-n", "default"]), "no");
    assert_eq!(can_i(&["update", "hierarchyconfigurations.hnc.x-k8s.io", "-n", "team-a"]), "yes");
}
