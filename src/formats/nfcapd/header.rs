//! The file header of both layouts and the statistics record each carries.

use super::codec::Codec;
use crate::formats::bytes::{Cursor, LE};
use crate::formats::FormatError;

/// First two bytes of every nfcapd file, little-endian.
pub const MAGIC: u16 = 0xA50C;
/// Layout 1 (nfdump 1.6): 140-byte header, 136-byte stat record, then blocks.
pub const LAYOUT_1: u16 = 1;
/// Layout 2 (nfdump 1.7): 40-byte header, blocks, then an appendix.
pub const LAYOUT_2: u16 = 2;

pub const HEADER_V2_LEN: usize = 40;
pub const HEADER_V1_LEN: usize = 140;
pub const STAT_V1_LEN: usize = 136;
/// Length of the ident field of a layout-1 header.
pub const IDENT_V1_LEN: usize = 128;

/// Layout-1 header flags naming the block codec.
const V1_FLAG_LZO: u32 = 0x1;
const V1_FLAG_BZ2: u32 = 0x8;
const V1_FLAG_LZ4: u32 = 0x10;

/// The figures nfdump keeps per file (`nfdump -I` prints them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatRecord {
    pub flows: u64,
    pub bytes: u64,
    pub packets: u64,
    /// Flows, bytes and packets per protocol: TCP, UDP, ICMP (v4 and v6), other.
    pub flows_by_proto: [u64; 4],
    pub bytes_by_proto: [u64; 4],
    pub packets_by_proto: [u64; 4],
    /// First and last time seen, in ms since the epoch.
    pub first_ms: u64,
    pub last_ms: u64,
    pub sequence_failures: u64,
}

/// Size of a layout-2 stat record body: 18 x u64.
pub const STAT_V2_LEN: usize = 18 * 8;

impl StatRecord {
    /// Slot of a protocol in the per-protocol arrays, as nfdump sorts them.
    pub fn proto_slot(proto: u8) -> usize {
        match proto {
            6 => 0,
            17 => 1,
            1 | 58 => 2,
            _ => 3,
        }
    }

    /// The 15 counters both layouts store first, in their order.
    fn counters(&self) -> [u64; 15] {
        let mut v = [0u64; 15];
        v[..3].copy_from_slice(&[self.flows, self.bytes, self.packets]);
        v[3..7].copy_from_slice(&self.flows_by_proto);
        v[7..11].copy_from_slice(&self.bytes_by_proto);
        v[11..].copy_from_slice(&self.packets_by_proto);
        v
    }

    fn from_counters(v: [u64; 15]) -> StatRecord {
        StatRecord {
            flows: v[0],
            bytes: v[1],
            packets: v[2],
            flows_by_proto: [v[3], v[4], v[5], v[6]],
            bytes_by_proto: [v[7], v[8], v[9], v[10]],
            packets_by_proto: [v[11], v[12], v[13], v[14]],
            ..StatRecord::default()
        }
    }

    fn read_counters(c: &mut Cursor<'_>) -> Result<[u64; 15], FormatError> {
        let mut v = [0u64; 15];
        for x in &mut v {
            *x = c.u64("a stat record counter")?;
        }
        Ok(v)
    }

    /// Parse a layout-2 stat record body (18 x u64) found at `offset`.
    pub fn parse_v2(b: &[u8], offset: u64) -> Result<StatRecord, FormatError> {
        let mut c = Cursor::new(b, offset, LE);
        let mut s = StatRecord::from_counters(Self::read_counters(&mut c)?);
        s.first_ms = c.u64("the stat record's first seen")?;
        s.last_ms = c.u64("the stat record's last seen")?;
        s.sequence_failures = c.u64("the stat record's sequence failures")?;
        Ok(s)
    }

    /// Serialise as a layout-2 stat record body.
    pub fn to_v2(&self) -> [u8; STAT_V2_LEN] {
        let tail = [self.first_ms, self.last_ms, self.sequence_failures];
        let mut out = [0u8; STAT_V2_LEN];
        for (i, v) in self.counters().iter().chain(&tail).enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Parse the layout-1 stat record at `offset`: 15 x u64, then seconds and milliseconds in separate fields.
    pub fn parse_v1(b: &[u8], offset: u64) -> Result<StatRecord, FormatError> {
        let mut c = Cursor::new(b, offset, LE);
        let mut s = StatRecord::from_counters(Self::read_counters(&mut c)?);
        let first_s = u64::from(c.u32("the stat record's first seen")?);
        let last_s = u64::from(c.u32("the stat record's last seen")?);
        let msec_first = u64::from(c.u16("the stat record's first seen ms")?);
        let msec_last = u64::from(c.u16("the stat record's last seen ms")?);
        s.first_ms = first_s * 1000 + msec_first;
        s.last_ms = last_s * 1000 + msec_last;
        s.sequence_failures = u64::from(c.u32("the stat record's sequence failures")?);
        Ok(s)
    }
}

/// What the file header says, for either layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHeader {
    pub layout: u16,
    pub codec: Codec,
    /// Number of data blocks (appendix excluded).
    pub num_blocks: u32,
    /// Offset of the first data block.
    pub first_block: u64,
    /// Layout 2: where the appendix is and how many blocks it has (0 when none).
    pub off_appendix: u64,
    pub appendix_blocks: u16,
    /// Layout 1 carries these in the header; layout 2 in the appendix.
    pub ident: Option<String>,
    pub stat: Option<StatRecord>,
}

fn need(b: &[u8], len: usize, what: &str) -> Result<(), FormatError> {
    if b.len() < len {
        return Err(FormatError::new(
            b.len() as u64,
            format!(
                "truncated file: expected a {len}-byte {what}, found {} bytes",
                b.len()
            ),
        ));
    }
    Ok(())
}

