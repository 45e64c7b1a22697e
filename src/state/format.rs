//! The bytes of a saved-state file: a fixed header, then sections, each with its own header, length and CRC-32.
//! docs/STATE.md is the reference; this module writes and checks the container, `state` fills the sections.
//!
//! ```text
//! header, 32 bytes (little-endian)
//!   0  8  magic "FLSKSTAT"
//!   8  2  format version (1)
//!  10  1  counter kind (1 compact, 2 exact)
//!  11  1  0
//!  12  4  number of sections
//!  16  8  definitions fingerprint
//!  24  4  CRC-32 of bytes 0..24
//!  28  4  0
//! section, 32 bytes + stored bytes
//!   0  4  tag (ASCII: META, INPT, RULE, ADMS, TABL)
//!   4  4  rule index (0xffff_ffff for whole-state sections)
//!   8  8  stored length
//!  16  8  length once decompressed
//!  24  4  CRC-32 of the stored bytes
//!  28  4  CRC-32 of bytes 0..28 of this section header
//!  32  .. stored bytes: one zstd frame
//! ```
//!
//! CRC-32 (the zlib/PNG polynomial, `crc32fast`, already built in for gzip input): a torn write or a flipped bit is
//! caught per section before anything is decoded, and `python3 -c 'import zlib; ...'` can check a section without
//! flowsketch. It guards against accidents, not against someone forging a state (nothing here is trusted to be
//! small: every length is checked against the bytes that are there). zstd: a sketch's cells are mostly zero and a
//! table's keys share prefixes, so a state is a fraction of the memory it describes.

use std::fmt;

pub const MAGIC: &[u8; 8] = b"FLSKSTAT";
pub const VERSION: u16 = 1;
pub const HEADER: usize = 32;
pub const SECTION_HEADER: usize = 32;
/// Rule index of sections that belong to no rule.
pub const NO_RULE: u32 = u32::MAX;
/// zstd level: level 1 compresses zeroed cells as well as higher ones, at the speed of a write.
const LEVEL: i32 = 1;

/// What was wrong with a state file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateError {
    /// The file, as the user named it (or the state's name).
    pub file: String,
    pub what: String,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.file, self.what)
    }
}

impl std::error::Error for StateError {}

/// One section: tag, rule and raw (decompressed) payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub tag: [u8; 4],
    pub rule: u32,
    pub payload: Vec<u8>,
}

impl Section {
    pub fn name(&self) -> String {
        section_name(self.tag, self.rule)
    }
}

fn section_name(tag: [u8; 4], rule: u32) -> String {
    let tag = String::from_utf8_lossy(&tag).into_owned();
    if rule == NO_RULE {
        format!("section {tag}")
    } else {
        format!("section {tag} of rule #{rule}")
    }
}

/// The fixed header's fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub counter: u8,
    pub fingerprint: u64,
}

/// Write a whole file: header, then the sections in order.
pub fn write(header: Header, sections: &[Section]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(HEADER + sections.len() * SECTION_HEADER);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.push(header.counter);
    out.push(0);
    out.extend_from_slice(&(sections.len() as u32).to_le_bytes());
    out.extend_from_slice(&header.fingerprint.to_le_bytes());
    let crc = crc32fast::hash(&out[..24]);
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    for s in sections {
        let stored = zstd::bulk::compress(&s.payload, LEVEL)?;
        let start = out.len();
        out.extend_from_slice(&s.tag);
        out.extend_from_slice(&s.rule.to_le_bytes());
        out.extend_from_slice(&(stored.len() as u64).to_le_bytes());
        out.extend_from_slice(&(s.payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&stored).to_le_bytes());
        let hcrc = crc32fast::hash(&out[start..start + 28]);
        out.extend_from_slice(&hcrc.to_le_bytes());
        out.extend_from_slice(&stored);
    }
    Ok(out)
}

