//! Properties every backend must have: merge is a union (associative, commutative, `Default` is the identity,
//! sharded-then-merged equals sequential), clones are independent, and the estimate is within a stated number of
//! sigmas with no bias. The truth is computed independently: the values are distinct by construction, and `Exact`
//! is cross-checked against that count.

use super::*;
use crate::hash::hash128;

/// Values of run `seed`: `n` distinct u128s, disjoint across seeds.
fn values(seed: u64, n: u64) -> impl DoubleEndedIterator<Item = u128> {
    (0..n).map(move |i| u128::from(seed) << 64 | u128::from(i))
}

fn fill<C: DistinctCounter>(vals: impl IntoIterator<Item = u128>) -> C {
    let mut c = C::default();
    for v in vals {
        c.insert(hash128(v), v);
    }
    c
}

fn est<C: DistinctCounter>(c: &C) -> Estimate {
    c.clone().estimate()
}

/// Three overlapping sets per size triple, covering empty, single, exact-array and sketch states.
fn triples() -> Vec<[Vec<u128>; 3]> {
    let sizes = [
        (0, 0, 0),
        (1, 0, 1),
        (2, 3, 1),
        (100, 300, 200),
        (383, 1, 383),
        (2_000, 50, 700),
        (20_000, 30_000, 5),
    ];
    sizes
        .iter()
        .map(|&(a, b, c)| {
            // b and c overlap a in their first half.
            let a_vals: Vec<u128> = values(1, a).collect();
            let b_vals: Vec<u128> = values(1, b / 2).chain(values(2, b - b / 2)).collect();
            let c_vals: Vec<u128> = values(1, c / 2).chain(values(3, c - c / 2)).collect();
            [a_vals, b_vals, c_vals]
        })
        .collect()
}

fn merged<C: DistinctCounter>(mut a: C, b: &C) -> C {
    a.merge(b);
    a
}

fn merge_is_a_union<C: DistinctCounter>() {
    for [a, b, c] in triples() {
        let (ca, cb, cc): (C, C, C) = (fill(a.clone()), fill(b.clone()), fill(c.clone()));
        let label = format!("{} sizes {} {} {}", C::NAME, a.len(), b.len(), c.len());
        // Identity on both sides.
        assert_eq!(
            est(&merged(ca.clone(), &C::default())),
            est(&ca),
            "{label}: x + 0"
        );
        assert_eq!(est(&merged(C::default(), &ca)), est(&ca), "{label}: 0 + x");
        // Commutative.
        assert_eq!(
            est(&merged(ca.clone(), &cb)),
            est(&merged(cb.clone(), &ca)),
            "{label}: a+b vs b+a"
        );
        // Associative.
        let left = merged(merged(ca.clone(), &cb), &cc);
        let right = merged(ca.clone(), &merged(cb.clone(), &cc));
        assert_eq!(est(&left), est(&right), "{label}: (a+b)+c vs a+(b+c)");
        // Idempotent: a set united with itself.
        assert_eq!(est(&merged(ca.clone(), &ca)), est(&ca), "{label}: a+a");
        // Equal to inserting everything into one counter.
        let sequential: C = fill(a.iter().chain(&b).chain(&c).copied());
        assert_eq!(
            est(&left),
            est(&sequential),
            "{label}: merged vs sequential"
        );
    }
}

fn sharded_equals_sequential<C: DistinctCounter>() {
    for n in [0u64, 1, 7, 383, 384, 5_000, 100_000] {
        // Duplicates too: every value twice, in a different order.
        let all: Vec<u128> = values(4, n).chain(values(4, n).rev()).collect();
        let sequential: C = fill(all.iter().copied());
        for shards in [2usize, 3, 8] {
            // Route by hash as the engine does, and also round-robin (the same value can land in several shards).
            let mut by_hash = vec![C::default(); shards];
            let mut round_robin = vec![C::default(); shards];
            for (i, &v) in all.iter().enumerate() {
                by_hash[(hash128(v) % shards as u64) as usize].insert(hash128(v), v);
                round_robin[i % shards].insert(hash128(v), v);
            }
            for parts in [by_hash, round_robin] {
                let total = parts.iter().fold(C::default(), |acc, p| merged(acc, p));
                assert_eq!(
                    est(&total),
                    est(&sequential),
                    "{}: n={n} shards={shards}",
                    C::NAME
                );
            }
        }
    }
}

fn clones_are_independent<C: DistinctCounter>() {
    for n in [0u64, 1, 2, 383, 384, 10_000] {
        let original: C = fill(values(5, n));
        let before = est(&original);
        let mut copy = original.clone();
        for v in values(6, 2_000) {
            copy.insert(hash128(v), v);
        }
        assert_eq!(est(&original), before, "{}: n={n}", C::NAME);
        assert!(est(&copy).value > before.value, "{}: n={n}", C::NAME);
        drop(copy);
        assert_eq!(est(&original), before, "{}: n={n}", C::NAME);
    }
}

