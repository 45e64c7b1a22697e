//! Data block headers, what each kind of block means, and the index of chunks built when a file is opened.

use super::header::FileHeader;
use crate::formats::bytes::{Cursor, LE};
use crate::formats::FormatError;
use std::ops::Range;

pub const BLOCK_HEADER_LEN: usize = 12;
/// Block types: 2 in layout 1, 3 in layout 2 (4 is an array block of newer nfdump, not read here).
pub const BLOCK_TYPE_V1: u16 = 2;
pub const BLOCK_TYPE_V3: u16 = 3;
/// Per-block flag: this block is stored uncompressed whatever the file's codec.
pub const FLAG_BLOCK_UNCOMPRESSED: u16 = 0x1;

/// Where one block is in the input and what its header says.
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

/// What a block holds, by its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Records to decode.
    Records,
    /// No records and no bytes: nothing to read (nfdump calls it a corrupt file and stops).
    Empty,
    /// Bytes but no records: the bytes cannot be read (nfdump: "Corrupt data file").
    NoRecords,
    /// A block type no reader knows: skipped with its records (nfdump: "Unknown block type").
    Unknown,
}

impl BlockRef {
    /// Parse the 12-byte block header `head`, found at `offset`.
    pub fn parse(head: &[u8; BLOCK_HEADER_LEN], offset: u64) -> BlockRef {
        let mut c = Cursor::new(head, offset, LE);
        // Infallible: the header is 12 bytes, the reads take 12.
        let mut next32 = || c.u32("").unwrap_or(0);
        let (num_records, size) = (next32(), next32());
        let word = next32();
        BlockRef {
            offset,
            num_records,
            size,
            kind: word as u16,
            flags: (word >> 16) as u16,
        }
    }

    pub fn payload_start(&self) -> usize {
        self.offset as usize + BLOCK_HEADER_LEN
    }
    pub fn end(&self) -> u64 {
        self.offset + BLOCK_HEADER_LEN as u64 + u64::from(self.size)
    }
    pub fn stored_uncompressed(&self) -> bool {
        self.flags & FLAG_BLOCK_UNCOMPRESSED != 0
    }

    pub fn class(&self) -> Class {
        match (self.kind, self.num_records, self.size) {
            (BLOCK_TYPE_V1 | BLOCK_TYPE_V3, 0, 0) => Class::Empty,
            (BLOCK_TYPE_V1 | BLOCK_TYPE_V3, 0, _) => Class::NoRecords,
            (BLOCK_TYPE_V1 | BLOCK_TYPE_V3, _, _) => Class::Records,
            _ => Class::Unknown,
        }
    }

    /// What to tell the user about a block that is not read, or None for a block that is.
    pub fn note(&self) -> Option<FormatError> {
        let msg = match self.class() {
            Class::Records | Class::Empty => return None,
            Class::NoRecords => format!(
                "data block declares 0 records but holds {} bytes: skipped (nfdump: \"Corrupt data file\")",
                self.size
            ),
            Class::Unknown => format!(
                "data block of unknown type {} with {} records: skipped, as nfdump skips it",
                self.kind, self.num_records
            ),
        };
        Some(FormatError::new(self.offset, msg))
    }
}

/// Read the block header at `offset` and check that its payload lies inside the file.
pub fn read_block(file: &[u8], offset: u64) -> Result<BlockRef, FormatError> {
    let at = usize::try_from(offset).unwrap_or(usize::MAX);
    let head = at
        .checked_add(BLOCK_HEADER_LEN)
        .and_then(|end| file.get(at..end))
        .and_then(|h| h.first_chunk::<BLOCK_HEADER_LEN>())
        .ok_or_else(|| {
            FormatError::new(
                offset,
                format!(
                    "truncated file: expected a {BLOCK_HEADER_LEN}-byte block header, found {} bytes",
                    file.len().saturating_sub(at)
                ),
            )
        })?;
    let b = BlockRef::parse(head, offset);
    if b.end() > file.len() as u64 {
        return Err(FormatError::new(
            offset,
            format!(
                "truncated file: block header says {} payload bytes, the file has {} after the header",
                b.size,
                (file.len() as u64).saturating_sub(offset + BLOCK_HEADER_LEN as u64)
            ),
        ));
    }
    Ok(b)
}

