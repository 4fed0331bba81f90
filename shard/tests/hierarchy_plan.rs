//! The hierarchy planner against a brute-force reference: random forests (missing parents, cycles,
//! subnamespaces with and without anchors, anchors being deleted, stale tree labels, stale or missing
//! HierarchyConfigurations, terminating namespaces), random dirty lists (repeats and unknown names included,
//! long enough at times to be planned in parallel) and random ownership.
//!
//! The reference works on whole objects: for each owned dirty namespace it builds the object HNC wants from
//! what the snapshot derives, compares it with the observed object as a whole, and expects a write exactly
//! when they differ. A planned patch is checked by applying it (RFC 7386) to the observed object: the result
//! must be the wanted object, and the patch must be conditional on the version observed.

use std::collections::BTreeMap;

use hnc_api::condition::{reasons, types};
use hnc_api::keys::{annotations, finalizers, labels, names};
use hnc_api::{Condition, HierarchyConfigurationSpec, HierarchyConfigurationStatus, MetaKvp};
use hnc_shard::tree::plan::{PARALLEL_FROM, plan, reconcile};
use hnc_shard::tree::{
    AnchorAction, AnchoredRegex, HierarchyKind, HierarchyOp, HierarchyWrite, NamespacePolicy, ObservedAnchor,
    ObservedHierarchy, ObservedNamespace,
};
use hnc_shard::{NsName, TreeIndex, TreeSnapshot};
use pretty_assertions::assert_eq;
use proptest::prelude::*;
use serde_json::{Value, json};

const NOW: &str = "2026-01-01T00:00:00Z";
const OLD: &str = "2020-01-01T00:00:00Z";
const NAMESPACES: usize = 6;
/// Names the scenario may mention: the namespaces, then two that never exist.
const NAMES: usize = NAMESPACES + 2;

fn name(i: usize) -> String {
    if i < NAMESPACES { format!("n{i}") } else { format!("gone{}", i - NAMESPACES) }
}

#[derive(Clone, Debug)]
struct NsSpec {
    exists: bool,
    deleting: bool,
    parent: Option<usize>,
    subnamespace_of: Option<usize>,
    /// A tree label `n{j}.tree.hnc.x-k8s.io/depth` with this depth, possibly stale.
    tree_label: Option<(usize, u8)>,
    included_label: bool,
    user_label: bool,
    hc: Option<HcSpec>,
}

#[derive(Clone, Debug)]
struct HcSpec {
    finalizers: (bool, bool),
    children: Vec<usize>,
    stale_condition: bool,
    labels: bool,
}

#[derive(Clone, Debug)]
struct AnchorSpec {
    finalizer: bool,
    state: Option<&'static str>,
    deleting: bool,
    label: bool,
}

#[derive(Clone, Debug)]
struct Scenario {
    nss: Vec<NsSpec>,
    /// (parent, child) → anchor.
    anchors: BTreeMap<(usize, usize), AnchorSpec>,
    dirty: Vec<usize>,
    /// Repeat the dirty list until the round is planned in parallel.
    large: bool,
    owned: Vec<bool>,
}

fn hc_spec() -> impl Strategy<Value = HcSpec> {
    (any::<(bool, bool)>(), prop::collection::vec(0..NAMES, 0..3), any::<bool>(), any::<bool>()).prop_map(
        |(finalizers, mut children, stale_condition, labels)| {
            children.sort_unstable();
            children.dedup();
            HcSpec { finalizers, children, stale_condition, labels }
        },
    )
}

fn ns_spec() -> impl Strategy<Value = NsSpec> {
    (
        prop::bool::weighted(0.85),
        prop::bool::weighted(0.1),
        prop::option::weighted(0.6, 0..NAMES),
        prop::option::weighted(0.3, 0..NAMES),
        prop::option::of((0..NAMES, 0u8..3)),
        any::<(bool, bool)>(),
        prop::option::weighted(0.5, hc_spec()),
    )
        .prop_map(
            |(exists, deleting, parent, subnamespace_of, tree_label, (included_label, user_label), hc)| {
                NsSpec {
                    exists,
                    deleting,
                    parent,
                    subnamespace_of,
                    tree_label,
                    included_label,
                    user_label,
                    hc,
                }
            },
        )
}

