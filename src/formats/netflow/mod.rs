//! NetFlow v5, v9 and IPFIX export packets, from raw UDP payload files or from packet captures.
//!
//! Opening scans every packet in input order: templates go into the run's shared [`TemplateCache`] and each data
//! set is paired with the template it needs. Decoding then walks those sets on any thread without the cache.
//! Data whose template has not been seen is counted as lost and reported as a warning. A payload or capture that
//! ends inside a packet is an error after the packets before the cut are read.

pub mod fields;
pub mod ipfix;
pub mod templates;
pub mod v5;
pub mod v9;

use super::bytes::{hex, BE};
use super::sink::Sink;
use super::{ChunkStats, Decoded, Decoder, FormatError, Lost, Out};
use crate::formats::Bytes;
use crate::record::Addr;
use fields::Context;
use std::sync::Arc;
use templates::{Template, TemplateCache, TemplateKey};

/// Data sets per chunk: a chunk is a unit of parallel work.
const ITEMS_PER_CHUNK: usize = 512;

/// Most warnings kept per input; beyond that only the count grows.
const MAX_WARNINGS: usize = 100;

#[inline]
pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    BE.u16(b, at).unwrap_or(0)
}
#[inline]
pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    BE.u32(b, at).unwrap_or(0)
}

/// An error unless `b` holds at least a `len`-byte header of a `what` at input offset `base`.
pub(crate) fn need_header(
    b: &[u8],
    base: usize,
    len: usize,
    what: &str,
) -> Result<(), FormatError> {
    if b.len() < len {
        return Err(FormatError::new(
            base as u64,
            format!(
                "truncated {what}: {} bytes, expected a {len}-byte header",
                b.len()
            ),
        ));
    }
    Ok(())
}

/// How a v9 packet or an IPFIX message is laid out and names its parts.
pub(crate) struct Layout {
    pub version: u16,
    pub header_len: usize,
    /// The whole: "NetFlow v9 export packet", "IPFIX message".
    pub whole: &'static str,
    pub set: &'static str,
    /// v9 packets may end in zero padding after the last flowset; IPFIX messages have an exact length.
    pub zero_fill_ends: bool,
    /// Set ids of templates and of options templates.
    pub template_sets: (u16, u16),
    /// Parse one template record of a template set.
    pub template: fn(&TemplateRecord<'_>, &mut Scan) -> Parsed,
}

/// A template record in a template set body, for its version's parser.
pub(crate) struct TemplateRecord<'a> {
    /// The set body, the record's offset in it, and the body's input offset.
    pub body: &'a [u8],
    pub at: usize,
    pub base: usize,
    pub id: u16,
    pub options: bool,
}

/// What a template record was.
pub(crate) enum Parsed {
    /// A template, and where the next record starts.
    Template(Template, usize),
    /// A withdrawal of the template (IPFIX), and where the next record starts.
    Withdraw(usize),
    /// The rest of the set cannot be read (the parser said why).
    Stop,
}

/// Register the (options) templates of one template set body at input offset `base`.
fn walk_templates(
    body: &[u8],
    base: usize,
    options: bool,
    layout: &Layout,
    key: &dyn Fn(u16) -> TemplateKey,
    scan: &mut Scan,
) {
    let mut at = 0;
    while at + 4 <= body.len() {
        let id = u16_at(body, at);
        if id < 256 {
            // Zeros are padding; anything else is not a template.
            if body[at..].iter().any(|&x| x != 0) {
                scan.warn(
                    base + at,
                    format!(
                        "{}: template id {id} below 256; rest of {} ignored",
                        layout.whole, layout.set
                    ),
                );
            }
            return;
        }
        let record = TemplateRecord {
            body,
            at,
            base,
            id,
            options,
        };
        match (layout.template)(&record, scan) {
            Parsed::Template(t, next) => {
                scan.template(key(id), t, base + at);
                at = next;
            }
            Parsed::Withdraw(next) => {
                scan.withdraw(key(id));
                at = next;
            }
            Parsed::Stop => return,
        }
    }
}

