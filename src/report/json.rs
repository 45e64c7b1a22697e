//! JSON lines: one object per finding, every field of its [`Row`] named, for machines.

use super::row::Row;
use super::{Finding, ReportMeta};
use std::io::{self, Write};

pub fn write(out: &mut dyn Write, meta: &ReportMeta, findings: &[Finding]) -> io::Result<()> {
    for f in findings {
        serde_json::to_writer(&mut *out, &Row::new(meta, f).json())?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
