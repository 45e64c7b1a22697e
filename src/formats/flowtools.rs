//! flow-tools files (`ft-v05.*`): a header (stream version 1 or 3) then fixed-size records, optionally as one
//! zlib stream. Uncompressed files are split into independent chunks of records; a compressed file is one chunk
//! that inflates sequentially and hands records out in batches. The same sequential path reads a pipe.

use super::{Bytes, ChunkStats, Decoder, FormatError, OnceStream, BATCH};
use crate::record::{Addr, FlowRecord};
use std::io::Read;

/// The two magic bytes every flow-tools stream starts with.
pub const MAGIC: [u8; 2] = [0xCF, 0x10];

/// Size of the fixed stream-version-1 header: 4 generic bytes, d_version u16 (+2 alignment), 7 x u32,
/// hostname[68], comments[256].
const V1_HEADER_LEN: usize = 360;

/// Header flag: the body is one zlib stream.
const FLAG_COMPRESS: u32 = 0x2;

/// Records per chunk of an uncompressed file: large enough to amortise a job, small enough to spread work.
const CHUNK_RECORDS: usize = 64 * 1024;

/// Largest header accepted: flow-tools writes a few hundred bytes; this bounds what a pipe reader buffers.
const MAX_HEADER_LEN: usize = 1 << 20;

/// True when `bytes` start like a flow-tools stream (magic, a byte order and a stream version we know).
pub fn is_flowtools(bytes: &[u8]) -> bool {
    bytes.len() >= 4
        && bytes[..2] == MAGIC
        && matches!(bytes[2], 1 | 2)
        && matches!(bytes[3], 1 | 3)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteOrder {
    Little,
    Big,
}

impl ByteOrder {
    #[inline]
    fn u16(self, b: &[u8], at: usize) -> u16 {
        let v = [b[at], b[at + 1]];
        match self {
            ByteOrder::Little => u16::from_le_bytes(v),
            ByteOrder::Big => u16::from_be_bytes(v),
        }
    }
    #[inline]
    fn u32(self, b: &[u8], at: usize) -> u32 {
        let v = [b[at], b[at + 1], b[at + 2], b[at + 3]];
        match self {
            ByteOrder::Little => u32::from_le_bytes(v),
            ByteOrder::Big => u32::from_be_bytes(v),
        }
    }
}

/// Where the fields sit in one record. Stream version 3 records for export versions 1, 5 and 7 share the
/// first 56 bytes; stream version 1 files use flow-tools' older "compat" record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecordLayout {
    /// Stream v3, export v1: 60 bytes, no engine fields.
    V1,
    /// Stream v3, export v5: 64 bytes.
    V5,
    /// Stream v3, export v7: 68 bytes (v5 plus router_sc).
    V7,
    /// Stream v1: 60-byte compat record (unix_secs, unix_msecs, no exporter, no TCP flags).
    Compat,
}

impl RecordLayout {
    pub fn size(self) -> usize {
        match self {
            RecordLayout::V1 | RecordLayout::Compat => 60,
            RecordLayout::V5 => 64,
            RecordLayout::V7 => 68,
        }
    }
}

/// A validated flow-tools header.
#[derive(Clone, Debug)]
pub struct Header {
    pub order: ByteOrder,
    pub stream_version: u8,
    pub export_version: u16,
    /// Bytes before the first record.
    pub header_len: usize,
    pub flags: u32,
    pub layout: RecordLayout,
    /// Flow count the header claims (TLV 0xA or the v1 field), when written.
    pub declared_flows: Option<u64>,
}

impl Header {
    pub fn compressed(&self) -> bool {
        self.flags & FLAG_COMPRESS != 0
    }
}

/// How many header bytes to read given the first 8 (for pipes, which cannot seek).
pub fn header_len(first: &[u8]) -> Result<usize, FormatError> {
    check_prefix(first)?;
    if first[3] == 1 {
        return Ok(V1_HEADER_LEN);
    }
    let order = order_of(first[2]);
    let n = order.u32(first, 4) as usize;
    if !(8..=MAX_HEADER_LEN).contains(&n) {
        return Err(FormatError::new(
            4,
            format!("flow-tools header length {n} out of range (expected 8..={MAX_HEADER_LEN})"),
        ));
    }
    Ok(n)
}

