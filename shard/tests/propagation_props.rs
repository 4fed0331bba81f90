//! Property tests of the planner against a brute-force reference computed from first principles: random
//! forests (cycles and missing parents included), labels, halts, unmanaged namespaces, modes, sources with
//! every kind of selector, and stale, foreign or drifted copies.

mod propagation_model;

use std::collections::BTreeMap;

use hnc_api::SyncMode;
use hnc_api::keys::annotations::{ALL, NONE, SELECT, TREE_SELECT};
use hnc_api::keys::labels::{INHERITED_FROM, MANAGED_BY, MANAGED_BY_VALUE};
use hnc_shard::HierarchyView;
use hnc_shard::propagation::{CopyOp, Dirty, DirtySet, TypeKey, WriteBatch};
use propagation_model::*;
use proptest::prelude::*;
use serde_json::{Value, json};

const NAMESPACES: usize = 7;
/// Parents may name two namespaces that never exist.
const PARENT_CHOICES: usize = NAMESPACES + 2;
const NAMES: [&str; 2] = ["p", "q"];
/// select expressions, each with its meaning written out independently of the parser.
const SELECTS: [&str; 6] =
    ["env=prod", "env!=prod", "team", "!team", "env in (prod, dev)", "env notin (dev)"];

fn select_holds(i: usize, labels: &BTreeMap<String, String>) -> bool {
    let env = labels.get("env").map(String::as_str);
    let team = labels.contains_key("team");
    [
        env == Some("prod"),
        env != Some("prod"),
        team,
        !team,
        matches!(env, Some("prod" | "dev")),
        env != Some("dev"),
    ][i]
}

fn ns_name(i: usize) -> String {
    format!("n{i}")
}

#[derive(Clone, Debug)]
enum Selector {
    Plain,
    Select(usize),
    Tree { ns: usize, negated: bool },
    NoneTrue,
    AllTrue,
    Broken,
    Finalizer,
}

#[derive(Clone, Debug)]
enum Obj {
    Source { variant: u8, selector: Selector },
    Copy { from: usize, variant: u8 },
}

#[derive(Clone, Debug)]
struct NsSpec {
    parent: Option<usize>,
    env: Option<&'static str>,
    team: bool,
    halted: bool,
    managed: bool,
}

type ObjKey = (usize, usize, usize); // (type, namespace, name)

#[derive(Clone, Debug)]
struct Scenario {
    nss: Vec<NsSpec>,
    modes: [SyncMode; 2],
    objects: BTreeMap<ObjKey, Obj>,
}

fn types() -> [TypeKey; 2] {
    [role(), role_binding()]
}

fn selector() -> impl Strategy<Value = Selector> {
    prop_oneof![
        4 => Just(Selector::Plain),
        2 => (0..SELECTS.len()).prop_map(Selector::Select),
        2 => (0..NAMESPACES, any::<bool>()).prop_map(|(ns, negated)| Selector::Tree { ns, negated }),
        1 => Just(Selector::NoneTrue),
        1 => Just(Selector::AllTrue),
        1 => Just(Selector::Broken),
        1 => Just(Selector::Finalizer),
    ]
}

fn object() -> impl Strategy<Value = Obj> {
    prop_oneof![
        3 => (0..4u8, selector()).prop_map(|(variant, selector)| Obj::Source { variant, selector }),
        2 => (0..PARENT_CHOICES, 0..4u8).prop_map(|(from, variant)| Obj::Copy { from, variant }),
    ]
}

fn mode() -> impl Strategy<Value = SyncMode> {
    prop_oneof![
        5 => Just(SyncMode::Propagate),
        2 => Just(SyncMode::AllowPropagate),
        1 => Just(SyncMode::Remove),
        1 => Just(SyncMode::Ignore),
    ]
}

/// Mostly an earlier namespace as parent (deep trees), sometimes any choice (cycles, missing parents).
fn parent(index: usize) -> BoxedStrategy<Option<usize>> {
    let earlier = if index == 0 { Just(None).boxed() } else { (0..index).prop_map(Some).boxed() };
    prop_oneof![6 => earlier, 1 => Just(None), 1 => (0..PARENT_CHOICES).prop_map(Some)].boxed()
}

