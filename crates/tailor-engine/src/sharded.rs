//! A hash map split into shards that grow one at a time.
//!
//! The serving map is changed under a lock that serving answers wait for. A single hash map
//! of millions of accounts that outgrows its table rehashes all of it in one insert, holding
//! the lock for hundreds of milliseconds; split in [`SHARDS`] maps, one insert rehashes one
//! shard at most.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::collections::hash_map::{Entry, RandomState};
use std::hash::{BuildHasher, Hash};

/// Shards per map.
const SHARDS: usize = 64;

#[derive(Debug)]
pub(crate) struct Sharded<K, V> {
    /// Picks the shard of a key (each shard hashes with its own state as well).
    hasher: RandomState,
    shards: Box<[HashMap<K, V>]>,
}

impl<K, V> Default for Sharded<K, V> {
    fn default() -> Self {
        Self {
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| HashMap::new()).collect(),
        }
    }
}

impl<K: Hash + Eq, V> Sharded<K, V> {
    fn shard<Q: Hash + ?Sized>(&self, key: &Q) -> usize {
        (self.hasher.hash_one(key) % SHARDS as u64) as usize
    }

    pub(crate) fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[self.shard(key)].get(key)
    }

    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard(key);
        self.shards[shard].get_mut(key)
    }

    pub(crate) fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.shards[self.shard(key)].contains_key(key)
    }

    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let shard = self.shard(key);
        self.shards[shard].remove(key)
    }

    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let shard = self.shard(&key);
        self.shards[shard].insert(key, value)
    }

    pub(crate) fn entry(&mut self, key: K) -> Entry<'_, K, V> {
        let shard = self.shard(&key);
        self.shards[shard].entry(key)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.shards.iter().flat_map(HashMap::iter)
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &K> {
        self.shards.iter().flat_map(HashMap::keys)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.shards.iter().flat_map(HashMap::values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_one_map_and_spreads_keys_over_the_shards() {
        let mut map: Sharded<u32, u32> = Sharded::default();
        let mut reference = HashMap::new();
        for n in 0..10_000u32 {
            let key = n.wrapping_mul(2_654_435_761) % 5_000;
            assert_eq!(map.insert(key, n), reference.insert(key, n));
        }
        for key in (0..5_000).step_by(3) {
            assert_eq!(map.remove(&key), reference.remove(&key));
        }
        *map.entry(7_000).or_default() += 5;
        *reference.entry(7_000).or_default() += 5;
        assert_eq!(map.iter().count(), reference.len());
        let mut pairs: Vec<_> = map.iter().map(|(k, v)| (*k, *v)).collect();
        pairs.sort_unstable();
        let mut expected: Vec<_> = reference.into_iter().collect();
        expected.sort_unstable();
        assert_eq!(pairs, expected);
        let used = map.shards.iter().filter(|s| !s.is_empty()).count();
        assert_eq!(used, SHARDS, "keys reach every shard");
        assert!(map.shards.iter().all(|s| s.len() < pairs.len() / 16));
    }

    #[test]
    fn borrowed_keys_find_owned_ones() {
        let mut map: Sharded<Box<str>, u32> = Sharded::default();
        map.insert("acct-1".into(), 1);
        assert_eq!(map.get("acct-1"), Some(&1));
        assert!(map.contains_key("acct-1"));
        assert_eq!(map.remove("acct-1"), Some(1));
        assert!(map.iter().next().is_none());
    }
}
