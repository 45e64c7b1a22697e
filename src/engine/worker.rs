//! Worker threads: each decodes chunks, routes every matching record to the shard that owns its key, and applies
//! the updates routed to its own shard.
//!
//! A peer gets a copy of just the records its keys need, with 16-byte [`Ref`]s pointing into it; buffers go back
//! to the sender to be reused. Channels are bounded. A worker applies its inbox after every batch it routes, and
//! one that finds a peer's inbox full applies its own inbox while it waits, so no two workers can block on each
//! other.

use super::errors::ErrorLog;
use super::shard::{shard_of, Ref, Shard, Sizing};
use super::table::{CompiledRule, Meta};
use super::{Done, Input, InputError};
use crate::formats::{ChunkStats, Decoder};
use crate::record::FlowRecord;
use crate::rules::filter::{Columns, Scratch};
use crate::rules::Rule;
use crate::sketch::DistinctCounter;
use crossbeam::channel::{Receiver, Select, Sender, TrySendError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A chunk of an input to decode.
pub struct Job {
    pub input: Arc<Input>,
    pub chunk: usize,
    /// Chunks of the input not yet decoded (shared by its jobs).
    pub left: Arc<AtomicUsize>,
}

impl Job {
    /// Decode the chunk, handing its records to `out` in batches, and count it done. An error names the input;
    /// the flows handed out before it were counted by `out`, so the stats count them too.
    pub fn decode(
        &self,
        scratch: &mut Vec<u8>,
        progress: &Done,
        out: &mut dyn FnMut(&[FlowRecord]),
    ) -> (ChunkStats, Option<InputError>) {
        let decoder: &dyn Decoder = self.input.decoder.as_ref();
        let mut handed = 0u64;
        let decoded = decoder.decode_chunk(self.chunk, scratch, &mut |batch| {
            handed += batch.len() as u64;
            out(batch)
        });
        self.done(progress);
        match decoded {
            Ok(s) => (s, None),
            Err(e) => {
                let stats = ChunkStats {
                    flows: handed,
                    ..ChunkStats::default()
                };
                let error = InputError {
                    name: self.input.name.clone(),
                    message: e.to_string(),
                };
                (stats, Some(error))
            }
        }
    }

    /// Count the chunk done: its share of the input's bytes, and the input when it was the last.
    fn done(&self, progress: &Done) {
        let (size, n, i) = (
            self.input.bytes as u128,
            self.input.decoder.chunks().max(1) as u128,
            self.chunk as u128,
        );
        let share = size * (i + 1) / n - size * i / n;
        progress.bytes.fetch_add(share as u64, Ordering::Relaxed);
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            progress.inputs.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// What travels between workers.
pub enum Msg {
    /// Updates for the receiver's shard, pointing into a batch of records; `from` gets the buffers back.
    Batch {
        from: usize,
        records: Vec<FlowRecord>,
        refs: Vec<Ref>,
    },
    /// The sender has decoded its last chunk and will send nothing more.
    Done,
}

/// What a worker hands back when all input is consumed.
pub struct WorkerOutput<C: DistinctCounter, M: Meta> {
    pub shard: Shard<C, M>,
    pub stats: ChunkStats,
    pub errors: ErrorLog,
}

/// Everything a worker shares with the others.
pub struct Wiring<'a> {
    pub rules: &'a [Rule],
    pub compiled: &'a [CompiledRule],
    pub sizing: &'a Sizing,
    pub jobs: Receiver<Job>,
    pub inboxes: &'a [Sender<Msg>],
    /// Where each worker gets its message buffers back once the receiver has applied them.
    pub returns: &'a [Sender<Returned>],
    pub progress: &'a Done,
    /// Whether any rule tests records (else no batch needs its filter columns).
    pub any_filter: bool,
}

/// Buffers handed back to the worker that filled them.
pub type Returned = (Vec<FlowRecord>, Vec<Ref>);

struct Worker<'a, C: DistinctCounter, M: Meta> {
    me: usize,
    wiring: &'a Wiring<'a>,
    inbox: Receiver<Msg>,
    shard: Shard<C, M>,
    outboxes: Vec<Vec<Ref>>,
    dones: usize,
    /// Buffers back from peers, reused so the exchange does not allocate (or free across threads) per batch.
    returned: Receiver<Returned>,
    spare_records: Vec<Vec<FlowRecord>>,
    spare_refs: Vec<Vec<Ref>>,
    /// Per record of the batch being routed, where it went in the copy for a peer (`u32::MAX`: not copied).
    copied: Vec<u32>,
    router: Router,
}

impl<C: DistinctCounter, M: Meta> Worker<'_, C, M> {
    fn handle(&mut self, msg: Msg) {
        match msg {
            Msg::Batch {
                from,
                records,
                mut refs,
            } => {
                self.shard.apply(self.wiring.compiled, &records, &refs);
                refs.clear();
                // A full return queue only means the sender has spares enough: drop these.
                let _ = self.wiring.returns[from].try_send((records, refs));
            }
            Msg::Done => self.dones += 1,
        }
    }

    fn send(&mut self, to: usize, mut msg: Msg) {
        loop {
            match self.wiring.inboxes[to].try_send(msg) {
                Ok(()) => return,
                Err(TrySendError::Full(m)) => msg = m,
                // Receivers live until every worker is done, so this cannot happen; dropping is the only option.
                Err(TrySendError::Disconnected(_)) => return,
            }
            // The peer's inbox is full: sleep until it has room or our own inbox has work, whichever comes
            // first. Spinning here (try, yield, try) cost a quarter of the CPU time of a 2-thread scan.
            let (inbox, peer) = (self.inbox.clone(), self.wiring.inboxes[to].clone());
            let mut sel = Select::new();
            let recv = sel.recv(&inbox);
            sel.send(&peer);
            let oper = sel.select();
            if oper.index() == recv {
                if let Ok(m) = oper.recv(&inbox) {
                    self.handle(m);
                }
            } else {
                match oper.send(&peer, msg) {
                    Ok(()) => return,
                    Err(e) => msg = e.into_inner(),
                }
            }
        }
    }

    /// Route one decoded batch: matching rules produce refs, grouped by owning shard.
    fn route(&mut self, batch: &[FlowRecord]) {
        let n = self.wiring.inboxes.len();
        let compiled = self.wiring.compiled;
        self.router.route(
            self.wiring.rules,
            compiled,
            self.wiring.any_filter,
            batch,
            &mut self.outboxes,
            |_, _| true,
        );
        while let Ok((records, refs)) = self.returned.try_recv() {
            self.spare_records.push(records);
            self.spare_refs.push(refs);
        }
        for to in 0..n {
            if self.outboxes[to].is_empty() {
                continue;
            }
            if to == self.me {
                let refs = std::mem::take(&mut self.outboxes[to]);
                self.shard.apply(compiled, batch, &refs);
                self.outboxes[to] = refs;
                self.outboxes[to].clear();
            } else {
                // Each record the refs name is copied once (several rules may name it) and the refs renumbered.
                let mut records = self.spare_records.pop().unwrap_or_default();
                records.clear();
                let spare = self.spare_refs.pop().unwrap_or_default();
                let mut refs = std::mem::replace(&mut self.outboxes[to], spare);
                copy_named(batch, &mut refs, &mut records, &mut self.copied);
                self.send(
                    to,
                    Msg::Batch {
                        from: self.me,
                        records,
                        refs,
                    },
                );
            }
        }
        self.wiring
            .progress
            .flows
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        // Apply what peers sent while this batch was routed: inboxes stay short, so senders rarely wait.
        while let Ok(msg) = self.inbox.try_recv() {
            self.handle(msg);
        }
    }
}

