//! The layout-2 appendix: blocks after the data blocks holding the file's ident and stat record.

use super::block::{read_block, BlockRef};
use super::codec::Codec;
use super::header::{c_string, StatRecord};
use super::records::{next_record, Origin};
use crate::formats::FormatError;

pub const TYPE_IDENT: u16 = 0x8001;
pub const TYPE_STAT: u16 = 0x8002;
/// nfdump 1.7 appendix blocks hold an ident (< 128 bytes) and a stat record: try a small buffer first, so opening a
/// compressed file does not clear a 5 MiB buffer.
const SMALL_APPENDIX: usize = 64 * 1024;

/// What the appendix holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Appendix {
    pub ident: Option<String>,
    pub stat: Option<StatRecord>,
}

/// Read `count` appendix blocks from `offset`; also returns where the last one ends.
pub fn read(
    file: &[u8],
    offset: u64,
    count: u16,
    codec: Codec,
) -> Result<(Appendix, u64), FormatError> {
    let mut out = Appendix::default();
    let mut at = offset;
    let mut scratch = Vec::new();
    for _ in 0..count {
        let block = read_block(file, at)?;
        at = block.end();
        let start = block.payload_start();
        let raw = &file[start..start + block.size as usize];
        read_records(raw, &block, codec, &mut scratch, &mut out)?;
    }
    Ok((out, at))
}

/// Read the ident and stat records of one appendix block, whose payload as stored is `raw`.
pub fn read_records(
    raw: &[u8],
    block: &BlockRef,
    codec: Codec,
    scratch: &mut Vec<u8>,
    out: &mut Appendix,
) -> Result<(), FormatError> {
    let in_file = codec == Codec::None || block.stored_uncompressed();
    let data = if in_file {
        raw
    } else {
        // Small first: opening a compressed file should not clear a 5 MiB buffer for a hundred bytes.
        let small = codec.decompress_at_most(raw, scratch, block.offset, SMALL_APPENDIX);
        let n = match small.map(|d| d.len()) {
            Ok(n) => n,
            Err(_) => codec.decompress(raw, scratch, block.offset)?.len(),
        };
        &scratch[..n]
    };
    let origin = Origin { block, in_file };
    let mut pos = 0;
    for i in 0..block.num_records {
        let (kind, rec) = next_record(data, pos, i, block.num_records)
            .map_err(|b| origin.error(b.at, format!("appendix: {}", b.msg)))?;
        let body = &rec[4..];
        match kind {
            TYPE_IDENT => out.ident = Some(c_string(body)),
            TYPE_STAT => {
                out.stat = Some(
                    StatRecord::parse_v2(body, 0)
                        .map_err(|e| origin.error(pos, format!("appendix: {}", e.message)))?,
                )
            }
            _ => {}
        }
        pos += rec.len();
    }
    Ok(())
}

/// The stored payload of a block of `file`.
pub fn raw_payload<'a>(file: &'a [u8], block: &BlockRef) -> Result<&'a [u8], FormatError> {
    let start = block.payload_start();
    file.get(start..start + block.size as usize)
        .ok_or_else(|| FormatError::new(block.offset, "block past end of file"))
}

/// The uncompressed payload of a block stored as `raw`: `raw` itself when stored plain, else decompressed into
/// `scratch`.
pub fn payload<'a>(
    raw: &'a [u8],
    block: &BlockRef,
    codec: Codec,
    scratch: &'a mut Vec<u8>,
) -> Result<&'a [u8], FormatError> {
    if codec == Codec::None || block.stored_uncompressed() {
        Ok(raw)
    } else {
        codec.decompress(raw, scratch, block.offset)
    }
}
