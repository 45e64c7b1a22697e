#![no_main]
//! Filter expressions from arbitrary bytes: parse (or fail with an in-bounds error), evaluate, check `not`.
//! The body is `flowsketch::formats::fuzz::filter`, which `cargo test` also runs on `fuzz/regressions/filter/`.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    flowsketch::formats::fuzz::filter(data);
});
