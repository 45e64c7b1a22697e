//! Every reader on inputs written by the writers in tests/common/writers.rs, flow by flow, checked where possible
//! by independent oracles (the `netflow_parser` crate, the real nfdump); and the readers against the real files
//! in ../shared/data, whose tests say `skipped` without them (and fail under `CI=true`).

mod common;
use common::writers::{
    csv_as_flow_export, csv_as_nfdump, pcap, pcapng, tcp_frame, udp_frame, Exporter, FlowTools,
    Order, V5,
};
use common::{
    assert_flows, flowtools_source, nfdump_csv, require_data, require_data_and_nfdump,
    require_nfdump, sample_flows, sorted,
};

use flowsketch::formats::nfcapd::{Compression, NfcapdWriter};
use flowsketch::formats::{self, decode_all, open_stream, Decoder, Opener};
use flowsketch::record::{Addr, FlowRecord};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (src, dst, sport, dport, proto, flags, packets, bytes)
type Tuple = (String, String, u16, u16, u8, u8, u64, u64);

fn tuple(r: &FlowRecord) -> Tuple {
    (
        r.src.to_string(),
        r.dst.to_string(),
        r.src_port,
        r.dst_port,
        r.proto,
        r.tcp_flags,
        r.packets,
        r.bytes,
    )
}

fn multiset(v: impl IntoIterator<Item = Tuple>) -> BTreeMap<Tuple, usize> {
    let mut m = BTreeMap::new();
    for t in v {
        *m.entry(t).or_insert(0) += 1;
    }
    m
}

/// nfdump's flag string, one letter per bit from CWR (0x80) down to FIN (0x01).
fn nfdump_flags(s: &str) -> u8 {
    s.bytes()
        .enumerate()
        .filter(|&(_, c)| c != b'.')
        .fold(0, |v, (i, _)| v | (0x80u8 >> i))
}

/// Every flow of `file` as the real nfdump prints it; ICMP "type.code" ports become type << 8 | code.
fn nfdump_tuples(file: &Path) -> Vec<Tuple> {
    let out = Command::new("nfdump")
        .env("TZ", "UTC")
        .arg("-r")
        .arg(file)
        .args([
            "-q",
            "-N",
            "-6",
            "-o",
            "fmt:%sa,%da,%sp,%dp,%pr,%flg,%pkt,%byt",
        ])
        .output()
        .expect("run nfdump");
    assert!(out.status.success(), "nfdump failed on {}", file.display());
    let text = String::from_utf8(out.stdout).unwrap();
    text.lines()
        .filter(|l| l.contains(','))
        .map(|l| {
            let f: Vec<&str> = l.split(',').map(str::trim).collect();
            assert_eq!(f.len(), 8, "nfdump line {l}");
            let port = |s: &str| -> u16 {
                match s.split_once('.') {
                    Some((t, c)) => (t.parse::<u16>().unwrap() << 8) | c.parse::<u16>().unwrap(),
                    None => s.parse().unwrap(),
                }
            };
            // nfdump prints IPv4 in the ::ffff: form with -6 only for IPv6; normalise through Addr.
            let a = |s: &str| s.parse::<Addr>().unwrap().to_string();
            (
                a(f[0]),
                a(f[1]),
                port(f[2]),
                port(f[3]),
                f[4].parse().unwrap(),
                nfdump_flags(f[5]),
                f[6].parse().unwrap(),
                f[7].parse().unwrap(),
            )
        })
        .collect()
}

fn read_all(d: &dyn Decoder) -> Result<Vec<FlowRecord>, formats::FormatError> {
    let mut v = Vec::new();
    decode_all(d, &mut |b| v.extend_from_slice(b))?;
    Ok(v)
}

/// Exporter `n`'s address, IPv4 or IPv6.
fn exporter(n: u8, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::from([0x20, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, n])
    } else {
        IpAddr::from([10, 9, 9, n])
    }
}

