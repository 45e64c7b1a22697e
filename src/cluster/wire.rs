//! How a [`Packet`] of refs and records crosses to another process: two byte strings in a fixed little-endian
//! layout that bincode copies whole, rather than serde's call per field of every record, decoded straight from the
//! bytes Timely hands over. A packet for an owner in another process is encoded as it is built, straight from the
//! decoded batch; between the workers of one process packets move without being encoded at all.
//!
//! A record carries only what owners read: addresses, ports, protocol, times, packets, bytes and flows. Filters
//! (which read the flags, ToS, interfaces, exporter and sampling) run where the record was decoded, before it is
//! routed, so those fields arrive as their defaults. Most records take 30 bytes: IPv4 addresses in 4 bytes, the
//! start as an offset from the packet's first, the end as a duration, packets and bytes in 32 bits, and one flow
//! left implicit (see [`Flags`]). A ref takes 3 bytes: its record and its side and hop, its rule written once for
//! each run of refs of one rule, and its key's hash computed again by the owner from the same fields. An owner
//! refuses a packet with a ref the router could not have sent (past its records, or a rule, side or window its
//! record does not have); `fuzz/fuzz_targets/wire.rs` feeds it any bytes.

use crate::engine::shard::Ref;
use crate::engine::CompiledRule;
use crate::record::{Addr, FlowRecord};
use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Refs for one owner and the records they point into.
#[derive(Clone, Debug)]
pub struct Packet {
    pub owner: u32,
    body: Body,
}

#[derive(Clone, Debug)]
enum Body {
    /// For an owner in this process: records and refs as the engine applies them.
    Moved {
        records: Vec<FlowRecord>,
        refs: Vec<Ref>,
    },
    /// For an owner in another process: the wire's two byte strings, written as the packet was built.
    Encoded { records: Vec<u8>, refs: Vec<u8> },
    /// Decoded at the owner, before it hashes each ref's key again: hashing is cheaper than sending 8 bytes a
    /// ref through both kernels.
    Received {
        records: Vec<FlowRecord>,
        refs: Vec<Ref>,
    },
}

impl Packet {
    /// The refs of `refs` (into `batch`) with a copy of each record they name, for an owner in this process.
    pub fn moved(
        owner: usize,
        batch: &[FlowRecord],
        refs: &mut Vec<Ref>,
        copied: &mut Vec<u32>,
    ) -> Packet {
        // At most one record per ref: sized once, never grown by copying.
        let mut records = Vec::with_capacity(refs.len());
        crate::engine::copy_named(batch, refs, &mut records, copied);
        Packet {
            owner: owner as u32,
            body: Body::Moved {
                records,
                refs: std::mem::take(refs),
            },
        }
    }

    /// The same packet for an owner in another process, encoded straight from the batch: each record a ref names
    /// is written once, and the refs (renumbered in place) point at the records in the order written.
    pub fn encoded(
        owner: usize,
        batch: &[FlowRecord],
        refs: &mut [Ref],
        copied: &mut Vec<u32>,
    ) -> Packet {
        assert!(
            batch.len() <= MAX_RECORDS,
            "a batch of at most {MAX_RECORDS} records"
        );
        let base = refs.first().map_or(0, |r| batch[r.idx as usize].first_ms);
        let mut records = RecordWriter::with_capacity(refs.len(), base);
        crate::engine::name_records(batch, refs, copied, |r| records.push(r));
        Packet {
            owner: owner as u32,
            body: Body::Encoded {
                records: records.out,
                refs: encode_refs(refs),
            },
        }
    }

    /// The records and refs an owner applies, each ref with its key's hash under `rules`; an error when a ref
    /// names a rule `rules` does not have (a peer with other definitions, which the greeting refuses).
    pub fn into_parts(self, rules: &[CompiledRule]) -> Result<(Vec<FlowRecord>, Vec<Ref>), String> {
        let (records, refs) = match self.body {
            Body::Moved { records, refs } => return Ok((records, refs)),
            Body::Received { records, refs } => (records, refs),
            // Timely moves packets within a process without serializing them, so an encoded one reaches its
            // owner only if a worker took a local owner for a remote one; decoding it keeps that correct.
            Body::Encoded { records, refs } => (
                decode_records(&records).expect("this process encoded it"),
                decode_refs(&refs).expect("this process encoded it"),
            ),
        };
        let refs = hashed(&records, refs, rules)?;
        Ok((records, refs))
    }
}

