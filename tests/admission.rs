//! Admission and the verify pass (docs/ACCURACY.md, "Admission"): as properties over random streams, random
//! thresholds and random admission fractions, in sketches small enough that keys collide all the time.
//!
//! - One pass: no key whose true count is `(1 + a) T` or more is missed, none at `T` or below is reported, and a
//!   reported count lacks at most `A - 1` (the admission threshold in force, less one) of the truth. The same holds
//!   per window.
//! - With the verify pass: findings equal exact counting's, field for field.
//! - A budget too small for the admitted keys raises `a`, says so, and keeps the verified findings exact.

mod common;

use flowsketch::engine::{self, Counted, Input, KeyParts, ScanOptions};
use flowsketch::formats::memory::RecordsDecoder;
use flowsketch::formats::nfcapd::writer::{Compression, NfcapdWriter};
use flowsketch::gen::rng::Rng;
use flowsketch::record::{Addr, FlowRecord};
use flowsketch::rules::{CountSpec, Definitions, DistinctField};
use flowsketch::scanner::{ScanConfig, Scanner};
use flowsketch::sketch::{Compact, CounterKind};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// A stream of `n` flows from a few thousand sources with heavy-tailed fan-out, over ten minutes.
fn stream(rng: &mut Rng, n: usize) -> Vec<FlowRecord> {
    let sources = 1_000 + rng.below(4_000);
    (0..n)
        .map(|_| {
            let s = rng.zipf(sources, 1.1) as u32;
            let d = rng.zipf(3_000, 0.7) as u32;
            let first = 1_764_126_000_000 + rng.below(600_000);
            FlowRecord {
                src: if s.is_multiple_of(11) {
                    Addr::v6(0x2001_0db8 << 96 | s as u128)
                } else {
                    Addr::v4(0x0a00_0000 | s)
                },
                dst: Addr::v4(0xc000_0000 | d),
                dst_port: rng.zipf(300, 1.0) as u16,
                proto: 6,
                packets: 1 + rng.below(5),
                bytes: 40 + rng.below(1_500),
                first_ms: first,
                last_ms: first + rng.below(2_000),
                ..Default::default()
            }
        })
        .collect()
}

/// The true count of every key of a rule (`src` keys, with the window index when `window_ms` is not 0).
fn truth(recs: &[FlowRecord], count: CountSpec, window_ms: u64) -> HashMap<(Addr, u64), u64> {
    let mut sums: HashMap<(Addr, u64), u64> = HashMap::new();
    let mut sets: HashMap<(Addr, u64), HashSet<Addr>> = HashMap::new();
    for r in recs {
        let key = (r.src, r.first_ms.checked_div(window_ms).unwrap_or(0));
        match count {
            CountSpec::Distinct(_) => {
                sets.entry(key).or_default().insert(r.dst);
            }
            CountSpec::Bytes => *sums.entry(key).or_default() += r.bytes,
            _ => *sums.entry(key).or_default() += 1,
        }
    }
    sums.extend(sets.into_iter().map(|(k, s)| (k, s.len() as u64)));
    sums
}

