//! v9 and IPFIX templates and the cache that keeps them across the files of one run.
//!
//! Templates are parsed and registered while files are opened (sequentially, in input order); each data set is
//! paired with its template then, so decoding on worker threads never touches the cache or a lock.
//!
//! The cache is bounded ([`MAX_PER_EXPORTER`], [`MAX_TEMPLATES`], [`MAX_FIELDS`]): a flood of templates (a capture
//! of nothing else, spoofed exporters) evicts the oldest ones, which the reader warns about; data that then
//! arrives for an evicted template is counted as lost, like data before its template.

use super::fields::FieldKind;
use crate::record::Addr;
use ahash::AHashMap;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Length value that marks an IPFIX variable-length field.
pub const VARIABLE: u16 = 0xFFFF;

/// Most templates kept per exporter and observation domain (exporters use tens).
pub const MAX_PER_EXPORTER: usize = 1024;
/// Most templates kept in all.
pub const MAX_TEMPLATES: usize = 64 * 1024;
/// Most field specifiers kept in all (4 bytes each, after merging the fields a record skips).
pub const MAX_FIELDS: usize = 4 << 20;

/// One field of a template as decoding needs it: its length on the wire and what it means for a
/// [`crate::record::FlowRecord`]. Adjacent fixed-length fields that mean nothing here are merged into one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    /// Bytes, or [`VARIABLE`].
    pub len: u16,
    pub kind: FieldKind,
}

/// Why a template cannot be used: its data is counted as lost and reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// No field takes a byte: every data byte would be a record.
    NoBytes,
    /// A v9 field of length 65535 (v9 has no variable-length fields): no record that long fits in a flowset.
    TooLong { field: u16 },
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NoBytes => write!(f, "its records have no bytes"),
            Refused::TooLong { field } => write!(
                f,
                "field {field} has length 65535 (v9 has no variable-length fields, and no flowset holds a record \
                 that long)"
            ),
        }
    }
}

/// A data or options template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    pub id: u16,
    pub fields: Vec<FieldSpec>,
    /// Options template: its data describes the exporter, not flows, and is skipped.
    pub options: bool,
    /// Smallest possible record (variable-length fields count their 1-byte length prefix).
    pub min_len: usize,
    /// Record length when no field is variable-length.
    pub fixed_len: Option<usize>,
    /// Set when the template cannot be used: its data is reported and counted, not decoded.
    pub refused: Option<Refused>,
}

impl Template {
    /// A template of `fields` (id, enterprise, length, meaning) as they were on the wire. Zero-length fields take
    /// no bytes and are dropped; runs of fixed-length fields with no meaning here are merged.
    pub fn new(id: u16, wire: &[(u16, u16, FieldKind)], options: bool) -> Template {
        let mut fields: Vec<FieldSpec> = Vec::with_capacity(wire.len());
        for &(_, len, kind) in wire {
            if len == 0 {
                continue;
            }
            match fields.last_mut() {
                Some(last)
                    if kind == FieldKind::Ignore
                        && last.kind == FieldKind::Ignore
                        && len != VARIABLE
                        && last.len != VARIABLE
                        && u32::from(last.len) + u32::from(len) < u32::from(VARIABLE) =>
                {
                    last.len += len;
                }
                _ => fields.push(FieldSpec { len, kind }),
            }
        }
        let variable = fields.iter().any(|f| f.len == VARIABLE);
        let min_len = fields
            .iter()
            .map(|f| {
                if f.len == VARIABLE {
                    1
                } else {
                    usize::from(f.len)
                }
            })
            .sum();
        Template {
            id,
            fields,
            options,
            min_len,
            fixed_len: if variable { None } else { Some(min_len) },
            refused: (min_len == 0).then_some(Refused::NoBytes),
        }
    }
}

/// Who a template belongs to: templates are only valid for their exporter and observation domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TemplateKey {
    /// Exporter address (from the capture), or 0 for raw payload files whose sender is unknown.
    pub exporter: Addr,
    /// v9 source id or IPFIX observation domain id.
    pub domain: u32,
    pub id: u16,
    /// 9 or 10: the two versions number their templates independently.
    pub version: u16,
}

impl TemplateKey {
    fn owner(&self) -> (Addr, u32, u16) {
        (self.exporter, self.domain, self.version)
    }
}

/// What inserting a template pushed out of the cache.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Evicted {
    pub count: usize,
    /// The first template evicted.
    pub first: Option<TemplateKey>,
}

struct Entry {
    tpl: Arc<Template>,
    /// Insertion number: queue entries with another number are stale.
    seq: u64,
}

/// One owner's templates: how many are live, and their insertion order (stale entries skipped).
#[derive(Default)]
struct Owned {
    live: usize,
    order: VecDeque<(u64, TemplateKey)>,
}

