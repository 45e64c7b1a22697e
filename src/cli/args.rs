//! The command line, as clap reads it. Nothing here does work: `main` turns these into the library's types.

use clap::{Args, Parser, Subcommand, ValueEnum};
use flowsketch::formats::detect::Kind;
use flowsketch::report::Format;
use flowsketch::sketch::CounterKind;
use std::num::NonZeroUsize;
use std::path::PathBuf;

/// Worker threads per CPU a scan runs at most, and the most in all. Each worker keeps buffers for every peer, so
/// memory grows with the square of the count; past a few per CPU, more threads add memory and no speed.
pub const MAX_THREADS_PER_CPU: usize = 4;
pub const MAX_THREADS: usize = 256;

/// The worker count for `-j N`: N, or the cap when N is above it, with the warning to give then.
pub fn capped_threads(requested: NonZeroUsize) -> (usize, Option<String>) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cap = (cpus * MAX_THREADS_PER_CPU).min(MAX_THREADS);
    let n = requested.get();
    if n <= cap {
        return (n, None);
    }
    let why = format!(
        "-j {n} lowered to {cap} ({MAX_THREADS_PER_CPU} per CPU on {cpus} CPUs, {MAX_THREADS} at most): more \
         workers would only take memory"
    );
    (cap, Some(why))
}

#[derive(Parser, Debug)]
#[command(
    name = "flowsketch",
    version,
    about = "Find the suspicious hosts in flow data (nfdump, flow-tools, NetFlow/IPFIX, CSV) with memory-efficient sketches",
    after_help = "Exit codes: 0 nothing found, 1 findings, 2 errors (as anti-virus scanners use them)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Scan flow files and folders and report the hosts the definitions flag.
    Scan(ScanArgs),
    /// Write a small capture with planted scanners to a temporary folder, scan it, and show the findings.
    Demo(DemoArgs),
    /// Print or check definitions files.
    Rules(RulesArgs),
    /// Generate synthetic traffic with planted events as rotated nfcapd files, with the truth beside them.
    Gen(GenArgs),
    /// Scan with a sketch counter and with the exact counter, and report how well the sketch agrees.
    Compare(CompareArgs),
    /// Run a scan as N local processes of one cluster (for trying cluster scans, and for tests).
    Cluster(ClusterArgs),
    /// Merge states saved by `scan --save-state` and report them as one scan of all their inputs.
    Merge(MergeArgs),
}

/// What `scan --help` ends with.
pub const EXIT_CODES: &str = "Exit codes:\n  0  nothing found\n  1  at least one finding\n  2  an error: an input \
could not be read or decoded, flow data was lost, bad flags or definitions (the other inputs are still scanned)";

#[derive(Args, Debug, Clone)]
// `-h` is the hostfile, as in Timely's conventions; help is `--help`.
#[command(disable_help_flag = true, after_help = EXIT_CODES)]
pub struct ScanArgs {
    /// Print help (`-h` is --hostfile here).
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,

    /// Files and folders to scan; folders are read recursively, `-` is standard input.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Definitions file (TOML). [default: the built-in definitions]
    #[arg(short = 'r', long = "rules", value_name = "FILE")]
    pub rules: Option<PathBuf>,

    /// Output format.
    #[arg(short = 'f', long, value_name = "FORMAT", value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,

