//! One row per finding: every field a report carries, each named and worked out once, here.
//!
//! JSON lines and CSV write the same fields with the same values: JSON as an object (keys in alphabetical order,
//! as serde_json's map keeps them), CSV as columns in [`COLUMNS`] order under a header line of their names. The
//! text table shows the fields people read, from the same row. To add a field (evidence, say), add a line to
//! [`COLUMNS`]: every writer then carries it, and the tests that JSON and CSV agree cover it.

use super::time::iso8601_ms;
use super::{Finding, ReportMeta};
use crate::engine::evidence::Evidence;
use crate::engine::{KeyParts, KeyValue};
use crate::record::Addr;
use crate::rules::rule::{format_window, Prefix};
use crate::rules::KeySpec;
use serde_json::Value;

/// One field's value, typed so that each writer prints it its own way.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// Not applicable to this finding (`peer` of a host key): JSON `null`, an empty CSV cell.
    Null,
    Bool(bool),
    UInt(u64),
    Float(f64),
    Text(String),
    /// Several values (top peers, say): a JSON array, CSV cells joined with `;`.
    List(Vec<Cell>),
    /// Values with their flows, most first (top peers, ports, protocols): a JSON array of
    /// `{"<label>": value, "flows": n}`, CSV `value=n` joined with `;`.
    Counts(&'static str, Vec<(String, u64)>),
}

impl Cell {
    pub fn json(&self) -> Value {
        match self {
            Cell::Null => Value::Null,
            Cell::Bool(b) => Value::from(*b),
            Cell::UInt(v) => Value::from(*v),
            Cell::Float(v) => Value::from(*v),
            Cell::Text(s) => Value::from(s.as_str()),
            Cell::List(v) => Value::Array(v.iter().map(Cell::json).collect()),
            Cell::Counts(label, v) => Value::Array(
                v.iter()
                    .map(|(x, n)| {
                        let mut o = serde_json::Map::new();
                        o.insert(label.to_string(), Value::from(x.as_str()));
                        o.insert("flows".into(), Value::from(*n));
                        Value::Object(o)
                    })
                    .collect(),
            ),
        }
    }

    /// The cell as CSV text, before quoting. Numbers print as JSON prints them (shortest round-trip form).
    pub fn csv(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Bool(b) => b.to_string(),
            Cell::UInt(v) => v.to_string(),
            Cell::Float(v) => Value::from(*v).to_string(),
            Cell::Text(s) => s.clone(),
            Cell::List(v) => v.iter().map(Cell::csv).collect::<Vec<_>>().join(";"),
            Cell::Counts(_, v) => v
                .iter()
                .map(|(x, n)| format!("{x}={n}"))
                .collect::<Vec<_>>()
                .join(";"),
        }
    }
}

fn text(s: &str) -> Cell {
    Cell::Text(s.to_string())
}

fn time(ms: u64) -> Cell {
    Cell::Text(iso8601_ms(ms))
}

/// An address as a key holds it: `10.0.0.0/24` when the key keeps a prefix of it, else the address.
fn addr_text(a: Addr, prefix: Prefix) -> String {
    match prefix.len_for(a) {
        Some(len) => format!("{a}/{len}"),
        None => a.to_string(),
    }
}

fn host(spec: &KeySpec, k: &KeyParts) -> Cell {
    Cell::Text(addr_text(k.addr, spec.prefix))
}

fn peer(spec: &KeySpec, k: &KeyParts) -> Cell {
    match k.extra {
        KeyValue::Addr(a) => Cell::Text(addr_text(a, spec.extra_prefix)),
        _ => Cell::Null,
    }
}

fn port(k: &KeyParts) -> Cell {
    match k.extra {
        KeyValue::Port(p) => Cell::UInt(p.into()),
        _ => Cell::Null,
    }
}

fn proto(k: &KeyParts) -> Cell {
    match k.extra {
        KeyValue::Proto(p) => Cell::UInt(p.into()),
        _ => Cell::Null,
    }
}

/// ICMP type or code of an ICMP `dport` key.
fn icmp(k: &KeyParts, code: bool) -> Cell {
    match k.extra {
        KeyValue::Icmp(x) => Cell::UInt(if code { x & 0xff } else { x >> 8 }.into()),
        _ => Cell::Null,
    }
}

fn evidence(f: &Finding, cell: impl Fn(&Evidence) -> Cell) -> Cell {
    f.evidence.as_ref().map_or(Cell::Null, cell)
}

