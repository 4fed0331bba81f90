//! Bad input never panics the hierarchy: namespaces, HierarchyConfigurations and anchors as the watches may
//! deliver them — tree labels with depths that are not numbers or overflow (`4294967295`), parents that are
//! not namespace names, the namespace itself or missing, unknown anchor states and managers, managed labels
//! of any text — are indexed, derived and planned without a panic, and every tree label HNC computes carries
//! a valid depth. Each property runs a bounded number of cases in CI; a longer run sets `PROPTEST_CASES`
//! (see docs/testing.md).

use hnc_api::keys::labels::{MAX_TREE_DEPTH, parse_tree_depth, tree_label, tree_label_ancestor};
use hnc_api::keys::{annotations, finalizers};
use hnc_api::{HierarchyConfigurationSpec, HierarchyConfigurationStatus, MetaKvp};
use hnc_shard::tree::plan::plan;
use hnc_shard::tree::{AnchoredRegex, NamespacePolicy, ObservedAnchor, ObservedHierarchy, ObservedNamespace};
use hnc_shard::{NsName, TreeIndex};
use proptest::prelude::*;

/// `cases` per property, unless `PROPTEST_CASES` asks for another number.
fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig::default();
    let cases = if std::env::var_os("PROPTEST_CASES").is_some() { default.cases } else { cases };
    ProptestConfig { cases, ..default }
}

/// Names the scenario uses: a few namespaces, and strings no namespace can be called.
fn name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop_oneof![Just("a"), Just("b"), Just("c"), Just("d"), Just("e")].prop_map(str::to_owned),
        1 => prop_oneof![Just(""), Just("A"), Just("a.b"), Just("é"), Just("a/b"), Just(" ")].prop_map(str::to_owned),
        1 => "[a-z]{64,70}",
    ]
}

fn depth_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,2}",
        Just("4294967295".to_owned()),
        Just("4294967296".to_owned()),
        Just("18446744073709551615".to_owned()),
        Just(MAX_TREE_DEPTH.to_string()),
        Just((MAX_TREE_DEPTH - 1).to_string()),
        Just("-1".to_owned()),
        Just("+1".to_owned()),
        Just("00".to_owned()),
        Just(String::new()),
        ".{0,5}",
    ]
}

fn namespace_labels() -> impl Strategy<Value = Vec<(String, String)>> {
    let tree = (name(), depth_value()).prop_map(|(n, v)| (tree_label(&n), v));
    let other = ("team/[a-z]{1,2}|[a-z]{1,3}", ".{0,4}");
    prop::collection::vec(prop_oneof![tree, other], 0..5)
}

fn kvps() -> impl Strategy<Value = Vec<MetaKvp>> {
    prop::collection::vec(
        (prop_oneof!["team/[a-z]{1,2}", ".{0,6}", Just(tree_label("a"))], ".{0,6}")
            .prop_map(|(key, value)| MetaKvp { key, value }),
        0..3,
    )
}

#[derive(Clone, Debug)]
enum Op {
    Namespace {
        name: String,
        labels: Vec<(String, String)>,
        manager: Option<String>,
        sub_of: Option<String>,
        deleting: bool,
    },
    Hierarchy {
        ns: String,
        parent: Option<String>,
        cascading: Option<bool>,
        labels: Vec<MetaKvp>,
        children: Vec<String>,
        finalizer: bool,
        deleting: bool,
    },
    Anchor {
        ns: String,
        name: String,
        state: Option<String>,
        labels: Vec<MetaKvp>,
        deleting: bool,
    },
    DeleteNamespace(String),
    DeleteHierarchy(String),
    DeleteAnchor(String, String),
}

fn op() -> impl Strategy<Value = Op> {
    let manager =
        prop::option::of(prop_oneof![Just(String::new()), Just("hnc.x-k8s.io".to_owned()), ".{0,6}"]);
    let state = prop::option::of(prop_oneof![
        Just("Ok".to_owned()),
        Just("Missing".to_owned()),
        Just("Conflict".to_owned()),
        Just("Forbidden".to_owned()),
        ".{0,6}"
    ]);
    prop_oneof![
        4 => (name(), namespace_labels(), manager, prop::option::of(name()), any::<bool>()).prop_map(
            |(name, labels, manager, sub_of, deleting)| Op::Namespace { name, labels, manager, sub_of, deleting }
        ),
        4 => (name(), prop::option::of(name()), any::<Option<bool>>(), kvps(), prop::collection::vec(name(), 0..3), any::<bool>(), any::<bool>())
            .prop_map(|(ns, parent, cascading, labels, children, finalizer, deleting)| Op::Hierarchy {
                ns, parent, cascading, labels, children, finalizer, deleting
            }),
        2 => (name(), name(), state, kvps(), any::<bool>())
            .prop_map(|(ns, name, state, labels, deleting)| Op::Anchor { ns, name, state, labels, deleting }),
        1 => name().prop_map(Op::DeleteNamespace),
        1 => name().prop_map(Op::DeleteHierarchy),
        1 => (name(), name()).prop_map(|(a, b)| Op::DeleteAnchor(a, b)),
    ]
}

