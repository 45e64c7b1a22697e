//! Filter expressions (`where` of a rule): nfdump's filter syntax plus list references and exact flag sets,
//! compiled to a flat jump program that evaluates without allocation or recursion.
//!
//! The accepted grammar and its semantics are documented in docs/DEFINITIONS.md, section "Filter expressions".

mod batch;
pub mod direction;
mod lexer;
mod parser;
mod program;

use std::fmt;

use crate::record::FlowRecord;
use crate::rules::lists::{AddrList, ListSet, PortList};

pub use batch::{Columns, Scratch};
pub use lexer::CmpOp;
pub use parser::MAX_DEPTH;
use program::{Insn, Target, ACCEPT, REJECT};

/// A compiled filter. Cloning copies the program; the lists it references are shared.
#[derive(Debug, Clone)]
pub struct Filter {
    text: String,
    /// The tree after constant folding, for [`Filter::select`]; `prog` is the same tree compiled.
    tree: program::Node,
    prog: Vec<Insn>,
    entry: Target,
    addrs: Vec<AddrList>,
    ports: Vec<PortList>,
    /// The named empty lists that keep the filter from ever matching ([`Filter::blocking_lists`]).
    blocked_by: Vec<String>,
}

/// A filter that does not parse: where and what was expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    /// Byte offset into the expression text.
    pub pos: usize,
    pub message: String,
}

impl FilterError {
    pub(crate) fn new(pos: usize, message: impl Into<String>) -> FilterError {
        FilterError {
            pos,
            message: message.into(),
        }
    }

    /// The error as `line:column: message`, the offending line, and a caret under the position.
    /// Columns count characters from 1, so the caret lines up under non-ASCII text too.
    pub fn render(&self, text: &str) -> String {
        let pos = self.pos.min(text.len());
        let line_start = text[..pos].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[pos..].find('\n').map_or(text.len(), |i| pos + i);
        let line_no = text[..line_start].matches('\n').count() + 1;
        let col = text[line_start..pos].chars().count();
        format!(
            "{line_no}:{}: {}\n{}\n{}^",
            col + 1,
            self.message,
            &text[line_start..line_end],
            " ".repeat(col)
        )
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at offset {}: {}", self.pos, self.message)
    }
}

impl std::error::Error for FilterError {}

/// The tree with every test that `empty` names replaced by `false` (nothing is in an empty list), and the
/// constants that leaves folded into the `and`s, `or`s and `not`s above them. So `not ip in @trusted` with no
/// trusted hosts becomes `true` ("accept", nothing tested per flow) and a filter that can never match becomes
/// `false`.
fn fold(node: program::Node, empty: &dyn Fn(&program::Test) -> bool) -> program::Node {
    use program::Node;
    // `and` without its `true`s, `false` once one is `false`; `or` the other way round.
    let join = |items: Vec<Node>, unit: bool, make: fn(Vec<Node>) -> Node| {
        let mut kept = Vec::with_capacity(items.len());
        for n in items {
            match fold(n, empty) {
                Node::Const(b) if b == unit => {}
                Node::Const(b) => return Node::Const(b),
                n => kept.push(n),
            }
        }
        match kept.len() {
            0 => Node::Const(unit),
            1 => kept.pop().unwrap_or(Node::Const(unit)),
            _ => make(kept),
        }
    };
    match node {
        Node::Test(t) if empty(&t) => Node::Const(false),
        Node::And(items) => join(items, true, Node::And),
        Node::Or(items) => join(items, false, Node::Or),
        Node::Not(inner) => match fold(*inner, empty) {
            Node::Const(b) => Node::Const(!b),
            n => Node::Not(Box::new(n)),
        },
        other => other,
    }
}

/// Which lists' emptiness keeps `tree` from ever matching, by name: the first empty list that does so alone, or
/// else all of them together (`dst in @a or dst in @b` with both empty). Empty when the filter can match.
fn blocking_lists(
    tree: &program::Node,
    text: &str,
    named: &[(String, program::Test)],
) -> Vec<String> {
    let folded = |names: &[&str]| {
        let empty = |t: &program::Test| {
            named
                .iter()
                .any(|(n, x)| x == t && names.contains(&n.as_str()))
        };
        fold(tree.clone(), &empty)
    };
    let mut names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
    names.dedup();
    if folded(&names) != program::Node::Const(false) {
        return Vec::new();
    }
    // In the order the filter names them.
    names.sort_by_key(|n| text.find(&format!("@{n}")).unwrap_or(usize::MAX));
    match names
        .iter()
        .find(|n| folded(&[n]) == program::Node::Const(false))
    {
        Some(n) => vec![n.to_string()],
        None => names.iter().map(|n| n.to_string()).collect(),
    }
}

impl Filter {
    /// Parse `text`, resolving `@name` list references through `lists`. Tests on empty lists are folded away.
    pub fn parse(text: &str, lists: &ListSet) -> Result<Filter, FilterError> {
        let toks = lexer::tokenize(text)?;
        let mut p = parser::Parser::new(toks, lists);
        let parsed = p.parse_filter()?;
        let (addrs, ports) = (&p.addr_lists, &p.port_lists);
        let empty_list = |t: &program::Test| match *t {
            program::Test::AddrList(_, n) => addrs.get(n as usize).is_some_and(AddrList::is_empty),
            program::Test::PortList(_, n) => ports.get(n as usize).is_some_and(PortList::is_empty),
            _ => false,
        };
        let tree = fold(parsed.clone(), &empty_list);
        let blocked_by = if tree == program::Node::Const(false) {
            blocking_lists(&parsed, text, &p.empty_named_tests())
        } else {
            Vec::new()
        };
        let tree = program::resolve_negated_flags(tree, false);
        let mut prog = Vec::new();
        let entry = program::compile(&tree, ACCEPT, REJECT, &mut prog);
        Ok(Filter {
            text: text.to_string(),
            tree,
            prog,
            entry,
            addrs: p.addr_lists,
            ports: p.port_lists,
            blocked_by,
        })
    }

