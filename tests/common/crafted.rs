//! Inputs built byte by byte for the hostile-input tests (tests/hostile.rs) and the reproducers they write into
//! fuzz/regressions: nfcapd files from the project's own writer, then damaged; NetFlow v9 and IPFIX packets; pcap
//! captures around them. Nothing here reads ../shared/data.
#![allow(dead_code)]

use flowsketch::formats::nfcapd::{Compression, NfcapdWriter};
use flowsketch::record::{Addr, FlowRecord};
use std::io::Cursor;

/// `n` distinct IPv4 TCP flows from 10.1.0.0/16 to 192.168.0.0/16, one per second from 2026-01-01.
pub fn flows(n: usize) -> Vec<FlowRecord> {
    (0..n)
        .map(|i| {
            let t = 1_767_225_600_000 + i as u64 * 1000;
            FlowRecord {
                src: Addr::v4(0x0a01_0000 | (i as u32 & 0xffff)),
                dst: Addr::v4(0xc0a8_0000 | ((i as u32 * 7) & 0xffff)),
                first_ms: t,
                last_ms: t + 10,
                packets: 1 + i as u64 % 5,
                bytes: 60 + i as u64,
                src_port: 1024 + i as u16,
                dst_port: 80,
                proto: 6,
                tcp_flags: 0x12,
                sampling: 1,
                ..FlowRecord::default()
            }
        })
        .collect()
}

/// An nfcapd file (layout 2) of `flows`, written by the project's writer.
pub fn nfcapd(flows: &[FlowRecord], c: Compression) -> Vec<u8> {
    let mut w = NfcapdWriter::new(Cursor::new(Vec::new()), c, "crafted").unwrap();
    for f in flows {
        w.write(f).unwrap();
    }
    w.finish().unwrap().into_inner()
}

/// Offsets of the data block headers of a layout-2 file (from its header's block count).
pub fn nfcapd_blocks(file: &[u8]) -> Vec<usize> {
    let n = u32::from_le_bytes(file[36..40].try_into().unwrap());
    let mut at = 40;
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(at);
        let size = u32::from_le_bytes(file[at + 4..at + 8].try_into().unwrap()) as usize;
        at += 12 + size;
    }
    out
}

/// An nfcapd file of `blocks` data blocks of `per_block` flows each (uncompressed): one block per writer flush
/// is too coarse, so the blocks are cut from separate files and joined under one header.
pub fn nfcapd_of_blocks(blocks: usize, per_block: usize) -> Vec<u8> {
    let all = flows(blocks * per_block);
    let mut file = nfcapd(&[], Compression::None)[..40].to_vec();
    for b in 0..blocks {
        let one = nfcapd(&all[b * per_block..(b + 1) * per_block], Compression::None);
        let at = nfcapd_blocks(&one)[0];
        let size = u32::from_le_bytes(one[at + 4..at + 8].try_into().unwrap()) as usize;
        file.extend_from_slice(&one[at..at + 12 + size]);
    }
    file[36..40].copy_from_slice(&(blocks as u32).to_le_bytes());
    // No appendix: 0 appendix blocks.
    file[18..20].copy_from_slice(&0u16.to_le_bytes());
    file[24..32].copy_from_slice(&0u64.to_le_bytes());
    file
}

/// `file` with `n` empty data blocks (no records, no bytes) inserted before its first block.
pub fn with_empty_blocks(file: &[u8], n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(file.len() + n * 12);
    out.extend_from_slice(&file[..40]);
    let empty = [0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0];
    for _ in 0..n {
        out.extend_from_slice(&empty);
    }
    out.extend_from_slice(&file[40..]);
    let blocks = u32::from_le_bytes(file[36..40].try_into().unwrap()) + n as u32;
    out[36..40].copy_from_slice(&blocks.to_le_bytes());
    let appendix = u64::from_le_bytes(file[24..32].try_into().unwrap());
    if appendix > 0 {
        out[24..32].copy_from_slice(&(appendix + 12 * n as u64).to_le_bytes());
    }
    out
}

/// A layout-1 (nfdump 1.6) file header and stat record with `flags`, and no blocks.
pub fn nfcapd_layout1_header(flags: u32) -> Vec<u8> {
    let mut f = vec![0u8; 140 + 136];
    f[0..2].copy_from_slice(&0xA50Cu16.to_le_bytes());
    f[2..4].copy_from_slice(&1u16.to_le_bytes());
    f[4..8].copy_from_slice(&flags.to_le_bytes());
    f
}

fn be16(v: u16) -> [u8; 2] {
    v.to_be_bytes()
}
fn be32(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

/// Fields of the templates below: src v4, dst v4, src port, dst port, protocol, packets, bytes (21 bytes).
pub const V4_FIELDS: &[(u16, u16)] = &[(8, 4), (12, 4), (7, 2), (11, 2), (4, 1), (2, 4), (1, 4)];

/// One record for [`V4_FIELDS`].
pub fn v4_record(i: u32) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&be32(0x0a02_0000 | i));
    r.extend_from_slice(&be32(0xc0a8_0101));
    r.extend_from_slice(&be16(40000));
    r.extend_from_slice(&be16(443));
    r.push(6);
    r.extend_from_slice(&be32(3));
    r.extend_from_slice(&be32(180));
    r
}

/// A set (v9 flowset or IPFIX set): id, length, body padded to 4 bytes.
pub fn set(id: u16, body: &[u8]) -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(&be16(id));
    let padded = body.len().div_ceil(4) * 4;
    s.extend_from_slice(&be16((4 + padded) as u16));
    s.extend_from_slice(body);
    s.resize(4 + padded, 0);
    s
}

