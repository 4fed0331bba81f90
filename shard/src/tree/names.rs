//! [`NameMap`]: the small sorted maps and sets keyed by namespace name that a tree node holds (its children,
//! its anchors) and the index keeps per anchor name (the namespaces holding an anchor of that name).
//!
//! Nearly all of them hold a few entries, and the index has one per namespace with children, per namespace
//! with anchors and per anchor name — at 100,000 namespaces, tens of thousands of them, on every replica. A
//! persistent `imbl::OrdMap` allocates a whole B-tree leaf for its first entry (64 slots: about a kilobyte
//! for a set of names), so these stay a flat sorted vector up to [`FLAT_UP_TO`] entries and become a persistent
//! map only beyond, where copying the vector on every change (a node is copied when it changes) would cost more
//! than the map — a root with ten thousand subnamespaces.

use crate::view::NsName;

/// Entries kept in a flat sorted vector; a map that grows beyond becomes a persistent B-tree.
pub const FLAT_UP_TO: usize = 32;

/// A sorted map from namespace names to `V`; `NameMap<()>` is a set of names.
#[derive(Clone, Debug)]
pub enum NameMap<V: Clone> {
    /// Up to [`FLAT_UP_TO`] entries, sorted by name.
    Flat(Vec<(NsName, V)>),
    /// More: a persistent map, so that copying the node holding it shares the entries.
    Tree(imbl::OrdMap<NsName, V>),
}

impl<V: Clone> Default for NameMap<V> {
    fn default() -> Self {
        NameMap::Flat(Vec::new())
    }
}

impl<V: Clone + PartialEq> PartialEq for NameMap<V> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl<V: Clone> NameMap<V> {
    /// An empty map (allocates nothing).
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        match self {
            NameMap::Flat(entries) => entries.len(),
            NameMap::Tree(map) => map.len(),
        }
    }

    /// True when there is no entry.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The value for `name`.
    pub fn get(&self, name: &str) -> Option<&V> {
        match self {
            NameMap::Flat(entries) => {
                entries.binary_search_by(|(k, _)| (**k).cmp(name)).ok().map(|i| &entries[i].1)
            }
            NameMap::Tree(map) => map.get(name),
        }
    }

    /// True when `name` has an entry.
    pub fn contains_key(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets the value for `name`, returning the one it replaces.
    pub fn insert(&mut self, name: NsName, value: V) -> Option<V> {
        match self {
            NameMap::Flat(entries) => match entries.binary_search_by(|(k, _)| (**k).cmp(&*name)) {
                Ok(i) => Some(std::mem::replace(&mut entries[i].1, value)),
                Err(i) if entries.len() < FLAT_UP_TO => {
                    entries.insert(i, (name, value));
                    None
                }
                Err(_) => {
                    let mut map: imbl::OrdMap<NsName, V> = std::mem::take(entries).into_iter().collect();
                    map.insert(name, value);
                    *self = NameMap::Tree(map);
                    None
                }
            },
            NameMap::Tree(map) => map.insert(name, value),
        }
    }

    /// Removes the entry for `name`, returning its value. A map that shrinks to half of [`FLAT_UP_TO`] is
    /// flat again (not at `FLAT_UP_TO` itself, so that a map at the boundary does not switch on every change).
    pub fn remove(&mut self, name: &str) -> Option<V> {
        match self {
            NameMap::Flat(entries) => {
                let i = entries.binary_search_by(|(k, _)| (**k).cmp(name)).ok()?;
                let (_, value) = entries.remove(i);
                if entries.is_empty() {
                    // Give the allocation back: most maps that empty stay empty.
                    *entries = Vec::new();
                }
                Some(value)
            }
            NameMap::Tree(map) => {
                let value = map.remove(name)?;
                if map.len() <= FLAT_UP_TO / 2 {
                    let entries: Vec<(NsName, V)> = std::mem::take(map).into_iter().collect();
                    *self = NameMap::Flat(entries);
                }
                Some(value)
            }
        }
    }

    /// The entries, sorted by name.
    pub fn iter(&self) -> Iter<'_, V> {
        match self {
            NameMap::Flat(entries) => Iter::Flat(entries.iter()),
            NameMap::Tree(map) => Iter::Tree(map.iter()),
        }
    }

    /// The names, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &NsName> {
        self.iter().map(|(k, _)| k)
    }
}

