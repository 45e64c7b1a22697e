//! NetFlow v5 export packets: a 24-byte header and up to 30 fixed 48-byte records.

use super::{need_header, u16_at, u32_at, Scan};
use crate::formats::FormatError;
use crate::record::{Addr, FlowRecord};

pub const HEADER_LEN: usize = 24;
pub const RECORD_LEN: usize = 48;
/// Cisco's limit on records per v5 packet.
pub const MAX_COUNT: usize = 30;

/// Validate the v5 packet at the start of `b` (`base` is its offset in the input, for errors) and return its
/// record count and length.
pub fn check(b: &[u8], base: usize) -> Result<(usize, usize), FormatError> {
    need_header(b, base, HEADER_LEN, "NetFlow v5 export packet")?;
    let count = u16_at(b, 2) as usize;
    if count == 0 || count > MAX_COUNT {
        return Err(FormatError::new(
            base as u64 + 2,
            format!("NetFlow v5 record count {count}, expected 1..={MAX_COUNT}"),
        ));
    }
    let len = HEADER_LEN + count * RECORD_LEN;
    if len > b.len() {
        return Err(FormatError::new(
            base as u64 + 2,
            format!(
                "truncated NetFlow v5 export packet: {count} records need {len} bytes, {} present",
                b.len()
            ),
        ));
    }
    Ok((count, len))
}

/// Queue the v5 packet at the start of `b` (input offset `base`) in `scan`; returns its length. A packet cut short
/// queues its whole records, then is an error.
pub fn scan(b: &[u8], base: usize, exporter: Addr, scan: &mut Scan) -> Result<usize, FormatError> {
    match check(b, base) {
        Ok((count, len)) => {
            scan.v5(base, count, exporter);
            Ok(len)
        }
        Err(e) => {
            let count = u16_at(b, 2) as usize;
            let whole = b.len().saturating_sub(HEADER_LEN) / RECORD_LEN;
            if (1..=MAX_COUNT).contains(&count) && whole > 0 {
                scan.v5(base, whole.min(count), exporter);
            }
            Err(e)
        }
    }
}

/// Decode the records of a v5 packet already validated by [`check`]; `exporter` is the sender's identity
/// when known (otherwise engine type and id).
pub fn decode(b: &[u8], count: usize, exporter: Option<u32>, out: &mut impl FnMut(FlowRecord)) {
    let uptime = u32_at(b, 4) as i64;
    let secs = u32_at(b, 8) as i64;
    let nsecs = u32_at(b, 12) as i64;
    let engine = u16_at(b, 20) as u32;
    let sampling = (u16_at(b, 22) & 0x3fff).max(1) as u32;
    let base = secs * 1000 + nsecs / 1_000_000 - uptime;
    for i in 0..count {
        let at = HEADER_LEN + i * RECORD_LEN;
        let Some(r) = b.get(at..at + RECORD_LEN) else {
            return;
        };
        out(FlowRecord {
            src: Addr::v4(u32_at(r, 0)),
            dst: Addr::v4(u32_at(r, 4)),
            input: u16_at(r, 12) as u32,
            output: u16_at(r, 14) as u32,
            packets: u32_at(r, 16) as u64,
            bytes: u32_at(r, 20) as u64,
            first_ms: (base + u32_at(r, 24) as i64).max(0) as u64,
            last_ms: (base + u32_at(r, 28) as i64).max(0) as u64,
            src_port: u16_at(r, 32),
            dst_port: u16_at(r, 34),
            tcp_flags: r[37],
            proto: r[38],
            src_tos: r[39],
            exporter: exporter.unwrap_or(engine),
            sampling,
            flows: 1,
        });
    }
}
