//! CSV flow exports: nfdump `-o csv` (`ts,te,td,sa,da,sp,dp,pr,flg,...`, a summary block at the end) and
//! flow-tools `flow-export -f2` (`#:unix_secs,unix_nsecs,sysuptime,exaddr,...`). Columns are found by the
//! header line, so column order and extra columns do not matter. nfdump prints times in the local time zone of
//! the machine that ran it; they are read as UTC here (run nfdump with `TZ=UTC`).

use super::bytes::quoted;
use super::sink::Sink;
use super::{Bytes, ChunkStats, Decoded, Decoder, FormatError, OnceStream, Out};
use crate::record::{Addr, FlowRecord};
use std::io::BufRead;

/// Bytes per chunk of an in-memory CSV file (cut at line ends).
const CHUNK_BYTES: usize = 1 << 20;
/// Longest line read from a stream: a flow line is a few hundred bytes; this bounds what one line may buffer.
pub const MAX_LINE: usize = 64 * 1024;
/// Characters of an input field or header shown in a message.
const SHOWN: usize = 40;
/// The UTF-8 byte order mark some tools write before the header.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// `b` without a leading UTF-8 byte order mark.
fn without_bom(b: &[u8]) -> &[u8] {
    b.strip_prefix(BOM).unwrap_or(b)
}

/// What one column means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Col {
    Ignore,
    /// nfdump `ts`/`te`: "YYYY-MM-DD HH:MM:SS[.mmm]".
    StartTime,
    EndTime,
    /// flow-tools: export time parts and sysUptime-relative first/last.
    UnixSecs,
    UnixNsecs,
    SysUptime,
    First,
    Last,
    Exporter,
    Src,
    Dst,
    SrcPort,
    DstPort,
    Proto,
    Flags,
    Packets,
    Bytes,
    Input,
    Output,
    Tos,
}

fn column(name: &str) -> Col {
    match name.trim().to_ascii_lowercase().as_str() {
        "ts" => Col::StartTime,
        "te" => Col::EndTime,
        "unix_secs" => Col::UnixSecs,
        "unix_nsecs" => Col::UnixNsecs,
        "sysuptime" => Col::SysUptime,
        "first" => Col::First,
        "last" => Col::Last,
        "exaddr" => Col::Exporter,
        "sa" | "srcaddr" => Col::Src,
        "da" | "dstaddr" => Col::Dst,
        "sp" | "srcport" => Col::SrcPort,
        "dp" | "dstport" => Col::DstPort,
        "pr" | "prot" | "proto" => Col::Proto,
        "flg" | "tcp_flags" => Col::Flags,
        "ipkt" | "dpkts" | "pkt" | "packets" => Col::Packets,
        "ibyt" | "doctets" | "byt" | "bytes" => Col::Bytes,
        "in" | "input" => Col::Input,
        "out" | "output" => Col::Output,
        "stos" | "tos" => Col::Tos,
        _ => Col::Ignore,
    }
}

/// The column plan a header line gives.
#[derive(Clone, Debug)]
pub struct Columns {
    cols: Vec<Col>,
    names: Vec<String>,
}

/// True when `b` starts with a header line naming source and destination address columns (after a byte order
/// mark, if any).
pub fn is_csv(b: &[u8]) -> bool {
    let b = without_bom(b);
    let line = b.split(|&c| c == b'\n').next().unwrap_or(&[]);
    if line.len() > MAX_LINE {
        return false;
    }
    std::str::from_utf8(line)
        .ok()
        .and_then(|l| parse_header(l, 0).ok())
        .is_some()
}

/// Parse a header line (`#:` prefix of flow-export allowed); it must name both addresses.
pub fn parse_header(line: &str, offset: u64) -> Result<Columns, FormatError> {
    if line.len() > MAX_LINE {
        return Err(FormatError::new(
            offset,
            format!(
                "CSV header line 1 is longer than {MAX_LINE} bytes (starts {})",
                quoted(line.as_bytes(), SHOWN)
            ),
        ));
    }
    let l = line.trim_end_matches(['\r', '\n']);
    let l = l.strip_prefix("#:").unwrap_or(l);
    let names: Vec<String> = l.split(',').map(|s| s.trim().to_string()).collect();
    let cols: Vec<Col> = names.iter().map(|n| column(n)).collect();
    for (want, what) in [
        (Col::Src, "source address (sa or srcaddr)"),
        (Col::Dst, "destination address (da or dstaddr)"),
    ] {
        if !cols.contains(&want) {
            return Err(FormatError::new(
                offset,
                format!(
                    "CSV header line 1 has no {what} column; found {}",
                    quoted(names.join(",").as_bytes(), 2 * SHOWN)
                ),
            ));
        }
    }
    Ok(Columns { cols, names })
}

