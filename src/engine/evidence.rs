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

/// Distinct peers whose flows a tally counts exactly before it samples them by hash.
pub const PEER_LIMIT: usize = 4096;
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
