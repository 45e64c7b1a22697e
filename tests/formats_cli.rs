//! Every reader through the real binary: flow-tools files against the IPv4 part of their nfcapd source, all
//! NetFlow payloads in one scan, nfdump's CSV against the nfcapd file it was printed from, pipes, detection and
//! `--input-format`. Skips (with a printed line) when ../shared/data or nfdump is absent.

mod common;
use common::{bin, data, flowtools_source, nfdump_csv, nfdump_on_path, stderr};

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
    let Some(data) = data() else { return };
    let nfdump = nfdump_on_path();
    let rules = fixture("ipv4-low-thresholds.toml");
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("flow-tools"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len() % 4, 0, "four variants per source");
    // Per nfcapd source: its findings and nfdump's IPv4 flow count.
    let mut sources: BTreeMap<PathBuf, (Findings, Option<u64>)> = BTreeMap::new();
    let (mut checked, mut total_findings) = (0, 0);
    for ft in &files {
        let src = flowtools_source(&data, ft);
        let (want, ipv4) = sources.entry(src.clone()).or_insert_with(|| {
            let o = scan(&rules, &["-q", src.to_str().unwrap()], None);
            assert!(o.status.code() != Some(2), "{}", stderr(&o));
            (findings(&o), nfdump.then(|| nfdump_ipv4_flows(&src)))
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
        if let Some(n) = ipv4 {
            assert_eq!(summary_flows(&o), *n, "{}: {err}", ft.display());
        }
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
    let Some(data) = data() else { return };
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
    let Some(data) = data() else { return };
    if !nfdump_on_path() {
        return;
    }
    let rules = fixture("low-thresholds.toml");
    let src = data.join("nfcapd/nfcapd.sample");
    let tmp = tempfile::tempdir().unwrap();
    let csv = tmp.path().join("sample.csv");
    nfdump_csv(&src, &csv);

    let o = scan(&rules, &[src.to_str().unwrap()], None);
    let want = findings(&o);
    assert!(want.len() >= 9, "rules should fire on the sample: {want:?}");
    let flows = summary_flows(&o);
    for (what, args, stdin) in [
        ("file", vec![csv.to_str().unwrap()], None),
        ("pipe", vec!["-"], Some(csv.as_path())),
        (
            "pipe, --input-format csv",
            vec!["--input-format", "csv", "-"],
            Some(csv.as_path()),
        ),
    ] {
        let c = scan(&rules, &args, stdin);
        assert_eq!(c.status.code(), o.status.code(), "{what}: {}", stderr(&c));
        // nfdump prints ts/te to the second: first/last are the nfcapd's, cut to the second.
        let got = findings(&c);
        assert_same(&got, &want, 999, what);
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
    println!(
        "csv: nfdump -o csv of nfcapd.sample: {} findings and {flows} flows equal to the nfcapd file's",
        want.len()
    );
}

#[test]
fn input_format_overrides_detection_and_unknown_input_is_explained() {
    let Some(data) = data() else { return };
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
    // A real nfcapd file forced as CSV or flow-tools is refused too; from a pipe as well.
    let nfcapd = data.join("scans/icmp-sweep.nfcapd");
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
/// `-` did not apply and its data was reported as "before its template".
#[test]
fn netflow_templates_from_files_apply_to_data_from_a_pipe() {
    let Some(data) = data() else { return };
    let dir = data.join("netflow-packets");
    let rules = fixture("low-thresholds.toml");
    for (tpl, payload) in [
        (
            "netflow9_test_cisco_asa_1_tpl.dat",
            "netflow9_test_cisco_asa_1_data.dat",
        ),
        (
            "ipfix_test_mikrotik_tpl.dat",
            "ipfix_test_mikrotik_data258.dat",
        ),
    ] {
        let (tpl, payload) = (dir.join(tpl), dir.join(payload));
        let files = scan(
            &rules,
            &[tpl.to_str().unwrap(), payload.to_str().unwrap()],
            None,
        );
        let piped = scan(&rules, &[tpl.to_str().unwrap(), "-"], Some(&payload));
        let err = stderr(&piped);
        assert!(summary_flows(&files) > 0, "{}", stderr(&files));
        assert_eq!(summary_flows(&piped), summary_flows(&files), "{err}");
        assert!(!err.contains("before its template"), "{err}");
        assert_eq!(findings(&piped), findings(&files));
    }
}