fn order_of(b: u8) -> ByteOrder {
    if b == 1 {
        ByteOrder::Little
    } else {
        ByteOrder::Big
    }
}

fn check_prefix(b: &[u8]) -> Result<(), FormatError> {
    if b.len() < 8 {
        return Err(FormatError::new(
            0,
            format!(
                "flow-tools header truncated: {} bytes, expected at least 8",
                b.len()
            ),
        ));
    }
    if b[..2] != MAGIC {
        return Err(FormatError::new(
            0,
            format!(
                "flow-tools magic expected cf 10, found {:02x} {:02x}",
                b[0], b[1]
            ),
        ));
    }
    if !matches!(b[2], 1 | 2) {
        return Err(FormatError::new(
            2,
            format!(
                "flow-tools byte order expected 1 (little) or 2 (big), found {}",
                b[2]
            ),
        ));
    }
    if !matches!(b[3], 1 | 3) {
        return Err(FormatError::new(
            3,
            format!("flow-tools stream version expected 1 or 3, found {}", b[3]),
        ));
    }
    Ok(())
}

/// Parse the header at the start of `b` (which must hold at least [`header_len`] bytes).
pub fn parse_header(b: &[u8]) -> Result<Header, FormatError> {
    let len = header_len(b)?;
    if b.len() < len {
        return Err(FormatError::new(
            0,
            format!(
                "flow-tools header truncated: {} bytes, header says {len}",
                b.len()
            ),
        ));
    }
    let order = order_of(b[2]);
    if b[3] == 1 {
        // Fixed v1 header: d_version @4, then start, end, flags, rotation, nflows, ... as u32 from @8.
        let export_version = order.u16(b, 4);
        let flags = order.u32(b, 16);
        let nflows = order.u32(b, 24);
        return Ok(Header {
            order,
            stream_version: 1,
            export_version,
            header_len: len,
            flags,
            layout: RecordLayout::Compat,
            declared_flows: Some(nflows as u64),
        });
    }
    let mut export_version = None;
    let mut flags = 0;
    let mut declared = None;
    let mut at = 8;
    while at + 4 <= len {
        let t = order.u16(b, at);
        let l = order.u16(b, at + 2) as usize;
        let v = at + 4;
        if v + l > len {
            // if_name/if_alias TLVs written by flow-tools can be malformed; the records start at `len` anyway,
            // so stop reading TLVs rather than reject the file.
            break;
        }
        match (t, l) {
            (0x2, 2) => export_version = Some(order.u16(b, v)),
            (0x8, 4) => flags = order.u32(b, v),
            (0xA, 4) => declared = Some(order.u32(b, v) as u64),
            _ => {}
        }
        at = v + l;
    }
    let export_version = export_version.ok_or_else(|| {
        FormatError::new(
            8,
            "flow-tools v3 header has no export version TLV (type 0x2)",
        )
    })?;
    let layout = match export_version {
        1 => RecordLayout::V1,
        5 => RecordLayout::V5,
        7 => RecordLayout::V7,
        v => {
            return Err(FormatError::new(
                8,
                format!("flow-tools export version {v} is not supported (supported: 1, 5, 7)"),
            ))
        }
    };
    Ok(Header {
        order,
        stream_version: 3,
        export_version,
        header_len: len,
        flags,
        layout,
        declared_flows: declared,
    })
}

