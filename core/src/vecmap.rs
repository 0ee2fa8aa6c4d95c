//! A map kept as a sorted `Vec`: the few methods of `BTreeMap` the follower and the context
//! entry reader use, with the same order of iteration (by key) and the same handling of a
//! repeated key when deserialised (the last wins), so swapping it in changes no behaviour.
//!
//! Why: these maps hold a handful of entries (events being decided, own events in flight, open
//! anchors' versions, a context entry's fields). `BTreeMap` is monomorphised per key and value type into ~10 KB of
//! wasm each, which the browser SDK downloads; a binary search over a `Vec` is a few hundred
//! bytes and just as fast at these sizes.

use std::borrow::Borrow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

/// A map ordered by key (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VecMap<K, V>(Vec<(K, V)>);

impl<K: Ord, V> VecMap<K, V> {
    pub(crate) const fn new() -> Self {
        VecMap(Vec::new())
    }

    fn find<Q: Ord + ?Sized>(&self, key: &Q) -> Result<usize, usize>
    where
        K: Borrow<Q>,
    {
        self.0.binary_search_by(|(k, _)| k.borrow().cmp(key))
    }

    pub(crate) fn get<Q: Ord + ?Sized>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| &self.0[i].1)
    }

    pub(crate) fn get_mut<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| &mut self.0[i].1)
    }

    pub(crate) fn contains_key<Q: Ord + ?Sized>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
    {
        self.find(key).is_ok()
    }

    /// Inserts or replaces; returns the value replaced.
    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        match self.find(&key) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, value)),
            Err(i) => {
                self.0.insert(i, (key, value));
                None
            }
        }
    }

    pub(crate) fn remove<Q: Ord + ?Sized>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
    {
        self.find(key).ok().map(|i| self.0.remove(i).1)
    }

    pub(crate) fn clear(&mut self) {
        self.0.clear();
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.0.iter_mut().map(|(k, v)| (&*k, v))
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> {
        self.0.iter().map(|(k, _)| k)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.0.iter().map(|(_, v)| v)
    }
}

impl<K, V> IntoIterator for VecMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'de, K: Ord + Deserialize<'de>, V: Deserialize<'de>> Deserialize<'de> for VecMap<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct MapVisitor<K, V>(PhantomData<(K, V)>);
        impl<'de, K: Ord + Deserialize<'de>, V: Deserialize<'de>> Visitor<'de> for MapVisitor<K, V> {
            type Value = VecMap<K, V>;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut m = VecMap::new();
                while let Some((k, v)) = access.next_entry()? {
                    m.insert(k, v);
                }
                Ok(m)
            }
        }
        d.deserialize_map(MapVisitor(PhantomData))
    }
}

impl<K: Ord, V> std::ops::Index<&K> for VecMap<K, V> {
    type Output = V;

    fn index(&self, key: &K) -> &V {
        self.get(key).expect("the key is in the map")
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::VecMap;

    proptest! {
        /// Any sequence of inserts and removes leaves the same entries, in the same order, as a
        /// `BTreeMap` given the same sequence, with the same return values on the way.
        #[test]
        fn behaves_like_a_btreemap(ops in proptest::collection::vec((any::<bool>(), 0u8..16, any::<u8>()), 0..64)) {
            let mut m = VecMap::new();
            let mut b = BTreeMap::new();
            for (insert, k, v) in ops {
                if insert {
                    prop_assert_eq!(m.insert(k, v), b.insert(k, v));
                } else {
                    prop_assert_eq!(m.remove(&k), b.remove(&k));
                }
                prop_assert_eq!(m.get(&k), b.get(&k));
                prop_assert_eq!(m.contains_key(&k), b.contains_key(&k));
            }
            prop_assert!(m.iter().eq(b.iter()));
            prop_assert!(m.keys().eq(b.keys()));
            prop_assert!(m.values().eq(b.values()));
            prop_assert!(m.into_iter().eq(b.into_iter()));
        }
    }

    #[test]
    fn deserialises_like_a_btreemap_the_last_repeated_key_wins() {
        let text = r#"{"b": 1, "a": 2, "b": 3}"#;
        let m: VecMap<String, u8> = serde_json::from_str(text).unwrap();
        let b: BTreeMap<String, u8> = serde_json::from_str(text).unwrap();
        assert!(m.into_iter().eq(b.into_iter()));
        let e = serde_json::from_str::<VecMap<String, u8>>("[1]").unwrap_err().to_string();
        let f = serde_json::from_str::<BTreeMap<String, u8>>("[1]").unwrap_err().to_string();
        assert_eq!(e, f);
    }
}