/// Relative errors of `seeds` runs at cardinality `n`; also checks each run is within 4 sigma.
fn relative_errors<C: DistinctCounter>(n: u64, seeds: u64) -> Vec<f64> {
    (0..seeds)
        .map(|seed| {
            let mut c: C = fill(values(100 + seed, n));
            let e = c.estimate();
            let err = (e.value as f64 - n as f64) / n as f64;
            if e.exact {
                assert_eq!(e.value, n, "{} claims exact", C::NAME);
            } else {
                assert!(
                    err.abs() <= 4.0 * e.rel_std_error,
                    "{}: n={n} seed={seed}: estimate {} is {:.2} sigma off",
                    C::NAME,
                    e.value,
                    err / e.rel_std_error
                );
            }
            err
        })
        .collect()
}

/// Accuracy within 4 sigma per run, and a mean bias within 4 standard errors of the mean.
fn accurate_and_unbiased<C: DistinctCounter>(plan: &[(u64, u64)]) {
    for &(n, seeds) in plan {
        let errs = relative_errors::<C>(n, seeds);
        let mean = errs.iter().sum::<f64>() / errs.len() as f64;
        let sigma = 1.04 / 64.0;
        assert!(
            mean.abs() <= 4.0 * sigma / (seeds as f64).sqrt(),
            "{}: n={n}: mean relative error {mean:.4} over {seeds} seeds",
            C::NAME
        );
    }
}

fn heap_bytes_are_sane<C: DistinctCounter>(upper_per_value: usize, cap: Option<usize>) {
    assert_eq!(
        C::default().heap_bytes(),
        0,
        "{}: idle counters allocate nothing",
        C::NAME
    );
    let mut c = C::default();
    for (i, v) in values(7, 100_000).enumerate() {
        c.insert(hash128(v), v);
        if (i + 1).is_power_of_two() {
            let b = c.heap_bytes();
            assert!(
                b <= upper_per_value * (i + 1) + 4096,
                "{}: {b} bytes for {} values",
                C::NAME,
                i + 1
            );
            if let Some(cap) = cap {
                assert!(b <= cap, "{}: {b} bytes exceed the cap {cap}", C::NAME);
            }
        }
    }
}

#[test]
fn compact_merge_is_a_union() {
    merge_is_a_union::<Compact>();
}
#[test]
fn exact_merge_is_a_union() {
    merge_is_a_union::<Exact>();
}
#[test]
fn hllpp_merge_is_a_union() {
    merge_is_a_union::<Hllpp>();
}

#[test]
fn compact_sharded_equals_sequential() {
    sharded_equals_sequential::<Compact>();
}
#[test]
fn exact_sharded_equals_sequential() {
    sharded_equals_sequential::<Exact>();
}
#[test]
fn hllpp_sharded_equals_sequential() {
    sharded_equals_sequential::<Hllpp>();
}

#[test]
fn compact_clones_are_independent() {
    clones_are_independent::<Compact>();
}
#[test]
fn exact_clones_are_independent() {
    clones_are_independent::<Exact>();
}
#[test]
fn hllpp_clones_are_independent() {
    clones_are_independent::<Hllpp>();
}

#[test]
fn compact_is_accurate_and_unbiased() {
    // The small and mid range (384..~10 k) is where classic HLL needs linear counting and bias tables.
    accurate_and_unbiased::<Compact>(&[
        (1_000, 64),
        (3_000, 64),
        (10_000, 64),
        (100_000, 24),
        (1_000_000, 4),
    ]);
}
#[test]
fn exact_is_exact() {
    accurate_and_unbiased::<Exact>(&[(1_000, 4), (10_000, 2), (100_000, 1)]);
}
#[test]
fn hllpp_is_accurate_and_unbiased() {
    accurate_and_unbiased::<Hllpp>(&[(1_000, 16), (10_000, 16), (100_000, 8), (1_000_000, 2)]);
}

#[test]
fn heap_bytes_sane() {
    heap_bytes_are_sane::<Compact>(8 * 2, Some(hll::BYTES));
    heap_bytes_are_sane::<Exact>(2 * 17 + 1, None);
    heap_bytes_are_sane::<Hllpp>(64, None);
}

#[test]
fn exact_agrees_with_the_construction() {
    // Exact is the reference: check it against the count known by construction, with duplicates and merges.
    let mut e: Exact = fill(values(8, 5_000).chain(values(8, 2_500)));
    assert_eq!(e.estimate(), Estimate::exact(5_000));
    e.merge(&fill(values(9, 10)));
    assert_eq!(e.estimate(), Estimate::exact(5_010));
}