/// Each ref's key hash, as the worker that routed it computed it (from the same fields of the same record).
fn hashed(
    records: &[FlowRecord],
    mut refs: Vec<Ref>,
    rules: &[CompiledRule],
) -> Result<Vec<Ref>, String> {
    for r in &mut refs {
        let Some(rule) = rules.get(r.rule as usize) else {
            return Err(format!(
                "a packet names rule {} of {}: the processes of this cluster run different definitions",
                r.rule,
                rules.len()
            ));
        };
        let rec = &records[r.idx as usize];
        // What the router could have sent: a side the rule's key has, a window the flow falls in.
        if r.side >= rule.sides() || r.hop >= rule.hops(rec) {
            return Err(format!(
                "a packet names side {} and window {} of rule {}, which has {} and {} for its record",
                r.side,
                r.hop,
                r.rule,
                rule.sides(),
                rule.hops(rec)
            ));
        }
        r.hash = rule.key_hash(rec, r.side, r.hop);
    }
    Ok(refs)
}

/// The first byte of a record on the wire: which of its fields take the short form.
struct Flags;

impl Flags {
    /// The source address is IPv4 (4 bytes, else 16).
    const SRC_V4: u8 = 1;
    /// The destination address is IPv4.
    const DST_V4: u8 = 2;
    /// The start is a signed 32-bit offset from the packet's base time, the end a 32-bit duration after the
    /// start, packets and bytes take 32 bits, and flows is 1 (omitted). Else the start, end, packets and bytes
    /// take 64 bits and flows 32.
    const SHORT: u8 = 4;
    const ALL: u8 = 7;
}

/// The records' byte string opens with the packet's base time (the first record's start), 8 bytes.
const BASE_BYTES: usize = 8;
/// An IPv4 record in the short form: flags, two addresses, start, duration, packets, bytes, ports, protocol.
const SHORT_BYTES: usize = 1 + 4 + 4 + 4 + 4 + 4 + 4 + 2 + 2 + 1;
/// The longest record: two IPv6 addresses, every field at full width.
const LONG_BYTES: usize = 1 + 16 + 16 + 8 * 4 + 2 + 2 + 1 + 4;
/// A ref: its record's index in the packet (a packet holds at most one batch's records) and its side (bit 7)
/// and hop. Its rule is in the header of its run (refs come grouped by rule); its hash is not sent.
const REF_BYTES: usize = 2 + 1;
/// The most records a packet holds: a ref's index has 16 bits (decoders hand over batches of 1,024).
const MAX_RECORDS: usize = 1 << 16;
/// A run of refs of one rule: the rule and how many refs follow.
const RUN_BYTES: usize = 2 + 2;
// A hop takes 7 bits of a ref's last byte, its side (0 or 1) the eighth.
const _: () = assert!(crate::rules::rule::MAX_HOPS < 128);

struct Bytes<'a>(&'a [u8]);

impl Serialize for Bytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// The short form's start offset, duration, packets and bytes, when the record fits it.
fn short_fields(r: &FlowRecord, base: u64) -> Option<(i32, u32, u32, u32)> {
    let start = i32::try_from(r.first_ms.wrapping_sub(base) as i64).ok()?;
    let dur = u32::try_from(r.last_ms.checked_sub(r.first_ms)?).ok()?;
    (r.flows == 1).then_some(())?;
    Some((
        start,
        dur,
        u32::try_from(r.packets).ok()?,
        u32::try_from(r.bytes).ok()?,
    ))
}

/// Writes a packet's records: its base time, then each record.
struct RecordWriter {
    out: Vec<u8>,
    base: u64,
}

impl RecordWriter {
    fn with_capacity(records: usize, base: u64) -> RecordWriter {
        let mut out = Vec::with_capacity(BASE_BYTES + records * SHORT_BYTES);
        out.extend_from_slice(&base.to_le_bytes());
        RecordWriter { out, base }
    }

