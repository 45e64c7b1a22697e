//! The tool as a user runs it: the demo, the real scans against nfdump's truth, the same answer in every
//! configuration, broken inputs, definitions checks, output formats.

mod common;
use common::{bin, data, stderr};

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::process::Output;

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run flowsketch")
}

/// Findings as (rule, key text, value) from `--format json`.
fn findings(o: &Output) -> Vec<(String, String, u64, bool)> {
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .filter(|l| !common::is_summary(l))
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}"));
            let mut key = v["host"].as_str().unwrap().to_string();
            if let Some(p) = v["port"].as_u64() {
                key += &format!(" port {p}");
            }
            if let Some(p) = v["peer"].as_str() {
                key += &format!(" > {p}");
            }
            (
                v["rule"].as_str().unwrap().to_string(),
                key,
                v["value"].as_u64().unwrap(),
                v["exact"].as_bool().unwrap(),
            )
        })
        .collect()
}

fn scan_json(path: &Path, extra: &[&str]) -> (Output, Vec<(String, String, u64, bool)>) {
    let mut args = vec!["scan", "--format", "json", "--quiet"];
    args.extend_from_slice(extra);
    let p = path.to_str().unwrap();
    args.push(p);
    let o = run(&args);
    let f = findings(&o);
    (o, f)
}

