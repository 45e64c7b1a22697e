//! Every reader through the real binary: the same flows written in every format give the same findings as their
//! nfcapd file (flow-tools for the IPv4 part; CSV to the second), from a path and from a pipe; NetFlow payloads
//! and captures in one scan, broken ones reported; detection and `--input-format`. The same against the real
//! files of ../shared/data and nfdump, which say `skipped` without them (and fail under `CI=true`).

mod common;
use common::writers::{
    csv_as_flow_export, csv_as_nfdump, pcap, udp_frame, Exporter, FlowTools, Order, V5,
};
use common::{
    bin, flowtools_source, nfdump_csv, require_data, require_data_and_nfdump, sample_flows, stderr,
    write_nfcapd,
};

use flowsketch::record::FlowRecord;
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn fixture(name: &str) -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/").to_string() + name
}

/// `flowsketch scan --format json --exact -r RULES ARGS...`, stdin from `stdin` (written through a real pipe).
fn scan(rules: &str, args: &[&str], stdin: Option<&Path>) -> Output {
    let mut cmd = bin();
    cmd.args(["scan", "--format", "json", "--exact", "-r", rules])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let Some(file) = stdin else {
        return cmd.stdin(Stdio::null()).output().expect("run flowsketch");
    };
    let bytes = std::fs::read(file).unwrap();
    let mut child = cmd.stdin(Stdio::piped()).spawn().expect("run flowsketch");
    let mut pipe = child.stdin.take().unwrap();
    // A writer thread, as `cat FILE |` would be: the reader sees a pipe, not a seekable file.
    let writer = std::thread::spawn(move || {
        let _ = pipe.write_all(&bytes);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    out
}

/// One finding without its first/last times (compared separately, to the second).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Finding {
    rule: String,
    host: String,
    port: Option<u64>,
    peer: Option<String>,
    proto: Option<u64>,
    value: u64,
    flows: u64,
    exact: bool,
}

/// Findings keyed by what they are about, with (first, last) in Unix ms.
type Findings = BTreeMap<Finding, (i64, i64)>;

fn findings(o: &Output) -> Findings {
    let mut m = BTreeMap::new();
    for l in String::from_utf8_lossy(&o.stdout).lines() {
        if common::is_summary(l) {
            continue;
        }
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
        let f = Finding {
            rule: v["rule"].as_str().unwrap().to_string(),
            host: v["host"].as_str().unwrap().to_string(),
            port: v["port"].as_u64(),
            peer: v["peer"].as_str().map(str::to_string),
            proto: v["proto"].as_u64(),
            value: v["value"].as_u64().unwrap(),
            flows: v["flows"].as_u64().unwrap(),
            exact: v["exact"].as_bool().unwrap(),
        };
        let t = |k: &str| iso_ms(v[k].as_str().unwrap_or_else(|| panic!("{k} in {l}")));
        assert!(m.insert(f, (t("first"), t("last"))).is_none(), "{l}");
    }
    m
}

/// `YYYY-MM-DDTHH:MM:SS[.mmm]Z` to Unix ms, computed here independently of the report writer.
fn iso_ms(s: &str) -> i64 {
    let n = |a: usize, b: usize| -> i64 { s[a..b].parse().unwrap_or_else(|_| panic!("{s}")) };
    let (y, mo, d) = (n(0, 4), n(5, 7), n(8, 10));
    let secs = n(11, 13) * 3600 + n(14, 16) * 60 + n(17, 19);
    let ms = if s.as_bytes().get(19) == Some(&b'.') {
        n(20, 23)
    } else {
        0
    };
    // Days from 1970-01-01 to y-mo-d (proleptic Gregorian, March-based years).
    let (y, m) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    (days * 86_400 + secs) * 1000 + ms
}

/// The flow count of the summary line on stderr.
fn summary_flows(o: &Output) -> u64 {
    let err = stderr(o);
    let line = err
        .lines()
        .find(|l| l.contains(" flows, "))
        .unwrap_or_else(|| panic!("no summary: {err}"));
    let before = line.split(" flows, ").next().unwrap();
    before.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Same findings (rule, key, value, flows); times equal up to `slack_ms` (the coarser input's resolution).
fn assert_same(got: &Findings, want: &Findings, slack_ms: i64, what: &str) {
    let keys = |m: &Findings| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(got), keys(want), "{what}");
    for (f, (first, last)) in got {
        let (wf, wl) = want[f];
        assert!(
            (first - wf).abs() <= slack_ms && (last - wl).abs() <= slack_ms,
            "{what}: {f:?} first/last {first}/{last} vs {wf}/{wl}"
        );
    }
}

/// IPv4 flows of an nfcapd file as the real nfdump counts them.
fn nfdump_ipv4_flows(file: &Path) -> u64 {
    let out = Command::new("nfdump")
        .arg("-r")
        .arg(file)
        .args(["-q", "-N", "-o", "fmt:%pr", "ipv4"])
        .output()
        .expect("run nfdump");
    assert!(out.status.success(), "nfdump -r {}", file.display());
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // One protocol per flow; an empty result is the line "No matching flows".
        .filter(|l| !l.trim().is_empty() && !l.trim().contains(' '))
        .count() as u64
}

#[test]
fn flowtools_files_give_the_findings_of_the_ipv4_part_of_their_source() {
    let test = "flowtools_files_give_the_findings_of_the_ipv4_part_of_their_source";
    let Some(data) = require_data_and_nfdump(test) else {
        return;
    };
    let rules = fixture("ipv4-low-thresholds.toml");
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("flow-tools"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len() % 4, 0, "four variants per source");
    // Per nfcapd source: its findings and nfdump's IPv4 flow count.
    let mut sources: BTreeMap<PathBuf, (Findings, u64)> = BTreeMap::new();
    let (mut checked, mut total_findings) = (0, 0);
    for ft in &files {
        let src = flowtools_source(&data, ft);
        let (want, ipv4) = sources.entry(src.clone()).or_insert_with(|| {
            let o = scan(&rules, &["-q", src.to_str().unwrap()], None);
            assert!(o.status.code() != Some(2), "{}", stderr(&o));
            (findings(&o), nfdump_ipv4_flows(&src))
        });
        let o = scan(&rules, &[ft.to_str().unwrap()], None);
        let err = stderr(&o);
        assert!(
            o.status.code() != Some(2) && !err.contains("warning:"),
            "{}: {err}",
            ft.display()
        );
        let got = findings(&o);
        // flow-import keeps whole seconds, so first/last differ from the nfcapd's by less than a second.
        assert_same(&got, want, 999, &ft.display().to_string());
        assert_eq!(summary_flows(&o), *ipv4, "{}: {err}", ft.display());
        // The same file through a pipe, read as a stream.
        let p = scan(&rules, &["-"], Some(ft));
        assert_eq!(p.status.code(), o.status.code(), "{}", stderr(&p));
        assert_eq!(findings(&p), got, "{} from a pipe", ft.display());
        assert_eq!(summary_flows(&p), summary_flows(&o), "{}", ft.display());
        checked += 1;
        total_findings += got.len();
    }
    assert!(total_findings > 0);
    println!(
        "flow-tools: {checked} files (4 variants of {} sources), {total_findings} findings equal to their \
         source's IPv4 findings, from the path and from a pipe",
        sources.len()
    );
}

/// `flows` written as an nfcapd file in `dir`, and its findings with `rules`.
fn nfcapd_findings(dir: &Path, flows: &[FlowRecord], rules: &str) -> (PathBuf, Findings) {
    let path = dir.join("flows.nfcapd");
    write_nfcapd(&path, flows);
    let o = scan(rules, &["-q", path.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let f = findings(&o);
    assert!(
        f.len() > 50,
        "the rules must fire on the sample flows: {}",
        f.len()
    );
    (path, f)
}

#[test]
fn written_flowtools_files_give_the_findings_of_the_ipv4_part_of_their_flows() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = fixture("ipv4-low-thresholds.toml");
    let flows = sample_flows(20_000, 0.2);
    let (_, want) = nfcapd_findings(tmp.path(), &flows, &rules);
    // NetFlow v5 holds IPv4 only: the flow-tools files hold the IPv4 flows, and the rules look at those alone.
    let v4: Vec<FlowRecord> = flows
        .iter()
        .filter(|r| r.src.is_v4() && r.dst.is_v4())
        .copied()
        .collect();
    assert!(v4.len() < flows.len());
    for order in [Order::Little, Order::Big] {
        for zlib in [false, true] {
            let ft = tmp.path().join(format!("ft-v05.{order:?}.{zlib}"));
            std::fs::write(&ft, FlowTools::like_flow_import(order, zlib).write(&v4)).unwrap();
            let what = ft.display().to_string();
            let o = scan(&rules, &[ft.to_str().unwrap()], None);
            assert_eq!(o.status.code(), Some(1), "{what}: {}", stderr(&o));
            // Times to the millisecond: the writer keeps them.
            assert_same(&findings(&o), &want, 0, &what);
            assert_eq!(summary_flows(&o), v4.len() as u64, "{what}");
            let p = scan(&rules, &["-"], Some(&ft));
            assert_same(&findings(&p), &want, 0, &format!("{what} from a pipe"));
            assert_eq!(summary_flows(&p), v4.len() as u64, "{what} from a pipe");
        }
    }
}

#[test]
fn written_csv_gives_the_findings_of_its_flows() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = fixture("low-thresholds.toml");
    let flows = sample_flows(20_000, 0.2);
    let (_, want) = nfcapd_findings(tmp.path(), &flows, &rules);
    let csv = tmp.path().join("flows.csv");
    std::fs::write(&csv, csv_as_nfdump(&flows)).unwrap();
    nfdump_csv_gives(&rules, &csv, &want, flows.len() as u64);
    // flow-export's CSV of the IPv4 flows, with times to the millisecond.
    let rules = fixture("ipv4-low-thresholds.toml");
    let (_, want) = nfcapd_findings(tmp.path(), &flows, &rules);
    let v4: Vec<FlowRecord> = flows
        .iter()
        .filter(|r| r.src.is_v4() && r.dst.is_v4())
        .copied()
        .collect();
    std::fs::write(&csv, csv_as_flow_export(&v4)).unwrap();
    let c = scan(&rules, &[csv.to_str().unwrap()], None);
    assert_same(&findings(&c), &want, 0, "flow-export CSV");
    assert_eq!(summary_flows(&c), v4.len() as u64);
}

#[test]
fn written_netflow_payloads_and_captures_give_the_findings_of_their_flows() {
    let tmp = tempfile::tempdir().unwrap();
    let rules = fixture("low-thresholds.toml");
    let flows = sample_flows(6_000, 0.2);
    let (_, want) = nfcapd_findings(tmp.path(), &flows, &rules);
    // IPv4 flows in thirds: v5, v9 and IPFIX; IPv6 flows split between v9 and IPFIX.
    let (v4, v6): (Vec<FlowRecord>, Vec<FlowRecord>) =
        flows.iter().partition(|r| r.src.is_v4() && r.dst.is_v4());
    let third = v4.len() / 3;
    let v5_flows = &v4[..third];
    let v9_flows: Vec<FlowRecord> = v4[third..2 * third]
        .iter()
        .chain(&v6[..v6.len() / 2])
        .copied()
        .collect();
    let ipfix_flows: Vec<FlowRecord> = v4[2 * third..]
        .iter()
        .chain(&v6[v6.len() / 2..])
        .copied()
        .collect();
    let (v9, ipfix) = (Exporter::v9(3), Exporter::ipfix(4));
    // Payload files as an exporter sends them, in the order given on the command line: the v9 templates first,
    // then its data; IPFIX with its templates in every message; two broken payloads among them.
    let mut payloads: Vec<(String, Vec<u8>)> = vec![("v9-tpl.dat".into(), v9.template_packet())];
    payloads.extend(
        v9.data_packets(&v9_flows)
            .into_iter()
            .enumerate()
            .map(|(i, p)| (format!("v9-data-{i:03}.dat"), p)),
    );
    payloads.extend(
        ipfix
            .packets_with_templates(&ipfix_flows)
            .into_iter()
            .enumerate()
            .map(|(i, p)| (format!("ipfix-{i:03}.dat"), p)),
    );
    payloads.extend(
        V5::default()
            .packets(v5_flows)
            .into_iter()
            .enumerate()
            .map(|(i, p)| (format!("v5-{i:03}.dat"), p)),
    );
    // A v5 header that claims 31 records and one cut inside its records: "at offset 2" for both.
    let mut bad_count = payloads.last().unwrap().1.clone();
    bad_count[3] = 31;
    // Cut inside the first record: no whole record before the cut (those would be read, and counted twice here).
    let cut = payloads.last().unwrap().1[..60].to_vec();
    payloads.push(("v5-invalid-count.dat".into(), bad_count));
    payloads.push(("v5-invalid-cut.dat".into(), cut));
    let mut paths = Vec::new();
    for (name, bytes) in &payloads {
        let p = tmp.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        paths.push(p.to_str().unwrap().to_string());
    }
    for detect in [false, true] {
        let mut args: Vec<&str> = if detect {
            vec![]
        } else {
            vec!["--input-format", "netflow"]
        };
        args.extend(paths.iter().map(String::as_str));
        let o = scan(&rules, &args, None);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        for n in [
            "v5-invalid-count.dat: at offset 2: ",
            "v5-invalid-cut.dat: at offset 2: ",
        ] {
            assert_eq!(err.matches(n).count(), 1, "{n}: {err}");
        }
        assert!(err.contains("(2 with errors"), "{err}");
        assert!(!err.contains("warning:"), "{err}");
        assert_eq!(summary_flows(&o), flows.len() as u64, "{err}");
        assert_same(
            &findings(&o),
            &want,
            0,
            &format!("payloads, detect={detect}"),
        );
    }
    // The same packets as one capture from three exporters.
    let a: std::net::IpAddr = "192.0.2.9".parse().unwrap();
    let frames: Vec<Vec<u8>> = payloads
        .iter()
        .filter(|(n, _)| !n.contains("invalid"))
        .map(|(_, p)| udp_frame(p, a, false))
        .collect();
    let cap = tmp.path().join("exporters.pcap");
    std::fs::write(&cap, pcap(&frames, false, false)).unwrap();
    for (what, stdin, args) in [
        ("file", None, vec![cap.to_str().unwrap()]),
        ("pipe", Some(cap.as_path()), vec!["-"]),
    ] {
        let o = scan(&rules, &args, stdin);
        assert_eq!(o.status.code(), Some(1), "{what}: {}", stderr(&o));
        assert_eq!(summary_flows(&o), flows.len() as u64, "{what}");
        assert_same(&findings(&o), &want, 0, &format!("capture from a {what}"));
    }
}

/// Device prefix shared by a netflow-packets template file and its data files.
fn netflow_group(name: &str) -> String {
    let stem = name.trim_end_matches(".dat");
    let cut = ["_tpl", "_data", "_opttpl"]
        .iter()
        .filter_map(|m| stem.find(m))
        .min()
        .unwrap_or(stem.len());
    stem[..cut].to_string()
}

#[test]
fn all_netflow_payloads_in_one_scan() {
    use flowsketch::formats::{bytes_from_vec, decode_all, Opener};
    let Some(data) = require_data("all_netflow_payloads_in_one_scan") else {
        return;
    };
    let dir = data.join("netflow-packets");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    // Device by device, templates before the data they describe.
    names.sort_by_key(|n| (netflow_group(n), !n.contains("tpl"), n.clone()));

    // Per-file counts as tests/readers.rs asserts them (each device read with its own template cache, checked
    // there against netflow_parser and logstash-codec-netflow's spec); files that do not open are the invalid ones.
    let (mut want_flows, mut failing) = (0u64, Vec::new());
    let mut group = String::new();
    let mut opener = Opener::new();
    for n in &names {
        if netflow_group(n) != group {
            group = netflow_group(n);
            opener = Opener::new();
        }
        let bytes = std::fs::read(dir.join(n)).unwrap();
        match opener.open(bytes_from_vec(bytes), n, Some("netflow")) {
            Ok(d) => {
                want_flows += decode_all(d.as_ref(), &mut |_| {})
                    .unwrap_or_else(|e| panic!("{n}: {e}"))
                    .flows
            }
            Err(_) => failing.push(n.clone()),
        }
    }
    assert!(
        failing.iter().filter(|n| n.contains("invalid")).count() >= 2 && want_flows > 0,
        "{failing:?}"
    );
    assert!(failing.iter().all(|n| n.contains("invalid")), "{failing:?}");

    let paths: Vec<String> = names
        .iter()
        .map(|n| dir.join(n).to_str().unwrap().to_string())
        .collect();
    let mut args: Vec<&str> = vec!["--input-format", "netflow"];
    args.extend(paths.iter().map(String::as_str));
    let o = scan(&fixture("low-thresholds.toml"), &args, None);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for n in &failing {
        assert!(
            err.lines()
                .any(|l| l.contains(&format!("{n}: at offset ")) && !l.contains("warning")),
            "{n} not reported with its offset: {err}"
        );
    }
    assert!(
        err.contains(&format!("({} with errors", failing.len())),
        "{err}"
    );
    assert_eq!(summary_flows(&o), want_flows, "{err}");
    // Detection alone (no --input-format) reads them the same way.
    let o2 = scan(
        &fixture("low-thresholds.toml"),
        &paths.iter().map(String::as_str).collect::<Vec<_>>(),
        None,
    );
    let err2 = stderr(&o2);
    assert_eq!(summary_flows(&o2), want_flows, "{err2}");
    for n in &failing {
        // Detection names the NetFlow reason too, not just "unknown format".
        assert!(
            err2.lines()
                .any(|l| l.contains(&format!("{n}: at offset ")) && l.contains("NetFlow")),
            "{n}: {err2}"
        );
    }
    assert_eq!(findings(&o2), findings(&o));
    println!(
        "netflow: {} payload files in one scan, {want_flows} flows, {} invalid reported: {failing:?}",
        names.len(),
        failing.len()
    );
}

#[test]
fn nfdump_csv_gives_the_findings_of_its_nfcapd_file() {
    let Some(data) = require_data_and_nfdump("nfdump_csv_gives_the_findings_of_its_nfcapd_file")
    else {
        return;
    };
    let rules = fixture("low-thresholds.toml");
    let src = data.join("nfcapd/nfcapd.sample");
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("sample.csv");
    nfdump_csv(&src, &csv);

    let o = scan(&rules, &[src.to_str().unwrap()], None);
    let want = findings(&o);
    assert!(want.len() >= 9, "rules should fire on the sample: {want:?}");
    nfdump_csv_gives(&rules, &csv, &want, summary_flows(&o));
}

/// nfdump's CSV `csv` of an nfcapd file gives, from the file and from a pipe (detected or named), its `flows` and
/// findings `want`, with first/last cut to the second (nfdump prints `ts`/`te` to the second).
fn nfdump_csv_gives(rules: &str, csv: &Path, want: &Findings, flows: u64) {
    for (what, args, stdin) in [
        ("file", vec![csv.to_str().unwrap()], None),
        ("pipe", vec!["-"], Some(csv)),
        (
            "pipe, --input-format csv",
            vec!["--input-format", "csv", "-"],
            Some(csv),
        ),
    ] {
        let c = scan(rules, &args, stdin);
        assert_eq!(c.status.code(), Some(1), "{what}: {}", stderr(&c));
        let got = findings(&c);
        assert_same(&got, want, 999, what);
        for (f, (first, last)) in &got {
            let (wf, wl) = want[f];
            assert_eq!(
                (*first, *last),
                (wf - wf.rem_euclid(1000), wl - wl.rem_euclid(1000)),
                "{what}: {f:?}"
            );
        }
        assert_eq!(summary_flows(&c), flows, "{what}");
    }
}

#[test]
fn input_format_overrides_detection_and_unknown_input_is_explained() {
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("flows.csv");
    std::fs::write(
        &csv,
        "ts,te,td,sa,da,sp,dp,pr,flg,ipkt,ibyt\n\
         2023-01-25 18:35:43,2023-01-25 18:35:44,1.000,10.0.0.1,10.0.0.2,443,57358,TCP,...AP...,9,930\n",
    )
    .unwrap();
    let rules = fixture("low-thresholds.toml");
    let c = csv.to_str().unwrap();

    // The CSV file read as CSV (detected and named) is fine.
    for args in [vec![c], vec!["--input-format", "csv", c]] {
        let o = scan(&rules, &args, None);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert_eq!(summary_flows(&o), 1);
    }
    // Forced as another format: a clear error naming the file, the offset and what was expected.
    for (format, expect) in [
        ("nfcapd", "magic"),
        ("flowtools", "magic"),
        ("netflow", "version"),
        ("pcap", "magic"),
    ] {
        let o = scan(&rules, &["--input-format", format, c], None);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{format}: {err}");
        assert!(
            err.contains(&format!("{c}: at offset 0: ")) && err.to_lowercase().contains(expect),
            "{format}: {err}"
        );
    }
    // An nfcapd file forced as CSV or flow-tools is refused too; from a pipe as well.
    let nfcapd = tmp.path().join("icmp-sweep.nfcapd");
    write_nfcapd(&nfcapd, &sample_flows(100, 0.0));
    for format in ["csv", "flowtools"] {
        let o = scan(
            &rules,
            &["--input-format", format, nfcapd.to_str().unwrap()],
            None,
        );
        assert_eq!(o.status.code(), Some(2), "{format}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("icmp-sweep.nfcapd: at offset"),
            "{}",
            stderr(&o)
        );
        let o = scan(&rules, &["--input-format", format, "-"], Some(&nfcapd));
        assert_eq!(o.status.code(), Some(2), "{format}: {}", stderr(&o));
        assert!(stderr(&o).contains("<stdin>: at offset"), "{}", stderr(&o));
    }

    // Unknown content: the message lists every supported format, for a file and for a pipe.
    let junk = tmp.path().join("notes.bin");
    std::fs::write(&junk, b"\x00\x01\x02 not a flow file\n").unwrap();
    let from_file = scan(&rules, &[junk.to_str().unwrap()], None);
    let from_pipe = scan(&rules, &["-"], Some(&junk));
    for o in [&from_file, &from_pipe] {
        let err = stderr(o);
        assert_eq!(o.status.code(), Some(2), "{err}");
        assert!(err.contains("unknown file format"), "{err}");
        for n in [
            "nfcapd",
            "flowtools",
            "netflow",
            "pcap",
            "csv",
            "--input-format",
        ] {
            assert!(err.contains(n), "{n} missing: {err}");
        }
    }
    assert!(stderr(&from_file).contains("notes.bin: at offset 0"));

    // An unknown --input-format name is refused before any scan, with the names accepted.
    let o = scan(&rules, &["--input-format", "silk", c], None);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(o.stdout.is_empty());
    for n in ["nfcapd", "flowtools", "netflow", "pcap", "csv"] {
        assert!(err.contains(n), "{n} missing: {err}");
    }
}

/// Regression: NetFlow data read from a pipe used a fresh template cache, so the templates of the files before
/// `-` did not apply and its data was reported as "before its template". The data read after its template file,
/// from a path and from a pipe, gives `flows` flows and the same findings.
fn templates_apply_to_a_pipe(tpl: &Path, payload: &Path, flows: u64) {
    let rules = fixture("low-thresholds.toml");
    let files = scan(
        &rules,
        &[tpl.to_str().unwrap(), payload.to_str().unwrap()],
        None,
    );
    let piped = scan(&rules, &[tpl.to_str().unwrap(), "-"], Some(payload));
    let err = stderr(&piped);
    assert_eq!(summary_flows(&files), flows, "{}", stderr(&files));
    assert_eq!(summary_flows(&piped), flows, "{err}");
    assert!(!err.contains("before its template"), "{err}");
    assert_eq!(findings(&piped), findings(&files));
}

#[test]
fn netflow_templates_from_files_apply_to_data_from_a_pipe() {
    let tmp = tempfile::tempdir().unwrap();
    let flows = sample_flows(300, 0.2);
    for e in [Exporter::v9(1), Exporter::ipfix(1)] {
        let (tpl, payload) = (tmp.path().join("tpl.dat"), tmp.path().join("data.dat"));
        std::fs::write(&tpl, e.template_packet()).unwrap();
        // A v9 packet has no length and runs to the end of its payload: one packet; IPFIX messages in a row.
        let packets = e.data_packets(&flows);
        let (data, n) = match e.version {
            9 => (packets[0].clone(), e.per_packet),
            _ => (packets.concat(), flows.len()),
        };
        std::fs::write(&payload, data).unwrap();
        // Without its template the data decodes to nothing.
        let alone = scan(&fixture("low-thresholds.toml"), &["-"], Some(&payload));
        assert!(
            stderr(&alone).contains("before its template"),
            "{}",
            stderr(&alone)
        );
        templates_apply_to_a_pipe(&tpl, &payload, n as u64);
    }
}

#[test]
fn netflow_templates_from_real_files_apply_to_data_from_a_pipe() {
    let test = "netflow_templates_from_real_files_apply_to_data_from_a_pipe";
    let Some(data) = require_data(test) else {
        return;
    };
    let dir = data.join("netflow-packets");
    for (tpl, payload, flows) in [
        (
            "netflow9_test_cisco_asa_1_tpl.dat",
            "netflow9_test_cisco_asa_1_data.dat",
            14,
        ),
        (
            "ipfix_test_mikrotik_tpl.dat",
            "ipfix_test_mikrotik_data258.dat",
            28,
        ),
    ] {
        templates_apply_to_a_pipe(&dir.join(tpl), &dir.join(payload), flows);
    }
}
