//! `flowsketch gen` writes what nfdump reads: rotated files, uncompressed and LZ4, every flow there, and the truth
//! beside them naming the files.

mod common;
use common::{bin, require_nfdump, stderr};
use serde_json::Value;
use std::process::Command;

fn generate(dir: &std::path::Path, compression: &str) -> Value {
    let o = bin()
        .args([
            "gen",
            "--flows",
            "30000",
            "--sources",
            "3000",
            "--span",
            "12m",
            "--rotate",
            "5m",
        ])
        .args(["--compression", compression, "-o"])
        .arg(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&std::fs::read_to_string(dir.join("truth.json")).unwrap()).unwrap()
}

/// The file names a 12-minute capture rotated every 5 minutes gets, as nfcapd names them.
const FILES: [&str; 3] = [
    "nfcapd.202611260300",
    "nfcapd.202611260305",
    "nfcapd.202611260310",
];

fn files(truth: &Value) -> Vec<&str> {
    truth["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect()
}

#[test]
fn generated_captures_are_read_by_us() {
    for compression in ["none", "lz4"] {
        let dir = tempfile::tempdir().unwrap();
        let truth = generate(dir.path(), compression);
        assert_eq!(files(&truth), FILES);
        let total = truth["flows"].as_u64().unwrap();
        assert!(total > 30_000, "background plus planted flows: {total}");
        // The summary counts every flow.
        let o = bin()
            .args(["scan", "-j", "2"])
            .arg(dir.path())
            .output()
            .unwrap();
        let err = stderr(&o);
        assert!(err.contains(&format!(" {total} flows,")), "{err}");
    }
}

#[test]
fn generated_captures_are_read_by_nfdump() {
    if !require_nfdump("generated_captures_are_read_by_nfdump") {
        return;
    }
    for compression in ["none", "lz4"] {
        let dir = tempfile::tempdir().unwrap();
        let truth = generate(dir.path(), compression);
        let mut seen = 0;
        for f in files(&truth) {
            let out = Command::new("nfdump")
                .args(["-q", "-N", "-6", "-o", "fmt:%sa,%da,%pr", "-r"])
                .arg(dir.path().join(f))
                .output()
                .unwrap();
            assert!(out.status.success(), "nfdump on {f}: {}", stderr(&out));
            seen += String::from_utf8_lossy(&out.stdout).lines().count() as u64;
        }
        assert_eq!(
            seen,
            truth["flows"].as_u64().unwrap(),
            "nfdump reads every generated flow ({compression})"
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_files() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    generate(a.path(), "lz4");
    generate(b.path(), "lz4");
    for name in ["nfcapd.202611260300", "nfcapd.202611260310"] {
        let x = std::fs::read(a.path().join(name)).unwrap();
        let y = std::fs::read(b.path().join(name)).unwrap();
        // The header holds the creation time; everything after it (blocks and appendix flows) must agree.
        assert_eq!(x.len(), y.len(), "{name}");
        assert_eq!(x[40..], y[40..], "{name}");
    }
}
