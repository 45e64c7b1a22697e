//! Writers, in test code, for the formats flowsketch reads but does not write: flow-tools files, NetFlow v5/v9 and
//! IPFIX export packets, pcap and pcapng captures of those packets, and CSV as nfdump and flow-export print it.
//! With them (and the library's nfcapd writer) every reader is tested on a fresh clone, without ../shared/data.
//!
//! Layouts follow docs/FORMATS.md and the notes on the formats; the tests check them against independent readers:
//! the real flow-tools files (same header bytes, same record fields, same decoded flows), the `netflow_parser`
//! crate, and the real nfdump's CSV.

use flowsketch::record::{proto, FlowRecord};
use std::io::Write;
use std::net::IpAddr;

/// Milliseconds an exporter has been up before the earliest flow of a packet or file (an hour, as flow-import).
const UPTIME_BEFORE_MS: u64 = 3_600_000;

/// The clock a NetFlow-style packet or record states its times against: the export time and the exporter's
/// uptime then. Flow times are sent as uptime-relative offsets from `export_ms - uptime_ms` (the boot time).
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    pub export_ms: u64,
    pub uptime_ms: u64,
}

impl Clock {
    /// A clock that can state every time of `flows`: booted an hour before the earliest (less when the flows
    /// span nearly 49 days, the most 32-bit offsets hold), exported a second after the last end (earlier when
    /// that would not fit: real exporters send times past their export time too), in whole seconds when
    /// `whole_seconds` (v9 headers have no sub-second field).
    pub fn for_flows(flows: &[FlowRecord], whole_seconds: bool) -> Clock {
        let earliest = flows
            .iter()
            .map(|f| f.first_ms.min(f.last_ms))
            .min()
            .unwrap_or(0);
        let latest = flows
            .iter()
            .map(|f| f.first_ms.max(f.last_ms))
            .max()
            .unwrap_or(0);
        let max = u32::MAX as u64;
        assert!(latest - earliest <= max, "flows span more than 49 days");
        let boot = earliest
            - UPTIME_BEFORE_MS
                .min(max - (latest - earliest))
                .min(earliest);
        let mut export_ms = (latest + 1000).min(boot + max);
        if whole_seconds {
            export_ms -= export_ms % 1000;
        }
        Clock {
            export_ms,
            uptime_ms: export_ms - boot,
        }
    }

    /// `ms` as an offset from boot, as v5 First/Last and v9 FIRST_SWITCHED carry it.
    pub fn relative(&self, ms: u64) -> u32 {
        let boot = self.export_ms - self.uptime_ms;
        u32::try_from(ms - boot).expect("time fits the clock")
    }

    pub fn secs(&self) -> u32 {
        (self.export_ms / 1000) as u32
    }

    pub fn nsecs(&self) -> u32 {
        (self.export_ms % 1000) as u32 * 1_000_000
    }
}

fn v4(a: flowsketch::record::Addr, what: &str) -> u32 {
    a.as_v4()
        .unwrap_or_else(|| panic!("{what} {a}: this format holds IPv4 only"))
}

fn u32_of(v: u64, what: &str) -> u32 {
    u32::try_from(v).unwrap_or_else(|_| panic!("{what} {v} does not fit 32 bits"))
}

fn u16_of(v: u32, what: &str) -> u16 {
    u16::try_from(v).unwrap_or_else(|_| panic!("{what} {v} does not fit 16 bits"))
}

// ---- flow-tools ----

/// Byte order of a flow-tools file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    Little,
    Big,
}

impl Order {
    fn u16(self, v: u16) -> [u8; 2] {
        match self {
            Order::Little => v.to_le_bytes(),
            Order::Big => v.to_be_bytes(),
        }
    }
    fn u32(self, v: u32) -> [u8; 4] {
        match self {
            Order::Little => v.to_le_bytes(),
            Order::Big => v.to_be_bytes(),
        }
    }
}

