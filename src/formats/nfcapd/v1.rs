//! Layout-1 flow records (nfdump 1.6): the CommonRecord (type 10) and the ExtensionMaps (type 2) that say which
//! optional extensions follow its fixed part. Converted to a [`FlowRecord`] as nfdump 1.7 converts them on read.

use super::records::Bad;
use super::v3::{empty_flow, ipv6_at};
use crate::formats::bytes::LE;
use crate::record::{Addr, FlowRecord};

pub const COMMON_RECORD_TYPE: u16 = 10;
pub const EXTENSION_MAP_TYPE: u16 = 2;
/// Fixed part of a CommonRecord, up to its variable data.
pub const COMMON_FIXED_LEN: usize = 32;

const FLAG_IPV6_ADDR: u8 = 0x1;
const FLAG_PKG_64: u8 = 0x2;
const FLAG_BYTES_64: u8 = 0x4;

/// Extension ids for interfaces: 2-byte or 4-byte input/output indexes.
const EX_IO_SNMP_2: u16 = 4;
const EX_IO_SNMP_4: u16 = 5;
/// Extension ids for the aggregated-flows counter, 4 or 8 bytes.
const EX_AGGR_FLOWS_4: u16 = 18;
const EX_AGGR_FLOWS_8: u16 = 19;

/// Bytes each nfdump 1.6 optional extension takes in a CommonRecord (nfdump 1.6 `nfx.c` extension table).
/// Ids 1..=3 are the required ones, stored in the fixed part; reserved ids take no space.
/// `None`: an id 1.6 does not define, after which the layout is unknown.
pub fn extension_size(id: u16) -> Option<usize> {
    Some(match id {
        1..=3 => 0,
        4 => 4,   // 2-byte input/output interface
        5 => 8,   // 4-byte input/output interface
        6 => 4,   // 2-byte src/dst AS
        7 => 8,   // 4-byte src/dst AS
        8 => 4,   // dst tos, direction, src/dst mask
        9 => 4,   // IPv4 next hop
        10 => 16, // IPv6 next hop
        11 => 4,  // IPv4 BGP next hop
        12 => 16, // IPv6 BGP next hop
        13 => 4,  // src/dst vlan
        14 => 4,  // 4-byte output packets
        15 => 8,  // 8-byte output packets
        16 => 4,  // 4-byte output bytes
        17 => 8,  // 8-byte output bytes
        18 => 4,  // 4-byte aggregated flows
        19 => 8,  // 8-byte aggregated flows
        20 => 16, // in src / out dst MAC
        21 => 16, // in dst / out src MAC
        22 => 40, // MPLS labels
        23 => 4,  // IPv4 router IP
        24 => 16, // IPv6 router IP
        25 => 4,  // router id (engine type/id)
        26 => 8,  // BGP adjacent prev/next AS
        27 => 8,  // time received
        28..=36 => 0,
        37 => 20, // NSEL common
        38 => 4,  // NSEL xlate ports
        39 => 8,  // NSEL xlate IPv4
        40 => 32, // NSEL xlate IPv6
        41 => 24, // NSEL ACL
        42 => 24, // NSEL user
        43 => 72, // NSEL max user
        44 => 0,
        45 => 24, // latency
        46 => 12, // NEL common
        47 => 0,
        48 => 8, // NAT port block allocation
        49 => 0,
        _ => return None,
    })
}

/// What this reader needs from an extension map: where the interfaces and the aggregated-flows counter are
/// among the optional extensions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ExtMap {
    pub id: u16,
    /// Offset of the interface extension from the end of the counters, and its width per index (2 or 4; 0 none).
    pub io_at: u16,
    pub io_width: u8,
    /// Offset of the aggregated-flows extension from the end of the counters, and its width (4 or 8; 0 none).
    pub flows_at: u16,
    pub flows_width: u8,
}

/// Parse an ExtensionMap record: map id u16 @4, extension size u16 @6, then u16 extension ids ending with 0.
pub fn parse_map(rec: &[u8]) -> Result<ExtMap, Bad> {
    if rec.len() < 8 {
        return Err(Bad::new(
            0,
            format!("extension map of {} bytes, expected at least 8", rec.len()),
        ));
    }
    let mut m = ExtMap {
        id: LE.u16(rec, 4).unwrap_or(0),
        ..ExtMap::default()
    };
    let mut offset = 0usize;
    let mut p = 8;
    while let Some(ex) = LE.u16(rec, p) {
        if ex == 0 {
            break;
        }
        match ex {
            EX_IO_SNMP_2 | EX_IO_SNMP_4 => {
                m.io_at = offset as u16;
                m.io_width = if ex == EX_IO_SNMP_2 { 2 } else { 4 };
            }
            EX_AGGR_FLOWS_4 | EX_AGGR_FLOWS_8 => {
                m.flows_at = offset as u16;
                m.flows_width = if ex == EX_AGGR_FLOWS_4 { 4 } else { 8 };
            }
            _ => {}
        }
        match extension_size(ex) {
            Some(n) => offset += n,
            // The layout after an unknown extension is unknown; what came before still stands.
            None => break,
        }
        p += 2;
    }
    Ok(m)
}

