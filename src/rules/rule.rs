//! One rule: what to count, for which key, over which flows, and when a count is a finding.

use super::filter::Filter;
use super::lists::AddrList;
use crate::record::Addr;
use std::fmt;
use std::str::FromStr;

/// How bad a finding is, as the rule's author rates it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Severity, String> {
        Ok(match s {
            "info" => Severity::Info,
            "low" => Severity::Low,
            "medium" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => {
                return Err(format!(
                    "expected one of info, low, medium, high, critical; found '{s}'"
                ))
            }
        })
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which address a key is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddrField {
    Src,
    Dst,
    /// Either end: each flow counts once for its source and once for its destination.
    Host,
}

/// What a key adds to its address, if anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyExtra {
    None,
    Src,
    Dst,
    Sport,
    Dport,
    Proto,
}

/// How much of an address a key or a distinct count keeps: the first `v4` bits of an IPv4 address and the first
/// `v6` bits of an IPv6 one, the rest zero (`src/24`: one key per IPv4 /24). [`Prefix::WHOLE`] keeps addresses as
/// they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Prefix {
    pub v4: u8,
    pub v6: u8,
}

impl Prefix {
    pub const WHOLE: Prefix = Prefix { v4: 32, v6: 128 };

    #[inline]
    pub fn is_whole(self) -> bool {
        self == Prefix::WHOLE
    }

    /// The address with its host bits cleared. IPv4 addresses are stored IPv4-mapped, so their mask keeps the
    /// mapping's upper 96 bits and a masked IPv4 address is still IPv4; a masked IPv6 address never becomes one.
    #[inline]
    pub fn apply(self, a: Addr) -> Addr {
        if self.is_whole() {
            return a;
        }
        Addr(a.0 & !self.host_mask(a))
    }

    /// The bits of `a` that this prefix clears.
    #[inline]
    fn host_mask(self, a: Addr) -> u128 {
        let host_bits = if a.is_v4() {
            32 - self.v4 as u32
        } else {
            128 - self.v6 as u32
        };
        // 128 host bits (an IPv6 /0) is every bit: a plain shift by 128 would overflow.
        u128::MAX.checked_shl(host_bits).map_or(u128::MAX, |m| !m)
    }

    /// The prefix length that applies to `a` when it is shorter than the whole address (what a report prints
    /// after the address: `10.0.0.0/24`), else `None`.
    pub fn len_for(self, a: Addr) -> Option<u8> {
        match a.is_v4() {
            true if self.v4 < 32 => Some(self.v4),
            false if self.v6 < 128 => Some(self.v6),
            _ => None,
        }
    }

    /// Every address the prefix of `a` covers, as an inclusive range of 128-bit values.
    pub fn range(self, a: Addr) -> (u128, u128) {
        let m = self.host_mask(a);
        (a.0 & !m, a.0 | m)
    }

    /// Parse what follows an address field's `/`: `24` (an IPv4 length: 32 or less), `64` (an IPv6 length: more
    /// than 32), or `24/64` (both). The family a single length does not name keeps whole addresses.
    fn parse(text: &str) -> Result<Prefix, String> {
        let len = |t: &str, max: u8| -> Result<u8, String> {
            t.parse::<u8>()
                .ok()
                .filter(|&n| n <= max && t.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| format!("expected a prefix length 0-{max}; found '{t}'"))
        };
        match text.split_once('/') {
            Some((v4, v6)) => Ok(Prefix {
                v4: len(v4, 32)?,
                v6: len(v6, 128)?,
            }),
            None => {
                let n = len(text, 128)?;
                Ok(if n <= 32 {
                    Prefix { v4: n, v6: 128 }
                } else {
                    Prefix { v4: 32, v6: n }
                })
            }
        }
    }
}

impl fmt::Display for Prefix {
    /// `/24`, `/64` or `/24/64`, as [`Prefix::parse`] reads them back; nothing for whole addresses.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.v4, self.v6) {
            (32, 128) => Ok(()),
            (v4, 128) if v4 < 32 => write!(f, "/{v4}"),
            (32, v6) if v6 > 32 => write!(f, "/{v6}"),
            (v4, v6) => write!(f, "/{v4}/{v6}"),
        }
    }
}