/// Register the templates of the packet `b` (header and sets, input offset `base`) and queue its data sets for
/// their templates; a set cut short is an error after the sets before it are queued.
pub(crate) fn scan_packet(
    b: &[u8],
    base: usize,
    layout: &Layout,
    ctx: Context,
    (exporter, domain): (Addr, u32),
    scan: &mut Scan,
) -> Result<(), FormatError> {
    let ctx = scan.context(ctx);
    let key = |id| TemplateKey {
        exporter,
        domain,
        id,
        version: layout.version,
    };
    walk_sets(b, base, layout, scan, |id, body, body_base, at, scan| {
        let (tpl, opt) = layout.template_sets;
        if id == tpl || id == opt {
            walk_templates(body, body_base, id == opt, layout, &key, scan);
        } else if id < 256 {
            scan.warn(
                at,
                format!("{}: reserved {} id {id} skipped", layout.whole, layout.set),
            );
        } else {
            scan.data(key(id), body_base, body.len(), ctx);
        }
    })
}

/// Walk the `{u16 id, u16 length}` sets of `b` after its header (v9 flowsets, IPFIX sets), calling `each` with the
/// id, the set body, the body's input offset and the set's offset. A set that does not fit is an error naming
/// the cut.
fn walk_sets(
    b: &[u8],
    base: usize,
    layout: &Layout,
    scan: &mut Scan,
    mut each: impl FnMut(u16, &[u8], usize, usize, &mut Scan),
) -> Result<(), FormatError> {
    let mut at = layout.header_len;
    while at < b.len() {
        let rest = &b[at..];
        if layout.zero_fill_ends && rest.iter().all(|&x| x == 0) {
            break;
        }
        let (id, len) = (u16_at(rest, 0), u16_at(rest, 2) as usize);
        if rest.len() < 4 || len > rest.len() {
            return Err(FormatError::new(
                (base + at) as u64,
                format!(
                    "truncated {}: {} {id} of {len} bytes, {} bytes left",
                    layout.whole,
                    layout.set,
                    rest.len()
                ),
            ));
        }
        if len < 4 {
            return Err(FormatError::new(
                (base + at) as u64,
                format!(
                    "{}: {} {id} has length {len}, below its 4-byte header",
                    layout.whole, layout.set
                ),
            ));
        }
        each(id, &rest[4..len], base + at + 4, base + at, scan);
        at += len;
    }
    Ok(())
}

/// The exporter identity written into records: its IPv4 address when known (low 32 bits for IPv6),
/// otherwise the v9 source id / IPFIX observation domain.
pub(crate) fn exporter_id(exporter: Addr, domain: u32) -> u32 {
    if exporter == Addr::default() {
        domain
    } else {
        exporter.0 as u32
    }
}

/// True when `b` starts with a whole, plausible v5, v9 or IPFIX export packet (version and lengths agree): how
/// a capture's UDP payloads are told apart from other traffic.
pub fn is_export_packet(b: &[u8]) -> bool {
    match BE.u16(b, 0) {
        Some(5) => v5::check(b, 0).is_ok(),
        Some(9) => first_set(b, v9::HEADER_LEN, |id| id <= 1 || id >= 256)
            .is_some_and(|len| v9::HEADER_LEN + len <= b.len()),
        Some(10) => {
            let len = u16_at(b, 2) as usize;
            (ipfix::HEADER_LEN + 4..=b.len()).contains(&len)
        }
        _ => false,
    }
}

/// True when `b` starts like an export packet, whole or cut short: how a payload file is recognised, so that
/// a cut one is read up to the cut and reported as truncated rather than as an unknown format.
pub fn looks_like_export_packet(b: &[u8]) -> bool {
    is_export_packet(b)
        || match BE.u16(b, 0) {
            Some(5) => {
                (1..=v5::MAX_COUNT).contains(&(u16_at(b, 2) as usize)) && b.len() >= v5::HEADER_LEN
            }
            Some(9) => first_set(b, v9::HEADER_LEN, |id| id <= 1 || id >= 256).is_some(),
            Some(10) => {
                u16_at(b, 2) as usize >= ipfix::HEADER_LEN + 4
                    && first_set(b, ipfix::HEADER_LEN, |id| id == 2 || id == 3 || id >= 256)
                        .is_some()
            }
            _ => false,
        }
}