#[derive(Default)]
struct Inner {
    map: AHashMap<TemplateKey, Entry>,
    /// Insertion order, oldest first, over all templates; stale entries are skipped.
    order: VecDeque<(u64, TemplateKey)>,
    by_owner: AHashMap<(Addr, u32, u16), Owned>,
    fields: usize,
    seq: u64,
    evicted: u64,
}

impl Inner {
    fn live(&self, seq: u64, key: &TemplateKey) -> bool {
        self.map.get(key).is_some_and(|e| e.seq == seq)
    }

    /// Drop `key`; an owner left with no template is forgotten, and one whose queue is mostly stale is compacted,
    /// so queues stay within a few entries per live template whatever evicts them.
    fn remove(&mut self, key: &TemplateKey) {
        let Some(e) = self.map.remove(key) else {
            return;
        };
        self.fields -= e.tpl.fields.len();
        let owner = key.owner();
        let map = &self.map;
        let drop_owner = match self.by_owner.get_mut(&owner) {
            Some(o) => {
                o.live -= 1;
                if o.live > 0 && o.order.len() > 2 * o.live + 4 {
                    o.order
                        .retain(|(s, k)| map.get(k).is_some_and(|e| e.seq == *s));
                }
                o.live == 0
            }
            None => false,
        };
        if drop_owner {
            self.by_owner.remove(&owner);
        }
    }

    /// Drop the oldest live template (of `owner`, or of all); None when there is none.
    fn evict_oldest(&mut self, owner: Option<(Addr, u32, u16)>) -> Option<TemplateKey> {
        loop {
            let next = match owner {
                Some(o) => self.by_owner.get_mut(&o)?.order.pop_front(),
                None => self.order.pop_front(),
            };
            let (seq, key) = next?;
            if self.live(seq, &key) {
                self.remove(&key);
                self.evicted += 1;
                return Some(key);
            }
        }
    }

    /// Rebuild the queues of `owner` and of all once stale entries (re-sent templates) outnumber live ones.
    fn compact(&mut self, owner: (Addr, u32, u16)) {
        let map = &self.map;
        let live = |(s, k): &(u64, TemplateKey)| map.get(k).is_some_and(|e| e.seq == *s);
        if self.order.len() > 2 * map.len() + 1024 {
            self.order.retain(live);
        }
        if let Some(o) = self.by_owner.get_mut(&owner) {
            if o.order.len() > 2 * o.live + 4 {
                o.order.retain(live);
            }
        }
    }
}

/// Templates seen so far in this run, shared by every file opened through one [`crate::formats::Opener`].
#[derive(Default)]
pub struct TemplateCache {
    inner: Mutex<Inner>,
}

impl TemplateCache {
    pub fn new() -> TemplateCache {
        TemplateCache::default()
    }

    /// Keep `t` for `key` (replacing an earlier one), evicting the oldest templates past the bounds.
    pub fn insert(&self, key: TemplateKey, t: Template) -> Evicted {
        let Ok(mut m) = self.inner.lock() else {
            return Evicted::default();
        };
        m.seq += 1;
        let seq = m.seq;
        m.fields += t.fields.len();
        let old = m.map.insert(
            key,
            Entry {
                tpl: Arc::new(t),
                seq,
            },
        );
        match old {
            Some(old) => m.fields -= old.tpl.fields.len(),
            None => m.by_owner.entry(key.owner()).or_default().live += 1,
        }
        m.order.push_back((seq, key));
        if let Some(o) = m.by_owner.get_mut(&key.owner()) {
            o.order.push_back((seq, key));
        }
        let mut out = Evicted::default();
        let mut note = |k: Option<TemplateKey>| match k {
            Some(k) => {
                out.count += 1;
                out.first.get_or_insert(k);
                true
            }
            None => false,
        };
        let owner = |m: &Inner| m.by_owner.get(&key.owner()).map_or(0, |o| o.live);
        while owner(&m) > MAX_PER_EXPORTER {
            if !note(m.evict_oldest(Some(key.owner()))) {
                break;
            }
        }
        while m.map.len() > MAX_TEMPLATES || m.fields > MAX_FIELDS {
            if !note(m.evict_oldest(None)) {
                break;
            }
        }
        m.compact(key.owner());
        out
    }

    pub fn remove(&self, key: &TemplateKey) {
        if let Ok(mut m) = self.inner.lock() {
            m.remove(key);
            m.compact(key.owner());
        }
    }

