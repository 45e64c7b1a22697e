//! Layout-2 nfcapd writer (V3 records) that the real nfdump 1.7 reads: data blocks of about 2 MB, then an appendix
//! with the ident and the stat record, then the header rewritten with the block count and the appendix offset.

use super::block::{BLOCK_HEADER_LEN, BLOCK_TYPE_V3};
use super::codec::Codec;
use super::header::{StatRecord, HEADER_V2_LEN, LAYOUT_2, MAGIC};
use super::{appendix, v3};
use crate::record::FlowRecord;
use std::io::{self, Seek, SeekFrom, Write};

/// A data block is written once its uncompressed records reach this size (nfdump's collectors do the same).
pub const BLOCK_FLUSH: usize = 2 * 1024 * 1024;
/// nfdump stamps the version that wrote the file; 1.7.1's value keeps its readers on the 1.7 code path.
const NFDVERSION: u32 = 0x0107_0100;
/// nfdump rejects an ident record of 128 bytes or more (header and NUL included).
const MAX_IDENT: usize = 128 - 4 - 1 - 1;

/// Block compression for written files; all are readable by nfdump 1.7.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Lz4,
    Bz2,
}

impl Compression {
    fn codec(self) -> Codec {
        match self {
            Compression::None => Codec::None,
            Compression::Lz4 => Codec::Lz4,
            Compression::Bz2 => Codec::Bz2,
        }
    }
}

/// Writes flows as an nfdump 1.7 (layout 2) file. Call [`NfcapdWriter::finish`]: until then the header is a
/// placeholder and nfdump would see no blocks.
pub struct NfcapdWriter<W: Write + Seek> {
    w: W,
    compression: Compression,
    ident: String,
    /// Stream position of the file header: offsets in the header are relative to it.
    base: u64,
    /// Bytes written after `base`.
    written: u64,
    block: Vec<u8>,
    block_records: u32,
    packed: Vec<u8>,
    num_blocks: u32,
    stat: StatRecord,
}

impl<W: Write + Seek> NfcapdWriter<W> {
    /// Start a file at the current position of `w`, with `ident` (truncated to what nfdump accepts).
    pub fn new(mut w: W, compression: Compression, ident: &str) -> io::Result<NfcapdWriter<W>> {
        let base = w.stream_position()?;
        w.write_all(&[0u8; HEADER_V2_LEN])?;
        let mut cut = ident.len().min(MAX_IDENT);
        while !ident.is_char_boundary(cut) {
            cut -= 1;
        }
        Ok(NfcapdWriter {
            w,
            compression,
            ident: ident[..cut].replace('\0', " "),
            base,
            written: HEADER_V2_LEN as u64,
            block: Vec::with_capacity(BLOCK_FLUSH + 256),
            block_records: 0,
            packed: Vec::new(),
            num_blocks: 0,
            stat: StatRecord {
                first_ms: u64::MAX,
                ..StatRecord::default()
            },
        })
    }

    /// Append one flow.
    pub fn write(&mut self, f: &FlowRecord) -> io::Result<()> {
        v3::encode(f, &mut self.block);
        self.block_records += 1;
        let s = &mut self.stat;
        let slot = StatRecord::proto_slot(f.proto);
        s.flows += 1;
        s.bytes = s.bytes.wrapping_add(f.bytes);
        s.packets = s.packets.wrapping_add(f.packets);
        s.flows_by_proto[slot] += 1;
        s.bytes_by_proto[slot] = s.bytes_by_proto[slot].wrapping_add(f.bytes);
        s.packets_by_proto[slot] = s.packets_by_proto[slot].wrapping_add(f.packets);
        s.first_ms = s.first_ms.min(f.first_ms);
        s.last_ms = s.last_ms.max(f.last_ms);
        if self.block.len() >= BLOCK_FLUSH {
            self.flush_block()?;
        }
        Ok(())
    }

    /// Flows written so far.
    pub fn flows(&self) -> u64 {
        self.stat.flows
    }