    /// Worker threads. [default: the number of CPUs]
    #[arg(
        short = 'j',
        long,
        value_name = "N",
        long_help = "Worker threads: each decodes its share of the input and owns the per-host state of the hosts \
                       whose hash routes to it. At most 4 per CPU and 256. [default: the number of CPUs]"
    )]
    pub threads: Option<NonZeroUsize>,

    /// Count every key exactly in one table entry each (same as --counter exact --admit 0): the reference.
    #[arg(long, conflicts_with = "counter")]
    pub exact: bool,

    /// Distinct-count backend of the first pass.
    #[arg(long, value_name = "KIND", value_enum, default_value_t = CounterArg::Compact)]
    pub counter: CounterArg,

    /// Admission fraction a: a key gets a table entry once a sketch says its count may have reached a times its
    /// rule's threshold; 0 gives every key an entry. [default: 0.1, 0 with --exact]
    #[arg(long, value_name = "A", value_parser = parse_admit, long_help = "Admission fraction a, from 0 to 1: a \
        key gets a table entry once a count-min sketch says its count may have reached a times its rule's threshold \
        T. Before that the key can miss at most a*T of its count, so one pass never misses a key at (1+a)*T or more \
        and never reports one below T, and the verify pass makes every count exact. 0 gives every key an entry at \
        its first flow. [default: 0.1, 0 with --exact]")]
    pub admit: Option<f64>,

    /// Memory for the admission sketches and tables (like 256M, 2G); admission tightens to stay within it.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "256M", long_help = "Memory the \
        admission sketches and tables may hold together, in bytes with an optional K, M, G or T (powers of 1024). \
        When the admitted keys would outgrow it, the scan doubles the admission fraction of the growing rule (up \
        to 1), takes out of its table the keys whose bound is below the new threshold (they come back if they \
        reach it, so no finding is lost), says so, and states the guarantee it then gives.")]
    pub memory: usize,

    /// One pass only: do not count the candidates again (findings then carry the admission bound and a sample as
    /// evidence). [default: two passes for files]
    #[arg(
        long,
        long_help = "One pass only. By default, when every input can be read twice (files, not \
        standard input), a second pass counts the keys that could be over a threshold again from every flow, so \
        findings and counts are exactly those of exact counting. Without it findings carry the admission bound: \
        none below its threshold, none at (1+a) times it missed, and counts may lack up to A-1."
    )]
    pub no_verify: bool,

    /// Peers, ports and protocols each finding names, most flows first (one pass names at most 8).
    #[arg(long, value_name = "K", default_value_t = 5)]
    pub evidence: usize,

    /// Read files into memory instead of memory-mapping them. [default: files are memory-mapped]
    #[arg(long)]
    pub no_mmap: bool,

    /// Reader to use instead of detecting the format from the content. [default: detected per input]
    #[arg(long, value_name = "FORMAT", value_enum)]
    pub input_format: Option<InputFormat>,

    /// No progress display and no summary; findings and errors only. [default: progress on a terminal, and a
    /// summary on stderr]
    #[arg(short, long)]
    pub quiet: bool,

    /// After the summary, each rule's keys and memory: its tables' slot arrays and its counters' heap.
    #[arg(long, conflicts_with = "quiet")]
    pub stats: bool,

    /// Cluster: worker threads in this process (Timely's -w); any cluster flag runs the scan on Timely.
    #[arg(
        short = 'w',
        long,
        value_name = "N",
        help_heading = "Cluster (docs/CLUSTER.md)"
    )]
    pub workers: Option<NonZeroUsize>,

    /// Cluster: the number of processes (Timely's -n); the first N lines of the hostfile.
    #[arg(
        short = 'n',
        long,
        value_name = "N",
        help_heading = "Cluster (docs/CLUSTER.md)"
    )]
    pub processes: Option<NonZeroUsize>,

    /// Cluster: this process's index, from 0 (Timely's -p); process 0 prints the findings.
    #[arg(
        short = 'p',
        long,
        value_name = "I",
        help_heading = "Cluster (docs/CLUSTER.md)"
    )]
    pub process: Option<usize>,

    /// Cluster: a file of host:port lines, process 0 first (Timely's -h) [default: localhost:2101, 2102, ...].
    #[arg(
        short = 'h',
        long,
        value_name = "FILE",
        help_heading = "Cluster (docs/CLUSTER.md)"
    )]
    pub hostfile: Option<PathBuf>,

    /// Cluster: each process reads only its own paths (else every process is given the same paths and reads a
    /// share of their chunks).
    #[arg(long, help_heading = "Cluster (docs/CLUSTER.md)")]
    pub local_inputs: bool,

    /// Cluster: seconds to wait for every other process to connect.
    #[arg(
        long,
        value_name = "SECS",
        default_value_t = 30.0,
        help_heading = "Cluster (docs/CLUSTER.md)"
    )]
    pub connect_timeout: f64,

    /// Save every rule's counts into DIR (flowsketch.state), for `flowsketch merge`.
    #[arg(
        long,
        value_name = "DIR",
        long_help = "Save the first pass's state of every rule (admission sketches, \
        tables with counts, flows and times) and the inputs it covers (path, size, modification time) into \
        DIR/flowsketch.state: a versioned, checksummed file (docs/STATE.md) that `flowsketch merge` adds up with \
        others. States meant to be merged by n should be scanned with --admit at most 1/n (docs/ACCURACY.md)."
    )]
    pub save_state: Option<PathBuf>,

    /// Write each finding's distinct values as an Apache DataSketches HLL sketch (JSON lines) to FILE.
    #[arg(
        long,
        value_name = "FILE",
        long_help = "Write each finding's distinct values as an Apache \
        DataSketches HLL sketch (HLL_8, lgConfigK 12, base64) to FILE, one JSON line per finding, for Spark \
        (hll_union_agg), Druid or PostgreSQL to merge with their own. The sketches are built from the values the \
        verify pass sees; docs/STATE.md says which bytes are hashed."
    )]
    pub export_sketches: Option<PathBuf>,
}

