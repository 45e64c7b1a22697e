//! `flowsketch compare` end to end on a generated capture, checked against the generator's planted truth.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_flowsketch");

/// Generate a capture into `dir/cap`, with truth.json moved beside it (it is not a flow file).
fn generate(dir: &Path, flows: u64, sources: u64) -> Value {
    let cap = dir.join("cap");
    let st = Command::new(BIN)
        .args([
            "gen",
            "--flows",
            &flows.to_string(),
            "--sources",
            &sources.to_string(),
        ])
        .arg("-o")
        .arg(&cap)
        .status()
        .unwrap();
    assert!(st.success());
    let truth = std::fs::read_to_string(cap.join("truth.json")).unwrap();
    std::fs::remove_file(cap.join("truth.json")).unwrap();
    serde_json::from_str(&truth).unwrap()
}

/// How far an event's true count is from its threshold, relative to the threshold.
fn distance(e: &Value) -> f64 {
    let t = e["threshold"].as_f64().unwrap();
    let c = e["true_count"].as_f64().unwrap();
    if t == 0.0 {
        f64::INFINITY
    } else {
        (c - t) / t
    }
}

/// `(rule, host, peer, port)`, the way both the truth and the reports name a key.
fn key_of(v: &Value) -> (String, String, Option<String>, Option<u64>) {
    (
        v["rule"].as_str().unwrap_or_default().to_string(),
        v["host"].as_str().unwrap().to_string(),
        v["peer"].as_str().map(str::to_string),
        v["port"].as_u64(),
    )
}

/// Run `compare -f json` with `extra` flags (and a plot of FS1 into `svg`) on `cap`.
fn compare(cap: &Path, svg: &Path, extra: &[&str]) -> Value {
    let out = Command::new(BIN)
        .args(["compare", "-f", "json", "--plot"])
        .arg(svg)
        .args(extra)
        .arg(cap)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// What holds in every configuration: the report's shape, and its counts adding up.
fn check_shape(report: &Value, truth: &Value) {
    assert_eq!(report["counter"], "compact");
    assert_eq!(report["reference"], "exact");
    assert_eq!(report["near_fraction"], 0.5);
    assert_eq!(report["flows"], truth["flows"]);
    for side in ["sketch", "exact"] {
        let s = &report[side];
        for field in [
            "secs",
            "flows_per_sec",
            "peak_rss_bytes",
            "keys",
            "findings",
        ] {
            assert!(
                s[field].as_f64().is_some_and(|v| v > 0.0),
                "{side}.{field}: {s}"
            );
        }
    }
    assert_eq!(report["sketch"]["counter"], "compact");
    assert_eq!(report["exact"]["counter"], "exact");
    let rules = report["rules"].as_array().unwrap();
    let ids: Vec<&str> = rules.iter().map(|r| r["rule"].as_str().unwrap()).collect();
    assert_eq!(ids, ["FS1", "FS2", "FS4", "FS6", "FS7", "FS8", "FS9"]);
    for r in rules {
        let id = r["rule"].as_str().unwrap();
        let above = r["above"].as_u64().unwrap();
        assert_eq!(r["near_from"].as_u64().unwrap(), above.div_ceil(2));
        assert!(
            r["keys_sketch"].as_u64() <= r["keys_exact"].as_u64(),
            "{id}"
        );
        let tp = r["true_positives"].as_u64().unwrap();
        assert_eq!(
            tp + r["false_negatives"].as_u64().unwrap(),
            r["exact_findings"].as_u64().unwrap()
        );
        assert_eq!(
            tp + r["false_positives"].as_u64().unwrap(),
            r["sketch_findings"].as_u64().unwrap()
        );
        for field in ["keys", "mean", "bias", "median", "p99", "max"] {
            assert!(r["error"][field].is_number(), "{id}.error.{field}");
        }
    }
}

/// The planted events `found` (keys as [`key_of`] gives them): every one at 1.1 times its threshold or more, and
/// none below it.
fn check_planted(
    events: &[Value],
    found: &[(String, String, Option<String>, Option<u64>)],
    what: &str,
) {
    let (mut above, mut below) = (0, 0);
    for e in events {
        let d = distance(e);
        if d >= 0.1 {
            above += 1;
            assert!(found.contains(&key_of(e)), "{what}: missed {e}");
        } else if d <= 0.0 {
            below += 1;
            assert!(!found.contains(&key_of(e)), "{what}: reported {e}");
        }
    }
    assert!(above >= 15 && below >= 15, "{above} above, {below} below");
}

/// A scan's findings as keys.
fn scan_found(cap: &Path, extra: &[&str]) -> Vec<(String, String, Option<String>, Option<u64>)> {
    let out = Command::new(BIN)
        .args(["scan", "-q", "-f", "json"])
        .args(extra)
        .arg(cap)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("\"type\":\"summary\""))
        .map(|l| key_of(&serde_json::from_str::<Value>(l).unwrap()))
        .collect()
}

