//! Planted events: scans, floods and leaks with a known true count, mixed into background traffic.

use super::rng::Rng;
use crate::record::{proto, tcp, Addr, FlowRecord};
use serde::Serialize;

/// What kind of sign an event shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EventKind {
    /// SYNs from one host to many addresses on one port: FS1, FS4, FS7.
    HorizontalSweep,
    /// SYNs from one host to many ports of one address: FS4, FS6.
    VerticalScan,
    /// SYNs from many spoofed sources to one address: FS8.
    SynFlood,
    /// One SYN from each of many forged sources, spread over 176.0.0.0/4, at one victim: what a spoofed flood
    /// costs a tracker that gives every source an entry (`gen --spoofed`).
    SpoofedFlood,
    /// A host sending to non-routable space: FS2.
    BogonTalker,
}

/// One planted event and the truth about it, as written beside a generated capture.
#[derive(Debug, Clone, Serialize)]
pub struct Event {
    pub kind: EventKind,
    /// The host the rule is keyed on (the scanner, or the flood's victim).
    pub host: String,
    /// The port of `src,dport` keys, or the destination of `src,dst` keys.
    pub port: Option<u16>,
    pub peer: Option<String>,
    /// Rule id and the count that rule sees for this key.
    pub rule: &'static str,
    pub true_count: u64,
    pub threshold: u64,
    /// Flows this event adds.
    pub flows: u64,
}

/// An event's flows, produced one at a time so they can be interleaved with background traffic.
#[derive(Debug, Clone)]
pub struct Planter {
    kind: EventKind,
    host: Addr,
    target: Addr,
    port: u16,
    /// Number of distinct things (addresses, ports, sources) the event reaches.
    size: u32,
    /// Flows per distinct thing (each probe may be retried).
    repeat: u32,
    next: u64,
}

impl Planter {
    pub fn new(
        kind: EventKind,
        host: Addr,
        target: Addr,
        port: u16,
        size: u32,
        repeat: u32,
    ) -> Planter {
        Planter {
            kind,
            host,
            target,
            port,
            size,
            repeat: repeat.max(1),
            next: 0,
        }
    }

    pub fn total(&self) -> u64 {
        self.size as u64 * self.repeat as u64
    }

    pub fn remaining(&self) -> u64 {
        self.total() - self.next
    }

    /// The next flow of the event, timed at `now_ms`.
    pub fn next_flow(&mut self, rng: &mut Rng, now_ms: u64) -> Option<FlowRecord> {
        if self.next >= self.total() {
            return None;
        }
        let i = (self.next % self.size as u64) as u32;
        self.next += 1;
        let mut f = FlowRecord {
            src: self.host,
            dst: self.target,
            first_ms: now_ms,
            last_ms: now_ms,
            packets: 1,
            bytes: 44,
            src_port: 1024 + rng.below(60_000) as u16,
            dst_port: self.port,
            proto: proto::TCP,
            tcp_flags: tcp::SYN,
            sampling: 1,
            ..Default::default()
        };
        match self.kind {
            EventKind::HorizontalSweep => f.dst = offset(self.target, i),
            EventKind::VerticalScan => f.dst_port = 1 + i as u16,
            EventKind::SynFlood => {
                f.src = offset(self.host, i);
                f.dst = self.target;
            }
            EventKind::SpoofedFlood => {
                // A bijection of the 2^28 addresses of 176.0.0.0/4: every source distinct, none of them in the
                // ranges the background and the other events use.
                f.src = Addr::v4(0xb000_0000 | (i.wrapping_mul(0x9e37_79b1) & 0x0fff_ffff));
                f.dst = self.target;
            }
            EventKind::BogonTalker => {
                f.dst = offset(self.target, i);
                f.proto = proto::UDP;
                f.tcp_flags = 0;
                f.bytes = 80;
            }
        }
        Some(f)
    }
}

/// The `i`-th address after `a`, spread so consecutive probes are not adjacent (as real sweeps randomise order).
fn offset(a: Addr, i: u32) -> Addr {
    match a.as_v4() {
        Some(v4) => Addr::v4(v4.wrapping_add(i.wrapping_mul(40_503) & 0x00ff_ffff)),
        None => Addr::v6(a.0.wrapping_add(i as u128 * 40_503)),
    }
}
