//! The library's entry point for a whole scan: definitions and a config in, findings with the guarantee they carry
//! out. The command line, `compare`, `demo` and the benchmarks all go through [`Scanner`].
//!
//! A scan is one or two passes over the inputs:
//! 1. **Admission pass.** Every flow is decoded, filtered and routed to the worker that owns its key; a count-min
//!    sketch per rule bounds each key's measure, and only keys whose bound reaches `a` times the threshold get a
//!    table entry ([`crate::engine::admit`]). Memory follows the keys that could be reported, not the traffic.
//! 2. **Verify pass** (files only, on by default). The keys that could be over their threshold are counted again
//!    from every flow, exactly ([`crate::engine::verify`]): findings are then those of exact counting, with exact
//!    values, flows and times.
//!
//! Without the verify pass (`verify: false`, or standard input, which cannot be read twice) findings carry the
//! admission bound instead: a key is reported only when its count is over the threshold, no key at `(1 + a)` times
//! the threshold or more is missed, and a count may lack up to `A - 1` of its flows. docs/ACCURACY.md has the
//! argument.
//!
//! ```
//! use flowsketch::formats::nfcapd::writer::{Compression, NfcapdWriter};
//! use flowsketch::record::{Addr, FlowRecord};
//! use flowsketch::rules::Definitions;
//! use flowsketch::scanner::{ScanConfig, Scanner};
//!
//! // One host probing ten ports of another, written as an nfdump file.
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("nfcapd.202611260300");
//! let mut w = NfcapdWriter::new(std::fs::File::create(&path).unwrap(), Compression::Lz4, "doc").unwrap();
//! for port in 1..=10 {
//!     w.write(&FlowRecord {
//!         src: "10.0.0.9".parse().unwrap(),
//!         dst: "10.0.0.1".parse().unwrap(),
//!         dst_port: port,
//!         proto: 6,
//!         first_ms: 1_764_126_000_000 + port as u64,
//!         ..Default::default()
//!     }).unwrap();
//! }
//! w.finish().unwrap();
//!
//! let rules = Definitions::parse(r#"
//!     [[rule]]
//!     id = "PS"
//!     name = "port scan"
//!     key = "src,dst"
//!     count = "distinct dport"
//!     above = 5
//! "#, "example.toml", None).unwrap();
//! let scan = Scanner::new(&rules, ScanConfig::default()).run(&[path]);
//! assert!(scan.errors.is_empty());
//! assert_eq!(scan.findings.len(), 1);
//! assert_eq!((scan.findings[0].count, scan.findings[0].flows), (10, 10));
//! assert!(scan.guarantee.verified());
//! ```

use crate::cluster::{self, ClusterConfig, ClusterError};
use crate::engine::evidence::Evidence;
use crate::engine::verify::{self, Candidates, Reread};
use crate::engine::{
    self, Counted, Done, Footprint, InputError, KeyParts, Meta, NoSeen, ScanOptions, ScanResult,
    ScanStats, Seen,
};
use crate::formats::Opener;
use crate::input::{self, InputOptions, Source};
pub use crate::report::summary::{Guarantee, OnePassWhy};
use crate::report::summary::{RuleAdmission, Summary};
use crate::report::Finding;
use crate::rules::{CountSpec, Definitions, Rule};
use crate::sketch::datasketches::ExportedSketch;
use crate::sketch::{self, CounterKind, DistinctCounter, Estimate};
use crate::state::{self, InputRecord, SavedCounter, StateMeta};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// How to scan.
#[derive(Debug, Clone)]
pub struct ScanConfig {
    /// Worker threads (at least 1).
    pub threads: usize,
    /// The distinct-count backend of the admission pass.
    pub counter: CounterKind,
    /// Admission fraction `a` in `[0, 1]`: a key gets a table entry once its bound reaches `a` times its rule's
    /// threshold; 0 gives every key an entry.
    pub admit: f64,
    /// Bytes the admission sketches and tables may hold together; admission tightens (never drops keys) to stay
    /// within it.
    pub memory: usize,
    /// Count the candidates again, exactly, when every input can be read twice.
    pub verify: bool,
    /// Top peers, ports and protocols each finding names: of every flow of the key with the verify pass, else of a
    /// sample of its flows after it came near the threshold (at most [`crate::engine::evidence::SAMPLE_SLOTS`]).
    pub evidence: usize,
    /// Work out each rule's keys seen and memory held (a walk over every sketch cell and table entry).
    pub stats: bool,
    pub input: InputOptions,
    /// Hand back the first pass's state ([`Scan::state`]) for `--save-state`: tables then keep flows and times
    /// even when a verify pass follows, so a merge without the inputs can still report.
    pub save_state: bool,
    /// Build each finding's distinct values as a DataSketches HLL sketch ([`Scan::sketches`]; verify pass only).
    pub export_sketches: bool,
}