/// A flow-tools stream version 3 file of NetFlow v5 records, as `flow-import -V5` and `flow-capture` write it.
#[derive(Clone, Copy, Debug)]
pub struct FlowTools {
    pub order: Order,
    /// The body as one zlib stream (header flag 0x2).
    pub zlib: bool,
    /// Write the flow count TLV (0xA), which flow-capture writes and flow-import does not.
    pub count: bool,
    /// The hostname and comments TLVs (0xF, 0x10), as flow-import writes them ("flow-import").
    pub names: Option<&'static str>,
}

impl FlowTools {
    /// What flow-import 0.68.5 writes: no count, hostname and comments "flow-import".
    pub fn like_flow_import(order: Order, zlib: bool) -> FlowTools {
        FlowTools {
            order,
            zlib,
            count: false,
            names: Some("flow-import"),
        }
    }

    /// The header: magic, byte order, stream version 3, header length, then TLVs in the file's byte order.
    pub fn header(&self, flows: usize) -> Vec<u8> {
        let o = self.order;
        let mut tlvs = Vec::new();
        let mut tlv = |t: u16, v: &[u8]| {
            tlvs.extend_from_slice(&o.u16(t));
            tlvs.extend_from_slice(&o.u16(v.len() as u16));
            tlvs.extend_from_slice(v);
        };
        tlv(0x2, &o.u16(5));
        // 0x8 streaming, 0x2 compressed.
        tlv(0x8, &o.u32(0x8 | if self.zlib { 0x2 } else { 0 }));
        if self.count {
            tlv(0xA, &o.u32(flows as u32));
        }
        if let Some(n) = self.names {
            let mut s = n.as_bytes().to_vec();
            s.push(0);
            tlv(0xF, &s);
            tlv(0x10, &s);
        }
        // flow-tools pads the header with zeros to a 4-byte boundary: the real files hold 54 bytes of header and
        // TLVs and say 56.
        let len = (8 + tlvs.len()).next_multiple_of(4);
        let order_byte = if o == Order::Little { 1 } else { 2 };
        let mut h = vec![0xCF, 0x10, order_byte, 3];
        h.extend_from_slice(&o.u32(len as u32));
        h.extend_from_slice(&tlvs);
        h.resize(len, 0);
        h
    }

    /// One 64-byte v5 record. The times are stated against a clock of the flow's own (export a second after its
    /// end), so they come back to the millisecond; fields flowsketch does not read (next hop, engine, masks, AS)
    /// are 0.
    pub fn record(&self, f: &FlowRecord) -> [u8; 64] {
        let o = self.order;
        let c = Clock::for_flows(std::slice::from_ref(f), false);
        let mut r = [0u8; 64];
        r[0..4].copy_from_slice(&o.u32(c.secs()));
        r[4..8].copy_from_slice(&o.u32(c.nsecs()));
        r[8..12].copy_from_slice(&o.u32(c.uptime_ms as u32));
        r[12..16].copy_from_slice(&o.u32(f.exporter));
        r[16..20].copy_from_slice(&o.u32(v4(f.src, "source")));
        r[20..24].copy_from_slice(&o.u32(v4(f.dst, "destination")));
        r[28..30].copy_from_slice(&o.u16(u16_of(f.input, "input")));
        r[30..32].copy_from_slice(&o.u16(u16_of(f.output, "output")));
        r[32..36].copy_from_slice(&o.u32(u32_of(f.packets, "packets")));
        r[36..40].copy_from_slice(&o.u32(u32_of(f.bytes, "bytes")));
        r[40..44].copy_from_slice(&o.u32(c.relative(f.first_ms)));
        r[44..48].copy_from_slice(&o.u32(c.relative(f.last_ms)));
        r[48..50].copy_from_slice(&o.u16(f.src_port));
        r[50..52].copy_from_slice(&o.u16(f.dst_port));
        r[52] = f.proto;
        r[53] = f.src_tos;
        r[54] = f.tcp_flags;
        r
    }

    /// The whole file.
    pub fn write(&self, flows: &[FlowRecord]) -> Vec<u8> {
        let mut body = Vec::with_capacity(flows.len() * 64);
        for f in flows {
            body.extend_from_slice(&self.record(f));
        }
        let mut out = self.header(flows.len());
        if self.zlib {
            let mut z = flate2::write::ZlibEncoder::new(out, flate2::Compression::default());
            z.write_all(&body).unwrap();
            out = z.finish().unwrap();
        } else {
            out.extend_from_slice(&body);
        }
        out
    }
}

