//! Layout-2 flow records (type 11, "V3"): a 12-byte header and a list of elements, each `{u16 id, u16 length}`
//! with the length including its 4-byte header. Elements not used here are skipped by their length.

use super::records::Bad;
use crate::formats::bytes::LE;
use crate::record::{Addr, FlowRecord};

pub const RECORD_TYPE: u16 = 11;
pub const HEADER_LEN: usize = 12;
pub const ELEMENT_HEADER_LEN: usize = 4;

/// Element ids and the data length each needs (element header excluded).
pub const EX_GENERIC_FLOW: u16 = 1;
pub const GENERIC_FLOW_LEN: usize = 48;
pub const EX_IPV4_FLOW: u16 = 2;
pub const IPV4_FLOW_LEN: usize = 8;
pub const EX_IPV6_FLOW: u16 = 3;
pub const IPV6_FLOW_LEN: usize = 32;
pub const EX_FLOW_MISC: u16 = 4;
pub const FLOW_MISC_LEN: usize = 16;
/// Counters: aggregated flows u64, out packets u64, out bytes u64.
pub const EX_CNT_FLOW: u16 = 5;
pub const CNT_FLOW_LEN: usize = 24;
/// Sampler info: id i32, interval u32, mode u16, exporter sysid u16.
pub const EX_SAMPLER_INFO: u16 = 18;

fn u16_at(b: &[u8], at: usize) -> u16 {
    LE.u16(b, at).unwrap_or(0)
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    LE.u32(b, at).unwrap_or(0)
}

/// nfdump stores an IPv6 address as two host-order u64 halves, the high half first (0 when `b` is short).
pub fn ipv6_at(b: &[u8], at: usize) -> u128 {
    let half = |at: usize| u128::from(LE.u64(b, at).unwrap_or(0));
    (half(at) << 64) | half(at + 8)
}

/// A record as nfdump shows it when an element is missing: IPv4 zero addresses, unsampled, one flow.
#[inline]
pub fn empty_flow() -> FlowRecord {
    FlowRecord {
        src: Addr::v4(0),
        dst: Addr::v4(0),
        sampling: 1,
        ..FlowRecord::default()
    }
}

/// Decode one V3 record (`rec` spans exactly its declared size).
#[inline]
pub fn decode(rec: &[u8]) -> Result<FlowRecord, Bad> {
    if rec.len() < HEADER_LEN {
        return Err(Bad::new(
            0,
            format!(
                "V3 record of {} bytes, expected at least its {HEADER_LEN}-byte header",
                rec.len()
            ),
        ));
    }
    let mut f = empty_flow();
    f.exporter = u32::from(u16_at(rec, 8));
    let elements = u16_at(rec, 4);
    let mut p = HEADER_LEN;
    for _ in 0..elements {
        if p + ELEMENT_HEADER_LEN > rec.len() {
            break;
        }
        let id = u16_at(rec, p);
        let len = usize::from(u16_at(rec, p + 2));
        if len < ELEMENT_HEADER_LEN || p + len > rec.len() {
            return Err(Bad::new(
                p,
                format!(
                    "element {id} has length {len}, expected 4..={} (the rest of the record)",
                    rec.len() - p
                ),
            ));
        }
        let d = &rec[p + ELEMENT_HEADER_LEN..p + len];
        let need = match id {
            EX_GENERIC_FLOW => GENERIC_FLOW_LEN,
            EX_IPV4_FLOW => IPV4_FLOW_LEN,
            EX_IPV6_FLOW => IPV6_FLOW_LEN,
            EX_FLOW_MISC => 8,
            EX_CNT_FLOW => 8,
            EX_SAMPLER_INFO => 8,
            _ => 0,
        };
        if d.len() < need {
            return Err(Bad::new(
                p,
                format!(
                    "element {id} has {} data bytes, expected at least {need}",
                    d.len()
                ),
            ));
        }
        match id {
            EX_GENERIC_FLOW => {
                // A fixed-size view: constant offsets into an array need no bounds checks.
                if let Some(g) = d.first_chunk::<GENERIC_FLOW_LEN>() {
                    let u64_of = |at: usize| {
                        u64::from_le_bytes([
                            g[at],
                            g[at + 1],
                            g[at + 2],
                            g[at + 3],
                            g[at + 4],
                            g[at + 5],
                            g[at + 6],
                            g[at + 7],
                        ])
                    };
                    f.first_ms = u64_of(0);
                    f.last_ms = u64_of(8);
                    f.packets = u64_of(24);
                    f.bytes = u64_of(32);
                    f.src_port = u16::from_le_bytes([g[40], g[41]]);
                    f.dst_port = u16::from_le_bytes([g[42], g[43]]);
                    f.proto = g[44];
                    f.tcp_flags = g[45];
                    f.src_tos = g[47];
                }
            }
            EX_IPV4_FLOW => {
                f.src = Addr::v4(u32_at(d, 0));
                f.dst = Addr::v4(u32_at(d, 4));
            }
            EX_IPV6_FLOW => {
                // An IPv4-mapped address becomes the IPv4 address: same 128-bit value.
                f.src = Addr::v6(ipv6_at(d, 0));
                f.dst = Addr::v6(ipv6_at(d, 16));
            }
            EX_FLOW_MISC => {
                f.input = u32_at(d, 0);
                f.output = u32_at(d, 4);
            }
            EX_CNT_FLOW => {
                // nfdump counts a record as `flows` flows when it has this element (aggregated records).
                let flows = LE.u64(d, 0).unwrap_or(1);
                f.flows = u32::try_from(flows).unwrap_or(u32::MAX);
            }
            EX_SAMPLER_INFO => {
                let interval = u32_at(d, 4);
                if interval > 1 {
                    f.sampling = interval;
                }
            }
            _ => {}
        }
        p += len;
    }
    Ok(f)
}

