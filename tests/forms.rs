//! The rule forms of issue 13, each on inputs written here and against figures computed here with plain code:
//! hopping windows catch a burst that tumbling windows split, wherever it falls; subnet keys, distinct networks
//! and thresholds per list; the spoofed SYN flood of `gen` is FS9's; and every TOML example of docs/DEFINITIONS.md
//! is a valid definitions file that scans.

mod common;
use common::{bin, sample_flows, stderr, write_nfcapd};

use flowsketch::record::{Addr, FlowRecord};
use flowsketch::rules::Definitions;
use flowsketch::scanner::{Scan, ScanConfig, Scanner};
use flowsketch::sketch::CounterKind;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

/// A minute boundary (2026-11-26 03:00 UTC), where the generated flows start.
const T0: u64 = 1_795_662_000_000;

fn addr(s: &str) -> Addr {
    s.parse().unwrap()
}

/// A SYN-only probe.
fn syn(src: Addr, dst: Addr, dport: u16, t: u64) -> FlowRecord {
    FlowRecord {
        src,
        dst,
        src_port: 40_000,
        dst_port: dport,
        proto: 6,
        tcp_flags: 0x02,
        packets: 1,
        bytes: 44,
        first_ms: t,
        last_ms: t,
        ..FlowRecord::default()
    }
}

/// `n` SYN-only flows from 10.9.9.9 to as many hosts, `gap` ms apart from `start`.
fn burst(start: u64, n: u32, gap: u64) -> Vec<FlowRecord> {
    (0..n)
        .map(|i| {
            syn(
                addr("10.9.9.9"),
                Addr::v4(0x0a01_0000 + i),
                80,
                start + i as u64 * gap,
            )
        })
        .collect()
}

/// Scan `file` with the definitions `text`, with every key counted exactly when `exact`.
fn scan(text: &str, file: &Path, exact: bool) -> Scan {
    let defs = Definitions::parse(text, "test.toml", None).unwrap_or_else(|e| panic!("{e}"));
    let config = if exact {
        ScanConfig {
            counter: CounterKind::Exact,
            admit: 0.0,
            verify: false,
            ..ScanConfig::default()
        }
    } else {
        ScanConfig::default()
    };
    let scan = Scanner::new(&defs, config).run(&[file.to_path_buf()]);
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    scan
}

/// What a finding says, all of it but how it was counted.
type Fact = (
    String,
    String,
    u64,
    u64,
    u64,
    u64,
    u64,
    Option<(u64, u64)>,
    u64,
);

fn facts(scan: &Scan) -> Vec<Fact> {
    scan.findings
        .iter()
        .map(|f| {
            (
                f.rule.clone(),
                f.key_text(),
                f.count,
                f.flows,
                f.above,
                f.first_ms,
                f.last_ms,
                f.window_bounds(),
                f.hops.map_or(1, |h| h.windows),
            )
        })
        .collect()
}

const WINDOWS: &str = r#"
[[rule]]
id = "TUMBLING"
where = "flags = S"
key = "src"
count = "flows"
above = 100
window = "1m"

[[rule]]
id = "HOPPING"
where = "flags = S"
key = "src"
count = "flows"
above = 100
window = "1m"
step = "10s"
"#;

/// 150 SYN-only flows within a minute, 75 before a minute boundary and 75 after: the tumbling windows hold 75 each
/// and report nothing; the windows starting every 10 s find one burst, counted whole in the window from :30 to
/// :30, over 100 in three windows, reported once.
#[test]
fn a_burst_across_a_minute_boundary_is_found_by_hopping_windows_only() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nfcapd.202611260300");
    let mut flows = sample_flows(5_000, 0.1);
    let start = T0 + 30_000;
    flows.extend(burst(start, 150, 400));
    write_nfcapd(&file, &flows);
    let scan = scan(WINDOWS, &file, false);
    let ours: Vec<Fact> = facts(&scan)
        .into_iter()
        .filter(|f| f.1 == "10.9.9.9")
        .collect();
    let window = Some((start, start + 60_000));
    let last = start + 149 * 400;
    assert_eq!(
        ours,
        [(
            "HOPPING".to_string(),
            "10.9.9.9".to_string(),
            150,
            150,
            100,
            start,
            last,
            window,
            3
        )]
    );
    // Tumbling windows of a minute hold 75 each.
    let split = scan_counts(&file, "TUMBLING");
    assert_eq!(split, [75, 75]);
    // Verified findings are exact counting's, for both rules.
    assert_eq!(facts(&scan), facts(&self::scan(WINDOWS, &file, true)));
}