// ---- NetFlow v5 ----

/// NetFlow v5 export packets: a 24-byte header and up to 30 48-byte records each.
#[derive(Clone, Copy, Debug)]
pub struct V5 {
    pub engine_type: u8,
    pub engine_id: u8,
    /// The header's sampling field (mode in the top two bits, interval below).
    pub sampling: u16,
    pub per_packet: usize,
}

impl Default for V5 {
    fn default() -> Self {
        V5 {
            engine_type: 1,
            engine_id: 7,
            sampling: 0,
            per_packet: 30,
        }
    }
}

impl V5 {
    pub fn packets(&self, flows: &[FlowRecord]) -> Vec<Vec<u8>> {
        assert!((1..=30).contains(&self.per_packet));
        let mut seq = 0u32;
        flows
            .chunks(self.per_packet)
            .map(|part| {
                let c = Clock::for_flows(part, false);
                let mut p = Vec::with_capacity(24 + 48 * part.len());
                p.extend_from_slice(&5u16.to_be_bytes());
                p.extend_from_slice(&(part.len() as u16).to_be_bytes());
                p.extend_from_slice(&(c.uptime_ms as u32).to_be_bytes());
                p.extend_from_slice(&c.secs().to_be_bytes());
                p.extend_from_slice(&c.nsecs().to_be_bytes());
                p.extend_from_slice(&seq.to_be_bytes());
                p.extend_from_slice(&[self.engine_type, self.engine_id]);
                p.extend_from_slice(&self.sampling.to_be_bytes());
                for f in part {
                    p.extend_from_slice(&v4(f.src, "source").to_be_bytes());
                    p.extend_from_slice(&v4(f.dst, "destination").to_be_bytes());
                    p.extend_from_slice(&[0; 4]); // next hop
                    p.extend_from_slice(&u16_of(f.input, "input").to_be_bytes());
                    p.extend_from_slice(&u16_of(f.output, "output").to_be_bytes());
                    p.extend_from_slice(&u32_of(f.packets, "packets").to_be_bytes());
                    p.extend_from_slice(&u32_of(f.bytes, "bytes").to_be_bytes());
                    p.extend_from_slice(&c.relative(f.first_ms).to_be_bytes());
                    p.extend_from_slice(&c.relative(f.last_ms).to_be_bytes());
                    p.extend_from_slice(&f.src_port.to_be_bytes());
                    p.extend_from_slice(&f.dst_port.to_be_bytes());
                    p.extend_from_slice(&[0, f.tcp_flags, f.proto, f.src_tos]);
                    p.extend_from_slice(&[0; 8]); // AS numbers, masks, padding
                }
                seq += part.len() as u32;
                p
            })
            .collect()
    }
}

// ---- NetFlow v9 and IPFIX ----

/// One field of a template: IANA id (v9 shares the ids below 128), length on the wire (65535: IPFIX
/// variable-length), enterprise number (IPFIX; 0 for IANA).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    pub id: u16,
    pub len: u16,
    pub enterprise: u32,
}

pub const fn field(id: u16, len: u16) -> Field {
    Field {
        id,
        len,
        enterprise: 0,
    }
}

/// IANA information elements written below.
pub mod ie {
    pub const OCTETS: u16 = 1;
    pub const PACKETS: u16 = 2;
    pub const PROTO: u16 = 4;
    pub const TOS: u16 = 5;
    pub const TCP_FLAGS: u16 = 6;
    pub const SRC_PORT: u16 = 7;
    pub const SRC_V4: u16 = 8;
    pub const INPUT: u16 = 10;
    pub const DST_PORT: u16 = 11;
    pub const DST_V4: u16 = 12;
    pub const OUTPUT: u16 = 14;
    pub const LAST_SWITCHED: u16 = 21;
    pub const FIRST_SWITCHED: u16 = 22;
    pub const SRC_V6: u16 = 27;
    pub const DST_V6: u16 = 28;
    pub const ICMP_TYPE_CODE: u16 = 32;
    pub const INTERFACE_NAME: u16 = 82;
    pub const START_MILLIS: u16 = 152;
    pub const END_MILLIS: u16 = 153;
}