/// nfdump's flag string ("...AP.SF", one letter per bit from CWR down to FIN) or a number.
fn parse_flags(s: &str) -> Option<u8> {
    const LETTERS: &[u8; 8] = b"CEUAPRSF";
    if s.len() == 8 && s.bytes().all(|c| c == b'.' || LETTERS.contains(&c)) {
        let mut v = 0u8;
        for (i, c) in s.bytes().enumerate() {
            if c != b'.' {
                v |= 0x80 >> i;
            }
        }
        return Some(v);
    }
    parse_uint(s).map(|v| v as u8)
}

fn parse_uint(s: &str) -> Option<u64> {
    if let Some(h) = s.strip_prefix("0x") {
        return u64::from_str_radix(h, 16).ok();
    }
    s.parse().ok()
}

/// Protocol names as nfdump prints them, or a number.
fn parse_proto(s: &str) -> Option<u8> {
    if let Ok(n) = s.parse::<u8>() {
        return Some(n);
    }
    Some(match s.to_ascii_uppercase().as_str() {
        "ICMP" => 1,
        "IGMP" => 2,
        "GGP" => 3,
        "IPIP" | "IPV4" => 4,
        "TCP" => 6,
        "EGP" => 8,
        "IGP" => 9,
        "UDP" => 17,
        "IPV6" => 41,
        "RSVP" => 46,
        "GRE" => 47,
        "ESP" => 50,
        "AH" => 51,
        "ICMP6" | "IPV6-ICMP" => 58,
        "OSPF" | "OSPFIGP" => 89,
        "PIM" => 103,
        "VRRP" => 112,
        "L2TP" => 115,
        "SCTP" => 132,
        _ => return None,
    })
}

/// Days from 1970-01-01 to a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// "YYYY-MM-DD HH:MM:SS[.fff]" (read as UTC) to Unix ms.
pub fn parse_time(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.len() < 19
        || b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b' ' || b[10] == b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<u32>().ok();
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    let mut ms = 0u64;
    if b.len() > 19 {
        let frac = s.get(20..)?;
        if b[19] != b'.' || frac.is_empty() || !frac.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let digits = &frac[..frac.len().min(3)];
        ms = digits.parse::<u64>().ok()? * 10u64.pow(3 - digits.len() as u32);
    }
    let days = days_from_civil(y as i64, mo, d);
    let secs = days * 86_400 + (h * 3600 + mi * 60 + se) as i64;
    (secs >= 0).then(|| secs as u64 * 1000 + ms)
}

/// What a data line is: a flow, or the start of nfdump's trailing summary.
enum Line {
    Flow(FlowRecord),
    Skip,
    End,
}

