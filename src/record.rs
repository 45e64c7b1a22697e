//! The flow record every reader produces and every rule reads.
//!
//! One plain `Copy` struct for all formats, so the engine and the rules never care where a flow came from.
//! Addresses are stored as 128-bit values with IPv4 mapped into `::ffff:0:0/96`, which keeps the record fixed-size,
//! hashable without branching, and lets one prefix table serve both families.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An IPv4 or IPv6 address as one 128-bit value (IPv4 as an IPv4-mapped IPv6 address).
#[derive(
    Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct Addr(pub u128);

const V4_MAPPED: u128 = 0xffff_0000_0000;

impl Addr {
    /// An IPv4 address from its value in host order (`0x0a000080` is 10.0.0.128).
    #[inline]
    pub const fn v4(a: u32) -> Addr {
        Addr(V4_MAPPED | a as u128)
    }

    /// An IPv6 address from its 128-bit value in host order.
    #[inline]
    pub const fn v6(a: u128) -> Addr {
        Addr(a)
    }

    #[inline]
    pub const fn is_v4(self) -> bool {
        self.0 >> 32 == V4_MAPPED >> 32
    }

    /// The IPv4 value when this is an IPv4 address.
    #[inline]
    pub const fn as_v4(self) -> Option<u32> {
        if self.is_v4() {
            Some(self.0 as u32)
        } else {
            None
        }
    }

    pub fn to_ip(self) -> IpAddr {
        match self.as_v4() {
            Some(a) => IpAddr::V4(Ipv4Addr::from(a)),
            None => IpAddr::V6(Ipv6Addr::from(self.0)),
        }
    }
}

impl From<IpAddr> for Addr {
    fn from(ip: IpAddr) -> Addr {
        match ip {
            IpAddr::V4(a) => Addr::v4(u32::from(a)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => Addr::v4(u32::from(v4)),
                None => Addr::v6(u128::from(a)),
            },
        }
    }
}

impl From<Ipv4Addr> for Addr {
    fn from(ip: Ipv4Addr) -> Addr {
        Addr::v4(u32::from(ip))
    }
}

impl fmt::Display for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_ip(), f)
    }
}

impl fmt::Debug for Addr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.to_ip(), f)
    }
}

impl std::str::FromStr for Addr {
    type Err = std::net::AddrParseError;
    fn from_str(s: &str) -> Result<Addr, Self::Err> {
        s.parse::<IpAddr>().map(Addr::from)
    }
}

/// TCP flag bits as nfdump and NetFlow store them.
pub mod tcp {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;
}

/// IP protocol numbers used by the rules and the generator.
pub mod proto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMP6: u8 = 58;
}

/// One unidirectional flow, as every reader hands it to the engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowRecord {
    pub src: Addr,
    pub dst: Addr,
    /// Start and end of the flow in milliseconds since the Unix epoch.
    pub first_ms: u64,
    pub last_ms: u64,
    pub packets: u64,
    pub bytes: u64,
    pub src_port: u16,
    /// Destination port; for ICMP, `type << 8 | code` as nfdump stores it.
    pub dst_port: u16,
    pub proto: u8,
    /// Cumulative TCP flags (OR of all packets' flags).
    pub tcp_flags: u8,
    pub src_tos: u8,
    /// SNMP interface indexes on the exporter, 0 when unknown.
    pub input: u32,
    pub output: u32,
    /// Exporter identity as the format has it (nfdump's exporter sysid, flow-tools' exporter address low bits).
    pub exporter: u32,
    /// Sampling interval the exporter reported (1 = unsampled or unknown).
    pub sampling: u32,
    /// Flows this record stands for: 1, or the aggregated-flows counter of an exporter or of `nfdump -a`
    /// (nfdump's EXcntFlow `flows`, NetFlow/IPFIX field 3), which nfdump counts flows by. 0 is kept as written.
    pub flows: u32,
}

impl Default for FlowRecord {
    /// Every field 0 but `flows`, 1: a record is one flow unless it says otherwise.
    fn default() -> FlowRecord {
        FlowRecord {
            src: Addr::default(),
            dst: Addr::default(),
            first_ms: 0,
            last_ms: 0,
            packets: 0,
            bytes: 0,
            src_port: 0,
            dst_port: 0,
            proto: 0,
            tcp_flags: 0,
            src_tos: 0,
            input: 0,
            output: 0,
            exporter: 0,
            sampling: 0,
            flows: 1,
        }
    }
}

impl FlowRecord {
    /// Duration in milliseconds; 0 when the exporter wrote an end before the start (seen in real files).
    #[inline]
    pub fn duration_ms(&self) -> u64 {
        self.last_ms.saturating_sub(self.first_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_round_trips_and_is_distinct_from_v6() {
        let a: Addr = "10.0.0.128".parse().unwrap();
        assert_eq!(a.as_v4(), Some(0x0a00_0080));
        assert_eq!(a.to_string(), "10.0.0.128");
        let b: Addr = "2001:db8::1".parse().unwrap();
        assert!(!b.is_v4());
        assert_eq!(b.to_string(), "2001:db8::1");
        // An IPv4-mapped IPv6 address is the IPv4 address: nfdump prints it that way too.
        let c: Addr = "::ffff:10.0.0.128".parse().unwrap();
        assert_eq!(a, c);
    }

    #[test]
    fn a_default_record_is_one_flow() {
        assert_eq!(FlowRecord::default().flows, 1);
        assert_eq!(std::mem::size_of::<FlowRecord>(), 96);
    }

    #[test]
    fn duration_is_never_negative() {
        let r = FlowRecord {
            first_ms: 2000,
            last_ms: 1000,
            ..Default::default()
        };
        assert_eq!(r.duration_ms(), 0);
    }
}
