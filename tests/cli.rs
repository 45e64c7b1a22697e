//! The tool as a user runs it: the demo, the real scans against nfdump's truth, the same answer in every
//! configuration, broken inputs, definitions checks, output formats.

mod common;
use common::{bin, require_data, stderr, write_nfcapd};
use flowsketch::gen::demo;

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
    // It names the folder it wrote, and says it is deleted (no --keep), and then that it was.
    assert!(
        err.contains("a temporary folder, deleted after the demo"),
        "{err}"
    );
    let deleted = err
        .lines()
        .find_map(|l| l.strip_prefix("flowsketch demo: deleted "))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(!Path::new(deleted).exists(), "{deleted}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("FS1") && out.contains("FS6") && out.contains("FS8"),
        "{out}"
    );
}

#[test]
fn real_scans_are_found() {
    let Some(d) = require_data("real_scans_are_found") else {
        return;
    };
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
    let Some(d) = require_data("fan_out_and_syn_only_findings_equal_nfdump_truth") else {
        return;
    };
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

/// The demo's capture (a small site with planted scanners, flowsketch::gen::demo) as two nfcapd files in `dir`.
fn demo_capture(dir: &Path) -> Vec<demo::Planted> {
    let (flows, planted) = demo::capture(1, 40_000);
    let half = flows.len() / 2;
    write_nfcapd(&dir.join("nfcapd.202611260300"), &flows[..half]);
    write_nfcapd(&dir.join("nfcapd.202611260305"), &flows[half..]);
    planted
}

#[test]
fn same_findings_in_every_configuration() {
    let dir = tempfile::tempdir().unwrap();
    demo_capture(dir.path());
    same_findings_in_every_configuration_of(dir.path());
}

#[test]
fn same_findings_in_every_configuration_on_real_scans() {
    let Some(d) = require_data("same_findings_in_every_configuration_on_real_scans") else {
        return;
    };
    same_findings_in_every_configuration_of(&d.join("scans"));
}

/// Every thread count, reading mode, counter and budget gives the same verified findings as one thread, and they
/// are exact counting's. One pass with every key in a table gives the same keys, exact counts equal and estimates
/// within four standard errors; some findings there must be estimates.
fn same_findings_in_every_configuration_of(folder: &Path) {
    let (_, base) = scan_json(folder, &["-j", "1"]);
    assert!(base.len() >= 6, "{base:?}");
    assert!(
        base.iter().all(|b| b.3),
        "verified counts are exact: {base:?}"
    );
    for extra in [
        &["-j", "2"][..],
        &["-j", "3", "--no-mmap"],
        &["--counter", "hllpp", "-j", "2"],
        &["--counter", "exact"],
        &["--memory", "1M", "--admit", "0.5"],
        &["--exact", "--no-verify"],
    ] {
        let (o, f) = scan_json(folder, extra);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {}", stderr(&o));
        assert_eq!(f, base, "{extra:?}");
    }
    let keys = |v: &[(String, String, u64, bool)]| -> Vec<(String, String)> {
        v.iter()
            .map(|x| (x.0.clone(), x.1.clone()))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect()
    };
    let mut estimates = 0;
    for extra in [
        &["--admit", "0", "--no-verify", "-j", "2"][..],
        &["--admit", "0", "--no-verify", "--counter", "hllpp"],
    ] {
        let (o, f) = scan_json(folder, extra);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {}", stderr(&o));
        assert_eq!(keys(&f), keys(&base), "{extra:?}");
        for b in &base {
            let g = f.iter().find(|x| x.0 == b.0 && x.1 == b.1).unwrap();
            if g.3 {
                assert_eq!(g.2, b.2, "{extra:?} {b:?}");
            } else {
                estimates += 1;
                let err = (g.2 as f64 - b.2 as f64).abs() / b.2 as f64;
                assert!(err < 4.0 * 0.0163, "{extra:?}: {g:?} vs {b:?}");
                // The default counter is exact up to 383 distinct values: its estimates are of more.
                if !extra.contains(&"hllpp") {
                    assert!(b.2 > 383, "{extra:?}: {g:?} vs {b:?}");
                }
            }
        }
    }
    assert!(estimates > 0, "no estimate among the one-pass findings");
}

#[test]
fn broken_inputs_are_reported_and_the_rest_still_scanned() {
    let dir = tempfile::tempdir().unwrap();
    let planted = demo_capture(dir.path());
    let sweep = dir.path().join("nfcapd.202611260300");
    let sweeper = planted
        .iter()
        .find(|p| p.expect.contains(&"FS7"))
        .unwrap()
        .host;
    let empty = dir.path().join("nfcapd-empty");
    write_nfcapd(&empty, &[]);
    // A plain file whose first record says its size is 0: "record size 0 below header size 4", as in the real
    // nfcapd-corrupt.
    let corrupt = dir.path().join("nfcapd-corrupt");
    {
        use flowsketch::formats::nfcapd::{Compression, NfcapdWriter};
        let mut w =
            NfcapdWriter::new(std::io::Cursor::new(Vec::new()), Compression::None, "x").unwrap();
        for f in demo::capture(2, 2_000).0 {
            w.write(&f).unwrap();
        }
        let mut b = w.finish().unwrap().into_inner();
        b[40 + 12 + 2..40 + 12 + 4].fill(0);
        std::fs::write(&corrupt, b).unwrap();
    }
    broken_inputs_are_reported(&corrupt, &empty, &sweep, &sweeper.to_string());
}

#[test]
fn broken_real_inputs_are_reported_and_the_rest_still_scanned() {
    let Some(d) = require_data("broken_real_inputs_are_reported_and_the_rest_still_scanned") else {
        return;
    };
    broken_inputs_are_reported(
        &d.join("nfcapd/nfcapd-corrupt"),
        &d.join("nfcapd/nfcapd-empty"),
        &d.join("scans/syn-sweep-horizontal.nfcapd"),
        "10.0.0.128",
    );
}

/// A corrupt, a foreign, an empty and a missing input are reported (not the empty one) with exit code 2, and
/// `sweep` is still scanned: `sweeper` is found by FS1.
fn broken_inputs_are_reported(corrupt: &Path, empty: &Path, sweep: &Path, sweeper: &str) {
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
    assert!(f.iter().any(|x| x.0 == "FS1" && x.1 == sweeper), "{f:?}");
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
    assert!(out.contains("7 active rules, 2 inactive"), "{out}");
    // ... with the same table, windows, steps and flows_above included.
    let checked: Vec<&str> = out.lines().filter(|l| l.contains(" key ")).collect();
    let o = run(&["rules"]);
    let table = String::from_utf8_lossy(&o.stdout).into_owned();
    let builtin: Vec<&str> = table.lines().filter(|l| l.contains(" key ")).collect();
    assert_eq!(checked, builtin);
    let fs9 = builtin.iter().find(|l| l.starts_with("FS9")).unwrap();
    assert!(
        fs9.contains("window 1m step 10s flows_above 100 where "),
        "{fs9}"
    );
    assert!(
        !builtin[0].contains("window") && !builtin[0].contains("flows_above"),
        "{table}"
    );

    // A site's groups show in the table of `rules --check`.
    let site = dir.path().join("groups.toml");
    std::fs::write(
        &site,
        "[lists]\nservers = [\"10.0.0.1\"]\n[[rule]]\nid = \"G\"\nkey = \"src\"\ncount = \"flows\"\nabove = 10\nabove_for = { \"@servers\" = 500 }\nwindow = \"5m\"\n",
    )
    .unwrap();
    let o = run(&["rules", "--check", site.to_str().unwrap()]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{out}{}", stderr(&o));
    assert!(
        out.contains("above 10     window 5m above_for @servers=500 where any"),
        "{out}"
    );
}

#[test]
fn text_and_csv_reports_carry_the_same_findings() {
    let dir = tempfile::tempdir().unwrap();
    demo_capture(dir.path());
    let f = dir.path().to_path_buf();
    let p = f.to_str().unwrap();
    let text = run(&["scan", "-q", p]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    assert!(text.starts_with("# flowsketch"), "{text}");
    assert!(text.contains("definitions 2026.12.1"), "{text}");
    let csv = run(&["scan", "-q", "--format", "csv", p]);
    let csv = String::from_utf8_lossy(&csv.stdout).into_owned();
    let mut lines = csv.lines();
    let header = csv_fields(lines.next().unwrap());
    let rule = header.iter().position(|h| h == "rule").unwrap();
    let host = header.iter().position(|h| h == "host").unwrap();
    let rows: Vec<Vec<String>> = lines.map(csv_fields).collect();
    let (_, json) = scan_json(&f, &[]);
    assert!(json.len() >= 6, "{json:?}");
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
    let dir = tempfile::tempdir().unwrap();
    demo_capture(dir.path());
    let defs = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/rules/fs1-fs4.toml"),
    )
    .unwrap();
    let every_key = dir.path().join("every-key.toml");
    std::fs::write(&every_key, defs.replace("above = 100", "above = 0")).unwrap();
    let sample = dir.path().join("nfcapd.202611260300");
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

/// A folder scan skips what is not a flow file (the `truth.json` gen writes, a README, an empty file) as
/// `nfdump -R` does: one note after the summary, no error, exit code 1 for the findings, in both passes and with
/// `--input-format`; `-q` says nothing of it; the JSON summary counts them. Named on the command line, such a file
/// is an error (exit code 2), and so is a broken NetFlow export found in a folder.
#[test]
fn folder_scans_skip_files_that_are_not_flow_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    demo_capture(d);
    let truth = d.join("truth.json");
    std::fs::write(&truth, "{\"events\": [{\"host\": \"10.0.0.1\"}]}\n").unwrap();
    std::fs::create_dir(d.join("notes")).unwrap();
    std::fs::write(d.join("notes/README"), "sa,sp,dp\ncaptures of the lab\n").unwrap();
    std::fs::write(d.join("empty"), b"").unwrap();
    let p = d.to_str().unwrap();
    let (_, base) = scan_json(d, &[]);
    assert!(!base.is_empty());
    for extra in [&[][..], &["--no-verify"], &["--input-format", "nfcapd"]] {
        let mut args = vec!["scan", "--format", "json"];
        args.extend_from_slice(extra);
        args.push(p);
        let o = run(&args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {err}");
        assert_eq!(err.matches("not flow files").count(), 1, "{err}");
        let note = err.lines().find(|l| l.contains("not flow files")).unwrap();
        assert!(
            note.starts_with("flowsketch: note: skipped 3 files in folders")
                && note.contains("empty, ")
                && note.contains("notes/README and 1 more"),
            "{note}"
        );
        assert!(!err.contains("truth.json"), "{err}");
        let out = String::from_utf8_lossy(&o.stdout);
        let summary: Value =
            serde_json::from_str(out.lines().find(|l| common::is_summary(l)).unwrap()).unwrap();
        assert_eq!(
            (
                &summary["inputs"],
                &summary["inputs_skipped"],
                &summary["errors"]
            ),
            (&Value::from(2), &Value::from(3), &Value::from(0)),
            "{summary}"
        );
        if extra.is_empty() {
            assert_eq!(findings(&o), base);
        }
    }
    // Quiet: findings and errors only.
    let o = run(&["scan", "-q", p]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(stderr(&o), "");
    // Named explicitly, it is read, and it is not a flow file.
    let o = run(&["scan", "-q", truth.to_str().unwrap()]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(
        err.contains("truth.json: at offset 0: unknown file format"),
        "{err}"
    );
    // A NetFlow v5 header claiming 200 records: a broken flow file, not a foreign one.
    let mut v5 = vec![0u8; 24 + 48];
    v5[1] = 5;
    v5[3] = 200;
    std::fs::write(d.join("export.dat"), &v5).unwrap();
    let o = run(&["scan", "-q", p]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("export.dat: at offset 2"), "{err}");
}

/// Every one-pass finding (`--no-verify`, standard input) carries evidence labelled as the sample it is, with
/// totals and top lists of its sampled flows; verified findings keep evidence counted from every flow.
#[test]
fn one_pass_findings_carry_labelled_samples() {
    let dir = tempfile::tempdir().unwrap();
    demo_capture(dir.path());
    let one = dir.path().join("nfcapd.202611260300");
    let objects = |o: &Output| -> Vec<Value> {
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| !common::is_summary(l))
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let (o, _) = scan_json(dir.path(), &["--no-verify"]);
    let mut one_pass = objects(&o);
    let piped = bin()
        .args(["scan", "--format", "json", "-q", "-"])
        .stdin(std::fs::File::open(&one).unwrap())
        .output()
        .unwrap();
    assert_eq!(piped.status.code(), Some(1), "{}", stderr(&piped));
    one_pass.extend(objects(&piped));
    assert!(one_pass.len() >= 6, "{one_pass:?}");
    for f in &one_pass {
        assert_eq!(f["verified"], false, "{f}");
        let label = f["evidence"].as_str().unwrap_or_else(|| panic!("{f}"));
        let sampled: u64 = if let Some(rest) = label.strip_prefix("sample: every flow counted (") {
            rest.trim_end_matches(')').parse().unwrap()
        } else {
            let rest = label
                .strip_prefix("sample: ")
                .unwrap_or_else(|| panic!("{f}"));
            let (n, from) = rest
                .split_once(" flows from when the key reached ")
                .unwrap();
            let from: u64 = from.parse().unwrap();
            assert!(from <= f["above"].as_u64().unwrap(), "{f}");
            n.parse().unwrap()
        };
        assert!(
            sampled >= 1 && sampled <= f["flows"].as_u64().unwrap(),
            "{f}"
        );
        assert!(f["bytes"].as_u64().unwrap() > 0, "{f}");
        assert!(!f["top_peers"].as_array().unwrap().is_empty(), "{f}");
        assert!(!f["top_ports"].as_array().unwrap().is_empty(), "{f}");
        let protocols: u64 = (f["protocols"].as_array().unwrap().iter())
            .map(|p| p["flows"].as_u64().unwrap())
            .sum();
        assert_eq!(protocols, sampled, "{f}");
    }
    // Verified: evidence of every flow, the same whatever the threads and reading mode.
    let (o1, _) = scan_json(dir.path(), &["-j", "1"]);
    let (o2, _) = scan_json(dir.path(), &["-j", "2", "--no-mmap"]);
    let (v1, v2) = (objects(&o1), objects(&o2));
    assert_eq!(v1, v2);
    for f in &v1 {
        assert_eq!(f["verified"], true, "{f}");
        let label = f["evidence"].as_str().unwrap();
        assert!(label == "complete" || label.contains(" sampled 1/"), "{f}");
        let protocols: u64 = (f["protocols"].as_array().unwrap().iter())
            .map(|p| p["flows"].as_u64().unwrap())
            .sum();
        assert_eq!(protocols, f["flows"].as_u64().unwrap(), "{f}");
    }
    // The text report shows the label under the finding.
    let o = run(&["scan", "-q", "--no-verify", dir.path().to_str().unwrap()]);
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains(" flows from when the key reached "), "{text}");
}

/// One pass with every key in a table: a key's sample holds exactly its flows from the one that brought its count
/// to half the threshold, and names its peers and ports.
#[test]
fn a_one_pass_sample_starts_at_half_the_threshold() {
    use flowsketch::record::FlowRecord;
    use flowsketch::rules::Definitions;
    use flowsketch::scanner::{ScanConfig, Scanner};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nfcapd.202611260300");
    let flows: Vec<FlowRecord> = (0..30u16)
        .map(|i| FlowRecord {
            src: "10.0.0.9".parse().unwrap(),
            dst: if i < 20 { "10.0.0.1" } else { "10.0.0.2" }
                .parse()
                .unwrap(),
            dst_port: 22,
            proto: 6,
            packets: 2,
            bytes: 100,
            first_ms: 1_764_126_000_000 + i as u64,
            last_ms: 1_764_126_000_000 + i as u64,
            ..Default::default()
        })
        .collect();
    write_nfcapd(&path, &flows);
    let rules = Definitions::parse(
        "[[rule]]\nid = \"F\"\nkey = \"src\"\ncount = \"flows\"\nabove = 10\n",
        "t.toml",
        None,
    )
    .unwrap();
    for threads in [1, 2] {
        let config = ScanConfig {
            verify: false,
            admit: 0.0,
            threads,
            ..ScanConfig::default()
        };
        let scan = Scanner::new(&rules, config).run(std::slice::from_ref(&path));
        assert_eq!(scan.findings.len(), 1);
        let e = scan.findings[0].evidence.as_ref().unwrap();
        // The 5th flow brought the count to 5: flows 5 to 30 are in the sample.
        assert_eq!((e.sample_from, e.sampled_flows), (Some(5), 26));
        assert_eq!((e.bytes, e.packets), (2600, 52));
        let peers: Vec<(String, u64)> = e.peers.iter().map(|(a, n)| (a.to_string(), *n)).collect();
        assert_eq!(
            peers,
            [("10.0.0.1".to_string(), 16), ("10.0.0.2".to_string(), 10)]
        );
    }
    // More keys at a threshold than the pool holds: the first keep a sample of every flow, the rest say none.
    let many: Vec<FlowRecord> = (0..(flowsketch::engine::SAMPLE_KEYS as u32 + 1000))
        .map(|i| FlowRecord {
            src: flowsketch::record::Addr::v4(0x0a00_0000 + i),
            dst: "10.0.0.1".parse().unwrap(),
            proto: 17,
            packets: 1,
            bytes: 60,
            first_ms: 1_764_126_000_000 + i as u64,
            ..Default::default()
        })
        .collect();
    write_nfcapd(&path, &many);
    let any = Definitions::parse(
        "[[rule]]\nid = \"A\"\nkey = \"src\"\ncount = \"flows\"\nabove = 0\n",
        "t.toml",
        None,
    )
    .unwrap();
    let config = ScanConfig {
        verify: false,
        threads: 1,
        ..ScanConfig::default()
    };
    let scan = Scanner::new(&any, config).run(std::slice::from_ref(&path));
    assert_eq!(scan.findings.len(), many.len());
    let labels: std::collections::BTreeMap<String, usize> =
        scan.findings.iter().fold(Default::default(), |mut m, f| {
            let e = f.evidence.as_ref().unwrap();
            *m.entry(flowsketch::report::row::evidence_kind(e))
                .or_default() += 1;
            m
        });
    assert_eq!(
        labels.into_iter().collect::<Vec<_>>(),
        [
            (
                "none: more keys came near a threshold than one pass samples".to_string(),
                1000
            ),
            (
                "sample: every flow counted (1)".to_string(),
                flowsketch::engine::SAMPLE_KEYS
            )
        ]
    );
}

/// Progress ends each pass with every input byte and input counted, files skipped included.
#[test]
fn progress_counts_every_byte_and_input() {
    use flowsketch::rules::Definitions;
    use flowsketch::scanner::{Progress, ScanConfig, Scanner};
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir().unwrap();
    demo_capture(dir.path());
    std::fs::write(dir.path().join("truth.json"), "{}\n").unwrap();
    let size: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    let rules = Definitions::builtin();
    for verify in [false, true] {
        let progress = Progress::default();
        let config = ScanConfig {
            verify,
            ..ScanConfig::default()
        };
        let scan = Scanner::new(&rules, config).run_with(&[dir.path().to_path_buf()], &progress);
        let now = progress.now();
        assert_eq!((now.pass, now.passes), if verify { (2, 2) } else { (1, 1) });
        assert_eq!((now.bytes, now.total_bytes), (size, size));
        assert_eq!((now.inputs, now.total_inputs), (3, 3));
        assert_eq!(now.flows, scan.stats.flows);
        assert_eq!(now.fraction(), Some(1.0));
        assert_eq!(
            progress.done.flows.load(Ordering::Relaxed),
            scan.stats.flows
        );
    }
}

/// `scan --help` lists the exit codes and every option's default (`-h` is the cluster's hostfile, as in Timely).
#[test]
fn scan_help_lists_exit_codes_and_defaults() {
    for flag in ["--help"] {
        let o = run(&["scan", flag]);
        let help = String::from_utf8_lossy(&o.stdout);
        assert_eq!(o.status.code(), Some(0));
        for want in [
            "Exit codes:",
            "0  nothing found",
            "1  at least one finding",
            "2  an error",
            "[default: the built-in definitions]",
            "[default: text]",
            "[default: the number of CPUs]",
            "[default: compact]",
            "[default: 0.1, 0 with --exact]",
            "[default: 256M]",
            "[default: 5]",
            "[default: detected per input]",
        ] {
            assert!(help.contains(want), "{flag}: {want} missing:\n{help}");
        }
    }
}