/// Record header and element headers packed as they are read: `{u16 type, u16 size, u16 elements}` and
/// `{u16 id, u16 length}`.
const fn record_head(size: usize, elements: u64) -> u64 {
    RECORD_TYPE as u64 | (size as u64) << 16 | elements << 32
}
const fn element_head(id: u16, data_len: usize) -> u32 {
    id as u32 | ((data_len + ELEMENT_HEADER_LEN) as u32) << 16
}

const GENERIC_AT: usize = HEADER_LEN;
const ADDR_AT: usize = GENERIC_AT + ELEMENT_HEADER_LEN + GENERIC_FLOW_LEN;
const V4_SIZE: usize = ADDR_AT + ELEMENT_HEADER_LEN + IPV4_FLOW_LEN;
const V6_SIZE: usize = ADDR_AT + ELEMENT_HEADER_LEN + IPV6_FLOW_LEN;
const MISC_SIZE: usize = ELEMENT_HEADER_LEN + FLOW_MISC_LEN;

/// Decode the record at `pos` when it has one of the shapes nfcapd and our writer emit (EXgenericFlow, then
/// EXipv4Flow or EXipv6Flow, then optionally EXflowMisc, nothing else): one compare of the record header, one per
/// element header, then reads at constant offsets. Returns the flow and the record size, or `None` for any other
/// record (or one running past `data`), which [`decode`] then walks element by element with its error checks.
/// For the shapes it accepts, the result is the one [`decode`] gives.
#[inline(always)]
pub fn decode_fast(data: &[u8], pos: usize) -> Option<(FlowRecord, usize)> {
    let rest = data.get(pos..)?;
    let head = u64::from_le_bytes(*rest.first_chunk::<8>()?) & 0xffff_ffff_ffff;
    const V4: u64 = record_head(V4_SIZE, 2);
    const V6: u64 = record_head(V6_SIZE, 2);
    const V4_MISC: u64 = record_head(V4_SIZE + MISC_SIZE, 3);
    const V6_MISC: u64 = record_head(V6_SIZE + MISC_SIZE, 3);
    match head {
        V4_MISC => shaped::<{ V4_SIZE + MISC_SIZE }, false, true>(rest),
        V4 => shaped::<V4_SIZE, false, false>(rest),
        V6_MISC => shaped::<{ V6_SIZE + MISC_SIZE }, true, true>(rest),
        V6 => shaped::<V6_SIZE, true, false>(rest),
        _ => None,
    }
}

