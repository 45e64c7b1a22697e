//! `flowsketch scan`: flags to a [`ScanConfig`], the library's [`Scanner`] over the paths, findings to stdout, the
//! summary and problems to stderr, and the exit code.

use super::args::{MergeArgs, ScanArgs};
use super::ExitCode;
use flowsketch::cluster::{parse_hostfile, ClusterConfig};
use flowsketch::input::InputOptions;
use flowsketch::mem::{human_bytes, peak_rss_bytes};
use flowsketch::report::summary::Summary;
use flowsketch::report::{self, Format, ReportMeta};
use flowsketch::rules::Definitions;
use flowsketch::scanner::{Progress, Scan, ScanConfig, Scanner};
use flowsketch::sketch::CounterKind;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Everything a scan needs, decided from the flags.
pub struct ScanPlan {
    pub definitions: Definitions,
    pub config: ScanConfig,
    pub format: Format,
    pub quiet: bool,
    /// Print each rule's keys and memory after the summary.
    pub stats: bool,
    /// Where to save the state (`--save-state`).
    pub save_state: Option<PathBuf>,
    /// Where to write the findings' sketches (`--export-sketches`).
    pub export_sketches: Option<PathBuf>,
}

impl ScanPlan {
    /// Where a report's findings came from: definitions and counter.
    pub fn meta(&self) -> ReportMeta {
        ReportMeta {
            definitions_version: self.definitions.version.clone(),
            definitions_origin: self.definitions.origin.clone(),
            counter: self.config.counter.name().to_string(),
        }
    }

    pub fn from_args(args: &ScanArgs) -> Result<ScanPlan, String> {
        let definitions = match &args.rules {
            Some(path) => Definitions::load(path).map_err(|e| e.to_string())?,
            None => Definitions::builtin(),
        };
        let counter = if args.exact {
            CounterKind::Exact
        } else {
            args.counter.into()
        };
        let mut config = ScanConfig {
            counter,
            // The reference counts every key exactly: no admission unless asked for.
            admit: args.admit.unwrap_or(if args.exact {
                0.0
            } else {
                ScanConfig::default().admit
            }),
            verify: !args.no_verify,
            evidence: args.evidence,
            stats: args.stats,
            input: InputOptions {
                no_mmap: args.no_mmap,
                format: args.input_format.map(Into::into),
            },
            save_state: args.save_state.is_some(),
            export_sketches: args.export_sketches.is_some(),
            ..ScanConfig::default()
        };
        if args.save_state.is_some() && counter == CounterKind::Hllpp {
            return Err(
                "--save-state keeps compact or exact counters; hllpp's state is not saved".into(),
            );
        }
        if let Some(n) = args.threads {
            let (n, lowered) = super::args::capped_threads(n);
            if let Some(why) = lowered {
                eprintln!("flowsketch: warning: {why}");
            }
            config.threads = n;
        }
        config.memory = args.memory;
        Ok(ScanPlan {
            definitions,
            config,
            format: args.format.into(),
            quiet: args.quiet,
            stats: args.stats,
            save_state: args.save_state.clone(),
            export_sketches: args.export_sketches.clone(),
        })
    }

    /// The plan of `flowsketch merge`: the same report, from saved states.
    pub fn from_merge_args(args: &MergeArgs) -> Result<ScanPlan, String> {
        let definitions = match &args.rules {
            Some(path) => Definitions::load(path).map_err(|e| e.to_string())?,
            None => Definitions::builtin(),
        };
        let mut config = ScanConfig {
            verify: !args.no_verify,
            evidence: args.evidence,
            input: InputOptions {
                no_mmap: args.no_mmap,
                format: None,
            },
            save_state: args.save_state.is_some(),
            export_sketches: args.export_sketches.is_some(),
            ..ScanConfig::default()
        };
        if let Some(n) = args.threads {
            config.threads = super::args::capped_threads(n).0;
        }
        Ok(ScanPlan {
            definitions,
            config,
            format: args.format.into(),
            quiet: args.quiet,
            stats: false,
            save_state: args.save_state.clone(),
            export_sketches: args.export_sketches.clone(),
        })
    }

