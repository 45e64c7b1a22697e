//! Port lists: numbers and ranges, kept as a 65,536-bit set so a lookup is one bit test.

use std::fmt;
use std::sync::Arc;

use super::ListError;

const WORDS: usize = 65536 / 64;

/// A set of ports from entries such as `80`, `443`, `1024-65535`. Cloning shares the set.
#[derive(Clone)]
pub struct PortList {
    /// Sorted, disjoint, non-adjacent ranges: for display and for the tests.
    ranges: Arc<[(u16, u16)]>,
    bits: Arc<[u64]>,
}

impl Default for PortList {
    fn default() -> Self {
        PortList::from_ranges(Vec::new())
    }
}

impl fmt::Debug for PortList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.ranges.iter()).finish()
    }
}

impl PortList {
    /// Parse entries of a definitions list; `location` names each entry in errors (e.g. `ports.proxy_out[2]`).
    /// Two entries that share a port are an error naming both: an overlap usually means a typo.
    pub fn parse_entries<L: fmt::Display>(entries: &[(&str, L)]) -> Result<PortList, ListError> {
        let mut parsed: Vec<(u16, u16, usize)> = Vec::with_capacity(entries.len());
        for (i, (text, loc)) in entries.iter().enumerate() {
            let (lo, hi) = parse_port_entry(text).map_err(|message| ListError {
                location: loc.to_string(),
                entry: text.trim().to_string(),
                message,
            })?;
            parsed.push((lo, hi, i));
        }
        parsed.sort_unstable();
        for w in parsed.windows(2) {
            let (a, b) = (w[0], w[1]);
            if b.0 <= a.1 {
                // Name the entry that comes later in the file, and the one it collides with.
                let (first, second) = if a.2 < b.2 { (a.2, b.2) } else { (b.2, a.2) };
                let (ftext, floc) = &entries[first];
                let (stext, sloc) = &entries[second];
                return Err(ListError {
                    location: sloc.to_string(),
                    entry: stext.trim().to_string(),
                    message: format!(
                        "expected ports not listed before, found port {} again (already in '{}' at {floc})",
                        b.0.max(a.0),
                        ftext.trim()
                    ),
                });
            }
        }
        Ok(PortList::from_ranges(
            parsed.into_iter().map(|(lo, hi, _)| (lo, hi)).collect(),
        ))
    }

    /// A list from ranges that may overlap (nfdump's inline `port in [...]` allows repeats).
    pub fn from_ranges(mut ranges: Vec<(u16, u16)>) -> PortList {
        ranges.sort_unstable();
        let mut merged: Vec<(u16, u16)> = Vec::with_capacity(ranges.len());
        for (lo, hi) in ranges {
            match merged.last_mut() {
                Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
                _ => merged.push((lo, hi)),
            }
        }
        let mut bits = vec![0u64; WORDS];
        for &(lo, hi) in &merged {
            for p in lo..=hi {
                bits[usize::from(p >> 6)] |= 1 << (p & 63);
            }
        }
        PortList {
            ranges: merged.into(),
            bits: bits.into(),
        }
    }

    #[inline]
    pub fn contains(&self, port: u16) -> bool {
        self.bits
            .get(usize::from(port >> 6))
            .is_some_and(|w| w >> (port & 63) & 1 == 1)
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The merged ranges, sorted.
    pub fn ranges(&self) -> &[(u16, u16)] {
        &self.ranges
    }
}

/// `80` or `1024-65535`.
pub fn parse_port_entry(text: &str) -> Result<(u16, u16), String> {
    let t = text.trim();
    let num = |s: &str| {
        let s = s.trim();
        s.parse::<u16>()
            .map_err(|_| format!("expected a port number 0-65535 or a range a-b, found '{s}'"))
    };
    match t.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (num(a)?, num(b)?);
            if a > b {
                return Err(format!(
                    "expected a range start at or below its end, found '{t}'"
                ));
            }
            Ok((a, b))
        }
        None => num(t).map(|p| (p, p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_ranges() {
        let l = PortList::parse_entries(&[("80", "p[0]"), ("443", "p[1]"), ("8000-8080", "p[2]")])
            .unwrap();
        for p in 0..=65535u16 {
            assert_eq!(
                l.contains(p),
                p == 80 || p == 443 || (8000..=8080).contains(&p),
                "{p}"
            );
        }
        assert_eq!(l.ranges(), &[(80, 80), (443, 443), (8000, 8080)]);
        let all = PortList::parse_entries(&[("0-65535", "x")]).unwrap();
        assert!(all.contains(0) && all.contains(65535));
    }

    #[test]
    fn overlaps_are_errors_naming_both_entries() {
        let e = PortList::parse_entries(&[
            ("1024-65535", "ports.high[0]"),
            ("80", "ports.high[1]"),
            ("8080", "ports.high[2]"),
        ])
        .unwrap_err();
        assert_eq!(e.location, "ports.high[2]");
        assert_eq!(e.entry, "8080");
        assert!(
            e.message.contains("1024-65535") && e.message.contains("ports.high[0]"),
            "{e}"
        );
        let e = PortList::parse_entries(&[("25", "a"), ("25", "b")]).unwrap_err();
        assert_eq!(e.location, "b");
    }

    #[test]
    fn bad_entries() {
        let e = PortList::parse_entries(&[("80", "a"), ("http", "b")]).unwrap_err();
        assert_eq!((e.location.as_str(), e.entry.as_str()), ("b", "http"));
        assert!(e
            .message
            .contains("expected a port number 0-65535 or a range a-b, found 'http'"));
        assert!(parse_port_entry("65536").is_err());
        assert!(parse_port_entry("9-3").unwrap_err().contains("at or below"));
        assert!(parse_port_entry("-3").is_err());
    }

    #[test]
    fn inline_lists_merge_repeats() {
        let l = PortList::from_ranges(vec![(25, 25), (25, 25), (20, 30)]);
        assert_eq!(l.ranges(), &[(20, 30)]);
    }
}
