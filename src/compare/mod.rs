//! How well a sketch counter's findings and counts agree with the exact counter's, rule by rule.
//!
//! The exact run is the reference. A key is a *finding* when its count is strictly above the rule's threshold
//! (as in a scan). A key is *near* when its exact count is at least [`NEAR_FRACTION`] x the threshold: the relative
//! error of the counted values is measured over near keys, where an error can move a key across the threshold.
//!
//! Feed the exact side first ([`RuleAccumulator::exact`]), then the sketch side ([`RuleAccumulator::sketch`]): the
//! accumulator keeps only the near keys of the exact side (or every key when asked, for a plot), so two scans of
//! millions of keys can be compared without holding both.

pub mod plot;

use crate::engine::{Counted, KeyParts};
use std::collections::HashMap;

/// Keys whose exact count is at least this share of the threshold are "near": their errors are measured.
pub const NEAR_FRACTION: f64 = 0.5;

/// The smallest exact count of a near key for threshold `above`.
pub fn near_from(above: u64) -> u64 {
    (above as f64 * NEAR_FRACTION).ceil() as u64
}

/// Absolute relative errors `|estimate - exact| / exact` summarised.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct ErrorStats {
    /// Keys measured.
    pub keys: usize,
    /// Mean absolute relative error.
    pub mean: f64,
    /// Mean signed relative error (positive: the sketch over-counts).
    pub bias: f64,
    /// Nearest-rank percentiles of the absolute relative error.
    pub median: f64,
    pub p99: f64,
    pub max: f64,
}

impl ErrorStats {
    /// Summarise signed relative errors. Percentiles are nearest-rank: the smallest value with at least p % of
    /// the values at or below it (so the median of an even count is the lower middle).
    pub fn of(signed: &[f64]) -> ErrorStats {
        if signed.is_empty() {
            return ErrorStats::default();
        }
        let mut abs: Vec<f64> = signed.iter().map(|e| e.abs()).collect();
        abs.sort_by(f64::total_cmp);
        let n = abs.len();
        ErrorStats {
            keys: n,
            mean: abs.iter().sum::<f64>() / n as f64,
            bias: signed.iter().sum::<f64>() / n as f64,
            median: nearest_rank(&abs, 50.0),
            p99: nearest_rank(&abs, 99.0),
            max: abs[n - 1],
        }
    }
}

/// The nearest-rank `p`-th percentile of sorted, non-empty `v`.
pub fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let n = sorted.len();
    let rank = ((p / 100.0) * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// One rule compared.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleComparison {
    pub rule: String,
    pub above: u64,
    /// Smallest exact count of a near key.
    pub near_from: u64,
    /// Keys each side tracked.
    pub keys_exact: u64,
    pub keys_sketch: u64,
    /// Findings of each side, and how they overlap.
    pub exact_findings: u64,
    pub sketch_findings: u64,
    pub true_positives: u64,
    pub false_positives: u64,
    pub false_negatives: u64,
    /// `tp / (tp + fp)`; `None` when the sketch found nothing.
    pub precision: Option<f64>,
    /// `tp / (tp + fn)`; `None` when the exact counter found nothing.
    pub recall: Option<f64>,
    /// Relative error of the sketch's counts over near keys.
    pub error: ErrorStats,
    /// The smallest exact count whose key the sketch counted differently, over the kept keys (every key when
    /// kept with `keep_all`, see `all_keys`); `None` when every kept key was counted exactly.
    pub smallest_inexact: Option<u64>,
    /// Whether every key was kept (so `smallest_inexact` speaks for all keys, not only near ones).
    pub all_keys: bool,
    /// The keys the two sides disagree on (found by one, not the other), in key order, at most [`MAX_LISTED`].
    pub mismatches: Vec<Mismatch>,
}

/// Mismatches listed per rule; the counts above are complete.
pub const MAX_LISTED: usize = 1000;