/// The length of the set at `at` when its id passes `id_ok` and its length is at least its header.
fn first_set(b: &[u8], at: usize, id_ok: impl Fn(u16) -> bool) -> Option<usize> {
    let id = BE.u16(b, at)?;
    let len = BE.u16(b, at + 2)? as usize;
    (id_ok(id) && len >= 4).then_some(len)
}

/// One unit of decoding work found while scanning (24 bytes: a hostile input of tiny data sets costs at most
/// about five bytes of these per input byte).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Item {
    /// A v5 packet at `off` with `count` records.
    V5 {
        off: u64,
        count: u8,
        exporter: Option<u32>,
    },
    /// A v9/IPFIX data set body at `off..off+len`, its template and its packet's context (indexes into the
    /// scan's lists).
    Data {
        off: u64,
        len: u16,
        tpl: u32,
        ctx: u32,
    },
}

/// What scanning packets collects: work items, problems, counts.
pub struct Scan<'c> {
    cache: &'c TemplateCache,
    items: Vec<Item>,
    /// Templates and packet contexts the items refer to (each pushed once per run of items sharing it).
    templates: Vec<Arc<Template>>,
    contexts: Vec<Context>,
    pub warnings: Vec<FormatError>,
    /// Warnings beyond [`MAX_WARNINGS`] that were only counted.
    pub warnings_dropped: u64,
    /// Export packets seen.
    pub packets: u64,
    /// Data sets that could not be paired with a usable template, and fragments; reported when decoding.
    pub lost: Lost,
    /// Templates the bounded cache evicted while this input was read.
    pub evicted: u64,
    /// Where the input was cut short, when it was: reported after the packets before it are read.
    pub tail_error: Option<FormatError>,
}

