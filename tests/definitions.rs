//! The definitions language against real files: every default rule's findings equal figures computed here with
//! plain std code from the decoded flows; site lists (address plan, proxies), the operator's original peer count,
//! windows, bad files, and big list files. The fixtures in tests/fixtures are small hand-written definitions.

mod common;
use common::{bin, require_data, sample_flows, stderr, write_nfcapd};

use flowsketch::formats::{self, decode_all};
use flowsketch::record::{Addr, FlowRecord};
use flowsketch::rules::Definitions;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Instant;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run flowsketch")
}

/// The findings of `scan --format json` over `path`, with `rules` (the defaults when `None`).
fn scan(rules: Option<&Path>, path: &Path, extra: &[&str]) -> (Output, Vec<Value>) {
    let mut args: Vec<&str> = vec!["scan", "--format", "json", "--quiet"];
    if let Some(r) = rules {
        args.extend(["--rules", r.to_str().unwrap()]);
    }
    args.extend_from_slice(extra);
    args.push(path.to_str().unwrap());
    let o = run(&args);
    let found = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !common::is_summary(l))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    (o, found)
}

/// A finding's key as text: `host`, `host port P`, `host > peer`.
fn key_text(v: &Value) -> String {
    let mut key = v["host"].as_str().unwrap().to_string();
    if let Some(p) = v["port"].as_u64() {
        key += &format!(" port {p}");
    }
    if let Some(p) = v["peer"].as_str() {
        key += &format!(" > {p}");
    }
    key
}

/// (rule, key) -> value of every finding of `rules`.
fn by_key(found: &[Value], rules: &[&str]) -> BTreeMap<(String, String), u64> {
    found
        .iter()
        .filter(|v| rules.contains(&v["rule"].as_str().unwrap()))
        .map(|v| {
            let rule = v["rule"].as_str().unwrap().to_string();
            ((rule, key_text(v)), v["value"].as_u64().unwrap())
        })
        .collect()
}

/// Every flow of a file, decoded by the library's reader.
fn records(path: &Path) -> Vec<FlowRecord> {
    let bytes = std::fs::read(path).unwrap();
    let d = formats::open(formats::bytes_from_vec(bytes)).unwrap();
    let mut v = Vec::new();
    decode_all(d.as_ref(), &mut |b| v.extend_from_slice(b)).unwrap();
    v
}

fn ip(a: Addr) -> String {
    a.to_string()
}

fn v4(a: Addr) -> Option<[u8; 4]> {
    match a.to_ip() {
        IpAddr::V4(v) => Some(v.octets()),
        IpAddr::V6(_) => None,
    }
}

/// Whether `a` is in `net/len`, by comparing the leading bits of the two addresses.
fn in_prefix(a: IpAddr, net: &str, len: u32) -> bool {
    let bits = |x: IpAddr| -> (u128, u32) {
        match x {
            IpAddr::V4(v) => (u128::from(u32::from(v)) << 96, 32),
            IpAddr::V6(v) => (u128::from(v), 128),
        }
    };
    let (n, nw) = bits(net.parse().unwrap());
    let (x, xw) = bits(a);
    nw == xw && (len == 0 || (n ^ x) >> (128 - len) == 0)
}

/// The IANA special-purpose blocks the defaults call bogons, written out here from the registries.
fn is_bogon(a: Addr) -> bool {
    const BLOCKS: [(&str, u32); 19] = [
        ("0.0.0.0", 8),
        ("100.64.0.0", 10),
        ("127.0.0.0", 8),
        ("169.254.0.0", 16),
        ("192.0.0.0", 24),
        ("192.0.2.0", 24),
        ("198.18.0.0", 15),
        ("198.51.100.0", 24),
        ("203.0.113.0", 24),
        ("240.0.0.0", 4),
        ("::", 128),
        ("::1", 128),
        ("64:ff9b:1::", 48),
        ("100::", 64),
        ("2001:2::", 48),
        ("2001:db8::", 32),
        ("3fff::", 20),
        ("5f00::", 16),
        ("fe80::", 10),
    ];
    BLOCKS.iter().any(|(n, l)| in_prefix(a.to_ip(), n, *l))
}