/// The counts of 10.9.9.9 in every window of `rule`, with every key counted (the threshold set to 0).
fn scan_counts(file: &Path, rule: &str) -> Vec<u64> {
    let text = WINDOWS.replace("above = 100", "above = 0");
    let s = scan(&text, file, true);
    let mut v: Vec<(u64, u64)> = s
        .findings
        .iter()
        .filter(|f| f.rule == rule && f.key_text() == "10.9.9.9")
        .map(|f| (f.key.window, f.count))
        .collect();
    v.sort();
    v.into_iter().map(|(_, c)| c).collect()
}

/// A burst whose flows all start within `window - step` (50 s) is found by the hopping windows wherever it falls;
/// the tumbling windows miss it whenever it straddles a boundary with at most 100 flows on each side.
#[test]
fn a_burst_within_window_minus_step_is_found_at_every_alignment() {
    let dir = tempfile::tempdir().unwrap();
    let (mut missed_by_tumbling, mut runs) = (0, 0);
    for offset in (0..60_000).step_by(3_700) {
        let file = dir.path().join(format!("nfcapd.{offset}"));
        // 150 flows over 149 * 335 ms = 49.9 s.
        write_nfcapd(&file, &burst(T0 + 600_000 + offset, 150, 335));
        let s = scan(WINDOWS, &file, false);
        let found = |rule: &str| s.findings.iter().any(|f| f.rule == rule);
        assert!(found("HOPPING"), "offset {offset} ms");
        let hopping: Vec<&flowsketch::report::Finding> =
            s.findings.iter().filter(|f| f.rule == "HOPPING").collect();
        assert_eq!(hopping.len(), 1, "one burst, one finding");
        assert_eq!(hopping[0].count, 150, "counted whole at offset {offset}");
        missed_by_tumbling += usize::from(!found("TUMBLING"));
        runs += 1;
    }
    assert!(
        missed_by_tumbling > 3 && missed_by_tumbling < runs,
        "{missed_by_tumbling} of {runs}"
    );
}

/// The first `len` bits of an address, the rest zero, in plain std terms.
fn cut(a: Addr, v4_len: u32, v6_len: u32) -> IpAddr {
    match a.to_ip() {
        IpAddr::V4(v) => {
            let m = u32::MAX.checked_shl(32 - v4_len).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(u32::from(v) & m))
        }
        IpAddr::V6(v) => {
            let m = u128::MAX.checked_shl(128 - v6_len).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v) & m))
        }
    }
}

/// `net/len` contains `a` (both of one family).
fn contains(net: IpAddr, len: u32, a: IpAddr) -> bool {
    match (net, a) {
        (IpAddr::V4(n), IpAddr::V4(x)) => {
            let m = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            u32::from(n) & m == u32::from(x) & m
        }
        (IpAddr::V6(n), IpAddr::V6(x)) => {
            let m = u128::MAX.checked_shl(128 - len).unwrap_or(0);
            u128::from(n) & m == u128::from(x) & m
        }
        _ => false,
    }
}

/// A prefix as reports print it: `10.50.70.0/24`, or the address when it is whole.
fn prefix_text(net: IpAddr, len: u32) -> String {
    let whole = if net.is_ipv4() { 32 } else { 128 };
    if len == whole {
        net.to_string()
    } else {
        format!("{net}/{len}")
    }
}

const SUBNETS: &str = r#"
[lists]
busy = ["10.50.60.200"]
quiet = ["2001:db8:5:6::/64", "10.77.0.1"]

[[rule]]
id = "NET"
where = "flags = S"
key = "src/24/64,dport"
count = "distinct dst"
above = 100
above_for = { "@busy" = 1000, "@quiet" = 50 }

