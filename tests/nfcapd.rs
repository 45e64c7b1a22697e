//! nfcapd reader and writer against the real files in ../shared/data, their truth JSON, and the real nfdump.

mod common;
use common::{require_data, require_data_and_nfdump, require_nfdump};

use flowsketch::formats::nfcapd::{Compression, NfcapdFile, NfcapdWriter};
use flowsketch::formats::{bytes_from_vec, decode_all, Decoder, FormatError};
use flowsketch::record::{Addr, FlowRecord};
use std::collections::{HashMap, HashSet};
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::process::Command;

const FMT: &str = "fmt:%sa,%da,%sp,%dp,%pr,%flg,%pkt,%byt";

fn open(bytes: Vec<u8>) -> Result<NfcapdFile, FormatError> {
    NfcapdFile::open(bytes_from_vec(bytes))
}

/// Decode every chunk, collecting the flows and the errors of the chunks that failed.
fn decode_chunks(f: &NfcapdFile) -> (Vec<FlowRecord>, Vec<FormatError>) {
    let mut flows = Vec::new();
    let mut errors = Vec::new();
    let mut scratch = Vec::new();
    for i in 0..f.chunks() {
        if let Err(e) = f.decode_chunk(i, &mut scratch, &mut |b| flows.extend_from_slice(b)) {
            errors.push(e);
        }
    }
    (flows, errors)
}

fn read_flows(path: &Path) -> Vec<FlowRecord> {
    let f =
        open(std::fs::read(path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let (flows, errors) = decode_chunks(&f);
    assert!(errors.is_empty(), "{}: {errors:?}", path.display());
    flows
}

/// The fields nfdump prints with FMT, normalised as nfdump shows them: TCP flags only for TCP, ICMP type.code.
type Tuple = (Addr, Addr, u16, u16, u8, u8, u64, u64);

fn tuple(f: &FlowRecord) -> Tuple {
    let flags = if f.proto == 6 { f.tcp_flags } else { 0 };
    (
        f.src, f.dst, f.src_port, f.dst_port, f.proto, flags, f.packets, f.bytes,
    )
}

fn parse_flags(s: &str) -> u8 {
    // nfdump prints CEUAPRSF, a dot for a clear bit.
    s.bytes()
        .enumerate()
        .filter(|(_, c)| *c != b'.')
        .fold(0u8, |acc, (i, _)| acc | (0x80 >> i))
}

fn nfdump_tuples(path: &Path) -> Vec<Tuple> {
    let out = Command::new("nfdump")
        .arg("-r")
        .arg(path)
        .args(["-q", "-N", "-6", "-o", FMT])
        .output()
        .expect("run nfdump");
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("No matching flows"))
        .map(|l| {
            let v: Vec<&str> = l.split(',').map(str::trim).collect();
            assert_eq!(v.len(), 8, "nfdump line {l:?}");
            let proto: u8 = v[4].parse().unwrap();
            let dport = match v[3].split_once('.') {
                Some((t, c)) => (t.parse::<u16>().unwrap() << 8) | c.parse::<u16>().unwrap(),
                None => v[3].parse().unwrap(),
            };
            (
                v[0].parse().unwrap(),
                v[1].parse().unwrap(),
                v[2].parse().unwrap(),
                dport,
                proto,
                parse_flags(v[5]),
                v[6].parse().unwrap(),
                v[7].parse().unwrap(),
            )
        })
        .collect()
}

fn sorted(mut v: Vec<Tuple>) -> Vec<Tuple> {
    v.sort_unstable();
    v
}

fn flow_files(data: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for sub in ["nfcapd", "scans"] {
        for e in std::fs::read_dir(data.join(sub)).unwrap() {
            let p = e.unwrap().path();
            if !p.file_name().unwrap().to_string_lossy().contains("corrupt") {
                files.push(p);
            }
        }
    }
    files.sort();
    files
}

/// Per-source figures as the truth JSON lists them, computed independently from decoded records.
struct Figures {
    distinct_dst: HashMap<Addr, HashSet<Addr>>,
    distinct_peers: HashMap<Addr, HashSet<Addr>>,
    syn_only: HashMap<Addr, u64>,
    dports: HashMap<(Addr, Addr), HashSet<u16>>,
}

fn figures(flows: &[FlowRecord]) -> Figures {
    let mut f = Figures {
        distinct_dst: HashMap::new(),
        distinct_peers: HashMap::new(),
        syn_only: HashMap::new(),
        dports: HashMap::new(),
    };
    for r in flows {
        f.distinct_dst.entry(r.src).or_default().insert(r.dst);
        f.distinct_peers.entry(r.src).or_default().insert(r.dst);
        f.distinct_peers.entry(r.dst).or_default().insert(r.src);
        let flags = r.tcp_flags & 0x3f; // ECN bits ignored
        if r.proto == 6 && (flags == 0x02 || flags == 0x06) {
            *f.syn_only.entry(r.src).or_default() += 1;
        }
        f.dports
            .entry((r.src, r.dst))
            .or_default()
            .insert(r.dst_port);
    }
    f
}

fn top_list(v: &serde_json::Value, key: &str) -> Vec<(u64, String)> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("truth has no {key}"))
        .iter()
        .map(|e| (e[0].as_u64().unwrap(), e[1].as_str().unwrap().to_string()))
        .collect()
}