/// A key one side found and the other did not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mismatch {
    pub key: KeyParts,
    /// The exact count; `None` when it is below the near range (the key was not kept).
    pub exact: Option<u64>,
    /// The sketch's count; `None` when it did not count the key at all.
    pub sketch: Option<u64>,
}

/// What is known of a kept key: its exact count, the sketch's count once seen, and whether each side reported it.
#[derive(Debug, Clone, Copy)]
struct Kept {
    exact: u64,
    sketch: Option<u64>,
    found: bool,
    exact_found: bool,
}

/// Builds a [`RuleComparison`] from the exact side's counts, then the sketch side's counts and findings.
///
/// The sketch side's counts (what its first pass counted) give the errors; its findings (after admission and,
/// when it ran, the verify pass) give precision and recall. They differ: a scan with a verify pass reports exact
/// counts of keys whose first-pass counts were short.
pub struct RuleAccumulator {
    rule: String,
    above: u64,
    keep_all: bool,
    kept: HashMap<KeyParts, Kept>,
    keys_exact: u64,
    keys_sketch: u64,
    exact_findings: u64,
    sketch_findings: u64,
    true_positives: u64,
    /// Sketch findings whose key was not kept (exact count below the near range).
    far_false: Vec<Mismatch>,
}

impl RuleAccumulator {
    /// `keep_all` keeps every exact key (not only near ones) so [`RuleAccumulator::pairs`] covers all keys.
    pub fn new(rule: &str, above: u64, keep_all: bool) -> RuleAccumulator {
        RuleAccumulator {
            rule: rule.to_string(),
            above,
            keep_all,
            kept: HashMap::new(),
            keys_exact: 0,
            keys_sketch: 0,
            exact_findings: 0,
            sketch_findings: 0,
            true_positives: 0,
            far_false: Vec::new(),
        }
    }

    /// One key of the exact run. Call for every exact key before any sketch key.
    pub fn exact(&mut self, key: KeyParts, value: u64) {
        self.keys_exact += 1;
        if self.keep_all || value >= near_from(self.above) {
            self.kept.insert(
                key,
                Kept {
                    exact: value,
                    sketch: None,
                    found: false,
                    exact_found: false,
                },
            );
        }
    }

    /// One key the exact run reported, with its count. Findings come from the run and not from the counts, since
    /// the rule decides them: thresholds per list, `flows_above`, one finding per burst of hopping windows. Call
    /// after the exact run's counts and before any sketch key.
    pub fn exact_finding(&mut self, key: KeyParts, value: u64) {
        self.exact_findings += 1;
        self.kept
            .entry(key)
            .or_insert(Kept {
                exact: value,
                sketch: None,
                found: false,
                exact_found: false,
            })
            .exact_found = true;
    }

    /// One key the sketch run counted (in its first pass).
    pub fn sketch(&mut self, key: KeyParts, value: u64) {
        self.keys_sketch += 1;
        if let Some(k) = self.kept.get_mut(&key) {
            k.sketch = Some(value);
        }
    }

    /// One key the sketch run reported, with the count it reported.
    pub fn sketch_finding(&mut self, key: KeyParts, value: u64) {
        self.sketch_findings += 1;
        if let Some(k) = self.kept.get_mut(&key) {
            k.found = true;
            if k.exact_found {
                self.true_positives += 1;
            }
        }
        // A key not kept has an exact count below near_from <= above (or none at all): a found one is false.
        else if self.far_false.len() < MAX_LISTED {
            self.far_false.push(Mismatch {
                key,
                exact: None,
                sketch: Some(value),
            });
        }
    }

    /// `(exact, estimate)` of every kept key the sketch also counted.
    pub fn pairs(&self) -> Vec<(u64, u64)> {
        self.kept
            .values()
            .filter_map(|k| k.sketch.map(|s| (k.exact, s)))
            .collect()
    }

