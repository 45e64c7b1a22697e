//! Saved state: what a scan's first pass counted, written so that runs over different files (hours of a day,
//! collectors of a site) can be merged later and reported as one scan would be.
//!
//! A state holds, per rule, the admission sketches (count-min cells of every shard), the table entries (key,
//! count or distinct counter, flows and times) and what admission may have missed of a key (`slack`: the sum over
//! the merged scans of `A - 1`), plus the inputs it covers (path, size, modification time) so a merge can run the
//! verify pass over them when they are still there, unchanged. Every part merges by an order-free rule: cells add,
//! entries merge as shards merge them (sums add, distinct counters unite, flows add, times widen), slacks add.
//! docs/STATE.md has the file format; docs/ACCURACY.md what a merge guarantees.

pub mod format;
pub mod merge;

pub use format::StateError;
pub use merge::merged_scan;

use crate::engine::admit::Layout;
use crate::engine::{EntryValue, KeyParts, KeyValue, Meta, ScanResult, Seen};
use crate::hash::{hash128, TableHasher};
use crate::input::Source;
use crate::record::Addr;
use crate::rules::{AddrField, Definitions};
use crate::sketch::compact::CompactParts;
use crate::sketch::hll::{self, Registers};
use crate::sketch::{Compact, DistinctCounter, Exact, Hllpp};
use format::{Cursor, Header, Section, NO_RULE};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The file a state directory holds.
pub const FILE_NAME: &str = "flowsketch.state";

/// A cell that reached its maximum in some merged state (or whose sum passed 65,534): its keys' measure may be
/// anything above. Sums are kept in 16 bits: a merged sketch only prunes candidates, so a cell that saturates
/// costs pruning, never correctness, and half the memory of 32-bit sums.
pub const SATURATED: u16 = u16::MAX;

/// Distinct counters a state can hold, and how their bytes look (docs/STATE.md).
pub trait SavedCounter: DistinctCounter {
    /// The counter's byte in the file header; 0 for a counter that cannot be saved.
    const KIND: u8;
    fn encode(&self, out: &mut Vec<u8>);
    fn decode(c: &mut Cursor<'_>) -> Result<Self, String>;
}

impl SavedCounter for Compact {
    const KIND: u8 = 1;

    fn encode(&self, out: &mut Vec<u8>) {
        match self.parts() {
            CompactParts::Empty => out.push(0),
            CompactParts::One(h) => {
                out.push(1);
                out.extend_from_slice(&h.to_le_bytes());
            }
            CompactParts::Hashes(hs) => {
                out.push(2);
                out.extend_from_slice(&(hs.len() as u16).to_le_bytes());
                for h in hs {
                    out.extend_from_slice(&h.to_le_bytes());
                }
            }
            CompactParts::Registers(r) => {
                out.push(3);
                out.extend_from_slice(r.as_bytes());
            }
        }
    }

    fn decode(c: &mut Cursor<'_>) -> Result<Self, String> {
        let mut counter = Compact::default();
        match c.u8("a counter's state")? {
            0 => {}
            1 => counter.insert_hash(c.u64("a hash")?),
            2 => {
                let n = c.u16("a hash count")? as usize;
                if n > crate::sketch::compact::MAX_EXACT {
                    return Err(format!(
                        "a counter holds {n} hashes, more than {}",
                        crate::sketch::compact::MAX_EXACT
                    ));
                }
                for _ in 0..n {
                    counter.insert_hash(c.u64("a hash")?);
                }
            }
            3 => {
                let b: &[u8; hll::BYTES] =
                    c.take(hll::BYTES, "registers")?.try_into().expect("length");
                let regs = Registers::from_bytes(b)
                    .ok_or_else(|| "a register holds a value no hash gives".to_string())?;
                counter = Compact::from_registers(regs);
            }
            k => return Err(format!("unknown counter state {k}")),
        }
        Ok(counter)
    }
}

impl SavedCounter for Exact {
    const KIND: u8 = 2;

    fn encode(&self, out: &mut Vec<u8>) {
        let mut v: Vec<u128> = self.values().collect();
        v.sort_unstable();
        out.extend_from_slice(&(v.len() as u64).to_le_bytes());
        for x in v {
            out.extend_from_slice(&x.to_le_bytes());
        }
    }

