//! flow-tools files (`ft-v05.*`): a header (stream version 1 or 3) then fixed-size records, optionally as one
//! zlib stream. Uncompressed files are split into independent chunks of records; a compressed file is one chunk
//! that inflates sequentially and hands records out in batches. The same sequential path reads a pipe.

use super::bytes::{Cursor, Endian};
use super::sink::Sink;
use super::{Bytes, Decoded, Decoder, FormatError, OnceStream, Out};
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
    pub order: Endian,
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
    let order = check_prefix(first)?;
    if first[3] == 1 {
        return Ok(V1_HEADER_LEN);
    }
    let n = order.u32(first, 4).unwrap_or(0) as usize;
    if !(8..=MAX_HEADER_LEN).contains(&n) {
        return Err(FormatError::new(
            4,
            format!("flow-tools header length {n} out of range (expected 8..={MAX_HEADER_LEN})"),
        ));
    }
    Ok(n)
}

/// Check magic, byte order and stream version; the byte order.
fn check_prefix(b: &[u8]) -> Result<Endian, FormatError> {
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
    let order = match b[2] {
        1 => Endian::Little,
        2 => Endian::Big,
        o => {
            return Err(FormatError::new(
                2,
                format!("flow-tools byte order expected 1 (little) or 2 (big), found {o}"),
            ))
        }
    };
    if !matches!(b[3], 1 | 3) {
        return Err(FormatError::new(
            3,
            format!("flow-tools stream version expected 1 or 3, found {}", b[3]),
        ));
    }
    Ok(order)
}