/// Read and check a whole file: the header, then every section (lengths, checksums, decompression).
pub fn read(bytes: &[u8], file: &str) -> Result<(Header, Vec<Section>), StateError> {
    let err = |what: String| StateError {
        file: file.to_string(),
        what,
    };
    if bytes.len() < 8 || &bytes[..8] != MAGIC {
        let got = &bytes[..bytes.len().min(8)];
        return Err(err(format!(
            "not a flowsketch state (expected the magic \"FLSKSTAT\", found {})",
            printable(got)
        )));
    }
    if bytes.len() < HEADER {
        return Err(err(format!(
            "truncated: the header needs {HEADER} bytes, the file has {}",
            bytes.len()
        )));
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    let crc = u32::from_le_bytes(bytes[24..28].try_into().expect("4 bytes"));
    if crc32fast::hash(&bytes[..24]) != crc {
        return Err(err("corrupt: the header's checksum does not match".into()));
    }
    if version != VERSION {
        return Err(err(format!(
            "state format version {version}; this flowsketch reads version {VERSION}"
        )));
    }
    let header = Header {
        counter: bytes[10],
        fingerprint: u64::from_le_bytes(bytes[16..24].try_into().expect("8 bytes")),
    };
    let count = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    let mut at = HEADER;
    let mut sections = Vec::with_capacity(count.min(1 << 16));
    for i in 0..count {
        if bytes.len() < at + SECTION_HEADER {
            return Err(err(format!(
                "truncated: section {} of {count} starts at byte {at}, the file ends at {}",
                i + 1,
                bytes.len()
            )));
        }
        let h = &bytes[at..at + SECTION_HEADER];
        let tag: [u8; 4] = h[..4].try_into().expect("4 bytes");
        let rule = u32::from_le_bytes(h[4..8].try_into().expect("4 bytes"));
        let stored = u64::from_le_bytes(h[8..16].try_into().expect("8 bytes"));
        let raw = u64::from_le_bytes(h[16..24].try_into().expect("8 bytes"));
        let crc = u32::from_le_bytes(h[24..28].try_into().expect("4 bytes"));
        let hcrc = u32::from_le_bytes(h[28..32].try_into().expect("4 bytes"));
        if crc32fast::hash(&h[..28]) != hcrc {
            return Err(err(format!(
                "corrupt: the header of section {} of {count} (at byte {at}) fails its checksum",
                i + 1
            )));
        }
        let name = section_name(tag, rule);
        let body = at + SECTION_HEADER;
        let end = (body as u64).saturating_add(stored);
        if end > bytes.len() as u64 {
            return Err(err(format!(
                "truncated: {name} needs {stored} bytes from byte {body}, the file ends at {}",
                bytes.len()
            )));
        }
        let end = end as usize;
        let data = &bytes[body..end];
        if crc32fast::hash(data) != crc {
            return Err(err(format!(
                "corrupt: {name} (bytes {body}..{end}) fails its checksum"
            )));
        }
        // The header says how long the payload is; zstd is asked for no more, and memory follows what the frame
        // really holds, not what the header claims (a buffer of the claimed size up front let 32 bytes of a
        // header ask the allocator for a terabyte).
        let payload = decompress(data, raw)
            .map_err(|e| err(format!("corrupt: {name} does not decompress: {e}")))?;
        if payload.len() as u64 != raw {
            return Err(err(format!(
                "corrupt: {name} decompresses to {} bytes, its header says {raw}",
                payload.len()
            )));
        }
        sections.push(Section { tag, rule, payload });
        at = end;
    }
    if at != bytes.len() {
        return Err(err(format!(
            "{} bytes after the last section (at byte {at}): not a state this flowsketch wrote, or two files joined",
            bytes.len() - at
        )));
    }
    Ok((header, sections))
}

/// At most `limit` bytes of the zstd frame `data`, grown as they come (one more byte shows a frame too long).
fn decompress(data: &[u8], limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut out = Vec::with_capacity(
        (limit as usize)
            .min(data.len().saturating_mul(4))
            .min(1 << 26),
    );
    zstd::stream::read::Decoder::with_buffer(data)?
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)?;
    Ok(out)
}

/// Make every checksum of `bytes` right (the header's, and each section's as far as the lengths lead), and give
/// it the definitions fingerprint `fingerprint`: so that a fuzzer's changes reach what the checksums guard.
pub fn refresh_checksums(bytes: &mut [u8], fingerprint: u64) {
    if bytes.len() < HEADER {
        return;
    }
    bytes[16..24].copy_from_slice(&fingerprint.to_le_bytes());
    let crc = crc32fast::hash(&bytes[..24]);
    bytes[24..28].copy_from_slice(&crc.to_le_bytes());
    let mut at = HEADER;
    while at + SECTION_HEADER <= bytes.len() {
        let stored = u64::from_le_bytes(bytes[at + 8..at + 16].try_into().expect("8 bytes"));
        let body = at + SECTION_HEADER;
        let end = (body as u64).saturating_add(stored).min(bytes.len() as u64) as usize;
        let crc = crc32fast::hash(&bytes[body..end]);
        bytes[at + 24..at + 28].copy_from_slice(&crc.to_le_bytes());
        let hcrc = crc32fast::hash(&bytes[at..at + 28]);
        bytes[at + 28..at + 32].copy_from_slice(&hcrc.to_le_bytes());
        at = end;
    }
}

