//! Readers against real files in ../shared/data and independent oracles: the real nfdump 1.7.1 and the
//! `netflow_parser` crate. Every test skips (with a message) when the data folder or nfdump is absent.

mod common;
use common::{data, flowtools_source, nfdump_csv, nfdump_on_path};

use flowsketch::formats::{self, decode_all, open_stream, Decoder, Opener};
use flowsketch::record::{Addr, FlowRecord};
use std::collections::BTreeMap;
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

fn open_file(path: &Path) -> Box<dyn Decoder> {
    let bytes = std::fs::read(path).unwrap();
    formats::open(formats::bytes_from_vec(bytes))
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn flowtools_files_give_the_ipv4_flows_of_their_nfcapd_source() {
    let Some(data) = data() else { return };
    if !nfdump_on_path() {
        return;
    }
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
    let Some(data) = data() else { return };
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
    let Some(data) = data() else { return };
    if !nfdump_on_path() {
        return;
    }
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
    let Some(data) = data() else { return };
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
    let Some(data) = data() else { return };
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

/// Wrap UDP payloads into Ethernet (optionally VLAN-tagged) IPv4 or IPv6 frames from exporter `n`.
fn frame(payload: &[u8], n: u8, v6: bool, vlan: bool) -> Vec<u8> {
    let mut f = vec![0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
    if vlan {
        f.extend_from_slice(&[0x81, 0x00, 0x00, 0x0a]);
    }
    let udp_len = 8 + payload.len();
    let mut udp = vec![0xc0, n, 0x08, 0x07];
    udp.extend_from_slice(&(udp_len as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    if v6 {
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&(udp_len as u16).to_be_bytes());
        f.extend_from_slice(&[17, 64]);
        let mut src = [0u8; 16];
        src[0] = 0x20;
        src[1] = 0x01;
        src[15] = n;
        f.extend_from_slice(&src);
        f.extend_from_slice(&[0u8; 16]);
    } else {
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
        f.extend_from_slice(&((20 + udp_len) as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0, 10, 9, 9, n, 10, 0, 0, 1]);
    }
    f.extend_from_slice(&udp);
    f
}

fn pcap(frames: &[Vec<u8>], big_endian: bool) -> Vec<u8> {
    let p32 = |v: u32| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let p16 = |v: u16| {
        if big_endian {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut out = Vec::new();
    out.extend_from_slice(&p32(0xa1b2c3d4));
    out.extend_from_slice(&p16(2));
    out.extend_from_slice(&p16(4));
    out.extend_from_slice(&[0; 8]);
    out.extend_from_slice(&p32(65535));
    out.extend_from_slice(&p32(1));
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&p32(1_600_000_000 + i as u32));
        out.extend_from_slice(&p32(0));
        out.extend_from_slice(&p32(f.len() as u32));
        out.extend_from_slice(&p32(f.len() as u32));
        out.extend_from_slice(f);
    }
    out
}

fn pcapng(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    let block = |out: &mut Vec<u8>, t: u32, body: &[u8]| {
        let pad = (4 - body.len() % 4) % 4;
        let len = (12 + body.len() + pad) as u32;
        out.extend_from_slice(&t.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(body);
        out.extend_from_slice(&vec![0; pad]);
        out.extend_from_slice(&len.to_le_bytes());
    };
    let mut shb = 0x1a2b3c4du32.to_le_bytes().to_vec();
    shb.extend_from_slice(&[1, 0, 0, 0]);
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(&mut out, 0x0a0d0d0a, &shb);
    block(&mut out, 1, &[1, 0, 0, 0, 0xff, 0xff, 0, 0]);
    for f in frames {
        let mut epb = vec![0u8; 12];
        epb.extend_from_slice(&(f.len() as u32).to_le_bytes());
        epb.extend_from_slice(&(f.len() as u32).to_le_bytes());
        epb.extend_from_slice(f);
        block(&mut out, 6, &epb);
    }
    out
}

#[test]
fn captures_of_exporter_traffic_give_the_payload_flows() {
    let Some(data) = data() else { return };
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
            frames.push(frame(&bytes, i as u8 + 1, i == 1, i != 0));
        }
    }
    // Non-NetFlow UDP in between is skipped.
    frames.insert(1, frame(b"not netflow at all", 9, false, false));
    assert!(!want.is_empty());
    for (what, cap) in [
        ("pcap le", pcap(&frames, false)),
        ("pcap be", pcap(&frames, true)),
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
    let Some(data) = data() else { return };
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
    let Some(data) = data() else { return };
    if !nfdump_on_path() {
        return;
    }
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
    let Some(data) = data() else { return };
    if !nfdump_on_path() {
        return;
    }
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
    let Some(data) = data() else { return };
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
        .map(|(i, p)| frame(p, i as u8, i == 1, i == 2))
        .collect();
    inputs.push(("built pcap".into(), pcap(&frames, false), "pcap"));
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