impl<'c> Scan<'c> {
    pub fn new(cache: &'c TemplateCache) -> Scan<'c> {
        Scan {
            cache,
            items: Vec::new(),
            templates: Vec::new(),
            contexts: Vec::new(),
            warnings: Vec::new(),
            warnings_dropped: 0,
            packets: 0,
            lost: Lost::default(),
            evicted: 0,
            tail_error: None,
        }
    }

    pub(crate) fn warn(&mut self, at: usize, msg: String) {
        self.warn_with(at, || msg);
    }

    /// A warning whose text is only made when it will be shown (a flood can cause millions).
    pub(crate) fn warn_with(&mut self, at: usize, msg: impl FnOnce() -> String) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(FormatError::new(at as u64, msg()));
        } else {
            self.warnings_dropped += 1;
        }
    }

    /// Register a template (refused ones too: their data is then counted, not decoded).
    pub(crate) fn template(&mut self, key: TemplateKey, t: Template, at: usize) {
        if let Some(why) = t.refused {
            self.warn(
                at,
                format!(
                    "template {} (source {}) refused: {why}; its data will not be decoded",
                    key.id, key.domain
                ),
            );
        }
        let evicted = self.cache.insert(key, t);
        if let Some(first) = evicted.first {
            self.evicted += evicted.count as u64;
            self.warn_with(at, || {
                format!(
                    "template cache full: {} template(s) evicted, oldest first (template {} of exporter {} \
                     source {}); data for them will be counted as lost",
                    evicted.count, first.id, first.exporter, first.domain
                )
            });
        }
    }

    pub(crate) fn withdraw(&mut self, key: TemplateKey) {
        self.cache.remove(&key);
    }

    /// The index of packet context `ctx` (pushed when it differs from the last).
    pub(crate) fn context(&mut self, ctx: Context) -> u32 {
        if self.contexts.last() != Some(&ctx) {
            self.contexts.push(ctx);
        }
        (self.contexts.len() - 1) as u32
    }

    pub(crate) fn data(&mut self, key: TemplateKey, off: usize, len: usize, ctx: u32) {
        match self.cache.get(&key) {
            Some(tpl) if tpl.refused.is_some() => {
                self.lost.bad_template += 1;
                self.warn(
                    off.saturating_sub(4),
                    format!(
                        "data set for template {} (source {}, {len} bytes) not decoded: its template was refused",
                        key.id, key.domain,
                    ),
                );
            }
            Some(tpl) => {
                if !self.templates.last().is_some_and(|t| Arc::ptr_eq(t, &tpl)) {
                    self.templates.push(tpl);
                }
                self.items.push(Item::Data {
                    off: off as u64,
                    len: len as u16,
                    tpl: (self.templates.len() - 1) as u32,
                    ctx,
                });
            }
            None => {
                self.lost.no_template += 1;
                self.warn(
                    off.saturating_sub(4),
                    format!(
                        "data set for template {} (source {}, {len} bytes) arrived before its template (or after \
                         it was evicted): not decoded",
                        key.id, key.domain
                    ),
                );
            }
        }
    }

    pub(crate) fn v5(&mut self, off: usize, count: usize, exporter: Addr) {
        self.items.push(Item::V5 {
            off: off as u64,
            count: count as u8,
            exporter: (exporter != Addr::default()).then_some(exporter.0 as u32),
        });
    }

    /// Scan one UDP payload holding one or more export packets. `base` is its offset in the input. Returns the
    /// first packet that could not be read (the packets before it and its whole sets are queued).
    pub fn payload(&mut self, b: &[u8], base: usize, exporter: Addr) -> Result<(), FormatError> {
        let mut at = 0;
        while at < b.len() {
            let rest = &b[at..];
            if at > 0 && rest.iter().all(|&x| x == 0) {
                break; // zero padding after the last packet
            }
            let n = match BE.u16(rest, 0) {
                Some(5) => v5::scan(rest, base + at, exporter, self)?,
                Some(9) => v9::scan(rest, base + at, exporter, self)?,
                Some(10) => ipfix::scan(rest, base + at, exporter, self)?,
                Some(v) => {
                    return Err(FormatError::new(
                        (base + at) as u64,
                        format!("export packet version {v}, expected 5, 9 or 10"),
                    ))
                }
                None => {
                    return Err(FormatError::new(
                        (base + at) as u64,
                        format!(
                            "truncated export packet: {} byte, expected a version",
                            rest.len()
                        ),
                    ))
                }
            };
            self.packets += 1;
            at += n.max(1);
        }
        Ok(())
    }

    fn nothing_read(&self) -> bool {
        self.packets == 0 && self.items.is_empty() && self.lost.total() == 0
    }
}

/// Export packets of one input (a payload file or a capture), scanned and ready to decode.
pub struct NetflowDecoder {
    bytes: Bytes,
    format: &'static str,
    items: Vec<Item>,
    templates: Vec<Arc<Template>>,
    contexts: Vec<Context>,
    warnings: Vec<FormatError>,
    /// Lost at open (data sets without a usable template, fragments): the stats of the report chunk.
    lost: Lost,
    tail_error: Option<FormatError>,
    /// Packets seen.
    pub packets: u64,
}

impl NetflowDecoder {
    pub(crate) fn new(bytes: Bytes, format: &'static str, scan: Scan<'_>) -> NetflowDecoder {
        let mut warnings = scan.warnings;
        if scan.warnings_dropped > 0 {
            warnings.push(FormatError::new(
                0,
                format!("{} more warnings not shown", scan.warnings_dropped),
            ));
        }
        NetflowDecoder {
            bytes,
            format,
            items: scan.items,
            templates: scan.templates,
            contexts: scan.contexts,
            warnings,
            lost: scan.lost,
            tail_error: scan.tail_error,
            packets: scan.packets,
        }
    }

    /// Open one raw payload file (one or more export packets) with the run's template cache. A payload whose
    /// first packet cannot be read at all is refused; one cut later is read up to the cut, then an error.
    pub fn open_payload(
        bytes: Bytes,
        cache: &TemplateCache,
    ) -> Result<NetflowDecoder, FormatError> {
        let mut scan = Scan::new(cache);
        if let Err(e) = scan.payload((*bytes).as_ref(), 0, Addr::default()) {
            if scan.nothing_read() {
                return Err(e);
            }
            scan.tail_error = Some(e);
        }
        Ok(NetflowDecoder::new(bytes, "netflow", scan))
    }

