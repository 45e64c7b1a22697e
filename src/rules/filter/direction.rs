//! Who started a flow: the `initiator` and `responder` filter terms.
//!
//! A flow record is one direction of a conversation. `initiator` selects the flows sent by the end that opened it
//! (a client's requests, a scanner's probes), `responder` those sent back (a server's replies, a refusal). Flow
//! records do not say which is which, so this module guesses, in this order, from what each field can tell:
//!
//! 1. **TCP flags.** A SYN without ACK opens a connection: initiator, whatever the ports (a scan from source port 53
//!    or 80 is still a scan). A one-packet flow whose flags are exactly SYN+ACK is the answer to a SYN:
//!    responder. Exporters OR the flags of all of a flow's packets, so a longer flow with SYN and ACK is both an
//!    opened and an answered connection: the ports decide.
//! 2. **ICMP type.** Requests (echo, timestamp, router and neighbour solicitation, ...) are initiators; replies
//!    and errors (echo reply, unreachable, time exceeded, neighbour advertisement, ...) are responders.
//! 3. **Ports** (TCP, UDP, SCTP, DCCP, UDP-Lite). A service port is one of 1-1023 or one of [`REGISTERED`]
//!    (servers' registered ports that clients' ephemeral ranges can reach). A flow from a service port to a
//!    port that is not one is a responder; the other way round, an initiator. When both ports or neither are
//!    service ports, the lower port is taken to be the server's (clients pick ephemeral ports high: 32768-60999
//!    on Linux, 49152-65535 on Windows and macOS). Equal ports (NTP 123 to 123, IKE 500 to 500) say nothing.
//!
//! Anything else (other protocols, ICMP types that are neither) is neither initiator nor responder, so `not
//! responder` keeps it. Limits: a service on an unlisted port above its clients' ephemeral ports reads the wrong
//! way round; so do the probes of a UDP scan of ports above the scanner's own source port, and clients behind a
//! NAT that hands out low ports to unlisted services. Sites add their own with port tests
//! (`not responder and not src port in @my_services`).

use crate::record::{proto, tcp, FlowRecord};

/// Protocols with ports besides TCP and UDP.
const DCCP: u8 = 33;
const SCTP: u8 = 132;
const UDPLITE: u8 = 136;

/// Which end of a conversation sent a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Initiator,
    Responder,
}

/// Registered ports (1024 and up) that servers listen on and clients rarely use as source ports: proxies and
/// VPNs, databases and caches, messaging and push, remote desktops, web alternatives.
pub const REGISTERED: [u16; 38] = [
    1080, 1194, 1433, 1521, 1701, 1723, 1812, 1813, 1883, 2049, 3128, 3306, 3389, 3478, 4500, 5060,
    5061, 5222, 5228, 5349, 5432, 5671, 5672, 5900, 6379, 6443, 6667, 8000, 8008, 8080, 8443, 8883,
    8888, 9000, 9092, 9200, 11211, 27017,
];

/// One bit per port: the service ports (1-1023 and [`REGISTERED`]).
static SERVICE: [u64; 1024] = service_ports();

const fn service_ports() -> [u64; 1024] {
    let mut bits = [0u64; 1024];
    let mut p = 1;
    while p < 1024 {
        bits[p / 64] |= 1 << (p % 64);
        p += 1;
    }
    let mut i = 0;
    while i < REGISTERED.len() {
        let p = REGISTERED[i] as usize;
        bits[p / 64] |= 1 << (p % 64);
        i += 1;
    }
    bits
}

/// Whether `port` is a service port (1-1023 or [`REGISTERED`]).
#[inline]
pub fn is_service(port: u16) -> bool {
    SERVICE[port as usize / 64] >> (port % 64) & 1 != 0
}

const SYN: u8 = tcp::SYN;
const ACK: u8 = tcp::ACK;
/// ECN bits (ECE, CWR): they say nothing about who opened the connection.
const ECN: u8 = tcp::ECE | tcp::CWR;

/// Which end sent `r`, when its fields tell (see the module's rules); `None` when they do not.
#[inline]
pub fn role(r: &FlowRecord) -> Option<Role> {
    match r.proto {
        proto::TCP => {
            let flags = r.tcp_flags & !ECN;
            if flags & (SYN | ACK) == SYN {
                return Some(Role::Initiator);
            }
            if flags == SYN | ACK && r.packets == 1 {
                return Some(Role::Responder);
            }
            by_ports(r.src_port, r.dst_port)
        }
        proto::UDP | SCTP | DCCP | UDPLITE => by_ports(r.src_port, r.dst_port),
        proto::ICMP => ICMP[(r.dst_port >> 8) as usize],
        proto::ICMP6 => ICMP6[(r.dst_port >> 8) as usize],
        _ => None,
    }
}

