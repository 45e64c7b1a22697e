#![no_main]
//! Any bytes given to the flow-tools reader, from memory and from a pipe: an error or records, never a panic.
//! The body is `flowsketch::formats::fuzz::flowtools`, which `cargo test` also runs on `fuzz/regressions/flowtools/`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    flowsketch::formats::fuzz::flowtools(data);
});
