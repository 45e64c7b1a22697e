//! A shard: the tables of every rule for the keys whose hash routes to one worker.

use super::table::{CompiledRule, Counted, Footprint, RuleTable};
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
    /// Refs that arrived out of rule order, sorted (reused between calls).
    sorted: Vec<Ref>,
}

impl<C: DistinctCounter> Shard<C> {
    pub fn new(rules: &[CompiledRule]) -> Shard<C> {
        Shard {
            tables: rules.iter().map(RuleTable::new).collect(),
            sorted: Vec::new(),
        }
    }

    /// Apply routed updates, each rule's run by its table in one loop specialised to its key and state types
    /// (see [`RuleTable::apply`]). Routing emits refs grouped by rule; others are sorted first (stably, so updates
    /// of a rule keep their order).
    #[inline]
    pub fn apply(&mut self, rules: &[CompiledRule], records: &[FlowRecord], refs: &[Ref]) {
        if refs.windows(2).all(|w| w[0].rule <= w[1].rule) {
            self.apply_runs(rules, records, refs);
        } else {
            let mut sorted = std::mem::take(&mut self.sorted);
            sorted.clear();
            sorted.extend_from_slice(refs);
            sorted.sort_by_key(|r| r.rule);
            self.apply_runs(rules, records, &sorted);
            self.sorted = sorted;
        }
    }

    fn apply_runs(&mut self, rules: &[CompiledRule], records: &[FlowRecord], refs: &[Ref]) {
        for run in refs.chunk_by(|a, b| a.rule == b.rule) {
            let rule = run[0].rule as usize;
            self.tables[rule].apply(&rules[rule], records, run);
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

    /// What rule `rule`'s table holds in this shard.
    pub fn footprint(&self, rule: usize) -> Footprint {
        self.tables[rule].footprint()
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

    /// Refs in record order (rules interleaved) count the same as refs grouped by rule.
    #[test]
    fn refs_in_any_rule_order_count_the_same() {
        use crate::record::Addr;
        use crate::rules::{CountSpec, DistinctField, KeySpec};
        use crate::sketch::Compact;
        let rules = [
            CompiledRule {
                key: KeySpec::SRC,
                count: CountSpec::Distinct(DistinctField::Dst),
                window_ms: 0,
            },
            CompiledRule {
                key: "dst".parse().unwrap(),
                count: CountSpec::Flows,
                window_ms: 0,
            },
        ];
        let records: Vec<FlowRecord> = (0..3_000u32)
            .map(|i| FlowRecord {
                src: Addr::v4(i % 50),
                dst: Addr::v4(1_000 + i % 70),
                ..Default::default()
            })
            .collect();
        let refs_for = |order: &[(usize, u16)]| -> Vec<Ref> {
            order
                .iter()
                .map(|&(i, rule)| Ref {
                    hash: rules[rule as usize].key_hash(&records[i], 0),
                    idx: i as u32,
                    rule,
                    side: 0,
                })
                .collect()
        };
        let by_record: Vec<(usize, u16)> =
            (0..records.len()).flat_map(|i| [(i, 0), (i, 1)]).collect();
        let mut by_rule = by_record.clone();
        by_rule.sort_by_key(|&(_, rule)| rule);
        let mut a = Shard::<Compact>::new(&rules);
        let mut b = Shard::<Compact>::new(&rules);
        a.apply(&rules, &records, &refs_for(&by_record));
        b.apply(&rules, &records, &refs_for(&by_rule));
        for rule in 0..2 {
            let key = |c: &Counted| (c.key, c.value.value, c.seen.flows());
            let mut x: Vec<_> = a.all(rule).iter().map(key).collect();
            let mut y: Vec<_> = b.all(rule).iter().map(key).collect();
            x.sort();
            y.sort();
            assert_eq!(x, y);
            assert_eq!(x.len(), [50, 70][rule]);
        }
    }

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
