#![no_main]
//! Any bytes as a saved state under the built-in definitions and every counter, as they are and with their
//! checksums made right: a state or an error, never a panic.
//! The body is `flowsketch::fuzz::state`, which `cargo test` also runs on `fuzz/regressions/state/`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    flowsketch::fuzz::state(data);
});