/// SYN only or SYN/RST, ECN bits ignored (flow-tools' `permit 0x2, permit 0x6`).
fn syn_only(r: &FlowRecord) -> bool {
    r.proto == 6 && matches!(r.tcp_flags & 0x3f, 0x02 | 0x06)
}

/// Whether a flow is a reply (`responder`), by the rule docs/DEFINITIONS.md states, written out again here: TCP
/// flags first (a SYN without ACK opens, a lone SYN-ACK answers), ICMP types, then ports (a service port against
/// one that is not; else the lower port is the server's).
fn responder(r: &FlowRecord) -> bool {
    use flowsketch::rules::filter::direction::REGISTERED;
    let service = |p: u16| (1..1024).contains(&p) || REGISTERED.contains(&p);
    match r.proto {
        6 | 17 | 33 | 132 | 136 => {
            let flags = r.tcp_flags & 0x3f;
            if r.proto == 6 && flags & 0x12 == 0x02 {
                return false;
            }
            if r.proto == 6 && flags == 0x12 && r.packets == 1 {
                return true;
            }
            match (service(r.src_port), service(r.dst_port)) {
                (true, false) => true,
                (false, true) => false,
                _ => r.src_port < r.dst_port,
            }
        }
        1 => matches!(
            r.dst_port >> 8,
            0 | 3 | 4 | 5 | 9 | 11 | 12 | 14 | 16 | 18 | 43
        ),
        58 => matches!(r.dst_port >> 8, 1..=4 | 129 | 134 | 136 | 161),
        _ => false,
    }
}

/// FS9 in plain code: per destination and one-minute window starting every 10 s, the SYN-only flows of fewer than
/// four packets and their sources; windows with more than 50 sources and 100 flows are findings, and windows of
/// one destination that overlap or touch (starts at most six steps apart) are one, with the best window's count.
fn syn_floods(flows: &[FlowRecord], out: &mut BTreeMap<(String, String), u64>) {
    let mut windows: BTreeMap<(String, u64), (u64, HashSet<String>)> = BTreeMap::new();
    for r in flows {
        if r.proto != 6 || r.tcp_flags & 0x3f != 0x02 || r.packets >= 4 {
            continue;
        }
        let step = r.first_ms / 10_000;
        for k in step.saturating_sub(5)..=step {
            let w = windows.entry((ip(r.dst), k)).or_default();
            w.0 += 1;
            w.1.insert(ip(r.src));
        }
    }
    let mut last: Option<(String, u64)> = None;
    for ((dst, k), (flows, sources)) in windows {
        if sources.len() <= 50 || flows <= 100 {
            continue;
        }
        let count = sources.len() as u64;
        let joins = last
            .as_ref()
            .is_some_and(|(d, lk)| *d == dst && k - lk <= 6);
        let best = out.entry(("FS9".to_string(), dst.clone())).or_default();
        *best = if joins { (*best).max(count) } else { count };
        last = Some((dst, k));
    }
}

/// Distinct values per key, as plain sets.
#[derive(Default)]
struct Distinct(BTreeMap<String, HashSet<String>>);

impl Distinct {
    fn add(&mut self, key: String, value: String) {
        self.0.entry(key).or_default().insert(value);
    }
    fn above(&self, rule: &str, above: usize, out: &mut BTreeMap<(String, String), u64>) {
        for (k, set) in &self.0 {
            if set.len() > above {
                out.insert((rule.to_string(), k.clone()), set.len() as u64);
            }
        }
    }
}

