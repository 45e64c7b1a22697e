//! Keys a rule counts per, packed small: the table for a `src` rule holds millions of them.
//!
//! Addresses are stored as two `u64` halves rather than a `u128` so a key aligns to 8 bytes, not 16. Window indexes
//! are 64 bits: a 250 ms window over today's times is past 2^32. Keys of IPv4 addresses without windows have
//! narrow forms of their own (8 or 12 bytes).

use crate::hash::{combine, hash128, hash64};
use crate::record::{Addr, FlowRecord};
use crate::rules::{AddrField, KeyExtra, KeySpec};

/// A key type of a rule table.
pub trait TableKey: Copy + Eq + Send + Sync + 'static {
    /// Build the key of `rec`; `side` is 0 for the flow's source end, 1 for its destination end (`host` keys).
    fn extract(spec: KeySpec, rec: &FlowRecord, side: u8, window: u64) -> Self;
    /// The fixed-seed hash shards and tables agree on.
    fn hash(&self) -> u64;
    /// The key's parts, for reports.
    fn parts(&self) -> KeyParts;
    /// The table's tag for this key (0 until the table sets it; 0 marks an empty slot). Not part of the hash.
    fn tag(&self) -> u32;
    fn set_tag(&mut self, tag: u32);
    /// The same key, whatever the tags say (a stored tag also carries the key's admission epoch).
    #[inline]
    fn same_key(&self, other: &Self) -> bool {
        let mut o = *other;
        o.set_tag(self.tag());
        *self == o
    }
}

/// A small form of a wider key type for the common case (IPv4 addresses), in a table of its own beside the wide
/// one. It hashes exactly like the wide key of the same values, so routing never needs to know which table holds
/// a key.
pub trait NarrowKey: TableKey + Default {
    /// Whether the key `rec` gives for `side` has the narrow form.
    fn fits(spec: KeySpec, rec: &FlowRecord, side: u8) -> bool;
}

/// The tag accessors every key type shares: the field lives in the key's padding.
macro_rules! tagged {
    () => {
        #[inline]
        fn tag(&self) -> u32 {
            self.tag
        }
        #[inline]
        fn set_tag(&mut self, tag: u32) {
            self.tag = tag;
        }
    };
}

/// A key taken apart for reporting.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub struct KeyParts {
    pub addr: Addr,
    pub extra: KeyValue,
    /// Window index (flow start / window length); 0 without windows.
    pub window: u64,
}

impl KeyParts {
    /// The fixed-seed hash of the key these parts make: the same as the table key's ([`TableKey::hash`]).
    pub fn hash(&self) -> u64 {
        let a = split(self.addr);
        match self.extra {
            KeyValue::None => AddrKey {
                a,
                window: self.window,
                tag: 0,
            }
            .hash(),
            KeyValue::Port(x) => AddrPortKey {
                a,
                x,
                kind: PortKind::Port,
                tag: 0,
                window: self.window,
            }
            .hash(),
            KeyValue::Proto(p) => AddrPortKey {
                a,
                x: p as u16,
                kind: PortKind::Proto,
                tag: 0,
                window: self.window,
            }
            .hash(),
            KeyValue::Icmp(x) => AddrPortKey {
                a,
                x,
                kind: PortKind::Icmp,
                tag: 0,
                window: self.window,
            }
            .hash(),
            KeyValue::Addr(b) => AddrPairKey {
                a,
                b: split(b),
                tag: 0,
                window: self.window,
            }
            .hash(),
        }
    }
}

/// The second field of a key, if any.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum KeyValue {
    None,
    Addr(Addr),
    Port(u16),
    Proto(u8),
    /// An ICMP or ICMPv6 flow's type and code in a port key (`type << 8 | code`, where nfdump keeps them in the
    /// destination port): an ICMP sweep is its own key, not "port 2048".
    Icmp(u16),
}

#[inline]
fn split(a: Addr) -> [u64; 2] {
    [a.0 as u64, (a.0 >> 64) as u64]
}

#[inline]
fn join(a: [u64; 2]) -> Addr {
    Addr((a[1] as u128) << 64 | a[0] as u128)
}

/// The key's own address: source, destination, or the end named by `side`. For keys with prefixes (`src/24`),
/// records are [`cut`] first.
#[inline]
pub fn key_addr(spec: KeySpec, rec: &FlowRecord, side: u8) -> Addr {
    match spec.addr {
        AddrField::Src => rec.src,
        AddrField::Dst => rec.dst,
        AddrField::Host => {
            if side == 0 {
                rec.src
            } else {
                rec.dst
            }
        }
    }
}