/// An address field with an optional prefix (`dst/24`): the field's name and its prefix.
fn split_prefix(part: &str) -> Result<(&str, Prefix), String> {
    match part.split_once('/') {
        None => Ok((part, Prefix::WHOLE)),
        Some((name, len)) => Ok((name.trim(), Prefix::parse(len.trim())?)),
    }
}

/// The key a rule counts per: an address, optionally with a second field (`src`, `src,dport`, `src,dst`), each
/// address optionally cut to a prefix (`src/24`, `src/24,dport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeySpec {
    pub addr: AddrField,
    pub extra: KeyExtra,
    /// What the key keeps of its address.
    pub prefix: Prefix,
    /// What the key keeps of its second address (`src,dst/24`); whole for other second fields.
    pub extra_prefix: Prefix,
}

impl KeySpec {
    pub const SRC: KeySpec = KeySpec {
        addr: AddrField::Src,
        extra: KeyExtra::None,
        prefix: Prefix::WHOLE,
        extra_prefix: Prefix::WHOLE,
    };
}

impl FromStr for KeySpec {
    type Err = String;
    fn from_str(s: &str) -> Result<KeySpec, String> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let (first, prefix) = split_prefix(parts[0])?;
        let addr = match first {
            "src" => AddrField::Src,
            "dst" => AddrField::Dst,
            "host" => AddrField::Host,
            other => {
                return Err(format!(
                    "expected a key starting with src, dst or host; found '{other}'"
                ))
            }
        };
        let (second, extra_prefix) = match parts.get(1) {
            Some(p) => {
                let (name, prefix) = split_prefix(p)?;
                (Some(name), prefix)
            }
            None => (None, Prefix::WHOLE),
        };
        let extra = match second {
            None => KeyExtra::None,
            Some("src") => KeyExtra::Src,
            Some("dst") => KeyExtra::Dst,
            Some("sport") => KeyExtra::Sport,
            Some("dport") => KeyExtra::Dport,
            Some("proto") => KeyExtra::Proto,
            Some(other) => {
                return Err(format!(
                    "expected src, dst, sport, dport or proto after '{}'; found '{other}'",
                    parts[0]
                ))
            }
        };
        if parts.len() > 2 {
            return Err(format!(
                "a key has at most two fields (like src,dport); found '{s}'"
            ));
        }
        if !extra_prefix.is_whole() && !matches!(extra, KeyExtra::Src | KeyExtra::Dst) {
            return Err(format!(
                "a prefix length applies to an address (src or dst); found '{}'",
                parts[1]
            ));
        }
        let same = matches!(
            (addr, extra),
            (AddrField::Src, KeyExtra::Src) | (AddrField::Dst, KeyExtra::Dst)
        );
        if same {
            return Err(format!("key '{s}' names the same field twice"));
        }
        if addr == AddrField::Host && extra != KeyExtra::None {
            return Err(format!(
                "key 'host' counts both ends of a flow and takes no second field; found '{s}'"
            ));
        }
        Ok(KeySpec {
            addr,
            extra,
            prefix,
            extra_prefix,
        })
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.addr {
            AddrField::Src => "src",
            AddrField::Dst => "dst",
            AddrField::Host => "host",
        })?;
        write!(f, "{}", self.prefix)?;
        let extra = match self.extra {
            KeyExtra::None => return Ok(()),
            KeyExtra::Src => "src",
            KeyExtra::Dst => "dst",
            KeyExtra::Sport => "sport",
            KeyExtra::Dport => "dport",
            KeyExtra::Proto => "proto",
        };
        write!(f, ",{extra}{}", self.extra_prefix)
    }
}

/// A field whose distinct values a rule counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DistinctField {
    Src,
    Dst,
    /// The other end of the flow from the key's address (dst for a src key, src for a dst key).
    Peer,
    Sport,
    Dport,
}

/// A distinct count's field, and what it keeps of an address field (`distinct dst/24` counts /24s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Distinct {
    pub field: DistinctField,
    /// Whole for ports.
    pub prefix: Prefix,
}

impl From<DistinctField> for Distinct {
    fn from(field: DistinctField) -> Distinct {
        Distinct {
            field,
            prefix: Prefix::WHOLE,
        }
    }
}

/// What a rule counts per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CountSpec {
    Flows,
    Packets,
    Bytes,
    Distinct(Distinct),
}