/// What the nine default rules should report on `flows` (FS3 and FS5 have empty lists: nothing).
fn default_findings(flows: &[FlowRecord]) -> BTreeMap<(String, String), u64> {
    let (mut fs1, mut fs6, mut fs7, mut fs8) = Default::default();
    let (mut fs2, mut fs4) = (
        BTreeMap::<String, u64>::new(),
        BTreeMap::<String, u64>::new(),
    );
    for r in flows {
        let (s, d) = (ip(r.src), ip(r.dst));
        Distinct::add(&mut fs1, s.clone(), d.clone());
        if is_bogon(r.dst) {
            *fs2.entry(s.clone()).or_default() += 1;
        }
        if syn_only(r) {
            *fs4.entry(s.clone()).or_default() += 1;
        }
        if (r.proto == 6 && !responder(r)) || (r.proto == 17 && r.dst_port < 1024) {
            Distinct::add(&mut fs6, format!("{s} > {d}"), r.dst_port.to_string());
        }
        if (r.proto == 6 && r.tcp_flags & 0x3f == 0x02) || r.proto == 17 {
            Distinct::add(&mut fs7, format!("{s} port {}", r.dst_port), d.clone());
        }
        Distinct::add(&mut fs8, d, s);
    }
    let mut out = BTreeMap::new();
    fs1.above("FS1", 100, &mut out);
    for (k, n) in fs2 {
        out.insert(("FS2".to_string(), k), n);
    }
    for (k, n) in fs4.into_iter().filter(|(_, n)| *n > 100) {
        out.insert(("FS4".to_string(), k), n);
    }
    fs6.above("FS6", 64, &mut out);
    fs7.above("FS7", 25, &mut out);
    fs8.above("FS8", 1000, &mut out);
    syn_floods(flows, &mut out);
    out
}

/// The default rules on `file`: with `--exact` exactly the findings computed here from its flows; with the default
/// counter the same keys, counts it calls exact equal, estimates within four standard errors. Returns the
/// (rule, key) pairs found.
fn default_rules_equal_independent_figures(file: &Path) -> BTreeSet<(String, String)> {
    let all = [
        "FS1", "FS2", "FS3", "FS4", "FS5", "FS6", "FS7", "FS8", "FS9",
    ];
    let flows = records(file);
    let want = default_findings(&flows);
    let (o, found) = scan(None, file, &["--exact"]);
    let got = by_key(&found, &all);
    assert_eq!(got, want, "{}: {}", file.display(), stderr(&o));
    let code = if want.is_empty() { 0 } else { 1 };
    assert_eq!(o.status.code(), Some(code), "{}", file.display());
    let (_, sketched) = scan(None, file, &[]);
    assert_eq!(sketched.len(), found.len(), "{}", file.display());
    for v in &sketched {
        let key = (v["rule"].as_str().unwrap().to_string(), key_text(v));
        let truth = want[&key] as f64;
        let value = v["value"].as_u64().unwrap() as f64;
        if v["exact"].as_bool().unwrap() {
            assert_eq!(value, truth, "{key:?}");
        } else {
            let sigma = v["rel_std_error"].as_f64().unwrap();
            assert!(
                (value - truth).abs() <= 4.0 * sigma * truth,
                "{key:?}: {value} vs {truth}"
            );
        }
        assert_eq!(v["definitions"], "2026.12.1");
    }
    got.into_keys().collect()
}

#[test]
fn default_rules_on_a_generated_site_equal_independent_figures() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("demo.nfcapd");
    let (mut flows, planted) = flowsketch::gen::demo::capture(3, 30_000);
    // IPv6, ICMP and the edge cases of the sample flows too.
    flows.extend(sample_flows(3_000, 0.3));
    write_nfcapd(&file, &flows);
    let reported = default_rules_equal_independent_figures(&file);
    // Every planted host is found by the rules it should trigger, and the decoy by none.
    for p in &planted {
        let rules: BTreeSet<&str> = reported
            .iter()
            .filter(|(_, key)| key.split(' ').next() == Some(&*p.host.to_string()))
            .map(|(r, _)| r.as_str())
            .collect();
        for r in p.expect {
            assert!(rules.contains(r), "{}: {r} missing in {rules:?}", p.what);
        }
        if p.expect.is_empty() {
            assert!(rules.is_empty(), "{}: {rules:?}", p.what);
        }
    }
    // The rules with lists the defaults leave empty report nothing.
    assert!(reported.iter().all(|(r, _)| r != "FS3" && r != "FS5"));
}

