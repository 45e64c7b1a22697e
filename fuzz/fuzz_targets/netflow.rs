#![no_main]
//! Any bytes as raw NetFlow v5/v9/IPFIX payloads: the first byte splits the input into a "template" payload
//! and a "data" payload opened after it through one template cache; an error or records, never a panic.

use flowsketch::formats::{self, Opener};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cut = (cut as usize * rest.len() / 255).min(rest.len());
    let opener = Opener::new();
    for part in [&rest[..cut], &rest[cut..], rest] {
        if let Ok(d) = opener.open(
            formats::bytes_from_vec(part.to_vec()),
            "fuzz",
            Some("netflow"),
        ) {
            let _ = formats::decode_all(d.as_ref(), &mut |_| {});
            let _ = d.warnings();
        }
    }
});