/// The bytes of `f` for one field, big-endian, cut to the field's length (reduced-size encoding).
fn field_value(f: &FlowRecord, fl: Field, c: &Clock) -> Vec<u8> {
    let int = |v: u64| -> Vec<u8> {
        let n = fl.len as usize;
        assert!(n <= 8, "integer field {} of {n} bytes", fl.id);
        assert!(
            n == 8 || v >> (8 * n) == 0,
            "field {} value {v} does not fit {n} bytes",
            fl.id
        );
        v.to_be_bytes()[8 - n..].to_vec()
    };
    if fl.enterprise != 0 {
        return vec![0xEE; fl.len as usize];
    }
    match fl.id {
        ie::OCTETS => int(f.bytes),
        ie::PACKETS => int(f.packets),
        ie::PROTO => int(f.proto.into()),
        ie::TOS => int(f.src_tos.into()),
        ie::TCP_FLAGS => int(f.tcp_flags.into()),
        ie::SRC_PORT => int(f.src_port.into()),
        ie::DST_PORT => int(f.dst_port.into()),
        ie::INPUT => int(f.input.into()),
        ie::OUTPUT => int(f.output.into()),
        ie::SRC_V4 => v4(f.src, "source").to_be_bytes().to_vec(),
        ie::DST_V4 => v4(f.dst, "destination").to_be_bytes().to_vec(),
        ie::SRC_V6 => f.src.0.to_be_bytes().to_vec(),
        ie::DST_V6 => f.dst.0.to_be_bytes().to_vec(),
        ie::FIRST_SWITCHED => int(c.relative(f.first_ms).into()),
        ie::LAST_SWITCHED => int(c.relative(f.last_ms).into()),
        ie::START_MILLIS => int(f.first_ms),
        ie::END_MILLIS => int(f.last_ms),
        ie::ICMP_TYPE_CODE => {
            let icmp = matches!(f.proto, proto::ICMP | proto::ICMP6);
            int(if icmp { f.dst_port.into() } else { 0 })
        }
        // A field flowsketch does not read (an interface name): its bytes only have to be skipped.
        _ => vec![b'x'; if fl.len == 0xFFFF { 5 } else { fl.len as usize }],
    }
}

/// A v9 or IPFIX exporter with one template for IPv4 flows and one for IPv6 flows.
#[derive(Clone, Debug)]
pub struct Exporter {
    /// 9 or 10.
    pub version: u16,
    /// v9 source id / IPFIX observation domain.
    pub domain: u32,
    pub v4_id: u16,
    pub v4: Vec<Field>,
    pub v6_id: u16,
    pub v6: Vec<Field>,
    /// Data records per packet.
    pub per_packet: usize,
    /// Also send an options template (id 258) and one options record per packet, which readers skip.
    pub options: bool,
}

impl Exporter {
    /// A v9 exporter: uptime-relative times, reduced-size interfaces and packet counts, ICMP type/code field.
    pub fn v9(domain: u32) -> Exporter {
        use ie::*;
        let common = [
            field(SRC_PORT, 2),
            field(DST_PORT, 2),
            field(PROTO, 1),
            field(TCP_FLAGS, 1),
            field(TOS, 1),
            field(PACKETS, 4),
            field(OCTETS, 8),
            field(FIRST_SWITCHED, 4),
            field(LAST_SWITCHED, 4),
            field(ICMP_TYPE_CODE, 2),
        ];
        let mut v4 = vec![
            field(SRC_V4, 4),
            field(DST_V4, 4),
            field(INPUT, 2),
            field(OUTPUT, 2),
        ];
        v4.extend_from_slice(&common);
        let mut v6 = vec![
            field(SRC_V6, 16),
            field(DST_V6, 16),
            field(INPUT, 4),
            field(OUTPUT, 4),
        ];
        v6.extend_from_slice(&common);
        Exporter {
            version: 9,
            domain,
            v4_id: 256,
            v4,
            v6_id: 257,
            v6,
            per_packet: 20,
            options: false,
        }
    }

