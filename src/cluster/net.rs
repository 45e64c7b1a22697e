//! The connections between a cluster's processes, made before Timely gets them: every process listens on its own
//! address, connects to each process before it and accepts each process after it, within a deadline. Timely's own
//! setup retries forever (and says so on standard output); this one names the process that could not be reached.
//!
//! Each connection starts with a greeting, so a process of another program, another run, another cluster size or
//! other definitions is refused at once rather than mistaken for a peer: `MAGIC`, the process count, the sender's
//! index and the fingerprint of its scan (the definitions and the flags every process must share), as four
//! little-endian u64.

use super::ClusterError;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

const MAGIC: u64 = u64::from_le_bytes(*b"fsketch2");
const HELLO_BYTES: usize = 4 * 8;
/// How long to wait between attempts to reach a process that is not listening yet.
const RETRY: Duration = Duration::from_millis(100);

/// Connect process `me` to every other of `addresses` (one per process) within `timeout`. Returns one stream per
/// process, `None` at `me`, as `initialize_networking_from_sockets` takes them.
pub fn connect_all(
    addresses: &[String],
    me: usize,
    timeout: Duration,
    fingerprint: u64,
) -> Result<Vec<Option<TcpStream>>, ClusterError> {
    let n = addresses.len();
    let deadline = Instant::now() + timeout;
    let listener = TcpListener::bind(&addresses[me]).map_err(|e| ClusterError::Listen {
        address: addresses[me].clone(),
        message: e.to_string(),
    })?;
    let mut sockets: Vec<Option<TcpStream>> = (0..n).map(|_| None).collect();
    for (to, address) in addresses.iter().enumerate().take(me) {
        sockets[to] = Some(connect(
            to,
            address,
            [n as u64, me as u64, fingerprint],
            deadline,
            timeout,
        )?);
    }
    listener
        .set_nonblocking(true)
        .map_err(|e| ClusterError::Listen {
            address: addresses[me].clone(),
            message: e.to_string(),
        })?;
    while sockets.iter().skip(me + 1).any(Option::is_none) {
        match listener.accept() {
            Ok((mut stream, _)) => {
                stream.set_nonblocking(false).ok();
                stream
                    .set_read_timeout(Some(
                        deadline
                            .saturating_duration_since(Instant::now())
                            .max(RETRY),
                    ))
                    .ok();
                let mut hello = [0u8; HELLO_BYTES];
                // Something that connects and says nothing sensible is not a peer: wait on for the real one.
                if stream.read_exact(&mut hello).is_err() {
                    continue;
                }
                let word = |i: usize| {
                    u64::from_le_bytes(hello[i * 8..i * 8 + 8].try_into().expect("8 bytes"))
                };
                let (magic, count, from) = (word(0), word(1) as usize, word(2) as usize);
                if magic != MAGIC {
                    continue;
                }
                if count != n || from <= me || from >= n || sockets[from].is_some() {
                    return Err(ClusterError::Peer {
                        process: from,
                        address: addresses.get(from).cloned().unwrap_or_default(),
                        message: format!(
                            "it says it is process {from} of {count}; this is process {me} of {n}"
                        ),
                    });
                }
                if word(3) != fingerprint {
                    return Err(ClusterError::Peer {
                        process: from,
                        address: addresses[from].clone(),
                        message: "it scans with other definitions or flags than this process: give every \
                                  process the same --rules file and the same scan flags"
                            .into(),
                    });
                }
                stream.set_read_timeout(None).ok();
                stream.set_nodelay(true).ok();
                sockets[from] = Some(stream);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    let missing = (me + 1..n)
                        .find(|&i| sockets[i].is_none())
                        .expect("one is missing");
                    return Err(ClusterError::Unreachable {
                        process: missing,
                        address: addresses[missing].clone(),
                        secs: timeout.as_secs_f64(),
                        message: format!("it did not connect to this process ({})", addresses[me]),
                    });
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => {
                return Err(ClusterError::Listen {
                    address: addresses[me].clone(),
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(sockets)
}

/// Connect to process `to` at `address`, retrying until `deadline`, and greet it with the process count, this
/// process's index and its scan's fingerprint.
fn connect(
    to: usize,
    address: &str,
    greeting: [u64; 3],
    deadline: Instant,
    timeout: Duration,
) -> Result<TcpStream, ClusterError> {
    let unreachable = |message: String| ClusterError::Unreachable {
        process: to,
        address: address.to_string(),
        secs: timeout.as_secs_f64(),
        message,
    };
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = address
            .to_socket_addrs()
            .map_err(|e| e.to_string())
            .and_then(|mut a| {
                a.next()
                    .ok_or_else(|| "the name has no address".to_string())
            })
            .and_then(|a| {
                TcpStream::connect_timeout(&a, left.max(RETRY)).map_err(|e| e.to_string())
            });
        match attempt {
            Ok(mut stream) => {
                let mut hello = Vec::with_capacity(HELLO_BYTES);
                for w in [MAGIC].iter().chain(&greeting) {
                    hello.extend_from_slice(&w.to_le_bytes());
                }
                stream
                    .write_all(&hello)
                    .map_err(|e| unreachable(e.to_string()))?;
                stream.set_nodelay(true).ok();
                return Ok(stream);
            }
            Err(message) => {
                if Instant::now() + RETRY >= deadline {
                    return Err(unreachable(message));
                }
                std::thread::sleep(RETRY);
            }
        }
    }
}