    fn decode(c: &mut Cursor<'_>) -> Result<Self, String> {
        let n = c.count(16, "values")?;
        let mut e = Exact::default();
        for _ in 0..n {
            let v = c.u128("a value")?;
            e.insert(hash128(v), v);
        }
        Ok(e)
    }
}

/// HyperLogLog++ keeps its state inside the `hyperloglogplus` crate: it is not saved (`--counter hllpp` is for
/// comparisons).
impl SavedCounter for Hllpp {
    const KIND: u8 = 0;

    fn encode(&self, _out: &mut Vec<u8>) {}

    fn decode(_c: &mut Cursor<'_>) -> Result<Self, String> {
        Err("hllpp counters are not saved".into())
    }
}

/// The counter name a header byte stands for.
pub fn counter_name(kind: u8) -> Option<&'static str> {
    match kind {
        1 => Some(Compact::NAME),
        2 => Some(Exact::NAME),
        _ => None,
    }
}

/// A fingerprint of the rules as they count: two states merge only when it is the same. FNV-1a over each
/// rule's full description (id, filter, key, count, thresholds, lists, window), so any change to a rule, its
/// lists or the build's reading of them gives another fingerprint.
pub fn fingerprint(defs: &Definitions) -> u64 {
    let mut h = crate::hash::Fingerprint::default();
    for r in &defs.rules {
        let _ = std::fmt::write(&mut h, format_args!("{r:?}\n"));
    }
    h.0
}

/// One input a state covers, as it was when the scan began.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct InputRecord {
    /// The absolute path (as given when it could not be resolved); `-` for standard input.
    pub path: String,
    pub size: u64,
    /// Modification time, nanoseconds since 1970 (0 when unknown).
    pub mtime_ns: u64,
}

impl InputRecord {
    pub fn of(source: &Source) -> InputRecord {
        match source {
            Source::Stdin => InputRecord {
                path: "-".into(),
                size: 0,
                mtime_ns: 0,
            },
            Source::File(p) | Source::InFolder(p) => {
                let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
                let (size, mtime_ns) = stat(&abs).unwrap_or((0, 0));
                InputRecord {
                    path: abs.display().to_string(),
                    size,
                    mtime_ns,
                }
            }
        }
    }

    /// Why the input cannot be read again as the scan read it (gone, or another size or time); `None` when it can.
    pub fn changed(&self) -> Option<String> {
        if self.path == "-" {
            return Some("standard input cannot be read again".into());
        }
        match stat(Path::new(&self.path)) {
            None => Some(format!("{} is gone", self.path)),
            Some((size, mtime)) if (size, mtime) != (self.size, self.mtime_ns) => Some(format!(
                "{} changed since its state was saved ({} bytes, modified {} ns, against {} bytes, {} ns)",
                self.path, size, mtime, self.size, self.mtime_ns
            )),
            Some(_) => None,
        }
    }
}

fn stat(p: &Path) -> Option<(u64, u64)> {
    let m = std::fs::metadata(p).ok()?;
    let t = m
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    Some((m.len(), t))
}

/// Totals of the scans a state covers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StateMeta {
    /// The flowsketch version that wrote it.
    pub flowsketch: String,
    pub definitions_version: String,
    pub definitions_origin: String,
    pub counter: String,
    /// The largest admission fraction of the scans merged.
    pub admit: f64,
    /// Scans merged into this state (1 for a scan's own).
    pub states: u32,
    /// Shards (worker threads) of the scans: admission sketches are per shard.
    pub shards: u32,
    /// `--input-format`, when given: the verify pass of a merge reads with it.
    pub input_format: Option<String>,
    pub inputs: u64,
    pub inputs_failed: u64,
    pub flows: u64,
    pub skipped: u64,
    /// Input errors the scans met, one line each.
    pub errors: Vec<String>,
}

/// What one rule did in the scans a state covers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleMeta {
    pub id: String,
    pub flows: u64,
    pub updates: u64,
    pub admitted: u64,
    pub raises: u32,
    pub over_budget: bool,
    /// Keys taken out of the tables when admission was tightened (absent from states written before it).
    #[serde(default)]
    pub evicted: u64,
    /// The largest admission threshold `A` any of the scans ended with (0: every key admitted).
    pub admit_at: u64,
    /// The most of a key's measure the tables can have missed: the sum over the scans of their `A - 1`.
    pub slack: u64,
}

/// A table entry of a state.
#[derive(Debug, Clone, Default)]
pub struct StateEntry<C> {
    /// The sum of a `flows`, `packets` or `bytes` rule (0 for distinct counts).
    pub sum: u64,
    /// The distinct counter (empty for sums).
    pub counter: C,
    pub seen: Seen,
}

