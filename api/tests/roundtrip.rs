//! Upstream-shaped objects (as in the spec and upstream's docs) survive a trip through the Rust types.

use hnc_api::{HNCConfiguration, HierarchicalResourceQuota, HierarchyConfiguration, SubnamespaceAnchor};
use pretty_assertions::assert_eq;
use serde_json::{Value, json};

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(input: Value) {
    let typed: T = serde_json::from_value(input.clone()).expect("deserializes");
    let output = serde_json::to_value(&typed).expect("serializes");
    assert_eq!(output, input);
}

#[test]
fn hierarchy_configuration() {
    round_trip::<HierarchyConfiguration>(json!({
        "apiVersion": "hnc.x-k8s.io/v1alpha2",
        "kind": "HierarchyConfiguration",
        "metadata": {"name": "hierarchy", "namespace": "child", "finalizers": ["hnc.x-k8s.io/hasSubnamespace"],
                     "resourceVersion": "42", "uid": "6d3c0d35-0000-4000-8000-000000000001"},
        "spec": {"parent": "parent", "allowCascadingDeletion": true,
                 "labels": [{"key": "team.example.com/env", "value": "prod"}],
                 "annotations": [{"key": "team.example.com/owner", "value": "alice@example.com"}]},
        "status": {
            "children": ["a", "b"],
            "conditions": [
                {"type": "ActivitiesHalted", "status": "True", "reason": "AncestorHaltActivities",
                 "lastTransitionTime": "1970-01-01T00:00:00Z",
                 "message": "Propagation paused in \"child\" and its descendants due to ActivitiesHalted condition on ancestor \"parent\""},
                {"type": "BadConfiguration", "status": "True", "reason": "SubnamespaceAnchorMissing",
                 "lastTransitionTime": "2024-03-01T10:00:00Z", "observedGeneration": 3,
                 "message": "The anchor is missing in the parent"}
            ]
        }
    }));
}

#[test]
fn empty_hierarchy_configuration_has_no_spec_fields() {
    round_trip::<HierarchyConfiguration>(json!({
        "apiVersion": "hnc.x-k8s.io/v1alpha2",
        "kind": "HierarchyConfiguration",
        "metadata": {"name": "hierarchy", "namespace": "root"},
        "spec": {}
    }));
}

#[test]
fn subnamespace_anchor() {
    round_trip::<SubnamespaceAnchor>(json!({
        "apiVersion": "hnc.x-k8s.io/v1alpha2",
        "kind": "SubnamespaceAnchor",
        "metadata": {"name": "team-a-dev", "namespace": "team-a", "finalizers": ["hnc.x-k8s.io"]},
        "spec": {"labels": [{"key": "env", "value": "dev"}]},
        "status": {"status": "Ok"}
    }));
    // Unknown states written by other tools are preserved, not rejected.
    round_trip::<SubnamespaceAnchor>(json!({
        "apiVersion": "hnc.x-k8s.io/v1alpha2",
        "kind": "SubnamespaceAnchor",
        "metadata": {"name": "x", "namespace": "y"},
        "spec": {},
        "status": {"status": "SomethingNew"}
    }));
}

#[test]
fn hnc_configuration() {
    round_trip::<HNCConfiguration>(json!({
        "apiVersion": "hnc.x-k8s.io/v1alpha2",
        "kind": "HNCConfiguration",
        "metadata": {"name": "config"},
        "spec": {"resources": [
            {"resource": "secrets", "mode": "Propagate"},
            {"group": "networking.k8s.io", "resource": "networkpolicies", "mode": "AllowPropagate"},
            {"resource": "configmaps"},
            {"group": "example.com", "resource": "widgets", "mode": "Remove"},
            {"resource": "limitranges", "mode": "Ignore"}
        ]},
        "status": {
            "resources": [
                {"group": "", "version": "v1", "resource": "secrets", "mode": "Propagate",
                 "numPropagatedObjects": 10, "numSourceObjects": 2},
                {"group": "rbac.authorization.k8s.io", "version": "v1", "resource": "roles", "mode": "Propagate",
                 "numPropagatedObjects": 0, "numSourceObjects": 0},
                {"group": "", "version": "v1", "resource": "limitranges", "mode": "Ignore"}
            ],
            "conditions": [
                {"type": "BadConfiguration", "status": "True", "reason": "ResourceNotNamespaced",
                 "lastTransitionTime": "2024-03-01T10:00:00Z", "message": "resource \"nodes.\" is not namespaced"},
                {"type": "NamespaceCondition", "status": "True", "reason": "ActivitiesHalted",
                 "lastTransitionTime": "2024-03-01T10:00:00Z",
                 "message": "2 namespaces \"d\", \"e\" are affected by \"ParentMissing\""}
            ]
        }
    }));
}

#[test]
fn hierarchical_resource_quota() {
    round_trip::<HierarchicalResourceQuota>(json!({
        "apiVersion": "hnc.x-k8s.io/v1alpha2",
        "kind": "HierarchicalResourceQuota",
        "metadata": {"name": "team-quota", "namespace": "team-a"},
        "spec": {"hard": {"secrets": "6", "pods": 3, "requests.cpu": "1.5", "limits.memory": "10Gi"}},
        "status": {
            "hard": {"secrets": "6", "pods": 3, "requests.cpu": "1.5", "limits.memory": "10Gi"},
            "used": {"secrets": "2", "pods": "0", "requests.cpu": "500m", "limits.memory": "1Gi"},
            "requestsSummary": "pods: 0/3, requests.cpu: 500m/1500m, secrets: 2/6",
            "limitsSummary": "limits.memory: 1Gi/10Gi"
        }
    }));
}