/// Consecutive blocks of one file decoded as one chunk. Blocks of a few records (or none) are grouped so that a
/// file of millions of tiny blocks is a few jobs, not millions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChunkRef {
    /// Offset of the first block's header, and the number of blocks from there.
    pub offset: u64,
    pub blocks: u32,
    /// End of the last block.
    pub end: u64,
    /// Which file of the input (concatenated nfcapd files are read one after the other).
    pub part: u16,
}

/// A chunk is closed once it holds this many records or payload bytes (an nfcapd block of ~2 MB holds 20,000 to
/// 30,000 records: one block per chunk), or this many blocks.
const CHUNK_RECORDS: u64 = 8 * 1024;
const CHUNK_BYTES: u64 = 1 << 20;
const CHUNK_BLOCKS: u32 = 64 * 1024;
/// Index pages are handed back every this many bytes walked.
const RELEASE_EVERY: u64 = 4 << 20;
/// Blocks that are not read, told one by one up to this many per input; the rest are counted.
pub const MAX_NOTES: usize = 10;

/// What walking the block headers of an input found.
#[derive(Debug, Default)]
pub struct Index {
    pub chunks: Vec<ChunkRef>,
    /// Blocks with records, located.
    pub data_blocks: u64,
    /// Blocks with neither records nor bytes, passed over, and where the first one is.
    pub empty_blocks: u64,
    pub first_empty: u64,
    /// Blocks not read (unknown type, bytes without records), told in full up to [`MAX_NOTES`].
    pub notes: Vec<FormatError>,
    pub more_notes: u64,
    /// A block that could not be located (truncated file): reported as the error of the last chunk.
    pub tail_error: Option<FormatError>,
}