fn ns_spec(index: usize) -> impl Strategy<Value = NsSpec> {
    let env = prop_oneof![Just(None), Just(Some("prod")), Just(Some("dev"))];
    (parent(index), env, any::<bool>(), prop::bool::weighted(0.05), prop::bool::weighted(0.9))
        .prop_map(|(parent, env, team, halted, managed)| NsSpec { parent, env, team, halted, managed })
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        (0..NAMESPACES).map(ns_spec).collect::<Vec<_>>(),
        [mode(), mode()],
        prop::collection::btree_map((0..2usize, 0..NAMESPACES, 0..NAMES.len()), object(), 0..20),
    )
        .prop_map(|(nss, modes, objects)| Scenario { nss, modes, objects })
}

/// The JSON of one object: Roles differ by verb, RoleBindings by roleRef (variant / 2) and subject (variant %
/// 2).
fn render(ty: usize, ns: usize, name: usize, obj: &Obj) -> Value {
    let variant = match obj {
        Obj::Source { variant, .. } | Obj::Copy { variant, .. } => *variant,
    };
    let (ns, name) = (ns_name(ns), NAMES[name]);
    let mut value = if ty == 0 {
        mk_role(&ns, name, ["get", "list", "watch", "delete"][variant as usize])
    } else {
        let mut rb = mk_rb(&ns, name, &format!("role{}", variant / 2));
        rb["subjects"][0]["name"] = json!(format!("user{}", variant % 2));
        rb
    };
    match obj {
        Obj::Copy { from, .. } => {
            value = with_label(value, INHERITED_FROM, &ns_name(*from));
            value = with_label(value, MANAGED_BY, MANAGED_BY_VALUE);
        }
        Obj::Source { selector, .. } => {
            value = match selector {
                Selector::Plain => value,
                Selector::Select(i) => with_annotation(value, SELECT, SELECTS[*i]),
                Selector::Tree { ns, negated } => with_annotation(
                    value,
                    TREE_SELECT,
                    &format!("{}{}", if *negated { "!" } else { "" }, ns_name(*ns)),
                ),
                Selector::NoneTrue => with_annotation(with_annotation(value, NONE, "true"), ALL, "true"),
                Selector::AllTrue => with_annotation(value, ALL, "T"),
                Selector::Broken => with_annotation(value, TREE_SELECT, "a,,b"),
                Selector::Finalizer => with_finalizer(value),
            };
        }
    }
    value
}

fn build_view(s: &Scenario) -> ModelView {
    let mut view = ModelView::default();
    for (i, spec) in s.nss.iter().enumerate() {
        let name = ns_name(i);
        view.add(&name, spec.parent.map(ns_name).as_deref());
        if let Some(env) = spec.env {
            view.set_label(&name, "env", env);
        }
        if spec.team {
            view.set_label(&name, "team", "x");
        }
        view.set_halted(&name, spec.halted);
        view.set_managed(&name, spec.managed);
    }
    view
}

fn build_world(s: &Scenario) -> World {
    let mut world = World::new();
    world.view = build_view(s);
    world.modes = types().into_iter().zip(s.modes).collect();
    for (&(ty, ns, name), obj) in &s.objects {
        let object = render(ty, ns, name, obj);
        world.cache.apply(&types()[ty], &object).expect("generated objects are valid");
    }
    world
}

/// The reference: may a source with `selector` propagate to `d` in `mode`? Written from §6.3/§6.4 directly.
fn reference_allows(view: &ModelView, selector: &Selector, d: &str, mode: SyncMode) -> bool {
    let model = &view.nss[d];
    let in_subtree = |ns: usize| ns_name(ns) == d || view.chain(d).contains(&ns_name(ns));
    let opted_in = match selector {
        Selector::Plain => mode == SyncMode::Propagate,
        Selector::Select(i) => {
            let mut labels = model.labels.clone();
            labels.retain(|k, _| k == "env" || k == "team");
            select_holds(*i, &labels)
        }
        Selector::Tree { ns, negated } => in_subtree(*ns) != *negated,
        Selector::AllTrue => true,
        Selector::NoneTrue | Selector::Broken | Selector::Finalizer => false,
    };
    opted_in && matches!(mode, SyncMode::Propagate | SyncMode::AllowPropagate)
}