/// [`role`] as two outcomes, (initiator, responder), worked out without a branch: a batch of flows with random
/// ports would mispredict the branches of [`role`] on half of them. Tests check the two agree.
#[inline(always)]
pub fn role_bits(proto: u8, flags: u8, packets: u64, sport: u16, dport: u16) -> (bool, bool) {
    let tcp = proto == proto::TCP;
    let ported =
        tcp | (proto == proto::UDP) | (proto == SCTP) | (proto == DCCP) | (proto == UDPLITE);
    let f = flags & !ECN;
    let opens = tcp & (f & (SYN | ACK) == SYN);
    let answers = tcp & (f == SYN | ACK) & (packets == 1);
    let (s, d) = (is_service(sport), is_service(dport));
    let port_responds = (s & !d) | ((s == d) & (sport < dport));
    let port_opens = (!s & d) | ((s == d) & (dport < sport));
    let kind = (dport >> 8) as usize;
    let icmp_opens = ((proto == proto::ICMP) & (ICMP[kind] == Some(Role::Initiator)))
        | ((proto == proto::ICMP6) & (ICMP6[kind] == Some(Role::Initiator)));
    let icmp_responds = ((proto == proto::ICMP) & (ICMP[kind] == Some(Role::Responder)))
        | ((proto == proto::ICMP6) & (ICMP6[kind] == Some(Role::Responder)));
    (
        (ported & !answers & (opens | port_opens)) | icmp_opens,
        (ported & !opens & (answers | port_responds)) | icmp_responds,
    )
}

/// The ports' verdict: a service port is the server's; else the lower port is.
#[inline]
fn by_ports(src: u16, dst: u16) -> Option<Role> {
    let (s, d) = (is_service(src), is_service(dst));
    if s != d {
        return Some(if s { Role::Responder } else { Role::Initiator });
    }
    match src.cmp(&dst) {
        std::cmp::Ordering::Less => Some(Role::Responder),
        std::cmp::Ordering::Greater => Some(Role::Initiator),
        std::cmp::Ordering::Equal => None,
    }
}

/// ICMP types (RFC 792, 950, 1256, 8335): requests and solicitations, against replies, advertisements and errors.
static ICMP: [Option<Role>; 256] = by_type(
    &[8, 10, 13, 15, 17, 42],
    &[0, 3, 4, 5, 9, 11, 12, 14, 16, 18, 43],
);

/// ICMPv6 types (RFC 4443, 4861, 8335): echo request and solicitations, against errors, replies and
/// advertisements.
static ICMP6: [Option<Role>; 256] =
    by_type(&[128, 133, 135, 160], &[1, 2, 3, 4, 129, 134, 136, 161]);

