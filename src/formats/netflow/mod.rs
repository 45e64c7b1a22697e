//! NetFlow v5, v9 and IPFIX export packets, from raw UDP payload files or from packet captures.
//!
//! Opening scans every packet in input order: templates go into the run's shared [`TemplateCache`] and each data
//! set is paired with the template it needs. Decoding then walks those sets on any thread without the cache.
//! Data whose template has not been seen is counted and reported as a warning, never fatal.

pub mod fields;
pub mod ipfix;
pub mod templates;
pub mod v5;
pub mod v9;

use super::{ChunkStats, Decoder, FormatError, BATCH};
use crate::formats::Bytes;
use crate::record::{Addr, FlowRecord};
use fields::Context;
use std::sync::Arc;
use templates::{Template, TemplateCache, TemplateKey};

/// Data sets per chunk: a chunk is a unit of parallel work.
const ITEMS_PER_CHUNK: usize = 512;

/// Most warnings kept per input; beyond that only the count grows.
const MAX_WARNINGS: usize = 100;

#[inline]
pub(crate) fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
#[inline]
pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// An error unless `b` holds at least a `len`-byte header of a `what` packet at input offset `base`.
pub(crate) fn need_header(
    b: &[u8],
    base: usize,
    len: usize,
    what: &str,
) -> Result<(), FormatError> {
    if b.len() < len {
        return Err(FormatError::new(
            base as u64,
            format!("{what} header truncated: {} bytes, expected {len}", b.len()),
        ));
    }
    Ok(())
}

/// How a v9 packet or an IPFIX message names its parts, for warnings.
pub(crate) struct SetNames {
    pub what: &'static str,
    pub set: &'static str,
    pub whole: &'static str,
    /// v9 packets may end in zero padding after the last flowset; IPFIX messages have an exact length.
    pub zero_fill_ends: bool,
}

/// Walk the `{u16 id, u16 length}` sets of `b` from `start` (v9 flowsets, IPFIX sets), calling `each` with the id,
/// the set body, the body's input offset and the set's offset. A set that does not fit ends the walk with a warning.
pub(crate) fn walk_sets(
    b: &[u8],
    start: usize,
    base: usize,
    names: &SetNames,
    scan: &mut Scan,
    mut each: impl FnMut(u16, &[u8], usize, usize, &mut Scan),
) {
    let mut at = start;
    while at + 4 <= b.len() {
        let id = u16_at(b, at);
        let len = u16_at(b, at + 2) as usize;
        if len < 4 || at + len > b.len() {
            if names.zero_fill_ends && b[at..].iter().all(|&x| x == 0) {
                break;
            }
            scan.warn(
                base + at,
                format!(
                    "{} {} {id} length {len} does not fit the {} bytes left; rest of {} ignored",
                    names.what,
                    names.set,
                    b.len() - at,
                    names.whole
                ),
            );
            break;
        }
        each(id, &b[at + 4..at + len], base + at + 4, base + at, scan);
        at += len;
    }
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

/// True when `b` starts with a plausible v5, v9 or IPFIX export packet (version and lengths agree).
pub fn is_export_packet(b: &[u8]) -> bool {
    if b.len() < 4 {
        return false;
    }
    match u16_at(b, 0) {
        5 => v5::check(b, 0).is_ok(),
        9 => {
            // The first flowset must be a template, options template or data set that fits.
            b.len() >= v9::HEADER_LEN + 4 && {
                let id = u16_at(b, v9::HEADER_LEN);
                let len = u16_at(b, v9::HEADER_LEN + 2) as usize;
                (id <= 1 || id >= 256) && len >= 4 && v9::HEADER_LEN + len <= b.len()
            }
        }
        10 => {
            let len = u16_at(b, 2) as usize;
            (ipfix::HEADER_LEN + 4..=b.len()).contains(&len)
        }
        _ => false,
    }
}

/// One unit of decoding work found while scanning.
#[derive(Clone, Debug)]
pub(crate) enum Item {
    /// A v5 packet at `off` with `count` records.
    V5 {
        off: usize,
        count: usize,
        exporter: Option<u32>,
    },
    /// A v9/IPFIX data set body at `off..off+len` and its template.
    Data {
        off: usize,
        len: usize,
        tpl: Arc<Template>,
        ctx: Context,
    },
}

/// What scanning packets collects: work items, problems, counts.
pub struct Scan<'c> {
    cache: &'c TemplateCache,
    pub(crate) items: Vec<Item>,
    pub warnings: Vec<FormatError>,
    /// Warnings beyond [`MAX_WARNINGS`] that were only counted.
    pub warnings_dropped: u64,
    /// Export packets seen.
    pub packets: u64,
    /// Data sets that arrived before (or without) their template.
    pub missing_template_sets: u64,
    /// Templates rejected (zero-length fields).
    pub rejected_templates: u64,
    /// Data sets not decoded because their template was rejected.
    pub rejected_sets: u64,
}