impl Default for ScanConfig {
    fn default() -> Self {
        let engine = ScanOptions::default();
        ScanConfig {
            threads: engine.threads,
            counter: CounterKind::Compact,
            admit: engine.admit,
            memory: engine.memory,
            verify: true,
            evidence: 5,
            stats: false,
            input: InputOptions::default(),
            save_state: false,
            export_sketches: false,
        }
    }
}

/// What one rule did, for `--stats` and the summary.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RuleStats {
    pub id: String,
    pub above: u64,
    /// Flows the rule's filter matched.
    pub flows: u64,
    /// Keys given a table entry.
    pub keys_admitted: usize,
    /// Updates (one per flow, two for `host` keys) that reached a table, of all the rule routed.
    pub updates_admitted: u64,
    pub updates: u64,
    /// Distinct keys the rule saw (an estimate from its admission sketch when it has one; never more than
    /// `flows` for one-ended keys); `None` when the sketch was too full to say, or without `stats`.
    pub keys_seen: Option<u64>,
    /// The admission threshold `A` in force at the end (0: every key admitted); a key's count may lack up to
    /// `A - 1` of its measure.
    pub admit_at: u64,
    /// Times `A` was doubled to stay within the memory budget.
    pub raises: u32,
    /// The tables outgrew the budget with nothing left to tighten.
    pub over_budget: bool,
    /// Keys taken out of the tables when admission was tightened (their bound was below `A`).
    #[serde(default)]
    pub evicted: u64,
    pub admission_bytes: usize,
    pub tables: Footprint,
    /// Keys the verify pass counted again.
    pub candidates: usize,
}

impl RuleStats {
    /// The stats of a rule whose keys are split between two sets of shards (a cluster's workers): sums, with
    /// the largest threshold in force.
    pub fn plus(mut self, o: &RuleStats) -> RuleStats {
        self.flows += o.flows;
        self.keys_admitted += o.keys_admitted;
        self.updates_admitted += o.updates_admitted;
        self.updates += o.updates;
        self.keys_seen = self.keys_seen.zip(o.keys_seen).map(|(a, b)| a + b);
        self.admit_at = self.admit_at.max(o.admit_at);
        self.raises = self.raises.max(o.raises);
        self.over_budget |= o.over_budget;
        self.evicted += o.evicted;
        self.admission_bytes += o.admission_bytes;
        self.tables = self.tables.plus(o.tables);
        self.candidates += o.candidates;
        self
    }

    /// The admission fraction in force: `A / T` (0 when every key was admitted).
    pub fn admit_fraction(&self) -> f64 {
        if self.admit_at < 2 || self.above == 0 {
            0.0
        } else {
            self.admit_at as f64 / self.above as f64
        }
    }
}

