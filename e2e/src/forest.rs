//! Forests of small trees for the multi-replica scenarios (`sharding`, `faults`): loading them into apisim,
//! putting source Roles in their roots, and checking that every child holds a faithful copy.

use std::collections::BTreeMap;

use hnc_leader::{ASSIGNMENT_KEY, PublishedAssignment};
use k8s_openapi::api::core::v1::ConfigMap;
use k8s_openapi::api::rbac::v1::{PolicyRule, Role};
use kube::api::{ListParams, ObjectMeta, PostParams};
use kube::{Api, ResourceExt};

use crate::TestEnv;

/// Short Leases so that takeovers are quick, in the same relations as the defaults (the write window is
/// 0.8 × (3 s − 2 s) = 800 ms).
pub const SHORT_LEASE: std::time::Duration = std::time::Duration::from_secs(3);
/// Replica flags of the multi-replica scenarios: no webhooks, the harness's write budget, 16 shards, [`SHORT_LEASE`].
pub const SHORT_LEASE_ARGS: [&str; 6] = [
    "--no-webhooks",
    "--apiserver-qps-throttle=500",
    "--shards=16",
    "--lease-duration=3s",
    "--renew-deadline=2s",
    "--retry-period=500ms",
];
/// How long the multi-replica scenarios wait for convergence.
pub const CONVERGE: std::time::Duration = std::time::Duration::from_secs(90);

/// `trees` roots, each with two children: `t<i>`, `t<i>-a`, `t<i>-b`.
pub fn forest_names(env: &TestEnv, trees: usize) -> Vec<[String; 3]> {
    (0..trees)
        .map(|t| [env.ns(&format!("t{t}")), env.ns(&format!("t{t}-a")), env.ns(&format!("t{t}-b"))])
        .collect()
}

/// Creates the forest's namespaces and the children's HierarchyConfigurations directly in apisim.
pub fn load_forest(env: &TestEnv, trees: &[[String; 3]]) -> anyhow::Result<()> {
    let sim = env.sim().expect("apisim");
    for [root, a, b] in trees {
        for ns in [root, a, b] {
            sim.create("", "namespaces", "", serde_json::json!({"metadata": {"name": ns}}))
                .map_err(|e| anyhow::anyhow!(e.message))?;
        }
        for child in [a, b] {
            let hc = serde_json::json!({"apiVersion": "hnc.x-k8s.io/v1alpha2", "kind": "HierarchyConfiguration",
                "metadata": {"name": "hierarchy", "namespace": child}, "spec": {"parent": root}});
            sim.create("hnc.x-k8s.io", "hierarchyconfigurations", child, hc)
                .map_err(|e| anyhow::anyhow!(e.message))?;
        }
    }
    Ok(())
}

fn role(name: &str, verb: &str) -> Role {
    Role {
        metadata: ObjectMeta { name: Some(name.to_owned()), ..Default::default() },
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["pods".into()]),
            verbs: vec![verb.to_owned()],
            ..Default::default()
        }]),
    }
}

/// Creates or updates role `name` in `ns` with `verb`.
pub async fn put_role(env: &TestEnv, ns: &str, name: &str, verb: &str) -> anyhow::Result<()> {
    let api = Api::<Role>::namespaced(env.client.clone(), ns);
    match api.get_opt(name).await? {
        Some(mut existing) => {
            existing.rules = role(name, verb).rules;
            api.replace(name, &PostParams::default(), &existing).await?;
        }
        None => {
            api.create(&PostParams::default(), &role(name, verb)).await?;
        }
    }
    Ok(())
}

/// A role as seen: where it was copied from (`None` for a source) and its verbs.
type RoleSeen = (Option<String>, Vec<String>);

/// True when the roots' source roles and the children's copies match exactly: every source copied with its
/// content into both children, and no copy left whose source is gone.
pub async fn propagated(env: &TestEnv, trees: &[[String; 3]]) -> Option<()> {
    let all = Api::<Role>::all(env.client.clone()).list(&ListParams::default()).await.ok()?;
    let mut by_ns: BTreeMap<String, BTreeMap<String, RoleSeen>> = BTreeMap::new();
    for r in all {
        let ns = r.namespace().unwrap_or_default();
        let verbs = r.rules.clone().unwrap_or_default().into_iter().flat_map(|rule| rule.verbs).collect();
        let from = r.labels().get("hnc.x-k8s.io/inherited-from").cloned();
        by_ns.entry(ns).or_default().insert(r.name_any(), (from, verbs));
    }
    for [root, a, b] in trees {
        let sources: BTreeMap<&String, &Vec<String>> = by_ns
            .get(root)
            .into_iter()
            .flatten()
            .filter(|(_, (from, _))| from.is_none())
            .map(|(name, (_, verbs))| (name, verbs))
            .collect();
        for child in [a, b] {
            let copies: BTreeMap<&String, &RoleSeen> =
                by_ns.get(child).into_iter().flatten().filter(|(_, (from, _))| from.is_some()).collect();
            if copies.len() != sources.len() {
                return None;
            }
            for (name, verbs) in &sources {
                let (from, copied) = copies.get(*name)?;
                if from.as_deref() != Some(root.as_str()) || copied != *verbs {
                    return None;
                }
            }
        }
    }
    Some(())
}

/// The shard assignment the leader published, if any.
pub async fn assignment(env: &TestEnv) -> Option<PublishedAssignment> {
    let cm = Api::<ConfigMap>::namespaced(env.client.clone(), crate::HNC_NAMESPACE)
        .get_opt("hnc-shard-assignment")
        .await
        .ok()??;
    serde_json::from_str(cm.data?.get(ASSIGNMENT_KEY)?).ok()
}