    fn push(&mut self, r: &FlowRecord) {
        let (s4, d4, short) = (r.src.as_v4(), r.dst.as_v4(), short_fields(r, self.base));
        if let (Some(s4), Some(d4), Some((start, dur, packets, bytes))) = (s4, d4, short) {
            // Most records: every field at a fixed offset, stored in one move.
            let mut b = [0u8; SHORT_BYTES];
            b[0] = Flags::ALL;
            b[1..5].copy_from_slice(&s4.to_le_bytes());
            b[5..9].copy_from_slice(&d4.to_le_bytes());
            b[9..13].copy_from_slice(&start.to_le_bytes());
            b[13..17].copy_from_slice(&dur.to_le_bytes());
            b[17..21].copy_from_slice(&packets.to_le_bytes());
            b[21..25].copy_from_slice(&bytes.to_le_bytes());
            b[25..27].copy_from_slice(&r.src_port.to_le_bytes());
            b[27..29].copy_from_slice(&r.dst_port.to_le_bytes());
            b[29] = r.proto;
            self.out.extend_from_slice(&b);
            return;
        }
        let mut b = [0u8; LONG_BYTES];
        let mut at = 1;
        let mut put = |bytes: &[u8]| {
            b[at..at + bytes.len()].copy_from_slice(bytes);
            at += bytes.len();
        };
        for (a, v4) in [(r.src, s4), (r.dst, d4)] {
            match v4 {
                Some(v4) => put(&v4.to_le_bytes()),
                None => put(&a.0.to_le_bytes()),
            }
        }
        match short {
            Some((start, dur, packets, bytes)) => {
                put(&start.to_le_bytes());
                for v in [dur, packets, bytes] {
                    put(&v.to_le_bytes());
                }
            }
            None => {
                for v in [r.first_ms, r.last_ms, r.packets, r.bytes] {
                    put(&v.to_le_bytes());
                }
                put(&r.flows.to_le_bytes());
            }
        }
        put(&r.src_port.to_le_bytes());
        put(&r.dst_port.to_le_bytes());
        put(&[r.proto]);
        let bit = |set: bool, flag: u8| if set { flag } else { 0 };
        b[0] = bit(s4.is_some(), Flags::SRC_V4)
            | bit(d4.is_some(), Flags::DST_V4)
            | bit(short.is_some(), Flags::SHORT);
        self.out.extend_from_slice(&b[..at]);
    }
}

fn encode_records(records: &[FlowRecord]) -> Vec<u8> {
    let mut out =
        RecordWriter::with_capacity(records.len(), records.first().map_or(0, |r| r.first_ms));
    for r in records {
        out.push(r);
    }
    out.out
}

/// Writes refs as runs of one rule each.
struct RefWriter {
    out: Vec<u8>,
    /// Where the current run's header is, its rule and its length.
    run: Option<(usize, u16, u16)>,
}

impl RefWriter {
    fn with_capacity(refs: usize) -> RefWriter {
        RefWriter {
            out: Vec::with_capacity(refs * REF_BYTES + 8 * RUN_BYTES),
            run: None,
        }
    }

    fn push(&mut self, r: &Ref) {
        match &mut self.run {
            Some((_, rule, n)) if *rule == r.rule && *n < u16::MAX => *n += 1,
            _ => {
                self.close_run();
                self.run = Some((self.out.len(), r.rule, 1));
                self.out.extend_from_slice(&[0; RUN_BYTES]);
            }
        }
        debug_assert!(r.side < 2 && r.hop < 128 && (r.idx as usize) < MAX_RECORDS);
        let idx = (r.idx as u16).to_le_bytes();
        self.out
            .extend_from_slice(&[idx[0], idx[1], r.side << 7 | r.hop]);
    }

    fn close_run(&mut self) {
        if let Some((at, rule, n)) = self.run.take() {
            self.out[at..at + 2].copy_from_slice(&rule.to_le_bytes());
            self.out[at + 2..at + 4].copy_from_slice(&n.to_le_bytes());
        }
    }

    fn finish(mut self) -> Vec<u8> {
        self.close_run();
        self.out
    }
}

fn encode_refs(refs: &[Ref]) -> Vec<u8> {
    let mut out = RefWriter::with_capacity(refs.len());
    for r in refs {
        out.push(r);
    }
    out.finish()
}

/// A little-endian reader over one encoded record.
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

/// The length of a record that starts with `flags`.
fn record_len(flags: u8) -> usize {
    let addr = |v4: bool| if v4 { 4 } else { 16 };
    let times_and_sizes = if flags & Flags::SHORT != 0 {
        4 * 4
    } else {
        8 * 4 + 4
    };
    1 + addr(flags & Flags::SRC_V4 != 0)
        + addr(flags & Flags::DST_V4 != 0)
        + times_and_sizes
        + 2
        + 2
        + 1
}

