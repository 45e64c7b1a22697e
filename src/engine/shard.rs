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

/// All rule tables of one worker.
pub struct Shard<C: DistinctCounter> {
    pub tables: Vec<RuleTable<C>>,
    /// Per rule, where its updates start in `sorted` (reused between calls).
    starts: Vec<usize>,
    /// The updates of one call grouped by rule, so each table runs its own tight loop.
    sorted: Vec<Ref>,
}

impl<C: DistinctCounter> Shard<C> {
    pub fn new(rules: &[CompiledRule]) -> Shard<C> {
        Shard {
            tables: rules.iter().map(RuleTable::new).collect(),
            starts: vec![0; rules.len() + 1],
            sorted: Vec::new(),
        }
    }

    /// Apply routed updates: grouped by rule (a counting sort, order kept within a rule), then each rule's table
    /// applies its share in one loop specialised to its key and state types (see [`RuleTable::apply`]).
    #[inline]
    pub fn apply(&mut self, rules: &[CompiledRule], records: &[FlowRecord], refs: &[Ref]) {
        if let Some(first) = refs.first() {
            if refs.iter().all(|r| r.rule == first.rule) {
                let rule = first.rule as usize;
                self.tables[rule].apply(&rules[rule], records, refs);
                return;
            }
        }
        let starts = &mut self.starts;
        starts.iter_mut().for_each(|s| *s = 0);
        for r in refs {
            starts[r.rule as usize + 1] += 1;
        }
        for i in 1..starts.len() {
            starts[i] += starts[i - 1];
        }
        self.sorted.clear();
        self.sorted.resize(
            refs.len(),
            Ref {
                hash: 0,
                idx: 0,
                rule: 0,
                side: 0,
            },
        );
        let mut next = starts.clone();
        for r in refs {
            let at = &mut next[r.rule as usize];
            self.sorted[*at] = *r;
            *at += 1;
        }
        for (rule, table) in self.tables.iter_mut().enumerate() {
            let share = &self.sorted[starts[rule]..starts[rule + 1]];
            if !share.is_empty() {
                table.apply(&rules[rule], records, share);
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
