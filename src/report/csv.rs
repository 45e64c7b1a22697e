//! CSV for spreadsheets: a header line naming the columns, then one line per finding, the fields of its [`Row`]
//! (the same as the JSON object's) in [`COLUMNS`] order. README.md, "Report fields", describes them.

use super::row::{Row, COLUMNS};
use super::{Finding, ReportMeta};
use std::io::{self, Write};

pub fn write(out: &mut dyn Write, meta: &ReportMeta, findings: &[Finding]) -> io::Result<()> {
    let header: Vec<&str> = COLUMNS.iter().map(|c| c.0).collect();
    writeln!(out, "{}", header.join(","))?;
    for f in findings {
        let row = Row::new(meta, f);
        let cells: Vec<String> = row.fields().map(|(_, c)| quote(&c.csv())).collect();
        writeln!(out, "{}", cells.join(","))?;
    }
    Ok(())
}

/// RFC 4180 quoting: only when a cell holds a comma, quote or line break.
fn quote(cell: &str) -> String {
    if cell.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", cell.replace('"', "\"\""))
    } else {
        cell.to_string()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(super::quote("fan-out"), "fan-out");
        assert_eq!(super::quote("a,b"), "\"a,b\"");
        assert_eq!(super::quote("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