impl<C: DistinctCounter> StateEntry<C> {
    /// The merge tables use ([`crate::engine::table::State::merge`]): sums add, counters unite, seen widens.
    pub fn merge(&mut self, o: &StateEntry<C>) {
        self.sum = self.sum.saturating_add(o.sum);
        self.counter.merge(&o.counter);
        self.seen.merge(&o.seen);
    }
}

/// One shard's admission sketch of one rule: cells as 16-bit sums, [`SATURATED`] where any merged cell was full.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Front {
    pub layout: Layout,
    pub cells: Vec<u16>,
}

impl Front {
    /// The bound the merged sketches give for a key's measure over all merged scans (`u64::MAX`: unbounded).
    pub fn bound(&self, hash: u64) -> u64 {
        let mut low = u64::MAX;
        for p in self.layout.positions(hash) {
            let c = self.cells[p];
            let v = if c == SATURATED {
                u64::MAX
            } else {
                (c as u64) << self.layout.unit_shift
            };
            low = low.min(v);
        }
        low
    }
}

/// One rule's part of a state.
#[derive(Debug, Clone)]
pub struct RuleState<C> {
    pub meta: RuleMeta,
    /// Admission sketches per shard; `None` when the rule admitted every key (or merged scans disagreed).
    pub fronts: Option<Vec<Front>>,
    /// Whether entries hold distinct counters (else sums).
    pub distinct: bool,
    pub entries: HashMap<KeyParts, StateEntry<C>, TableHasher>,
}

/// A whole state: what one scan counted, or several merged.
#[derive(Debug, Clone)]
pub struct State<C> {
    pub fingerprint: u64,
    pub meta: StateMeta,
    pub inputs: Vec<InputRecord>,
    pub rules: Vec<RuleState<C>>,
}

/// What a scan needs to save its state besides its tables.
pub(crate) struct Capture<'a> {
    pub defs: &'a Definitions,
    pub meta: StateMeta,
    pub inputs: Vec<InputRecord>,
}

fn json_section<T: Serialize>(tag: &[u8; 4], rule: u32, v: &T) -> Section {
    Section {
        tag: *tag,
        rule,
        payload: serde_json::to_vec(v).expect("plain data serialises"),
    }
}

fn put_key(out: &mut Vec<u8>, k: &KeyParts) {
    out.extend_from_slice(&k.addr.0.to_le_bytes());
    match k.extra {
        KeyValue::None => out.push(0),
        KeyValue::Addr(a) => {
            out.push(1);
            out.extend_from_slice(&a.0.to_le_bytes());
        }
        KeyValue::Port(p) => {
            out.push(2);
            out.extend_from_slice(&p.to_le_bytes());
        }
        KeyValue::Proto(p) => {
            out.push(3);
            out.push(p);
        }
        KeyValue::Icmp(x) => {
            out.push(4);
            out.extend_from_slice(&x.to_le_bytes());
        }
    }
    out.extend_from_slice(&k.window.to_le_bytes());
}

fn get_key(c: &mut Cursor<'_>) -> Result<KeyParts, String> {
    let addr = Addr(c.u128("a key's address")?);
    let extra = match c.u8("a key's kind")? {
        0 => KeyValue::None,
        1 => KeyValue::Addr(Addr(c.u128("a key's second address")?)),
        2 => KeyValue::Port(c.u16("a key's port")?),
        3 => KeyValue::Proto(c.u8("a key's protocol")?),
        4 => KeyValue::Icmp(c.u16("a key's ICMP type")?),
        k => return Err(format!("unknown key kind {k}")),
    };
    Ok(KeyParts {
        addr,
        extra,
        window: c.u64("a key's window")?,
    })
}

fn put_entry<C: SavedCounter>(out: &mut Vec<u8>, k: &KeyParts, seen: &Seen, v: EntryValue<'_, C>) {
    put_key(out, k);
    out.extend_from_slice(&seen.first_ms().to_le_bytes());
    out.extend_from_slice(&seen.last_ms().to_le_bytes());
    out.extend_from_slice(&seen.flows().to_le_bytes());
    match v {
        EntryValue::Sum(s) => out.extend_from_slice(&s.to_le_bytes()),
        EntryValue::Distinct(c) => c.encode(out),
    }
}