fn printable(b: &[u8]) -> String {
    if b.is_empty() {
        return "an empty file".into();
    }
    let s: String = b
        .iter()
        .map(|&c| {
            if c.is_ascii_graphic() {
                (c as char).to_string()
            } else {
                format!("\\x{c:02x}")
            }
        })
        .collect();
    format!("\"{s}\"")
}

/// Reads fixed-size little-endian fields from a payload, saying where it ran out.
pub struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
    what: String,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8], what: String) -> Cursor<'a> {
        Cursor { bytes, at: 0, what }
    }

    pub fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).filter(|&e| e <= self.bytes.len());
        match end {
            Some(end) => {
                let s = &self.bytes[self.at..end];
                self.at = end;
                Ok(s)
            }
            None => Err(format!(
                "{} ends at byte {} where {field} needs {n} more",
                self.what,
                self.bytes.len()
            )),
        }
    }

    pub fn u8(&mut self, field: &str) -> Result<u8, String> {
        Ok(self.take(1, field)?[0])
    }
    pub fn u16(&mut self, field: &str) -> Result<u16, String> {
        Ok(u16::from_le_bytes(
            self.take(2, field)?.try_into().expect("2"),
        ))
    }
    pub fn u32(&mut self, field: &str) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4, field)?.try_into().expect("4"),
        ))
    }
    pub fn u64(&mut self, field: &str) -> Result<u64, String> {
        Ok(u64::from_le_bytes(
            self.take(8, field)?.try_into().expect("8"),
        ))
    }
    pub fn u128(&mut self, field: &str) -> Result<u128, String> {
        Ok(u128::from_le_bytes(
            self.take(16, field)?.try_into().expect("16"),
        ))
    }

    /// A count of items of at least `min_size` bytes each, checked against the bytes left.
    pub fn count(&mut self, min_size: usize, field: &str) -> Result<usize, String> {
        let n = self.u64(field)?;
        let left = (self.bytes.len() - self.at) as u64;
        if n.saturating_mul(min_size as u64) > left {
            return Err(format!(
                "{} says {n} {field}, more than its {left} remaining bytes hold",
                self.what
            ));
        }
        Ok(n as usize)
    }

    pub fn done(&self) -> Result<(), String> {
        if self.at == self.bytes.len() {
            Ok(())
        } else {
            Err(format!(
                "{} has {} bytes past its last field",
                self.what,
                self.bytes.len() - self.at
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let sections = vec![
            Section {
                tag: *b"META",
                rule: NO_RULE,
                payload: b"{\"a\":1}".to_vec(),
            },
            Section {
                tag: *b"ADMS",
                rule: 0,
                payload: vec![0; 100_000],
            },
        ];
        write(
            Header {
                counter: 1,
                fingerprint: 42,
            },
            &sections,
        )
        .unwrap()
    }

    #[test]
    fn round_trips_and_compresses_zeros() {
        let b = sample();
        assert!(b.len() < 1_000, "{}", b.len());
        let (h, s) = read(&b, "x").unwrap();
        assert_eq!((h.counter, h.fingerprint), (1, 42));
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].payload.len(), 100_000);
    }

    /// Every cut of the file and every flipped byte is refused with what was wrong, never a panic.
    #[test]
    fn every_truncation_and_flipped_byte_is_refused() {
        let b = sample();
        for cut in 0..b.len() {
            let e = read(&b[..cut], "f.state").unwrap_err();
            assert!(e.to_string().starts_with("f.state: "), "{e}");
            assert!(
                e.what.contains("truncated") || e.what.contains("not a flowsketch state"),
                "cut {cut}: {e}"
            );
        }
        for i in 0..b.len() {
            let mut c = b.clone();
            c[i] ^= 0x40;
            // Bytes 28..32 are padding no check covers; everything else is caught.
            if (28..32).contains(&i) {
                continue;
            }
            assert!(read(&c, "f").is_err(), "flipped byte {i} passed");
        }
        let mut longer = b.clone();
        longer.push(0);
        assert!(read(&longer, "f")
            .unwrap_err()
            .what
            .contains("after the last"));
    }
}