#[test]
fn default_rules_on_real_scans_equal_independent_figures() {
    // The reader's flows of these files are checked against nfdump's in tests/nfcapd.rs.
    let Some(d) = require_data("default_rules_on_real_scans_equal_independent_figures") else {
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(d.join("scans"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "nfcapd"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "{files:?}");
    let mut reported = BTreeMap::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        reported.insert(name, default_rules_equal_independent_figures(file));
    }
    // What the data README says each scan is, in terms of rules.
    let has = |file: &str, rule: &str, key: &str| {
        reported[file].contains(&(rule.to_string(), key.to_string()))
    };
    assert!(has("udp-scan-bogon.nfcapd", "FS2", "246.237.45.150"));
    for (rule, key) in [
        ("FS1", "10.0.0.128"),
        ("FS4", "10.0.0.128"),
        ("FS7", "10.0.0.128 port 80"),
    ] {
        assert!(
            has("syn-sweep-horizontal.nfcapd", rule, key),
            "{reported:?}"
        );
    }
    assert!(has(
        "masscan-tcp-vertical.nfcapd",
        "FS6",
        "172.31.15.102 > 198.124.152.15"
    ));
    assert!(has(
        "port-scan-1-10000.nfcapd",
        "FS6",
        "192.168.1.7 > 192.168.1.1"
    ));
    // The same scan over UDP, which flow-dscan reports as a port scan too.
    assert!(has(
        "masscan-udp-vertical.nfcapd",
        "FS6",
        "172.31.15.102 > 198.124.152.15"
    ));
    for (file, rules) in &reported {
        eprintln!("{file}: {rules:?}");
    }
}

/// The address plan and proxy list of tests/fixtures/sample-site.toml, in plain code.
fn site_findings(flows: &[FlowRecord]) -> BTreeMap<(String, String), u64> {
    let mut out = BTreeMap::new();
    for r in flows {
        if let Some([192, 168, 0, last]) = v4(r.src) {
            let dhcp = (100..=199).contains(&last);
            let fixed = (1..=4).contains(&last) || last == 200;
            if !dhcp && !fixed {
                *out.entry(("FS3".to_string(), ip(r.src))).or_default() += 1;
            }
        }
        if ip(r.src) == "192.168.0.137" && ![80, 443, 8080].contains(&r.dst_port) && !responder(r) {
            *out.entry(("FS5".to_string(), ip(r.src))).or_default() += 1;
        }
    }
    out
}

/// Flows of a small site for the lists of the fixtures: the demo's and the sample flows with their IPv4 sources
/// moved into
/// 192.168.0.0/24, the proxy 192.168.0.137 talking on web and other ports, and flows touching the whitelisted
/// resolvers of lists/trusted.txt.
fn site_flows() -> Vec<FlowRecord> {
    let mut flows = flowsketch::gen::demo::capture(4, 6_000).0;
    flows.extend(sample_flows(2_000, 0.1));
    for r in flows.iter_mut() {
        if let Some(a) = r.src.as_v4() {
            r.src = Addr::v4(0xc0a8_0000 | (a.wrapping_mul(2_654_435_761) >> 24));
        }
    }
    let base = flows[0];
    for (i, port) in [80, 443, 8080, 53, 22, 443, 25].into_iter().enumerate() {
        flows.push(FlowRecord {
            src: "192.168.0.137".parse().unwrap(),
            dst: Addr::v4(0x5db8_0000 + i as u32),
            dst_port: port,
            proto: 6,
            ..base
        });
    }
    // Its replies to clients, from its service port to theirs: not the proxy talking on those ports.
    for (i, client_port) in [51_000, 40_123, 62_001].into_iter().enumerate() {
        flows.push(FlowRecord {
            src: "192.168.0.137".parse().unwrap(),
            dst: Addr::v4(0xc0a8_0032 + i as u32),
            src_port: 3128,
            dst_port: client_port,
            proto: 6,
            tcp_flags: 0x18,
            ..base
        });
    }
    for (s, d) in [
        ("192.168.0.23", "1.1.1.1"),
        ("192.168.0.1", "8.8.8.8"),
        ("2a00::5", "2804:3714:2::53"),
    ] {
        flows.push(FlowRecord {
            src: s.parse().unwrap(),
            dst: d.parse().unwrap(),
            ..base
        });
    }
    flows
}

#[test]
fn address_plan_and_proxies_fire_only_with_the_sites_lists() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("site.nfcapd");
    write_nfcapd(&file, &site_flows());
    site_lists_decide(&file, &file);
}

