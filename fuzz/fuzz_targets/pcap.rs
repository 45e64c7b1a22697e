#![no_main]
//! Any bytes given to the pcap reader: an error or records, never a panic.

use flowsketch::formats::{self, Opener};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opener = Opener::new();
    if let Ok(d) = opener.open(formats::bytes_from_vec(data.to_vec()), "fuzz", Some("pcap")) {
        let _ = formats::decode_all(d.as_ref(), &mut |_| {});
        let _ = d.warnings();
    }
});