/// Decode one record of `layout` (`r` holds exactly one record).
#[inline]
pub fn decode_record(r: &[u8], order: ByteOrder, layout: RecordLayout) -> FlowRecord {
    if layout == RecordLayout::Compat {
        let secs = order.u32(r, 0) as u64;
        let msecs = order.u32(r, 4) as u64;
        let start = secs * 1000 + msecs;
        let first = order.u32(r, 32) as i64;
        let last = order.u32(r, 36) as i64;
        return FlowRecord {
            src: Addr::v4(order.u32(r, 8)),
            dst: Addr::v4(order.u32(r, 12)),
            input: order.u16(r, 20) as u32,
            output: order.u16(r, 22) as u32,
            packets: order.u32(r, 24) as u64,
            bytes: order.u32(r, 28) as u64,
            first_ms: start,
            last_ms: (start as i64 + (last - first).max(0)) as u64,
            src_port: order.u16(r, 40),
            dst_port: order.u16(r, 42),
            proto: r[46],
            src_tos: r[47],
            sampling: 1,
            ..FlowRecord::default()
        };
    }
    let secs = order.u32(r, 0) as i64;
    let nsecs = order.u32(r, 4) as i64;
    let uptime = order.u32(r, 8) as i64;
    // Absolute ms = export time - uptime + sysUptime-relative stamp.
    let base = secs * 1000 + nsecs / 1_000_000 - uptime;
    let first = (base + order.u32(r, 40) as i64).max(0) as u64;
    let last = (base + order.u32(r, 44) as i64).max(0) as u64;
    FlowRecord {
        exporter: order.u32(r, 12),
        src: Addr::v4(order.u32(r, 16)),
        dst: Addr::v4(order.u32(r, 20)),
        input: order.u16(r, 28) as u32,
        output: order.u16(r, 30) as u32,
        packets: order.u32(r, 32) as u64,
        bytes: order.u32(r, 36) as u64,
        first_ms: first,
        last_ms: last,
        src_port: order.u16(r, 48),
        dst_port: order.u16(r, 50),
        proto: r[52],
        src_tos: r[53],
        tcp_flags: r[54],
        sampling: 1,
    }
}

/// Decode the whole records in `body`, handing them out in batches; returns how many.
fn emit_records(
    body: &[u8],
    h: &Header,
    batch: &mut Vec<FlowRecord>,
    out: &mut dyn FnMut(&[FlowRecord]),
) -> u64 {
    let size = h.layout.size();
    let mut n = 0;
    for r in body.chunks_exact(size) {
        batch.push(decode_record(r, h.order, h.layout));
        if batch.len() == BATCH {
            out(batch);
            batch.clear();
        }
        n += 1;
    }
    n
}

/// Read records from `r` until its end: inflate (or copy) into `scratch`, decode whole records, keep the tail.
/// `base` is the stream offset of the body, used in error messages.
fn decode_sequential(
    r: &mut dyn Read,
    h: &Header,
    base: u64,
    scratch: &mut Vec<u8>,
    out: &mut dyn FnMut(&[FlowRecord]),
) -> Result<ChunkStats, FormatError> {
    let size = h.layout.size();
    let buf_len = size * BATCH;
    scratch.clear();
    scratch.resize(buf_len, 0);
    let mut batch = Vec::with_capacity(BATCH);
    let mut filled = 0usize;
    let mut consumed: u64 = 0;
    let mut flows = 0;
    loop {
        let n = match r.read(&mut scratch[filled..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                if !batch.is_empty() {
                    out(&batch);
                }
                let what = if h.compressed() {
                    "zlib stream"
                } else {
                    "read"
                };
                return Err(FormatError::new(
                    base,
                    format!("flow-tools {what} failed after {consumed} record bytes: {e}"),
                ));
            }
        };
        filled += n;
        let whole = filled - filled % size;
        flows += emit_records(&scratch[..whole], h, &mut batch, out);
        scratch.copy_within(whole..filled, 0);
        filled -= whole;
        consumed += whole as u64;
    }
    if !batch.is_empty() {
        out(&batch);
    }
    if filled != 0 {
        return Err(FormatError::new(
            base,
            format!(
                "flow-tools body ends inside a record: {filled} trailing bytes after {consumed} record bytes, \
                 expected whole {size}-byte records"
            ),
        ));
    }
    Ok(ChunkStats { flows, skipped: 0 })
}

/// A flow-tools file held in memory.
pub struct FlowToolsFile {
    bytes: Bytes,
    header: Header,
}

