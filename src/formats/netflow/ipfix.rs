//! IPFIX (RFC 7011) messages: a 16-byte header with the message length, then sets: templates (id 2), options
//! templates (id 3) and data (id >= 256). Field specifiers may carry an enterprise number; lengths of 65535
//! mark variable-length fields.

use super::fields::{classify, Context};
use super::templates::{Template, TemplateKey};
use super::{exporter_id, need_header, u16_at, u32_at, walk_sets, Scan, SetNames};
use crate::formats::bytes::{Cursor, BE};
use crate::formats::FormatError;
use crate::record::Addr;

pub const HEADER_LEN: usize = 16;

/// Register the templates of the IPFIX message at the start of `b` and queue its data sets in `scan`;
/// returns the message length (messages can follow each other in one payload). A message cut short queues the
/// whole sets before the cut, then is an error.
pub fn scan(b: &[u8], base: usize, exporter: Addr, scan: &mut Scan) -> Result<usize, FormatError> {
    need_header(b, base, HEADER_LEN, "IPFIX message")?;
    let len = u16_at(b, 2) as usize;
    if len < HEADER_LEN {
        return Err(FormatError::new(
            base as u64 + 2,
            format!("IPFIX message length {len}, below its {HEADER_LEN}-byte header"),
        ));
    }
    let domain = u32_at(b, 12);
    let ctx = scan.context(Context {
        unix_secs: u32_at(b, 4),
        uptime_ms: None,
        exporter: exporter_id(exporter, domain),
    });
    let key = |id| TemplateKey {
        exporter,
        domain,
        id,
        version: 10,
    };
    let names = SetNames {
        whole: "IPFIX message",
        set: "set",
        zero_fill_ends: false,
    };
    let present = len.min(b.len());
    walk_sets(
        &b[..present],
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
    )?;
    if len > b.len() {
        return Err(FormatError::new(
            base as u64 + 2,
            format!(
                "truncated IPFIX message: its header says {len} bytes, {} present",
                b.len()
            ),
        ));
    }
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
        let mut c = Cursor::new(&body[at + head..], (base + at + head) as u64, BE);
        let mut wire = Vec::with_capacity(nfields.min(body.len() / 4));
        for _ in 0..nfields {
            let field = c.u16("a field specifier").and_then(|raw| {
                let flen = c.u16("a field length")?;
                let enterprise = if raw & 0x8000 != 0 {
                    c.u32("an enterprise number")?
                } else {
                    0
                };
                Ok((raw & 0x7fff, flen, classify(enterprise, raw & 0x7fff)))
            });
            match field {
                Ok(f) => wire.push(f),
                Err(e) => {
                    scan.warn(
                        e.offset as usize,
                        format!(
                            "IPFIX template {id} declares {nfields} fields but its set ends after {}: {}",
                            wire.len(),
                            e.message
                        ),
                    );
                    return;
                }
            }
        }
        scan.template(key(id), Template::new(id, &wire, options), base + at);
        at += head + c.pos();
    }
}
