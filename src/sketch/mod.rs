//! Per-key counters of distinct values. STUB: being implemented.
//!
//! Every backend takes the fixed-seed 64-bit hash of a value (and the value itself, for the exact backend),
//! merges with `Default` as the identity, and reports whether its count is exact.

/// A count with an honest statement of its accuracy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The count (rounded estimate for sketches).
    pub value: u64,
    /// True when the count is exact.
    pub exact: bool,
    /// Relative standard error (one sigma) when estimated, 0 when exact.
    pub rel_std_error: f64,
}

/// A counter of distinct values.
pub trait DistinctCounter: Default + Clone + Send + 'static {
    /// Name as `--counter` spells it.
    const NAME: &'static str;
    /// Add a value: `hash` is [`crate::hash::hash128`] of `value`.
    fn insert(&mut self, hash: u64, value: u128);
    /// Union with another counter of the same kind.
    fn merge(&mut self, other: &Self);
    /// The count. `&mut` because some backends flush buffers to answer.
    fn estimate(&mut self) -> Estimate;
    /// Bytes held on the heap (not counting `size_of::<Self>()`).
    fn heap_bytes(&self) -> usize;
}

/// Exact counting with a hash set of the values themselves. STUB.
#[derive(Default, Clone)]
pub struct Exact {
    set: std::collections::HashSet<u128, ahash::RandomState>,
}

impl DistinctCounter for Exact {
    const NAME: &'static str = "exact";
    fn insert(&mut self, _hash: u64, value: u128) {
        self.set.insert(value);
    }
    fn merge(&mut self, other: &Self) {
        self.set.extend(other.set.iter().copied());
    }
    fn estimate(&mut self) -> Estimate {
        Estimate {
            value: self.set.len() as u64,
            exact: true,
            rel_std_error: 0.0,
        }
    }
    fn heap_bytes(&self) -> usize {
        self.set.capacity() * 17
    }
}

/// Placeholder until the compact counter lands.
pub type Compact = Exact;
/// Placeholder until the hyperloglogplus backend lands.
pub type Hllpp = Exact;