impl FlowToolsFile {
    pub fn open(bytes: Bytes) -> Result<FlowToolsFile, FormatError> {
        let header = parse_header((*bytes).as_ref())?;
        Ok(FlowToolsFile { bytes, header })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    fn body(&self) -> &[u8] {
        let b: &[u8] = (*self.bytes).as_ref();
        b.get(self.header.header_len..).unwrap_or(&[])
    }
}

impl Decoder for FlowToolsFile {
    fn format(&self) -> &'static str {
        "flowtools"
    }

    fn chunks(&self) -> usize {
        if self.header.compressed() {
            return 1;
        }
        let records = self.body().len().div_ceil(self.header.layout.size());
        records.div_ceil(CHUNK_RECORDS).max(1)
    }

    fn decode_chunk(
        &self,
        index: usize,
        scratch: &mut Vec<u8>,
        out: &mut dyn FnMut(&[FlowRecord]),
    ) -> Result<ChunkStats, FormatError> {
        let h = &self.header;
        let body = self.body();
        let base = h.header_len as u64;
        if h.compressed() {
            let mut z = flate2::read::ZlibDecoder::new(body);
            return decode_sequential(&mut z, h, base, scratch, out);
        }
        let size = h.layout.size();
        let start = index.saturating_mul(CHUNK_RECORDS * size).min(body.len());
        let end = start.saturating_add(CHUNK_RECORDS * size).min(body.len());
        let part = &body[start..end];
        let mut batch = Vec::with_capacity(BATCH.min(part.len() / size + 1));
        let flows = emit_records(part, h, &mut batch, out);
        if !batch.is_empty() {
            out(&batch);
        }
        let tail = part.len() % size;
        if tail != 0 {
            return Err(FormatError::new(
                base + (end - tail) as u64,
                format!("flow-tools file ends inside a record: {tail} bytes, expected {size}"),
            ));
        }
        Ok(ChunkStats { flows, skipped: 0 })
    }

    fn declared_flows(&self) -> Option<u64> {
        self.header.declared_flows
    }
}

/// A flow-tools stream read from a pipe: one chunk, read once.
pub struct FlowToolsStream {
    header: Header,
    reader: OnceStream<Box<dyn Read + Send>>,
}

