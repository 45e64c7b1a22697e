//! flowsketch: the command-line tool. See `flowsketch --help`.

mod cli;

use clap::Parser;
use cli::args::{Cli, Command};

fn main() {
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
