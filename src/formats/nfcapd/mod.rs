//! nfdump's nfcapd files: layout 2 (nfdump 1.7) and layout 1 (nfdump 1.6), every block codec nfdump writes.
//!
//! A file is a header followed by data blocks that are compressed and decoded independently: each data block is
//! one chunk. Layout 2 ends with an appendix (ident and stat record) that is not a chunk. See docs/FORMATS.md.

mod appendix;
mod block;
mod codec;
mod header;
mod records;
mod stream;
mod v1;
mod v3;
pub mod writer;

pub use codec::{Codec, MAX_BLOCK};
pub use header::{StatRecord, LAYOUT_1, LAYOUT_2, MAGIC};
pub use stream::NfcapdStream;
/// For the fuzz target: the V3 fast path against the general element walk.
#[doc(hidden)]
pub use v3::fast_path_agrees_near_shape as v3_fast_path_agrees_near_shape;
pub use writer::{Compression, NfcapdWriter, BLOCK_FLUSH};

use super::sink::Sink;
use super::{Bytes, Decoded, Decoder, FormatError, Out};
use block::{read_block, BlockRef, Class, Index};
use header::FileHeader;
use records::{Maps, Origin};
use std::sync::OnceLock;
use v1::ExtMap;

/// True when `bytes` start with the nfcapd magic (either layout).
pub fn is_nfcapd(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && u16::from_le_bytes([bytes[0], bytes[1]]) == MAGIC
}

/// Most nfcapd files one input may hold back to back (`cat a b > c`): each costs a header's worth of memory.
const MAX_PARTS: usize = 1 << 16;

/// One nfcapd file of an input (inputs may hold several, concatenated).
struct Part {
    header: FileHeader,
    ident: Option<String>,
    stat: Option<StatRecord>,
    /// A broken appendix does not stop the flows from being read; it is kept here and warned about.
    appendix_error: Option<FormatError>,
}

/// An nfcapd input whose header was validated and whose data blocks were located: one file, or several
/// concatenated, read one after the other.
pub struct NfcapdFile {
    bytes: Bytes,
    parts: Vec<Part>,
    index: Index,
    warnings: Vec<FormatError>,
    /// Layout 1: the extension maps each chunk defines, scanned only when a chunk uses a map it does not define.
    maps_by_chunk: OnceLock<Vec<Vec<ExtMap>>>,
}

impl NfcapdFile {
    /// Validate the header, locate the data blocks and read the appendix, for every nfcapd file in `bytes`. Fails
    /// on a bad first header; a data block that cannot be located becomes the error of the last chunk, so the
    /// blocks before it still decode.
    pub fn open(bytes: Bytes) -> Result<NfcapdFile, FormatError> {
        let b: &[u8] = (*bytes).as_ref();
        let release = &mut |done| bytes.release(done);
        let mut parts: Vec<Part> = Vec::new();
        let mut index = Index::default();
        let mut warnings = Vec::new();
        let mut base = 0u64;
        loop {
            let header = match FileHeader::parse(&b[base as usize..], base) {
                Ok(h) => h,
                Err(e) if parts.is_empty() => return Err(e),
                Err(mut e) => {
                    e.message = format!(
                        "nfcapd file {} of the input: {}",
                        parts.len() + 1,
                        e.message
                    );
                    index.tail_error = Some(e);
                    break;
                }
            };
            let mut end = index.walk_part(b, &header, parts.len() as u16, release);
            let mut part = Part {
                ident: header.ident.clone(),
                stat: header.stat,
                appendix_error: None,
                header,
            };
            if index.tail_error.is_some() {
                parts.push(part);
                break;
            }
            let h = &part.header;
            if h.appendix_blocks > 0 {
                match appendix::read(b, h.off_appendix, h.appendix_blocks, h.codec) {
                    Ok((a, appendix_end)) => {
                        (part.ident, part.stat) = (a.ident, a.stat);
                        end = end.max(appendix_end);
                    }
                    Err(e) => {
                        let mut w = e.clone();
                        w.message =
                            format!("appendix unreadable (the flows are read): {}", e.message);
                        warnings.push(w);
                        part.appendix_error = Some(e);
                    }
                }
            }
            parts.push(part);
            // What follows the file: the end, another nfcapd file (`cat a b`), or bytes nfdump does not read.
            let rest = b.get(end as usize..).unwrap_or(&[]);
            if rest.is_empty() {
                break;
            }
            if is_nfcapd(rest) && parts.len() < MAX_PARTS {
                base = end;
                continue;
            }
            // Possibly blocks the header does not count: not read, so the input is not clean.
            index.tail_error = Some(FormatError::new(
                end,
                format!(
                    "{} bytes after the end of the nfcapd file (starting {}) are not another nfcapd file: \
                     not read",
                    rest.len(),
                    super::bytes::hex(rest, 4)
                ),
            ));
            break;
        }
        warnings.extend(index.notes.iter().cloned());
        if index.more_notes > 0 {
            warnings.push(FormatError::new(
                0,
                format!(
                    "{} more data blocks skipped like those above",
                    index.more_notes
                ),
            ));
        }
        if index.empty_blocks > 0 {
            warnings.push(FormatError::new(
                index.first_empty,
                format!(
                    "{} empty data blocks (no records, no bytes) passed over; nfdump stops at the first one \
                     (\"Corrupt data file\")",
                    index.empty_blocks
                ),
            ));
        }
        Ok(NfcapdFile {
            bytes,
            parts,
            index,
            warnings,
            maps_by_chunk: OnceLock::new(),
        })
    }