#[test]
fn address_plan_and_proxies_fire_only_with_the_sites_lists_on_the_real_sample() {
    let test = "address_plan_and_proxies_fire_only_with_the_sites_lists_on_the_real_sample";
    let Some(d) = require_data(test) else {
        return;
    };
    site_lists_decide(
        &d.join("nfcapd/nfcapd.sample"),
        &d.join("nfcapd/nfcapd.sample-lz4"),
    );
}

/// tests/fixtures/sample-site.toml's address plan and proxy list find in `sample` what plain code finds; with
/// the defaults (their lists empty) the two rules are said to be inactive once for a run over `sample` and
/// `other`, and the other rules find the same with either definitions file.
fn site_lists_decide(sample: &Path, other: &Path) {
    let site = fixture("sample-site.toml");
    // The fixture is the defaults with lists filled in: the same rules.
    let ours = Definitions::load(&site).unwrap();
    let builtin = Definitions::builtin();
    assert!(ours.inactive.is_empty(), "{:?}", ours.inactive);
    let shape = |r: &flowsketch::rules::Rule| {
        (
            r.id.clone(),
            r.filter.text().to_string(),
            r.key,
            r.count,
            r.above,
        )
    };
    let mut defaults: Vec<_> = builtin.rules.iter().map(shape).collect();
    let missing: Vec<&str> = builtin.inactive.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(missing, ["FS3", "FS5"]);
    for r in ours
        .rules
        .iter()
        .filter(|r| missing.contains(&r.id.as_str()))
    {
        defaults.push(shape(r));
    }
    defaults.sort_by(|a, b| a.0.cmp(&b.0));
    let site_rules: Vec<_> = ours.rules.iter().map(shape).collect();
    assert_eq!(site_rules, defaults);

    let flows = records(sample);
    let want = site_findings(&flows);
    let fs3 = want.keys().filter(|k| k.0 == "FS3").count();
    assert!(fs3 >= 5, "the plan must leave some hosts out: {want:?}");
    assert!(want.contains_key(&("FS5".into(), "192.168.0.137".into())));
    // The proxy's replies to its clients' ports are there, and FS5 must leave them out (the figures above do).
    let replies = flows
        .iter()
        .filter(|r| ip(r.src) == "192.168.0.137" && ![80, 443, 8080].contains(&r.dst_port))
        .filter(|r| responder(r))
        .count();
    assert!(replies >= 3, "{replies} replies of the proxy");

    let (o, found) = scan(Some(&site), sample, &[]);
    assert_eq!(by_key(&found, &["FS3", "FS5"]), want, "{}", stderr(&o));
    assert!(found.iter().all(|v| v["definitions"] == "test-site.1"));
    // Each FS3/FS5 finding counts flows: its matched flows are its value.
    for v in found
        .iter()
        .filter(|v| v["rule"] == "FS3" || v["rule"] == "FS5")
    {
        assert_eq!(v["flows"], v["value"], "{v}");
    }

    // With the defaults the two rules are inactive, said once for the whole run, and report nothing.
    let o = run(&[
        "scan",
        "--format",
        "json",
        sample.to_str().unwrap(),
        other.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    for (id, list) in [("FS3", "managed"), ("FS5", "proxies")] {
        let line = format!("rule {id} inactive: list @{list} is empty");
        assert_eq!(err.matches(&line).count(), 1, "{err}");
    }
    let found: Vec<Value> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !common::is_summary(l))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(by_key(&found, &["FS3", "FS5"]).is_empty());
    // The other rules find the same with either file.
    let (_, single) = scan(None, sample, &[]);
    let (_, with_site) = scan(Some(&site), sample, &[]);
    assert!(
        !by_key(&single, &["FS1", "FS8"]).is_empty(),
        "other rules must fire too"
    );
    let others = ["FS1", "FS2", "FS4", "FS6", "FS7", "FS8"];
    assert_eq!(by_key(&single, &others), by_key(&with_site, &others));
}

/// Entries of a whitelist file (addresses and prefixes), read with std only.
fn whitelist(path: &Path) -> Vec<(String, u32)> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .map(|e| match e.split_once('/') {
            Some((a, len)) => (a.to_string(), len.parse().unwrap()),
            None => {
                let full = if e.contains(':') { 128 } else { 32 };
                (e.to_string(), full)
            }
        })
        .collect()
}