/// Copy the records of `batch` that `refs` name into `records`, each once (several rules may name it), and
/// renumber the refs to point there: what a peer needs of a batch. `copied` is working space.
#[inline]
pub fn copy_named(
    batch: &[FlowRecord],
    refs: &mut [Ref],
    records: &mut Vec<FlowRecord>,
    copied: &mut Vec<u32>,
) {
    name_records(batch, refs, copied, |r| records.push(*r));
}

/// Hand each record of `batch` that `refs` name to `each`, once and in the order the refs first name them, and
/// renumber the refs to that order. `copied` is working space.
#[inline]
pub fn name_records(
    batch: &[FlowRecord],
    refs: &mut [Ref],
    copied: &mut Vec<u32>,
    mut each: impl FnMut(&FlowRecord),
) {
    copied.clear();
    copied.resize(batch.len(), u32::MAX);
    let mut named = 0;
    for r in refs {
        let at = &mut copied[r.idx as usize];
        if *at == u32::MAX {
            *at = named;
            named += 1;
            each(&batch[r.idx as usize]);
        }
        r.idx = *at;
    }
}

/// Turns decoded batches into refs by owning shard; holds the filters' working buffers between batches.
#[derive(Default)]
pub struct Router {
    /// The records of the batch a rule's filter selects, one bit each, and the filter's working buffers.
    selected: Vec<u64>,
    filter_scratch: Scratch,
    /// The batch's fields filters test most, copied once for all rules.
    columns: Columns,
}