fn apply(index: &mut TreeIndex, op: Op) {
    match op {
        Op::Namespace { name, labels, manager, sub_of, deleting } => {
            let mut ns = ObservedNamespace { resource_version: "1".into(), deleting, ..Default::default() };
            ns.labels.extend(labels);
            if let Some(manager) = manager {
                ns.annotations.insert(annotations::MANAGED_BY.into(), manager);
            }
            if let Some(parent) = sub_of {
                ns.annotations.insert(annotations::SUBNAMESPACE_OF.into(), parent);
            }
            index.apply_namespace(&name, ns);
        }
        Op::Hierarchy { ns, parent, cascading, labels, children, finalizer, deleting } => {
            let spec = HierarchyConfigurationSpec {
                parent,
                allow_cascading_deletion: cascading,
                labels,
                ..Default::default()
            };
            let status = HierarchyConfigurationStatus { children, ..Default::default() };
            let finalizers = if finalizer { vec![finalizers::HAS_SUBNAMESPACE.to_owned()] } else { vec![] };
            let observed =
                ObservedHierarchy { resource_version: "1".into(), finalizers, spec, status, deleting };
            index.apply_hierarchy(&ns, observed);
        }
        Op::Anchor { ns, name, state, labels, deleting } => {
            let observed = ObservedAnchor {
                resource_version: "1".into(),
                state,
                labels,
                deleting,
                ..Default::default()
            };
            index.apply_anchor(&ns, &name, observed);
        }
        Op::DeleteNamespace(name) => {
            index.delete_namespace(&name);
        }
        Op::DeleteHierarchy(ns) => {
            index.delete_hierarchy(&ns);
        }
        Op::DeleteAnchor(ns, name) => {
            index.delete_anchor(&ns, &name);
        }
    }
}

proptest! {
    #![proptest_config(config(500))]

    #[test]
    fn garbage_observations_are_indexed_and_planned_with_valid_depths(ops in prop::collection::vec(op(), 1..30)) {
        let policy = NamespacePolicy::new(
            vec!["e".to_owned()],
            AnchoredRegex::new(".*").expect("constant regex"),
            vec![AnchoredRegex::new("team/.*").expect("constant regex")],
            vec![AnchoredRegex::new("team/.*").expect("constant regex")],
        );
        let mut index = TreeIndex::new(policy);
        index.set_synced(true);
        for (i, op) in ops.into_iter().enumerate() {
            apply(&mut index, op);
            if i % 7 == 0 {
                index.publish();
            }
        }
        let snapshot = index.publish();
        let names: Vec<NsName> = snapshot.nodes().map(|n| n.name().clone()).collect();
        for name in &names {
            let labels = snapshot.hierarchy_labels(name);
            for (key, value) in labels.iter() {
                if tree_label_ancestor(key).is_some() {
                    prop_assert!(parse_tree_depth(value).is_some(), "{}: {} = {:?}", name, key, value);
                }
            }
            // A namespace is at depth 0 in its own tree label, unless an external hierarchy above it claims
            // otherwise (its labels are taken as they are) or it is in a cycle.
            let ancestry = snapshot.ancestry(name);
            if ancestry.iter().all(|a| snapshot.external_manager(a).is_none()) && snapshot.cycle(name).is_none() {
                prop_assert_eq!(labels.get(&tree_label(name)).map(String::as_str), Some("0"));
            }
            snapshot.computed_labels(name);
            snapshot.namespace_target(name);
            snapshot.hierarchy_target(name);
            snapshot.anchor_actions(name);
            snapshot.conditions(name);
            snapshot.hierarchy_annotations(name);
            snapshot.ancestry(name);
            snapshot.descendants(name);
            snapshot.allows_cascading_deletion(name);
            for other in &names {
                snapshot.cycle_if_parent(name, other);
            }
        }
        let mut dirty = names.clone();
        dirty.push("unknown".into());
        plan(&snapshot, &dirty, &|_| true, "2026-01-01T00:00:00Z");
    }
}