#[test]
fn host_peers_equal_the_operators_script() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("site.nfcapd");
    write_nfcapd(&file, &site_flows());
    host_peers_equal_the_operators_script_on(&file);
}

#[test]
fn host_peers_equal_the_operators_script_on_the_real_sample() {
    let test = "host_peers_equal_the_operators_script_on_the_real_sample";
    let Some(d) = require_data(test) else {
        return;
    };
    host_peers_equal_the_operators_script_on(&d.join("nfcapd/nfcapd.sample"));
}

/// The operator's original script (distinct peers in either direction, flows touching a whitelisted address
/// skipped) against tests/fixtures/peers.toml on `sample`.
fn host_peers_equal_the_operators_script_on(sample: &Path) {
    let rules = fixture("peers.toml");
    let white = whitelist(&fixture("lists/trusted.txt"));
    let listed = |a: IpAddr| white.iter().any(|(n, l)| in_prefix(a, n, *l));

    // The script: skip flows touching a whitelisted address; each end is a peer of the other.
    let script = |flows: &mut dyn Iterator<Item = (IpAddr, IpAddr)>| {
        let mut peers: BTreeMap<String, HashSet<String>> = BTreeMap::new();
        for (s, d) in flows {
            if listed(s) || listed(d) {
                continue;
            }
            peers
                .entry(s.to_string())
                .or_default()
                .insert(d.to_string());
            peers
                .entry(d.to_string())
                .or_default()
                .insert(s.to_string());
        }
        peers
            .into_iter()
            .map(|(k, v)| (("P1".to_string(), k), v.len() as u64))
            .collect::<BTreeMap<_, _>>()
    };
    let flows = records(sample);
    let want = script(&mut flows.iter().map(|r| (r.src.to_ip(), r.dst.to_ip())));
    let skipped = flows
        .iter()
        .filter(|r| listed(r.src.to_ip()) || listed(r.dst.to_ip()))
        .count();
    assert!(skipped > 0, "the whitelist must matter");
    assert!(want.len() > 100, "{}", want.len());

    let (o, found) = scan(Some(&rules), sample, &["--exact"]);
    assert_eq!(by_key(&found, &["P1"]), want, "{}", stderr(&o));
    let (_, found) = scan(Some(&rules), sample, &[]);
    assert_eq!(found.len(), want.len());
    for v in &found {
        let key = ("P1".to_string(), key_text(v));
        let (value, truth) = (v["value"].as_u64().unwrap(), want[&key]);
        // The default counter is exact up to 383 distinct values, an estimate within four sigmas beyond.
        if truth <= 383 {
            assert!(v["exact"].as_bool().unwrap(), "small sets are exact: {v}");
            assert_eq!(value, truth, "{v}");
        } else {
            let sigma = v["rel_std_error"].as_f64().unwrap();
            assert!(
                (value as f64 - truth as f64).abs() <= 4.0 * sigma * truth as f64,
                "{v}"
            );
        }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (the usual era arithmetic).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Milliseconds of `2026-11-26T03:00:00.250Z`.
fn parse_iso_ms(s: &str) -> u64 {
    let n = |a: usize, b: usize| s[a..b].parse::<i64>().unwrap();
    let days = days_from_civil(n(0, 4), n(5, 7), n(8, 10));
    let secs = days * 86_400 + n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19);
    (secs * 1000 + n(20, 23)) as u64
}

#[test]
fn windows_count_each_tumbling_window_apart() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("site.nfcapd");
    write_nfcapd(&file, &sample_flows(5_000, 0.2));
    windows_count_apart(&file);
}

#[test]
fn windows_count_each_tumbling_window_apart_on_the_real_sample() {
    let test = "windows_count_each_tumbling_window_apart_on_the_real_sample";
    let Some(d) = require_data(test) else {
        return;
    };
    windows_count_apart(&d.join("nfcapd/nfcapd.sample"));
}