[[rule]]
id = "NETS"
key = "src"
count = "distinct dst/24"
above = 100

[[rule]]
id = "GROUP"
key = "src"
count = "flows"
above = 40
above_for = { "@quiet" = 3, "@busy" = 2 }
"#;

/// Flows of two IPv4 /24 sweeps (one holding a busy server), an IPv6 /64 sweep, and a host reaching 150 /24s, among
/// generated traffic with IPv6.
fn subnet_flows() -> Vec<FlowRecord> {
    let mut flows = sample_flows(20_000, 0.3);
    let mut t = T0;
    let mut next = || {
        t += 7;
        t
    };
    for (net, port) in [(0x0a32_3c00u32, 22), (0x0a32_4600, 22)] {
        for host in 1..=120u32 {
            for k in 0..3 {
                let dst = Addr::v4(0x2c01_0000 + host * 3 + k);
                flows.push(syn(Addr::v4(net + host), dst, port, next()));
            }
        }
    }
    for host in 1..=80u128 {
        for k in 0..2 {
            let src = Addr::v6((0x2001_0db8_0005_0006 << 64) | host);
            let dst = Addr::v6((0x2600 << 112) | (host * 2 + k));
            flows.push(syn(src, dst, 23, next()));
        }
    }
    for i in 0..150u32 {
        flows.push(syn(
            addr("10.77.0.1"),
            Addr::v4(0xac10_0001 + (i << 8)),
            443,
            next(),
        ));
    }
    flows
}

/// NET, NETS and GROUP of [`SUBNETS`] in plain code: (rule, key, value, threshold) of every finding.
fn subnet_oracle(flows: &[FlowRecord]) -> BTreeSet<(String, String, u64, u64)> {
    let busy = [(addr("10.50.60.200").to_ip(), 32)];
    let quiet = [
        (addr("2001:db8:5:6::").to_ip(), 64),
        (addr("10.77.0.1").to_ip(), 32),
    ];
    // A key (a prefix) is in a list when an entry and the prefix overlap: one holds the other's network.
    let in_list = |list: &[(IpAddr, u32)], net: IpAddr, len: u32| {
        list.iter()
            .any(|&(e, el)| contains(e, el.min(len), net) || contains(net, len, e))
    };
    let mut net: BTreeMap<(IpAddr, u32, u16), HashSet<IpAddr>> = BTreeMap::new();
    let mut nets: BTreeMap<IpAddr, HashSet<IpAddr>> = BTreeMap::new();
    let mut group: BTreeMap<IpAddr, u64> = BTreeMap::new();
    for r in flows {
        if r.proto == 6 && r.tcp_flags & 0x3f == 0x02 {
            let len = if r.src.to_ip().is_ipv4() { 24 } else { 64 };
            let key = (cut(r.src, 24, 64), len, r.dst_port);
            net.entry(key).or_default().insert(r.dst.to_ip());
        }
        nets.entry(r.src.to_ip())
            .or_default()
            .insert(cut(r.dst, 24, 128));
        *group.entry(r.src.to_ip()).or_default() += 1;
    }
    let mut out = BTreeSet::new();
    for ((n, len, port), dsts) in net {
        let above = if in_list(&busy, n, len) {
            1000
        } else if in_list(&quiet, n, len) {
            50
        } else {
            100
        };
        if dsts.len() as u64 > above {
            let key = format!("{} port {port}", prefix_text(n, len));
            out.insert(("NET".into(), key, dsts.len() as u64, above));
        }
    }
    for (src, set) in nets {
        if set.len() > 100 {
            out.insert(("NETS".into(), src.to_string(), set.len() as u64, 100));
        }
    }
    for (src, n) in group {
        let whole = if src.is_ipv4() { 32 } else { 128 };
        let above = if in_list(&quiet, src, whole) {
            3
        } else if in_list(&busy, src, whole) {
            2
        } else {
            40
        };
        if n > above {
            out.insert(("GROUP".into(), src.to_string(), n, above));
        }
    }
    out
}

