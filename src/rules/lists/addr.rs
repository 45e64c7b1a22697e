//! One address-list entry in text: an address, a CIDR prefix, a range `a-b`, or a SiLK-style IPv4 wildcard.
//!
//! Every entry becomes one or more closed intervals of 128-bit addresses (IPv4 as `::ffff:a.b.c.d`), so the list
//! itself is only a sorted interval set and the entry syntax never reaches the hot path.

use std::net::IpAddr;

use crate::record::Addr;

/// A closed interval `[lo, hi]` of 128-bit addresses.
pub type Interval = (u128, u128);

/// More intervals than this from one wildcard means the entry is almost surely a mistake (`x.x.x.1` is 16M).
pub const MAX_WILDCARD_INTERVALS: usize = 1 << 20;

const V4_BASE: u128 = 0xffff_0000_0000;

/// Parse one entry and append its intervals to `out`. The error says what was expected and what was found.
pub fn parse_entry(text: &str, out: &mut Vec<Interval>) -> Result<(), String> {
    let t = text.trim();
    if t.is_empty() {
        return Err("expected an address, prefix, range or wildcard, found an empty entry".into());
    }
    if let Some((addr, len)) = t.split_once('/') {
        let (lo, hi) = parse_cidr(addr, len)?;
        out.push((lo, hi));
        return Ok(());
    }
    if let Some((a, b)) = t.split_once('-') {
        if let (Ok(a), Ok(b)) = (a.trim().parse::<IpAddr>(), b.trim().parse::<IpAddr>()) {
            out.push(parse_range(a, b)?);
            return Ok(());
        }
    }
    if let Ok(ip) = t.parse::<IpAddr>() {
        let a = Addr::from(ip).0;
        out.push((a, a));
        return Ok(());
    }
    if looks_like_v4_pattern(t) && t.contains(['x', 'X', ',', '-']) {
        return expand_wildcard(t, out);
    }
    Err(format!(
        "expected an address, a prefix a/len, a range a-b or a wildcard like 10.1.x.1-99, found '{t}'"
    ))
}

/// `addr/len` with host bits masked off, as nfdump does for `net`.
pub fn parse_cidr(addr: &str, len: &str) -> Result<Interval, String> {
    let ip: IpAddr = addr
        .trim()
        .parse()
        .map_err(|_| format!("expected an address before '/', found '{}'", addr.trim()))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let bits: u32 = len
        .trim()
        .parse()
        .ok()
        .filter(|&b| b <= max)
        .ok_or_else(|| format!("expected a prefix length 0-{max}, found '{}'", len.trim()))?;
    Ok(prefix_interval(ip, bits))
}

/// The interval covered by `ip/bits` (bits counted within the address family).
pub fn prefix_interval(ip: IpAddr, bits: u32) -> Interval {
    let (value, host_bits) = match ip {
        IpAddr::V4(v4) => (Addr::from(v4).0, 32 - bits.min(32)),
        IpAddr::V6(_) => (Addr::from(ip).0, 128 - bits.min(128)),
    };
    // A v4-mapped address given in IPv6 form counts its prefix over all 128 bits.
    let host_mask = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    (value & !host_mask, value | host_mask)
}

fn parse_range(a: IpAddr, b: IpAddr) -> Result<Interval, String> {
    if a.is_ipv4() != b.is_ipv4() {
        return Err(format!(
            "expected both ends of a range in one family, found {a} and {b}"
        ));
    }
    let (lo, hi) = (Addr::from(a).0, Addr::from(b).0);
    if lo > hi {
        return Err(format!(
            "expected a range start at or below its end, found {a} above {b}"
        ));
    }
    Ok((lo, hi))
}

fn looks_like_v4_pattern(t: &str) -> bool {
    t.split('.').count() == 4
        && t.bytes()
            .all(|c| c.is_ascii_digit() || matches!(c, b'.' | b',' | b'-' | b'x' | b'X'))
}