    pub fn finish(&self) -> RuleComparison {
        let near = near_from(self.above);
        let signed: Vec<f64> = self
            .kept
            .values()
            .filter(|k| k.exact >= near && k.exact > 0)
            // A near key the sketch never counted is counted as 0 by it: a 100 % error.
            .map(|k| (k.sketch.unwrap_or(0) as f64 - k.exact as f64) / k.exact as f64)
            .collect();
        let tp = self.true_positives;
        let fp = self.sketch_findings - tp;
        let fnn = self.exact_findings - tp;
        let mut mismatches: Vec<Mismatch> = self
            .kept
            .iter()
            .filter(|(_, k)| k.exact_found != k.found)
            .map(|(&key, k)| Mismatch {
                key,
                exact: Some(k.exact),
                sketch: k.sketch,
            })
            .chain(self.far_false.iter().copied())
            .collect();
        mismatches.sort_by_key(|m| m.key);
        let smallest_inexact = self
            .kept
            .values()
            .filter(|k| k.sketch != Some(k.exact))
            .map(|k| k.exact)
            .min();
        mismatches.truncate(MAX_LISTED);
        let ratio = |num: u64, den: u64| (den > 0).then(|| num as f64 / den as f64);
        RuleComparison {
            rule: self.rule.clone(),
            above: self.above,
            near_from: near,
            keys_exact: self.keys_exact,
            keys_sketch: self.keys_sketch,
            exact_findings: self.exact_findings,
            sketch_findings: self.sketch_findings,
            true_positives: tp,
            false_positives: fp,
            false_negatives: fnn,
            precision: ratio(tp, self.sketch_findings),
            recall: ratio(tp, self.exact_findings),
            error: ErrorStats::of(&signed),
            smallest_inexact,
            all_keys: self.keep_all,
            mismatches,
        }
    }
}

