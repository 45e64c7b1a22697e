//! Backbone- or campus-shaped synthetic traffic, streamed one flow at a time, with planted events.
//!
//! Shape: sources drawn with Zipf-like popularity (heavy-tailed flows per host), each source with a heavy-tailed
//! fan-out over its own destinations (Zipf within it), ports and protocols in realistic proportions, TCP flags of
//! complete, refused and half-open connections, a chosen IPv4/IPv6 mix, times spread over a span in order.
//! Nothing is held in memory but the planted events, so a billion flows stream in constant memory.

use super::plant::{Event, EventKind, Planter};
use super::rng::Rng;
use crate::record::{proto, tcp, Addr, FlowRecord};

/// What to generate.
#[derive(Debug, Clone)]
pub struct TrafficConfig {
    pub seed: u64,
    /// Background flows (planted events add theirs).
    pub flows: u64,
    /// Size of the source population (about this many distinct sources appear in large captures).
    pub sources: u64,
    /// Share of sources that are IPv6.
    pub v6_share: f64,
    pub start_ms: u64,
    pub span_ms: u64,
    /// Plant events around the default thresholds.
    pub plant: bool,
    /// One-flow spoofed sources of a SYN flood at one more victim (0: none).
    pub spoofed: u64,
}

impl Default for TrafficConfig {
    fn default() -> Self {
        TrafficConfig {
            seed: 1,
            flows: 1_000_000,
            sources: 100_000,
            v6_share: 0.1,
            start_ms: super::demo::START_MS,
            span_ms: 3_600_000,
            plant: true,
            spoofed: 0,
        }
    }
}

/// The flow stream.
pub struct Traffic {
    cfg: TrafficConfig,
    rng: Rng,
    emitted: u64,
    background_left: u64,
    planters: Vec<Planter>,
    planted_left: u64,
    total: u64,
}

const SCANNERS: u32 = 0xac10_0000; // 172.16.0.0/16: scanners
const SWEEP_TARGETS: u32 = 0x2c00_0000; // 44.0.0.0/8
const SCAN_TARGETS: u32 = 0x2d00_0000; // 45.0.0.0/8
const FLOOD_VICTIMS: u32 = 0x2e00_0000; // 46.0.0.0/8
const SPOOFED: u32 = 0x2f00_0000; // 47.0.0.0/8
const RESERVED: u32 = 0xf000_0000; // 240.0.0.0/4: reserved, non-routable

impl Traffic {
    /// The stream and the truth about what was planted in it.
    pub fn new(cfg: TrafficConfig) -> (Traffic, Vec<Event>) {
        let mut planters = Vec::new();
        let mut events = Vec::new();
        if cfg.plant {
            plant_defaults(&mut planters, &mut events);
        }
        if cfg.spoofed > 0 {
            let size = cfg.spoofed.min(1 << 28) as u32;
            let victim = Addr::v4(FLOOD_VICTIMS + 100);
            let p = Planter::new(EventKind::SpoofedFlood, victim, victim, 80, size, 1);
            events.push(Event {
                kind: EventKind::SpoofedFlood,
                host: victim.to_string(),
                port: None,
                peer: None,
                rule: "FS8",
                true_count: size as u64,
                threshold: 1_000,
                flows: p.total(),
            });
            planters.push(p);
        }
        let planted_left: u64 = planters.iter().map(Planter::total).sum();
        let total = cfg.flows + planted_left;
        let t = Traffic {
            rng: Rng::new(cfg.seed),
            emitted: 0,
            background_left: cfg.flows,
            planters,
            planted_left,
            total,
            cfg,
        };
        (t, events)
    }

