//! Evidence: what a finding is about, beyond its count. The verify pass tallies, for every candidate, its bytes and
//! packets and its flows per peer, per destination port and per protocol, so a finding can name the addresses,
//! ports and protocols behind it without the operator rerunning nfdump.
//!
//! Per-value counts are exact up to [`PEER_LIMIT`] distinct values per key. Past it, only values whose hash starts
//! with `level` zero bits are kept, `level` rising until they fit: a sample by hash, so which values are kept
//! depends on the set of values alone, never on the order flows arrive in or on which worker counted them, and the
//! counts of the kept ones are still exact. The evidence then says it is a sample and its rate.

use crate::hash::{hash128, TableHasher};
use crate::record::{Addr, FlowRecord};
use std::collections::HashMap;
use std::hash::Hash;

/// Distinct peers whose flows a tally counts exactly before it samples them by hash. Every candidate holds its
/// peers until the verify pass ends, so this is the pass's memory per candidate: 1,024 peers take 64 KiB. At 4,096
/// (256 KiB each) the 1,088 candidate windows of a spoofed flood's victim took 300 MB in the verify pass, more than
/// the first pass's tables (docs/BENCHMARKS.md, "Bounded memory"). Past the limit the peers are a sample by hash,
/// not the heaviest: a key with more peers than this names a sample of them, and its evidence says at what rate.
pub const PEER_LIMIT: usize = 1024;
/// Distinct protocol and port pairs counted exactly: every port of a full TCP and UDP scan.
pub const PORT_LIMIT: usize = 1 << 17;

/// Flows per value, exact up to [`PEER_LIMIT`] values, then a sample of the values by hash.
#[derive(Clone, Debug)]
pub struct Sampled<V> {
    counts: HashMap<V, u64, TableHasher>,
    /// Values kept have a hash whose top `level` bits are zero.
    level: u32,
    limit: usize,
}

impl<V> Sampled<V> {
    /// Exact counts of up to `limit` values, then a sample by hash.
    pub fn with_limit(limit: usize) -> Sampled<V> {
        Sampled {
            counts: HashMap::with_hasher(TableHasher),
            level: 0,
            limit,
        }
    }
}

impl<V> Default for Sampled<V> {
    fn default() -> Self {
        Sampled::with_limit(PEER_LIMIT)
    }
}

/// The hash that decides whether a value is in the sample.
pub trait SampleKey: Copy + Eq + Hash + Ord {
    fn sample_hash(self) -> u64;
}

impl SampleKey for u128 {
    fn sample_hash(self) -> u64 {
        hash128(self)
    }
}

impl SampleKey for u32 {
    fn sample_hash(self) -> u64 {
        hash128(self as u128 | 1 << 64)
    }
}

#[inline]
fn kept(hash: u64, level: u32) -> bool {
    level == 0 || hash >> (64 - level) == 0
}

impl<V: SampleKey> Sampled<V> {
    #[inline]
    pub fn add(&mut self, v: V, flows: u64) {
        if !kept(v.sample_hash(), self.level) {
            return;
        }
        *self.counts.entry(v).or_default() += flows;
        if self.counts.len() > self.limit {
            self.thin();
        }
    }

    /// Raise the level until the kept values fit.
    fn thin(&mut self) {
        while self.counts.len() > self.limit {
            self.level += 1;
            let level = self.level;
            self.counts.retain(|v, _| kept(v.sample_hash(), level));
        }
    }

    pub fn merge(&mut self, other: Sampled<V>) {
        let level = self.level.max(other.level);
        if level > self.level {
            self.level = level;
            self.counts.retain(|v, _| kept(v.sample_hash(), level));
        }
        for (v, n) in other.counts {
            if kept(v.sample_hash(), level) {
                *self.counts.entry(v).or_default() += n;
            }
        }
        self.thin();
    }

    /// The `k` values with the most flows (ties by value), with their flows.
    pub fn top(&self, k: usize) -> Vec<(V, u64)> {
        let mut all: Vec<(V, u64)> = self.counts.iter().map(|(&v, &n)| (v, n)).collect();
        all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        all.truncate(k);
        all
    }