    fn first(&self) -> &Part {
        // `open` fails unless the first part's header parsed.
        &self.parts[0]
    }

    /// 1 for nfdump 1.6 files, 2 for nfdump 1.7 files (the first file's, when several are concatenated).
    pub fn layout(&self) -> u16 {
        self.first().header.layout
    }

    pub fn codec(&self) -> Codec {
        self.first().header.codec
    }

    /// The ident string (layout 1: header; layout 2: appendix), e.g. the collector's name.
    pub fn ident(&self) -> Option<&str> {
        self.first().ident.as_deref()
    }

    /// The stat record the file carries (`nfdump -I`).
    pub fn stat(&self) -> Option<&StatRecord> {
        self.first().stat.as_ref()
    }

    /// Why the appendix could not be read, when it could not.
    pub fn appendix_error(&self) -> Option<&FormatError> {
        self.first().appendix_error.as_ref()
    }

    /// Number of data blocks with records located (without a trailing unlocatable one).
    pub fn data_blocks(&self) -> usize {
        self.index.data_blocks as usize
    }

    /// How many nfcapd files the input holds back to back (1 for a plain file).
    pub fn files(&self) -> usize {
        self.parts.len()
    }

    fn file(&self) -> &[u8] {
        (*self.bytes).as_ref()
    }

    /// The blocks of chunk `index`, in order (located when the file was opened, so each reads).
    fn blocks(&self, index: usize) -> impl Iterator<Item = Result<BlockRef, FormatError>> + '_ {
        let chunk = self.index.chunks.get(index).copied();
        let mut at = chunk.map_or(0, |c| c.offset);
        (0..chunk.map_or(0, |c| c.blocks)).map(move |_| {
            let b = read_block(self.file(), at)?;
            at = b.end();
            Ok(b)
        })
    }

    /// Maps defined by chunks before `index`, latest first.
    fn earlier_map(&self, index: usize, id: u16) -> Option<ExtMap> {
        let all = self.maps_by_chunk.get_or_init(|| {
            let mut scratch = Vec::new();
            (0..self.index.chunks.len())
                .map(|c| {
                    let codec = self.parts[usize::from(self.index.chunks[c].part)]
                        .header
                        .codec;
                    let mut maps = Vec::new();
                    for b in self
                        .blocks(c)
                        .flatten()
                        .filter(|b| b.class() == Class::Records)
                    {
                        let data = appendix::raw_payload(self.file(), &b)
                            .and_then(|raw| appendix::payload(raw, &b, codec, &mut scratch));
                        if let Ok(data) = data {
                            maps.extend(records::scan_maps(data, b.num_records));
                        }
                    }
                    maps
                })
                .collect()
        });
        all.get(..index)?
            .iter()
            .rev()
            .find_map(|maps| maps.iter().rev().find(|m| m.id == id).copied())
    }
}

/// Decode one data block whose stored payload is `raw`, into `sink`; blocks that are not read are counted by why.
fn decode_block(
    raw: &[u8],
    block: &BlockRef,
    codec: Codec,
    scratch: &mut Vec<u8>,
    maps: &mut Maps<'_>,
    sink: &mut Sink<'_>,
) -> Result<(), FormatError> {
    match block.class() {
        Class::Records => {}
        Class::Empty => return Ok(()),
        Class::NoRecords => {
            sink.stats.lost.blocks_without_records += 1;
            return Ok(());
        }
        Class::Unknown => {
            sink.stats.lost.unknown_block_records += u64::from(block.num_records);
            return Ok(());
        }
    }
    let data = appendix::payload(raw, block, codec, scratch)?;
    let origin = Origin {
        block,
        in_file: codec == Codec::None || block.stored_uncompressed(),
    };
    records::walk(data, origin, maps, sink)
}

