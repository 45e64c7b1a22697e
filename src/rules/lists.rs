//! Address and port lists for definitions. STUB (being implemented on another branch): this file only fixes the
//! interface the loader uses.

use crate::record::Addr;
use std::collections::BTreeMap;
use std::path::Path;

/// A set of addresses: single addresses, prefixes, ranges; IPv4 and IPv6.
#[derive(Debug, Clone, Default)]
pub struct AddrList {
    ranges: Vec<(u128, u128)>,
}

impl AddrList {
    pub const BUILTINS: &'static [&'static str] = &["bogons"];

    pub fn contains(&self, a: Addr) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= a.0 && a.0 <= hi)
    }
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
    pub fn parse_entry(s: &str) -> Result<AddrList, String> {
        let a: Addr = s
            .parse()
            .map_err(|_| format!("expected an address; found '{s}'"))?;
        Ok(AddrList {
            ranges: vec![(a.0, a.0)],
        })
    }
    pub fn from_file(path: &Path) -> Result<AddrList, String> {
        Err(format!("{}: list files not implemented", path.display()))
    }
    pub fn builtin(name: &str) -> Option<AddrList> {
        (name == "bogons").then(|| AddrList {
            ranges: vec![(Addr::v4(0xf000_0000).0, Addr::v4(0xffff_ffff).0)],
        })
    }
    pub fn extend(&mut self, other: &AddrList) {
        self.ranges.extend_from_slice(&other.ranges);
    }
}

/// A set of ports.
#[derive(Debug, Clone, Default)]
pub struct PortList {
    ports: Vec<u16>,
}

impl PortList {
    pub fn parse_entries(entries: &[String]) -> Result<PortList, (usize, String)> {
        let mut ports = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            ports.push(
                e.parse()
                    .map_err(|_| (i, format!("expected a port; found '{e}'")))?,
            );
        }
        Ok(PortList { ports })
    }
    pub fn contains(&self, p: u16) -> bool {
        self.ports.contains(&p)
    }
    pub fn is_empty(&self) -> bool {
        self.ports.is_empty()
    }
}

/// Named lists of a definitions file.
#[derive(Debug, Clone, Default)]
pub struct ListSet {
    pub addrs: BTreeMap<String, AddrList>,
    pub ports: BTreeMap<String, PortList>,
}

impl ListSet {
    /// True when `name` is a list with no entries (a rule that needs it cannot fire).
    pub fn is_empty_list(&self, name: &str) -> bool {
        self.addrs.get(name).is_some_and(AddrList::is_empty)
            || self.ports.get(name).is_some_and(PortList::is_empty)
    }
}
