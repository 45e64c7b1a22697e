//! The file header of both layouts and the statistics record each carries.

use super::bytes::{le_u16, le_u32, le_u64};
use super::codec::Codec;
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

    /// Parse a layout-2 stat record body (18 x u64).
    pub fn parse_v2(b: &[u8], offset: u64) -> Result<StatRecord, FormatError> {
        if b.len() < STAT_V2_LEN {
            return Err(FormatError::new(
                offset,
                format!(
                    "stat record: expected {STAT_V2_LEN} bytes, found {}",
                    b.len()
                ),
            ));
        }
        let v = |i: usize| le_u64(b, i * 8).unwrap_or(0);
        Ok(StatRecord {
            flows: v(0),
            bytes: v(1),
            packets: v(2),
            flows_by_proto: [v(3), v(4), v(5), v(6)],
            bytes_by_proto: [v(7), v(8), v(9), v(10)],
            packets_by_proto: [v(11), v(12), v(13), v(14)],
            first_ms: v(15),
            last_ms: v(16),
            sequence_failures: v(17),
        })
    }

    /// Serialise as a layout-2 stat record body.
    pub fn to_v2(&self) -> [u8; STAT_V2_LEN] {
        let vals = [
            self.flows,
            self.bytes,
            self.packets,
            self.flows_by_proto[0],
            self.flows_by_proto[1],
            self.flows_by_proto[2],
            self.flows_by_proto[3],
            self.bytes_by_proto[0],
            self.bytes_by_proto[1],
            self.bytes_by_proto[2],
            self.bytes_by_proto[3],
            self.packets_by_proto[0],
            self.packets_by_proto[1],
            self.packets_by_proto[2],
            self.packets_by_proto[3],
            self.first_ms,
            self.last_ms,
            self.sequence_failures,
        ];
        let mut out = [0u8; STAT_V2_LEN];
        for (i, v) in vals.iter().enumerate() {
            out[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    /// Parse the layout-1 stat record: 15 x u64, then seconds and milliseconds split in separate fields.
    pub fn parse_v1(b: &[u8], offset: u64) -> Result<StatRecord, FormatError> {
        if b.len() < STAT_V1_LEN {
            return Err(FormatError::new(
                offset,
                format!(
                    "layout 1 stat record: expected {STAT_V1_LEN} bytes, found {}",
                    b.len()
                ),
            ));
        }
        let v = |i: usize| le_u64(b, i * 8).unwrap_or(0);
        let first_s = u64::from(le_u32(b, 120).unwrap_or(0));
        let last_s = u64::from(le_u32(b, 124).unwrap_or(0));
        let msec_first = u64::from(le_u16(b, 128).unwrap_or(0));
        let msec_last = u64::from(le_u16(b, 130).unwrap_or(0));
        Ok(StatRecord {
            flows: v(0),
            bytes: v(1),
            packets: v(2),
            flows_by_proto: [v(3), v(4), v(5), v(6)],
            bytes_by_proto: [v(7), v(8), v(9), v(10)],
            packets_by_proto: [v(11), v(12), v(13), v(14)],
            first_ms: first_s * 1000 + msec_first,
            last_ms: last_s * 1000 + msec_last,
            sequence_failures: u64::from(le_u32(b, 132).unwrap_or(0)),
        })
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
    pub fn parse(b: &[u8]) -> Result<FileHeader, FormatError> {
        need(b, 4, "nfcapd magic and version")?;
        let magic = le_u16(b, 0).unwrap_or(0);
        if magic != MAGIC {
            let hint = if magic == MAGIC.swap_bytes() {
                " (byte-swapped: written on a big-endian host, not supported)"
            } else {
                ""
            };
            return Err(FormatError::new(
                0,
                format!("bad magic: expected 0x{MAGIC:04x}, found 0x{magic:04x}{hint}"),
            ));
        }
        match le_u16(b, 2).unwrap_or(0) {
            LAYOUT_2 => Self::parse_v2(b),
            LAYOUT_1 => Self::parse_v1(b),
            v => Err(FormatError::new(
                2,
                format!("unsupported layout version: expected 1 or 2, found {v}"),
            )),
        }
    }

    fn parse_v2(b: &[u8]) -> Result<FileHeader, FormatError> {
        need(b, HEADER_V2_LEN, "layout 2 file header")?;
        let compression = b[16];
        let codec = Codec::from_v2(compression).ok_or_else(|| {
            FormatError::new(
                16,
                format!("unknown compression: expected 0 (none), 1 (LZO), 2 (BZ2), 3 (LZ4) or 4 (ZSTD), found {compression}"),
            )
        })?;
        let encryption = b[17];
        if encryption != 0 {
            return Err(FormatError::new(
                17,
                format!("encrypted file: expected encryption 0, found {encryption}"),
            ));
        }
        let off_appendix = le_u64(b, 24).unwrap_or(0);
        Ok(FileHeader {
            layout: LAYOUT_2,
            codec,
            num_blocks: le_u32(b, 36).unwrap_or(0),
            first_block: HEADER_V2_LEN as u64,
            off_appendix,
            appendix_blocks: le_u16(b, 18).unwrap_or(0),
            ident: None,
            stat: None,
        })
    }

    fn parse_v1(b: &[u8]) -> Result<FileHeader, FormatError> {
        need(
            b,
            HEADER_V1_LEN + STAT_V1_LEN,
            "layout 1 file header and stat record",
        )?;
        let flags = le_u32(b, 4).unwrap_or(0);
        let codec = match flags & (V1_FLAG_LZO | V1_FLAG_BZ2 | V1_FLAG_LZ4) {
            0 => Codec::None,
            V1_FLAG_LZO => Codec::Lzo,
            V1_FLAG_BZ2 => Codec::Bz2,
            V1_FLAG_LZ4 => Codec::Lz4,
            other => {
                return Err(FormatError::new(
                    4,
                    format!("layout 1 flags name several codecs: expected one of 0x1, 0x8, 0x10, found 0x{other:x}"),
                ))
            }
        };
        Ok(FileHeader {
            layout: LAYOUT_1,
            codec,
            num_blocks: le_u32(b, 8).unwrap_or(0),
            first_block: (HEADER_V1_LEN + STAT_V1_LEN) as u64,
            off_appendix: 0,
            appendix_blocks: 0,
            ident: Some(c_string(&b[12..12 + IDENT_V1_LEN])),
            stat: Some(StatRecord::parse_v1(
                &b[HEADER_V1_LEN..HEADER_V1_LEN + STAT_V1_LEN],
                HEADER_V1_LEN as u64,
            )?),
        })
    }
}
