//! Field meanings (IANA IPFIX information elements; v9 shares the ids below 128) and how one data record
//! of a template becomes a [`FlowRecord`].

use super::templates::{Template, VARIABLE};
use crate::record::{proto, Addr, FlowRecord};

/// IPFIX reverse-direction enterprise number (RFC 5103).
pub const REVERSE_PEN: u32 = 29305;

/// What a template field contributes to a flow record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldKind {
    Ignore,
    SrcV4,
    DstV4,
    SrcV6,
    DstV6,
    SrcPort,
    DstPort,
    Proto,
    TcpFlags,
    Tos,
    DeltaBytes,
    DeltaPackets,
    TotalBytes,
    TotalPackets,
    ReverseBytes,
    ReversePackets,
    Input,
    Output,
    /// sysUptime-relative ms (v9 FIRST_SWITCHED / IPFIX flowStartSysUpTime).
    FirstUptime,
    LastUptime,
    StartSeconds,
    EndSeconds,
    StartMillis,
    EndMillis,
    /// NTP-format timestamps (flowStart/EndMicroseconds, flowStart/EndNanoseconds).
    StartNtp,
    EndNtp,
    StartDeltaMicros,
    EndDeltaMicros,
    /// systemInitTimeMilliseconds: the absolute time sysUptime counts from (IPFIX).
    SystemInitMillis,
    IcmpTypeCode,
    IcmpType,
    IcmpCode,
    Sampling,
    /// Field 3: flows aggregated into this record (v9 FLOWS, IPFIX deltaFlowCount), as nfcapd keeps it.
    Flows,
}

/// The meaning of field `id` of `enterprise`.
pub fn classify(enterprise: u32, id: u16) -> FieldKind {
    use FieldKind::*;
    if enterprise == REVERSE_PEN {
        return match id {
            1 | 85 => ReverseBytes,
            2 | 86 => ReversePackets,
            _ => Ignore,
        };
    }
    if enterprise != 0 {
        return Ignore;
    }
    match id {
        1 => DeltaBytes,
        2 => DeltaPackets,
        3 => Flows,
        4 => Proto,
        5 => Tos,
        6 => TcpFlags,
        7 => SrcPort,
        8 => SrcV4,
        10 => Input,
        11 => DstPort,
        12 => DstV4,
        14 => Output,
        21 => LastUptime,
        22 => FirstUptime,
        27 => SrcV6,
        28 => DstV6,
        32 | 139 => IcmpTypeCode,
        34 | 50 | 305 => Sampling,
        85 => TotalBytes,
        86 => TotalPackets,
        150 => StartSeconds,
        151 => EndSeconds,
        152 => StartMillis,
        153 => EndMillis,
        154 | 156 => StartNtp,
        155 | 157 => EndNtp,
        158 => StartDeltaMicros,
        159 => EndDeltaMicros,
        160 => SystemInitMillis,
        176 | 178 => IcmpType,
        177 | 179 => IcmpCode,
        // Cisco ASA NSEL (v9): forward flow delta bytes; initiatorOctets/initiatorPackets in IPFIX.
        231 => DeltaBytes,
        298 => DeltaPackets,
        _ => Ignore,
    }
}

/// Packet-level facts a record's times and identity are relative to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Context {
    /// Export time in Unix seconds (v9 unix_secs, IPFIX export time).
    pub unix_secs: u32,
    /// v9 header sysUptime in ms; None for IPFIX.
    pub uptime_ms: Option<u32>,
    /// Exporter identity for [`FlowRecord::exporter`].
    pub exporter: u32,
}

/// Big-endian unsigned integer of 1 to 8 bytes (reduced-size encoding); wider values keep their low 8 bytes.
#[inline]
pub fn be_uint(v: &[u8]) -> u64 {
    let v = if v.len() > 8 { &v[v.len() - 8..] } else { v };
    v.iter().fold(0u64, |a, &b| (a << 8) | b as u64)
}

/// Values collected from one record before the record is assembled.
struct Acc {
    r: FlowRecord,
    delta_bytes: Option<u64>,
    delta_packets: Option<u64>,
    total_bytes: Option<u64>,
    total_packets: Option<u64>,
    rev_bytes: Option<u64>,
    rev_packets: Option<u64>,
    first_uptime: Option<u64>,
    last_uptime: Option<u64>,
    start_ms: Option<u64>,
    end_ms: Option<u64>,
    start_delta_us: Option<u64>,
    end_delta_us: Option<u64>,
    sys_init_ms: Option<u64>,
    icmp_type_code: Option<u16>,
    icmp_type: Option<u8>,
    icmp_code: Option<u8>,
}