impl ScanArgs {
    /// Whether any cluster flag was given: the scan then runs on Timely.
    pub fn is_cluster(&self) -> bool {
        self.workers.is_some()
            || self.processes.is_some()
            || self.process.is_some()
            || self.hostfile.is_some()
            || self.local_inputs
    }
}

#[derive(Args, Debug, Clone)]
pub struct ClusterArgs {
    /// Processes to start.
    #[arg(short = 'n', long, value_name = "N")]
    pub processes: NonZeroUsize,

    /// Worker threads per process [default: 1].
    #[arg(short = 'w', long, value_name = "N")]
    pub workers: Option<NonZeroUsize>,

    /// Seconds the whole run may take before every process is stopped (no limit when not given).
    #[arg(long, value_name = "SECS")]
    pub timeout: Option<f64>,

    /// The command each process runs: `scan` and its flags and paths (after `--`); the launcher adds -n, -p, -h
    /// and -w, gives each process 1/N of the scan's --memory (they share this machine), and replaces `{p}` in any
    /// argument with the process's index (with --local-inputs: `part{p}`).
    #[arg(required = true, last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Args, Debug, Clone)]
pub struct MergeArgs {
    /// State directories (or their flowsketch.state files) written by `scan --save-state`.
    #[arg(required = true, value_name = "DIR")]
    pub states: Vec<PathBuf>,

    /// Definitions file the states were scanned with; the built-in defaults when not given.
    #[arg(short = 'r', long = "rules", value_name = "FILE")]
    pub rules: Option<PathBuf>,

    /// Output format.
    #[arg(short = 'f', long, value_name = "FORMAT", value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,

    /// Worker threads of the verify pass.
    #[arg(short = 'j', long, value_name = "N")]
    pub threads: Option<NonZeroUsize>,

    /// Report the merged tables without reading the inputs again (findings carry the bound of n states).
    #[arg(long)]
    pub no_verify: bool,

    /// Peers, ports and protocols each finding names, most flows first.
    #[arg(long, value_name = "K", default_value_t = 5)]
    pub evidence: usize,

    /// Read inputs into memory instead of memory-mapping them (verify pass).
    #[arg(long)]
    pub no_mmap: bool,

    /// No summary; findings and errors only.
    #[arg(short, long)]
    pub quiet: bool,

    /// Save the merged state into DIR, to merge again later.
    #[arg(long, value_name = "DIR")]
    pub save_state: Option<PathBuf>,

