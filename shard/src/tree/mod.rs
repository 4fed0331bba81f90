//! The hierarchy: a single-writer index of every namespace, its parent, children and anchors, published as
//! immutable snapshots that webhooks, the planner and the ownership check read without locks.
//!
//! * [`index`] — [`TreeIndex`] (the writer), [`TreeSnapshot`] (what readers get), structural queries;
//! * [`desired`] — conditions, tree labels and the contents HNC wants for Namespaces, HierarchyConfigurations
//!   and anchors, derived from a snapshot;
//! * [`diff`] — observed object + what it should say → the smallest write, or none;
//! * [`plan`] — the hierarchy planner: (snapshot, dirty namespaces, ownership) → the writes, like the
//!   propagation planner for objects;
//! * [`observed`] — the compact form of the three hierarchy objects the index holds;
//! * [`policy`] — which namespaces, labels and annotations HNC manages.

pub mod desired;
pub mod diff;
pub mod index;
mod memo;
pub mod names;
pub mod observed;
pub mod plan;
pub mod policy;
pub mod strings;

use std::sync::Arc;

pub use desired::{AnchorAction, AnchorTarget, HierarchyTarget, NamespaceTarget, SpecRewrite};
pub use diff::HierarchyOp;
pub use index::{Affected, DeletingCrds, NsNode, TreeIndex, TreeReader, TreeSnapshot};
pub use names::NameMap;
pub use observed::{ObservedAnchor, ObservedHierarchy, ObservedNamespace};
pub use plan::{HierarchyBatch, HierarchyKind, HierarchyWrite};
pub use policy::{AnchoredRegex, NamespacePolicy};
pub use strings::{Pairs, StringMap};

use crate::view::{HierarchyView, Labels, NsName};

impl HierarchyView for TreeSnapshot {
    fn is_managed(&self, ns: &str) -> bool {
        self.exists(ns)
    }

    fn ancestors(&self, ns: &str) -> Vec<NsName> {
        let mut out: Vec<NsName> = Vec::new();
        let mut seen: Option<ahash::AHashSet<NsName>> = None;
        let mut current = self.parent(ns);
        while let Some(p) = current {
            // Chains are usually short: a linear scan finds a repeat (a cycle) without building a set; a long
            // chain switches to one.
            let repeated = match &mut seen {
                Some(seen) => !seen.insert(p.clone()),
                None if out.len() >= 16 => {
                    seen = Some(out.iter().cloned().chain([NsName::from(ns), p.clone()]).collect());
                    out.contains(p)
                }
                None => out.contains(p),
            };
            if !self.exists(p) || **p == *ns || repeated {
                break;
            }
            out.push(p.clone());
            current = self.parent(p);
        }
        out
    }

    fn descendants(&self, ns: &str) -> Vec<NsName> {
        TreeSnapshot::descendants(self, ns)
    }

    fn labels(&self, ns: &str) -> Option<Arc<Labels>> {
        self.computed_labels(ns)
    }

    fn halted_by(&self, ns: &str) -> Option<NsName> {
        self.halted_root(ns)
    }

    fn root(&self, ns: &str) -> NsName {
        TreeSnapshot::root(self, ns)
    }
}