#[test]
fn compare_and_scan_agree_with_the_planted_truth() {
    let dir = tempfile::tempdir().unwrap();
    let truth = generate(dir.path(), 500_000, 50_000);
    let cap = dir.path().join("cap");
    let svg = dir.path().join("fs1.svg");
    let events = truth["events"].as_array().unwrap();

    // As a user runs it (admission, then the verify pass): the findings are exactly exact counting's.
    let report = compare(&cap, &svg, &[]);
    check_shape(&report, &truth);
    for r in report["rules"].as_array().unwrap() {
        let id = r["rule"].as_str().unwrap();
        assert_eq!(r["sketch_findings"], r["exact_findings"], "{id}: {r}");
        assert_eq!(r["false_positives"], 0, "{id}: {r}");
        assert_eq!(r["false_negatives"], 0, "{id}: {r}");
        // Admission keeps most keys out of the tables.
        if r["above"].as_u64().unwrap() >= 25 {
            assert!(
                r["keys_sketch"].as_u64().unwrap() * 2 < r["keys_exact"].as_u64().unwrap(),
                "{id}: {r}"
            );
        }
        // First-pass counts of near keys lack at most A - 1 <= 0.1 T of at least 0.5 T, plus the sketch's error.
        assert!(
            r["error"]["max"].as_f64().unwrap() < 0.2 + 4.0 * 0.01625,
            "{id}: {r}"
        );
    }
    // Planted events are among the exact findings exactly when they are above the threshold: the reference is right.
    let fs8 = report["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule"] == "FS8")
        .unwrap();
    let planted_over = events
        .iter()
        .filter(|e| e["rule"] == "FS8" && distance(e) > 0.0)
        .count() as u64;
    assert!(fs8["exact_findings"].as_u64().unwrap() >= planted_over);
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg") && plot.contains("threshold 100") && plot.contains("<circle"));
    check_planted(events, &scan_found(&cap, &[]), "scan");

    // One pass with admission: the admission bound. Wherever the two disagree, the exact count is in [T, 1.1 T).
    // FS9 also asks for flows (missed when in [N, 1.1 N)) and reports a burst of hopping windows at its best
    // window, which one pass's short counts can move: its floods are checked by host below instead.
    let report = compare(&cap, &svg, &["--no-verify"]);
    check_shape(&report, &truth);
    for r in report["rules"].as_array().unwrap() {
        let id = r["rule"].as_str().unwrap();
        let above = r["above"].as_u64().unwrap();
        if id == "FS9" {
            continue;
        }
        // Compact counts exactly up to 383 distinct values, so below that nothing is reported by error.
        if above < 383 {
            assert_eq!(r["false_positives"], 0, "{id}: {r}");
        }
        for m in r["mismatches"].as_array().unwrap() {
            let exact = m["exact"].as_u64().unwrap();
            assert!(
                exact > above && (exact as f64) < above as f64 * 1.1 + 1.0,
                "{id}: a disagreement outside [T, 1.1 T): {m}"
            );
        }
    }
    let one_pass = scan_found(&cap, &["--no-verify"]);
    check_planted(events, &one_pass, "scan --no-verify");
    // The largest planted SYN flood (50,000 spoofed sources in the hour, over 800 a minute) is a SYN flood on its
    // victim either way.
    let flood = ("FS9".to_string(), "46.0.0.4".to_string(), None, None);
    assert!(one_pass.contains(&flood), "{one_pass:?}");
    assert!(scan_found(&cap, &[]).contains(&flood));

    // Every key in a table, one pass: the counter alone. The plotted rule (FS1) keeps every key: hosts with up
    // to 128 distinct peers are all counted exactly.
    let report = compare(&cap, &svg, &["--admit", "0", "--no-verify"]);
    check_shape(&report, &truth);
    let rules = report["rules"].as_array().unwrap();
    for r in rules {
        let id = r["rule"].as_str().unwrap();
        assert_eq!(
            r["keys_exact"], r["keys_sketch"],
            "{id}: both sides track every key"
        );
        if r["above"].as_u64().unwrap() < 383 {
            assert_eq!(r["precision"], 1.0, "{id}: {r}");
            assert_eq!(r["recall"], 1.0, "{id}: {r}");
        }
        // Few near keys are estimated here, so none should be beyond four standard errors of P=12 (1.625 %).
        assert!(
            r["error"]["max"].as_f64().unwrap() < 4.0 * 0.01625,
            "{id}: {r}"
        );
    }
    let fs1 = &rules[0];
    assert_eq!(fs1["smallest_inexact_over"], "all keys");
    assert!(
        fs1["smallest_inexact"].as_u64().is_none_or(|v| v > 128),
        "{fs1}"
    );
    assert_eq!(rules[1]["smallest_inexact_over"], "near keys");
}

#[test]
fn compare_rejects_an_unknown_plot_rule_and_missing_inputs() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["compare", "--plot"])
        .arg(dir.path().join("x.svg"))
        .args(["--plot-rule", "FS99"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("FS99"));
    let out = Command::new(BIN)
        .args(["compare", "-f", "json"])
        .arg(dir.path().join("missing"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["exact"]["errors"], 1);
}
