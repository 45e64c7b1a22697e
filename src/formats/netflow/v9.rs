//! NetFlow v9 (RFC 3954) export packets: a 20-byte header, then flowsets: templates (id 0), options
//! templates (id 1) and data (id >= 256). The header has no length: a v9 packet runs to the end of its payload.

use super::fields::{classify, Context, FieldKind};
use super::templates::{Refused, Template, TemplateKey, VARIABLE};
use super::{exporter_id, need_header, u16_at, u32_at, walk_sets, Scan, SetNames};
use crate::formats::FormatError;
use crate::record::Addr;

pub const HEADER_LEN: usize = 20;

/// Register the templates of the v9 packet `b` (the whole payload from its header on) and queue its data
/// flowsets in `scan`. `base` is the packet's offset in the input. A flowset cut short is an error after the
/// flowsets before it are queued.
pub fn scan(b: &[u8], base: usize, exporter: Addr, scan: &mut Scan) -> Result<usize, FormatError> {
    need_header(b, base, HEADER_LEN, "NetFlow v9 export packet")?;
    let domain = u32_at(b, 16);
    let ctx = scan.context(Context {
        unix_secs: u32_at(b, 8),
        uptime_ms: Some(u32_at(b, 4)),
        exporter: exporter_id(exporter, domain),
    });
    let key = |id| TemplateKey {
        exporter,
        domain,
        id,
        version: 9,
    };
    let names = SetNames {
        whole: "NetFlow v9 export packet",
        set: "flowset",
        zero_fill_ends: true,
    };
    walk_sets(
        b,
        HEADER_LEN,
        base,
        &names,
        scan,
        |id, body, body_base, at, scan| match id {
            0 => templates(body, body_base, false, &key, scan),
            1 => templates(body, body_base, true, &key, scan),
            2..=255 => scan.warn(at, format!("NetFlow v9 reserved flowset id {id} skipped")),
            _ => scan.data(key(id), body_base, body.len(), ctx),
        },
    )?;
    Ok(b.len())
}

/// Parse the (options) templates of one flowset body and register them.
fn templates(
    body: &[u8],
    base: usize,
    options: bool,
    key: &dyn Fn(u16) -> TemplateKey,
    scan: &mut Scan,
) {
    let head = if options { 6 } else { 4 };
    let mut at = 0;
    while at + head <= body.len() {
        let id = u16_at(body, at);
        if id < 256 {
            if body[at..].iter().any(|&x| x != 0) {
                scan.warn(
                    base + at,
                    format!("NetFlow v9 template id {id} below 256; rest of flowset ignored"),
                );
            }
            return;
        }
        let nfields = if options {
            (u16_at(body, at + 2) as usize + u16_at(body, at + 4) as usize) / 4
        } else {
            u16_at(body, at + 2) as usize
        };
        let fields_at = at + head;
        let end = fields_at + nfields * 4;
        if end > body.len() {
            scan.warn(
                base + at,
                format!(
                    "NetFlow v9 template {id} declares {nfields} fields ({} bytes) but {} bytes remain",
                    nfields * 4,
                    body.len() - fields_at
                ),
            );
            return;
        }
        let wire: Vec<(u16, u16, FieldKind)> = (0..nfields)
            .map(|i| {
                let f = fields_at + i * 4;
                let fid = u16_at(body, f);
                (fid, u16_at(body, f + 2), classify(0, fid))
            })
            .collect();
        let mut t = Template::new(id, &wire, options);
        // v9 has no variable-length fields: 65535 is a length no record in a flowset can have.
        if let Some(&(field, ..)) = wire.iter().find(|(_, len, _)| *len == VARIABLE) {
            t.refused = Some(Refused::TooLong { field });
        }
        scan.template(key(id), t, base + at);
        at = end;
    }
}