/// The cells of one shard: layout, cell width in bytes (1, 2 or 4) and the cells, little-endian.
fn put_front(out: &mut Vec<u8>, layout: Layout, width: u8, cells: &[u8]) {
    out.extend_from_slice(&(layout.bytes as u64).to_le_bytes());
    out.push(layout.wide as u8);
    out.extend_from_slice(&layout.unit_shift.to_le_bytes());
    out.extend_from_slice(&layout.above.to_le_bytes());
    out.push(width);
    out.extend_from_slice(cells);
}

/// The sections of a scan's first pass, written straight from its shards (no second copy of the tables).
pub(crate) fn capture<C: SavedCounter, M: Meta>(
    cap: Capture<'_>,
    result: &ScanResult<C, M>,
) -> Result<Vec<u8>, String> {
    if C::KIND == 0 {
        return Err(format!(
            "the {} counter's state is not saved; use --counter compact or exact",
            C::NAME
        ));
    }
    let rules = &cap.defs.rules;
    let mut sections = vec![
        json_section(b"META", NO_RULE, &cap.meta),
        json_section(b"INPT", NO_RULE, &cap.inputs),
    ];
    for (i, rule) in rules.iter().enumerate() {
        let counts = result.counts(i);
        let sides = if rule.key.addr == AddrField::Host {
            2
        } else {
            1
        };
        let at = result.admit_at(i);
        let meta = RuleMeta {
            id: rule.id.clone(),
            flows: counts.updates / sides,
            updates: counts.updates,
            admitted: counts.admitted,
            raises: counts.raises,
            over_budget: counts.over_budget,
            evicted: counts.evicted,
            admit_at: at,
            slack: at.saturating_sub(1),
        };
        sections.push(json_section(b"RULE", i as u32, &meta));
        let mut adms = Vec::new();
        let fronts: Vec<_> = result
            .shards
            .iter()
            .filter_map(|s| s.fronts[i].as_ref())
            .collect();
        if fronts.len() == result.shards.len() && !fronts.is_empty() {
            adms.push(1);
            adms.extend_from_slice(&(fronts.len() as u32).to_le_bytes());
            for f in fronts {
                let l = f.layout();
                if l.wide {
                    let le: Vec<u8> = f
                        .cells()
                        .chunks_exact(2)
                        .flat_map(|c| u16::from_ne_bytes([c[0], c[1]]).to_le_bytes())
                        .collect();
                    put_front(&mut adms, l, 2, &le);
                } else {
                    put_front(&mut adms, l, 1, f.cells());
                }
            }
        } else {
            adms.push(0);
        }
        sections.push(Section {
            tag: *b"ADMS",
            rule: i as u32,
            payload: adms,
        });
        let mut tabl = vec![rule.count.is_distinct() as u8];
        let n: usize = result.shards.iter().map(|s| s.tables[i].len()).sum();
        tabl.extend_from_slice(&(n as u64).to_le_bytes());
        for s in &result.shards {
            s.tables[i].each_entry(&mut |k, _epoch, seen, v| put_entry(&mut tabl, &k, &seen, v));
        }
        sections.push(Section {
            tag: *b"TABL",
            rule: i as u32,
            payload: tabl,
        });
    }
    let header = Header {
        counter: C::KIND,
        fingerprint: fingerprint(cap.defs),
    };
    format::write(header, &sections).map_err(|e| format!("cannot compress the state: {e}"))
}

/// The counter kind of a state file's bytes, when its header can say.
pub fn peek_counter(bytes: &[u8]) -> Option<u8> {
    (bytes.len() >= format::HEADER && &bytes[..8] == format::MAGIC).then(|| bytes[10])
}

/// Read `DIR/flowsketch.state` (or `DIR` itself when it is a file).
pub fn read_path(path: &Path) -> Result<(PathBuf, Vec<u8>), StateError> {
    let file = if path.is_dir() {
        path.join(FILE_NAME)
    } else {
        path.to_path_buf()
    };
    match std::fs::read(&file) {
        Ok(b) => Ok((file, b)),
        Err(e) => Err(StateError {
            file: file.display().to_string(),
            what: format!("cannot read: {e}"),
        }),
    }
}

/// Write a state into `dir` (created if missing) as `flowsketch.state`, through a temporary file renamed into
/// place, so a state is never seen half written.
pub fn write_dir(dir: &Path, bytes: &[u8]) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let file = dir.join(FILE_NAME);
    let tmp = dir.join(format!(".{FILE_NAME}.tmp"));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, &file)?;
    Ok(file)
}

