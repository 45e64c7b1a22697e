//! v9 and IPFIX templates and the cache that keeps them across the files of one run.
//!
//! Templates are parsed and registered while files are opened (sequentially, in input order); each data set is
//! paired with its template then, so decoding on worker threads never touches the cache or a lock.

use super::fields::FieldKind;
use crate::record::Addr;
use ahash::AHashMap;
use std::sync::{Arc, Mutex};

/// Length value that marks an IPFIX variable-length field.
pub const VARIABLE: u16 = 0xFFFF;

/// One field of a template: its length on the wire and what it means for a [`crate::record::FlowRecord`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    pub id: u16,
    /// Private enterprise number (IPFIX), 0 for IANA / v9 fields.
    pub enterprise: u32,
    /// Bytes, or [`VARIABLE`].
    pub len: u16,
    pub kind: FieldKind,
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
    /// Set when the template was rejected (the id of its zero-length field): its data is reported, not decoded.
    pub rejected: Option<u16>,
}

impl Template {
    pub fn new(id: u16, fields: Vec<FieldSpec>, options: bool) -> Template {
        let variable = fields.iter().any(|f| f.len == VARIABLE);
        let min_len = fields
            .iter()
            .map(|f| if f.len == VARIABLE { 1 } else { f.len as usize })
            .sum();
        Template {
            id,
            fields,
            options,
            min_len,
            fixed_len: if variable { None } else { Some(min_len) },
            rejected: None,
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

/// Templates seen so far in this run, shared by every file opened through one [`crate::formats::Opener`].
#[derive(Default)]
pub struct TemplateCache {
    map: Mutex<AHashMap<TemplateKey, Arc<Template>>>,
}

impl TemplateCache {
    pub fn new() -> TemplateCache {
        TemplateCache::default()
    }

    pub fn insert(&self, key: TemplateKey, t: Template) {
        if let Ok(mut m) = self.map.lock() {
            m.insert(key, Arc::new(t));
        }
    }

    pub fn remove(&self, key: &TemplateKey) {
        if let Ok(mut m) = self.map.lock() {
            m.remove(key);
        }
    }

    pub fn get(&self, key: &TemplateKey) -> Option<Arc<Template>> {
        self.map.lock().ok().and_then(|m| m.get(key).cloned())
    }

    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
