#![no_main]
//! Any bytes as a message of cluster packets, as Timely hands it to their owner: records or an error, never a
//! panic.
//! The body is `flowsketch::fuzz::wire`, which `cargo test` also runs on `fuzz/regressions/wire/`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    flowsketch::fuzz::wire(data);
});
