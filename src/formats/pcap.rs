//! pcap and pcapng captures of exporter traffic: the UDP payloads that are NetFlow v5/v9/IPFIX export packets
//! become a [`NetflowDecoder`]. Ethernet (with 802.1Q/802.1ad tags), Linux cooked, BSD loopback and raw IP
//! link types; IPv4 and IPv6; any UDP port. Other traffic is counted and skipped.

use super::bytes::Endian;
use super::netflow::templates::TemplateCache;
use super::netflow::{is_export_packet, looks_like_export_packet, NetflowDecoder, Scan};
use super::{Bytes, FormatError};
use crate::record::Addr;

const PCAP_US: u32 = 0xA1B2_C3D4;
const PCAP_NS: u32 = 0xA1B2_3C4D;
const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_BOM: u32 = 0x1A2B_3C4D;

/// True when `b` starts with a pcap (either byte order, µs or ns) or pcapng magic.
pub fn is_capture(b: &[u8]) -> bool {
    if b.len() < 4 {
        return false;
    }
    let le = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let be = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    [le, be].iter().any(|&m| m == PCAP_US || m == PCAP_NS) || le == PCAPNG_SHB
}

/// Counts of what a capture held, for the report when it has no NetFlow.
#[derive(Default, Debug, Clone, Copy)]
pub struct CaptureStats {
    pub frames: u64,
    pub udp: u64,
    pub export_packets: u64,
    /// IP fragments skipped (a fragmented export packet cannot be read from one frame).
    pub fragments: u64,
}

/// Open a capture: scan every frame in order, registering templates in `cache`. A capture cut short is read up
/// to the cut, then the cut is an error; one with no export packets before a cut is refused with the cut.
pub fn open(bytes: Bytes, cache: &TemplateCache) -> Result<NetflowDecoder, FormatError> {
    let mut scan = Scan::new(cache);
    let mut stats = CaptureStats::default();
    let walked = walk((*bytes).as_ref(), &mut scan, &mut stats);
    if stats.fragments > 0 {
        scan.lost.fragments += stats.fragments;
        scan.warn(
            0,
            format!(
                "{} IP fragments skipped: an export packet split over several frames cannot be read",
                stats.fragments
            ),
        );
    }
    match walked {
        Err(e) if stats.export_packets == 0 => return Err(e),
        Err(e) => scan.tail_error = Some(e),
        Ok(()) if stats.export_packets == 0 => {
            return Err(FormatError::new(
                0,
                format!(
                    "capture holds {} frames ({} UDP datagrams) but no NetFlow v5/v9/IPFIX export packets; \
                     building flows from raw packets is not supported here (nfpcapd -r FILE -w DIR does that)",
                    stats.frames, stats.udp
                ),
            ))
        }
        Ok(()) => {}
    }
    Ok(NetflowDecoder::new(bytes, "pcap", scan))
}

/// Walk the frames of a pcap or pcapng capture, counting into `stats`; the error of a capture cut short.
pub fn walk(b: &[u8], scan: &mut Scan<'_>, stats: &mut CaptureStats) -> Result<(), FormatError> {
    if b.len() >= 4 && u32::from_le_bytes([b[0], b[1], b[2], b[3]]) == PCAPNG_SHB {
        walk_pcapng(b, scan, stats)
    } else {
        walk_pcap(b, scan, stats)
    }
}

fn walk_pcap(b: &[u8], scan: &mut Scan<'_>, stats: &mut CaptureStats) -> Result<(), FormatError> {
    if b.len() < 24 {
        return Err(FormatError::new(
            0,
            format!(
                "truncated pcap: {} bytes, expected a 24-byte file header",
                b.len()
            ),
        ));
    }
    let m = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    let e = if m == PCAP_US || m == PCAP_NS {
        Endian::Little
    } else if m.swap_bytes() == PCAP_US || m.swap_bytes() == PCAP_NS {
        Endian::Big
    } else {
        return Err(FormatError::new(
            0,
            format!("pcap magic expected a1b2c3d4 or a1b23c4d, found {m:08x}"),
        ));
    };
    let link = e.u32(b, 20).unwrap_or(0) & 0xffff;
    let mut at = 24;
    let mut n = 0u64;
    while at < b.len() {
        n += 1;
        if at + 16 > b.len() {
            return Err(FormatError::new(
                at as u64,
                format!(
                    "truncated pcap: record {n} header of {} bytes, expected 16",
                    b.len() - at
                ),
            ));
        }
        let caplen = e.u32(b, at + 8).unwrap_or(0) as usize;
        let data = at + 16;
        let Some(frame) = data.checked_add(caplen).and_then(|end| b.get(data..end)) else {
            return Err(FormatError::new(
                at as u64,
                format!(
                    "truncated pcap: record {n} holds {caplen} bytes, {} left in the file",
                    b.len() - data
                ),
            ));
        };
        frame_payload(frame, data, link, scan, stats);
        at = data + caplen;
    }
    Ok(())
}

