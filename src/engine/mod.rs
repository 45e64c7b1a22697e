//! The engine: runs rules over inputs on worker threads and returns per-rule counts.
//!
//! Inputs are opened in order on the calling thread (opening is cheap: a header and a block index) and their
//! chunks are handed to `threads` workers, which decode in parallel. Each key lives in exactly one worker's shard,
//! chosen by its fixed-seed hash, so no table is ever locked or merged on the hot path; shards are combined only
//! when results from several runs must be added up ([`Shard::merge`]).

pub mod admit;
mod errors;
pub mod evidence;
pub mod key;
mod region;
pub mod shard;
mod slots;
pub mod table;
pub mod verify;
mod worker;

pub use key::{KeyParts, KeyValue};
pub use shard::{RuleCounts, Shard, Sizing};
pub use table::{CompiledRule, Counted, EntryValue, Footprint, Meta, NoSeen, Seen};

use crate::formats::{Decoder, Lost};
use crate::rules::Rule;
use crate::sketch::DistinctCounter;
pub use errors::ErrorLog;
pub use errors::MAX_ERRORS_PER_INPUT;
use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
pub use worker::{copy_named, name_records, Job, Router};
use worker::{Msg, Returned, Wiring};

/// An opened input: its name for messages, and the decoder over its bytes.
pub struct Input {
    pub name: String,
    pub decoder: Box<dyn Decoder>,
    /// Its size in bytes, for progress (0 when not known: a stream).
    pub bytes: u64,
}

/// What a pass has done so far, for a progress display on another thread. Workers add to it with relaxed atomic
/// adds: the flows of each batch, and the bytes of each chunk and the inputs whose last chunk was decoded once per
/// chunk; nothing per record.
#[derive(Debug, Default)]
pub struct Done {
    pub flows: AtomicU64,
    /// Input bytes decoded: each chunk counts its share of its input's size.
    pub bytes: AtomicU64,
    /// Inputs whose every chunk was decoded, or that could not be opened.
    pub inputs: AtomicU64,
}

impl Done {
    /// Back to zero, for the next pass.
    pub fn reset(&self) {
        self.flows.store(0, Ordering::Relaxed);
        self.bytes.store(0, Ordering::Relaxed);
        self.inputs.store(0, Ordering::Relaxed);
    }
}

/// Hand every chunk of every input to the workers (`handles`) as a job, in order, then wait for them and return
/// what each gave back; inputs that could not be opened go to `errors` (and count as done). Both passes run
/// their workers this way.
fn feed_and_join<T, I>(
    handles: Vec<std::thread::ScopedJoinHandle<'_, T>>,
    inputs: I,
    jobs: crossbeam::channel::Sender<Job>,
    stats: &mut ScanStats,
    errors: &mut dyn FnMut(InputError),
    done: &Done,
) -> Vec<T>
where
    I: IntoIterator<Item = Result<Input, InputError>>,
{
    for input in inputs {
        stats.inputs += 1;
        match input {
            Ok(input) => {
                let chunks = input.decoder.chunks();
                if chunks == 0 {
                    done.bytes.fetch_add(input.bytes, Ordering::Relaxed);
                    done.inputs.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let input = Arc::new(input);
                let left = Arc::new(AtomicUsize::new(chunks));
                for chunk in 0..chunks {
                    let job = Job {
                        input: input.clone(),
                        chunk,
                        left: left.clone(),
                    };
                    if jobs.send(job).is_err() {
                        break;
                    }
                }
            }
            Err(e) => {
                done.inputs.fetch_add(1, Ordering::Relaxed);
                errors(e)
            }
        }
    }
    drop(jobs);
    handles
        .into_iter()
        .map(|h| match h.join() {
            Ok(out) => out,
            Err(panic) => std::panic::resume_unwind(panic),
        })
        .collect()
}

/// A problem with one input; the scan goes on with the others.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct InputError {
    pub name: String,
    /// What went wrong, with the offset where the format knows it.
    pub message: String,
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

/// How to run a scan.
#[derive(Debug, Clone)]
pub struct ScanOptions {
    /// Worker threads (at least 1).
    pub threads: usize,
    /// Jobs queued ahead of the workers; bounds memory when inputs are read into buffers.
    pub queue: usize,
    /// Admission fraction `a`: a key gets a table entry once its bound reaches `a` times its rule's threshold
    /// (0 keeps every key).
    pub admit: f64,
    /// Bytes the admission sketches and tables may hold together (see [`Sizing::plan`]).
    pub memory: usize,
}

/// The most keys one pass keeps a sample of flows of for their evidence, over all rules and shards (about 400
/// bytes each: [`evidence::Sample`]), and the fewest each rule's table of a shard may keep.
pub const SAMPLE_KEYS: usize = 16_384;
pub const MIN_SAMPLE_KEYS: usize = 32;

/// The default admission fraction (`--admit`).
pub const DEFAULT_ADMIT: f64 = 0.1;
/// The default memory budget (`--memory`): the built-in rules stay well under 512 MB on any input.
pub const DEFAULT_MEMORY: usize = 256 << 20;

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            queue: 64,
            admit: DEFAULT_ADMIT,
            memory: DEFAULT_MEMORY,
        }
    }
}

