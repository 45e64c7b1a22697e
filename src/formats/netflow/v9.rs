//! NetFlow v9 (RFC 3954) export packets: a 20-byte header, then flowsets: templates (id 0), options
//! templates (id 1) and data (id >= 256). The header has no length: a v9 packet runs to the end of its payload.

use super::fields::{classify, Context, FieldKind};
use super::templates::{Refused, Template, VARIABLE};
use super::{
    exporter_id, need_header, scan_packet, u16_at, u32_at, Layout, Parsed, Scan, TemplateRecord,
};
use crate::formats::FormatError;
use crate::record::Addr;

pub const HEADER_LEN: usize = 20;

/// Register the templates of the v9 packet `b` (the whole payload from its header on) and queue its data
/// flowsets in `scan`. `base` is the packet's offset in the input. A flowset cut short is an error after the
/// flowsets before it are queued.
pub fn scan(b: &[u8], base: usize, exporter: Addr, scan: &mut Scan) -> Result<usize, FormatError> {
    need_header(b, base, HEADER_LEN, "NetFlow v9 export packet")?;
    let domain = u32_at(b, 16);
    let ctx = Context {
        unix_secs: u32_at(b, 8),
        uptime_ms: Some(u32_at(b, 4)),
        exporter: exporter_id(exporter, domain),
    };
    scan_packet(b, base, &LAYOUT, ctx, (exporter, domain), scan)?;
    Ok(b.len())
}

const LAYOUT: Layout = Layout {
    version: 9,
    header_len: HEADER_LEN,
    whole: "NetFlow v9 export packet",
    set: "flowset",
    zero_fill_ends: true,
    template_sets: (0, 1),
    template,
};

/// Parse the (options) template record `r` of a template flowset.
fn template(r: &TemplateRecord<'_>, scan: &mut Scan) -> Parsed {
    let (body, at) = (r.body, r.at);
    let head = if r.options { 6 } else { 4 };
    if at + head > body.len() {
        return Parsed::Stop;
    }
    let nfields = if r.options {
        (u16_at(body, at + 2) as usize + u16_at(body, at + 4) as usize) / 4
    } else {
        u16_at(body, at + 2) as usize
    };
    let fields_at = at + head;
    let end = fields_at + nfields * 4;
    if end > body.len() {
        scan.warn(
            r.base + at,
            format!(
                "NetFlow v9 template {} declares {nfields} fields ({} bytes) but {} bytes remain",
                r.id,
                nfields * 4,
                body.len() - fields_at
            ),
        );
        return Parsed::Stop;
    }
    let wire: Vec<(u16, u16, FieldKind)> = (0..nfields)
        .map(|i| {
            let f = fields_at + i * 4;
            let fid = u16_at(body, f);
            (fid, u16_at(body, f + 2), classify(0, fid))
        })
        .collect();
    let mut t = Template::new(r.id, &wire, r.options);
    // v9 has no variable-length fields: 65535 is a length no record in a flowset can have.
    if let Some(&(field, ..)) = wire.iter().find(|(_, len, _)| *len == VARIABLE) {
        t.refused = Some(Refused::TooLong { field });
    }
    Parsed::Template(t, end)
}
