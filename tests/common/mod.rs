//! What the integration tests share: the binary under test, the shared real data, the nfdump oracle.
// Each test crate uses a different part of this module.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `flowsketch` binary built for these tests.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowsketch"))
}

/// `../shared/data`, or `None` after saying the test is skipped (the folder is absent outside the workplace).
pub fn data() -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if d.is_dir() {
        Some(d)
    } else {
        println!("skipped: ../shared/data not found");
        None
    }
}

/// True when the real nfdump can be run; otherwise says that the comparison is skipped.
pub fn nfdump_on_path() -> bool {
    let ok = Command::new("nfdump")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        println!("skipped: nfdump not on PATH, no comparison with nfdump");
    }
    ok
}

/// A process's stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The nfcapd file a flow-tools file in ../shared/data/flow-tools was made from (see the README there).
pub fn flowtools_source(data: &Path, ft: &Path) -> PathBuf {
    let name = ft.file_name().unwrap().to_str().unwrap();
    let stem = name
        .trim_end_matches(".ft")
        .trim_end_matches(".z0")
        .trim_end_matches(".be");
    let scans = data.join("scans").join(format!("{stem}.nfcapd"));
    if scans.exists() {
        scans
    } else {
        data.join("nfcapd").join(stem)
    }
}

/// Write what the real `nfdump -r SRC -o csv` prints (times in UTC) to `to`.
pub fn nfdump_csv(src: &Path, to: &Path) {
    let out = Command::new("nfdump")
        .env("TZ", "UTC")
        .arg("-r")
        .arg(src)
        .args(["-o", "csv"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nfdump -r {} -o csv failed",
        src.display()
    );
    std::fs::write(to, &out.stdout).unwrap();
}

/// True for the summary record that ends `--format json` output (every other line is a finding).
pub fn is_summary(line: &str) -> bool {
    line.contains("\"type\":\"summary\"")
}
