//! Arbitrary bytes through the nfcapd reader: open, then decode every chunk. Errors are fine, panics are not.
//! The same bytes, laid over a V3 record of a shape the fast path decodes, must decode as the general walk does.
#![no_main]

use flowsketch::formats::nfcapd::{v3_fast_path_agrees_near_shape, NfcapdFile};
use flowsketch::formats::{bytes_from_vec, Decoder};
use libfuzzer_sys::fuzz_target;

thread_local! {
    // The decompression buffer a worker keeps for all its blocks. A fresh one per input cost a 5 MiB clear per run:
    // nine tenths of the time, at 1,300 runs a second.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fuzz_target!(|data: &[u8]| {
    assert!(v3_fast_path_agrees_near_shape(data), "{data:?}");
    if let Ok(f) = NfcapdFile::open(bytes_from_vec(data.to_vec())) {
        SCRATCH.with_borrow_mut(|scratch| {
            let mut flows = 0usize;
            for i in 0..f.chunks() {
                let _ = f.decode_chunk(i, scratch, &mut |b| flows += b.len());
            }
            let _ = (f.declared_flows(), f.ident(), flows);
        });
    }
});
