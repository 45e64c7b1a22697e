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

/// How many updates ahead slots are prefetched: enough to cover a memory latency, few enough to stay in L1.
const AHEAD: usize = 16;

/// All rule tables of one worker.
pub struct Shard<C: DistinctCounter> {
    pub tables: Vec<RuleTable<C>>,
}

impl<C: DistinctCounter> Shard<C> {
    pub fn new(rules: &[CompiledRule]) -> Shard<C> {
        Shard {
            tables: rules.iter().map(RuleTable::new).collect(),
        }
    }

    /// Apply routed updates. Each update's slot is prefetched [`AHEAD`] updates early, so the cache misses of a
    /// table too large for the cache overlap instead of queueing.
    #[inline]
    pub fn apply(&mut self, rules: &[CompiledRule], records: &[FlowRecord], refs: &[Ref]) {
        for r in refs.iter().take(2 * AHEAD) {
            self.tables[r.rule as usize].prefetch(r.hash);
        }
        for (i, r) in refs.iter().enumerate() {
            // Two stages: the slot 2*AHEAD updates ahead, then the heap data of the slot AHEAD updates ahead.
            if let Some(next) = refs.get(i + 2 * AHEAD) {
                self.tables[next.rule as usize].prefetch(next.hash);
            }
            if let Some(m) = refs.get(i + AHEAD) {
                let rule = &rules[m.rule as usize];
                self.tables[m.rule as usize].prefetch_state(
                    rule,
                    m.hash,
                    &records[m.idx as usize],
                    m.side,
                );
            }
            let rule = &rules[r.rule as usize];
            self.tables[r.rule as usize].add(rule, r.hash, &records[r.idx as usize], r.side);
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
