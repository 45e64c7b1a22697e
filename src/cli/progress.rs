//! A one-line progress display on stderr for long runs; nothing when stderr is not a terminal.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub struct Progress {
    pub flows: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Progress {
    /// Start the display when `enabled` and stderr is a terminal; it first shows after a second, so short runs
    /// stay quiet.
    pub fn start(enabled: bool, inputs: usize) -> Progress {
        let flows = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = (enabled && std::io::stderr().is_terminal()).then(|| {
            let (flows, stop) = (flows.clone(), stop.clone());
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut shown = false;
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    let secs = start.elapsed().as_secs_f64();
                    if secs < 1.0 {
                        continue;
                    }
                    let n = flows.load(Ordering::Relaxed);
                    eprint!(
                        "\r\x1b[Kscanning {inputs} input{}: {} flows, {:.1} M flows/s, {secs:.0} s",
                        if inputs == 1 { "" } else { "s" },
                        n,
                        n as f64 / secs / 1e6
                    );
                    shown = true;
                }
                if shown {
                    eprint!("\r\x1b[K");
                    let _ = std::io::stderr().flush();
                }
            })
        });
        Progress {
            flows,
            stop,
            thread,
        }
    }

    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