/// Totals of a scan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Inputs given, and those that had at least one error.
    pub inputs: u64,
    pub inputs_failed: u64,
    pub flows: u64,
    /// Records read that are not flows, passed over by design (exporter info, extension maps, options data).
    pub skipped: u64,
    /// Flow data the readers could not read, by reason (any of it makes the scan's exit code 2).
    pub lost: Lost,
}

/// The result of a scan: one shard per worker, totals, and the problems met.
pub struct ScanResult<C: DistinctCounter, M: Meta = Seen> {
    pub shards: Vec<Shard<C, M>>,
    pub stats: ScanStats,
    pub errors: Vec<InputError>,
}

impl<C: DistinctCounter, M: Meta> ScanResult<C, M> {
    /// Keys tracked over all rules and shards.
    pub fn keys(&self) -> usize {
        self.shards.iter().map(Shard::keys).sum()
    }

    /// What rule `rule`'s tables hold, over all shards.
    pub fn footprint(&self, rule: usize) -> Footprint {
        self.shards
            .iter()
            .map(|s| s.footprint(rule))
            .fold(Footprint::default(), Footprint::plus)
    }

    /// The counts of rule `rule` above `above`, over all shards.
    pub fn over(&mut self, rule: usize, above: u64) -> Vec<Counted> {
        self.shards
            .iter_mut()
            .flat_map(|s| s.over(rule, above))
            .collect()
    }

    /// The counts of rule `rule` that `keep` accepts given each count and the most its table can have missed
    /// of it, over all shards.
    pub fn select(
        &mut self,
        rule: usize,
        keep: &dyn Fn(&crate::sketch::Estimate, u64) -> bool,
    ) -> Vec<Counted> {
        self.shards
            .iter_mut()
            .flat_map(|s| s.select(rule, keep))
            .collect()
    }

    /// Every count of rule `rule`, over all shards.
    pub fn all(&mut self, rule: usize) -> Vec<Counted> {
        self.shards.iter_mut().flat_map(|s| s.all(rule)).collect()
    }

    /// What rule `rule` did over all shards.
    pub fn counts(&self, rule: usize) -> RuleCounts {
        self.shards
            .iter()
            .map(|s| s.counts[rule])
            .fold(RuleCounts::default(), |a, b| RuleCounts {
                updates: a.updates + b.updates,
                admitted: a.admitted + b.admitted,
                raises: a.raises.max(b.raises),
                evicted: a.evicted + b.evicted,
                over_budget: a.over_budget || b.over_budget,
            })
    }

    /// The largest admission threshold `A` of `rule` in any shard (0 when every key was admitted): the most of
    /// a key's measure the tables can have missed is `A - 1`.
    pub fn admit_at(&self, rule: usize) -> u64 {
        self.shards
            .iter()
            .map(|s| s.admit_at(rule))
            .max()
            .unwrap_or(0)
    }

    /// Bytes of rule `rule`'s admission sketches over all shards.
    pub fn admission_bytes(&self, rule: usize) -> usize {
        self.shards
            .iter()
            .filter_map(|s| s.fronts[rule].as_ref())
            .map(|f| f.bytes())
            .sum()
    }

