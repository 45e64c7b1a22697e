//! Distinct counters: insert, merge and estimate speed per backend (criterion), preceded by two tables printed to
//! stdout: memory per counter (heap bytes counted by the allocator, checked against `heap_bytes`) and accuracy.
//!
//! Run: `cargo bench --bench counters` (all), `cargo bench --bench counters -- insert` (a filter), or
//! `cargo bench --bench counters -- --tables-only` to print the two tables and skip criterion.

use criterion::{black_box, BatchSize, Criterion, Throughput};
use flowsketch::hash::hash128;
use flowsketch::sketch::{Compact, DistinctCounter, Exact, Hllpp};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The system allocator, counting live bytes so the memory table is measured, not modelled.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to `System` unchanged; only adds bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// `n` distinct values of stream `seed` with their hashes, computed up front so benchmarks time the counter only.
fn stream(seed: u64, n: u64) -> Vec<(u64, u128)> {
    (0..n)
        .map(|i| {
            let v = u128::from(seed) << 64 | u128::from(i);
            (hash128(v), v)
        })
        .collect()
}

fn fill<C: DistinctCounter>(items: &[(u64, u128)]) -> C {
    let mut c = C::default();
    for &(h, v) in items {
        c.insert(h, v);
    }
    c
}

/// Heap bytes per counter holding `n` distinct values: allocator-measured and as reported by `heap_bytes`.
fn memory_row<C: DistinctCounter>(n: u64) -> (f64, f64) {
    let copies = (200_000 / n).clamp(4, 2_000);
    let items: Vec<Vec<(u64, u128)>> = (0..copies).map(|s| stream(s, n)).collect();
    let before = LIVE.load(Ordering::Relaxed);
    let counters: Vec<C> = items.iter().map(|it| fill(it)).collect();
    let measured = (LIVE.load(Ordering::Relaxed) - before) as f64 / copies as f64
        - std::mem::size_of::<C>() as f64 * counters.capacity() as f64 / copies as f64;
    let reported = counters.iter().map(|c| c.heap_bytes()).sum::<usize>() as f64 / copies as f64;
    (measured, reported)
}

fn print_memory_table() {
    println!(
        "\n## memory per counter: heap bytes measured by the allocator (heap_bytes() in brackets)"
    );
    println!(
        "| distinct values | compact ({} B inline) | exact ({} B inline) | hllpp ({} B inline) |",
        std::mem::size_of::<Compact>(),
        std::mem::size_of::<Exact>(),
        std::mem::size_of::<Hllpp>()
    );
    println!("|---|---|---|---|");
    for n in [0u64, 1, 10, 100, 1_000, 100_000] {
        let cell = |(m, r): (f64, f64)| format!("{m:.0} ({r:.0})");
        let n1 = n.max(1);
        let row = if n == 0 {
            let zero = |b: usize| format!("{b} ({b})");
            [
                zero(Compact::default().heap_bytes()),
                zero(Exact::default().heap_bytes()),
                zero(Hllpp::default().heap_bytes()),
            ]
        } else {
            [
                cell(memory_row::<Compact>(n1)),
                cell(memory_row::<Exact>(n1)),
                cell(memory_row::<Hllpp>(n1)),
            ]
        };
        println!("| {n} | {} | {} | {} |", row[0], row[1], row[2]);
    }
}

/// Mean relative error, root mean square relative error and worst |relative error| over `seeds` runs.
fn accuracy_row<C: DistinctCounter>(n: u64, seeds: u64) -> (f64, f64, f64) {
    let errs: Vec<f64> = (0..seeds)
        .map(|s| {
            let mut c: C = fill(&stream(1_000 + s, n));
            (c.estimate().value as f64 - n as f64) / n as f64
        })
        .collect();
    let k = errs.len() as f64;
    let mean = errs.iter().sum::<f64>() / k;
    let rmse = (errs.iter().map(|e| e * e).sum::<f64>() / k).sqrt();
    let worst = errs.iter().fold(0.0f64, |w, e| w.max(e.abs()));
    (mean, rmse, worst)
}