impl Decoder for NfcapdFile {
    fn format(&self) -> &'static str {
        "nfcapd"
    }

    fn chunks(&self) -> usize {
        self.index.chunks.len() + usize::from(self.index.tail_error.is_some())
    }

    fn decode_chunk(&self, index: usize, scratch: &mut Vec<u8>, out: Out) -> Decoded {
        let Some(chunk) = self.index.chunks.get(index).copied() else {
            return Err(
                match (&self.index.tail_error, index == self.index.chunks.len()) {
                    (Some(e), true) => e.clone(),
                    _ => FormatError::new(
                        0,
                        format!(
                            "chunk {index} requested, the file has {} chunks",
                            self.chunks()
                        ),
                    ),
                },
            );
        };
        let codec = self.parts[usize::from(chunk.part)].header.codec;
        let earlier = |id: u16| self.earlier_map(index, id);
        let mut maps = Maps::new(&earlier);
        let mut sink = Sink::new(out);
        // Blocks decode independently: a bad one is the chunk's error, the blocks after it are still read.
        let mut first_error = None;
        for block in self.blocks(index) {
            let decoded = block.and_then(|b| {
                let raw = appendix::raw_payload(self.file(), &b)?;
                decode_block(raw, &b, codec, scratch, &mut maps, &mut sink)
            });
            if let Err(e) = decoded {
                first_error.get_or_insert(e);
            }
        }
        // The chunk is decoded: its pages need not stay resident.
        self.bytes
            .release(chunk.offset as usize..chunk.end as usize);
        sink.finish(first_error.map_or(Ok(()), Err))
    }

    fn declared_flows(&self) -> Option<u64> {
        self.parts.iter().map(|p| p.stat.map(|s| s.flows)).sum()
    }

    fn warnings(&self) -> Vec<FormatError> {
        self.warnings.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::{bytes_from_vec, decode_all};
    use block::BLOCK_TYPE_V1;

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
    fn layout1_record_finds_its_map_in_an_earlier_chunk() {
        // Enough exporter records after the map that its block is a chunk of its own.
        let mut first = vec![map_record()];
        first.extend(std::iter::repeat_n(vec![7, 0, 4, 0], 9000));
        let file = layout1_file(&[block(&first), block(&[common_record()])]);
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
        // Blocks grouped into one chunk share their maps too.
        let file = layout1_file(&[block(&[map_record()]), block(&[common_record()])]);
        let f = NfcapdFile::open(bytes_from_vec(file)).unwrap();
        assert_eq!(f.chunks(), 1);
        assert_eq!(decode_all(&f, &mut |_| {}).unwrap().flows, 1);
    }

    #[test]
    fn unknown_records_and_blocks_are_counted_as_lost_and_told() {
        let mut odd = block(&[vec![99, 0, 8, 0, 0, 0, 0, 0], common_record()]);
        odd[8] = 9; // block type 9
        let file = layout1_file(&[
            block(&[map_record(), vec![99, 0, 4, 0], vec![16, 0, 4, 0]]),
            odd,
            block(&[]),
        ]);
        let f = NfcapdFile::open(bytes_from_vec(file)).unwrap();
        let w = f.warnings();
        assert!(
            w[0].message.contains("unknown type 9 with 2 records"),
            "{w:?}"
        );
        assert!(w[1].message.contains("1 empty data blocks"), "{w:?}");
        let s = decode_all(&f, &mut |_| {}).unwrap();
        assert_eq!(s.flows, 0);
        assert_eq!(
            (s.lost.unknown_records, s.lost.unknown_block_records),
            (2, 2)
        );
        assert_eq!(s.skipped, 1);
    }

    #[test]
    fn concatenated_files_are_all_read_and_trailing_bytes_are_an_error() {
        let one = layout1_file(&[block(&[map_record(), common_record()])]);
        let file = [one.clone(), one.clone(), one.clone()].concat();
        let f = NfcapdFile::open(bytes_from_vec(file.clone())).unwrap();
        assert_eq!(f.files(), 3);
        assert_eq!(decode_all(&f, &mut |_| {}).unwrap().flows, 3);
        let mut junk = file;
        junk.extend_from_slice(b"junk");
        let f = NfcapdFile::open(bytes_from_vec(junk)).unwrap();
        let e = decode_all(&f, &mut |_| {}).unwrap_err();
        assert!(
            e.message
                .contains("4 bytes after the end of the nfcapd file"),
            "{e}"
        );
    }

    #[test]
    fn layout1_record_without_any_map_is_skipped_like_nfdump_does() {
        let file = layout1_file(&[block(&[common_record()])]);
        let f = NfcapdFile::open(bytes_from_vec(file)).unwrap();
        let s = f.decode_chunk(0, &mut Vec::new(), &mut |_| {}).unwrap();
        assert_eq!((s.flows, s.lost.missing_map), (0, 1));
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
        assert!(e.message.contains("truncated file"), "{e}");
    }
}
