//! The planner: (hierarchy view, forest cache snapshot, modes, dirty set) → [`WriteBatch`]. Pure and
//! deterministic.
//!
//! For every destination D a dirty entry can affect, and every name that can matter there, the desired state
//! is the copy of D's *top source*: the root-most ancestor's same-named source that may propagate to D (§6.2,
//! §6.6), or nothing. The plan is the difference between that and what D holds, nothing more: an unchanged
//! cluster plans zero writes. A source that a higher source overwrites (§6.2: a same-named user object below
//! a propagating source becomes a copy) is not a candidate for anyone, so one round reaches the fixed point.
//!
//! Work is expanded first (dirty entries → (type, destination, names)), with subtree walks run in parallel,
//! then every (type, destination) is diffed in parallel with rayon. Destinations are sorted before the diff
//! and results collected in that order, so the thread count never shows in the result.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use ahash::{HashMap, HashMapExt, HashSet, HashSetExt};
use hnc_api::SyncMode;
use hnc_api::keys::events;
use rayon::prelude::*;

use super::batch::{CopyOp, PlannedEvent, PlannedWrite, WriteBatch};
use super::dirty::DirtySet;
use super::forest::{ForestCacheSnapshot, NsObjects, TypeForest};
use super::object::{ObjName, SourceEntry, TypeKey};
use crate::{HierarchyView, Labels, NsName};

/// The mode of every configured type. A type absent from the map, or in `Ignore`, is not planned at all.
pub type TypeModes = BTreeMap<TypeKey, SyncMode>;

/// The message of the `CannotPropagateObject` event on sources with finalizers, as upstream words it.
pub const FINALIZERS_MESSAGE: &str = "Objects with finalizers cannot be propagated";

/// The source that D's copy of a name should come from.
struct TopSource<'a> {
    entry: &'a Arc<SourceEntry>,
}

struct TypePlan<'a> {
    ty: &'a TypeKey,
    mode: SyncMode,
    forest: &'a TypeForest,
}

/// Which names to examine in one destination.
#[derive(Debug)]
enum Names {
    /// Every name that exists there or in a source of an ancestor.
    All,
    Some(Vec<ObjName>),
}

#[derive(Default)]
struct Partial {
    writes: Vec<PlannedWrite>,
    events: Vec<PlannedEvent>,
}