fn json<T: for<'de> Deserialize<'de>>(s: &Section) -> Result<T, String> {
    serde_json::from_slice(&s.payload)
        .map_err(|e| format!("{} is not the JSON it should be: {e}", s.name()))
}

impl<C: SavedCounter> State<C> {
    /// Decode and check a state file's bytes against the definitions `defs`; `file` names it in errors.
    pub fn from_bytes(
        bytes: &[u8],
        file: &str,
        defs: &Definitions,
    ) -> Result<State<C>, StateError> {
        let err = |what: String| StateError {
            file: file.to_string(),
            what,
        };
        let (header, sections) = format::read(bytes, file)?;
        if header.counter != C::KIND {
            return Err(err(format!(
                "counted with the {} counter, not {}",
                counter_name(header.counter).unwrap_or("unknown"),
                C::NAME
            )));
        }
        let want = fingerprint(defs);
        let rules = &defs.rules;
        // Sections are taken one by one and dropped once decoded, so a state's raw payloads are not all held at once.
        let mut it = sections.into_iter();
        let mut next = |tag: &[u8; 4], rule: u32| -> Result<Section, StateError> {
            match it.next() {
                Some(s) if &s.tag == tag && s.rule == rule => Ok(s),
                Some(s) => Err(err(format!(
                    "expected {} next, found {}",
                    format::Section {
                        tag: *tag,
                        rule,
                        payload: Vec::new()
                    }
                    .name(),
                    s.name()
                ))),
                None => Err(err(format!(
                    "ends before its {} section",
                    String::from_utf8_lossy(tag)
                ))),
            }
        };
        let meta: StateMeta = json(&next(b"META", NO_RULE)?).map_err(err)?;
        if header.fingerprint != want {
            return Err(err(format!(
                "written with other definitions ({} from {}, fingerprint {:016x}) than these ({} from {}, \
                 {want:016x}): merge with the definitions the scans used (--rules)",
                meta.definitions_version,
                meta.definitions_origin,
                header.fingerprint,
                defs.version,
                defs.origin
            )));
        }
        let inputs: Vec<InputRecord> = json(&next(b"INPT", NO_RULE)?).map_err(err)?;
        let mut out = Vec::with_capacity(rules.len());
        for (i, rule) in rules.iter().enumerate() {
            let ri = i as u32;
            let rmeta: RuleMeta = json(&next(b"RULE", ri)?).map_err(err)?;
            if rmeta.id != rule.id {
                return Err(err(format!(
                    "rule #{i} is {} in the state and {} in the definitions",
                    rmeta.id, rule.id
                )));
            }
            let adms = next(b"ADMS", ri)?;
            let fronts = read_fronts(&adms).map_err(err)?;
            drop(adms);
            let tabl = next(b"TABL", ri)?;
            let distinct = rule.count.is_distinct();
            let entries = read_table::<C>(&tabl, distinct).map_err(err)?;
            drop(tabl);
            out.push(RuleState {
                meta: rmeta,
                fronts,
                distinct,
                entries,
            });
        }
        if let Some(s) = it.next() {
            return Err(err(format!("{} after the last rule's", s.name())));
        }
        Ok(State {
            fingerprint: header.fingerprint,
            meta,
            inputs,
            rules: out,
        })
    }

    /// The state's bytes: the same layout a scan writes, entries sorted by key and cells as 32-bit sums, so equal
    /// states give equal bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut sections = vec![
            json_section(b"META", NO_RULE, &self.meta),
            json_section(b"INPT", NO_RULE, &self.inputs),
        ];
        for (i, r) in self.rules.iter().enumerate() {
            let ri = i as u32;
            sections.push(json_section(b"RULE", ri, &r.meta));
            let mut adms = Vec::new();
            match &r.fronts {
                Some(fronts) => {
                    adms.push(1);
                    adms.extend_from_slice(&(fronts.len() as u32).to_le_bytes());
                    for f in fronts {
                        let cells: Vec<u8> = f.cells.iter().flat_map(|c| c.to_le_bytes()).collect();
                        put_front(&mut adms, f.layout, 2, &cells);
                    }
                }
                None => adms.push(0),
            }
            sections.push(Section {
                tag: *b"ADMS",
                rule: ri,
                payload: adms,
            });
            let mut keys: Vec<&KeyParts> = r.entries.keys().collect();
            keys.sort_unstable();
            let distinct = r.distinct;
            let mut tabl = vec![distinct as u8];
            tabl.extend_from_slice(&(keys.len() as u64).to_le_bytes());
            for k in keys {
                let e = &r.entries[k];
                let v = if distinct {
                    EntryValue::Distinct(&e.counter)
                } else {
                    EntryValue::Sum(e.sum)
                };
                put_entry(&mut tabl, k, &e.seen, v);
            }
            sections.push(Section {
                tag: *b"TABL",
                rule: ri,
                payload: tabl,
            });
        }
        let header = Header {
            counter: C::KIND,
            fingerprint: self.fingerprint,
        };
        format::write(header, &sections).expect("compressing into memory does not fail")
    }
}