fn anchor_spec() -> impl Strategy<Value = AnchorSpec> {
    (
        any::<bool>(),
        prop::sample::select(vec![None, Some("Ok"), Some("Missing"), Some("Conflict")]),
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(finalizer, state, deleting, label)| AnchorSpec { finalizer, state, deleting, label })
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(ns_spec(), NAMESPACES),
        prop::collection::btree_map((0..NAMESPACES, 0..NAMES), anchor_spec(), 0..5),
        prop::collection::vec(0..NAMES, 0..12),
        prop::bool::weighted(0.1),
        prop::collection::vec(prop::bool::weighted(0.7), NAMES),
    )
        .prop_map(|(nss, anchors, dirty, large, owned)| Scenario { nss, anchors, dirty, large, owned })
}

/// The index the scenario describes; the policy lets `team` be a managed label.
fn build(s: &Scenario) -> TreeSnapshot {
    let policy = NamespacePolicy::new(
        std::iter::empty::<String>(),
        AnchoredRegex::new(".*").unwrap(),
        vec![AnchoredRegex::new("team").unwrap()],
        Vec::new(),
    );
    let mut index = TreeIndex::new(policy);
    for (i, ns) in s.nss.iter().enumerate() {
        let n = name(i);
        if ns.exists {
            let mut observed = ObservedNamespace {
                resource_version: format!("ns-{i}"),
                deleting: ns.deleting,
                ..Default::default()
            };
            if let Some(p) = ns.subnamespace_of {
                observed.annotations.insert(annotations::SUBNAMESPACE_OF.into(), name(p));
            }
            if let Some((j, depth)) = ns.tree_label {
                observed
                    .labels
                    .insert(format!("{}{}", name(j), labels::TREE_LABEL_SUFFIX), depth.to_string());
            }
            if ns.included_label {
                observed.labels.insert(labels::INCLUDED_NAMESPACE.into(), "true".into());
            }
            if ns.user_label {
                observed.labels.insert("team".into(), "x".into());
            }
            index.apply_namespace(&n, observed);
        }
        let hc = match (&ns.hc, ns.parent) {
            (None, None) => continue,
            (Some(hc), _) => hc.clone(),
            (None, Some(_)) => {
                HcSpec { finalizers: (false, false), children: vec![], stale_condition: false, labels: false }
            }
        };
        let mut finalizer_list = Vec::new();
        if hc.finalizers.0 {
            finalizer_list.push(finalizers::HAS_SUBNAMESPACE.to_owned());
        }
        if hc.finalizers.1 {
            finalizer_list.push("example.com/keep".to_owned());
        }
        let conditions = if hc.stale_condition {
            vec![Condition::new(
                types::ACTIVITIES_HALTED,
                reasons::PARENT_MISSING,
                "Parent \"gone0\" does not exist",
                OLD,
            )]
        } else {
            vec![]
        };
        let kvp = |key: &str| MetaKvp { key: key.into(), value: "x".into() };
        index.apply_hierarchy(
            &n,
            ObservedHierarchy {
                resource_version: format!("hc-{i}"),
                finalizers: finalizer_list,
                spec: HierarchyConfigurationSpec {
                    parent: ns.parent.map(name),
                    labels: if hc.labels { vec![kvp("team"), kvp("unmanaged")] } else { vec![] },
                    ..Default::default()
                },
                status: HierarchyConfigurationStatus {
                    children: hc.children.iter().map(|&c| name(c)).collect(),
                    conditions,
                },
                deleting: false,
            },
        );
    }
    for (&(p, c), a) in &s.anchors {
        index.apply_anchor(
            &name(p),
            &name(c),
            ObservedAnchor {
                resource_version: format!("anchor-{p}-{c}"),
                finalizers: if a.finalizer { vec![finalizers::ANCHOR.to_owned()] } else { vec![] },
                labels: if a.label {
                    vec![MetaKvp { key: "team".into(), value: "y".into() }]
                } else {
                    vec![]
                },
                annotations: vec![],
                state: a.state.map(str::to_owned),
                deleting: a.deleting,
            },
        );
    }
    index.set_synced(true);
    index.current().clone()
}

