//! The per-rule hash table: open addressing with linear probing, keyed by the hash computed when the record was
//! routed, and able to prefetch a key's slot before it is needed.
//!
//! Why not hashbrown: a table of a million hosts does not fit in cache, so each update is a cache miss. The
//! worker knows the hashes of the next updates in its batch; asking for their slots a few updates ahead overlaps
//! those misses. hashbrown does not expose where a hash will land, this table does.
//!
//! Each key carries a 32-bit tag made from its hash (never 0; 0 marks an empty slot) in what would otherwise be
//! padding, so a probe reads one entry, not a tag array and then an entry: one cache miss per lookup instead of two.

use super::key::TableKey;

/// A table of `(key, state)` entries.
pub struct SlotTable<K, S> {
    entries: Vec<(K, S)>,
    len: usize,
}

impl<K, S> Default for SlotTable<K, S> {
    fn default() -> Self {
        SlotTable {
            entries: Vec::new(),
            len: 0,
        }
    }
}

/// The tag stored with a key: hash bits the bucket index does not use, made non-zero.
#[inline]
fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32 | 1
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
        self.entries.len()
    }

    #[inline]
    fn mask(&self) -> usize {
        self.entries.len().wrapping_sub(1)
    }

    /// Start loading the cache lines where `hash` lands (an entry may straddle two lines).
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if !self.entries.is_empty() {
            let p = self
                .entries
                .as_ptr()
                .wrapping_add(hash as usize & self.mask());
            prefetch(p);
            // A second line only when the entry straddles one: a prefetch waits for a free fill buffer too.
            if (p as usize & 63) + std::mem::size_of::<(K, S)>() > 64 {
                prefetch(
                    p.cast::<u8>()
                        .wrapping_add(std::mem::size_of::<(K, S)>() - 1),
                );
            }
        }
    }

    /// Where `key` (tagged) is (`Ok`), or the empty slot where it would go (`Err`). The table is never full.
    #[inline]
    fn find(&self, hash: u64, key: &K) -> Result<usize, usize> {
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            let k = &self.entries[i].0;
            if k.tag() == 0 {
                return Err(i);
            }
            if k == key {
                return Ok(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The state of `key` if present, without inserting.
    #[cfg(test)]
    pub fn peek(&self, hash: u64, mut key: K) -> Option<&S> {
        if self.entries.is_empty() {
            return None;
        }
        key.set_tag(tag_of(hash));
        self.find(hash, &key).ok().map(|i| &self.entries[i].1)
    }

    /// Make room for `more` inserts without growing, so indices from [`Self::index`] stay valid meanwhile.
    pub fn reserve(&mut self, more: usize) {
        // Grow at 7/8 full: linear probing with tags stays short there, and memory per host matters.
        while (self.len + more) * 8 > self.entries.len() * 7 {
            self.grow();
        }
    }

    /// The index of `key`'s entry, inserted with `S::default()` when new. Needs room: see [`Self::reserve`].
    #[inline]
    pub fn index(&mut self, hash: u64, mut key: K) -> usize {
        key.set_tag(tag_of(hash));
        match self.find(hash, &key) {
            Ok(i) => i,
            Err(i) => {
                debug_assert!((self.len + 1) * 8 <= self.entries.len() * 7);
                self.entries[i].0 = key;
                self.len += 1;
                i
            }
        }
    }

    /// The state at an index from [`Self::index`].
    #[inline]
    pub fn at(&mut self, i: usize) -> &mut S {
        &mut self.entries[i].1
    }

    #[inline]
    pub fn at_ref(&self, i: usize) -> &S {
        &self.entries[i].1
    }

    /// The state of `key` (whose hash is `hash`), inserted as `S::default()` when new.
    #[inline]
    pub fn slot(&mut self, hash: u64, key: K) -> &mut S {
        self.reserve(1);
        let i = self.index(hash, key);
        &mut self.entries[i].1
    }

    fn grow(&mut self) {
        let cap = (self.entries.len() * 2).max(16);
        let mut fresh: Vec<(K, S)> = Vec::with_capacity(cap);
        fresh.resize_with(cap, Default::default);
        let old = std::mem::replace(&mut self.entries, fresh);
        let mask = cap - 1;
        for (k, s) in old {
            if k.tag() == 0 {
                continue;
            }
            let mut i = k.hash() as usize & mask;
            while self.entries[i].0.tag() != 0 {
                i = (i + 1) & mask;
            }
            self.entries[i] = (k, s);
        }
    }

    /// Every entry.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut (K, S)> {
        self.entries.iter_mut().filter(|(k, _)| k.tag() != 0)
    }

    pub fn iter(&self) -> impl Iterator<Item = &(K, S)> {
        self.entries.iter().filter(|(k, _)| k.tag() != 0)
    }

    /// Every entry, by value.
    pub fn into_entries(self) -> impl Iterator<Item = (K, S)> {
        self.entries.into_iter().filter(|(k, _)| k.tag() != 0)
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
            assert_eq!(t.peek(kk.hash(), kk), Some(v));
            assert_eq!(*t.slot(kk.hash(), kk), *v);
        }
        assert_eq!(t.peek(key(30_001).hash(), key(30_001)), None);
        assert_eq!(t.len(), m.len(), "lookups insert nothing");
        let sum: u64 = t.iter().map(|(_, v)| *v).sum();
        assert_eq!(sum, m.values().sum::<u64>());
        assert_eq!(t.into_entries().count(), m.len());
    }

    #[test]
    fn indices_hold_while_reserved() {
        let mut t: SlotTable<AddrKey, u64> = SlotTable::default();
        t.reserve(1_000);
        let cap = t.capacity();
        let idx: Vec<usize> = (0..1_000).map(|i| t.index(key(i).hash(), key(i))).collect();
        assert_eq!(t.capacity(), cap, "no growth inside the reservation");
        for (i, &at) in idx.iter().enumerate() {
            *t.at(at) += i as u64;
        }
        for i in 0..1_000u32 {
            assert_eq!(t.peek(key(i).hash(), key(i)), Some(&(i as u64)));
        }
    }
}