    /// Write each finding's distinct values as a DataSketches HLL sketch to FILE (see `scan --export-sketches`).
    #[arg(long, value_name = "FILE")]
    pub export_sketches: Option<PathBuf>,
}

/// Output formats of findings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Text,
    /// JSON lines: one object per finding, then a summary record.
    Json,
    /// CSV with a header row.
    Csv,
}

impl From<OutputFormat> for Format {
    fn from(f: OutputFormat) -> Format {
        match f {
            OutputFormat::Text => Format::Text,
            OutputFormat::Json => Format::Json,
            OutputFormat::Csv => Format::Csv,
        }
    }
}

/// Distinct-count backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CounterArg {
    /// Exact up to 383 distinct values, then HyperLogLog (1.6 % standard error); 8 bytes when idle.
    Compact,
    /// A hash set of the values.
    Exact,
    /// The hyperloglogplus crate's HyperLogLog++, for comparison.
    Hllpp,
}

impl From<CounterArg> for CounterKind {
    fn from(c: CounterArg) -> CounterKind {
        match c {
            CounterArg::Compact => CounterKind::Compact,
            CounterArg::Exact => CounterKind::Exact,
            CounterArg::Hllpp => CounterKind::Hllpp,
        }
    }
}

/// Readers `--input-format` can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InputFormat {
    /// nfdump nfcapd files (layout 1 and 2).
    Nfcapd,
    /// flow-tools files (stream v1/v3, export v1/v5/v7, zlib or not).
    Flowtools,
    /// Raw NetFlow v5/v9/IPFIX export packets, one UDP payload per file.
    Netflow,
    /// pcap/pcapng captures of NetFlow v5/v9/IPFIX exporter traffic.
    Pcap,
    /// nfdump -o csv or flow-tools flow-export -f2 CSV.
    Csv,
}

impl From<InputFormat> for Kind {
    fn from(f: InputFormat) -> Kind {
        match f {
            InputFormat::Nfcapd => Kind::Nfcapd,
            InputFormat::Flowtools => Kind::FlowTools,
            InputFormat::Netflow => Kind::Netflow,
            InputFormat::Pcap => Kind::Pcap,
            InputFormat::Csv => Kind::Csv,
        }
    }
}

/// `--admit`: a fraction from 0 to 1.
fn parse_admit(s: &str) -> Result<f64, String> {
    let a: f64 = s
        .parse()
        .map_err(|_| format!("expected a fraction from 0 to 1, like 0.1; found '{s}'"))?;
    if (0.0..=1.0).contains(&a) {
        Ok(a)
    } else {
        Err(format!("expected a fraction from 0 to 1; found {a}"))
    }
}

/// `--memory`: bytes with an optional K, M, G or T suffix (powers of 1024; `B` and `iB` may follow).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("expected a size like 256M or 2G; found '{s}'"))?;
    let shift = match unit.trim().trim_end_matches("iB").trim_end_matches('B') {
        "" => 0,
        "K" | "k" => 10,
        "M" | "m" => 20,
        "G" | "g" => 30,
        "T" | "t" => 40,
        _ => return Err(format!("expected a size like 256M or 2G; found '{s}'")),
    };
    let bytes = n
        .checked_mul(1 << shift)
        .filter(|&b| b <= usize::MAX as u64)
        .ok_or_else(|| format!("size '{s}' is too large"))?;
    if bytes < 1 << 20 {
        return Err(format!("--memory must be at least 1M; found '{s}'"));
    }
    Ok(bytes as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thread_counts_are_capped_with_a_warning() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let one = NonZeroUsize::new(1).unwrap();
        assert_eq!(capped_threads(one), (1, None));
        let (n, why) = capped_threads(NonZeroUsize::new(20_000).unwrap());
        assert_eq!(n, (cpus * MAX_THREADS_PER_CPU).min(MAX_THREADS));
        assert!(why.unwrap().starts_with("-j 20000 lowered to"));
    }
}