impl Default for Acc {
    fn default() -> Acc {
        Acc {
            // A record without address fields reads as 0.0.0.0, as nfcapd stores it.
            r: FlowRecord {
                src: Addr::v4(0),
                dst: Addr::v4(0),
                ..FlowRecord::default()
            },
            delta_bytes: None,
            delta_packets: None,
            total_bytes: None,
            total_packets: None,
            rev_bytes: None,
            rev_packets: None,
            first_uptime: None,
            last_uptime: None,
            start_ms: None,
            end_ms: None,
            start_delta_us: None,
            end_delta_us: None,
            sys_init_ms: None,
            icmp_type_code: None,
            icmp_type: None,
            icmp_code: None,
        }
    }
}

/// NTP timestamp (seconds since 1900 . fraction) to Unix ms.
fn ntp_to_ms(v: u64) -> u64 {
    const NTP_TO_UNIX: u64 = 2_208_988_800;
    let secs = (v >> 32).saturating_sub(NTP_TO_UNIX);
    let frac_ms = ((v & 0xffff_ffff) * 1000) >> 32;
    secs * 1000 + frac_ms
}

impl Acc {
    #[inline]
    fn apply(&mut self, kind: FieldKind, v: &[u8]) {
        use FieldKind::*;
        match kind {
            Ignore => {}
            SrcV4 if v.len() == 4 => self.r.src = Addr::v4(be_uint(v) as u32),
            DstV4 if v.len() == 4 => self.r.dst = Addr::v4(be_uint(v) as u32),
            SrcV6 if v.len() == 16 => self.r.src = v6(v),
            DstV6 if v.len() == 16 => self.r.dst = v6(v),
            SrcPort => self.r.src_port = be_uint(v) as u16,
            DstPort => self.r.dst_port = be_uint(v) as u16,
            Proto => self.r.proto = be_uint(v) as u8,
            TcpFlags => self.r.tcp_flags = be_uint(v) as u8,
            Tos => self.r.src_tos = be_uint(v) as u8,
            DeltaBytes => self.delta_bytes = Some(be_uint(v)),
            DeltaPackets => self.delta_packets = Some(be_uint(v)),
            TotalBytes => self.total_bytes = Some(be_uint(v)),
            TotalPackets => self.total_packets = Some(be_uint(v)),
            ReverseBytes => self.rev_bytes = Some(be_uint(v)),
            ReversePackets => self.rev_packets = Some(be_uint(v)),
            Input => self.r.input = be_uint(v) as u32,
            Output => self.r.output = be_uint(v) as u32,
            FirstUptime => self.first_uptime = Some(be_uint(v)),
            LastUptime => self.last_uptime = Some(be_uint(v)),
            StartSeconds => self.start_ms = Some(be_uint(v).saturating_mul(1000)),
            EndSeconds => self.end_ms = Some(be_uint(v).saturating_mul(1000)),
            StartMillis => self.start_ms = Some(be_uint(v)),
            EndMillis => self.end_ms = Some(be_uint(v)),
            StartNtp if v.len() == 8 => self.start_ms = Some(ntp_to_ms(be_uint(v))),
            EndNtp if v.len() == 8 => self.end_ms = Some(ntp_to_ms(be_uint(v))),
            StartDeltaMicros => self.start_delta_us = Some(be_uint(v)),
            EndDeltaMicros => self.end_delta_us = Some(be_uint(v)),
            SystemInitMillis => self.sys_init_ms = Some(be_uint(v)),
            IcmpTypeCode => self.icmp_type_code = Some(be_uint(v) as u16),
            IcmpType => self.icmp_type = Some(be_uint(v) as u8),
            IcmpCode => self.icmp_code = Some(be_uint(v) as u8),
            Sampling => self.r.sampling = (be_uint(v) as u32).max(1),
            Flows => self.r.flows = u32::try_from(be_uint(v)).unwrap_or(u32::MAX),
            _ => {} // an address field of an unexpected length: ignored
        }
    }