    /// Scan `paths` with a progress line on a terminal (unless quiet); inactive rules are said first.
    pub fn scan(&self, paths: &[PathBuf]) -> Scan {
        if !self.quiet {
            for (id, why) in &self.definitions.inactive {
                eprintln!("flowsketch: rule {id} {why}");
            }
        }
        let progress = Progress::default();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            if !self.quiet {
                s.spawn(|| super::progress::show(&progress, &stop));
            }
            let scanner = Scanner::new(&self.definitions, self.config.clone());
            let scan = scanner.run_with(paths, &progress);
            stop.store(true, Ordering::Relaxed);
            scan
        })
    }
}

pub fn run(args: &ScanArgs) -> ExitCode {
    let plan = match ScanPlan::from_args(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("flowsketch: {e}");
            return ExitCode::Error;
        }
    };
    if args.is_cluster() {
        return run_cluster(&plan, args);
    }
    run_plan(&plan, &args.paths)
}

/// The cluster flags to a [`ClusterConfig`]: Timely's conventions (`-w`, `-n`, `-p`, `-h`), typed.
pub fn cluster_config(args: &ScanArgs, threads: usize) -> Result<ClusterConfig, String> {
    let addresses = match &args.hostfile {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the hostfile {}: {e}", path.display()))?;
            let all =
                parse_hostfile(&text).map_err(|e| format!("hostfile {}: {e}", path.display()))?;
            let n = args.processes.map_or(all.len(), |n| n.get());
            if all.len() < n {
                return Err(format!(
                    "hostfile {} has {} addresses for {n} processes",
                    path.display(),
                    all.len()
                ));
            }
            all[..n].to_vec()
        }
        // Timely's default: localhost, ports from 2101.
        None => (0..args.processes.map_or(1, |n| n.get()))
            .map(|i| format!("localhost:{}", 2101 + i))
            .collect(),
    };
    let process = args.process.unwrap_or(0);
    if process >= addresses.len() {
        return Err(format!(
            "--process {process} is not below the process count {}",
            addresses.len()
        ));
    }
    if !(args.connect_timeout > 0.0 && args.connect_timeout.is_finite()) {
        return Err(format!(
            "--connect-timeout must be a positive number of seconds; found {}",
            args.connect_timeout
        ));
    }
    Ok(ClusterConfig {
        workers: args.workers.map_or(threads, |w| w.get()),
        process,
        addresses: if addresses.len() == 1 {
            Vec::new()
        } else {
            addresses
        },
        local_inputs: args.local_inputs,
        connect_timeout: Duration::from_secs_f64(args.connect_timeout),
    })
}

/// This process's part of a cluster scan; process 0 reports as one process does.
fn run_cluster(plan: &ScanPlan, args: &ScanArgs) -> ExitCode {
    let cluster = match cluster_config(args, plan.config.threads) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("flowsketch: {e}");
            return ExitCode::Error;
        }
    };
    if !plan.quiet && cluster.process == 0 {
        for (id, why) in &plan.definitions.inactive {
            eprintln!("flowsketch: rule {id} {why}");
        }
    }
    let progress = Arc::new(Progress::default());
    let stop = AtomicBool::new(false);
    let result = std::thread::scope(|s| {
        if !plan.quiet {
            s.spawn(|| super::progress::show(&progress, &stop));
        }
        let scanner = Scanner::new(&plan.definitions, plan.config.clone());
        let result = scanner.run_cluster(&args.paths, &cluster, progress.clone());
        stop.store(true, Ordering::Relaxed);
        result
    });
    match result {
        Ok(Some(scan)) => report_plan(plan, &scan),
        Ok(None) => ExitCode::Clean,
        Err(e) => {
            eprintln!("flowsketch: {e}");
            ExitCode::Error
        }
    }
}

