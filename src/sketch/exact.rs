//! [`Exact`]: the set of the values themselves, the reference the sketches are measured against.

use super::{DistinctCounter, Estimate};
use std::collections::HashSet;

/// Exact counting with a fixed-seed ahash set of the 128-bit values (not their hashes, so no collisions).
#[derive(Clone, Debug)]
pub struct Exact {
    set: HashSet<u128, crate::hash::TableHasher>,
}

impl Default for Exact {
    fn default() -> Self {
        // An empty set allocates nothing; the hasher is fixed-seed so iteration order is the same in every run.
        Exact {
            set: HashSet::with_hasher(crate::hash::TableHasher),
        }
    }
}

impl Exact {
    /// Number of distinct values.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// True when no value was inserted.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// The values, in no particular order.
    pub fn values(&self) -> impl Iterator<Item = u128> + '_ {
        self.set.iter().copied()
    }

    /// True when `value` was inserted.
    pub fn contains(&self, value: u128) -> bool {
        self.set.contains(&value)
    }
}

/// Heap bytes of a hashbrown table with `capacity()` == `cap` and `elem` bytes per slot: the bucket count is the
/// power of two the capacity came from (7/8 load, or buckets-1 below 8), plus one control byte per bucket and one
/// 16-byte control group.
pub(crate) fn hash_table_bytes(cap: usize, elem: usize) -> usize {
    if cap == 0 {
        return 0;
    }
    let buckets = if cap < 8 {
        (cap + 1).next_power_of_two()
    } else {
        (cap * 8 / 7).next_power_of_two()
    };
    buckets * (elem + 1) + 16
}

impl DistinctCounter for Exact {
    const NAME: &'static str = "exact";

    #[inline]
    fn insert(&mut self, _hash: u64, value: u128) {
        self.set.insert(value);
    }

    fn merge(&mut self, other: &Self) {
        self.set.extend(other.set.iter().copied());
    }

    fn estimate(&mut self) -> Estimate {
        Estimate::exact(self.set.len() as u64)
    }

    fn heap_bytes(&self) -> usize {
        hash_table_bytes(self.set.capacity(), std::mem::size_of::<u128>())
    }

    #[inline]
    fn known_count(&self) -> Option<u64> {
        Some(self.set.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_values_not_hashes() {
        let mut e = Exact::default();
        assert_eq!((e.heap_bytes(), e.estimate()), (0, Estimate::exact(0)));
        // Same hash, different values: still two.
        e.insert(5, 1);
        e.insert(5, 2);
        e.insert(9, 2);
        assert_eq!(e.estimate(), Estimate::exact(2));
        assert!(e.contains(1) && !e.contains(3));
    }

    #[test]
    fn heap_bytes_follow_the_table() {
        let mut e = Exact::default();
        let mut last = 0;
        for v in 0..10_000u128 {
            e.insert(0, v);
            let b = e.heap_bytes();
            assert!(b >= last && b >= 16 * e.len(), "{b} bytes for {}", e.len());
            // Right after doubling the load is 7/16: at most 16/7 slots per value, plus the control group.
            assert!(
                b <= 17 * (e.len() * 16 / 7 + 8) + 16,
                "{b} bytes for {}",
                e.len()
            );
            last = b;
        }
    }
}
