//! Data block headers and the index of blocks built when a file is opened.

use super::bytes::{u16_at, u32_at};
use crate::formats::FormatError;

pub const BLOCK_HEADER_LEN: usize = 12;
/// Block types: 2 in layout 1, 3 in layout 2 (4 is an array block of newer nfdump, not flows).
pub const BLOCK_TYPE_V1: u16 = 2;
pub const BLOCK_TYPE_V3: u16 = 3;
/// Per-block flag: this block is stored uncompressed whatever the file's codec.
pub const FLAG_BLOCK_UNCOMPRESSED: u16 = 0x1;

/// Where one block is in the file and what its header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockRef {
    /// Offset of the block header.
    pub offset: u64,
    pub num_records: u32,
    /// Payload length (compressed length when compressed).
    pub size: u32,
    pub kind: u16,
    pub flags: u16,
}

impl BlockRef {
    pub fn payload_start(&self) -> usize {
        self.offset as usize + BLOCK_HEADER_LEN
    }
    pub fn end(&self) -> u64 {
        self.offset + BLOCK_HEADER_LEN as u64 + u64::from(self.size)
    }
    pub fn stored_uncompressed(&self) -> bool {
        self.flags & FLAG_BLOCK_UNCOMPRESSED != 0
    }
}

/// Read the block header at `offset` and check that its payload lies inside the file.
pub fn read_block(file: &[u8], offset: u64) -> Result<BlockRef, FormatError> {
    let at = usize::try_from(offset).unwrap_or(usize::MAX);
    let head = at
        .checked_add(BLOCK_HEADER_LEN)
        .and_then(|end| file.get(at..end))
        .ok_or_else(|| {
            FormatError::new(
                offset,
                format!(
                    "truncated file: expected a {BLOCK_HEADER_LEN}-byte block header, found {} bytes",
                    file.len().saturating_sub(at)
                ),
            )
        })?;
    let b = BlockRef {
        offset,
        num_records: u32_at(head, 0),
        size: u32_at(head, 4),
        kind: u16_at(head, 8),
        flags: u16_at(head, 10),
    };
    if b.end() > file.len() as u64 {
        return Err(FormatError::new(
            offset,
            format!(
                "block past end of file: header says {} payload bytes, file has {} after the header",
                b.size,
                (file.len() as u64).saturating_sub(offset + BLOCK_HEADER_LEN as u64)
            ),
        ));
    }
    Ok(b)
}

/// The data blocks of a file, walked from the first one. A block that cannot be located ends the walk: it is kept
/// as the error of the last chunk, so the blocks before it still decode.
pub fn index_blocks(file: &[u8], first: u64, count: u32) -> (Vec<BlockRef>, Option<FormatError>) {
    // Never trust the count for an allocation: a block takes at least its header.
    let cap = (count as usize).min(file.len() / BLOCK_HEADER_LEN + 1);
    let mut blocks = Vec::with_capacity(cap);
    let mut at = first;
    for i in 0..count {
        match read_block(file, at) {
            Ok(b) => {
                at = b.end();
                blocks.push(b);
            }
            Err(mut e) => {
                e.message = format!("data block {i} of {count}: {}", e.message);
                return (blocks, Some(e));
            }
        }
    }
    (blocks, None)
}
