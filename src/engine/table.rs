//! Per-rule tables: key to counter state, hashed with the key's fixed-seed hash (computed once, when the record
//! is routed) so a lookup never hashes twice.

use super::evidence::Sample;
use super::key::{
    cut, AddrKey, AddrPairKey, AddrPortKey, KeyParts, NarrowKey, TableKey, V4Key, V4PairKey,
    V4PortKey,
};
use super::shard::Ref;
use super::slots::{SlotTable, EPOCH_SHIFT};
use crate::hash::{hash128, TableHasher};
use crate::record::{Addr, FlowRecord};
use crate::rules::rule::Distinct;
use crate::rules::{AddrField, CountSpec, DistinctField, KeyExtra, Rule};
use crate::sketch::{DistinctCounter, Estimate};

/// How many updates apart the stages of [`Table::apply`] run: enough to cover a memory latency, few enough to
/// stay in L1.
const AHEAD: usize = 16;
/// Slot indices in flight between the second and third stage (a power of two above `AHEAD`).
const RING: usize = 32;

/// What a rule's state keeps besides its count: how many flows matched and when. Full times, so a key whose flows
/// span months (or a record stamped 0 beside today's) reports the times it saw, never a wrapped one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Seen {
    first_ms: u64,
    last_ms: u64,
    flows: u64,
}

impl Default for Seen {
    fn default() -> Seen {
        Seen {
            first_ms: u64::MAX,
            last_ms: 0,
            flows: 0,
        }
    }
}

impl Seen {
    pub fn flows(&self) -> u64 {
        self.flows
    }

    pub fn first_ms(&self) -> u64 {
        if self.flows == 0 {
            0
        } else {
            self.first_ms
        }
    }

    pub fn last_ms(&self) -> u64 {
        self.last_ms
    }

    /// Count `flows` flows from `first` to `last` (an end before the start counts at the start).
    #[inline]
    pub fn cover(&mut self, first: u64, last: u64, flows: u64) {
        self.first_ms = self.first_ms.min(first);
        self.last_ms = self.last_ms.max(last.max(first));
        self.flows = self.flows.saturating_add(flows);
    }

    #[inline]
    pub fn add(&mut self, rec: &FlowRecord) {
        self.cover(rec.first_ms, rec.last_ms, 1);
    }

    pub fn merge(&mut self, o: &Seen) {
        if o.flows != 0 {
            self.cover(o.first_ms, o.last_ms, o.flows);
        }
    }
}

/// What a table keeps of a key besides its count: [`Seen`] (flows and times, for findings of one pass), or
/// nothing ([`NoSeen`]) when a verify pass will count the candidates again and report those: 24 bytes less per
/// entry, which is most of an entry.
pub trait Meta: Copy + Default + Send + Sync + 'static {
    fn add(&mut self, rec: &FlowRecord);
    fn merge(&mut self, other: &Self);
    /// What was seen (empty for [`NoSeen`]).
    fn seen(&self) -> Seen;
    /// The flows counted, when kept.
    fn flows(&self) -> Option<u64>;
}

impl Meta for Seen {
    #[inline]
    fn add(&mut self, rec: &FlowRecord) {
        Seen::add(self, rec)
    }
    fn merge(&mut self, other: &Self) {
        Seen::merge(self, other)
    }
    fn seen(&self) -> Seen {
        *self
    }
    fn flows(&self) -> Option<u64> {
        Some(self.flows)
    }
}

/// Nothing kept besides the count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoSeen;

impl Meta for NoSeen {
    #[inline]
    fn add(&mut self, _rec: &FlowRecord) {}
    fn merge(&mut self, _other: &Self) {}
    fn seen(&self) -> Seen {
        Seen::default()
    }
    fn flows(&self) -> Option<u64> {
        None
    }
}

/// A counter state: a sum (flows, packets, bytes) or a distinct counter.
pub trait State: Default + Send + 'static {
    /// Count a record; returns the bytes the state's heap grew by (0 for most records), so a table can keep its
    /// memory without walking its entries.
    fn add(
        &mut self,
        count: CountSpec,
        key_side: u8,
        rec: &FlowRecord,
        addr_field: AddrField,
    ) -> usize;
    fn merge(&mut self, other: &Self);
    fn value(&mut self) -> Estimate;
    fn seen(&self) -> Seen;
    fn heap_bytes(&self) -> usize;
    /// Start loading the state's heap data, if it has any.
    #[inline]
    fn prefetch(&self) {}
    /// How far the key has come towards its threshold, cheaply, for the one-pass sample: a sum's count, an exact
    /// distinct count, else (a distinct count past its exact form) the flows counted, which are at least as many.
    fn level(&self) -> u64;
}

/// Flows, packets or bytes: an exact sum.
#[derive(Default)]
pub struct SumState<M = Seen> {
    sum: u64,
    seen: M,
}

impl<M: Meta> State for SumState<M> {
    #[inline]
    fn add(&mut self, count: CountSpec, _side: u8, rec: &FlowRecord, _addr: AddrField) -> usize {
        self.sum = self.sum.saturating_add(match count {
            CountSpec::Packets => rec.packets,
            CountSpec::Bytes => rec.bytes,
            _ => 1,
        });
        self.seen.add(rec);
        0
    }
    fn merge(&mut self, o: &Self) {
        self.sum = self.sum.saturating_add(o.sum);
        self.seen.merge(&o.seen);
    }
    fn value(&mut self) -> Estimate {
        Estimate {
            value: self.sum,
            exact: true,
            rel_std_error: 0.0,
        }
    }
    fn seen(&self) -> Seen {
        self.seen.seen()
    }
    fn heap_bytes(&self) -> usize {
        0
    }
    #[inline]
    fn level(&self) -> u64 {
        self.sum
    }
}

