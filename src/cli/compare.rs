//! `flowsketch compare`: scan with a sketch counter and with the exact counter, and report their agreement.
//!
//! Each side runs as a child process of this same binary (`compare --side KIND`), one after the other, so each
//! side's time and peak memory (`VmHWM`) are its own. A child prints one JSON line about its run, then every
//! counted key of every rule as fixed-size binary records; the parent joins the two streams rule by rule with
//! [`flowsketch::compare::RuleAccumulator`], holding only the exact side's near keys.

use super::args::{CompareArgs, ScanArgs};
use super::scan::ScanPlan;
use super::ExitCode;
use flowsketch::compare::plot::{self, Scatter};
use flowsketch::compare::{RuleAccumulator, RuleComparison, NEAR_FRACTION};
use flowsketch::engine::{self, InputError, KeyParts, KeyValue};
use flowsketch::formats::Opener;
use flowsketch::input;
use flowsketch::mem::{human_bytes, peak_rss_bytes};
use flowsketch::record::Addr;
use flowsketch::report;
use flowsketch::report::row::{key_fields, key_text};
use flowsketch::sketch::{self, DistinctCounter};
use serde_json::{json, Value};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::atomic::AtomicU64;
use std::time::Instant;

/// Bytes of one key record: rule u16, address u128, extra tag u8, extra u128, window u32, value u64.
const RECORD: usize = 2 + 16 + 1 + 16 + 4 + 8;

pub fn run(args: &CompareArgs) -> ExitCode {
    let result = match &args.side {
        Some(kind) => side(args, kind),
        None => compare(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flowsketch compare: {e}");
            ExitCode::Error
        }
    }
}

fn plan(args: &CompareArgs, counter: &str) -> Result<ScanPlan, String> {
    ScanPlan::from_args(&ScanArgs {
        paths: args.paths.clone(),
        rules: args.rules.clone(),
        format: "text".into(),
        threads: args.threads,
        exact: false,
        counter: Some(counter.to_string()),
        no_mmap: args.no_mmap,
        input_format: args.input_format.clone(),
        quiet: true,
        stats: false,
    })
}

// ---- child: one scan, results to stdout ----

fn side(args: &CompareArgs, kind: &str) -> Result<ExitCode, String> {
    let plan = plan(args, kind)?;
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let errors = match kind {
        "exact" => side_with::<sketch::Exact>(&plan, &args.paths, &mut out),
        "hllpp" => side_with::<sketch::Hllpp>(&plan, &args.paths, &mut out),
        _ => side_with::<sketch::Compact>(&plan, &args.paths, &mut out),
    }
    .and_then(|e| out.flush().map(|()| e))
    .map_err(|e| format!("cannot write results: {e}"))?;
    Ok(if errors > 0 {
        ExitCode::Error
    } else {
        ExitCode::Clean
    })
}

/// Scan as `flowsketch scan` does (open, scan, findings), note time and peak memory, then write every count.
fn side_with<C: DistinctCounter>(
    plan: &ScanPlan,
    paths: &[std::path::PathBuf],
    out: &mut dyn Write,
) -> io::Result<usize> {
    let start = Instant::now();
    let defs = &plan.definitions;
    let (sources, walk_errors) = input::expand(paths);
    let opener = Opener::new();
    let opened = sources.iter().map(|s| input::open(s, &plan.input, &opener));
    let progress = AtomicU64::new(0);
    let mut result = engine::scan::<C, _>(&defs.rules, opened, &plan.options, &progress);
    let findings = report::findings(defs, &mut result);
    let secs = start.elapsed().as_secs_f64();
    let peak = peak_rss_bytes();
    let mut errors: Vec<InputError> = walk_errors;
    errors.extend(result.errors.iter().cloned());
    for e in &errors {
        eprintln!("flowsketch: {e}");
    }
    let header = json!({
        "counter": C::NAME,
        "secs": secs,
        "peak_rss_bytes": peak,
        "flows": result.stats.flows,
        "inputs": result.stats.inputs,
        "errors": errors.len(),
        "keys": result.keys(),
        "findings": findings.len(),
        "rules": defs.rules.iter().map(|r| json!({"id": r.id, "above": r.above})).collect::<Vec<_>>(),
    });
    writeln!(out, "{header}")?;
    let mut rec = [0u8; RECORD];
    for rule in 0..defs.rules.len() {
        for c in result.all(rule) {
            encode(&mut rec, rule as u16, &c.key, c.value.value);
            out.write_all(&rec)?;
        }
    }
    Ok(errors.len())
}

