//! Findings and the writers that print them: aligned text for people, JSON lines for machines, CSV for
//! spreadsheets. Each finding becomes one [`row::Row`], its fields worked out once; one file per format writes it.

mod bursts;
mod csv;
mod json;
pub mod row;
pub mod summary;
mod text;
pub mod time;

use crate::engine::{Counted, KeyParts, ScanResult};
use crate::rules::{CountSpec, Definitions, KeySpec, Severity};
use crate::sketch::DistinctCounter;
pub use bursts::merge_bursts;
use std::io::{self, Write};
use std::str::FromStr;

/// A host (or host and port, or pair) whose count went over a rule's threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub rule: String,
    pub name: String,
    pub severity: Severity,
    pub key_spec: KeySpec,
    pub key: KeyParts,
    pub count_spec: CountSpec,
    /// The counted value (an estimate unless `exact`).
    pub count: u64,
    pub exact: bool,
    /// Relative standard error of the estimate (one sigma); 0 when exact.
    pub rel_std_error: f64,
    pub above: u64,
    /// The window's length, when the rule has one (`key.window` is its index).
    pub window_ms: Option<u64>,
    /// Hopping windows: how far apart they start and how many overlapping windows over the threshold (one
    /// burst) the finding stands for; `None` for tumbling windows or none.
    pub hops: Option<Hops>,
    pub first_ms: u64,
    pub last_ms: u64,
    /// Flows that matched the rule for this key.
    pub flows: u64,
    /// Counted again from every flow by the verify pass.
    pub verified: bool,
    /// The most of the count (and of `flows`) a single pass may have missed before the key was admitted (`A - 1`;
    /// 0 when verified or when every flow was counted).
    pub missed_at_most: u64,
    /// The rule's description (`about`).
    pub about: String,
    /// What the finding is about: bytes, packets, top peers, ports and protocols (from the verify pass).
    pub evidence: Option<crate::engine::evidence::Evidence>,
}

impl Finding {
    /// A finding of `rule` for `key`: its count, and the flows and times `seen`.
    pub fn new(
        rule: &crate::rules::Rule,
        key: KeyParts,
        value: crate::sketch::Estimate,
        seen: crate::engine::Seen,
        missed_at_most: u64,
        verified: bool,
    ) -> Finding {
        Finding {
            rule: rule.id.clone(),
            name: rule.name.clone(),
            severity: rule.severity,
            key_spec: rule.key,
            key,
            count_spec: rule.count,
            count: value.value,
            exact: value.exact && missed_at_most == 0,
            rel_std_error: value.rel_std_error,
            above: rule.above_for_key(key.addr),
            window_ms: rule.window.map(|w| w.len_ms),
            hops: rule.window.filter(|w| w.step_ms != w.len_ms).map(|w| Hops {
                step_ms: w.step_ms,
                windows: 1,
            }),
            first_ms: seen.first_ms(),
            last_ms: seen.last_ms(),
            flows: seen.flows(),
            verified,
            missed_at_most,
            about: rule.about.clone(),
            evidence: None,
        }
    }

    /// The finding with its evidence.
    pub fn with_evidence(mut self, evidence: crate::engine::evidence::Evidence) -> Finding {
        self.evidence = Some(evidence);
        self
    }

    fn from_counted(rule: &crate::rules::Rule, c: &Counted) -> Finding {
        Finding::new(rule, c.key, c.value, c.seen, 0, false)
    }

    /// The key as people read it: `10.0.0.128`, `10.0.0.128 port 80`, `10.0.0.128 > 10.0.0.1`.
    pub fn key_text(&self) -> String {
        row::rule_key_text(&self.key_spec, &self.key)
    }

    /// Start and end of the finding's window in ms, when the rule has one (the best window of a burst).
    pub fn window_bounds(&self) -> Option<(u64, u64)> {
        self.window_ms.map(|w| {
            let step = self.hops.map_or(w, |h| h.step_ms);
            let start = self.key.window.saturating_mul(step);
            (start, start.saturating_add(w))
        })
    }
}

/// Hopping windows of a finding: window `k` starts at `k * step_ms`. One burst is over the threshold in several
/// overlapping windows; they are reported as one finding for the window with the highest count, and `windows`
/// says how many there were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hops {
    pub step_ms: u64,
    pub windows: u64,
}

/// Every finding of a scan, most severe first, then by rule, then by count.
pub fn findings<C: DistinctCounter>(
    defs: &Definitions,
    result: &mut ScanResult<C>,
) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, rule) in defs.rules.iter().enumerate() {
        for c in result.over(i, rule.min_above()) {
            if rule.fires(
                rule.above_for_key(c.key.addr),
                c.value.value,
                c.seen.flows(),
            ) {
                out.push(Finding::from_counted(rule, &c));
            }
        }
    }
    merge_bursts(&mut out);
    sort(&mut out);
    out
}

/// The order findings are printed in, the same on every run and thread count.
pub fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.rule.cmp(&b.rule))
            .then_with(|| b.count.cmp(&a.count))
            .then_with(|| a.key.cmp(&b.key))
    });
}

/// What every report says about where its findings came from.
#[derive(Debug, Clone)]
pub struct ReportMeta {
    pub definitions_version: String,
    pub definitions_origin: String,
    /// The counter backend: `compact`, `exact` or `hllpp`.
    pub counter: String,
}

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Csv,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Format, String> {
        match s {
            "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            _ => Err(format!("expected text, json or csv; found '{s}'")),
        }
    }
}

/// Write `findings` in `format`.
pub fn write(
    out: &mut dyn Write,
    format: Format,
    meta: &ReportMeta,
    findings: &[Finding],
) -> io::Result<()> {
    match format {
        Format::Text => text::write(out, meta, findings),
        Format::Json => json::write(out, meta, findings),
        Format::Csv => csv::write(out, meta, findings),
    }
}

#[cfg(test)]
mod tests;