    /// An IPFIX exporter: absolute millisecond times, a variable-length interface name and an enterprise field.
    pub fn ipfix(domain: u32) -> Exporter {
        use ie::*;
        let common = [
            field(SRC_PORT, 2),
            field(DST_PORT, 2),
            field(PROTO, 1),
            field(TCP_FLAGS, 1),
            field(TOS, 1),
            field(INPUT, 4),
            field(OUTPUT, 4),
            field(PACKETS, 8),
            field(OCTETS, 8),
            field(START_MILLIS, 8),
            field(END_MILLIS, 8),
            field(INTERFACE_NAME, 0xFFFF),
            Field {
                id: 100,
                len: 4,
                enterprise: 9,
            },
        ];
        let mut v4 = vec![field(SRC_V4, 4), field(DST_V4, 4)];
        v4.extend_from_slice(&common);
        let mut v6 = vec![field(SRC_V6, 16), field(DST_V6, 16)];
        v6.extend_from_slice(&common);
        Exporter {
            version: 10,
            domain,
            v4_id: 300,
            v4,
            v6_id: 301,
            v6,
            per_packet: 20,
            options: false,
        }
    }

    fn set_ids(&self) -> (u16, u16) {
        if self.version == 9 {
            (0, 1)
        } else {
            (2, 3)
        }
    }

    fn template_record(&self, id: u16, fields: &[Field]) -> Vec<u8> {
        let mut t = Vec::new();
        t.extend_from_slice(&id.to_be_bytes());
        t.extend_from_slice(&(fields.len() as u16).to_be_bytes());
        for f in fields {
            let e_bit = if f.enterprise != 0 { 0x8000 } else { 0 };
            assert!(
                self.version == 10 || e_bit == 0,
                "v9 has no enterprise fields"
            );
            t.extend_from_slice(&(f.id | e_bit).to_be_bytes());
            t.extend_from_slice(&f.len.to_be_bytes());
            if f.enterprise != 0 {
                t.extend_from_slice(&f.enterprise.to_be_bytes());
            }
        }
        t
    }

    /// The template set (both templates) and, with `options`, the options template set. Each as `(set, records)`.
    fn template_sets(&self) -> Vec<(Vec<u8>, u16)> {
        let (tpl, opt) = self.set_ids();
        let mut body = self.template_record(self.v4_id, &self.v4);
        body.extend(self.template_record(self.v6_id, &self.v6));
        let mut sets = vec![(set(tpl, &body), 2)];
        if self.options {
            // Options template 258: scope "system" (v9 scope type 1, length 4) / IPFIX scope field 149
            // (observationDomainId), then one option field: total flows exported (id 42, 8 bytes).
            let mut o = Vec::new();
            o.extend_from_slice(&258u16.to_be_bytes());
            if self.version == 9 {
                o.extend_from_slice(&4u16.to_be_bytes()); // scope length in bytes
                o.extend_from_slice(&4u16.to_be_bytes()); // option length in bytes
                o.extend_from_slice(&[0, 1, 0, 4, 0, 42, 0, 8]);
            } else {
                o.extend_from_slice(&2u16.to_be_bytes()); // field count
                o.extend_from_slice(&1u16.to_be_bytes()); // scope field count
                o.extend_from_slice(&[0, 149, 0, 4, 0, 42, 0, 8]);
            }
            sets.push((set(opt, &o), 1));
        }
        sets
    }

    fn record(&self, f: &FlowRecord, fields: &[Field], c: &Clock, out: &mut Vec<u8>) {
        for fl in fields {
            let v = field_value(f, *fl, c);
            if fl.len == 0xFFFF {
                out.push(v.len() as u8);
            }
            out.extend_from_slice(&v);
        }
    }

