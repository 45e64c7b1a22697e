//! One scan across processes and machines on Timely Dataflow (the `timely` crate).
//!
//! Every process runs the same scan with the same definitions and flags, and a [`ClusterConfig`]: its index, the
//! addresses of all processes (a hostfile) and its worker threads. Each worker is a Timely worker: it decodes its
//! share of the chunks and sends each routed ref, with the record it names, through Timely's exchange to the worker
//! that owns the key (the engine's fixed-seed owner, [`crate::engine::shard::shard_of`] over all workers of all
//! processes). Owners run admission, tables and the verify pass as one process does; worker 0 gathers the findings
//! and totals, and process 0 reports them. docs/CLUSTER.md says how to run it.
//!
//! Inputs: by default every process is given the same paths (shared storage) and the chunks of all inputs are
//! dealt out over all workers, none read twice; with `local_inputs` each process reads its own paths, its chunks
//! dealt out over its own workers. Either way each key's counts come together at its owner, so findings are
//! those of one process over all the inputs.
//!
//! A process that dies, or cannot be reached, ends the scan with an error naming it: connections are made here,
//! with a deadline ([`net`]), and a broken connection during the scan (Timely's network threads panic) ends this
//! process with exit code 2 and a message rather than a hang.

mod dataflow;
pub mod launcher;
mod net;
pub(crate) mod wire;

use crate::engine::verify::{self, Reread};
use crate::engine::{CompiledRule, ErrorLog, Input, InputError, NoSeen, ScanStats, Seen, Sizing};
use crate::formats::{ChunkStats, Lost, Opener};
use crate::input::{self, InputOptions, Source};
use crate::report::summary::{Guarantee, OnePassWhy};
use crate::rules::{Definitions, Rule};
use crate::scanner::{self, Found, Progress, RuleStats, Scan, ScanConfig};
use crate::sketch::DistinctCounter;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Where this process stands in a cluster.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    /// Worker threads in this process (Timely's `-w`).
    pub workers: usize,
    /// This process's index, from 0 (Timely's `-p`).
    pub process: usize,
    /// The address (`host:port`) every process listens on, one per process in process order (a hostfile's
    /// lines; Timely's `-h`). Empty for one process.
    pub addresses: Vec<String>,
    /// Each process reads only the paths it was given, rather than a share of every chunk of the same paths.
    pub local_inputs: bool,
    /// How long to wait for every other process to connect.
    pub connect_timeout: Duration,
}

/// The default [`ClusterConfig::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

impl ClusterConfig {
    /// The number of processes.
    pub fn processes(&self) -> usize {
        self.addresses.len().max(1)
    }
}

/// Read a hostfile: one `host:port` per line, process 0 first; blank lines and `#` comments are skipped.
pub fn parse_hostfile(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        match line.rsplit_once(':') {
            Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => {
                out.push(line.to_string())
            }
            _ => {
                return Err(format!(
                    "line {}: expected host:port (like 10.0.0.1:2101); found '{line}'",
                    i + 1
                ))
            }
        }
    }
    if out.is_empty() {
        return Err("no addresses (one host:port per line, process 0 first)".into());
    }
    Ok(out)
}

/// Why a cluster scan could not run to the end.
#[derive(Debug, Clone, PartialEq)]
pub enum ClusterError {
    /// The flags or hostfile do not describe a cluster.
    Config(String),
    /// This process could not listen on its own address.
    Listen { address: String, message: String },
    /// Another process could not be reached (or did not connect) within the deadline.
    Unreachable {
        process: usize,
        address: String,
        secs: f64,
        message: String,
    },
    /// Another process answered, but not as a process of this cluster.
    Peer {
        process: usize,
        address: String,
        message: String,
    },
    /// The processes were given the same paths but do not see the same inputs.
    Inputs { process: usize, message: String },
    /// Timely refused to start, or a worker failed.
    Timely(String),
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClusterError::Config(m) => write!(f, "cluster: {m}"),
            ClusterError::Listen { address, message } => {
                write!(f, "cluster: cannot listen on {address} (this process's line of the hostfile): {message}")
            }
            ClusterError::Unreachable {
                process,
                address,
                secs,
                message,
            } => write!(
                f,
                "cluster: process {process} at {address} could not be reached within {secs:.0} s: {message}"
            ),
            ClusterError::Peer {
                process,
                address,
                message,
            } => write!(f, "cluster: process {process} at {address} is not part of this cluster: {message}"),
            ClusterError::Inputs { process, message } => write!(
                f,
                "cluster: process {process} does not see the inputs process 0 sees ({message}); give every process \
                 the same files, or use --local-inputs"
            ),
            ClusterError::Timely(m) => write!(f, "cluster: {m}"),
        }
    }
}

