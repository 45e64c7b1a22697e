//! Aligned text, one line per finding, for people at a terminal.

use super::time::iso8601_ms;
use super::{Finding, ReportMeta};
use crate::rules::rule::format_window;
use std::io::{self, Write};

const HEADERS: [&str; 9] = [
    "RULE", "SEVERITY", "KEY", "COUNT", "WHAT", "ABOVE", "FLOWS", "FIRST", "LAST",
];

pub fn write(out: &mut dyn Write, meta: &ReportMeta, findings: &[Finding]) -> io::Result<()> {
    writeln!(
        out,
        "# flowsketch {}: definitions {} ({}), counter {}, {} finding{}",
        env!("CARGO_PKG_VERSION"),
        meta.definitions_version,
        meta.definitions_origin,
        meta.counter,
        findings.len(),
        if findings.len() == 1 { "" } else { "s" }
    )?;
    if findings.is_empty() {
        return Ok(());
    }
    let rows: Vec<[String; 9]> = findings.iter().map(row).collect();
    let mut widths = HEADERS.map(str::len);
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let windowed = findings.iter().any(|f| f.window_ms.is_some());
    print_row(
        out,
        &HEADERS.map(String::from),
        &widths,
        windowed.then_some("WINDOW"),
    )?;
    for (r, f) in rows.iter().zip(findings) {
        let window = f.window_bounds().map(|(s, _)| {
            format!(
                "{} +{}",
                iso8601_ms(s),
                format_window(f.window_ms.unwrap_or(0))
            )
        });
        print_row(
            out,
            r,
            &widths,
            window.as_deref().or(windowed.then_some("-")),
        )?;
    }
    Ok(())
}

fn row(f: &Finding) -> [String; 9] {
    [
        f.rule.clone(),
        f.severity.to_string(),
        f.key_text(),
        f.count_text(),
        f.count_spec.to_string(),
        f.above.to_string(),
        f.flows.to_string(),
        iso8601_ms(f.first_ms),
        iso8601_ms(f.last_ms),
    ]
}

fn print_row(
    out: &mut dyn Write,
    cells: &[String; 9],
    widths: &[usize; 9],
    last: Option<&str>,
) -> io::Result<()> {
    let mut line = String::new();
    for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
        if i > 0 {
            line.push_str("  ");
        }
        // Numbers right-aligned, words left-aligned.
        let numeric = matches!(i, 5 | 6);
        let pad = w - cell.chars().count();
        if numeric {
            line.extend(std::iter::repeat_n(' ', pad));
            line.push_str(cell);
        } else {
            line.push_str(cell);
            if i + 1 < cells.len() || last.is_some() {
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
    }
    if let Some(extra) = last {
        line.push_str("  ");
        line.push_str(extra);
    }
    writeln!(out, "{}", line.trim_end())
}
