//! Saved states and `flowsketch merge` (issue 16, parts 3 and 4): states of the parts of a capture merged give
//! the findings of one scan of the whole; merges are order-free; broken or foreign states are refused with their
//! file name; exported DataSketches sketches read back within their error.

mod common;
use common::{bin, is_summary, stderr, write_nfcapd};

use flowsketch::gen::rng::Rng;
use flowsketch::record::{Addr, FlowRecord};
use flowsketch::rules::Definitions;
use flowsketch::scanner::{Progress, ScanConfig, Scanner};
use flowsketch::sketch::{Compact, CounterKind, Exact};
use flowsketch::state::{self, SavedCounter, State};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

/// `flowsketch gen` into `dir/cap` (truth moved aside): one file per `rotate` over `span`.
fn generate(dir: &Path, flows: u64, span: &str, rotate: &str) -> Vec<PathBuf> {
    let cap = dir.join("cap");
    let o = bin()
        .args(["gen", "--flows", &flows.to_string(), "--sources", "20000"])
        .args(["--span", span, "--rotate", rotate, "-o"])
        .arg(&cap)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::rename(cap.join("truth.json"), dir.join("truth.json")).unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&cap)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn run(args: &[&str], paths: &[PathBuf]) -> Output {
    bin().args(args).args(paths).output().unwrap()
}

/// The finding lines of JSON output, and the summary record.
fn split(o: &Output) -> (Vec<String>, Value) {
    let text = String::from_utf8(o.stdout.clone()).unwrap();
    let mut findings = Vec::new();
    let mut summary = Value::Null;
    for line in text.lines() {
        if is_summary(line) {
            summary = serde_json::from_str(line).unwrap();
        } else {
            findings.push(line.to_string());
        }
    }
    (findings, summary)
}

/// Save one state per file with `flags`, returning the state directories.
fn save_states(dir: &Path, files: &[PathBuf], flags: &[&str], tag: &str) -> Vec<PathBuf> {
    files
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let st = dir.join(format!("{tag}{i:02}"));
            let mut args = vec!["scan", "-q", "-f", "json", "--save-state"];
            let s = st.to_str().unwrap().to_string();
            args.push(&s);
            args.extend_from_slice(flags);
            let o = run(&args, std::slice::from_ref(f));
            assert!(o.status.code() != Some(2), "{}", stderr(&o));
            assert!(st.join(state::FILE_NAME).is_file());
            st
        })
        .collect()
}

/// Four quarters' states merged give byte-identical finding lines to one scan of the whole, with the defaults
/// (verified findings) and with `--exact`, in any order of the states.
#[test]
fn four_quarters_merged_equal_one_scan_of_the_whole() {
    let dir = tempfile::tempdir().unwrap();
    let files = generate(dir.path(), 150_000, "1h", "15m");
    assert_eq!(files.len(), 4);
    for flags in [&[][..], &["--exact"][..]] {
        let mut scan_args = vec!["scan", "-f", "json"];
        scan_args.extend_from_slice(flags);
        let whole = run(&scan_args, &files);
        assert_eq!(whole.status.code(), Some(1), "{}", stderr(&whole));
        let (want, _) = split(&whole);
        assert!(want.len() > 20, "{} findings", want.len());
        let states = save_states(
            dir.path(),
            &files,
            flags,
            if flags.is_empty() { "q" } else { "x" },
        );
        let merged = run(&["merge", "-f", "json"], &states);
        assert_eq!(merged.status.code(), Some(1), "{}", stderr(&merged));
        let (got, summary) = split(&merged);
        assert_eq!(got, want, "flags {flags:?}");
        assert_eq!(summary["guarantee"], "verified", "{summary}");
        assert_eq!(summary["states_merged"], 4);
        assert_eq!(summary["flows"], split(&whole).1["flows"]);
        let mut reversed = states.clone();
        reversed.reverse();
        let (again, _) = split(&run(&["merge", "-f", "json"], &reversed));
        assert_eq!(again, want, "reversed order, flags {flags:?}");
    }
}