/// A finished scan.
#[derive(Debug, Clone)]
pub struct Scan {
    pub findings: Vec<Finding>,
    /// Inputs that could not be read or decoded (in part or whole); the others were still scanned.
    pub errors: Vec<InputError>,
    /// Problems that did not stop decoding (NetFlow data before its template, cut captures).
    pub warnings: Vec<InputError>,
    /// What folder walks passed over (FIFOs, devices, links back to folders already read), one line each.
    pub notes: Vec<String>,
    /// Files found in folders that are not flow files (no known format in their first bytes), not read: as
    /// `nfdump -R` skips them. Files named on the command line are read whatever they hold.
    pub not_flow_files: Vec<String>,
    pub stats: ScanStats,
    pub guarantee: Guarantee,
    pub rules: Vec<RuleStats>,
    /// Keys given table entries, over all rules.
    pub keys: usize,
    /// Seconds of each pass (the second is 0 without a verify pass).
    pub secs: [f64; 2],
    /// The counter backend's name.
    pub counter: &'static str,
    /// The first pass's saved state (with [`ScanConfig::save_state`]): the bytes of a state file, or why there
    /// are none.
    pub state: Option<Result<Vec<u8>, String>>,
    /// Each finding's distinct values as a DataSketches sketch, in the order of the findings (with
    /// [`ScanConfig::export_sketches`]; findings whose values the verify pass did not keep have none).
    pub sketches: Vec<ExportedSketch>,
    /// Saved states merged into these findings (`None` for a scan of inputs).
    pub merged: Option<u32>,
}

impl Scan {
    pub fn secs(&self) -> f64 {
        self.secs[0] + self.secs[1]
    }

    /// One line on the files in folders that were skipped as not flow files (their count and the first two), if
    /// any.
    pub fn not_flow_files_note(&self) -> Option<String> {
        let n = self.not_flow_files.len();
        let first = self.not_flow_files.first()?;
        let named = match self.not_flow_files.get(1) {
            Some(second) if n == 2 => format!("{first} and {second}"),
            Some(second) => format!("{first}, {second} and {} more", n - 2),
            None => first.clone(),
        };
        let what = if n == 1 {
            "file in a folder that is not a flow file"
        } else {
            "files in folders that are not flow files"
        };
        Some(format!(
            "skipped {n} {what} (no known format in the first bytes): {named}"
        ))
    }

    /// The run's totals for the summary line and record; `peak_bytes` is the process's peak memory if known.
    pub fn summary(&self, peak_bytes: Option<u64>) -> Summary {
        Summary {
            inputs: self.stats.inputs,
            inputs_skipped: self.not_flow_files.len(),
            inputs_failed: self.stats.inputs_failed,
            errors: self.errors.len(),
            warnings: self.warnings.len(),
            flows: self.stats.flows,
            skipped: self.stats.skipped,
            findings: self.findings.len(),
            keys: self.keys,
            peak_bytes,
            secs: self.secs(),
            guarantee: self.guarantee,
            merged: self.merged,
            rules: self
                .rules
                .iter()
                .map(|r| RuleAdmission {
                    id: r.id.clone(),
                    flows: r.flows,
                    admit_at: r.admit_at,
                    admit_fraction: r.admit_fraction(),
                    raises: r.raises,
                    over_budget: r.over_budget,
                    keys_admitted: r.keys_admitted,
                    keys_evicted: r.evicted,
                    keys_seen: r.keys_seen,
                })
                .collect(),
        }
    }
}

/// Progress of a running scan, for a display on another thread: what the current pass has done, and what there
/// is to do. Workers update it once per batch and once per chunk (relaxed atomic adds), never per record.
#[derive(Debug, Default)]
pub struct Progress {
    /// 1 during the admission pass, 2 during the verify pass (0 before the scan starts).
    pub pass: AtomicU8,
    /// Passes the scan runs: 2 with a verify pass, else 1 (set once the inputs are expanded).
    pub passes: AtomicU8,
    /// Flows, input bytes and inputs the current pass has done (inputs skipped or failed count as done).
    pub done: Done,
    /// Bytes of all inputs; 0 when some size is not known (standard input, a pipe).
    pub total_bytes: AtomicU64,
    /// Inputs to read (files found in folders included).
    pub total_inputs: AtomicU64,
}

