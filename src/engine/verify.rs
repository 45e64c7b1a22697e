//! The verify pass: a second read of the inputs that counts only the candidates of the first, exactly.
//!
//! After admission, a rule's table misses at most `A - 1` of a key's measure, so the first pass names every key
//! that could be over the threshold: the candidates. Counting just those again, from every flow, gives exact
//! values, flows and times: findings are then exactly what counting every key exactly would report. The pass is
//! cheap because candidates are few: each worker decodes its share of chunks, runs the filters as the first pass
//! does, and looks each matching key's hash up in a bitset of the candidates' hashes that fits in cache; only the
//! rare hits go on to the candidate index. Every worker keeps its own tallies of all candidates (no exchange, no
//! locks) and the tallies merge by sums, minima, maxima and set unions, so the result does not depend on which
//! worker saw which flow.

use super::evidence::{Evidence, Gathered};
use super::key::KeyParts;
use super::table::{distinct_value, CompiledRule, Seen};
use super::worker::Job;
use super::{Done, InputError, ScanStats};
use crate::formats::ChunkStats;
use crate::hash::{hash128, TableHasher};
use crate::record::{Addr, FlowRecord};
use crate::rules::filter::{Columns, Scratch};
use crate::rules::{CountSpec, DistinctField, Rule};
use crate::sketch::hll::{self, Registers};
use crate::sketch::Estimate;
use std::collections::HashSet;
use std::sync::atomic::Ordering;

/// Distinct values a candidate's tally holds exactly; past it the tally counts them in a HyperLogLog. A flood of
/// spoofed sources at one victim would otherwise hold every forged address, once per worker; a key this far past
/// any threshold is a finding either way, and its count says it is an estimate.
pub const EXACT_LIMIT: usize = 1 << 16;

/// One rule's candidates: their keys, an index by hash, and a bitset of hash bits that rejects most other keys
/// without leaving the cache.
pub struct Candidates {
    keys: Vec<KeyParts>,
    /// Open addressing: candidate index + 1 by hash, 0 for empty.
    index: Vec<u32>,
    hashes: Vec<u64>,
    bits: Prefilter,
}

impl Candidates {
    /// Index `keys` (no duplicates).
    pub fn new(keys: Vec<KeyParts>) -> Candidates {
        let hashes: Vec<u64> = keys.iter().map(KeyParts::hash).collect();
        let slots = (keys.len() * 2).next_power_of_two().max(16);
        let mut index = vec![0u32; slots];
        for (i, &h) in hashes.iter().enumerate() {
            let mut at = h as usize & (slots - 1);
            while index[at] != 0 {
                at = (at + 1) & (slots - 1);
            }
            index[at] = i as u32 + 1;
        }
        let bits = Prefilter::new(&hashes);
        Candidates {
            keys,
            index,
            hashes,
            bits,
        }
    }

    /// The candidates' key hashes, in the order of [`Self::keys`].
    pub fn hashes(&self) -> &[u64] {
        &self.hashes
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn keys(&self) -> &[KeyParts] {
        &self.keys
    }

    /// False when no candidate has this hash; true when one may.
    #[inline]
    fn maybe(&self, hash: u64) -> bool {
        self.bits.maybe(hash)
    }

    /// The index of the candidate with this hash and key.
    #[inline]
    pub fn find(&self, hash: u64, key: &KeyParts) -> Option<usize> {
        let mask = self.index.len() - 1;
        let mut at = hash as usize & mask;
        loop {
            let i = self.index[at].checked_sub(1)? as usize;
            if self.hashes[i] == hash && self.keys[i] == *key {
                return Some(i);
            }
            at = (at + 1) & mask;
        }
    }
}

/// A bitset of key hash bits that rejects most keys that are not candidates without leaving the cache.
#[derive(Clone, Debug)]
pub struct Prefilter {
    bits: Vec<u64>,
}

impl Prefilter {
    /// The prefilter of the keys with these hashes: about 16 bits per key (one in a few hundred other keys
    /// passes), from 4 KiB up to 1 MiB.
    pub fn new(hashes: &[u64]) -> Prefilter {
        let bit_count = (hashes.len() * 16)
            .next_power_of_two()
            .clamp(1 << 15, 1 << 23);
        let mut bits = vec![0u64; bit_count / 64];
        for &h in hashes {
            let b = bit_of(h, bit_count);
            bits[b / 64] |= 1 << (b % 64);
        }
        Prefilter { bits }
    }