fn encode(buf: &mut [u8; RECORD], rule: u16, key: &KeyParts, value: u64) {
    let (tag, extra) = match key.extra {
        KeyValue::None => (0u8, 0u128),
        KeyValue::Addr(a) => (1, a.0),
        KeyValue::Port(p) => (2, p as u128),
        KeyValue::Proto(p) => (3, p as u128),
    };
    buf[0..2].copy_from_slice(&rule.to_le_bytes());
    buf[2..18].copy_from_slice(&key.addr.0.to_le_bytes());
    buf[18] = tag;
    buf[19..35].copy_from_slice(&extra.to_le_bytes());
    buf[35..39].copy_from_slice(&key.window.to_le_bytes());
    buf[39..47].copy_from_slice(&value.to_le_bytes());
}

fn decode(buf: &[u8; RECORD]) -> Result<(usize, KeyParts, u64), String> {
    let mut a16 = [0u8; 16];
    let mut a8 = [0u8; 8];
    let mut a4 = [0u8; 4];
    let rule = u16::from_le_bytes([buf[0], buf[1]]) as usize;
    a16.copy_from_slice(&buf[2..18]);
    let addr = Addr(u128::from_le_bytes(a16));
    a16.copy_from_slice(&buf[19..35]);
    let extra = u128::from_le_bytes(a16);
    let extra = match buf[18] {
        0 => KeyValue::None,
        1 => KeyValue::Addr(Addr(extra)),
        2 => KeyValue::Port(extra as u16),
        3 => KeyValue::Proto(extra as u8),
        t => return Err(format!("bad key tag {t} from a child scan")),
    };
    a4.copy_from_slice(&buf[35..39]);
    a8.copy_from_slice(&buf[39..47]);
    let key = KeyParts {
        addr,
        extra,
        window: u32::from_le_bytes(a4),
    };
    Ok((rule, key, u64::from_le_bytes(a8)))
}

// ---- parent: run both sides, join, report ----

/// One side's run, as its child said.
struct SideRun {
    header: Value,
    failed: bool,
}

/// Run one side as a child and hand each counted key to `each(rule, key, value)`.
fn run_side(
    args: &CompareArgs,
    kind: &str,
    mut each: impl FnMut(usize, KeyParts, u64),
) -> Result<SideRun, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find own binary: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("compare").arg("--side").arg(kind);
    if let Some(r) = &args.rules {
        cmd.arg("--rules").arg(r);
    }
    if let Some(j) = args.threads {
        cmd.arg("--threads").arg(j.to_string());
    }
    if args.no_mmap {
        cmd.arg("--no-mmap");
    }
    if let Some(f) = &args.input_format {
        cmd.arg("--input-format").arg(f);
    }
    cmd.arg("--").args(&args.paths);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start the {kind} scan: {e}"))?;
    let stdout = child.stdout.take().ok_or("no pipe from the child scan")?;
    let mut r = BufReader::with_capacity(1 << 20, stdout);
    let mut line = String::new();
    r.read_line(&mut line)
        .map_err(|e| format!("reading the {kind} scan: {e}"))?;
    let header: Value = serde_json::from_str(&line)
        .map_err(|e| format!("the {kind} scan did not report ({e}); see its messages above"))?;
    let mut rec = [0u8; RECORD];
    loop {
        match r.fill_buf() {
            Ok([]) => break,
            Ok(_) => {}
            Err(e) => return Err(format!("reading the {kind} scan: {e}")),
        }
        r.read_exact(&mut rec)
            .map_err(|e| format!("reading the {kind} scan: {e}"))?;
        let (rule, key, value) = decode(&rec)?;
        each(rule, key, value);
    }
    let status = child
        .wait()
        .map_err(|e| format!("waiting for the {kind} scan: {e}"))?;
    Ok(SideRun {
        header,
        failed: !status.success(),
    })
}