/// tests/fixtures/windows.toml's 10-second windows on `sample` hold what plain code counts per window.
fn windows_count_apart(sample: &Path) {
    let flows = records(sample);
    let mut want: BTreeMap<(String, String, u64), u64> = BTreeMap::new();
    let mut peers: BTreeMap<(String, u64), HashSet<Addr>> = BTreeMap::new();
    for r in &flows {
        let w = r.first_ms / 10_000 * 10_000;
        *want.entry(("W1".into(), ip(r.src), w)).or_default() += 1;
        if r.proto == 6 || r.proto == 17 {
            peers.entry((ip(r.src), w)).or_default().insert(r.dst);
        }
    }
    for ((s, w), set) in peers {
        want.insert(("W2".into(), s, w), set.len() as u64);
    }
    let windows: BTreeSet<u64> = want.keys().map(|k| k.2).collect();
    assert!(windows.len() >= 3, "the sample spans several windows");

    let (o, found) = scan(Some(&fixture("windows.toml")), sample, &["--exact"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let mut got = BTreeMap::new();
    for v in &found {
        let start = parse_iso_ms(v["window_start"].as_str().unwrap());
        let end = parse_iso_ms(v["window_end"].as_str().unwrap());
        assert_eq!(end - start, 10_000, "{v}");
        let first = parse_iso_ms(v["first"].as_str().unwrap());
        assert!((start..end).contains(&first), "{v}");
        let key = (v["rule"].as_str().unwrap().to_string(), key_text(v), start);
        got.insert(key, v["value"].as_u64().unwrap());
    }
    assert_eq!(got, want);
}

/// The lines of a fixture marked `# ERROR at TOKEN`: (line number, token the caret must point at).
fn marked_errors(text: &str) -> Vec<(usize, String)> {
    text.lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let (_, mark) = l.split_once("# ERROR at ")?;
            Some((i + 1, mark.trim().to_string()))
        })
        .collect()
}

/// `file:line:col: message` headers of the errors printed, with the caret's column checked against the line.
fn printed_errors(err: &str, file: &str) -> Vec<(usize, usize, String)> {
    let lines: Vec<&str> = err.lines().collect();
    let mut out = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let Some(rest) = l.strip_prefix(&format!("{file}:")) else {
            continue;
        };
        let mut parts = rest.splitn(3, ':');
        let (Some(line), Some(col), Some(msg)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        let (Ok(line), Ok(col)) = (line.parse::<usize>(), col.parse::<usize>()) else {
            continue;
        };
        // Then ` |`, `N | the line`, and ` | ` with the caret under column `col`.
        let caret = lines[i + 3];
        let bar = caret.find('|').unwrap();
        assert_eq!(caret.find('^'), Some(bar + 1 + col), "{err}");
        out.push((line, col, msg.trim().to_string()));
    }
    out
}

#[test]
fn bad_definitions_never_start_a_scan() {
    let dir = tempfile::tempdir().unwrap();
    for (name, least) in [("bad-everything.toml", 9), ("unknown-key.toml", 1)] {
        // Copied beside its lists so the messages carry the short name.
        let text = std::fs::read_to_string(fixture(name)).unwrap();
        let marks = marked_errors(&text);
        assert!(marks.len() >= least, "{name}: {marks:?}");
        let o = bin()
            .current_dir(fixture(""))
            .args(["rules", "--check", name])
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        let printed = printed_errors(&err, name);
        let lines: Vec<usize> = printed.iter().map(|e| e.0).collect();
        let want: Vec<usize> = marks.iter().map(|m| m.0).collect();
        assert_eq!(lines, want, "one message per error, in file order:\n{err}");
        for ((line, col, msg), (_, token)) in printed.iter().zip(&marks) {
            let source = text.lines().nth(line - 1).unwrap();
            let at: String = source.chars().skip(col - 1).collect();
            assert!(
                at.starts_with(token.as_str()),
                "{line}:{col} {msg}: '{at}' vs {token}"
            );
        }
        assert!(
            err.contains(&format!("{name}: {} error", marks.len())),
            "{err}"
        );

        // A scan with the file stops before reading any input.
        let data = dir.path().join("flows.csv");
        std::fs::write(&data, "not read\n").unwrap();
        let o = bin()
            .current_dir(fixture(""))
            .args(["scan", "--rules", name, data.to_str().unwrap()])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2));
        assert!(o.stdout.is_empty());
        let err = stderr(&o);
        assert_eq!(
            printed_errors(&err, &format!("flowsketch: {name}")).len()
                + printed_errors(&err, name).len(),
            marks.len(),
            "{err}"
        );
        assert!(!err.contains("records skipped"), "no scan summary: {err}");
    }
}