/// Twenty-four hourly states: with `--admit` at most 1/24 the merge is the day's scan, verified; with the default
/// (n*a = 2.4) it says it may miss keys no hour admitted, and reports only real findings.
#[test]
fn twenty_four_hourly_states_merge_into_the_days_scan() {
    let dir = tempfile::tempdir().unwrap();
    let files = generate(dir.path(), 100_000, "24h", "1h");
    assert_eq!(files.len(), 24);
    let whole = run(&["scan", "-f", "json", "--memory", "64M"], &files);
    let (want, _) = split(&whole);
    let states = save_states(
        dir.path(),
        &files,
        &["--admit", "0.04", "--memory", "64M"],
        "h",
    );
    let merged = run(&["merge", "-f", "json"], &states);
    let (got, summary) = split(&merged);
    assert_eq!(got, want, "{}", stderr(&merged));
    assert_eq!(summary["guarantee"], "verified");
    assert_eq!(summary["states_merged"], 24);

    let loose = save_states(dir.path(), &files, &["--memory", "64M"], "d");
    let merged = run(&["merge", "-f", "json"], &loose);
    let (got, summary) = split(&merged);
    assert_eq!(summary["guarantee"], "verified-admitted", "{summary}");
    let err = stderr(&merged);
    assert!(
        err.contains("n*a = 2.40") && err.contains("--admit at most 1/n"),
        "{err}"
    );
    for f in &got {
        assert!(
            want.contains(f),
            "a merged finding the day's scan does not have: {f}"
        );
    }
}

/// States whose inputs are gone report one pass, under the summed bound, and say why.
#[test]
fn states_without_their_inputs_report_one_pass_with_the_summed_bound() {
    let dir = tempfile::tempdir().unwrap();
    let files = generate(dir.path(), 100_000, "1h", "15m");
    let exact = run(&["scan", "-f", "json", "--exact"], &files);
    let (truth, _) = split(&exact);
    let states = save_states(dir.path(), &files, &[], "q");
    std::fs::remove_file(&files[2]).unwrap();
    let merged = run(&["merge", "-f", "json"], &states);
    let (got, summary) = split(&merged);
    assert_eq!(summary["guarantee"], "one-pass");
    let err = stderr(&merged);
    assert!(
        err.contains("is gone") && err.contains("not verified"),
        "{err}"
    );
    // Every finding is over its threshold by exact counting, and every exact finding far enough above its
    // threshold (1 + n*a, with a = 0.1 and n = 4) is found.
    let key = |v: &Value| {
        (
            v["rule"].clone(),
            v["host"].clone(),
            v["peer"].clone(),
            v["port"].clone(),
            v["window_start"].clone(),
        )
    };
    let truth: Vec<Value> = truth
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<Value> = got
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    for g in &got {
        assert_eq!(g["verified"], false);
        assert!(g["missed_at_most"].as_u64().unwrap() > 0 || g["above"] == 0);
        let t = truth.iter().find(|t| key(t) == key(g));
        let t = t.unwrap_or_else(|| panic!("not a finding of exact counting: {g}"));
        assert!(
            g["value"].as_u64() <= t["value"].as_u64(),
            "{g} against {t}"
        );
    }
    for t in &truth {
        let above = t["above"].as_u64().unwrap() as f64;
        if t["value"].as_u64().unwrap() as f64 >= 1.4 * above + 4.0 && t["window_start"].is_null() {
            assert!(got.iter().any(|g| key(g) == key(t)), "missed {t}");
        }
    }
}