#[test]
fn one_pass_keeps_the_admission_bound() {
    let mut rng = Rng::new(2026);
    let mut checked = 0;
    let mut raised = 0;
    let mut evicted = 0;
    for case in 0..24 {
        let (count, count_text, above) = match case % 3 {
            0 => (
                CountSpec::Distinct(DistinctField::Dst.into()),
                "distinct dst",
                5 + rng.below(150),
            ),
            1 => (CountSpec::Flows, "flows", 5 + rng.below(300)),
            _ => (CountSpec::Bytes, "bytes", 10_000 + rng.below(400_000)),
        };
        let window = if case % 4 == 3 { "window = \"2m\"" } else { "" };
        let window_ms = if window.is_empty() { 0 } else { 120_000 };
        let a = 0.05 + rng.below(96) as f64 / 100.0;
        let defs = Definitions::parse(
            &format!(
                "[[rule]]\nid = \"R\"\nkey = \"src\"\ncount = \"{count_text}\"\nabove = {above}\n{window}\n"
            ),
            "test",
            None,
        )
        .unwrap();
        let n = 30_000 + rng.below(60_000) as usize;
        let recs = stream(&mut rng, n);
        let threads = 1 + case % 3;
        // The smallest sketches there are: every line is shared by dozens of keys.
        let options = ScanOptions {
            threads,
            queue: 4,
            admit: a,
            // Every other case, a budget so small that admission is tightened as the tables grow.
            memory: if case % 2 == 0 { 1 << 20 } else { 320 << 10 },
        };
        let inputs = vec![Ok::<_, engine::InputError>(Input {
            name: "stream".into(),
            decoder: Box::new(RecordsDecoder::new(recs.clone(), 997)),
            bytes: 0,
        })];
        let mut result =
            engine::scan::<Compact, _>(&defs.rules, inputs, &options, &engine::Done::default());
        let at = result.admit_at(0);
        raised += (result.counts(0).raises > 0) as usize;
        evicted += result.counts(0).evicted;
        assert!(
            at >= 2,
            "case {case}: admission is on (a = {a}, T = {above})"
        );
        let slack = at - 1;
        // Each reported count, whether it is exact, and the most its table can have missed (its admission
        // epoch's A - 1, never more than the last A's).
        let reported: HashMap<(Addr, u64), (u64, bool, u64)> = result
            .over(0, above)
            .iter()
            .map(|c: &Counted| {
                assert!(c.missed_at_most <= slack, "case {case}: {c:?}");
                let v = (c.value.value, c.value.exact, c.missed_at_most);
                ((c.key.addr, c.key.window), v)
            })
            .collect();
        let truth = truth(&recs, count, window_ms);
        let bound = above as f64 * (1.0 + at as f64 / above as f64);
        for (key, &(value, exact, missed)) in &reported {
            let t = truth[key];
            if exact {
                assert!(
                    t > above,
                    "case {case}: {key:?} reported with true count {t} <= T = {above}"
                );
                assert!(
                    value <= t && value + missed >= t,
                    "case {case}: {key:?} counted {value}, truth {t}, missed at most {missed}, A = {at}"
                );
            } else {
                // Past the exact tier: the sketch's error (1.6 %, five sigma here) on what admission kept.
                let sigma5 = 5.0 * 0.01625 * t as f64;
                assert!(
                    (value as f64) <= t as f64 + sigma5
                        && (value + missed) as f64 >= t as f64 - sigma5
                );
            }
        }
        for (key, &t) in &truth {
            if t as f64 >= bound {
                assert!(
                    reported.contains_key(key),
                    "case {case}: {key:?} missed at {t} >= (1+a) T = {bound}"
                );
                checked += 1;
            }
        }
    }
    assert!(
        checked > 200,
        "the cases must have keys over (1+a) T: {checked}"
    );
    assert!(
        raised >= 4,
        "the budget must raise A in some cases: {raised}"
    );
    // Tightening takes out the keys whose bound is below the new A; the bound above holds for them too.
    assert!(evicted > 0, "tightening must take keys out in some cases");
}

/// Write `recs` as an nfcapd file.
fn write(path: &Path, recs: &[FlowRecord]) {
    let mut w = NfcapdWriter::new(
        std::fs::File::create(path).unwrap(),
        Compression::Lz4,
        "test",
    )
    .unwrap();
    for r in recs {
        w.write(r).unwrap();
    }
    w.finish().unwrap();
}

/// What a finding says, but for the fields that name how it was counted.
fn facts(scan: &flowsketch::scanner::Scan) -> Vec<(String, KeyParts, u64, bool, u64, u64, u64)> {
    scan.findings
        .iter()
        .map(|f| {
            (
                f.rule.clone(),
                f.key,
                f.count,
                f.exact,
                f.flows,
                f.first_ms,
                f.last_ms,
            )
        })
        .collect()
}

