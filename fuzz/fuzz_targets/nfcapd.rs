#![no_main]
//! Any bytes through the nfcapd reader, from memory and as a stream; laid over a V3 record of a fast-path
//! shape they must decode as the general element walk does. Errors are fine, panics are not.
//! The body is `flowsketch::formats::fuzz::nfcapd`, which `cargo test` also runs on `fuzz/regressions/nfcapd/`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    flowsketch::formats::fuzz::nfcapd(data);
});