#[derive(Args, Debug, Clone)]
pub struct DemoArgs {
    /// Keep the generated capture in this folder. [default: a temporary folder, deleted after the demo]
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,

    /// Background flows to generate.
    #[arg(long, default_value_t = 200_000)]
    pub flows: u64,

    /// Seed of the generator (the same seed gives the same capture).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Worker threads for the scan. [default: the number of CPUs]
    #[arg(short = 'j', long, value_name = "N")]
    pub threads: Option<NonZeroUsize>,
}

#[derive(Args, Debug, Clone)]
pub struct RulesArgs {
    /// Print the built-in default definitions (a starting point for a site's file).
    #[arg(long, conflicts_with = "check")]
    pub print: bool,

    /// Check a definitions file: exit 0 when valid, 2 with one message per error when not.
    #[arg(long, value_name = "FILE")]
    pub check: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct GenArgs {
    /// Folder to write the capture files and truth.json into (created if missing; required).
    #[arg(short, long, value_name = "DIR")]
    pub output: PathBuf,

    /// Background flows (planted events add a little over 80,000 of their own).
    #[arg(long, default_value_t = 1_000_000)]
    pub flows: u64,

    /// Size of the source population.
    #[arg(long, default_value_t = 100_000)]
    pub sources: u64,

    /// Seed (the same seed and sizes give the same files).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Share of IPv6 sources, 0 to 1.
    #[arg(long, default_value_t = 0.1)]
    pub v6: f64,

    /// Time the capture spans (like 1h, 30m, 1d).
    #[arg(long, default_value = "1h")]
    pub span: String,

    /// Start a new file every this long, as nfcapd rotates (0 = one file).
    #[arg(long, default_value = "5m")]
    pub rotate: String,

    /// Block compression of the files.
    #[arg(long, default_value = "lz4", value_parser = ["none", "lz4"])]
    pub compression: String,

    /// Background traffic only, no planted events.
    #[arg(long)]
    pub no_plant: bool,

    /// Add a SYN flood at one more victim from this many spoofed sources, one flow each (in 176.0.0.0/4).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub spoofed: u64,
}

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Files and folders to scan (each side reads them all).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Definitions file (TOML). [default: the built-in definitions]
    #[arg(short = 'r', long = "rules", value_name = "FILE")]
    pub rules: Option<PathBuf>,

    /// Output format: text or json.
    #[arg(short = 'f', long, value_name = "FORMAT", value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,

    /// Worker threads of each scan. [default: the number of CPUs]
    #[arg(short = 'j', long, value_name = "N")]
    pub threads: Option<NonZeroUsize>,

    /// The counter compared against exact counting.
    #[arg(long, value_name = "KIND", value_enum, default_value_t = CounterArg::Compact)]
    pub counter: CounterArg,

    /// Admission fraction of the sketch side (see `scan --admit`). [default: 0.1]
    #[arg(long, value_name = "A", value_parser = parse_admit)]
    pub admit: Option<f64>,

    /// Memory budget of the sketch side (see `scan --memory`).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "256M")]
    pub memory: usize,

    /// The sketch side runs one pass (see `scan --no-verify`).
    #[arg(long)]
    pub no_verify: bool,

    /// Read files into memory instead of memory-mapping them.
    #[arg(long)]
    pub no_mmap: bool,

    /// Reader to use instead of detecting the format from the content. [default: detected per input]
    #[arg(long, value_name = "FORMAT", value_enum)]
    pub input_format: Option<InputFormat>,

    /// Write a log-log SVG of estimated against exact counts of one rule (see --plot-rule). [default: no plot]
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,

    /// The rule the plot shows.
    #[arg(long, value_name = "ID", default_value = "FS1")]
    pub plot_rule: String,

    /// Internal: scan with this counter alone and write machine-readable counts to stdout (each side of a
    /// comparison runs as a child process so its time and peak memory are its own).
    #[arg(long, value_name = "KIND", hide = true, value_enum)]
    pub side: Option<CounterArg>,
}
