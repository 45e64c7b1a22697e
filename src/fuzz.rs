//! Every fuzz target (`fuzz/fuzz_targets/*.rs`) by name, with its body, so that `cargo test` replays the committed
//! regression inputs (`fuzz/regressions/<target>/`) through exactly what the fuzzer ran. The readers' bodies are in
//! `formats::fuzz`; the saved state's in `state`, the cluster wire's in `cluster::wire`. Each takes any bytes and
//! must return: errors are fine, panics are not.

use crate::formats::fuzz::*;

/// A target's body: any bytes in, what it decoded out (flows, records or states).
pub type Body = fn(&[u8]) -> usize;

/// Every target, by the name of its file under `fuzz/fuzz_targets` and `fuzz/regressions`.
pub const TARGETS: &[(&str, Body)] = &[
    ("nfcapd", nfcapd),
    ("flowtools", flowtools),
    ("netflow", netflow),
    ("pcap", pcap),
    ("csv", csv),
    ("detect", detect),
    ("filter", filter),
    ("definitions", definitions),
    ("state", state),
    ("wire", wire),
];

/// A saved state's bytes: see [`crate::state::fuzz`].
pub fn state(data: &[u8]) -> usize {
    crate::state::fuzz(data)
}

/// A message of cluster packets: see [`crate::cluster::wire::fuzz`].
pub fn wire(data: &[u8]) -> usize {
    crate::cluster::wire::fuzz(data)
}