impl NameMap<()> {
    /// Adds `name` to the set; true when it was not there.
    pub fn add(&mut self, name: NsName) -> bool {
        self.insert(name, ()).is_none()
    }
}

impl<V: Clone> FromIterator<(NsName, V)> for NameMap<V> {
    fn from_iter<I: IntoIterator<Item = (NsName, V)>>(iter: I) -> Self {
        let mut map = NameMap::new();
        for (k, v) in iter {
            map.insert(k, v);
        }
        map
    }
}

/// Iterator over a [`NameMap`]'s entries, sorted by name.
pub enum Iter<'a, V: Clone> {
    Flat(std::slice::Iter<'a, (NsName, V)>),
    Tree(imbl::ordmap::Iter<'a, NsName, V, imbl::shared_ptr::DefaultSharedPtr>),
}

impl<'a, V: Clone> Iterator for Iter<'a, V> {
    type Item = (&'a NsName, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Iter::Flat(it) => it.next().map(|(k, v)| (k, v)),
            Iter::Tree(it) => it.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name_set<'a>(names: impl IntoIterator<Item = &'a str>) -> NameMap<()> {
        names.into_iter().map(|n| (std::sync::Arc::from(n), ())).collect()
    }

    fn names(map: &NameMap<u32>) -> Vec<String> {
        map.keys().map(|k| k.to_string()).collect()
    }

    #[test]
    fn stays_flat_while_small_and_sorted_across_the_switch() {
        let mut map = NameMap::new();
        assert!(matches!(map, NameMap::Flat(ref v) if v.capacity() == 0), "an empty map allocates nothing");
        for i in (0..FLAT_UP_TO as u32).rev() {
            assert_eq!(map.insert(format!("n{i:03}").into(), i), None);
        }
        assert!(matches!(map, NameMap::Flat(_)));
        assert_eq!(map.insert("n005".into(), 50), Some(5), "replacing keeps it flat");
        assert!(matches!(map, NameMap::Flat(_)));

        map.insert("m".into(), 99);
        assert!(matches!(map, NameMap::Tree(_)), "one more than {FLAT_UP_TO} makes it a tree");
        assert_eq!(map.len(), FLAT_UP_TO + 1);
        let mut expected: Vec<String> = (0..FLAT_UP_TO).map(|i| format!("n{i:03}")).collect();
        expected.insert(0, "m".into());
        assert_eq!(names(&map), expected);
        assert_eq!(map.get("n005"), Some(&50));
        assert!(map.contains_key("m") && !map.contains_key("zz"));

        // Shrinking: a tree until half, flat again below.
        let mut left = FLAT_UP_TO + 1;
        while left > FLAT_UP_TO / 2 + 1 {
            let name = names(&map).pop().unwrap();
            assert!(map.remove(&name).is_some());
            left -= 1;
            assert!(matches!(map, NameMap::Tree(_)), "{left} entries");
        }
        let name = names(&map).pop().unwrap();
        map.remove(&name);
        assert!(matches!(map, NameMap::Flat(_)), "{} entries", map.len());
        assert_eq!(map.len(), FLAT_UP_TO / 2);
        assert_eq!(map.remove("absent"), None);
    }

    #[test]
    fn equal_whatever_the_representation() {
        let flat: NameMap<()> = name_set(["a", "b"]);
        let mut tree = NameMap::Tree(imbl::OrdMap::new());
        tree.insert("b".into(), ());
        tree.insert("a".into(), ());
        assert_eq!(flat, tree);
        let mut set = NameMap::new();
        assert!(set.add("x".into()) && !set.add("x".into()));
        assert_eq!(set.remove("x"), Some(()));
        assert!(set.is_empty());
    }
}