    /// False when no key of the set has this hash; true when one may.
    #[inline]
    pub fn maybe(&self, hash: u64) -> bool {
        let b = bit_of(hash, self.bits.len() * 64);
        self.bits[b / 64] >> (b % 64) & 1 != 0
    }
}

/// A bit of the prefilter: from hash bits the index does not use first.
#[inline]
fn bit_of(hash: u64, bits: usize) -> usize {
    (hash.rotate_left(23) as usize) & (bits - 1)
}

/// Distinct values, exact up to [`EXACT_LIMIT`], then a HyperLogLog of them.
#[derive(Clone, Debug, Default)]
pub enum Values {
    #[default]
    Empty,
    Exact(HashSet<u128, TableHasher>),
    Estimated(Box<Registers>),
}

impl Values {
    #[inline]
    fn insert(&mut self, v: u128) {
        match self {
            Values::Empty => {
                let mut set = HashSet::with_hasher(TableHasher);
                set.insert(v);
                *self = Values::Exact(set);
            }
            Values::Exact(set) => {
                if set.insert(v) && set.len() > EXACT_LIMIT {
                    let mut regs = Registers::boxed();
                    for &x in set.iter() {
                        regs.insert(hash128(x) | 1);
                    }
                    *self = Values::Estimated(regs);
                }
            }
            Values::Estimated(regs) => regs.insert(hash128(v) | 1),
        }
    }

    fn merge(&mut self, other: Values) {
        match (std::mem::take(self), other) {
            (a, Values::Empty) => *self = a,
            (Values::Empty, b) => *self = b,
            (Values::Exact(mut a), Values::Exact(b)) => {
                *self = Values::Exact(std::mem::take(&mut a));
                for v in b {
                    self.insert(v);
                }
            }
            (Values::Estimated(mut r), Values::Exact(set))
            | (Values::Exact(set), Values::Estimated(mut r)) => {
                for v in set {
                    r.insert(hash128(v) | 1);
                }
                *self = Values::Estimated(r);
            }
            (Values::Estimated(mut a), Values::Estimated(b)) => {
                a.merge(&b);
                *self = Values::Estimated(a);
            }
        }
    }

    fn estimate(&self) -> Estimate {
        match self {
            Values::Empty => Estimate::exact(0),
            Values::Exact(set) => Estimate::exact(set.len() as u64),
            Values::Estimated(r) => Estimate {
                value: r.estimate().round() as u64,
                exact: false,
                rel_std_error: hll::REL_STD_ERROR,
            },
        }
    }
}

/// Everything the verify pass counts for one candidate, from every flow of its key.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub seen: Seen,
    pub packets: u64,
    pub bytes: u64,
    pub values: Values,
    pub gathered: Gathered,
}

impl Tally {
    /// Count one flow of the key (`side`: which end of a `host` key).
    #[inline]
    pub fn add(&mut self, rule: &CompiledRule, rec: &FlowRecord, side: u8) {
        self.seen.add(rec);
        self.packets = self.packets.saturating_add(rec.packets);
        self.bytes = self.bytes.saturating_add(rec.bytes);
        if let CountSpec::Distinct(d) = rule.count {
            self.values
                .insert(distinct_value(d, rec, side, rule.key.addr));
        }
        // Evidence names whole peers, whatever the count's prefix.
        let peer = distinct_value(DistinctField::Peer.into(), rec, side, rule.key.addr);
        self.gathered.add(rec, Addr(peer));
    }

    fn merge(&mut self, o: Tally) {
        self.seen.merge(&o.seen);
        self.packets = self.packets.saturating_add(o.packets);
        self.bytes = self.bytes.saturating_add(o.bytes);
        self.values.merge(o.values);
        self.gathered.merge(o.gathered);
    }

    /// The top `k` peers, ports and protocols with the totals, from every flow of the key.
    pub fn evidence(&self, k: usize) -> Evidence {
        self.gathered.evidence(k, self.bytes, self.packets, true)
    }