/// The reference top source of `name` for `d`: walk `d`'s ancestors root-most first; a source counts only
/// if no counting source above it may propagate to its own namespace (otherwise it is overwritten), and the
/// first counting source that may propagate to `d` wins. Returns (source namespace, variant).
fn reference_top(s: &Scenario, view: &ModelView, ty: usize, d: &str, name: usize) -> Option<(String, u8)> {
    let mode = s.modes[ty];
    let mut counting: Vec<(String, &Selector, u8)> = Vec::new();
    for a in view.chain(d).into_iter().rev() {
        let index: usize = a[1..].parse().expect("n<i>");
        if !view.nss.get(&a).is_some_and(|m| m.managed) {
            continue;
        }
        let Some(Obj::Source { variant, selector }) = s.objects.get(&(ty, index, name)) else { continue };
        if counting.iter().any(|(_, above, _)| reference_allows(view, above, &a, mode)) {
            continue;
        }
        if reference_allows(view, selector, d, mode) {
            return Some((a, *variant));
        }
        counting.push((a, selector, *variant));
    }
    None
}

/// The reference plan: `(kind, namespace, name, op, source namespace)` for every write the spec calls for.
fn reference_plan(s: &Scenario) -> Vec<(String, String, String, &'static str, String)> {
    let view = build_view(s);
    let mut out = Vec::new();
    for (ty, key) in types().iter().enumerate() {
        if s.modes[ty] == SyncMode::Ignore {
            continue;
        }
        for d_index in 0..NAMESPACES {
            let d = ns_name(d_index);
            let frozen = view.halted_by(&d).is_some();
            if !view.nss[&d].managed || frozen {
                continue;
            }
            for (name_index, name) in NAMES.iter().enumerate() {
                let top = reference_top(s, &view, ty, &d, name_index);
                let here = s.objects.get(&(ty, d_index, name_index));
                let role_ref = |v: u8| v / 2;
                let op = match (here, &top) {
                    (Some(Obj::Copy { .. }), None) => Some(("delete", String::new())),
                    (Some(Obj::Copy { from, variant }), Some((src, top_variant))) => {
                        if variant == top_variant && ns_name(*from) == *src {
                            None
                        } else if ty == 1 && role_ref(*variant) != role_ref(*top_variant) {
                            Some(("recreate", src.clone()))
                        } else {
                            Some(("update", src.clone()))
                        }
                    }
                    (Some(Obj::Source { variant, .. }), Some((src, top_variant))) => {
                        if ty == 1 && role_ref(*variant) != role_ref(*top_variant) {
                            Some(("recreate", src.clone()))
                        } else {
                            Some(("update", src.clone()))
                        }
                    }
                    (Some(Obj::Source { .. }), None) | (None, None) => None,
                    (None, Some((src, _))) => Some(("create", src.clone())),
                };
                if let Some((op, src)) = op {
                    out.push((key.kind.to_string(), d.clone(), name.to_string(), op, src));
                }
            }
        }
    }
    out.sort();
    out
}

fn summarize(batch: &WriteBatch) -> Vec<(String, String, String, &'static str, String)> {
    let mut out: Vec<_> = batch
        .writes
        .iter()
        .map(|w| {
            let op = match &w.op {
                CopyOp::Create { .. } => "create",
                CopyOp::Update { .. } => "update",
                CopyOp::Recreate { .. } => "recreate",
                CopyOp::Delete { .. } => "delete",
            };
            let src = w.source_namespace().map(ToString::to_string).unwrap_or_default();
            (w.ty.kind.to_string(), w.namespace.to_string(), w.name.to_string(), op, src)
        })
        .collect();
    out.sort();
    out
}

fn plan_in_pool(world: &World, threads: usize, dirty: &DirtySet) -> WriteBatch {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().expect("thread pool");
    pool.install(|| world.plan(dirty))
}

/// A change made to a converged world, with the dirty entry the controller would record for it.
#[derive(Clone, Debug)]
enum Change {
    PutObject(ObjKey, Obj),
    DeleteObject(ObjKey),
    SetParent(usize, Option<usize>),
    ToggleTeam(usize),
    ToggleHalt(usize),
    ToggleManaged(usize),
    SetMode(usize, SyncMode),
}

fn change() -> impl Strategy<Value = Change> {
    let key = (0..2usize, 0..NAMESPACES, 0..NAMES.len());
    prop_oneof![
        3 => (key.clone(), object()).prop_map(|(k, o)| Change::PutObject(k, o)),
        2 => key.prop_map(Change::DeleteObject),
        2 => (0..NAMESPACES, prop::option::of(0..PARENT_CHOICES)).prop_map(|(n, p)| Change::SetParent(n, p)),
        1 => (0..NAMESPACES).prop_map(Change::ToggleTeam),
        1 => (0..NAMESPACES).prop_map(Change::ToggleHalt),
        1 => (0..NAMESPACES).prop_map(Change::ToggleManaged),
        1 => (0..2usize, mode()).prop_map(|(t, m)| Change::SetMode(t, m)),
    ]
}

