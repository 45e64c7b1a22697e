//! nfdump's nfcapd files: layout 2 (nfdump 1.7) and layout 1 (nfdump 1.6), every block codec nfdump writes.
//!
//! A file is a header followed by data blocks that are compressed and decoded independently: each data block is
//! one chunk. Layout 2 ends with an appendix (ident and stat record) that is not a chunk. See docs/FORMATS.md.

mod appendix;
mod block;
mod bytes;
mod codec;
mod header;
mod records;
mod v1;
mod v3;
pub mod writer;

pub use codec::{Codec, MAX_BLOCK};
pub use header::{StatRecord, LAYOUT_1, LAYOUT_2, MAGIC};
/// For the fuzz target: the V3 fast path against the general element walk.
#[doc(hidden)]
pub use v3::fast_path_agrees_near_shape as v3_fast_path_agrees_near_shape;
pub use writer::{Compression, NfcapdWriter, BLOCK_FLUSH};

use super::{Bytes, ChunkStats, Decoder, FormatError};
use crate::record::FlowRecord;
use block::{BlockRef, BLOCK_TYPE_V1, BLOCK_TYPE_V3};
use header::FileHeader;
use records::{Maps, Origin, Sink};
use std::sync::OnceLock;
use v1::ExtMap;

/// True when `bytes` start with the nfcapd magic (either layout).
pub fn is_nfcapd(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && u16::from_le_bytes([bytes[0], bytes[1]]) == MAGIC
}

/// An nfcapd file whose header was validated and whose data blocks were located.
pub struct NfcapdFile {
    bytes: Bytes,
    header: FileHeader,
    blocks: Vec<BlockRef>,
    /// A block that could not be located (truncated file): reported as the error of the last chunk.
    tail_error: Option<FormatError>,
    ident: Option<String>,
    stat: Option<StatRecord>,
    /// A broken appendix does not stop the flows from being read; it is kept here.
    appendix_error: Option<FormatError>,
    /// Layout 1: the extension maps each block defines, scanned only when a block uses a map it does not define.
    maps_by_block: OnceLock<Vec<Vec<ExtMap>>>,
}

impl NfcapdFile {
    /// Validate the header, locate the data blocks and read the appendix. Fails on a bad header; a data block that
    /// cannot be located becomes the error of the last chunk, so the blocks before it still decode.
    pub fn open(bytes: Bytes) -> Result<NfcapdFile, FormatError> {
        let b: &[u8] = (*bytes).as_ref();
        let header = FileHeader::parse(b)?;
        let (blocks, tail_error) =
            block::index_blocks(b, header.first_block, header.num_blocks, &mut |done| {
                bytes.release(done)
            });
        let (mut ident, mut stat, mut appendix_error) = (header.ident.clone(), header.stat, None);
        if header.appendix_blocks > 0 {
            match appendix::read(b, header.off_appendix, header.appendix_blocks, header.codec) {
                Ok(a) => {
                    ident = a.ident;
                    stat = a.stat;
                }
                Err(e) => appendix_error = Some(e),
            }
        }
        Ok(NfcapdFile {
            bytes,
            header,
            blocks,
            tail_error,
            ident,
            stat,
            appendix_error,
            maps_by_block: OnceLock::new(),
        })
    }

    /// 1 for nfdump 1.6 files, 2 for nfdump 1.7 files.
    pub fn layout(&self) -> u16 {
        self.header.layout
    }

    pub fn codec(&self) -> Codec {
        self.header.codec
    }

    /// The ident string (layout 1: header; layout 2: appendix), e.g. the collector's name.
    pub fn ident(&self) -> Option<&str> {
        self.ident.as_deref()
    }

    /// The stat record the file carries (`nfdump -I`).
    pub fn stat(&self) -> Option<&StatRecord> {
        self.stat.as_ref()
    }

    /// Why the appendix could not be read, when it could not.
    pub fn appendix_error(&self) -> Option<&FormatError> {
        self.appendix_error.as_ref()
    }