/// `rec` with its addresses cut to the prefixes key `spec` keeps of them (`src/24,dst/16`: the source to its /24,
/// the destination to its /16; `host/24`: both ends): a key of a prefix rule is the key of the cut record. Every
/// key type then reads whole addresses, so rules without prefixes pay one test per flow for this, and a narrow
/// key, its wide form and the parts rebuilt from either agree.
#[inline(never)]
pub fn cut(spec: KeySpec, rec: &FlowRecord) -> FlowRecord {
    let prefix_of = |end: AddrField, as_extra: KeyExtra| {
        if spec.addr == end || spec.addr == AddrField::Host {
            spec.prefix
        } else if spec.extra == as_extra {
            spec.extra_prefix
        } else {
            crate::rules::Prefix::WHOLE
        }
    };
    FlowRecord {
        src: prefix_of(AddrField::Src, KeyExtra::Src).apply(rec.src),
        dst: prefix_of(AddrField::Dst, KeyExtra::Dst).apply(rec.dst),
        ..*rec
    }
}

/// An address alone (`src`, `dst`, `host`).
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct AddrKey {
    a: [u64; 2],
    window: u64,
    tag: u32,
}

impl TableKey for AddrKey {
    #[inline]
    fn extract(spec: KeySpec, rec: &FlowRecord, side: u8, window: u64) -> Self {
        AddrKey {
            a: split(key_addr(spec, rec, side)),
            window,
            tag: 0,
        }
    }
    #[inline]
    fn hash(&self) -> u64 {
        let h = hash128(join(self.a).0);
        if self.window == 0 {
            h
        } else {
            combine(h, self.window)
        }
    }
    fn parts(&self) -> KeyParts {
        KeyParts {
            addr: join(self.a),
            extra: KeyValue::None,
            window: self.window,
        }
    }
    tagged!();
}

/// An IPv4 address alone, for rules without windows: 8 bytes with its tag instead of 24, so an entry with a
/// 24-byte state is 32 bytes and never straddles two cache lines. IPv6 keys of the same rule go to an [`AddrKey`]
/// table beside it. Hashes like the [`AddrKey`] of the same address, so routing does not care which table it is.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct V4Key {
    a: u32,
    tag: u32,
}

impl TableKey for V4Key {
    #[inline]
    fn extract(spec: KeySpec, rec: &FlowRecord, side: u8, window: u64) -> Self {
        let a = key_addr(spec, rec, side);
        debug_assert!(a.is_v4() && window == 0);
        V4Key {
            a: a.0 as u32,
            tag: 0,
        }
    }
    #[inline]
    fn hash(&self) -> u64 {
        hash128(Addr::v4(self.a).0)
    }
    fn parts(&self) -> KeyParts {
        KeyParts {
            addr: Addr::v4(self.a),
            extra: KeyValue::None,
            window: 0,
        }
    }
    tagged!();
}

impl NarrowKey for V4Key {
    #[inline]
    fn fits(spec: KeySpec, rec: &FlowRecord, side: u8) -> bool {
        key_addr(spec, rec, side).is_v4()
    }
}

/// What the 16 bits of a port key hold.
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub enum PortKind {
    #[default]
    Port,
    Proto,
    /// ICMP type and code (`dport` keys of ICMP and ICMPv6 flows).
    Icmp,
}

/// The port, protocol or ICMP type and code of a key.
#[inline]
fn port_of(spec: KeySpec, rec: &FlowRecord) -> (u16, PortKind) {
    match spec.extra {
        KeyExtra::Sport => (rec.src_port, PortKind::Port),
        KeyExtra::Dport
            if rec.proto == crate::record::proto::ICMP
                || rec.proto == crate::record::proto::ICMP6 =>
        {
            (rec.dst_port, PortKind::Icmp)
        }
        KeyExtra::Dport => (rec.dst_port, PortKind::Port),
        KeyExtra::Proto => (rec.proto as u16, PortKind::Proto),
        KeyExtra::None | KeyExtra::Src | KeyExtra::Dst => (0, PortKind::Port),
    }
}

/// The second address of a pair key.
#[inline]
fn other_addr(spec: KeySpec, rec: &FlowRecord) -> Addr {
    match spec.extra {
        KeyExtra::Src => rec.src,
        _ => rec.dst,
    }
}

