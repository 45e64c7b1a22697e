//! The real nfdump 1.7.1 as the oracle: nfdump prints every flow of a real file, the rows become FlowRecords,
//! our filter picks rows, and nfdump with the same filter must print exactly those rows, in order.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;
use crate::record::Addr;
use crate::rules::lists::{AddrList, ListSet, PortList};

const FMT: &str = "fmt:%sa,%da,%sp,%dp,%pr,%flg,%pkt,%byt,%ts,%te";
const NFDUMP: &str = "/usr/bin/nfdump";

fn data_dir() -> Option<PathBuf> {
    let d = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data"));
    if !d.is_dir() {
        println!("skipped: ../shared/data not found");
        return None;
    }
    if !Path::new(NFDUMP).exists() {
        println!("skipped: {NFDUMP} not found");
        return None;
    }
    Some(d.to_path_buf())
}

/// nfdump's rows for `filter` (None: all flows). "No matching flows" and warnings are not rows.
fn nfdump_rows(file: &Path, filter: Option<&str>) -> Vec<String> {
    let mut cmd = Command::new(NFDUMP);
    cmd.arg("-r").arg(file).args(["-q", "-N", "-6", "-o", FMT]);
    if let Some(f) = filter {
        cmd.arg(f);
    }
    let out = cmd.output().expect("run nfdump");
    assert!(
        out.status.success(),
        "nfdump failed on '{filter:?}': {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.matches(',').count() == 9)
        .map(str::to_string)
        .collect()
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm), for the time stamps nfdump prints.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2023-01-25 18:35:46.144` as ms (the zone is the same for start and end, so durations are right).
fn parse_time(s: &str) -> u64 {
    let n: Vec<i64> = s
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty())
        .map(|p| p.parse().unwrap())
        .collect();
    let days = days_from_civil(n[0], n[1], n[2]);
    ((days * 86_400 + n[3] * 3600 + n[4] * 60 + n[5]) * 1000 + n[6]) as u64
}

fn parse_row(row: &str) -> FlowRecord {
    let f: Vec<&str> = row.split(',').map(str::trim).collect();
    let dst_port = match f[3].split_once('.') {
        // ICMP: nfdump prints type.code
        Some((t, c)) => (t.parse::<u16>().unwrap() << 8) | c.parse::<u16>().unwrap(),
        None => f[3].parse().unwrap(),
    };
    let mut flags = 0u8;
    for (i, c) in f[5].chars().enumerate() {
        if c != '.' {
            flags |= 0x80 >> i;
        }
    }
    FlowRecord {
        src: f[0].parse::<Addr>().unwrap(),
        dst: f[1].parse::<Addr>().unwrap(),
        src_port: f[2].parse().unwrap(),
        dst_port,
        proto: f[4].parse().unwrap(),
        tcp_flags: flags,
        packets: f[6].parse().unwrap(),
        bytes: f[7].parse().unwrap(),
        first_ms: parse_time(f[8]),
        last_ms: parse_time(f[9]),
        ..Default::default()
    }
}

fn ours(rows: &[String], recs: &[FlowRecord], filter: &str, lists: &ListSet) -> Vec<String> {
    let f = Filter::parse(filter, lists).unwrap_or_else(|e| panic!("{}", e.render(filter)));
    // The batch evaluator the engine uses must agree with the per-record one on every real row.
    let (mut bits, mut scratch, mut cols) = (
        Vec::new(),
        super::Scratch::default(),
        super::Columns::default(),
    );
    cols.load(recs);
    f.select(recs, &cols, &mut bits, &mut scratch);
    let picked: Vec<String> = rows
        .iter()
        .zip(recs)
        .filter(|(_, r)| f.matches(r))
        .map(|(row, _)| row.clone())
        .collect();
    let batch: Vec<String> = rows
        .iter()
        .enumerate()
        .filter(|(i, _)| bits[i / 64] >> (i % 64) & 1 == 1)
        .map(|(_, row)| row.clone())
        .collect();
    assert_eq!(batch, picked, "{filter}");
    picked
}

#[test]
fn same_rows_as_nfdump_on_the_sample_file() {
    let Some(data) = data_dir() else { return };
    let file = data.join("nfcapd/nfcapd.sample");
    let rows = nfdump_rows(&file, None);
    assert_eq!(rows.len(), 3018);
    let recs: Vec<FlowRecord> = rows.iter().map(|r| parse_row(r)).collect();
    // Flag letters printed back from the parsed byte, as a check on the row parser.
    assert_eq!(recs.iter().filter(|r| r.tcp_flags == 0xc2).count(), 13);

    let filters = [
        "proto tcp",
        "proto udp or proto icmp6",
        "PROTO 1",
        "flags S",
        "flags SA",
        "flags AS and proto tcp",
        "flags S and not flags AFRPU",
        "not flags SA",
        "not (flags SA or port 53)",
        "not not flags SA",
        "flags 2 or flags > 16",
        "src net 192.168.0.0/16",
        "net 192.168/16 and not port 443",
        "dst net 192.168.0.0 255.255.255.0",
        "net 2804::/16",
        "net 0.0.0.0/0",
        "host 192.168.0.83",
        "src ip 52.5.7.161 or dst ip 52.5.7.161",
        "src port 443 or dst port > 50000",
        "port in [443 80,53]",
        "ip in [192.168.0.83, 35.186.224.25]",
        "src ip in [192.168.0.0/24]",
        "packets > 3 and bytes < 1k",
        "bytes > 1m",
        "packets >= 10 or bytes <= 52",
        "src and dst port > 1023",
        "src or dst port 443",
        "dst port 1900 || proto icmp && ! src net 192.168.0.0 255.255.0.0",
        "ipv6 and (proto icmp6 or dst port 53)",
        "inet and not (proto tcp or proto udp)",
        "port eq 443 and dst port gt 1023",
        "icmp-type 0 or icmp-type 8",
        "any",
    ];
    let lists = ListSet::default();
    let mut total = 0;
    for filter in filters {
        let want = nfdump_rows(&file, Some(filter));
        let got = ours(&rows, &recs, filter, &lists);
        assert_eq!(
            got.len(),
            want.len(),
            "'{filter}': we select {} rows, nfdump {}",
            got.len(),
            want.len()
        );
        assert_eq!(got, want, "'{filter}'");
        println!("{:>5} rows  {filter}", got.len());
        total += got.len();
    }
    assert!(
        total > 10_000,
        "the filters select a real share of the flows"
    );
}

/// nfcapd.sample has no flow with a real duration (nfdump wraps last < first to huge values, FlowRecord says 0),
/// so durations are compared on the large file, whose 100,000 flows all end after they start.
#[test]
fn same_rows_as_nfdump_on_the_large_file() {
    let Some(data) = data_dir() else { return };
    let file = data.join("nfcapd/nfcapd-large-bz2");
    let rows = nfdump_rows(&file, None);
    assert_eq!(rows.len(), 100_000);
    let recs: Vec<FlowRecord> = rows.iter().map(|r| parse_row(r)).collect();
    assert!(recs.iter().all(|r| r.last_ms >= r.first_ms));
    let lists = ListSet::default();
    for filter in [
        "duration > 1000",
        "duration >= 60000 or duration 0",
        "duration < 5 and packets > 1",
        "not duration <= 30000 and proto udp",
        "flags S and not flags AFRPU",
        "dst net 100.64.0.0/10 or src net 100.64.0.0/10",
        "proto 50 or proto 47 or proto gre",
    ] {
        let want = nfdump_rows(&file, Some(filter));
        let got = ours(&rows, &recs, filter, &lists);
        assert_eq!(got.len(), want.len(), "'{filter}'");
        assert_eq!(got, want, "'{filter}'");
        println!("{:>6} rows  {filter}", got.len());
    }
}

#[test]
fn extensions_match_their_nfdump_spelling() {
    let Some(data) = data_dir() else { return };
    let file = data.join("nfcapd/nfcapd.sample");
    let rows = nfdump_rows(&file, None);
    let recs: Vec<FlowRecord> = rows.iter().map(|r| parse_row(r)).collect();
    let mut lists = ListSet::default();
    lists.insert_addrs(
        "lan",
        AddrList::parse_entries(&[("192.168.0.1-192.168.0.99", 0), ("192.168.1.x", 1)]).unwrap(),
    );
    lists.insert_addrs("bogons", AddrList::builtin("bogons").unwrap());
    lists.insert_addrs("private", AddrList::builtin("private").unwrap());
    lists.insert_ports(
        "web",
        PortList::parse_entries(&[("80", 0), ("443", 1), ("8080", 2)]).unwrap(),
    );
    let pairs = [
        ("flags = S", "flags S and not flags AFRPU"),
        ("flags = SA", "flags SA and not flags FRPU"),
        ("flags = SR", "flags SR and not flags AFPU"),
        ("flags = A", "flags A and not flags FSRPU"),
        ("flags != S", "proto tcp and (not flags S or flags A or flags F or flags R or flags P or flags U)"),
        ("dst port in @web", "dst port in [80 443 8080]"),
        ("not src port in @web", "not src port in [80 443 8080]"),
        ("dst port != 443", "not dst port 443"),
        ("src in @lan", "src ip in [192.168.0.1/32 192.168.0.2/31 192.168.0.4/30 192.168.0.8/29 192.168.0.16/28 192.168.0.32/27 192.168.0.64/27 192.168.0.96/30 192.168.1.0/24]"),
        ("ip in @private", "ip in [10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 fc00::/7]"),
        ("dst in @bogons", "dst ip in [0.0.0.0/8 100.64.0.0/10 127.0.0.0/8 169.254.0.0/16 192.0.0.0/24 192.0.2.0/24 198.18.0.0/15 198.51.100.0/24 203.0.113.0/24 240.0.0.0/4 ::/128 ::1/128 64:ff9b:1::/48 100::/64 2001:2::/48 2001:db8::/32 3fff::/20 5f00::/16 fe80::/10]"),
    ];
    for (ext, nf) in pairs {
        let want = nfdump_rows(&file, Some(nf));
        let got = ours(&rows, &recs, ext, &lists);
        assert_eq!(got, want, "'{ext}' vs nfdump '{nf}'");
        println!("{:>5} rows  {ext}  ==  {nf}", got.len());
    }
}

#[test]
fn exact_flag_sets_count_what_flow_nfilter_counted() {
    // flow-tools' flow-nfilter `ip-tcp-flags permit 0x2` / `permit 0x6` on the IPv4 flows (README of the data).
    let Some(data) = data_dir() else { return };
    let cases = [
        ("scans/syn-sweep-horizontal.nfcapd", 509, 2),
        ("scans/masscan-tcp-vertical.nfcapd", 999, 2),
        ("scans/port-scan-1-10000.nfcapd", 9998, 5),
        ("nfcapd/nfcapd.sample", 274, 0),
    ];
    let lists = ListSet::default();
    let syn = Filter::parse("ipv4 and flags = S", &lists).unwrap();
    let synrst = Filter::parse("ipv4 and flags = SR", &lists).unwrap();
    for (name, want_syn, want_synrst) in cases {
        let recs: Vec<FlowRecord> = nfdump_rows(&data.join(name), None)
            .iter()
            .map(|r| parse_row(r))
            .collect();
        let s = recs.iter().filter(|r| syn.matches(r)).count();
        let sr = recs.iter().filter(|r| synrst.matches(r)).count();
        assert_eq!((s, sr), (want_syn, want_synrst), "{name}");
    }
}