/// Parse the header at the start of `b` (which must hold at least [`header_len`] bytes).
pub fn parse_header(b: &[u8]) -> Result<Header, FormatError> {
    let len = header_len(b)?;
    let order = check_prefix(b)?;
    let head = b.get(..len).ok_or_else(|| {
        FormatError::new(
            0,
            format!(
                "flow-tools header truncated: {} bytes, header says {len}",
                b.len()
            ),
        )
    })?;
    let mut c = Cursor::new(head, 0, order);
    c.skip(4, "magic, byte order and stream version")?;
    if b[3] == 1 {
        // Fixed v1 header: d_version @4, then start, end, flags, rotation, nflows, ... as u32 from @8.
        let export_version = c.u16("the export version")?;
        c.skip(10, "alignment, start and end times")?;
        let flags = c.u32("the header flags")?;
        c.skip(4, "the rotation")?;
        let nflows = c.u32("the flow count")?;
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
    c.skip(4, "the header length")?;
    let mut export_version = None;
    let mut flags = 0;
    let mut declared = None;
    while c.remaining() >= 4 {
        let (t, l) = (c.u16("a TLV type")?, c.u16("a TLV length")? as usize);
        // if_name/if_alias TLVs written by flow-tools can be malformed; the records start at `len` anyway,
        // so stop reading TLVs rather than reject the file.
        let Ok(v) = c.take(l, "a TLV value") else {
            break;
        };
        match (t, l) {
            (0x2, 2) => export_version = order.u16(v, 0),
            (0x8, 4) => flags = order.u32(v, 0).unwrap_or(0),
            (0xA, 4) => declared = order.u32(v, 0).map(u64::from),
            _ => {}
        }
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

/// Readers of the u16 and u32 fields of a record at constant offsets: `r` is a fixed-size array, so the reads
/// cannot fail (and compile without bounds checks).
#[inline(always)]
fn field_readers<const N: usize>(
    r: &[u8; N],
    order: Endian,
) -> (impl Fn(usize) -> u16 + '_, impl Fn(usize) -> u32 + '_) {
    (
        move |at| order.u16(r, at).unwrap_or(0),
        move |at| order.u32(r, at).unwrap_or(0),
    )
}

/// Fields read from a record: the compat record's lie in its first 48 bytes, the others' in their first 56.
const COMPAT_FIELDS: usize = 48;
const FIELDS: usize = 56;

/// Decode one record of `layout` from the start of `r`; an error (at offset 0 of `r`) when `r` is shorter than
/// a record.
#[inline]
pub fn decode_record(
    r: &[u8],
    order: Endian,
    layout: RecordLayout,
) -> Result<FlowRecord, FormatError> {
    let short = || {
        FormatError::new(
            0,
            format!(
                "flow-tools record of {} bytes, expected {}",
                r.len(),
                layout.size()
            ),
        )
    };
    if r.len() < layout.size() {
        return Err(short());
    }
    if layout == RecordLayout::Compat {
        let r = r.first_chunk::<COMPAT_FIELDS>().ok_or_else(short)?;
        return Ok(decode_compat(r, order));
    }
    let r = r.first_chunk::<FIELDS>().ok_or_else(short)?;
    let (u16_at, u32_at) = field_readers(r, order);
    let secs = i64::from(u32_at(0));
    let nsecs = i64::from(u32_at(4));
    let uptime = i64::from(u32_at(8));
    // Absolute ms = export time - uptime + sysUptime-relative stamp.
    let base = secs * 1000 + nsecs / 1_000_000 - uptime;
    let first = (base + i64::from(u32_at(40))).max(0) as u64;
    let last = (base + i64::from(u32_at(44))).max(0) as u64;
    Ok(FlowRecord {
        exporter: u32_at(12),
        src: Addr::v4(u32_at(16)),
        dst: Addr::v4(u32_at(20)),
        input: u32::from(u16_at(28)),
        output: u32::from(u16_at(30)),
        packets: u64::from(u32_at(32)),
        bytes: u64::from(u32_at(36)),
        first_ms: first,
        last_ms: last,
        src_port: u16_at(48),
        dst_port: u16_at(50),
        proto: r[52],
        src_tos: r[53],
        tcp_flags: r[54],
        sampling: 1,
        flows: 1,
    })
}

/// The stream-v1 compat record: unix_secs, unix_msecs, addresses, interfaces, counters, first/last, ports.
fn decode_compat(r: &[u8; COMPAT_FIELDS], order: Endian) -> FlowRecord {
    let (u16_at, u32_at) = field_readers(r, order);
    let start = u64::from(u32_at(0)) * 1000 + u64::from(u32_at(4));
    let span = (i64::from(u32_at(36)) - i64::from(u32_at(32))).max(0) as u64;
    FlowRecord {
        src: Addr::v4(u32_at(8)),
        dst: Addr::v4(u32_at(12)),
        input: u32::from(u16_at(20)),
        output: u32::from(u16_at(22)),
        packets: u64::from(u32_at(24)),
        bytes: u64::from(u32_at(28)),
        first_ms: start,
        last_ms: start + span,
        src_port: u16_at(40),
        dst_port: u16_at(42),
        proto: r[46],
        src_tos: r[47],
        sampling: 1,
        ..FlowRecord::default()
    }
}

/// Decode the whole records in `body` into `sink`.
fn emit_records(body: &[u8], h: &Header, sink: &mut Sink<'_>) {
    for r in body.chunks_exact(h.layout.size()) {
        // Whole records by construction: decoding cannot fail.
        if let Ok(f) = decode_record(r, h.order, h.layout) {
            sink.push(f);
        }
    }
}

/// Read records from `r` until its end: inflate (or copy) into `scratch`, decode whole records, keep the tail.
/// `base` is the stream offset of the body, used in error messages.
fn decode_sequential(
    r: &mut dyn Read,
    h: &Header,
    base: u64,
    scratch: &mut Vec<u8>,
    out: Out,
) -> Decoded {
    let size = h.layout.size();
    let buf_len = size * super::BATCH;
    scratch.clear();
    scratch.resize(buf_len, 0);
    let mut sink = Sink::new(out);
    let mut filled = 0usize;
    let mut consumed: u64 = 0;
    loop {
        let n = match r.read(&mut scratch[filled..]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let what = if h.compressed() {
                    "zlib stream"
                } else {
                    "read"
                };
                return sink.finish(Err(FormatError::new(
                    base,
                    format!("flow-tools {what} failed after {consumed} record bytes: {e}"),
                )));
            }
        };
        filled += n;
        let whole = filled - filled % size;
        emit_records(&scratch[..whole], h, &mut sink);
        scratch.copy_within(whole..filled, 0);
        filled -= whole;
        consumed += whole as u64;
    }
    let tail = if filled != 0 {
        Err(FormatError::new(
            base,
            format!(
                "flow-tools body ends inside a record: {filled} trailing bytes after {consumed} record bytes, \
                 expected whole {size}-byte records"
            ),
        ))
    } else {
        Ok(())
    };
    sink.finish(tail)
}

/// Where an uncompressed file's records are read from.
enum Body {
    /// The input's bytes (a memory map or a buffer); each chunk's pages are released once decoded.
    Mapped(Bytes),
    /// An open file read chunk by chunk with `pread` (`--no-mmap`): memory holds a chunk per worker.
    File { file: std::fs::File, len: u64 },
}

/// A flow-tools file: in memory, or an uncompressed file read a chunk at a time.
pub struct FlowToolsFile {
    body: Body,
    header: Header,
}

impl FlowToolsFile {
    pub fn open(bytes: Bytes) -> Result<FlowToolsFile, FormatError> {
        let header = parse_header((*bytes).as_ref())?;
        Ok(FlowToolsFile {
            body: Body::Mapped(bytes),
            header,
        })
    }

    /// An uncompressed file read with `pread`, one chunk per job; `head` is its first bytes (at least the
    /// header). A compressed file is a stream: read it with [`FlowToolsStream`].
    pub fn open_file(file: std::fs::File, head: &[u8]) -> Result<FlowToolsFile, FormatError> {
        let header = parse_header(head)?;
        if header.compressed() {
            return Err(FormatError::new(
                0,
                "a compressed flow-tools file is one zlib stream: read it as a stream",
            ));
        }
        let len = file
            .metadata()
            .map_err(|e| FormatError::new(0, format!("flow-tools file size unknown: {e}")))?
            .len();
        Ok(FlowToolsFile {
            body: Body::File { file, len },
            header,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    fn body_len(&self) -> usize {
        let total = match &self.body {
            Body::Mapped(b) => (**b).as_ref().len(),
            Body::File { len, .. } => usize::try_from(*len).unwrap_or(usize::MAX),
        };
        total.saturating_sub(self.header.header_len)
    }

    /// Decode the records of body bytes `start..end` (a chunk of whole records, but for the file's last).
    fn decode_range(&self, start: usize, end: usize, scratch: &mut Vec<u8>, out: Out) -> Decoded {
        let h = &self.header;
        let at = h.header_len + start;
        let mut sink = Sink::new(out);
        let part: &[u8] = match &self.body {
            Body::Mapped(b) => {
                let all: &[u8] = (**b).as_ref();
                &all[at..h.header_len + end]
            }
            Body::File { file, .. } => {
                use std::os::unix::fs::FileExt;
                scratch.resize(end - start, 0);
                if let Err(e) = file.read_exact_at(scratch, at as u64) {
                    return sink.finish(Err(FormatError::new(
                        at as u64,
                        format!("flow-tools file unreadable: {e}"),
                    )));
                }
                scratch
            }
        };
        emit_records(part, h, &mut sink);
        if let Body::Mapped(b) = &self.body {
            // Decoded: these pages need not stay resident (they stay in the page cache).
            b.release(at..h.header_len + end);
        }
        let size = h.layout.size();
        let tail = part.len() % size;
        let result = if tail != 0 {
            Err(FormatError::new(
                (h.header_len + end - tail) as u64,
                format!("flow-tools file ends inside a record: {tail} bytes, expected {size}"),
            ))
        } else {
            Ok(())
        };
        sink.finish(result)
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
        let records = self.body_len().div_ceil(self.header.layout.size());
        records.div_ceil(CHUNK_RECORDS).max(1)
    }

    fn decode_chunk(&self, index: usize, scratch: &mut Vec<u8>, out: Out) -> Decoded {
        let h = &self.header;
        if h.compressed() {
            let Body::Mapped(b) = &self.body else {
                return Err(FormatError::new(
                    0,
                    "compressed flow-tools file not in memory",
                ));
            };
            let all: &[u8] = (**b).as_ref();
            let body = all.get(h.header_len..).unwrap_or(&[]);
            let mut z = flate2::read::ZlibDecoder::new(body);
            return decode_sequential(&mut z, h, h.header_len as u64, scratch, out);
        }
        let size = h.layout.size();
        let len = self.body_len();
        let start = index.saturating_mul(CHUNK_RECORDS * size).min(len);
        let end = start.saturating_add(CHUNK_RECORDS * size).min(len);
        self.decode_range(start, end, scratch, out)
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

    fn decode_chunk(&self, _index: usize, scratch: &mut Vec<u8>, out: Out) -> Decoded {
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
    fn header_v3(order: Endian, export: u16, flags: u32, extra: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let p16 = |v: u16| match order {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        };
        let p32 = |v: u32| match order {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
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
        let mut h = vec![0xCF, 0x10, if order == Endian::Little { 1 } else { 2 }, 3];
        h.extend_from_slice(&p32((8 + tlvs.len()) as u32));
        h.extend_from_slice(&tlvs);
        h
    }

    #[test]
    fn unsupported_export_version_is_named() {
        let h = header_v3(Endian::Little, 8, 0, &[]);
        let e = parse_header(&h).unwrap_err();
        assert!(e.message.contains("export version 8"), "{e}");
    }

    #[test]
    fn unknown_tlvs_are_skipped_and_bad_trailing_tlv_tolerated() {
        let mut h = header_v3(
            Endian::Big,
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
            let mut f = header_v3(Endian::Little, export, 0, &[]);
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
    fn decode_record_refuses_short_records_without_panicking() {
        for layout in [
            RecordLayout::V1,
            RecordLayout::V5,
            RecordLayout::V7,
            RecordLayout::Compat,
        ] {
            for n in 0..layout.size() {
                let e = decode_record(&vec![0u8; n], Endian::Big, layout).unwrap_err();
                assert!(e.message.contains(&format!("record of {n} bytes")), "{e}");
            }
            assert!(decode_record(&vec![0u8; layout.size()], Endian::Big, layout).is_ok());
        }
    }

    #[test]
    fn truncated_record_is_an_error_after_whole_records() {
        let mut f = header_v3(Endian::Little, 5, 0, &[]);
        f.extend_from_slice(&[0u8; 64 + 10]);
        let d = FlowToolsFile::open(crate::formats::bytes_from_vec(f)).unwrap();
        let mut n = 0;
        let e = crate::formats::decode_all(&d, &mut |b| n += b.len()).unwrap_err();
        assert_eq!(n, 1);
        assert!(e.message.contains("10 bytes"), "{e}");
    }
}