/// Distinct values of a field, in the chosen counter backend.
#[derive(Default)]
pub struct DistinctState<C, M = Seen> {
    counter: C,
    seen: M,
}

/// The value a `distinct` count counts, as a 128-bit number (an address cut to the count's prefix).
#[inline]
pub fn distinct_value(d: Distinct, rec: &FlowRecord, side: u8, addr: AddrField) -> u128 {
    let a = match d.field {
        DistinctField::Src => rec.src,
        DistinctField::Dst => rec.dst,
        DistinctField::Peer => {
            let key_is_src = match addr {
                AddrField::Src => true,
                AddrField::Dst => false,
                AddrField::Host => side == 0,
            };
            if key_is_src {
                rec.dst
            } else {
                rec.src
            }
        }
        DistinctField::Sport => return rec.src_port as u128,
        DistinctField::Dport => return rec.dst_port as u128,
    };
    d.prefix.apply(a).0
}

impl<C: DistinctCounter, M: Meta> State for DistinctState<C, M> {
    #[inline]
    fn prefetch(&self) {
        self.counter.prefetch();
    }

    #[inline]
    fn add(&mut self, count: CountSpec, side: u8, rec: &FlowRecord, addr: AddrField) -> usize {
        self.seen.add(rec);
        match count {
            CountSpec::Distinct(field) => {
                let v = distinct_value(field, rec, side, addr);
                self.counter.insert_grown(hash128(v), v)
            }
            _ => 0,
        }
    }
    fn merge(&mut self, o: &Self) {
        self.counter.merge(&o.counter);
        self.seen.merge(&o.seen);
    }
    fn value(&mut self) -> Estimate {
        // A key cannot have more distinct values than flows: an estimate says no more than that.
        let mut e = self.counter.estimate();
        if let Some(flows) = self.seen.flows() {
            e.value = e.value.min(flows);
        }
        e
    }
    fn seen(&self) -> Seen {
        self.seen.seen()
    }
    fn heap_bytes(&self) -> usize {
        self.counter.heap_bytes()
    }
    #[inline]
    fn level(&self) -> u64 {
        self.counter
            .known_count()
            .or(self.seen.flows())
            .unwrap_or(0)
    }
}

/// The key of `rule` that ref `r` updates with its record `rec`.
#[inline(always)]
fn key_of<K: TableKey>(rule: &CompiledRule, rec: &FlowRecord, r: &Ref) -> K {
    let window = rule.window_of(rec, r.hop);
    match rule.cut {
        false => K::extract(rule.key, rec, r.side, window),
        true => K::extract(rule.key, &cut(rule.key, rec), r.side, window),
    }
}

/// A table entry's count as saved states write it: a sum, or the distinct counter itself.
pub enum EntryValue<'a, C> {
    Sum(u64),
    Distinct(&'a C),
}

/// What [`RuleTable::each_entry`] hands each entry to: key, admission epoch, what was seen, count.
pub type EachEntry<'f, C> = dyn FnMut(KeyParts, u32, Seen, EntryValue<'_, C>) + 'f;

/// What a state holds, for saved states (`C`: the counter of the scan, which sums do not use).
pub trait Entry<C> {
    fn entry_value(&self) -> EntryValue<'_, C>;
}

impl<C, M: Meta> Entry<C> for SumState<M> {
    fn entry_value(&self) -> EntryValue<'_, C> {
        EntryValue::Sum(self.sum)
    }
}

impl<C: DistinctCounter, M: Meta> Entry<C> for DistinctState<C, M> {
    fn entry_value(&self) -> EntryValue<'_, C> {
        EntryValue::Distinct(&self.counter)
    }
}

/// One rule's table for one key type and state type.
pub struct Table<K, S> {
    entries: SlotTable<K, S>,
    /// Bytes the states' heaps hold, kept as they grow (what [`Footprint::counter_bytes`] walks to find).
    heap: usize,
    /// One pass: samples of the flows of keys that came near the threshold, for their evidence.
    samples: SamplePool,
}

impl<K: TableKey + Default, S: State> Default for Table<K, S> {
    fn default() -> Self {
        Table {
            entries: SlotTable::default(),
            heap: 0,
            samples: SamplePool::default(),
        }
    }
}

/// The samples one table keeps, by key hash: at most the rule's `sample_keys`, taken by the first keys to reach
/// `sample_from`. Adding a flow to a key's sample never allocates; a key entering the pool may (the map doubles).
#[derive(Default)]
struct SamplePool {
    samples: std::collections::HashMap<u64, Sample, TableHasher>,
}

impl SamplePool {
    /// Count `rec` in the sample of the key with hash `hash`, which has reached the rule's `sample_from`.
    #[inline]
    fn add(&mut self, rule: &CompiledRule, hash: u64, rec: &FlowRecord, side: u8) {
        // Evidence names whole peers, whatever the count's prefix.
        let peer = Addr(distinct_value(
            DistinctField::Peer.into(),
            rec,
            side,
            rule.key.addr,
        ));
        if let Some(s) = self.samples.get_mut(&hash) {
            return s.add(rec, peer);
        }
        // A key's first sampled flow: the pool grows by doubling, so it allocates a few times per table, never per
        // record, and holds only the keys that came near the threshold.
        if self.samples.len() < rule.sample_keys {
            let s = self
                .samples
                .entry(hash)
                .or_insert(Sample::new(rule.sample_from));
            s.add(rec, peer);
        }
    }