    /// The filter that matches every flow.
    pub fn any() -> Filter {
        Filter {
            text: "any".into(),
            tree: program::Node::Const(true),
            prog: Vec::new(),
            entry: ACCEPT,
            addrs: Vec::new(),
            ports: Vec::new(),
            blocked_by: Vec::new(),
        }
    }

    /// Whether the record passes. Allocation-free; stops at the first test that decides.
    #[inline]
    pub fn matches(&self, r: &FlowRecord) -> bool {
        program::run(&self.prog, self.entry, r, &self.addrs, &self.ports)
    }

    /// Which records of `batch` pass, as bits: bit `i % 64` of `out[i / 64]` for record `i`. Gives the same
    /// verdicts as [`Filter::matches`], faster on a batch (see `batch.rs`). `cols` must be loaded from `batch`
    /// ([`Columns::load`], once for all filters); `out` is resized to fit.
    pub fn select(
        &self,
        batch: &[FlowRecord],
        cols: &Columns,
        out: &mut Vec<u64>,
        scratch: &mut Scratch,
    ) {
        out.clear();
        out.resize(batch::words(batch.len()), 0);
        let lists = (&self.addrs[..], &self.ports[..]);
        batch::select(&self.tree, (batch, cols), lists, out, scratch);
    }

    /// True when the filter accepts every record without testing anything (`any`, empty, `not not any`).
    pub fn is_any(&self) -> bool {
        self.entry == ACCEPT
    }

    /// The empty lists (by name) that keep this filter from ever matching, as the definitions report them: empty
    /// when the filter can match. `src in @managed and not src in @dhcp` with both lists empty gives `managed`;
    /// `dst in @bogons or dst in @feed` with only `feed` empty gives nothing.
    pub fn blocking_lists(&self) -> &[String] {
        &self.blocked_by
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// Number of compiled tests, for diagnostics.
    pub fn len(&self) -> usize {
        self.prog.len()
    }

    pub fn is_empty(&self) -> bool {
        self.prog.is_empty()
    }
}

/// The body of the cargo-fuzz target (fuzz/fuzz_targets/filter.rs), here so unit tests run it too: any input
/// must parse or fail with an error inside the text, and a filter that parses must evaluate on every record;
/// `not (F)` must select exactly the records `F` rejects (except where nfdump's `not flags` rule applies).
#[doc(hidden)]
pub fn fuzz_check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (lists, records) = fuzz_fixture();
    match Filter::parse(text, lists) {
        Err(e) => {
            assert!(e.pos <= text.len() && text.is_char_boundary(e.pos), "{e:?}");
            let _ = e.render(text);
        }
        Ok(f) => {
            let verdicts: Vec<bool> = records.iter().map(|r| f.matches(r)).collect();
            let (mut bits, mut scratch, mut cols) =
                (Vec::new(), Scratch::default(), Columns::default());
            cols.load(records);
            f.select(records, &cols, &mut bits, &mut scratch);
            for (i, v) in verdicts.iter().enumerate() {
                assert_eq!(bits[i / 64] >> (i % 64) & 1 == 1, *v, "{text:?} record {i}");
            }
            if !text.to_ascii_lowercase().contains("flags") {
                if let Ok(neg) = Filter::parse(&format!("not ({text}\n)"), lists) {
                    for (r, v) in records.iter().zip(&verdicts) {
                        assert_eq!(neg.matches(r), !v, "{text:?}");
                    }
                }
            }
        }
    }
}

fn fuzz_fixture() -> &'static (ListSet, Vec<FlowRecord>) {
    static FIXTURE: std::sync::OnceLock<(ListSet, Vec<FlowRecord>)> = std::sync::OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut lists = ListSet::default();
        let trusted = AddrList::parse_entries(&[
            ("10.11.12.13", 0),
            ("2001:db8::/32", 1),
            ("10.1.x.1-99", 2),
        ]);
        lists.insert_addrs("trusted", trusted.unwrap_or_default());
        lists.insert_addrs("bogons", AddrList::builtin("bogons").unwrap_or_default());
        let proxy = PortList::parse_entries(&[("80", 0), ("443", 1), ("8000-8080", 2)]);
        lists.insert_ports("proxy_out", proxy.unwrap_or_default());
        let mk = |src: u128, dst: u128, sp: u16, dp: u16, proto: u8, flags: u8| FlowRecord {
            src: crate::record::Addr(src),
            dst: crate::record::Addr(dst),
            src_port: sp,
            dst_port: dp,
            proto,
            tcp_flags: flags,
            packets: u64::from(dp),
            bytes: u64::from(sp) * 40,
            first_ms: 1000,
            last_ms: 1000 + u64::from(flags) * 100,
            ..Default::default()
        };
        let v4 = |a: u32| crate::record::Addr::v4(a).0;
        let records = vec![
            mk(v4(0x0a0b_0c0d), v4(0x0808_0808), 3128, 80, 6, 0x02),
            mk(v4(0x0a00_0001), v4(0xf6ed_2d96), 40000, 53, 17, 0),
            mk(0x2001_0db8 << 96 | 1, 0xfe80 << 112 | 1, 0, 0x0800, 58, 0),
            mk(v4(0x0a01_0505), v4(0x0a01_0506), 443, 1024, 6, 0xd2),
            mk(0, u128::MAX, 65535, 0, 0, 0xff),
            FlowRecord::default(),
        ];
        (lists, records)
    })
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod nfdump_oracle;
