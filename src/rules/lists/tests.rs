use super::*;

fn a(s: &str) -> Addr {
    s.parse().unwrap()
}

/// Small deterministic generator so the property tests need no extra crate and always replay the same cases.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        crate::hash::fmix64(self.0)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[test]
fn entries_of_every_kind_v4_and_v6() {
    let l = AddrList::parse_entries(&[
        ("10.11.12.13", "lists.t[0]"),
        ("192.168.0.0/16", "lists.t[1]"),
        ("10.1.0.10-10.1.0.199", "lists.t[2]"),
        ("172.20.x.1-9", "lists.t[3]"),
        ("2001:db8::/48", "lists.t[4]"),
        ("fe80::1", "lists.t[5]"),
    ])
    .unwrap();
    for yes in [
        "10.11.12.13",
        "192.168.255.1",
        "10.1.0.10",
        "10.1.0.199",
        "172.20.7.9",
        "2001:db8:0:ffff::1",
        "fe80::1",
    ] {
        assert!(l.contains(a(yes)), "{yes}");
    }
    for no in [
        "10.11.12.14",
        "192.169.0.0",
        "10.1.0.9",
        "10.1.0.200",
        "172.20.7.10",
        "2001:db8:1::",
        "fe80::2",
        "::1",
    ] {
        assert!(!l.contains(a(no)), "{no}");
    }
}

#[test]
fn overlapping_entries_merge_into_disjoint_intervals() {
    let l = AddrList::parse_entries(&[
        ("10.0.0.0/24", 0),
        ("10.0.0.128/25", 1),
        ("10.0.1.0-10.0.1.5", 2),
        ("10.0.0.7", 3),
    ])
    .unwrap();
    assert_eq!(l.intervals(), &[(a("10.0.0.0").0, a("10.0.1.5").0)]);
}

#[test]
fn errors_name_the_entry_and_its_location() {
    let e = AddrList::parse_entries(&[
        ("10.0.0.1", "lists.trusted[0]"),
        ("10.0.0.256", "lists.trusted[1]"),
    ])
    .unwrap_err();
    assert_eq!(e.location, "lists.trusted[1]");
    assert_eq!(e.entry, "10.0.0.256");
    assert!(
        e.to_string()
            .starts_with("lists.trusted[1]: entry '10.0.0.256': expected"),
        "{e}"
    );
}

#[test]
fn files_skip_comments_and_report_file_and_line() {
    let text = "# drop list\n\n10.0.0.0/8   # whole ten\n 2001:db8::/32\n192.0.2.1-192.0.2.9\n";
    let l = AddrList::parse_lines(text, "drop.txt").unwrap();
    assert!(
        l.contains(a("10.200.0.1")) && l.contains(a("2001:db8::5")) && l.contains(a("192.0.2.9"))
    );
    assert!(!l.contains(a("192.0.2.10")));
    let e = AddrList::parse_lines("10.0.0.1\n# ok\n10.0.0.0/40\n", "drop.txt").unwrap_err();
    assert_eq!(e.location, "drop.txt:3");
    assert_eq!(e.entry, "10.0.0.0/40");

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("lists")).unwrap();
    std::fs::write(dir.path().join("lists/drop.txt"), text).unwrap();
    let f = AddrList::from_source("file:lists/drop.txt", dir.path()).unwrap();
    assert_eq!(f, l);
    let e = AddrList::from_source("file:lists/missing.txt", dir.path()).unwrap_err();
    assert!(e.message.contains("cannot read"), "{e}");
}

