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
    /// For each [`bucket`] of the address space, the intervals that overlap it (start, end): a lookup searches only
    /// those. Empty when there are no intervals.
    buckets: Arc<[(u32, u32)]>,
}

/// IPv4 addresses by first octet (256 buckets), other addresses by their first byte (256 more). Most addresses
/// fall in a bucket no interval touches (the bogon list leaves all but a few first octets clean), and a feed of
/// 100,000 entries is searched a few hundred entries at a time instead of all of them.
const BUCKETS: usize = 512;

/// Which bucket an address (as a 128-bit number) falls in.
#[inline]
fn bucket(a: u128) -> usize {
    if a >> 32 == 0xffff {
        256 + ((a >> 24) & 0xff) as usize
    } else {
        (a >> 120) as usize
    }
}

/// The addresses of bucket `b`: one IPv4 first octet, or the non-IPv4 addresses of one first byte. The second
/// kind has a hole where IPv4 sits (in bucket 0), which only makes the interval range larger than needed.
fn bucket_span(b: usize) -> (u128, u128) {
    if b >= 256 {
        let lo = 0xffff_0000_0000u128 | ((b as u128 - 256) << 24);
        (lo, lo | 0x00ff_ffff)
    } else {
        let lo = (b as u128) << 120;
        (lo, lo | (u128::MAX >> 8))
    }
}

fn index(ranges: &[Interval]) -> Arc<[(u32, u32)]> {
    if ranges.is_empty() {
        return Arc::new([]);
    }
    (0..BUCKETS)
        .map(|b| {
            let (lo, hi) = bucket_span(b);
            // Every interval before `start` ends below `lo`, so it begins below `hi` too: `start <= end`.
            let start = ranges.partition_point(|&(_, end)| end < lo);
            let end = ranges.partition_point(|&(begin, _)| begin <= hi);
            (start as u32, end as u32)
        })
        .collect()
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
        AddrList {
            buckets: index(&v),
            ranges: v.into(),
        }
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

    /// Binary search over the sorted disjoint intervals that overlap the address's bucket.
    #[inline]
    pub fn contains(&self, a: Addr) -> bool {
        let Some(&(start, end)) = self.buckets.get(bucket(a.0)) else {
            return false;
        };
        let candidates = &self.ranges[start as usize..end as usize];
        let i = candidates.partition_point(|&(_, hi)| hi < a.0);
        candidates.get(i).is_some_and(|&(lo, _)| lo <= a.0)
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Whether any address from `lo` to `hi` (inclusive) is in the list (a subnet key touching the list).
    pub fn overlaps(&self, lo: u128, hi: u128) -> bool {
        let i = self.ranges.partition_point(|&(_, h)| h < lo);
        self.ranges.get(i).is_some_and(|&(l, _)| l <= hi)
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
