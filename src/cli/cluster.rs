//! `flowsketch cluster -n N -- scan ...`: N local processes of one cluster scan (see [`launcher`]).

use super::args::{parse_size, ClusterArgs};
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
    let processes = args.processes.get();
    let command = match share_memory(&args.command, processes) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("flowsketch: cluster: {e}");
            return ExitCode::Error;
        }
    };
    let launch = Launch {
        program,
        args: command,
        processes,
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

/// The scan's arguments with `--memory` divided among the `n` processes. They share this machine, so they share
/// its budget: N processes of W workers size their sketches and tables as one process of N x W workers does.
fn share_memory(command: &[String], n: usize) -> Result<Vec<String>, String> {
    let mut out = Vec::with_capacity(command.len() + 2);
    let mut total = None;
    let mut args = command.iter();
    while let Some(a) = args.next() {
        if a == "--" {
            out.push(a.clone());
            out.extend(args.by_ref().cloned());
            break;
        }
        let value = match a.strip_prefix("--memory") {
            Some("") => args
                .next()
                .cloned()
                .ok_or("--memory needs a size (like 256M)")?,
            Some(v) if v.starts_with('=') => v[1..].to_string(),
            _ => {
                out.push(a.clone());
                continue;
            }
        };
        if total.replace(parse_size(&value)?).is_some() {
            return Err("--memory is given more than once".into());
        }
    }
    let total = total.unwrap_or(flowsketch::engine::DEFAULT_MEMORY);
    let each = total / n;
    if each < 1 << 20 {
        return Err(format!(
            "--memory of {total} bytes over {n} processes leaves less than 1M each"
        ));
    }
    // After the other flags, before any `--` that ends them.
    let at = out
        .iter()
        .position(|a| a == "--")
        .unwrap_or(out.len())
        .max(1);
    out.splice(at..at, ["--memory".to_string(), each.to_string()]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    #[test]
    fn processes_share_the_memory() {
        assert_eq!(
            share_memory(&args("scan -q a.nf"), 2).unwrap(),
            args(&format!("scan -q a.nf --memory {}", 128 << 20))
        );
        assert_eq!(
            share_memory(&args("scan --memory 1G -f json a.nf"), 4).unwrap(),
            args(&format!("scan -f json a.nf --memory {}", 256 << 20))
        );
        assert_eq!(
            share_memory(&args("scan --memory=3M a.nf -- --memory"), 3).unwrap(),
            args("scan a.nf --memory 1048576 -- --memory")
        );
        assert!(share_memory(&args("scan --memory 2M a.nf"), 3)
            .unwrap_err()
            .contains("less than 1M each"));
        assert!(share_memory(&args("scan --memory 2Q a.nf"), 1).is_err());
        assert!(share_memory(&args("scan a.nf --memory"), 1).is_err());
        assert!(share_memory(&args("scan --memory 1G --memory=2G a.nf"), 2).is_err());
    }

    #[test]
    fn the_shared_default_is_scans_default() {
        use super::super::args::{Cli, Command};
        use clap::Parser;
        let Command::Scan(scan) = Cli::parse_from(["flowsketch", "scan", "a.nf"]).command else {
            panic!("a scan");
        };
        assert_eq!(scan.memory, flowsketch::engine::DEFAULT_MEMORY);
    }
}
