#![no_main]
//! Any bytes given to the flowtools reader: an error or records, never a panic.

use flowsketch::formats::{self, Opener};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let opener = Opener::new();
    if let Ok(d) = opener.open(
        formats::bytes_from_vec(data.to_vec()),
        "fuzz",
        Some("flowtools"),
    ) {
        let _ = formats::decode_all(d.as_ref(), &mut |_| {});
        let _ = d.warnings();
    }
    // The same bytes from a pipe.
    if let Ok(d) = formats::open_stream(
        Box::new(std::io::Cursor::new(data.to_vec())),
        Some("flowtools"),
    ) {
        let _ = formats::decode_all(d.as_ref(), &mut |_| {});
    }
});
