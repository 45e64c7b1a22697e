//! [`Hllpp`]: the `hyperloglogplus` crate's HyperLogLog++ (Heule, Nunkesser, Hall 2013) at P=12, for comparison
//! with [`super::Compact`] at the same precision (same 1.6 % standard error, so the comparison is of cost).
//!
//! The crate hashes through a `BuildHasher`; [`PassThrough`] hands it our already computed fixed-seed hash, so the
//! sketch is the same in every run and shard. An idle key costs one `None` word: the crate's empty sketch is about
//! 160 bytes, built on the first insert. `count` needs `&mut` because it flushes a temporary set.

use super::{DistinctCounter, Estimate};
use hyperloglogplus::{HyperLogLog, HyperLogLogPlus};
use std::hash::{BuildHasher, Hasher};

/// Precision: 2^12 registers, as in `Compact`.
pub const PRECISION: u8 = 12;

/// A `BuildHasher` whose hasher returns the `u64` written to it: the value inserted is already a hash.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct PassThrough;

/// The hasher of [`PassThrough`].
#[derive(Clone, Copy, Debug, Default)]
pub struct PassThroughHasher(u64);

impl Hasher for PassThroughHasher {
    #[inline]
    fn write_u64(&mut self, x: u64) {
        self.0 = x;
    }

    /// Only `u64`s are inserted; other input is still mixed properly rather than silently truncated.
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = crate::hash::fmix64(self.0 ^ u64::from(b));
        }
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

impl BuildHasher for PassThrough {
    type Hasher = PassThroughHasher;

    #[inline]
    fn build_hasher(&self) -> PassThroughHasher {
        PassThroughHasher(0)
    }
}

type Inner = HyperLogLogPlus<u64, PassThrough>;

/// HyperLogLog++ from the `hyperloglogplus` crate, created on first use.
#[derive(Clone, Debug, Default)]
pub struct Hllpp {
    inner: Option<Box<Inner>>,
}

fn new_inner() -> Box<Inner> {
    match HyperLogLogPlus::new(PRECISION, PassThrough) {
        Ok(h) => Box::new(h),
        // PRECISION is a constant inside the crate's 4..=18.
        Err(e) => unreachable!("hyperloglogplus rejected precision {PRECISION}: {e}"),
    }
}

impl DistinctCounter for Hllpp {
    const NAME: &'static str = "hllpp";

    #[inline]
    fn insert(&mut self, hash: u64, _value: u128) {
        self.inner.get_or_insert_with(new_inner).insert(&hash);
    }

    fn merge(&mut self, other: &Self) {
        let Some(theirs) = &other.inner else { return };
        match &mut self.inner {
            None => self.inner = Some(theirs.clone()),
            Some(mine) => {
                // Both sides use PRECISION, the only thing the crate checks.
                if let Err(e) = mine.merge(theirs) {
                    unreachable!("hyperloglogplus merge of equal precisions failed: {e}");
                }
            }
        }
    }

    fn estimate(&mut self) -> Estimate {
        match &mut self.inner {
            None => Estimate::exact(0),
            Some(h) => Estimate {
                value: h.count().round() as u64,
                exact: false,
                rel_std_error: 1.04 / f64::from(1u32 << PRECISION).sqrt(),
            },
        }
    }

    /// A lower bound read through the crate's serde form (its fields are private): the box, the temporary set
    /// (hashbrown, 4-byte codes), the sparse list's bytes and the registers. Capacities that the crate keeps after
    /// clearing (its sparse buffers after turning dense) are invisible here; docs/ACCURACY.md has allocator-measured
    /// figures. Slow (it serialises): for reports, not per record.
    fn heap_bytes(&self) -> usize {
        let Some(h) = &self.inner else { return 0 };
        let mut bytes = std::mem::size_of::<Inner>();
        let Ok(v) = serde_json::to_value(h) else {
            return bytes;
        };
        let len = |p: &str| v.pointer(p).and_then(|x| x.as_array()).map_or(0, Vec::len);
        bytes += super::exact::hash_table_bytes(len("/tmpset"), 4);
        bytes += len("/sparse/buf");
        bytes += 4 * len("/registers/buf");
        bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash128;

    #[test]
    fn idle_is_one_word_and_allocates_nothing() {
        assert_eq!(std::mem::size_of::<Hllpp>(), 8);
        let mut h = Hllpp::default();
        assert_eq!((h.heap_bytes(), h.estimate()), (0, Estimate::exact(0)));
        h.insert(hash128(1), 1);
        assert!(h.heap_bytes() >= std::mem::size_of::<Inner>());
        assert_eq!(h.estimate().value, 1);
    }

    #[test]
    fn pass_through_returns_the_hash() {
        assert_eq!(PassThrough.hash_one(0xdead_beef_u64), 0xdead_beef);
        // Other input is mixed, not dropped.
        assert_ne!(
            PassThrough.hash_one([1u8, 2]),
            PassThrough.hash_one([2u8, 1])
        );
    }

    #[test]
    fn heap_bytes_see_the_dense_registers() {
        let mut h = Hllpp::default();
        for v in 0..50_000u128 {
            h.insert(hash128(v), v);
        }
        // 4096 registers, five 6-bit registers per u32 word.
        assert!(h.heap_bytes() >= 4096 / 5 * 4, "{}", h.heap_bytes());
    }
}