/// How a key stores an address: all 128 bits as two `u64` halves (8-byte aligned), or an IPv4 address in 32.
/// The narrow form is only for rules without windows, so it stores no window either.
pub trait StoredAddr: Copy + Default + Eq + Send + Sync + 'static {
    type Window: StoredWindow;
    fn store(a: Addr) -> Self;
    fn load(self) -> Addr;
}

/// How a key stores its window index: 64 bits, or nothing for rules without windows.
pub trait StoredWindow: Copy + Default + Eq + Send + Sync + 'static {
    fn store(w: u64) -> Self;
    fn load(self) -> u64;
}

impl StoredWindow for u64 {
    #[inline]
    fn store(w: u64) -> Self {
        w
    }
    #[inline]
    fn load(self) -> u64 {
        self
    }
}

/// No window: the key of a rule that counts over the whole input.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct NoWindow;

impl StoredWindow for NoWindow {
    #[inline]
    fn store(w: u64) -> Self {
        debug_assert_eq!(w, 0, "a narrow key is only for rules without windows");
        NoWindow
    }
    #[inline]
    fn load(self) -> u64 {
        0
    }
}

/// Any address.
pub type Wide = [u64; 2];
/// An IPv4 address; only for records where [`NarrowKey::fits`] said so.
pub type Narrow = u32;

impl StoredAddr for Wide {
    type Window = u64;
    #[inline]
    fn store(a: Addr) -> Self {
        split(a)
    }
    #[inline]
    fn load(self) -> Addr {
        join(self)
    }
}

impl StoredAddr for Narrow {
    type Window = NoWindow;
    #[inline]
    fn store(a: Addr) -> Self {
        a.0 as u32
    }
    #[inline]
    fn load(self) -> Addr {
        Addr::v4(self)
    }
}

/// An address with a port or protocol (`src,dport`, `dst,dport`, `src,proto`): 32 bytes wide, 12 narrow.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct PortKey<A: StoredAddr> {
    a: A,
    /// Port, protocol, or ICMP type and code.
    x: u16,
    kind: PortKind,
    tag: u32,
    window: A::Window,
}

pub type AddrPortKey = PortKey<Wide>;
pub type V4PortKey = PortKey<Narrow>;

impl<A: StoredAddr> TableKey for PortKey<A> {
    #[inline]
    fn extract(spec: KeySpec, rec: &FlowRecord, side: u8, window: u64) -> Self {
        let (x, kind) = port_of(spec, rec);
        PortKey {
            a: A::store(key_addr(spec, rec, side)),
            x,
            kind,
            window: A::Window::store(window),
            tag: 0,
        }
    }
    #[inline]
    fn hash(&self) -> u64 {
        let h = combine(hash128(self.a.load().0), hash64(self.x as u64));
        match self.window.load() {
            0 => h,
            w => combine(h, w),
        }
    }
    fn parts(&self) -> KeyParts {
        KeyParts {
            addr: self.a.load(),
            extra: match self.kind {
                PortKind::Port => KeyValue::Port(self.x),
                PortKind::Proto => KeyValue::Proto(self.x as u8),
                PortKind::Icmp => KeyValue::Icmp(self.x),
            },
            window: self.window.load(),
        }
    }
    tagged!();
}

impl NarrowKey for V4PortKey {
    #[inline]
    fn fits(spec: KeySpec, rec: &FlowRecord, side: u8) -> bool {
        key_addr(spec, rec, side).is_v4()
    }
}

/// A pair of addresses (`src,dst`, `dst,src`): 48 bytes wide, 12 narrow (both IPv4), so a pair rule's narrow entry
/// is 48 bytes with a 24-byte state, not 72.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct PairKey<A: StoredAddr> {
    a: A,
    b: A,
    tag: u32,
    window: A::Window,
}

pub type AddrPairKey = PairKey<Wide>;
pub type V4PairKey = PairKey<Narrow>;

impl<A: StoredAddr> TableKey for PairKey<A> {
    #[inline]
    fn extract(spec: KeySpec, rec: &FlowRecord, side: u8, window: u64) -> Self {
        PairKey {
            a: A::store(key_addr(spec, rec, side)),
            b: A::store(other_addr(spec, rec)),
            window: A::Window::store(window),
            tag: 0,
        }
    }
    #[inline]
    fn hash(&self) -> u64 {
        let h = combine(hash128(self.a.load().0), hash128(self.b.load().0));
        match self.window.load() {
            0 => h,
            w => combine(h, w),
        }
    }
    fn parts(&self) -> KeyParts {
        KeyParts {
            addr: self.a.load(),
            extra: KeyValue::Addr(self.b.load()),
            window: self.window.load(),
        }
    }
    tagged!();
}