    pub fn get(&self, key: &TemplateKey) -> Option<Arc<Template>> {
        let m = self.inner.lock().ok()?;
        m.map.get(key).map(|e| e.tpl.clone())
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|m| m.map.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Exporters (address, domain, version) holding templates, and the queue entries kept for them: bounded by
    /// the templates held, whatever came and went.
    pub fn owners(&self) -> (usize, usize) {
        self.inner.lock().map_or((0, 0), |m| {
            (
                m.by_owner.len(),
                m.by_owner.values().map(|o| o.order.len()).sum(),
            )
        })
    }

    /// Field specifiers held, over all templates.
    pub fn fields(&self) -> usize {
        self.inner.lock().map(|m| m.fields).unwrap_or(0)
    }

    /// Templates evicted so far to keep within the bounds.
    pub fn evicted(&self) -> u64 {
        self.inner.lock().map(|m| m.evicted).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(exporter: u32, id: u16) -> TemplateKey {
        TemplateKey {
            exporter: Addr::v4(exporter),
            domain: 0,
            id,
            version: 9,
        }
    }

    fn tpl(id: u16, fields: usize) -> Template {
        let wire: Vec<_> = (0..fields)
            .map(|i| (i as u16, 4, FieldKind::SrcPort))
            .collect();
        Template::new(id, &wire, false)
    }

    #[test]
    fn zero_length_fields_take_no_bytes_and_empty_templates_are_refused() {
        let t = Template::new(
            256,
            &[
                (8, 4, FieldKind::SrcV4),
                (0, 0, FieldKind::Ignore),
                (12, 4, FieldKind::DstV4),
            ],
            false,
        );
        assert_eq!((t.fields.len(), t.fixed_len, t.refused), (2, Some(8), None));
        let t = Template::new(257, &[(0, 0, FieldKind::Ignore)], false);
        assert_eq!(t.refused, Some(Refused::NoBytes));
        assert_eq!(
            Template::new(258, &[], false).refused,
            Some(Refused::NoBytes)
        );
    }

    #[test]
    fn fields_that_mean_nothing_here_are_merged() {
        let t = Template::new(
            256,
            &[
                (100, 4, FieldKind::Ignore),
                (101, 2, FieldKind::Ignore),
                (8, 4, FieldKind::SrcV4),
                (102, VARIABLE, FieldKind::Ignore),
                (103, 1, FieldKind::Ignore),
            ],
            false,
        );
        let lens: Vec<u16> = t.fields.iter().map(|f| f.len).collect();
        assert_eq!(lens, [6, 4, VARIABLE, 1]);
        assert_eq!((t.min_len, t.fixed_len), (12, None));
    }

    #[test]
    fn an_exporter_keeps_at_most_its_bound_oldest_out_first() {
        let c = TemplateCache::new();
        let mut evicted = 0;
        for i in 0..MAX_PER_EXPORTER + 10 {
            evicted += c.insert(key(1, 256 + i as u16), tpl(1, 1)).count;
        }
        assert_eq!(evicted, 10);
        assert_eq!(c.len(), MAX_PER_EXPORTER);
        assert!(c.get(&key(1, 256)).is_none(), "the oldest went first");
        assert!(c.get(&key(1, 256 + 10)).is_some());
        // Another exporter is not affected; re-sending a template does not grow the cache.
        c.insert(key(2, 256), tpl(1, 1));
        for _ in 0..10_000 {
            assert_eq!(c.insert(key(2, 256), tpl(1, 1)).count, 0);
        }
        assert_eq!(c.len(), MAX_PER_EXPORTER + 1);
        assert_eq!(c.evicted(), 10);
    }

    #[test]
    fn the_whole_cache_is_bounded_in_templates_and_fields() {
        let c = TemplateCache::new();
        for e in 0..(MAX_TEMPLATES / 100 + 5) as u32 {
            for id in 0..100 {
                c.insert(key(e, 256 + id), tpl(1, 1));
            }
        }
        assert_eq!(c.len(), MAX_TEMPLATES);
        let c = TemplateCache::new();
        for i in 0..300 {
            c.insert(key(i, 256), tpl(1, 16_000));
        }
        assert!(c.fields() <= MAX_FIELDS, "{}", c.fields());
        assert!(c.get(&key(299, 256)).is_some() && c.get(&key(0, 256)).is_none());
    }

    #[test]
    fn exporters_that_came_and_went_are_forgotten() {
        let c = TemplateCache::new();
        // A million one-template exporters, then some with many templates each.
        for e in 0..1_000_000u32 {
            c.insert(key(e, 256), tpl(1, 1));
        }
        for e in 0..200u32 {
            for id in 0..2_000 {
                c.insert(key(2_000_000 + e, 256 + id), tpl(1, 1));
            }
        }
        let (owners, queued) = c.owners();
        assert!(owners <= MAX_TEMPLATES, "{owners}");
        assert!(queued <= 3 * MAX_TEMPLATES + 4 * owners, "{queued}");
        assert_eq!(c.len(), MAX_TEMPLATES);
    }
}
