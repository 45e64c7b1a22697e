//! flowsketch: the command-line tool. See `flowsketch --help`.

mod cli;

use clap::Parser;
use cli::args::{Cli, Command};

/// mimalloc: see docs/BENCHMARKS.md (the per-host counters make millions of small allocations).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc.h, v2 and v3 alike (the Rust binding does not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // Return freed memory to the system at once. It cut the peak by a fifth when tables grew through the allocator;
    // since tables are maps of their own (engine/region.rs) it measures neither faster nor slower nor smaller
    // (docs/BENCHMARKS.md, commit 000ade4); kept, as the setting every figure in docs/ was measured with.
    let cli = Cli::parse();
    // A cluster scan never returns freed memory while it runs: buffers of records cross between threads and
    // processes all the time, and each one returned came back as a fresh huge page for the kernel to clear
    // (returned at once, a tenth of the run; after mimalloc's default 10 ms, a quarter of the scan's system
    // time: docs/BENCHMARKS.md, "Cluster"). The peak is the same; the process ends with the scan.
    let cluster = matches!(&cli.command, Command::Scan(a) if a.is_cluster());
    let purge_delay = if cluster { -1 } else { 0 };
    // SAFETY: sets a process-wide allocator option before any other thread exists (parsing starts none).
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, purge_delay) };
    let code = match &cli.command {
        Command::Scan(a) => cli::scan::run(a),
        Command::Demo(a) => cli::demo::run(a),
        Command::Rules(a) => cli::rules_cmd::run(a),
        Command::Gen(a) => cli::gen::run(a),
        Command::Compare(a) => cli::compare::run(a),
        Command::Cluster(a) => cli::cluster::run(a),
        Command::Merge(a) => cli::scan::merge(a),
    };
    std::process::exit(code as i32);
}
