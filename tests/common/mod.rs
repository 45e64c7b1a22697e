//! What the integration tests share: the binary under test, writers for the inputs they build, and the real-data
//! cross-checks (../shared/data, the real nfdump), which say `skipped: TEST: why` when those are absent and fail
//! under `CI=true`.
// Each test crate uses a different part of this module.
#![allow(dead_code)]

pub mod writers;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `flowsketch` binary built for these tests.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowsketch"))
}

/// Whether skipping is an error: CI sets `CI=true`, and there every cross-check must run.
fn strict() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Say that the cross-check `test` is skipped and why, or fail it under `CI=true`.
///
/// The line goes straight to stderr, past the test harness's capture, so a plain `cargo test` shows it; when the
/// test binary exits it prints how many of its cross-checks were skipped.
pub fn skip(test: &str, why: &str) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static SKIPPED: AtomicUsize = AtomicUsize::new(0);
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    extern "C" fn report() {
        let n = SKIPPED.load(Ordering::SeqCst);
        // The test binary, `readers-1f2e...`, without cargo's hash.
        let exe = std::env::args().next().unwrap_or_default();
        let stem = Path::new(&exe)
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned());
        let name = stem.map(|n| n.rsplit_once('-').map_or(n.clone(), |(a, _)| a.to_string()));
        let _ = writeln!(
            std::io::stderr(),
            "skipped: {n} cross-check{} in tests/{}.rs (CI=true makes a skip a failure)",
            if n == 1 { "" } else { "s" },
            name.unwrap_or_default()
        );
    }
    extern "C" {
        fn atexit(f: extern "C" fn()) -> std::ffi::c_int;
    }
    // The harness names each test's thread after the test: catch a name copied from another test.
    let thread = std::thread::current();
    if let Some(name) = thread.name().filter(|n| *n != "main") {
        assert!(
            name.ends_with(test),
            "skip({test:?}) called from test {name}"
        );
    }
    if strict() {
        panic!("{test}: {why}; CI=true requires every cross-check to run");
    }
    SKIPPED.fetch_add(1, Ordering::SeqCst);
    // SAFETY: atexit only stores the pointer of a function that takes no argument and lives as long as the
    // process; libtest's main returns (or calls exit) normally, which runs it once.
    AT_EXIT.call_once(|| unsafe {
        atexit(report);
    });
    let _ = writeln!(std::io::stderr(), "skipped: {test}: {why}");
}

/// `../shared/data` (the real captures beside the project), or `None` after [`skip`]ping `test`.
pub fn require_data(test: &str) -> Option<PathBuf> {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data");
    if d.is_dir() {
        Some(d)
    } else {
        skip(test, "../shared/data not found");
        None
    }
}

/// True when the real nfdump runs; otherwise [`skip`]s `test`.
pub fn require_nfdump(test: &str) -> bool {
    let ok = Command::new("nfdump")
        .arg("-V")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        skip(test, "nfdump not on PATH");
    }
    ok
}

/// The real data and nfdump, both needed by `test`, or `None` after skipping it.
pub fn require_data_and_nfdump(test: &str) -> Option<PathBuf> {
    let d = require_data(test)?;
    require_nfdump(test).then_some(d)
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

/// Deterministic flows for self-made inputs: `n` flows of generated traffic (a share `v6` of the sources IPv6,
/// no planted events), then a few flows at the edges of what formats hold: every TCP flag, ICMP type and
/// code, ports 0 and 65535, 32-bit counters at their maximum, an end before the start, an exporter and a ToS.
pub fn sample_flows(n: u64, v6: f64) -> Vec<flowsketch::record::FlowRecord> {
    use flowsketch::gen::traffic::{Traffic, TrafficConfig};
    use flowsketch::record::{proto, Addr, FlowRecord};
    let (traffic, _) = Traffic::new(TrafficConfig {
        seed: 7,
        flows: n,
        sources: (n / 10).max(10),
        v6_share: v6,
        span_ms: 600_000,
        plant: false,
        ..TrafficConfig::default()
    });
    let mut flows: Vec<FlowRecord> = traffic.collect();
    let t = flows.first().map_or(1_795_662_000_000, |f| f.first_ms);
    let edge = FlowRecord {
        src: Addr::v4(0x0a00_0001),
        dst: Addr::v4(0xc0a8_0101),
        first_ms: t + 123,
        last_ms: t + 4_567,
        packets: 3,
        bytes: 180,
        src_port: 65535,
        proto: proto::TCP,
        tcp_flags: 0xff,
        src_tos: 0x28,
        input: 65535,
        output: 7,
        exporter: 0x0a00_00fe,
        sampling: 1,
        ..FlowRecord::default()
    };
    flows.push(edge);
    flows.push(FlowRecord {
        src_port: 0,
        dst_port: 3 << 8 | 1, // ICMP destination unreachable, host unreachable
        proto: proto::ICMP,
        tcp_flags: 0,
        ..edge
    });
    flows.push(FlowRecord {
        packets: u32::MAX as u64,
        bytes: u32::MAX as u64,
        proto: proto::UDP,
        tcp_flags: 0,
        dst_port: 53,
        ..edge
    });
    // Seen in real files: an end written before the start.
    flows.push(FlowRecord {
        last_ms: edge.first_ms - 5,
        ..edge
    });
    if v6 > 0.0 {
        flows.push(FlowRecord {
            src: "2001:db8::1".parse().unwrap(),
            dst: "2001:db8:ffff::2".parse().unwrap(),
            dst_port: 128 << 8, // ICMPv6 echo request
            src_port: 0,
            proto: proto::ICMP6,
            tcp_flags: 0,
            ..edge
        });
    }
    flows
}

/// Records in one order, so multisets of them compare as vectors.
pub fn sorted(mut v: Vec<flowsketch::record::FlowRecord>) -> Vec<flowsketch::record::FlowRecord> {
    // Tuples are ordered up to 12 fields: the key splits into two.
    v.sort_by_key(|r| {
        (
            (
                r.src, r.dst, r.first_ms, r.last_ms, r.src_port, r.dst_port, r.proto,
            ),
            (
                r.tcp_flags,
                r.packets,
                r.bytes,
                r.src_tos,
                r.input,
                r.output,
                r.exporter,
                r.sampling,
            ),
        )
    });
    v
}

/// Assert two flow lists are equal, naming the first flow that differs instead of printing thousands.
#[track_caller]
pub fn assert_flows(
    got: &[flowsketch::record::FlowRecord],
    want: &[flowsketch::record::FlowRecord],
    what: &str,
) {
    if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
        panic!(
            "{what}: flow {i} differs:\n got {:?}\nwant {:?}",
            got[i], want[i]
        );
    }
    assert_eq!(got.len(), want.len(), "{what}: flow count");
}

/// Write `flows` as an LZ4 nfcapd file with the library's writer (the format nfdump reads).
pub fn write_nfcapd(path: &Path, flows: &[flowsketch::record::FlowRecord]) {
    use flowsketch::formats::nfcapd::{Compression, NfcapdWriter};
    let file = std::fs::File::create(path).unwrap();
    let mut w = NfcapdWriter::new(std::io::BufWriter::new(file), Compression::Lz4, "test").unwrap();
    for f in flows {
        w.write(f).unwrap();
    }
    w.finish().unwrap();
}

/// True for the summary record that ends `--format json` output (every other line is a finding).
pub fn is_summary(line: &str) -> bool {
    line.contains("\"type\":\"summary\"")
}