impl std::error::Error for ClusterError {}

/// A pass's totals from one worker.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Totals {
    flows: u64,
    skipped: u64,
    lost: Lost,
}

impl From<ChunkStats> for Totals {
    fn from(s: ChunkStats) -> Totals {
        Totals {
            flows: s.flows,
            skipped: s.skipped,
            lost: s.lost,
        }
    }
}

/// What one process opened: told once per process (by its first worker).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OpenedReport {
    inputs: u64,
    chunks: u64,
    errors: Vec<InputError>,
    warnings: Vec<InputError>,
    notes: Vec<String>,
    walk_errors: Vec<InputError>,
    not_flow_files: Vec<String>,
}

/// What one worker sends worker 0 at the end.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    process: usize,
    found: Vec<Found>,
    /// Each pass's totals (the second's when there was one).
    totals: [Totals; 2],
    /// The first pass's errors as one process keeps them (merged the same way); the verify pass's as a list.
    errors: ErrorLog,
    errors2: Vec<InputError>,
    rules: Vec<RuleStats>,
    keys: usize,
    opened: Option<OpenedReport>,
    secs: [f64; 2],
}

/// The inputs of one pass, opened in order by one process (an [`Opener`] carries NetFlow templates from one input
/// to the next), and every chunk of them in order.
pub struct Opened {
    inputs: Vec<Arc<Input>>,
    /// (index in `inputs`, chunk) of every chunk.
    chunks: Vec<(usize, usize)>,
    /// Per input, the chunks of it this process's workers have yet to decode (for progress).
    left: Vec<Arc<AtomicUsize>>,
    sources: u64,
    errors: Vec<InputError>,
    warnings: Vec<InputError>,
    notes: Vec<String>,
    walk_errors: Vec<InputError>,
    /// Files found in folders that no reader is for: skipped, as one process skips them.
    not_flow_files: Vec<String>,
}

impl Opened {
    fn report(&self) -> OpenedReport {
        OpenedReport {
            inputs: self.sources,
            chunks: self.chunks.len() as u64,
            errors: self.errors.clone(),
            warnings: self.warnings.clone(),
            notes: self.notes.clone(),
            walk_errors: self.walk_errors.clone(),
            not_flow_files: self.not_flow_files.clone(),
        }
    }
}

/// What every worker of a process shares.
pub struct Ctx {
    /// What every process must agree on, checked when they connect.
    fingerprint: u64,
    rules: Vec<Rule>,
    compiled: Vec<CompiledRule>,
    sizing: Sizing,
    any_filter: bool,
    sources: Vec<Source>,
    notes: Vec<String>,
    walk_errors: Vec<InputError>,
    input: InputOptions,
    local_inputs: bool,
    workers: usize,
    processes: usize,
    process: usize,
    verify: bool,
    evidence: usize,
    /// Whether findings carry DataSketches sketches of their distinct values.
    export: bool,
    detailed: bool,
    progress: Arc<Progress>,
    /// Each pass's opened inputs, opened by the first worker to ask.
    opened: Mutex<[Option<Arc<Opened>>; 2]>,
}

impl Ctx {
    /// Which worker decodes chunk `k` of the opened chunks, and of how many (see [`Ctx::decodes`]).
    pub(crate) fn share_of(&self, worker: usize) -> (usize, usize) {
        if self.local_inputs {
            (worker % self.workers, self.workers)
        } else {
            (worker, self.workers * self.processes)
        }
    }

    /// Whether one of this process's workers decodes chunk `k`: chunks go round the workers that read them.
    fn decodes(&self, k: usize) -> bool {
        self.local_inputs || (k % (self.workers * self.processes)) / self.workers == self.process
    }

