//! Address and port lists of a definitions file: `[lists]` and `[ports]`, referenced from filters as `@name`.
//!
//! An address list is a sorted set of disjoint 128-bit intervals (IPv4 stored as `::ffff:a.b.c.d`), so membership
//! is one binary search however the entries were written. Lists are immutable once built and cheap to clone.

mod addr;
pub mod bogons;
mod ports;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::record::Addr;

pub use addr::{parse_cidr, parse_entry, prefix_interval, Interval, MAX_WILDCARD_INTERVALS};
pub use ports::{parse_port_entry, PortList};

/// A list entry that does not parse: where it is, what it says, and what was expected instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListError {
    /// `lists.trusted[3]`, `lists/drop.txt:12`, `builtin:nope`: whatever the caller named the entry by.
    pub location: String,
    /// The entry as written (trimmed).
    pub entry: String,
    pub message: String,
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: entry '{}': {}",
            self.location, self.entry, self.message
        )
    }
}

impl std::error::Error for ListError {}

/// A set of IPv4 and IPv6 addresses. Cloning shares the intervals.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct AddrList {
    ranges: Arc<[Interval]>,
}

impl fmt::Debug for AddrList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut l = f.debug_list();
        for &(lo, hi) in self.ranges.iter() {
            l.entry(&format_args!("{:?}-{:?}", Addr(lo), Addr(hi)));
        }
        l.finish()
    }
}

impl AddrList {
    /// Parse entries; `location` names each one in errors (e.g. `lists.trusted[2]`). Overlapping entries merge.
    pub fn parse_entries<L: fmt::Display>(entries: &[(&str, L)]) -> Result<AddrList, ListError> {
        let mut v = Vec::with_capacity(entries.len());
        for (text, loc) in entries {
            parse_entry(text, &mut v).map_err(|message| ListError {
                location: loc.to_string(),
                entry: text.trim().to_string(),
                message,
            })?;
        }
        Ok(AddrList::from_intervals(v))
    }

    /// One entry per line; blank lines and everything after `#` are ignored. Errors name `origin:line`.
    pub fn parse_lines(text: &str, origin: &str) -> Result<AddrList, ListError> {
        let mut v = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            parse_entry(entry, &mut v).map_err(|message| ListError {
                location: format!("{origin}:{}", i + 1),
                entry: entry.to_string(),
                message,
            })?;
        }
        Ok(AddrList::from_intervals(v))
    }

    /// Read a list file (see [`AddrList::parse_lines`]).
    pub fn from_file(path: &Path) -> Result<AddrList, ListError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ListError {
            location: origin.clone(),
            entry: String::new(),
            message: format!("cannot read the list file: {e}"),
        })?;
        AddrList::parse_lines(&text, &origin)
    }

    /// A built-in list: `bogons`, `private` or `multicast`.
    pub fn builtin(name: &str) -> Option<AddrList> {
        let entries = bogons::builtin_entries(name)?;
        let mut v = Vec::with_capacity(entries.len());
        for e in entries {
            // The built-in tables are constants checked by the tests; a bad one would be a bug, not input.
            parse_entry(e, &mut v).ok()?;
        }
        Some(AddrList::from_intervals(v))
    }

    /// A list written as a string in the definitions: `builtin:NAME` or `file:PATH` (relative to `base_dir`).
    pub fn from_source(source: &str, base_dir: &Path) -> Result<AddrList, ListError> {
        let err = |message: String| ListError {
            location: source.to_string(),
            entry: source.to_string(),
            message,
        };
        if let Some(name) = source.strip_prefix("builtin:") {
            AddrList::builtin(name).ok_or_else(|| {
                err(format!(
                    "expected one of builtin:{}, found builtin:{name}",
                    bogons::BUILTIN_NAMES.join(", builtin:")
                ))
            })
        } else if let Some(path) = source.strip_prefix("file:") {
            AddrList::from_file(&base_dir.join(path))
        } else {
            Err(err(format!(
                "expected 'builtin:NAME', 'file:PATH' or a list of entries, found '{source}'"
            )))
        }
    }

    /// A list from raw intervals in any order; they are sorted and merged.
    pub fn from_intervals(mut v: Vec<Interval>) -> AddrList {
        addr::normalize(&mut v);
        AddrList { ranges: v.into() }
    }

    /// The union of several lists.
    pub fn union(lists: &[&AddrList]) -> AddrList {
        AddrList::from_intervals(
            lists
                .iter()
                .flat_map(|l| l.ranges.iter().copied())
                .collect(),
        )
    }

    /// Binary search over the sorted disjoint intervals.
    #[inline]
    pub fn contains(&self, a: Addr) -> bool {
        let i = self.ranges.partition_point(|&(_, hi)| hi < a.0);
        self.ranges.get(i).is_some_and(|&(lo, _)| lo <= a.0)
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Sorted, disjoint, non-adjacent intervals.
    pub fn intervals(&self) -> &[Interval] {
        &self.ranges
    }
}

/// Named lists of a definitions file.
#[derive(Debug, Clone, Default)]
pub struct ListSet {
    pub addrs: BTreeMap<String, AddrList>,
    pub ports: BTreeMap<String, PortList>,
}

impl ListSet {
    pub fn insert_addrs(&mut self, name: &str, list: AddrList) {
        self.addrs.insert(name.to_string(), list);
    }

    pub fn insert_ports(&mut self, name: &str, list: PortList) {
        self.ports.insert(name.to_string(), list);
    }

    /// True when `name` is a list with no entries (a rule that needs it cannot fire).
    pub fn is_empty_list(&self, name: &str) -> bool {
        self.addrs.get(name).is_some_and(AddrList::is_empty)
            || self.ports.get(name).is_some_and(PortList::is_empty)
    }
}

#[cfg(test)]
mod tests;
