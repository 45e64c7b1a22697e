//! The engine end to end on records already in memory (no decoding): per counter backend, per thread count, per
//! number of sources (a table that fits in cache against one that does not), and one rule against twenty.
//!
//! `cargo bench --bench engine`; figures and the machine in docs/BENCHMARKS.md.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use flowsketch::engine::{self, Input, ScanOptions};
use flowsketch::formats::memory::RecordsDecoder;
use flowsketch::gen::traffic::{Traffic, TrafficConfig};
use flowsketch::record::FlowRecord;
use flowsketch::rules::Definitions;
use flowsketch::sketch::{Compact, DistinctCounter, Exact, Hllpp};

use std::sync::Arc;

const FLOWS: u64 = 2_000_000;

fn records(sources: u64) -> Arc<Vec<FlowRecord>> {
    let cfg = TrafficConfig {
        flows: FLOWS,
        sources,
        ..TrafficConfig::default()
    };
    Arc::new(Traffic::new(cfg).0.collect())
}

fn run<C: DistinctCounter>(
    defs: &Definitions,
    recs: &Arc<Vec<FlowRecord>>,
    threads: usize,
) -> usize {
    // Chunks of 64 Ki records, about the flows of one nfcapd block.
    let input = Input {
        name: "memory".into(),
        decoder: Box::new(RecordsDecoder::shared(recs.clone(), 65_536)),
        bytes: 0,
    };
    // Every key in a table, as before admission: this bench measures the tables and counters.
    let options = ScanOptions {
        threads,
        queue: 16,
        admit: 0.0,
        ..ScanOptions::default()
    };
    let result = engine::scan::<C, _>(&defs.rules, [Ok(input)], &options, &engine::Done::default());
    result.keys()
}

fn fs1_fs4() -> Definitions {
    let text = include_str!("rules/fs1-fs4.toml");
    Definitions::parse(text, "fs1-fs4", None).expect("bench rules")
}

/// Twenty rules of the shapes operators write: the defaults plus variants on ports, protocols and windows.
pub fn twenty_rules() -> Definitions {
    let text = include_str!("rules/twenty.toml");
    Definitions::parse(text, "twenty", None).expect("bench rules")
}

fn one_rule() -> Definitions {
    let text = include_str!("rules/fs1-fs4.toml");
    let mut d = Definitions::parse(text, "one", None).expect("bench rules");
    d.rules.truncate(1);
    d
}

fn backends(c: &mut Criterion) {
    let defs = fs1_fs4();
    let mut g = c.benchmark_group("engine/backend");
    g.sample_size(10);
    g.throughput(Throughput::Elements(FLOWS));
    for sources in [10_000u64, 1_000_000] {
        let recs = records(sources);
        for threads in [1usize, 2] {
            let id = |name: &str| BenchmarkId::new(name, format!("{sources}src/{threads}t"));
            g.bench_function(id("compact"), |b| {
                b.iter(|| run::<Compact>(&defs, &recs, threads))
            });
            g.bench_function(id("exact"), |b| {
                b.iter(|| run::<Exact>(&defs, &recs, threads))
            });
            g.bench_function(id("hllpp"), |b| {
                b.iter(|| run::<Hllpp>(&defs, &recs, threads))
            });
        }
    }
    g.finish();
}

fn rules(c: &mut Criterion) {
    let recs = records(200_000);
    let mut g = c.benchmark_group("engine/rules");
    g.sample_size(10);
    g.throughput(Throughput::Elements(FLOWS));
    for (name, defs) in [("1", one_rule()), ("20", twenty_rules())] {
        g.bench_function(name, |b| b.iter(|| run::<Compact>(&defs, &recs, 1)));
    }
    g.finish();
}

criterion_group!(benches, backends, rules);
criterion_main!(benches);