const fn by_type(opening: &[u8], answering: &[u8]) -> [Option<Role>; 256] {
    let mut t = [None; 256];
    let mut i = 0;
    while i < opening.len() {
        t[opening[i] as usize] = Some(Role::Initiator);
        i += 1;
    }
    let mut i = 0;
    while i < answering.len() {
        t[answering[i] as usize] = Some(Role::Responder);
        i += 1;
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow(proto: u8, sport: u16, dport: u16, flags: u8, packets: u64) -> FlowRecord {
        FlowRecord {
            proto,
            src_port: sport,
            dst_port: dport,
            tcp_flags: flags,
            packets,
            ..FlowRecord::default()
        }
    }

    #[test]
    fn service_ports_are_the_well_known_and_the_registered_list() {
        assert!(!is_service(0));
        assert!(is_service(1) && is_service(53) && is_service(1023));
        assert!(!is_service(1024) && !is_service(51436) && !is_service(65535));
        for p in REGISTERED {
            assert!(is_service(p), "{p}");
        }
        let count = (0..=u16::MAX).filter(|&p| is_service(p)).count();
        assert_eq!(count, 1023 + REGISTERED.len());
    }

    #[test]
    fn flags_decide_before_ports() {
        use Role::*;
        let tcp = proto::TCP;
        // A SYN from port 53 to a high port is a probe, not a DNS reply; ECN bits change nothing.
        assert_eq!(role(&flow(tcp, 53, 40_000, SYN, 1)), Some(Initiator));
        assert_eq!(
            role(&flow(tcp, 53, 40_000, SYN | 0x04 | 0xc0, 2)),
            Some(Initiator)
        );
        // A lone SYN-ACK answers; SYN-ACK over many packets is a whole connection: the ports say.
        assert_eq!(role(&flow(tcp, 40_000, 80, SYN | ACK, 1)), Some(Responder));
        assert_eq!(
            role(&flow(tcp, 40_000, 80, SYN | ACK | 0x18, 9)),
            Some(Initiator)
        );
        assert_eq!(
            role(&flow(tcp, 3128, 51_000, SYN | ACK | 0x18, 9)),
            Some(Responder)
        );
        assert_eq!(role(&flow(tcp, 3128, 51_000, ACK, 9)), Some(Responder));
    }

    #[test]
    fn ports_decide_by_service_then_by_order() {
        use Role::*;
        let udp = proto::UDP;
        assert_eq!(role(&flow(udp, 53, 40_000, 0, 1)), Some(Responder));
        assert_eq!(role(&flow(udp, 40_000, 53, 0, 1)), Some(Initiator));
        // A registered service port above a client's low ephemeral port (a NAT handing out 2000).
        assert_eq!(role(&flow(proto::TCP, 2000, 8080, ACK, 3)), Some(Initiator));
        assert_eq!(role(&flow(proto::TCP, 8080, 2000, ACK, 3)), Some(Responder));
        // Neither is a service port: the lower one is the server's (a C2 on 4444, a proxy on 8123).
        assert_eq!(
            role(&flow(proto::TCP, 50_000, 4444, ACK, 3)),
            Some(Initiator)
        );
        assert_eq!(
            role(&flow(proto::TCP, 8123, 51_000, ACK, 3)),
            Some(Responder)
        );
        // Both are: the lower one again (a scan of port 0 from 51436 is an initiator too).
        assert_eq!(role(&flow(udp, 80, 443, 0, 1)), Some(Responder));
        assert_eq!(role(&flow(udp, 443, 80, 0, 1)), Some(Initiator));
        assert_eq!(role(&flow(udp, 51_436, 0, 0, 1)), Some(Initiator));
        assert_eq!(role(&flow(udp, 123, 123, 0, 1)), None);
        assert_eq!(role(&flow(47, 0, 0, 0, 1)), None, "GRE");
    }

    /// The branch-free form agrees with [`role`] on every protocol that matters, every flag byte and ports around
    /// every boundary the rules draw.
    #[test]
    fn role_bits_agree_with_role() {
        let ports = [
            0u16, 1, 53, 80, 123, 443, 1023, 1024, 3128, 4444, 8080, 8123, 32_768, 51_436, 65_535,
        ];
        let mut checked = 0;
        for proto in [0u8, 1, 6, 17, 33, 47, 50, 58, 132, 136, 255] {
            for flags in 0..=255u8 {
                if proto != proto::TCP && flags > 3 {
                    continue;
                }
                for packets in [0, 1, 2, 9] {
                    for &sport in &ports {
                        for &dport in ports
                            .iter()
                            .chain(&[0x0800, 0x0000, 0x0b00, 0x8000, 0x8100, 0x8700])
                        {
                            let r = flow(proto, sport, dport, flags, packets);
                            let want = role(&r);
                            let got = role_bits(proto, flags, packets, sport, dport);
                            let want =
                                (want == Some(Role::Initiator), want == Some(Role::Responder));
                            assert_eq!(got, want, "{r:?}");
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 100_000, "{checked}");
    }

    #[test]
    fn icmp_requests_initiate_and_replies_and_errors_respond() {
        use Role::*;
        let icmp = |t: u8| flow(proto::ICMP, 0, (t as u16) << 8, 0, 1);
        let icmp6 = |t: u8| flow(proto::ICMP6, 0, (t as u16) << 8, 0, 1);
        assert_eq!(role(&icmp(8)), Some(Initiator));
        assert_eq!(role(&icmp(0)), Some(Responder));
        assert_eq!(role(&icmp(3)), Some(Responder));
        assert_eq!(role(&icmp(11)), Some(Responder));
        assert_eq!(role(&icmp(7)), None);
        assert_eq!(role(&icmp6(128)), Some(Initiator));
        assert_eq!(role(&icmp6(129)), Some(Responder));
        assert_eq!(role(&icmp6(135)), Some(Initiator));
        assert_eq!(role(&icmp6(136)), Some(Responder));
        assert_eq!(role(&icmp6(1)), Some(Responder));
        assert_eq!(role(&icmp6(0)), None);
    }
}