impl CountSpec {
    pub fn is_distinct(self) -> bool {
        matches!(self, CountSpec::Distinct(_))
    }
}

impl FromStr for CountSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<CountSpec, String> {
        let words: Vec<&str> = s.split_whitespace().collect();
        Ok(match words.as_slice() {
            ["flows"] => CountSpec::Flows,
            ["packets"] => CountSpec::Packets,
            ["bytes"] => CountSpec::Bytes,
            ["distinct", field] => {
                let (name, prefix) = split_prefix(field)?;
                let field = match name {
                    "src" => DistinctField::Src,
                    "dst" => DistinctField::Dst,
                    "peer" => DistinctField::Peer,
                    "sport" => DistinctField::Sport,
                    "dport" => DistinctField::Dport,
                    other => {
                        return Err(format!(
                            "expected distinct src, dst, peer, sport or dport; found 'distinct {other}'"
                        ))
                    }
                };
                if !prefix.is_whole()
                    && matches!(field, DistinctField::Sport | DistinctField::Dport)
                {
                    return Err(format!(
                        "a prefix length applies to an address (src, dst or peer); found 'distinct {name}'"
                    ));
                }
                CountSpec::Distinct(Distinct { field, prefix })
            }
            _ => {
                return Err(format!(
                "expected flows, packets, bytes or distinct <src|dst|peer|sport|dport>; found '{s}'"
            ))
            }
        })
    }
}

impl fmt::Display for CountSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CountSpec::Flows => f.write_str("flows"),
            CountSpec::Packets => f.write_str("packets"),
            CountSpec::Bytes => f.write_str("bytes"),
            CountSpec::Distinct(d) => {
                f.write_str(match d.field {
                    DistinctField::Src => "distinct src",
                    DistinctField::Dst => "distinct dst",
                    DistinctField::Peer => "distinct peer",
                    DistinctField::Sport => "distinct sport",
                    DistinctField::Dport => "distinct dport",
                })?;
                write!(f, "{}", d.prefix)
            }
        }
    }
}

/// Windows on flow start time: each `len_ms` long, one starting every `step_ms` ms (`step_ms == len_ms`: tumbling
/// windows, each flow in one; a shorter step: hopping windows, each flow in `len_ms / step_ms` of them). Window `k`
/// covers `[k * step_ms, k * step_ms + len_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Window {
    pub len_ms: u64,
    pub step_ms: u64,
}

/// The most windows one flow may fall in (`window / step`): each is a key to count, so a rule with 64 of them
/// costs about what 64 rules cost.
pub const MAX_HOPS: u64 = 64;

impl Window {
    pub fn tumbling(len_ms: u64) -> Window {
        Window {
            len_ms,
            step_ms: len_ms,
        }
    }

    /// How many windows each flow falls in.
    pub fn hops(self) -> u64 {
        self.len_ms / self.step_ms
    }

    /// A window of `len_ms` every `step_ms`: the step must divide the window, at most [`MAX_HOPS`] times.
    pub fn hopping(len_ms: u64, step_ms: u64) -> Result<Window, String> {
        if step_ms > len_ms || !len_ms.is_multiple_of(step_ms) {
            return Err(format!(
                "expected a step that divides the window ({}); found '{}'",
                format_window(len_ms),
                format_window(step_ms)
            ));
        }
        if len_ms / step_ms > MAX_HOPS {
            return Err(format!(
                "expected a step of at least 1/{MAX_HOPS} of the window ({}), since each flow is counted in \
                 window/step windows; found '{}' ({} windows)",
                format_window(len_ms),
                format_window(step_ms),
                len_ms / step_ms
            ));
        }
        Ok(Window { len_ms, step_ms })
    }
}

/// A threshold for the keys whose address is in a list (`above_for = { "@servers" = 5000 }`).
#[derive(Debug, Clone)]
pub struct GroupAbove {
    /// The list's name, without the `@`.
    pub list: String,
    pub addrs: AddrList,
    pub above: u64,
}

