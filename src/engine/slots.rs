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
use super::region::Region;

/// A table of `(key, state)` entries.
pub struct SlotTable<K, S> {
    entries: Region<(K, S)>,
    len: usize,
    /// Stamped into the tag of every key inserted from now on (see [`EPOCH_SHIFT`]).
    epoch: u32,
}

impl<K, S> Default for SlotTable<K, S> {
    fn default() -> Self {
        SlotTable {
            entries: Region::default(),
            len: 0,
            epoch: 0,
        }
    }
}

/// The top bits of a stored tag say in which admission epoch the key was inserted (how many times its rule's
/// admission threshold had been doubled): what the table may have missed of it. Lookups compare the other 28.
pub(crate) const EPOCH_SHIFT: u32 = 28;
/// The largest epoch a tag holds; later ones are stamped as this one.
pub(crate) const MAX_EPOCH: u32 = (1 << (32 - EPOCH_SHIFT)) - 1;
const MATCH_BITS: u32 = (1 << EPOCH_SHIFT) - 1;

/// The tag stored with a key: hash bits the bucket index does not use, made non-zero.
#[inline]
fn tag_of(hash: u64) -> u32 {
    (hash >> 32) as u32 & MATCH_BITS | 1
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

    /// Start loading the cache lines where `hash` lands, and the line after.
    #[inline]
    pub fn prefetch(&self, hash: u64) {
        if !self.entries.is_empty() {
            let p = self
                .entries
                .as_ptr()
                .wrapping_add(hash as usize & self.mask());
            // The entry's line and the next: at the fills a table runs at (up to 7/8), a key is often a few slots
            // past its home, and a probe that walks into a line not yet asked for waits a whole miss
            // (docs/BENCHMARKS.md, "Prefetching the next line"). Entries over 64 bytes may reach a third line.
            prefetch(p);
            prefetch(p.cast::<u8>().wrapping_add(64));
            if std::mem::size_of::<(K, S)>() > 64 {
                prefetch(p.cast::<u8>().wrapping_add(128));
            }
        }
    }

    /// Where `key` (tagged) is (`Ok`), or the empty slot where it would go (`Err`). The table is never full.
    #[inline]
    fn find(&self, hash: u64, key: &K) -> Result<usize, usize> {
        let mask = self.mask();
        let mut i = hash as usize & mask;
        let want = key.tag() & MATCH_BITS;
        loop {
            let k = &self.entries[i].0;
            let tag = k.tag();
            if tag == 0 {
                return Err(i);
            }
            if tag & MATCH_BITS == want && k.same_key(key) {
                return Ok(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The index of `key`'s entry when it has one (nothing is inserted).
    #[inline]
    pub fn index_of(&self, hash: u64, mut key: K) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        key.set_tag(tag_of(hash));
        self.find(hash, &key).ok()
    }

    /// Stamp keys inserted from now on with admission epoch `epoch` (capped at [`MAX_EPOCH`]).
    pub fn set_epoch(&mut self, epoch: u32) {
        self.epoch = epoch.min(MAX_EPOCH);
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

    /// Bytes the table would add to make room for `more` new keys (0 when it has room).
    pub fn growth_bytes(&self, more: usize) -> usize {
        let mut cap = self.entries.len();
        while (self.len + more) * 8 > cap * 7 {
            cap = (cap * 2).max(16);
        }
        (cap - self.entries.len()) * std::mem::size_of::<(K, S)>()
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
                key.set_tag(key.tag() | self.epoch << EPOCH_SHIFT);
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

    /// Double the table in place: the region extends without copying ([`Region`]), then entries move to where
    /// the wider mask sends them.
    ///
    /// Why moving entries one at a time in place is safe: the entries in `0..e`, before the first empty slot,
    /// belong to a cluster that wraps past the old end; they are set aside first. Then the old slots are taken
    /// in order from `e + 1`: the entry at `i`, once lifted, probes from its new home, either its old home `h`
    /// (with `e < h <= i`) or `h + old`, and walks only over slots already dealt with (or emptied, or the upper
    /// half, which holds only entries already moved), and slot `i` itself is free. So no probe passes an entry
    /// not yet moved, whose slot could empty under it later. The entries set aside go in last.
    fn grow(&mut self) {
        let old = self.entries.len();
        let cap = (old * 2).max(16);
        self.entries.grow_to(cap);
        if self.len == 0 {
            return;
        }
        let first_empty = self.entries[..old]
            .iter()
            .position(|(k, _)| k.tag() == 0)
            .expect("a table below 7/8 full has an empty slot");
        let wrapped: Vec<(K, S)> = self.entries[..first_empty]
            .iter_mut()
            .map(std::mem::take)
            .collect();
        for i in first_empty + 1..old {
            if self.entries[i].0.tag() != 0 {
                let entry = std::mem::take(&mut self.entries[i]);
                self.place(entry);
            }
        }
        for entry in wrapped {
            self.place(entry);
        }
    }

    /// Put an entry known to be absent in the first free slot from its home.
    fn place(&mut self, entry: (K, S)) {
        let mask = self.mask();
        let mut j = entry.0.hash() as usize & mask;
        while self.entries[j].0.tag() != 0 {
            j = (j + 1) & mask;
        }
        self.entries[j] = entry;
    }

    /// Take out the entries whose key `keep` refuses, handing each to `removed`; the others keep their stored tags
    /// (and so their admission epochs). In place, without memory beside the table: the slots are walked once,
    /// cyclically from one that was empty, and each entry kept is placed again from its home. Every entry's home
    /// lies between that empty slot and the entry, so its probe only walks slots already dealt with.
    pub fn retain(&mut self, mut keep: impl FnMut(&K) -> bool, mut removed: impl FnMut((K, S))) {
        if self.len == 0 {
            return;
        }
        let mask = self.mask();
        let empty = (self.entries.iter())
            .position(|(k, _)| k.tag() == 0)
            .expect("a table below 7/8 full has an empty slot");
        for step in 1..self.entries.len() {
            let i = (empty + step) & mask;
            if self.entries[i].0.tag() == 0 {
                continue;
            }
            let entry = std::mem::take(&mut self.entries[i]);
            if keep(&entry.0) {
                self.place(entry);
            } else {
                self.len -= 1;
                removed(entry);
            }
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
    pub fn into_entries(mut self) -> impl Iterator<Item = (K, S)> {
        let n = self.entries.len();
        (0..n)
            .map(move |i| std::mem::take(&mut self.entries[i]))
            .filter(|(k, _)| k.tag() != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::key::AddrKey;
    use crate::record::{Addr, FlowRecord};
    use crate::rules::KeySpec;
    use std::collections::HashMap;

    pub(super) fn key(i: u32) -> AddrKey {
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
    fn growth_in_place_keeps_clusters_that_wrap_past_the_end() {
        // Keys whose hashes end in 15 crowd the last slot of a 16-slot table and of every larger one, so at
        // each doubling a cluster wraps past the old end and upper-half probes run off the new end.
        let keys: Vec<AddrKey> = (0..200_000u32)
            .map(key)
            .filter(|k| k.hash() & 15 == 15)
            .take(6_000)
            .collect();
        let mut t: SlotTable<AddrKey, u64> = SlotTable::default();
        let mut cap = 0;
        for (n, k) in keys.iter().enumerate() {
            *t.slot(k.hash(), *k) = n as u64;
            if t.capacity() != cap {
                cap = t.capacity();
                for (m, k) in keys[..=n].iter().enumerate() {
                    assert_eq!(
                        t.peek(k.hash(), *k),
                        Some(&(m as u64)),
                        "after growing to {cap}"
                    );
                }
            }
        }
        assert!(cap >= 8192, "the test grew the table {cap}");
        for (m, k) in keys.iter().enumerate() {
            assert_eq!(t.peek(k.hash(), *k), Some(&(m as u64)));
        }
        let mut all: Vec<u64> = t.into_entries().map(|(_, v)| v).collect();
        all.sort_unstable();
        assert_eq!(all, (0..keys.len() as u64).collect::<Vec<_>>());
    }

    #[test]
    fn retain_keeps_the_rest_findable_and_their_tags() {
        // Crowded homes (as in the test above) so that clusters wrap and removals open holes inside them.
        let keys: Vec<AddrKey> = (0..400_000u32)
            .map(key)
            .filter(|k| k.hash() & 63 >= 60)
            .take(20_000)
            .collect();
        let mut t: SlotTable<AddrKey, u64> = SlotTable::default();
        for (n, k) in keys.iter().enumerate() {
            t.set_epoch((n % 3) as u32);
            *t.slot(k.hash(), *k) = n as u64;
        }
        let tags: std::collections::HashMap<u64, u32> =
            t.iter().map(|(k, v)| (*v, k.tag())).collect();
        let mut gone = Vec::new();
        t.retain(|k| k.hash() % 3 != 0, |(k, v)| gone.push((k, v)));
        assert_eq!(t.len() + gone.len(), keys.len());
        assert!(!gone.is_empty() && t.len() > 0);
        for (n, k) in keys.iter().enumerate() {
            let want = (k.hash() % 3 != 0).then_some(n as u64);
            assert_eq!(t.peek(k.hash(), *k).copied(), want, "key {n}");
        }
        assert!(t.iter().all(|(k, v)| tags[v] == k.tag()), "tags kept");
        assert!(gone
            .iter()
            .all(|(k, v)| tags[v] == k.tag() && k.hash() % 3 == 0));
        // Inserting after removals finds the holes.
        for k in &keys {
            *t.slot(k.hash(), *k) += 1;
        }
        assert_eq!(t.len(), keys.len());
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

#[cfg(test)]
mod epoch_tests {
    use super::*;
    use crate::engine::key::{AddrKey, TableKey};
    use crate::record::{Addr, FlowRecord};
    use crate::rules::KeySpec;

    fn key(i: u32) -> AddrKey {
        let r = FlowRecord {
            src: Addr::v4(i),
            ..Default::default()
        };
        AddrKey::extract(KeySpec::SRC, &r, 0, 0)
    }

    /// A key stamped with one epoch is the same key when looked up in another: no second entry.
    #[test]
    fn epochs_do_not_split_keys() {
        let mut t: SlotTable<AddrKey, u64> = SlotTable::default();
        for round in 0..20u32 {
            t.set_epoch(round % 16);
            for i in 0..5_000u32 {
                let k = key(i);
                *t.slot(k.hash(), k) += 1;
            }
        }
        assert_eq!(t.len(), 5_000);
        assert!(t
            .iter()
            .all(|(k, v)| *v == 20 && k.tag() >> EPOCH_SHIFT == 0));
    }
}

/// `retain` against a model, in small tables whose clusters wrap past the end (from a review of the change).
#[cfg(test)]
mod retain_model_tests {
    use super::tests::key;
    use super::*;
    use crate::engine::key::{AddrKey, TableKey};
    use crate::gen::rng::Rng;
    use std::collections::{HashMap, HashSet};

    /// Every entry's home and the slots up to it are occupied (linear probing's invariant), and `len` is right.
    fn check_invariant(t: &SlotTable<AddrKey, u64>) {
        let mask = t.mask();
        let mut occupied = 0;
        for j in 0..t.entries.len() {
            let k = &t.entries[j].0;
            if k.tag() == 0 {
                continue;
            }
            occupied += 1;
            let mut i = k.hash() as usize & mask;
            while i != j {
                assert!(
                    t.entries[i].0.tag() != 0,
                    "a hole between a home and slot {j}"
                );
                i = (i + 1) & mask;
            }
        }
        assert_eq!(occupied, t.len);
    }

    #[test]
    fn retain_matches_a_model_at_every_fill_and_wrap() {
        let mut rng = Rng::new(7);
        let pool: Vec<AddrKey> = (0..100_000u32).map(key).collect();
        for case in 0..4_000u64 {
            let cap = 1usize << (4 + case % 4);
            let full = cap * 7 / 8;
            // Homes crowded at the end (clusters wrap), at both ends, spread, or anywhere.
            let crowd = rng.below(4);
            let n = full - rng.below(3) as usize;
            let mut t: SlotTable<AddrKey, u64> = SlotTable::default();
            t.reserve(full);
            let (mut keys, mut seen) = (Vec::new(), HashSet::new());
            while keys.len() < n {
                let k = pool[rng.below(pool.len() as u64) as usize];
                let home = k.hash() as usize & (cap - 1);
                let wanted = match crowd {
                    0 => true,
                    1 => home >= cap - 3,
                    2 => home >= cap - 3 || home < 2,
                    _ => home.is_multiple_of(5),
                };
                if !wanted || !seen.insert(k.hash()) {
                    continue;
                }
                t.set_epoch(rng.below(16) as u32);
                let i = t.index(k.hash(), k);
                *t.at(i) = keys.len() as u64;
                keys.push(k);
            }
            assert_eq!(t.capacity(), cap);
            check_invariant(&t);
            let tags: HashMap<u64, u32> = t.iter().map(|(k, v)| (*v, k.tag())).collect();
            let share = rng.below(4);
            let drop: Vec<bool> = (0..keys.len())
                .map(|_| match share {
                    0 => rng.below(2) == 0,
                    1 => rng.below(8) == 0,
                    2 => rng.below(8) != 0,
                    _ => false,
                })
                .collect();
            let index: HashMap<u64, usize> = keys
                .iter()
                .enumerate()
                .map(|(n, k)| (k.hash(), n))
                .collect();
            let mut gone = 0;
            t.retain(|k| !drop[index[&k.hash()]], |_| gone += 1);
            check_invariant(&t);
            assert_eq!(gone, drop.iter().filter(|&&d| d).count());
            for (n, k) in keys.iter().enumerate() {
                let want = (!drop[n]).then_some(n as u64);
                assert_eq!(t.peek(k.hash(), *k).copied(), want, "case {case}, key {n}");
            }
            assert!(t.iter().all(|(k, v)| tags[v] == k.tag()), "tags kept");
        }
    }
}