fn dirty_list(s: &Scenario) -> Vec<NsName> {
    let once: Vec<NsName> = s.dirty.iter().map(|&i| name(i).into()).collect();
    if s.large && !once.is_empty() {
        once.iter().cycle().take(PARALLEL_FROM + once.len()).cloned().collect()
    } else {
        once
    }
}

// ---- Objects as wholes ----

/// What a write amounts to: the object after it (in comparable form), or its deletion.
#[derive(Debug, Clone, PartialEq)]
struct Effect {
    kind: HierarchyKind,
    namespace: Option<String>,
    name: String,
    planned_from: String,
    owner: String,
    after: Value,
}

fn strings(map: &BTreeMap<String, String>) -> Value {
    json!(map)
}

/// The observed object as the API server would show it (the fields HNC writes).
fn observed_json(snapshot: &TreeSnapshot, kind: HierarchyKind, namespace: Option<&str>, name: &str) -> Value {
    match kind {
        HierarchyKind::Namespace => {
            let ns = snapshot.node(name).and_then(|n| n.namespace()).expect("patched namespaces exist");
            json!({"metadata": {
                "resourceVersion": ns.resource_version,
                "labels": strings(&ns.labels.to_btree()),
                "annotations": strings(&ns.annotations.to_btree()),
            }})
        }
        HierarchyKind::Hierarchy => {
            let hc =
                snapshot.node(namespace.unwrap()).and_then(|n| n.hierarchy()).expect("patched HCs exist");
            json!({
                "metadata": {"resourceVersion": hc.resource_version, "finalizers": hc.finalizers},
                "spec": hc.spec,
                "status": hc.status,
            })
        }
        HierarchyKind::Anchor => {
            let a = snapshot
                .node(namespace.unwrap())
                .and_then(|n| n.anchor(name))
                .expect("patched anchors exist");
            let mut object =
                json!({"metadata": {"resourceVersion": a.resource_version, "finalizers": a.finalizers}});
            if let Some(state) = &a.state {
                object["status"] = json!({"status": state});
            }
            object
        }
    }
}

/// The fields HNC owns, in one comparable form whatever the object's history (absent lists and maps are empty).
fn comparable(kind: HierarchyKind, object: &Value) -> Value {
    let meta = &object["metadata"];
    let or_empty_map = |v: &Value| if v.is_null() { json!({}) } else { v.clone() };
    let or_empty_list = |v: &Value| if v.is_null() { json!([]) } else { v.clone() };
    match kind {
        HierarchyKind::Namespace => json!({
            "labels": or_empty_map(&meta["labels"]),
            "annotations": or_empty_map(&meta["annotations"]),
        }),
        HierarchyKind::Hierarchy => {
            let spec: HierarchyConfigurationSpec =
                serde_json::from_value(or_empty_map(&object["spec"])).unwrap();
            let status: HierarchyConfigurationStatus =
                serde_json::from_value(or_empty_map(&object["status"])).unwrap();
            json!({"finalizers": or_empty_list(&meta["finalizers"]), "spec": spec, "status": status})
        }
        HierarchyKind::Anchor => json!({
            "finalizers": or_empty_list(&meta["finalizers"]),
            "state": object["status"]["status"],
        }),
    }
}

/// RFC 7386 JSON merge patch.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(fields) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let object = target.as_object_mut().unwrap();
    for (key, value) in fields {
        if value.is_null() {
            object.remove(key);
        } else {
            merge(object.entry(key.clone()).or_insert(Value::Null), value);
        }
    }
}

/// What a planned write does, checked for being conditional on what it was planned from.
fn effect_of(snapshot: &TreeSnapshot, w: &HierarchyWrite) -> Effect {
    let namespace = w.namespace.as_deref();
    let after = match &w.op {
        HierarchyOp::MergePatch(patch) => {
            let mut object = observed_json(snapshot, w.kind, namespace, &w.name);
            assert_eq!(
                patch["metadata"]["resourceVersion"], object["metadata"]["resourceVersion"],
                "a patch is conditional on the version observed"
            );
            assert_eq!(patch["metadata"]["resourceVersion"], json!(w.planned_from));
            merge(&mut object, patch);
            comparable(w.kind, &object)
        }
        HierarchyOp::Create(object) => {
            assert_eq!(w.planned_from, "", "created from nothing");
            let meta = &object["metadata"];
            assert_eq!(meta["name"], json!(&*w.name));
            assert_eq!(meta["namespace"].as_str(), namespace);
            json!({"created": comparable(w.kind, object)})
        }
        HierarchyOp::Delete { .. } => json!("deleted"),
    };
    Effect {
        kind: w.kind,
        namespace: w.namespace.as_deref().map(str::to_owned),
        name: w.name.to_string(),
        planned_from: w.planned_from.clone(),
        owner: w.owner.to_string(),
        after,
    }
}

