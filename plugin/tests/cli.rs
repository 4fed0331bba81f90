//! The real `kubectl-hns` binary against apisim over HTTPS: every command's output, errors and exit status, and
//! the objects it writes. No controller runs: statuses are written directly, as a controller would.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use hnc_api::{HNCConfiguration, HierarchyConfiguration, SubnamespaceAnchor, SyncMode};
use hnc_apisim::FaultRule;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use pretty_assertions::assert_eq;
use serde_json::json;
use support::Env;

const ANCHOR_MISSING: &str = "The anchor is missing in the parent namespace team-a";
const CYCLE: &str = "Namespace is a member of the cycle: cyc-a <- cyc-b <- cyc-a";
const PARENT_GONE: &str = "The parent namespace \"gone\" doesn't exist";

/// acme ─┬─ [s] team-a ── [s] svc (anchor missing)
///       └─ team-b
/// cyc-a <-> cyc-b (a cycle), orphan (parent "gone" was deleted)
fn forest(env: &Env) {
    env.namespace("acme");
    env.hierarchy("acme", "", &["team-a", "team-b"], &[]);
    env.subnamespace("team-a", "acme");
    env.hierarchy("team-a", "acme", &["svc"], &[]);
    env.subnamespace("svc", "team-a");
    env.hierarchy("svc", "team-a", &[], &[("BadConfiguration", "SubnamespaceAnchorMissing", ANCHOR_MISSING)]);
    env.namespace("team-b");
    env.hierarchy("team-b", "acme", &[], &[]);
    env.namespace("cyc-a");
    env.hierarchy("cyc-a", "cyc-b", &["cyc-b"], &[("ActivitiesHalted", "InCycle", CYCLE)]);
    env.namespace("cyc-b");
    env.hierarchy("cyc-b", "cyc-a", &["cyc-a"], &[("ActivitiesHalted", "InCycle", CYCLE)]);
    env.namespace("orphan");
    env.hierarchy("orphan", "gone", &[], &[("ActivitiesHalted", "ParentMissing", PARENT_GONE)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_of_named_roots() {
    let env = Env::start().await;
    forest(&env);
    assert_eq!(
        env.hns(&["tree", "acme"]).await.ok(),
        "acme\n\
         ├── [s] team-a\n\
         │   └── [s] svc (1)\n\
         └── team-b\n\
         \n\
         [s] indicates subnamespaces\n\
         \n\
         Conditions:\n\
         1) BadConfiguration (SubnamespaceAnchorMissing): The anchor is missing in the parent namespace team-a\n"
    );
    // A named namespace is a root even with a parent; no [s] on it.
    assert_eq!(
        env.hns(&["tree", "team-a", "team-b"]).await.ok(),
        "team-a\n\
         └── [s] svc (1)\n\
         team-b\n\
         \n\
         [s] indicates subnamespaces\n\
         \n\
         Conditions:\n\
         1) BadConfiguration (SubnamespaceAnchorMissing): The anchor is missing in the parent namespace team-a\n"
    );
    let run = env.hns(&["tree", "acme", "nope"]).await;
    assert!(
        run.failed().ends_with("└── team-b\nError reading namespace nope: namespaces \"nope\" not found\n")
    );
    assert_eq!(
        env.hns(&["tree"]).await.failed(),
        "Error: Must specify the root of the tree(s) to display or else specify --all-namespaces\n"
    );
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tree_of_all_namespaces_with_cycles_and_orphans() {
    let env = Env::start().await;
    forest(&env);
    let expected = "acme\n\
         ├── [s] team-a\n\
         │   └── [s] svc (1)\n\
         └── team-b\n\
         cyc-a (2)\n\
         cyc-b (2)\n\
         default\n\
         kube-node-lease\n\
         kube-public\n\
         kube-system\n\
         orphan (3)\n\
         \n\
         [s] indicates subnamespaces\n\
         \n\
         Conditions:\n\
         1) BadConfiguration (SubnamespaceAnchorMissing): The anchor is missing in the parent namespace team-a\n\
         2) ActivitiesHalted (InCycle): Namespace is a member of the cycle: cyc-a <- cyc-b <- cyc-a\n\
         3) ActivitiesHalted (ParentMissing): The parent namespace \"gone\" doesn't exist\n";
    assert_eq!(env.hns(&["tree", "-A"]).await.ok(), expected);
    assert_eq!(env.hns(&["tree", "--all-namespaces", "acme"]).await.ok(), expected, "-A ignores arguments");
    assert_eq!(
        env.sim.request_count("LIST", "hierarchyconfigurations"),
        2,
        "one list per run, not a GET each"
    );
    assert_eq!(env.sim.request_count("GET", "hierarchyconfigurations"), 0);

    // A user who may read HierarchyConfigurations only one by one gets the same picture.
    env.create(
        "rbac.authorization.k8s.io",
        "clusterroles",
        "",
        json!({"metadata": {"name": "hns-viewer"}, "rules": [
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list"]},
            {"apiGroups": ["hnc.x-k8s.io"], "resources": ["hierarchyconfigurations"], "verbs": ["get"]}]}),
    );
    env.create(
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        "",
        json!({"metadata": {"name": "hns-viewer"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "hns-viewer"},
               "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "viewer"}]}),
    );
    env.sim.add_user("viewer-token", "viewer", &[]);
    let viewer = env.kubeconfig_for("viewer.kubeconfig", "viewer-token", "default");
    assert_eq!(env.hns_with(&viewer, &["tree", "-A"]).await.ok(), expected);
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_shows_children_anchors_conditions_and_events() {
    let env = Env::start().await;
    env.namespace("proj");
    env.create(
        "hnc.x-k8s.io",
        "hierarchyconfigurations",
        "proj",
        json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HierarchyConfiguration",
               "metadata": {"name": "hierarchy", "namespace": "proj"},
               "spec": {"parent": "acme", "allowCascadingDeletion": true},
               "status": {"children": ["full", "sub"], "conditions": [
                   {"type": "BadConfiguration", "status": "True", "reason": "IllegalManagedLabel",
                    "message": "Not a legal managed label (--managed-namespace-label): team",
                    "lastTransitionTime": "2025-01-01T00:00:00Z"}]}}),
    );
    env.anchor("proj", "sub", "Ok");
    env.anchor("proj", "new-one", "Missing");
    let ten_minutes_ago = Timestamp::now() - SignedDuration::from_mins(10);
    let events = [
        (
            "e1",
            "hnc.x-k8s.io",
            "creds",
            "  Could not propagate: the object has finalizers \n",
            ten_minutes_ago,
        ),
        ("e2", "hnc.x-k8s.io", "creds", "an older duplicate", ten_minutes_ago - SignedDuration::from_mins(5)),
        ("e3", "kubelet", "creds", "not from HNC", ten_minutes_ago),
    ];
    for (name, component, object, message, when) in events {
        env.create(
            "",
            "events",
            "proj",
            json!({"metadata": {"name": name, "namespace": "proj"},
                   "involvedObject": {"kind": "Secret", "namespace": "proj", "name": object},
                   "reason": "CannotPropagateObject", "message": message, "source": {"component": component},
                   "lastTimestamp": when.to_string(), "type": "Warning"}),
        );
    }
    assert_eq!(
        env.hns(&["describe", "proj"]).await.ok(),
        "Hierarchy configuration for namespace proj\n\
         \x20 Parent: acme\n\
         \x20 Children:\n\
         \x20 - full\n\
         \x20 - new-one (Missing subnamespace)\n\
         \x20 - sub (subnamespace)\n\
         \x20 Allows Cascading Deletion: true\n\
         \x20 Conditions:\n\
         \x20 - BadConfiguration (IllegalManagedLabel): Not a legal managed label (--managed-namespace-label): team\n\
         \n\
         Events from the objects in namespace proj\n\
         Last Seen Reason                Object            Message\n\
         10m       CannotPropagateObject Secret:proj/creds Could not propagate: the object has finalizers\n"
    );

    // A namespace without a HierarchyConfiguration is a root with nothing to show.
    assert_eq!(
        env.hns(&["describe", "default"]).await.ok(),
        "Hierarchy configuration for namespace default\n\
         \x20 No parent\n\
         \x20 No children\n\
         \x20 Allows Cascading Deletion: false\n\
         \x20 No conditions\n\
         \n\
         No recent HNC events for objects in this namespace\n"
    );
    assert_eq!(
        env.hns(&["describe", "nope"]).await.failed(),
        "Hierarchy configuration for namespace nope\n\
         Error reading namespace nope: namespaces \"nope\" not found\n"
    );
    env.sim.shutdown().await;
}

/// acme ── team-a ── dev, tree-labelled as HNC labels them, with an HRQ in each (acme's status not written yet)
/// and one in an unrelated namespace.
fn quota_forest(env: &Env) {
    env.labelled_namespace("acme", &[]);
    env.hierarchy("acme", "", &["team-a"], &[]);
    env.labelled_namespace("team-a", &["acme"]);
    env.hierarchy("team-a", "acme", &["dev"], &[]);
    env.labelled_namespace("dev", &["team-a", "acme"]);
    env.hierarchy("dev", "team-a", &[], &[]);
    env.namespace("other");
    env.hrq("acme", "pending", json!({"pods": "100"}), None);
    env.hrq(
        "team-a",
        "budget",
        json!({"pods": "10", "requests.cpu": "4", "limits.cpu": "8"}),
        Some(json!({"pods": "3", "requests.cpu": "1.5", "limits.cpu": "2"})),
    );
    env.hrq("dev", "small", json!({"pods": "2"}), Some(json!({"pods": "3"})));
    env.hrq("other", "unrelated", json!({"pods": "1"}), Some(json!({})));
}

const DESCRIBE_DEV: &str = "Hierarchy configuration for namespace dev\n\
     \x20 Parent: team-a\n\
     \x20 No children\n\
     \x20 Allows Cascading Deletion: false\n\
     \x20 No conditions\n\
     \n\
     No recent HNC events for objects in this namespace\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_shows_the_quotas_of_the_namespace_and_its_ancestors() {
    let env = Env::start().await;
    quota_forest(&env);
    assert_eq!(
        env.hns(&["describe", "dev"]).await.ok(),
        format!(
            "{DESCRIBE_DEV}\n\
             Hierarchical quotas:\n\
             \x20 acme/pending:   pods: ?/100\n\
             \x20 team-a/budget:  pods: 3/10, requests.cpu: 1500m/4  (limits.cpu: 2/8)\n\
             \x20 dev/small:      pods: 3/2 (over)\n"
        )
    );
    assert_eq!(
        env.sim.request_count("LIST", "hierarchicalresourcequotas"),
        3,
        "one list per namespace of the ancestry"
    );
    assert!(env.hns(&["describe", "team-a"]).await.ok().ends_with(
        "\nHierarchical quotas:\n\
             \x20 acme/pending:   pods: ?/100\n\
             \x20 team-a/budget:  pods: 3/10, requests.cpu: 1500m/4  (limits.cpu: 2/8)\n"
    ));
    // No HRQ in the namespace or its ancestry: upstream's output, unchanged.
    assert_eq!(
        env.hns(&["describe", "default"]).await.ok(),
        "Hierarchy configuration for namespace default\n\
         \x20 No parent\n\
         \x20 No children\n\
         \x20 Allows Cascading Deletion: false\n\
         \x20 No conditions\n\
         \n\
         No recent HNC events for objects in this namespace\n"
    );

    // Any other failure to list them is said in their section; describe still succeeds.
    let fault = env.sim.faults().add(FaultRule {
        verb: Some("LIST".into()),
        resource: Some("hierarchicalresourcequotas".into()),
        error: Some(500),
        error_rate: 1.0,
        ..FaultRule::default()
    });
    assert_eq!(
        env.hns(&["describe", "dev"]).await.ok(),
        format!(
            "{DESCRIBE_DEV}\n\
             Hierarchical quotas:\n\
             \x20 Error listing hierarchical quotas in acme: injected fault (500)\n"
        )
    );
    env.sim.faults().remove(fault);

    // A user who may not list HRQs sees upstream's output.
    env.create(
        "rbac.authorization.k8s.io",
        "clusterroles",
        "",
        json!({"metadata": {"name": "describer"}, "rules": [
            {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
            {"apiGroups": ["hnc.x-k8s.io"], "resources": ["hierarchyconfigurations"], "verbs": ["get"]},
            {"apiGroups": ["hnc.x-k8s.io"], "resources": ["subnamespaceanchors"], "verbs": ["list"]}]}),
    );
    env.create(
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        "",
        json!({"metadata": {"name": "describer"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "describer"},
               "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "describer"}]}),
    );
    env.sim.add_user("describer-token", "describer", &[]);
    let describer = env.kubeconfig_for("describer.kubeconfig", "describer-token", "dev");
    assert_eq!(env.hns_with(&describer, &["describe", "dev"]).await.ok(), DESCRIBE_DEV);
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_without_the_hrq_crd_says_nothing_of_quotas() {
    let env = Env::start_with_crds(|file| !file.contains("hierarchicalresourcequotas")).await;
    env.labelled_namespace("team-a", &[]);
    env.hierarchy("team-a", "", &["dev"], &[]);
    env.labelled_namespace("dev", &["team-a"]);
    env.hierarchy("dev", "team-a", &[], &[]);
    assert_eq!(env.hns(&["describe", "dev"]).await.ok(), DESCRIBE_DEV);
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_delete_subnamespace_anchors() {
    let env = Env::start().await;
    env.namespace("acme");
    let anchors = Api::<SubnamespaceAnchor>::namespaced(env.client().await, "acme");

    assert_eq!(
        env.hns(&["create", "team-a", "-n", "acme"]).await.ok(),
        "Successfully created \"team-a\" subnamespace anchor in \"acme\" namespace\n"
    );
    assert!(anchors.get_opt("team-a").await.unwrap().is_some());
    assert_eq!(
        env.hns(&["create", "team-a", "--namespace", "acme"]).await.failed(),
        "\nCould not create subnamespace anchor.\n\
         Reason: subnamespaceanchors.hnc.x-k8s.io \"team-a\" already exists\n"
    );
    assert_eq!(
        env.hns(&["create", "x", "-n", ""]).await.failed(),
        "Error: parent must be set via --namespace or -n\n"
    );

    assert_eq!(
        env.hns(&["delete", "team-a", "-n", "acme"]).await.ok(),
        "Successfully deleted \"team-a\" subnamespace anchor in \"acme\" namespace\n"
    );
    assert!(anchors.get_opt("team-a").await.unwrap().is_none());
    assert_eq!(
        env.hns(&["delete", "team-a", "-n", "acme"]).await.failed(),
        "\nCould not delete subnamespace anchor.\n\
         Reason: subnamespaceanchors.hnc.x-k8s.io \"team-a\" not found\n"
    );

    // -a allows cascading deletion on the subnamespace first (creating its HierarchyConfiguration if needed).
    env.anchor("acme", "team-b", "Ok");
    env.subnamespace("team-b", "acme");
    assert_eq!(
        env.hns(&["delete", "team-b", "-n", "acme", "-a"]).await.ok(),
        "Allowing cascading deletion on 'team-b'\n\
         Successfully deleted \"team-b\" subnamespace anchor in \"acme\" namespace\n"
    );
    let hc = Api::<HierarchyConfiguration>::namespaced(env.client().await, "team-b")
        .get("hierarchy")
        .await
        .unwrap();
    assert_eq!(hc.spec.allow_cascading_deletion, Some(true));
    env.anchor("acme", "team-b", "Ok");
    assert_eq!(
        env.hns(&["delete", "team-b", "-n", "acme", "--allowCascadingDeletion"]).await.ok(),
        "Cascading deletion for 'team-b' is already set to 'true'; unchanged\n\
         Successfully deleted \"team-b\" subnamespace anchor in \"acme\" namespace\n"
    );
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespace_flag_defaults_to_the_kubeconfig_context() {
    let env = Env::start().await;
    env.namespace("acme");
    let in_acme = env.kubeconfig_for("acme.kubeconfig", env.sim.admin_token(), "acme");
    assert_eq!(
        env.hns_with(&in_acme, &["create", "team-c"]).await.ok(),
        "Successfully created \"team-c\" subnamespace anchor in \"acme\" namespace\n"
    );
    // The admin kubeconfig's context names "default".
    assert_eq!(
        env.hns(&["create", "team-d"]).await.ok(),
        "Successfully created \"team-d\" subnamespace anchor in \"default\" namespace\n"
    );
    // -n wins over the context, wherever it is on the command line.
    assert_eq!(
        env.hns_with(&in_acme, &["-n", "default", "create", "team-e"]).await.ok(),
        "Successfully created \"team-e\" subnamespace anchor in \"default\" namespace\n"
    );
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_parent_root_and_cascading_deletion() {
    let env = Env::start().await;
    env.namespace("a");
    env.namespace("b");
    env.namespace("c");
    let hcs = Api::<HierarchyConfiguration>::namespaced(env.client().await, "b");

    // First write creates the HierarchyConfiguration, later ones replace it.
    assert_eq!(
        env.hns(&["set", "b", "-p", "a"]).await.ok(),
        "Setting the parent of b to a\n\
         Succesfully updated 1 property of the hierarchical configuration of b\n"
    );
    assert_eq!(hcs.get("hierarchy").await.unwrap().spec.parent.as_deref(), Some("a"));
    assert_eq!(
        env.hns(&["set", "b", "--parent", "a"]).await.ok(),
        "Parent of b is already a; unchanged\nNo changes made\n"
    );
    assert_eq!(
        env.hns(&["set", "b", "-p", "c", "--allowCascadingDeletion"]).await.ok(),
        "Changing the parent of b from a to c\n\
         Allowing cascading deletion on 'b'\n\
         Succesfully updated 2 properties of the hierarchical configuration of b\n"
    );
    assert_eq!(
        env.hns(&["set", "b", "--root", "-f"]).await.ok(),
        "Unsetting the parent of b (was previously c)\n\
         Forbidding cascading deletion on 'b'\n\
         Succesfully updated 2 properties of the hierarchical configuration of b\n"
    );
    let spec = hcs.get("hierarchy").await.unwrap().spec;
    assert_eq!((spec.parent, spec.allow_cascading_deletion), (None, None));
    assert_eq!(
        env.hns(&["set", "b", "-r"]).await.ok(),
        "b is already a root namespace; unchanged \nNo changes made\n"
    );

    assert_eq!(
        env.hns(&["set", "b", "-r", "-p", "a"]).await.failed(),
        "Cannot give the namespace a parent and make it a root at the same time\n"
    );
    assert_eq!(
        env.hns(&["set", "b", "-p", "a", "-a", "-f"]).await.failed(),
        "Setting the parent of b to a\n\
         Cannot set both --allowCascadingDeletion and --forbidCascadingDeletion\n"
    );
    assert_eq!(hcs.get("hierarchy").await.unwrap().spec.parent, None, "nothing written on refusal");
    assert_eq!(
        env.hns(&["set", "nope", "-p", "a"]).await.failed(),
        "Error reading namespace nope: namespaces \"nope\" not found\n"
    );

    // The server's refusal is reported with its reason: here RBAC, for a user who may only read.
    env.create(
        "rbac.authorization.k8s.io",
        "clusterroles",
        "",
        json!({"metadata": {"name": "reader"}, "rules": [
            {"apiGroups": ["", "hnc.x-k8s.io"], "resources": ["namespaces", "hierarchyconfigurations"],
             "verbs": ["get"]}]}),
    );
    env.create(
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        "",
        json!({"metadata": {"name": "reader"},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "reader"},
               "subjects": [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "reader"}]}),
    );
    env.sim.add_user("reader-token", "reader", &[]);
    let reader = env.kubeconfig_for("reader.kubeconfig", "reader-token", "default");
    let run = env.hns_with(&reader, &["set", "b", "-p", "a"]).await;
    let out = run.failed();
    assert!(
        out.starts_with(
            "Setting the parent of b to a\n\nCould not update the hierarchical configuration of b.\nReason: "
        ) && out.contains("cannot update resource \"hierarchyconfigurations\""),
        "{run:?}"
    );
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_describe_set_resource_and_delete_type() {
    let env = Env::start().await;
    let configs = Api::<HNCConfiguration>::all(env.client().await);
    assert_eq!(env.hns(&["config", "describe"]).await.ok(), "Synchronized resources:\n\nConditions:\n");

    // Creates `config`, silently, as upstream.
    assert_eq!(env.hns(&["config", "set-resource", "secrets", "--mode", "ignore"]).await.ok(), "");
    let spec = configs.get("config").await.unwrap().spec;
    assert_eq!(
        (spec.resources[0].resource.as_str(), spec.resources[0].mode),
        ("secrets", Some(SyncMode::Ignore))
    );

    let run = env.hns(&["config", "set-resource", "secrets", "--mode", "propagate"]).await;
    assert_eq!(
        run.failed(),
        "Switching directly from 'Ignore' to 'Propagate' mode or 'AllowPropagate' mode could cause existing \
         \"secrets\" objects in child namespaces to be overwritten by objects from ancestor namespaces.\n\
         If you are sure you want to proceed with this operation, use the '--force' flag.\n\
         If you are not sure and would like to see what source objects would be overwritten,please switch to \
         'Remove' first. To see how to enable propagation safely, refer to \
         https://github.com/kubernetes-sigs/hierarchical-namespaces/blob/master/docs/user-guide/how-to.md#admin-types\n"
    );
    assert_eq!(
        env.hns(&["config", "set-resource", "secrets", "--mode", "AllowPropagate", "-f"]).await.ok(),
        ""
    );
    // A brand-new type may be added as Propagate directly; the group is kept.
    env.hns(&["config", "set-resource", "widgets", "--group", "example.com", "--mode", "Propagate"])
        .await
        .ok();
    let spec = configs.get("config").await.unwrap().spec;
    let modes: Vec<_> =
        spec.resources.iter().map(|r| (r.group.as_str(), r.resource.as_str(), r.mode)).collect();
    assert_eq!(
        modes,
        [
            ("", "secrets", Some(SyncMode::AllowPropagate)),
            ("example.com", "widgets", Some(SyncMode::Propagate))
        ]
    );

    // An unknown mode reaches the API server, whose schema refuses it.
    let run = env.hns(&["config", "set-resource", "secrets", "--mode", "sometimes"]).await;
    assert!(run.failed().starts_with("\nCould not update the HNC Configuration: "), "{run:?}");
    assert!(run.stdout.contains("Sometimes"), "{run:?}");

    assert_eq!(
        env.hns(&["config", "delete-type", "--group", "example.com", "--resource", "widgets"]).await.ok(),
        "Configuration for type with group: example.com, resource: widgets is deleted\n"
    );
    assert_eq!(
        env.hns(&["config", "delete-type", "--resource", "widgets"]).await.ok(),
        "Nothing to delete; No configuration for type with group: , resource: widgets\n"
    );
    assert_eq!(configs.get("config").await.unwrap().spec.resources.len(), 1);
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_describe_reports_the_status() {
    let env = Env::start().await;
    env.create(
        "hnc.x-k8s.io",
        "hncconfigurations",
        "",
        json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HNCConfiguration", "metadata": {"name": "config"},
               "spec": {"resources": [{"resource": "secrets", "mode": "Propagate"}]},
               "status": {"resources": [
                   {"group": "rbac.authorization.k8s.io", "version": "v1", "resource": "rolebindings", "mode": "Propagate"},
                   {"group": "", "version": "v1", "resource": "secrets", "mode": "Remove"},
                   {"group": "example.com", "version": "v2", "resource": "widgets", "mode": "Ignore"}],
                   "conditions": [{"type": "BadConfiguration", "status": "True", "reason": "ResourceNotFound",
                       "message": "no matches for /, Resource=nothings", "lastTransitionTime": "2025-01-01T00:00:00Z"}]}}),
    );
    assert_eq!(
        env.hns(&["config", "describe"]).await.ok(),
        "Synchronized resources:\n\
         * Propagating: rolebindings (rbac.authorization.k8s.io/v1)\n\
         * Removing: secrets (/v1)\n\
         * Ignoring: widgets (example.com/v2)\n\
         \n\
         Conditions:\n\
         BadConfiguration (ResourceNotFound): no matches for /, Resource=nothings\n"
    );
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hrq_lists_quotas_from_their_status() {
    let env = Env::start().await;
    env.namespace("acme");
    env.namespace("empty");
    for (ns, name, labels, hard, used) in [
        (
            "acme",
            "team-quota",
            json!({"team": "a"}),
            json!({"pods": "10", "requests.cpu": "2", "limits.memory": "2Gi"}),
            json!({"pods": "3", "requests.cpu": "1500m", "limits.memory": "1024Mi"}),
        ),
        ("default", "small", json!({}), json!({"pods": "1"}), json!({})),
    ] {
        env.create(
            "hnc.x-k8s.io",
            "hierarchicalresourcequotas",
            ns,
            json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HierarchicalResourceQuota",
                   "metadata": {"name": name, "namespace": ns, "labels": labels},
                   "spec": {"hard": hard}, "status": {"hard": hard, "used": used}}),
        );
    }
    // Ages are seconds here; the AGE column is 6 wide either way.
    let age = |out: &str, row: usize, column: usize| {
        out.lines().nth(row).unwrap().split_whitespace().nth(column).unwrap().to_owned()
    };

    let out = env.hns(&["hrq", "-n", "acme"]).await.ok().to_owned();
    let a = age(&out, 1, 1);
    assert!(a.ends_with('s') && a.len() <= 3, "{out}");
    assert_eq!(
        out,
        format!(
            "NAME         AGE   REQUEST                             LIMIT\n\
             team-quota   {a:<6}pods: 3/10, requests.cpu: 1500m/2   limits.memory: 1Gi/2Gi\n"
        )
    );
    assert_eq!(env.hns(&["hrq", "team-quota", "-n", "acme"]).await.ok(), out);

    let out = env.hns(&["hrq", "-A", "--show-labels"]).await.ok().to_owned();
    let (a1, a2) = (age(&out, 1, 2), age(&out, 2, 2));
    assert_eq!(
        out,
        format!(
            "NAMESPACE   NAME         AGE   REQUEST                             LIMIT                    LABELS\n\
             acme        team-quota   {a1:<6}pods: 3/10, requests.cpu: 1500m/2   limits.memory: 1Gi/2Gi   team=a\n\
             default     small        {a2:<6}pods: 0/1                                                    <none>\n"
        )
            .replace(&format!("team-quota   {a1:<6}"), &format!("team-quota   {a1:<6}"))
    );
    // The context's namespace ("default") when -n is not given.
    assert!(env.hns(&["hrq"]).await.ok().contains("small"));
    assert_eq!(env.hns(&["hrq", "-n", "empty"]).await.failed(), "No resources found in empty namespace.\n");
    assert_eq!(
        env.hns(&["hrq", "nope", "-n", "acme"]).await.failed(),
        "Error reading hierarchicalresourcequota nope: hierarchicalresourcequotas.hnc.x-k8s.io \"nope\" not found\n"
    );
    assert_eq!(env.hns(&["hrq", "-A", "nope"]).await.failed(), "No resources found\n");
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeouts_unreachable_servers_and_missing_kubeconfigs() {
    let env = Env::start().await;
    env.sim.faults().add(FaultRule {
        verb: Some("GET".into()),
        resource: Some("namespaces".into()),
        latency: Duration::from_secs(3),
        ..FaultRule::default()
    });
    let started = Instant::now();
    assert_eq!(
        env.hns(&["describe", "default", "--request-timeout", "300ms"]).await.failed(),
        "Hierarchy configuration for namespace default\n\
         Error reading namespace default: no answer from the API server within 300ms (--request-timeout)\n"
    );
    assert!(started.elapsed() < Duration::from_secs(3), "the timeout cut the request short");
    env.sim.faults().clear();

    let bad = env.hns(&["tree", "x", "--request-timeout", "soon"]).await;
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("invalid timeout value \"soon\""), "{bad:?}");

    // Nothing listens on this port any more.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let closed = env.dir.path().join("closed.kubeconfig");
    let yaml = env
        .sim
        .kubeconfig_yaml(env.sim.admin_token())
        .replace(&env.sim.https_url(), &format!("https://127.0.0.1:{port}"));
    std::fs::write(&closed, yaml).unwrap();
    let run = env.hns_with(&closed, &["describe", "default"]).await;
    assert!(
        run.failed()
            .starts_with("Hierarchy configuration for namespace default\nError reading namespace default: "),
        "{run:?}"
    );

    // No --kubeconfig, no KUBECONFIG, no ~/.kube/config, not in a cluster.
    let run = env.hns_raw(&["tree", "-A"]).await;
    assert!(run.failed().starts_with("Error: no kubeconfig found"), "{run:?}");
    // KUBECONFIG is honoured.
    let out = tokio::process::Command::new(support::BIN)
        .args(["describe", "default"])
        .env("KUBECONFIG", &env.kubeconfig)
        .env("HOME", env.dir.path())
        .output()
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("No parent"), "{out:?}");
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_help_and_command_line_errors_need_no_cluster() {
    let env = Env::start().await;
    let version = format!("kubectl-hns version {}\n", env!("CARGO_PKG_VERSION"));
    assert_eq!(env.hns_raw(&["version"]).await.ok(), version);
    assert_eq!(env.hns_raw(&["--version"]).await.ok(), version);
    let help = env.hns_raw(&["--help"]).await;
    assert!(help.ok().contains("Not provided: `get`"), "{help:?}");
    assert!(env.hns_raw(&[]).await.ok().contains("Usage: kubectl hns"));

    let run = env.hns_raw(&["create"]).await;
    assert_eq!(run.code, 1, "a usage error exits 1, as upstream's");
    assert!(run.stderr.contains("<CHILD>"), "{run:?}");
    assert_eq!(env.hns_raw(&["get", "secrets"]).await.code, 1);
    env.sim.shutdown().await;
}

/// A one-shot HTTP server that records the request headers and answers 404, to see what the plugin sends.
fn capture_one_request() -> (String, std::thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut head = String::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
        let body = r#"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"namespaces \"x\" not found","reason":"NotFound","code":404}"#;
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        head
    });
    (url, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn impersonation_flags_become_impersonation_headers() {
    let env = Env::start().await;
    let (url, request) = capture_one_request();
    let kubeconfig = env.dir.path().join("plain.kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: {url}\nusers:\n- name: u\n  user:\n    \
             token: t0ken\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\n"
        ),
    )
    .unwrap();
    let run = env
        .hns_with(
            &kubeconfig,
            &["set", "x", "-r", "--as", "alice", "--as-group", "team-a", "--as-group", "team-b"],
        )
        .await;
    assert_eq!(run.failed(), "Error reading namespace x: namespaces \"x\" not found\n");
    let head = request.join().unwrap().to_lowercase();
    assert!(head.starts_with("get /api/v1/namespaces/x "), "{head}");
    for header in ["impersonate-user: alice", "impersonate-group: team-a", "impersonate-group: team-b"] {
        assert!(head.contains(header), "{header} missing from:\n{head}");
    }

    let run = env.hns_with(&kubeconfig, &["tree", "x", "--as-group", "team-a"]).await;
    assert!(run.failed().contains("without impersonating a user"), "{run:?}");
    env.sim.shutdown().await;
}
