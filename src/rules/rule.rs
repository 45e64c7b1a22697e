//! One rule: what to count, for which key, over which flows, and when a count is a finding.

use super::filter::Filter;
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

/// The key a rule counts per: an address, optionally with a second field (`src`, `src,dport`, `src,dst`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeySpec {
    pub addr: AddrField,
    pub extra: KeyExtra,
}

impl KeySpec {
    pub const SRC: KeySpec = KeySpec {
        addr: AddrField::Src,
        extra: KeyExtra::None,
    };
}

impl FromStr for KeySpec {
    type Err = String;
    fn from_str(s: &str) -> Result<KeySpec, String> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let addr = match parts[0] {
            "src" => AddrField::Src,
            "dst" => AddrField::Dst,
            "host" => AddrField::Host,
            other => {
                return Err(format!(
                    "expected a key starting with src, dst or host; found '{other}'"
                ))
            }
        };
        let extra = match parts.get(1).copied() {
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
        Ok(KeySpec { addr, extra })
    }
}

impl fmt::Display for KeySpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.addr {
            AddrField::Src => "src",
            AddrField::Dst => "dst",
            AddrField::Host => "host",
        })?;
        let extra = match self.extra {
            KeyExtra::None => return Ok(()),
            KeyExtra::Src => "src",
            KeyExtra::Dst => "dst",
            KeyExtra::Sport => "sport",
            KeyExtra::Dport => "dport",
            KeyExtra::Proto => "proto",
        };
        write!(f, ",{extra}")
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

/// What a rule counts per key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CountSpec {
    Flows,
    Packets,
    Bytes,
    Distinct(DistinctField),
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
            ["distinct", field] => CountSpec::Distinct(match *field {
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
            }),
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
            CountSpec::Distinct(d) => f.write_str(match d {
                DistinctField::Src => "distinct src",
                DistinctField::Dst => "distinct dst",
                DistinctField::Peer => "distinct peer",
                DistinctField::Sport => "distinct sport",
                DistinctField::Dport => "distinct dport",
            }),
        }
    }
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
    /// A finding when the count is strictly greater than this.
    pub above: u64,
    /// Tumbling window on flow start time, in milliseconds; `None` = the whole input.
    pub window_ms: Option<u64>,
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