#[test]
fn real_files_match_their_truth_json() {
    let Some(data) = require_data("real_files_match_their_truth_json") else {
        return;
    };
    let mut truth_checked = 0;
    for path in flow_files(&data) {
        let flows = read_flows(&path);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let truth_path = data.join("truth").join(format!("{name}.json"));
        if let Ok(text) = std::fs::read_to_string(&truth_path) {
            truth_checked += 1;
            let t: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(
                flows.len() as u64,
                t["flows"].as_u64().unwrap(),
                "{name}: flows"
            );
            let fig = figures(&flows);
            let sources = fig.distinct_dst.len() as u64;
            assert_eq!(sources, t["sources"].as_u64().unwrap(), "{name}: sources");
            for (n, a) in top_list(&t, "top_distinct_dst") {
                let a: Addr = a.parse().unwrap();
                assert_eq!(
                    fig.distinct_dst[&a].len() as u64,
                    n,
                    "{name}: distinct dst of {a}"
                );
            }
            for (n, a) in top_list(&t, "top_distinct_peers") {
                let a: Addr = a.parse().unwrap();
                assert_eq!(
                    fig.distinct_peers[&a].len() as u64,
                    n,
                    "{name}: peers of {a}"
                );
            }
            for (n, a) in top_list(&t, "top_syn_only_flows") {
                let a: Addr = a.parse().unwrap();
                assert_eq!(fig.syn_only[&a], n, "{name}: SYN-only flows of {a}");
            }
            for (n, pair) in top_list(&t, "top_distinct_dport_pairs") {
                let (s, d) = pair.split_once('>').unwrap();
                let key = (s.parse().unwrap(), d.parse().unwrap());
                assert_eq!(fig.dports[&key].len() as u64, n, "{name}: dports of {pair}");
            }
        }
    }
    assert!(truth_checked >= 8, "only {truth_checked} truth files found");
}

#[test]
fn real_files_give_the_flows_nfdump_prints() {
    let Some(data) = require_data_and_nfdump("real_files_give_the_flows_nfdump_prints") else {
        return;
    };
    let files = flow_files(&data);
    assert!(files.len() >= 10, "{files:?}");
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let ours = sorted(read_flows(&path).iter().map(tuple).collect());
        let theirs = sorted(nfdump_tuples(&path));
        assert_eq!(ours.len(), theirs.len(), "{name}: flow count vs nfdump");
        let diff = ours.iter().zip(&theirs).find(|(a, b)| a != b);
        assert!(
            diff.is_none(),
            "{name}: first difference with nfdump {diff:?}"
        );
    }
}

#[test]
fn declared_flow_count_matches_decoded_flows() {
    let Some(data) = require_data("declared_flow_count_matches_decoded_flows") else {
        return;
    };
    for path in flow_files(&data) {
        let f = open(std::fs::read(&path).unwrap()).unwrap();
        let (flows, _) = decode_chunks(&f);
        if let Some(n) = f.declared_flows() {
            assert_eq!(n, flows.len() as u64, "{}", path.display());
        }
    }
    let f = open(std::fs::read(data.join("nfcapd/nfcapd.sample")).unwrap()).unwrap();
    assert_eq!(f.ident(), Some("RB-QG-MW-SOLUCOES"));
    assert_eq!(f.layout(), 2);
    let f = open(std::fs::read(data.join("nfcapd/nfcapd-large-bz2")).unwrap()).unwrap();
    assert_eq!((f.layout(), f.chunks()), (1, 10));
}

#[test]
fn every_codec_variant_of_the_sample_gives_the_same_records() {
    let Some(data) = require_data("every_codec_variant_of_the_sample_gives_the_same_records")
    else {
        return;
    };
    let base = read_flows(&data.join("nfcapd/nfcapd.sample"));
    assert!(!base.is_empty());
    for v in [
        "nfcapd.sample-lzo",
        "nfcapd.sample-lz4",
        "nfcapd.sample-bz2",
    ] {
        let flows = read_flows(&data.join("nfcapd").join(v));
        assert_eq!(flows, base, "{v}");
    }
}