/// Findings of `scan -f json` as (rule, key, value, above), keys as reports print them (`host port P`).
fn json_findings(
    rules: &Path,
    file: &Path,
    extra: &[&str],
) -> BTreeSet<(String, String, u64, u64)> {
    let o = bin()
        .args(["scan", "-q", "-f", "json", "-r"])
        .arg(rules)
        .args(extra)
        .arg(file)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .filter(|l| !common::is_summary(l))
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let mut key = v["host"].as_str().unwrap().to_string();
            if let Some(p) = v["port"].as_u64() {
                key += &format!(" port {p}");
            }
            (
                v["rule"].as_str().unwrap().to_string(),
                key,
                v["value"].as_u64().unwrap(),
                v["above"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Subnet keys, distinct networks and thresholds per list give exactly the findings plain counting gives, with
/// `--exact` too: the sweep of 10.50.70.0/24 is one finding while none of its hosts is one; 10.50.60.0/24 holds a
/// busy server, so it has the busy threshold and is not; the IPv6 /64 has the quiet one and is.
#[test]
fn subnet_keys_and_thresholds_per_list_equal_plain_counting() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nfcapd.202611260300");
    let flows = subnet_flows();
    write_nfcapd(&file, &flows);
    let rules = dir.path().join("subnets.toml");
    std::fs::write(&rules, SUBNETS).unwrap();
    let want = subnet_oracle(&flows);
    let has = |key: &str| want.iter().any(|f| f.1 == key);
    assert!(
        has("10.50.70.0/24 port 22") && !has("10.50.60.0/24 port 22"),
        "{want:?}"
    );
    assert!(
        has("2001:db8:5:6::/64 port 23") && has("10.77.0.1"),
        "{want:?}"
    );
    assert!(want.iter().any(|f| f.0 == "GROUP" && f.3 == 40), "{want:?}");
    assert_eq!(json_findings(&rules, &file, &[]), want);
    assert_eq!(json_findings(&rules, &file, &["--exact"]), want);
}

/// `gen --spoofed N`: N one-flow SYNs from forged sources at one victim over the capture's span (here 3,000 in ten
/// minutes, 300 a minute) are a SYN flood on the victim, and on nothing else.
#[test]
fn the_spoofed_flood_of_gen_is_a_syn_flood_on_its_victim() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("cap");
    let st = bin()
        .args([
            "gen",
            "--flows",
            "100000",
            "--sources",
            "10000",
            "--span",
            "10m",
            "--rotate",
            "0",
            "--no-plant",
            "--spoofed",
            "3000",
            "-o",
        ])
        .arg(&cap)
        .status()
        .unwrap();
    assert!(st.success());
    let truth: Value =
        serde_json::from_str(&std::fs::read_to_string(cap.join("truth.json")).unwrap()).unwrap();
    std::fs::remove_file(cap.join("truth.json")).unwrap();
    let victim = truth["events"][0]["host"].as_str().unwrap().to_string();
    let o = bin()
        .args(["scan", "-q", "-f", "json"])
        .arg(&cap)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let floods: Vec<Value> = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["rule"] == "FS9")
        .collect();
    assert_eq!(floods.len(), 1, "{floods:?}");
    let f = &floods[0];
    assert_eq!(
        (f["host"].as_str().unwrap(), f["severity"].as_str().unwrap()),
        (victim.as_str(), "high")
    );
    // About 300 a minute; the rule asks for more than 50 sources and 100 flows.
    let (sources, flows) = (f["value"].as_u64().unwrap(), f["flows"].as_u64().unwrap());
    assert!(sources > 200 && flows >= sources, "{f}");
    assert_eq!(f["count"], "distinct src");
    // One burst over the whole capture: first and last are its ends, the window its worst minute.
    let span = |a: &str, b: &str| {
        let t = |k: &str| chrono_ms(f[k].as_str().unwrap());
        t(b) - t(a)
    };
    assert_eq!(span("window_start", "window_end"), 60_000);
    assert!(span("first", "last") > 9 * 60_000, "{f}");
}

/// Milliseconds of an ISO 8601 UTC time as reports print it (`2026-11-26T03:00:00.238Z`), from its parts.
fn chrono_ms(s: &str) -> i64 {
    let n: Vec<i64> = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().unwrap())
        .collect();
    let (y, m, d) = (n[0], n[1], n[2]);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + n[3]) * 60 + n[4]) * 60_000 + n[5] * 1_000 + n[6]
}

