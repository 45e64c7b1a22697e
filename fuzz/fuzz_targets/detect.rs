#![no_main]
//! Any bytes recognised by content (whatever reader they pick), from memory and from a pipe; never a panic.
//! The body is `flowsketch::formats::fuzz::detect`, which `cargo test` also runs on `fuzz/regressions/detect/`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    flowsketch::formats::fuzz::detect(data);
});