    fn merge(&mut self, other: SamplePool) {
        for (h, s) in other.samples {
            match self.samples.get_mut(&h) {
                Some(mine) => mine.merge(&s),
                None => {
                    self.samples.insert(h, s);
                }
            }
        }
    }

    fn get(&self, hash: u64) -> Option<Box<Sample>> {
        if self.samples.is_empty() {
            return None;
        }
        self.samples.get(&hash).map(|s| Box::new(*s))
    }
}

impl<K: TableKey + Default, S: State> Table<K, S> {
    #[inline]
    fn slot(&mut self, hash: u64, key: K) -> &mut S {
        self.entries.slot(hash, key)
    }

    /// Apply updates of this table's rule in three stages, [`AHEAD`] updates apart, so the cache misses of a table
    /// too large for the cache overlap instead of queueing: prefetch the slot where the key lands; find or insert
    /// the key there and prefetch its state's heap data; count the record. Room for every new key is reserved
    /// first, so an index found in the second stage is still valid in the third.
    fn apply(&mut self, rule: &CompiledRule, records: &[FlowRecord], refs: &[Ref]) {
        self.entries.reserve(refs.len());
        let mut ring = [0usize; RING];
        let n = refs.len();
        for i in 0..n + 2 * AHEAD {
            if let Some(r) = refs.get(i) {
                self.entries.prefetch(r.hash);
            }
            if let Some(j) = i.checked_sub(AHEAD).filter(|&j| j < n) {
                let r = &refs[j];
                let key = key_of::<K>(rule, &records[r.idx as usize], r);
                let at = self.entries.index(r.hash, key);
                self.entries.at_ref(at).prefetch();
                ring[j % RING] = at;
            }
            if let Some(j) = i.checked_sub(2 * AHEAD) {
                self.count(rule, records, &refs[j], ring[j % RING]);
            }
        }
    }

    /// Count the record of `r` in the entry at `at`, and in the key's sample once it has come near the threshold.
    #[inline(always)]
    fn count(&mut self, rule: &CompiledRule, records: &[FlowRecord], r: &Ref, at: usize) {
        let rec = &records[r.idx as usize];
        let state = self.entries.at(at);
        self.heap += state.add(rule.count, r.side, rec, rule.key.addr);
        // Without sampling (a verify pass follows) the level is not even looked at.
        if rule.sample_from != u64::MAX && state.level() >= rule.sample_from {
            self.samples.add(rule, r.hash, rec, r.side);
        }
    }

    /// Count the refs whose key already has an entry, in the same stages as [`Self::apply`]; the others are
    /// dropped (their keys were never admitted).
    fn apply_existing(&mut self, rule: &CompiledRule, records: &[FlowRecord], refs: &[Ref]) {
        if self.entries.len() == 0 {
            return;
        }
        let mut ring = [None; RING];
        let n = refs.len();
        for i in 0..n + 2 * AHEAD {
            if let Some(r) = refs.get(i) {
                self.entries.prefetch(r.hash);
            }
            if let Some(j) = i.checked_sub(AHEAD).filter(|&j| j < n) {
                let r = &refs[j];
                let key = key_of::<K>(rule, &records[r.idx as usize], r);
                let at = self.entries.index_of(r.hash, key);
                if let Some(at) = at {
                    self.entries.at_ref(at).prefetch();
                }
                ring[j % RING] = at;
            }
            if let Some(j) = i.checked_sub(2 * AHEAD) {
                if let Some(at) = ring[j % RING] {
                    self.count(rule, records, &refs[j], at);
                }
            }
        }
    }

    fn merge(&mut self, other: Table<K, S>) {
        self.samples.merge(other.samples);
        for (k, s) in other.entries.into_entries() {
            self.slot(k.hash(), k).merge(&s);
        }
        self.heap = self.entries.iter().map(|(_, s)| s.heap_bytes()).sum();
    }

    /// The counts that `keep` accepts.
    fn collect(&mut self, keep: impl Fn(&Estimate, u32) -> bool, out: &mut Vec<Counted>) {
        for (k, s) in self.entries.iter_mut() {
            let value = s.value();
            let epoch = k.tag() >> EPOCH_SHIFT;
            if keep(&value, epoch) {
                out.push(Counted {
                    key: k.parts(),
                    value,
                    seen: s.seen(),
                    epoch,
                    missed_at_most: 0,
                    sample: self.samples.get(k.hash()),
                });
            }
        }
    }

    fn set_epoch(&mut self, epoch: u32) {
        self.entries.set_epoch(epoch);
    }

    /// Take out the keys `keep` refuses (by key hash), freeing their counters and samples (room in the pool for
    /// keys that stay); how many went.
    fn evict(&mut self, keep: &dyn Fn(u64) -> bool) -> usize {
        let (mut gone, mut freed) = (0, 0);
        let samples = &mut self.samples.samples;
        self.entries.retain(
            |k| keep(k.hash()),
            |(k, s)| {
                gone += 1;
                freed += s.heap_bytes();
                if !samples.is_empty() {
                    samples.remove(&k.hash());
                }
            },
        );
        debug_assert!(
            freed <= self.heap,
            "counters reported less growth than they hold"
        );
        self.heap = self.heap.saturating_sub(freed);
        gone
    }