    /// Flows the stream will yield in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    fn now(&self) -> u64 {
        self.cfg.start_ms
            + (self.emitted as u128 * self.cfg.span_ms as u128 / self.total.max(1) as u128) as u64
    }

    fn background(&mut self, now: u64) -> FlowRecord {
        let rng = &mut self.rng;
        let s = rng.zipf(self.cfg.sources, 0.9);
        let src = source_addr(s, self.cfg.v6_share);
        // Each source's fan-out is a fixed heavy-tailed draw from its own seed: stable across its flows.
        let mut own = Rng::new(self.cfg.seed ^ s.wrapping_mul(0x9e37_79b9));
        let fanout = own.pareto(1.1, 3_000);
        let k = rng.zipf(fanout, 1.0);
        let dst = dest_addr(s, k, src.is_v4());
        let packets = rng.pareto(1.2, 100_000);
        let mut f = FlowRecord {
            src,
            dst,
            first_ms: now,
            last_ms: now + rng.below(60_000).min(packets * 50),
            packets,
            bytes: packets * (40 + rng.below(1_460)),
            src_port: 1024 + rng.below(64_000) as u16,
            dst_port: 443,
            proto: proto::TCP,
            tcp_flags: tcp::SYN | tcp::ACK | tcp::PSH | tcp::FIN,
            input: 1 + rng.below(4) as u32,
            output: 5,
            sampling: 1,
            ..Default::default()
        };
        let kind = rng.below(1000);
        match kind {
            0..=399 => {}
            400..=599 => f.dst_port = 80,
            600..=649 => f.dst_port = 22,
            650..=679 => f.dst_port = 25,
            680..=699 => f.dst_port = 993,
            700..=719 => f.dst_port = 1024 + rng.below(64_000) as u16,
            720..=739 => {
                // Refused: SYN then RST.
                f.tcp_flags = tcp::SYN | tcp::RST;
                f.packets = 2;
                f.bytes = 104;
            }
            740..=749 => {
                // Half-open: a lone SYN, a retry that timed out.
                f.tcp_flags = tcp::SYN;
                f.packets = 1;
                f.bytes = 60;
            }
            750..=899 => {
                f.proto = proto::UDP;
                f.tcp_flags = 0;
                f.dst_port = 53;
                f.packets = 1;
                f.bytes = 70 + rng.below(100);
            }
            900..=959 => {
                f.proto = proto::UDP;
                f.tcp_flags = 0;
                f.dst_port = [123, 443, 500, 4500][rng.below(4) as usize];
            }
            _ => {
                f.proto = if src.is_v4() {
                    proto::ICMP
                } else {
                    proto::ICMP6
                };
                f.tcp_flags = 0;
                f.src_port = 0;
                f.dst_port = if src.is_v4() { 8 << 8 } else { 128 << 8 };
            }
        }
        f
    }
}

impl Iterator for Traffic {
    type Item = FlowRecord;

    fn next(&mut self) -> Option<FlowRecord> {
        let left = self.background_left + self.planted_left;
        if left == 0 {
            return None;
        }
        let now = self.now();
        self.emitted += 1;
        // Planted flows are spread uniformly through the stream.
        if self.rng.below(left) < self.planted_left {
            let mut pick = self.rng.below(self.planted_left);
            for p in &mut self.planters {
                if pick < p.remaining() {
                    self.planted_left -= 1;
                    return p.next_flow(&mut self.rng, now);
                }
                pick -= p.remaining();
            }
        }
        self.background_left -= 1;
        Some(self.background(now))
    }
}

/// Source `s` of the population, scrambled so popular sources are not neighbours.
fn source_addr(s: u64, v6_share: f64) -> Addr {
    let h = crate::hash::hash64(s);
    if ((h >> 40) as f64 / (1u64 << 24) as f64) < v6_share {
        // 2a00::/12 global unicast, 64 bits of host.
        Addr::v6(0x2a00u128 << 112 | (s as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15) as u64 as u128)
    } else {
        // 10.0.0.0/8, bijective in the low 24 bits (multiplication by an odd number).
        Addr::v4(0x0a00_0000 | ((s as u32).wrapping_mul(2_654_435_761) & 0x00ff_ffff))
    }
}

/// Destination `k` of source `s`: public space only (64.0.0.0-99.255.255.255, 2600::/12).
fn dest_addr(s: u64, k: u64, v4: bool) -> Addr {
    let h = crate::hash::combine(crate::hash::hash64(s), k);
    if v4 {
        Addr::v4(0x4000_0000 + (h % 0x2400_0000) as u32)
    } else {
        Addr::v6(0x2600u128 << 112 | h as u128)
    }
}

