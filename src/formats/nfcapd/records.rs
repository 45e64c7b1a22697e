//! Walking the records of one uncompressed block.

use super::block::BlockRef;
use super::v1::{self, ExtMap};
use super::v3;
use crate::formats::bytes::LE;
use crate::formats::prefetch::prefetch;
use crate::formats::sink::Sink;
use crate::formats::FormatError;

/// Record header: `{u16 type, u16 size}`, the size including the header.
pub const RECORD_HEADER_LEN: usize = 4;

/// A problem inside one record: position from the record's start, and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bad {
    pub at: usize,
    pub msg: String,
}

impl Bad {
    pub fn new(at: usize, msg: impl Into<String>) -> Bad {
        Bad {
            at,
            msg: msg.into(),
        }
    }
}

/// Record types that are not flows, passed over by their size: extension map (2), exporter info (7) and stat (8),
/// samplers (9, 15), NBAR, interface and VRF names (12..14), and the appendix's ident and stat (0x8001, 0x8002).
/// Any other type might be a flow this reader does not know (CommonRecordV0, newer nfdump's V4Record): counted
/// as lost.
fn is_known_non_flow(kind: u16) -> bool {
    matches!(kind, 2 | 7 | 8 | 9 | 12..=15 | 0x8001 | 0x8002)
}

/// Extension maps visible to a layout-1 chunk: those its blocks defined so far, then those of earlier chunks.
pub struct Maps<'f> {
    local: Vec<ExtMap>,
    last: Option<ExtMap>,
    /// The last id found nowhere, so a run of records with a missing map costs one search.
    missing: Option<u16>,
    earlier: &'f dyn Fn(u16) -> Option<ExtMap>,
}

impl<'f> Maps<'f> {
    pub fn new(earlier: &'f dyn Fn(u16) -> Option<ExtMap>) -> Maps<'f> {
        Maps {
            local: Vec::new(),
            last: None,
            missing: None,
            earlier,
        }
    }

    fn define(&mut self, m: ExtMap) {
        self.local.push(m);
        self.last = None;
        self.missing = None;
    }

    #[inline]
    fn get(&mut self, id: u16) -> Option<ExtMap> {
        if let Some(m) = self.last {
            if m.id == id {
                return Some(m);
            }
        }
        if self.missing == Some(id) {
            return None;
        }
        let found = self
            .local
            .iter()
            .rev()
            .find(|m| m.id == id)
            .copied()
            .or_else(|| (self.earlier)(id));
        match found {
            Some(_) => self.last = found,
            None => self.missing = Some(id),
        }
        found
    }
}

/// Where the walked bytes came from, to name offsets in errors.
#[derive(Clone, Copy)]
pub struct Origin<'a> {
    pub block: &'a BlockRef,
    /// The bytes are the block's payload in the file (not decompressed), so positions map to file offsets.
    pub in_file: bool,
}

impl Origin<'_> {
    pub fn error(&self, pos: usize, msg: impl std::fmt::Display) -> FormatError {
        if self.in_file {
            FormatError::new(
                self.block.payload_start() as u64 + pos as u64,
                format!("data block at offset {}: {msg}", self.block.offset),
            )
        } else {
            FormatError::new(
                self.block.offset,
                format!("byte {pos} of the decompressed data block: {msg}"),
            )
        }
    }
}

/// Walk the block's records, decoding flows (V3 and layout-1 common records) into `sink`.
pub fn walk(
    data: &[u8],
    origin: Origin<'_>,
    maps: &mut Maps<'_>,
    sink: &mut Sink<'_>,
) -> Result<(), FormatError> {
    let n = origin.block.num_records;
    let mut pos = 0usize;
    for i in 0..n {
        prefetch(data, pos + PREFETCH_AHEAD);
        if let Some((f, size)) = v3::decode_fast(data, pos) {
            sink.push(f);
            pos += size;
            continue;
        }
        let (kind, rec) = next_record(data, pos, i, n).map_err(|b| origin.error(b.at, b.msg))?;
        let bad = |b: Bad| origin.error(pos + b.at, format!("record {i}: {}", b.msg));
        match kind {
            v3::RECORD_TYPE => sink.push(v3::decode(rec).map_err(bad)?),
            v1::COMMON_RECORD_TYPE => {
                let mut lookup = |id: u16| maps.get(id);
                match v1::decode_common(rec, &mut lookup).map_err(bad)? {
                    Some(f) => sink.push(f),
                    None => sink.stats.lost.missing_map += 1,
                }
            }
            v1::EXTENSION_MAP_TYPE => {
                maps.define(v1::parse_map(rec).map_err(bad)?);
                sink.stats.skipped += 1;
            }
            k if is_known_non_flow(k) => sink.stats.skipped += 1,
            _ => sink.stats.lost.unknown_records += 1,
        }
        pos += rec.len();
    }
    Ok(())
}

/// How far ahead of the record being decoded to ask for the data: the hardware prefetcher stops at page ends, so
/// without this every new page of a memory-mapped block starts with cache misses. One page ahead measured best
/// (about 2 ns per flow less on a 1 GB page-cached file; 512 B to 8 KiB all help).
const PREFETCH_AHEAD: usize = 4096;

/// The record starting at `pos`: its type and its bytes, checked to lie inside the block.
#[inline]
pub fn next_record(data: &[u8], pos: usize, i: u32, n: u32) -> Result<(u16, &[u8]), Bad> {
    if pos + RECORD_HEADER_LEN > data.len() {
        return Err(Bad::new(
            pos,
            format!(
                "record {i} of {n}: expected a {RECORD_HEADER_LEN}-byte record header, the block ends at byte {}",
                data.len()
            ),
        ));
    }
    let kind = LE.u16(data, pos).unwrap_or(0);
    let size = usize::from(LE.u16(data, pos + 2).unwrap_or(0));
    if size < RECORD_HEADER_LEN {
        return Err(Bad::new(
            pos,
            format!("record {i} of {n} (type {kind}): record size {size} below header size {RECORD_HEADER_LEN}"),
        ));
    }
    match data.get(pos..pos + size) {
        Some(rec) => Ok((kind, rec)),
        None => Err(Bad::new(
            pos,
            format!(
                "record {i} of {n} (type {kind}): record size {size} runs past the block end ({} bytes left)",
                data.len() - pos
            ),
        )),
    }
}

/// The extension maps a block defines, in order; a block that does not decode defines none.
pub fn scan_maps(data: &[u8], num_records: u32) -> Vec<ExtMap> {
    let mut maps = Vec::new();
    let mut pos = 0usize;
    for i in 0..num_records {
        let Ok((kind, rec)) = next_record(data, pos, i, num_records) else {
            break;
        };
        if kind == v1::EXTENSION_MAP_TYPE {
            if let Ok(m) = v1::parse_map(rec) {
                maps.push(m);
            }
        }
        pos += rec.len();
    }
    maps
}