/// One fixed shape: `N` bytes, IPv6 or IPv4 addresses, with or without EXflowMisc.
#[inline(always)]
fn shaped<const N: usize, const V6: bool, const MISC: bool>(
    rest: &[u8],
) -> Option<(FlowRecord, usize)> {
    let r: &[u8; N] = rest.first_chunk::<N>()?;
    let u32_of = |at: usize| u32::from_le_bytes(std::array::from_fn(|i| r[at + i]));
    let u64_of = |at: usize| u64::from_le_bytes(std::array::from_fn(|i| r[at + i]));
    let addr_head = if V6 {
        element_head(EX_IPV6_FLOW, IPV6_FLOW_LEN)
    } else {
        element_head(EX_IPV4_FLOW, IPV4_FLOW_LEN)
    };
    let misc_at = if V6 { V6_SIZE } else { V4_SIZE };
    if u32_of(GENERIC_AT) != element_head(EX_GENERIC_FLOW, GENERIC_FLOW_LEN)
        || u32_of(ADDR_AT) != addr_head
        || (MISC && u32_of(misc_at) != element_head(EX_FLOW_MISC, FLOW_MISC_LEN))
    {
        return None;
    }
    let g = GENERIC_AT + ELEMENT_HEADER_LEN;
    let a = ADDR_AT + ELEMENT_HEADER_LEN;
    let (src, dst) = if V6 {
        let v6 = |at: usize| Addr::v6(u128::from(u64_of(at)) << 64 | u128::from(u64_of(at + 8)));
        (v6(a), v6(a + 16))
    } else {
        (Addr::v4(u32_of(a)), Addr::v4(u32_of(a + 4)))
    };
    let (input, output) = if MISC {
        let m = misc_at + ELEMENT_HEADER_LEN;
        (u32_of(m), u32_of(m + 4))
    } else {
        (0, 0)
    };
    let f = FlowRecord {
        src,
        dst,
        first_ms: u64_of(g),
        last_ms: u64_of(g + 8),
        packets: u64_of(g + 24),
        bytes: u64_of(g + 32),
        src_port: u16::from_le_bytes([r[g + 40], r[g + 41]]),
        dst_port: u16::from_le_bytes([r[g + 42], r[g + 43]]),
        proto: r[g + 44],
        tcp_flags: r[g + 45],
        src_tos: r[g + 47],
        input,
        output,
        exporter: u32::from(u16::from_le_bytes([r[8], r[9]])),
        sampling: 1,
        flows: 1,
    };
    Some((f, N))
}

/// Whether [`decode_fast`] agrees with [`decode`] on the record at the start of `data`: it either declines, or
/// returns the flow `decode` returns for the record's declared size. For tests and the fuzz target.
pub fn fast_path_agrees(data: &[u8]) -> bool {
    match decode_fast(data, 0) {
        None => true,
        Some((f, size)) => {
            usize::from(u16_at(data, 2)) == size && data.get(..size).map(decode) == Some(Ok(f))
        }
    }
}

/// [`fast_path_agrees`] on a record near one of the fast shapes, for the fuzz target (random bytes almost never
/// match a shape): `data[0]` picks the shape and a cut, the rest is XORed over the shape's bytes and appended.
pub fn fast_path_agrees_near_shape(data: &[u8]) -> bool {
    let Some((&pick, rest)) = data.split_first() else {
        return true;
    };
    let mut f = empty_flow();
    if pick & 1 != 0 {
        f.src = Addr::v6(0x2001_0db8 << 96);
    }
    if pick & 2 != 0 {
        f.input = 1;
    }
    let mut rec = Vec::new();
    encode(&f, &mut rec);
    for (i, b) in rest.iter().enumerate() {
        match rec.get_mut(i) {
            Some(r) => *r ^= b,
            None => rec.push(*b),
        }
    }
    if pick & 4 != 0 {
        rec.truncate(usize::from(pick >> 3) * 4);
    }
    fast_path_agrees(&rec)
}