#[test]
fn corrupt_file_names_the_offset_and_empty_file_has_no_flows() {
    let Some(data) = require_data("corrupt_file_names_the_offset_and_empty_file_has_no_flows")
    else {
        return;
    };
    let f = open(std::fs::read(data.join("nfcapd/nfcapd-empty")).unwrap()).unwrap();
    let (flows, errors) = decode_chunks(&f);
    assert!(errors.is_empty(), "{errors:?}");
    assert!(flows.is_empty());

    let bytes = std::fs::read(data.join("nfcapd/nfcapd-corrupt")).unwrap();
    let len = bytes.len() as u64;
    let result = open(bytes);
    let errors = match result {
        Err(e) => vec![e],
        Ok(f) => decode_chunks(&f).1,
    };
    assert!(!errors.is_empty(), "the corrupt file decoded without error");
    for e in &errors {
        assert!(e.offset > 0 && e.offset < len, "{e}");
        println!("nfcapd-corrupt: {e}");
    }
    assert!(
        errors
            .iter()
            .any(|e| e.message.contains("below header size")),
        "{errors:?}"
    );
}

/// Deterministic mixed IPv4/IPv6 flows; xorshift so the test needs no crate and is the same on every run.
fn synthetic_flows(n: usize) -> Vec<FlowRecord> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    (0..n)
        .map(|i| {
            let r = next();
            let proto = [6u8, 17, 1, 58, 47][(r % 5) as usize];
            let v6 = i % 3 == 0;
            let (src, dst) = if v6 {
                (
                    Addr::v6(0x2001_0db8_u128 << 96 | u128::from(next())),
                    Addr::v6(0xfe80_u128 << 112 | u128::from(next() >> 3)),
                )
            } else {
                (Addr::v4(next() as u32), Addr::v4(next() as u32))
            };
            let first = 1_700_000_000_000 + (r >> 40);
            let icmp = proto == 1 || proto == 58;
            FlowRecord {
                src,
                dst,
                first_ms: first,
                // some exporters write an end before the start: keep one in the set
                last_ms: if i % 97 == 0 {
                    first - 5
                } else {
                    first + (r >> 50)
                },
                packets: 1 + (next() % 100_000),
                bytes: 40 + (next() % 10_000_000_000),
                src_port: if icmp { 0 } else { next() as u16 },
                dst_port: if icmp {
                    ((r >> 8) as u16 & 0x0f00) | (r as u16 & 3)
                } else {
                    next() as u16
                },
                proto,
                tcp_flags: if proto == 6 { next() as u8 } else { 0 },
                src_tos: (r >> 20) as u8,
                input: if i % 4 == 0 {
                    0
                } else {
                    (r >> 24) as u32 & 0xffff
                },
                output: if i % 4 == 0 {
                    0
                } else {
                    (r >> 32) as u32 & 0xffff
                },
                exporter: (r >> 60) as u32,
                sampling: 1,
                flows: 1,
            }
        })
        .collect()
}

