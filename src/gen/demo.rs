//! The demo capture: a small site's outbound flows for ten minutes, with planted scanners whose expected
//! findings are known.
//!
//! Background traffic is what a border router exporting outbound flows sees: clients in 10.1.0.0/16 reach public
//! servers chosen with Zipf-like popularity, each client with a heavy-tailed number of servers kept under the
//! fan-out threshold. The planted hosts each show one classic sign.

use super::rng::Rng;
use crate::record::{proto, tcp, Addr, FlowRecord};

/// A planted host and the rules it must trigger (and those it must not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Planted {
    pub host: Addr,
    pub what: &'static str,
    /// Rule ids that must report this host.
    pub expect: &'static [&'static str],
}

/// Start of the demo capture: 2026-11-26 03:00:00 UTC.
pub const START_MS: u64 = 1_795_662_000_000;
const SPAN_MS: u64 = 600_000;

/// The demo's flows and what was planted in them. Deterministic for a seed.
pub fn capture(seed: u64, background: u64) -> (Vec<FlowRecord>, Vec<Planted>) {
    let mut rng = Rng::new(seed);
    let mut flows = Vec::with_capacity(background as usize + 10_000);
    let clients = 800u64;
    let servers = 5_000u64;
    // Each client's own set of servers: heavy-tailed size, well below FS1's 100.
    let fanout: Vec<u64> = (0..clients).map(|_| rng.pareto(1.2, 60)).collect();
    for _ in 0..background {
        let c = rng.below(clients);
        let src = Addr::v4(0x0a01_0000 | (c as u32 + 10));
        // The client's k-th favourite server: a stable per-client permutation of the popular ones.
        let k = rng.zipf(fanout[c as usize], 1.0);
        let s = favourite_server(c, k) % servers;
        let dst = Addr::v4(0x5db8_0000 + s as u32 * 7 + 1); // 93.184.0.0/16 and up: public space
        let mut f = base_flow(&mut rng, src, dst);
        let kind = rng.below(100);
        if kind < 70 {
            f.proto = proto::TCP;
            f.dst_port = [443, 443, 443, 80, 80, 8080, 22, 993][rng.below(8) as usize];
            f.tcp_flags = tcp::SYN | tcp::ACK | tcp::PSH | tcp::FIN;
            if rng.chance(0.02) {
                // A few refused connections: SYN then RST, as every real capture has.
                f.tcp_flags = tcp::SYN | tcp::RST;
                f.packets = 2;
                f.bytes = 104;
            }
        } else if kind < 95 {
            f.proto = proto::UDP;
            f.dst_port = [53, 53, 123, 443][rng.below(4) as usize];
            f.tcp_flags = 0;
        } else {
            f.proto = proto::ICMP;
            f.src_port = 0;
            f.dst_port = 8 << 8;
            f.tcp_flags = 0;
        }
        flows.push(f);
    }
    let mut planted = Vec::new();

    // A worm-like sweep: SYNs to 400 addresses on port 445.
    let sweeper = Addr::v4(0x0a01_0942);
    for i in 0..400u32 {
        let mut f = base_flow(&mut rng, sweeper, Addr::v4(0x0a14_0000 + i * 3 + 1));
        syn_probe(&mut f, 445);
        flows.push(f);
    }
    planted.push(Planted {
        host: sweeper,
        what: "SYN sweep of 400 addresses on port 445",
        expect: &["FS1", "FS4", "FS7"],
    });

    // A vertical scan: 1,024 ports of one server.
    let scanner = Addr::v4(0x0a01_0963);
    for port in 1..=1024u16 {
        let mut f = base_flow(&mut rng, scanner, Addr::v4(0x0a14_0005));
        syn_probe(&mut f, port);
        flows.push(f);
    }
    planted.push(Planted {
        host: scanner,
        what: "port scan of 1,024 ports on 10.20.0.5",
        expect: &["FS4", "FS6"],
    });

    // Traffic to reserved space (240.0.0.0/4) and the benchmarking block 198.18.0.0/15.
    let leaker = Addr::v4(0x0a01_0977);
    for i in 0..12u32 {
        let dst = if i % 2 == 0 {
            Addr::v4(0xf001_0203 + i)
        } else {
            Addr::v4(0xc612_0001 + i)
        };
        let mut f = base_flow(&mut rng, leaker, dst);
        f.proto = proto::UDP;
        f.dst_port = 161;
        flows.push(f);
    }
    planted.push(Planted {
        host: leaker,
        what: "SNMP to non-routable addresses",
        expect: &["FS2"],
    });

    // A busy but honest host: 95 distinct servers, just under FS1's threshold of 100.
    let busy = Addr::v4(0x0a01_0988);
    for i in 0..95u32 {
        let mut f = base_flow(&mut rng, busy, Addr::v4(0x5db9_0000 + i));
        f.proto = proto::TCP;
        f.dst_port = 443;
        f.tcp_flags = tcp::SYN | tcp::ACK | tcp::FIN | tcp::PSH;
        flows.push(f);
    }
    planted.push(Planted {
        host: busy,
        what: "95 distinct servers: under the fan-out threshold",
        expect: &[],
    });

    // A SYN flood from 1,500 spoofed sources at one web server.
    let victim = Addr::v4(0x0a14_0050);
    for i in 0..1_500u32 {
        let mut f = base_flow(
            &mut rng,
            Addr::v4(0xcb00_0000 | (i.wrapping_mul(2_654_435_761) >> 8)),
            victim,
        );
        syn_probe(&mut f, 80);
        flows.push(f);
    }
    planted.push(Planted {
        host: victim,
        what: "SYN flood from 1,500 spoofed sources",
        expect: &["FS8", "FS9"],
    });

    // Shuffle so planted flows are spread through the file as in a real capture.
    for i in (1..flows.len()).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        flows.swap(i, j);
    }
    (flows, planted)
}

/// The server behind a client's `k`-th favourite: popular servers are shared by many clients.
fn favourite_server(c: u64, k: u64) -> u64 {
    let h = crate::hash::fmix64((c << 20) | k);
    // Half the picks go to the 200 most popular servers.
    if h & 1 == 0 {
        (h >> 1) % 200
    } else {
        h >> 1
    }
}

fn base_flow(rng: &mut Rng, src: Addr, dst: Addr) -> FlowRecord {
    let first = START_MS + rng.below(SPAN_MS);
    let packets = rng.pareto(1.3, 10_000);
    FlowRecord {
        src,
        dst,
        first_ms: first,
        last_ms: first + rng.below(30_000),
        packets,
        bytes: packets * (40 + rng.below(1400)),
        src_port: 1024 + rng.below(64_000) as u16,
        dst_port: 0,
        proto: proto::TCP,
        tcp_flags: tcp::SYN | tcp::ACK,
        input: 2,
        output: 1,
        sampling: 1,
        ..Default::default()
    }
}

fn syn_probe(f: &mut FlowRecord, port: u16) {
    f.proto = proto::TCP;
    f.dst_port = port;
    f.tcp_flags = tcp::SYN;
    f.packets = 1;
    f.bytes = 44;
    f.last_ms = f.first_ms;
}
