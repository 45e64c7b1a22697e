//! Reporting merged states as a scan reports: candidates from the merged tables, the verify pass over the inputs
//! the states cover when they are all still there and unchanged, else one-pass findings under the summed bound.
//!
//! Why this is exact when it verifies (docs/ACCURACY.md, "Merged states"): in each of the `n` scans a key's table
//! missed at most that scan's `A - 1` of its measure, and a key a scan never admitted has less than `A` there. So
//! a key's merged count misses at most `slack` = the sum of the scans' `A - 1`: the candidates (merged count plus
//! `slack` over the threshold, and the merged sketches' bound over it) hold every key over its threshold that some
//! scan admitted, and a key none admitted has at most `slack` in all. While `slack` stays at or below every
//! threshold (`n * a <= 1`), no such key can be a finding and the verified findings are exact counting's, as one
//! scan of all the inputs gives them.

use super::{read_path, SavedCounter, State, StateError};
use crate::engine::shard::shard_of;
use crate::engine::verify::{self, Candidates, Reread};
use crate::engine::{Footprint, InputError, KeyParts, ScanStats};
use crate::formats::detect::Kind;
use crate::formats::Opener;
use crate::input::{self, InputOptions, Source};
use crate::report::summary::{Guarantee, OnePassWhy};
use crate::report::Finding;
use crate::rules::{CountSpec, Definitions};
use crate::scanner::{upper, verified_findings, Progress, RuleStats, Scan, ScanConfig};
use crate::sketch::{Compact, DistinctCounter, Estimate, Exact};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

/// Read the states in `paths` (each a state directory or file), merge them and report. Every state is checked
/// against `defs` and against the states before it; the first that does not fit is refused with its file name.
pub fn merge_paths(
    defs: &Definitions,
    config: &ScanConfig,
    paths: &[PathBuf],
    progress: &Progress,
) -> Result<Scan, StateError> {
    let Some(first) = paths.first() else {
        return Err(StateError {
            file: "merge".into(),
            what: "no state to merge".into(),
        });
    };
    let (file, bytes) = read_path(first)?;
    match super::peek_counter(&bytes) {
        Some(2) => merge_as::<Exact>(defs, config, paths, (file, bytes), progress),
        // Anything else is checked (and refused) by the compact reader, which says what it found.
        _ => merge_as::<Compact>(defs, config, paths, (file, bytes), progress),
    }
}

fn merge_as<C: SavedCounter>(
    defs: &Definitions,
    config: &ScanConfig,
    paths: &[PathBuf],
    first: (PathBuf, Vec<u8>),
    progress: &Progress,
) -> Result<Scan, StateError> {
    let name = |p: &Path| p.display().to_string();
    let (file, bytes) = first;
    let mut acc = State::<C>::from_bytes(&bytes, &name(&file), defs)?;
    drop(bytes);
    for p in &paths[1..] {
        let (file, bytes) = read_path(p)?;
        let s = State::<C>::from_bytes(&bytes, &name(&file), defs)?;
        drop(bytes);
        acc.merge(s, &name(&file)).map_err(|what| StateError {
            file: name(&file),
            what: what
                .strip_prefix(&format!("{}: ", name(&file)))
                .unwrap_or(&what)
                .to_string(),
        })?;
    }
    Ok(merged_scan(defs, config, acc, progress))
}

/// The value a merged entry counts for `count`, as a table reports it.
fn value_of<C: DistinctCounter>(count: CountSpec, e: &mut super::StateEntry<C>) -> Estimate {
    match count {
        CountSpec::Distinct(_) => {
            let mut v = e.counter.estimate();
            v.value = v.value.min(e.seen.flows());
            v
        }
        _ => Estimate::exact(e.sum),
    }
}