/// Decode a CommonRecord with its map. `None` when the map is not known: nfdump skips such records.
#[inline]
pub fn decode_common(
    rec: &[u8],
    lookup: &mut dyn FnMut(u16) -> Option<ExtMap>,
) -> Result<Option<FlowRecord>, Bad> {
    if rec.len() < COMMON_FIXED_LEN {
        return Err(Bad::new(
            0,
            format!(
                "common record of {} bytes, expected at least {COMMON_FIXED_LEN}",
                rec.len()
            ),
        ));
    }
    let u8_at = |at: usize| rec.get(at).copied().unwrap_or(0);
    let u16_at = |at: usize| LE.u16(rec, at).unwrap_or(0);
    let u32_at = |at: usize| LE.u32(rec, at).unwrap_or(0);
    let u64_at = |at: usize| LE.u64(rec, at).unwrap_or(0);
    let flags = u8_at(4);
    let v6 = flags & FLAG_IPV6_ADDR != 0;
    let pkt_len = if flags & FLAG_PKG_64 != 0 { 8 } else { 4 };
    let byte_len = if flags & FLAG_BYTES_64 != 0 { 8 } else { 4 };
    let addr_len = if v6 { 32 } else { 8 };
    let counters_end = COMMON_FIXED_LEN + addr_len + pkt_len + byte_len;
    if rec.len() < counters_end {
        return Err(Bad::new(
            0,
            format!(
                "common record of {} bytes, expected at least {counters_end} for its addresses and counters (flags 0x{flags:02x})",
                rec.len()
            ),
        ));
    }
    let Some(map) = lookup(u16_at(6)) else {
        return Ok(None);
    };
    let mut f = empty_flow();
    f.first_ms = u64::from(u32_at(12)) * 1000 + u64::from(u16_at(8));
    f.last_ms = u64::from(u32_at(16)) * 1000 + u64::from(u16_at(10));
    f.tcp_flags = u8_at(21);
    f.proto = u8_at(22);
    f.src_tos = u8_at(23);
    f.src_port = u16_at(24);
    f.dst_port = u16_at(26);
    f.exporter = u32::from(u16_at(28));
    let mut p = COMMON_FIXED_LEN;
    if v6 {
        f.src = Addr::v6(ipv6_at(rec, p));
        f.dst = Addr::v6(ipv6_at(rec, p + 16));
    } else {
        f.src = Addr::v4(u32_at(p));
        f.dst = Addr::v4(u32_at(p + 4));
    }
    p += addr_len;
    f.packets = if pkt_len == 8 {
        u64_at(p)
    } else {
        u64::from(u32_at(p))
    };
    p += pkt_len;
    f.bytes = if byte_len == 8 {
        u64_at(p)
    } else {
        u64::from(u32_at(p))
    };
    p += byte_len;
    let io = p + usize::from(map.io_at);
    match map.io_width {
        2 if io + 4 <= rec.len() => {
            f.input = u32::from(u16_at(io));
            f.output = u32::from(u16_at(io + 2));
        }
        4 if io + 8 <= rec.len() => {
            f.input = u32_at(io);
            f.output = u32_at(io + 4);
        }
        _ => {}
    }
    let fl = p + usize::from(map.flows_at);
    match map.flows_width {
        4 if fl + 4 <= rec.len() => f.flows = u32_at(fl),
        8 if fl + 8 <= rec.len() => f.flows = u32::try_from(u64_at(fl)).unwrap_or(u32::MAX),
        _ => {}
    }
    Ok(Some(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interface_offset_counts_the_extensions_before_it() {
        // map id 7, then AS_4 (8 bytes), MULTIPLE (4), IO_SNMP_2, terminator
        let mut rec = vec![2, 0, 18, 0, 7, 0, 0, 0];
        for ex in [7u16, 8, 4, 0] {
            rec.extend_from_slice(&ex.to_le_bytes());
        }
        let m = parse_map(&rec).unwrap();
        assert_eq!((m.id, m.io_at, m.io_width), (7, 12, 2));
    }

    #[test]
    fn unknown_extension_stops_the_layout_but_not_the_map() {
        let mut rec = vec![2, 0, 16, 0, 1, 0, 0, 0];
        for ex in [999u16, 5, 0] {
            rec.extend_from_slice(&ex.to_le_bytes());
        }
        let m = parse_map(&rec).unwrap();
        assert_eq!(m.io_width, 0);
    }

    #[test]
    fn aggregated_flows_counter_is_read_where_the_map_puts_it() {
        // map id 3: AS_2 (4 bytes), AGGR_FLOWS_4, terminator
        let mut map = vec![2, 0, 14, 0, 3, 0, 0, 0];
        for ex in [6u16, 18, 0] {
            map.extend_from_slice(&ex.to_le_bytes());
        }
        let m = parse_map(&map).unwrap();
        assert_eq!((m.flows_at, m.flows_width), (4, 4));
        // IPv4, 32-bit counters: fixed part, addresses, packets, bytes, then AS (4) and flows (4).
        let mut rec = vec![0u8; COMMON_FIXED_LEN + 16 + 8];
        let len = rec.len() as u16;
        rec[0..2].copy_from_slice(&COMMON_RECORD_TYPE.to_le_bytes());
        rec[2..4].copy_from_slice(&len.to_le_bytes());
        rec[6..8].copy_from_slice(&3u16.to_le_bytes());
        rec[COMMON_FIXED_LEN + 20..].copy_from_slice(&70u32.to_le_bytes());
        let f = decode_common(&rec, &mut |_| Some(m)).unwrap().unwrap();
        assert_eq!(f.flows, 70);
    }
}