fn apply_change(world: &mut World, change: &Change) -> Dirty {
    let subtree = |n: usize| Dirty::Subtree { namespace: ns_name(n).into() };
    match change {
        Change::PutObject((ty, ns, name), obj) => {
            world.cache.apply(&types()[*ty], &render(*ty, *ns, *name, obj)).expect("valid");
            Dirty::Name {
                ty: types()[*ty].clone(),
                name: NAMES[*name].into(),
                namespace: ns_name(*ns).into(),
            }
        }
        Change::DeleteObject((ty, ns, name)) => {
            world.cache.delete(&types()[*ty], &ns_name(*ns), NAMES[*name]);
            Dirty::Name {
                ty: types()[*ty].clone(),
                name: NAMES[*name].into(),
                namespace: ns_name(*ns).into(),
            }
        }
        Change::SetParent(n, p) => {
            world.view.set_parent(&ns_name(*n), p.map(ns_name).as_deref());
            subtree(*n)
        }
        Change::ToggleTeam(n) => {
            let labels = &mut world.view.nss.get_mut(&ns_name(*n)).expect("exists").labels;
            if labels.remove("team").is_none() {
                labels.insert("team".into(), "x".into());
            }
            subtree(*n)
        }
        Change::ToggleHalt(n) => {
            let halted = world.view.nss[&ns_name(*n)].halted;
            world.view.set_halted(&ns_name(*n), !halted);
            subtree(*n)
        }
        Change::ToggleManaged(n) => {
            let managed = world.view.nss[&ns_name(*n)].managed;
            world.view.set_managed(&ns_name(*n), !managed);
            subtree(*n)
        }
        Change::SetMode(t, m) => {
            world.modes.insert(types()[*t].clone(), *m);
            Dirty::Type { ty: types()[*t].clone() }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// (a) A full plan equals the reference diff, whatever the number of threads.
    #[test]
    fn full_plan_equals_reference(s in scenario()) {
        let world = build_world(&s);
        let one = plan_in_pool(&world, 1, &DirtySet::all());
        let two = plan_in_pool(&world, 2, &DirtySet::all());
        prop_assert_eq!(summarize(&one), reference_plan(&s));
        prop_assert_eq!(describe(&one), describe(&two));
        prop_assert_eq!(&one.events, &two.events);
    }

    /// (b) Performing a full plan reaches the reference desired state: every examined destination holds
    /// exactly the copy of its reference top source, and planning again yields nothing.
    #[test]
    fn performing_the_plan_converges(s in scenario()) {
        let mut world = build_world(&s);
        let batch = world.plan(&DirtySet::all());
        world.perform(&batch);
        prop_assert!(world.plan(&DirtySet::all()).is_empty(), "second plan: {:?}", world.plan_all());
        let view = build_view(&s);
        for (ty, key) in types().iter().enumerate() {
            if s.modes[ty] == SyncMode::Ignore {
                continue;
            }
            for d in (0..NAMESPACES).map(ns_name) {
                if !view.nss[&d].managed || view.halted_by(&d).is_some() {
                    continue;
                }
                for (n, name) in NAMES.iter().enumerate() {
                    let copy = world.cache.current().copy(key, &d, name);
                    match reference_top(&s, &view, ty, &d, n) {
                        Some((src, _)) => {
                            let source = world.cache.current().source(key, &src, name);
                            let source = source.expect("top source cached");
                            let copy = copy.expect("desired copy present");
                            prop_assert_eq!(&*copy.inherited_from, src.as_str());
                            prop_assert_eq!(copy.content_hash, source.content_hash);
                        }
                        None => prop_assert!(copy.is_none(), "{}/{} should hold no copy", d, name),
                    }
                }
            }
        }
    }

    /// (c) After changes to a converged world, planning only the dirty entries they produced gives exactly
    /// the full plan.
    #[test]
    fn dirty_plan_equals_full_plan(s in scenario(), changes in prop::collection::vec(change(), 1..6)) {
        let mut world = build_world(&s);
        world.converge();
        let mut dirty = DirtySet::new();
        for c in &changes {
            dirty.insert(apply_change(&mut world, c));
        }
        let full = world.plan(&DirtySet::all());
        let partial = world.plan(&dirty);
        prop_assert_eq!(describe(&partial), describe(&full));
    }
}
