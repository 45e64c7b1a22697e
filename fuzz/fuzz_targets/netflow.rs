#![no_main]
//! Any bytes as raw NetFlow v5/v9/IPFIX payloads: the first byte splits the input into a "template" payload
//! and a "data" payload opened after it through one template cache; an error or records, never a panic.
//! The body is `flowsketch::formats::fuzz::netflow`, which `cargo test` also runs on `fuzz/regressions/netflow/`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    flowsketch::formats::fuzz::netflow(data);
});
