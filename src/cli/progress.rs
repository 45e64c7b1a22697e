//! A one-line progress display on stderr for long runs; nothing when stderr is not a terminal.
//!
//! `pass 1/2: 42 % of 1.2 GB, 3/12 files, 12.3 M flows, 8 s, about 11 s left`: the share of the input bytes the
//! current pass has read, the files done of all, the flows, and an estimate of the time the pass has left (from its
//! rate so far). The share and the estimate need every input's size: without them (standard input, a pipe) the
//! line shows flows and files alone.

use flowsketch::mem::human_bytes;
use flowsketch::scanner::{Progress, ProgressNow};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Show `progress` every 200 ms until `stop`, starting after a second so short runs stay quiet; then clear it.
pub fn show(progress: &Progress, stop: &AtomicBool) {
    if !std::io::stderr().is_terminal() {
        return;
    }
    let start = Instant::now();
    let mut shown = false;
    // When the pass shown began: the estimate is of the current pass, from its own rate.
    let mut pass = (0, start);
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        let now = progress.now();
        if now.pass != pass.0 {
            pass = (now.pass, Instant::now());
        }
        if start.elapsed() < Duration::from_secs(1) || now.pass == 0 {
            continue;
        }
        let line = describe(&now, pass.1.elapsed().as_secs_f64());
        eprint!("\r\x1b[K{line}");
        let _ = std::io::stderr().flush();
        shown = true;
    }
    if shown {
        eprint!("\r\x1b[K");
        let _ = std::io::stderr().flush();
    }
}

/// The progress line for `now`, `secs` into the current pass.
pub fn describe(now: &ProgressNow, secs: f64) -> String {
    let what = match (now.pass, now.passes) {
        (2, _) => "pass 2/2 (verify)".to_string(),
        (p, n) => format!("pass {p}/{}", n.max(p)),
    };
    let mut line = what;
    if let Some(f) = now.fraction() {
        line += &format!(": {:.0} % of {}", f * 100.0, human_bytes(now.total_bytes));
    } else {
        line += ":";
    }
    let sep = if now.fraction().is_some() { "," } else { "" };
    line += &format!(
        "{sep} {}/{} file{}, {} flows, {secs:.0} s",
        now.inputs,
        now.total_inputs,
        if now.total_inputs == 1 { "" } else { "s" },
        flows(now.flows)
    );
    if let Some(left) = eta(now, secs) {
        line += &format!(", about {} left", duration(left));
    }
    line
}

/// Seconds the pass has left at its rate so far; none before a second of it or a percent of its bytes.
fn eta(now: &ProgressNow, secs: f64) -> Option<f64> {
    let f = now.fraction()?;
    (secs >= 1.0 && f >= 0.01).then(|| secs * (1.0 - f) / f)
}

fn flows(n: u64) -> String {
    if n >= 10_000_000 {
        format!("{:.0} M", n as f64 / 1e6)
    } else if n >= 1_000_000 {
        format!("{:.1} M", n as f64 / 1e6)
    } else {
        n.to_string()
    }
}

fn duration(secs: f64) -> String {
    let s = secs.round() as u64;
    match s {
        0..=59 => format!("{s} s"),
        60..=5999 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_share_files_flows_and_time_left() {
        let now = ProgressNow {
            pass: 1,
            passes: 2,
            flows: 12_345_678,
            bytes: 1 << 29,
            total_bytes: 1 << 31,
            inputs: 3,
            total_inputs: 12,
        };
        assert_eq!(
            describe(&now, 10.0),
            "pass 1/2: 25 % of 2.1 GB, 3/12 files, 12 M flows, 10 s, about 30 s left"
        );
        let verify = ProgressNow {
            pass: 2,
            bytes: 3 << 29,
            flows: 1_500_000,
            ..now
        };
        assert_eq!(
            describe(&verify, 200.0),
            "pass 2/2 (verify): 75 % of 2.1 GB, 3/12 files, 1.5 M flows, 200 s, about 1m07s left"
        );
        // Standard input: no size, so no share and no estimate.
        let stdin = ProgressNow {
            pass: 1,
            passes: 1,
            flows: 900,
            total_inputs: 1,
            ..ProgressNow::default()
        };
        assert_eq!(describe(&stdin, 3.0), "pass 1/1: 0/1 file, 900 flows, 3 s");
    }
}