/// The exit code a scan earns: errors (and flow data that could not be read) first, then findings.
pub fn exit_code(scan: &Scan) -> ExitCode {
    if !scan.errors.is_empty() || scan.stats.lost.total() > 0 {
        ExitCode::Error
    } else if scan.findings.is_empty() {
        ExitCode::Clean
    } else {
        ExitCode::Findings
    }
}

/// `flowsketch merge`: saved states in, the report a scan of their inputs gives out.
pub fn merge(args: &MergeArgs) -> ExitCode {
    let plan = match ScanPlan::from_merge_args(args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("flowsketch: {e}");
            return ExitCode::Error;
        }
    };
    let progress = Progress::default();
    let scanner = Scanner::new(&plan.definitions, plan.config.clone());
    match scanner.merge(&args.states, &progress) {
        Ok(scan) => report_plan(&plan, &scan),
        Err(e) => {
            eprintln!("flowsketch: cannot merge: {e}");
            ExitCode::Error
        }
    }
}

/// Write what `--save-state` and `--export-sketches` asked for; false when it could not be written.
fn write_extras(plan: &ScanPlan, scan: &Scan) -> bool {
    let mut ok = true;
    if let Some(dir) = &plan.save_state {
        match &scan.state {
            Some(Ok(bytes)) => match flowsketch::state::write_dir(dir, bytes) {
                Ok(file) => {
                    if !plan.quiet {
                        eprintln!(
                            "flowsketch: state saved to {} ({})",
                            file.display(),
                            human_bytes(bytes.len() as u64)
                        );
                    }
                }
                Err(e) => {
                    eprintln!(
                        "flowsketch: cannot save the state into {}: {e}",
                        dir.display()
                    );
                    ok = false;
                }
            },
            Some(Err(why)) => {
                eprintln!("flowsketch: state not saved: {why}");
                ok = false;
            }
            None => {}
        }
    }
    if let Some(path) = &plan.export_sketches {
        let written = std::fs::File::create(path).and_then(|f| {
            let mut w = io::BufWriter::new(f);
            flowsketch::sketch::datasketches::write_json_lines(&mut w, &scan.sketches)?;
            w.flush()
        });
        match written {
            Ok(()) => {
                let missing = scan.findings.len() - scan.sketches.len();
                if missing > 0 && !plan.quiet {
                    eprintln!(
                        "flowsketch: warning: {missing} finding{} without a sketch in {} (sums, one-pass findings, \
                         or more distinct values than the verify pass keeps)",
                        if missing == 1 { "" } else { "s" },
                        path.display()
                    );
                }
            }
            Err(e) => {
                eprintln!(
                    "flowsketch: cannot write sketches to {}: {e}",
                    path.display()
                );
                ok = false;
            }
        }
    }
    ok
}

/// Run a scan plan over paths, writing the report to stdout and the summary to stderr.
pub fn run_plan(plan: &ScanPlan, paths: &[PathBuf]) -> ExitCode {
    let scan = plan.scan(paths);
    report_plan(plan, &scan)
}

