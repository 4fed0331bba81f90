//! HNC's admission webhooks end to end (spec §8): apisim calls the controller's webhooks over HTTPS, verified
//! with the CA the controller issued itself and registered by URL, exactly as kube-apiserver calls them. Each
//! validator's allow and deny cases, permission checks through real RBAC (SubjectAccessReview), and admission
//! surviving the loss of a replica.
//!
//! Against a real cluster (`HNC_E2E_KUBECONFIG`, HNC deployed with its webhooks) the scenarios that need
//! extra users, extra flags or killing processes are skipped with a message.

use std::time::Duration;

use anyhow::Context;
use hnc_api::{HNCConfiguration, HierarchyConfiguration, ResourceSpec, SubnamespaceAnchor, SyncMode};
use hnc_e2e::forwarder::Forwarder;
use hnc_e2e::{TestEnv, eventually};
use k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::api::rbac::v1::{ClusterRole, Role, RoleBinding};
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client};
use serde_json::json;

const BINARY: &str = env!("CARGO_BIN_EXE_hnc-e2e-controller");
const CONVERGE: Duration = Duration::from_secs(60);
const HNC_NAMESPACE: &str = "hnc-system";

/// Flags of a replica serving webhooks registered by URL on loopback, with a certificate it issues itself.
const WEBHOOK_ARGS: [&str; 4] = [
    "--webhook-server-port=0",
    "--webhook-url-base=https://127.0.0.1",
    "--enable-internal-cert-management",
    "--apiserver-qps-throttle=500",
];

/// A test environment whose API server calls HNC's webhooks: on apisim, one replica serving and registering
/// them (`extra` flags added); on a real cluster, the deployed HNC.
async fn env_with(extra: &[&str]) -> anyhow::Result<TestEnv> {
    let mut env = TestEnv::start(BINARY).await?;
    if env.is_real_cluster() {
        return Ok(env);
    }
    create_hnc_namespace(&env).await?;
    let mut args = WEBHOOK_ARGS.to_vec();
    args.extend_from_slice(extra);
    let r = env.start_replica("hnc", &args).await?;
    env.replica(r).wait_ready(CONVERGE).await?;
    webhooks_answer(&env).await?;
    Ok(env)
}

/// HNC's namespace, where the certificate Secret lives (a deployment creates it), unless it exists already.
async fn create_hnc_namespace(env: &TestEnv) -> anyhow::Result<()> {
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": HNC_NAMESPACE}}))?;
    match Api::<Namespace>::all(env.client.clone()).create(&PostParams::default(), &ns).await {
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        other => other.map(drop).map_err(Into::into),
    }
}

/// Waits until the validating configuration is registered with a CA and the objects rules, and the namespace
/// validator answers.
async fn webhooks_answer(env: &TestEnv) -> anyhow::Result<()> {
    let configs: Api<ValidatingWebhookConfiguration> = Api::all(env.client.clone());
    eventually(CONVERGE, "the webhook configurations to be registered", || async {
        let vwc = configs.get_opt("hnc-validating-webhook-configuration").await.ok()??;
        let hooks = vwc.webhooks?;
        let complete = hooks.iter().all(|h| h.client_config.ca_bundle.is_some())
            && hooks.iter().any(|h| {
                h.name == "objects.hnc.x-k8s.io"
                    && h.rules.iter().flatten().any(|r| r.resources.iter().flatten().any(|x| x == "roles"))
            });
        complete.then_some(())
    })
    .await?;
    let (code, _) = denied_eventually("the namespace validator to answer", || async {
        let api = Api::<Namespace>::all(env.client.clone());
        api.create(&dry_run(), &namespace_with_labels("probe", json!({"probe.tree.hnc.x-k8s.io/depth": "0"})))
            .await
            .map(drop)
    })
    .await?;
    anyhow::ensure!(code == 403, "the probe was denied with {code}");
    Ok(())
}

fn dry_run() -> PostParams {
    PostParams { dry_run: true, ..Default::default() }
}

