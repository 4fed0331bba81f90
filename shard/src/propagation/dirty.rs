//! What changed since the last plan: the planner's input besides the hierarchy and the cache.
//!
//! The controller adds an entry for every watch event that matters (the forest cache's ingest methods return
//! the entry to add) and for every hierarchy change; the planner re-examines exactly the destinations those
//! entries can affect. Entries are kept in ordered sets so that a plan never depends on insertion order.

use std::collections::BTreeSet;

use super::object::{ObjName, TypeKey};
use crate::NsName;

/// One reason to re-plan.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Dirty {
    /// A source or copy called `name` changed in `namespace`: re-plan that name there and in its whole
    /// subtree (a deleted source may expose an ancestor's source; a new one may overwrite a same-named object
    /// below).
    Name { ty: TypeKey, name: ObjName, namespace: NsName },
    /// The hierarchy changed at `namespace` (parent, labels, halt, managed or not): re-plan every name of
    /// every type over the namespace and its subtree.
    Subtree { namespace: NsName },
    /// Every object of one type (its mode changed).
    Type { ty: TypeKey },
    /// Everything (startup, resync, ownership gained).
    All,
}

/// The set of pending [`Dirty`] entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DirtySet {
    pub(crate) all: bool,
    pub(crate) types: BTreeSet<TypeKey>,
    pub(crate) subtrees: BTreeSet<NsName>,
    pub(crate) names: BTreeSet<(TypeKey, ObjName, NsName)>,
}

impl DirtySet {
    pub fn new() -> Self {
        Self::default()
    }

    /// A set holding only [`Dirty::All`].
    pub fn all() -> Self {
        DirtySet { all: true, ..Self::default() }
    }

    pub fn insert(&mut self, dirty: Dirty) {
        match dirty {
            Dirty::Name { ty, name, namespace } => {
                self.names.insert((ty, name, namespace));
            }
            Dirty::Subtree { namespace } => {
                self.subtrees.insert(namespace);
            }
            Dirty::Type { ty } => {
                self.types.insert(ty);
            }
            Dirty::All => self.all = true,
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.all && self.types.is_empty() && self.subtrees.is_empty() && self.names.is_empty()
    }

    pub fn is_all(&self) -> bool {
        self.all
    }

    pub fn len(&self) -> usize {
        usize::from(self.all) + self.types.len() + self.subtrees.len() + self.names.len()
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Empties the set, returning what it held (what a planning round consumes).
    pub fn take(&mut self) -> DirtySet {
        std::mem::take(self)
    }

    /// The entries, in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = Dirty> + '_ {
        let all = self.all.then_some(Dirty::All);
        all.into_iter()
            .chain(self.types.iter().map(|ty| Dirty::Type { ty: ty.clone() }))
            .chain(self.subtrees.iter().map(|ns| Dirty::Subtree { namespace: ns.clone() }))
            .chain(self.names.iter().map(|(ty, name, ns)| Dirty::Name {
                ty: ty.clone(),
                name: name.clone(),
                namespace: ns.clone(),
            }))
    }
}

impl Extend<Dirty> for DirtySet {
    fn extend<I: IntoIterator<Item = Dirty>>(&mut self, iter: I) {
        for d in iter {
            self.insert(d);
        }
    }
}

impl FromIterator<Dirty> for DirtySet {
    fn from_iter<I: IntoIterator<Item = Dirty>>(iter: I) -> Self {
        let mut set = DirtySet::new();
        set.extend(iter);
        set
    }
}
