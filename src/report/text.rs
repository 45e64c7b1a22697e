//! Aligned text, one line per finding, for people at a terminal: the fields of each finding's [`Row`] that people
//! read, the key and count in their human forms.

use super::row::Row;
use super::{Finding, ReportMeta};
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
    let rows: Vec<Row> = findings.iter().map(|f| Row::new(meta, f)).collect();
    let table: Vec<[String; 9]> = rows.iter().map(cells).collect();
    let mut widths = HEADERS.map(str::len);
    for r in &table {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let windowed = rows.iter().any(|r| r.window_text().is_some());
    print_row(
        out,
        &HEADERS.map(String::from),
        &widths,
        windowed.then_some("WINDOW"),
    )?;
    for (cells, r) in table.iter().zip(&rows) {
        let window = r.window_text();
        print_row(
            out,
            cells,
            &widths,
            window.as_deref().or(windowed.then_some("-")),
        )?;
        if let Some(e) = r.evidence_text() {
            writeln!(out, "      {e}")?;
        }
    }
    Ok(())
}

fn cells(r: &Row) -> [String; 9] {
    [
        r.get("rule").csv(),
        r.get("severity").csv(),
        r.key_text(),
        r.count_text(),
        r.get("count").csv(),
        r.get("above").csv(),
        r.get("flows").csv(),
        r.get("first").csv(),
        r.get("last").csv(),
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