impl Columns {
    /// Parse one data line (without its newline). `line_no` is 1-based; `offset` the line's byte offset.
    fn parse_line(&self, line: &str, line_no: u64, offset: u64) -> Result<Line, FormatError> {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') {
            return Ok(Line::Skip);
        }
        if line == "Summary" {
            return Ok(Line::End);
        }
        let mut r = FlowRecord {
            sampling: 1,
            ..FlowRecord::default()
        };
        let (mut secs, mut nsecs, mut uptime, mut first, mut last) = (None, 0u64, 0u64, None, None);
        let mut seen = 0;
        for (i, raw) in line.split(',').enumerate() {
            let Some(&col) = self.cols.get(i) else { break };
            seen = i + 1;
            if col == Col::Ignore {
                continue;
            }
            let v = raw.trim();
            let bad = |what: &str| {
                FormatError::new(
                    offset,
                    format!(
                        "CSV line {line_no}, column {} ({}): expected {what}, found {}",
                        i + 1,
                        self.names[i],
                        quoted(v.as_bytes(), SHOWN)
                    ),
                )
            };
            let uint = || parse_uint(v).ok_or_else(|| bad("an unsigned integer"));
            match col {
                Col::Ignore => {}
                Col::StartTime => {
                    r.first_ms = parse_time(v).ok_or_else(|| bad("a time YYYY-MM-DD HH:MM:SS"))?
                }
                Col::EndTime => {
                    r.last_ms = parse_time(v).ok_or_else(|| bad("a time YYYY-MM-DD HH:MM:SS"))?
                }
                Col::UnixSecs => secs = Some(uint()?),
                Col::UnixNsecs => nsecs = uint()?,
                Col::SysUptime => uptime = uint()?,
                Col::First => first = Some(uint()?),
                Col::Last => last = Some(uint()?),
                Col::Exporter => {
                    r.exporter = v.parse::<Addr>().map_err(|_| bad("an IP address"))?.0 as u32;
                }
                Col::Src => r.src = v.parse().map_err(|_| bad("an IP address"))?,
                Col::Dst => r.dst = v.parse().map_err(|_| bad("an IP address"))?,
                Col::SrcPort => r.src_port = port(v).ok_or_else(|| bad("a port 0..65535"))?,
                Col::DstPort => r.dst_port = port(v).ok_or_else(|| bad("a port 0..65535"))?,
                Col::Proto => {
                    r.proto = parse_proto(v).ok_or_else(|| bad("a protocol name or number"))?
                }
                Col::Flags => r.tcp_flags = parse_flags(v).ok_or_else(|| bad("TCP flags"))?,
                Col::Packets => r.packets = uint()?,
                Col::Bytes => r.bytes = uint()?,
                Col::Input => r.input = uint()? as u32,
                Col::Output => r.output = uint()? as u32,
                Col::Tos => r.src_tos = uint()? as u8,
            }
        }
        if seen < self.cols.len() {
            return Err(FormatError::new(
                offset,
                format!(
                    "CSV line {line_no}: {seen} columns, header has {} (column {} {} missing)",
                    self.cols.len(),
                    seen + 1,
                    quoted(self.names[seen].as_bytes(), SHOWN)
                ),
            ));
        }
        if let Some(s) = secs {
            // flow-tools: absolute = export time - sysUptime + sysUptime-relative stamp.
            let base = s as i64 * 1000 + (nsecs / 1_000_000) as i64 - uptime as i64;
            let f = first
                .map(|f| (base + f as i64).max(0) as u64)
                .unwrap_or(s * 1000);
            r.first_ms = f;
            r.last_ms = last.map(|l| (base + l as i64).max(0) as u64).unwrap_or(f);
        }
        Ok(Line::Flow(r))
    }
}

fn port(v: &str) -> Option<u16> {
    // nfdump prints ICMP type.code as a port in some outputs; the CSV has the numeric form.
    v.parse().ok()
}