/// Append one V3 record for `f` to `out` (no allocation once `out` has grown). EXflowMisc is written when an
/// interface is set, EXcntFlow when the record stands for other than one flow.
pub fn encode(f: &FlowRecord, out: &mut Vec<u8>) {
    let v4 = f.src.is_v4() && f.dst.is_v4();
    let misc = f.input != 0 || f.output != 0;
    let cnt = f.flows != 1;
    let addr_len = if v4 { IPV4_FLOW_LEN } else { IPV6_FLOW_LEN };
    let optional = |on: bool, len: usize| if on { ELEMENT_HEADER_LEN + len } else { 0 };
    let size = HEADER_LEN
        + ELEMENT_HEADER_LEN
        + GENERIC_FLOW_LEN
        + ELEMENT_HEADER_LEN
        + addr_len
        + optional(misc, FLOW_MISC_LEN)
        + optional(cnt, CNT_FLOW_LEN);
    let elements = 2 + u16::from(misc) + u16::from(cnt);
    let sampled = f.sampling > 1;
    // Header
    out.extend_from_slice(&RECORD_TYPE.to_le_bytes());
    out.extend_from_slice(&(size as u16).to_le_bytes());
    out.extend_from_slice(&elements.to_le_bytes());
    out.extend_from_slice(&[0, 0]); // engine type, engine id
    out.extend_from_slice(&(f.exporter as u16).to_le_bytes());
    out.push(if sampled { 2 } else { 0 });
    out.push(0); // nfversion: unknown
                 // EXgenericFlow
    element_header(out, EX_GENERIC_FLOW, GENERIC_FLOW_LEN);
    out.extend_from_slice(&f.first_ms.to_le_bytes());
    out.extend_from_slice(&f.last_ms.to_le_bytes());
    out.extend_from_slice(&f.last_ms.to_le_bytes()); // received: when the collector saw it
    out.extend_from_slice(&f.packets.to_le_bytes());
    out.extend_from_slice(&f.bytes.to_le_bytes());
    out.extend_from_slice(&f.src_port.to_le_bytes());
    out.extend_from_slice(&f.dst_port.to_le_bytes());
    out.extend_from_slice(&[f.proto, f.tcp_flags, 0, f.src_tos]);
    // Addresses
    if v4 {
        element_header(out, EX_IPV4_FLOW, IPV4_FLOW_LEN);
        out.extend_from_slice(&(f.src.0 as u32).to_le_bytes());
        out.extend_from_slice(&(f.dst.0 as u32).to_le_bytes());
    } else {
        element_header(out, EX_IPV6_FLOW, IPV6_FLOW_LEN);
        for a in [f.src.0, f.dst.0] {
            out.extend_from_slice(&((a >> 64) as u64).to_le_bytes());
            out.extend_from_slice(&(a as u64).to_le_bytes());
        }
    }
    if misc {
        element_header(out, EX_FLOW_MISC, FLOW_MISC_LEN);
        out.extend_from_slice(&f.input.to_le_bytes());
        out.extend_from_slice(&f.output.to_le_bytes());
        out.extend_from_slice(&[0u8; 8]);
    }
    if cnt {
        element_header(out, EX_CNT_FLOW, CNT_FLOW_LEN);
        out.extend_from_slice(&u64::from(f.flows).to_le_bytes());
        out.extend_from_slice(&[0u8; 16]); // out packets, out bytes
    }
}

