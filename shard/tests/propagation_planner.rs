//! Planner cases from the spec (§6.2–§6.7), each on a small world.

mod propagation_model;

use hnc_api::SyncMode::{AllowPropagate, Ignore, Remove};
use hnc_api::keys::annotations::{ALL, NONE, SELECT, TREE_SELECT};
use hnc_api::keys::events::{CANNOT_PARSE_SELECTOR, CANNOT_PROPAGATE_OBJECT};
use hnc_shard::propagation::{Dirty, DirtySet};
use pretty_assertions::assert_eq;
use propagation_model::*;

fn dirty(entries: impl IntoIterator<Item = Dirty>) -> DirtySet {
    entries.into_iter().collect()
}

fn subtree(ns: &str) -> Dirty {
    Dirty::Subtree { namespace: ns.into() }
}

fn name(ns: &str, object: &str) -> Dirty {
    Dirty::Name { ty: role(), name: object.into(), namespace: ns.into() }
}

#[test]
fn propagates_to_all_descendants_then_nothing() {
    let mut w = World::new();
    w.tree(&["a", "b:a", "c:b", "d:a", "other"]);
    w.put(mk_src("a", "r"));
    assert_eq!(w.plan_all(), ["create b/r from a", "create c/r from a", "create d/r from a"]);
    assert_eq!(
        describe(&w.plan(&dirty([name("a", "r")]))),
        w.plan_all(),
        "the dirty name covers the subtree"
    );
    w.converge();
    assert_eq!(w.plan_all(), Vec::<String>::new(), "an unchanged cluster plans nothing");
}

#[test]
fn highest_ancestor_wins_and_finalizers_block() {
    // §6.6: foo ← bar ← baz; baz-role in foo has a finalizer, so baz's copy comes from bar.
    let mut w = World::new();
    w.tree(&["foo", "bar:foo", "baz:bar"]);
    w.put(with_finalizer(mk_src("foo", "baz-role")));
    w.put(mk_src("bar", "baz-role"));
    let batch = w.plan(&DirtySet::all());
    assert_eq!(describe(&batch), ["create baz/baz-role from bar"]);
    assert_eq!(batch.events.len(), 1);
    assert_eq!((batch.events[0].reason, &*batch.events[0].namespace), (CANNOT_PROPAGATE_OBJECT, "foo"));
    // Without the finalizer, foo's source is the highest that may propagate: it overwrites bar's and baz's.
    w.put(mk_src("foo", "baz-role"));
    assert_eq!(w.plan_all(), ["update bar/baz-role from foo", "create baz/baz-role from foo"]);
}

#[test]
fn conflicting_user_object_is_overwritten() {
    let mut w = World::new();
    w.tree(&["a", "b:a"]);
    w.put(mk_src("a", "r"));
    w.put(mk_role("b", "r", "delete"));
    let batch = w.plan(&DirtySet::all());
    assert_eq!(describe(&batch), ["update b/r from a"]);
    let rv = batch.writes[0].op.resource_version().map(ToString::to_string);
    assert_eq!(rv.as_deref(), Some("1"), "the update is conditional on the user object's resourceVersion");
    w.converge();
    assert!(w.cache.current().copy(&role(), "b", "r").is_some(), "the user object became a copy");
}

#[test]
fn deleted_source_takes_its_copies_and_a_higher_source_takes_over() {
    let mut w = World::new();
    w.tree(&["a", "b:a", "c:b"]);
    w.put(with_finalizer(mk_src("a", "r")));
    w.put(mk_src("b", "r"));
    w.converge();
    // The finalizer goes: a's source may now propagate and, being higher, replaces b's source and c's copy.
    w.put(mk_src("a", "r"));
    assert_eq!(describe(&w.plan(&dirty([name("a", "r")]))), ["update b/r from a", "update c/r from a"]);
    w.converge();
    w.cache.delete(&role(), "a", "r");
    assert_eq!(describe(&w.plan(&dirty([name("a", "r")]))), ["delete b/r", "delete c/r"]);
}

#[test]
fn an_overwritten_source_propagates_nowhere() {
    let mut w = World::new();
    w.tree(&["a", "b:a", "c:b"]);
    w.view.set_label("c", "leaf", "");
    w.put(with_annotation(mk_src("a", "x"), SELECT, "!leaf"));
    w.put(mk_src("b", "x"));
    assert_eq!(w.plan_all(), ["update b/x from a"], "b's source becomes a copy, so nothing goes to c");
    w.converge();
    assert_eq!(w.cache.current().stats(&role()).copies, 1);
}

#[test]
fn cycles_are_halted() {
    let mut w = World::new();
    w.tree(&["a", "b:a", "c:b"]);
    w.view.set_parent("a", Some("b"));
    w.put(mk_src("a", "x"));
    assert_eq!(w.plan_all(), Vec::<String>::new());
}

#[test]
fn reparenting_adds_and_removes_copies() {
    let mut w = World::new();
    w.tree(&["a", "x", "b:a", "c:b"]);
    w.put(mk_src("a", "from-a"));
    w.put(mk_src("x", "from-x"));
    w.converge();
    w.view.set_parent("b", Some("x"));
    let expected = ["delete b/from-a", "create b/from-x from x", "delete c/from-a", "create c/from-x from x"];
    assert_eq!(describe(&w.plan(&dirty([subtree("b")]))), expected);
    assert_eq!(w.plan_all(), expected);
    w.view.set_parent("b", None);
    w.converge();
    assert_eq!(
        w.cache.current().stats(&role()).copies,
        0,
        "a new root keeps no copy from its former ancestors"
    );
}