/// The TOML blocks of docs/DEFINITIONS.md, each with whether it is marked `invalid`.
fn doc_blocks() -> Vec<(String, bool)> {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/DEFINITIONS.md"))
            .unwrap();
    let mut blocks = Vec::new();
    let mut current: Option<(String, bool)> = None;
    for line in doc.lines() {
        match (&mut current, line) {
            (None, l) if l.starts_with("```toml") => {
                current = Some((String::new(), l.contains("invalid")));
            }
            (Some(_), "```") => blocks.extend(current.take()),
            (Some((text, _)), l) => {
                text.push_str(l);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    blocks
}

/// A capture with something for every example to find: the demo's planted hosts, a SYN burst across a minute
/// boundary, a /24 sweeping port 22 and a host reaching 150 /24s.
fn doc_capture(path: &Path) {
    let mut flows = flowsketch::gen::demo::capture(5, 20_000).0;
    flows.extend(burst(T0 + 30_000, 150, 400));
    flows.extend(
        subnet_flows()
            .into_iter()
            .filter(|f| f.src.to_ip().is_ipv4() && f.first_ms >= T0 && f.tcp_flags == 0x02),
    );
    write_nfcapd(path, &flows);
}

/// Every TOML example of docs/DEFINITIONS.md: a valid definitions file (its `file:` list beside it) that scans a
/// generated capture without errors, the rules of the examples that show a sign finding it there; the example of
/// a file with errors gives its five errors.
#[test]
fn every_example_of_the_definitions_page_is_valid_and_scans() {
    let (dir, bad) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    std::fs::create_dir(dir.path().join("lists")).unwrap();
    std::fs::write(
        dir.path().join("lists/drop.txt"),
        "# a feed\n203.0.113.0/24\n",
    )
    .unwrap();
    let cap = dir.path().join("nfcapd.202611260300");
    doc_capture(&cap);
    let blocks = doc_blocks();
    assert!(blocks.len() >= 20, "{} blocks", blocks.len());
    let mut fired: BTreeSet<String> = BTreeSet::new();
    let mut rules_seen = 0;
    for (i, (text, invalid)) in blocks.iter().enumerate() {
        // The example with errors has no list file beside it, as its errors say.
        let folder = if *invalid { bad.path() } else { dir.path() };
        let site: PathBuf = folder.join(format!("example{i}.toml"));
        std::fs::write(&site, text).unwrap();
        let check = bin()
            .args(["rules", "--check"])
            .arg(&site)
            .output()
            .unwrap();
        if *invalid {
            assert_eq!(check.status.code(), Some(2), "block {i}");
            assert!(
                stderr(&check).ends_with(": 5 errors\n"),
                "{}",
                stderr(&check)
            );
            continue;
        }
        assert_eq!(
            check.status.code(),
            Some(0),
            "block {i}:\n{text}\n{}",
            stderr(&check)
        );
        let defs = Definitions::load(&site).unwrap();
        if defs.rules.is_empty() {
            continue;
        }
        rules_seen += defs.rules.len();
        let o = bin()
            .args(["scan", "-q", "-f", "json", "-r"])
            .arg(&site)
            .arg(&cap)
            .output()
            .unwrap();
        assert!(
            matches!(o.status.code(), Some(0 | 1)),
            "block {i}: {}",
            stderr(&o)
        );
        for l in String::from_utf8(o.stdout).unwrap().lines() {
            let v: Value = serde_json::from_str(l).unwrap();
            if let Some(rule) = v["rule"].as_str() {
                fired.insert(rule.to_string());
            }
        }
    }
    assert!(rules_seen >= 15, "{rules_seen} rules in the examples");
    for id in [
        "FS1", "PEERS", "FS2", "FS4", "FS6", "FS7", "FS8", "FS9", "SYNBURST", "NETSCAN", "NETS",
        "FANOUT", "FLOOD",
    ] {
        assert!(fired.contains(id), "{id} found nothing: {fired:?}");
    }
}