/// What the evidence covers: `complete`, or which share of the peers or ports a sample by hash covers (verify
/// pass); for one pass, the sample it is: `sample: 812 flows from when the key reached 50` (its count, or for a
/// distinct count past its exact form its flows), or `none` when no sample was kept.
pub fn evidence_kind(e: &Evidence) -> String {
    let mut parts = Vec::new();
    if e.peer_rate < 1.0 {
        parts.push(format!("peers sampled 1/{}", (1.0 / e.peer_rate).round()));
    }
    if e.port_rate < 1.0 {
        parts.push(format!("ports sampled 1/{}", (1.0 / e.port_rate).round()));
    }
    match (e.complete, parts.is_empty(), e.sample_from) {
        (true, true, _) => "complete".into(),
        (true, false, _) => parts.join(", "),
        (false, _, Some(0)) => format!("sample: every flow counted ({})", e.sampled_flows),
        (false, _, Some(from)) => format!(
            "sample: {} flows from when the key reached {from}",
            e.sampled_flows
        ),
        (false, _, None) => "none: more keys came near a threshold than one pass samples".into(),
    }
}

/// A protocol as operators name it: `tcp`, `udp`, `icmp`, else its number.
pub fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        47 => "gre".into(),
        50 => "esp".into(),
        58 => "icmp6".into(),
        132 => "sctp".into(),
        p => p.to_string(),
    }
}

/// The evidence as one line for people: bytes and packets, then the top peers, ports and protocols.
pub fn evidence_text(e: &Evidence) -> String {
    if !e.complete && e.sample_from.is_none() {
        return format!("evidence {}", evidence_kind(e));
    }
    let list = |v: Vec<String>| v.join(", ");
    let mut out = format!("{} bytes, {} packets", e.bytes, e.packets);
    if !e.peers.is_empty() {
        out += &format!(
            "; peers {}",
            list(e.peers.iter().map(|(a, n)| format!("{a} ({n})")).collect())
        );
    }
    if !e.ports.is_empty() {
        out += &format!(
            "; ports {}",
            list(e.ports.iter().map(|(p, n)| format!("{p} ({n})")).collect())
        );
    }
    if !e.protocols.is_empty() {
        out += &format!(
            "; {}",
            list(
                e.protocols
                    .iter()
                    .map(|(p, n)| format!("{} {n}", proto_name(*p)))
                    .collect()
            )
        );
    }
    let kind = evidence_kind(e);
    if kind != "complete" {
        out += &format!(" ({kind})");
    }
    out
}

/// The parts of a key as the row's fields name them, for reports of keys that are not findings (`compare`).
pub fn key_fields(k: &KeyParts) -> [(&'static str, Cell); 6] {
    let whole = KeySpec::SRC;
    [
        ("host", host(&whole, k)),
        ("peer", peer(&whole, k)),
        ("port", port(k)),
        ("proto", proto(k)),
        ("icmp_type", icmp(k, false)),
        ("icmp_code", icmp(k, true)),
    ]
}

/// How a field is worked out from the run's metadata and one finding.
type Field = fn(&ReportMeta, &Finding) -> Cell;

/// Every field of a row, in CSV column order: its name and how it is worked out.
pub const COLUMNS: &[(&str, Field)] = &[
    ("rule", |_, f| text(&f.rule)),
    ("name", |_, f| text(&f.name)),
    ("severity", |_, f| text(f.severity.name())),
    // What the key is made of (`src`, `src,dport`, ...), then its parts; parts the key lacks are null.
    ("key", |_, f| Cell::Text(f.key_spec.to_string())),
    ("host", |_, f| host(&f.key_spec, &f.key)),
    ("peer", |_, f| peer(&f.key_spec, &f.key)),
    ("port", |_, f| port(&f.key)),
    ("proto", |_, f| proto(&f.key)),
    ("icmp_type", |_, f| icmp(&f.key, false)),
    ("icmp_code", |_, f| icmp(&f.key, true)),
    // What is counted (`distinct dst`, `flows`, ...), the count, and whether it is exact.
    ("count", |_, f| Cell::Text(f.count_spec.to_string())),
    ("value", |_, f| Cell::UInt(f.count)),
    ("exact", |_, f| Cell::Bool(f.exact)),
    ("rel_std_error", |_, f| Cell::Float(f.rel_std_error)),
    // Counted again from every flow by the verify pass; else how much of the count one pass may lack.
    ("verified", |_, f| Cell::Bool(f.verified)),
    ("missed_at_most", |_, f| Cell::UInt(f.missed_at_most)),
    ("above", |_, f| Cell::UInt(f.above)),
    ("flows", |_, f| Cell::UInt(f.flows)),
    ("first", |_, f| time(f.first_ms)),
    ("last", |_, f| time(f.last_ms)),
    ("window_start", |_, f| {
        f.window_bounds().map_or(Cell::Null, |w| time(w.0))
    }),
    ("window_end", |_, f| {
        f.window_bounds().map_or(Cell::Null, |w| time(w.1))
    }),
    // Hopping windows: how many overlapping windows of one burst the finding stands for (null without `step`).
    ("windows_merged", |_, f| {
        f.hops.map_or(Cell::Null, |h| Cell::UInt(h.windows))
    }),
    // Evidence: what the finding is about (null when the scan ran one pass and gathered none).
    ("about", |_, f| text(&f.about)),
    ("bytes", |_, f| evidence(f, |e| Cell::UInt(e.bytes))),
    ("packets", |_, f| evidence(f, |e| Cell::UInt(e.packets))),
    ("top_peers", |_, f| {
        evidence(f, |e| {
            Cell::Counts(
                "addr",
                e.peers.iter().map(|(a, n)| (a.to_string(), *n)).collect(),
            )
        })
    }),
    ("top_ports", |_, f| {
        evidence(f, |e| {
            Cell::Counts(
                "port",
                e.ports.iter().map(|(p, n)| (p.to_string(), *n)).collect(),
            )
        })
    }),
    ("protocols", |_, f| {
        evidence(f, |e| {
            Cell::Counts(
                "proto",
                e.protocols
                    .iter()
                    .map(|(p, n)| (proto_name(*p), *n))
                    .collect(),
            )
        })
    }),
    ("evidence", |_, f| evidence(f, |e| text(&evidence_kind(e)))),
    ("definitions", |m, _| text(&m.definitions_version)),
    ("counter", |m, _| text(&m.counter)),
];

/// A finding's fields, worked out once for all writers.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    cells: Vec<Cell>,
    /// The key, window and evidence as they were, for the text table's human forms.
    key_spec: KeySpec,
    key: KeyParts,
    window: Option<(u64, u64)>,
    /// Overlapping windows of one burst the finding stands for (1 unless hopping).
    windows: u64,
    evidence: Option<Evidence>,
}