#[test]
fn builtins_parse_and_keep_private_space_apart() {
    for name in bogons::BUILTIN_NAMES {
        let entries = bogons::builtin_entries(name).unwrap();
        let loc: Vec<(&str, String)> = entries
            .iter()
            .map(|e| (*e, format!("builtin:{name}")))
            .collect();
        AddrList::parse_entries(&loc).expect("built-in tables must parse");
        assert!(!AddrList::builtin(name).unwrap().is_empty());
    }
    let bogons = AddrList::from_source("builtin:bogons", Path::new(".")).unwrap();
    let private = AddrList::builtin("private").unwrap();
    let multicast = AddrList::builtin("multicast").unwrap();
    // udp-scan-bogon's source and targets are in 240.0.0.0/4; syn-sweep-horizontal runs inside 10.0.0.0/8.
    for bogon in [
        "246.237.45.150",
        "255.255.255.255",
        "0.0.0.0",
        "127.0.0.1",
        "169.254.1.1",
        "192.0.2.7",
        "100.64.0.1",
        "::",
        "::1",
        "fe80::1",
        "2001:db8::1",
    ] {
        assert!(bogons.contains(a(bogon)), "{bogon}");
    }
    for routable in [
        "10.0.0.128",
        "172.16.0.1",
        "192.168.1.7",
        "8.8.8.8",
        "224.0.0.1",
        "fc00::1",
        "2001:4860::8888",
        "ff02::1",
    ] {
        assert!(!bogons.contains(a(routable)), "{routable}");
    }
    assert!(
        private.contains(a("10.0.0.128"))
            && private.contains(a("fd00::1"))
            && !private.contains(a("11.0.0.1"))
    );
    assert!(multicast.contains(a("239.255.255.250")) && multicast.contains(a("ff02::fb")));
    // IPv4-mapped space must not be a bogon: it would swallow every IPv4 address.
    assert!(!bogons.contains(a("1.1.1.1")));
    let e = AddrList::from_source("builtin:nope", Path::new(".")).unwrap_err();
    assert!(e.message.contains("builtin:bogons"), "{e}");
}

#[test]
fn membership_equals_a_naive_scan_over_random_lists() {
    let mut rng = Rng(7);
    for round in 0..300 {
        // Cluster values in a small window so intervals overlap and touch often; mix IPv4 and IPv6 bases.
        let base: u128 = if round % 2 == 0 {
            a("10.0.0.0").0
        } else {
            a("2001:db8::").0
        };
        let n = rng.below(40) as usize;
        let mut raw = Vec::new();
        for _ in 0..n {
            let lo = base + u128::from(rng.below(500));
            let width = if rng.below(4) == 0 { 60 } else { 3 };
            let hi = lo + u128::from(rng.below(width));
            raw.push((lo, hi));
        }
        let list = AddrList::from_intervals(raw.clone());
        for w in list.intervals().windows(2) {
            assert!(w[0].1 + 1 < w[1].0, "sorted, disjoint, not adjacent");
        }
        for _ in 0..300 {
            let x = base + u128::from(rng.below(600));
            let naive = raw.iter().any(|&(lo, hi)| lo <= x && x <= hi);
            assert_eq!(list.contains(Addr(x)), naive, "round {round} x {x}");
        }
    }
}

#[test]
fn membership_via_text_entries_equals_a_naive_scan() {
    let mut rng = Rng(11);
    for _ in 0..100 {
        let mut entries = Vec::new();
        let mut naive: Vec<(u32, u32)> = Vec::new();
        for _ in 0..rng.below(12) {
            let v = 0x0a00_0000 | (rng.below(4096) as u32);
            match rng.below(3) {
                0 => {
                    entries.push(std::net::Ipv4Addr::from(v).to_string());
                    naive.push((v, v));
                }
                1 => {
                    let bits = 20 + rng.below(13) as u32;
                    let mask = if bits == 32 {
                        u32::MAX
                    } else {
                        !(u32::MAX >> bits)
                    };
                    entries.push(format!("{}/{bits}", std::net::Ipv4Addr::from(v)));
                    naive.push((v & mask, v | !mask));
                }
                _ => {
                    let hi = v + rng.below(300) as u32;
                    entries.push(format!(
                        "{}-{}",
                        std::net::Ipv4Addr::from(v),
                        std::net::Ipv4Addr::from(hi)
                    ));
                    naive.push((v, hi));
                }
            }
        }
        let refs: Vec<(&str, usize)> = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.as_str(), i))
            .collect();
        let list = AddrList::parse_entries(&refs).unwrap();
        for _ in 0..500 {
            let x = 0x0a00_0000 | (rng.below(8192) as u32);
            let want = naive.iter().any(|&(lo, hi)| lo <= x && x <= hi);
            assert_eq!(list.contains(Addr::v4(x)), want, "{entries:?} {x:#x}");
        }
    }
}

