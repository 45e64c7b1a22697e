//! Filter expressions (`where` of a rule): nfdump's filter syntax plus list references and exact flag sets,
//! compiled to a flat jump program that evaluates without allocation or recursion.
//!
//! The accepted grammar and its semantics are documented in docs/DEFINITIONS.md, section "Filter expressions".

mod batch;
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

/// The tree with every test on an empty list replaced by `false` (nothing is in it), so `not ip in @trusted`
/// with no trusted hosts compiles to "accept" and costs nothing per flow.
fn without_empty_lists(
    node: program::Node,
    addrs: &[AddrList],
    ports: &[PortList],
) -> program::Node {
    use program::{Node, Test};
    let fold = |items: Vec<Node>| {
        items
            .into_iter()
            .map(|n| without_empty_lists(n, addrs, ports))
            .collect()
    };
    match node {
        Node::Test(Test::AddrList(_, n))
            if addrs.get(n as usize).is_some_and(AddrList::is_empty) =>
        {
            Node::Const(false)
        }
        Node::Test(Test::PortList(_, n))
            if ports.get(n as usize).is_some_and(PortList::is_empty) =>
        {
            Node::Const(false)
        }
        Node::And(items) => Node::And(fold(items)),
        Node::Or(items) => Node::Or(fold(items)),
        Node::Not(inner) => Node::Not(Box::new(without_empty_lists(*inner, addrs, ports))),
        other => other,
    }
}

impl Filter {
    /// Parse `text`, resolving `@name` list references through `lists`.
    pub fn parse(text: &str, lists: &ListSet) -> Result<Filter, FilterError> {
        let toks = lexer::tokenize(text)?;
        let mut p = parser::Parser::new(toks, lists);
        let tree = without_empty_lists(p.parse_filter()?, &p.addr_lists, &p.port_lists);
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
