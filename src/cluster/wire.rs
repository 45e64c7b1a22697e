//! How a [`Packet`] of refs and records crosses to another process: two byte strings in a fixed little-endian
//! layout (IPv4 addresses in 4 bytes) that bincode copies whole, rather than serde's call per field of every
//! record, decoded straight from the bytes Timely hands over. Between the workers of one process packets move
//! without being encoded at all.
//!
//! A record carries only what owners read: addresses, ports, protocol, times, packets, bytes and flows. Filters
//! (which read the flags, ToS, interfaces, exporter and sampling) run where the record was decoded, before it is
//! routed, so those fields arrive as their defaults: 18 of 68 bytes an IPv4 record no longer sends.

use crate::engine::shard::Ref;
use crate::record::{Addr, FlowRecord};
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Refs for one owner and the records they point into.
#[derive(Clone, Debug)]
pub struct Packet {
    pub owner: u32,
    pub records: Vec<FlowRecord>,
    pub refs: Vec<Ref>,
}

const RECORD_BYTES: usize = 16 + 16 + 8 * 4 + 2 * 2 + 1 + 4;
const REF_BYTES: usize = 8 + 4 + 2 + 1 + 1;

struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// A record's addresses take 4 bytes each when they are IPv4 (bit 0 of the first byte: src, bit 1: dst).
fn encode_records(records: &[FlowRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(records.len() * (1 + RECORD_BYTES));
    for r in records {
        // One record's bytes on the stack, then one copy: cheaper than a capacity check per field.
        let mut b = [0u8; 1 + RECORD_BYTES];
        let mut at = 1;
        let mut put = |bytes: &[u8]| {
            b[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        let (s4, d4) = (r.src.as_v4(), r.dst.as_v4());
        for (a, v4) in [(r.src, s4), (r.dst, d4)] {
            match v4 {
                Some(v4) => put(&v4.to_le_bytes()),
                None => put(&a.0.to_le_bytes()),
            }
        }
        for v in [r.first_ms, r.last_ms, r.packets, r.bytes] {
            put(&v.to_le_bytes());
        }
        put(&r.src_port.to_le_bytes());
        put(&r.dst_port.to_le_bytes());
        put(&[r.proto]);
        put(&r.flows.to_le_bytes());
        b[0] = s4.is_some() as u8 | (d4.is_some() as u8) << 1;
        // The whole buffer in one fixed-size move, then back to the bytes used: no copy call per record.
        let start = out.len();
        out.extend_from_slice(&b);
        out.truncate(start + at);
    }
    out
}

fn encode_refs(refs: &[Ref]) -> Vec<u8> {
    let mut out = Vec::with_capacity(refs.len() * REF_BYTES);
    for r in refs {
        // Built in registers, stored in one move: a copy per field cost 2 % of a cluster scan's CPU.
        let mut b = [0u8; REF_BYTES];
        b[..8].copy_from_slice(&r.hash.to_le_bytes());
        b[8..12].copy_from_slice(&r.idx.to_le_bytes());
        b[12..14].copy_from_slice(&r.rule.to_le_bytes());
        b[14] = r.side;
        b[15] = r.hop;
        out.extend_from_slice(&b);
    }
    out
}

/// A little-endian reader over one encoded record or ref.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take<const N: usize>(&mut self) -> [u8; N] {
        let (head, rest) = self.0.split_at(N);
        self.0 = rest;
        head.try_into().expect("N bytes")
    }
    fn u128(&mut self) -> u128 {
        u128::from_le_bytes(self.take())
    }
    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.take())
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.take())
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.take())
    }
    fn u8(&mut self) -> u8 {
        self.take::<1>()[0]
    }
}

fn decode_records(bytes: &[u8]) -> Option<Vec<FlowRecord>> {
    let mut c = Cursor(bytes);
    let mut out = Vec::with_capacity(bytes.len() / (RECORD_BYTES - 24));
    while !c.0.is_empty() {
        let flags = *c.0.first()?;
        let len = 1 + RECORD_BYTES - 32
            + [16, 4][(flags & 1) as usize]
            + [16, 4][(flags >> 1 & 1) as usize];
        if c.0.len() < len || flags > 3 {
            return None;
        }
        c.u8();
        let mut addr = |v4: bool| {
            if v4 {
                Addr::v4(c.u32())
            } else {
                Addr(c.u128())
            }
        };
        let (src, dst) = (addr(flags & 1 != 0), addr(flags & 2 != 0));
        out.push(FlowRecord {
            src,
            dst,
            first_ms: c.u64(),
            last_ms: c.u64(),
            packets: c.u64(),
            bytes: c.u64(),
            src_port: c.u16(),
            dst_port: c.u16(),
            proto: c.u8(),
            flows: c.u32(),
            ..FlowRecord::default()
        });
    }
    Some(out)
}

