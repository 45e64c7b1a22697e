//! A shard: the tables of every rule for the keys whose hash routes to one worker.

use super::table::{CompiledRule, Counted, RuleTable};
use crate::record::FlowRecord;
use crate::sketch::DistinctCounter;

/// A routed update: record `idx` of a batch updates `rule`'s key on `side`, whose hash is `hash`.
#[derive(Clone, Copy, Debug)]
pub struct Ref {
    pub hash: u64,
    pub idx: u32,
    pub rule: u16,
    pub side: u8,
}

/// Which of `n` shards owns a key hash. Uses bits the tables do not use for buckets (low) or tags (top 7).
#[inline]
pub fn shard_of(hash: u64, n: usize) -> usize {
    ((((hash >> 24) & 0xffff_ffff) * n as u64) >> 32) as usize
}

/// How many updates apart the stages of [`Shard::apply`] run: enough to cover a memory latency, few enough to stay
/// in L1.
const AHEAD: usize = 16;
/// Slot indices in flight between the second and third stage (a power of two above `AHEAD`).
const RING: usize = 32;

/// All rule tables of one worker.
pub struct Shard<C: DistinctCounter> {
    pub tables: Vec<RuleTable<C>>,
    /// Per rule, how many updates the current call applies (reused to reserve room).
    pending: Vec<usize>,
}

impl<C: DistinctCounter> Shard<C> {
    pub fn new(rules: &[CompiledRule]) -> Shard<C> {
        Shard {
            tables: rules.iter().map(RuleTable::new).collect(),
            pending: vec![0; rules.len()],
        }
    }

    /// Apply routed updates in three stages, [`AHEAD`] updates apart, so the cache misses of a table too large for
    /// the cache overlap instead of queueing: prefetch the slot where the key lands; find or insert the key there
    /// and prefetch its counter's heap data; count the record. Room for every new key is reserved first, so an
    /// index found in the second stage is still valid in the third.
    #[inline]
    pub fn apply(&mut self, rules: &[CompiledRule], records: &[FlowRecord], refs: &[Ref]) {
        self.pending.iter_mut().for_each(|p| *p = 0);
        for r in refs {
            self.pending[r.rule as usize] += 1;
        }
        for (t, &n) in self.tables.iter_mut().zip(&self.pending) {
            if n > 0 {
                t.reserve(n);
            }
        }
        let mut ring = [0usize; RING];
        let n = refs.len();
        for i in 0..n + 2 * AHEAD {
            if let Some(r) = refs.get(i) {
                self.tables[r.rule as usize].prefetch(r.hash);
            }
            if let Some(j) = i.checked_sub(AHEAD).filter(|&j| j < n) {
                let r = &refs[j];
                let rec = &records[r.idx as usize];
                ring[j % RING] = self.tables[r.rule as usize].locate(
                    &rules[r.rule as usize],
                    r.hash,
                    rec,
                    r.side,
                );
            }
            if let Some(j) = i.checked_sub(2 * AHEAD) {
                let r = &refs[j];
                let rec = &records[r.idx as usize];
                self.tables[r.rule as usize].update(
                    ring[j % RING],
                    &rules[r.rule as usize],
                    rec,
                    r.side,
                );
            }
        }
    }

    /// Union with another shard built from the same rules: `Shard::new` is the identity.
    pub fn merge(&mut self, other: Shard<C>) {
        for (a, b) in self.tables.iter_mut().zip(other.tables) {
            a.merge(b);
        }
    }

    /// Keys tracked over all rules.
    pub fn keys(&self) -> usize {
        self.tables.iter().map(RuleTable::len).sum()
    }

    pub fn bytes(&self) -> usize {
        self.tables.iter().map(RuleTable::bytes).sum()
    }

    /// The counts of rule `rule` above `above`.
    pub fn over(&mut self, rule: usize, above: u64) -> Vec<Counted> {
        let mut out = Vec::new();
        self.tables[rule].over(above, &mut out);
        out
    }

    /// Every count of rule `rule`.
    pub fn all(&mut self, rule: usize) -> Vec<Counted> {
        let mut out = Vec::new();
        self.tables[rule].all(&mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_spread_evenly() {
        let mut counts = [0u32; 3];
        for i in 0..30_000u128 {
            counts[shard_of(crate::hash::hash128(i), 3)] += 1;
        }
        for c in counts {
            assert!((9_300..10_700).contains(&c), "{counts:?}");
        }
    }
}