#[test]
fn halted_subtree_is_frozen_then_resumes() {
    let mut w = World::new();
    w.tree(&["a", "b:a", "c:b"]);
    w.put(mk_src("a", "old"));
    w.converge();
    w.view.set_halted("b", true);
    w.cache.delete(&role(), "a", "old");
    w.put(mk_src("a", "new"));
    assert_eq!(w.plan_all(), Vec::<String>::new(), "nothing is created or deleted under a halt");
    w.view.set_halted("b", false);
    let expected = ["create b/new from a", "delete b/old", "create c/new from a", "delete c/old"];
    assert_eq!(describe(&w.plan(&dirty([subtree("b")]))), expected);
}

#[test]
fn remove_mode_deletes_copies_and_keeps_sources() {
    let mut w = World::new();
    w.tree(&["a", "b:a"]);
    w.put(mk_src("a", "r"));
    w.converge();
    w.put(mk_src("b", "own"));
    w.modes.insert(role(), Remove);
    assert_eq!(describe(&w.plan(&dirty([Dirty::Type { ty: role() }]))), ["delete b/r"]);
    w.modes.insert(role(), Ignore);
    assert_eq!(w.plan_all(), Vec::<String>::new(), "Ignore leaves copies in place");
}

#[test]
fn allow_propagate_needs_an_opt_in() {
    let mut w = World::new();
    w.tree(&["a", "b:a"]);
    w.modes.insert(role(), AllowPropagate);
    w.put(mk_src("a", "plain"));
    w.put(with_annotation(mk_src("a", "all"), ALL, "true"));
    w.put(with_annotation(mk_src("a", "sel"), SELECT, "!nothing"));
    w.put(with_annotation(mk_src("a", "tree"), TREE_SELECT, "b"));
    w.put(with_annotation(with_annotation(mk_src("a", "none-all"), NONE, "true"), ALL, "true"));
    assert_eq!(w.plan_all(), ["create b/all from a", "create b/sel from a", "create b/tree from a"]);
}

#[test]
fn negated_tree_select_excludes_a_subtree_and_labels_are_per_destination() {
    let mut w = World::new();
    w.tree(&["a", "b:a", "c:b", "d:a"]);
    w.view.set_label("d", "env", "prod");
    w.view.set_label("c", "env", "prod");
    w.put(with_annotation(mk_src("a", "not-b"), TREE_SELECT, "!b"));
    w.put(with_annotation(mk_src("a", "prod"), SELECT, "env=prod"));
    assert_eq!(w.plan_all(), ["create c/prod from a", "create d/not-b from a", "create d/prod from a"]);
    w.view.set_label("c", "env", "dev");
    w.converge();
    assert!(w.cache.current().copy(&role(), "c", "prod").is_none());
}

#[test]
fn role_binding_with_a_new_role_ref_is_recreated() {
    let mut w = World::new();
    w.tree(&["a", "b:a"]);
    w.put(mk_rb("a", "rb", "reader"));
    w.converge();
    w.put(mk_rb("a", "rb", "writer"));
    assert_eq!(w.plan_all(), ["recreate b/rb from a"]);
    let mut subjects_only = mk_rb("a", "rb", "writer");
    subjects_only["subjects"][0]["name"] = "bob".into();
    w.converge();
    w.put(subjects_only);
    assert_eq!(w.plan_all(), ["update b/rb from a"]);
}

#[test]
fn unmanaged_namespaces_are_never_touched() {
    let mut w = World::new();
    w.tree(&["a", "b:a", "c:b"]);
    w.view.set_managed("b", false);
    w.put(mk_src("a", "r"));
    w.put(mk_src("b", "from-unmanaged"));
    assert_eq!(w.plan_all(), ["create c/r from a"], "b is skipped and its sources never propagate");
}

#[test]
fn selector_errors_and_finalizers_become_events() {
    let mut w = World::new();
    w.tree(&["a", "b:a"]);
    w.put(with_annotation(mk_src("a", "broken"), TREE_SELECT, "b,"));
    w.put(with_finalizer(mk_src("a", "held")));
    let batch = w.plan(&DirtySet::all());
    assert!(batch.writes.is_empty());
    let events: Vec<(&str, &str)> = batch.events.iter().map(|e| (&*e.name, e.reason)).collect();
    assert_eq!(events, [("broken", CANNOT_PARSE_SELECTOR), ("held", CANNOT_PROPAGATE_OBJECT)]);
    assert!(batch.events[0].message.contains("segment 2 is empty"), "{}", batch.events[0].message);
}

#[test]
fn a_dirty_name_below_plans_only_its_subtree() {
    let mut w = World::new();
    w.tree(&["a", "b:a", "c:b", "d:a"]);
    w.put(mk_src("a", "r"));
    w.put(mk_src("b", "s"));
    assert_eq!(describe(&w.plan(&dirty([name("b", "s")]))), ["create c/s from b"]);
    assert_eq!(describe(&w.plan(&DirtySet::new())), Vec::<String>::new());
}
