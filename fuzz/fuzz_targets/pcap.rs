#![no_main]
//! Any bytes given to the pcap reader, from memory and from a pipe: an error or records, never a panic.
//! The body is `flowsketch::formats::fuzz::pcap`, which `cargo test` also runs on `fuzz/regressions/pcap/`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    flowsketch::formats::fuzz::pcap(data);
});