/// Adds or removes `finalizer` so that its presence is `wanted`, keeping the others in order.
fn with_finalizer(list: &[String], finalizer: &str, wanted: bool) -> Vec<String> {
    if list.iter().any(|f| f == finalizer) == wanted {
        return list.to_vec();
    }
    let mut out: Vec<String> = list.iter().filter(|f| *f != finalizer).cloned().collect();
    if wanted {
        out.push(finalizer.to_owned());
    }
    out
}

/// The reference: whole wanted objects, compared with whole observed ones.
fn reference(
    snapshot: &TreeSnapshot,
    dirty: &[NsName],
    owned: &dyn Fn(&str) -> bool,
) -> (Vec<Effect>, usize) {
    let mut effects = Vec::new();
    let mut reconciled = 0;
    for ns in dirty {
        if !owned(ns.as_ref()) {
            continue;
        }
        reconciled += 1;
        let Some(node) = snapshot.node(ns) else { continue };
        let Some(observed_ns) = node.namespace() else { continue };
        let effect = |kind, namespace: Option<&str>, name: &str, planned_from: &str, after| Effect {
            kind,
            namespace: namespace.map(str::to_owned),
            name: name.to_owned(),
            planned_from: planned_from.to_owned(),
            owner: ns.to_string(),
            after,
        };

        // The Namespace: its labels and annotations with HNC's set and removed.
        if let Some(target) = snapshot.namespace_target(ns) {
            let wanted =
                |observed: &BTreeMap<String, String>, set: &BTreeMap<String, String>, remove: &[String]| {
                    let mut map = observed.clone();
                    map.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
                    for k in remove.iter().filter(|k| !set.contains_key(*k)) {
                        map.remove(k);
                    }
                    map
                };
            let (observed_labels, observed_annotations) =
                (observed_ns.labels.to_btree(), observed_ns.annotations.to_btree());
            let labels = wanted(&observed_labels, &target.set_labels, &target.remove_labels);
            let annotations =
                wanted(&observed_annotations, &target.set_annotations, &target.remove_annotations);
            if labels != observed_labels || annotations != observed_annotations {
                let after = json!({"labels": strings(&labels), "annotations": strings(&annotations)});
                effects.push(effect(
                    HierarchyKind::Namespace,
                    None,
                    ns,
                    &observed_ns.resource_version,
                    after,
                ));
            }
        }

        // The HierarchyConfiguration as a whole.
        if let Some(target) = snapshot.hierarchy_target(ns) {
            let stored = node.hierarchy().map(|h| h.status.conditions.clone()).unwrap_or_default();
            let conditions: Vec<Condition> = target
                .conditions
                .iter()
                .map(|c| {
                    let mut c = c.clone();
                    if let Some(old) = stored.iter().find(|old| old.same_as(&c)) {
                        c.last_transition_time = old.last_transition_time.clone();
                    } else if c.last_transition_time.is_empty() {
                        c.last_transition_time = NOW.to_owned();
                    }
                    c
                })
                .collect();
            let status = HierarchyConfigurationStatus { children: target.children.clone(), conditions };
            let rewrite = |spec: &mut HierarchyConfigurationSpec| {
                if let Some(r) = &target.spec_rewrite {
                    spec.parent = Some(r.parent.clone());
                    spec.labels = r.labels.clone();
                    spec.annotations = r.annotations.clone();
                }
            };
            match node.hierarchy() {
                None => {
                    if target.should_exist && !observed_ns.deleting {
                        let mut spec = HierarchyConfigurationSpec::default();
                        rewrite(&mut spec);
                        let finalizers = with_finalizer(
                            &[],
                            finalizers::HAS_SUBNAMESPACE,
                            target.has_subnamespace_finalizer,
                        );
                        let after =
                            json!({"created": {"finalizers": finalizers, "spec": spec, "status": status}});
                        effects.push(effect(HierarchyKind::Hierarchy, Some(ns), names::HIERARCHY, "", after));
                    }
                }
                Some(hc) => {
                    let mut spec = hc.spec.clone();
                    rewrite(&mut spec);
                    let finalizers = with_finalizer(
                        &hc.finalizers,
                        finalizers::HAS_SUBNAMESPACE,
                        target.has_subnamespace_finalizer,
                    );
                    let wanted = json!({"finalizers": finalizers, "spec": spec, "status": status});
                    let observed = json!({"finalizers": hc.finalizers, "spec": hc.spec, "status": hc.status});
                    if wanted != observed {
                        effects.push(effect(
                            HierarchyKind::Hierarchy,
                            Some(ns),
                            names::HIERARCHY,
                            &hc.resource_version,
                            wanted,
                        ));
                    }
                }
            }
        }

        // Anchors, and the subnamespaces they create or delete.
        for (child, action) in snapshot.anchor_actions(ns) {
            let Some(anchor) = node.anchor(&child) else { continue };
            match action {
                AnchorAction::Ensure { target, create_namespace } => {
                    if create_namespace {
                        let mut annotations = BTreeMap::new();
                        annotations.insert(annotations::SUBNAMESPACE_OF.to_owned(), ns.to_string());
                        let after = json!({"created": {"labels": {}, "annotations": strings(&annotations)}});
                        effects.push(effect(HierarchyKind::Namespace, None, &child, "", after));
                    }
                    let finalizers = with_finalizer(&anchor.finalizers, finalizers::ANCHOR, target.finalizer);
                    let state = target.state.map(|s| s.as_str().to_owned()).or(anchor.state.clone());
                    if finalizers != anchor.finalizers || state != anchor.state {
                        let after = json!({"finalizers": finalizers, "state": state});
                        effects.push(effect(
                            HierarchyKind::Anchor,
                            Some(ns),
                            &child,
                            &anchor.resource_version,
                            after,
                        ));
                    }
                }
                AnchorAction::DeleteSubnamespace => {
                    if let Some(sub) = snapshot.node(&child).and_then(|n| n.namespace()) {
                        effects.push(effect(
                            HierarchyKind::Namespace,
                            None,
                            &child,
                            &sub.resource_version,
                            json!("deleted"),
                        ));
                    }
                }
                AnchorAction::Wait => {}
            }
        }
    }
    (effects, reconciled)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn planner_matches_the_whole_object_reference(s in scenario()) {
        let snapshot = build(&s);
        let dirty = dirty_list(&s);
        let owned = |ns: &str| (0..NAMES).any(|i| s.owned[i] && name(i) == ns);
        let batch = plan(&snapshot, &dirty, &owned, NOW);
        let planned: Vec<Effect> = batch.writes.iter().map(|w| effect_of(&snapshot, w)).collect();
        let (expected, reconciled) = reference(&snapshot, &dirty, &owned);
        prop_assert_eq!(batch.reconciled, reconciled);
        prop_assert_eq!(planned, expected);
        for w in &batch.writes {
            prop_assert!(owned(w.owner.as_ref()), "{} is not owned", w.owner);
        }
    }
}