/// A reading of [`Progress`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProgressNow {
    pub pass: u8,
    pub passes: u8,
    pub flows: u64,
    pub bytes: u64,
    /// 0 when not known.
    pub total_bytes: u64,
    pub inputs: u64,
    pub total_inputs: u64,
}

impl Progress {
    pub fn now(&self) -> ProgressNow {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        ProgressNow {
            pass: self.pass.load(Ordering::Relaxed),
            passes: self.passes.load(Ordering::Relaxed),
            flows: get(&self.done.flows),
            bytes: get(&self.done.bytes),
            total_bytes: get(&self.total_bytes),
            inputs: get(&self.done.inputs),
            total_inputs: get(&self.total_inputs),
        }
    }
}

impl ProgressNow {
    /// The share of the pass's input bytes done, when the total is known.
    pub fn fraction(&self) -> Option<f64> {
        (self.total_bytes > 0).then(|| (self.bytes as f64 / self.total_bytes as f64).min(1.0))
    }
}

/// Runs scans of one set of definitions.
pub struct Scanner<'d> {
    defs: &'d Definitions,
    config: ScanConfig,
}

impl<'d> Scanner<'d> {
    pub fn new(defs: &'d Definitions, config: ScanConfig) -> Scanner<'d> {
        Scanner { defs, config }
    }

    pub fn config(&self) -> &ScanConfig {
        &self.config
    }

    /// Scan files and folders (walked as `nfdump -R` walks them; `-` is standard input).
    pub fn run(&self, paths: &[PathBuf]) -> Scan {
        self.run_with(paths, &Progress::default())
    }

    /// [`Self::run`], reporting progress.
    pub fn run_with(&self, paths: &[PathBuf], progress: &Progress) -> Scan {
        self.dispatch(paths, progress, false).0
    }

    /// Run this process's part of a scan across the processes of a cluster (Timely Dataflow): every process is
    /// given the same definitions, config and paths (or, with `cluster.local_inputs`, its own paths). Process 0
    /// returns the scan of all of them; the others `None`. Standard input cannot be split: it is refused.
    pub fn run_cluster(
        &self,
        paths: &[PathBuf],
        cluster: &ClusterConfig,
        progress: Arc<Progress>,
    ) -> Result<Option<Scan>, ClusterError> {
        let config = ScanConfig {
            admit: self.config.admit.clamp(0.0, 1.0),
            ..self.config.clone()
        };
        match self.config.counter {
            CounterKind::Compact => {
                cluster::scan::<sketch::Compact>(self.defs, &config, paths, cluster, progress)
            }
            CounterKind::Exact => {
                cluster::scan::<sketch::Exact>(self.defs, &config, paths, cluster, progress)
            }
            CounterKind::Hllpp => {
                cluster::scan::<sketch::Hllpp>(self.defs, &config, paths, cluster, progress)
            }
        }
    }

    /// Merge saved states (each a `--save-state` directory or its file) and report them as a scan of their inputs
    /// would be: verified over those inputs when all are there unchanged (and `verify` is on), else one pass under
    /// the bound of the merged scans (see [`crate::state`]). A state that is truncated, corrupt, foreign or does not
    /// fit the definitions or the states before it is refused with its file name.
    pub fn merge(
        &self,
        states: &[PathBuf],
        progress: &Progress,
    ) -> Result<Scan, crate::state::StateError> {
        crate::state::merge::merge_paths(self.defs, &self.config, states, progress)
    }

    /// [`Self::run_with`], also handing back the first pass's tables: what each rule counted for each key it
    /// admitted (for `compare`, which measures a counter against exact counting).
    pub fn run_keeping_tables(&self, paths: &[PathBuf], progress: &Progress) -> (Scan, Tables) {
        let (scan, tables) = self.dispatch(paths, progress, true);
        (scan, tables.expect("asked to keep them"))
    }

    fn dispatch(
        &self,
        paths: &[PathBuf],
        progress: &Progress,
        keep: bool,
    ) -> (Scan, Option<Tables>) {
        match self.config.counter {
            CounterKind::Compact => self.scan::<sketch::Compact>(paths, progress, keep),
            CounterKind::Exact => self.scan::<sketch::Exact>(paths, progress, keep),
            CounterKind::Hllpp => self.scan::<sketch::Hllpp>(paths, progress, keep),
        }
    }

    fn engine_options(&self) -> ScanOptions {
        ScanOptions {
            threads: self.config.threads.max(1),
            admit: self.config.admit.clamp(0.0, 1.0),
            memory: self.config.memory,
            ..ScanOptions::default()
        }
    }

    fn scan<C: SavedCounter>(
        &self,
        paths: &[PathBuf],
        progress: &Progress,
        keep: bool,
    ) -> (Scan, Option<Tables>) {
        let start = Instant::now();
        let walked = input::expand_paths(paths);
        let notes = walked.notes();
        let (sources, walk_errors) = (walked.sources, walked.errors);
        // What the state covers, as it was before the scan read it.
        let inputs = if self.config.save_state {
            sources.iter().map(InputRecord::of).collect()
        } else {
            Vec::new()
        };
        let guarantee = if sources.contains(&Source::Stdin) {
            Guarantee::OnePass(OnePassWhy::Stdin)
        } else if !self.config.verify {
            Guarantee::OnePass(OnePassWhy::Asked)
        } else {
            Guarantee::Verified
        };
        progress
            .passes
            .store(if guarantee.verified() { 2 } else { 1 }, Ordering::Relaxed);
        let sizes: Option<u64> = sources.iter().map(Source::size).sum();
        progress
            .total_bytes
            .store(sizes.unwrap_or(0), Ordering::Relaxed);
        (progress.total_inputs).store(sources.len() as u64, Ordering::Relaxed);
        // Findings of a verified scan come from the second pass: the first keeps counts alone.
        let pass = Pass {
            start,
            inputs,
            sources,
            walk_errors,
            notes,
            guarantee,
            keep,
        };
        if guarantee.verified() && !self.config.save_state {
            self.scan_keeping::<C, NoSeen>(pass, progress)
        } else {
            self.scan_keeping::<C, Seen>(pass, progress)
        }
    }

    fn scan_keeping<C: SavedCounter, M: Meta>(
        &self,
        pass: Pass,
        progress: &Progress,
    ) -> (Scan, Option<Tables>) {
        let Pass {
            start,
            inputs,
            sources,
            walk_errors,
            notes,
            guarantee,
            keep,
        } = pass;
        let rules = &self.defs.rules;
        let options = self.engine_options();
        progress.pass.store(1, Ordering::Relaxed);
        let opener = Opener::new();
        let mut warnings = Vec::new();
        // Files found in folders that no reader is for are skipped, not errors; the verify pass skips them too.
        let mut foreign = vec![false; sources.len()];
        let opened = sources.iter().zip(&mut foreign).filter_map(|(s, foreign)| {
            let input = input::open(s, &self.config.input, &opener);
            match (&input, s) {
                (Ok(i), _) => {
                    warnings.extend(i.decoder.warnings().into_iter().map(|w| InputError {
                        name: i.name.clone(),
                        message: w.to_string(),
                    }))
                }
                (Err(_), Source::InFolder(path)) if input::is_foreign(path) => {
                    *foreign = true;
                    let done = &progress.done;
                    done.inputs.fetch_add(1, Ordering::Relaxed);
                    (done.bytes).fetch_add(s.size().unwrap_or(0), Ordering::Relaxed);
                    return None;
                }
                (Err(_), _) => {}
            }
            Some(input)
        });
        let mut result = engine::scan_keeping::<C, M, _>(rules, opened, &options, &progress.done);
        let not_flow_files: Vec<String> = (sources.iter().zip(&foreign))
            .filter(|(_, &f)| f)
            .map(|(s, _)| s.name())
            .collect();
        let mut errors = walk_errors;
        errors.extend(result.errors.iter().cloned());
        let pass1 = start.elapsed().as_secs_f64();
        let mut stats_rules = rule_stats(rules, &result, self.config.stats);
        let keys = result.keys();
        let stats = result.stats;
        let state = self.config.save_state.then(|| {
            let meta = StateMeta {
                flowsketch: env!("CARGO_PKG_VERSION").to_string(),
                definitions_version: self.defs.version.clone(),
                definitions_origin: self.defs.origin.clone(),
                counter: C::NAME.to_string(),
                admit: options.admit,
                states: 1,
                shards: result.shards.len() as u32,
                input_format: self.config.input.format.map(|k| k.name().to_string()),
                inputs: stats.inputs,
                inputs_failed: stats.inputs_failed,
                flows: stats.flows,
                skipped: stats.skipped,
                errors: errors.iter().map(ToString::to_string).collect(),
            };
            let cap = state::Capture {
                defs: self.defs,
                meta,
                inputs,
            };
            state::capture(cap, &result)
        });
        let (findings, secs2, tables, sketches) = if guarantee.verified() {
            let candidates = candidates(rules, &mut result, &mut stats_rules);
            // The tables are done with unless kept: the second pass needs only the candidates.
            let tables = keep.then(|| Tables(Box::new(result)));
            let start2 = Instant::now();
            progress.done.reset();
            progress.pass.store(2, Ordering::Relaxed);
            let opener = Opener::new();
            let done = &progress.done;
            let reopened = (sources.iter().zip(&foreign)).filter_map(|(s, &skip)| {
                if skip {
                    done.inputs.fetch_add(1, Ordering::Relaxed);
                    done.bytes
                        .fetch_add(s.size().unwrap_or(0), Ordering::Relaxed);
                    return None;
                }
                Some(input::open(s, &self.config.input, &opener))
            });
            let verified = verify::verify(
                rules,
                &candidates,
                reopened,
                options.threads,
                options.queue,
                &progress.done,
            );
            let flows = verified.stats.flows;
            verify::tell_reread_errors(
                &mut errors,
                verified.errors,
                flows,
                stats.flows,
                Reread::Scan,
            );
            let (out, sketches) = verified_findings(
                rules,
                &candidates,
                &verified.tallies,
                self.config.evidence,
                self.config.export_sketches,
            );
            (out, start2.elapsed().as_secs_f64(), tables, sketches)
        } else {
            let found = one_pass_found(rules, &mut result, self.config.evidence);
            let tables = if keep {
                Some(Tables(Box::new(result)))
            } else {
                // One scan per process: freeing millions of per-host counters one by one would only delay the
                // exit.
                std::mem::forget(result);
                None
            };
            let (out, _) = report_found(rules, found);
            (out, 0.0, tables, Vec::new())
        };
        let scan = Scan {
            findings,
            errors,
            warnings,
            notes,
            not_flow_files,
            stats,
            guarantee,
            rules: stats_rules,
            keys,
            secs: [pass1, secs2],
            counter: C::NAME,
            state,
            sketches,
            merged: None,
        };
        (scan, tables)
    }
}

/// The first pass's tables of a scan, whatever its counter.
pub struct Tables(Box<dyn EachCount>);

impl Tables {
    /// Hand every key rule `rule` admitted, with its first-pass count, to `each`.
    pub fn each(&mut self, rule: usize, each: &mut dyn FnMut(&Counted)) {
        self.0.each(rule, each)
    }
}

trait EachCount {
    fn each(&mut self, rule: usize, each: &mut dyn FnMut(&Counted));
}

/// What the first pass is given: the expanded inputs and what the scan will promise.
struct Pass {
    start: Instant,
    inputs: Vec<InputRecord>,
    sources: Vec<Source>,
    walk_errors: Vec<InputError>,
    notes: Vec<String>,
    guarantee: Guarantee,
    keep: bool,
}

impl<C: DistinctCounter, M: Meta> EachCount for ScanResult<C, M> {
    fn each(&mut self, rule: usize, each: &mut dyn FnMut(&Counted)) {
        for c in self.all(rule) {
            each(&c);
        }
    }
}

/// What each rule did. The keys seen and the bytes each table holds take a walk over every sketch cell and table
/// entry after the scan, so they are worked out only when `detailed` (`--stats`).
pub(crate) fn rule_stats<C: DistinctCounter, M: Meta>(
    rules: &[Rule],
    result: &ScanResult<C, M>,
    detailed: bool,
) -> Vec<RuleStats> {
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let counts = result.counts(i);
            let sides = if r.key.addr == crate::rules::AddrField::Host {
                2
            } else {
                1
            };
            let tables = if detailed {
                result.footprint(i)
            } else {
                Footprint {
                    keys: result.shards.iter().map(|s| s.tables[i].len()).sum(),
                    ..Footprint::default()
                }
            };
            RuleStats {
                id: r.id.clone(),
                above: r.min_above(),
                flows: counts.updates / sides,
                keys_admitted: tables.keys,
                updates_admitted: counts.admitted,
                updates: counts.updates,
                keys_seen: if detailed { result.keys_seen(i) } else { None },
                admit_at: result.admit_at(i),
                raises: counts.raises,
                evicted: counts.evicted,
                over_budget: counts.over_budget,
                admission_bytes: result.admission_bytes(i),
                tables,
                candidates: 0,
            }
        })
        .collect()
}