/// Truncated, corrupted, foreign and mismatched states are refused with their file name and what was wrong.
#[test]
fn broken_foreign_and_mismatched_states_are_refused_with_their_name() {
    let dir = tempfile::tempdir().unwrap();
    let files = generate(dir.path(), 30_000, "30m", "15m");
    let good = save_states(dir.path(), &files, &[], "q");
    let exact = save_states(dir.path(), &files[1..], &["--exact"], "x");
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/low-thresholds.toml");
    let other = save_states(
        dir.path(),
        &files[1..],
        &["--rules", rules.to_str().unwrap()],
        "r",
    );
    let bytes = std::fs::read(good[1].join(state::FILE_NAME)).unwrap();
    let put = |name: &str, b: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, b).unwrap();
        p
    };
    let truncated = put("truncated.state", &bytes[..bytes.len() * 2 / 3]);
    let mut flipped = bytes.clone();
    let at = bytes.len() / 2;
    flipped[at] ^= 0x10;
    let corrupted = put("corrupted.state", &flipped);
    let foreign = put("foreign.state", b"PK\x03\x04 not a state at all");
    let empty = put("empty.state", b"");
    let cases: Vec<(PathBuf, &str)> = vec![
        (truncated.clone(), "truncated"),
        (corrupted.clone(), "checksum"),
        (foreign.clone(), "not a flowsketch state"),
        (empty.clone(), "not a flowsketch state"),
        (
            exact[0].join(state::FILE_NAME),
            "counted with the exact counter",
        ),
        (other[0].join(state::FILE_NAME), "other definitions"),
        (good[0].join(state::FILE_NAME), "covers"),
        (dir.path().join("missing"), "cannot read"),
    ];
    for (path, why) in cases {
        let o = run(&["merge", "-f", "json"], &[good[0].clone(), path.clone()]);
        assert_eq!(o.status.code(), Some(2), "{}", path.display());
        let err = stderr(&o);
        let name = path.file_name().unwrap().to_str().unwrap();
        assert!(err.contains(name) && err.contains(why), "{why}: {err}");
        assert!(o.stdout.is_empty(), "no findings from a refused merge");
    }
    // The rules the states were scanned with are the ones to merge with.
    let o = run(&["merge", "-r", rules.to_str().unwrap()], &other);
    assert_ne!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = run(&["merge"], &other);
    assert!(stderr(&o).contains("--rules"), "{}", stderr(&o));
}

/// Decode standard base64.
fn unbase64(s: &str) -> Vec<u8> {
    let v = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    } as u32;
    let mut out = Vec::new();
    for q in s.as_bytes().chunks(4) {
        let n = q.iter().take_while(|&&c| c != b'=').count();
        let mut w = 0u32;
        for (i, &c) in q.iter().enumerate() {
            w |= if i < n { v(c) } else { 0 } << (18 - 6 * i);
        }
        out.extend_from_slice(&w.to_be_bytes()[1..n]);
    }
    out
}

/// Exported sketches read back with the datasketches crate estimate each finding's count within 4 standard
/// errors, one per finding with a distinct count; a merge exports the same sketches as the whole scan.
#[test]
fn exported_sketches_read_back_within_their_error() {
    let dir = tempfile::tempdir().unwrap();
    let files = generate(dir.path(), 100_000, "1h", "30m");
    let out = dir.path().join("sketches.jsonl");
    let o = run(
        &[
            "scan",
            "-f",
            "json",
            "--export-sketches",
            out.to_str().unwrap(),
        ],
        &files,
    );
    let (findings, _) = split(&o);
    let text = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let distinct = findings
        .iter()
        .filter(|f| f.contains("\"count\":\"distinct "))
        .count();
    assert!(
        lines.len() >= distinct.min(10) && distinct > 5,
        "{} sketches for {distinct}",
        lines.len()
    );
    for l in &lines {
        let bytes = unbase64(l["sketch"].as_str().unwrap());
        let sketch = datasketches::hll::HllSketch::deserialize(&bytes).unwrap();
        assert_eq!(sketch.lg_config_k(), 12);
        let count = l["count"].as_u64().unwrap() as f64;
        let e = sketch.estimate();
        let err = flowsketch::sketch::datasketches::REL_STD_ERROR;
        assert!(
            (e - count).abs() <= 4.0 * err * count + 1.0,
            "{l}: estimate {e}"
        );
    }
    // The same sketches from merged states.
    let states = save_states(dir.path(), &files, &[], "q");
    let out2 = dir.path().join("merged.jsonl");
    let o = run(
        &["merge", "--export-sketches", out2.to_str().unwrap()],
        &states,
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&out2).unwrap(), text);
}