impl Row {
    pub fn new(meta: &ReportMeta, f: &Finding) -> Row {
        Row {
            cells: COLUMNS.iter().map(|(_, get)| get(meta, f)).collect(),
            key_spec: f.key_spec,
            key: f.key,
            window: f.window_bounds(),
            windows: f.hops.map_or(1, |h| h.windows),
            evidence: f.evidence.clone(),
        }
    }

    /// The fields in [`COLUMNS`] order, with their names.
    pub fn fields(&self) -> impl Iterator<Item = (&'static str, &Cell)> {
        COLUMNS.iter().map(|c| c.0).zip(&self.cells)
    }

    /// One field by name; `Null` for a name that is not a field.
    pub fn get(&self, name: &str) -> &Cell {
        self.fields()
            .find(|(n, _)| *n == name)
            .map_or(&Cell::Null, |(_, c)| c)
    }

    /// The row as one JSON object.
    pub fn json(&self) -> Value {
        Value::Object(
            self.fields()
                .map(|(n, c)| (n.to_string(), c.json()))
                .collect(),
        )
    }

    /// The key as people read it: `10.0.0.128`, `10.0.0.128 port 80`, `10.0.0.128 > 10.0.0.1`.
    pub fn key_text(&self) -> String {
        rule_key_text(&self.key_spec, &self.key)
    }

    /// The count as people read it: `256` when exact, `~10230 (+-1.6%)` when estimated, `12..14` when one pass
    /// may have missed up to 2 before admitting the key.
    pub fn count_text(&self) -> String {
        let value = self.get("value").csv();
        let missed = match self.get("missed_at_most") {
            Cell::UInt(m) => *m,
            _ => 0,
        };
        match self.get("rel_std_error") {
            Cell::Float(e) if *e > 0.0 && missed > 0 => {
                format!("~{value} (+-{:.1}%, +<={missed})", e * 100.0)
            }
            Cell::Float(e) if *e > 0.0 => format!("~{value} (+-{:.1}%)", e * 100.0),
            _ if missed > 0 => match self.get("value") {
                Cell::UInt(v) => format!("{v}..{}", v + missed),
                _ => value,
            },
            _ => value,
        }
    }

    /// The evidence line people read under the finding, when there is evidence.
    pub fn evidence_text(&self) -> Option<String> {
        self.evidence.as_ref().map(evidence_text)
    }

    /// The window as people read it: its start and length, `2026-11-26T03:00:00.000Z +5m`; for a burst over
    /// several hopping windows, the one whose count is reported and how many there were (`(best of 6)`).
    pub fn window_text(&self) -> Option<String> {
        self.window.map(|(s, e)| {
            let best = match self.windows {
                1 => String::new(),
                n => format!(" (best of {n})"),
            };
            format!("{} +{}{best}", iso8601_ms(s), format_window(e - s))
        })
    }
}

/// A key as people read it (see [`Row::key_text`]); also what `compare` prints for keys that are not findings.
pub fn key_text(key: &KeyParts) -> String {
    rule_key_text(&KeySpec::SRC, key)
}

/// A key of a rule with key `spec` as people read it: addresses cut to a prefix print it (`10.0.0.0/24 port 22`).
pub fn rule_key_text(spec: &KeySpec, key: &KeyParts) -> String {
    let a = addr_text(key.addr, spec.prefix);
    match key.extra {
        KeyValue::None => a,
        KeyValue::Port(p) => format!("{a} port {p}"),
        KeyValue::Proto(p) => format!("{a} proto {p}"),
        KeyValue::Icmp(x) => format!("{a} icmp {}/{}", x >> 8, x & 0xff),
        KeyValue::Addr(b) => format!("{a} > {}", addr_text(b, spec.extra_prefix)),
    }
}
