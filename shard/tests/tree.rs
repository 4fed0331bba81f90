//! The tree index against the behaviours spec §1.6, §4 and §5 describe, and against a brute-force model.

use std::collections::{BTreeMap, BTreeSet};

use hnc_api::anchor::AnchorState;
use hnc_api::{HierarchyConfigurationSpec, MetaKvp};
use hnc_shard::tree::{
    AnchorAction, AnchoredRegex, NamespacePolicy, ObservedAnchor, ObservedHierarchy, ObservedNamespace,
};
use hnc_shard::{HierarchyView, TreeIndex, TreeSnapshot};
use pretty_assertions::assert_eq;
use proptest::prelude::*;

/// A forest under construction: `mk().ns("a").child("b", "a")`.
struct Forest {
    index: TreeIndex,
}

fn mk() -> Forest {
    mk_with(NamespacePolicy::default())
}

fn mk_with(policy: NamespacePolicy) -> Forest {
    let mut index = TreeIndex::new(policy);
    index.set_synced(true);
    Forest { index }
}

fn hc(parent: &str) -> ObservedHierarchy {
    ObservedHierarchy {
        spec: HierarchyConfigurationSpec { parent: Some(parent.into()), ..Default::default() },
        ..Default::default()
    }
}

impl Forest {
    fn ns(mut self, name: &str) -> Self {
        self.index.apply_namespace(name, ObservedNamespace::default());
        self
    }
    fn child(mut self, name: &str, parent: &str) -> Self {
        self.index.apply_namespace(name, ObservedNamespace::default());
        self.index.apply_hierarchy(name, hc(parent));
        self
    }
    fn sub(mut self, name: &str, parent: &str) -> Self {
        let mut ns = ObservedNamespace::default();
        ns.annotations.insert("hnc.x-k8s.io/subnamespace-of".into(), parent.into());
        self.index.apply_namespace(name, ns);
        self.index.apply_anchor(parent, name, ObservedAnchor::default());
        self
    }
    fn snap(&self) -> TreeSnapshot {
        self.index.current().clone()
    }
}

