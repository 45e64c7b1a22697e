//! The engine on generated records: same findings whatever the thread count, counts equal to an independent
//! computation, merges that add up, windows, and inputs that fail without stopping the others.

use flowsketch::engine::{self, Input, InputError, ScanOptions};
use flowsketch::formats::memory::RecordsDecoder;
use flowsketch::gen::rng::Rng;
use flowsketch::record::{Addr, FlowRecord};
use flowsketch::report::{self, Finding};
use flowsketch::rules::Definitions;
use flowsketch::sketch::{DistinctCounter, Exact};
use std::collections::{HashMap, HashSet};

const RULES: &str = r#"
version = "test"
[[rule]]
id = "FANOUT"
key = "src"
count = "distinct dst"
above = 40
[[rule]]
id = "PEERS"
key = "host"
count = "distinct peer"
above = 40
[[rule]]
id = "PORTS"
key = "src,dst"
count = "distinct dport"
above = 20
[[rule]]
id = "BYTES"
key = "dst,dport"
count = "bytes"
above = 2000000
[[rule]]
id = "WINDOWED"
key = "src"
count = "flows"
above = 30
window = "1m"
"#;

fn records(seed: u64, n: usize) -> Vec<FlowRecord> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|_| {
            // 300 sources with Zipf-skewed fan-out over 2,000 destinations, some IPv6.
            let s = rng.zipf(300, 1.0) as u32;
            let d = rng.zipf(2_000, 0.8) as u32;
            let src = if s.is_multiple_of(7) {
                Addr::v6(0x2001_0db8 << 96 | s as u128)
            } else {
                Addr::v4(0x0a00_0000 | s)
            };
            let first = 1_000_000 + rng.below(600_000);
            FlowRecord {
                src,
                dst: Addr::v4(0xc000_0000 | d),
                src_port: 1024 + rng.below(1000) as u16,
                dst_port: rng.zipf(200, 1.0) as u16,
                proto: 6,
                tcp_flags: 2,
                packets: 1 + rng.below(10),
                bytes: 40 + rng.below(3000),
                first_ms: first,
                last_ms: first + rng.below(1000),
                ..Default::default()
            }
        })
        .collect()
}

fn input(name: &str, recs: Vec<FlowRecord>, chunk: usize) -> Result<Input, InputError> {
    Ok(Input {
        name: name.to_string(),
        decoder: Box::new(RecordsDecoder::new(recs, chunk)),
        bytes: 0,
    })
}

fn run<C: DistinctCounter>(
    defs: &Definitions,
    recs: &[FlowRecord],
    threads: usize,
) -> Vec<Finding> {
    let inputs = vec![
        input("a", recs[..recs.len() / 2].to_vec(), 1_000),
        input("b", recs[recs.len() / 2..].to_vec(), 777),
    ];
    let options = ScanOptions {
        threads,
        queue: 4,
        admit: 0.0,
        ..ScanOptions::default()
    };
    let mut result = engine::scan::<C, _>(&defs.rules, inputs, &options, &engine::Done::default());
    assert!(result.errors.is_empty());
    assert_eq!(result.stats.flows, recs.len() as u64);
    report::findings(defs, &mut result)
}

#[test]
fn findings_do_not_depend_on_the_thread_count() {
    let defs = Definitions::parse(RULES, "test", None).unwrap();
    let recs = records(1, 60_000);
    let one = run::<Exact>(&defs, &recs, 1);
    assert!(
        one.len() > 10,
        "the test data must produce findings: {}",
        one.len()
    );
    for threads in [2, 3, 5] {
        assert_eq!(
            run::<Exact>(&defs, &recs, threads),
            one,
            "threads={threads}"
        );
    }
}