    /// The share of values kept: 1 when exact, 2^-level for a sample.
    pub fn rate(&self) -> f64 {
        (0.5f64).powi(self.level as i32)
    }

    /// Distinct values kept.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

/// Flows per protocol: few per key, so a short list.
#[derive(Clone, Debug, Default)]
pub struct Protocols(Vec<(u8, u64)>);

impl Protocols {
    #[inline]
    pub fn add(&mut self, proto: u8, flows: u64) {
        match self.0.iter_mut().find(|(p, _)| *p == proto) {
            Some((_, n)) => *n += flows,
            None => self.0.push((proto, flows)),
        }
    }

    pub fn merge(&mut self, other: Protocols) {
        for (p, n) in other.0 {
            self.add(p, n);
        }
    }

    /// Every protocol with its flows, most flows first (ties by number).
    pub fn sorted(&self) -> Vec<(u8, u64)> {
        let mut v = self.0.clone();
        v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v
    }
}

/// A protocol and a destination port, as evidence lists them.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct ProtoPort {
    pub proto: u8,
    pub port: u16,
}

impl ProtoPort {
    fn pack(self) -> u32 {
        (self.proto as u32) << 16 | self.port as u32
    }

    fn unpack(v: u32) -> ProtoPort {
        ProtoPort {
            proto: (v >> 16) as u8,
            port: v as u16,
        }
    }

    /// True for ICMP and ICMPv6, whose "port" is a type and code.
    pub fn is_icmp(self) -> bool {
        self.proto == crate::record::proto::ICMP || self.proto == crate::record::proto::ICMP6
    }
}

impl std::fmt::Display for ProtoPort {
    /// `tcp/445`, `udp/53`, `icmp 8/0`, `proto 47`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.proto {
            6 => write!(f, "tcp/{}", self.port),
            17 => write!(f, "udp/{}", self.port),
            132 => write!(f, "sctp/{}", self.port),
            1 => write!(f, "icmp {}/{}", self.port >> 8, self.port & 0xff),
            58 => write!(f, "icmp6 {}/{}", self.port >> 8, self.port & 0xff),
            p => write!(f, "proto {p}"),
        }
    }
}

/// Values a one-pass sample keeps per key for peers and for ports: enough for the default `--evidence 5`.
pub const SAMPLE_SLOTS: usize = 8;

/// The heaviest values of a stream by flows in `N` slots (Space-Saving, Metwally et al.): a value in a slot adds
/// its flows; a new one takes a free slot, or else the slot with the fewest flows, inheriting them as its possible
/// error. Every value with more than `flows / N` of the flows is kept, and a kept value's flows lie between its
/// count less its error and its count. [`Heavy::top`] gives the lower bounds, so a value seen once says 1 however
/// many it displaced. No heap.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Heavy<V, const N: usize> {
    values: [V; N],
    counts: [u64; N],
    errors: [u64; N],
    len: usize,
}

impl<V: Copy + Default + Eq + Ord, const N: usize> Default for Heavy<V, N> {
    fn default() -> Self {
        Heavy {
            values: [V::default(); N],
            counts: [0; N],
            errors: [0; N],
            len: 0,
        }
    }
}

impl<V: Copy + Default + Eq + Ord, const N: usize> Heavy<V, N> {
    #[inline]
    pub fn add(&mut self, v: V, flows: u64) {
        if let Some(i) = self.values[..self.len].iter().position(|&w| w == v) {
            self.counts[i] += flows;
            return;
        }
        if self.len < N {
            let i = self.len;
            (self.values[i], self.counts[i], self.errors[i]) = (v, flows, 0);
            self.len += 1;
            return;
        }
        let mut min = 0;
        for i in 1..N {
            if self.counts[i] < self.counts[min] {
                min = i;
            }
        }
        let floor = self.counts[min];
        (self.values[min], self.counts[min], self.errors[min]) = (v, floor + flows, floor);
    }

