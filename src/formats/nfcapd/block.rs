//! Data block headers and the index of blocks built when a file is opened.

use super::bytes::{u16_at, u32_at};
use crate::formats::FormatError;
use std::ops::Range;

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
///
/// `done` is handed each stretch of the file the walk has left behind, a few blocks at a time, so a memory map
/// can drop the pages it faulted in to read the headers: the kernel maps 64 KiB around each one, 25-30 MB for a
/// file of a few hundred blocks, which would otherwise stay resident until each block is decoded.
pub fn index_blocks(
    file: &[u8],
    first: u64,
    count: u32,
    done: &mut dyn FnMut(Range<usize>),
) -> (Vec<BlockRef>, Option<FormatError>) {
    const BLOCKS_PER_RELEASE: u32 = 32;
    // Never trust the count for an allocation: a block takes at least its header.
    let cap = (count as usize).min(file.len() / BLOCK_HEADER_LEN + 1);
    let mut blocks = Vec::with_capacity(cap);
    let mut tail_error = None;
    let mut released = 0usize;
    // Hand back everything before `to` not handed back yet (`to` may point past the end: `first` is the header's).
    let mut release = |to: u64| {
        let to = usize::try_from(to).map_or(file.len(), |t| t.min(file.len()));
        if to > released {
            done(released..to);
            released = to;
        }
    };
    let mut at = first;
    for i in 0..count {
        match read_block(file, at) {
            Ok(b) => {
                at = b.end();
                blocks.push(b);
            }
            Err(mut e) => {
                e.message = format!("data block {i} of {count}: {}", e.message);
                tail_error = Some(e);
                break;
            }
        }
        if (i + 1) % BLOCKS_PER_RELEASE == 0 {
            release(at);
        }
    }
    release(at);
    (blocks, tail_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` blocks of `payload` bytes each, the first at offset `first`.
    fn file(first: usize, n: u32, payload: u32) -> Vec<u8> {
        let mut f = vec![0u8; first];
        for _ in 0..n {
            f.extend_from_slice(&1u32.to_le_bytes());
            f.extend_from_slice(&payload.to_le_bytes());
            f.extend_from_slice(&BLOCK_TYPE_V3.to_le_bytes());
            f.extend_from_slice(&0u16.to_le_bytes());
            f.extend(std::iter::repeat_n(0u8, payload as usize));
        }
        f
    }

    #[test]
    fn the_walk_hands_back_what_it_left_behind_in_order() {
        let f = file(1_000, 100, 500);
        let mut done = Vec::new();
        let (blocks, err) = index_blocks(&f, 1_000, 100, &mut |r| done.push(r));
        assert!(err.is_none());
        assert_eq!(blocks.len(), 100);
        // Every 32 blocks, then the rest: contiguous from the start of the file to the end of the last block.
        assert_eq!(done.len(), 4);
        assert_eq!(done[0].start, 0);
        for w in done.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        assert_eq!(done[0].end as u64, blocks[31].end());
        assert_eq!(done[3].end, f.len());
    }

    #[test]
    fn a_walk_cut_short_hands_back_up_to_the_bad_block() {
        let mut f = file(100, 40, 500);
        let cut = f.len() - 300;
        f.truncate(cut);
        let mut done = Vec::new();
        let (blocks, err) = index_blocks(&f, 100, 40, &mut |r| done.push(r));
        assert_eq!(blocks.len(), 39);
        assert!(err.unwrap().message.contains("data block 39 of 40"));
        assert_eq!(done.last().unwrap().end as u64, blocks[38].end());
        assert!(done.iter().all(|r| r.end <= f.len()));
    }
}
