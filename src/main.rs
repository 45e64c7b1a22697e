//! flowsketch: the command-line tool. See `flowsketch --help`.

mod cli;

use clap::Parser;
use cli::args::{Cli, Command};

/// mimalloc: see docs/BENCHMARKS.md (the per-host counters make millions of small allocations).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc v2's mimalloc.h (the Rust binding does not name it).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

fn main() {
    // Return freed memory to the system at once. It cut the peak by a fifth when tables grew through the allocator;
    // since tables are maps of their own (engine/region.rs) it measures neither faster nor slower nor smaller
    // (docs/BENCHMARKS.md, commit 000ade4); kept, as the setting every figure in docs/ was measured with.
    let cli = Cli::parse();
    // Not in a cluster scan: there, buffers of records cross between threads and processes all the time, and
    // returning each freed one to the system at once made the kernel's page faults and clearing a tenth of the
    // run (docs/CLUSTER.md).
    let cluster = matches!(&cli.command, Command::Scan(a) if a.is_cluster());
    if !cluster {
        // SAFETY: sets a process-wide allocator option before any other thread exists (parsing starts none).
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    }
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
