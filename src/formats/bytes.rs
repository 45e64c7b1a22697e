//! Reading numbers out of input bytes, the one way every reader does it.
//!
//! [`Endian`] reads a number at a fixed offset and returns `None` when the bytes are too short: for records whose
//! length was checked once (a decoder then reads fields at constant offsets, which the compiler checks away).
//! [`Cursor`] reads a structure front to back and, when the input ends early, returns a [`FormatError`] with the
//! input offset and what was expected there: for headers, templates and anything laid out in sequence.

use super::FormatError;

/// Byte order of the numbers in a format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endian {
    Little,
    Big,
}

/// nfcapd files, pcap written on x86: little-endian.
pub const LE: Endian = Endian::Little;
/// NetFlow, IPFIX and IP headers: network byte order.
pub const BE: Endian = Endian::Big;

impl Endian {
    #[inline(always)]
    pub fn u16(self, b: &[u8], at: usize) -> Option<u16> {
        let v = *b.get(at..)?.first_chunk::<2>()?;
        Some(match self {
            Endian::Little => u16::from_le_bytes(v),
            Endian::Big => u16::from_be_bytes(v),
        })
    }

    #[inline(always)]
    pub fn u32(self, b: &[u8], at: usize) -> Option<u32> {
        let v = *b.get(at..)?.first_chunk::<4>()?;
        Some(match self {
            Endian::Little => u32::from_le_bytes(v),
            Endian::Big => u32::from_be_bytes(v),
        })
    }

    #[inline(always)]
    pub fn u64(self, b: &[u8], at: usize) -> Option<u64> {
        let v = *b.get(at..)?.first_chunk::<8>()?;
        Some(match self {
            Endian::Little => u64::from_le_bytes(v),
            Endian::Big => u64::from_be_bytes(v),
        })
    }
}

/// Sequential, bounds-checked reads over a slice that starts at input offset `base`.
#[derive(Clone, Debug)]
pub struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: u64,
    endian: Endian,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `bytes`, whose first byte is at input offset `base`.
    pub fn new(bytes: &'a [u8], base: u64, endian: Endian) -> Cursor<'a> {
        Cursor {
            bytes,
            pos: 0,
            base,
            endian,
        }
    }

    /// Position within the slice.
    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Input offset of the next byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    pub fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// The error for `what` (`n` bytes) not being there: where, what, and how many bytes were left.
    pub fn short(&self, n: usize, what: &str) -> FormatError {
        FormatError::new(
            self.offset(),
            format!(
                "truncated: expected {what} ({n} byte{}), {} left",
                if n == 1 { "" } else { "s" },
                self.remaining()
            ),
        )
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], FormatError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| self.short(n, what))?;
        let v = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(v)
    }

    pub fn skip(&mut self, n: usize, what: &str) -> Result<(), FormatError> {
        self.take(n, what).map(|_| ())
    }

    pub fn u8(&mut self, what: &str) -> Result<u8, FormatError> {
        Ok(self.take(1, what)?[0])
    }

    pub fn u16(&mut self, what: &str) -> Result<u16, FormatError> {
        let v = self.take(2, what)?;
        Ok(self.endian.u16(v, 0).unwrap_or(0))
    }

    pub fn u32(&mut self, what: &str) -> Result<u32, FormatError> {
        let v = self.take(4, what)?;
        Ok(self.endian.u32(v, 0).unwrap_or(0))
    }

    pub fn u64(&mut self, what: &str) -> Result<u64, FormatError> {
        let v = self.take(8, what)?;
        Ok(self.endian.u64(v, 0).unwrap_or(0))
    }
}

/// A bounded, printable rendering of bytes taken from the input, for messages: control characters and escape
/// sequences are shown escaped (`\x1b`), invalid UTF-8 as `\xNN`, and at most `max` characters are shown, with the
/// length of the rest. An input's content never reaches the terminal raw.
pub fn quoted(b: &[u8], max: usize) -> String {
    let mut out = String::from("'");
    let mut shown = 0usize;
    let mut at = 0usize;
    for chunk in b.utf8_chunks() {
        for c in chunk.valid().chars() {
            if shown >= max {
                break;
            }
            if c.is_control() || c == '\'' || c == '\\' {
                out.extend(c.escape_default());
            } else {
                out.push(c);
            }
            shown += 1;
            at += c.len_utf8();
        }
        for &x in chunk.invalid() {
            if shown >= max {
                break;
            }
            out.push_str(&format!("\\x{x:02x}"));
            shown += 1;
            at += 1;
        }
        if shown >= max {
            break;
        }
    }
    out.push('\'');
    if at < b.len() {
        out.push_str(&format!(" (cut: {} bytes in all)", b.len()));
    }
    out
}

/// Up to `n` bytes in hex, space-separated (`de ad be ef`), for messages about binary content.
pub fn hex(b: &[u8], n: usize) -> String {
    b.iter()
        .take(n)
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_offset_reads_are_none_when_short() {
        let b = [1u8, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(LE.u16(&b, 0), Some(0x0201));
        assert_eq!(BE.u32(&b, 1), Some(0x0203_0405));
        assert_eq!(LE.u64(&b, 1), Some(0x0908_0706_0504_0302));
        assert_eq!(LE.u64(&b, 2), None);
        assert_eq!(BE.u16(&b, 8), None);
        assert_eq!(BE.u16(&b, usize::MAX), None);
    }

    #[test]
    fn cursor_names_offset_and_what_was_expected() {
        let b = [0u8, 5, 0, 0, 0, 7];
        let mut c = Cursor::new(&b, 100, BE);
        assert_eq!(c.u16("version").unwrap(), 5);
        assert_eq!(c.u32("count").unwrap(), 7);
        let e = c.u16("length").unwrap_err();
        assert_eq!(e.offset, 106);
        assert!(
            e.message.contains("expected length (2 bytes), 0 left"),
            "{e}"
        );
        let mut c = Cursor::new(&b, 0, LE);
        assert!(c.take(usize::MAX, "everything").is_err());
        assert_eq!(c.pos(), 0);
    }

    #[test]
    fn quoted_escapes_and_cuts() {
        assert_eq!(quoted(b"abc", 10), "'abc'");
        assert_eq!(quoted(b"\x1b[31mred", 20), "'\\u{1b}[31mred'");
        assert_eq!(quoted(b"a\xffb", 10), "'a\\xffb'");
        let long = vec![b'x'; 1000];
        let q = quoted(&long, 5);
        assert_eq!(q, "'xxxxx' (cut: 1000 bytes in all)");
        assert_eq!(hex(&[0xde, 0xad, 0xbe, 0xef, 1], 4), "de ad be ef");
    }
}