fn namespace_with_labels(name: &str, labels: serde_json::Value) -> Namespace {
    serde_json::from_value(json!({"metadata": {"name": name, "labels": labels}})).expect("a Namespace")
}

/// Repeats `attempt` until a webhook denies it (not with 503, "not reconciled yet"), and returns the denial.
/// Attempts should be dry runs or idempotent: an attempt the index is not ready to deny yet may be allowed.
async fn denied_eventually<F, Fut>(what: &str, mut attempt: F) -> anyhow::Result<(u16, String)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), kube::Error>>,
{
    eventually(CONVERGE, what, || {
        let attempt = attempt();
        async move {
            match attempt.await {
                Err(kube::Error::Api(s)) if s.code != 503 && s.message.contains("admission webhook") => {
                    Some((s.code, s.message))
                }
                _ => None,
            }
        }
    })
    .await
}

/// Repeats `attempt` while the index has not caught up (503) or the object changed underneath (409 from the
/// API server, not from a webhook); any other outcome is returned.
async fn settled<F, Fut>(mut attempt: F) -> Result<(), kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), kube::Error>>,
{
    let deadline = std::time::Instant::now() + CONVERGE;
    loop {
        match attempt().await {
            Err(kube::Error::Api(s))
                if (s.code == 503 || (s.code == 409 && !s.message.contains("admission webhook")))
                    && std::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}

fn denial(result: Result<(), kube::Error>) -> (u16, String) {
    match result {
        Err(kube::Error::Api(s)) => (s.code, s.message),
        Err(other) => panic!("expected a denial, got {other}"),
        Ok(()) => panic!("expected a denial, the request was allowed"),
    }
}

/// Sets `spec.parent` of `ns`'s HierarchyConfiguration as `client`, creating it if needed; `dry` only asks.
async fn set_parent(client: &Client, ns: &str, parent: Option<&str>, dry: bool) -> Result<(), kube::Error> {
    let api = Api::<HierarchyConfiguration>::namespaced(client.clone(), ns);
    let params = PostParams { dry_run: dry, ..Default::default() };
    match api.get_opt("hierarchy").await? {
        Some(mut hc) => {
            hc.spec.parent = parent.map(str::to_owned);
            api.replace("hierarchy", &params, &hc).await.map(drop)
        }
        None => {
            let mut hc = HierarchyConfiguration::new("hierarchy", Default::default());
            hc.metadata.namespace = Some(ns.to_owned());
            hc.spec.parent = parent.map(str::to_owned);
            api.create(&params, &hc).await.map(drop)
        }
    }
}

/// A client acting as `user` in `groups` (apisim only).
async fn user_client(env: &TestEnv, user: &str, groups: &[&str]) -> anyhow::Result<Client> {
    let sim = env.sim().context("users are made on apisim")?;
    let token = format!("token-{user}-{}", env.ns("u"));
    sim.add_user(&token, user, groups);
    let kubeconfig = Kubeconfig::from_yaml(&sim.kubeconfig_yaml(&token))?;
    Ok(Client::try_from(
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?,
    )?)
}

fn role(ns: &str, name: &str, annotations: serde_json::Value) -> Role {
    serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns, "annotations": annotations},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}]}))
    .expect("a Role")
}

async fn create_role(env: &TestEnv, ns: &str, name: &str) -> anyhow::Result<()> {
    Api::<Role>::namespaced(env.client.clone(), ns)
        .create(&PostParams::default(), &role(ns, name, json!({})))
        .await?;
    Ok(())
}