    /// A packet (v9) or message (IPFIX) holding `sets`, which carry `records` records in all.
    fn packet(&self, sets: &[Vec<u8>], records: u16, c: &Clock, seq: u32) -> Vec<u8> {
        let body: Vec<u8> = sets.concat();
        let mut p = Vec::new();
        p.extend_from_slice(&self.version.to_be_bytes());
        if self.version == 9 {
            p.extend_from_slice(&records.to_be_bytes());
            p.extend_from_slice(&(c.uptime_ms as u32).to_be_bytes());
            p.extend_from_slice(&c.secs().to_be_bytes());
        } else {
            p.extend_from_slice(&((16 + body.len()) as u16).to_be_bytes());
            p.extend_from_slice(&c.secs().to_be_bytes());
        }
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&self.domain.to_be_bytes());
        p.extend_from_slice(&body);
        p
    }

    /// A packet with the templates only, as exporters send them apart from the data.
    pub fn template_packet(&self) -> Vec<u8> {
        let sets = self.template_sets();
        let n = sets.iter().map(|s| s.1).sum();
        let sets: Vec<Vec<u8>> = sets.into_iter().map(|s| s.0).collect();
        let c = Clock {
            export_ms: 1_700_000_000_000,
            uptime_ms: UPTIME_BEFORE_MS,
        };
        self.packet(&sets, n, &c, 0)
    }

    /// Packets of data sets only (the templates must have been sent before).
    pub fn data_packets(&self, flows: &[FlowRecord]) -> Vec<Vec<u8>> {
        self.packets(flows, false)
    }

    /// Packets each carrying the templates and then their data, as many exporters send them.
    pub fn packets_with_templates(&self, flows: &[FlowRecord]) -> Vec<Vec<u8>> {
        self.packets(flows, true)
    }

    fn packets(&self, flows: &[FlowRecord], templates: bool) -> Vec<Vec<u8>> {
        let mut seq = 0u32;
        flows
            .chunks(self.per_packet)
            .map(|part| {
                // v9 carries the export time in whole seconds only.
                let c = Clock::for_flows(part, self.version == 9);
                let mut sets = Vec::new();
                let mut records = 0u16;
                if templates {
                    for (s, n) in self.template_sets() {
                        sets.push(s);
                        records += n;
                    }
                }
                let (mut v4, mut v6) = (Vec::new(), Vec::new());
                for f in part {
                    if f.src.is_v4() && f.dst.is_v4() {
                        self.record(f, &self.v4, &c, &mut v4);
                    } else {
                        self.record(f, &self.v6, &c, &mut v6);
                    }
                    records += 1;
                }
                for (id, body) in [(self.v4_id, v4), (self.v6_id, v6)] {
                    if !body.is_empty() {
                        sets.push(set(id, &body));
                    }
                }
                if self.options {
                    let mut o = self.domain.to_be_bytes().to_vec();
                    o.extend_from_slice(&(flows.len() as u64).to_be_bytes());
                    sets.push(set(258, &o));
                    records += 1;
                }
                let p = self.packet(&sets, records, &c, seq);
                seq += 1;
                p
            })
            .collect()
    }
}

/// A v9 flowset or IPFIX set: id, length, body padded to 4 bytes.
fn set(id: u16, body: &[u8]) -> Vec<u8> {
    let pad = (4 - body.len() % 4) % 4;
    let mut s = Vec::with_capacity(4 + body.len() + pad);
    s.extend_from_slice(&id.to_be_bytes());
    s.extend_from_slice(&((4 + body.len() + pad) as u16).to_be_bytes());
    s.extend_from_slice(body);
    s.resize(s.len() + pad, 0);
    s
}

// ---- pcap and pcapng ----

