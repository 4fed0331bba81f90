//! [`StringMap`]: a namespace's labels or annotations as the tree index keeps them — every namespace of the
//! cluster, on every replica, so bytes per entry count. A `BTreeMap<String, String>` of five tree labels costs a
//! B-tree leaf (~540 bytes whatever it holds) and ten string allocations; a `StringMap` is the pairs' text in one
//! allocation and their boundaries in another (~8 bytes per pair besides the text). Read-mostly: a change builds
//! a new map, as a watch event replaces the observed namespace anyway.

use std::collections::BTreeMap;
use std::fmt;

/// An immutable map of strings, sorted by key, in two allocations.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct StringMap {
    /// Key and value of each pair, one after the other, in key order.
    text: Box<str>,
    /// Per pair: where its key ends and where its value ends in `text` (its key starts where the previous
    /// value ended).
    ends: Box<[(u32, u32)]>,
}

impl StringMap {
    /// The empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds from pairs already sorted by key with no key repeated (a `BTreeMap`'s iteration).
    fn from_sorted<'a>(pairs: impl Iterator<Item = (&'a str, &'a str)> + Clone) -> Self {
        let (mut bytes, mut count) = (0usize, 0usize);
        for (k, v) in pairs.clone() {
            bytes += k.len() + v.len();
            count += 1;
        }
        let mut text = String::with_capacity(bytes);
        let mut ends = Vec::with_capacity(count);
        for (k, v) in pairs {
            text.push_str(k);
            let key_end = offset(text.len());
            text.push_str(v);
            ends.push((key_end, offset(text.len())));
        }
        StringMap { text: text.into_boxed_str(), ends: ends.into_boxed_slice() }
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    /// True when there is no pair.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The `i`th pair in key order.
    fn pair(&self, i: usize) -> (&str, &str) {
        let start = if i == 0 { 0 } else { self.ends[i - 1].1 as usize };
        let (key_end, value_end) = self.ends[i];
        (&self.text[start..key_end as usize], &self.text[key_end as usize..value_end as usize])
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        let i = self.find(key).ok()?;
        Some(self.pair(i).1)
    }

    /// True when `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.find(key).is_ok()
    }

    fn find(&self, key: &str) -> Result<usize, usize> {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let mid = low + (high - low) / 2;
            match self.pair(mid).0.cmp(key) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(low)
    }

    /// The pairs in key order.
    pub fn iter(&self) -> Pairs<'_> {
        Pairs { map: self, next: 0..self.len() }
    }

    /// The keys in order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &str> + Clone + '_ {
        self.iter().map(|(k, _)| k)
    }

    /// The same pairs as an owned `BTreeMap`, to change or to hand on.
    pub fn to_btree(&self) -> BTreeMap<String, String> {
        self.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect()
    }

    /// Sets `key` to `value`. Builds the map anew (for tests and rare changes; the index replaces observed
    /// namespaces whole).
    pub fn insert(&mut self, key: String, value: String) {
        let mut map = self.to_btree();
        map.insert(key, value);
        *self = StringMap::from(&map);
    }
}

fn offset(len: usize) -> u32 {
    u32::try_from(len).expect("labels and annotations of one object are far below 4 GiB")
}

impl From<&BTreeMap<String, String>> for StringMap {
    fn from(map: &BTreeMap<String, String>) -> Self {
        StringMap::from_sorted(map.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}

impl From<BTreeMap<String, String>> for StringMap {
    fn from(map: BTreeMap<String, String>) -> Self {
        StringMap::from(&map)
    }
}

/// Later pairs win over earlier ones with the same key, as when collecting into a `BTreeMap`.
impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for StringMap {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let map: BTreeMap<String, String> =
            pairs.into_iter().map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned())).collect();
        StringMap::from(&map)
    }
}

/// Builds the map anew, as [`StringMap::insert`].
impl<K: AsRef<str>, V: AsRef<str>> Extend<(K, V)> for StringMap {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, pairs: I) {
        let mut map = self.to_btree();
        map.extend(pairs.into_iter().map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned())));
        *self = StringMap::from(&map);
    }
}

/// The pairs of a [`StringMap`] in key order (no allocation).
#[derive(Clone)]
pub struct Pairs<'a> {
    map: &'a StringMap,
    next: std::ops::Range<usize>,
}

impl<'a> Iterator for Pairs<'a> {
    type Item = (&'a str, &'a str);

    fn next(&mut self) -> Option<Self::Item> {
        self.next.next().map(|i| self.map.pair(i))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.next.size_hint()
    }
}

impl DoubleEndedIterator for Pairs<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.next.next_back().map(|i| self.map.pair(i))
    }
}

impl ExactSizeIterator for Pairs<'_> {}

impl<'a> IntoIterator for &'a StringMap {
    type Item = (&'a str, &'a str);
    type IntoIter = Pairs<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Debug for StringMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn reads_as_the_map_it_was_built_from() {
        let map: StringMap = [("b", "2"), ("a", "1"), ("c", ""), ("a", "one")].into_iter().collect();
        assert_eq!(map.len(), 3);
        assert_eq!(map.get("a"), Some("one"), "the later pair wins");
        assert_eq!(map.get("c"), Some(""));
        assert_eq!(map.get("d"), None);
        assert!(map.contains_key("b") && !map.contains_key(""));
        assert_eq!(map.keys().collect::<Vec<_>>(), ["a", "b", "c"]);
        assert_eq!(format!("{map:?}"), r#"{"a": "one", "b": "2", "c": ""}"#);
        let mut more = map.clone();
        more.insert("0".into(), "zero".into());
        more.extend([("a", "1")]);
        assert_eq!(more.keys().collect::<Vec<_>>(), ["0", "a", "b", "c"]);
        assert_eq!(more.get("a"), Some("1"));
        assert!(StringMap::new().is_empty() && StringMap::new().get("a").is_none());
    }

    proptest! {
        #[test]
        fn agrees_with_a_btreemap(pairs in proptest::collection::vec(("[a-c./]{0,3}", ".{0,3}"), 0..12),
                                  probe in "[a-c./]{0,3}") {
            let btree: BTreeMap<String, String> = pairs.iter().cloned().collect();
            let map: StringMap = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            prop_assert_eq!(map.to_btree(), btree.clone());
            prop_assert_eq!(map.get(&probe), btree.get(&probe).map(String::as_str));
            prop_assert_eq!(map.contains_key(&probe), btree.contains_key(&probe));
            prop_assert_eq!(&map, &StringMap::from(&btree));
        }
    }
}
