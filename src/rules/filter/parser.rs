//! Recursive-descent parser from tokens to a [`Node`] tree. The grammar is in docs/DEFINITIONS.md.

use std::net::{IpAddr, Ipv4Addr};

use super::direction::Role;
use super::lexer::{CmpOp, Tok, Token};
use super::program::{Field, Node, Test};
use super::FilterError;
use crate::rules::lists::{self, AddrList, ListSet, PortList};

/// Nesting of parentheses and `not` beyond this is refused, which bounds recursion here and in the compiler.
pub const MAX_DEPTH: usize = 64;

/// Which ends a primitive applies to: `src`, `dst`, `src and dst`, or either (`src or dst`, or no qualifier).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Src,
    Dst,
    Both,
    Either,
}

pub struct Parser<'t, 'l> {
    toks: Vec<Token<'t>>,
    at: usize,
    depth: usize,
    lists: &'l ListSet,
    pub addr_lists: Vec<AddrList>,
    pub port_lists: Vec<PortList>,
    /// Named lists already copied into this filter, so `@x` used twice is stored once.
    named_addr: Vec<(&'t str, u16)>,
    named_port: Vec<(&'t str, u16)>,
}

const PRIMITIVES: &str = "a filter primitive (any, proto, ip, host, net, port, flags, packets, bytes, duration, initiator, responder, src, dst), 'not' or '('";

fn lower(w: &str) -> String {
    w.to_ascii_lowercase()
}

/// nfdump's scaling suffixes: k, m, g (powers of 1000).
fn parse_scaled(w: &str) -> Option<u64> {
    let (digits, mult) = match w.as_bytes().last()? {
        b'k' | b'K' => (&w[..w.len() - 1], 1_000),
        b'm' | b'M' => (&w[..w.len() - 1], 1_000_000),
        b'g' | b'G' => (&w[..w.len() - 1], 1_000_000_000),
        _ => (w, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

fn protocol_number(w: &str) -> Option<u8> {
    if w.bytes().all(|b| b.is_ascii_digit()) {
        return w.parse().ok();
    }
    Some(match lower(w).as_str() {
        "icmp" => 1,
        "igmp" => 2,
        "ipip" => 4,
        "tcp" => 6,
        "udp" => 17,
        "ipv6" => 41,
        "rsvp" => 46,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "icmp6" => 58,
        "ospf" => 89,
        "pim" => 103,
        "sctp" => 132,
        _ => return None,
    })
}

/// An IPv4 prefix may be abbreviated as nfdump allows (`192.168/16`): missing octets are zero.
fn parse_net_addr(w: &str) -> Option<IpAddr> {
    if let Ok(ip) = w.parse::<IpAddr>() {
        return Some(ip);
    }
    let parts: Vec<&str> = w.split('.').collect();
    if parts.len() < 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        let mut o = [0u8; 4];
        for (slot, p) in o.iter_mut().zip(&parts) {
            *slot = p.parse().ok()?;
        }
        return Some(IpAddr::V4(Ipv4Addr::from(o)));
    }
    None
}

impl<'t, 'l> Parser<'t, 'l> {
    pub fn new(toks: Vec<Token<'t>>, lists: &'l ListSet) -> Self {
        Parser {
            toks,
            at: 0,
            depth: 0,
            lists,
            addr_lists: Vec::new(),
            port_lists: Vec::new(),
            named_addr: Vec::new(),
            named_port: Vec::new(),
        }
    }

    fn peek(&self) -> Token<'t> {
        // The token list always ends with End; clamp so a bug here can never index out of bounds.
        self.toks[self.at.min(self.toks.len() - 1)]
    }

    fn peek2(&self) -> Token<'t> {
        self.toks[(self.at + 1).min(self.toks.len() - 1)]
    }

    fn bump(&mut self) -> Token<'t> {
        let t = self.peek();
        if self.at < self.toks.len() - 1 {
            self.at += 1;
        }
        t
    }

    fn peek_word(&self) -> Option<String> {
        match self.peek().tok {
            Tok::Word(w) => Some(lower(w)),
            _ => None,
        }
    }

    fn expected(&self, what: &str) -> FilterError {
        let t = self.peek();
        FilterError::new(t.pos, format!("expected {what}, found {}", t.describe()))
    }

    /// The whole filter: an expression, then the end. An empty filter matches everything, as in nfdump.
    pub fn parse_filter(&mut self) -> Result<Node, FilterError> {
        if self.peek().tok == Tok::End {
            return Ok(Node::Const(true));
        }
        let node = self.parse_or()?;
        if self.peek().tok != Tok::End {
            return Err(self.expected("'and', 'or' or the end of the filter"));
        }
        Ok(node)
    }

    fn is_or(&self) -> bool {
        self.peek().tok == Tok::OrOr || self.peek_word().as_deref() == Some("or")
    }

    fn is_and(&self) -> bool {
        self.peek().tok == Tok::AndAnd || self.peek_word().as_deref() == Some("and")
    }

    fn parse_or(&mut self) -> Result<Node, FilterError> {
        let mut items = vec![self.parse_and()?];
        while self.is_or() {
            self.bump();
            items.push(self.parse_and()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Node::Const(false))
        } else {
            Node::Or(items)
        })
    }