impl FlowToolsStream {
    /// Read the header from `r`; the records are read later, once, by `decode_chunk(0)`.
    pub fn open(mut r: Box<dyn Read + Send>) -> Result<FlowToolsStream, FormatError> {
        let mut head = vec![0u8; 8];
        read_full(&mut r, &mut head, 0)?;
        let len = header_len(&head)?;
        head.resize(len, 0);
        read_full(&mut r, &mut head[8..], 8)?;
        let header = parse_header(&head)?;
        Ok(FlowToolsStream {
            header,
            reader: OnceStream::new(r),
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }
}

fn read_full(r: &mut dyn Read, buf: &mut [u8], at: u64) -> Result<(), FormatError> {
    r.read_exact(buf).map_err(|e| {
        FormatError::new(
            at,
            format!("flow-tools header: could not read {} bytes: {e}", buf.len()),
        )
    })
}

impl Decoder for FlowToolsStream {
    fn format(&self) -> &'static str {
        "flowtools"
    }

    fn chunks(&self) -> usize {
        1
    }

    fn decode_chunk(
        &self,
        _index: usize,
        scratch: &mut Vec<u8>,
        out: &mut dyn FnMut(&[FlowRecord]),
    ) -> Result<ChunkStats, FormatError> {
        let mut r = self.reader.take("flow-tools")?;
        let h = &self.header;
        let base = h.header_len as u64;
        if h.compressed() {
            let mut z = flate2::read::ZlibDecoder::new(r);
            decode_sequential(&mut z, h, base, scratch, out)
        } else {
            decode_sequential(&mut r, h, base, scratch, out)
        }
    }

    fn declared_flows(&self) -> Option<u64> {
        self.header.declared_flows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Build a v3 header with the given TLVs, in `order`.
    fn header_v3(order: ByteOrder, export: u16, flags: u32, extra: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let p16 = |v: u16| match order {
            ByteOrder::Little => v.to_le_bytes(),
            ByteOrder::Big => v.to_be_bytes(),
        };
        let p32 = |v: u32| match order {
            ByteOrder::Little => v.to_le_bytes(),
            ByteOrder::Big => v.to_be_bytes(),
        };
        let mut tlvs = Vec::new();
        let mut push = |t: u16, v: &[u8]| {
            tlvs.extend_from_slice(&p16(t));
            tlvs.extend_from_slice(&p16(v.len() as u16));
            tlvs.extend_from_slice(v);
        };
        push(0x2, &p16(export));
        push(0x8, &p32(flags));
        for (t, v) in extra {
            push(*t, v);
        }
        let mut h = vec![
            0xCF,
            0x10,
            if order == ByteOrder::Little { 1 } else { 2 },
            3,
        ];
        h.extend_from_slice(&p32((8 + tlvs.len()) as u32));
        h.extend_from_slice(&tlvs);
        h
    }

    #[test]
    fn unsupported_export_version_is_named() {
        let h = header_v3(ByteOrder::Little, 8, 0, &[]);
        let e = parse_header(&h).unwrap_err();
        assert!(e.message.contains("export version 8"), "{e}");
    }

    #[test]
    fn unknown_tlvs_are_skipped_and_bad_trailing_tlv_tolerated() {
        let mut h = header_v3(
            ByteOrder::Big,
            5,
            0,
            &[(0x99, vec![1, 2, 3]), (0xA, 7u32.to_be_bytes().to_vec())],
        );
        // A malformed if_name TLV whose length runs past the header end.
        h.extend_from_slice(&[0, 0x11, 0, 200, 1, 2]);
        let len = h.len() as u32;
        h[4..8].copy_from_slice(&len.to_be_bytes());
        let hd = parse_header(&h).unwrap();
        assert_eq!(hd.layout, RecordLayout::V5);
        assert_eq!(hd.declared_flows, Some(7));
    }

    #[test]
    fn v7_and_v1_records_decode_common_fields() {
        for (export, layout) in [(1u16, RecordLayout::V1), (7, RecordLayout::V7)] {
            let mut f = header_v3(ByteOrder::Little, export, 0, &[]);
            let mut r = vec![0u8; layout.size()];
            r[0..4].copy_from_slice(&1000u32.to_le_bytes()); // unix_secs
            r[8..12].copy_from_slice(&500u32.to_le_bytes()); // uptime
            r[16..20].copy_from_slice(&0x0a000001u32.to_le_bytes());
            r[40..44].copy_from_slice(&400u32.to_le_bytes()); // First
            r[44..48].copy_from_slice(&450u32.to_le_bytes()); // Last
            r[50..52].copy_from_slice(&80u16.to_le_bytes());
            r[52] = 6;
            f.extend_from_slice(&r);
            let d = FlowToolsFile::open(crate::formats::bytes_from_vec(f)).unwrap();
            let mut got = Vec::new();
            crate::formats::decode_all(&d, &mut |b| got.extend_from_slice(b)).unwrap();
            assert_eq!(got.len(), 1);
            assert_eq!(got[0].src.to_string(), "10.0.0.1");
            assert_eq!(got[0].first_ms, 1_000_000 - 500 + 400);
            assert_eq!(got[0].last_ms, 1_000_000 - 500 + 450);
            assert_eq!((got[0].dst_port, got[0].proto), (80, 6));
        }
    }

    #[test]
    fn truncated_record_is_an_error_after_whole_records() {
        let mut f = header_v3(ByteOrder::Little, 5, 0, &[]);
        f.extend_from_slice(&[0u8; 64 + 10]);
        let d = FlowToolsFile::open(crate::formats::bytes_from_vec(f)).unwrap();
        let mut n = 0;
        let e = crate::formats::decode_all(&d, &mut |b| n += b.len()).unwrap_err();
        assert_eq!(n, 1);
        assert!(e.message.contains("10 bytes"), "{e}");
    }
}
