//! IPFIX (RFC 7011) messages: a 16-byte header with the message length, then sets: templates (id 2), options
//! templates (id 3) and data (id >= 256). Field specifiers may carry an enterprise number; lengths of 65535
//! mark variable-length fields.

use super::fields::{classify, Context};
use super::templates::Template;
use super::{
    exporter_id, need_header, scan_packet, u16_at, u32_at, Layout, Parsed, Scan, TemplateRecord,
};
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
    let ctx = Context {
        unix_secs: u32_at(b, 4),
        uptime_ms: None,
        exporter: exporter_id(exporter, domain),
    };
    let present = len.min(b.len());
    scan_packet(&b[..present], base, &LAYOUT, ctx, (exporter, domain), scan)?;
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

const LAYOUT: Layout = Layout {
    version: 10,
    header_len: HEADER_LEN,
    whole: "IPFIX message",
    set: "set",
    zero_fill_ends: false,
    template_sets: (2, 3),
    template,
};

/// Parse the (options) template record `r` of a template set: field specifiers may carry an enterprise number;
/// a record of no fields withdraws the template.
fn template(r: &TemplateRecord<'_>, scan: &mut Scan) -> Parsed {
    let (body, at, id) = (r.body, r.at, r.id);
    let nfields = u16_at(body, at + 2) as usize;
    if nfields == 0 {
        return Parsed::Withdraw(at + 4);
    }
    let head = if r.options { 6 } else { 4 };
    if at + head > body.len() {
        scan.warn(
            r.base + at,
            format!("IPFIX options template {id} header truncated"),
        );
        return Parsed::Stop;
    }
    let mut c = Cursor::new(&body[at + head..], (r.base + at + head) as u64, BE);
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
                return Parsed::Stop;
            }
        }
    }
    Parsed::Template(Template::new(id, &wire, r.options), at + head + c.pos())
}