fn write_file(flows: &[FlowRecord], c: Compression, ident: &str) -> Vec<u8> {
    let mut w = NfcapdWriter::new(Cursor::new(Vec::new()), c, ident).unwrap();
    for f in flows {
        w.write(f).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn writer_round_trips_through_our_reader() {
    // About 80 bytes per record: 70,000 records fill three 2 MB blocks.
    let flows = synthetic_flows(70_000);
    for c in [Compression::None, Compression::Lz4, Compression::Bz2] {
        let bytes = write_file(&flows, c, "round-trip");
        let f = open(bytes).unwrap();
        assert!(f.chunks() >= 3, "{c:?}: {} blocks", f.chunks());
        assert_eq!(f.declared_flows(), Some(flows.len() as u64));
        assert_eq!(f.ident(), Some("round-trip"));
        let mut back = Vec::new();
        decode_all(&f, &mut |b| back.extend_from_slice(b)).unwrap();
        assert_eq!(back, flows, "{c:?}");
    }
    // No flows at all: still a valid file.
    let f = open(write_file(&[], Compression::Lz4, "")).unwrap();
    assert_eq!((f.chunks(), f.declared_flows()), (0, Some(0)));
}

#[test]
fn nfdump_reads_what_the_writer_writes() {
    if !require_nfdump("nfdump_reads_what_the_writer_writes") {
        return;
    }
    let flows = synthetic_flows(60_000);
    let dir = tempfile::tempdir().unwrap();
    for c in [Compression::None, Compression::Lz4, Compression::Bz2] {
        let path = dir.path().join(format!("nfcapd.{c:?}"));
        std::fs::write(&path, write_file(&flows, c, "flowsketch-test")).unwrap();
        let theirs = sorted(nfdump_tuples(&path));
        let ours = sorted(flows.iter().map(tuple).collect());
        assert_eq!(theirs.len(), ours.len(), "{c:?}");
        assert!(theirs == ours, "{c:?}: nfdump prints other flows");

        let info = Command::new("nfdump")
            .arg("-r")
            .arg(&path)
            .arg("-I")
            .output()
            .unwrap();
        let info = String::from_utf8_lossy(&info.stdout).to_string();
        let field = |k: &str| -> String {
            info.lines()
                .find_map(|l| l.strip_prefix(&format!("{k}: ")))
                .unwrap_or_else(|| panic!("no {k} in {info}"))
                .trim()
                .to_string()
        };
        assert_eq!(field("Ident"), "flowsketch-test");
        assert_eq!(field("Flows"), flows.len().to_string());
        let packets: u64 = flows.iter().map(|f| f.packets).sum();
        let bytes: u64 = flows.iter().map(|f| f.bytes).sum();
        let tcp = flows.iter().filter(|f| f.proto == 6).count();
        assert_eq!(field("Packets"), packets.to_string());
        assert_eq!(field("Bytes"), bytes.to_string());
        assert_eq!(field("Flows_tcp"), tcp.to_string());
        let first = flows.iter().map(|f| f.first_ms).min().unwrap();
        assert_eq!(field("First"), (first / 1000).to_string());
        assert_eq!(field("msec_first"), (first % 1000).to_string());
    }
}

#[test]
fn damaged_inputs_give_errors_not_panics() {
    let flows = synthetic_flows(30_000);
    let good = write_file(&flows, Compression::Lz4, "x");
    // Header damage: each is refused at open with the offset of the bad field.
    let mut bad = good.clone();
    bad[0] = 0x0d;
    assert_eq!(open(bad).err().map(|e| e.offset), Some(0));
    let mut bad = good.clone();
    bad[2] = 3;
    assert_eq!(open(bad).err().map(|e| e.offset), Some(2));
    let mut bad = good.clone();
    bad[16] = 9;
    let e = open(bad).err().unwrap();
    assert!(e.offset == 16 && e.message.contains("found 9"), "{e}");
    assert!(open(good[..20].to_vec()).is_err());

    // Truncation anywhere: the first data block's header or payload is then past the end of the file.
    for cut in [41, 52, 1000, good.len() / 2, good.len() - 200] {
        let f = open(good[..cut].to_vec()).unwrap();
        let (_, errors) = decode_chunks(&f);
        assert!(
            !errors.is_empty(),
            "truncated at {cut} decoded without error"
        );
        assert!(errors.iter().all(|e| e.offset < cut as u64), "{errors:?}");
    }

    // Flipped bytes in an uncompressed file: decoding finishes, with or without errors, and never panics.
    let plain = write_file(&flows[..2000], Compression::None, "x");
    let mut x: u64 = 88172645463325252;
    for _ in 0..300 {
        let mut b = plain.clone();
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x as usize) % b.len();
            b[i] ^= (x >> 32) as u8 | 1;
        }
        if let Ok(f) = open(b) {
            let _ = decode_chunks(&f);
        }
    }

    // A zero record size inside a plain block names that record's offset.
    let mut b = plain.clone();
    b[40 + 12 + 2] = 0;
    b[40 + 12 + 3] = 0;
    let f = open(b).unwrap();
    let (_, errors) = decode_chunks(&f);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].offset, 52, "{}", errors[0]);
    assert!(
        errors[0].message.contains("below header size"),
        "{}",
        errors[0]
    );
}

/// The fuzz target's body (fuzz/fuzz_targets/nfcapd.rs): open, then decode every chunk; errors allowed.
fn fuzz_body(data: &[u8]) -> usize {
    let mut flows = 0usize;
    if let Ok(f) = open(data.to_vec()) {
        let mut scratch = Vec::new();
        for i in 0..f.chunks() {
            let _ = f.decode_chunk(i, &mut scratch, &mut |b| flows += b.len());
        }
    }
    flows
}