/// Report a merged state as a scan reports its inputs (see the module notes for what it guarantees).
pub fn merged_scan<C: SavedCounter>(
    defs: &Definitions,
    config: &ScanConfig,
    mut state: State<C>,
    progress: &Progress,
) -> Scan {
    let start = Instant::now();
    let rules = &defs.rules;
    let n = state.meta.states;
    let saved = config.save_state.then(|| Ok(state.to_bytes()));
    let mut notes = Vec::new();
    let mut errors: Vec<InputError> = state
        .meta
        .errors
        .iter()
        .map(|e| {
            let (name, message) = e.split_once(": ").unwrap_or(("saved state", e));
            InputError {
                name: name.to_string(),
                message: format!("{message} (in a merged scan)"),
            }
        })
        .collect();
    // Keys no state admitted can hold up to `slack` of their measure: findings only when it reaches a threshold.
    let open: Vec<String> = rules
        .iter()
        .zip(&state.rules)
        .filter(|(r, s)| s.meta.slack > r.min_above())
        .map(|(r, s)| format!("{} ({} of {})", r.id, s.meta.slack, r.min_above()))
        .collect();
    if !open.is_empty() {
        notes.push(format!(
            "{n} states of admission fraction up to a = {} (n*a = {:.2}): a key admitted in none of them can hold \
             up to the sum of their A-1 of its flows, over the threshold of rule {}, and be missed; save states meant \
             to be merged with --admit at most 1/n",
            state.meta.admit,
            n as f64 * state.meta.admit,
            open.join(", ")
        ));
    }
    let why_not = if !config.verify {
        Some("--no-verify".to_string())
    } else {
        state.inputs.iter().find_map(|i| i.changed())
    };
    let mut stats_rules: Vec<RuleStats> = rules
        .iter()
        .zip(&state.rules)
        .map(|(r, s)| RuleStats {
            id: r.id.clone(),
            above: r.min_above(),
            flows: s.meta.flows,
            keys_admitted: s.entries.len(),
            updates_admitted: s.meta.admitted,
            updates: s.meta.updates,
            keys_seen: None,
            // What a count may lack in all: the summed A - 1, as one scan's A - 1 (0: nothing missed).
            admit_at: if s.meta.slack > 0 {
                s.meta.slack + 1
            } else {
                0
            },
            raises: s.meta.raises,
            over_budget: s.meta.over_budget,
            evicted: s.meta.evicted,
            admission_bytes: s
                .fronts
                .as_ref()
                .map_or(0, |f| f.iter().map(|f| f.layout.bytes).sum()),
            tables: Footprint {
                keys: s.entries.len(),
                ..Footprint::default()
            },
            candidates: 0,
        })
        .collect();
    let keys = state.rules.iter().map(|r| r.entries.len()).sum();
    let stats = ScanStats {
        inputs: state.meta.inputs,
        inputs_failed: state.meta.inputs_failed,
        flows: state.meta.flows,
        skipped: state.meta.skipped,
        ..ScanStats::default()
    };
    let pass1 = start.elapsed().as_secs_f64();
    let (findings, sketches, guarantee, secs2) = match why_not {
        None => {
            let candidates: Vec<Candidates> = rules
                .iter()
                .zip(state.rules.iter_mut())
                .enumerate()
                .map(|(i, (rule, rs))| {
                    let slack = rs.meta.slack;
                    let flows_bounded =
                        !matches!(rule.count, CountSpec::Packets | CountSpec::Bytes);
                    let fronts = rs.fronts.as_ref();
                    let mut keys: Vec<KeyParts> = rs
                        .entries
                        .iter_mut()
                        .filter_map(|(k, e)| {
                            let above = rule.above_for_key(k.addr);
                            let v = value_of(rule.count, e);
                            let flows_ok = !flows_bounded
                                || e.seen.flows().saturating_add(slack) > rule.flows_above;
                            if upper(&v) + slack as f64 <= above as f64 || !flows_ok {
                                return None;
                            }
                            // The merged sketches bound the key's whole measure, which a finding's count and flows
                            // cannot pass.
                            if let Some(f) = fronts {
                                let h = k.hash();
                                let b = f[shard_of(h, f.len())].bound(h);
                                if b <= above || (flows_bounded && b <= rule.flows_above) {
                                    return None;
                                }
                            }
                            Some(*k)
                        })
                        .collect();
                    keys.sort_unstable();
                    stats_rules[i].candidates = keys.len();
                    Candidates::new(keys)
                })
                .collect();
            let start2 = Instant::now();
            progress.done.reset();
            progress.pass.store(2, Ordering::Relaxed);
            let options = InputOptions {
                no_mmap: config.input.no_mmap,
                format: state
                    .meta
                    .input_format
                    .as_deref()
                    .and_then(|k| Kind::from_name(k).ok()),
            };
            let sources: Vec<Source> = state
                .inputs
                .iter()
                .map(|i| Source::File(PathBuf::from(&i.path)))
                .collect();
            let opener = Opener::new();
            let reopened = sources.iter().map(|s| input::open(s, &options, &opener));
            let verified = verify::verify(
                rules,
                &candidates,
                reopened,
                config.threads.max(1),
                64,
                &progress.done,
            );
            let flows = verified.stats.flows;
            let first = state.meta.flows;
            verify::tell_reread_errors(&mut errors, verified.errors, flows, first, Reread::Merge);
            let (out, sketches) = verified_findings(
                rules,
                &candidates,
                &verified.tallies,
                config.evidence,
                config.export_sketches,
            );
            let g = if open.is_empty() {
                Guarantee::Verified
            } else {
                Guarantee::VerifiedAdmitted
            };
            (out, sketches, g, start2.elapsed().as_secs_f64())
        }
        Some(why) => {
            notes.push(format!(
                "merged findings are not verified ({why}): they carry the bound of {n} states"
            ));
            if config.export_sketches {
                notes.push(
                    "no sketches exported: their values come from the verify pass, which did not run".into(),
                );
            }
            let mut out = Vec::new();
            for (rule, rs) in rules.iter().zip(state.rules.iter_mut()) {
                let slack = rs.meta.slack;
                for (k, e) in rs.entries.iter_mut() {
                    let v = value_of(rule.count, e);
                    if rule.fires(rule.above_for_key(k.addr), v.value, e.seen.flows()) {
                        out.push(Finding::new(rule, *k, v, e.seen, slack, false));
                    }
                }
            }
            crate::report::merge_bursts(&mut out);
            crate::report::sort(&mut out);
            (out, Vec::new(), Guarantee::OnePass(OnePassWhy::Merged), 0.0)
        }
    };
    Scan {
        findings,
        errors,
        warnings: Vec::new(),
        notes,
        not_flow_files: Vec::new(),
        stats,
        guarantee,
        rules: stats_rules,
        keys,
        secs: [pass1, secs2],
        counter: C::NAME,
        state: saved,
        sketches,
        merged: Some(n),
    }
}