fn walk_pcapng(b: &[u8], scan: &mut Scan<'_>, stats: &mut CaptureStats) -> Result<(), FormatError> {
    let mut e = Endian::Little;
    let mut links: Vec<u32> = Vec::new();
    let mut at = 0;
    while at < b.len() {
        if at + 12 > b.len() {
            return Err(FormatError::new(
                at as u64,
                format!(
                    "truncated pcapng: block header of {} bytes, expected 12",
                    b.len() - at
                ),
            ));
        }
        let btype = u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
        if btype == PCAPNG_SHB {
            let bom = u32::from_le_bytes([b[at + 8], b[at + 9], b[at + 10], b[at + 11]]);
            e = if bom == PCAPNG_BOM {
                Endian::Little
            } else if bom.swap_bytes() == PCAPNG_BOM {
                Endian::Big
            } else {
                return Err(FormatError::new(
                    at as u64 + 8,
                    format!("pcapng byte-order magic expected 1a2b3c4d, found {bom:08x}"),
                ));
            };
            links.clear(); // interface ids are per section
        }
        let btype = e.u32(b, at).unwrap_or(0);
        let blen = e.u32(b, at + 4).unwrap_or(0) as usize;
        if blen < 12 || !blen.is_multiple_of(4) {
            return Err(FormatError::new(
                at as u64 + 4,
                format!("pcapng block type {btype:#x}: length {blen}, expected a multiple of 4, at least 12"),
            ));
        }
        if blen > b.len() - at {
            return Err(FormatError::new(
                at as u64 + 4,
                format!(
                    "truncated pcapng: block type {btype:#x} of {blen} bytes, {} left in the file",
                    b.len() - at
                ),
            ));
        }
        let block = &b[at..at + blen];
        match btype {
            1 => links.push(e.u16(block, 8).unwrap_or(0) as u32),
            6 | 2 => {
                // Enhanced (6) and obsolete (2) packet blocks: interface, timestamps, captured length, data @28.
                let iface = if btype == 6 {
                    e.u32(block, 8).unwrap_or(u32::MAX) as usize
                } else {
                    e.u16(block, 8).unwrap_or(u16::MAX) as usize
                };
                let caplen = e.u32(block, 20).unwrap_or(0) as usize;
                match (
                    links.get(iface),
                    block.get(28..28usize.saturating_add(caplen)),
                ) {
                    (Some(&link), Some(frame)) if 28 + caplen <= blen - 4 => {
                        frame_payload(frame, at + 28, link, scan, stats)
                    }
                    _ => scan.warn(
                        at,
                        format!(
                            "pcapng packet block with interface {iface} or length {caplen} invalid"
                        ),
                    ),
                }
            }
            3 => {
                // Simple packet block: original length @8, data @12 up to the trailing length.
                if let Some(&link) = links.first() {
                    let orig = e.u32(block, 8).unwrap_or(0) as usize;
                    let n = orig.min(blen.saturating_sub(16));
                    if let Some(frame) = block.get(12..12 + n) {
                        frame_payload(frame, at + 12, link, scan, stats);
                    }
                }
            }
            _ => {}
        }
        at += blen;
    }
    Ok(())
}