    /// Number of data blocks located (without a trailing unlocatable one).
    pub fn data_blocks(&self) -> usize {
        self.blocks.len()
    }

    fn file(&self) -> &[u8] {
        (*self.bytes).as_ref()
    }

    /// The block is decoded: its pages need not stay resident.
    fn release(&self, block: &BlockRef) {
        let start = block.offset as usize;
        self.bytes
            .release(start..block.payload_start() + block.size as usize);
    }

    /// Maps defined by blocks before `index`, latest first.
    fn earlier_map(&self, index: usize, id: u16) -> Option<ExtMap> {
        let all = self.maps_by_block.get_or_init(|| {
            let mut scratch = Vec::new();
            self.blocks
                .iter()
                .map(
                    |b| match appendix::payload(self.file(), b, self.header.codec, &mut scratch) {
                        Ok(data) => records::scan_maps(data, b.num_records),
                        Err(_) => Vec::new(),
                    },
                )
                .collect()
        });
        all.get(..index)?
            .iter()
            .rev()
            .find_map(|maps| maps.iter().rev().find(|m| m.id == id).copied())
    }
}

impl Decoder for NfcapdFile {
    fn format(&self) -> &'static str {
        "nfcapd"
    }

    fn chunks(&self) -> usize {
        self.blocks.len() + usize::from(self.tail_error.is_some())
    }

    fn decode_chunk(
        &self,
        index: usize,
        scratch: &mut Vec<u8>,
        out: &mut dyn FnMut(&[FlowRecord]),
    ) -> Result<ChunkStats, FormatError> {
        let Some(block) = self.blocks.get(index) else {
            return Err(match (&self.tail_error, index == self.blocks.len()) {
                (Some(e), true) => e.clone(),
                _ => FormatError::new(
                    0,
                    format!(
                        "chunk {index} requested, the file has {} chunks",
                        self.chunks()
                    ),
                ),
            });
        };
        // Array blocks (type 4) and unknown block types hold no flows: nfdump skips them too.
        if block.kind != BLOCK_TYPE_V1 && block.kind != BLOCK_TYPE_V3 {
            return Ok(ChunkStats::default());
        }
        let data = appendix::payload(self.file(), block, self.header.codec, scratch)?;
        let origin = Origin {
            block,
            in_file: self.header.codec == Codec::None || block.stored_uncompressed(),
        };
        let earlier = |id: u16| self.earlier_map(index, id);
        let mut maps = Maps::new(&earlier);
        let mut sink = Sink::new(out);
        let walked = records::walk(data, origin, &mut maps, &mut sink);
        // Flows before a corrupt record are handed out, as nfdump prints them before it stops.
        sink.flush();
        self.release(block);
        walked.map(|()| sink.stats)
    }

    fn declared_flows(&self) -> Option<u64> {
        self.stat.map(|s| s.flows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::bytes_from_vec;

    fn block(records: &[Vec<u8>]) -> Vec<u8> {
        let payload: Vec<u8> = records.concat();
        let mut b = Vec::new();
        b.extend_from_slice(&(records.len() as u32).to_le_bytes());
        b.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        b.extend_from_slice(&BLOCK_TYPE_V1.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&payload);
        b
    }

    /// ExtensionMap id 1: AS_2 (4 bytes), then IO_SNMP_2.
    fn map_record() -> Vec<u8> {
        let mut r = vec![2, 0, 16, 0, 1, 0, 0, 0];
        for ex in [6u16, 4, 0, 0] {
            r.extend_from_slice(&ex.to_le_bytes());
        }
        r
    }

    /// IPv4 CommonRecord using map 1, 32-bit counters, input 7 and output 9 after the 4 AS bytes.
    fn common_record() -> Vec<u8> {
        let mut r = vec![0u8; 56];
        r[0..2].copy_from_slice(&10u16.to_le_bytes());
        r[2..4].copy_from_slice(&56u16.to_le_bytes());
        r[6..8].copy_from_slice(&1u16.to_le_bytes());
        r[8..10].copy_from_slice(&250u16.to_le_bytes()); // msec_first
        r[12..16].copy_from_slice(&1_600_000_000u32.to_le_bytes());
        r[16..20].copy_from_slice(&1_600_000_001u32.to_le_bytes());
        r[21] = 0x02;
        r[22] = 6;
        r[24..26].copy_from_slice(&1234u16.to_le_bytes());
        r[26..28].copy_from_slice(&80u16.to_le_bytes());
        r[28..30].copy_from_slice(&3u16.to_le_bytes());
        r[32..36].copy_from_slice(&0x0a00_0001u32.to_le_bytes());
        r[36..40].copy_from_slice(&0x0a00_0002u32.to_le_bytes());
        r[40..44].copy_from_slice(&5u32.to_le_bytes());
        r[44..48].copy_from_slice(&300u32.to_le_bytes());
        r[52..54].copy_from_slice(&7u16.to_le_bytes());
        r[54..56].copy_from_slice(&9u16.to_le_bytes());
        r
    }

    fn layout1_file(blocks: &[Vec<u8>]) -> Vec<u8> {
        let mut f = vec![0u8; header::HEADER_V1_LEN + header::STAT_V1_LEN];
        f[0..2].copy_from_slice(&MAGIC.to_le_bytes());
        f[2..4].copy_from_slice(&LAYOUT_1.to_le_bytes());
        f[8..12].copy_from_slice(&(blocks.len() as u32).to_le_bytes());
        f[12..16].copy_from_slice(b"test");
        for b in blocks {
            f.extend_from_slice(b);
        }
        f
    }

    #[test]
    fn layout1_record_finds_its_map_in_an_earlier_block() {
        let file = layout1_file(&[block(&[map_record()]), block(&[common_record()])]);
        let f = NfcapdFile::open(bytes_from_vec(file)).unwrap();
        assert_eq!((f.layout(), f.chunks(), f.ident()), (1, 2, Some("test")));
        let mut got = Vec::new();
        let s = f
            .decode_chunk(1, &mut Vec::new(), &mut |b| got.extend_from_slice(b))
            .unwrap();
        assert_eq!(s.flows, 1);
        let r = got[0];
        assert_eq!(
            (r.src.as_v4(), r.dst.as_v4()),
            (Some(0x0a00_0001), Some(0x0a00_0002))
        );
        assert_eq!(
            (r.first_ms, r.last_ms),
            (1_600_000_000_250, 1_600_000_001_000)
        );
        assert_eq!(
            (r.packets, r.bytes, r.src_port, r.dst_port),
            (5, 300, 1234, 80)
        );
        assert_eq!((r.input, r.output, r.exporter, r.tcp_flags), (7, 9, 3, 2));
    }

    #[test]
    fn layout1_record_without_any_map_is_skipped_like_nfdump_does() {
        let file = layout1_file(&[block(&[common_record()])]);
        let f = NfcapdFile::open(bytes_from_vec(file)).unwrap();
        let s = f.decode_chunk(0, &mut Vec::new(), &mut |_| {}).unwrap();
        assert_eq!((s.flows, s.skipped), (0, 1));
    }

    #[test]
    fn missing_block_is_the_error_of_the_last_chunk_only() {
        let mut file = layout1_file(&[
            block(&[map_record(), common_record()]),
            block(&[common_record()]),
        ]);
        file.truncate(file.len() - 10);
        let f = NfcapdFile::open(bytes_from_vec(file)).unwrap();
        assert_eq!(f.chunks(), 2);
        assert_eq!(
            f.decode_chunk(0, &mut Vec::new(), &mut |_| {})
                .unwrap()
                .flows,
            1
        );
        let e = f.decode_chunk(1, &mut Vec::new(), &mut |_| {}).unwrap_err();
        assert!(e.message.contains("past end of file"), "{e}");
    }
}
