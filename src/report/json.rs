//! JSON lines: one object per finding, every field named, for machines.

use super::time::iso8601_ms;
use super::{Finding, ReportMeta};
use crate::engine::KeyValue;
use serde_json::{json, Value};
use std::io::{self, Write};

pub fn write(out: &mut dyn Write, meta: &ReportMeta, findings: &[Finding]) -> io::Result<()> {
    for f in findings {
        serde_json::to_writer(&mut *out, &object(meta, f))?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

/// The JSON object of one finding.
pub fn object(meta: &ReportMeta, f: &Finding) -> Value {
    let (peer, port, proto) = match f.key.extra {
        KeyValue::None => (None, None, None),
        KeyValue::Addr(a) => (Some(a.to_string()), None, None),
        KeyValue::Port(p) => (None, Some(p), None),
        KeyValue::Proto(p) => (None, None, Some(p)),
    };
    let window = f.window_bounds();
    json!({
        "type": "finding",
        "rule": f.rule,
        "name": f.name,
        "severity": f.severity.name(),
        "key": f.key_spec.to_string(),
        "host": f.key.addr.to_string(),
        "peer": peer,
        "port": port,
        "proto": proto,
        "count": f.count_spec.to_string(),
        "value": f.count,
        "exact": f.exact,
        "rel_std_error": f.rel_std_error,
        "verified": f.verified,
        "missed_at_most": f.missed_at_most,
        "above": f.above,
        "flows": f.flows,
        "first": iso8601_ms(f.first_ms),
        "last": iso8601_ms(f.last_ms),
        "window_start": window.map(|w| iso8601_ms(w.0)),
        "window_end": window.map(|w| iso8601_ms(w.1)),
        "definitions": meta.definitions_version,
        "counter": meta.counter,
    })
}