    /// The inputs of pass `pass` (0 or 1), opened once per process.
    fn open(&self, pass: usize) -> Arc<Opened> {
        let mut slots = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        if pass == 1 {
            slots[0] = None;
        }
        if let Some(o) = &slots[pass] {
            return o.clone();
        }
        let opener = Opener::new();
        let mut o = Opened {
            inputs: Vec::new(),
            chunks: Vec::new(),
            left: Vec::new(),
            sources: self.sources.len() as u64,
            errors: Vec::new(),
            warnings: Vec::new(),
            notes: self.notes.clone(),
            walk_errors: self.walk_errors.clone(),
            not_flow_files: Vec::new(),
        };
        for s in &self.sources {
            match input::open(s, &self.input, &opener) {
                Ok(i) => {
                    o.warnings
                        .extend(i.decoder.warnings().into_iter().map(|w| InputError {
                            name: i.name.clone(),
                            message: w.to_string(),
                        }));
                    let at = o.inputs.len();
                    o.chunks.extend((0..i.decoder.chunks()).map(|c| (at, c)));
                    o.inputs.push(Arc::new(i));
                    o.left.push(Arc::new(AtomicUsize::new(0)));
                }
                Err(_) if matches!(s, Source::InFolder(p) if input::is_foreign(p)) => {
                    o.not_flow_files.push(s.name())
                }
                Err(e) => o.errors.push(e),
            }
        }
        for (k, &(at, _)) in o.chunks.iter().enumerate() {
            if self.decodes(k) {
                o.left[at].fetch_add(1, Ordering::Relaxed);
            }
        }
        let o = Arc::new(o);
        slots[pass] = Some(o.clone());
        o
    }
}

/// Run this process's part of a cluster scan. Process 0 returns the scan; the others `None`.
pub(crate) fn scan<C: DistinctCounter>(
    defs: &Definitions,
    config: &ScanConfig,
    paths: &[PathBuf],
    cluster: &ClusterConfig,
    progress: Arc<Progress>,
) -> Result<Option<Scan>, ClusterError> {
    let processes = cluster.processes();
    if cluster.workers == 0 {
        return Err(ClusterError::Config(
            "workers per process must be at least 1".into(),
        ));
    }
    if cluster.process >= processes {
        return Err(ClusterError::Config(format!(
            "process index {} is not below the process count {processes}",
            cluster.process
        )));
    }
    let walked = input::expand_paths(paths);
    let notes = walked.notes();
    if config.save_state {
        // Each process holds only its workers' shards; a state of the whole would gather every table at one place.
        return Err(ClusterError::Config(
            "--save-state is for scans in one process: save each process's inputs with its own scan, then merge"
                .into(),
        ));
    }
    if walked.sources.contains(&Source::Stdin) {
        return Err(ClusterError::Config(
            "standard input cannot be read by a cluster: give files or folders".into(),
        ));
    }
    let guarantee = if config.verify {
        Guarantee::Verified
    } else {
        Guarantee::OnePass(OnePassWhy::Asked)
    };
    let rules = defs.rules.clone();
    let compiled: Vec<CompiledRule> = rules.iter().map(CompiledRule::new).collect();
    let ctx = Arc::new(Ctx {
        fingerprint: fingerprint::<C>(defs, config, cluster),
        sizing: Sizing::plan(
            &compiled,
            cluster.workers,
            config.admit.clamp(0.0, 1.0),
            config.memory,
        ),
        any_filter: rules.iter().any(|r| !r.filter.is_any()),
        compiled,
        rules,
        sources: walked.sources,
        notes,
        walk_errors: walked.errors,
        input: config.input.clone(),
        local_inputs: cluster.local_inputs,
        workers: cluster.workers,
        processes,
        process: cluster.process,
        verify: config.verify,
        evidence: config.evidence,
        export: config.export_sketches,
        detailed: config.stats,
        progress,
        opened: Mutex::new([None, None]),
    });
    let reports = if guarantee.verified() {
        execute(cluster, ctx.clone(), dataflow::work::<C, NoSeen>)?
    } else {
        execute(cluster, ctx.clone(), dataflow::work::<C, Seen>)?
    };
    match reports {
        Some(r) => assemble::<C>(&ctx, r, guarantee, processes).map(Some),
        None => Ok(None),
    }
}

