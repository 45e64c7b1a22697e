//! The per-rule hash table: open addressing with linear probing, keyed by the hash computed when the record was
//! routed, and able to prefetch a key's slot before it is needed.
//!
//! Why not hashbrown: a table of a million hosts does not fit in cache, so each update is a cache miss. The
//! worker knows the hashes of the next updates in its batch; asking for their slots a few updates ahead overlaps
//! those misses. hashbrown does not expose where a hash will land, this table does.

use super::key::TableKey;

/// A table of `(key, state)` entries. A tag byte per slot marks it used (high bit) with 7 more hash bits, so a
/// probe compares keys only when those bits agree.
pub struct SlotTable<K, S> {
    tags: Vec<u8>,
    entries: Vec<(K, S)>,
    len: usize,
}

impl<K, S> Default for SlotTable<K, S> {
    fn default() -> Self {
        SlotTable {
            tags: Vec::new(),
            entries: Vec::new(),
            len: 0,
        }
    }
}

#[inline]
fn tag_of(hash: u64) -> u8 {
    0x80 | (hash >> 57) as u8
}

#[inline]
fn prefetch<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults and reads nothing into the program, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

impl<K: TableKey + Default, S: Default> SlotTable<K, S> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn capacity(&self) -> usize {
        self.tags.len()
    }

    #[inline]
    fn mask(&self) -> usize {
        self.tags.len().wrapping_sub(1)
    }

    /// Start loading the cache lines where `hash` lands.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if !self.tags.is_empty() {
            let i = hash as usize & self.mask();
            prefetch(self.tags.as_ptr().wrapping_add(i));
            prefetch(self.entries.as_ptr().wrapping_add(i));
        }
    }

    /// Where `key` is (`Ok`), or the empty slot where it would go (`Err`). The table is never full.
    #[inline]
    fn find(&self, hash: u64, key: &K) -> Result<usize, usize> {
        let mask = self.mask();
        let tag = tag_of(hash);
        let mut i = hash as usize & mask;
        loop {
            let t = self.tags[i];
            if t == 0 {
                return Err(i);
            }
            if t == tag && self.entries[i].0 == *key {
                return Ok(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The state of `key` if present, without inserting.
    #[inline]
    pub fn peek(&self, hash: u64, key: &K) -> Option<&S> {
        if self.tags.is_empty() {
            return None;
        }
        self.find(hash, key).ok().map(|i| &self.entries[i].1)
    }

    /// The state of `key` (whose hash is `hash`), inserted as `S::default()` when new.
    #[inline]
    pub fn slot(&mut self, hash: u64, key: K) -> &mut S {
        // Grow at 7/8 full: linear probing with tag bytes stays short there, and memory per host matters.
        if (self.len + 1) * 8 > self.tags.len() * 7 {
            self.grow();
        }
        let i = match self.find(hash, &key) {
            Ok(i) => i,
            Err(i) => {
                self.tags[i] = tag_of(hash);
                self.entries[i].0 = key;
                self.len += 1;
                i
            }
        };
        &mut self.entries[i].1
    }

    fn grow(&mut self) {
        let cap = (self.tags.len() * 2).max(16);
        let old_tags = std::mem::replace(&mut self.tags, vec![0; cap]);
        let mut fresh: Vec<(K, S)> = Vec::with_capacity(cap);
        fresh.resize_with(cap, Default::default);
        let old = std::mem::replace(&mut self.entries, fresh);
        let mask = cap - 1;
        for (t, (k, s)) in old_tags.into_iter().zip(old) {
            if t == 0 {
                continue;
            }
            let mut i = k.hash() as usize & mask;
            while self.tags[i] != 0 {
                i = (i + 1) & mask;
            }
            self.tags[i] = t;
            self.entries[i] = (k, s);
        }
    }

    /// Every entry.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut (K, S)> {
        self.tags
            .iter()
            .zip(self.entries.iter_mut())
            .filter(|(t, _)| **t != 0)
            .map(|(_, e)| e)
    }

    pub fn iter(&self) -> impl Iterator<Item = &(K, S)> {
        self.tags
            .iter()
            .zip(self.entries.iter())
            .filter(|(t, _)| **t != 0)
            .map(|(_, e)| e)
    }

    /// Every entry, by value.
    pub fn into_entries(self) -> impl Iterator<Item = (K, S)> {
        self.tags
            .into_iter()
            .zip(self.entries)
            .filter(|(t, _)| *t != 0)
            .map(|(_, e)| e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::key::AddrKey;
    use crate::record::{Addr, FlowRecord};
    use crate::rules::KeySpec;
    use std::collections::HashMap;

    fn key(i: u32) -> AddrKey {
        let r = FlowRecord {
            src: Addr::v4(i),
            ..Default::default()
        };
        AddrKey::extract(KeySpec::SRC, &r, 0, 0)
    }

    #[test]
    fn behaves_like_a_map_through_growth() {
        let mut t: SlotTable<AddrKey, u64> = SlotTable::default();
        let mut m: HashMap<u32, u64> = HashMap::new();
        for i in 0..100_000u32 {
            let k = i.wrapping_mul(2_654_435_761) % 30_000;
            let kk = key(k);
            t.prefetch(kk.hash());
            *t.slot(kk.hash(), kk) += i as u64;
            *m.entry(k).or_default() += i as u64;
        }
        assert_eq!(t.len(), m.len());
        assert!(t.capacity() >= t.len() * 8 / 7);
        for (k, v) in &m {
            let kk = key(*k);
            assert_eq!(*t.slot(kk.hash(), kk), *v);
        }
        assert_eq!(t.len(), m.len(), "lookups insert nothing");
        let sum: u64 = t.iter().map(|(_, v)| *v).sum();
        assert_eq!(sum, m.values().sum::<u64>());
        assert_eq!(t.into_entries().count(), m.len());
    }
}
