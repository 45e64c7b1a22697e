//! `flowsketch compare`: scan with a sketch counter and with the exact counter, and report their agreement.
//!
//! Each side runs as a child process of this same binary (`compare --side KIND`), one after the other, so each
//! side's time and peak memory (`VmHWM`) are its own. A child prints one JSON line about its run, then every
//! counted key of every rule as fixed-size binary records; the parent joins the two streams rule by rule with
//! [`flowsketch::compare::RuleAccumulator`], holding only the exact side's near keys.

use super::args::{CompareArgs, CounterArg, OutputFormat};
use super::ExitCode;
use clap::ValueEnum;
use flowsketch::compare::plot::{self, Scatter};
use flowsketch::compare::{RuleAccumulator, RuleComparison, NEAR_FRACTION};
use flowsketch::engine::{KeyParts, KeyValue};
use flowsketch::input::InputOptions;
use flowsketch::mem::{human_bytes, peak_rss_bytes};
use flowsketch::record::Addr;
use flowsketch::report::row::{key_fields, key_text};
use flowsketch::rules::Definitions;
use flowsketch::scanner::{Progress, ScanConfig, Scanner};
use flowsketch::sketch::CounterKind;
use serde_json::{json, Value};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};

/// Bytes of one key record: kind u8, rule u16, address u128, extra tag u8, extra u128, window u64, value u64.
const RECORD: usize = 1 + 2 + 16 + 1 + 16 + 8 + 8;