fn decode_records(bytes: &[u8]) -> Option<Vec<FlowRecord>> {
    let (base, mut bytes) = bytes.split_first_chunk::<BASE_BYTES>()?;
    let base = u64::from_le_bytes(*base);
    let start = |offset: i32| base.wrapping_add(offset as i64 as u64);
    let mut out = Vec::with_capacity(bytes.len() / SHORT_BYTES);
    while let Some(&flags) = bytes.first() {
        if flags > Flags::ALL {
            return None;
        }
        if let (Flags::ALL, Some((b, rest))) = (flags, bytes.split_first_chunk::<SHORT_BYTES>()) {
            // Most records: fixed offsets, no cursor.
            let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
            let first_ms = start(u32_at(9) as i32);
            out.push(FlowRecord {
                src: Addr::v4(u32_at(1)),
                dst: Addr::v4(u32_at(5)),
                first_ms,
                last_ms: first_ms.saturating_add(u32_at(13) as u64),
                packets: u32_at(17) as u64,
                bytes: u32_at(21) as u64,
                src_port: u16::from_le_bytes([b[25], b[26]]),
                dst_port: u16::from_le_bytes([b[27], b[28]]),
                proto: b[29],
                flows: 1,
                ..FlowRecord::default()
            });
            bytes = rest;
            continue;
        }
        let len = record_len(flags);
        if bytes.len() < len {
            return None;
        }
        let (record, rest) = bytes.split_at(len);
        bytes = rest;
        let mut c = Cursor(&record[1..]);
        let mut addr = |v4: bool| {
            if v4 {
                Addr::v4(c.u32())
            } else {
                Addr(c.u128())
            }
        };
        let (src, dst) = (
            addr(flags & Flags::SRC_V4 != 0),
            addr(flags & Flags::DST_V4 != 0),
        );
        let (first_ms, last_ms, packets, bytes, flows) = if flags & Flags::SHORT != 0 {
            let first_ms = start(c.u32() as i32);
            let dur = c.u32() as u64;
            (
                first_ms,
                first_ms.saturating_add(dur),
                c.u32() as u64,
                c.u32() as u64,
                1,
            )
        } else {
            (c.u64(), c.u64(), c.u64(), c.u64(), c.u32())
        };
        out.push(FlowRecord {
            src,
            dst,
            first_ms,
            last_ms,
            packets,
            bytes,
            src_port: c.u16(),
            dst_port: c.u16(),
            proto: c.u8(),
            flows,
            ..FlowRecord::default()
        });
    }
    Some(out)
}

/// Refs without their hashes (the owner hashes their keys again: [`Packet::into_parts`]).
fn decode_refs(mut bytes: &[u8]) -> Option<Vec<Ref>> {
    let mut out = Vec::with_capacity(bytes.len() / REF_BYTES);
    while let Some((head, rest)) = bytes.split_first_chunk::<RUN_BYTES>() {
        let rule = u16::from_le_bytes([head[0], head[1]]);
        let n = u16::from_le_bytes([head[2], head[3]]) as usize;
        let (run, rest) = rest.split_at_checked(n * REF_BYTES)?;
        let (refs, _) = run.as_chunks::<REF_BYTES>();
        out.extend(refs.iter().map(|b| Ref {
            hash: 0,
            idx: u16::from_le_bytes([b[0], b[1]]) as u32,
            rule,
            side: b[2] >> 7,
            hop: b[2] & 0x7f,
        }));
        bytes = rest;
    }
    bytes.is_empty().then_some(out)
}

impl Serialize for Packet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(3)?;
        t.serialize_element(&self.owner)?;
        match &self.body {
            Body::Encoded { records, refs } => {
                t.serialize_element(&Bytes(records))?;
                t.serialize_element(&Bytes(refs))?;
            }
            Body::Moved { records, refs } | Body::Received { records, refs } => {
                assert!(
                    records.len() <= MAX_RECORDS,
                    "a packet of at most {MAX_RECORDS} records"
                );
                t.serialize_element(&Bytes(&encode_records(records)))?;
                t.serialize_element(&Bytes(&encode_refs(refs)))?;
            }
        }
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
                    body: Body::Received { records, refs },
                })
            }
        }
        d.deserialize_tuple(3, V)
    }
}