/// Plans the writes that bring every destination `dirty` can affect to its desired state. See the module
/// documentation. Deterministic: writes are sorted by (type, namespace, name), events sorted and unique.
pub fn plan(
    view: &dyn HierarchyView,
    cache: &ForestCacheSnapshot,
    modes: &TypeModes,
    dirty: &DirtySet,
) -> WriteBatch {
    let types: Vec<TypePlan<'_>> = modes
        .iter()
        .filter(|(_, mode)| **mode != SyncMode::Ignore)
        .filter_map(|(ty, mode)| Some(TypePlan { ty, mode: *mode, forest: cache.forest(ty)? }))
        .collect();
    if types.is_empty() || dirty.is_empty() {
        return WriteBatch::default();
    }
    let full: Vec<bool> = types.iter().map(|t| dirty.all || dirty.types.contains(t.ty)).collect();
    let type_index: HashMap<&TypeKey, usize> = types.iter().enumerate().map(|(i, t)| (t.ty, i)).collect();

    // Subtrees to walk: every dirty subtree (when some type is not planned in full) and every dirty name's
    // namespace (when its type is not).
    let partial_types = full.iter().any(|f| !f);
    let mut roots: BTreeSet<&NsName> = BTreeSet::new();
    if partial_types {
        roots.extend(dirty.subtrees.iter());
    }
    for (ty, _, ns) in &dirty.names {
        if type_index.get(ty).is_some_and(|&i| !full[i]) {
            roots.insert(ns);
        }
    }
    let subtrees: HashMap<&NsName, Vec<NsName>> = roots
        .into_par_iter()
        .map(|ns| {
            let mut members = view.descendants(ns);
            members.push(ns.clone());
            (ns, members)
        })
        .collect();

    let mut work: Vec<HashMap<NsName, Names>> = types
        .iter()
        .zip(&full)
        .map(|(t, &full)| {
            if full {
                universe(view, t.forest).into_iter().map(|d| (d, Names::All)).collect()
            } else {
                HashMap::new()
            }
        })
        .collect();
    if partial_types {
        for ns in &dirty.subtrees {
            for d in subtrees.get(ns).into_iter().flatten() {
                for (i, w) in work.iter_mut().enumerate() {
                    if !full[i] {
                        w.insert(d.clone(), Names::All);
                    }
                }
            }
        }
    }
    for (ty, name, ns) in &dirty.names {
        let Some(&i) = type_index.get(ty) else { continue };
        if full[i] {
            continue;
        }
        for d in subtrees.get(ns).into_iter().flatten() {
            match work[i].entry(d.clone()).or_insert_with(|| Names::Some(Vec::new())) {
                Names::All => {}
                Names::Some(names) => names.push(name.clone()),
            }
        }
    }

    // Destinations in (type, namespace) order and names sorted within each: concatenating the per-destination
    // results in this order (rayon's collect keeps it) yields a sorted batch without sorting every write.
    let mut items: Vec<(usize, NsName, Names)> = work
        .into_iter()
        .enumerate()
        .flat_map(|(i, w)| w.into_iter().map(move |(d, names)| (i, d, names)))
        .collect();
    items.par_sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let parts: Vec<Partial> = items
        .into_par_iter()
        .map(|(i, d, names)| {
            let mut part = Partial::default();
            plan_destination(view, &types[i], &d, names, &mut part);
            part
        })
        .collect();
    let mut batch = WriteBatch {
        writes: Vec::with_capacity(parts.iter().map(|p| p.writes.len()).sum()),
        events: Vec::new(),
    };
    for part in parts {
        batch.writes.extend(part.writes);
        batch.events.extend(part.events);
    }
    batch.normalize();
    batch
}

/// Every namespace where a type may need a write: those holding its objects, and the subtrees of those
/// holding its sources. Source namespaces are walked root-most first and skipped when an earlier walk already
/// reached them, since a subtree reached through an ancestor has been covered whole.
fn universe(view: &dyn HierarchyView, forest: &TypeForest) -> Vec<NsName> {
    let mut members: HashSet<NsName> = forest.namespaces().map(|o| o.namespace().clone()).collect();
    let mut source_namespaces: Vec<(usize, &NsName)> = forest
        .namespaces()
        .filter(|o| !o.sources().is_empty())
        .map(|o| (view.ancestors(o.namespace()).len(), o.namespace()))
        .collect();
    source_namespaces.sort();
    let mut covered: HashSet<NsName> = HashSet::new();
    for (_, ns) in source_namespaces {
        if covered.contains(ns) {
            continue;
        }
        covered.extend(view.descendants(ns));
    }
    members.extend(covered);
    members.into_iter().collect()
}

fn plan_destination(view: &dyn HierarchyView, t: &TypePlan<'_>, d: &NsName, names: Names, out: &mut Partial) {
    if !view.is_managed(d) || view.halted_by(d).is_some() {
        return;
    }
    let here = t.forest.namespace(d);
    // Ancestors holding sources of this type, root-most first. Sources in unmanaged namespaces are never
    // tracked upstream, so they never propagate.
    let holders: Vec<&NsObjects> = view
        .ancestors(d)
        .iter()
        .rev()
        .filter(|a| *a != d)
        .filter_map(|a| t.forest.namespace(a))
        .filter(|o| !o.sources().is_empty() && view.is_managed(o.namespace()))
        .collect();
    if holders.is_empty() && here.is_none() {
        return;
    }
    let labels = view.labels(d).unwrap_or_default();
    let names: Vec<ObjName> = match names {
        Names::Some(mut names) => {
            names.sort_unstable();
            names.dedup();
            names
        }
        Names::All => {
            let mut names: Vec<ObjName> =
                holders.iter().flat_map(|o| o.sources().iter().map(|s| s.name.clone())).collect();
            names.extend(here.into_iter().flat_map(|o| o.names().cloned()));
            names.sort_unstable();
            names.dedup();
            names
        }
    };
    for name in names {
        let top = top_source(view, t, &holders, &name, &labels, &mut out.events);
        if let Some(op) = diff(t, here, &name, top) {
            out.writes.push(PlannedWrite { ty: t.ty.clone(), namespace: d.clone(), name, op });
        }
    }
}