/// Parse the lines of `text` into `sink`; `first_line` is the 1-based number of its first line, `base` its byte
/// offset. Returns whether the summary was reached.
fn parse_lines(
    cols: &Columns,
    text: &[u8],
    first_line: u64,
    base: u64,
    sink: &mut Sink<'_>,
) -> Result<bool, FormatError> {
    let mut at = 0usize;
    let mut line_no = first_line;
    while at < text.len() {
        let end = text[at..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(text.len(), |p| at + p);
        let raw = &text[at..end];
        let line = std::str::from_utf8(raw).map_err(|e| {
            FormatError::new(
                base + at as u64,
                format!(
                    "CSV line {line_no}: not valid UTF-8 at byte {}: {}",
                    e.valid_up_to(),
                    quoted(raw, SHOWN)
                ),
            )
        })?;
        match cols.parse_line(line, line_no, base + at as u64)? {
            Line::Flow(r) => sink.push(r),
            Line::Skip => sink.stats.skipped += 1,
            Line::End => return Ok(true),
        }
        at = end + 1;
        line_no += 1;
    }
    Ok(false)
}

/// A CSV file in memory, cut into line-aligned chunks.
pub struct CsvFile {
    bytes: Bytes,
    cols: Columns,
    /// (byte offset, 1-based line number) of each chunk's start; chunk i ends where i+1 starts.
    starts: Vec<(usize, u64)>,
    /// Where flow lines end (nfdump's summary, or the end of the file).
    data_end: usize,
}

impl CsvFile {
    pub fn open(bytes: Bytes) -> Result<CsvFile, FormatError> {
        let b: &[u8] = (*bytes).as_ref();
        let hs = b.len() - without_bom(b).len();
        let hl = b.iter().position(|&c| c == b'\n').unwrap_or(b.len());
        let cols = header_line(&b[hs..hl])?;
        // nfdump's summary ends the data: chunks stop there.
        let data_end = b
            .windows(9)
            .position(|w| w == b"\nSummary\n" || w == b"\nSummary\r")
            .map_or(b.len(), |p| p + 1);
        let mut starts = Vec::new();
        let mut at = (hl + 1).min(data_end);
        let mut line = 2u64;
        while at < data_end {
            starts.push((at, line));
            let target = (at + CHUNK_BYTES).min(data_end);
            let next = b[target..data_end]
                .iter()
                .position(|&c| c == b'\n')
                .map_or(data_end, |p| target + p + 1);
            line += b[at..next].iter().filter(|&&c| c == b'\n').count() as u64;
            at = next;
        }
        Ok(CsvFile {
            bytes,
            cols,
            starts,
            data_end,
        })
    }
}

impl Decoder for CsvFile {
    fn format(&self) -> &'static str {
        "csv"
    }

    fn chunks(&self) -> usize {
        self.starts.len()
    }

    fn decode_chunk(&self, index: usize, _scratch: &mut Vec<u8>, out: Out) -> Decoded {
        let b: &[u8] = (*self.bytes).as_ref();
        let Some(&(start, line)) = self.starts.get(index) else {
            return Ok(ChunkStats::default());
        };
        let end = self.starts.get(index + 1).map_or(self.data_end, |s| s.0);
        let mut sink = Sink::new(out);
        let parsed = parse_lines(&self.cols, &b[start..end], line, start as u64, &mut sink);
        self.bytes.release(start..end);
        sink.finish(parsed.map(|_| ()))
    }
}

/// A CSV stream from a pipe: one chunk, read once.
pub struct CsvStream {
    cols: Columns,
    reader: OnceStream<Box<dyn BufRead + Send>>,
}

impl CsvStream {
    pub fn open(mut r: Box<dyn BufRead + Send>) -> Result<CsvStream, FormatError> {
        let mut header = Vec::new();
        read_line(&mut r, &mut header, 1, 0)?;
        let cols = header_line(without_bom(&header))?;
        Ok(CsvStream {
            cols,
            reader: OnceStream::new(r),
        })
    }
}

/// The columns of header line `b` (without its BOM).
fn header_line(b: &[u8]) -> Result<Columns, FormatError> {
    let header = std::str::from_utf8(b).map_err(|_| {
        FormatError::new(
            0,
            format!("CSV header line 1 is not valid UTF-8: {}", quoted(b, SHOWN)),
        )
    })?;
    parse_header(header, 0)
}

/// Append one line (with its newline, if any) from `r` to `buf`; an error for a line longer than [`MAX_LINE`].
/// Returns the bytes read (0 at the end of the stream).
fn read_line(
    r: &mut (dyn BufRead + Send),
    buf: &mut Vec<u8>,
    line_no: u64,
    offset: u64,
) -> Result<usize, FormatError> {
    let start = buf.len();
    let n = std::io::Read::take(r, MAX_LINE as u64 + 1)
        .read_until(b'\n', buf)
        .map_err(|e| FormatError::new(offset, format!("CSV read failed: {e}")))?;
    if n > MAX_LINE && buf.last() != Some(&b'\n') {
        return Err(FormatError::new(
            offset,
            format!(
                "CSV line {line_no} is longer than {MAX_LINE} bytes (starts {})",
                quoted(&buf[start..], SHOWN)
            ),
        ));
    }
    Ok(n)
}

