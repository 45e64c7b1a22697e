//! `flowsketch cluster -n N -- scan ...`: N local processes of one cluster scan (see [`launcher`]).

use super::args::ClusterArgs;
use super::ExitCode;
use flowsketch::cluster::launcher::{self, Launch};
use std::time::Duration;

pub fn run(args: &ClusterArgs) -> ExitCode {
    if args.command.first().map(String::as_str) != Some("scan") {
        eprintln!("flowsketch: cluster runs a scan: flowsketch cluster -n N -- scan [FLAGS] PATHS");
        return ExitCode::Error;
    }
    let program = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("flowsketch: cluster: cannot find this program to start it again: {e}");
            return ExitCode::Error;
        }
    };
    let launch = Launch {
        program,
        args: args.command.clone(),
        processes: args.processes.get(),
        workers: args.workers.map_or(1, |w| w.get()),
        timeout: args.timeout.map(Duration::from_secs_f64),
    };
    match launcher::run(&launch) {
        Ok(0) => ExitCode::Clean,
        Ok(1) => ExitCode::Findings,
        Ok(_) => ExitCode::Error,
        Err(e) => {
            eprintln!("flowsketch: {e}");
            ExitCode::Error
        }
    }
}
