//! A filter evaluated over a whole batch at once, one bit per record.
//!
//! The jump program ([`super::program`]) tests one record at a time, and each test's outcome is a branch the CPU
//! must guess: at a few nanoseconds per mispredicted test, a three-test filter cost FS4 7 % of a scan. Here each
//! test runs as its own tight loop over the batch, writing 64 outcomes per word without branching, and `and`,
//! `or` and `not` become word-wise operations. An `and` stops evaluating its operands once no record is left, an
//! `or` once every record is in.

use super::direction::{role_bits, Role};
use super::program::{Field, Node, Test, ECN_MASK};
use crate::record::{proto, FlowRecord};
use crate::rules::lists::{AddrList, PortList};

/// Buffers an evaluation reuses, one per level of nesting, so a batch allocates nothing once they have grown.
#[derive(Debug, Default)]
pub struct Scratch {
    levels: Vec<Vec<u64>>,
}

/// The one-byte and two-byte fields most tests read, copied out of a batch's records once for all rules: a test on
/// a column reads 1 or 2 bytes per record instead of striding over 96-byte records, and the compiler turns its loop
/// into vector compares.
#[derive(Debug, Default)]
pub struct Columns {
    proto: Vec<u8>,
    flags: Vec<u8>,
    sport: Vec<u16>,
    dport: Vec<u16>,
}

impl Columns {
    /// Fill the columns from `recs`; every filter then evaluated on `recs` reads them.
    pub fn load(&mut self, recs: &[FlowRecord]) {
        self.proto.clear();
        self.flags.clear();
        self.sport.clear();
        self.dport.clear();
        self.proto.extend(recs.iter().map(|r| r.proto));
        self.flags.extend(recs.iter().map(|r| r.tcp_flags));
        self.sport.extend(recs.iter().map(|r| r.src_port));
        self.dport.extend(recs.iter().map(|r| r.dst_port));
    }

    pub fn len(&self) -> usize {
        self.proto.len()
    }

    pub fn is_empty(&self) -> bool {
        self.proto.is_empty()
    }
}

/// Words needed for `n` records.
#[inline]
pub fn words(n: usize) -> usize {
    n.div_ceil(64)
}

/// What every test of one evaluation reads: the records and the filter's lists.
#[derive(Clone, Copy)]
struct Input<'a> {
    recs: &'a [FlowRecord],
    cols: &'a Columns,
    addrs: &'a [AddrList],
    ports: &'a [PortList],
}

/// Bit `i % 64` of word `i / 64` of `out` says whether record `i` passes `node`. `cols` holds the columns of
/// `recs`; `out` must hold [`words`]`(recs.len())` words; bits past the last record are zero.
pub fn select(
    node: &Node,
    (recs, cols): (&[FlowRecord], &Columns),
    (addrs, ports): (&[AddrList], &[PortList]),
    out: &mut [u64],
    scratch: &mut Scratch,
) {
    assert_eq!(cols.len(), recs.len(), "columns loaded from another batch");
    debug_assert_eq!(out.len(), words(recs.len()));
    let input = Input {
        recs,
        cols,
        addrs,
        ports,
    };
    eval(node, input, out, scratch, 0);
    if let Some(last) = out.last_mut() {
        let tail = recs.len() % 64;
        if tail != 0 {
            *last &= (1u64 << tail) - 1;
        }
    }
}

fn eval(node: &Node, input: Input<'_>, out: &mut [u64], scratch: &mut Scratch, depth: usize) {
    match node {
        Node::Const(v) => out.fill(if *v { u64::MAX } else { 0 }),
        Node::Test(t) => test(t, input, out),
        Node::Not(inner) => {
            eval(inner, input, out, scratch, depth);
            out.iter_mut().for_each(|w| *w = !*w);
        }
        Node::And(items) | Node::Or(items) => {
            let and = matches!(node, Node::And(_));
            let Some((first, rest)) = items.split_first() else {
                out.fill(if and { u64::MAX } else { 0 });
                return;
            };
            eval(first, input, out, scratch, depth + 1);
            if rest.is_empty() {
                return;
            }
            // Take this level's buffer out so the operands below can borrow the rest of the scratch.
            if scratch.levels.len() <= depth {
                scratch.levels.resize_with(depth + 1, Vec::new);
            }
            let mut tmp = std::mem::take(&mut scratch.levels[depth]);
            tmp.clear();
            tmp.resize(out.len(), 0);
            for item in rest {
                let done = if and {
                    out.iter().all(|&w| w == 0)
                } else {
                    out.iter().all(|&w| w == u64::MAX)
                };
                if done {
                    break;
                }
                eval(item, input, &mut tmp, scratch, depth + 1);
                for (o, t) in out.iter_mut().zip(&tmp) {
                    *o = if and { *o & t } else { *o | t };
                }
            }
            scratch.levels[depth] = tmp;
        }
    }
}