impl<'c> Scan<'c> {
    pub fn new(cache: &'c TemplateCache) -> Scan<'c> {
        Scan {
            cache,
            items: Vec::new(),
            warnings: Vec::new(),
            warnings_dropped: 0,
            packets: 0,
            missing_template_sets: 0,
            rejected_templates: 0,
            rejected_sets: 0,
        }
    }

    pub(crate) fn warn(&mut self, at: usize, msg: String) {
        if self.warnings.len() < MAX_WARNINGS {
            self.warnings.push(FormatError::new(at as u64, msg));
        } else {
            self.warnings_dropped += 1;
        }
    }

    pub(crate) fn template(
        &mut self,
        key: TemplateKey,
        mut t: Template,
        zero_field: Option<u16>,
        at: usize,
    ) {
        if let Some(f) = zero_field {
            self.rejected_templates += 1;
            t.rejected = Some(f);
            self.cache.insert(key, t);
            self.warn(
                at,
                format!(
                    "template {} (source {}) has zero-length field {f}: template rejected, its data will not be decoded",
                    key.id, key.domain
                ),
            );
            return;
        }
        self.cache.insert(key, t);
    }

    pub(crate) fn withdraw(&mut self, key: TemplateKey) {
        self.cache.remove(&key);
    }

    pub(crate) fn data(&mut self, key: TemplateKey, off: usize, len: usize, ctx: Context) {
        match self.cache.get(&key) {
            Some(tpl) if tpl.rejected.is_some() => {
                self.rejected_sets += 1;
                self.warn(
                    off.saturating_sub(4),
                    format!(
                        "data set for template {} (source {}, {} bytes) not decoded: its template was rejected \
                         (zero-length field {})",
                        key.id,
                        key.domain,
                        len,
                        tpl.rejected.unwrap_or(0)
                    ),
                );
            }
            Some(tpl) => self.items.push(Item::Data { off, len, tpl, ctx }),
            None => {
                self.missing_template_sets += 1;
                self.warn(
                    off.saturating_sub(4),
                    format!(
                        "data set for template {} (source {}, {} bytes) arrived before its template: not decoded",
                        key.id, key.domain, len
                    ),
                );
            }
        }
    }

    /// Scan one UDP payload holding one or more export packets. `base` is its offset in the input.
    /// An unreadable first packet is an error; trouble after a good packet is a warning.
    pub fn payload(&mut self, b: &[u8], base: usize, exporter: Addr) -> Result<(), FormatError> {
        let mut at = 0;
        while at < b.len() {
            let rest = &b[at..];
            if at > 0 && rest.iter().all(|&x| x == 0) {
                break; // zero padding after the last packet
            }
            let r = match rest.get(..2).map(|v| u16::from_be_bytes([v[0], v[1]])) {
                Some(5) => v5::check(rest, base + at).map(|(count, len)| {
                    self.items.push(Item::V5 {
                        off: base + at,
                        count,
                        exporter: (exporter != Addr::default()).then_some(exporter.0 as u32),
                    });
                    len
                }),
                Some(9) => v9::scan(rest, base + at, exporter, self),
                Some(10) => ipfix::scan(rest, base + at, exporter, self),
                v => Err(FormatError::new(
                    (base + at) as u64,
                    format!("export packet version {v:?}, expected 5, 9 or 10"),
                )),
            };
            match r {
                Ok(n) => {
                    self.packets += 1;
                    at += n.max(1);
                }
                Err(e) if at == 0 => return Err(e),
                Err(e) => {
                    self.warn(
                        e.offset as usize,
                        format!("{}; rest of payload ignored", e.message),
                    );
                    break;
                }
            }
        }
        Ok(())
    }
}

/// Export packets of one input (a payload file or a capture), scanned and ready to decode.
pub struct NetflowDecoder {
    bytes: Bytes,
    format: &'static str,
    items: Vec<Item>,
    warnings: Vec<FormatError>,
    /// Packets seen, data sets without template, rejected templates.
    pub packets: u64,
    pub missing_template_sets: u64,
    pub rejected_templates: u64,
    pub rejected_sets: u64,
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
            warnings,
            packets: scan.packets,
            missing_template_sets: scan.missing_template_sets,
            rejected_templates: scan.rejected_templates,
            rejected_sets: scan.rejected_sets,
        }
    }

    /// Open one raw payload file (one or more export packets) with the run's template cache.
    pub fn open_payload(
        bytes: Bytes,
        cache: &TemplateCache,
    ) -> Result<NetflowDecoder, FormatError> {
        let mut scan = Scan::new(cache);
        scan.payload((*bytes).as_ref(), 0, Addr::default())?;
        Ok(NetflowDecoder::new(bytes, "netflow", scan))
    }
}

