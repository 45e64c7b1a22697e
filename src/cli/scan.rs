//! `flowsketch scan`: definitions in, inputs opened in order, engine run, findings written, summary on stderr.

use super::args::ScanArgs;
use super::progress::Progress;
use super::ExitCode;
use flowsketch::engine::{self, Footprint, InputError, ScanOptions, ScanStats};
use flowsketch::formats::Opener;
use flowsketch::input::{self, InputOptions};
use flowsketch::mem::{human_bytes, peak_rss_bytes};
use flowsketch::report::{self, Format, ReportMeta};
use flowsketch::rules::Definitions;
use flowsketch::sketch::{self, DistinctCounter};
use std::io::{self, Write};
use std::time::Instant;

/// Everything a scan needs, decided from the flags.
pub struct ScanPlan {
    pub definitions: Definitions,
    pub options: ScanOptions,
    pub input: InputOptions,
    pub format: Format,
    pub counter: String,
    pub quiet: bool,
    /// Print each rule's keys and memory after the summary.
    pub stats: bool,
}

impl ScanPlan {
    /// Where a report's findings came from: definitions and counter.
    pub fn meta(&self) -> ReportMeta {
        ReportMeta {
            definitions_version: self.definitions.version.clone(),
            definitions_origin: self.definitions.origin.clone(),
            counter: self.counter.clone(),
        }
    }

    pub fn from_args(args: &ScanArgs) -> Result<ScanPlan, String> {
        let definitions = match &args.rules {
            Some(path) => Definitions::load(path).map_err(|e| e.to_string())?,
            None => Definitions::builtin(),
        };
        let counter = if args.exact {
            "exact".to_string()
        } else {
            args.counter
                .clone()
                .unwrap_or_else(|| "compact".to_string())
        };
        let mut options = ScanOptions::default();
        if let Some(n) = args.threads {
            let (n, lowered) = super::args::capped_threads(n);
            if let Some(why) = lowered {
                eprintln!("flowsketch: warning: {why}");
            }
            options.threads = n;
        }
        Ok(ScanPlan {
            definitions,
            options,
            input: InputOptions {
                no_mmap: args.no_mmap,
                format: args.input_format.clone(),
            },
            format: args.format.parse()?,
            counter,
            quiet: args.quiet,
            stats: args.stats,
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
    run_plan(&plan, &args.paths)
}

/// What a scan produced, before anything is printed.
pub struct Outcome {
    pub findings: Vec<report::Finding>,
    pub errors: Vec<InputError>,
    pub stats: ScanStats,
    pub keys: usize,
    pub secs: f64,
    /// Problems that did not stop decoding (said on stderr as they were found).
    pub warnings: usize,
    /// Each rule's id and what its tables hold, when the plan asks for them.
    pub footprints: Vec<(String, Footprint)>,
}

impl Outcome {
    pub fn exit_code(&self) -> ExitCode {
        // Flow data lost (data sets without a template, blocks of unknown type, ...) is an error too.
        if !self.errors.is_empty() || self.stats.lost.total() > 0 {
            ExitCode::Error
        } else if self.findings.is_empty() {
            ExitCode::Clean
        } else {
            ExitCode::Findings
        }
    }
}

/// Run a scan plan over paths, writing the report to stdout and the summary to stderr.
pub fn run_plan(plan: &ScanPlan, paths: &[std::path::PathBuf]) -> ExitCode {
    let outcome = execute(plan, paths);
    let meta = plan.meta();
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let written =
        report::write(&mut out, plan.format, &meta, &outcome.findings).and_then(|()| out.flush());
    if let Err(e) = written {
        // A closed pipe (`| head`) is the reader saying it has seen enough, not an error.
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("flowsketch: cannot write the report: {e}");
            return ExitCode::Error;
        }
    }
    // Said even with --quiet: it is why the exit code is 2.
    if let Some(lost) = outcome.stats.lost.describe() {
        eprintln!("flowsketch: flow data not read: {lost}");
    }
    if !plan.quiet {
        summary(&outcome);
    }
    for (id, f) in &outcome.footprints {
        eprintln!(
            "flowsketch: rule {id}: {} keys, tables {}, counters {}",
            f.keys,
            human_bytes(f.table_bytes as u64),
            human_bytes(f.counter_bytes as u64)
        );
    }
    outcome.exit_code()
}

/// Scan without printing findings; inactive rules and input errors are said on stderr as they are known.
pub fn execute(plan: &ScanPlan, paths: &[std::path::PathBuf]) -> Outcome {
    match plan.counter.as_str() {
        "exact" => scan_with::<sketch::Exact>(plan, paths),
        "hllpp" => scan_with::<sketch::Hllpp>(plan, paths),
        _ => scan_with::<sketch::Compact>(plan, paths),
    }
}

fn scan_with<C: DistinctCounter>(plan: &ScanPlan, paths: &[std::path::PathBuf]) -> Outcome {
    let start = Instant::now();
    let defs = &plan.definitions;
    for (id, why) in &defs.inactive {
        eprintln!("flowsketch: rule {id} {why}");
    }
    let walked = input::expand_paths(paths);
    for note in walked.notes() {
        eprintln!("flowsketch: warning: {note}");
    }
    let (sources, walk_errors) = (walked.sources, walked.errors);
    let progress = Progress::start(!plan.quiet, sources.len());
    let opener = Opener::new();
    let mut warnings = 0;
    let opened = sources.iter().map(|s| {
        let input = input::open(s, &plan.input, &opener);
        if let Ok(i) = &input {
            // Said at once, in input order: data before its template, rejected templates, cut captures.
            for w in i.decoder.warnings() {
                eprintln!("flowsketch: warning: {}: {w}", i.name);
                warnings += 1;
            }
        }
        input
    });
    let mut result = engine::scan::<C, _>(&defs.rules, opened, &plan.options, &progress.flows);
    progress.finish();
    let mut errors: Vec<InputError> = walk_errors;
    errors.extend(result.errors.iter().cloned());
    for e in &errors {
        eprintln!("flowsketch: {e}");
    }
    let findings = report::findings(defs, &mut result);
    let (stats, keys) = (result.stats, result.keys());
    let footprints = if plan.stats {
        (defs.rules.iter().enumerate())
            .map(|(i, r)| (r.id.clone(), result.footprint(i)))
            .collect()
    } else {
        Vec::new()
    };
    // One scan per process: freeing millions of per-host counters one by one would only delay the exit, and the
    // system takes the memory back at once.
    std::mem::forget(result);
    Outcome {
        warnings,
        findings,
        errors,
        stats,
        keys,
        secs: start.elapsed().as_secs_f64(),
        footprints,
    }
}

fn summary(o: &Outcome) {
    let stats = &o.stats;
    let peak = peak_rss_bytes().map_or_else(|| "unknown".to_string(), human_bytes);
    let rate = if o.secs > 0.0 {
        stats.flows as f64 / o.secs
    } else {
        0.0
    };
    let errors = o.errors.len();
    eprintln!(
        "flowsketch: {} input{} ({} with errors, {errors} error{}, {} warnings), {} flows, {} records skipped, {} keys tracked, peak memory {peak}, {:.2} s, {:.2} M flows/s",
        stats.inputs,
        if stats.inputs == 1 { "" } else { "s" },
        stats.inputs_failed,
        if errors == 1 { "" } else { "s" },
        o.warnings,
        stats.flows,
        stats.skipped,
        o.keys,
        o.secs,
        rate / 1e6
    );
}
