//! A local launcher: N processes of one cluster on this machine, for trying cluster scans and for tests.
//!
//! It picks free localhost ports, writes a hostfile, starts the program N times with `-n N -p I -h FILE` (and
//! `-w W`) after the command's first word and `{p}` in any argument replaced by the process's index (so that with
//! `--local-inputs` each process can be given its own folder, `part{p}`), passes process 0's standard output and error through, and prefixes the
//! others' standard error with their index. When a process fails (a nonzero exit other than process 0's 1, which
//! means findings) or is killed, the others are stopped at once and the run fails naming it; when the run takes
//! longer than the timeout, every process is stopped and the run fails naming those still running. Process 0
//! prints findings only once every process has sent its part, so a failed run never shows partial findings as
//! complete.

use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How long the other processes may take to end after process 0 has.
const GRACE: Duration = Duration::from_secs(10);

/// What to launch.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The program (this executable).
    pub program: PathBuf,
    /// Its arguments, the subcommand first (`scan ...`); the cluster flags go right after it, and `{p}` in any
    /// of them becomes the process's index.
    pub args: Vec<String>,
    pub processes: usize,
    pub workers: usize,
    /// How long the whole run may take.
    pub timeout: Option<Duration>,
}

/// Why a launched cluster failed.
#[derive(Debug)]
pub enum LaunchError {
    /// Could not set up (ports, hostfile, starting a process).
    Setup(String),
    /// A process ended badly; the others were stopped.
    Failed { process: usize, how: String },
    /// The run took longer than the timeout; these processes were still running.
    TimedOut { secs: f64, running: Vec<usize> },
}

impl fmt::Display for LaunchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaunchError::Setup(m) => write!(f, "cluster: {m}"),
            LaunchError::Failed { process, how } => {
                write!(f, "cluster: process {process} {how}; the other processes were stopped, the scan is incomplete")
            }
            LaunchError::TimedOut { secs, running } => write!(
                f,
                "cluster: timed out after {secs:.0} s with process{} {} still running; every process was stopped",
                if running.len() == 1 { "" } else { "es" },
                running.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}

impl std::error::Error for LaunchError {}

/// `n` localhost addresses with ports free a moment ago (each bound, then released).
pub fn free_addresses(n: usize) -> std::io::Result<Vec<String>> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<std::io::Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.to_string()))
        .collect()
}

fn describe(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return format!("was killed by signal {sig}");
        }
    }
    match status.code() {
        Some(c) => format!("exited with code {c}"),
        None => "ended".to_string(),
    }
}

/// Run the cluster; returns process 0's exit code when every process ended well.
pub fn run(launch: &Launch) -> Result<i32, LaunchError> {
    let n = launch.processes.max(1);
    let (first, rest) = launch
        .args
        .split_first()
        .ok_or_else(|| LaunchError::Setup("no command to run (like: -- scan FILES)".into()))?;
    let dir = tempfile::tempdir()
        .map_err(|e| LaunchError::Setup(format!("cannot make a folder for the hostfile: {e}")))?;
    let hostfile = dir.path().join("hosts.txt");
    let addresses = free_addresses(n)
        .map_err(|e| LaunchError::Setup(format!("cannot find free ports: {e}")))?;
    std::fs::write(&hostfile, addresses.join("\n") + "\n")
        .map_err(|e| LaunchError::Setup(format!("cannot write {}: {e}", hostfile.display())))?;
    let mut children: Vec<Option<Child>> = Vec::with_capacity(n);
    let mut forwarders = Vec::new();
    for p in 0..n {
        let mut cmd = Command::new(&launch.program);
        cmd.arg(first)
            .args([
                "-n",
                &n.to_string(),
                "-p",
                &p.to_string(),
                "-w",
                &launch.workers.to_string(),
            ])
            .arg("-h")
            .arg(&hostfile)
            .args(rest.iter().map(|a| a.replace("{p}", &p.to_string())))
            .stdin(Stdio::null());
        if p > 0 {
            cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        }
        match cmd.spawn() {
            Ok(mut child) => {
                if let Some(err) = child.stderr.take() {
                    forwarders.push(std::thread::spawn(move || {
                        for line in BufReader::new(err).lines().map_while(Result::ok) {
                            let _ = writeln!(std::io::stderr().lock(), "process {p}: {line}");
                        }
                    }));
                }
                children.push(Some(child));
            }
            Err(e) => {
                stop(&mut children);
                return Err(LaunchError::Setup(format!(
                    "cannot start process {p} ({}): {e}",
                    launch.program.display()
                )));
            }
        }
    }
    let start = Instant::now();
    let mut code0 = None;
    let mut ended0: Option<Instant> = None;
    let outcome = 'watch: loop {
        for (p, slot) in children.iter_mut().enumerate() {
            let Some(child) = slot else { continue };
            match child.try_wait() {
                Ok(Some(status)) => {
                    *slot = None;
                    // Process 0 exits with the scan's code (1: findings, 2: errors it has told); any other
                    // process's ending but 0 is a failure.
                    let fine =
                        status.success() || (p == 0 && matches!(status.code(), Some(1) | Some(2)));
                    if p == 0 && fine {
                        code0 = status.code();
                        ended0 = Some(Instant::now());
                    }
                    if !fine {
                        break 'watch Err(LaunchError::Failed {
                            process: p,
                            how: describe(status),
                        });
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    *slot = None;
                    break 'watch Err(LaunchError::Failed {
                        process: p,
                        how: format!("could not be watched ({e})"),
                    });
                }
            }
        }
        if children.iter().all(Option::is_none) {
            break Ok(code0.unwrap_or(2));
        }
        // Once process 0 has reported, the others have nothing left but to end.
        if let Some(p) = ended0
            .filter(|t| t.elapsed() > GRACE)
            .and_then(|_| children.iter().position(Option::is_some))
        {
            break Err(LaunchError::Failed {
                process: p,
                how: format!("did not end within {} s of process 0", GRACE.as_secs()),
            });
        }
        if let Some(t) = launch.timeout {
            if start.elapsed() > t {
                let running = children
                    .iter()
                    .enumerate()
                    .filter_map(|(p, c)| c.as_ref().map(|_| p))
                    .collect();
                break Err(LaunchError::TimedOut {
                    secs: t.as_secs_f64(),
                    running,
                });
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    stop(&mut children);
    for f in forwarders {
        let _ = f.join();
    }
    outcome
}

/// Stop every process still running.
fn stop(children: &mut [Option<Child>]) {
    for c in children.iter_mut().flatten() {
        let _ = c.kill();
        let _ = c.wait();
    }
}