    /// The rule's count for this key; exact unless a distinct count passed [`EXACT_LIMIT`].
    pub fn value(&self, count: CountSpec) -> Estimate {
        match count {
            CountSpec::Flows => Estimate::exact(self.seen.flows()),
            CountSpec::Packets => Estimate::exact(self.packets),
            CountSpec::Bytes => Estimate::exact(self.bytes),
            CountSpec::Distinct(_) => {
                let mut e = self.values.estimate();
                e.value = e.value.min(self.seen.flows());
                e
            }
        }
    }
}

/// What the verify pass found: per rule, one tally per candidate (in the order of [`Candidates::keys`]).
pub struct Verified {
    pub tallies: Vec<Vec<Tally>>,
    pub stats: ScanStats,
    pub errors: Vec<InputError>,
}

/// What a verify pass read again: a scan's own inputs, or those of merged saved states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reread {
    Scan,
    Merge,
}

/// Tell a verify pass's problems beside the first pass's (`told`): its errors in inputs the first pass had none in
/// (the same inputs decode to the same errors, capped per input, so a new one means the input changed), and a
/// count of flows other than the first pass's (`first_flows`).
pub fn tell_reread_errors(
    told: &mut Vec<InputError>,
    errors: Vec<InputError>,
    flows: u64,
    first_flows: u64,
    of: Reread,
) {
    let (pass, first, changed) = match of {
        Reread::Scan => (
            "in the verify pass",
            "the first pass read",
            "during the scan",
        ),
        Reread::Merge => (
            "in the verify pass of a merge",
            "the saved states counted",
            "since it was scanned",
        ),
    };
    for e in errors {
        if !told.iter().any(|t| t.name == e.name) {
            told.push(InputError {
                name: e.name,
                message: format!("{} ({pass})", e.message),
            });
        }
    }
    if flows != first_flows {
        told.push(InputError {
            name: "verify pass".into(),
            message: format!(
                "read {flows} flows where {first} {first_flows}: an input changed {changed}"
            ),
        });
    }
}

/// Count every candidate of `candidates` (one set per rule) exactly, over `inputs`. `progress` counts flows.
pub fn verify<I>(
    rules: &[Rule],
    candidates: &[Candidates],
    inputs: I,
    threads: usize,
    queue: usize,
    progress: &Done,
) -> Verified
where
    I: IntoIterator<Item = Result<super::Input, InputError>>,
{
    let compiled: Vec<CompiledRule> = rules.iter().map(CompiledRule::new).collect();
    let (job_tx, job_rx) = crossbeam::channel::bounded::<Job>(queue.max(1));
    let mut stats = ScanStats::default();
    let mut errors = Vec::new();
    let outputs = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads.max(1))
            .map(|_| {
                let jobs = job_rx.clone();
                let compiled = &compiled;
                scope.spawn(move || run(rules, compiled, candidates, jobs, progress))
            })
            .collect();
        drop(job_rx);
        super::feed_and_join(
            handles,
            inputs,
            job_tx,
            &mut stats,
            &mut |e| errors.push(e),
            progress,
        )
    });
    let mut tallies: Vec<Vec<Tally>> = candidates
        .iter()
        .map(|c| vec![Tally::default(); c.len()])
        .collect();
    for (mine, chunk_stats, errs) in outputs {
        stats.flows += chunk_stats.flows;
        stats.skipped += chunk_stats.skipped;
        errors.extend(errs);
        for (all, part) in tallies.iter_mut().zip(mine) {
            for (a, b) in all.iter_mut().zip(part) {
                a.merge(b);
            }
        }
    }
    errors.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.message.cmp(&b.message)));
    Verified {
        tallies,
        stats,
        errors,
    }
}

type WorkerOut = (Vec<Vec<Tally>>, ChunkStats, Vec<InputError>);