fn element_header(out: &mut Vec<u8>, id: u16, data_len: usize) {
    out.extend_from_slice(&id.to_le_bytes());
    out.extend_from_slice(&((data_len + ELEMENT_HEADER_LEN) as u16).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_is_identity_for_both_families() {
        let mut a = empty_flow();
        a.src = "10.1.2.3".parse().unwrap();
        a.dst = "192.168.0.1".parse().unwrap();
        a.first_ms = 1_700_000_000_123;
        a.last_ms = 1_700_000_001_456;
        a.packets = 7;
        a.bytes = 7000;
        a.src_port = 40000;
        a.dst_port = 443;
        a.proto = 6;
        a.tcp_flags = 0x12;
        a.src_tos = 4;
        a.input = 3;
        a.output = 9;
        a.exporter = 5;
        let mut b = a;
        b.src = "2001:db8::1".parse().unwrap();
        b.dst = "fe80::2".parse().unwrap();
        b.input = 0;
        b.output = 0;
        for f in [a, b] {
            let mut buf = Vec::new();
            encode(&f, &mut buf);
            assert_eq!(usize::from(u16_at(&buf, 2)), buf.len());
            let back = decode(&buf).unwrap();
            assert_eq!(back, f);
        }
    }

    /// The four shapes the fast path knows, as the writer emits them, with every field set.
    fn shaped_records() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for (v6, misc) in [(false, false), (false, true), (true, false), (true, true)] {
            let mut f = empty_flow();
            if v6 {
                f.src = "2001:db8::1:2".parse().unwrap();
                f.dst = "fe80::aa:bb".parse().unwrap();
            } else {
                f.src = "10.1.2.3".parse().unwrap();
                f.dst = "192.168.7.9".parse().unwrap();
            }
            (f.first_ms, f.last_ms) = (1_700_000_000_123, 1_700_000_009_876);
            (f.packets, f.bytes) = (0x0102_0304_0506, 0x1122_3344_5566_7788);
            (f.src_port, f.dst_port, f.proto, f.tcp_flags, f.src_tos) = (40000, 443, 6, 0x1b, 0x2e);
            if misc {
                (f.input, f.output) = (0x0a0b_0c0d, 77);
            }
            f.exporter = 0xbeef;
            let mut buf = Vec::new();
            encode(&f, &mut buf);
            out.push(buf);
        }
        out
    }

    #[test]
    fn fast_path_takes_the_written_shapes_and_matches_the_general_walk() {
        for rec in shaped_records() {
            let (f, size) = decode_fast(&rec, 0).expect("a shape the writer emits");
            assert_eq!(size, rec.len());
            assert_eq!(Ok(f), decode(&rec));
            // Bytes after the record (the next record) change nothing.
            let mut longer = rec.clone();
            longer.extend_from_slice(&rec);
            assert_eq!(decode_fast(&longer, 0), Some((f, size)));
            assert_eq!(decode_fast(&longer, size), Some((f, size)));
        }
    }

    #[test]
    fn fast_path_declines_truncated_records() {
        for rec in shaped_records() {
            for cut in 0..rec.len() {
                assert_eq!(decode_fast(&rec[..cut], 0), None, "cut at {cut}");
                assert_eq!(decode_fast(&rec, cut + 1), None, "start at {}", cut + 1);
            }
        }
    }

    #[test]
    fn fast_path_agrees_with_the_general_walk_on_altered_headers_and_lengths() {
        // Every byte of every shape set to values that make other types, sizes, element counts, element ids
        // and lengths (including the other shapes' sizes and a sampler element).
        let values = [
            0u8, 1, 2, 3, 4, 11, 12, 18, 20, 36, 52, 56, 76, 96, 100, 120, 0xff,
        ];
        let mut declined = 0;
        for rec in shaped_records() {
            for at in 0..rec.len() {
                for v in values.iter().copied().chain([rec[at] ^ 1]) {
                    let mut m = rec.clone();
                    m[at] = v;
                    assert!(fast_path_agrees(&m), "byte {at} = {v}: {m:?}");
                    declined += usize::from(decode_fast(&m, 0).is_none());
                }
            }
        }
        // The alterations of headers were declined, not decoded as if nothing changed.
        assert!(declined > 4 * 20 * values.len() / 2, "{declined}");
        // A record with a sampler element (4 elements) goes the general way and keeps its interval.
        let mut rec = shaped_records().swap_remove(1);
        rec[4] = 4;
        rec.extend_from_slice(&[18, 0, 16, 0, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0]);
        let size = rec.len() as u16;
        rec[2..4].copy_from_slice(&size.to_le_bytes());
        assert_eq!(decode_fast(&rec, 0), None);
        assert_eq!(decode(&rec).unwrap().sampling, 100);
    }

    #[test]
    fn aggregated_records_round_trip_through_the_general_walk() {
        for flows in [0, 70, u32::MAX] {
            let mut f = empty_flow();
            f.src = "10.0.0.1".parse().unwrap();
            f.flows = flows;
            f.input = 3;
            let mut buf = Vec::new();
            encode(&f, &mut buf);
            assert_eq!(decode_fast(&buf, 0), None, "not a fast shape");
            assert_eq!(decode(&buf), Ok(f));
        }
    }

    #[test]
    fn zero_length_element_is_an_error_not_a_loop() {
        let mut buf = Vec::new();
        encode(&empty_flow(), &mut buf);
        buf[HEADER_LEN + 2] = 0;
        buf[HEADER_LEN + 3] = 0;
        let e = decode(&buf).unwrap_err();
        assert_eq!(e.at, HEADER_LEN, "{}", e.msg);
    }
}