    /// Hand every entry to `each`: its key, admission epoch, what was seen and its count.
    fn each_entry<C>(&self, each: &mut EachEntry<'_, C>)
    where
        S: Entry<C>,
    {
        for (k, s) in self.entries.iter() {
            each(k.parts(), k.tag() >> EPOCH_SHIFT, s.seen(), s.entry_value());
        }
    }

    fn len(&self) -> usize {
        self.entries.len()
    }

    fn slot_bytes(&self) -> usize {
        self.entries.capacity() * std::mem::size_of::<(K, S)>()
    }

    fn held_bytes(&self) -> usize {
        self.slot_bytes() + self.heap
    }

    /// Bytes the table adds to make room for `refs` (as [`Self::apply`] reserves it).
    fn growth_bytes(&self, _rule: &CompiledRule, _records: &[FlowRecord], refs: &[Ref]) -> usize {
        self.entries.growth_bytes(refs.len())
    }

    fn footprint(&self) -> Footprint {
        Footprint {
            keys: self.entries.len(),
            table_bytes: self.entries.capacity() * std::mem::size_of::<(K, S)>(),
            counter_bytes: self.entries.iter().map(|(_, s)| s.heap_bytes()).sum(),
        }
    }
}

/// A rule's table in two: keys with IPv4 addresses in a table of their narrow form `N` (8 or 16 bytes), the
/// others in a table of the wide form `W`. Most keys are IPv4, so most entries are 32 or 40 bytes instead of 48
/// to 64: fewer cache lines per lookup and less memory to fault in.
pub struct Split<N, W, S> {
    narrow: Table<N, S>,
    wide: Table<W, S>,
    /// The updates of one call for each table (reused).
    refs_narrow: Vec<Ref>,
    refs_wide: Vec<Ref>,
}

impl<N: NarrowKey, W: TableKey + Default, S: State> Default for Split<N, W, S> {
    fn default() -> Self {
        Split {
            narrow: Table::default(),
            wide: Table::default(),
            refs_narrow: Vec::new(),
            refs_wide: Vec::new(),
        }
    }
}

impl<N: NarrowKey, W: TableKey + Default, S: State> Split<N, W, S> {
    fn apply(&mut self, rule: &CompiledRule, records: &[FlowRecord], refs: &[Ref]) {
        let fits = |r: &Ref| N::fits(rule.key, &records[r.idx as usize], r.side);
        // Each ref is tested once: the run of narrow ones up to the first wide one goes over as it is.
        let Some(first_wide) = refs.iter().position(|r| !fits(r)) else {
            self.narrow.apply(rule, records, refs);
            return;
        };
        self.refs_narrow.clear();
        self.refs_narrow.extend_from_slice(&refs[..first_wide]);
        self.refs_wide.clear();
        for r in &refs[first_wide..] {
            if fits(r) {
                self.refs_narrow.push(*r);
            } else {
                self.refs_wide.push(*r);
            }
        }
        if !self.refs_narrow.is_empty() {
            self.narrow.apply(rule, records, &self.refs_narrow);
        }
        if !self.refs_wide.is_empty() {
            self.wide.apply(rule, records, &self.refs_wide);
        }
    }

    fn apply_existing(&mut self, rule: &CompiledRule, records: &[FlowRecord], refs: &[Ref]) {
        self.refs_narrow.clear();
        self.refs_wide.clear();
        for r in refs {
            if N::fits(rule.key, &records[r.idx as usize], r.side) {
                self.refs_narrow.push(*r);
            } else {
                self.refs_wide.push(*r);
            }
        }
        self.narrow.apply_existing(rule, records, &self.refs_narrow);
        self.wide.apply_existing(rule, records, &self.refs_wide);
    }

    fn merge(&mut self, other: Split<N, W, S>) {
        self.narrow.merge(other.narrow);
        self.wide.merge(other.wide);
    }

    fn collect(&mut self, keep: impl Fn(&Estimate, u32) -> bool + Copy, out: &mut Vec<Counted>) {
        self.narrow.collect(keep, out);
        self.wide.collect(keep, out);
    }

    fn evict(&mut self, keep: &dyn Fn(u64) -> bool) -> usize {
        self.narrow.evict(keep) + self.wide.evict(keep)
    }

    fn set_epoch(&mut self, epoch: u32) {
        self.narrow.set_epoch(epoch);
        self.wide.set_epoch(epoch);
    }