impl Index {
    fn note(&mut self, e: FormatError) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push(e);
        } else {
            self.more_notes += 1;
        }
    }

    /// Walk the `header.num_blocks` data blocks of the file part `part` that `header` opens; returns where the
    /// last one ends. A block that cannot be located ends the walk as `tail_error`: the blocks before it decode.
    ///
    /// `done` is handed each stretch of the input the walk has left behind, so a memory map can drop the pages it
    /// faulted in to read the headers (the kernel maps 64 KiB around each one: 25-30 MB for a file of a few
    /// hundred blocks, which would otherwise stay resident until each block is decoded).
    pub fn walk_part(
        &mut self,
        file: &[u8],
        header: &FileHeader,
        part: u16,
        done: &mut dyn FnMut(Range<usize>),
    ) -> u64 {
        let count = header.num_blocks;
        let mut released = 0u64;
        let mut at = header.first_block;
        let mut open: Option<(ChunkRef, u64, u64)> = None; // chunk, records, bytes
        for i in 0..count {
            let b = match read_block(file, at) {
                Ok(b) => b,
                Err(mut e) => {
                    e.message = format!("data block {i} of {count}: {}", e.message);
                    self.tail_error = Some(e);
                    break;
                }
            };
            match b.class() {
                Class::Records => self.data_blocks += 1,
                Class::Empty => {
                    if self.empty_blocks == 0 {
                        self.first_empty = b.offset;
                    }
                    self.empty_blocks += 1;
                }
                Class::NoRecords | Class::Unknown => {
                    if let Some(n) = b.note() {
                        self.note(n);
                    }
                }
            }
            let (mut chunk, records, bytes) = open.take().unwrap_or((
                ChunkRef {
                    offset: b.offset,
                    blocks: 0,
                    end: b.offset,
                    part,
                },
                0,
                0,
            ));
            chunk.blocks += 1;
            chunk.end = b.end();
            let (records, bytes) = (
                records + u64::from(b.num_records),
                bytes + u64::from(b.size),
            );
            if records >= CHUNK_RECORDS || bytes >= CHUNK_BYTES || chunk.blocks >= CHUNK_BLOCKS {
                self.chunks.push(chunk);
            } else {
                open = Some((chunk, records, bytes));
            }
            at = b.end();
            if at - released >= RELEASE_EVERY {
                done(released as usize..at as usize);
                released = at;
            }
        }
        if let Some((chunk, _, _)) = open {
            self.chunks.push(chunk);
        }
        done(released as usize..(at as usize).min(file.len()));
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::nfcapd::header::{HEADER_V2_LEN, LAYOUT_2};
    use crate::formats::nfcapd::Codec;

    /// A layout-2 header and `n` blocks of `records` records and `payload` bytes each.
    fn file(n: u32, records: u32, payload: u32) -> (Vec<u8>, FileHeader) {
        let mut f = vec![0u8; HEADER_V2_LEN];
        for _ in 0..n {
            f.extend_from_slice(&records.to_le_bytes());
            f.extend_from_slice(&payload.to_le_bytes());
            f.extend_from_slice(&BLOCK_TYPE_V3.to_le_bytes());
            f.extend_from_slice(&0u16.to_le_bytes());
            f.extend(std::iter::repeat_n(0u8, payload as usize));
        }
        let h = FileHeader {
            layout: LAYOUT_2,
            codec: Codec::None,
            num_blocks: n,
            first_block: HEADER_V2_LEN as u64,
            off_appendix: 0,
            appendix_blocks: 0,
            ident: None,
            stat: None,
        };
        (f, h)
    }

    #[test]
    fn big_blocks_are_chunks_of_their_own_and_tiny_ones_are_grouped() {
        let (f, h) = file(10, 20_000, 2_000_000);
        let mut idx = Index::default();
        assert_eq!(idx.walk_part(&f, &h, 0, &mut |_| {}), f.len() as u64);
        assert_eq!((idx.chunks.len(), idx.data_blocks), (10, 10));
        assert!(idx.chunks.iter().all(|c| c.blocks == 1));

        let (f, h) = file(100_000, 1, 4);
        let mut idx = Index::default();
        idx.walk_part(&f, &h, 0, &mut |_| {});
        assert_eq!(
            idx.chunks.len(),
            100_000usize.div_ceil(CHUNK_RECORDS as usize)
        );
        assert_eq!(idx.chunks.iter().map(|c| c.blocks).sum::<u32>(), 100_000);

        let (f, h) = file(1_000_000, 0, 0);
        let mut idx = Index::default();
        idx.walk_part(&f, &h, 0, &mut |_| {});
        assert_eq!((idx.empty_blocks, idx.chunks.len()), (1_000_000, 16));
        assert!(idx.notes.is_empty());
    }

    #[test]
    fn the_walk_hands_back_what_it_left_behind_in_order() {
        let (f, h) = file(100, 1, 100_000);
        let mut done = Vec::new();
        let mut idx = Index::default();
        idx.walk_part(&f, &h, 0, &mut |r| done.push(r));
        assert!(done.len() > 2);
        assert_eq!(done[0].start, 0);
        for w in done.windows(2) {
            assert_eq!(w[0].end, w[1].start);
        }
        assert_eq!(done.last().unwrap().end, f.len());
    }

    #[test]
    fn a_walk_cut_short_keeps_the_blocks_before_and_says_which_block() {
        let (mut f, h) = file(40, 30_000, 500);
        f.truncate(f.len() - 300);
        let mut idx = Index::default();
        idx.walk_part(&f, &h, 0, &mut |_| {});
        assert_eq!(idx.data_blocks, 39);
        let e = idx.tail_error.unwrap();
        assert!(
            e.message.contains("data block 39 of 40: truncated file"),
            "{e}"
        );
    }

    #[test]
    fn unread_blocks_are_told_then_counted() {
        let (mut f, h) = file(30, 5, 8);
        for i in 0..30 {
            // Every block: unknown type 7.
            let at = HEADER_V2_LEN + i * (BLOCK_HEADER_LEN + 8) + 8;
            f[at] = 7;
        }
        let mut idx = Index::default();
        idx.walk_part(&f, &h, 0, &mut |_| {});
        assert_eq!((idx.notes.len(), idx.more_notes), (MAX_NOTES, 20));
        assert!(idx.notes[0]
            .message
            .contains("unknown type 7 with 5 records"));
        assert_eq!(idx.data_blocks, 0);
    }
}