/// A finding before it meets its rule, with the DataSketches sketch of its distinct values when asked for: what a
/// worker of a cluster sends to process 0 (`rule` indexes the definitions' rules).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Found {
    pub rule: usize,
    pub key: KeyParts,
    pub value: Estimate,
    pub seen: crate::engine::Seen,
    pub missed_at_most: u64,
    pub verified: bool,
    pub evidence: Evidence,
    pub sketch: Option<Vec<u8>>,
}

/// What a verify pass found: every candidate (`candidates[rule]`) whose exact tally (`tallies[rule]`, in the
/// candidates' order) is over its threshold, naming `evidence` top peers and ports; with `export`, the sketch of
/// its distinct values.
pub(crate) fn verified_found(
    rules: &[Rule],
    candidates: &[Candidates],
    tallies: &[Vec<verify::Tally>],
    evidence: usize,
    export: bool,
) -> Vec<Found> {
    let mut out = Vec::new();
    for (ri, rule) in rules.iter().enumerate() {
        for (key, tally) in candidates[ri].keys().iter().zip(&tallies[ri]) {
            let value = tally.value(rule.count);
            let above = rule.above_for_key(key.addr);
            if rule.fires(above, value.value, tally.seen.flows()) {
                let sketch = match (export, rule.count, &tally.values) {
                    (true, CountSpec::Distinct(d), verify::Values::Exact(set)) => {
                        Some(sketch::datasketches::sketch_of(d, set.iter().copied()))
                    }
                    _ => None,
                };
                out.push(Found {
                    rule: ri,
                    key: *key,
                    value,
                    seen: tally.seen,
                    missed_at_most: 0,
                    verified: true,
                    evidence: tally.evidence(evidence),
                    sketch,
                });
            }
        }
    }
    out
}