/// A test over the batch: a loop the compiler specialises for each predicate. Outcomes go to bytes first, which
/// compile to vector compares, and are packed 8 at a time after.
#[inline]
fn fill<T>(items: &[T], out: &mut [u64], pass: impl Fn(&T) -> bool) {
    for (word, chunk) in out.iter_mut().zip(items.chunks(64)) {
        let mut outcomes = [0u8; 64];
        for (o, x) in outcomes.iter_mut().zip(chunk) {
            *o = u8::from(pass(x));
        }
        *word = pack(&outcomes);
    }
}

/// 64 bytes of 0 or 1 to 64 bits. Multiplying eight such bytes by 0x0102040810204080 sums byte `i` shifted to bit
/// `56 + i` with no carries between the sums, so the top byte is the eight bits in order.
#[inline]
fn pack(outcomes: &[u8; 64]) -> u64 {
    let mut word = 0;
    for (k, eight) in outcomes.chunks_exact(8).enumerate() {
        let mut b = [0u8; 8];
        b.copy_from_slice(eight);
        word |= (u64::from_le_bytes(b).wrapping_mul(0x0102_0408_1020_4080) >> 56) << (8 * k);
    }
    word
}

/// A test on the TCP flags: the flow is TCP and `pass` accepts its flags.
#[inline]
fn fill_tcp(cols: &Columns, out: &mut [u64], pass: impl Fn(u8) -> bool) {
    for ((word, proto), flags) in out
        .iter_mut()
        .zip(cols.proto.chunks(64))
        .zip(cols.flags.chunks(64))
    {
        let mut outcomes = [0u8; 64];
        for ((o, &p), &f) in outcomes.iter_mut().zip(proto).zip(flags) {
            *o = u8::from((p == proto::TCP) & pass(f));
        }
        *word = pack(&outcomes);
    }
}

/// `initiator` (or `responder`) over the batch, from the columns and the records' packets, without a branch per
/// record ([`role_bits`]): ports are random, so [`super::direction::role`]'s branches would mispredict.
fn fill_role(recs: &[FlowRecord], cols: &Columns, out: &mut [u64], initiator: bool) {
    for (k, word) in out.iter_mut().enumerate() {
        let at = k * 64;
        let end = (at + 64).min(recs.len());
        let mut outcomes = [0u8; 64];
        for (i, o) in (at..end).zip(outcomes.iter_mut()) {
            let (opens, answers) = role_bits(
                cols.proto[i],
                cols.flags[i],
                recs[i].packets,
                cols.sport[i],
                cols.dport[i],
            );
            *o = u8::from(if initiator { opens } else { answers });
        }
        *word = pack(&outcomes);
    }
}

/// One test over the batch. Tests on the protocol, flags and ports read the columns, in loops specialised for
/// each predicate so they compile to vector compares; the others read the records through [`Test::eval`], the
/// per-record definition of every test.
fn test(t: &Test, input: Input<'_>, out: &mut [u64]) {
    let Input {
        recs,
        cols,
        addrs,
        ports,
    } = input;
    match *t {
        Test::Proto(p) => fill(&cols.proto, out, |&x| x == p),
        Test::Port(Field::Src, op, v) => fill(&cols.sport, out, |&x| op.eval(x, v)),
        Test::Port(Field::Dst, op, v) => fill(&cols.dport, out, |&x| op.eval(x, v)),
        Test::PortList(f, n) => match ports.get(usize::from(n)) {
            Some(l) if f == Field::Src => fill(&cols.sport, out, |&x| l.contains(x)),
            Some(l) => fill(&cols.dport, out, |&x| l.contains(x)),
            None => out.fill(0),
        },
        Test::FlagsAll(m) => fill_tcp(cols, out, |f| f & m == m),
        Test::FlagsAny(m) => fill_tcp(cols, out, |f| f & m != 0),
        Test::FlagsExact(v) => fill_tcp(cols, out, |f| f & !ECN_MASK == v),
        Test::FlagsCmp(op, v) => fill_tcp(cols, out, |f| op.eval(f, v)),
        Test::Packets(op, v) => fill(recs, out, |r| op.eval(r.packets, v)),
        Test::Bytes(op, v) => fill(recs, out, |r| op.eval(r.bytes, v)),
        Test::Role(want) => fill_role(recs, cols, out, want == Role::Initiator),
        _ => fill(recs, out, |r| t.eval(r, addrs, ports)),
    }
}

#[cfg(test)]
mod tests {
    use super::pack;

    #[test]
    fn pack_puts_byte_i_at_bit_i() {
        let mut state = 7u64;
        for _ in 0..1_000 {
            let mut bytes = [0u8; 64];
            let mut want = 0u64;
            for (i, b) in bytes.iter_mut().enumerate() {
                state = crate::hash::fmix64(state.wrapping_add(i as u64));
                if state & 1 == 1 {
                    *b = 1;
                    want |= 1 << i;
                }
            }
            assert_eq!(pack(&bytes), want);
        }
        assert_eq!(pack(&[1; 64]), u64::MAX);
        assert_eq!(pack(&[0; 64]), 0);
    }
}
