//! CSV with a header line, for spreadsheets.

use super::time::iso8601_ms;
use super::{Finding, ReportMeta};
use crate::engine::KeyValue;
use std::io::{self, Write};

const HEADER: &str = "rule,name,severity,key,host,peer,port,count,value,exact,rel_std_error,above,flows,first,last,window_start,window_end,definitions,counter";

pub fn write(out: &mut dyn Write, meta: &ReportMeta, findings: &[Finding]) -> io::Result<()> {
    writeln!(out, "{HEADER}")?;
    for f in findings {
        let (peer, port) = match f.key.extra {
            KeyValue::None => (String::new(), String::new()),
            KeyValue::Addr(a) => (a.to_string(), String::new()),
            KeyValue::Port(p) => (String::new(), p.to_string()),
            KeyValue::Proto(p) => (String::new(), format!("proto {p}")),
        };
        let (ws, we) = f
            .window_bounds()
            .map_or((String::new(), String::new()), |(s, e)| {
                (iso8601_ms(s), iso8601_ms(e))
            });
        let cells = [
            f.rule.clone(),
            f.name.clone(),
            f.severity.to_string(),
            f.key_spec.to_string(),
            f.key.addr.to_string(),
            peer,
            port,
            f.count_spec.to_string(),
            f.count.to_string(),
            f.exact.to_string(),
            format!("{:.4}", f.rel_std_error),
            f.above.to_string(),
            f.flows.to_string(),
            iso8601_ms(f.first_ms),
            iso8601_ms(f.last_ms),
            ws,
            we,
            meta.definitions_version.clone(),
            meta.counter.clone(),
        ];
        let line: Vec<String> = cells.iter().map(|c| quote(c)).collect();
        writeln!(out, "{}", line.join(","))?;
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