/// What every process of a cluster must share: the definitions, the counter, the workers per process and the flags
/// that change what is counted or reported (not `--memory` or the inputs, which are each machine's own). Processes
/// that disagree would count each other's updates under other rules, so they refuse to connect.
fn fingerprint<C>(defs: &Definitions, config: &ScanConfig, cluster: &ClusterConfig) -> u64 {
    let mut h = crate::hash::Fingerprint(crate::state::fingerprint(defs));
    let _ = std::fmt::write(
        &mut h,
        format_args!(
            "{} {} {} {} {} {} {} {}",
            std::any::type_name::<C>(),
            config.verify,
            config.evidence,
            config.export_sketches,
            config.stats,
            config.admit,
            cluster.local_inputs,
            cluster.workers,
        ),
    );
    h.0
}

/// Start the workers of this process on Timely, connected to the other processes, and wait for them.
fn execute(
    cluster: &ClusterConfig,
    ctx: Arc<Ctx>,
    work: fn(&mut timely::worker::Worker, &Ctx) -> Option<Vec<Report>>,
) -> Result<Option<Vec<Report>>, ClusterError> {
    use timely::communication::allocator::zero_copy::initialize::initialize_networking_from_sockets;
    use timely::communication::allocator::ProcessBuilder;
    use timely::communication::{AllocatorBuilder, Hooks};
    let hooks = Hooks::default();
    let (builders, others): (Vec<AllocatorBuilder>, Box<dyn std::any::Any + Send>) =
        if cluster.processes() == 1 {
            let b = ProcessBuilder::new_typed_vector(cluster.workers, hooks.refill.clone(), None);
            (
                b.into_iter().map(AllocatorBuilder::Process).collect(),
                Box::new(()),
            )
        } else {
            let sockets = net::connect_all(
                &cluster.addresses,
                cluster.process,
                cluster.connect_timeout,
                ctx.fingerprint,
            )?;
            die_on_lost_peers(cluster.addresses.clone(), cluster.process);
            let local = ProcessBuilder::new_typed_vector(
                cluster.workers,
                hooks.refill.clone(),
                hooks.spill.clone(),
            );
            let (b, guard) = initialize_networking_from_sockets(
                local,
                sockets,
                cluster.process,
                cluster.workers,
                hooks,
            )
            .map_err(|e| ClusterError::Timely(format!("cannot start the network threads: {e}")))?;
            (
                b.into_iter().map(AllocatorBuilder::Tcp).collect(),
                Box::new(guard),
            )
        };
    let guards = timely::execute::execute_from(
        builders,
        others,
        timely::WorkerConfig::default(),
        move |worker| work(worker, &ctx),
    )
    .map_err(ClusterError::Timely)?;
    let mut out = None;
    for r in guards.join() {
        match r {
            Ok(Some(reports)) => out = Some(reports),
            Ok(None) => {}
            Err(e) => return Err(ClusterError::Timely(format!("a worker failed: {e}"))),
        }
    }
    Ok(out)
}

/// Once connected, a broken connection makes Timely's network threads panic ("timely communication error"), which
/// would leave the workers waiting for progress that never comes. Say which process was lost and end this one:
/// no findings are printed, and the exit code is 2.
fn die_on_lost_peers(addresses: Vec<String>, me: usize) {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let thread = std::thread::current().name().unwrap_or("").to_string();
        let message = info
            .payload()
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| info.payload().downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        let peer = thread
            .strip_prefix("timely:recv-")
            .or_else(|| thread.strip_prefix("timely:send-"))
            .and_then(|i| i.parse::<usize>().ok());
        if let Some(p) = peer {
            let address = addresses.get(p).map_or("", String::as_str);
            eprintln!(
                "flowsketch: cluster: lost the connection to process {p} at {address} ({message}); the scan \
                 cannot complete, no findings are reported"
            );
            std::process::exit(2);
        }
        if thread.starts_with("timely:") || message.contains("timely communication error") {
            eprintln!(
                "flowsketch: cluster: process {me} failed ({thread}: {message}); the scan cannot complete, no \
                 findings are reported"
            );
            std::process::exit(2);
        }
        previous(info);
    }));
}

