#![no_main]
//! Any text as a definitions file and as an address list file: parsed, or errors that render; never a panic.
//! The body is `flowsketch::formats::fuzz::definitions`, which `cargo test` also runs on `fuzz/regressions/definitions/`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    flowsketch::formats::fuzz::definitions(data);
});