fn tree_labels(t: &TreeSnapshot, ns: &str) -> BTreeMap<String, String> {
    t.hierarchy_labels(ns)
        .iter()
        .filter_map(|(k, v)| k.strip_suffix(".tree.hnc.x-k8s.io/depth").map(|a| (a.to_owned(), v.clone())))
        .collect()
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn reasons(t: &TreeSnapshot, ns: &str) -> Vec<String> {
    t.conditions(ns).iter().map(|c| c.reason.clone()).collect()
}

#[test]
fn tree_labels_follow_the_chain_and_break_at_a_cycle() {
    // Spec §4.4: a←b←d←f, a←c, b←e; then a becomes a child of d.
    let mut f = mk().ns("a").child("b", "a").child("c", "a").child("d", "b").child("e", "b").child("f", "d");
    assert_eq!(tree_labels(&f.snap(), "f"), labels(&[("f", "0"), ("d", "1"), ("b", "2"), ("a", "3")]));

    f.index.apply_hierarchy("a", hc("d"));
    let t = f.snap();
    assert_eq!(tree_labels(&t, "a"), labels(&[("a", "0")]));
    assert_eq!(tree_labels(&t, "b"), labels(&[("b", "0")]));
    assert_eq!(tree_labels(&t, "d"), labels(&[("d", "0")]));
    assert_eq!(tree_labels(&t, "c"), labels(&[("c", "0"), ("a", "1")]));
    assert_eq!(tree_labels(&t, "e"), labels(&[("e", "0"), ("b", "1")]));
    assert_eq!(tree_labels(&t, "f"), labels(&[("f", "0"), ("d", "1")]));
    let cycle = &t.conditions("d")[0];
    assert_eq!(cycle.reason, "InCycle");
    assert_eq!(cycle.message, "Namespace is a member of the cycle: a <- b <- d <- a");
    assert_eq!(reasons(&t, "f"), vec!["AncestorHaltActivities"]);
    assert_eq!(
        t.conditions("f")[0].message,
        "Propagation paused in \"f\" and its descendants due to ActivitiesHalted condition on ancestor \"d\""
    );
    assert_eq!(t.root("f"), t.root("c"), "a cycle and everything below it is one tree");
    assert_eq!(&*t.root("f"), "a", "named after the smallest member of the cycle");

    f.index.apply_hierarchy("a", ObservedHierarchy::default());
    assert_eq!(tree_labels(&f.snap(), "f"), labels(&[("f", "0"), ("d", "1"), ("b", "2"), ("a", "3")]));
    assert!(f.snap().conditions("d").is_empty());
}

#[test]
fn self_parent_is_a_cycle_of_one() {
    let f = mk().child("a", "a");
    assert_eq!(f.snap().conditions("a")[0].message, "Namespace is a member of the cycle: a <- a");
    assert!(f.snap().cycle_if_parent("a", "a").unwrap().contains("cannot be set as its own parent"));
}

#[test]
fn missing_parent_halts_and_appears_when_created() {
    let mut f = mk().child("child", "parent").child("grandchild", "child");
    let t = f.snap();
    assert_eq!(reasons(&t, "child"), vec!["ParentMissing"]);
    assert_eq!(t.conditions("child")[0].message, "Parent \"parent\" does not exist");
    assert_eq!(reasons(&t, "grandchild"), vec!["AncestorHaltActivities"]);
    assert_eq!(tree_labels(&t, "child"), labels(&[("child", "0")]));
    assert_eq!(tree_labels(&t, "grandchild"), labels(&[("grandchild", "0"), ("child", "1")]));
    assert_eq!(&*t.root("grandchild"), "parent", "ownership does not move when the parent appears");
    assert_eq!(t.halted_by("grandchild").as_deref(), Some("child"));

    let affected = f.index.apply_namespace("parent", ObservedNamespace::default());
    assert!(affected.hierarchy.contains("child") && affected.hierarchy.contains("grandchild"));
    assert!(affected.propagation.contains("parent"));
    let t = f.snap();
    assert!(t.conditions("grandchild").is_empty());
    assert_eq!(t.hierarchy_target("parent").unwrap().children, vec!["child"]);
}

#[test]
fn unmanaged_parent_is_illegal() {
    let policy = NamespacePolicy::new(["kube-system"], AnchoredRegex::new(".*").unwrap(), vec![], vec![]);
    let f = mk_with(policy).ns("kube-system").child("a", "kube-system");
    let t = f.snap();
    assert_eq!(t.conditions("a")[0].message, "Parent \"kube-system\" is an unmanaged namespace");
    assert!(!t.is_managed("kube-system"));
    let target = t.namespace_target("kube-system").unwrap();
    assert_eq!(target.remove_labels, vec!["hnc.x-k8s.io/included-namespace"]);
    assert!(target.set_labels.is_empty());
}

#[test]
fn plain_roots_need_no_hierarchy_configuration() {
    let f = mk().ns("root").child("kid", "root");
    let t = f.snap();
    assert!(!t.hierarchy_target("kid").unwrap().should_exist, "a leaf with nothing to report");
    let lone = mk().ns("alone").snap();
    assert!(!lone.hierarchy_target("alone").unwrap().should_exist);
    assert!(t.hierarchy_target("root").unwrap().should_exist, "it has a child to report");
}

#[test]
fn external_namespaces_lend_their_tree_labels() {
    // Spec §4.6: root baz is external with ext1=1, ext2=2; its child bar gets them shifted.
    let mut f = mk();
    let mut baz = ObservedNamespace::default();
    baz.annotations.insert("hnc.x-k8s.io/managed-by".into(), "other-tool".into());
    baz.labels.insert("ext1.tree.hnc.x-k8s.io/depth".into(), "1".into());
    baz.labels.insert("ext2.tree.hnc.x-k8s.io/depth".into(), "2".into());
    f.index.apply_namespace("baz", baz);
    let f = f.child("bar", "baz");
    let t = f.snap();
    assert_eq!(tree_labels(&t, "bar"), labels(&[("bar", "0"), ("baz", "1"), ("ext1", "2"), ("ext2", "3")]));
    assert_eq!(tree_labels(&t, "baz"), labels(&[("baz", "0"), ("ext1", "1"), ("ext2", "2")]));
    assert!(t.namespace_target("baz").unwrap().remove_labels.is_empty(), "external labels are kept");
    assert_eq!(t.externals().count(), 1);
}

#[test]
fn subnamespace_anchor_states() {
    let mut f = mk().ns("p");
    f.index.apply_anchor("p", "c", ObservedAnchor::default());
    let t = f.snap();
    assert_eq!(
        t.anchor_actions("p")[0].1,
        AnchorAction::Ensure {
            target: hnc_shard::tree::AnchorTarget { state: Some(AnchorState::Missing), finalizer: true },
            create_namespace: true
        }
    );
    let mut f = f.sub("c", "p");
    let t = f.snap();
    let AnchorAction::Ensure { target, create_namespace: false } = &t.anchor_actions("p")[0].1 else {
        panic!()
    };
    assert_eq!(target.state, Some(AnchorState::Ok));
    assert_eq!(&**t.parent("c").unwrap(), "p");
    let rewrite = t.hierarchy_target("c").unwrap().spec_rewrite.unwrap();
    assert_eq!(rewrite.parent, "p");
    assert!(t.hierarchy_target("p").unwrap().has_subnamespace_finalizer);

    // Another namespace claims the name: Conflict.
    let mut other = ObservedNamespace::default();
    other.annotations.insert("hnc.x-k8s.io/subnamespace-of".into(), "elsewhere".into());
    f.index.apply_namespace("c", other);
    let AnchorAction::Ensure { target, .. } = &f.snap().anchor_actions("p")[0].1 else { panic!() };
    assert_eq!(target.state, Some(AnchorState::Conflict));
}

#[test]
fn missing_anchor_is_reported_on_the_subnamespace() {
    let mut f = mk().ns("p").sub("c", "p");
    let affected = f.index.delete_anchor("p", "c");
    assert!(affected.hierarchy.contains("c"));
    let t = f.snap();
    assert_eq!(reasons(&t, "c"), vec!["SubnamespaceAnchorMissing"]);
    assert_eq!(&**t.parent("c").unwrap(), "p", "still a child of p");
}

#[test]
fn anchor_deletion_deletes_leaves_and_respects_cascading_deletion() {
    let deleting = |f: &mut Forest, name: &str| {
        f.index.apply_anchor(
            "p",
            name,
            ObservedAnchor { deleting: true, finalizers: vec!["hnc.x-k8s.io".into()], ..Default::default() },
        );
    };
    let mut f = mk().ns("p").sub("leaf", "p").sub("branch", "p").child("below", "branch");
    deleting(&mut f, "leaf");
    deleting(&mut f, "branch");
    let actions: BTreeMap<_, _> = f.snap().anchor_actions("p").into_iter().collect();
    assert_eq!(actions["leaf"], AnchorAction::DeleteSubnamespace);
    assert_eq!(
        actions["branch"],
        AnchorAction::Ensure {
            target: hnc_shard::tree::AnchorTarget { state: Some(AnchorState::Ok), finalizer: false },
            create_namespace: false
        },
        "not a leaf and no cascading deletion: the anchor goes, the namespace stays"
    );

    let mut p_hc = ObservedHierarchy::default();
    p_hc.spec.allow_cascading_deletion = Some(true);
    f.index.apply_hierarchy("p", p_hc);
    assert!(f.snap().allows_cascading_deletion("below"), "inherited from an ancestor");
    let actions: BTreeMap<_, _> = f.snap().anchor_actions("p").into_iter().collect();
    assert_eq!(actions["branch"], AnchorAction::DeleteSubnamespace);

    // Terminating subnamespace: wait for it to go; then Missing releases the anchor.
    let mut terminating = ObservedNamespace { deleting: true, ..Default::default() };
    terminating.annotations.insert("hnc.x-k8s.io/subnamespace-of".into(), "p".into());
    f.index.apply_namespace("leaf", terminating);
    let actions: BTreeMap<_, _> = f.snap().anchor_actions("p").into_iter().collect();
    assert_eq!(actions["leaf"], AnchorAction::Wait);
    f.index.delete_namespace("leaf");
    let actions: BTreeMap<_, _> = f.snap().anchor_actions("p").into_iter().collect();
    assert!(matches!(
        &actions["leaf"],
        AnchorAction::Ensure { target, .. } if target.state == Some(AnchorState::Missing) && !target.finalizer
    ));
}

#[test]
fn managed_labels_flow_down_and_higher_ancestors_win() {
    let policy = NamespacePolicy::new(
        Vec::<String>::new(),
        AnchoredRegex::new(".*").unwrap(),
        vec![AnchoredRegex::new(r"team\.example\.com/.*").unwrap()],
        vec![],
    );
    let mut f = mk_with(policy).ns("root").child("kid", "root");
    let kvp = |k: &str, v: &str| MetaKvp { key: k.into(), value: v.into() };
    let mut root = ObservedHierarchy::default();
    root.spec.labels = vec![kvp("team.example.com/env", "prod"), kvp("not-managed", "x")];
    f.index.apply_hierarchy("root", root);
    let mut kid = hc("root");
    kid.spec.labels = vec![kvp("team.example.com/env", "dev")];
    let affected = f.index.apply_hierarchy("kid", kid);
    assert!(affected.propagation.contains("kid"));
    let t = f.snap();
    assert_eq!(t.hierarchy_labels("kid")["team.example.com/env"], "prod");
    assert_eq!(reasons(&t, "root"), vec!["IllegalManagedLabel"]);
    assert_eq!(
        t.conditions("root")[0].message,
        "Not a legal managed label (set via --managed-namespace-label): not-managed"
    );
    assert_eq!(t.computed_labels("kid").unwrap()["team.example.com/env"], "prod");
}

#[test]
fn tampered_tree_labels_are_removed() {
    let mut f = mk().ns("a");
    let mut b = ObservedNamespace::default();
    b.labels.insert("zzz.tree.hnc.x-k8s.io/depth".into(), "1".into());
    b.labels.insert("b.tree.hnc.x-k8s.io/depth".into(), "7".into());
    b.labels.insert("team".into(), "x".into());
    f.index.apply_namespace("b", b);
    f.index.apply_hierarchy("b", hc("a"));
    let target = f.snap().namespace_target("b").unwrap();
    assert_eq!(target.remove_labels, vec!["zzz.tree.hnc.x-k8s.io/depth"]);
    assert_eq!(target.set_labels["b.tree.hnc.x-k8s.io/depth"], "0");
    assert_eq!(target.set_labels["a.tree.hnc.x-k8s.io/depth"], "1");
    let computed = f.snap().computed_labels("b").unwrap();
    assert!(!computed.contains_key("zzz.tree.hnc.x-k8s.io/depth"));
    assert_eq!(computed["team"], "x");
}

#[test]
fn reparenting_revisits_the_moved_subtree_and_both_parents() {
    let mut f = mk().ns("x").ns("y").child("m", "x").child("m1", "m").child("m2", "m1");
    let affected = f.index.apply_hierarchy("m", hc("y"));
    let expected: BTreeSet<&str> = ["m", "m1", "m2", "x", "y"].into();
    assert_eq!(affected.hierarchy.iter().map(|n| &**n).collect::<BTreeSet<_>>(), expected);
    assert!(affected.propagation.contains("m"));
    assert_eq!(
        f.snap().cycle_if_parent("y", "m2").unwrap(),
        "cycle when making \"m2\" the parent of \"y\": current ancestry is m2 -> m1 -> m -> y"
    );
}

#[test]
fn published_snapshots_never_change() {
    let mut f = mk().ns("a");
    let reader = f.index.reader();
    let before = f.index.publish();
    f.index.apply_hierarchy("b", hc("a"));
    f.index.apply_namespace("b", ObservedNamespace::default());
    assert!(before.node("b").is_none() || !before.exists("b"));
    assert!(!reader.load().exists("b"), "not published yet");
    f.index.publish();
    assert!(reader.load().exists("b"));
    assert!(before.children("a").is_empty());
}

#[test]
fn unchanged_events_affect_nothing() {
    let mut f = mk().child("b", "a");
    assert!(f.index.apply_hierarchy("b", hc("a")).is_empty());
    assert!(f.index.apply_namespace("b", ObservedNamespace::default()).is_empty());
}

#[test]
fn nodes_of_deleted_namespaces_are_dropped() {
    let mut f = mk().ns("a").child("b", "a");
    f.index.delete_hierarchy("b");
    f.index.delete_namespace("b");
    f.index.delete_namespace("a");
    assert_eq!(f.snap().nodes().count(), 0);
}

// ---------------------------------------------------------------------------------------------------------
// Property test: the index against a brute-force model under random edits.

/// The model: which namespaces exist and what parent each asks for.
#[derive(Debug, Clone, Default)]
struct Model {
    exists: BTreeSet<String>,
    parent: BTreeMap<String, String>,
    with_hierarchy: BTreeSet<String>,
}

impl Model {
    /// The parent link as upstream's forest has it: only existing namespaces link to their parent.
    fn link(&self, n: &str) -> Option<&str> {
        if self.exists.contains(n) { self.parent.get(n).map(String::as_str) } else { None }
    }
    /// Names reachable by following links from `n` (excluding `n` unless on a cycle through it).
    fn chain(&self, n: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut cur = self.link(n);
        while let Some(p) = cur {
            if out.iter().any(|x| x == p) {
                break;
            }
            out.push(p.to_owned());
            cur = self.link(p);
        }
        out
    }
    fn in_cycle(&self, n: &str) -> bool {
        self.chain(n).iter().any(|x| x == n)
    }
    fn halted(&self, n: &str) -> bool {
        if !self.exists.contains(n) {
            return false;
        }
        match self.link(n) {
            Some(p) if !self.exists.contains(p) => true,
            _ => self.in_cycle(n),
        }
    }
    fn descendants(&self, n: &str) -> BTreeSet<String> {
        self.exists.iter().filter(|d| *d != n && self.chain(d).iter().any(|x| x == n)).cloned().collect()
    }
}

#[derive(Debug, Clone)]
enum Edit {
    Create(u8),
    Delete(u8),
    SetParent(u8, Option<u8>),
}

fn name(i: u8) -> String {
    format!("n{}", i % 12)
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        any::<u8>().prop_map(Edit::Create),
        any::<u8>().prop_map(Edit::Delete),
        (any::<u8>(), proptest::option::of(any::<u8>())).prop_map(|(a, b)| Edit::SetParent(a, b)),
    ]
}