    fn each_entry<C>(&self, each: &mut EachEntry<'_, C>)
    where
        S: Entry<C>,
    {
        self.narrow.each_entry(each);
        self.wide.each_entry(each);
    }

    fn len(&self) -> usize {
        self.narrow.len() + self.wide.len()
    }

    fn footprint(&self) -> Footprint {
        self.narrow.footprint().plus(self.wide.footprint())
    }

    fn slot_bytes(&self) -> usize {
        self.narrow.slot_bytes() + self.wide.slot_bytes()
    }

    fn held_bytes(&self) -> usize {
        self.narrow.held_bytes() + self.wide.held_bytes()
    }

    /// Each table's growth for the refs [`Self::apply`] gives it: checked as it will reserve, so a growth the
    /// budget sees is one that happens (counting every ref against the narrow table once made a table that never
    /// grew look about to grow on every batch).
    fn growth_bytes(&self, rule: &CompiledRule, records: &[FlowRecord], refs: &[Ref]) -> usize {
        // Most batches fit both tables whatever the split: then no ref need be looked at twice.
        let all = refs.len();
        if self.narrow.entries.growth_bytes(all) == 0 && self.wide.entries.growth_bytes(all) == 0 {
            return 0;
        }
        let narrow = (refs.iter())
            .filter(|r| N::fits(rule.key, &records[r.idx as usize], r.side))
            .count();
        self.narrow.entries.growth_bytes(narrow)
            + self.wide.entries.growth_bytes(refs.len() - narrow)
    }
}

/// What a rule's table holds: its keys, the bytes of its slot arrays, and the bytes its counters allocated
/// (as asked of the allocator, before it rounds them up to its size classes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Footprint {
    pub keys: usize,
    pub table_bytes: usize,
    pub counter_bytes: usize,
}

impl Footprint {
    pub fn plus(self, o: Footprint) -> Footprint {
        Footprint {
            keys: self.keys + o.keys,
            table_bytes: self.table_bytes + o.table_bytes,
            counter_bytes: self.counter_bytes + o.counter_bytes,
        }
    }
}

/// A key's count, taken out of a table for reporting.
#[derive(Debug, Clone)]
pub struct Counted {
    pub key: KeyParts,
    pub value: Estimate,
    pub seen: Seen,
    /// How many times the rule's admission threshold had been doubled when the key was admitted.
    pub epoch: u32,
    /// The most of the key's measure the table can have missed before admitting it (`A - 1` of its epoch; 0
    /// without admission). Set by the shard, which knows its admission thresholds.
    pub missed_at_most: u64,
    /// One pass: the sample of the key's flows after it came near the threshold, when one was kept.
    pub sample: Option<Box<Sample>>,
}

/// The parts of a rule the per-record path needs, copied out so a table never reaches into the definitions.
#[derive(Debug, Clone, Copy)]
pub struct CompiledRule {
    pub key: crate::rules::KeySpec,
    pub count: CountSpec,
    /// Window length in ms (0: no windows).
    pub window_ms: u64,
    /// How far apart windows start: `window_ms` for tumbling windows, less for hopping ones (0: no windows).
    pub step_ms: u64,
    /// The smallest threshold of the rule (see [`Rule::min_above`]): admission is safe for every key.
    pub above: u64,
    /// The key cuts addresses to prefixes ([`cut`]).
    pub cut: bool,
    /// One pass: a key's flows are sampled for its evidence once its [`State::level`] reaches this (`u64::MAX`:
    /// never, as when a verify pass will gather exact evidence).
    pub sample_from: u64,
    /// The most keys a table of this rule samples.
    pub sample_keys: usize,
}

impl CompiledRule {
    pub fn new(r: &Rule) -> CompiledRule {
        CompiledRule {
            key: r.key,
            count: r.count,
            window_ms: r.window.map_or(0, |w| w.len_ms),
            step_ms: r.window.map_or(0, |w| w.step_ms),
            above: r.min_above(),
            cut: !(r.key.prefix.is_whole() && r.key.extra_prefix.is_whole()),
            sample_from: u64::MAX,
            sample_keys: 0,
        }
    }

    /// A rule of `key`, `count` and threshold `above`, without windows, cuts or sampling.
    #[cfg(test)]
    pub(crate) fn plain(key: crate::rules::KeySpec, count: CountSpec, above: u64) -> CompiledRule {
        CompiledRule {
            key,
            count,
            window_ms: 0,
            step_ms: 0,
            above,
            cut: false,
            sample_from: u64::MAX,
            sample_keys: 0,
        }
    }

    /// The rule sampling the flows of keys that reach half its smallest threshold, `keys` at most per table.
    pub fn sampling(self, keys: usize) -> CompiledRule {
        CompiledRule {
            sample_from: self.above.div_ceil(2),
            sample_keys: keys,
            ..self
        }
    }

    /// How many windows `rec` falls in, and so how many keys it updates per side: 1 but for hopping windows,
    /// where it is `window / step` (fewer only for flows in the first window after time 0).
    #[inline]
    pub fn hops(&self, rec: &FlowRecord) -> u8 {
        if self.window_ms == self.step_ms {
            return 1;
        }
        let n = self.window_ms / self.step_ms;
        n.min(rec.first_ms / self.step_ms + 1) as u8
    }

    /// The index of the window `hop` steps before the one `rec` starts in (0 without windows): window `k` covers
    /// `[k * step, k * step + window)`. For tumbling windows (`hop` 0) that is `first / window`, as before.
    #[inline]
    pub fn window_of(&self, rec: &FlowRecord, hop: u8) -> u64 {
        rec.first_ms.checked_div(self.step_ms).unwrap_or(0) - hop as u64
    }

    /// The routing hash of the key this rule builds from `rec` (must equal the table key's own hash).
    #[inline]
    pub fn key_hash(&self, rec: &FlowRecord, side: u8, hop: u8) -> u64 {
        match self.cut {
            false => self.whole_key_hash(rec, side, hop),
            true => self.whole_key_hash(&cut(self.key, rec), side, hop),
        }
    }