    /// Write the records gathered so far as one block (compressed with the file's codec).
    fn flush_block(&mut self) -> io::Result<()> {
        if self.block_records == 0 {
            return Ok(());
        }
        self.write_block(self.block_records)?;
        self.num_blocks += 1;
        self.block.clear();
        self.block_records = 0;
        Ok(())
    }

    /// Compress `self.block` and write it with its header. nfdump 1.7.1 ignores the per-block "uncompressed"
    /// flag, so every block, the appendix included, uses the file's codec.
    fn write_block(&mut self, records: u32) -> io::Result<()> {
        let payload: &[u8] = match self.compression {
            Compression::None => &self.block,
            Compression::Lz4 => {
                let bound = lz4_flex::block::get_maximum_output_size(self.block.len());
                self.packed.resize(bound, 0);
                let n = lz4_flex::block::compress_into(&self.block, &mut self.packed)
                    .map_err(|e| io::Error::other(format!("LZ4 compression: {e}")))?;
                &self.packed[..n]
            }
            Compression::Bz2 => {
                let bound = self.block.len() + self.block.len() / 100 + 1024;
                self.packed.resize(bound, 0);
                let mut c = bzip2::Compress::new(bzip2::Compression::best(), 30);
                match c.compress(&self.block, &mut self.packed, bzip2::Action::Finish) {
                    Ok(bzip2::Status::StreamEnd) => {}
                    Ok(_) => {
                        return Err(io::Error::other(
                            "BZ2 compression did not end within its output bound",
                        ))
                    }
                    Err(e) => return Err(io::Error::other(format!("BZ2 compression: {e}"))),
                }
                &self.packed[..c.total_out() as usize]
            }
        };
        let mut head = [0u8; BLOCK_HEADER_LEN];
        head[0..4].copy_from_slice(&records.to_le_bytes());
        head[4..8].copy_from_slice(&(payload.len() as u32).to_le_bytes());
        head[8..10].copy_from_slice(&BLOCK_TYPE_V3.to_le_bytes());
        // flags 0: compressed with the file's codec
        self.w.write_all(&head)?;
        self.w.write_all(payload)?;
        self.written += (BLOCK_HEADER_LEN + payload.len()) as u64;
        Ok(())
    }

    /// Write the last block, the appendix and the final header; return the inner writer positioned at the end.
    pub fn finish(mut self) -> io::Result<W> {
        self.flush_block()?;
        if self.stat.flows == 0 {
            self.stat.first_ms = 0;
        }
        // Appendix: one block with the ident and the stat record.
        let off_appendix = self.written;
        self.block.clear();
        let ident_size = 4 + self.ident.len() + 1;
        self.block
            .extend_from_slice(&appendix::TYPE_IDENT.to_le_bytes());
        self.block
            .extend_from_slice(&(ident_size as u16).to_le_bytes());
        self.block.extend_from_slice(self.ident.as_bytes());
        self.block.push(0);
        let stat = self.stat.to_v2();
        self.block
            .extend_from_slice(&appendix::TYPE_STAT.to_le_bytes());
        self.block
            .extend_from_slice(&((4 + stat.len()) as u16).to_le_bytes());
        self.block.extend_from_slice(&stat);
        self.write_block(2)?;

        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut h = [0u8; HEADER_V2_LEN];
        h[0..2].copy_from_slice(&MAGIC.to_le_bytes());
        h[2..4].copy_from_slice(&LAYOUT_2.to_le_bytes());
        h[4..8].copy_from_slice(&NFDVERSION.to_le_bytes());
        h[8..16].copy_from_slice(&created.to_le_bytes());
        h[16] = self.compression.codec().v2_id();
        h[17] = 0; // not encrypted
        h[18..20].copy_from_slice(&1u16.to_le_bytes()); // appendix blocks
        h[24..32].copy_from_slice(&off_appendix.to_le_bytes());
        // BlockSize @32 stays 0 as nfdump 1.7.1 writes it.
        h[36..40].copy_from_slice(&self.num_blocks.to_le_bytes());
        self.w.seek(SeekFrom::Start(self.base))?;
        self.w.write_all(&h)?;
        self.w.seek(SeekFrom::Start(self.base + self.written))?;
        self.w.flush()?;
        Ok(self.w)
    }
}