    /// An estimate of the distinct keys rule `rule` saw, from its admission sketches (the table's count when it
    /// has none); `None` when a sketch is too full to say. Never more than the updates it counted.
    pub fn keys_seen(&self, rule: usize) -> Option<u64> {
        let mut total = 0.0;
        for s in &self.shards {
            total += match &s.fronts[rule] {
                Some(f) => f.keys_estimate()?,
                None => s.tables[rule].len() as f64,
            };
        }
        Some((total.round() as u64).min(self.counts(rule).updates))
    }

    /// Fold all shards into one (each key lives in one shard, so this only concatenates tables).
    pub fn into_single(self, rules: &[CompiledRule]) -> Shard<C, M> {
        let mut acc = Shard::new(rules);
        for s in self.shards {
            acc.merge(s);
        }
        acc
    }
}

/// Scan `inputs` with `rules`, keeping each key's flows and times ([`Seen`]). `progress` counts flows, bytes and
/// inputs done so far, for a progress display.
pub fn scan<C, I>(
    rules: &[Rule],
    inputs: I,
    options: &ScanOptions,
    progress: &Done,
) -> ScanResult<C>
where
    C: DistinctCounter,
    I: IntoIterator<Item = Result<Input, InputError>>,
{
    scan_keeping::<C, Seen, I>(rules, inputs, options, progress)
}

/// [`scan`], keeping `M` of each key besides its count ([`NoSeen`] when a verify pass will report the findings).
pub fn scan_keeping<C, M, I>(
    rules: &[Rule],
    inputs: I,
    options: &ScanOptions,
    progress: &Done,
) -> ScanResult<C, M>
where
    C: DistinctCounter,
    M: Meta,
    I: IntoIterator<Item = Result<Input, InputError>>,
{
    let threads = options.threads.max(1);
    let mut compiled: Vec<CompiledRule> = rules.iter().map(CompiledRule::new).collect();
    // One pass (flows kept: no verify pass will count them again) samples the flows of keys that come near a
    // threshold, for their evidence: SAMPLE_KEYS at most over the scan.
    if M::default().flows().is_some() {
        let per_table = (SAMPLE_KEYS / (rules.len() * threads).max(1)).max(MIN_SAMPLE_KEYS);
        compiled = compiled
            .into_iter()
            .map(|c| c.sampling(per_table))
            .collect();
    }
    let sizing = Sizing::plan(&compiled, threads, options.admit, options.memory);
    let (job_tx, job_rx) = crossbeam::channel::bounded::<Job>(options.queue.max(1));
    let (inbox_tx, inbox_rx): (Vec<_>, Vec<_>) = (0..threads)
        .map(|_| crossbeam::channel::bounded::<Msg>(64))
        .unzip();
    let (return_tx, return_rx): (Vec<_>, Vec<_>) = (0..threads)
        .map(|_| crossbeam::channel::bounded::<Returned>(256))
        .unzip();
    let wiring = Wiring {
        rules,
        compiled: &compiled,
        sizing: &sizing,
        jobs: job_rx,
        inboxes: &inbox_tx,
        returns: &return_tx,
        progress,
        any_filter: rules.iter().any(|r| !r.filter.is_any()),
    };
    let mut stats = ScanStats::default();
    let mut errors = ErrorLog::default();
    let outputs = std::thread::scope(|scope| {
        let handles: Vec<_> = inbox_rx
            .into_iter()
            .zip(return_rx)
            .enumerate()
            .map(|(me, (inbox, returned))| {
                let wiring = &wiring;
                scope.spawn(move || worker::run::<C, M>(me, wiring, inbox, returned))
            })
            .collect();
        feed_and_join(
            handles,
            inputs,
            job_tx,
            &mut stats,
            &mut |e| errors.push(e),
            progress,
        )
    });
    let mut shards = Vec::with_capacity(outputs.len());
    for out in outputs {
        stats.flows += out.stats.flows;
        stats.skipped += out.stats.skipped;
        stats.lost += out.stats.lost;
        errors.merge(out.errors);
        shards.push(out.shard);
    }
    // Errors arrive from several workers in any order: at most a few per input, the same ones every run.
    let errors = errors.into_list();
    let mut failed: Vec<&str> = errors.iter().map(|e| e.name.as_str()).collect();
    failed.dedup();
    stats.inputs_failed = failed.len() as u64;
    ScanResult {
        shards,
        stats,
        errors,
    }
}
