//! The bodies of the readers' fuzz targets (`fuzz/fuzz_targets/*.rs`; all targets are listed in `crate::fuzz`).
//! Each takes any bytes and must return: errors are fine, panics are not. Each returns the flows decoded, for
//! tests that want some.

use super::nfcapd::{v3_fast_path_agrees_near_shape, NfcapdFile, NfcapdStream};
use super::{bytes_from_vec, open_stream, Decoder, Opener};
use std::cell::RefCell;

thread_local! {
    // The decompression buffer a worker keeps for all its blocks. A fresh one per input cost a 5 MiB clear per
    // run: nine tenths of the time, at 1,300 runs a second.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Every chunk of `d`, errors allowed; the flows handed out.
fn drain(d: &dyn Decoder) -> usize {
    let mut flows = 0usize;
    SCRATCH.with_borrow_mut(|scratch| {
        for i in 0..d.chunks() {
            let _ = d.decode_chunk(i, scratch, &mut |b| flows += b.len());
        }
    });
    let _ = (d.warnings(), d.declared_flows());
    flows
}

/// The bytes opened with one format, from memory and from a pipe.
fn both_ways(data: &[u8], format: &str) -> usize {
    let mut flows = 0;
    if let Ok(d) = Opener::new().open(bytes_from_vec(data.to_vec()), "fuzz", Some(format)) {
        flows += drain(d.as_ref());
    }
    if let Ok(d) = open_stream(Box::new(std::io::Cursor::new(data.to_vec())), Some(format)) {
        flows += drain(d.as_ref());
    }
    flows
}

/// The nfcapd reader from memory and as a stream; and the same bytes laid over a V3 record of a shape the fast
/// path decodes must decode as the general walk does.
pub fn nfcapd(data: &[u8]) -> usize {
    assert!(v3_fast_path_agrees_near_shape(data), "{data:?}");
    let mut flows = 0;
    if let Ok(f) = NfcapdFile::open(bytes_from_vec(data.to_vec())) {
        flows += drain(&f);
        let _ = (f.ident(), f.stat(), f.files());
    }
    if let Ok(s) = NfcapdStream::open(Box::new(std::io::Cursor::new(data.to_vec()))) {
        flows += drain(&s);
    }
    flows
}

pub fn flowtools(data: &[u8]) -> usize {
    both_ways(data, "flowtools")
}

/// Raw NetFlow v5/v9/IPFIX payloads: the first byte splits the rest into a "template" payload and a "data"
/// payload opened after it through one template cache.
pub fn netflow(data: &[u8]) -> usize {
    let Some((&cut, rest)) = data.split_first() else {
        return 0;
    };
    let cut = (cut as usize * rest.len() / 255).min(rest.len());
    let opener = Opener::new();
    let mut flows = 0;
    for part in [&rest[..cut], &rest[cut..], rest] {
        if let Ok(d) = opener.open(bytes_from_vec(part.to_vec()), "fuzz", Some("netflow")) {
            flows += drain(d.as_ref());
        }
    }
    flows
}

pub fn pcap(data: &[u8]) -> usize {
    both_ways(data, "pcap")
}

pub fn csv(data: &[u8]) -> usize {
    both_ways(data, "csv")
}

/// Detection by content, from memory and from a pipe: whatever reader the bytes pick.
pub fn detect(data: &[u8]) -> usize {
    let mut flows = 0;
    if let Ok(d) = super::open(bytes_from_vec(data.to_vec())) {
        flows += drain(d.as_ref());
    }
    if let Ok(d) = open_stream(Box::new(std::io::Cursor::new(data.to_vec())), None) {
        flows += drain(d.as_ref());
    }
    flows
}

/// Filter expressions: parse (or fail with an in-bounds error), evaluate, check `not`.
pub fn filter(data: &[u8]) -> usize {
    crate::rules::filter::fuzz_check(data);
    0
}

/// Definitions files and address list files: parsed, or refused with errors that render.
pub fn definitions(data: &[u8]) -> usize {
    let Ok(text) = std::str::from_utf8(data) else {
        return 0;
    };
    match crate::rules::Definitions::parse(text, "fuzz.toml", None) {
        Ok(d) => {
            let _ = d.rules.len();
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let _ = crate::rules::lists::AddrList::parse_lines(text, "fuzz.txt").map_err(|e| e.to_string());
    0
}
