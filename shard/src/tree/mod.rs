//! The hierarchy: a single-writer index of every namespace, its parent, children and anchors, published as
//! immutable snapshots that webhooks, the planner and the ownership check read without locks.
//!
//! * [`index`] — [`TreeIndex`] (the writer), [`TreeSnapshot`] (what readers get), structural queries;
//! * [`desired`] — conditions, tree labels and the contents HNC wants for Namespaces, HierarchyConfigurations
//!   and anchors, derived from a snapshot;
//! * [`observed`] — the compact form of the three hierarchy objects the index holds;
//! * [`policy`] — which namespaces, labels and annotations HNC manages.

pub mod desired;
pub mod index;
pub mod observed;
pub mod policy;

use std::sync::Arc;

pub use desired::{AnchorAction, AnchorTarget, HierarchyTarget, NamespaceTarget, SpecRewrite};
pub use index::{Affected, DeletingCrds, NsNode, TreeIndex, TreeReader, TreeSnapshot};
pub use observed::{ObservedAnchor, ObservedHierarchy, ObservedNamespace};
pub use policy::{AnchoredRegex, NamespacePolicy};

use crate::view::{HierarchyView, Labels, NsName};

impl HierarchyView for TreeSnapshot {
    fn is_managed(&self, ns: &str) -> bool {
        self.exists(ns)
    }

    fn ancestors(&self, ns: &str) -> Vec<NsName> {
        let mut out = Vec::new();
        let mut seen = std::collections::BTreeSet::from([NsName::from(ns)]);
        let mut current = self.parent(ns);
        while let Some(p) = current {
            if !self.exists(p) || !seen.insert(p.clone()) {
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