// ---- Unit tests ----

fn policy() -> NamespacePolicy {
    NamespacePolicy::default()
}

fn synced(index: &mut TreeIndex) -> TreeSnapshot {
    index.set_synced(true);
    index.current().clone()
}

fn child_hc(parent: &str, rv: &str) -> ObservedHierarchy {
    ObservedHierarchy {
        resource_version: rv.into(),
        spec: HierarchyConfigurationSpec { parent: Some(parent.into()), ..Default::default() },
        ..Default::default()
    }
}

#[test]
fn an_unowned_namespace_is_neither_reconciled_nor_written() {
    let mut index = TreeIndex::new(policy());
    index.apply_namespace("a", ObservedNamespace { resource_version: "1".into(), ..Default::default() });
    index.apply_namespace("b", ObservedNamespace { resource_version: "2".into(), ..Default::default() });
    index.apply_hierarchy("b", child_hc("a", "3"));
    let snapshot = synced(&mut index);
    let dirty: Vec<NsName> = vec!["a".into(), "b".into()];

    let all = plan(&snapshot, &dirty, &|_| true, NOW);
    assert_eq!(all.reconciled, 2);
    assert!(all.writes.iter().any(|w| &*w.owner == "a") && all.writes.iter().any(|w| &*w.owner == "b"));

    let only_b = plan(&snapshot, &dirty, &|ns| ns == "b", NOW);
    assert_eq!(only_b.reconciled, 1);
    assert!(!only_b.writes.is_empty());
    assert!(only_b.writes.iter().all(|w| &*w.owner == "b"), "{:?}", only_b.writes);
}