    fn finish(mut self, ctx: &Context) -> FlowRecord {
        let r = &mut self.r;
        r.exporter = ctx.exporter;
        if r.sampling == 0 {
            r.sampling = 1;
        }
        // Forward delta counts first; totals or the reverse direction only when that is all a record has.
        r.bytes = self
            .delta_bytes
            .or(self.total_bytes)
            .or(self.rev_bytes)
            .unwrap_or(0);
        r.packets = self
            .delta_packets
            .or(self.total_packets)
            .or(self.rev_packets)
            .unwrap_or(0);
        let export_ms = ctx.unix_secs as i64 * 1000;
        let from_uptime = |u: u64| -> Option<u64> {
            if let Some(up) = ctx.uptime_ms {
                Some((export_ms - (up as i64 - u as i64)).max(0) as u64)
            } else {
                self.sys_init_ms.map(|init| init.saturating_add(u))
            }
        };
        let from_delta = |d: u64| (export_ms - (d / 1000) as i64).max(0) as u64;
        let first = self
            .start_ms
            .or_else(|| self.first_uptime.and_then(from_uptime))
            .or_else(|| self.start_delta_us.map(from_delta));
        let last = self
            .end_ms
            .or_else(|| self.last_uptime.and_then(from_uptime))
            .or_else(|| self.end_delta_us.map(from_delta));
        let export = export_ms.max(0) as u64;
        r.first_ms = first.or(last).unwrap_or(export);
        r.last_ms = last.unwrap_or(r.first_ms);
        if matches!(r.proto, proto::ICMP | proto::ICMP6) && r.dst_port == 0 {
            // nfdump keeps ICMP type and code in the destination port as type << 8 | code.
            if let Some(tc) = self.icmp_type_code {
                r.dst_port = tc;
            } else if self.icmp_type.is_some() || self.icmp_code.is_some() {
                r.dst_port =
                    (self.icmp_type.unwrap_or(0) as u16) << 8 | self.icmp_code.unwrap_or(0) as u16;
            }
        }
        self.r
    }
}

fn v6(v: &[u8]) -> Addr {
    let mut a = [0u8; 16];
    a.copy_from_slice(v);
    Addr::from(std::net::IpAddr::from(a))
}

/// Length of the record of `tpl` at the start of `b`, or None when it does not fit.
#[inline]
pub fn record_len(b: &[u8], tpl: &Template) -> Option<usize> {
    if let Some(n) = tpl.fixed_len {
        return (n <= b.len()).then_some(n);
    }
    let mut at = 0usize;
    for f in &tpl.fields {
        let (skip, n) = field_extent(b, at, f.len)?;
        at = at.checked_add(skip + n)?;
        if at > b.len() {
            return None;
        }
    }
    Some(at)
}

/// (length-prefix bytes, value bytes) of a field at `at`.
#[inline]
fn field_extent(b: &[u8], at: usize, len: u16) -> Option<(usize, usize)> {
    if len != VARIABLE {
        return Some((0, len as usize));
    }
    let first = *b.get(at)?;
    if first < 255 {
        Some((1, first as usize))
    } else {
        let hi = *b.get(at + 1)? as usize;
        let lo = *b.get(at + 2)? as usize;
        Some((3, hi << 8 | lo))
    }
}

/// Decode the record of `tpl` at the start of `b`: the flow and the bytes it took (at least one), or None when it
/// does not fit.
#[inline]
pub fn decode_record(b: &[u8], tpl: &Template, ctx: &Context) -> Option<(FlowRecord, usize)> {
    let mut acc = Acc::default();
    let mut at = 0usize;
    for f in &tpl.fields {
        let (skip, n) = field_extent(b, at, f.len)?;
        let start = at + skip;
        let v = b.get(start..start.checked_add(n)?)?;
        acc.apply(f.kind, v);
        at = start + n;
    }
    Some((acc.finish(ctx), at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::formats::netflow::templates::Template;

    #[test]
    fn variable_length_fields_in_both_encodings_and_a_record_without_addresses() {
        let t = Template::new(
            256,
            &[
                (7, 2, FieldKind::SrcPort),
                (82, VARIABLE, FieldKind::Ignore),
                (3, 4, FieldKind::Flows),
            ],
            false,
        );
        let ctx = Context::default();
        // 1-byte length 3, then a 3-byte length (255, 0, 2).
        let one = [0, 80, 3, b'a', b'b', b'c', 0, 0, 0, 7];
        let three = [0, 81, 255, 0, 2, b'x', b'y', 0, 0, 0, 1];
        let (r, n) = decode_record(&one, &t, &ctx).unwrap();
        assert_eq!((r.src_port, r.flows, n), (80, 7, one.len()));
        assert_eq!(
            (r.src.to_string(), r.dst.to_string()),
            ("0.0.0.0".into(), "0.0.0.0".into())
        );
        let (r, n) = decode_record(&three, &t, &ctx).unwrap();
        assert_eq!((r.src_port, r.flows, n), (81, 1, three.len()));
        assert_eq!(record_len(&three, &t), Some(three.len()));
        assert_eq!(decode_record(&three[..8], &t, &ctx), None);
    }

    #[test]
    fn reduced_size_integers_and_ntp() {
        assert_eq!(be_uint(&[1, 2]), 0x0102);
        assert_eq!(be_uint(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 5]), 5);
        // 2000-01-01T00:00:00Z = NTP 3155673600, Unix 946684800; half a second of fraction.
        assert_eq!(
            ntp_to_ms((3_155_673_600u64 << 32) | 0x8000_0000),
            946_684_800_500
        );
    }
}