const RULES: &str = r#"
version = "merge-laws"
[[rule]]
id = "D"
name = "fan-out"
key = "src"
count = "distinct dst"
above = 6
[[rule]]
id = "B"
name = "bytes"
key = "dst"
count = "bytes"
above = 20000
[[rule]]
id = "W"
name = "ports per minute"
key = "src,dst"
count = "distinct dport"
above = 4
window = "1m"
"#;

fn flows(rng: &mut Rng, n: usize) -> Vec<FlowRecord> {
    (0..n)
        .map(|i| {
            let src = rng.zipf(300, 1.1) as u32;
            FlowRecord {
                src: if src.is_multiple_of(7) {
                    Addr::v6(0x2001_0db8 << 96 | src as u128)
                } else {
                    Addr::v4(0x0a00_0000 | src)
                },
                dst: Addr::v4(0x0b00_0000 | rng.zipf(500, 1.0) as u32),
                dst_port: rng.zipf(40, 1.0) as u16,
                proto: 6,
                packets: 1 + rng.zipf(10, 1.0),
                bytes: 40 + rng.zipf(3000, 1.0),
                first_ms: 1_795_662_000_000 + (i as u64 * 97) % 600_000,
                last_ms: 1_795_662_000_000 + (i as u64 * 97) % 600_000 + 5,
                ..FlowRecord::default()
            }
        })
        .collect()
}

/// Scan each part with its state kept; return the states' bytes and the files.
fn part_states(
    dir: &Path,
    defs: &Definitions,
    parts: &[Vec<FlowRecord>],
    config: &ScanConfig,
) -> Vec<Vec<u8>> {
    parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let f = dir.join(format!("part{i}.nfcapd"));
            write_nfcapd(&f, p);
            let scan = Scanner::new(
                defs,
                ScanConfig {
                    save_state: true,
                    ..config.clone()
                },
            )
            .run(&[f]);
            scan.state.unwrap().unwrap()
        })
        .collect()
}

fn merged<C: SavedCounter>(defs: &Definitions, states: &[&[u8]]) -> State<C> {
    let mut acc = State::<C>::from_bytes(states[0], "s0", defs).unwrap();
    for (i, s) in states[1..].iter().enumerate() {
        acc.merge(
            State::from_bytes(s, &format!("s{}", i + 1), defs).unwrap(),
            "s",
        )
        .unwrap();
    }
    acc
}

/// Merge laws, as properties over random splits: a state's bytes round-trip; merging is commutative and
/// associative (equal bytes); and merged states report the whole capture's findings, verified.
fn merge_laws<C: SavedCounter>(counter: CounterKind, admit: f64) {
    let defs = Definitions::parse(RULES, "laws.toml", None).unwrap();
    for seed in 1..=4u64 {
        let dir = tempfile::tempdir().unwrap();
        let mut rng = Rng::new(seed);
        let all = flows(&mut rng, 6_000 + seed as usize * 1_000);
        // Cut into 3 parts at random points.
        let mut cuts = [
            rng.below(all.len() as u64) as usize,
            rng.below(all.len() as u64) as usize,
        ];
        cuts.sort_unstable();
        let parts = vec![
            all[..cuts[0]].to_vec(),
            all[cuts[0]..cuts[1]].to_vec(),
            all[cuts[1]..].to_vec(),
        ];
        let config = ScanConfig {
            counter,
            admit,
            threads: 2,
            memory: 16 << 20,
            ..ScanConfig::default()
        };
        let states = part_states(dir.path(), &defs, &parts, &config);
        let (a, b, c) = (&states[0][..], &states[1][..], &states[2][..]);
        // Round trip: decode, encode, decode, encode gives the same bytes.
        let once = State::<C>::from_bytes(a, "a", &defs).unwrap().to_bytes();
        let twice = State::<C>::from_bytes(&once, "a", &defs)
            .unwrap()
            .to_bytes();
        assert_eq!(once, twice, "seed {seed}");
        let ab_c = merged::<C>(&defs, &[a, b, c]).to_bytes();
        let mut bc = merged::<C>(&defs, &[b, c]);
        let mut a_bc = State::<C>::from_bytes(a, "a", &defs).unwrap();
        a_bc.merge(bc.clone(), "bc").unwrap();
        assert_eq!(ab_c, a_bc.to_bytes(), "associative, seed {seed}");
        bc.merge(State::from_bytes(a, "a", &defs).unwrap(), "a")
            .unwrap();
        assert_eq!(ab_c, bc.to_bytes(), "commutative, seed {seed}");
        assert_eq!(
            ab_c,
            merged::<C>(&defs, &[c, a, b]).to_bytes(),
            "seed {seed}"
        );
        // Merged states report what one scan of the whole capture does.
        let whole_file = dir.path().join("whole.nfcapd");
        write_nfcapd(&whole_file, &all);
        let whole = Scanner::new(&defs, config.clone()).run(&[whole_file]);
        let dirs: Vec<PathBuf> = states
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let d = dir.path().join(format!("st{i}"));
                state::write_dir(&d, s).unwrap();
                d
            })
            .collect();
        let m = Scanner::new(&defs, config.clone())
            .merge(&dirs, &Progress::default())
            .unwrap();
        assert!(m.guarantee.verified(), "seed {seed}: {:?}", m.guarantee);
        assert!(!whole.findings.is_empty());
        assert_eq!(m.findings, whole.findings, "seed {seed}");
    }
}