#[test]
fn a_new_child_gets_its_labels_and_its_parent_a_status() {
    let mut index = TreeIndex::new(policy());
    index.apply_namespace("a", ObservedNamespace { resource_version: "1".into(), ..Default::default() });
    index.apply_namespace("b", ObservedNamespace { resource_version: "2".into(), ..Default::default() });
    index.apply_hierarchy("b", child_hc("a", "3"));
    let snapshot = synced(&mut index);
    let writes = plan(&snapshot, &["a".into(), "b".into()], &|_| true, NOW).writes;
    let summary: Vec<(HierarchyKind, &str, &str, &str)> =
        writes.iter().map(|w| (w.kind, &*w.name, w.op.verb(), w.planned_from.as_str())).collect();
    assert_eq!(
        summary[..3],
        [
            (HierarchyKind::Namespace, "a", "patch", "1"),
            (HierarchyKind::Hierarchy, "hierarchy", "create", ""),
            (HierarchyKind::Namespace, "b", "patch", "2"),
        ]
    );
    let HierarchyOp::Create(parent_hc) = &writes[1].op else { panic!() };
    assert_eq!(parent_hc["status"], json!({"children": ["b"]}));
    let HierarchyOp::MergePatch(b_labels) = &writes[2].op else { panic!() };
    assert_eq!(b_labels["metadata"]["labels"]["a.tree.hnc.x-k8s.io/depth"], json!("1"));
}

#[test]
fn a_subnamespace_is_created_before_its_anchor_is_written_and_deleted_with_it() {
    let mut index = TreeIndex::new(policy());
    index.apply_namespace("p", ObservedNamespace { resource_version: "1".into(), ..Default::default() });
    index.apply_anchor("p", "c", ObservedAnchor { resource_version: "5".into(), ..Default::default() });
    let snapshot = synced(&mut index);
    let writes = reconcile(&snapshot, &"p".into(), NOW);
    let anchors: Vec<(HierarchyKind, &str, &str)> =
        writes.iter().filter(|w| &*w.name == "c").map(|w| (w.kind, &*w.name, w.op.verb())).collect();
    assert_eq!(
        anchors,
        vec![(HierarchyKind::Namespace, "c", "create"), (HierarchyKind::Anchor, "c", "patch")]
    );
    let create = writes.iter().find(|w| w.kind == HierarchyKind::Namespace && &*w.name == "c").unwrap();
    assert_eq!((create.namespace.as_deref(), &*create.owner), (None, "p"), "fenced by the parent's tree");

    // The anchor is being deleted: its subnamespace goes, whatever its version — but only that namespace, not
    // one created again under its name (a uid precondition).
    let mut sub =
        ObservedNamespace { uid: "uid-c".into(), resource_version: "9".into(), ..Default::default() };
    sub.annotations.insert(annotations::SUBNAMESPACE_OF.into(), "p".into());
    index.apply_namespace("c", sub);
    index.apply_anchor(
        "p",
        "c",
        ObservedAnchor {
            resource_version: "6".into(),
            finalizers: vec![finalizers::ANCHOR.into()],
            state: Some("Ok".into()),
            deleting: true,
            ..Default::default()
        },
    );
    let snapshot = synced(&mut index);
    let delete = reconcile(&snapshot, &"p".into(), NOW)
        .into_iter()
        .find(|w| matches!(w.op, HierarchyOp::Delete { .. }))
        .expect("the subnamespace is deleted");
    assert_eq!(
        (delete.kind, &*delete.name, delete.planned_from.as_str()),
        (HierarchyKind::Namespace, "c", "9")
    );
    assert_eq!(delete.op, HierarchyOp::Delete { uid: "uid-c".into() });
}