impl Router {
    /// Route one decoded batch: every key each matching record updates becomes a [`Ref`] in the outbox of the
    /// shard that owns it (of `outboxes.len()`), grouped by rule. `keep(rule, hash)` may pass over keys (the
    /// verify pass of a cluster keeps those its candidates may hold); the first pass keeps every one.
    #[inline]
    pub fn route<K: Fn(usize, u64) -> bool>(
        &mut self,
        rules: &[Rule],
        compiled: &[CompiledRule],
        any_filter: bool,
        batch: &[FlowRecord],
        outboxes: &mut [Vec<Ref>],
        keep: K,
    ) {
        let n = outboxes.len();
        // Rule by rule over the batch: one filter program runs on a thousand records at a time, and each shard's
        // refs come out grouped by rule, as the tables apply them.
        if any_filter {
            self.columns.load(batch);
        }
        for (ri, rule) in rules.iter().enumerate() {
            let c = &compiled[ri];
            // One ref per key the flow updates: per end for `host` keys, per window for hopping windows. Most
            // rules update one, without the loops.
            let one = c.one_key();
            let keep = &keep;
            let mut emit = |i: usize| {
                let rec = &batch[i];
                if one {
                    let hash = c.key_hash(rec, 0, 0);
                    if keep(ri, hash) {
                        outboxes[shard_of(hash, n)].push(Ref {
                            hash,
                            idx: i as u32,
                            rule: ri as u16,
                            side: 0,
                            hop: 0,
                        });
                    }
                    return;
                }
                for hop in 0..c.hops(rec) {
                    for side in 0..c.sides() {
                        let hash = c.key_hash(rec, side, hop);
                        if keep(ri, hash) {
                            outboxes[shard_of(hash, n)].push(Ref {
                                hash,
                                idx: i as u32,
                                rule: ri as u16,
                                side,
                                hop,
                            });
                        }
                    }
                }
            };
            if rule.filter.is_any() {
                (0..batch.len()).for_each(&mut emit);
                continue;
            }
            rule.filter.select(
                batch,
                &self.columns,
                &mut self.selected,
                &mut self.filter_scratch,
            );
            for (w, &word) in self.selected.iter().enumerate() {
                let mut bits = word;
                while bits != 0 {
                    emit(w * 64 + bits.trailing_zeros() as usize);
                    bits &= bits - 1;
                }
            }
        }
    }
}

/// Run worker `me` until every input is consumed and every peer is done.
pub fn run<C: DistinctCounter, M: Meta>(
    me: usize,
    wiring: &Wiring<'_>,
    inbox: Receiver<Msg>,
    returned: Receiver<Returned>,
) -> WorkerOutput<C, M> {
    let n = wiring.inboxes.len();
    let mut w = Worker::<C, M> {
        me,
        wiring,
        inbox,
        shard: Shard::sized(wiring.compiled, wiring.sizing),
        outboxes: vec![Vec::new(); n],
        dones: 0,
        returned,
        spare_records: Vec::new(),
        spare_refs: Vec::new(),
        copied: Vec::new(),
        router: Router::default(),
    };
    let mut stats = ChunkStats::default();
    let mut errors = ErrorLog::default();
    let mut scratch = Vec::new();
    loop {
        let job = crossbeam::channel::select! {
            recv(w.inbox) -> msg => {
                if let Ok(msg) = msg {
                    w.handle(msg);
                }
                continue;
            }
            recv(wiring.jobs) -> job => match job {
                Ok(job) => job,
                Err(_) => break,
            },
        };
        let (decoded, error) =
            job.decode(&mut scratch, wiring.progress, &mut |batch| w.route(batch));
        stats += decoded;
        if let Some(e) = error {
            errors.push(e);
        }
    }
    for to in 0..n {
        if to != me {
            w.send(to, Msg::Done);
        }
    }
    while w.dones < n - 1 {
        match w.inbox.recv() {
            Ok(msg) => w.handle(msg),
            Err(_) => break,
        }
    }
    WorkerOutput {
        shard: w.shard,
        stats,
        errors,
    }
}