/// One octet of a wildcard: `x`, `n`, `a-b`, or a comma list of these; as sorted, merged value ranges.
fn parse_octet(s: &str, which: usize) -> Result<Vec<(u8, u8)>, String> {
    let mut parts = Vec::new();
    for item in s.split(',') {
        let bad = || {
            format!(
                "octet {which}: expected x, a number 0-255, a range a-b or a list a,b, found '{item}'"
            )
        };
        let num = |v: &str| v.parse::<u8>().map_err(|_| bad());
        let range = if item.eq_ignore_ascii_case("x") {
            (0, 255)
        } else if let Some((a, b)) = item.split_once('-') {
            let (a, b) = (num(a)?, num(b)?);
            if a > b {
                return Err(format!(
                    "octet {which}: expected a range start at or below its end, found '{item}'"
                ));
            }
            (a, b)
        } else {
            let v = num(item)?;
            (v, v)
        };
        parts.push(range);
    }
    parts.sort_unstable();
    let mut merged: Vec<(u8, u8)> = Vec::with_capacity(parts.len());
    for (lo, hi) in parts {
        match merged.last_mut() {
            Some(last) if u16::from(lo) <= u16::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    Ok(merged)
}

/// Expand `10.1.x.1-99`-style patterns into intervals. Trailing full octets collapse into one interval per prefix,
/// so `10.x.x.x` is one interval and `10.1,3.x.x` two.
fn expand_wildcard(t: &str, out: &mut Vec<Interval>) -> Result<(), String> {
    let mut octets: Vec<Vec<(u8, u8)>> = Vec::with_capacity(4);
    for (i, part) in t.split('.').enumerate() {
        octets.push(parse_octet(part, i + 1)?);
    }
    // Index of the first octet from which all the rest are 0-255.
    let full_from = (0..=4)
        .rev()
        .take_while(|&i| i == 4 || octets[i] == [(0, 255)])
        .last()
        .unwrap_or(4);
    // The octet at `split` contributes its ranges directly (each range of it spans whole subtrees when the octets
    // after it are full); octets before it are enumerated value by value.
    let split = full_from.saturating_sub(1);
    let mut count: usize = 1;
    for o in &octets[..split] {
        let values: usize = o.iter().map(|&(a, b)| usize::from(b - a) + 1).sum();
        count = count.saturating_mul(values);
    }
    count = count.saturating_mul(octets[split].len());
    if count > MAX_WILDCARD_INTERVALS {
        return Err(format!(
            "expected a wildcard of at most {MAX_WILDCARD_INTERVALS} ranges, found '{t}' with {count}"
        ));
    }
    let shift = 8 * (3 - split as u32);
    let span = if shift == 0 { 0 } else { (1u32 << shift) - 1 };
    let mut prefix = vec![0u32; 1];
    for o in &octets[..split] {
        let mut next = Vec::with_capacity(prefix.len() * 2);
        for p in &prefix {
            for &(a, b) in o {
                for v in a..=b {
                    next.push((p << 8) | u32::from(v));
                }
            }
        }
        prefix = next;
    }
    out.reserve(count);
    for p in prefix {
        for &(a, b) in &octets[split] {
            let lo = ((p << 8) | u32::from(a)) << shift;
            let hi = (((p << 8) | u32::from(b)) << shift) | span;
            out.push((V4_BASE | u128::from(lo), V4_BASE | u128::from(hi)));
        }
    }
    Ok(())
}

/// Sort and merge intervals in place: the result is sorted, disjoint and not adjacent.
pub fn normalize(v: &mut Vec<Interval>) {
    v.sort_unstable();
    let mut w = 0usize;
    for i in 0..v.len() {
        let (lo, hi) = v[i];
        if w > 0 && lo <= v[w - 1].1.saturating_add(1) {
            if hi > v[w - 1].1 {
                v[w - 1].1 = hi;
            }
        } else {
            v[w] = (lo, hi);
            w += 1;
        }
    }
    v.truncate(w);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> u128 {
        s.parse::<Addr>().unwrap().0
    }

    fn one(s: &str) -> Vec<Interval> {
        let mut v = Vec::new();
        parse_entry(s, &mut v).unwrap();
        normalize(&mut v);
        v
    }

    #[test]
    fn single_addresses_v4_and_v6() {
        assert_eq!(one("10.1.2.3"), vec![(a("10.1.2.3"), a("10.1.2.3"))]);
        assert_eq!(
            one(" 2001:db8::1 "),
            vec![(a("2001:db8::1"), a("2001:db8::1"))]
        );
        // v4-mapped v6 text is the same IPv4 address.
        assert_eq!(one("::ffff:10.1.2.3"), one("10.1.2.3"));
    }

    #[test]
    fn prefixes_mask_host_bits() {
        assert_eq!(
            one("10.0.0.0/8"),
            vec![(a("10.0.0.0"), a("10.255.255.255"))]
        );
        assert_eq!(one("10.9.9.9/8"), one("10.0.0.0/8"));
        assert_eq!(one("0.0.0.0/0"), vec![(a("0.0.0.0"), a("255.255.255.255"))]);
        assert_eq!(
            one("2001:db8::/32"),
            vec![(a("2001:db8::"), a("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"))]
        );
        assert_eq!(one("::/0"), vec![(0, u128::MAX)]);
        assert_eq!(one("1.2.3.4/32"), one("1.2.3.4"));
    }

    #[test]
    fn ranges() {
        assert_eq!(
            one("10.1.0.10-10.1.0.199"),
            vec![(a("10.1.0.10"), a("10.1.0.199"))]
        );
        assert_eq!(
            one("2001:db8::1 - 2001:db8::ff"),
            vec![(a("2001:db8::1"), a("2001:db8::ff"))]
        );
    }

    #[test]
    fn wildcards_expand_to_the_same_set_as_enumeration() {
        // Independent check: enumerate every address of the pattern by brute force over the varying octets.
        let cases: &[(&str, &dyn Fn(u32) -> bool)] = &[
            ("10.1.x.1-99", &|v| {
                v >> 16 == 0x0a01 && (1..=99).contains(&(v & 0xff))
            }),
            ("10.1.0,2.x", &|v| {
                v >> 16 == 0x0a01 && matches!((v >> 8) & 0xff, 0 | 2)
            }),
            ("10.1-2,5.x.7", &|v| {
                v >> 24 == 10 && matches!((v >> 16) & 0xff, 1 | 2 | 5) && v & 0xff == 7
            }),
        ];
        for (pat, pred) in cases {
            let got = one(pat);
            let set = |v: u32| {
                got.iter()
                    .any(|&(lo, hi)| lo <= Addr::v4(v).0 && Addr::v4(v).0 <= hi)
            };
            for hi16 in [0x0a00u32, 0x0a01, 0x0a02, 0x0a03, 0x0a05, 0x0b01] {
                for lo16 in 0..=0xffffu32 {
                    let v = (hi16 << 16) | lo16;
                    assert_eq!(set(v), pred(v), "{pat} at {}", std::net::Ipv4Addr::from(v));
                }
            }
        }
        assert_eq!(one("10.x.x.x"), one("10.0.0.0/8"));
        assert_eq!(one("10.1.2.x"), one("10.1.2.0/24"));
        assert_eq!(one("x.x.x.x"), one("0.0.0.0/0"));
        assert_eq!(one("10.1.0,1.x"), one("10.1.0.0/23"));
    }

    #[test]
    fn bad_entries_say_what_was_expected() {
        let err = |s: &str| parse_entry(s, &mut Vec::new()).unwrap_err();
        assert!(err("10.0.0.0/33").contains("prefix length 0-32, found '33'"));
        assert!(err("10.0.0/8").contains("address before '/'"));
        assert!(err("10.0.0.9-10.0.0.1").contains("at or below its end"));
        assert!(err("10.0.0.1-2001:db8::1").contains("one family"));
        assert!(err("10.1.300.x").contains("octet 3"));
        assert!(err("10.1.9-3.x").contains("octet 3: expected a range start"));
        assert!(err("x.x.x.1").contains("at most"));
        assert!(err("proxy.example").contains("found 'proxy.example'"));
        assert!(err("").contains("empty"));
    }

    #[test]
    fn normalize_merges_overlaps_and_neighbours() {
        let mut v = vec![
            (5, 9),
            (1, 3),
            (4, 4),
            (20, 30),
            (25, 26),
            (u128::MAX - 1, u128::MAX),
            (u128::MAX, u128::MAX),
        ];
        normalize(&mut v);
        assert_eq!(v, vec![(1, 9), (20, 30), (u128::MAX - 1, u128::MAX)]);
    }
}