    /// The smallest count when every slot is taken: what a value not in the summary may have had.
    fn floor(&self) -> u64 {
        if self.len < N {
            0
        } else {
            self.counts.iter().copied().min().unwrap_or(0)
        }
    }

    /// Union with the summary of other flows of the same key: a value in one summary only may have had up to the
    /// other's floor there, which its count and error take on; the `N` largest counts stay.
    pub fn merge(&mut self, other: &Heavy<V, N>) {
        let (mine, theirs) = (self.floor(), other.floor());
        let mut all: Vec<(V, u64, u64)> = (0..self.len)
            .map(|i| (self.values[i], self.counts[i], self.errors[i]))
            .collect();
        for e in &mut all {
            if !other.values[..other.len].contains(&e.0) {
                (e.1, e.2) = (e.1 + theirs, e.2 + theirs);
            }
        }
        for i in 0..other.len {
            let (v, c, err) = (other.values[i], other.counts[i], other.errors[i]);
            match all.iter_mut().find(|e| e.0 == v) {
                Some(e) => (e.1, e.2) = (e.1 + c, e.2 + err),
                None => all.push((v, c + mine, err + mine)),
            }
        }
        all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        *self = Heavy::default();
        for (v, c, err) in all.into_iter().take(N) {
            let i = self.len;
            (self.values[i], self.counts[i], self.errors[i]) = (v, c, err);
            self.len += 1;
        }
    }

    /// The kept values with the flows each surely had (count less error), most first (ties by value).
    pub fn top(&self, k: usize) -> Vec<(V, u64)> {
        let mut v: Vec<(V, u64)> = (0..self.len)
            .map(|i| (self.values[i], self.counts[i] - self.errors[i]))
            .collect();
        v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.truncate(k);
        v
    }
}

/// What one pass keeps of a key's flows for its evidence, without a verify pass: the flows counted after the key
/// reached `from` (its rule's smallest threshold over two; see [`Evidence::sample_from`]), their bytes and packets,
/// and their heaviest peers, ports and protocols ([`Heavy`]). Fixed size, no heap: about 500 bytes, held only for
/// keys that came near a threshold, in a bounded pool per table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub from: u64,
    pub flows: u64,
    pub bytes: u64,
    pub packets: u64,
    peers: Heavy<u128, SAMPLE_SLOTS>,
    ports: Heavy<u32, SAMPLE_SLOTS>,
    protocols: Heavy<u8, 4>,
}

impl Sample {
    pub fn new(from: u64) -> Sample {
        Sample {
            from,
            flows: 0,
            bytes: 0,
            packets: 0,
            peers: Heavy::default(),
            ports: Heavy::default(),
            protocols: Heavy::default(),
        }
    }

    /// Count one flow of the key, whose other end is `peer`.
    #[inline]
    pub fn add(&mut self, rec: &FlowRecord, peer: Addr) {
        self.flows += 1;
        self.bytes = self.bytes.saturating_add(rec.bytes);
        self.packets = self.packets.saturating_add(rec.packets);
        self.peers.add(peer.0, 1);
        let port = ProtoPort {
            proto: rec.proto,
            port: rec.dst_port,
        };
        self.ports.add(port.pack(), 1);
        self.protocols.add(rec.proto, 1);
    }

    pub fn merge(&mut self, o: &Sample) {
        self.from = self.from.min(o.from);
        self.flows += o.flows;
        self.bytes = self.bytes.saturating_add(o.bytes);
        self.packets = self.packets.saturating_add(o.packets);
        self.peers.merge(&o.peers);
        self.ports.merge(&o.ports);
        self.protocols.merge(&o.protocols);
    }

    /// The evidence of the sample: its totals and its top `k` (at most [`SAMPLE_SLOTS`]) of each.
    pub fn evidence(&self, k: usize) -> Evidence {
        Evidence {
            bytes: self.bytes,
            packets: self.packets,
            peers: (self.peers.top(k).into_iter())
                .map(|(a, n)| (Addr(a), n))
                .collect(),
            ports: (self.ports.top(k).into_iter())
                .map(|(v, n)| (ProtoPort::unpack(v), n))
                .collect(),
            protocols: self.protocols.top(4),
            complete: false,
            peer_rate: 1.0,
            port_rate: 1.0,
            sample_from: Some(self.from),
            sampled_flows: self.flows,
        }
    }
}