pub fn run(args: &CompareArgs) -> ExitCode {
    let result = match args.side {
        Some(kind) => side(args, kind.into()),
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

fn definitions(args: &CompareArgs) -> Result<Definitions, String> {
    match &args.rules {
        Some(path) => Definitions::load(path).map_err(|e| e.to_string()),
        None => Ok(Definitions::builtin()),
    }
}

/// The scan each side runs: the exact side counts every key exactly in one pass (the reference); the sketch side
/// runs as `flowsketch scan` would with the same flags.
fn config(args: &CompareArgs, counter: CounterKind) -> ScanConfig {
    let exact = counter == CounterKind::Exact;
    let mut c = ScanConfig {
        counter,
        admit: if exact {
            0.0
        } else {
            args.admit.unwrap_or(ScanConfig::default().admit)
        },
        verify: !exact && !args.no_verify,
        input: InputOptions {
            no_mmap: args.no_mmap,
            format: args.input_format.map(Into::into),
        },
        ..ScanConfig::default()
    };
    if let Some(n) = args.threads {
        c.threads = n.get();
    }
    c.memory = args.memory;
    c
}

// ---- child: one scan, results to stdout ----

/// Record kinds a child writes: a key its first pass counted, and a key it reported.
const COUNTED: u8 = 0;
const FOUND: u8 = 1;

fn side(args: &CompareArgs, counter: CounterKind) -> Result<ExitCode, String> {
    let defs = definitions(args)?;
    let scanner = Scanner::new(&defs, config(args, counter));
    let (scan, mut tables) = scanner.run_keeping_tables(&args.paths, &Progress::default());
    let peak = peak_rss_bytes();
    for e in &scan.errors {
        eprintln!("flowsketch: {e}");
    }
    let header = json!({
        "counter": scan.counter,
        "secs": scan.secs(),
        "peak_rss_bytes": peak,
        "flows": scan.stats.flows,
        "inputs": scan.stats.inputs,
        "errors": scan.errors.len(),
        "keys": scan.keys,
        "findings": scan.findings.len(),
        "guarantee": scan.guarantee.name(),
        "rules": defs.rules.iter().map(|r| json!({"id": r.id, "above": r.above})).collect::<Vec<_>>(),
    });
    let stdout = io::stdout();
    let mut out = io::BufWriter::with_capacity(1 << 20, stdout.lock());
    let mut write = || -> io::Result<()> {
        writeln!(out, "{header}")?;
        let mut rec = [0u8; RECORD];
        let mut failed = Ok(());
        for rule in 0..defs.rules.len() {
            tables.each(rule, &mut |c| {
                encode(&mut rec, COUNTED, rule as u16, &c.key, c.value.value);
                if failed.is_ok() {
                    failed = out.write_all(&rec);
                }
            });
        }
        failed?;
        let index = |id: &str| defs.rules.iter().position(|r| r.id == id).unwrap_or(0);
        for f in &scan.findings {
            encode(&mut rec, FOUND, index(&f.rule) as u16, &f.key, f.count);
            out.write_all(&rec)?;
        }
        out.flush()
    };
    write().map_err(|e| format!("cannot write results: {e}"))?;
    Ok(if scan.errors.is_empty() {
        ExitCode::Clean
    } else {
        ExitCode::Error
    })
}

fn encode(buf: &mut [u8; RECORD], kind: u8, rule: u16, key: &KeyParts, value: u64) {
    let (tag, extra) = match key.extra {
        KeyValue::None => (0u8, 0u128),
        KeyValue::Addr(a) => (1, a.0),
        KeyValue::Port(p) => (2, p as u128),
        KeyValue::Proto(p) => (3, p as u128),
        KeyValue::Icmp(x) => (4, x as u128),
    };
    buf[0] = kind;
    let buf = &mut buf[1..];
    buf[0..2].copy_from_slice(&rule.to_le_bytes());
    buf[2..18].copy_from_slice(&key.addr.0.to_le_bytes());
    buf[18] = tag;
    buf[19..35].copy_from_slice(&extra.to_le_bytes());
    buf[35..43].copy_from_slice(&key.window.to_le_bytes());
    buf[43..51].copy_from_slice(&value.to_le_bytes());
}

/// A record: its kind, rule, key and value.
type Decoded = (u8, usize, KeyParts, u64);

fn decode(buf: &[u8; RECORD]) -> Result<Decoded, String> {
    let kind = buf[0];
    if kind > FOUND {
        return Err(format!("bad record kind {kind} from a child scan"));
    }
    let buf = &buf[1..];
    let mut a16 = [0u8; 16];
    let mut a8 = [0u8; 8];
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
        4 => KeyValue::Icmp(extra as u16),
        t => return Err(format!("bad key tag {t} from a child scan")),
    };
    a8.copy_from_slice(&buf[35..43]);
    let key = KeyParts {
        addr,
        extra,
        window: u64::from_le_bytes(a8),
    };
    a8.copy_from_slice(&buf[43..51]);
    Ok((kind, rule, key, u64::from_le_bytes(a8)))
}

// ---- parent: run both sides, join, report ----

/// One side's run, as its child said.
struct SideRun {
    header: Value,
    failed: bool,
}

/// Run one side as a child and hand each record to `each(kind, rule, key, value)`.
fn run_side(
    args: &CompareArgs,
    counter: CounterArg,
    mut each: impl FnMut(u8, usize, KeyParts, u64),
) -> Result<SideRun, String> {
    let kind = CounterKind::from(counter).name();
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
    if let Some(f) = args.input_format {
        let name = f.to_possible_value().expect("no value is skipped");
        cmd.arg("--input-format").arg(name.get_name());
    }
    if let Some(a) = args.admit {
        cmd.arg("--admit").arg(a.to_string());
    }
    cmd.arg("--memory").arg(args.memory.to_string());
    if args.no_verify {
        cmd.arg("--no-verify");
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
        let (kind, rule, key, value) = decode(&rec)?;
        each(kind, rule, key, value);
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
    let defs = definitions(args)?;
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
    // The exact side's counts are exact and complete; its findings are the reference.
    let exact = run_side(
        args,
        CounterArg::Exact,
        |kind, rule, key, value| match accs.get_mut(rule) {
            Some(a) if kind == COUNTED => a.exact(key, value),
            Some(a) => a.exact_finding(key, value),
            None => stray += 1,
        },
    )?;
    let sketch = run_side(args, args.counter, |kind, rule, key, value| {
        match accs.get_mut(rule) {
            Some(a) if kind == COUNTED => a.sketch(key, value),
            Some(a) => a.sketch_finding(key, value),
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
    let counter = CounterKind::from(args.counter).name();
    let report = Report {
        counter,
        sketch: &sketch.header,
        exact: &exact.header,
        rules: &results,
    };
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let written = match args.format {
        OutputFormat::Json => writeln!(out, "{}", report.json()),
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
            counter,
            exact.header["flows"].as_u64().unwrap_or(0)
        );
        let svg = plot::svg(&Scatter {
            title: &title,
            pairs: &pairs,
            above: r.above,
            x_label: "exact count",
            y_label: &format!("{counter} estimate"),
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
            KeyValue::Icmp(8 << 8),
        ];
        for (i, extra) in keys.into_iter().enumerate() {
            let key = KeyParts {
                addr: Addr::v4(0x0a00_0001 + i as u32),
                extra,
                window: 3 * i as u64,
            };
            let mut buf = [0u8; RECORD];
            encode(&mut buf, FOUND, i as u16, &key, u64::MAX - i as u64);
            assert_eq!(decode(&buf), Ok((FOUND, i, key, u64::MAX - i as u64)));
        }
        let mut buf = [0u8; RECORD];
        buf[19] = 9;
        assert!(decode(&buf).unwrap_err().contains("tag 9"));
    }
}