fn read_fronts(s: &Section) -> Result<Option<Vec<Front>>, String> {
    let mut c = Cursor::new(&s.payload, s.name());
    if c.u8("whether the rule admits")? == 0 {
        c.done()?;
        return Ok(None);
    }
    let shards = c.u32("the shard count")? as usize;
    let mut out = Vec::with_capacity(shards.min(4096));
    for _ in 0..shards {
        let bytes = c.u64("a sketch's size")?;
        let wide = c.u8("the cell type")? != 0;
        let unit_shift = c.u32("the cell unit")?;
        let above = c.u64("the threshold")?;
        let width = c.u8("the cell width")? as usize;
        let line_ok = bytes >= 64 && bytes.is_multiple_of(64) && bytes <= 1 << 38;
        if !line_ok || !matches!(width, 1 | 2) || unit_shift >= 64 {
            return Err(format!(
                "{} holds a sketch of {bytes} bytes with {width}-byte cells in units of 2^{unit_shift}: not one \
                 flowsketch makes",
                s.name()
            ));
        }
        let layout = Layout {
            bytes: bytes as usize,
            wide,
            unit_shift,
            above,
        };
        let n = layout.cells();
        let raw = c.take(n * width, "the cells")?;
        // A full byte cell, and a 16-bit cell at 65,535 (a scan's full wide cell, or a merged sum), are saturated.
        let cells = match width {
            1 => raw
                .iter()
                .map(|&v| if v == u8::MAX { SATURATED } else { v as u16 })
                .collect(),
            _ => raw
                .chunks_exact(2)
                .map(|b| u16::from_le_bytes([b[0], b[1]]))
                .collect(),
        };
        out.push(Front { layout, cells });
    }
    c.done()?;
    Ok(Some(out))
}

type Entries<C> = HashMap<KeyParts, StateEntry<C>, TableHasher>;

fn read_table<C: SavedCounter>(s: &Section, distinct: bool) -> Result<Entries<C>, String> {
    let mut c = Cursor::new(&s.payload, s.name());
    let kind = c.u8("the count kind")?;
    if kind != distinct as u8 {
        return Err(format!(
            "{} holds {}, the rule counts {}",
            s.name(),
            if kind == 1 {
                "distinct counters"
            } else {
                "sums"
            },
            if distinct { "distinct values" } else { "a sum" }
        ));
    }
    // The smallest entry: a 16-byte address, a kind byte, the window and three 8-byte fields, and a value.
    let n = c.count(16 + 1 + 8 + 24 + 1, "entries")?;
    let mut entries = HashMap::with_capacity_and_hasher(n, TableHasher);
    for _ in 0..n {
        let key = get_key(&mut c)?;
        let (first, last, flows) = (
            c.u64("a first time")?,
            c.u64("a last time")?,
            c.u64("a flow count")?,
        );
        let mut seen = Seen::default();
        if flows > 0 {
            seen.cover(first, last, flows);
        }
        let mut e = StateEntry {
            seen,
            ..StateEntry::default()
        };
        if distinct {
            e.counter = C::decode(&mut c)?;
        } else {
            e.sum = c.u64("a sum")?;
        }
        if entries.insert(key, e).is_some() {
            return Err(format!("{} holds the key {key:?} twice", s.name()));
        }
    }
    c.done()?;
    Ok(entries)
}