/// The fuzz target `wire`'s body (`crate::fuzz`): any bytes as a message of packets as Timely hands it over
/// (bincode of a `Vec<Packet>`), applied under the built-in rules. Errors are fine, panics are not; returns the
/// records received.
pub fn fuzz(data: &[u8]) -> usize {
    static RULES: std::sync::OnceLock<Vec<CompiledRule>> = std::sync::OnceLock::new();
    let rules = RULES.get_or_init(|| {
        crate::rules::Definitions::builtin()
            .rules
            .iter()
            .map(CompiledRule::new)
            .collect()
    });
    let Ok(packets) = bincode::deserialize::<Vec<Packet>>(data) else {
        return 0;
    };
    packets
        .into_iter()
        .filter_map(|p| p.into_parts(rules).ok())
        .map(|(records, _)| records.len())
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records in every form the wire has: IPv4 and IPv6 at each end, and each reason a record takes the long form.
    fn batch() -> Vec<FlowRecord> {
        (0..60u32)
            .map(|i| {
                // Starts after and before the first record's, and some beyond 2^31 ms from it.
                let first_ms = match i % 17 {
                    16 => 1_764_126_000_000 + (3 << 31),
                    15 => 1_764_126_000_000 - (3 << 31),
                    _ => 1_764_126_000_000 + i as u64 * 997 % 5000 - 2500,
                };
                FlowRecord {
                    src: if i % 3 == 0 {
                        Addr(1 << 100 | i as u128)
                    } else {
                        Addr::v4(i)
                    },
                    dst: if i % 4 == 0 {
                        Addr(u128::MAX - i as u128)
                    } else {
                        Addr::v4(u32::MAX - i)
                    },
                    first_ms,
                    last_ms: match i % 5 {
                        0 => u64::MAX - i as u64,
                        1 => first_ms - 1,
                        _ => first_ms + i as u64 * 1000,
                    },
                    packets: if i % 7 == 0 { 1 << 40 } else { i as u64 * 3 },
                    bytes: if i % 11 == 0 {
                        1 << 33
                    } else {
                        i as u64 * 1500
                    },
                    src_port: i as u16,
                    dst_port: 65_535 - i as u16,
                    proto: if i % 6 == 5 { 1 } else { 6 },
                    tcp_flags: 0x12,
                    src_tos: 7,
                    input: 1,
                    output: 2,
                    exporter: 3,
                    sampling: 4,
                    flows: if i % 13 == 0 { i } else { 1 },
                }
            })
            .collect()
    }

    /// What owners read crosses; what only filters read (applied before routing) arrives as the default.
    fn owners_read(r: &FlowRecord) -> FlowRecord {
        FlowRecord {
            tcp_flags: 0,
            src_tos: 0,
            input: 0,
            output: 0,
            exporter: 0,
            sampling: FlowRecord::default().sampling,
            ..*r
        }
    }

    /// The built-in rules and rules of every other key form (`host` keys with two sides, prefixes, hopping
    /// windows), compiled.
    fn rules() -> Vec<CompiledRule> {
        let more = crate::rules::Definitions::parse(
            "[[rule]]\nid = \"H\"\nkey = \"host\"\ncount = \"distinct dport\"\nabove = 5\n\
             [[rule]]\nid = \"P\"\nkey = \"src/24/64,dport\"\ncount = \"distinct dst\"\nabove = 5\n\
             [[rule]]\nid = \"W\"\nkey = \"dst\"\ncount = \"bytes\"\nabove = 5\nwindow = \"1m\"\nstep = \"10s\"\n",
            "t",
            None,
        )
        .unwrap();
        crate::rules::Definitions::builtin()
            .rules
            .iter()
            .chain(&more.rules)
            .map(CompiledRule::new)
            .collect()
    }

    #[test]
    fn packets_cross_intact() {
        let batch = batch();
        let rules = rules();
        let v4 = |r: &FlowRecord| r.src.is_v4() && r.dst.is_v4();
        let base = batch[0].first_ms;
        assert!(batch
            .iter()
            .any(|r| short_fields(r, base).is_some() && v4(r)));
        assert!(batch
            .iter()
            .any(|r| short_fields(r, base).is_some() && !v4(r)));
        assert!(batch
            .iter()
            .any(|r| short_fields(r, base).is_none() && v4(r)));
        // Refs name records out of order and more than once, in runs of one rule and a rule that comes back,
        // each with its key's hash as the router computes it.
        let refs: Vec<Ref> = (0..200u32)
            .map(|i| {
                let idx = i * 7 % 60;
                let rule = (i / 9) as usize % rules.len();
                let c = &rules[rule];
                let rec = &batch[idx as usize];
                let side = (i as u8) % c.sides();
                let hop = (i as u8) % c.hops(rec);
                Ref {
                    hash: c.key_hash(rec, side, hop),
                    idx,
                    rule: rule as u16,
                    side,
                    hop,
                }
            })
            .collect();
        let mut copied = Vec::new();
        let encoded = Packet::encoded(3, &batch, &mut refs.clone(), &mut copied);
        let moved = Packet::moved(3, &batch, &mut refs.clone(), &mut copied);
        // Built either way, a packet has the same bytes on the wire.
        let bytes = serde_json::to_vec(&encoded).unwrap();
        assert_eq!(bytes, serde_json::to_vec(&moved).unwrap());
        let back: Packet = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back.owner, 3);
        let (records, back_refs) = back.into_parts(&rules).unwrap();
        assert_eq!(records.len(), 60);
        assert_eq!(back_refs.len(), refs.len());
        assert!(refs.iter().any(|r| r.side == 1) && refs.iter().any(|r| r.hop > 1));
        let fields = |r: &Ref| (r.hash, r.rule, r.side, r.hop);
        for (sent, got) in refs.iter().zip(&back_refs) {
            assert_eq!(fields(sent), fields(got));
            assert_eq!(
                owners_read(&batch[sent.idx as usize]),
                records[got.idx as usize]
            );
        }
        // An encoded packet that stays in its process is applied the same.
        let (decoded, decoded_refs) = encoded.into_parts(&rules).unwrap();
        assert_eq!(decoded, records);
        assert!(decoded_refs.iter().map(fields).eq(refs.iter().map(fields)));
    }

    #[test]
    fn refs_past_the_records_are_refused() {
        let batch = batch();
        let refs: Vec<Ref> = (0..3u32)
            .map(|i| Ref {
                hash: 0,
                idx: i,
                rule: 0,
                side: 0,
                hop: 0,
            })
            .collect();
        let records = encode_records(&batch[..2]);
        let json = |refs: &[Ref]| {
            serde_json::to_vec(&(7u32, Bytes(&records), Bytes(&encode_refs(refs)))).unwrap()
        };
        assert!(serde_json::from_slice::<Packet>(&json(&refs[..2])).is_ok());
        let err = serde_json::from_slice::<Packet>(&json(&refs))
            .err()
            .unwrap();
        assert!(err.to_string().contains("out of range"), "{err}");
    }

    #[test]
    fn refs_the_router_could_not_have_sent_are_refused() {
        let rules = rules();
        let w = rules.iter().position(|c| {
            c.hops(&FlowRecord {
                first_ms: 1 << 40,
                ..FlowRecord::default()
            }) > 1
        });
        let w = w.expect("a rule with hopping windows") as u16;
        let src = rules
            .iter()
            .position(|c| c.sides() == 1)
            .expect("a one-sided key") as u16;
        // A flow in the first window after time 0 falls in one window only; a `src` key has one side.
        let batch = [FlowRecord {
            first_ms: 5_000,
            last_ms: 5_000,
            ..FlowRecord::default()
        }];
        let at = |rule: u16, side: u8, hop: u8| {
            let refs = [Ref {
                hash: 0,
                idx: 0,
                rule,
                side,
                hop,
            }];
            let bytes = serde_json::to_vec(&Packet::encoded(
                0,
                &batch,
                &mut refs.clone(),
                &mut Vec::new(),
            ))
            .unwrap();
            serde_json::from_slice::<Packet>(&bytes)
                .unwrap()
                .into_parts(&rules)
        };
        assert!(at(w, 0, 0).is_ok() && at(src, 0, 0).is_ok());
        assert!(at(w, 0, 3).unwrap_err().contains("window 3"));
        assert!(at(src, 1, 0).unwrap_err().contains("side 1"));
    }

    #[test]
    fn a_rule_this_process_does_not_have_is_refused() {
        let batch = batch();
        let refs = [Ref {
            hash: 0,
            idx: 0,
            rule: 500,
            side: 0,
            hop: 0,
        }];
        let bytes = serde_json::to_vec(&Packet::encoded(
            0,
            &batch,
            &mut refs.clone(),
            &mut Vec::new(),
        ))
        .unwrap();
        let back: Packet = serde_json::from_slice(&bytes).unwrap();
        let err = back.into_parts(&rules()).unwrap_err();
        assert!(
            err.contains("rule 500 of") && err.contains("different definitions"),
            "{err}"
        );
    }

    #[test]
    fn cut_or_foreign_packets_are_refused() {
        let batch = batch();
        let bytes = encode_records(&batch);
        let whole = decode_records(&bytes).unwrap();
        assert_eq!(whole.len(), 60);
        for cut in 1..bytes.len() {
            // A cut either ends between records (and holds the records before it) or is refused.
            if let Some(r) = decode_records(&bytes[..cut]) {
                assert_eq!(encode_records(&r).len(), cut, "cut at {cut}");
                assert_eq!(r, whole[..r.len()], "cut at {cut}");
            }
        }
        let first = BASE_BYTES + record_len(bytes[BASE_BYTES]);
        let mut foreign = bytes[..first].to_vec();
        assert!(decode_records(&foreign).is_some());
        foreign[BASE_BYTES] = Flags::ALL + 1;
        assert!(decode_records(&foreign).is_none());
        let refs: Vec<Ref> = (0..60u32)
            .map(|i| Ref {
                hash: i as u64,
                idx: i,
                rule: 0,
                side: 0,
                hop: 0,
            })
            .collect();
        let refs = encode_refs(&refs);
        assert!(decode_refs(&refs[..refs.len() - 1]).is_none());
        assert!(decode_refs(&refs[..2]).is_none());
        assert!(decode_records(&[0; BASE_BYTES - 1]).is_none());
    }

    #[test]
    fn a_run_longer_than_its_count_splits() {
        let refs: Vec<Ref> = (0..70_000u32)
            .map(|i| Ref {
                hash: i as u64,
                idx: i % 1024,
                rule: 9,
                side: 1,
                hop: 63,
            })
            .collect();
        let back = decode_refs(&encode_refs(&refs)).unwrap();
        let fields = |r: &Ref| (r.idx, r.rule, r.side, r.hop);
        assert!(refs.iter().map(fields).eq(back.iter().map(fields)));
    }

    /// Write the seed inputs of the `wire` fuzz target into fuzz/regressions/wire (run by hand when the wire
    /// changes: `cargo test --release --lib write_wire_fuzz_regressions -- --ignored`): messages as Timely
    /// hands them over, whole, cut, and naming a rule the built-in definitions do not have.
    #[test]
    #[ignore]
    fn write_wire_fuzz_regressions() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/wire");
        std::fs::create_dir_all(&dir).unwrap();
        let batch = batch();
        let rules = rules();
        let builtin = crate::rules::Definitions::builtin().rules.len();
        let refs: Vec<Ref> = (0..120u32)
            .map(|i| {
                let rule = (i / 7) as usize % builtin;
                Ref {
                    hash: 0,
                    idx: i * 7 % 60,
                    rule: rule as u16,
                    side: (i as u8) % rules[rule].sides(),
                    hop: 0,
                }
            })
            .collect();
        let mut copied = Vec::new();
        let mut message = |refs: &[Ref]| {
            let (a, b) = refs.split_at(refs.len() / 2);
            bincode::serialize(&vec![
                Packet::encoded(1, &batch, &mut a.to_vec(), &mut copied),
                Packet::encoded(1, &batch, &mut b.to_vec(), &mut copied),
            ])
            .unwrap()
        };
        let whole = message(&refs);
        assert!(fuzz(&whole) > 60);
        let foreign = message(&[Ref {
            rule: 500,
            ..refs[0]
        }]);
        assert_eq!(fuzz(&foreign), 0);
        for (name, bytes) in [
            ("two-packets", whole.clone()),
            ("cut", whole[..whole.len() / 2].to_vec()),
            ("foreign-rule", foreign),
        ] {
            std::fs::write(dir.join(name), bytes).unwrap();
        }
    }
}