fn run(
    rules: &[Rule],
    compiled: &[CompiledRule],
    candidates: &[Candidates],
    jobs: crossbeam::channel::Receiver<Job>,
    progress: &Done,
) -> WorkerOut {
    let mut tallies: Vec<Vec<Tally>> = candidates
        .iter()
        .map(|c| vec![Tally::default(); c.len()])
        .collect();
    let active: Vec<usize> = (0..rules.len())
        .filter(|&r| !candidates[r].is_empty())
        .collect();
    let any_filter = active.iter().any(|&r| !rules[r].filter.is_any());
    let mut columns = Columns::default();
    let mut selected = Vec::new();
    let mut scratch = Scratch::default();
    let mut stats = ChunkStats::default();
    let mut errors = Vec::new();
    let mut buffer = Vec::new();
    for job in jobs {
        let mut batch_fn = |batch: &[FlowRecord]| {
            if any_filter {
                columns.load(batch);
            }
            for &ri in &active {
                let (rule, c, set) = (&rules[ri], &compiled[ri], &candidates[ri]);
                let tally = &mut tallies[ri];
                let one = c.one_key();
                let mut visit = |i: usize| {
                    let rec = &batch[i];
                    let mut look = |side: u8, hop: u8| {
                        let hash = c.key_hash(rec, side, hop);
                        if set.maybe(hash) {
                            if let Some(at) = set.find(hash, &c.key_parts(rec, side, hop)) {
                                tally[at].add(c, rec, side);
                            }
                        }
                    };
                    if one {
                        return look(0, 0);
                    }
                    for hop in 0..c.hops(rec) {
                        for side in 0..c.sides() {
                            look(side, hop);
                        }
                    }
                };
                if rule.filter.is_any() {
                    (0..batch.len()).for_each(&mut visit);
                    continue;
                }
                rule.filter
                    .select(batch, &columns, &mut selected, &mut scratch);
                for (w, &word) in selected.iter().enumerate() {
                    let mut bits = word;
                    while bits != 0 {
                        visit(w * 64 + bits.trailing_zeros() as usize);
                        bits &= bits - 1;
                    }
                }
            }
            progress
                .flows
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
        };
        let (decoded, error) = job.decode(&mut buffer, progress, &mut batch_fn);
        stats += decoded;
        errors.extend(error);
    }
    (tallies, stats, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Addr;

    #[test]
    fn values_stay_exact_to_the_limit_then_estimate_and_merge_in_any_order() {
        let mut a = Values::default();
        let mut b = Values::default();
        for v in 0..EXACT_LIMIT as u128 / 2 {
            a.insert(v);
            b.insert(v + 10);
        }
        let mut ab = a.clone();
        ab.merge(b.clone());
        assert_eq!(ab.estimate(), Estimate::exact(EXACT_LIMIT as u64 / 2 + 10));
        // Past the limit: an estimate within 5 sigma, the same whichever side merges into the other.
        let mut big = Values::default();
        for v in 0..EXACT_LIMIT as u128 * 2 {
            big.insert(v << 64);
        }
        let mut x = big.clone();
        x.merge(a.clone());
        let mut y = a.clone();
        y.merge(big.clone());
        let (ex, ey) = (x.estimate(), y.estimate());
        assert_eq!(ex, ey);
        assert!(!ex.exact);
        let truth = (EXACT_LIMIT * 2 + EXACT_LIMIT / 2) as f64;
        assert!((ex.value as f64 - truth).abs() < truth * 5.0 * hll::REL_STD_ERROR);
    }

    #[test]
    fn candidates_are_found_by_hash_and_key_and_others_are_not() {
        let keys: Vec<KeyParts> = (0..1_000u32)
            .map(|i| KeyParts {
                addr: Addr::v4(i),
                extra: crate::engine::KeyValue::None,
                window: 0,
            })
            .collect();
        let c = Candidates::new(keys.clone());
        for (i, k) in keys.iter().enumerate() {
            assert!(c.maybe(k.hash()));
            assert_eq!(c.find(k.hash(), k), Some(i));
        }
        let mut passed = 0;
        for i in 1_000..101_000u32 {
            let k = KeyParts {
                addr: Addr::v4(i),
                extra: crate::engine::KeyValue::None,
                window: 0,
            };
            if c.maybe(k.hash()) {
                passed += 1;
                assert_eq!(c.find(k.hash(), &k), None);
            }
        }
        assert!(
            passed < 5_000,
            "the prefilter passed {passed} of 100,000 others"
        );
    }
}