#[test]
fn hundred_thousand_entries_load_quickly() {
    let mut rng = Rng(3);
    let mut text = String::new();
    for i in 0..100_000u32 {
        let v = rng.next() as u32;
        match i % 4 {
            0 => text.push_str(&format!("{}\n", std::net::Ipv4Addr::from(v))),
            1 => text.push_str(&format!("{}/24\n", std::net::Ipv4Addr::from(v))),
            2 => text.push_str(&format!(
                "{}-{}\n",
                std::net::Ipv4Addr::from(v),
                std::net::Ipv4Addr::from(v.saturating_add(99))
            )),
            _ => text.push_str(&format!("2001:db8:{:x}::/64\n", v & 0xffff)),
        }
    }
    let start = std::time::Instant::now();
    let list = AddrList::parse_lines(&text, "big.txt").unwrap();
    let elapsed = start.elapsed();
    // Reported, not asserted: timing depends on the machine and its load.
    println!(
        "loaded 100000 entries into {} intervals in {elapsed:?}",
        list.intervals().len()
    );
    assert!(list.intervals().len() > 50_000);
    let mut probe = Rng(3);
    let first = probe.next() as u32;
    assert!(list.contains(Addr::v4(first)));
}

#[test]
fn membership_equals_a_naive_scan_across_buckets() {
    // Intervals anywhere in both address families, some spanning many first octets or bytes, probed at random,
    // at every interval's edges and at every bucket's edges (where the index changes).
    let mut rng = Rng(19);
    let v4 = |x: u32| 0xffff_0000_0000u128 | u128::from(x);
    let mut edges: Vec<u128> = Vec::new();
    for b in 0..BUCKETS {
        let (lo, hi) = bucket_span(b);
        edges.extend([lo, hi, lo.wrapping_sub(1), hi.wrapping_add(1)]);
    }
    for round in 0..200 {
        let mut raw = Vec::new();
        for _ in 0..rng.below(30) {
            let (lo, width) = match rng.below(3) {
                0 => {
                    let bits = rng.below(30) + 1;
                    (v4(rng.next() as u32), u128::from(rng.below(1 << bits)))
                }
                1 => {
                    let lo = u128::from(rng.next()) << 64 | u128::from(rng.next());
                    let shift = rng.below(64);
                    (lo, u128::from(rng.next()) << shift)
                }
                _ => {
                    let lo = u128::from(rng.below(1 << 20));
                    (lo, u128::from(rng.below(1 << 12)))
                }
            };
            raw.push((lo, lo.saturating_add(width)));
        }
        // Intervals that start or end on a bucket's first or last address.
        for _ in 0..rng.below(4) {
            let e = edges[rng.below(edges.len() as u64) as usize];
            let w = u128::from(rng.below(3));
            raw.push(if rng.below(2) == 0 {
                (e, e.saturating_add(w))
            } else {
                (e.saturating_sub(w), e)
            });
        }
        let list = AddrList::from_intervals(raw.clone());
        let mut probes: Vec<u128> = (0..300)
            .map(|_| match rng.below(3) {
                0 => v4(rng.next() as u32),
                1 => {
                    let hi = u128::from(rng.next());
                    hi << 64 | u128::from(rng.next())
                }
                _ => u128::from(rng.below(1 << 21)),
            })
            .collect();
        for &(lo, hi) in &raw {
            probes.extend([lo, hi, lo.wrapping_sub(1), hi.wrapping_add(1)]);
        }
        probes.extend(&edges);
        for x in probes {
            let naive = raw.iter().any(|&(lo, hi)| lo <= x && x <= hi);
            assert_eq!(list.contains(Addr(x)), naive, "round {round} x {x:#x}");
        }
    }
    assert!(!AddrList::default().contains(Addr(v4(1))));
}