impl Decoder for CsvStream {
    fn format(&self) -> &'static str {
        "csv"
    }

    fn chunks(&self) -> usize {
        1
    }

    fn decode_chunk(&self, _index: usize, scratch: &mut Vec<u8>, out: Out) -> Decoded {
        let mut r = self.reader.take("CSV")?;
        let mut sink = Sink::new(out);
        // Read about a megabyte of whole lines at a time and parse them like a chunk.
        let mut line_no = 2u64;
        let mut offset = 0u64;
        loop {
            scratch.clear();
            let mut lines = 0;
            while scratch.len() < CHUNK_BYTES {
                match read_line(
                    &mut r,
                    scratch,
                    line_no + lines,
                    offset + scratch.len() as u64,
                ) {
                    Ok(0) => break,
                    Ok(_) => lines += 1,
                    Err(e) => return sink.finish(Err(e)),
                }
            }
            if scratch.is_empty() {
                return sink.finish(Ok(()));
            }
            match parse_lines(&self.cols, scratch, line_no, offset, &mut sink) {
                Ok(true) => return sink.finish(Ok(())),
                Ok(false) => {}
                Err(e) => return sink.finish(Err(e)),
            }
            line_no += lines;
            offset += scratch.len() as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_flags() {
        assert_eq!(parse_time("1970-01-01 00:00:01"), Some(1000));
        assert_eq!(
            parse_time("2023-01-25 18:35:43.039"),
            Some(1_674_671_743_039)
        );
        assert_eq!(parse_time("2023-13-25 18:35:43"), None);
        assert_eq!(parse_flags("...AP..."), Some(0x18));
        assert_eq!(parse_flags("CE....SF"), Some(0xc3));
        assert_eq!(parse_flags("18"), Some(18));
    }

    #[test]
    fn errors_name_line_and_column() {
        let text = b"ts,te,sa,da,sp,dp,pr\n2023-01-25 18:35:43,2023-01-25 18:35:43,1.2.3.4,5.6.7.8,1,2,TCP\n\
2023-01-25 18:35:43,2023-01-25 18:35:43,1.2.3.4,nope,1,2,TCP\n";
        let f = CsvFile::open(crate::formats::bytes_from_vec(text.to_vec())).unwrap();
        let e = crate::formats::decode_all(&f, &mut |_| {}).unwrap_err();
        assert!(e.message.contains("line 3, column 4 (da)"), "{e}");
    }

    #[test]
    fn echoed_fields_are_quoted_cut_and_escaped() {
        let mut text = b"sa,da\n1.2.3.4,\x1b[2J".to_vec();
        text.extend(std::iter::repeat_n(b'x', 10_000));
        text.push(b'\n');
        let f = CsvFile::open(crate::formats::bytes_from_vec(text)).unwrap();
        let e = crate::formats::decode_all(&f, &mut |_| {}).unwrap_err();
        assert!(e.message.len() < 200, "{e}");
        assert!(!e.message.contains('\x1b'), "{e}");
        assert!(e.message.contains("\\u{1b}[2J"), "{e}");
        assert!(e.message.contains("(cut: 10004 bytes in all)"), "{e}");
    }

    #[test]
    fn a_byte_order_mark_before_the_header_is_read_past() {
        let text = b"\xef\xbb\xbfsa,da\n1.2.3.4,5.6.7.8\n";
        assert!(is_csv(text));
        let f = CsvFile::open(crate::formats::bytes_from_vec(text.to_vec())).unwrap();
        let s = crate::formats::decode_all(&f, &mut |_| {}).unwrap();
        assert_eq!(s.flows, 1);
        let s = CsvStream::open(Box::new(std::io::Cursor::new(text.to_vec()))).unwrap();
        assert_eq!(
            crate::formats::decode_all(&s, &mut |_| {}).unwrap().flows,
            1
        );
    }

    #[test]
    fn a_stream_line_longer_than_the_bound_is_an_error() {
        let mut text = b"sa,da\n".to_vec();
        text.extend(std::iter::repeat_n(b'1', MAX_LINE + 10));
        let s = CsvStream::open(Box::new(std::io::Cursor::new(text))).unwrap();
        let e = crate::formats::decode_all(&s, &mut |_| {}).unwrap_err();
        assert!(e.message.contains("line 2 is longer than"), "{e}");
        let endless = std::io::repeat(b'a');
        let e = CsvStream::open(Box::new(std::io::BufReader::new(endless)))
            .err()
            .unwrap();
        assert!(e.message.contains("line 1 is longer than"), "{e}");
    }

    #[test]
    fn header_without_addresses_is_rejected() {
        assert!(CsvFile::open(crate::formats::bytes_from_vec(b"a,b,c\n1,2,3\n".to_vec())).is_err());
    }
}