#[test]
fn a_converged_forest_plans_nothing() {
    // Plan, apply every write to the index as the watch would show it, plan again: nothing left.
    let mut index = TreeIndex::new(policy());
    index.apply_namespace("a", ObservedNamespace { resource_version: "1".into(), ..Default::default() });
    index.apply_namespace("b", ObservedNamespace { resource_version: "2".into(), ..Default::default() });
    index.apply_hierarchy("b", child_hc("a", "3"));
    let snapshot = synced(&mut index);
    let dirty: Vec<NsName> = vec!["a".into(), "b".into()];
    for w in plan(&snapshot, &dirty, &|_| true, NOW).writes {
        let current = index.current().clone();
        match (w.kind, &w.op) {
            (HierarchyKind::Namespace, HierarchyOp::MergePatch(patch)) => {
                let mut ns = current.node(&w.name).and_then(|n| n.namespace()).unwrap().clone();
                for (field, observed) in [("labels", &mut ns.labels), ("annotations", &mut ns.annotations)] {
                    let mut map = observed.to_btree();
                    for (k, v) in patch["metadata"][field].as_object().into_iter().flatten() {
                        match v.as_str() {
                            Some(v) => map.insert(k.clone(), v.to_owned()),
                            None => map.remove(k),
                        };
                    }
                    *observed = map.into();
                }
                ns.resource_version.push('+');
                index.apply_namespace(&w.name, ns);
            }
            (HierarchyKind::Hierarchy, op) => {
                let namespace = w.namespace.as_deref().unwrap();
                let mut object = match current.node(namespace).and_then(|n| n.hierarchy()) {
                    Some(hc) => {
                        json!({"spec": hc.spec, "status": hc.status, "metadata": {"finalizers": hc.finalizers}})
                    }
                    None => json!({}),
                };
                match op {
                    HierarchyOp::Create(created) => object = created.clone(),
                    HierarchyOp::MergePatch(patch) => merge(&mut object, patch),
                    HierarchyOp::Delete { .. } => unreachable!(),
                }
                let status = object.get("status").cloned().unwrap_or(json!({}));
                let hc = ObservedHierarchy {
                    resource_version: format!("{}+", w.planned_from),
                    finalizers: serde_json::from_value(object["metadata"]["finalizers"].clone())
                        .unwrap_or_default(),
                    spec: serde_json::from_value(object.get("spec").cloned().unwrap_or(json!({}))).unwrap(),
                    status: serde_json::from_value(status).unwrap(),
                    deleting: false,
                };
                index.apply_hierarchy(namespace, hc);
            }
            other => panic!("unexpected write {other:?}"),
        }
    }
    let converged = synced(&mut index);
    assert_eq!(plan(&converged, &dirty, &|_| true, "2030-01-01T00:00:00Z").writes, vec![]);
}

#[test]
fn a_large_round_planned_in_parallel_is_the_rounds_of_its_namespaces_in_order() {
    let mut index = TreeIndex::new(policy());
    let mut dirty: Vec<NsName> = Vec::new();
    for i in 0..(PARALLEL_FROM * 2) {
        let name = format!("ns-{i:04}");
        index.apply_namespace(
            &name,
            ObservedNamespace { resource_version: format!("{i}"), ..Default::default() },
        );
        if i % 3 != 0 {
            index.apply_hierarchy(&name, child_hc(&format!("ns-{:04}", i / 3), &format!("hc-{i}")));
        }
        dirty.push(name.into());
    }
    dirty.reverse();
    let snapshot = synced(&mut index);
    let owned = |ns: &str| !ns.ends_with('7');
    let batch = plan(&snapshot, &dirty, &owned, NOW);
    let sequential: Vec<HierarchyWrite> =
        dirty.iter().filter(|ns| owned(ns.as_ref())).flat_map(|ns| reconcile(&snapshot, ns, NOW)).collect();
    assert_eq!(batch.reconciled, dirty.iter().filter(|ns| owned(ns.as_ref())).count());
    assert!(batch.writes.len() > PARALLEL_FROM);
    assert!(batch.writes == sequential, "the parallel round differs from the sequential one");
}
