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

#[test]
fn compare_and_scan_agree_with_the_planted_truth() {
    let dir = tempfile::tempdir().unwrap();
    let truth = generate(dir.path(), 500_000, 50_000);
    let cap = dir.path().join("cap");
    let svg = dir.path().join("fs1.svg");
    let out = Command::new(BIN)
        .args(["compare", "-f", "json", "--plot"])
        .arg(&svg)
        .arg(&cap)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
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
    assert_eq!(ids, ["FS1", "FS2", "FS4", "FS6", "FS7", "FS8"]);
    let events = truth["events"].as_array().unwrap();
    for r in rules {
        let id = r["rule"].as_str().unwrap();
        let above = r["above"].as_u64().unwrap();
        assert_eq!(r["near_from"].as_u64().unwrap(), above.div_ceil(2));
        assert_eq!(
            r["keys_exact"], r["keys_sketch"],
            "{id}: both sides track every key"
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
        // Compact counts exactly up to 383 distinct values, so a threshold below that cannot be crossed by error.
        if above < 383 {
            assert_eq!(r["precision"], 1.0, "{id}: {r}");
            assert_eq!(r["recall"], 1.0, "{id}: {r}");
        }
        // Few near keys are estimated here, so none should be beyond four standard errors of P=12 (1.625 %).
        assert!(
            r["error"]["max"].as_f64().unwrap() < 4.0 * 0.01625,
            "{id}: {r}"
        );
        // Wherever they disagree, the exact count is near the threshold and no planted event is far from it.
        for m in r["mismatches"].as_array().unwrap() {
            let exact = m["exact"].as_f64().unwrap_or(0.0);
            assert!(
                (exact - above as f64).abs() / (above as f64) < 0.1,
                "{id}: disagreement far from the threshold: {m}"
            );
            let mut key = key_of(m);
            key.0 = id.to_string();
            for e in events.iter().filter(|e| distance(e).abs() >= 0.1) {
                assert_ne!(
                    key_of(e),
                    key,
                    "planted event far from its threshold missed: {e}"
                );
            }
        }
    }
    // The plotted rule (FS1) keeps every key: hosts with up to 128 distinct peers are all counted exactly.
    let fs1 = &rules[0];
    assert_eq!(fs1["smallest_inexact_over"], "all keys");
    assert!(
        fs1["smallest_inexact"].as_u64().is_none_or(|v| v > 128),
        "{fs1}"
    );
    assert_eq!(rules[1]["smallest_inexact_over"], "near keys");
    // Planted events are among the exact findings exactly when they are above the threshold: the reference is right.
    let fs8 = rules.iter().find(|r| r["rule"] == "FS8").unwrap();
    let planted_over = events
        .iter()
        .filter(|e| e["rule"] == "FS8" && distance(e) > 0.0)
        .count() as u64;
    assert!(fs8["exact_findings"].as_u64().unwrap() >= planted_over);
    let plot = std::fs::read_to_string(&svg).unwrap();
    assert!(plot.starts_with("<svg") && plot.contains("threshold 100") && plot.contains("<circle"));

    // The default counter, as a user runs it: every planted event >= 10 % above its threshold is reported,
    // none >= 10 % below.
    let out = Command::new(BIN)
        .args(["scan", "-q", "-f", "json"])
        .arg(&cap)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: Vec<_> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| key_of(&serde_json::from_str::<Value>(l).unwrap()))
        .collect();
    let (mut above, mut below) = (0, 0);
    for e in events {
        let d = distance(e);
        if d >= 0.1 {
            above += 1;
            assert!(found.contains(&key_of(e)), "missed: {e}");
        } else if d <= -0.1 {
            below += 1;
            assert!(!found.contains(&key_of(e)), "reported: {e}");
        }
    }
    assert!(above >= 15 && below >= 15, "{above} above, {below} below");
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