#[test]
fn counts_equal_an_independent_count() {
    let defs = Definitions::parse(RULES, "test", None).unwrap();
    let recs = records(2, 40_000);
    let findings = run::<Exact>(&defs, &recs, 2);

    // Fan-out: distinct destinations per source, counted here with plain std collections.
    let mut fanout: HashMap<Addr, HashSet<Addr>> = HashMap::new();
    // Peers: each flow counts for both ends.
    let mut peers: HashMap<Addr, HashSet<Addr>> = HashMap::new();
    let mut ports: HashMap<(Addr, Addr), HashSet<u16>> = HashMap::new();
    let mut bytes: HashMap<(Addr, u16), u64> = HashMap::new();
    let mut windowed: HashMap<(Addr, u64), u64> = HashMap::new();
    for r in &recs {
        fanout.entry(r.src).or_default().insert(r.dst);
        peers.entry(r.src).or_default().insert(r.dst);
        peers.entry(r.dst).or_default().insert(r.src);
        ports.entry((r.src, r.dst)).or_default().insert(r.dst_port);
        *bytes.entry((r.dst, r.dst_port)).or_default() += r.bytes;
        *windowed.entry((r.src, r.first_ms / 60_000)).or_default() += 1;
    }
    let got = |rule: &str| -> HashMap<String, u64> {
        findings
            .iter()
            .filter(|f| f.rule == rule)
            .map(|f| (format!("{} {}", f.key_text(), f.key.window), f.count))
            .collect()
    };
    let want_sets = |m: &HashMap<Addr, HashSet<Addr>>, above: usize| -> HashMap<String, u64> {
        m.iter()
            .filter(|(_, s)| s.len() > above)
            .map(|(a, s)| (format!("{a} 0"), s.len() as u64))
            .collect()
    };
    assert_eq!(got("FANOUT"), want_sets(&fanout, 40));
    assert_eq!(got("PEERS"), want_sets(&peers, 40));
    let want_ports: HashMap<String, u64> = ports
        .iter()
        .filter(|(_, s)| s.len() > 20)
        .map(|((a, b), s)| (format!("{a} > {b} 0"), s.len() as u64))
        .collect();
    assert_eq!(got("PORTS"), want_ports);
    let want_bytes: HashMap<String, u64> = bytes
        .iter()
        .filter(|(_, &b)| b > 2_000_000)
        .map(|((a, p), b)| (format!("{a} port {p} 0"), *b))
        .collect();
    assert_eq!(got("BYTES"), want_bytes);
    let want_windowed: HashMap<String, u64> = windowed
        .iter()
        .filter(|(_, &n)| n > 30)
        .map(|((a, w), n)| (format!("{a} {w}"), *n))
        .collect();
    assert!(!want_windowed.is_empty());
    assert_eq!(got("WINDOWED"), want_windowed);
    for f in findings.iter().filter(|f| f.rule == "WINDOWED") {
        let (start, end) = f.window_bounds().unwrap();
        assert!(start <= f.first_ms && f.first_ms < end, "{f:?}");
    }
}

#[test]
fn shards_merged_equal_one_sequential_pass() {
    let defs = Definitions::parse(RULES, "test", None).unwrap();
    let recs = records(3, 20_000);
    let compiled: Vec<_> = defs.rules.iter().map(engine::CompiledRule::new).collect();
    // Two runs over halves, merged, against one run over all.
    let scan = |part: &[FlowRecord], threads| {
        let options = ScanOptions {
            threads,
            queue: 4,
            admit: 0.0,
            ..ScanOptions::default()
        };
        engine::scan::<Exact, _>(
            &defs.rules,
            vec![input("x", part.to_vec(), 500)],
            &options,
            &engine::Done::default(),
        )
    };
    let mut merged = scan(&recs[..7_000], 3).into_single(&compiled);
    merged.merge(scan(&recs[7_000..], 2).into_single(&compiled));
    let mut whole = scan(&recs, 1).into_single(&compiled);
    for rule in 0..defs.rules.len() {
        let mut a: Vec<_> = merged
            .all(rule)
            .into_iter()
            .map(|c| (c.key, c.value.value, c.seen))
            .collect();
        let mut b: Vec<_> = whole
            .all(rule)
            .into_iter()
            .map(|c| (c.key, c.value.value, c.seen))
            .collect();
        a.sort_by_key(|x| x.0);
        b.sort_by_key(|x| x.0);
        assert_eq!(a, b, "rule {}", defs.rules[rule].id);
    }
}

#[test]
fn a_failing_input_does_not_stop_the_others() {
    let defs = Definitions::parse(RULES, "test", None).unwrap();
    let recs = records(4, 10_000);
    let inputs = vec![
        Err(InputError {
            name: "broken".into(),
            message: "at offset 0: bad magic".into(),
        }),
        input("good", recs.clone(), 1_000),
    ];
    let mut result = engine::scan::<Exact, _>(
        &defs.rules,
        inputs,
        &ScanOptions {
            threads: 2,
            queue: 2,
            admit: 0.0,
            ..ScanOptions::default()
        },
        &engine::Done::default(),
    );
    assert_eq!(result.stats.inputs, 2);
    assert_eq!(result.stats.flows, 10_000);
    assert_eq!(result.errors.len(), 1);
    assert_eq!(result.errors[0].name, "broken");
    assert!(!report::findings(&defs, &mut result).is_empty());
}