/// Report a finished scan (or merge): findings to stdout, summary and problems to stderr, then the exit code.
fn report_plan(plan: &ScanPlan, scan: &Scan) -> ExitCode {
    let extras_ok = write_extras(plan, scan);
    if !plan.quiet {
        for n in &scan.notes {
            eprintln!("flowsketch: warning: {n}");
        }
        for w in &scan.warnings {
            eprintln!("flowsketch: warning: {w}");
        }
    }
    for e in &scan.errors {
        eprintln!("flowsketch: {e}");
    }
    let summary = scan.summary(peak_rss_bytes());
    // A merge reports the counter its states were counted with.
    let mut meta = plan.meta();
    meta.counter = scan.counter.to_string();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let written = report::write(&mut out, plan.format, &meta, &scan.findings)
        .and_then(|()| {
            if plan.format == Format::Json {
                serde_json::to_writer(&mut out, &summary.object(&meta))?;
                out.write_all(b"\n")?;
            }
            Ok(())
        })
        .and_then(|()| out.flush());
    if let Err(e) = written {
        // A closed pipe (`| head`) is the reader saying it has seen enough, not an error.
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("flowsketch: cannot write the report: {e}");
            return ExitCode::Error;
        }
    }
    // Said even with --quiet: it is why the exit code is 2.
    if let Some(lost) = scan.stats.lost.describe() {
        eprintln!("flowsketch: flow data not read: {lost}");
    }
    if !plan.quiet {
        print_summary(&summary, scan);
    }
    if plan.stats {
        print_stats(scan);
    }
    if !extras_ok {
        return ExitCode::Error;
    }
    exit_code(scan)
}

fn print_summary(s: &Summary, scan: &Scan) {
    let peak = s
        .peak_bytes
        .map_or_else(|| "unknown".to_string(), human_bytes);
    let rate = if s.secs > 0.0 {
        s.flows as f64 / s.secs
    } else {
        0.0
    };
    eprintln!(
        "flowsketch: {} input{} ({} with errors, {} error{}, {} warnings), {} flows, {} records skipped, {} keys tracked, peak memory {peak}, {:.2} s, {:.2} M flows/s",
        s.inputs,
        if s.inputs == 1 { "" } else { "s" },
        s.inputs_failed,
        s.errors,
        if s.errors == 1 { "" } else { "s" },
        s.warnings,
        s.flows,
        s.skipped,
        s.keys,
        s.secs,
        rate / 1e6
    );
    if let Some(n) = s.merged {
        eprintln!(
            "flowsketch: {n} saved state{} merged; a rule's admit_at is then the sum of their A-1, plus 1",
            if n == 1 { "" } else { "s" }
        );
    }
    for r in &s.rules {
        if r.raises > 0 {
            eprintln!(
                "flowsketch: warning: rule {}: admission raised to a = {:.2} (A = {}) to stay within --memory: \
                 one pass now guarantees only keys at {:.2} times the threshold",
                r.id,
                r.admit_fraction,
                r.admit_at,
                1.0 + r.admit_fraction
            );
        }
        if r.over_budget {
            eprintln!(
                "flowsketch: warning: rule {}: {} keys outgrew --memory with nothing left to tighten; no key was dropped",
                r.id, r.keys_admitted
            );
        }
    }
    if let Some(note) = scan.not_flow_files_note() {
        eprintln!("flowsketch: note: {note}");
    }
    eprintln!(
        "flowsketch: {} ({} s + {} s)",
        s.guarantee.describe(),
        format_args!("{:.2}", scan.secs[0]),
        format_args!("{:.2}", scan.secs[1])
    );
}

/// `--stats`: per rule, what it matched, what it admitted and what that held.
fn print_stats(scan: &Scan) {
    for r in &scan.rules {
        let seen = r
            .keys_seen
            .map_or_else(|| "too many to estimate".to_string(), |k| format!("~{k}"));
        let admit = if r.admit_at < 2 {
            "every key".to_string()
        } else {
            format!("at {} (a = {:.2})", r.admit_at, r.admit_fraction())
        };
        eprintln!(
            "flowsketch: rule {}: {} flows matched, keys seen {seen}, admitted {} ({admit}; {:.0} % of updates), \
             evicted {}, candidates {}, admission {}, tables {}, counters {}",
            r.id,
            r.flows,
            r.keys_admitted,
            r.updates_admitted as f64 * 100.0 / r.updates.max(1) as f64,
            r.evicted,
            r.candidates,
            human_bytes(r.admission_bytes as u64),
            human_bytes(r.tables.table_bytes as u64),
            human_bytes(r.tables.counter_bytes as u64)
        );
    }
}
