//! What a whole run says besides its findings: totals, and the guarantee the findings carry. The summary goes to
//! stderr as one line for people, and ends JSON output as a record of its own (`"type": "summary"`), so a run
//! without findings is not an empty output and a machine can tell a verified scan from a one-pass one.

use super::ReportMeta;
use serde_json::{json, Value};

/// What a scan's findings promise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guarantee {
    /// The verify pass counted every candidate from every flow: the findings are exactly those of exact counting,
    /// with exact values (a distinct count past the verify pass's exact limit says it is an estimate).
    Verified,
    /// One pass: each rule's admission bound holds (no key at `(1 + a) T` or more missed, none below `T`
    /// reported, a count may lack up to `A - 1`).
    OnePass(OnePassWhy),
    /// Merged saved states, verified over their inputs: counts are exact and no finding is false, but a key that
    /// none of the `n` states admitted (at most the sum of their `A - 1` of its measure, which reaches a threshold
    /// when `n * a >= 1`) can be missing.
    VerifiedAdmitted,
}

/// Why a scan ran one pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnePassWhy {
    /// The user asked for it (`--no-verify`).
    Asked,
    /// An input is standard input, which cannot be read twice.
    Stdin,
    /// Merged saved states whose inputs are gone or changed: the bound of `n` states adds up.
    Merged,
}

impl Guarantee {
    pub fn verified(self) -> bool {
        self == Guarantee::Verified
    }

    /// The short name JSON gives it.
    pub fn name(self) -> &'static str {
        match self {
            Guarantee::Verified => "verified",
            Guarantee::OnePass(_) => "one-pass",
            Guarantee::VerifiedAdmitted => "verified-admitted",
        }
    }

    /// One sentence for people.
    pub fn describe(self) -> &'static str {
        match self {
            Guarantee::Verified => {
                "verified: the keys that could be over a threshold were counted again from every flow; counts are exact"
            }
            Guarantee::OnePass(OnePassWhy::Asked) => {
                "one pass (--no-verify): no key at (1+a) times a threshold is missed, none below it is reported, and a count may lack up to A-1"
            }
            Guarantee::OnePass(OnePassWhy::Merged) => {
                "one pass over merged saved states (their inputs are gone or changed): for n states of admission fraction a, no key at (1+n*a) times a threshold is missed, none below it is reported, and a count may lack up to the sum of the states' A-1"
            }
            Guarantee::VerifiedAdmitted => {
                "verified over merged saved states: counts are exact and every finding is real, but a key no state admitted (up to the sum of the states' A-1 of its flows, n*a >= 1 here) can be missing"
            }
            Guarantee::OnePass(OnePassWhy::Stdin) => {
                "one pass (standard input cannot be read twice): no key at (1+a) times a threshold is missed, none below it is reported, and a count may lack up to A-1"
            }
        }
    }
}

/// Admission as it ended for one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleAdmission {
    pub id: String,
    /// Flows the rule's filter matched.
    pub flows: u64,
    /// The admission threshold `A` in force at the end (0 when every key was admitted).
    pub admit_at: u64,
    /// `A / T`, the fraction in force (0 when every key was admitted).
    pub admit_fraction: f64,
    /// Times `A` was doubled to stay within the memory budget.
    pub raises: u32,
    /// The tables outgrew the budget with nothing left to tighten.
    pub over_budget: bool,
    pub keys_admitted: usize,
    /// Keys taken out of the tables when admission was tightened (their bound was below `A`).
    pub keys_evicted: u64,
    /// An estimate of the distinct keys the rule saw, when its sketch could say.
    pub keys_seen: Option<u64>,
}

/// The totals of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub inputs: u64,
    /// Files found in folders that are not flow files, skipped (not in `inputs`).
    pub inputs_skipped: usize,
    pub inputs_failed: u64,
    pub errors: usize,
    pub warnings: usize,
    pub flows: u64,
    pub skipped: u64,
    pub findings: usize,
    pub keys: usize,
    pub peak_bytes: Option<u64>,
    pub secs: f64,
    pub guarantee: Guarantee,
    /// Saved states merged into the findings (`flowsketch merge`).
    pub merged: Option<u32>,
    pub rules: Vec<RuleAdmission>,
}

impl Summary {
    /// The JSON record that ends JSON output.
    pub fn object(&self, meta: &ReportMeta) -> Value {
        json!({
            "type": "summary",
            "inputs": self.inputs,
            "inputs_failed": self.inputs_failed,
            "inputs_skipped": self.inputs_skipped,
            "errors": self.errors,
            "warnings": self.warnings,
            "flows": self.flows,
            "records_skipped": self.skipped,
            "findings": self.findings,
            "keys_tracked": self.keys,
            "peak_memory_bytes": self.peak_bytes,
            "seconds": (self.secs * 1000.0).round() / 1000.0,
            "guarantee": self.guarantee.name(),
            "guarantee_text": self.guarantee.describe(),
            "states_merged": self.merged,
            "rules": self.rules.iter().map(|r| json!({
                "rule": r.id,
                "flows": r.flows,
                "admit_at": r.admit_at,
                "admit_fraction": r.admit_fraction,
                "admit_raised": r.raises,
                "over_budget": r.over_budget,
                "keys_admitted": r.keys_admitted,
                "keys_evicted": r.keys_evicted,
                "keys_seen": r.keys_seen,
            })).collect::<Vec<_>>(),
            "definitions": meta.definitions_version,
            "counter": meta.counter,
        })
    }
}