fn decode_refs(bytes: &[u8]) -> Option<Vec<Ref>> {
    let (refs, rest) = bytes.as_chunks::<REF_BYTES>();
    if !rest.is_empty() {
        return None;
    }
    let refs = refs.iter().map(|b| Ref {
        hash: u64::from_le_bytes(b[..8].try_into().expect("8 of 16 bytes")),
        idx: u32::from_le_bytes(b[8..12].try_into().expect("4 of 16 bytes")),
        rule: u16::from_le_bytes([b[12], b[13]]),
        side: b[14],
        hop: b[15],
    });
    Some(refs.collect())
}

impl Serialize for Packet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(3)?;
        t.serialize_element(&self.owner)?;
        t.serialize_element(&Bytes(&encode_records(&self.records)))?;
        t.serialize_element(&Bytes(&encode_refs(&self.refs)))?;
        t.end()
    }
}

/// Decoded straight from the bytes the format gives (borrowed or not), without copying them first.
struct Decoded<T>(T);

/// What a byte string of a packet decodes to.
trait FromWire: Sized {
    const WHAT: &'static str;
    fn from_wire(bytes: &[u8]) -> Option<Self>;
}

impl FromWire for Vec<FlowRecord> {
    const WHAT: &'static str = "records of a packet cut short";
    fn from_wire(bytes: &[u8]) -> Option<Self> {
        decode_records(bytes)
    }
}

/// Refs before their range is checked against the packet's records.
struct RawRefs(Vec<Ref>);

impl FromWire for RawRefs {
    const WHAT: &'static str = "refs of a packet cut short";
    fn from_wire(bytes: &[u8]) -> Option<Self> {
        decode_refs(bytes).map(RawRefs)
    }
}

impl<'de, T: FromWire> Deserialize<'de> for Decoded<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Decoded<T>, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: FromWire> Visitor<'de> for V<T> {
            type Value = Decoded<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("bytes")
            }
            fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Decoded<T>, E> {
                T::from_wire(v)
                    .map(Decoded)
                    .ok_or_else(|| E::custom(T::WHAT))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Decoded<T>, A::Error> {
                // Formats that write bytes as a sequence (JSON, in the tests).
                let mut out = Vec::new();
                while let Some(b) = seq.next_element()? {
                    out.push(b);
                }
                self.visit_bytes(&out)
            }
        }
        d.deserialize_bytes(V(std::marker::PhantomData))
    }
}

impl<'de> Deserialize<'de> for Packet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Packet, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Packet;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a packet of records and refs")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Packet, A::Error> {
                let missing = || de::Error::custom("a packet cut short");
                let owner: u32 = seq.next_element()?.ok_or_else(missing)?;
                let Decoded(records): Decoded<Vec<FlowRecord>> =
                    seq.next_element()?.ok_or_else(missing)?;
                let Decoded(RawRefs(refs)): Decoded<RawRefs> =
                    seq.next_element()?.ok_or_else(missing)?;
                if refs.iter().any(|r| r.idx as usize >= records.len()) {
                    return Err(de::Error::custom("refs of a packet out of range"));
                }
                Ok(Packet {
                    owner,
                    records,
                    refs,
                })
            }
        }
        d.deserialize_tuple(3, V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_cross_intact() {
        let records: Vec<FlowRecord> = (0..50u32)
            .map(|i| FlowRecord {
                src: if i % 3 == 0 {
                    Addr(1 << 100 | i as u128)
                } else {
                    Addr::v4(i)
                },
                dst: Addr(u128::MAX - i as u128),
                first_ms: 1_764_126_000_000 + i as u64,
                last_ms: u64::MAX - i as u64,
                packets: i as u64 * 3,
                bytes: i as u64 * 1500,
                src_port: i as u16,
                dst_port: 65_535 - i as u16,
                proto: 6,
                tcp_flags: 0x12,
                src_tos: 7,
                input: 1,
                output: 2,
                exporter: 3,
                sampling: 4,
                flows: i,
            })
            .collect();
        let refs: Vec<Ref> = (0..80u32)
            .map(|i| Ref {
                hash: crate::hash::hash128(i as u128),
                idx: i % 50,
                rule: (i % 7) as u16,
                side: (i % 2) as u8,
                hop: (i % 3) as u8,
            })
            .collect();
        let p = Packet {
            owner: 3,
            records,
            refs,
        };
        let bytes = serde_json::to_vec(&p).unwrap();
        let back: Packet = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(p.owner, back.owner);
        // What owners read crosses; what only filters read (applied before routing) arrives as the default.
        let owners_read = |r: &FlowRecord| FlowRecord {
            tcp_flags: 0,
            src_tos: 0,
            input: 0,
            output: 0,
            exporter: 0,
            sampling: FlowRecord::default().sampling,
            ..*r
        };
        let sent: Vec<FlowRecord> = p.records.iter().map(owners_read).collect();
        assert_eq!(sent, back.records);
        assert_eq!(
            p.refs
                .iter()
                .map(|r| (r.hash, r.idx, r.rule, r.side, r.hop))
                .collect::<Vec<_>>(),
            back.refs
                .iter()
                .map(|r| (r.hash, r.idx, r.rule, r.side, r.hop))
                .collect::<Vec<_>>()
        );
    }
}