/// Make the scan from every worker's report, as one process makes it from its workers' results.
fn assemble<C: DistinctCounter>(
    ctx: &Ctx,
    reports: Vec<Report>,
    guarantee: Guarantee,
    processes: usize,
) -> Result<Scan, ClusterError> {
    let mut opened: Vec<(usize, &OpenedReport)> = reports
        .iter()
        .filter_map(|r| r.opened.as_ref().map(|o| (r.process, o)))
        .collect();
    opened.sort_by_key(|o| o.0);
    if opened.len() != processes {
        return Err(ClusterError::Timely(format!(
            "{} of {processes} processes reported their inputs",
            opened.len()
        )));
    }
    // Shared inputs: every process opened the same; tell them once (process 0's).
    let told: Vec<&OpenedReport> = if ctx.local_inputs {
        opened.iter().map(|o| o.1).collect()
    } else {
        let first = opened[0].1;
        for &(p, o) in &opened[1..] {
            if (o.inputs, o.chunks) != (first.inputs, first.chunks) {
                return Err(ClusterError::Inputs {
                    process: p,
                    message: format!(
                        "{} inputs and {} chunks where process 0 has {} and {}",
                        o.inputs, o.chunks, first.inputs, first.chunks
                    ),
                });
            }
        }
        vec![first]
    };
    let mut stats = ScanStats::default();
    let mut errors: Vec<InputError> = Vec::new();
    let mut log = ErrorLog::default();
    let (mut warnings, mut notes, mut not_flow_files) = (Vec::new(), Vec::new(), Vec::new());
    for o in &told {
        // As one process counts them: the skipped files are told apart, not as inputs.
        not_flow_files.extend(o.not_flow_files.iter().cloned());
        stats.inputs += o.inputs - o.not_flow_files.len() as u64;
        errors.extend(o.walk_errors.iter().cloned());
        notes.extend(o.notes.iter().cloned());
        warnings.extend(o.warnings.iter().cloned());
        for e in &o.errors {
            log.push(e.clone());
        }
    }
    let mut flows2 = 0;
    let mut errors2 = Vec::new();
    let mut rules: Option<Vec<RuleStats>> = None;
    let mut keys = 0;
    let mut secs = [0.0f64; 2];
    let mut found = Vec::new();
    for r in reports {
        stats.flows += r.totals[0].flows;
        stats.skipped += r.totals[0].skipped;
        stats.lost += r.totals[0].lost;
        flows2 += r.totals[1].flows;
        log.merge(r.errors);
        errors2.extend(r.errors2);
        rules = Some(match rules {
            None => r.rules,
            Some(acc) => acc
                .into_iter()
                .zip(&r.rules)
                .map(|(a, b)| a.plus(b))
                .collect(),
        });
        keys += r.keys;
        secs = [secs[0].max(r.secs[0]), secs[1].max(r.secs[1])];
        found.extend(r.found);
    }
    errors.extend(log.into_list());
    let mut failed: Vec<&str> = errors.iter().map(|e| e.name.as_str()).collect();
    failed.sort();
    failed.dedup();
    stats.inputs_failed = failed.len() as u64;
    if guarantee.verified() {
        errors2.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.message.cmp(&b.message)));
        verify::tell_reread_errors(&mut errors, errors2, flows2, stats.flows, Reread::Scan);
    }
    let (findings, sketches) = scanner::report_found(&ctx.rules, found);
    Ok(Scan {
        findings,
        errors,
        warnings,
        notes,
        not_flow_files,
        stats,
        guarantee,
        rules: rules.unwrap_or_default(),
        keys,
        secs,
        counter: C::NAME,
        state: None,
        sketches,
        merged: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostfiles_are_read_and_bad_lines_named() {
        let hosts =
            parse_hostfile("# three\n10.0.0.1:2101\n\n  host-b:2101  # b\n[::1]:2102\n").unwrap();
        assert_eq!(hosts, ["10.0.0.1:2101", "host-b:2101", "[::1]:2102"]);
        assert_eq!(
            parse_hostfile("10.0.0.1:2101\n10.0.0.2\n").unwrap_err(),
            "line 2: expected host:port (like 10.0.0.1:2101); found '10.0.0.2'"
        );
        assert!(parse_hostfile("# nothing\n").is_err());
    }

    #[test]
    fn connections_time_out_naming_the_process() {
        let addresses = launcher::free_addresses(2).unwrap();
        let err = net::connect_all(&addresses, 1, Duration::from_millis(300), 7).unwrap_err();
        match err {
            ClusterError::Unreachable {
                process, address, ..
            } => {
                assert_eq!((process, address), (0, addresses[0].clone()))
            }
            e => panic!("{e}"),
        }
        let err = net::connect_all(&addresses, 0, Duration::from_millis(300), 7).unwrap_err();
        assert!(
            err.to_string()
                .starts_with(&format!("cluster: process 1 at {}", addresses[1])),
            "{err}"
        );
    }
}
