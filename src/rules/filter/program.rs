//! The compiled form of a filter: a flat list of tests, each with a jump for "true" and one for "false"
//! (the shape of a BPF program). `and`, `or` and `not` become jumps, so evaluation is a loop with no stack, no
//! recursion and no allocation, and stops at the first test that decides the answer.

use super::direction::{role, Role};
use super::lexer::CmpOp;
use crate::record::{proto, FlowRecord};
use crate::rules::lists::{AddrList, PortList};

/// Which end of the flow a test reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Src,
    Dst,
}

/// ECN bits (E = 0x40, C = 0x80) do not say anything about the handshake; `flags =` ignores them.
pub const ECN_MASK: u8 = 0xc0;

/// One primitive test on a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Test {
    Proto(u8),
    /// Address family of the flow (both ends of a flow share it).
    IsV6(bool),
    /// Address in the closed interval `[lo, hi]` (a host is an interval of one).
    Addr(Field, u128, u128),
    /// Address in the filter's address list number `n`.
    AddrList(Field, u16),
    Port(Field, CmpOp, u16),
    /// Port in the filter's port list number `n`.
    PortList(Field, u16),
    /// TCP and every one of these flag bits set (nfdump `flags SA`).
    FlagsAll(u8),
    /// TCP and at least one of these flag bits set: what nfdump tests, negated, for `not flags SA`.
    FlagsAny(u8),
    /// TCP and the flags, ECN bits ignored, exactly these (`flags = S`).
    FlagsExact(u8),
    /// TCP and the raw flag byte compared with a number (nfdump `flags > 2`).
    FlagsCmp(CmpOp, u8),
    Packets(CmpOp, u64),
    Bytes(CmpOp, u64),
    DurationMs(CmpOp, u64),
    /// ICMP or ICMPv6 with this type (high byte of the destination port) or code (low byte).
    IcmpType(u8),
    IcmpCode(u8),
    /// Sent by the end that opened the conversation, or by the one answering (`initiator`, `responder`; see
    /// `direction.rs`).
    Role(Role),
}

/// Where to go after a test: another instruction, or a verdict.
pub type Target = u32;
pub const ACCEPT: Target = u32::MAX;
pub const REJECT: Target = u32::MAX - 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub test: Test,
    pub yes: Target,
    pub no: Target,
}

/// The expression tree the parser builds; `and`/`or` are n-ary so long chains stay shallow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Const(bool),
    Test(Test),
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
}

/// The tree with nfdump 1.7's meaning of a negated letter-flags test made explicit. `flags SA` is "S and A set",
/// but `not flags SA` is "neither S nor A set" (not TCP, or none of the letters), which is how its manual's
/// `flags S and not flags AFRPU` selects SYN-only flows: under an odd number of `not`s a `flags` test becomes
/// "any of the letters", so the `not` above it yields "none of them". Both evaluators run the resolved tree.
pub fn resolve_negated_flags(node: Node, negated: bool) -> Node {
    match node {
        Node::Test(Test::FlagsAll(m)) if negated => Node::Test(Test::FlagsAny(m)),
        Node::And(items) => Node::And(
            items
                .into_iter()
                .map(|n| resolve_negated_flags(n, negated))
                .collect(),
        ),
        Node::Or(items) => Node::Or(
            items
                .into_iter()
                .map(|n| resolve_negated_flags(n, negated))
                .collect(),
        ),
        Node::Not(inner) => Node::Not(Box::new(resolve_negated_flags(*inner, !negated))),
        other => other,
    }
}

/// Compile a tree into `prog` and return the entry point. Every instruction jumps only to instructions emitted
/// before it (lower indexes) or to a verdict, so evaluation always ends. Recursion depth is the tree's depth,
/// which the parser bounds.
pub fn compile(node: &Node, yes: Target, no: Target, prog: &mut Vec<Insn>) -> Target {
    match node {
        Node::Const(true) => yes,
        Node::Const(false) => no,
        Node::Test(test) => {
            prog.push(Insn {
                test: *test,
                yes,
                no,
            });
            (prog.len() - 1) as Target
        }
        // Emit the last operand first so each earlier operand can jump to the one after it.
        Node::And(items) => items
            .iter()
            .rev()
            .fold(yes, |next, item| compile(item, next, no, prog)),
        Node::Or(items) => items
            .iter()
            .rev()
            .fold(no, |next, item| compile(item, yes, next, prog)),
        Node::Not(inner) => compile(inner, no, yes, prog),
    }
}

#[inline]
fn addr_of(r: &FlowRecord, f: Field) -> crate::record::Addr {
    match f {
        Field::Src => r.src,
        Field::Dst => r.dst,
    }
}

#[inline]
fn port_of(r: &FlowRecord, f: Field) -> u16 {
    match f {
        Field::Src => r.src_port,
        Field::Dst => r.dst_port,
    }
}

#[inline]
fn is_icmp(r: &FlowRecord) -> bool {
    r.proto == proto::ICMP || r.proto == proto::ICMP6
}

impl Test {
    #[inline]
    pub fn eval(&self, r: &FlowRecord, addrs: &[AddrList], ports: &[PortList]) -> bool {
        match *self {
            Test::Proto(p) => r.proto == p,
            Test::IsV6(v6) => r.src.is_v4() != v6,
            Test::Addr(f, lo, hi) => {
                let a = addr_of(r, f).0;
                lo <= a && a <= hi
            }
            Test::AddrList(f, n) => addrs
                .get(usize::from(n))
                .is_some_and(|l| l.contains(addr_of(r, f))),
            Test::Port(f, op, v) => op.eval(port_of(r, f), v),
            Test::PortList(f, n) => ports
                .get(usize::from(n))
                .is_some_and(|l| l.contains(port_of(r, f))),
            Test::FlagsAll(m) => r.proto == proto::TCP && r.tcp_flags & m == m,
            Test::FlagsAny(m) => r.proto == proto::TCP && r.tcp_flags & m != 0,
            Test::FlagsExact(v) => r.proto == proto::TCP && r.tcp_flags & !ECN_MASK == v,
            Test::FlagsCmp(op, v) => r.proto == proto::TCP && op.eval(r.tcp_flags, v),
            Test::Packets(op, v) => op.eval(r.packets, v),
            Test::Bytes(op, v) => op.eval(r.bytes, v),
            Test::DurationMs(op, v) => op.eval(r.duration_ms(), v),
            Test::IcmpType(t) => is_icmp(r) && (r.dst_port >> 8) as u8 == t,
            Test::IcmpCode(c) => is_icmp(r) && r.dst_port as u8 == c,
            Test::Role(want) => role(r) == Some(want),
        }
    }
}

/// Run a program from `entry`. Allocation-free; ends because every jump goes to a lower index.
#[inline]
pub fn run(
    prog: &[Insn],
    entry: Target,
    r: &FlowRecord,
    addrs: &[AddrList],
    ports: &[PortList],
) -> bool {
    let mut pc = entry;
    loop {
        match pc {
            ACCEPT => return true,
            REJECT => return false,
            _ => {
                let Some(insn) = prog.get(pc as usize) else {
                    return false;
                };
                pc = if insn.test.eval(r, addrs, ports) {
                    insn.yes
                } else {
                    insn.no
                };
            }
        }
    }
}