fn rules_of(header: &Value) -> Vec<(String, u64)> {
    header["rules"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| {
                    (
                        r["id"].as_str().unwrap_or("").to_string(),
                        r["above"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn compare(args: &CompareArgs) -> Result<ExitCode, String> {
    // Load the definitions here too: a bad file is said once, and the rules' thresholds are known up front.
    let defs = plan(args, &args.counter)?.definitions;
    let rules: Vec<(String, u64)> = defs.rules.iter().map(|r| (r.id.clone(), r.above)).collect();
    let plot_rule = match &args.plot {
        Some(_) => Some(
            rules
                .iter()
                .position(|(id, _)| *id == args.plot_rule)
                .ok_or_else(|| format!("--plot-rule {}: no such rule", args.plot_rule))?,
        ),
        None => None,
    };
    let mut accs: Vec<RuleAccumulator> = rules
        .iter()
        .enumerate()
        .map(|(i, (id, above))| RuleAccumulator::new(id, *above, plot_rule == Some(i)))
        .collect();
    let mut stray = 0u64;
    let exact = run_side(args, "exact", |rule, key, value| match accs.get_mut(rule) {
        Some(a) => a.exact(key, value),
        None => stray += 1,
    })?;
    let sketch = run_side(args, &args.counter, |rule, key, value| {
        match accs.get_mut(rule) {
            Some(a) => a.sketch(key, value),
            None => stray += 1,
        }
    })?;
    for s in [&exact, &sketch] {
        if rules_of(&s.header) != rules {
            return Err("the child scans read different definitions".into());
        }
    }
    if stray > 0 {
        return Err(format!(
            "{stray} keys of unknown rules from the child scans"
        ));
    }
    let results: Vec<RuleComparison> = accs.iter().map(RuleAccumulator::finish).collect();
    let report = Report {
        counter: &args.counter,
        sketch: &sketch.header,
        exact: &exact.header,
        rules: &results,
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let written = match args.format.as_str() {
        "json" => writeln!(out, "{}", report.json()),
        _ => report.text(&mut out),
    }
    .and_then(|()| out.flush());
    if let Err(e) = written {
        if e.kind() != io::ErrorKind::BrokenPipe {
            return Err(format!("cannot write the report: {e}"));
        }
    }
    if let (Some(path), Some(i)) = (&args.plot, plot_rule) {
        let r = &results[i];
        let pairs = accs[i].pairs();
        let title = format!(
            "{}: {} estimate vs exact count per key ({} flows)",
            r.rule,
            args.counter,
            exact.header["flows"].as_u64().unwrap_or(0)
        );
        let svg = plot::svg(&Scatter {
            title: &title,
            pairs: &pairs,
            above: r.above,
            x_label: "exact count",
            y_label: &format!("{} estimate", args.counter),
        });
        std::fs::write(path, svg).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(if exact.failed || sketch.failed {
        ExitCode::Error
    } else {
        ExitCode::Clean
    })
}

struct Report<'a> {
    counter: &'a str,
    sketch: &'a Value,
    exact: &'a Value,
    rules: &'a [RuleComparison],
}

fn side_json(h: &Value) -> Value {
    let secs = h["secs"].as_f64().unwrap_or(0.0);
    let flows = h["flows"].as_u64().unwrap_or(0);
    json!({
        "counter": h["counter"],
        "secs": secs,
        "flows_per_sec": if secs > 0.0 { flows as f64 / secs } else { 0.0 },
        "peak_rss_bytes": h["peak_rss_bytes"],
        "keys": h["keys"],
        "findings": h["findings"],
        "errors": h["errors"],
    })
}

impl Report<'_> {
    fn json(&self) -> Value {
        let rules: Vec<Value> = self
            .rules
            .iter()
            .map(|r| {
                json!({
                    "rule": r.rule,
                    "above": r.above,
                    "near_from": r.near_from,
                    "keys_exact": r.keys_exact,
                    "keys_sketch": r.keys_sketch,
                    "exact_findings": r.exact_findings,
                    "sketch_findings": r.sketch_findings,
                    "true_positives": r.true_positives,
                    "false_positives": r.false_positives,
                    "false_negatives": r.false_negatives,
                    "precision": r.precision,
                    "recall": r.recall,
                    "error": {
                        "keys": r.error.keys,
                        "mean": r.error.mean,
                        "bias": r.error.bias,
                        "median": r.error.median,
                        "p99": r.error.p99,
                        "max": r.error.max,
                    },
                    "smallest_inexact": r.smallest_inexact,
                    "smallest_inexact_over": if r.all_keys { "all keys" } else { "near keys" },
                    "mismatches": r.mismatches.iter().map(|m| {
                        // The key's parts named as the reports name them.
                        let mut o: serde_json::Map<String, Value> = key_fields(&m.key)
                            .into_iter()
                            .map(|(n, c)| (n.to_string(), c.json()))
                            .collect();
                        o.insert("window".into(), m.key.window.into());
                        o.insert("exact".into(), m.exact.into());
                        o.insert("sketch".into(), m.sketch.into());
                        Value::Object(o)
                    }).collect::<Vec<_>>(),
                })
            })
            .collect();
        json!({
            "counter": self.counter,
            "reference": "exact",
            "flows": self.exact["flows"],
            "inputs": self.exact["inputs"],
            "near_fraction": NEAR_FRACTION,
            "sketch": side_json(self.sketch),
            "exact": side_json(self.exact),
            "rules": rules,
        })
    }

    fn text(&self, out: &mut dyn Write) -> io::Result<()> {
        let flows = self.exact["flows"].as_u64().unwrap_or(0);
        writeln!(
            out,
            "{} against exact counting, {} flows from {} inputs",
            self.counter,
            flows,
            self.exact["inputs"].as_u64().unwrap_or(0)
        )?;
        writeln!(out)?;
        let mut sides = vec![vec![
            "side".to_string(),
            "counter".into(),
            "time".into(),
            "M flows/s".into(),
            "peak memory".into(),
            "keys".into(),
            "findings".into(),
        ]];
        for (name, h) in [("sketch", self.sketch), ("exact", self.exact)] {
            let j = side_json(h);
            sides.push(vec![
                name.into(),
                h["counter"].as_str().unwrap_or("").into(),
                format!("{:.2} s", j["secs"].as_f64().unwrap_or(0.0)),
                format!("{:.2}", j["flows_per_sec"].as_f64().unwrap_or(0.0) / 1e6),
                human(h["peak_rss_bytes"].as_u64()),
                h["keys"].to_string(),
                h["findings"].to_string(),
            ]);
        }
        table(out, &sides)?;
        writeln!(out)?;
        let pct = |v: f64| format!("{:.2}%", v * 100.0);
        let ratio = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.4}"));
        let mut rows = vec![vec![
            "rule".to_string(),
            "above".into(),
            "keys".into(),
            "exact found".into(),
            "sketch found".into(),
            "fp".into(),
            "fn".into(),
            "precision".into(),
            "recall".into(),
            "near keys".into(),
            "mean err".into(),
            "median".into(),
            "p99".into(),
            "max".into(),
        ]];
        for r in self.rules {
            let keys = if r.keys_exact == r.keys_sketch {
                r.keys_exact.to_string()
            } else {
                format!("{}/{}", r.keys_sketch, r.keys_exact)
            };
            rows.push(vec![
                r.rule.clone(),
                r.above.to_string(),
                keys,
                r.exact_findings.to_string(),
                r.sketch_findings.to_string(),
                r.false_positives.to_string(),
                r.false_negatives.to_string(),
                ratio(r.precision),
                ratio(r.recall),
                r.error.keys.to_string(),
                pct(r.error.mean),
                pct(r.error.median),
                pct(r.error.p99),
                pct(r.error.max),
            ]);
        }
        table(out, &rows)?;
        for r in self.rules.iter().filter(|r| r.all_keys) {
            let upto = r.smallest_inexact.map_or_else(
                || "every key was counted exactly".to_string(),
                |v| format!("every key with an exact count below {v} was counted exactly"),
            );
            writeln!(
                out,
                "{}: {upto} (all {} keys checked)",
                r.rule, r.keys_exact
            )?;
        }
        for r in self.rules {
            let shown = r.mismatches.iter().take(10);
            for m in shown {
                let n = |v: Option<u64>| {
                    v.map_or_else(|| format!("< {}", r.near_from), |v| v.to_string())
                };
                writeln!(
                    out,
                    "{}: {} exact {} {} {}",
                    r.rule,
                    key_text(&m.key),
                    n(m.exact),
                    self.counter,
                    m.sketch
                        .map_or_else(|| "not counted".to_string(), |v| v.to_string())
                )?;
            }
            if r.mismatches.len() > 10 {
                writeln!(
                    out,
                    "{}: ... {} more keys disagree (--format json lists up to 1000)",
                    r.rule,
                    r.mismatches.len() - 10
                )?;
            }
        }
        writeln!(
            out,
            "\nnear keys: exact count >= {NEAR_FRACTION} x the threshold; errors are |estimate - exact| / exact over them \
             (nearest-rank percentiles). Each side ran alone in a child process: time is open + scan + findings, \
             peak memory is that process's VmHWM."
        )
    }
}

/// Columns padded to their widest cell; text left, numbers right.
fn table(out: &mut dyn Write, rows: &[Vec<String>]) -> io::Result<()> {
    let cols = rows.first().map_or(0, Vec::len);
    let width: Vec<usize> = (0..cols)
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, v)| {
                if c == 0 || v.parse::<f64>().is_err() && !v.ends_with('%') && !v.ends_with(" s") {
                    format!("{v:<w$}", w = width[c])
                } else {
                    format!("{v:>w$}", w = width[c])
                }
            })
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}

fn human(b: Option<u64>) -> String {
    b.map_or_else(|| "unknown".into(), human_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_records_round_trip() {
        let keys = [
            KeyValue::None,
            KeyValue::Addr(Addr::v6(0x2a00u128 << 112 | 7)),
            KeyValue::Port(445),
            KeyValue::Proto(17),
        ];
        for (i, extra) in keys.into_iter().enumerate() {
            let key = KeyParts {
                addr: Addr::v4(0x0a00_0001 + i as u32),
                extra,
                window: 3 * i as u32,
            };
            let mut buf = [0u8; RECORD];
            encode(&mut buf, i as u16, &key, u64::MAX - i as u64);
            assert_eq!(decode(&buf), Ok((i, key, u64::MAX - i as u64)));
        }
        let mut buf = [0u8; RECORD];
        buf[18] = 9;
        assert!(decode(&buf).unwrap_err().contains("tag 9"));
    }
}