#[test]
fn demo_finds_every_planted_host() {
    let o = run(&["demo", "--flows", "50000", "-j", "2"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert!(err.contains("every planted host was found"), "{err}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("FS1") && out.contains("FS6") && out.contains("FS8"),
        "{out}"
    );
}

#[test]
fn real_scans_are_found() {
    let Some(d) = data() else { return };
    let scans = d.join("scans");
    let has = |f: &[(String, String, u64, bool)], rule: &str, key: &str| {
        f.iter().any(|(r, k, _, _)| r == rule && k == key)
    };
    let (o, f) = scan_json(&scans.join("syn-sweep-horizontal.nfcapd"), &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(has(&f, "FS1", "10.0.0.128"), "{f:?}");
    assert!(has(&f, "FS4", "10.0.0.128"), "{f:?}");
    assert!(has(&f, "FS7", "10.0.0.128 port 80"), "{f:?}");
    let (_, f) = scan_json(&scans.join("masscan-tcp-vertical.nfcapd"), &[]);
    assert!(has(&f, "FS4", "172.31.15.102"), "{f:?}");
    assert!(has(&f, "FS6", "172.31.15.102 > 198.124.152.15"), "{f:?}");
    let (_, f) = scan_json(&scans.join("port-scan-1-10000.nfcapd"), &[]);
    assert!(has(&f, "FS6", "192.168.1.7 > 192.168.1.1"), "{f:?}");
    let (_, f) = scan_json(&scans.join("udp-scan-bogon.nfcapd"), &[]);
    assert!(has(&f, "FS2", "246.237.45.150"), "{f:?}");
}

/// The truth files list, per source, the distinct destinations and the SYN-only or SYN/RST flows, counted by an
/// independent program from nfdump's own output. FS1 and FS4 must report exactly the sources above 100.
#[test]
fn fan_out_and_syn_only_findings_equal_nfdump_truth() {
    let Some(d) = data() else { return };
    let mut checked = 0;
    for entry in std::fs::read_dir(d.join("truth")).unwrap() {
        let truth: Value =
            serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        let file = d.join(truth["file"].as_str().unwrap());
        let (o, f) = scan_json(&file, &[]);
        let above = |list: &str| -> BTreeSet<(String, u64)> {
            truth[list]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e[0].as_u64().unwrap() > 100)
                .map(|e| (e[1].as_str().unwrap().to_string(), e[0].as_u64().unwrap()))
                .collect()
        };
        // Exact counts must equal the truth; estimates must be within four standard errors of it.
        let check = |rule: &str, want: &BTreeSet<(String, u64)>| {
            let got: Vec<&(String, String, u64, bool)> = f.iter().filter(|x| x.0 == rule).collect();
            let hosts: BTreeSet<&str> = got.iter().map(|x| x.1.as_str()).collect();
            let want_hosts: BTreeSet<&str> = want.iter().map(|x| x.0.as_str()).collect();
            assert_eq!(
                hosts,
                want_hosts,
                "{rule} on {}: {}",
                file.display(),
                stderr(&o)
            );
            for (host, truth) in want {
                let g = got.iter().find(|x| &x.1 == host).unwrap();
                if g.3 {
                    assert_eq!(g.2, *truth, "{rule} {host} on {}", file.display());
                } else {
                    let err = (g.2 as f64 - *truth as f64).abs() / *truth as f64;
                    assert!(err < 4.0 * 0.0163, "{rule} {host}: {} vs {truth}", g.2);
                }
            }
        };
        // The truth lists only the top ten; when ten are above the threshold, more may be.
        let fs1 = above("top_distinct_dst");
        if fs1.len() < 10 {
            check("FS1", &fs1);
        }
        let fs4 = above("top_syn_only_flows");
        if fs4.len() < 10 {
            check("FS4", &fs4);
        }
        checked += 1;
    }
    assert!(checked >= 8, "truth files checked: {checked}");
}

#[test]
fn same_findings_in_every_configuration() {
    let Some(d) = data() else { return };
    let folder = d.join("scans");
    let (_, base) = scan_json(&folder, &["-j", "1"]);
    assert!(base.len() >= 6, "{base:?}");
    for extra in [
        &["-j", "2"][..],
        &["-j", "3", "--no-mmap"],
        &["--exact"],
        &["--counter", "hllpp", "-j", "2"],
        &["--counter", "exact"],
    ] {
        let (o, f) = scan_json(&folder, extra);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {}", stderr(&o));
        // Counts the compact counter calls exact are exact in every backend; estimates (the 1,000- and
        // 10,000-port scans) are within four standard errors of the exact count.
        let keys = |v: &[(String, String, u64, bool)]| -> Vec<(String, String)> {
            v.iter()
                .map(|x| (x.0.clone(), x.1.clone()))
                .collect::<BTreeSet<_>>()
                .into_iter()
                .collect()
        };
        assert_eq!(keys(&f), keys(&base), "{extra:?}");
        for b in &base {
            let g = f.iter().find(|x| x.0 == b.0 && x.1 == b.1).unwrap();
            if b.3 && g.3 {
                assert_eq!(g.2, b.2, "{extra:?} {b:?}");
            } else {
                let err = (g.2 as f64 - b.2 as f64).abs() / b.2.max(g.2) as f64;
                assert!(err < 4.0 * 0.0163, "{extra:?}: {g:?} vs {b:?}");
            }
        }
    }
    // Hosts with a few hundred peers or fewer are counted exactly by the default counter.
    for b in &base {
        assert!(b.3 || b.2 > 400, "{b:?}");
    }
}

#[test]
fn broken_inputs_are_reported_and_the_rest_still_scanned() {
    let Some(d) = data() else { return };
    let corrupt = d.join("nfcapd/nfcapd-corrupt");
    let empty = d.join("nfcapd/nfcapd-empty");
    let sweep = d.join("scans/syn-sweep-horizontal.nfcapd");
    let dir = tempfile::tempdir().unwrap();
    let foreign = dir.path().join("notes.txt");
    std::fs::write(&foreign, "this is not a flow file\n").unwrap();
    let o = run(&[
        "scan",
        "--format",
        "json",
        corrupt.to_str().unwrap(),
        foreign.to_str().unwrap(),
        empty.to_str().unwrap(),
        sweep.to_str().unwrap(),
        "/no/such/file",
    ]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("nfcapd-corrupt: at offset"), "{err}");
    assert!(err.contains("notes.txt: at offset 0"), "{err}");
    assert!(err.contains("/no/such/file: cannot open"), "{err}");
    assert!(
        !err.contains("nfcapd-empty:"),
        "an empty capture is not an error: {err}"
    );
    assert!(err.contains("(3 with errors"), "{err}");
    let f = findings(&o);
    assert!(
        f.iter().any(|x| x.0 == "FS1" && x.1 == "10.0.0.128"),
        "{f:?}"
    );
}

#[test]
fn definitions_are_checked_before_any_scan() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("site.toml");
    std::fs::write(
        &bad,
        "version = \"x\"\n[[rule]]\nid = \"A\"\nwhere = \"proto tcp and flags = Q\"\nkey = \"src\"\ncount = \"flows\"\nabove = 1\n",
    )
    .unwrap();
    let o = run(&["rules", "--check", bad.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("site.toml:4:"), "{err}");
    assert!(err.contains('^'), "{err}");
    let o = run(&["scan", "--rules", bad.to_str().unwrap(), "/dev/null"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(o.stdout.is_empty(), "no scan ran");

    // The printed defaults are a valid definitions file with the same rules.
    let o = run(&["rules", "--print"]);
    let printed = dir.path().join("defaults.toml");
    std::fs::write(&printed, &o.stdout).unwrap();
    let o = run(&["rules", "--check", printed.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(out.contains("6 active rules, 2 inactive"), "{out}");
}

#[test]
fn text_and_csv_reports_carry_the_same_findings() {
    let Some(d) = data() else { return };
    let f = d.join("scans/syn-sweep-horizontal.nfcapd");
    let p = f.to_str().unwrap();
    let text = run(&["scan", "-q", p]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.starts_with("# flowsketch"), "{text}");
    assert!(text.contains("definitions 2026.11.1"), "{text}");
    let csv = run(&["scan", "-q", "--format", "csv", p]);
    let csv = String::from_utf8_lossy(&csv.stdout).into_owned();
    let mut lines = csv.lines();
    let header = csv_fields(lines.next().unwrap());
    let rule = header.iter().position(|h| h == "rule").unwrap();
    let host = header.iter().position(|h| h == "host").unwrap();
    let rows: Vec<Vec<String>> = lines.map(csv_fields).collect();
    let (_, json) = scan_json(&f, &[]);
    assert_eq!(rows.len(), json.len());
    for (row, j) in rows.iter().zip(&json) {
        assert_eq!(row[rule], j.0);
        assert_eq!(row[host], j.1.split(' ').next().unwrap());
        assert!(text.contains(&format!("{}  ", j.0)), "{text}");
    }
}

/// Split one CSV line (RFC 4180 quoting), independently of the writer under test.
fn csv_fields(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            (c, _) => out.last_mut().unwrap().push(c),
        }
    }
    out
}

/// `--stats` gives each rule's keys, and they are the keys the rule reports when every key is a finding; together
/// they are the summary's "keys tracked".
#[test]
fn stats_count_every_rule_s_keys() {
    let Some(data) = data() else { return };
    let dir = tempfile::tempdir().unwrap();
    let defs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/rules/fs1-fs4.toml"),
    )
    .unwrap();
    let every_key = dir.path().join("every-key.toml");
    std::fs::write(&every_key, defs.replace("above = 100", "above = 0")).unwrap();
    let sample = data.join("nfcapd/nfcapd.sample");
    let o = run(&[
        "scan",
        "--stats",
        "-f",
        "json",
        "-r",
        every_key.to_str().unwrap(),
        sample.to_str().unwrap(),
    ]);
    let err = stderr(&o);
    let reported = findings(&o);
    let mut total = 0;
    for rule in ["FS1", "FS4"] {
        let line = err
            .lines()
            .find(|l| l.starts_with(&format!("flowsketch: rule {rule}: ")))
            .unwrap_or_else(|| panic!("no stats for {rule}: {err}"));
        let keys: usize = line
            .split("admitted ")
            .nth(1)
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let found = reported.iter().filter(|f| f.0 == rule).count();
        assert_eq!(keys, found, "{line}");
        assert!(
            keys > 0 && line.contains("tables ") && line.contains("counters "),
            "{line}"
        );
        total += keys;
    }
    assert!(err.contains(&format!("{total} keys tracked")), "{err}");
}