    #[inline(always)]
    fn whole_key_hash(&self, rec: &FlowRecord, side: u8, hop: u8) -> u64 {
        let w = self.window_of(rec, hop);
        match self.key.extra {
            KeyExtra::None => AddrKey::extract(self.key, rec, side, w).hash(),
            KeyExtra::Src | KeyExtra::Dst => AddrPairKey::extract(self.key, rec, side, w).hash(),
            KeyExtra::Sport | KeyExtra::Dport | KeyExtra::Proto => {
                AddrPortKey::extract(self.key, rec, side, w).hash()
            }
        }
    }

    /// The key this rule builds from `rec`, taken apart (for the verify pass, which looks up candidates by it).
    #[inline]
    pub fn key_parts(&self, rec: &FlowRecord, side: u8, hop: u8) -> KeyParts {
        if self.cut {
            return self.whole_key_parts(&cut(self.key, rec), side, hop);
        }
        self.whole_key_parts(rec, side, hop)
    }

    #[inline(always)]
    fn whole_key_parts(&self, rec: &FlowRecord, side: u8, hop: u8) -> KeyParts {
        let w = self.window_of(rec, hop);
        match self.key.extra {
            KeyExtra::None => AddrKey::extract(self.key, rec, side, w).parts(),
            KeyExtra::Src | KeyExtra::Dst => AddrPairKey::extract(self.key, rec, side, w).parts(),
            KeyExtra::Sport | KeyExtra::Dport | KeyExtra::Proto => {
                AddrPortKey::extract(self.key, rec, side, w).parts()
            }
        }
    }

    /// Whether each flow updates one key: not a `host` key (two ends), no hopping windows.
    #[inline]
    pub fn one_key(&self) -> bool {
        self.window_ms == self.step_ms && self.key.addr != AddrField::Host
    }

    /// How many keys one flow updates: two for `host` keys (both ends), else one.
    #[inline]
    pub fn sides(&self) -> u8 {
        if self.key.addr == AddrField::Host {
            2
        } else {
            1
        }
    }
}

/// A rule's table, whichever key and state types it needs.
pub enum RuleTable<C: DistinctCounter, M: Meta = Seen> {
    AddrSum(Split<V4Key, AddrKey, SumState<M>>),
    AddrDistinct(Split<V4Key, AddrKey, DistinctState<C, M>>),
    WindowSum(Table<AddrKey, SumState<M>>),
    WindowDistinct(Table<AddrKey, DistinctState<C, M>>),
    WindowPortSum(Table<AddrPortKey, SumState<M>>),
    WindowPortDistinct(Table<AddrPortKey, DistinctState<C, M>>),
    WindowPairSum(Table<AddrPairKey, SumState<M>>),
    WindowPairDistinct(Table<AddrPairKey, DistinctState<C, M>>),
    PortSum(Split<V4PortKey, AddrPortKey, SumState<M>>),
    PortDistinct(Split<V4PortKey, AddrPortKey, DistinctState<C, M>>),
    PairSum(Split<V4PairKey, AddrPairKey, SumState<M>>),
    PairDistinct(Split<V4PairKey, AddrPairKey, DistinctState<C, M>>),
}

macro_rules! each_table {
    ($self:expr, $t:ident => $body:expr) => {
        match $self {
            RuleTable::AddrSum($t) => $body,
            RuleTable::AddrDistinct($t) => $body,
            RuleTable::WindowSum($t) => $body,
            RuleTable::WindowDistinct($t) => $body,
            RuleTable::WindowPortSum($t) => $body,
            RuleTable::WindowPortDistinct($t) => $body,
            RuleTable::WindowPairSum($t) => $body,
            RuleTable::WindowPairDistinct($t) => $body,
            RuleTable::PortSum($t) => $body,
            RuleTable::PortDistinct($t) => $body,
            RuleTable::PairSum($t) => $body,
            RuleTable::PairDistinct($t) => $body,
        }
    };
}

impl<C: DistinctCounter, M: Meta> RuleTable<C, M> {
    pub fn new(rule: &CompiledRule) -> RuleTable<C, M> {
        let distinct = rule.count.is_distinct();
        // Narrow keys hold no window: a rule with windows keeps every key in the wide form.
        let windows = rule.window_ms != 0;
        match (rule.key.extra, distinct, windows) {
            (KeyExtra::None, false, false) => RuleTable::AddrSum(Split::default()),
            (KeyExtra::None, true, false) => RuleTable::AddrDistinct(Split::default()),
            (KeyExtra::None, false, true) => RuleTable::WindowSum(Table::default()),
            (KeyExtra::None, true, true) => RuleTable::WindowDistinct(Table::default()),
            (KeyExtra::Src | KeyExtra::Dst, false, false) => RuleTable::PairSum(Split::default()),
            (KeyExtra::Src | KeyExtra::Dst, true, false) => {
                RuleTable::PairDistinct(Split::default())
            }
            (KeyExtra::Src | KeyExtra::Dst, false, true) => {
                RuleTable::WindowPairSum(Table::default())
            }
            (KeyExtra::Src | KeyExtra::Dst, true, true) => {
                RuleTable::WindowPairDistinct(Table::default())
            }
            (_, false, false) => RuleTable::PortSum(Split::default()),
            (_, true, false) => RuleTable::PortDistinct(Split::default()),
            (_, false, true) => RuleTable::WindowPortSum(Table::default()),
            (_, true, true) => RuleTable::WindowPortDistinct(Table::default()),
        }
    }

    /// Apply routed updates of this table's rule (`refs` all name it).
    pub fn apply(&mut self, rule: &CompiledRule, records: &[FlowRecord], refs: &[Ref]) {
        each_table!(self, t => t.apply(rule, records, refs))
    }