    fn parse_and(&mut self) -> Result<Node, FilterError> {
        let mut items = vec![self.parse_unary()?];
        while self.is_and() {
            self.bump();
            items.push(self.parse_unary()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Node::Const(true))
        } else {
            Node::And(items)
        })
    }

    fn enter(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(FilterError::new(
                self.peek().pos,
                format!("expected at most {MAX_DEPTH} nested parentheses or 'not's, found more"),
            ));
        }
        Ok(())
    }

    fn parse_unary(&mut self) -> Result<Node, FilterError> {
        let t = self.peek();
        let is_not = t.tok == Tok::Bang || self.peek_word().as_deref() == Some("not");
        if is_not {
            self.bump();
            self.enter()?;
            let inner = self.parse_unary()?;
            self.depth -= 1;
            return Ok(match inner {
                Node::Not(n) => *n,
                Node::Const(b) => Node::Const(!b),
                n => Node::Not(Box::new(n)),
            });
        }
        if t.tok == Tok::LParen {
            self.bump();
            self.enter()?;
            let inner = self.parse_or()?;
            self.depth -= 1;
            if self.peek().tok != Tok::RParen {
                return Err(self.expected("')' or 'and'/'or'"));
            }
            self.bump();
            return Ok(inner);
        }
        self.parse_primitive()
    }

    fn parse_primitive(&mut self) -> Result<Node, FilterError> {
        let Some(kw) = self.peek_word() else {
            return Err(self.expected(PRIMITIVES));
        };
        let dir = match kw.as_str() {
            "src" | "dst" => Some(self.parse_dir(&kw)),
            _ => None,
        };
        let Some(kw) = self.peek_word() else {
            return Err(self.expected("ip, host, net, port or in after the direction"));
        };
        let start = self.peek();
        match (kw.as_str(), dir) {
            ("any", None) => {
                self.bump();
                Ok(Node::Const(true))
            }
            ("ipv4" | "inet", None) => {
                self.bump();
                Ok(Node::Test(Test::IsV6(false)))
            }
            ("ipv6" | "inet6", None) => {
                self.bump();
                Ok(Node::Test(Test::IsV6(true)))
            }
            ("initiator" | "responder", None) => {
                self.bump();
                Ok(Node::Test(Test::Role(if kw == "initiator" {
                    Role::Initiator
                } else {
                    Role::Responder
                })))
            }
            ("proto", None) => {
                self.bump();
                let t = self.peek();
                match t.tok {
                    Tok::Word(w) => match protocol_number(w) {
                        Some(p) => {
                            self.bump();
                            Ok(Node::Test(Test::Proto(p)))
                        }
                        None => Err(self.expected(
                            "a protocol name (tcp, udp, icmp, icmp6, ...) or a number 0-255",
                        )),
                    },
                    _ => Err(self.expected("a protocol name or number")),
                }
            }
            ("flags", None) => {
                self.bump();
                self.parse_flags()
            }
            ("packets" | "bytes" | "duration", None) => {
                self.bump();
                let op = self.parse_cmp();
                let v = self.parse_number()?;
                Ok(Node::Test(match kw.as_str() {
                    "packets" => Test::Packets(op, v),
                    "bytes" => Test::Bytes(op, v),
                    _ => Test::DurationMs(op, v),
                }))
            }
            ("icmp-type" | "icmp-code", None) => {
                self.bump();
                let v = self.parse_number()?;
                let v = u8::try_from(v).map_err(|_| {
                    FilterError::new(self.toks[self.at - 1].pos, "expected a number 0-255")
                })?;
                Ok(Node::Test(if kw == "icmp-type" {
                    Test::IcmpType(v)
                } else {
                    Test::IcmpCode(v)
                }))
            }
            ("ip" | "host", d) => {
                self.bump();
                let d = d.unwrap_or(Dir::Either);
                if self.peek_word().as_deref() == Some("in") {
                    self.bump();
                    return self.parse_addr_set(d);
                }
                let t = self.peek();
                let Tok::Word(w) = t.tok else {
                    return Err(self.expected("an IPv4 or IPv6 address"));
                };
                let ip: IpAddr = w.parse().map_err(|_| {
                    let hint = if w.contains('/') {
                        " (use 'net' for a prefix)"
                    } else {
                        ""
                    };
                    FilterError::new(
                        t.pos,
                        format!("expected an IPv4 or IPv6 address, found '{w}'{hint}"),
                    )
                })?;
                self.bump();
                let a = crate::record::Addr::from(ip).0;
                Ok(expand(d, |f| Node::Test(Test::Addr(f, a, a))))
            }
            ("net", d) => {
                self.bump();
                let (lo, hi) = self.parse_net()?;
                Ok(expand(d.unwrap_or(Dir::Either), |f| {
                    Node::Test(Test::Addr(f, lo, hi))
                }))
            }
            ("port", d) => {
                self.bump();
                let d = d.unwrap_or(Dir::Either);
                if self.peek_word().as_deref() == Some("in") {
                    self.bump();
                    return self.parse_port_set(d);
                }
                let op = self.parse_cmp();
                let p = self.parse_port()?;
                Ok(expand(d, |f| Node::Test(Test::Port(f, op, p))))
            }
            ("in", Some(d)) => {
                self.bump();
                self.parse_addr_set(d)
            }
            (_, Some(_)) => Err(FilterError::new(
                start.pos,
                format!(
                    "expected ip, host, net, port or in after the direction, found {}",
                    start.describe()
                ),
            )),
            (_, None) => Err(self.expected(PRIMITIVES)),
        }
    }

    /// `src`, `dst`, `src and dst`, `src or dst` (also with the ends swapped).
    fn parse_dir(&mut self, first: &str) -> Dir {
        self.bump();
        let other = if first == "src" { "dst" } else { "src" };
        let joiner = self.peek_word();
        let next_is_other =
            matches!(self.peek2().tok, Tok::Word(w) if w.eq_ignore_ascii_case(other));
        if next_is_other {
            if joiner.as_deref() == Some("and") || self.peek().tok == Tok::AndAnd {
                self.bump();
                self.bump();
                return Dir::Both;
            }
            if joiner.as_deref() == Some("or") || self.peek().tok == Tok::OrOr {
                self.bump();
                self.bump();
                return Dir::Either;
            }
        }
        if first == "src" {
            Dir::Src
        } else {
            Dir::Dst
        }
    }

    /// An optional comparator; none means equality, as in nfdump.
    fn parse_cmp(&mut self) -> CmpOp {
        if let Tok::Cmp(op) = self.peek().tok {
            self.bump();
            return op;
        }
        if let Some(op) = self.peek_word().and_then(|w| CmpOp::from_word(&w)) {
            self.bump();
            return op;
        }
        CmpOp::Eq
    }

    fn parse_number(&mut self) -> Result<u64, FilterError> {
        let t = self.peek();
        match t.tok {
            Tok::Word(w) => match parse_scaled(w) {
                Some(v) => {
                    self.bump();
                    Ok(v)
                }
                None => Err(self.expected("a number (optionally with k, m or g)")),
            },
            _ => Err(self.expected("a number")),
        }
    }

    fn parse_port(&mut self) -> Result<u16, FilterError> {
        let t = self.peek();
        if let Tok::Word(w) = t.tok {
            if let Ok(p) = w.parse::<u16>() {
                if w.bytes().all(|b| b.is_ascii_digit()) {
                    self.bump();
                    return Ok(p);
                }
            }
        }
        Err(self.expected("a port number 0-65535"))
    }

    fn parse_flags(&mut self) -> Result<Node, FilterError> {
        let op = match self.peek().tok {
            Tok::Cmp(op) => {
                self.bump();
                Some(op)
            }
            _ => self
                .peek_word()
                .and_then(|w| CmpOp::from_word(&w))
                .inspect(|_| {
                    self.bump();
                }),
        };
        let t = self.peek();
        let Tok::Word(w) = t.tok else {
            return Err(self.expected("TCP flags (letters FSRPAUEC, or X) or a number"));
        };
        if w.bytes().all(|b| b.is_ascii_digit()) {
            let v = w.parse::<u8>().map_err(|_| {
                FilterError::new(t.pos, format!("expected a flags value 0-255, found '{w}'"))
            })?;
            self.bump();
            return Ok(Node::Test(Test::FlagsCmp(op.unwrap_or(CmpOp::Eq), v)));
        }
        let exact = match op {
            None => false,
            Some(CmpOp::Eq | CmpOp::Ne) => true,
            Some(_) => {
                return Err(FilterError::new(
                    t.pos,
                    format!("expected a number after an ordering comparison of flags, found '{w}'"),
                ))
            }
        };
        let mut bits = 0u8;
        for (i, c) in w.char_indices() {
            let bit = match c.to_ascii_uppercase() {
                'F' => 0x01,
                'S' => 0x02,
                'R' => 0x04,
                'P' => 0x08,
                'A' => 0x10,
                'U' => 0x20,
                'E' if !exact => 0x40,
                'C' if !exact => 0x80,
                'X' => 0x3f,
                'E' | 'C' => {
                    return Err(FilterError::new(
                        t.pos + i,
                        format!("expected flags from FSRPAUX, found '{c}': 'flags =' ignores the ECN bits E and C"),
                    ))
                }
                _ => {
                    return Err(FilterError::new(
                        t.pos + i,
                        format!("expected TCP flags (letters FSRPAUEC, or X), found '{c}' in '{w}'"),
                    ))
                }
            };
            bits |= bit;
        }
        self.bump();
        Ok(if exact {
            let n = Node::Test(Test::FlagsExact(bits));
            if op == Some(CmpOp::Ne) {
                // Still TCP only: `flags != S` means a TCP flow whose flags are not exactly S.
                Node::And(vec![
                    Node::Test(Test::Proto(crate::record::proto::TCP)),
                    Node::Not(Box::new(n)),
                ])
            } else {
                n
            }
        } else {
            Node::Test(Test::FlagsAll(bits))
        })
    }

    /// `a.b.c.d/len`, `a.b/len` (abbreviated), `a.b.c.d m.m.m.m`, IPv6 `prefix/len`. Host bits are masked off.
    fn parse_net(&mut self) -> Result<(u128, u128), FilterError> {
        let t = self.peek();
        let Tok::Word(w) = t.tok else {
            return Err(self.expected("a network such as 10.0.0.0/8"));
        };
        if let Some((a, len)) = w.split_once('/') {
            let ip = parse_net_addr(a).ok_or_else(|| {
                FilterError::new(
                    t.pos,
                    format!("expected a network address before '/', found '{a}'"),
                )
            })?;
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let bits = len
                .parse::<u32>()
                .ok()
                .filter(|&b| b <= max)
                .ok_or_else(|| {
                    FilterError::new(
                        t.pos + a.len() + 1,
                        format!("expected a prefix length 0-{max}, found '{len}'"),
                    )
                })?;
            self.bump();
            return Ok(lists::prefix_interval(ip, bits));
        }
        let ip = parse_net_addr(w).ok_or_else(|| {
            FilterError::new(
                t.pos,
                format!("expected a network such as 10.0.0.0/8, found '{w}'"),
            )
        })?;
        let IpAddr::V4(_) = ip else {
            return Err(FilterError::new(
                t.pos,
                format!("expected an IPv6 prefix with '/len', found '{w}'"),
            ));
        };
        self.bump();
        let m = self.peek();
        let mask = match m.tok {
            Tok::Word(mw) => mw.parse::<Ipv4Addr>().ok().map(u32::from),
            _ => None,
        };
        let Some(mask) = mask.filter(|m| m.leading_ones() + m.trailing_zeros() == 32) else {
            return Err(FilterError::new(
                m.pos,
                format!(
                    "expected '/len' or a netmask such as 255.255.0.0, found {}",
                    m.describe()
                ),
            ));
        };
        self.bump();
        Ok(lists::prefix_interval(ip, mask.leading_ones()))
    }

    /// After `in`: `@name` or an inline `[entries]` (space or comma separated, any list entry syntax but commas).
    fn parse_addr_set(&mut self, d: Dir) -> Result<Node, FilterError> {
        let t = self.peek();
        let idx = match t.tok {
            Tok::ListRef(name) => {
                self.bump();
                self.named_addr_index(name, t.pos)?
            }
            Tok::LBracket => {
                self.bump();
                let mut v = Vec::new();
                for (w, pos) in self.bracket_items("an address, prefix or range")? {
                    lists::parse_entry(w, &mut v).map_err(|m| FilterError::new(pos, m))?;
                }
                self.push_addr(AddrList::from_intervals(v), t.pos)?
            }
            _ => return Err(self.expected("'@listname' or '[' with addresses")),
        };
        Ok(expand(d, |f| Node::Test(Test::AddrList(f, idx))))
    }

    fn parse_port_set(&mut self, d: Dir) -> Result<Node, FilterError> {
        let t = self.peek();
        let idx = match t.tok {
            Tok::ListRef(name) => {
                self.bump();
                self.named_port_index(name, t.pos)?
            }
            Tok::LBracket => {
                self.bump();
                let mut v = Vec::new();
                for (w, pos) in self.bracket_items("a port number")? {
                    let r = lists::parse_port_entry(w).map_err(|m| FilterError::new(pos, m))?;
                    v.push(r);
                }
                self.push_port(PortList::from_ranges(v), t.pos)?
            }
            _ => return Err(self.expected("'@listname' or '[' with port numbers")),
        };
        Ok(expand(d, |f| Node::Test(Test::PortList(f, idx))))
    }

    /// Words up to the closing `]`, separated by spaces or commas; at least one.
    fn bracket_items(&mut self, what: &str) -> Result<Vec<(&'t str, usize)>, FilterError> {
        let mut items = Vec::new();
        loop {
            let t = self.peek();
            match t.tok {
                Tok::Word(w) => {
                    self.bump();
                    items.push((w, t.pos));
                }
                Tok::Comma if !items.is_empty() => {
                    self.bump();
                }
                Tok::RBracket if !items.is_empty() => {
                    self.bump();
                    return Ok(items);
                }
                _ => {
                    return Err(self.expected(&if items.is_empty() {
                        what.to_string()
                    } else {
                        format!("{what}, ',' or ']'")
                    }))
                }
            }
        }
    }

    fn push_addr(&mut self, l: AddrList, pos: usize) -> Result<u16, FilterError> {
        let i = u16::try_from(self.addr_lists.len()).map_err(|_| {
            FilterError::new(pos, "expected at most 65535 address lists in one filter")
        })?;
        self.addr_lists.push(l);
        Ok(i)
    }

    fn push_port(&mut self, l: PortList, pos: usize) -> Result<u16, FilterError> {
        let i = u16::try_from(self.port_lists.len()).map_err(|_| {
            FilterError::new(pos, "expected at most 65535 port lists in one filter")
        })?;
        self.port_lists.push(l);
        Ok(i)
    }

    /// For each named list that is empty, the tests that read it (one per end of the flow), with its name.
    pub fn empty_named_tests(&self) -> Vec<(String, Test)> {
        let mut out = Vec::new();
        for &(name, i) in &self.named_addr {
            if self.addr_lists[i as usize].is_empty() {
                for f in [Field::Src, Field::Dst] {
                    out.push((name.to_string(), Test::AddrList(f, i)));
                }
            }
        }
        for &(name, i) in &self.named_port {
            if self.port_lists[i as usize].is_empty() {
                for f in [Field::Src, Field::Dst] {
                    out.push((name.to_string(), Test::PortList(f, i)));
                }
            }
        }
        out
    }

    fn named_addr_index(&mut self, name: &'t str, pos: usize) -> Result<u16, FilterError> {
        if let Some(&(_, i)) = self.named_addr.iter().find(|(n, _)| *n == name) {
            return Ok(i);
        }
        let Some(l) = self.lists.addrs.get(name) else {
            let msg = if self.lists.ports.contains_key(name) {
                format!("expected an address list, found port list '@{name}'")
            } else {
                unknown_list("address", name, self.lists.addrs.keys())
            };
            return Err(FilterError::new(pos, msg));
        };
        let i = self.push_addr(l.clone(), pos)?;
        self.named_addr.push((name, i));
        Ok(i)
    }

    fn named_port_index(&mut self, name: &'t str, pos: usize) -> Result<u16, FilterError> {
        if let Some(&(_, i)) = self.named_port.iter().find(|(n, _)| *n == name) {
            return Ok(i);
        }
        let Some(l) = self.lists.ports.get(name) else {
            let msg = if self.lists.addrs.contains_key(name) {
                format!("expected a port list, found address list '@{name}'")
            } else {
                unknown_list("port", name, self.lists.ports.keys())
            };
            return Err(FilterError::new(pos, msg));
        };
        let i = self.push_port(l.clone(), pos)?;
        self.named_port.push((name, i));
        Ok(i)
    }
}

fn unknown_list<'a>(kind: &str, name: &str, known: impl Iterator<Item = &'a String>) -> String {
    let known: Vec<String> = known.map(|k| format!("@{k}")).collect();
    if known.is_empty() {
        format!(
            "expected a defined {kind} list, found unknown '@{name}' (no {kind} lists are defined)"
        )
    } else {
        format!(
            "expected a defined {kind} list ({}), found unknown '@{name}'",
            known.join(", ")
        )
    }
}

/// A primitive over one end, applied to the ends `d` asks for.
fn expand(d: Dir, mk: impl Fn(Field) -> Node) -> Node {
    match d {
        Dir::Src => mk(Field::Src),
        Dir::Dst => mk(Field::Dst),
        Dir::Both => Node::And(vec![mk(Field::Src), mk(Field::Dst)]),
        Dir::Either => Node::Or(vec![mk(Field::Src), mk(Field::Dst)]),
    }
}