impl NarrowKey for V4PairKey {
    #[inline]
    fn fits(spec: KeySpec, rec: &FlowRecord, side: u8) -> bool {
        key_addr(spec, rec, side).is_v4() && other_addr(spec, rec).is_v4()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec() -> FlowRecord {
        FlowRecord {
            src: "10.0.0.1".parse().unwrap(),
            dst: "2001:db8::7".parse().unwrap(),
            src_port: 1234,
            dst_port: 80,
            proto: 6,
            ..Default::default()
        }
    }

    #[test]
    fn keys_take_the_fields_their_spec_names() {
        let r = rec();
        let k = AddrKey::extract("host".parse().unwrap(), &r, 1, 0);
        assert_eq!(k.parts().addr, r.dst);
        let k = AddrPortKey::extract("src,dport".parse().unwrap(), &r, 0, 3);
        assert_eq!(
            k.parts(),
            KeyParts {
                addr: r.src,
                extra: KeyValue::Port(80),
                window: 3
            }
        );
        let k = AddrPairKey::extract("dst,src".parse().unwrap(), &r, 0, 0);
        assert_eq!(k.parts().addr, r.dst);
        assert_eq!(k.parts().extra, KeyValue::Addr(r.src));
    }

    #[test]
    fn windows_and_extras_change_the_hash() {
        let r = rec();
        let spec: KeySpec = "src".parse().unwrap();
        assert_ne!(
            AddrKey::extract(spec, &r, 0, 0).hash(),
            AddrKey::extract(spec, &r, 0, 1).hash()
        );
        let spec: KeySpec = "src,dport".parse().unwrap();
        let mut r2 = r;
        r2.dst_port = 81;
        assert_ne!(
            AddrPortKey::extract(spec, &r, 0, 0).hash(),
            AddrPortKey::extract(spec, &r2, 0, 0).hash()
        );
        assert_eq!(std::mem::size_of::<AddrKey>(), 32);
        assert_eq!(std::mem::size_of::<AddrPortKey>(), 32);
        assert_eq!(std::mem::size_of::<AddrPairKey>(), 48);
        assert_eq!(std::mem::size_of::<V4Key>(), 8);
        let spec: KeySpec = "src".parse().unwrap();
        let mut v4 = rec();
        v4.src = "192.0.2.9".parse().unwrap();
        let (a, b) = (
            V4Key::extract(spec, &v4, 0, 0),
            AddrKey::extract(spec, &v4, 0, 0),
        );
        assert_eq!(
            a.hash(),
            b.hash(),
            "a key routes the same whichever table holds it"
        );
        assert_eq!(a.parts(), b.parts());
    }

    /// A key rebuilt from its parts hashes as the key did, for every key shape, with and without windows.
    #[test]
    fn parts_hash_like_their_key() {
        let r = rec();
        for (spec, window) in [
            ("src", 0),
            ("host", 7),
            ("src,dport", 0),
            ("dst,sport", 9),
            ("src,proto", 3),
        ] {
            let spec: KeySpec = spec.parse().unwrap();
            for side in 0..2 {
                let k = AddrKey::extract(spec, &r, side, window);
                if spec.extra == KeyExtra::None {
                    assert_eq!(k.parts().hash(), k.hash());
                } else {
                    let k = AddrPortKey::extract(spec, &r, side, window);
                    assert_eq!(k.parts().hash(), k.hash(), "{spec:?}");
                }
            }
        }
        for window in [0, 5] {
            let k = AddrPairKey::extract("src,dst".parse().unwrap(), &r, 0, window);
            assert_eq!(k.parts().hash(), k.hash());
        }
    }

    /// A prefix key is the same key for every address of its prefix, in the narrow and the wide table alike, and
    /// the parts rebuilt from it hash as it does (the verify pass looks candidates up by them).
    #[test]
    fn prefix_keys_cut_addresses_and_hash_alike() {
        let a = |s: &str| s.parse::<Addr>().unwrap();
        let spec: KeySpec = "src/24/64,dst/16".parse().unwrap();
        let one = cut(
            spec,
            &FlowRecord {
                src: a("10.1.2.3"),
                dst: a("192.168.7.9"),
                ..rec()
            },
        );
        let two = cut(
            spec,
            &FlowRecord {
                src: a("10.1.2.250"),
                dst: a("192.168.200.1"),
                ..rec()
            },
        );
        assert!(V4PairKey::fits(spec, &one, 0));
        let (n1, n2) = (
            V4PairKey::extract(spec, &one, 0, 0),
            V4PairKey::extract(spec, &two, 0, 0),
        );
        let w1 = AddrPairKey::extract(spec, &one, 0, 0);
        assert!(n1 == n2);
        assert_eq!((n1.hash(), n1.parts()), (w1.hash(), w1.parts()));
        assert_eq!(w1.parts().addr, a("10.1.2.0"));
        assert_eq!(w1.parts().extra, KeyValue::Addr(a("192.168.0.0")));
        assert_eq!(w1.parts().hash(), w1.hash());
        // Another /24 is another key.
        let other = cut(
            spec,
            &FlowRecord {
                src: a("10.1.3.3"),
                ..one
            },
        );
        assert_ne!(V4PairKey::extract(spec, &other, 0, 0).hash(), n1.hash());
        // IPv6 sources are cut to /64; the port and window keys follow the same address.
        let spec: KeySpec = "src/24/64,dport".parse().unwrap();
        let v6 = cut(
            spec,
            &FlowRecord {
                src: a("2001:db8:1:2:aaaa::1"),
                ..one
            },
        );
        let k = AddrPortKey::extract(spec, &v6, 0, 7);
        assert_eq!(k.parts().addr, a("2001:db8:1:2::"));
        assert_eq!(k.parts().hash(), k.hash());
        let spec: KeySpec = "host/24".parse().unwrap();
        let whole = FlowRecord {
            src: a("10.1.2.3"),
            dst: a("192.168.7.9"),
            ..rec()
        };
        let one = cut(spec, &whole);
        assert_eq!((one.src, one.dst), (a("10.1.2.0"), a("192.168.7.0")));
        for side in 0..2 {
            let (n, w) = (
                V4Key::extract(spec, &one, side, 0),
                AddrKey::extract(spec, &one, side, 0),
            );
            assert_eq!((n.hash(), n.parts()), (w.hash(), w.parts()));
            assert_eq!(w.parts().hash(), w.hash());
        }
        assert_eq!(
            AddrKey::extract(spec, &one, 1, 0).parts().addr,
            a("192.168.7.0")
        );
    }

    /// Each narrow key fits exactly the IPv4 records and then hashes and reads like its wide key.
    #[test]
    fn narrow_keys_agree_with_wide_ones() {
        fn check<N: NarrowKey, W: TableKey>(spec: &str, rec: &FlowRecord, window: u64) {
            let spec: KeySpec = spec.parse().unwrap();
            for side in 0..2 {
                assert!(N::fits(spec, rec, side), "{spec:?}");
                let (n, w) = (
                    N::extract(spec, rec, side, window),
                    W::extract(spec, rec, side, window),
                );
                assert_eq!(n.hash(), w.hash(), "{spec:?}");
                assert_eq!(n.parts(), w.parts(), "{spec:?}");
            }
        }
        let mut v4 = rec();
        v4.dst = "198.51.100.20".parse().unwrap();
        for spec in ["src", "dst", "host"] {
            check::<V4Key, AddrKey>(spec, &v4, 0);
        }
        for spec in ["src,dport", "dst,sport", "src,proto"] {
            check::<V4PortKey, AddrPortKey>(spec, &v4, 0);
        }
        for spec in ["src,dst", "dst,src"] {
            check::<V4PairKey, AddrPairKey>(spec, &v4, 0);
        }
        // rec() has an IPv6 destination: only keys that leave it out fit.
        let mixed = rec();
        let fits = |spec: &str| {
            let spec: KeySpec = spec.parse().unwrap();
            (
                V4PortKey::fits(spec, &mixed, 0),
                V4PairKey::fits(spec, &mixed, 0),
            )
        };
        assert_eq!(fits("src,dport"), (true, false));
        assert_eq!(fits("dst,dport"), (false, false));
        assert_eq!(fits("src,dst"), (true, false));
        assert_eq!(std::mem::size_of::<V4PortKey>(), 12);
        assert_eq!(std::mem::size_of::<V4PairKey>(), 12);
    }
}