/// NUL-terminated text, lossily decoded.
pub fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

impl FileHeader {
    /// Parse the header at the start of `b`, a file (or the part of a stream) that starts at input offset `base`.
    /// Offsets in the result (first block, appendix) are input offsets.
    pub fn parse(b: &[u8], base: u64) -> Result<FileHeader, FormatError> {
        let mut c = Cursor::new(b, base, LE);
        need(b, 4, "nfcapd magic and version").map_err(|e| at(e, base))?;
        let magic = c.u16("the nfcapd magic")?;
        if magic != MAGIC {
            let hint = if magic == MAGIC.swap_bytes() {
                " (byte-swapped: written on a big-endian host, not supported)"
            } else {
                ""
            };
            return Err(FormatError::new(
                base,
                format!("bad magic: expected 0x{MAGIC:04x}, found 0x{magic:04x}{hint}"),
            ));
        }
        let mut h = match c.u16("the layout version")? {
            LAYOUT_2 => Self::parse_v2(b, base),
            LAYOUT_1 => Self::parse_v1(b, base),
            v => Err(FormatError::new(
                base + 2,
                format!("unsupported layout version: expected 1 or 2, found {v}"),
            )),
        }?;
        h.first_block += base;
        if h.appendix_blocks > 0 {
            h.off_appendix = h.off_appendix.saturating_add(base);
        }
        Ok(h)
    }

    fn parse_v2(b: &[u8], base: u64) -> Result<FileHeader, FormatError> {
        need(b, HEADER_V2_LEN, "layout 2 file header").map_err(|e| at(e, base))?;
        let mut c = Cursor::new(&b[..HEADER_V2_LEN], base, LE);
        c.skip(16, "magic, version, nfdversion and creation time")?;
        let compression = c.u8("the compression")?;
        let codec = Codec::from_v2(compression).ok_or_else(|| {
            FormatError::new(
                base + 16,
                format!("unknown compression: expected 0 (none), 1 (LZO), 2 (BZ2), 3 (LZ4) or 4 (ZSTD), found {compression}"),
            )
        })?;
        let encryption = c.u8("the encryption")?;
        if encryption != 0 {
            return Err(FormatError::new(
                base + 17,
                format!("encrypted file: expected encryption 0, found {encryption}"),
            ));
        }
        let appendix_blocks = c.u16("the appendix block count")?;
        c.skip(4, "the creator")?;
        let off_appendix = c.u64("the appendix offset")?;
        c.skip(4, "the block size")?;
        let num_blocks = c.u32("the block count")?;
        Ok(FileHeader {
            layout: LAYOUT_2,
            codec,
            num_blocks,
            first_block: HEADER_V2_LEN as u64,
            off_appendix,
            appendix_blocks,
            ident: None,
            stat: None,
        })
    }

    fn parse_v1(b: &[u8], base: u64) -> Result<FileHeader, FormatError> {
        need(
            b,
            HEADER_V1_LEN + STAT_V1_LEN,
            "layout 1 file header and stat record",
        )
        .map_err(|e| at(e, base))?;
        let mut c = Cursor::new(b, base, LE);
        c.skip(4, "magic and version")?;
        let flags = c.u32("the flags")?;
        let num_blocks = c.u32("the block count")?;
        let ident = c_string(c.take(IDENT_V1_LEN, "the ident")?);
        let codec = match flags & (V1_FLAG_LZO | V1_FLAG_BZ2 | V1_FLAG_LZ4) {
            0 => Codec::None,
            V1_FLAG_LZO => Codec::Lzo,
            V1_FLAG_BZ2 => Codec::Bz2,
            V1_FLAG_LZ4 => Codec::Lz4,
            _ => {
                return Err(FormatError::new(
                    base + 4,
                    format!(
                        "layout 1 flags 0x{flags:08x} name several codecs: expected at most one of 0x1 (LZO), \
                         0x8 (BZ2), 0x10 (LZ4)"
                    ),
                ))
            }
        };
        Ok(FileHeader {
            layout: LAYOUT_1,
            codec,
            num_blocks,
            first_block: (HEADER_V1_LEN + STAT_V1_LEN) as u64,
            off_appendix: 0,
            appendix_blocks: 0,
            ident: Some(ident),
            stat: Some(StatRecord::parse_v1(
                &b[HEADER_V1_LEN..HEADER_V1_LEN + STAT_V1_LEN],
                base + HEADER_V1_LEN as u64,
            )?),
        })
    }
}

/// `e` moved from the part's offsets to the input's.
fn at(mut e: FormatError, base: u64) -> FormatError {
    e.offset += base;
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_record_round_trips() {
        let s = StatRecord {
            flows: 1,
            bytes: 2,
            packets: 3,
            flows_by_proto: [4, 5, 6, 7],
            bytes_by_proto: [8, 9, 10, 11],
            packets_by_proto: [12, 13, 14, 15],
            first_ms: 16,
            last_ms: 17,
            sequence_failures: 18,
        };
        assert_eq!(StatRecord::parse_v2(&s.to_v2(), 0), Ok(s));
        assert!(StatRecord::parse_v2(&s.to_v2()[..100], 7).is_err());
    }

    #[test]
    fn layout1_flags_are_reported_whole() {
        let mut b = vec![0u8; HEADER_V1_LEN + STAT_V1_LEN];
        b[0..2].copy_from_slice(&MAGIC.to_le_bytes());
        b[2..4].copy_from_slice(&LAYOUT_1.to_le_bytes());
        b[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        let e = FileHeader::parse(&b, 0).unwrap_err();
        assert_eq!(e.offset, 4);
        assert!(e.message.contains("0xffffffff"), "{e}");
    }
}