/// A compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub name: String,
    pub about: String,
    pub severity: Severity,
    pub filter: Filter,
    pub key: KeySpec,
    pub count: CountSpec,
    /// A finding when the count is strictly greater than this (for keys in no list of `above_for`).
    pub above: u64,
    /// Thresholds of keys in lists, in file order: the first list holding the key's address decides.
    pub above_for: Vec<GroupAbove>,
    /// A finding also needs more matching flows than this (`flows_above`): 0 adds nothing.
    pub flows_above: u64,
    /// Windows on flow start time; `None` = the whole input.
    pub window: Option<Window>,
}

impl Rule {
    /// The threshold of the key whose address is `addr` (already cut to the key's prefix): that of the first list
    /// of `above_for` holding it, else `above`. A prefix key is in a list when any address of its prefix is: a
    /// subnet with a busy server in it counts that server's traffic.
    pub fn above_for_key(&self, addr: Addr) -> u64 {
        if self.above_for.is_empty() {
            return self.above;
        }
        let (lo, hi) = self.key.prefix.range(addr);
        self.above_for
            .iter()
            .find(|g| g.addrs.overlaps(lo, hi))
            .map_or(self.above, |g| g.above)
    }

    /// The smallest threshold any key of the rule can have: admission must be safe for every key.
    pub fn min_above(&self) -> u64 {
        self.above_for
            .iter()
            .map(|g| g.above)
            .fold(self.above, u64::min)
    }

    /// Whether a key with threshold `above` and this count and flows is a finding.
    pub fn fires(&self, above: u64, count: u64, flows: u64) -> bool {
        count > above && flows > self.flows_above
    }
}

/// Parse a window length such as `300`, `300s`, `5m`, `1h`, `1d` into milliseconds.
pub fn parse_window(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("expected a window like 300s, 5m, 1h or 1d; found '{s}'"))?;
    let scale = match unit {
        "" | "s" => 1_000,
        "ms" => 1,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "expected a window unit ms, s, m, h or d; found '{unit}' in '{s}'"
            ))
        }
    };
    if n == 0 {
        return Err(format!("a window must be longer than 0; found '{s}'"));
    }
    n.checked_mul(scale)
        .ok_or_else(|| format!("window '{s}' is too long"))
}