impl Decoder for NetflowDecoder {
    fn format(&self) -> &'static str {
        self.format
    }

    fn chunks(&self) -> usize {
        self.items.len().div_ceil(ITEMS_PER_CHUNK)
    }

    fn decode_chunk(
        &self,
        index: usize,
        _scratch: &mut Vec<u8>,
        out: &mut dyn FnMut(&[FlowRecord]),
    ) -> Result<ChunkStats, FormatError> {
        let b: &[u8] = (*self.bytes).as_ref();
        let start = index.saturating_mul(ITEMS_PER_CHUNK).min(self.items.len());
        let end = start.saturating_add(ITEMS_PER_CHUNK).min(self.items.len());
        let mut batch: Vec<FlowRecord> = Vec::with_capacity(BATCH.min(1024));
        let mut stats = ChunkStats::default();
        let mut push = |r: FlowRecord, batch: &mut Vec<FlowRecord>| {
            batch.push(r);
            if batch.len() == BATCH {
                out(batch);
                batch.clear();
            }
        };
        for item in &self.items[start..end] {
            match item {
                Item::V5 {
                    off,
                    count,
                    exporter,
                } => {
                    let p = b.get(*off..).unwrap_or(&[]);
                    v5::decode(p, *count, *exporter, &mut |r| {
                        stats.flows += 1;
                        push(r, &mut batch)
                    });
                }
                Item::Data { off, len, tpl, ctx } => {
                    let mut set = b.get(*off..off.saturating_add(*len)).unwrap_or(&[]);
                    while set.len() >= tpl.min_len.max(1) {
                        if set.len() < 4 && set.iter().all(|&x| x == 0) {
                            break; // padding to a 4-byte boundary
                        }
                        if tpl.options {
                            let Some(n) = fields::record_len(set, tpl) else {
                                break;
                            };
                            stats.skipped += 1;
                            set = &set[n.max(1)..];
                            continue;
                        }
                        let Some((r, n)) = fields::decode_record(set, tpl, ctx) else {
                            break;
                        };
                        stats.flows += 1;
                        push(r, &mut batch);
                        set = &set[n.max(1).min(set.len())..];
                    }
                }
            }
        }
        if !batch.is_empty() {
            out(&batch);
        }
        Ok(stats)
    }

    fn warnings(&self) -> Vec<FormatError> {
        self.warnings.clone()
    }
}
