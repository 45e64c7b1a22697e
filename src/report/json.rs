//! JSON lines: one object per finding, every field of its [`Row`] named, for machines.

use super::row::Row;
use super::{Finding, ReportMeta};
use std::io::{self, Write};

pub fn write(out: &mut dyn Write, meta: &ReportMeta, findings: &[Finding]) -> io::Result<()> {
    for f in findings {
        let mut object = Row::new(meta, f).json();
        // Lines of JSON output are findings and, last, the summary record (report/summary.rs): say which.
        if let Some(o) = object.as_object_mut() {
            o.insert("type".into(), "finding".into());
        }
        serde_json::to_writer(&mut *out, &object)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