/// Find the UDP payload in one frame and scan it when it is an export packet. `base` is the frame's offset.
fn frame_payload(
    frame: &[u8],
    base: usize,
    link: u32,
    scan: &mut Scan<'_>,
    stats: &mut CaptureStats,
) {
    stats.frames += 1;
    let Some((ip_at, ethertype)) = network_layer(frame, link) else {
        return;
    };
    let Some((exporter, udp_at)) = ip_udp(frame, ip_at, ethertype, stats) else {
        return;
    };
    let Some(udp) = frame.get(udp_at..udp_at + 8) else {
        return;
    };
    stats.udp += 1;
    let ulen = (u16::from_be_bytes([udp[4], udp[5]]) as usize).max(8);
    let end = (udp_at + ulen).min(frame.len());
    let payload = &frame[udp_at + 8..end.max(udp_at + 8)];
    if !is_export_packet(payload) {
        // A datagram the capture's snap length cut is an export packet read in part, not other traffic.
        if udp_at + ulen > frame.len() && looks_like_export_packet(payload) {
            stats.export_packets += 1;
            let _ = scan.payload(payload, base + udp_at + 8, exporter);
            scan.lost.bad_packets += 1;
            scan.warn(
                base,
                format!(
                    "export packet cut by the capture: {} of its {} bytes captured; read up to the cut",
                    payload.len(),
                    ulen - 8
                ),
            );
        }
        return;
    }
    stats.export_packets += 1;
    if let Err(e) = scan.payload(payload, base + udp_at + 8, exporter) {
        // One datagram cut by the snap length, or broken: its whole sets are read, the capture goes on.
        scan.lost.bad_packets += 1;
        scan.warn(
            e.offset as usize,
            format!("{}; rest of the datagram not read", e.message),
        );
    }
}

/// Offset of the network header and its ethertype for link type `link`.
fn network_layer(f: &[u8], link: u32) -> Option<(usize, u16)> {
    match link {
        1 => {
            let mut at = 12;
            let mut t = u16::from_be_bytes(f.get(at..at + 2)?.try_into().ok()?);
            while matches!(t, 0x8100 | 0x88a8 | 0x9100) {
                at += 4;
                t = u16::from_be_bytes(f.get(at..at + 2)?.try_into().ok()?);
            }
            Some((at + 2, t))
        }
        // Raw IP: the version nibble says which.
        101 | 12 | 14 | 228 | 229 => {
            let t = if f.first()? >> 4 == 6 { 0x86dd } else { 0x0800 };
            Some((0, t))
        }
        // BSD loopback: 4-byte address family in the capturing host's order (2 = IPv4, 24/28/30 = IPv6).
        0 | 108 => {
            let fam = u32::from_le_bytes(f.get(0..4)?.try_into().ok()?);
            let fam = if fam > 0xffff { fam.swap_bytes() } else { fam };
            Some((4, if fam == 2 { 0x0800 } else { 0x86dd }))
        }
        113 => Some((16, u16::from_be_bytes(f.get(14..16)?.try_into().ok()?))),
        276 => Some((20, u16::from_be_bytes(f.get(0..2)?.try_into().ok()?))),
        _ => None,
    }
}

/// Exporter address and UDP header offset, when the datagram is an unfragmented UDP packet.
fn ip_udp(f: &[u8], at: usize, ethertype: u16, stats: &mut CaptureStats) -> Option<(Addr, usize)> {
    match ethertype {
        0x0800 => {
            let h = f.get(at..at + 20)?;
            if h[0] >> 4 != 4 {
                return None;
            }
            let ihl = (h[0] & 0xf) as usize * 4;
            let frag = u16::from_be_bytes([h[6], h[7]]);
            if frag & 0x3fff != 0 {
                stats.fragments += 1;
                return None;
            }
            if h[9] != 17 || ihl < 20 {
                return None;
            }
            let src = u32::from_be_bytes([h[12], h[13], h[14], h[15]]);
            Some((Addr::v4(src), at + ihl))
        }
        0x86dd => {
            let h = f.get(at..at + 40)?;
            let mut src = [0u8; 16];
            src.copy_from_slice(&h[8..24]);
            let src = Addr::from(std::net::IpAddr::from(src));
            let mut next = h[6];
            let mut p = at + 40;
            loop {
                match next {
                    17 => return Some((src, p)),
                    0 | 43 | 60 => {
                        let e = f.get(p..p + 2)?;
                        next = e[0];
                        p += (e[1] as usize + 1) * 8;
                    }
                    44 => {
                        stats.fragments += 1;
                        return None;
                    }
                    _ => return None,
                }
            }
        }
        _ => None,
    }
}