/// A UDP datagram from `exporter` (port 2055 to 9995) in an IPv4 or IPv6 Ethernet frame, VLAN-tagged on request.
pub fn udp_frame(payload: &[u8], exporter: IpAddr, vlan: bool) -> Vec<u8> {
    let mut f = vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    if vlan {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
    }
    let udp_len = 8 + payload.len();
    let mut udp = Vec::with_capacity(udp_len);
    udp.extend_from_slice(&2055u16.to_be_bytes());
    udp.extend_from_slice(&9995u16.to_be_bytes());
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]); // no checksum
    udp.extend_from_slice(payload);
    match exporter {
        IpAddr::V4(a) => {
            f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
            f.extend_from_slice(&((20 + udp_len) as u16).to_be_bytes());
            // id, don't fragment, TTL 64, UDP, no checksum, source, destination 10.0.0.1.
            f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
            f.extend_from_slice(&a.octets());
            f.extend_from_slice(&[10, 0, 0, 1]);
        }
        IpAddr::V6(a) => {
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            f.extend_from_slice(&(udp_len as u16).to_be_bytes());
            f.extend_from_slice(&[17, 64]);
            f.extend_from_slice(&a.octets());
            f.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        }
    }
    f.extend_from_slice(&udp);
    f
}

/// A TCP segment in an IPv4 Ethernet frame: traffic a capture of exporters may also hold, and must skip.
pub fn tcp_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00, 0x45, 0];
    f.extend_from_slice(&((40 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 9, 10, 0, 0, 1]);
    f.extend_from_slice(&[
        0x01, 0xbb, 0xc0, 0x00, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    f.extend_from_slice(payload);
    f
}

/// A classic pcap file of Ethernet frames, in either byte order, with micro- or nanosecond timestamps.
pub fn pcap(frames: &[Vec<u8>], big_endian: bool, nanos: bool) -> Vec<u8> {
    let p32 = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let p16 = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = Vec::new();
    out.extend_from_slice(&p32(if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
    out.extend_from_slice(&p16(2));
    out.extend_from_slice(&p16(4));
    out.extend_from_slice(&[0; 8]); // time zone, accuracy
    out.extend_from_slice(&p32(65535)); // snap length
    out.extend_from_slice(&p32(1)); // Ethernet
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&p32(1_700_000_000 + i as u32));
        out.extend_from_slice(&p32(0));
        out.extend_from_slice(&p32(f.len() as u32));
        out.extend_from_slice(&p32(f.len() as u32));
        out.extend_from_slice(f);
    }
    out
}

/// A little-endian pcapng file: section header, one Ethernet interface, an enhanced packet block per frame.
pub fn pcapng(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    let block = |out: &mut Vec<u8>, t: u32, body: &[u8]| {
        let pad = (4 - body.len() % 4) % 4;
        let len = (12 + body.len() + pad) as u32;
        out.extend_from_slice(&t.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(body);
        out.resize(out.len() + pad, 0);
        out.extend_from_slice(&len.to_le_bytes());
    };
    let mut shb = 0x1a2b_3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]); // version 1.0
    shb.extend_from_slice(&(-1i64).to_le_bytes()); // section length unknown
    block(&mut out, 0x0a0d_0d0a, &shb);
    block(&mut out, 1, &[1, 0, 0, 0, 0xff, 0xff, 0, 0]); // Ethernet, snap length 65535
    for f in frames {
        let mut epb = vec![0u8; 12]; // interface 0, timestamp 0
        epb.extend_from_slice(&(f.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(f.len() as u32).to_le_bytes());
        epb.extend_from_slice(f);
        block(&mut out, 6, &epb);
    }
    out
}

// ---- CSV ----

/// `YYYY-MM-DD HH:MM:SS` in UTC, as `TZ=UTC nfdump -o csv` prints times (to the second).
pub fn utc_seconds(ms: u64) -> String {
    // flowsketch's report time is ISO 8601 with milliseconds; nfdump's is the same date and time to the second.
    let iso = flowsketch::report::time::iso8601_ms(ms);
    format!("{} {}", &iso[..10], &iso[11..19])
}

/// nfdump's name for a protocol in its CSV, or the number.
fn proto_name(p: u8) -> String {
    match p {
        1 => "ICMP".into(),
        6 => "TCP".into(),
        17 => "UDP".into(),
        47 => "GRE".into(),
        50 => "ESP".into(),
        58 => "ICMP6".into(),
        n => n.to_string(),
    }
}

/// TCP flags as nfdump prints them: `CEUAPRSF`, a dot for a clear bit.
pub fn flag_letters(flags: u8) -> String {
    b"CEUAPRSF"
        .iter()
        .enumerate()
        .map(|(i, &c)| {
            if flags & (0x80 >> i) != 0 {
                c as char
            } else {
                '.'
            }
        })
        .collect()
}

/// The header line of nfdump 1.7.1's `-o csv`.
pub const NFDUMP_CSV_HEADER: &str = "ts,te,td,sa,da,sp,dp,pr,flg,fwd,stos,ipkt,ibyt,opkt,obyt,in,out,sas,das,smk,dmk,\
dtos,dir,nh,nhb,svln,dvln,ismc,odmc,idmc,osmc,mpls1,mpls2,mpls3,mpls4,mpls5,mpls6,mpls7,mpls8,mpls9,mpls10,cl,sl,al,\
ra,eng,exid,tr";

/// Flows as `TZ=UTC nfdump -r FILE -o csv` prints them: the header, one line per flow (times to the second; the
/// columns flowsketch does not read hold what nfdump prints for a flow without them), and the summary block.
pub fn csv_as_nfdump(flows: &[FlowRecord]) -> String {
    let mut s = String::from(NFDUMP_CSV_HEADER);
    s.push('\n');
    for f in flows {
        let td = f.last_ms.wrapping_sub(f.first_ms) as f64 / 1000.0;
        s += &format!(
            "{},{},{td:.3},{},{},{},{},{},{},0,{},{},{},0,0,{},{},0,0,0,0,0,0,0.0.0.0,0.0.0.0,0,0,\
             00:00:00:00:00:00,00:00:00:00:00:00,00:00:00:00:00:00,00:00:00:00:00:00,\
             0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,0-0-0,    0.000,    0.000,    0.000,\
             0.0.0.0,0/0,{},{}.000\n",
            utc_seconds(f.first_ms),
            utc_seconds(f.last_ms),
            f.src,
            f.dst,
            f.src_port,
            f.dst_port,
            proto_name(f.proto),
            flag_letters(f.tcp_flags),
            f.src_tos,
            f.packets,
            f.bytes,
            f.input,
            f.output,
            f.exporter,
            utc_seconds(f.first_ms),
        );
    }
    let bytes: u64 = flows.iter().map(|f| f.bytes).sum();
    let packets: u64 = flows.iter().map(|f| f.packets).sum();
    s += &format!(
        "Summary\nflows,bytes,packets,avg_bps,avg_pps,avg_bpp\n{},{bytes},{packets},0,0,0\n",
        flows.len()
    );
    s
}

/// The header line of flow-tools' `flow-export -f2`.
pub const FLOW_EXPORT_HEADER: &str = "#:unix_secs,unix_nsecs,sysuptime,exaddr,dpkts,doctets,first,last,engine_type,\
engine_id,srcaddr,dstaddr,nexthop,input,output,srcport,dstport,prot,tos,tcp_flags,src_mask,dst_mask,src_as,dst_as";

/// Flows as `flow-export -f2` prints a v5 flow-tools file: export time and uptime per record, uptime-relative
/// first/last, the exporter as an address.
pub fn csv_as_flow_export(flows: &[FlowRecord]) -> String {
    let mut s = String::from(FLOW_EXPORT_HEADER);
    s.push('\n');
    for f in flows {
        let c = Clock::for_flows(std::slice::from_ref(f), false);
        s += &format!(
            "{},{},{},{},{},{},{},{},0,0,{},{},0.0.0.0,{},{},{},{},{},{},{},0,0,0,0\n",
            c.secs(),
            c.nsecs(),
            c.uptime_ms,
            std::net::Ipv4Addr::from(f.exporter),
            f.packets,
            f.bytes,
            c.relative(f.first_ms),
            c.relative(f.last_ms),
            std::net::Ipv4Addr::from(v4(f.src, "source")),
            std::net::Ipv4Addr::from(v4(f.dst, "destination")),
            f.input,
            f.output,
            f.src_port,
            f.dst_port,
            f.proto,
            f.src_tos,
            f.tcp_flags,
        );
    }
    s
}
