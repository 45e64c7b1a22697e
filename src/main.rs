//! flowsketch: the command-line tool. See `flowsketch --help`.

mod cli;

use clap::Parser;
use cli::args::{Cli, Command};

/// mimalloc: see docs/BENCHMARKS.md (the per-host counters make millions of small allocations).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    // Back the heap with transparent huge pages where the kernel allows it: millions of per-host counter blocks
    // are updated at random, and with 4 KiB pages nearly every update also misses the TLB.
    // SAFETY: sets a process-wide allocator option before any thread starts; no memory is touched.
    unsafe { libmimalloc_sys::mi_option_set(libmimalloc_sys::mi_option_large_os_pages, 1) };
    let cli = Cli::parse();
    let code = match &cli.command {
        Command::Scan(a) => cli::scan::run(a),
        Command::Demo(a) => cli::demo::run(a),
        Command::Rules(a) => cli::rules_cmd::run(a),
        Command::Gen(a) => cli::gen::run(a),
        Command::Compare(a) => cli::compare::run(a),
    };
    std::process::exit(code as i32);
}