    /// Apply refs of keys that already have an entry; the others are dropped (see [`super::admit`]).
    pub fn apply_existing(&mut self, rule: &CompiledRule, records: &[FlowRecord], refs: &[Ref]) {
        each_table!(self, t => t.apply_existing(rule, records, refs))
    }

    /// Union with the same rule's table from another shard, file, run or machine.
    pub fn merge(&mut self, other: RuleTable<C, M>) {
        match (self, other) {
            (RuleTable::AddrSum(a), RuleTable::AddrSum(b)) => a.merge(b),
            (RuleTable::AddrDistinct(a), RuleTable::AddrDistinct(b)) => a.merge(b),
            (RuleTable::WindowSum(a), RuleTable::WindowSum(b)) => a.merge(b),
            (RuleTable::WindowDistinct(a), RuleTable::WindowDistinct(b)) => a.merge(b),
            (RuleTable::WindowPortSum(a), RuleTable::WindowPortSum(b)) => a.merge(b),
            (RuleTable::WindowPortDistinct(a), RuleTable::WindowPortDistinct(b)) => a.merge(b),
            (RuleTable::WindowPairSum(a), RuleTable::WindowPairSum(b)) => a.merge(b),
            (RuleTable::WindowPairDistinct(a), RuleTable::WindowPairDistinct(b)) => a.merge(b),
            (RuleTable::PortSum(a), RuleTable::PortSum(b)) => a.merge(b),
            (RuleTable::PortDistinct(a), RuleTable::PortDistinct(b)) => a.merge(b),
            (RuleTable::PairSum(a), RuleTable::PairSum(b)) => a.merge(b),
            (RuleTable::PairDistinct(a), RuleTable::PairDistinct(b)) => a.merge(b),
            // Tables are built from the same rule list, so kinds always agree.
            _ => unreachable!("merging tables of different rules"),
        }
    }

    /// Keys whose count is above the threshold.
    pub fn over(&mut self, above: u64, out: &mut Vec<Counted>) {
        each_table!(self, t => t.collect(|v, _| v.value > above, out))
    }

    /// Keys whose count and admission epoch `keep` accepts.
    pub fn select(&mut self, keep: &dyn Fn(&Estimate, u32) -> bool, out: &mut Vec<Counted>) {
        each_table!(self, t => t.collect(|v, e| keep(v, e), out))
    }

    /// Every key with its count (for comparisons of backends).
    pub fn all(&mut self, out: &mut Vec<Counted>) {
        each_table!(self, t => t.collect(|_, _| true, out))
    }

    /// Stamp keys admitted from now on with admission epoch `epoch`.
    pub fn set_epoch(&mut self, epoch: u32) {
        each_table!(self, t => t.set_epoch(epoch))
    }

    /// Take out the keys whose hash `keep` refuses, freeing their entries' counters; how many went.
    pub fn evict(&mut self, keep: &dyn Fn(u64) -> bool) -> usize {
        each_table!(self, t => t.evict(keep))
    }

    /// Every entry with its key, admission epoch, what was seen and its count, in table order (for saved
    /// states, after the scan).
    pub fn each_entry(&self, each: &mut EachEntry<'_, C>) {
        each_table!(self, t => t.each_entry(each))
    }

