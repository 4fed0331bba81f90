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

    /// Adds an entry. One the set already covers is not kept: under [`Dirty::All`] nothing else, under
    /// [`Dirty::Type`] no name of that type (the planner re-plans the whole type anyway) — so a relist that
    /// marks every object of the cluster's types while a full plan is pending holds no entry per object.
    pub fn insert(&mut self, dirty: Dirty) {
        if self.all {
            return;
        }
        match dirty {
            Dirty::Name { ty, name, namespace } => {
                if !self.types.contains(&ty) {
                    self.names.insert((ty, name, namespace));
                }
            }
            Dirty::Subtree { namespace } => {
                self.subtrees.insert(namespace);
            }
            Dirty::Type { ty } => {
                self.names.retain(|(t, _, _)| *t != ty);
                self.types.insert(ty);
            }
            Dirty::All => *self = DirtySet::all(),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn name(ty: &TypeKey, name: &str, ns: &str) -> Dirty {
        Dirty::Name { ty: ty.clone(), name: name.into(), namespace: ns.into() }
    }

    #[test]
    fn an_entry_a_wider_one_covers_is_not_kept() {
        let (role, binding) =
            (TypeKey::new("rbac.authorization.k8s.io", "Role"), TypeKey::new("", "ConfigMap"));
        let mut set = DirtySet::new();
        set.insert(name(&role, "a", "n1"));
        set.insert(name(&binding, "b", "n1"));
        set.insert(Dirty::Subtree { namespace: "n2".into() });
        assert_eq!(set.len(), 3);

        // A whole type drops that type's names and keeps out new ones; other types' names stay.
        set.insert(Dirty::Type { ty: role.clone() });
        set.insert(name(&role, "c", "n3"));
        let expected: Vec<Dirty> = vec![
            Dirty::Type { ty: role.clone() },
            Dirty::Subtree { namespace: "n2".into() },
            name(&binding, "b", "n1"),
        ];
        assert_eq!(set.iter().collect::<Vec<_>>(), expected);

        // Everything: nothing else is kept, before or after.
        set.insert(Dirty::All);
        set.insert(name(&binding, "d", "n4"));
        set.insert(Dirty::Subtree { namespace: "n5".into() });
        set.insert(Dirty::Type { ty: binding });
        assert_eq!(set, DirtySet::all());
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![Dirty::All]);
    }
}
