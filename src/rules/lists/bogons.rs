//! Built-in address lists (`builtin:NAME`), taken from the IANA IPv4 and IPv6 Special-Purpose Address Registries
//! (RFC 6890 and successors). Why each block is where it is: docs/DEFINITIONS.md, section "Lists".

/// Blocks no packet on the public Internet or inside an ordinary site should be addressed to: "this network",
/// loopback, link-local, documentation, benchmarking, reserved, discard-only, shared CGN space. Private-use space
/// (RFC 1918, ULA) is NOT here: it is routable inside the site, where most flow data is collected.
/// `::ffff:0:0/96` (IPv4-mapped) is NOT here either: it is how every IPv4 address is stored.
pub const BOGONS: &[&str] = &[
    "0.0.0.0/8",       // "this network" (RFC 791)
    "100.64.0.0/10",   // shared address space, carrier-grade NAT (RFC 6598)
    "127.0.0.0/8",     // loopback (RFC 1122)
    "169.254.0.0/16",  // link-local (RFC 3927)
    "192.0.0.0/24",    // IETF protocol assignments (RFC 6890)
    "192.0.2.0/24",    // TEST-NET-1 documentation (RFC 5737)
    "198.18.0.0/15",   // benchmarking (RFC 2544)
    "198.51.100.0/24", // TEST-NET-2 documentation (RFC 5737)
    "203.0.113.0/24",  // TEST-NET-3 documentation (RFC 5737)
    "240.0.0.0/4",     // reserved (RFC 1112), includes 255.255.255.255 limited broadcast (RFC 919)
    "::/128",          // unspecified (RFC 4291)
    "::1/128",         // loopback (RFC 4291)
    "64:ff9b:1::/48",  // local-use IPv4/IPv6 translation (RFC 8215)
    "100::/64",        // discard-only (RFC 6666)
    "2001:2::/48",     // benchmarking (RFC 5180)
    "2001:db8::/32",   // documentation (RFC 3849)
    "3fff::/20",       // documentation (RFC 9637)
    "5f00::/16",       // segment routing SIDs (RFC 9602)
    "fe80::/10",       // link-local unicast (RFC 4291)
];

/// Private-use space: routable inside a site, never on the public Internet.
pub const PRIVATE: &[&str] = &[
    "10.0.0.0/8",     // RFC 1918
    "172.16.0.0/12",  // RFC 1918
    "192.168.0.0/16", // RFC 1918
    "fc00::/7",       // unique local (RFC 4193)
];

/// Multicast groups.
pub const MULTICAST: &[&str] = &[
    "224.0.0.0/4", // RFC 5771
    "ff00::/8",    // RFC 4291
];

/// The entries of a built-in list by name.
pub fn builtin_entries(name: &str) -> Option<&'static [&'static str]> {
    match name {
        "bogons" => Some(BOGONS),
        "private" => Some(PRIVATE),
        "multicast" => Some(MULTICAST),
        _ => None,
    }
}

/// Names accepted after `builtin:`, for error messages and `--help`.
pub const BUILTIN_NAMES: &[&str] = &["bogons", "private", "multicast"];