fn print_accuracy_table() {
    println!("\n## relative error: mean (bias) / rms / worst, in percent; theory 1.04/sqrt(4096) = 1.625 % rms");
    println!("| distinct values | runs | compact | hllpp |");
    println!("|---|---|---|---|");
    for (n, seeds) in [
        (100, 200),
        (384, 200),
        (1_000, 200),
        (3_000, 200),
        (10_000, 200),
        (30_000, 100),
        (100_000, 100),
        (1_000_000, 20),
    ] {
        let cell = |(m, r, w): (f64, f64, f64)| {
            format!("{:+.2} / {:.2} / {:.2}", 100.0 * m, 100.0 * r, 100.0 * w)
        };
        println!(
            "| {n} | {seeds} | {} | {} |",
            cell(accuracy_row::<Compact>(n, seeds)),
            cell(accuracy_row::<Hllpp>(n, seeds))
        );
    }
}

fn bench_backend<C: DistinctCounter>(c: &mut Criterion) {
    let name = C::NAME;
    // Small sets: 1000 keys with 8 distinct values each, every value seen twice (the common host).
    let small: Vec<Vec<(u64, u128)>> = (0..1_000)
        .map(|s| {
            let mut v = stream(s, 8);
            v.extend_from_within(..);
            v
        })
        .collect();
    let mut g = c.benchmark_group("insert");
    g.throughput(Throughput::Elements(16_000));
    g.bench_function(format!("{name}/1000 keys x 8 distinct x2"), |b| {
        b.iter_batched(
            || vec![C::default(); 1_000],
            |mut keys| {
                for (k, items) in keys.iter_mut().zip(&small) {
                    for &(h, v) in items {
                        k.insert(h, v);
                    }
                }
                keys
            },
            BatchSize::LargeInput,
        )
    });
    // A mid-size host: 300 distinct values repeated 10 times (Compact's exact array, linear search).
    let mid: Vec<(u64, u128)> = (0..10).flat_map(|_| stream(7, 300)).collect();
    g.throughput(Throughput::Elements(mid.len() as u64));
    g.bench_function(format!("{name}/1 key x 300 distinct x10"), |b| {
        b.iter_batched(
            C::default,
            |mut k| {
                mid.iter().for_each(|&(h, v)| k.insert(h, v));
                k
            },
            BatchSize::SmallInput,
        )
    });
    // A scanner: one key, 1 M distinct values.
    let large = stream(9, 1_000_000);
    g.throughput(Throughput::Elements(large.len() as u64));
    g.bench_function(format!("{name}/1 key x 1M distinct"), |b| {
        b.iter_batched(
            C::default,
            |mut k| {
                large.iter().for_each(|&(h, v)| k.insert(h, v));
                k
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();

    let mut g = c.benchmark_group("merge");
    for (label, n) in [("100+100", 100u64), ("100k+100k", 100_000)] {
        let a: C = fill(&stream(1, n));
        let b: C = fill(&stream(2, n));
        g.bench_function(format!("{name}/{label}"), |bch| {
            bch.iter_batched(
                || a.clone(),
                |mut x| {
                    x.merge(black_box(&b));
                    x
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();

    let mut g = c.benchmark_group("estimate");
    for (label, n) in [("100", 100u64), ("100k", 100_000)] {
        let a: C = fill(&stream(3, n));
        g.bench_function(format!("{name}/{label}"), |bch| {
            bch.iter_batched(
                || a.clone(),
                |mut x| black_box(x.estimate()),
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn main() {
    let tables_only = std::env::args().any(|a| a == "--tables-only");
    let filtered = std::env::args().skip(1).any(|a| !a.starts_with('-'));
    if tables_only || !filtered {
        print_memory_table();
        print_accuracy_table();
    }
    if tables_only {
        return;
    }
    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    bench_backend::<Compact>(&mut c);
    bench_backend::<Exact>(&mut c);
    bench_backend::<Hllpp>(&mut c);
    c.final_summary();
}