/// What one pass found: the keys the tables hold over their thresholds, with the admission bound and the sample
/// of each key's flows from when it came near its threshold, labelled as such.
pub(crate) fn one_pass_found<C: DistinctCounter, M: Meta>(
    rules: &[Rule],
    result: &mut ScanResult<C, M>,
    evidence: usize,
) -> Vec<Found> {
    let mut out = Vec::new();
    for (ri, rule) in rules.iter().enumerate() {
        for c in result.over(ri, rule.min_above()) {
            let above = rule.above_for_key(c.key.addr);
            if rule.fires(above, c.value.value, c.seen.flows()) {
                out.push(Found {
                    rule: ri,
                    key: c.key,
                    value: c.value,
                    seen: c.seen,
                    missed_at_most: c.missed_at_most,
                    verified: false,
                    evidence: (c.sample.as_ref())
                        .map_or_else(Evidence::none, |s| s.evidence(evidence)),
                    sketch: None,
                });
            }
        }
    }
    out
}

/// The report of what was found: findings merged into bursts and sorted, and the sketches of those that carry one
/// (in the findings' order). Scans, cluster scans and merges of saved states all report through this function.
pub(crate) fn report_found(
    rules: &[Rule],
    found: Vec<Found>,
) -> (Vec<Finding>, Vec<ExportedSketch>) {
    let mut sketches = std::collections::HashMap::new();
    let mut out: Vec<Finding> = found
        .into_iter()
        .map(|f| {
            let rule = &rules[f.rule];
            if let (Some(bytes), CountSpec::Distinct(d)) = (f.sketch, rule.count) {
                sketches.insert((f.rule, f.key), (sketch::datasketches::hashed(d), bytes));
            }
            Finding::new(rule, f.key, f.value, f.seen, f.missed_at_most, f.verified)
                .with_evidence(f.evidence)
        })
        .collect();
    crate::report::merge_bursts(&mut out);
    crate::report::sort(&mut out);
    if sketches.is_empty() {
        return (out, Vec::new());
    }
    let index: std::collections::HashMap<&str, usize> = (rules.iter().enumerate())
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let exported = out
        .iter()
        .filter_map(|f| {
            let (hashed, bytes) = sketches.remove(&(index[f.rule.as_str()], f.key))?;
            Some(ExportedSketch {
                rule: f.rule.clone(),
                key: f.key,
                key_text: f.key_text(),
                count: f.count,
                hashed,
                bytes,
            })
        })
        .collect();
    (out, exported)
}