/// What a finding is about, for the report: totals, and the top peers, ports and protocols by flows.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evidence {
    pub bytes: u64,
    pub packets: u64,
    /// The other end of the key's flows (for `src,dst` keys, the second address).
    pub peers: Vec<(Addr, u64)>,
    /// Protocols and destination ports (for ICMP, `type << 8 | code`, as nfdump stores them).
    pub ports: Vec<(ProtoPort, u64)>,
    pub protocols: Vec<(u8, u64)>,
    /// Counted from every flow of the key (the verify pass); false for a sample.
    pub complete: bool,
    /// The share of distinct peers the peer counts cover: 1 when all were counted, 2^-k when there were more than
    /// [`PEER_LIMIT`] and a sample by hash was kept.
    pub peer_rate: f64,
    pub port_rate: f64,
    /// One pass: the evidence is of a sample, the flows counted from when the key reached this (see [`Sample`]);
    /// `None` when complete, or when no sample was kept (more keys came near a threshold than the pool holds).
    pub sample_from: Option<u64>,
    /// Flows in the sample.
    pub sampled_flows: u64,
}

impl Evidence {
    /// The evidence of a one-pass finding whose key got no sample (the pool was full): no totals, nothing named.
    pub fn none() -> Evidence {
        Evidence {
            peer_rate: 1.0,
            port_rate: 1.0,
            ..Evidence::default()
        }
    }
}

/// Everything a tally gathers for the evidence of one key.
#[derive(Clone, Debug)]
pub struct Gathered {
    pub peers: Sampled<u128>,
    pub ports: Sampled<u32>,
    pub protocols: Protocols,
}

impl Default for Gathered {
    fn default() -> Self {
        Gathered {
            peers: Sampled::with_limit(PEER_LIMIT),
            ports: Sampled::with_limit(PORT_LIMIT),
            protocols: Protocols::default(),
        }
    }
}

impl Gathered {
    /// Count one flow of the key, whose other end is `peer`.
    #[inline]
    pub fn add(&mut self, rec: &FlowRecord, peer: Addr) {
        let flows = 1;
        self.peers.add(peer.0, flows);
        self.ports.add(
            ProtoPort {
                proto: rec.proto,
                port: rec.dst_port,
            }
            .pack(),
            flows,
        );
        self.protocols.add(rec.proto, flows);
    }

    pub fn merge(&mut self, other: Gathered) {
        self.peers.merge(other.peers);
        self.ports.merge(other.ports);
        self.protocols.merge(other.protocols);
    }