const RULES: &str = r#"
[[rule]]
id = "FANOUT"
key = "src"
count = "distinct dst"
above = 60
[[rule]]
id = "PEERS"
key = "host"
count = "distinct peer"
above = 90
[[rule]]
id = "PORTS"
key = "src,dst"
count = "distinct dport"
above = 12
[[rule]]
id = "BYTES"
key = "dst,dport"
count = "bytes"
above = 100000
[[rule]]
id = "BURST"
key = "src"
count = "flows"
above = 40
window = "1m"
[[rule]]
id = "ANY"
key = "dst"
where = "dst port 7"
count = "flows"
above = 0
"#;

#[test]
fn verify_pass_equals_exact_counting() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(7);
    let files: Vec<PathBuf> = (0..3)
        .map(|i| {
            let p = dir.path().join(format!("nfcapd.20261126030{i}"));
            write(&p, &stream(&mut rng, 40_000));
            p
        })
        .collect();
    let defs = Definitions::parse(RULES, "test", None).unwrap();
    let exact = Scanner::new(
        &defs,
        ScanConfig {
            counter: CounterKind::Exact,
            admit: 0.0,
            verify: false,
            threads: 2,
            ..ScanConfig::default()
        },
    )
    .run(&files);
    assert!(exact.errors.is_empty());
    let want = facts(&exact);
    for rule in ["FANOUT", "PEERS", "PORTS", "BYTES", "BURST", "ANY"] {
        assert!(
            want.iter().any(|f| f.0 == rule),
            "the data must give {rule} findings"
        );
    }
    for (threads, admit, memory, counter) in [
        (1, 0.1, 256 << 20, CounterKind::Compact),
        (2, 0.1, 1 << 20, CounterKind::Compact),
        (3, 0.5, 1 << 20, CounterKind::Hllpp),
        (2, 1.0, 2 << 20, CounterKind::Compact),
        (2, 0.0, 256 << 20, CounterKind::Compact),
    ] {
        let scan = Scanner::new(
            &defs,
            ScanConfig {
                counter,
                admit,
                memory,
                threads,
                ..ScanConfig::default()
            },
        )
        .run(&files);
        assert!(scan.guarantee.verified() && scan.errors.is_empty());
        let got = facts(&scan);
        let missing: Vec<_> = want.iter().filter(|f| !got.contains(f)).collect();
        let extra: Vec<_> = got.iter().filter(|f| !want.contains(f)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "threads {threads}, a {admit}, memory {memory}, {counter}: missing {missing:?}, extra {extra:?}"
        );
        assert_eq!(got, want, "the same findings in the same order");
        assert!(scan
            .findings
            .iter()
            .all(|f| f.verified && f.missed_at_most == 0));
    }
}

/// Rules of every new form: prefix keys and distinct networks, thresholds per list (some lower than `above`),
/// hopping windows, and a second condition on flows.
const FORMS: &str = r#"
[lists]
low = ["10.0.0.0/27", "2001:db8::/120", "192.0.0.0/30"]
high = ["10.0.1.0/24"]
[[rule]]
id = "NET"
key = "src/28/124"
count = "distinct dst"
above = 60
above_for = { "@low" = 30, "@high" = 200 }
[[rule]]
id = "NETPORT"
key = "src/30,dport"
count = "distinct dst/26"
above = 12
[[rule]]
id = "HOP"
key = "src"
count = "flows"
above = 40
window = "1m"
step = "15s"
[[rule]]
id = "HOPPAIR"
key = "src,dst/24"
count = "distinct dport"
above = 8
flows_above = 12
window = "2m"
step = "30s"
[[rule]]
id = "BOTH"
key = "dst"
count = "distinct src"
above = 25
flows_above = 60
above_for = { "@low" = 10 }
"#;

/// A finding of the new forms: rule, key, window, count, flows, threshold, times, windows merged.
type FormFact = (String, String, u64, u64, u64, u64, u64, u64);