fn apply_edit(index: &mut TreeIndex, e: &Edit) {
    match *e {
        Edit::Create(i) => {
            index.apply_namespace(&name(i), ObservedNamespace::default());
        }
        Edit::Delete(i) => {
            index.delete_namespace(&name(i));
            index.delete_hierarchy(&name(i));
        }
        Edit::SetParent(i, p) => {
            let hc = ObservedHierarchy {
                spec: HierarchyConfigurationSpec { parent: p.map(name), ..Default::default() },
                ..Default::default()
            };
            index.apply_hierarchy(&name(i), hc);
        }
    }
}

proptest! {
    /// After any sequence of edits — cycles and missing parents included, as if made behind the webhook's back
    /// — the index answers every structural query exactly as a brute-force walk of the model does.
    #[test]
    fn index_matches_brute_force_model(edits in proptest::collection::vec(edit(), 1..60)) {
        let mut index = TreeIndex::new(NamespacePolicy::default());
        index.set_synced(true);
        // The same edits before the initial sync (no relationship bookkeeping) must build the same index.
        let mut unsynced = TreeIndex::new(NamespacePolicy::default());
        let mut model = Model::default();
        for e in edits {
            for idx in [&mut index, &mut unsynced] {
                apply_edit(idx, &e);
            }
            match e {
                Edit::Create(i) => {
                    model.exists.insert(name(i));
                }
                Edit::Delete(i) => {
                    model.exists.remove(&name(i));
                    model.parent.remove(&name(i));
                    model.with_hierarchy.remove(&name(i));
                }
                Edit::SetParent(i, p) => {
                    model.with_hierarchy.insert(name(i));
                    match p {
                        Some(p) => model.parent.insert(name(i), name(p)),
                        None => model.parent.remove(&name(i)),
                    };
                }
            }
        }
        let t = index.publish();
        unsynced.set_synced(true);
        let u = unsynced.publish();
        for i in 0..12u8 {
            let n = name(i);
            prop_assert_eq!(t.children(&n), u.children(&n));
            prop_assert_eq!(t.parent(&n), u.parent(&n));
            prop_assert_eq!(t.node(&n).is_some(), u.node(&n).is_some());
            prop_assert_eq!(t.exists(&n), model.exists.contains(&n));
            prop_assert_eq!(t.parent(&n).map(|p| p.to_string()), model.link(&n).map(str::to_owned));
            let children: BTreeSet<String> = t.children(&n).iter().map(|c| c.to_string()).collect();
            let expected: BTreeSet<String> =
                model.exists.iter().filter(|c| model.link(c) == Some(n.as_str())).cloned().collect();
            prop_assert_eq!(children, expected);
            let descendants: BTreeSet<String> = t.descendants(&n).iter().map(|d| d.to_string()).collect();
            prop_assert_eq!(descendants, model.descendants(&n));
            prop_assert_eq!(t.cycle(&n).is_some(), model.exists.contains(&n) && model.in_cycle(&n));
            prop_assert_eq!(t.is_halted(&n), model.halted(&n));
            let halted_above = std::iter::once(n.clone()).chain(model.chain(&n)).any(|a| model.halted(&a));
            prop_assert_eq!(t.halted_by(&n).is_some(), halted_above);
            // Tree labels: the walk up from `n`, stopping after a halted namespace (computed incrementally and
            // memoized by the index; walked naively here).
            if model.exists.contains(&n) {
                let mut expected = BTreeMap::new();
                let (mut current, mut depth) = (n.clone(), 0);
                loop {
                    expected.insert(current.clone(), depth.to_string());
                    if model.halted(&current) {
                        break;
                    }
                    match model.link(&current) {
                        Some(p) => (current, depth) = (p.to_owned(), depth + 1),
                        None => break,
                    }
                }
                prop_assert_eq!(tree_labels(&t, &n), expected);
            }
            // Every namespace of one chain has the same root.
            if let Some(p) = model.link(&n) {
                prop_assert_eq!(t.root(&n), t.root(p));
            }
            // Nodes are kept only while something refers to them.
            if t.node(&n).is_some() {
                prop_assert!(model.exists.contains(&n) || model.exists.iter().any(|c| model.link(c) == Some(n.as_str()))
                    || model.with_hierarchy.contains(&n));
            }
        }
    }
}

#[test]
fn anchors_listed_before_the_initial_sync_are_indexed() {
    let mut index = TreeIndex::new(NamespacePolicy::default());
    index.apply_anchor("p", "c", ObservedAnchor::default());
    index.apply_namespace("p", ObservedNamespace::default());
    index.set_synced(true);
    assert_eq!(index.current().anchor_holders("c").iter().map(|h| &**h).collect::<Vec<_>>(), vec!["p"]);
}

#[test]
fn ancestors_of_a_long_cycle_stop_before_repeating() {
    let mut f = mk().ns("n0");
    for i in 1..40 {
        f = f.child(&format!("n{i}"), &format!("n{}", i - 1));
    }
    f.index.apply_hierarchy("n0", hc("n39"));
    let ancestors = f.snap().ancestors("n5");
    assert_eq!(ancestors.len(), 39, "every other member once");
    assert_eq!(&*ancestors[0], "n4");
    assert_eq!(&*ancestors[38], "n6");
}