/// A v9 template record: id, field count, (type, length) pairs.
pub fn v9_template(id: u16, fields: &[(u16, u16)]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&be16(id));
    t.extend_from_slice(&be16(fields.len() as u16));
    for (f, l) in fields {
        t.extend_from_slice(&be16(*f));
        t.extend_from_slice(&be16(*l));
    }
    t
}

/// A v9 export packet of `sets` from source id `source`, exported at 2026-01-01T00:00:00Z.
pub fn v9_packet(source: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let mut p = Vec::new();
    p.extend_from_slice(&be16(9));
    p.extend_from_slice(&be16(sets.len() as u16));
    p.extend_from_slice(&be32(3_600_000)); // sysUptime
    p.extend_from_slice(&be32(1_767_225_600));
    p.extend_from_slice(&be32(1)); // sequence
    p.extend_from_slice(&be32(source));
    for s in sets {
        p.extend_from_slice(s);
    }
    p
}

/// A v9 packet with template 256 of `fields` and a data flowset of `records`.
pub fn v9_with(fields: &[(u16, u16)], records: &[Vec<u8>]) -> Vec<u8> {
    v9_packet(
        1,
        &[
            set(0, &v9_template(256, fields)),
            set(256, &records.concat()),
        ],
    )
}

/// An IPFIX template record; a field with `Some(pen)` carries an enterprise number.
pub fn ipfix_template(id: u16, fields: &[(u16, u16, Option<u32>)]) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&be16(id));
    t.extend_from_slice(&be16(fields.len() as u16));
    for (f, l, pen) in fields {
        t.extend_from_slice(&be16(f | if pen.is_some() { 0x8000 } else { 0 }));
        t.extend_from_slice(&be16(*l));
        if let Some(p) = pen {
            t.extend_from_slice(&be32(*p));
        }
    }
    t
}

/// An IPFIX message of `sets` from observation domain `domain`.
pub fn ipfix_message(domain: u32, sets: &[Vec<u8>]) -> Vec<u8> {
    let body: Vec<u8> = sets.concat();
    let mut m = Vec::new();
    m.extend_from_slice(&be16(10));
    m.extend_from_slice(&be16((16 + body.len()) as u16));
    m.extend_from_slice(&be32(1_767_225_600));
    m.extend_from_slice(&be32(1));
    m.extend_from_slice(&be32(domain));
    m.extend_from_slice(&body);
    m
}

/// An Ethernet/IPv4/UDP frame carrying `payload` from 10.9.0.`src` to port 2055.
pub fn udp_frame(payload: &[u8], src: u8) -> Vec<u8> {
    let mut f = vec![0u8; 12];
    f.extend_from_slice(&be16(0x0800));
    let total = 20 + 8 + payload.len();
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&be16(total as u16));
    f.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&[10, 9, 0, src]);
    f.extend_from_slice(&[10, 9, 0, 1]);
    f.extend_from_slice(&be16(40000));
    f.extend_from_slice(&be16(2055));
    f.extend_from_slice(&be16((8 + payload.len()) as u16));
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// A pcap (microseconds, little-endian, Ethernet) of `frames`.
pub fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&65535u32.to_le_bytes());
    out.extend_from_slice(&1u32.to_le_bytes());
    for f in frames {
        out.extend_from_slice(&[0; 8]);
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(&(f.len() as u32).to_le_bytes());
        out.extend_from_slice(f);
    }
    out
}

/// A pcap of `frames` frames, each a v9 packet from its own exporter holding a flowset of as many one-field
/// templates as fit (about 8,000): a flood of templates and nothing else.
pub fn template_flood(frames: usize) -> Vec<u8> {
    let per_set = (65_000 - 20 - 4 - 28) / 8;
    let frames: Vec<Vec<u8>> = (0..frames)
        .map(|i| {
            let body: Vec<u8> = (0..per_set)
                .flat_map(|t| v9_template(256 + t as u16, &[(8, 4)]))
                .collect();
            udp_frame(&v9_packet(i as u32, &[set(0, &body)]), (i % 250) as u8)
        })
        .collect();
    pcap(&frames)
}

/// A flow-tools file (stream version 3, little-endian, export v5, uncompressed) of `n` records.
pub fn flowtools(n: usize) -> Vec<u8> {
    let mut tlv = Vec::new();
    for (t, v) in [
        (0x2u16, 5u16.to_le_bytes().to_vec()),
        (0x8, 0u32.to_le_bytes().to_vec()),
    ] {
        tlv.extend_from_slice(&t.to_le_bytes());
        tlv.extend_from_slice(&(v.len() as u16).to_le_bytes());
        tlv.extend_from_slice(&v);
    }
    let mut out = vec![0xCF, 0x10, 1, 3];
    out.extend_from_slice(&((8 + tlv.len()) as u32).to_le_bytes());
    out.extend_from_slice(&tlv);
    for i in 0..n as u32 {
        let mut r = [0u8; 64];
        r[0..4].copy_from_slice(&1_767_225_600u32.to_le_bytes());
        r[16..20].copy_from_slice(&(0x0a04_0000 | i).to_le_bytes());
        r[20..24].copy_from_slice(&0xc0a8_0001u32.to_le_bytes());
        r[32..36].copy_from_slice(&2u32.to_le_bytes());
        r[36..40].copy_from_slice(&120u32.to_le_bytes());
        r[50..52].copy_from_slice(&22u16.to_le_bytes());
        r[52] = 6;
        out.extend_from_slice(&r);
    }
    out
}