impl<C: SavedCounter> State<C> {
    /// Add `other` into this state (`name` names it in errors). Order-free: cells add, entries merge as shards
    /// merge them, slacks and totals add, inputs join (sorted). Refused when the two cannot describe parts of one
    /// scan: other definitions, sketches of another layout, or an input both cover.
    pub fn merge(&mut self, other: State<C>, name: &str) -> Result<(), String> {
        if self.fingerprint != other.fingerprint || self.rules.len() != other.rules.len() {
            return Err(format!(
                "{name} was written with other definitions ({} from {}) than the states before it",
                other.meta.definitions_version, other.meta.definitions_origin
            ));
        }
        if self.meta.input_format != other.meta.input_format {
            return Err(format!(
                "{name} read its inputs as {:?}, the states before it as {:?}",
                other.meta.input_format, self.meta.input_format
            ));
        }
        for (a, b) in self.rules.iter().zip(&other.rules) {
            if let (Some(x), Some(y)) = (&a.fronts, &b.fronts) {
                let lx: Vec<Layout> = x.iter().map(|f| f.layout).collect();
                let ly: Vec<Layout> = y.iter().map(|f| f.layout).collect();
                if lx != ly {
                    return Err(format!(
                        "{name}: rule {}'s admission sketches differ from the states before it ({} shards of {} \
                         cells against {} of {}): merge states scanned with the same -j and --memory",
                        b.meta.id,
                        ly.len(),
                        ly.first().map_or(0, Layout::cells),
                        lx.len(),
                        lx.first().map_or(0, Layout::cells),
                    ));
                }
            }
        }
        for i in &other.inputs {
            if i.path != "-" && self.inputs.iter().any(|j| j.path == i.path) {
                return Err(format!(
                    "{name} covers {} too: a flow in two merged states would count twice",
                    i.path
                ));
            }
        }
        let m = &mut self.meta;
        let o = other.meta;
        m.admit = m.admit.max(o.admit);
        m.states += o.states;
        m.inputs += o.inputs;
        m.inputs_failed += o.inputs_failed;
        m.flows += o.flows;
        m.skipped += o.skipped;
        m.errors.extend(o.errors);
        m.errors.sort();
        self.inputs.extend(other.inputs);
        self.inputs.sort();
        for (a, b) in self.rules.iter_mut().zip(other.rules) {
            let (x, y) = (&mut a.meta, b.meta);
            x.flows += y.flows;
            x.updates += y.updates;
            x.admitted += y.admitted;
            x.raises += y.raises;
            x.evicted += y.evicted;
            x.over_budget |= y.over_budget;
            x.admit_at = x.admit_at.max(y.admit_at);
            x.slack += y.slack;
            a.fronts = match (a.fronts.take(), b.fronts) {
                (Some(mut x), Some(y)) => {
                    for (f, g) in x.iter_mut().zip(y) {
                        for (c, d) in f.cells.iter_mut().zip(g.cells) {
                            *c = if *c == SATURATED || d == SATURATED {
                                SATURATED
                            } else {
                                c.saturating_add(d)
                            };
                        }
                    }
                    Some(x)
                }
                // A scan that admitted every key has no sketch to add: the merged bound is unknown.
                _ => None,
            };
            // The smaller table goes into the larger (the merge is the same either way round).
            let mut theirs = b.entries;
            if a.entries.len() < theirs.len() {
                std::mem::swap(&mut a.entries, &mut theirs);
            }
            for (k, e) in theirs {
                match a.entries.entry(k) {
                    std::collections::hash_map::Entry::Occupied(mut o) => o.get_mut().merge(&e),
                    std::collections::hash_map::Entry::Vacant(v) => {
                        v.insert(e);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The fuzz target `state`'s body (`crate::fuzz`): any bytes as a saved state of the built-in definitions, under
/// every counter, as they are and with their checksums made right (so that changes reach decompression and the
/// sections' decoders). Errors are fine, panics are not; returns the states that decoded.
pub fn fuzz(data: &[u8]) -> usize {
    static DEFS: std::sync::OnceLock<Definitions> = std::sync::OnceLock::new();
    let defs = DEFS.get_or_init(Definitions::builtin);
    let mut fixed = data.to_vec();
    format::refresh_checksums(&mut fixed, fingerprint(defs));
    let mut decoded = 0;
    for bytes in [data, &fixed[..]] {
        decoded += State::<Compact>::from_bytes(bytes, "fuzz", defs).is_ok() as usize
            + State::<Exact>::from_bytes(bytes, "fuzz", defs).is_ok() as usize
            + State::<Hllpp>::from_bytes(bytes, "fuzz", defs).is_ok() as usize;
    }
    decoded
}