/// What a finding of the new forms says, but for the fields that name how it was counted.
fn form_facts(scan: &flowsketch::scanner::Scan) -> Vec<FormFact> {
    scan.findings
        .iter()
        .map(|f| {
            (
                f.rule.clone(),
                f.key_text(),
                f.key.window,
                f.count,
                f.flows,
                f.above,
                f.first_ms ^ f.last_ms.rotate_left(17),
                f.hops.map_or(1, |h| h.windows),
            )
        })
        .collect()
}

/// Verified findings of every new form equal exact counting's, in every configuration (thread counts, admission
/// fractions, budgets tight enough to raise `a`, counters): admission uses the smallest threshold of a rule and
/// each window of a hopping rule is its own key.
#[test]
fn verify_pass_equals_exact_counting_for_the_new_forms() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new(13);
    let files: Vec<PathBuf> = (0..2)
        .map(|i| {
            let p = dir.path().join(format!("nfcapd.20261126031{i}"));
            write(&p, &stream(&mut rng, 50_000));
            p
        })
        .collect();
    let defs = Definitions::parse(FORMS, "test", None).unwrap();
    let exact = Scanner::new(
        &defs,
        ScanConfig {
            counter: CounterKind::Exact,
            admit: 0.0,
            verify: false,
            threads: 2,
            ..ScanConfig::default()
        },
    )
    .run(&files);
    assert!(exact.errors.is_empty());
    let want = form_facts(&exact);
    for rule in ["NET", "NETPORT", "HOP", "HOPPAIR", "BOTH"] {
        assert!(
            want.iter().any(|f| f.0 == rule),
            "the data must give {rule} findings"
        );
    }
    // Keys of the lists, with their own thresholds, and bursts over several windows are among them.
    assert!(want.iter().any(|f| f.0 == "NET" && f.5 == 30));
    assert!(want.iter().any(|f| f.0 == "NET" && f.5 == 200));
    assert!(want.iter().any(|f| f.0 == "BOTH" && f.5 == 10));
    assert!(want.iter().any(|f| f.0 == "HOP" && f.7 > 1));
    for (threads, admit, memory, counter) in [
        (1, 0.1, 256 << 20, CounterKind::Compact),
        (2, 0.1, 1 << 20, CounterKind::Compact),
        (3, 0.5, 1 << 20, CounterKind::Hllpp),
        (2, 1.0, 2 << 20, CounterKind::Compact),
    ] {
        let scan = Scanner::new(
            &defs,
            ScanConfig {
                counter,
                admit,
                memory,
                threads,
                ..ScanConfig::default()
            },
        )
        .run(&files);
        assert!(scan.guarantee.verified() && scan.errors.is_empty());
        assert_eq!(
            form_facts(&scan),
            want,
            "threads {threads}, a {admit}, memory {memory}, {counter}"
        );
    }
}

#[test]
fn a_budget_too_small_raises_admission_says_so_and_stays_exact() {
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("cap");
    let st = common::bin()
        .args([
            "gen",
            "--flows",
            "300000",
            "--sources",
            "60000",
            "--rotate",
            "0",
            "-o",
        ])
        .arg(&cap)
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::remove_file(cap.join("truth.json")).unwrap();
    let scan = |extra: &[&str]| {
        let o = common::bin()
            .args(["scan", "-f", "json", "-j", "2"])
            .args(extra)
            .arg(&cap)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", common::stderr(&o));
        let text = String::from_utf8(o.stdout.clone()).unwrap();
        let (summary, findings): (Vec<&str>, Vec<&str>) =
            text.lines().partition(|l| common::is_summary(l));
        let summary: serde_json::Value = serde_json::from_str(summary[0]).unwrap();
        let findings: Vec<String> = findings
            .iter()
            .map(|l| {
                let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
                v.as_object_mut().unwrap().retain(|k, _| k != "counter");
                v.to_string()
            })
            .collect();
        (common::stderr(&o), summary, findings)
    };
    let (_, exact_summary, exact) = scan(&["--exact"]);
    assert_eq!(exact_summary["guarantee"], "verified");
    let (err, summary, tight) = scan(&["--memory", "1M"]);
    assert!(err.contains("admission raised to a = "), "{err}");
    assert_eq!(summary["guarantee"], "verified", "{summary}");
    let raised: Vec<&serde_json::Value> = summary["rules"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["admit_raised"].as_u64() > Some(0))
        .collect();
    assert!(!raised.is_empty(), "{summary}");
    for r in raised {
        assert!(r["admit_fraction"].as_f64().unwrap() > 0.1, "{r}");
    }
    assert_eq!(
        tight, exact,
        "a tight budget changes what one pass keeps, never the verified findings"
    );
    // One pass under the same budget states the weaker bound it now gives.
    let (err, summary, _) = scan(&["--memory", "1M", "--no-verify"]);
    assert_eq!(summary["guarantee"], "one-pass");
    assert!(
        err.contains("one pass now guarantees only keys at"),
        "{err}"
    );
}