/// Findings of a verify pass, reported: [`verified_found`] then [`report_found`].
pub(crate) fn verified_findings(
    rules: &[Rule],
    candidates: &[Candidates],
    tallies: &[Vec<verify::Tally>],
    evidence: usize,
    export: bool,
) -> (Vec<Finding>, Vec<ExportedSketch>) {
    report_found(
        rules,
        verified_found(rules, candidates, tallies, evidence, export),
    )
}

/// The largest true value an estimate may stand for: itself when exact, else six standard errors above.
pub(crate) fn upper(e: &Estimate) -> f64 {
    if e.exact {
        e.value as f64
    } else if e.rel_std_error * 6.0 < 0.9 {
        e.value as f64 / (1.0 - 6.0 * e.rel_std_error) + 1.0
    } else {
        f64::INFINITY
    }
}

/// Every key of every rule whose true count could be over its threshold: its counted value (at most six standard
/// errors low) plus what admission may have missed of it (`A - 1` of the key's admission epoch), and the same for
/// its flows when the rule also asks for flows (`flows_above`), the tables kept flows, and admission counted
/// flows. Keys are taken out of the tables against the rule's smallest threshold, then held to their own.
pub(crate) fn candidates<C: DistinctCounter, M: Meta>(
    rules: &[Rule],
    result: &mut ScanResult<C, M>,
    stats: &mut [RuleStats],
) -> Vec<Candidates> {
    rules
        .iter()
        .enumerate()
        .map(|(i, rule)| {
            let lowest = rule.min_above() as f64;
            // Admission of a sum counts packets or bytes, not flows: its flows before admission are unbounded. And
            // tables that keep no flows (a verify pass follows) say nothing of them.
            let flows_bounded = M::default().flows().is_some()
                && !matches!(rule.count, CountSpec::Packets | CountSpec::Bytes);
            let keys: Vec<KeyParts> = result
                .select(i, &|e, missed| upper(e) + missed as f64 > lowest)
                .into_iter()
                .filter(|c| {
                    let above = rule.above_for_key(c.key.addr) as f64;
                    let slack = c.missed_at_most;
                    let flows = !flows_bounded || c.seen.flows() + slack > rule.flows_above;
                    upper(&c.value) + slack as f64 > above && flows
                })
                .map(|c| c.key)
                .collect();
            stats[i].candidates = keys.len();
            Candidates::new(keys)
        })
        .collect()
}