fn open_file(path: &Path) -> Box<dyn Decoder> {
    let bytes = std::fs::read(path).unwrap();
    formats::open(formats::bytes_from_vec(bytes))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn flowtools_files_give_the_ipv4_flows_of_their_nfcapd_source() {
    let Some(data) =
        require_data_and_nfdump("flowtools_files_give_the_ipv4_flows_of_their_nfcapd_source")
    else {
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("flow-tools"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut total = 0;
    for ft in &files {
        let src = flowtools_source(&data, ft);
        let want: Vec<Tuple> = nfdump_tuples(&src)
            .into_iter()
            .filter(|t| {
                t.0.parse::<Addr>().unwrap().is_v4() && t.1.parse::<Addr>().unwrap().is_v4()
            })
            .collect();
        let d = open_file(ft);
        assert_eq!(d.format(), "flowtools");
        let got = read_all(d.as_ref()).unwrap_or_else(|e| panic!("{}: {e}", ft.display()));
        assert_eq!(
            multiset(got.iter().map(tuple)),
            multiset(want.iter().cloned()),
            "{} vs {}",
            ft.display(),
            src.display()
        );
        if let Some(n) = d.declared_flows() {
            assert_eq!(n, got.len() as u64, "{} header flow count", ft.display());
        }
        // The same file from a pipe.
        let f = std::fs::File::open(ft).unwrap();
        let s = open_stream(Box::new(f), None).unwrap();
        let piped = read_all(s.as_ref()).unwrap();
        assert_eq!(piped, got, "{} from a pipe", ft.display());
        total += got.len();
    }
    println!(
        "flow-tools: {} files, {total} flows, all equal to nfdump's IPv4 flows",
        files.len()
    );
}

#[test]
fn flowtools_variants_are_identical_including_times() {
    let Some(data) = require_data("flowtools_variants_are_identical_including_times") else {
        return;
    };
    let dir = data.join("flow-tools");
    for stem in ["nfcapd.sample", "port-scan-1-10000", "icmp-sweep"] {
        let base = read_all(open_file(&dir.join(format!("{stem}.ft"))).as_ref()).unwrap();
        assert!(!base.is_empty());
        for v in ["z0.ft", "be.ft", "be.z0.ft"] {
            let other = read_all(open_file(&dir.join(format!("{stem}.{v}"))).as_ref()).unwrap();
            assert_eq!(base, other, "{stem}.{v}");
        }
    }
}

#[test]
fn flowtools_times_match_nfdump_within_a_second() {
    // flow-import stores times with second resolution in unix_secs/First; compare against nfdump's ms times.
    let Some(data) = require_data_and_nfdump("flowtools_times_match_nfdump_within_a_second") else {
        return;
    };
    let src = data.join("scans/syn-sweep-horizontal.nfcapd");
    let out = Command::new("nfdump")
        .env("TZ", "UTC")
        .arg("-r")
        .arg(&src)
        .args(["-q", "-N", "-o", "fmt:%sa,%da,%sp,%dp,%tsr,%ter"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let mut want = BTreeMap::new();
    for l in text.lines() {
        let f: Vec<&str> = l.split(',').map(str::trim).collect();
        let ms = |s: &str| -> i64 {
            let (sec, frac) = s.split_once('.').unwrap_or((s, "0"));
            sec.parse::<i64>().unwrap() * 1000 + frac.parse::<i64>().unwrap()
        };
        want.insert(
            (
                f[0].to_string(),
                f[1].to_string(),
                f[2].to_string(),
                f[3].to_string(),
            ),
            (ms(f[4]), ms(f[5])),
        );
    }
    let got =
        read_all(open_file(&data.join("flow-tools/syn-sweep-horizontal.ft")).as_ref()).unwrap();
    assert_eq!(got.len(), want.len());
    for r in &got {
        let k = (
            r.src.to_string(),
            r.dst.to_string(),
            r.src_port.to_string(),
            r.dst_port.to_string(),
        );
        let (f, l) = want[&k];
        assert!(
            (r.first_ms as i64 - f).abs() < 1000,
            "{k:?} first {} vs {f}",
            r.first_ms
        );
        assert!(
            (r.last_ms as i64 - l).abs() < 1000,
            "{k:?} last {} vs {l}",
            r.last_ms
        );
    }
}

/// Group key of a netflow-packets file: the device prefix shared by its template and data payloads.
fn netflow_group(name: &str) -> String {
    let stem = name.trim_end_matches(".dat");
    let cut = ["_tpl", "_data", "_opttpl"]
        .iter()
        .filter_map(|m| stem.find(m))
        .min()
        .unwrap_or(stem.len());
    stem[..cut].to_string()
}

/// (src, dst, sport, dport, proto) of one oracle record.
/// For v9, also the start time computed from the oracle's FIRST_SWITCHED and its packet header.
type OracleKey = (Option<String>, Option<String>, u16, u16, u8, Option<u64>);

/// Data and options-data records the oracle found in one payload, and its flows' (src, dst, sport, dport, proto).
struct OracleCount {
    data: usize,
    errored: bool,
    keys: Vec<OracleKey>,
}

fn oracle(parser: &mut netflow_parser::NetflowParser, bytes: &[u8]) -> OracleCount {
    use netflow_parser::variable_versions::ipfix::FlowSetBody as I;
    use netflow_parser::variable_versions::v9::FlowSetBody as N;
    use netflow_parser::NetflowPacket;
    let res = parser.parse_bytes(bytes);
    let mut c = OracleCount {
        data: 0,
        errored: res.error.is_some(),
        keys: Vec::new(),
    };
    for p in &res.packets {
        match p {
            NetflowPacket::V5(v) => c.data += v.flowsets.len(),
            NetflowPacket::V7(v) => c.data += v.flowsets.len(),
            NetflowPacket::V9(v) => {
                for fs in &v.flowsets {
                    if let N::Data(d) = &fs.body {
                        c.data += d.fields.len()
                    }
                }
            }
            NetflowPacket::IPFix(v) => {
                for fs in &v.flowsets {
                    match &fs.body {
                        I::Data(d) => c.data += d.fields.len(),
                        I::V9Data(d) => c.data += d.fields.len(),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        let v9_clock = match p {
            NetflowPacket::V9(v) => Some((v.header.sys_up_time as i64, v.header.unix_secs as i64)),
            _ => None,
        };
        if let Ok(common) = netflow_parser::netflow_common::NetflowCommon::try_from(p) {
            for f in &common.flowsets {
                if f.src_addr.is_some() && f.dst_addr.is_some() {
                    c.keys.push((
                        f.src_addr.map(|a| Addr::from(a).to_string()),
                        f.dst_addr.map(|a| Addr::from(a).to_string()),
                        f.src_port.unwrap_or(0),
                        f.dst_port.unwrap_or(0),
                        f.protocol_number.unwrap_or(0),
                        match (v9_clock, f.first_seen) {
                            (Some((up, secs)), Some(fs)) => {
                                Some((secs * 1000 - (up - fs as i64)) as u64)
                            }
                            _ => None,
                        },
                    ));
                }
            }
        }
    }
    c
}

/// Payloads the oracle decodes no records from, with the record count logstash-codec-netflow's spec
/// (spec/codecs/netflow_spec.rb, "should decode raw data") expects for them.
const ORACLE_MISSES: &[(&str, usize)] = &[
    ("ipfix_test_ixia_tpldata256.dat", 1),
    ("ipfix_test_procera_data52935.dat", 8),
    (
        "netflow9_test_paloalto_81_data257_1flowset_in_large_zerofilled_packet.dat",
        1,
    ),
];

/// ICMP type and code: we keep them in the destination port as nfdump does; the oracle leaves it 0.
fn icmp0(proto: u8, port: u16) -> u16 {
    if proto == 1 || proto == 58 {
        0
    } else {
        port
    }
}

#[test]
fn netflow_payloads_match_netflow_parser_per_file() {
    let Some(data) = require_data("netflow_payloads_match_netflow_parser_per_file") else {
        return;
    };
    let dir = data.join("netflow-packets");
    let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        groups.entry(netflow_group(&name)).or_default().push(name);
    }
    let (mut files, mut flows, mut compared_keys, mut rejected, mut invalid) = (0, 0, 0, 0, 0);
    let mut mismatches = Vec::new();
    let mut timed_files = 0;
    for (group, mut names) in groups {
        // Templates first, as an exporter sends them.
        names.sort_by_key(|n| (!n.contains("tpl"), n.clone()));
        let opener = Opener::new();
        let mut parser = netflow_parser::NetflowParser::default();
        for name in names {
            files += 1;
            let bytes = std::fs::read(dir.join(&name)).unwrap();
            let want = oracle(&mut parser, &bytes);
            let bytes_head = bytes[..16.min(bytes.len())].to_vec();
            let opened = opener.open(formats::bytes_from_vec(bytes), &name, Some("netflow"));
            let d = match opened {
                Ok(d) => d,
                Err(e) => {
                    // Only the deliberately broken payloads may fail to open, and the oracle agrees.
                    assert!(name.contains("invalid"), "{group}/{name}: {e}");
                    assert_eq!(
                        want.data, 0,
                        "{name}: oracle decoded flows from what we reject: {e}"
                    );
                    invalid += 1;
                    continue;
                }
            };
            let got = read_all(d.as_ref()).unwrap_or_else(|e| panic!("{name}: {e}"));
            let warnings = d.warnings();
            if name == "netflow9_test_h3c_netstream_varstring_data3281.dat" {
                assert!(got.is_empty(), "{name}: {got:?}");
                assert!(
                    warnings
                        .iter()
                        .any(|w| w.message.contains("its template was refused")),
                    "{name}: {warnings:?}"
                );
                rejected += 1;
                continue;
            }
            if got.len() != want.data
                && warnings
                    .iter()
                    .any(|w| w.message.contains("its template was refused"))
            {
                // Our rule: a v9 template with a field of length 65535 (H3C's variable-length strings; v9 has
                // none) is refused and its data reported, so only the report is asserted here.
                rejected += 1;
                continue;
            }
            if let Some(&(_, n)) = ORACLE_MISSES.iter().find(|(f, _)| *f == name) {
                // netflow_parser returns no records for these data sets (variable-length fields, a zero-filled
                // tail); logstash-codec-netflow's spec decodes the count given here.
                assert_eq!(
                    got.len(),
                    n,
                    "{name}: flows vs logstash-codec-netflow's spec"
                );
                flows += got.len();
                continue;
            }
            if name == "ipfix_test_ixia_tpldata271.dat" && want.data == 0 {
                // Same oracle gap, and no count in logstash's spec: check the flows are plausible instead.
                let export_ms =
                    u32::from_be_bytes(bytes_head[4..8].try_into().unwrap()) as u64 * 1000;
                assert!(!got.is_empty());
                for r in &got {
                    assert!(
                        r.first_ms <= export_ms && export_ms - r.first_ms < 3_600_000,
                        "{name}: {r:?}"
                    );
                    assert!(
                        r.src.is_v4() && r.dst.is_v4() && r.proto != 0,
                        "{name}: {r:?}"
                    );
                }
                flows += got.len();
                continue;
            }
            if got.len() != want.data {
                mismatches.push(format!(
                    "{name}: ours {} vs netflow_parser {} (oracle error: {}); warnings {warnings:?}",
                    got.len(),
                    want.data,
                    want.errored
                ));
                continue;
            }
            // v9 start times: unix_secs * 1000 - (sysUptime - FIRST_SWITCHED), computed from the oracle's values.
            let timed = name.starts_with("netflow9")
                && !want.keys.is_empty()
                && want.keys.iter().all(|k| k.5.is_some());
            timed_files += timed as usize;
            let ours = multiset(
                got.iter()
                    // Records without address fields read as 0.0.0.0 (as nfcapd stores them); the oracle
                    // lists none for them.
                    .filter(|r| (r.src, r.dst) != (Addr::v4(0), Addr::v4(0)))
                    .map(|r| {
                        (
                            r.src.to_string(),
                            r.dst.to_string(),
                            r.src_port,
                            icmp0(r.proto, r.dst_port),
                            r.proto,
                            0,
                            0,
                            if timed { r.first_ms } else { 0 },
                        )
                    }),
            );
            let theirs = multiset(want.keys.iter().map(|k| {
                (
                    k.0.clone().unwrap(),
                    k.1.clone().unwrap(),
                    k.2,
                    icmp0(k.4, k.3),
                    k.4,
                    0,
                    0,
                    if timed { k.5.unwrap_or(0) } else { 0 },
                )
            }));
            // The oracle also lists options-data records with addresses; ours must be within its list.
            for (k, n) in &ours {
                if theirs.get(k).copied().unwrap_or(0) < *n {
                    mismatches.push(format!("{name}: flow {k:?} x{n} not in oracle"));
                }
            }
            compared_keys += ours.values().sum::<usize>();
            flows += got.len();
        }
    }
    println!(
        "netflow: {files} payload files, {flows} flows equal in count to netflow_parser, {compared_keys} \
         flow keys found in its output ({timed_files} v9 files with start times too), {rejected} files with refused templates, {invalid} invalid"
    );
    assert!(flows > 0 && invalid >= 2);
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}

#[test]
fn netflow_data_before_template_is_reported_not_lost_silently() {
    let Some(data) = require_data("netflow_data_before_template_is_reported_not_lost_silently")
    else {
        return;
    };
    let dir = data.join("netflow-packets");
    let opener = Opener::new();
    let bytes = std::fs::read(dir.join("netflow9_test_cisco_asa_1_data.dat")).unwrap();
    let d = opener
        .open(formats::bytes_from_vec(bytes.clone()), "data", None)
        .unwrap();
    assert_eq!(read_all(d.as_ref()).unwrap().len(), 0);
    let w = d.warnings();
    assert!(
        w.iter().any(|w| w.message.contains("before its template")),
        "{w:?}"
    );
    // Once the template file has been opened, the same data decodes.
    let tpl = std::fs::read(dir.join("netflow9_test_cisco_asa_1_tpl.dat")).unwrap();
    opener
        .open(formats::bytes_from_vec(tpl), "tpl", None)
        .unwrap();
    let d = opener
        .open(formats::bytes_from_vec(bytes), "data", None)
        .unwrap();
    assert!(!read_all(d.as_ref()).unwrap().is_empty());
    assert!(d.warnings().is_empty(), "{:?}", d.warnings());
}

#[test]
fn captures_of_exporter_traffic_give_the_payload_flows() {
    let Some(data) = require_data("captures_of_exporter_traffic_give_the_payload_flows") else {
        return;
    };
    let dir = data.join("netflow-packets");
    // Two exporters with the same template ids: the cache must keep them apart by exporter address.
    let sets = [
        [
            "netflow9_test_cisco_asa_1_tpl.dat",
            "netflow9_test_cisco_asa_1_data.dat",
        ],
        [
            "ipfix_test_mikrotik_tpl.dat",
            "ipfix_test_mikrotik_data258.dat",
        ],
        ["netflow5_test_juniper_mx80.dat", "netflow5.dat"],
    ];
    let mut want = Vec::new();
    let mut frames = Vec::new();
    for (i, pair) in sets.iter().enumerate() {
        let opener = Opener::new();
        for name in pair.iter() {
            let bytes = std::fs::read(dir.join(name)).unwrap();
            let d = opener
                .open(formats::bytes_from_vec(bytes.clone()), name, None)
                .unwrap();
            want.extend(read_all(d.as_ref()).unwrap().iter().map(tuple));
            frames.push(udp_frame(&bytes, exporter(i as u8 + 1, i == 1), i != 0));
        }
    }
    // Non-NetFlow UDP in between is skipped.
    frames.insert(
        1,
        udp_frame(b"not netflow at all", exporter(9, false), false),
    );
    assert!(!want.is_empty());
    for (what, cap) in [
        ("pcap le", pcap(&frames, false, false)),
        ("pcap be", pcap(&frames, true, false)),
        ("pcapng", pcapng(&frames)),
    ] {
        let d = Opener::new()
            .open(formats::bytes_from_vec(cap), what, None)
            .unwrap();
        assert_eq!(d.format(), "pcap");
        let got = read_all(d.as_ref()).unwrap();
        assert_eq!(
            multiset(got.iter().map(tuple)),
            multiset(want.iter().cloned()),
            "{what}"
        );
        assert!(d.warnings().is_empty(), "{what}: {:?}", d.warnings());
    }
}

#[test]
fn packet_captures_without_netflow_are_a_clear_error() {
    let Some(data) = require_data("packet_captures_without_netflow_are_a_clear_error") else {
        return;
    };
    for e in std::fs::read_dir(data.join("pcap")).unwrap() {
        let p = e.unwrap().path();
        let bytes = std::fs::read(&p).unwrap();
        let err = Opener::new()
            .open(formats::bytes_from_vec(bytes), "", None)
            .err()
            .unwrap_or_else(|| panic!("{} should not open as NetFlow", p.display()));
        assert!(err.message.contains("no NetFlow"), "{}: {err}", p.display());
    }
}

#[test]
fn nfdump_csv_gives_the_flows_nfdump_prints() {
    let Some(data) = require_data_and_nfdump("nfdump_csv_gives_the_flows_nfdump_prints") else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    for src in [
        "nfcapd/nfcapd.sample",
        "scans/icmp-sweep.nfcapd",
        "scans/port-scan-1-10000.nfcapd",
    ] {
        let src = data.join(src);
        let csv = tmp.path().join("flows.csv");
        nfdump_csv(&src, &csv);
        let want = multiset(nfdump_tuples(&src));
        let d = open_file(&csv);
        assert_eq!(d.format(), "csv");
        let got = read_all(d.as_ref()).unwrap();
        assert_eq!(multiset(got.iter().map(tuple)), want, "{}", src.display());
        let s = open_stream(Box::new(std::fs::File::open(&csv).unwrap()), None).unwrap();
        assert_eq!(
            read_all(s.as_ref()).unwrap(),
            got,
            "{} from a pipe",
            src.display()
        );
    }
}

#[test]
fn flow_export_csv_is_read_by_its_header() {
    // flow-export -f2 columns, written here from nfdump's own output of a scan (not from our readers).
    let Some(data) = require_data_and_nfdump("flow_export_csv_is_read_by_its_header") else {
        return;
    };
    let want = nfdump_tuples(&data.join("scans/masscan-udp-vertical.nfcapd"));
    let mut text = String::from(
        "#:unix_secs,unix_nsecs,sysuptime,exaddr,dpkts,doctets,first,last,engine_type,engine_id,srcaddr,\
         dstaddr,nexthop,input,output,srcport,dstport,prot,tos,tcp_flags,src_mask,dst_mask,src_as,dst_as\n",
    );
    for t in &want {
        text.push_str(&format!(
            "1600000000,0,5000,10.1.1.1,{},{},4000,4500,0,0,{},{},0.0.0.0,1,2,{},{},{},0,{},0,0,0,0\n",
            t.6, t.7, t.0, t.1, t.2, t.3, t.4, t.5
        ));
    }
    let d = formats::open(formats::bytes_from_vec(text.into_bytes())).unwrap();
    let got = read_all(d.as_ref()).unwrap();
    assert_eq!(multiset(got.iter().map(tuple)), multiset(want));
    assert!(got
        .iter()
        .all(|r| r.first_ms == 1_600_000_000_000 - 1000 && r.last_ms == 1_599_999_999_500));
}

#[test]
fn unknown_input_lists_what_is_supported() {
    let e = formats::open(formats::bytes_from_vec(b"\x00\x01garbage".to_vec()))
        .err()
        .unwrap();
    for n in ["nfcapd", "flowtools", "netflow", "pcap", "csv"] {
        assert!(e.message.contains(n), "{e}");
    }
    let e = Opener::new()
        .open(formats::bytes_from_vec(vec![1, 2, 3]), "x", Some("silk"))
        .err()
        .unwrap();
    assert!(e.message.contains("unknown input format 'silk'"), "{e}");
}

/// The body of every fuzz target (fuzz/fuzz_targets/*.rs): open with a format, decode, read warnings,
/// and for the streaming formats do the same from a pipe. Must return, never panic.
fn fuzz_body(data: &[u8], format: &str) -> usize {
    let mut flows = 0;
    let opener = Opener::new();
    if let Ok(d) = opener.open(
        formats::bytes_from_vec(data.to_vec()),
        "mutated",
        Some(format),
    ) {
        let _ = decode_all(d.as_ref(), &mut |b| flows += b.len());
        let _ = d.warnings();
    }
    if format == "flowtools" || format == "csv" {
        if let Ok(d) = open_stream(Box::new(std::io::Cursor::new(data.to_vec())), Some(format)) {
            let _ = decode_all(d.as_ref(), &mut |_| {});
        }
    }
    flows
}

/// Deterministic mutations of `base`: truncations, byte flips, overwritten length fields, duplicated spans.
fn mutations(base: &[u8], n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut s = seed | 1;
    let mut next = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut out = Vec::new();
    for cut in [0, 1, 3, 4, 7, 8, 16, 20, 24, 40, 56, 100] {
        if cut < base.len() {
            out.push(base[..cut].to_vec());
        }
    }
    for i in 0..n {
        let mut m = base.to_vec();
        if m.is_empty() {
            break;
        }
        // Mutate near the start more often: headers and template definitions live there.
        let span = if i % 2 == 0 {
            m.len().min(256)
        } else {
            m.len()
        };
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % span;
            match next() % 4 {
                0 => m[at] ^= 1 << (next() % 8),
                1 => m[at] = 0xff,
                2 => m[at] = 0,
                _ => {
                    let len = ((next() as usize) % 64).min(m.len() - at);
                    let dup = m[at..at + len].to_vec();
                    m.splice(at..at, dup);
                }
            }
        }
        if next() % 3 == 0 {
            let keep = (next() as usize) % (m.len() + 1);
            m.truncate(keep);
        }
        out.push(m);
    }
    out
}

#[test]
fn fuzz_bodies_survive_mutated_real_files() {
    let Some(data) = require_data("fuzz_bodies_survive_mutated_real_files") else {
        return;
    };
    let mut inputs: Vec<(String, Vec<u8>, &str)> = Vec::new();
    for dir in ["flow-tools", "netflow-packets"] {
        for e in std::fs::read_dir(data.join(dir)).unwrap() {
            let p = e.unwrap().path();
            let fmt = if dir == "flow-tools" {
                "flowtools"
            } else {
                "netflow"
            };
            let b = std::fs::read(&p).unwrap();
            // Large uncompressed flow-tools files add time, not coverage.
            if b.len() <= 64 * 1024 {
                inputs.push((p.display().to_string(), b, fmt));
            }
        }
    }
    let payloads: Vec<Vec<u8>> = [
        "netflow9_test_cisco_asa_1_tpl.dat",
        "ipfix_test_yaf_tpl45841.dat",
        "netflow5.dat",
    ]
    .iter()
    .map(|n| std::fs::read(data.join("netflow-packets").join(n)).unwrap())
    .collect();
    let frames: Vec<Vec<u8>> = payloads
        .iter()
        .enumerate()
        .map(|(i, p)| udp_frame(p, exporter(i as u8, i == 1), i == 2))
        .collect();
    inputs.push(("built pcap".into(), pcap(&frames, false, false), "pcap"));
    inputs.push(("built pcapng".into(), pcapng(&frames), "pcap"));
    inputs.push((
        "real pcap".into(),
        std::fs::read(data.join("pcap/icmp-sweep.pcap")).unwrap(),
        "pcap",
    ));
    let csv = "ts,te,td,sa,da,sp,dp,pr,flg,ipkt,ibyt\n\
               2023-01-25 18:35:43,2023-01-25 18:35:44,1.000,10.0.0.1,2001:db8::1,443,57358,TCP,...AP...,9,930\n\
               Summary\nflows,bytes\n1,930\n";
    inputs.push(("csv".into(), csv.as_bytes().to_vec(), "csv"));
    let mut runs = 0;
    for (i, (name, bytes, fmt)) in inputs.iter().enumerate() {
        for m in mutations(bytes, 40, 0x9e37_79b9_7f4a_7c15 ^ i as u64) {
            // Every reader on every mutation: detection errors must be typed errors too.
            for f in ["flowtools", "netflow", "pcap", "csv"] {
                let r = std::panic::catch_unwind(|| fuzz_body(&m, f));
                assert!(
                    r.is_ok(),
                    "{f} reader panicked on a mutation of {name}: {:02x?}",
                    &m[..m.len().min(64)]
                );
                runs += 1;
            }
            let _ = formats::open(formats::bytes_from_vec(m))
                .map(|d| decode_all(d.as_ref(), &mut |_| {}));
        }
        assert!(
            fuzz_body(bytes, fmt) > 0 || !name.contains("sample"),
            "{name} unmutated gives no flows"
        );
    }
    println!(
        "fuzz bodies: {runs} runs over mutations of {} real inputs, no panic",
        inputs.len()
    );
}

// ---- Every reader on inputs written by tests/common/writers.rs: no real data needed. ----

/// `flows` as a reader without that field gives them back: `f` applied to each.
fn expect(flows: &[FlowRecord], f: impl Fn(&mut FlowRecord)) -> Vec<FlowRecord> {
    flows
        .iter()
        .map(|r| {
            let mut r = *r;
            f(&mut r);
            r
        })
        .collect()
}

fn open_bytes(bytes: Vec<u8>, format: Option<&str>) -> Box<dyn Decoder> {
    Opener::new()
        .open(formats::bytes_from_vec(bytes), "written", format)
        .unwrap_or_else(|e| panic!("{e}"))
}

fn piped(bytes: &[u8]) -> Vec<FlowRecord> {
    let s = open_stream(Box::new(std::io::Cursor::new(bytes.to_vec())), None).unwrap();
    read_all(s.as_ref()).unwrap()
}

#[test]
fn flowtools_written_files_give_their_flows_in_every_variant() {
    let flows = sample_flows(20_000, 0.0);
    for order in [Order::Little, Order::Big] {
        for zlib in [false, true] {
            for count in [false, true] {
                let w = FlowTools {
                    count,
                    ..FlowTools::like_flow_import(order, zlib)
                };
                let what = format!("{order:?} zlib={zlib} count={count}");
                let bytes = w.write(&flows);
                let d = open_bytes(bytes.clone(), None);
                assert_eq!(d.format(), "flowtools", "{what}");
                assert_flows(&read_all(d.as_ref()).unwrap(), &flows, &what);
                assert_eq!(
                    d.declared_flows(),
                    count.then_some(flows.len() as u64),
                    "{what}"
                );
                assert_flows(&piped(&bytes), &flows, &format!("{what} from a pipe"));
            }
        }
    }
    // An uncompressed file of more than 65,536 records is cut into chunks that decode apart, in order.
    let many: Vec<FlowRecord> = sample_flows(70_000, 0.0);
    let d = open_bytes(
        FlowTools::like_flow_import(Order::Little, false).write(&many),
        None,
    );
    assert!(d.chunks() >= 2, "{} chunks", d.chunks());
    assert_flows(&read_all(d.as_ref()).unwrap(), &many, "70,000 flows");
    // Cut inside a record: the whole records before it, then an error at the partial one's offset.
    let mut cut = FlowTools::like_flow_import(Order::Big, false).write(&flows[..10]);
    let header = cut.len() - 10 * 64;
    cut.truncate(cut.len() - 20);
    let d = open_bytes(cut, None);
    let mut got = Vec::new();
    let e = decode_all(d.as_ref(), &mut |b| got.extend_from_slice(b)).unwrap_err();
    assert_flows(&got, &flows[..9], "before the cut");
    assert_eq!(e.offset, (header + 9 * 64) as u64, "{e}");
}

/// The flows of a v5 packet as the reader gives them from a payload file: the exporter is the engine type and id.
fn as_v5(flows: &[FlowRecord], v5: &V5) -> Vec<FlowRecord> {
    let engine = u32::from(v5.engine_type) << 8 | u32::from(v5.engine_id);
    let sampling = u32::from(v5.sampling & 0x3fff).max(1);
    expect(flows, |r| {
        r.exporter = engine;
        r.sampling = sampling;
    })
}

/// Every packet checked with the independent `netflow_parser`: the records it decodes and their keys.
fn assert_oracle_agrees(packets: &[Vec<u8>], want: &[FlowRecord], what: &str) {
    let mut parser = netflow_parser::NetflowParser::default();
    let (mut data, mut keys) = (0, Vec::new());
    for p in packets {
        let o = oracle(&mut parser, p);
        assert!(
            !o.errored,
            "{what}: netflow_parser failed on a written packet"
        );
        data += o.data;
        keys.extend(o.keys);
    }
    assert_eq!(data, want.len(), "{what}: records netflow_parser decodes");
    let key = |r: &FlowRecord| {
        (
            r.src.to_string(),
            r.dst.to_string(),
            r.src_port,
            icmp0(r.proto, r.dst_port),
            r.proto,
        )
    };
    let mut ours: Vec<_> = want.iter().map(key).collect();
    let mut theirs: Vec<_> = keys
        .iter()
        .map(|k| {
            (
                k.0.clone().unwrap(),
                k.1.clone().unwrap(),
                k.2,
                icmp0(k.4, k.3),
                k.4,
            )
        })
        .collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs, "{what}: flow keys netflow_parser decodes");
}

#[test]
fn netflow_written_packets_give_their_flows() {
    let v4 = sample_flows(2_000, 0.0);
    let mixed = sample_flows(2_000, 0.3);
    assert!(mixed.iter().any(|r| !r.src.is_v4()));

    // v5: one payload file per packet, or all packets back to back in one payload.
    let v5 = V5 {
        sampling: 0x4000 | 10,
        ..V5::default()
    };
    let packets = v5.packets(&v4);
    assert_eq!(packets.len(), v4.len().div_ceil(30));
    let want = as_v5(&v4, &v5);
    let mut got = Vec::new();
    for p in &packets {
        got.extend(read_all(open_bytes(p.clone(), None).as_ref()).unwrap());
    }
    assert_flows(&got, &want, "v5 packet by packet");
    let d = open_bytes(packets.concat(), Some("netflow"));
    assert_flows(
        &read_all(d.as_ref()).unwrap(),
        &want,
        "v5 packets in one payload",
    );
    assert_oracle_agrees(&packets, &want, "v5");

    // v9 and IPFIX, templates in every packet or sent once before the data; options records are skipped.
    for (e, name) in [(Exporter::v9(77), "v9"), (Exporter::ipfix(78), "IPFIX")] {
        for options in [false, true] {
            let e = Exporter {
                options,
                ..e.clone()
            };
            let what = format!("{name} options={options}");
            // The reader gives each packet's IPv4 set before its IPv6 set: compare as multisets.
            let want = sorted(expect(&mixed, |r| r.exporter = e.domain));
            let packets = e.packets_with_templates(&mixed);
            let opener = Opener::new();
            let (mut got, mut skipped) = (Vec::new(), 0);
            for p in &packets {
                let d = opener
                    .open(formats::bytes_from_vec(p.clone()), "p", None)
                    .unwrap();
                assert_eq!(d.format(), "netflow");
                assert!(d.warnings().is_empty(), "{what}: {:?}", d.warnings());
                skipped += decode_all(d.as_ref(), &mut |b| got.extend_from_slice(b))
                    .unwrap()
                    .skipped;
            }
            assert_flows(&sorted(got), &want, &what);
            assert_eq!(
                skipped,
                if options { packets.len() as u64 } else { 0 },
                "{what}"
            );
            assert_oracle_agrees(&packets, &mixed, &what);

            let opener = Opener::new();
            opener
                .open(formats::bytes_from_vec(e.template_packet()), "tpl", None)
                .unwrap();
            let mut got = Vec::new();
            for p in e.data_packets(&mixed) {
                let d = opener
                    .open(formats::bytes_from_vec(p), "data", None)
                    .unwrap();
                assert!(d.warnings().is_empty(), "{what}: {:?}", d.warnings());
                got.extend(read_all(d.as_ref()).unwrap());
            }
            assert_flows(
                &sorted(got),
                &want,
                &format!("{what}, templates sent apart"),
            );
        }
    }
}

#[test]
fn netflow_data_before_its_template_is_reported_then_decoded_once_the_template_is_seen() {
    // A packet's worth of flows, half IPv4 and half IPv6: two data sets.
    let all = sample_flows(400, 0.3);
    let (v4, v6): (Vec<FlowRecord>, Vec<FlowRecord>) = all.iter().partition(|r| r.src.is_v4());
    let flows: Vec<FlowRecord> = v4[..10].iter().chain(&v6[..10]).copied().collect();
    for e in [Exporter::v9(5), Exporter::ipfix(5)] {
        let data = e.data_packets(&flows).remove(0);
        let opener = Opener::new();
        let d = opener
            .open(formats::bytes_from_vec(data.clone()), "data", None)
            .unwrap();
        assert!(read_all(d.as_ref()).unwrap().is_empty());
        let w = d.warnings();
        // One warning per data set (IPv4 and IPv6), each at the set's offset after the header.
        assert_eq!(w.len(), 2, "{w:?}");
        let header = if e.version == 9 { 20 } else { 16 };
        assert_eq!(w[0].offset, header, "{w:?}");
        assert!(
            w.iter().all(|w| w.message.contains("before its template")),
            "{w:?}"
        );
        opener
            .open(formats::bytes_from_vec(e.template_packet()), "tpl", None)
            .unwrap();
        let d = opener
            .open(formats::bytes_from_vec(data), "data", None)
            .unwrap();
        assert_eq!(read_all(d.as_ref()).unwrap().len(), e.per_packet);
        assert!(d.warnings().is_empty(), "{:?}", d.warnings());
    }
}

#[test]
fn captures_of_written_exporter_traffic_give_their_flows() {
    let flows = sample_flows(600, 0.25);
    let v4: Vec<FlowRecord> = flows
        .iter()
        .filter(|r| r.src.is_v4() && r.dst.is_v4())
        .copied()
        .collect();
    let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
    let c: IpAddr = "2001:db8::c".parse().unwrap();
    // Exporters a and b use the same template ids and domain with other field layouts: the cache must keep them
    // apart by exporter address. c sends IPFIX over IPv6 and VLAN; d (v5) shares a's address.
    let ea = Exporter::v9(1);
    let mut eb = Exporter::ipfix(1);
    eb.version = 9;
    eb.v4.retain(|f| f.enterprise == 0 && f.len != 0xFFFF);
    eb.v6.retain(|f| f.enterprise == 0 && f.len != 0xFFFF);
    eb.v4_id = ea.v4_id;
    eb.v6_id = ea.v6_id;
    let ec = Exporter::ipfix(9);
    let v5 = V5::default();
    let (fa, fb, fc) = (&flows[..200], &flows[200..400], &flows[400..]);
    let mut frames = vec![
        udp_frame(&ea.template_packet(), a, false),
        udp_frame(&eb.template_packet(), b, false),
    ];
    let mut want = Vec::new();
    // a and b sent their templates first; c sends them in every packet.
    for (e, part, from, vlan, sent) in [
        (&ea, fa, a, false, true),
        (&eb, fb, b, false, true),
        (&ec, fc, c, true, false),
    ] {
        let packets = if sent {
            e.data_packets(part)
        } else {
            e.packets_with_templates(part)
        };
        for p in packets {
            frames.push(udp_frame(&p, from, vlan));
            // Non-NetFlow traffic in between is skipped.
            frames.push(udp_frame(b"\x00\x05 not an export packet", from, vlan));
            frames.push(tcp_frame(b"GET / HTTP/1.1\r\n"));
        }
        let id = match from {
            IpAddr::V4(x) => u32::from(x),
            IpAddr::V6(x) => u128::from(x) as u32,
        };
        want.extend(expect(part, |r| r.exporter = id));
    }
    for p in v5.packets(&v4[..90]) {
        frames.push(udp_frame(&p, a, true));
    }
    want.extend(expect(&as_v5(&v4[..90], &v5), |r| {
        r.exporter = u32::from(std::net::Ipv4Addr::new(192, 0, 2, 1))
    }));
    let want = sorted(want);
    for (what, cap) in [
        ("pcap le", pcap(&frames, false, false)),
        ("pcap be", pcap(&frames, true, false)),
        ("pcap ns", pcap(&frames, false, true)),
        ("pcapng", pcapng(&frames)),
    ] {
        let d = open_bytes(cap.clone(), None);
        assert_eq!(d.format(), "pcap", "{what}");
        assert!(d.warnings().is_empty(), "{what}: {:?}", d.warnings());
        assert_flows(&sorted(read_all(d.as_ref()).unwrap()), &want, what);
        // Cut inside the last frame: the frames before it are read, and the cut is an error (exit code 2).
        let d = open_bytes(cap[..cap.len() - 10].to_vec(), Some("pcap"));
        let mut got = Vec::new();
        let err = decode_all(d.as_ref(), &mut |b| got.extend_from_slice(b)).unwrap_err();
        assert!(err.message.starts_with("truncated pcap"), "{what}: {err}");
        assert!(
            got.len() < want.len() && got.len() >= want.len() - 30,
            "{what}: {}",
            got.len()
        );
    }
}

#[test]
fn captures_without_export_packets_are_a_clear_error() {
    let frames = vec![
        tcp_frame(b"GET / HTTP/1.1\r\n"),
        udp_frame(
            b"\x00\x35 a DNS answer, say",
            "10.0.0.53".parse().unwrap(),
            false,
        ),
    ];
    for cap in [pcap(&frames, false, false), pcapng(&frames)] {
        let e = Opener::new()
            .open(formats::bytes_from_vec(cap), "", None)
            .err()
            .expect("a capture without NetFlow must not open");
        assert!(
            e.message
                .contains("2 frames (1 UDP datagrams) but no NetFlow"),
            "{e}"
        );
    }
}

#[test]
fn nfdump_csv_shape_gives_its_flows_to_the_second() {
    let flows = sample_flows(10_000, 0.2);
    let text = csv_as_nfdump(&flows);
    // nfdump prints times to the second and no exporter address.
    let want = expect(&flows, |r| {
        r.first_ms -= r.first_ms % 1000;
        r.last_ms -= r.last_ms % 1000;
        r.exporter = 0;
    });
    let d = open_bytes(text.clone().into_bytes(), None);
    assert_eq!(d.format(), "csv");
    assert!(
        d.chunks() >= 3,
        "{} bytes in {} chunks",
        text.len(),
        d.chunks()
    );
    assert_flows(&read_all(d.as_ref()).unwrap(), &want, "from a file");
    assert_flows(&piped(text.as_bytes()), &want, "from a pipe");
    // A bad cell names its line and column.
    let bad = text.replacen(",TCP,", ",TCPX,", 1);
    let line = bad.lines().position(|l| l.contains("TCPX")).unwrap() + 1;
    let e = decode_all(open_bytes(bad.into_bytes(), None).as_ref(), &mut |_| {}).unwrap_err();
    assert!(
        e.message
            .contains(&format!("CSV line {line}, column 8 (pr)")),
        "{e}"
    );
}

#[test]
fn flow_export_csv_shape_gives_its_flows_to_the_millisecond() {
    let flows = sample_flows(3_000, 0.0);
    let text = csv_as_flow_export(&flows);
    let d = open_bytes(text.clone().into_bytes(), None);
    assert_eq!(d.format(), "csv");
    assert_flows(&read_all(d.as_ref()).unwrap(), &flows, "from a file");
    assert_flows(&piped(text.as_bytes()), &flows, "from a pipe");
}

/// Every writer's output, mutated: no reader may panic on it.
#[test]
fn fuzz_bodies_survive_mutated_written_inputs() {
    let flows = sample_flows(60, 0.3);
    let v4: Vec<FlowRecord> = flows
        .iter()
        .filter(|r| r.src.is_v4() && r.dst.is_v4())
        .copied()
        .collect();
    let v9 = Exporter {
        options: true,
        ..Exporter::v9(3)
    }
    .packets_with_templates(&flows)
    .remove(0);
    let ipfix = Exporter {
        options: true,
        ..Exporter::ipfix(3)
    }
    .packets_with_templates(&flows)
    .remove(0);
    let v5 = V5::default().packets(&v4).remove(0);
    let a: IpAddr = "10.0.0.2".parse().unwrap();
    let frames = vec![
        udp_frame(&v9, a, true),
        udp_frame(&ipfix, a, false),
        udp_frame(&v5, a, false),
    ];
    let inputs: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "flow-tools zlib",
            FlowTools::like_flow_import(Order::Little, true).write(&v4),
            "flowtools",
        ),
        (
            "flow-tools plain be",
            FlowTools::like_flow_import(Order::Big, false).write(&v4[..20]),
            "flowtools",
        ),
        ("v5", v5.clone(), "netflow"),
        ("v9", v9.clone(), "netflow"),
        ("ipfix", ipfix.clone(), "netflow"),
        ("pcap", pcap(&frames, true, false), "pcap"),
        ("pcapng", pcapng(&frames), "pcap"),
        (
            "nfdump csv",
            csv_as_nfdump(&flows[..20]).into_bytes(),
            "csv",
        ),
        (
            "flow-export csv",
            csv_as_flow_export(&v4[..20]).into_bytes(),
            "csv",
        ),
    ];
    let mut runs = 0;
    for (i, (name, bytes, fmt)) in inputs.iter().enumerate() {
        assert!(fuzz_body(bytes, fmt) > 0, "{name} unmutated gives no flows");
        for m in mutations(bytes, 60, 0x5851_f42d_4c95_7f2d ^ i as u64) {
            for f in ["flowtools", "netflow", "pcap", "csv"] {
                let r = std::panic::catch_unwind(|| fuzz_body(&m, f));
                assert!(
                    r.is_ok(),
                    "{f} reader panicked on a mutation of {name}: {:02x?}",
                    &m[..m.len().min(64)]
                );
                runs += 1;
            }
        }
    }
    assert!(runs > 2000, "{runs}");
}

/// Where the real files are: the flow-tools writer writes their header byte for byte, puts every field flowsketch
/// reads where flow-import puts it, and the flows of a real file written again decode to the same flows.
#[test]
fn flowtools_writer_matches_the_real_files() {
    let Some(data) = require_data("flowtools_writer_matches_the_real_files") else {
        return;
    };
    let dir = data.join("flow-tools");
    let mut checked = 0;
    for stem in [
        "nfcapd.sample",
        "port-scan-1-10000",
        "icmp-sweep",
        "nfcapd-empty",
    ] {
        for (suffix, order, zlib) in [
            ("ft", Order::Little, true),
            ("z0.ft", Order::Little, false),
            ("be.ft", Order::Big, true),
            ("be.z0.ft", Order::Big, false),
        ] {
            let path = dir.join(format!("{stem}.{suffix}"));
            let real = std::fs::read(&path).unwrap();
            let w = FlowTools::like_flow_import(order, zlib);
            let header = w.header(0);
            assert_eq!(
                real[..header.len()],
                header[..],
                "{}: header",
                path.display()
            );
            let flows = read_all(open_file(&path).as_ref()).unwrap();
            let written = w.write(&flows);
            assert_eq!(
                read_all(open_bytes(written.clone(), None).as_ref()).unwrap(),
                flows,
                "{}",
                path.display()
            );
            if !zlib {
                // Record by record: exporter, addresses, interfaces, counters, ports, protocol, ToS and flags.
                let fields = [12..24, 28..40, 48..55];
                for (i, (ours, theirs)) in written[header.len()..]
                    .chunks(64)
                    .zip(real[header.len()..].chunks(64))
                    .enumerate()
                {
                    for r in fields.clone() {
                        assert_eq!(
                            ours[r.clone()],
                            theirs[r.clone()],
                            "{}: record {i} bytes {r:?}",
                            path.display()
                        );
                    }
                }
                assert_eq!(written.len(), real.len(), "{}", path.display());
            }
            checked += flows.len();
        }
    }
    assert!(checked > 40_000, "{checked}");
}

/// With the real nfdump (no real data needed): what it prints with `-o csv` for a file holding `flows` is, in every
/// column flowsketch reads, what `nfdump_csv` writes for them.
#[test]
fn nfdump_csv_writer_writes_what_nfdump_prints() {
    if !require_nfdump("nfdump_csv_writer_writes_what_nfdump_prints") {
        return;
    }
    let flows = sample_flows(3_000, 0.2);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("nfcapd.written");
    let mut w = NfcapdWriter::new(
        std::fs::File::create(&file).unwrap(),
        Compression::Lz4,
        "csv",
    )
    .unwrap();
    for f in &flows {
        w.write(f).unwrap();
    }
    w.finish().unwrap();
    let csv = dir.path().join("flows.csv");
    nfdump_csv(&file, &csv);
    let theirs = std::fs::read_to_string(&csv).unwrap();
    let ours = csv_as_nfdump(&flows);
    let (theirs, ours): (Vec<&str>, Vec<&str>) = (theirs.lines().collect(), ours.lines().collect());
    assert_eq!(theirs.len(), ours.len());
    assert_eq!(theirs[0], ours[0], "header");
    let columns: Vec<usize> = [
        "ts", "te", "sa", "da", "sp", "dp", "pr", "flg", "stos", "ipkt", "ibyt", "in", "out",
    ]
    .iter()
    .map(|c| ours[0].split(',').position(|h| h == *c).unwrap())
    .collect();
    let pick = |l: &str| -> Vec<String> {
        let cells: Vec<&str> = l.split(',').collect();
        columns.iter().map(|&i| cells[i].to_string()).collect()
    };
    // Same flows in the same order (the writer keeps it), then the summary block with the same counts.
    let flow_lines = flows.len() + 1;
    for (i, (t, o)) in theirs[1..flow_lines]
        .iter()
        .zip(&ours[1..flow_lines])
        .enumerate()
    {
        assert_eq!(pick(t), pick(o), "flow {i}:\n{t}\n{o}");
    }
    assert_eq!(
        theirs[flow_lines..flow_lines + 2],
        ours[flow_lines..flow_lines + 2]
    );
    let counts = |l: &str| l.split(',').take(3).map(str::to_string).collect::<Vec<_>>();
    assert_eq!(counts(theirs[flow_lines + 2]), counts(ours[flow_lines + 2]));
}

/// Where the real payloads are: the v5 writer puts every field flowsketch reads where real exporters (Cisco,
/// Juniper, MikroTik) put it, and their flows written again decode to the same flows.
#[test]
fn netflow_v5_writer_matches_the_real_payloads() {
    let Some(data) = require_data("netflow_v5_writer_matches_the_real_payloads") else {
        return;
    };
    let dir = data.join("netflow-packets");
    let mut records = 0;
    for name in [
        "netflow5.dat",
        "netflow5_test_juniper_mx80.dat",
        "netflow5_test_microtik.dat",
    ] {
        let real = std::fs::read(dir.join(name)).unwrap();
        let count = u16::from_be_bytes([real[2], real[3]]) as usize;
        let v5 = V5 {
            engine_type: real[20],
            engine_id: real[21],
            sampling: u16::from_be_bytes([real[22], real[23]]),
            per_packet: count,
        };
        // The first packet of the payload, as its exporter sent it.
        let flows = read_all(open_bytes(real[..24 + 48 * count].to_vec(), None).as_ref()).unwrap();
        assert_eq!(flows.len(), count, "{name}");
        let written = v5.packets(&flows).remove(0);
        assert_eq!(written.len(), 24 + 48 * count, "{name}");
        assert_eq!(written[..4], real[..4], "{name}: version and count");
        assert_eq!(written[20..24], real[20..24], "{name}: engine and sampling");
        // Record by record: addresses, interfaces, counters, ports, flags, protocol, ToS.
        for i in 0..count {
            let (ours, theirs) = (&written[24 + 48 * i..][..48], &real[24 + 48 * i..][..48]);
            for r in [0..8, 12..24, 32..36, 37..40] {
                assert_eq!(
                    ours[r.clone()],
                    theirs[r.clone()],
                    "{name}: record {i} bytes {r:?}"
                );
            }
        }
        let again = read_all(open_bytes(written, None).as_ref()).unwrap();
        assert_flows(&again, &flows, name);
        records += count;
    }
    assert!(records >= 50, "{records}");
}

/// Every finding on the real captures says what it is about: bytes, packets, the rule's description and its top
/// peers, ports and protocols, counted from every flow (the verify pass), with no need for nfdump.
#[test]
fn every_finding_on_the_real_captures_has_evidence() {
    let Some(data) = require_data("every_finding_on_the_real_captures_has_evidence") else {
        return;
    };
    let mut findings = 0;
    for dir in ["scans", "nfcapd"] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(data.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_file() && !p.to_string_lossy().contains("corrupt"))
            .collect();
        files.sort();
        for file in files {
            let out = common::bin()
                .args(["scan", "-q", "-f", "json"])
                .arg(&file)
                .output()
                .unwrap();
            for line in String::from_utf8(out.stdout).unwrap().lines() {
                let f: serde_json::Value = serde_json::from_str(line).unwrap();
                if f["type"] != "finding" {
                    continue;
                }
                findings += 1;
                let at = format!("{}: {f}", file.display());
                assert_eq!(f["evidence"], "complete", "{at}");
                assert!(
                    f["bytes"].as_u64().is_some() && f["packets"].as_u64().is_some(),
                    "{at}"
                );
                assert!(!f["about"].as_str().unwrap_or("").is_empty(), "{at}");
                for list in ["top_peers", "top_ports", "protocols"] {
                    assert!(!f[list].as_array().unwrap().is_empty(), "{list} in {at}");
                }
            }
        }
    }
    assert!(
        findings >= 10,
        "only {findings} findings on the real captures"
    );
}