    fn item_chunks(&self) -> usize {
        self.items.len().div_ceil(ITEMS_PER_CHUNK)
    }

    /// After the item chunks: one that reports what was lost at open, then one for the cut, when there are.
    fn extra_chunk(&self, index: usize) -> Decoded {
        let report = usize::from(self.lost.total() > 0);
        if index < self.item_chunks() + report {
            return Ok(ChunkStats {
                lost: self.lost,
                ..ChunkStats::default()
            });
        }
        Err(self.tail_error.clone().unwrap_or_else(|| {
            FormatError::new(
                0,
                format!("chunk {index} requested, the input has {}", self.chunks()),
            )
        }))
    }
}

/// Decode the records of one data set into `sink`: zero bytes too few for a record end it (padding); other
/// bytes too few, or a record running past the set, are a record cut short.
fn decode_set(set: &[u8], tpl: &Template, ctx: &Context, sink: &mut Sink<'_>) {
    let mut set = set;
    while !set.is_empty() {
        if (set.len() < tpl.min_len || set.len() < 4) && set.iter().all(|&x| x == 0) {
            return; // padding to a 4-byte boundary
        }
        let taken = if tpl.options {
            fields::record_len(set, tpl).inspect(|_| sink.stats.skipped += 1)
        } else {
            fields::decode_record(set, tpl, ctx).map(|(r, n)| {
                sink.push(r);
                n
            })
        };
        match taken {
            // A usable template takes at least a byte per record.
            Some(n) => set = set.get(n.max(1)..).unwrap_or(&[]),
            None => {
                sink.stats.lost.cut_records += 1;
                return;
            }
        }
    }
}

impl Decoder for NetflowDecoder {
    fn format(&self) -> &'static str {
        self.format
    }

    fn chunks(&self) -> usize {
        self.item_chunks()
            + usize::from(self.lost.total() > 0)
            + usize::from(self.tail_error.is_some())
    }

    fn decode_chunk(&self, index: usize, _scratch: &mut Vec<u8>, out: Out) -> Decoded {
        if index >= self.item_chunks() {
            return self.extra_chunk(index);
        }
        let b: &[u8] = (*self.bytes).as_ref();
        let start = index.saturating_mul(ITEMS_PER_CHUNK).min(self.items.len());
        let end = start.saturating_add(ITEMS_PER_CHUNK).min(self.items.len());
        let mut sink = Sink::new(out);
        for item in &self.items[start..end] {
            match *item {
                Item::V5 {
                    off,
                    count,
                    exporter,
                } => {
                    let p = b.get(off as usize..).unwrap_or(&[]);
                    v5::decode(p, usize::from(count), exporter, &mut |r| sink.push(r));
                }
                Item::Data { off, len, tpl, ctx } => {
                    let (off, len) = (off as usize, usize::from(len));
                    let set = b.get(off..off.saturating_add(len)).unwrap_or(&[]);
                    if let (Some(t), Some(c)) = (
                        self.templates.get(tpl as usize),
                        self.contexts.get(ctx as usize),
                    ) {
                        decode_set(set, t, c, &mut sink);
                    }
                }
            }
        }
        sink.finish(Ok(()))
    }

    fn warnings(&self) -> Vec<FormatError> {
        self.warnings.clone()
    }
}

/// The reader's reason for bytes that start like a v5/v9/IPFIX packet but are none, for unknown-format errors.
pub fn reason(b: &[u8]) -> Option<FormatError> {
    let cache = TemplateCache::new();
    let mut scan = Scan::new(&cache);
    match BE.u16(b, 0)? {
        5 | 9 | 10 => scan.payload(b, 0, Addr::default()).err(),
        _ => None,
    }
    .map(|mut e| {
        e.message = format!(
            "{} (the first bytes {} look like a NetFlow export packet; name another format with --input-format)",
            e.message,
            hex(b, 4)
        );
        e
    })
}