/// The root-most ancestor source of `name` that may propagate to a destination labelled `labels`; records the
/// Warning events the candidates examined on the way deserve.
///
/// A source that a higher source overwrites (because that one may propagate to the source's own namespace) is
/// not a candidate: it is about to become a copy. Skipping it now makes the plan reach the fixed point
/// upstream converges to in one round, instead of writing copies of a source that the same round replaces.
fn top_source<'a>(
    view: &dyn HierarchyView,
    t: &TypePlan<'a>,
    holders: &[&'a NsObjects],
    name: &str,
    labels: &Labels,
    events: &mut Vec<PlannedEvent>,
) -> Option<TopSource<'a>> {
    let mut effective: Vec<&'a Arc<SourceEntry>> = Vec::new();
    for holder in holders {
        let Some(entry) = holder.source(name) else { continue };
        if !effective.is_empty() {
            let holder_labels = view.labels(holder.namespace()).unwrap_or_default();
            if effective.iter().any(|above| above.policy.allows(&holder_labels, t.mode) == Ok(true)) {
                continue;
            }
        }
        effective.push(entry);
        if entry.policy.has_finalizers() {
            events.push(event(t.ty, entry, events::CANNOT_PROPAGATE_OBJECT, FINALIZERS_MESSAGE.to_owned()));
        }
        match entry.policy.allows(labels, t.mode) {
            Ok(true) => return Some(TopSource { entry }),
            Ok(false) => {}
            Err(e) => events.push(event(t.ty, entry, events::CANNOT_PARSE_SELECTOR, e.to_string())),
        }
    }
    None
}

fn event(ty: &TypeKey, entry: &SourceEntry, reason: &'static str, message: String) -> PlannedEvent {
    PlannedEvent {
        ty: ty.clone(),
        namespace: entry.namespace.clone(),
        name: entry.name.clone(),
        reason,
        message,
    }
}

/// The write that turns what D holds under `name` into the copy of `top` (or into nothing), if any.
fn diff(
    t: &TypePlan<'_>,
    here: Option<&NsObjects>,
    name: &str,
    top: Option<TopSource<'_>>,
) -> Option<CopyOp> {
    let copy = here.and_then(|o| o.copy(name));
    let user_source = here.and_then(|o| o.source(name));
    let role_binding = t.ty.is_role_binding();
    match (copy, user_source, top) {
        (Some(c), _, _) if c.terminating => None,
        (_, Some(s), _) if s.terminating => None,
        (Some(c), _, None) => Some(CopyOp::Delete { resource_version: c.resource_version.clone() }),
        (Some(c), _, Some(top)) => {
            let src = top.entry;
            if c.content_hash == src.content_hash && c.inherited_from == src.namespace {
                None
            } else if role_binding && c.role_ref_hash != src.role_ref_hash {
                Some(CopyOp::Recreate { source: src.clone(), resource_version: c.resource_version.clone() })
            } else {
                Some(CopyOp::Update { source: src.clone(), resource_version: c.resource_version.clone() })
            }
        }
        // A user object under a propagating ancestor's name is overwritten (it carries no inherited-from
        // label, so it differs even when the content is equal). `top` exists only in modes that propagate.
        (None, Some(s), Some(top)) => {
            let src = top.entry;
            let resource_version = s.resource_version.clone();
            if role_binding && s.role_ref_hash != src.role_ref_hash {
                Some(CopyOp::Recreate { source: src.clone(), resource_version })
            } else {
                Some(CopyOp::Update { source: src.clone(), resource_version })
            }
        }
        (None, Some(_), None) => None,
        (None, None, Some(top)) => Some(CopyOp::Create { source: top.entry.clone() }),
        (None, None, None) => None,
    }
}