    /// The top `k` of each, with the totals.
    pub fn evidence(&self, k: usize, bytes: u64, packets: u64, complete: bool) -> Evidence {
        Evidence {
            bytes,
            packets,
            peers: self
                .peers
                .top(k)
                .into_iter()
                .map(|(a, n)| (Addr(a), n))
                .collect(),
            ports: self
                .ports
                .top(k)
                .into_iter()
                .map(|(v, n)| (ProtoPort::unpack(v), n))
                .collect(),
            protocols: self.protocols.sorted(),
            complete,
            peer_rate: self.peers.rate(),
            port_rate: self.ports.rate(),
            sample_from: None,
            sampled_flows: 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_exact_to_the_limit_and_the_top_is_by_flows_then_value() {
        let mut s = Sampled::<u32>::default();
        for p in 0..100u32 {
            s.add(p, 1 + (p % 7) as u64);
        }
        assert_eq!(s.rate(), 1.0);
        assert_eq!(s.top(3), vec![(6, 7), (13, 7), (20, 7)]);
    }

    /// Past the limit, the sample is the same whatever the order of the values and however they are split among
    /// workers, and the kept values' counts are exact.
    #[test]
    fn the_sample_depends_on_the_values_alone() {
        let values: Vec<u128> = (0..20_000u128).map(|i| i * 7_919).collect();
        let mut one = Sampled::<u128>::default();
        for &v in &values {
            one.add(v, 2);
        }
        assert!(one.rate() < 1.0 && one.len() <= PEER_LIMIT && one.len() > PEER_LIMIT / 4);
        let mut a = Sampled::<u128>::default();
        let mut b = Sampled::<u128>::default();
        for (i, &v) in values.iter().rev().enumerate() {
            if i % 3 == 0 {
                a.add(v, 1);
                a.add(v, 1);
            } else {
                b.add(v, 2);
            }
        }
        a.merge(b);
        assert_eq!(a.rate(), one.rate());
        assert_eq!(a.top(PEER_LIMIT), one.top(PEER_LIMIT));
        assert!(one.top(10).iter().all(|&(_, n)| n == 2));
    }

    /// Space-Saving: a value with more than flows / N of the flows is kept, and its lower bound is at most
    /// flows / N below its flows; merging two summaries keeps that of the union.
    #[test]
    fn heavy_values_are_kept_within_the_bound() {
        let mut h = Heavy::<u32, 4>::default();
        let mut flows = 0;
        for i in 0..1000u32 {
            // 7 takes 500 flows, 9 takes 250, the rest one each.
            let v = match i % 4 {
                0 | 2 => 7,
                1 => 9,
                _ => 100 + i,
            };
            h.add(v, 1);
            flows += 1;
        }
        let top = h.top(4);
        let bound = flows / 4;
        assert_eq!((top[0].0, top[1].0), (7, 9), "{top:?}");
        assert!(top[0].1 <= 500 && top[0].1 + bound >= 500, "{top:?}");
        assert!(top[1].1 <= 250 && top[1].1 + bound >= 250, "{top:?}");
        // Values seen once say 1, not the flows they displaced.
        assert!(top[2..].iter().all(|&(_, n)| n == 1), "{top:?}");
        let mut a = Heavy::<u32, 4>::default();
        let mut b = Heavy::<u32, 4>::default();
        for _ in 0..10 {
            a.add(1, 1);
            b.add(1, 2);
            b.add(2, 1);
        }
        a.merge(&b);
        assert_eq!(a.top(2), vec![(1, 30), (2, 10)]);
    }

    #[test]
    fn a_sample_says_what_it_covers() {
        let mut s = Sample::new(50);
        let rec = FlowRecord {
            proto: 6,
            dst_port: 22,
            bytes: 100,
            packets: 2,
            ..Default::default()
        };
        for peer in 0..20u32 {
            s.add(&rec, Addr::v4(peer % 3));
        }
        let e = s.evidence(5);
        assert_eq!((e.bytes, e.packets, e.sampled_flows), (2000, 40, 20));
        assert_eq!((e.sample_from, e.complete), (Some(50), false));
        assert_eq!(e.peers[0], (Addr::v4(0), 7));
        assert_eq!(e.ports, vec![(ProtoPort { proto: 6, port: 22 }, 20)]);
        assert_eq!(e.protocols, vec![(6, 20)]);
    }

    #[test]
    fn protocols_add_up_and_sort() {
        let mut p = Protocols::default();
        p.add(6, 3);
        p.add(17, 5);
        let mut q = Protocols::default();
        q.add(6, 4);
        p.merge(q);
        assert_eq!(p.sorted(), vec![(6, 7), (17, 5)]);
    }

    #[test]
    fn ports_read_as_operators_write_them() {
        let pp = |proto, port| ProtoPort { proto, port }.to_string();
        assert_eq!(pp(6, 445), "tcp/445");
        assert_eq!(pp(17, 53), "udp/53");
        assert_eq!(pp(1, 8 << 8), "icmp 8/0");
        assert_eq!(pp(58, 128 << 8), "icmp6 128/0");
        assert_eq!(pp(47, 0), "proto 47");
        assert_eq!(
            ProtoPort::unpack(
                ProtoPort {
                    proto: 17,
                    port: 65535
                }
                .pack()
            ),
            ProtoPort {
                proto: 17,
                port: 65535
            }
        );
    }
}