    pub fn len(&self) -> usize {
        each_table!(self, t => t.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What the table holds, for `scan --stats`.
    pub fn footprint(&self) -> Footprint {
        each_table!(self, t => t.footprint())
    }

    /// Bytes of the slot arrays alone (constant time, unlike [`Self::footprint`]).
    pub fn slot_bytes(&self) -> usize {
        each_table!(self, t => t.slot_bytes())
    }

    /// Bytes of the slot arrays and the counters' heaps, in constant time: what the memory budget watches.
    pub fn held_bytes(&self) -> usize {
        each_table!(self, t => t.held_bytes())
    }

    /// Bytes the slot arrays add when `refs` are applied (0 when they have room).
    pub fn growth_bytes(&self, rule: &CompiledRule, records: &[FlowRecord], refs: &[Ref]) -> usize {
        each_table!(self, t => t.growth_bytes(rule, records, refs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(first: u64, last: u64) -> FlowRecord {
        FlowRecord {
            first_ms: first,
            last_ms: last,
            ..Default::default()
        }
    }

    #[test]
    fn seen_covers_every_flow_in_any_order() {
        let mut a = Seen::default();
        a.add(&rec(5_000, 6_000));
        a.add(&rec(1_000, 2_000));
        // An exporter wrote an end before the start: the flow still counts at its start.
        a.add(&rec(9_000, 8_000));
        assert_eq!((a.first_ms(), a.last_ms(), a.flows()), (1_000, 9_000, 3));
        let mut b = Seen::default();
        b.add(&rec(500, 700));
        b.merge(&a);
        assert_eq!((b.first_ms(), b.last_ms(), b.flows()), (500, 9_000, 4));
        let mut e = Seen::default();
        e.merge(&Seen::default());
        assert_eq!((e.first_ms(), e.last_ms(), e.flows()), (0, 0, 0));
        assert_eq!(std::mem::size_of::<Seen>(), 24);
    }

    /// Both tables of a split rule count, and their union is what one table of wide keys would hold: for address
    /// keys, address-and-port keys and address pairs, with IPv4 and IPv6 on either end.
    #[test]
    fn split_tables_count_ipv4_and_ipv6_keys() {
        use crate::engine::KeyValue;
        use crate::record::Addr;
        use crate::sketch::Compact;
        use std::collections::{HashMap, HashSet};
        let mut records = Vec::new();
        for i in 0..6_000u32 {
            let addr = |n: u32, v6: bool| {
                if v6 {
                    Addr::v6(0x2001_0db8 << 96 | n as u128)
                } else {
                    Addr::v4(0x0a00_0000 | n)
                }
            };
            records.push(FlowRecord {
                src: addr(i % 89, i % 3 == 0),
                dst: addr(1_000 + i % 31, i % 5 == 0),
                src_port: (i % 7) as u16,
                dst_port: (i % 1_000) as u16,
                ..Default::default()
            });
        }
        for (spec, want_kind) in [("src", "addr"), ("src,sport", "port"), ("src,dst", "pair")] {
            let rule = CompiledRule::plain(
                spec.parse().unwrap(),
                CountSpec::Distinct(DistinctField::Dport.into()),
                0,
            );
            // The truth, from the record fields directly.
            let mut want: HashMap<(Addr, KeyValue), HashSet<u16>> = HashMap::new();
            for r in &records {
                let extra = match want_kind {
                    "addr" => KeyValue::None,
                    "port" => KeyValue::Port(r.src_port),
                    _ => KeyValue::Addr(r.dst),
                };
                want.entry((r.src, extra)).or_default().insert(r.dst_port);
            }
            let refs: Vec<Ref> = (0..records.len())
                .map(|i| Ref {
                    hash: rule.key_hash(&records[i], 0, 0),
                    idx: i as u32,
                    rule: 0,
                    side: 0,
                    hop: 0,
                })
                .collect();
            let mut table = RuleTable::<Compact>::new(&rule);
            let kind = match table {
                RuleTable::AddrDistinct(_) => "addr",
                RuleTable::PortDistinct(_) => "port",
                RuleTable::PairDistinct(_) => "pair",
                _ => "other",
            };
            assert_eq!(kind, want_kind);
            // In two calls, so the second finds keys the first inserted.
            table.apply(&rule, &records, &refs[..3_000]);
            table.apply(&rule, &records, &refs[3_000..]);
            assert_eq!(table.len(), want.len(), "{spec}");
            let mut got = Vec::new();
            table.all(&mut got);
            assert_eq!(got.len(), want.len(), "{spec}");
            for c in got {
                let truth = &want[&(c.key.addr, c.key.extra)];
                assert_eq!(c.value.value as usize, truth.len(), "{spec} {:?}", c.key);
            }
        }
    }

    /// A record stamped 0 beside today's, or two months of captures: the times are the ones seen.
    #[test]
    fn spans_of_any_length_keep_their_times() {
        let mut a = Seen::default();
        a.add(&rec(0, 0));
        let today = 1_764_000_000_000;
        a.add(&rec(today, today + 5));
        assert_eq!((a.first_ms(), a.last_ms()), (0, today + 5));
        let mut b = Seen::default();
        b.add(&rec(today + 60 * 86_400_000, today + 60 * 86_400_000));
        b.merge(&a);
        assert_eq!(
            (b.first_ms(), b.last_ms(), b.flows()),
            (0, today + 60 * 86_400_000, 3)
        );
    }

    /// A hopping window of a minute every 10 s: a flow falls in the six windows that cover its start (fewer right
    /// after time 0), and each of them does cover it.
    #[test]
    fn hopping_windows_hold_every_flow_that_starts_in_them() {
        let rule = CompiledRule {
            key: crate::rules::KeySpec::SRC,
            count: CountSpec::Flows,
            window_ms: 60_000,
            step_ms: 10_000,
            above: 0,
            cut: false,
            sample_from: u64::MAX,
            sample_keys: 0,
        };
        let today = 1_764_000_125_000;
        let r = rec(today, today);
        assert_eq!(rule.hops(&r), 6);
        for hop in 0..6 {
            let start = rule.window_of(&r, hop) * 10_000;
            assert!(start <= today && today < start + 60_000, "hop {hop}");
        }
        assert_eq!(rule.window_of(&r, 0), today / 10_000);
        assert_eq!(rule.hops(&rec(5_000, 5_000)), 1);
        assert_eq!(rule.hops(&rec(25_000, 25_000)), 3);
        let tumbling = CompiledRule {
            step_ms: 60_000,
            ..rule
        };
        assert_eq!(tumbling.hops(&r), 1);
        assert_eq!(tumbling.window_of(&r, 0), today / 60_000);
        let none = CompiledRule {
            window_ms: 0,
            step_ms: 0,
            ..rule
        };
        assert_eq!((none.hops(&r), none.window_of(&r, 0)), (1, 0));
    }

    /// A 250 ms window over today's times has an index past 2^32; it must not wrap (it gave 1992).
    #[test]
    fn short_windows_keep_todays_index() {
        let rule = CompiledRule {
            key: crate::rules::KeySpec::SRC,
            count: CountSpec::Flows,
            window_ms: 250,
            step_ms: 250,
            above: 0,
            cut: false,
            sample_from: u64::MAX,
            sample_keys: 0,
        };
        let today = 1_764_000_000_123;
        assert_eq!(rule.window_of(&rec(today, today), 0), today / 250);
        assert!(rule.window_of(&rec(today, today), 0) > u32::MAX as u64);
    }
}