/// Events just under, just over and far over each default threshold, with their truth.
fn plant_defaults(planters: &mut Vec<Planter>, events: &mut Vec<Event>) {
    let mut n = 0u32;
    let mut scanner = || {
        n += 1;
        Addr::v4(SCANNERS + n)
    };
    // Horizontal sweeps on port 445: FS1 (distinct dst > 100), FS4 (SYN flows > 100), FS7 (dst per port > 25).
    for (i, size) in [20u32, 23, 28, 50, 90, 110, 200, 1_000, 10_000]
        .into_iter()
        .enumerate()
    {
        let host = scanner();
        let target = Addr::v4(SWEEP_TARGETS + (i as u32) * 0x10_0000);
        let p = Planter::new(EventKind::HorizontalSweep, host, target, 445, size, 1);
        let flows = p.total();
        for (rule, count, threshold) in [("FS1", size, 100), ("FS4", size, 100), ("FS7", size, 25)]
        {
            events.push(Event {
                kind: EventKind::HorizontalSweep,
                host: host.to_string(),
                port: (rule == "FS7").then_some(445),
                peer: None,
                rule,
                true_count: count as u64,
                threshold,
                flows,
            });
        }
        planters.push(p);
    }
    // Vertical scans of one address: FS6 (distinct ports per pair > 64), FS4 (SYN flows > 100).
    for (i, size) in [30u32, 57, 71, 128, 1_000, 10_000].into_iter().enumerate() {
        let host = scanner();
        let target = Addr::v4(SCAN_TARGETS + i as u32);
        let p = Planter::new(EventKind::VerticalScan, host, target, 0, size, 1);
        let flows = p.total();
        for (rule, threshold) in [("FS6", 64), ("FS4", 100)] {
            events.push(Event {
                kind: EventKind::VerticalScan,
                host: host.to_string(),
                port: None,
                peer: (rule == "FS6").then(|| target.to_string()),
                rule,
                true_count: size as u64,
                threshold,
                flows,
            });
        }
        planters.push(p);
    }
    // SYN floods from spoofed sources at one victim: FS8 (distinct sources > 1000).
    for (i, size) in [500u32, 900, 1_100, 5_000, 50_000].into_iter().enumerate() {
        let victim = Addr::v4(FLOOD_VICTIMS + i as u32);
        let spoof = Addr::v4(SPOOFED + (i as u32) * 0x20_0000);
        let p = Planter::new(EventKind::SynFlood, spoof, victim, 80, size, 1);
        events.push(Event {
            kind: EventKind::SynFlood,
            host: victim.to_string(),
            port: None,
            peer: None,
            rule: "FS8",
            true_count: size as u64,
            threshold: 1_000,
            flows: p.total(),
        });
        planters.push(p);
    }
    // Hosts talking to reserved space: FS2 (any flow to a bogon).
    for (i, size) in [1u32, 5, 50].into_iter().enumerate() {
        let host = scanner();
        let target = Addr::v4(RESERVED + (i as u32) * 0x10_0000);
        let p = Planter::new(EventKind::BogonTalker, host, target, 161, size, 1);
        events.push(Event {
            kind: EventKind::BogonTalker,
            host: host.to_string(),
            port: None,
            peer: None,
            rule: "FS2",
            true_count: size as u64,
            threshold: 0,
            flows: p.total(),
        });
        planters.push(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    fn small() -> TrafficConfig {
        TrafficConfig {
            flows: 200_000,
            sources: 20_000,
            ..Default::default()
        }
    }

    #[test]
    fn deterministic_for_a_seed_and_in_time_order() {
        let (a, _) = Traffic::new(small());
        let (b, _) = Traffic::new(small());
        let a: Vec<FlowRecord> = a.take(5_000).collect();
        let b: Vec<FlowRecord> = b.take(5_000).collect();
        assert_eq!(a, b);
        assert!(a.windows(2).all(|w| w[0].first_ms <= w[1].first_ms));
        let (c, _) = Traffic::new(TrafficConfig { seed: 2, ..small() });
        assert_ne!(a, c.take(5_000).collect::<Vec<_>>());
    }

    #[test]
    fn spoofed_sources_are_distinct_and_apart_from_the_rest() {
        let (t, events) = Traffic::new(TrafficConfig {
            spoofed: 50_000,
            ..small()
        });
        let flood = events
            .iter()
            .find(|e| e.kind == EventKind::SpoofedFlood)
            .unwrap();
        let victim: Addr = flood.host.parse().unwrap();
        let mut spoofed = HashSet::new();
        for f in t.filter(|f| f.dst == victim) {
            assert_eq!(f.src.as_v4().unwrap() >> 28, 0xb, "{:?}", f.src);
            assert!(spoofed.insert(f.src), "a spoofed source twice: {:?}", f.src);
        }
        assert_eq!(spoofed.len() as u64, flood.true_count);
    }

    #[test]
    fn planted_truth_matches_the_stream() {
        let (t, events) = Traffic::new(small());
        let total = t.total();
        let flows: Vec<FlowRecord> = t.collect();
        assert_eq!(flows.len() as u64, total);
        let mut dsts: HashMap<Addr, HashSet<Addr>> = HashMap::new();
        let mut srcs: HashMap<Addr, HashSet<Addr>> = HashMap::new();
        let mut ports: HashMap<(Addr, Addr), HashSet<u16>> = HashMap::new();
        for f in &flows {
            dsts.entry(f.src).or_default().insert(f.dst);
            srcs.entry(f.dst).or_default().insert(f.src);
            ports.entry((f.src, f.dst)).or_default().insert(f.dst_port);
        }
        for e in &events {
            let host: Addr = e.host.parse().unwrap();
            let seen = match e.rule {
                "FS1" | "FS7" => dsts[&host].len() as u64,
                "FS8" => srcs[&host].len() as u64,
                "FS6" => ports[&(host, e.peer.as_ref().unwrap().parse().unwrap())].len() as u64,
                _ => continue,
            };
            assert_eq!(seen, e.true_count, "{e:?}");
        }
        let v6 = flows.iter().filter(|f| !f.src.is_v4()).count() as f64 / flows.len() as f64;
        assert!((0.03..0.25).contains(&v6), "IPv6 share {v6}");
    }
}
