//! The command line, as clap reads it. Nothing here does work: `main` turns these into the library's types.

use clap::{Args, Parser, Subcommand};
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
}

#[derive(Args, Debug, Clone)]
pub struct ScanArgs {
    /// Files and folders to scan; folders are read recursively, `-` is standard input.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Definitions file (TOML); the built-in defaults when not given.
    #[arg(short = 'r', long = "rules", value_name = "FILE")]
    pub rules: Option<PathBuf>,

    /// Output format.
    #[arg(short = 'f', long, value_name = "FORMAT", default_value = "text",
          value_parser = ["text", "json", "csv"])]
    pub format: String,

    /// Worker threads.
    #[arg(
        short = 'j',
        long,
        value_name = "N",
        long_help = "Worker threads: each decodes its share of the input and owns the per-host state of the hosts \
                       whose hash routes to it. Defaults to the number of CPUs; at most 4 per CPU and 256."
    )]
    pub threads: Option<NonZeroUsize>,

    /// Count exactly (same as --counter exact).
    #[arg(long, conflicts_with = "counter")]
    pub exact: bool,

    /// Distinct-count backend: compact (exact while small, then HyperLogLog), exact, or hllpp (hyperloglogplus).
    #[arg(long, value_name = "KIND", value_parser = ["compact", "exact", "hllpp"])]
    pub counter: Option<String>,

    /// Read files into memory instead of memory-mapping them.
    #[arg(long)]
    pub no_mmap: bool,

    /// Reader to use instead of detecting the format from the content.
    #[arg(long, value_name = "FORMAT", value_parser = ["nfcapd", "flowtools", "netflow", "pcap", "csv"])]
    pub input_format: Option<String>,

    /// No progress display and no summary; findings and errors only.
    #[arg(short, long)]
    pub quiet: bool,

    /// After the summary, each rule's keys and memory: its tables' slot arrays and its counters' heap.
    #[arg(long, conflicts_with = "quiet")]
    pub stats: bool,
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
    /// Keep the generated capture in this folder instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,

    /// Background flows to generate.
    #[arg(long, default_value_t = 200_000)]
    pub flows: u64,

    /// Seed of the generator (the same seed gives the same capture).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,

    /// Worker threads for the scan.
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
    /// Folder to write the capture files and truth.json into (created if missing).
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
}

#[derive(Args, Debug, Clone)]
pub struct CompareArgs {
    /// Files and folders to scan (each side reads them all).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Definitions file (TOML); the built-in defaults when not given.
    #[arg(short = 'r', long = "rules", value_name = "FILE")]
    pub rules: Option<PathBuf>,

    /// Output format.
    #[arg(short = 'f', long, value_name = "FORMAT", default_value = "text",
          value_parser = ["text", "json"])]
    pub format: String,

    /// Worker threads of each scan.
    #[arg(short = 'j', long, value_name = "N")]
    pub threads: Option<NonZeroUsize>,

    /// The counter compared against exact counting.
    #[arg(long, value_name = "KIND", default_value = "compact", value_parser = ["compact", "exact", "hllpp"])]
    pub counter: String,

    /// Read files into memory instead of memory-mapping them.
    #[arg(long)]
    pub no_mmap: bool,

    /// Reader to use instead of detecting the format from the content.
    #[arg(long, value_name = "FORMAT", value_parser = ["nfcapd", "flowtools", "netflow", "pcap", "csv"])]
    pub input_format: Option<String>,

    /// Write a log-log SVG of estimated against exact counts of one rule (see --plot-rule).
    #[arg(long, value_name = "FILE")]
    pub plot: Option<PathBuf>,

    /// The rule the plot shows.
    #[arg(long, value_name = "ID", default_value = "FS1")]
    pub plot_rule: String,

    /// Internal: scan with this counter alone and write machine-readable counts to stdout (each side of a
    /// comparison runs as a child process so its time and peak memory are its own).
    #[arg(long, value_name = "KIND", hide = true, value_parser = ["compact", "exact", "hllpp"])]
    pub side: Option<String>,
}