#[test]
fn stdin_is_one_pass_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("nfcapd.202611260300");
    let mut rng = Rng::new(3);
    write(&p, &stream(&mut rng, 20_000));
    let o = common::bin()
        .args(["scan", "-f", "json", "-r"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/low-thresholds.toml"))
        .arg("-")
        .stdin(std::fs::File::open(&p).unwrap())
        .output()
        .unwrap();
    let out = String::from_utf8(o.stdout.clone()).unwrap();
    let summary = out
        .lines()
        .find(|l| common::is_summary(l))
        .expect("a summary record");
    let summary: serde_json::Value = serde_json::from_str(summary).unwrap();
    assert_eq!(summary["guarantee"], "one-pass", "{summary}");
    assert!(common::stderr(&o).contains("standard input cannot be read twice"));
    assert!(out
        .lines()
        .filter(|l| !common::is_summary(l))
        .all(|l| l.contains("\"verified\":false")));
    // The same flows from a file are verified.
    let o = common::bin()
        .args(["scan", "-f", "json", "-r"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/low-thresholds.toml"))
        .arg(&p)
        .output()
        .unwrap();
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(out.contains("\"guarantee\":\"verified\""), "{out}");
}

/// Findings of `scan -f json` with `extra` flags, without the fields that name how they were counted.
fn findings_json(path: &Path, rules: &Path, extra: &[&str]) -> (Option<i32>, Vec<String>) {
    let o = common::bin()
        .args(["scan", "-q", "-f", "json", "-r"])
        .arg(rules)
        .args(extra)
        .arg(path)
        .output()
        .unwrap();
    let found = String::from_utf8(o.stdout)
        .unwrap()
        .lines()
        .filter(|l| !common::is_summary(l))
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().retain(|k, _| k != "counter");
            v.to_string()
        })
        .collect();
    (o.status.code(), found)
}

/// Every real capture in ../shared/data, folder by folder (NetFlow templates before their data, broken files
/// among good ones): the verified findings are exact counting's, and so are their exit codes.
#[test]
fn verified_findings_equal_exact_counting_on_real_captures() {
    let Some(data) =
        common::require_data("verified_findings_equal_exact_counting_on_real_captures")
    else {
        return;
    };
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/low-thresholds.toml");
    let mut total = 0;
    for folder in ["nfcapd", "scans", "flow-tools", "netflow-packets", "pcap"] {
        let path = data.join(folder);
        let (code, exact) = findings_json(&path, &rules, &["--exact"]);
        for extra in [
            &[][..],
            &["-j", "1", "--memory", "1M"][..],
            &["--no-mmap"][..],
        ] {
            let (c, verified) = findings_json(&path, &rules, extra);
            assert_eq!(c, code, "{folder} {extra:?}");
            assert_eq!(verified, exact, "{folder} {extra:?}");
        }
        total += exact.len();
    }
    assert!(total > 50, "the real captures must give findings: {total}");
}