/// Compare one rule's counts from a sketch run against the exact run's (the sketch reports what it counted over the
/// threshold, as a single pass without admission does).
pub fn compare_rule(
    rule: &str,
    above: u64,
    sketch: &[Counted],
    exact: &[Counted],
) -> RuleComparison {
    let mut acc = RuleAccumulator::new(rule, above, false);
    for c in exact {
        acc.exact(c.key, c.value.value);
    }
    for c in exact.iter().filter(|c| c.value.value > above) {
        acc.exact_finding(c.key, c.value.value);
    }
    for c in sketch {
        acc.sketch(c.key, c.value.value);
        if c.value.value > above {
            acc.sketch_finding(c.key, c.value.value);
        }
    }
    acc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{KeyValue, Seen};
    use crate::record::Addr;
    use crate::sketch::Estimate;

    fn counted(host: u32, value: u64) -> Counted {
        Counted {
            key: KeyParts {
                addr: Addr::v4(host),
                extra: KeyValue::None,
                window: 0,
            },
            value: Estimate::exact(value),
            seen: Seen::default(),
            epoch: 0,
            missed_at_most: 0,
            sample: None,
        }
    }

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(nearest_rank(&v, 50.0), 50.0);
        assert_eq!(nearest_rank(&v, 99.0), 99.0);
        assert_eq!(nearest_rank(&v, 100.0), 100.0);
        assert_eq!(nearest_rank(&[1.0, 2.0, 3.0, 4.0], 50.0), 2.0);
        assert_eq!(nearest_rank(&[7.0], 99.0), 7.0);
        assert_eq!(nearest_rank(&[1.0, 2.0, 3.0], 0.0), 1.0);
    }

    #[test]
    fn error_stats_by_hand() {
        let s = ErrorStats::of(&[0.1, -0.2, 0.0, 0.3]);
        assert_eq!(s.keys, 4);
        assert!((s.mean - 0.15).abs() < 1e-12);
        assert!((s.bias - 0.05).abs() < 1e-12);
        // Sorted |e|: 0, 0.1, 0.2, 0.3: nearest-rank median is the 2nd, p99 the 4th.
        assert_eq!(s.median, 0.1);
        assert_eq!(s.p99, 0.3);
        assert_eq!(s.max, 0.3);
        assert_eq!(ErrorStats::of(&[]), ErrorStats::default());
    }

    #[test]
    fn precision_recall_and_near_errors() {
        // Threshold 100, near from 50.
        let exact = [
            counted(1, 150), // found by both
            counted(2, 101), // missed by the sketch (99)
            counted(3, 95),  // false positive (sketch 104), near
            counted(4, 40),  // false positive far below (sketch 120), not near
            counted(5, 60),  // near, agreed not found
            counted(6, 10),  // far, agreed
        ];
        let sketch = [
            counted(1, 153),
            counted(2, 99),
            counted(3, 104),
            counted(4, 120),
            counted(5, 60),
            counted(6, 10),
        ];
        let c = compare_rule("FS1", 100, &sketch, &exact);
        assert_eq!(c.near_from, 50);
        assert_eq!((c.keys_exact, c.keys_sketch), (6, 6));
        assert_eq!((c.exact_findings, c.sketch_findings), (2, 3));
        assert_eq!(
            (c.true_positives, c.false_positives, c.false_negatives),
            (1, 2, 1)
        );
        assert_eq!(c.precision, Some(1.0 / 3.0));
        assert_eq!(c.recall, Some(0.5));
        // Near keys: 150 (+2 %), 101 (-1.98 %), 95 (+9.47 %), 60 (0): key 4 (40 < 50) is not measured.
        let want = [3.0 / 150.0, 2.0 / 101.0, 9.0 / 95.0, 0.0];
        assert_eq!(c.error.keys, 4);
        let mean = want.iter().sum::<f64>() / 4.0;
        assert!((c.error.mean - mean).abs() < 1e-12);
        assert!((c.error.bias - (3.0 / 150.0 - 2.0 / 101.0 + 9.0 / 95.0) / 4.0).abs() < 1e-12);
        assert_eq!(c.error.median, 2.0 / 101.0);
        assert_eq!(c.error.max, 9.0 / 95.0);
        // Keys 2, 3, 4 disagree; key 4's exact count is below the near range, so it is not known.
        let m: Vec<(Addr, Option<u64>, Option<u64>)> = c
            .mismatches
            .iter()
            .map(|m| (m.key.addr, m.exact, m.sketch))
            .collect();
        assert_eq!(
            m,
            vec![
                (Addr::v4(2), Some(101), Some(99)),
                (Addr::v4(3), Some(95), Some(104)),
                (Addr::v4(4), None, Some(120)),
            ]
        );
    }

    #[test]
    fn agreement_and_empty_sides() {
        let exact = [counted(1, 500), counted(2, 3)];
        let c = compare_rule("FS1", 100, &exact, &exact);
        assert_eq!((c.precision, c.recall), (Some(1.0), Some(1.0)));
        assert_eq!(c.error.max, 0.0);
        let c = compare_rule("FS1", 2000, &exact, &exact);
        assert_eq!((c.precision, c.recall), (None, None));
        assert_eq!(c.error.keys, 0);
        // A near key the sketch never saw counts as a 100 % error and a miss.
        let c = compare_rule("FS1", 100, &[], &exact);
        assert_eq!(c.recall, Some(0.0));
        assert_eq!(c.error.max, 1.0);
    }

    #[test]
    fn pairs_cover_all_keys_when_asked() {
        let mut acc = RuleAccumulator::new("FS1", 100, true);
        acc.exact(counted(1, 5).key, 5);
        acc.exact(counted(2, 500).key, 500);
        acc.exact_finding(counted(2, 500).key, 500);
        acc.sketch(counted(1, 5).key, 5);
        acc.sketch(counted(2, 510).key, 510);
        acc.sketch_finding(counted(2, 510).key, 510);
        let mut p = acc.pairs();
        p.sort();
        assert_eq!(p, vec![(5, 5), (500, 510)]);
        let c = acc.finish();
        assert_eq!((c.smallest_inexact, c.all_keys), (Some(500), true));
        // Near-only keeping drops the small key.
        let mut acc = RuleAccumulator::new("FS1", 100, false);
        acc.exact(counted(1, 5).key, 5);
        acc.sketch(counted(1, 5).key, 5);
        assert!(acc.pairs().is_empty());
    }
}