#[test]
fn good_definitions_pass_the_check() {
    let dir = tempfile::tempdir().unwrap();
    let printed = dir.path().join("defaults.toml");
    let o = run(&["rules", "--print"]);
    assert_eq!(o.status.code(), Some(0));
    std::fs::write(&printed, &o.stdout).unwrap();
    let mut files = vec![printed];
    for f in ["sample-site.toml", "peers.toml", "windows.toml"] {
        files.push(fixture(f));
    }
    for f in &files {
        let o = run(&["rules", "--check", f.to_str().unwrap()]);
        let out = String::from_utf8_lossy(&o.stdout);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}: {out}{}",
            f.display(),
            stderr(&o)
        );
        let loaded = Definitions::load(f).unwrap();
        assert!(
            out.contains(&format!("valid, definitions {}", loaded.version)),
            "{out}"
        );
        for (id, why) in &loaded.inactive {
            assert!(out.contains(&format!("rule {id} {why}")), "{out}");
        }
    }
    let o = run(&["rules", "--check", files[0].to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("rule FS3 inactive: list @managed is empty"),
        "{out}"
    );
}

#[test]
fn a_list_of_100000_entries_loads() {
    let dir = tempfile::tempdir().unwrap();
    let entry = |i: u32| -> String {
        let (a, b, c) = ((i >> 16) & 255, (i >> 8) & 255, i & 255);
        match i % 4 {
            0 => format!("11.{a}.{b}.{c}"),
            1 => format!("12.{b}.{c}.0/24"),
            2 => format!("13.{b}.{c}.10-13.{b}.{c}.20"),
            _ => format!("2001:db8:{:x}:{:x}::/64  # a comment", i >> 16, i & 0xffff),
        }
    };
    let mut text = String::from("# generated\n");
    for i in 0..100_000 {
        text += &entry(i);
        text.push('\n');
    }
    std::fs::write(dir.path().join("big.txt"), text).unwrap();
    let defs = dir.path().join("big.toml");
    std::fs::write(
        &defs,
        "version = \"big\"\n[lists]\nbig = \"file:big.txt\"\n[[rule]]\nid = \"B\"\nwhere = \"dst in @big\"\nkey = \"src\"\ncount = \"flows\"\nabove = 0\n",
    )
    .unwrap();
    let start = Instant::now();
    let d = Definitions::load(&defs).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "100,000-entry list loaded in {:.3} s (this build)",
        start.elapsed().as_secs_f64()
    );
    assert!(d.inactive.is_empty());
    let big = &d.lists.addrs["big"];
    let addr = |s: &str| Addr::from(s.parse::<IpAddr>().unwrap());
    for i in [0u32, 4_000, 65_536, 99_996] {
        let (a, b, c) = ((i >> 16) & 255, (i >> 8) & 255, i & 255);
        assert!(big.contains(addr(&format!("11.{a}.{b}.{c}"))), "{i}");
        assert!(!big.contains(addr(&format!("11.{a}.{b}.{}", c + 1))), "{i}");
        let (b1, c1) = (((i + 1) >> 8) & 255, (i + 1) & 255);
        assert!(big.contains(addr(&format!("12.{b1}.{c1}.77"))), "{i}");
        let (b2, c2) = (((i + 2) >> 8) & 255, (i + 2) & 255);
        assert!(big.contains(addr(&format!("13.{b2}.{c2}.15"))), "{i}");
        assert!(!big.contains(addr(&format!("13.{b2}.{c2}.21"))), "{i}");
        let (hi, lo) = ((i + 3) >> 16, (i + 3) & 0xffff);
        assert!(
            big.contains(addr(&format!("2001:db8:{hi:x}:{lo:x}::1"))),
            "{i}"
        );
        assert!(
            !big.contains(addr(&format!("2001:db8:{hi:x}:{:x}::1", lo + 1))),
            "{i}"
        );
    }
    let o = run(&["rules", "--check", defs.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
}