#[test]
fn merges_of_compact_states_are_order_free_and_equal_the_whole() {
    merge_laws::<Compact>(CounterKind::Compact, 0.2);
}

#[test]
fn merges_of_exact_states_are_order_free_and_equal_the_whole() {
    merge_laws::<Exact>(CounterKind::Exact, 0.0);
}

/// Cross-check on the real captures of ../shared/data: the states of eight files (the scans, nfdump's sample and
/// a large bzip2 file) merged give byte-identical findings to one scan of the eight.
#[test]
fn real_captures_merged_equal_one_scan() {
    let Some(data) = common::require_data("real_captures_merged_equal_one_scan") else {
        return;
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("scans"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files.push(data.join("nfcapd/nfcapd.sample"));
    files.push(data.join("nfcapd/nfcapd-large-bz2"));
    let dir = tempfile::tempdir().unwrap();
    let whole = run(&["scan", "-f", "json"], &files);
    let (want, _) = split(&whole);
    assert!(!want.is_empty());
    let states = save_states(dir.path(), &files, &[], "s");
    let merged = run(&["merge", "-f", "json"], &states);
    let (got, summary) = split(&merged);
    assert_eq!(summary["guarantee"], "verified", "{}", stderr(&merged));
    assert_eq!(got, want);
}

/// Write the seed inputs of the `state` fuzz target into fuzz/regressions/state (run by hand when the format
/// changes: `cargo test --release --test state write_fuzz_regressions -- --ignored`): states of the built-in
/// definitions under each counter that saves, and one whose section claims a terabyte (the reader asked the
/// allocator for the claimed size up front, which fails where overcommit is strict).
#[test]
#[ignore]
fn write_fuzz_regressions() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions/state");
    std::fs::create_dir_all(&dir).unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let defs = Definitions::builtin();
    let parts = [flows(&mut Rng::new(7), 300)];
    for (name, counter) in [
        ("compact", CounterKind::Compact),
        ("exact", CounterKind::Exact),
    ] {
        let config = ScanConfig {
            counter,
            ..ScanConfig::default()
        };
        let bytes = part_states(tmp.path(), &defs, &parts, &config).remove(0);
        std::fs::write(dir.join(format!("builtin-{name}")), &bytes).unwrap();
        if name == "compact" {
            // The first section's decompressed length, 2^40; its header's checksum made right.
            let mut huge = bytes.clone();
            let at = state::format::HEADER;
            huge[at + 16..at + 24].copy_from_slice(&(1u64 << 40).to_le_bytes());
            state::format::refresh_checksums(&mut huge, state::fingerprint(&defs));
            assert!(State::<Compact>::from_bytes(&huge, "huge", &defs)
                .err()
                .unwrap()
                .what
                .contains("decompresses to"));
            std::fs::write(dir.join("section-claims-a-terabyte"), &huge).unwrap();
        }
    }
}