fn skip(env: &TestEnv, why: &str) -> bool {
    if env.is_real_cluster() {
        eprintln!("skipped on a real cluster: {why}");
    }
    env.is_real_cluster()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_keep_tree_labels_and_subnamespaces_intact() -> anyhow::Result<()> {
    let env = env_with(&[]).await?;
    let namespaces = Api::<Namespace>::all(env.client.clone());
    let (parent, sub) = (env.ns("parent"), env.ns("sub"));

    let labelled = namespace_with_labels(&env.ns("labelled"), json!({"a.tree.hnc.x-k8s.io/depth": "1"}));
    let (code, message) = denial(namespaces.create(&PostParams::default(), &labelled).await.map(drop));
    assert_eq!(code, 403, "{message}");
    assert!(
        message.starts_with("admission webhook \"namespaces.hnc.x-k8s.io\" denied the request: namespaces")
    );
    assert!(message.contains("cannot set or modify tree label \"a.tree.hnc.x-k8s.io/depth\""), "{message}");

    // Allowed, and the mutator adds the included-namespace label.
    let created = env.create_namespace(&parent).await?;
    let labels = created.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("hnc.x-k8s.io/included-namespace").map(String::as_str), Some("true"));

    env.create_anchor(&parent, &sub).await?;
    eventually(CONVERGE, "the subnamespace to exist", || async {
        (env.anchor_state(&parent, &sub).await.ok()?? == "Ok").then_some(())
    })
    .await?;
    let (code, message) = denied_eventually("deleting the subnamespace directly to be denied", || async {
        namespaces.delete(&sub, &DeleteParams { dry_run: true, ..Default::default() }).await.map(drop)
    })
    .await?;
    assert_eq!(code, 403);
    assert!(message.contains(&format!(
        "is a subnamespace. Please delete the anchor from the parent namespace {parent}"
    )));
    let (code, message) = denial(namespaces.delete(&parent, &DeleteParams::default()).await.map(drop));
    assert_eq!(code, 403);
    assert!(message.contains("contains subnamespaces"), "{message}");

    if !skip(&env, "HNC's own namespace is not known") {
        let patch = json!({"metadata": {"labels": {"hnc.x-k8s.io/included-namespace": "true"}}});
        let (code, message) = denial(
            namespaces.patch(HNC_NAMESPACE, &PatchParams::default(), &Patch::Merge(patch)).await.map(drop),
        );
        assert_eq!(code, 403);
        assert!(
            message.contains("you cannot enforce webhook rules on this unmanaged namespace"),
            "{message}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hierarchy_changes_are_validated() -> anyhow::Result<()> {
    let env = env_with(&[]).await?;
    let (a, b, c) = (env.ns("a"), env.ns("b"), env.ns("c"));
    for ns in [&a, &b, &c] {
        env.create_namespace(ns).await?;
    }
    settled(|| set_parent(&env.client, &b, Some(&a), false)).await?;

    let (code, message) =
        denied_eventually("a cycle to be denied", || set_parent(&env.client, &a, Some(&b), true)).await?;
    assert_eq!(code, 409, "{message}");
    assert!(message.contains("illegal parent:"), "{message}");
    assert!(message.contains(&format!("current ancestry is {b} -> {a}")), "{message}");

    let missing = env.ns("missing");
    let (code, message) = denial(settled(|| set_parent(&env.client, &c, Some(&missing), false)).await);
    assert_eq!(code, 403);
    assert!(message.contains(&format!("requested parent \"{missing}\" does not exist")), "{message}");

    // A source in c's subtree would be overwritten by a's: the move is refused until one is renamed.
    create_role(&env, &a, "shared").await?;
    create_role(&env, &c, "shared").await?;
    let (code, message) = denied_eventually("the overwriting move to be denied", || {
        set_parent(&env.client, &c, Some(&a), true)
    })
    .await?;
    assert_eq!(code, 409, "{message}");
    assert!(message.contains("Cannot update hierarchy because it would overwrite the following object(s):"));
    assert!(
        message.contains(&format!("Namespace \"{c}\": shared (rbac.authorization.k8s.io/v1, Kind=Role)"))
    );
    Api::<Role>::namespaced(env.client.clone(), &c).delete("shared", &DeleteParams::default()).await?;
    eventually(CONVERGE, "the move to be allowed once the conflict is gone", || async {
        settled(|| set_parent(&env.client, &c, Some(&a), false)).await.ok()
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reparenting_needs_admin_rights_where_the_subtree_goes() -> anyhow::Result<()> {
    let env = env_with(&[]).await?;
    if skip(&env, "needs a second user") {
        return Ok(());
    }
    let (team, target) = (env.ns("team"), env.ns("target"));
    env.create_namespace(&team).await?;
    env.create_namespace(&target).await?;
    // alice may edit HierarchyConfigurations in `team` only.
    let editor = format!("hierarchy-editor-{}", env.ns("r"));
    let cluster_role: ClusterRole = serde_json::from_value(json!({"metadata": {"name": editor}, "rules": [
        {"apiGroups": ["hnc.x-k8s.io"], "resources": ["hierarchyconfigurations"],
         "verbs": ["get", "list", "watch", "create", "update", "patch"]}]}))?;
    Api::<ClusterRole>::all(env.client.clone()).create(&PostParams::default(), &cluster_role).await?;
    let grant = |ns: &str| -> anyhow::Result<RoleBinding> {
        // Named per namespace: one RoleBinding name in both would itself be a propagation conflict.
        Ok(serde_json::from_value(
            json!({"metadata": {"name": format!("alice-edits-{ns}"), "namespace": ns},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": editor},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"}]}),
        )?)
    };
    Api::<RoleBinding>::namespaced(env.client.clone(), &team)
        .create(&PostParams::default(), &grant(&team)?)
        .await?;
    let alice = user_client(&env, "alice", &[]).await?;

    let (code, message) = denial(settled(|| set_parent(&alice, &team, Some(&target), false)).await);
    assert_eq!(code, 401, "{message}");
    assert!(
        message.contains(&format!(
            "User alice is not authorized to modify the subtree of {target}, which is the proposed parent"
        )),
        "{message}"
    );

    Api::<RoleBinding>::namespaced(env.client.clone(), &target)
        .create(&PostParams::default(), &grant(&target)?)
        .await?;
    settled(|| set_parent(&alice, &team, Some(&target), false)).await?;
    eventually(CONVERGE, "team to move under target", || async {
        (env.tree_labels(&team).await.ok()?.get(&target).map(String::as_str) == Some("1")).then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn propagated_copies_belong_to_hnc() -> anyhow::Result<()> {
    let env = env_with(&[]).await?;
    let (parent, child) = (env.ns("parent"), env.ns("child"));
    env.create_namespace(&parent).await?;
    env.create_namespace(&child).await?;
    create_role(&env, &parent, "policy").await?;
    settled(|| set_parent(&env.client, &child, Some(&parent), false)).await?;
    let copies = Api::<Role>::namespaced(env.client.clone(), &child);
    let copy = eventually(CONVERGE, "the Role to be copied into the child", || async {
        copies.get_opt("policy").await.ok()?
    })
    .await?;
    assert_eq!(copy.metadata.labels.unwrap_or_default().get("hnc.x-k8s.io/inherited-from"), Some(&parent));

    let edit = json!({"rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}]});
    let (code, message) =
        denial(copies.patch("policy", &PatchParams::default(), &Patch::Merge(edit.clone())).await.map(drop));
    assert_eq!(code, 403);
    assert!(
        message.starts_with("admission webhook \"objects.hnc.x-k8s.io\" denied the request"),
        "{message}"
    );
    assert!(
        message.contains(&format!("cannot modify object propagated from namespace \"{parent}\"")),
        "{message}"
    );
    let (code, message) = denial(copies.delete("policy", &DeleteParams::default()).await.map(drop));
    assert_eq!(code, 403);
    assert!(
        message.contains(&format!("cannot delete object propagated from namespace \"{parent}\"")),
        "{message}"
    );

    if !skip(&env, "needs an HNC service-account identity") {
        // Any service account of HNC's namespace may, as upstream decides; the controller then restores the
        // copy.
        let hnc = user_client(
            &env,
            "system:serviceaccount:hnc-system:tool",
            &["system:serviceaccounts:hnc-system", "system:masters"],
        )
        .await?;
        let as_hnc = Api::<Role>::namespaced(hnc, &child);
        as_hnc.patch("policy", &PatchParams::default(), &Patch::Merge(edit)).await?;
        eventually(CONVERGE, "the controller to restore the copy", || async {
            let rules = copies.get_opt("policy").await.ok()??.rules?;
            (rules[0].resources.as_deref() == Some(&["configmaps".to_owned()][..])).then_some(())
        })
        .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_must_not_overwrite_descendants() -> anyhow::Result<()> {
    let env = env_with(&[]).await?;
    let (parent, child, other) = (env.ns("parent"), env.ns("child"), env.ns("other"));
    for ns in [&parent, &child, &other] {
        env.create_namespace(ns).await?;
    }
    settled(|| set_parent(&env.client, &child, Some(&parent), false)).await?;
    settled(|| set_parent(&env.client, &other, Some(&parent), false)).await?;
    create_role(&env, &child, "mine").await?;
    let roles = Api::<Role>::namespaced(env.client.clone(), &parent);

    let (code, message) = denied_eventually("the overwriting source to be denied", || async {
        roles.create(&dry_run(), &role(&parent, "mine", json!({}))).await.map(drop)
    })
    .await?;
    assert_eq!(code, 409, "{message}");
    assert!(message.contains(&format!("roles.rbac.authorization.k8s.io \"{parent}/mine\"")), "{message}");
    assert!(
        message
            .contains(&format!("would overwrite objects in the following descendant namespace(s): {child}."))
    );

    // Judged with each descendant's own labels: excluding the child's subtree removes the conflict.
    let scoped = role(&parent, "mine", json!({"propagate.hnc.x-k8s.io/treeSelect": format!("!{child}")}));
    roles.create(&PostParams::default(), &scoped).await?;

    let bad = role(&parent, "bad", json!({"propagate.hnc.x-k8s.io/treeSelect": format!("{other},")}));
    let (code, message) = denial(roles.create(&PostParams::default(), &bad).await.map(drop));
    assert_eq!(code, 400, "{message}");
    assert!(message.contains("invalid HNC \"propagate.hnc.x-k8s.io/treeSelect\" value"), "{message}");
    assert!(message.contains("segment 2 is empty"), "{message}");
    let typo = role(&parent, "typo", json!({"propagate.hnc.x-k8s.io/selector": "a=b"}));
    let (code, message) = denial(roles.create(&PostParams::default(), &typo).await.map(drop));
    assert_eq!(code, 400);
    assert!(
        message.contains("invalid HNC exceptions annotation: propagate.hnc.x-k8s.io/selector"),
        "{message}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anchors_are_validated() -> anyhow::Result<()> {
    let mut env = TestEnv::start(BINARY).await?;
    if skip(&env, "needs a replica started with --excluded-namespace") {
        return Ok(());
    }
    let excluded = env.ns("excluded");
    create_hnc_namespace(&env).await?;
    env.create_namespace(&excluded).await?;
    let mut args = WEBHOOK_ARGS.to_vec();
    let flag = format!("--excluded-namespace={excluded}");
    args.push(&flag);
    let r = env.start_replica("hnc", &args).await?;
    env.replica(r).wait_ready(CONVERGE).await?;
    webhooks_answer(&env).await?;

    let anchors = |ns: &str| Api::<SubnamespaceAnchor>::namespaced(env.client.clone(), ns);
    let anchor = |ns: &str, name: &str| -> anyhow::Result<SubnamespaceAnchor> {
        Ok(serde_json::from_value(json!({"metadata": {"name": name, "namespace": ns}, "spec": {}}))?)
    };
    let in_excluded = anchor(&excluded, &env.ns("sub"))?;
    let (code, message) =
        denial(anchors(&excluded).create(&PostParams::default(), &in_excluded).await.map(drop));
    assert_eq!(code, 403, "{message}");
    let unmanaged = format!("cannot create a subnamespace in the unmanaged namespace \"{excluded}\"");
    assert!(
        message.contains(&unmanaged) && message.contains("excluded by the HNC administrator"),
        "{message}"
    );
    let (parent, taken) = (env.ns("parent"), env.ns("taken"));
    env.create_namespace(&parent).await?;
    env.create_namespace(&taken).await?;
    // Dry runs: an attempt made before the index has seen `taken` would otherwise create the anchor.
    let taking_over = anchor(&parent, &taken)?;
    let (code, message) = denied_eventually("taking over an existing namespace to be denied", || async {
        anchors(&parent).create(&dry_run(), &taking_over).await.map(drop)
    })
    .await?;
    assert_eq!(code, 409, "{message}");
    assert!(message.contains("cannot create a subnamespace using an existing namespace"), "{message}");
    let bad_name = anchor(&parent, "not.a.namespace")?;
    let (code, message) = denial(anchors(&parent).create(&PostParams::default(), &bad_name).await.map(drop));
    assert_eq!(code, 422, "{message}");
    assert!(message.contains("not a valid namespace name"), "{message}");

    // A subnamespace with children is only deleted with allowCascadingDeletion.
    let (sub, below) = (env.ns("sub"), env.ns("below"));
    for (p, c) in [(&parent, &sub), (&sub, &below)] {
        env.create_anchor(p, c).await?;
        eventually(CONVERGE, &format!("subnamespace {c}"), || async {
            (env.anchor_state(p, c).await.ok()?.as_deref() == Some("Ok")).then_some(())
        })
        .await?;
    }
    let (code, message) = denied_eventually("deleting a non-leaf anchor to be denied", || async {
        anchors(&parent).delete(&sub, &DeleteParams { dry_run: true, ..Default::default() }).await.map(drop)
    })
    .await?;
    assert_eq!(code, 403, "{message}");
    assert!(message.contains("is not a leaf and doesn't allow cascading deletion"), "{message}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hnc_configuration_is_validated() -> anyhow::Result<()> {
    let env = env_with(&[]).await?;
    let configs = Api::<HNCConfiguration>::all(env.client.clone());
    let config =
        eventually(CONVERGE, "config to exist", || async { configs.get_opt("config").await.ok()? }).await?;
    let with = |resources: Vec<ResourceSpec>| {
        let mut c = config.clone();
        c.spec.resources = resources;
        c
    };
    let spec = |group: &str, resource: &str, mode: Option<SyncMode>| ResourceSpec {
        group: group.into(),
        resource: resource.into(),
        mode,
    };

    // The enforced types cannot be configured (so they can never be removed from propagation).
    let roles = with(vec![spec("rbac.authorization.k8s.io", "roles", Some(SyncMode::Ignore))]);
    let (code, message) = denial(configs.replace("config", &dry_run(), &roles).await.map(drop));
    assert_eq!(code, 422, "{message}");
    assert!(message.contains(
        "spec.resources[0]: Invalid value: roles.rbac.authorization.k8s.io: always uses the 'Propagate' mode"
    ));
    let (code, message) = denial(configs.delete("config", &DeleteParams::default()).await.map(drop));
    assert_eq!(code, 403);
    assert!(message.contains("deleting the 'config' object is forbidden"), "{message}");

    // ConfigMaps tracked in Remove mode; switching them to propagation (an empty mode means Propagate) would
    // overwrite the child's own.
    let (parent, child) = (env.ns("parent"), env.ns("child"));
    env.create_namespace(&parent).await?;
    env.create_namespace(&child).await?;
    settled(|| set_parent(&env.client, &child, Some(&parent), false)).await?;
    for ns in [&parent, &child] {
        let cm: ConfigMap =
            serde_json::from_value(json!({"metadata": {"name": "settings", "namespace": ns}}))?;
        Api::<ConfigMap>::namespaced(env.client.clone(), ns).create(&PostParams::default(), &cm).await?;
    }
    settled(|| async {
        let mut current = configs.get("config").await?;
        current.spec.resources = vec![spec("", "configmaps", Some(SyncMode::Remove))];
        configs.replace("config", &PostParams::default(), &current).await.map(drop)
    })
    .await?;
    let (code, message) = denied_eventually("switching ConfigMaps to Propagate to be denied", || async {
        let mut current = configs.get("config").await?;
        current.spec.resources = vec![spec("", "configmaps", None)];
        configs.replace("config", &dry_run(), &current).await.map(drop)
    })
    .await?;
    assert_eq!(code, 409, "{message}");
    assert!(
        message.contains("Operation cannot be fulfilled on hncconfigurations.hnc.x-k8s.io \"config\""),
        "{message}"
    );
    assert!(message.contains(&format!(
        "Object \"settings\" in namespace \"{parent}\" would overwrite the one in \"{child}\""
    )));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_survives_losing_a_replica() -> anyhow::Result<()> {
    let mut env = TestEnv::start(BINARY).await?;
    if skip(&env, "kills replicas") {
        return Ok(());
    }
    create_hnc_namespace(&env).await?;
    let forwarder = Forwarder::start().await?;
    let base = format!("--webhook-url-base=https://{}", forwarder.addr);
    // The leader issues the certificate and registers the forwarder's URL; the second replica only serves.
    let leader = env
        .start_replica("leader", &[&base, "--webhook-server-port=0", "--enable-internal-cert-management"])
        .await?;
    let follower =
        env.start_replica("follower", &[&base, "--webhook-server-port=0", "--webhooks-only"]).await?;
    let addrs = eventually(CONVERGE, "both webhook servers to listen", || async {
        Some((env.webhook_addr(leader)?, env.webhook_addr(follower)?))
    })
    .await?;
    assert!(addrs.0.ip().is_loopback() && addrs.1.ip().is_loopback());
    forwarder.set_backends(vec![addrs.0, addrs.1]);
    env.replica(leader).wait_ready(CONVERGE).await?;
    env.replica(follower).wait_ready(CONVERGE).await?;
    webhooks_answer(&env).await?;
    // A child holding a Role the parent must not overwrite, known to the follower although it owns no tree.
    let (parent, child) = (env.ns("parent"), env.ns("child"));
    for ns in [&parent, &child] {
        env.create_namespace(ns).await?;
    }
    settled(|| set_parent(&env.client, &child, Some(&parent), false)).await?;
    create_role(&env, &child, "mine").await?;
    let answered = env.replica(follower).metric("hnc_webhook_requests_total").await?;

    env.kill_replica(leader);
    let roles = Api::<Role>::namespaced(env.client.clone(), &parent);
    let (code, message) =
        denied_eventually("the overwriting source to be denied by the follower", || async {
            roles.create(&dry_run(), &role(&parent, "mine", json!({}))).await.map(drop)
        })
        .await?;
    assert_eq!(code, 409, "{message}");
    let namespaces = Api::<Namespace>::all(env.client.clone());
    let labelled = namespace_with_labels(&env.ns("labelled"), json!({"x.tree.hnc.x-k8s.io/depth": "0"}));
    let (code, message) = denial(namespaces.create(&PostParams::default(), &labelled).await.map(drop));
    assert_eq!(code, 403, "{message}");
    assert!(message.contains("cannot set or modify tree label"), "{message}");
    let created = env.create_namespace(&env.ns("after")).await?;
    assert_eq!(
        created
            .metadata
            .labels
            .unwrap_or_default()
            .get("hnc.x-k8s.io/included-namespace")
            .map(String::as_str),
        Some("true"),
        "the surviving replica's mutator labelled it"
    );
    let now = env.replica(follower).metric("hnc_webhook_requests_total").await?;
    assert!(now >= answered + 4.0, "the follower answered {} requests after the leader died", now - answered);
    Ok(())
}