#[test]
fn mutated_real_files_never_panic() {
    let Some(data) = require_data("mutated_real_files_never_panic") else {
        return;
    };
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for (name, rounds) in [
        ("nfcapd/nfcapd.sample", 150),
        ("nfcapd/nfcapd-small-lzo", 150),
        ("nfcapd/nfcapd.sample-lz4", 60),
        ("nfcapd/nfcapd-empty", 300),
        ("scans/icmp-sweep.nfcapd", 300),
    ] {
        let good = std::fs::read(data.join(name)).unwrap();
        for round in 0..rounds {
            let mut b = good.clone();
            match round % 3 {
                // flip a few bytes, mostly near the headers where the structure is
                0 | 1 => {
                    for _ in 0..1 + rnd() % 4 {
                        let span = if round % 3 == 0 {
                            512.min(b.len())
                        } else {
                            b.len()
                        };
                        let i = (rnd() as usize) % span;
                        b[i] ^= (rnd() as u8) | 1;
                    }
                }
                _ => b.truncate((rnd() as usize) % b.len()),
            }
            fuzz_body(&b);
        }
    }
    // Regression inputs the fuzzer found live in fuzz/regressions.
    let reg = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/fuzz/regressions/nfcapd"
    ));
    if let Ok(dir) = std::fs::read_dir(reg) {
        for e in dir {
            fuzz_body(&std::fs::read(e.unwrap().path()).unwrap());
        }
    }
}

/// Decoding speed on the real files (run with `cargo test --release --test nfcapd -- --ignored --nocapture`).
#[test]
#[ignore]
fn decode_speed() {
    let Some(data) = require_data("decode_speed") else {
        return;
    };
    let flows = synthetic_flows(500_000);
    let lz4 = open(write_file(&flows, Compression::Lz4, "speed")).unwrap();
    let plain = open(write_file(&flows, Compression::None, "speed")).unwrap();
    let bz2 = open(std::fs::read(data.join("nfcapd/nfcapd-large-bz2")).unwrap()).unwrap();
    let lzo = open(std::fs::read(data.join("scans/port-scan-1-10000.nfcapd")).unwrap()).unwrap();
    for (name, f) in [
        ("written, none", &plain),
        ("written, LZ4", &lz4),
        ("1.6 BZ2", &bz2),
        ("LZO scan", &lzo),
    ] {
        let t = std::time::Instant::now();
        let mut n = 0u64;
        let mut reps = 0;
        while t.elapsed().as_secs_f64() < 1.0 {
            n += decode_all(f, &mut |b| {
                std::hint::black_box(b);
            })
            .unwrap()
            .flows;
            reps += 1;
        }
        let s = t.elapsed().as_secs_f64();
        println!(
            "{name}: {:.1} M flows/s ({reps} passes)",
            n as f64 / s / 1e6
        );
    }
    let t = std::time::Instant::now();
    let mut w = NfcapdWriter::new(Cursor::new(Vec::new()), Compression::Lz4, "speed").unwrap();
    for f in &flows {
        w.write(f).unwrap();
    }
    let size = w.finish().unwrap().into_inner().len();
    println!(
        "writer LZ4: {:.1} M flows/s, {size} bytes",
        flows.len() as f64 / t.elapsed().as_secs_f64() / 1e6
    );
}

/// Decode-only rate of one file as `scan` reads it (memory-mapped unless `FLOWSKETCH_NO_MMAP` is set), with the
/// user and system time it took: `FLOWSKETCH_DECODE_FILE=path cargo test --release --test nfcapd
/// decode_file_speed -- --ignored --nocapture`.
#[test]
#[ignore]
fn decode_file_speed() {
    let Some(path) = std::env::var_os("FLOWSKETCH_DECODE_FILE") else {
        println!("skipped: FLOWSKETCH_DECODE_FILE not set");
        return;
    };
    use flowsketch::input::{load, InputOptions, Source};
    let options = InputOptions {
        no_mmap: std::env::var_os("FLOWSKETCH_NO_MMAP").is_some(),
        ..InputOptions::default()
    };
    for _ in 0..3 {
        let cpu = cpu_times();
        let t = std::time::Instant::now();
        let bytes = load(&Source::File(PathBuf::from(&path)), &options).unwrap();
        let f = NfcapdFile::open(bytes).unwrap();
        let n = decode_all(&f, &mut |b| {
            std::hint::black_box(b);
        })
        .unwrap()
        .flows;
        let s = t.elapsed().as_secs_f64();
        let (user, sys) = cpu_times();
        println!(
            "{n} flows in {s:.3} s: {:.1} ns/flow, user {:.3} s, sys {:.3} s",
            s * 1e9 / n as f64,
            user - cpu.0,
            sys - cpu.1
        );
    }
}

/// User and system CPU seconds of this process, from /proc/self/stat (clock ticks of 1/100 s).
fn cpu_times() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    (
        f[11].parse::<f64>().unwrap() / 100.0,
        f[12].parse::<f64>().unwrap() / 100.0,
    )
}
