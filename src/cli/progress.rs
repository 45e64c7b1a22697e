//! A one-line progress display on stderr for long runs; nothing when stderr is not a terminal.

use flowsketch::scanner::Progress;
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
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(200));
        let secs = start.elapsed().as_secs_f64();
        if secs < 1.0 {
            continue;
        }
        let n = progress.flows.load(Ordering::Relaxed);
        let what = if progress.pass.load(Ordering::Relaxed) == 2 {
            "verifying"
        } else {
            "scanning"
        };
        eprint!("\r\x1b[K{what}: {n} flows, {secs:.0} s");
        shown = true;
    }
    if shown {
        eprint!("\r\x1b[K");
        let _ = std::io::stderr().flush();
    }
}
