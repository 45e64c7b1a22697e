//! Per-key counters of distinct values.
//!
//! Every backend takes the fixed-seed 64-bit hash of a value (and the value itself, for the exact backend),
//! merges with `Default` as the identity, and reports whether its count is exact. The engine keeps one counter per
//! (rule, key), for millions of keys, so the idle and small cases decide the memory bill:
//!
//! - [`Compact`] (default): one 8-byte tagged word; exact up to [`compact::MAX_EXACT`] values, then a
//!   HyperLogLog with 4096 six-bit registers (3 KiB) and Ertl's improved estimator.
//! - [`Exact`]: a hash set of the values themselves; the reference the sketches are checked against.
//! - [`Hllpp`]: the `hyperloglogplus` crate's HyperLogLog++ at the same precision, for comparison.
//!
//! docs/ACCURACY.md has the design notes and the measured error, speed and memory.

pub mod compact;
pub mod datasketches;
pub mod exact;
pub mod hll;
pub mod hllpp;

use std::fmt;
use std::str::FromStr;

pub use compact::Compact;
pub use exact::Exact;
pub use hllpp::Hllpp;

/// A count with an honest statement of its accuracy.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Estimate {
    /// The count (rounded estimate for sketches).
    pub value: u64,
    /// True when the count is exact.
    pub exact: bool,
    /// Relative standard error (one sigma) when estimated, 0 when exact.
    pub rel_std_error: f64,
}

impl Estimate {
    /// An exact count.
    pub fn exact(value: u64) -> Self {
        Estimate {
            value,
            exact: true,
            rel_std_error: 0.0,
        }
    }
}

/// A counter of distinct values.
pub trait DistinctCounter: Default + Clone + Send + 'static {
    /// Name as `--counter` spells it.
    const NAME: &'static str;
    /// Add a value: `hash` is [`crate::hash::hash128`] of `value`.
    fn insert(&mut self, hash: u64, value: u128);
    /// Start loading whatever an insert will touch first (a heap block); a hint, no effect on the count.
    #[inline]
    fn prefetch(&self) {}
    /// Union with another counter of the same kind.
    fn merge(&mut self, other: &Self);
    /// The count. `&mut` because some backends flush buffers to answer.
    fn estimate(&mut self) -> Estimate;
    /// Bytes held on the heap (not counting `size_of::<Self>()`).
    fn heap_bytes(&self) -> usize;

    /// [`Self::insert`], returning the bytes the heap grew by: how tables keep their memory without a walk.
    #[inline]
    fn insert_grown(&mut self, hash: u64, value: u128) -> usize {
        let before = self.heap_bytes();
        self.insert(hash, value);
        self.heap_bytes().saturating_sub(before)
    }

    /// The count when a look at the state tells it (exact forms), without working out an estimate; `None` when
    /// only an estimate could say. Cheap enough to ask after every insert.
    #[inline]
    fn known_count(&self) -> Option<u64> {
        None
    }
}

/// Which backend counts distinct values: the value of the `--counter` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum CounterKind {
    /// [`Compact`]: exact while small, then HyperLogLog (P=12).
    #[default]
    Compact,
    /// [`Exact`]: a hash set of the values.
    Exact,
    /// [`Hllpp`]: the `hyperloglogplus` crate (HyperLogLog++, P=12).
    Hllpp,
}

impl CounterKind {
    /// Every kind, in the order the help text lists them.
    pub const ALL: [CounterKind; 3] =
        [CounterKind::Compact, CounterKind::Exact, CounterKind::Hllpp];

    /// Name as `--counter` spells it.
    pub fn name(self) -> &'static str {
        match self {
            CounterKind::Compact => Compact::NAME,
            CounterKind::Exact => Exact::NAME,
            CounterKind::Hllpp => Hllpp::NAME,
        }
    }

    /// One line for `--help` and reports: what it stores and how accurate it is.
    pub fn describe(self) -> &'static str {
        match self {
            CounterKind::Compact => {
                "exact up to 383 distinct values, then HyperLogLog P=12 (3 KiB, 1.6 % std error); 8 bytes when idle"
            }
            CounterKind::Exact => "exact hash set of the values (about 17 bytes per distinct value)",
            CounterKind::Hllpp => {
                "hyperloglogplus crate, HyperLogLog++ P=12 (1.6 % std error), for comparison; slower and larger"
            }
        }
    }
}

impl fmt::Display for CounterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// `--counter` named no known backend.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown counter {found:?}: expected one of compact, exact, hllpp")]
pub struct UnknownCounter {
    /// What the user typed.
    pub found: String,
}

impl FromStr for CounterKind {
    type Err = UnknownCounter;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CounterKind::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownCounter {
                found: s.to_string(),
            })
    }
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_kind_names_round_trip() {
        for k in CounterKind::ALL {
            assert_eq!(k.name().parse::<CounterKind>(), Ok(k));
            assert_eq!(k.to_string(), k.name());
            assert!(!k.describe().is_empty());
        }
        assert_eq!("HLLPP".parse::<CounterKind>(), Ok(CounterKind::Hllpp));
        let err = "hll".parse::<CounterKind>().unwrap_err();
        assert!(err.to_string().contains("\"hll\""), "{err}");
        assert_eq!(CounterKind::default(), CounterKind::Compact);
        // The help text states the switch point; keep it in step with the code.
        assert!(CounterKind::Compact
            .describe()
            .contains(&compact::MAX_EXACT.to_string()));
    }
}
