//! Filter expressions from arbitrary bytes: parse (or fail with an in-bounds error), evaluate, check `not`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    flowsketch::rules::filter::fuzz_check(data);
});
