//! Address and port lists for definitions. STUB.

use crate::record::Addr;

/// A set of addresses: single addresses, prefixes, ranges; IPv4 and IPv6.
#[derive(Debug, Clone, Default)]
pub struct AddrList {
    ranges: Vec<(u128, u128)>,
}

impl AddrList {
    pub fn contains(&self, a: Addr) -> bool {
        self.ranges.iter().any(|&(lo, hi)| lo <= a.0 && a.0 <= hi)
    }
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }
}

/// Named lists of a definitions file.
#[derive(Debug, Clone, Default)]
pub struct ListSet {
    pub addrs: std::collections::BTreeMap<String, AddrList>,
    pub ports: std::collections::BTreeMap<String, Vec<u16>>,
}
