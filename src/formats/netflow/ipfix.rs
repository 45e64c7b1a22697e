//! IPFIX (RFC 7011) messages: a 16-byte header with the message length, then sets: templates (id 2), options
//! templates (id 3) and data (id >= 256). Field specifiers may carry an enterprise number; lengths of 65535
//! mark variable-length fields.

use super::fields::{classify, Context};
use super::templates::{FieldSpec, Template, TemplateKey};
use super::{exporter_id, need_header, u16_at, u32_at, walk_sets, Scan, SetNames};
use crate::formats::FormatError;
use crate::record::Addr;

pub const HEADER_LEN: usize = 16;

/// Register the templates of the IPFIX message at the start of `b` and queue its data sets in `scan`;
/// returns the message length (messages can follow each other in one payload).
pub fn scan(b: &[u8], base: usize, exporter: Addr, scan: &mut Scan) -> Result<usize, FormatError> {
    need_header(b, base, HEADER_LEN, "IPFIX")?;
    let len = u16_at(b, 2) as usize;
    if len < HEADER_LEN || len > b.len() {
        return Err(FormatError::new(
            base as u64 + 2,
            format!(
                "IPFIX message length {len}, expected {HEADER_LEN}..={} (bytes present)",
                b.len()
            ),
        ));
    }
    let domain = u32_at(b, 12);
    let ctx = Context {
        unix_secs: u32_at(b, 4),
        uptime_ms: None,
        exporter: exporter_id(exporter, domain),
    };
    let key = |id| TemplateKey {
        exporter,
        domain,
        id,
        version: 10,
    };
    let names = SetNames {
        what: "IPFIX",
        set: "set",
        whole: "message",
        zero_fill_ends: false,
    };
    walk_sets(
        &b[..len],
        HEADER_LEN,
        base,
        &names,
        scan,
        |id, body, body_base, at, scan| match id {
            2 => templates(body, body_base, false, &key, scan),
            3 => templates(body, body_base, true, &key, scan),
            0..=255 => scan.warn(at, format!("IPFIX reserved set id {id} skipped")),
            _ => scan.data(key(id), body_base, body.len(), ctx),
        },
    );
    Ok(len)
}

/// Parse the (options) template records of one set body and register them.
fn templates(
    body: &[u8],
    base: usize,
    options: bool,
    key: &dyn Fn(u16) -> TemplateKey,
    scan: &mut Scan,
) {
    let head = if options { 6 } else { 4 };
    let mut at = 0;
    while at + 4 <= body.len() {
        let id = u16_at(body, at);
        let nfields = u16_at(body, at + 2) as usize;
        if id < 256 {
            if body[at..].iter().any(|&x| x != 0) {
                scan.warn(
                    base + at,
                    format!("IPFIX template id {id} below 256; rest of set ignored"),
                );
            }
            return;
        }
        if nfields == 0 {
            // Template withdrawal.
            scan.withdraw(key(id));
            at += 4;
            continue;
        }
        if at + head > body.len() {
            scan.warn(
                base + at,
                format!("IPFIX options template {id} header truncated"),
            );
            return;
        }
        let mut f = at + head;
        let mut fields = Vec::with_capacity(nfields);
        let mut zero = None;
        for _ in 0..nfields {
            if f + 4 > body.len() {
                scan.warn(
                    base + at,
                    format!(
                        "IPFIX template {id} declares {nfields} fields but its set ends after {}",
                        fields.len()
                    ),
                );
                return;
            }
            let raw = u16_at(body, f);
            let flen = u16_at(body, f + 2);
            f += 4;
            let mut enterprise = 0;
            if raw & 0x8000 != 0 {
                if f + 4 > body.len() {
                    scan.warn(
                        base + f,
                        format!("IPFIX template {id}: enterprise number truncated"),
                    );
                    return;
                }
                enterprise = u32_at(body, f);
                f += 4;
            }
            let fid = raw & 0x7fff;
            if flen == 0 && zero.is_none() {
                zero = Some(fid);
            }
            fields.push(FieldSpec {
                id: fid,
                enterprise,
                len: flen,
                kind: classify(enterprise, fid),
            });
        }
        scan.template(key(id), Template::new(id, fields, options), zero, base + at);
        at = f;
    }
}