/// Format milliseconds as the shortest window spelling (`5m`, `1h`).
pub fn format_window(ms: u64) -> String {
    for (unit, scale) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if ms.is_multiple_of(scale) {
            return format!("{}{unit}", ms / scale);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_parse_and_print_back() {
        for k in [
            "src",
            "dst",
            "host",
            "src,dport",
            "src,dst",
            "dst,dport",
            "dst,src",
        ] {
            let spec: KeySpec = k.parse().unwrap();
            assert_eq!(spec.to_string(), k);
        }
        assert!("src,src".parse::<KeySpec>().is_err());
        assert!("host,dport".parse::<KeySpec>().is_err());
        assert!("peer"
            .parse::<KeySpec>()
            .unwrap_err()
            .contains("src, dst or host"));
        assert!("src,dport,proto".parse::<KeySpec>().is_err());
    }

    #[test]
    fn prefixes_parse_per_family_and_print_back() {
        let key = |k: &str| k.parse::<KeySpec>();
        let p = |v4, v6| Prefix { v4, v6 };
        assert_eq!(key("src/24").unwrap().prefix, p(24, 128));
        assert_eq!(key("dst/64").unwrap().prefix, p(32, 64));
        assert_eq!(key("src/24/64").unwrap().prefix, p(24, 64));
        assert_eq!(key("host/16").unwrap().prefix, p(16, 128));
        let pair = key("src/24,dst/16").unwrap();
        assert_eq!((pair.prefix, pair.extra_prefix), (p(24, 128), p(16, 128)));
        assert_eq!(key("src/24,dport").unwrap().extra_prefix, Prefix::WHOLE);
        // A length of 32 or less is IPv4's: `/32` keeps IPv4 whole, so it is the plain key; `/32/32` is not.
        assert_eq!(key("src/32").unwrap(), key("src").unwrap());
        assert_eq!(key("src/32/32").unwrap().prefix, p(32, 32));
        for k in [
            "src/24",
            "dst/64",
            "src/24/64",
            "src/0/0",
            "src/32/32",
            "src/24,dport",
            "dst,src/24",
            "host/16/48",
        ] {
            assert_eq!(key(k).unwrap().to_string(), k);
        }
        for (bad, says) in [
            ("src/33/64", "0-32"),
            ("src/24/129", "0-128"),
            ("src/129", "0-128"),
            ("src/", "found ''"),
            ("src/+4", "found '+4'"),
            ("src,dport/24", "applies to an address"),
            ("src/24,proto/8", "applies to an address"),
        ] {
            let e = key(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn prefixes_mask_each_family_apart() {
        let a = |s: &str| s.parse::<Addr>().unwrap();
        let p = Prefix { v4: 24, v6: 64 };
        assert_eq!(p.apply(a("10.1.2.3")), a("10.1.2.0"));
        assert!(p.apply(a("10.1.2.3")).is_v4());
        assert_eq!(p.apply(a("2001:db8:1:2:3::9")), a("2001:db8:1:2::"));
        let v6_only = Prefix { v4: 32, v6: 48 };
        assert_eq!(v6_only.apply(a("10.1.2.3")), a("10.1.2.3"));
        assert_eq!(v6_only.apply(a("2001:db8:1:2::9")), a("2001:db8:1::"));
        let all = Prefix { v4: 0, v6: 0 };
        assert_eq!(all.apply(a("10.1.2.3")), a("0.0.0.0"));
        assert_eq!(all.apply(a("2001:db8::1")), a("::"));
        assert_eq!(p.range(a("10.1.2.0")), (a("10.1.2.0").0, a("10.1.2.255").0));
        assert_eq!(p.len_for(a("10.1.2.0")), Some(24));
        assert_eq!(v6_only.len_for(a("10.1.2.0")), None);
        assert_eq!(Prefix::WHOLE.apply(a("10.1.2.3")), a("10.1.2.3"));
    }

    #[test]
    fn hopping_windows_need_a_step_that_divides_the_window() {
        let w = Window::hopping(60_000, 10_000).unwrap();
        assert_eq!(w.hops(), 6);
        assert_eq!(Window::tumbling(60_000).hops(), 1);
        assert_eq!(
            Window::hopping(60_000, 60_000).unwrap(),
            Window::tumbling(60_000)
        );
        assert!(Window::hopping(60_000, 7_000)
            .unwrap_err()
            .contains("divides the window (1m); found '7s'"));
        assert!(Window::hopping(60_000, 120_000).is_err());
        assert!(Window::hopping(3_600_000, 1_000)
            .unwrap_err()
            .contains("3600 windows"));
        assert_eq!(
            Window::hopping(64_000, 1_000).unwrap().hops(),
            MAX_HOPS,
            "the most windows a flow may fall in"
        );
    }

    #[test]
    fn counts_parse_and_print_back() {
        for c in [
            "flows",
            "packets",
            "bytes",
            "distinct dst",
            "distinct peer",
            "distinct dport",
        ] {
            let spec: CountSpec = c.parse().unwrap();
            assert_eq!(spec.to_string(), c);
        }
        assert!("distinct hosts".parse::<CountSpec>().is_err());
        assert!("octets".parse::<CountSpec>().is_err());
        for c in ["distinct dst/24", "distinct peer/24/64", "distinct src/48"] {
            let spec: CountSpec = c.parse().unwrap();
            assert_eq!(spec.to_string(), c);
        }
        let CountSpec::Distinct(d) = "distinct dst/24".parse().unwrap() else {
            panic!("a distinct count");
        };
        assert_eq!(
            (d.field, d.prefix.v4, d.prefix.v6),
            (DistinctField::Dst, 24, 128)
        );
        let e = "distinct dport/8".parse::<CountSpec>().unwrap_err();
        assert!(e.contains("applies to an address"), "{e}");
    }

    #[test]
    fn windows_parse_with_units() {
        assert_eq!(parse_window("5m"), Ok(300_000));
        assert_eq!(parse_window("300"), Ok(300_000));
        assert_eq!(parse_window("1h"), Ok(3_600_000));
        assert_eq!(parse_window("250ms"), Ok(250));
        assert!(parse_window("0s").is_err());
        assert!(parse_window("5 parsecs").is_err());
        assert!(parse_window("m").is_err());
        assert_eq!(format_window(300_000), "5m");
        assert_eq!(format_window(86_400_000), "1d");
        assert_eq!(format_window(1_500), "1500ms");
    }
}
