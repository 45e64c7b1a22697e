use super::*;
use crate::record::{proto, tcp, Addr};
use crate::rules::lists::{AddrList, ListSet, PortList};

fn lists() -> ListSet {
    let mut l = ListSet::default();
    l.insert_addrs(
        "trusted",
        AddrList::parse_entries(&[("10.11.12.13", 0), ("172.21.21.172", 1)]).unwrap(),
    );
    l.insert_addrs("bogons", AddrList::builtin("bogons").unwrap());
    l.insert_addrs(
        "feed",
        AddrList::parse_entries(&[("203.0.113.0/24", 0), ("2001:db8::/32", 1)]).unwrap(),
    );
    l.insert_ports(
        "proxy_out",
        PortList::parse_entries(&[("80", 0), ("443", 1), ("8080", 2)]).unwrap(),
    );
    l
}

fn rec(src: &str, sp: u16, dst: &str, dp: u16, pr: u8, flags: u8) -> FlowRecord {
    FlowRecord {
        src: src.parse::<Addr>().unwrap(),
        dst: dst.parse::<Addr>().unwrap(),
        src_port: sp,
        dst_port: dp,
        proto: pr,
        tcp_flags: flags,
        packets: 10,
        bytes: 1500,
        first_ms: 1_000,
        last_ms: 3_500,
        ..Default::default()
    }
}

fn f(text: &str) -> Filter {
    Filter::parse(text, &lists()).unwrap_or_else(|e| panic!("{text}: {}", e.render(text)))
}

fn err(text: &str) -> FilterError {
    match Filter::parse(text, &lists()) {
        Ok(_) => panic!("'{text}' should not parse"),
        Err(e) => e,
    }
}

/// A handful of records that differ in every field the filters read.
fn corpus() -> Vec<FlowRecord> {
    let syn = tcp::SYN;
    vec![
        rec("10.0.0.1", 40000, "10.0.0.2", 80, proto::TCP, syn),
        rec(
            "10.0.0.2",
            80,
            "10.0.0.1",
            40000,
            proto::TCP,
            syn | tcp::ACK,
        ),
        rec(
            "10.11.12.13",
            3128,
            "8.8.8.8",
            25,
            proto::TCP,
            syn | tcp::RST,
        ),
        rec(
            "10.11.12.13",
            3128,
            "8.8.8.8",
            443,
            proto::TCP,
            syn | tcp::ECE | tcp::CWR,
        ),
        rec("192.168.1.7", 5353, "224.0.0.251", 5353, proto::UDP, 0),
        rec("246.237.45.150", 1234, "10.0.0.9", 53, proto::UDP, 0),
        rec("2001:db8::1", 0, "fe80::1", 0x0800, proto::ICMP6, 0),
        rec("10.0.0.128", 0, "10.0.0.5", 0x0800, proto::ICMP, 0),
        rec(
            "172.21.21.172",
            162,
            "203.0.113.9",
            8080,
            proto::TCP,
            tcp::FIN | tcp::PSH | tcp::ACK,
        ),
    ]
}

/// The verdicts of [`Filter::select`] on `recs`, checked against [`Filter::matches`] record by record, and
/// checked to leave no bit set past the last record.
fn verdicts(fl: &Filter, recs: &[FlowRecord]) -> Vec<bool> {
    let (mut bits, mut scratch, mut cols) =
        (vec![u64::MAX; 3], Scratch::default(), Columns::default());
    cols.load(recs);
    fl.select(recs, &cols, &mut bits, &mut scratch);
    assert_eq!(bits.len(), recs.len().div_ceil(64));
    let got: Vec<bool> = (0..recs.len())
        .map(|i| bits[i / 64] >> (i % 64) & 1 == 1)
        .collect();
    let one_by_one: Vec<bool> = recs.iter().map(|r| fl.matches(r)).collect();
    assert_eq!(
        got,
        one_by_one,
        "batch and per-record verdicts of {:?}",
        fl.text()
    );
    let set: u32 = bits.iter().map(|w| w.count_ones()).sum();
    assert_eq!(
        set as usize,
        got.iter().filter(|v| **v).count(),
        "bits past the end"
    );
    got
}

/// The corpus repeated past two 64-record words, so batch verdicts cross word boundaries and end mid-word.
fn long_corpus() -> Vec<FlowRecord> {
    corpus().into_iter().cycle().take(9 * 15).collect()
}

fn selected(text: &str) -> Vec<usize> {
    let fl = f(text);
    verdicts(&fl, &long_corpus());
    verdicts(&fl, &corpus())
        .into_iter()
        .enumerate()
        .filter(|(_, v)| *v)
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn any_empty_and_constants() {
    assert_eq!(selected("any"), (0..9).collect::<Vec<_>>());
    assert_eq!(selected(""), (0..9).collect::<Vec<_>>());
    assert_eq!(selected("  # only a comment"), (0..9).collect::<Vec<_>>());
    assert!(selected("not any").is_empty());
    assert!(f("not not any").is_any());
    assert!(Filter::any().matches(&FlowRecord::default()));
    assert_eq!(Filter::any().text(), "any");
    assert_eq!(f("proto tcp").text(), "proto tcp");
}

#[test]
fn proto_names_and_numbers() {
    assert_eq!(selected("proto tcp"), vec![0, 1, 2, 3, 8]);
    assert_eq!(selected("PROTO UDP"), vec![4, 5]);
    assert_eq!(selected("proto 17"), vec![4, 5]);
    assert_eq!(selected("proto icmp"), vec![7]);
    assert_eq!(selected("proto icmp6"), vec![6]);
    assert_eq!(selected("proto 58"), vec![6]);
    assert_eq!(selected("ipv6"), vec![6]);
    assert_eq!(selected("inet"), vec![0, 1, 2, 3, 4, 5, 7, 8]);
}

#[test]
fn addresses_hosts_and_directions() {
    assert_eq!(selected("src ip 10.0.0.1"), vec![0]);
    assert_eq!(selected("dst ip 10.0.0.1"), vec![1]);
    assert_eq!(selected("ip 10.0.0.1"), vec![0, 1]);
    assert_eq!(selected("host 10.0.0.1"), vec![0, 1]);
    assert_eq!(selected("src or dst host 10.0.0.1"), vec![0, 1]);
    assert_eq!(selected("dst host 2001:db8::1"), Vec::<usize>::new());
    assert_eq!(selected("src host 2001:db8::1"), vec![6]);
    assert_eq!(selected("host ::ffff:10.0.0.1"), vec![0, 1]);
}

#[test]
fn networks_in_every_notation() {
    assert_eq!(selected("src net 10.0.0.0/24"), vec![0, 1, 7]);
    assert_eq!(selected("src net 10.0.0.0 255.255.255.0"), vec![0, 1, 7]);
    assert_eq!(selected("src net 10.0/24"), vec![0, 1, 7]);
    // Host bits are masked off, as nfdump does.
    assert_eq!(selected("src net 10.0.0.77/24"), vec![0, 1, 7]);
    assert_eq!(selected("dst net 224.0.0.0/4"), vec![4]);
    assert_eq!(selected("net 2001:db8::/32"), vec![6]);
    assert_eq!(selected("src and dst net 10.0.0.0/8"), vec![0, 1, 7]);
    assert_eq!(selected("net 10.0.0.0/8"), vec![0, 1, 2, 3, 5, 7]);
    assert_eq!(selected("net 0.0.0.0/0"), vec![0, 1, 2, 3, 4, 5, 7, 8]);
}

#[test]
fn ports_comparisons_and_inline_lists() {
    assert_eq!(selected("dst port 80"), vec![0]);
    assert_eq!(selected("port 80"), vec![0, 1]);
    assert_eq!(selected("dst port = 80"), vec![0]);
    assert_eq!(selected("dst port == 80"), vec![0]);
    assert_eq!(selected("dst port eq 80"), vec![0]);
    assert_eq!(selected("dst port > 1023"), vec![1, 4, 6, 7, 8]);
    assert_eq!(selected("dst port gt 1023"), vec![1, 4, 6, 7, 8]);
    assert_eq!(selected("dst port >= 8080"), vec![1, 8]);
    assert_eq!(selected("dst port < 53"), vec![2]);
    assert_eq!(selected("dst port <= 53"), vec![2, 5]);
    assert_eq!(selected("dst port != 80"), vec![1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(selected("src and dst port 5353"), vec![4]);
    assert_eq!(selected("dst port in [25 465 587]"), vec![2]);
    assert_eq!(selected("dst port in [25,443, 8000-8080]"), vec![2, 3, 8]);
    assert_eq!(selected("port in [ 80 ]"), vec![0, 1]);
}

#[test]
fn list_references() {
    assert_eq!(selected("src in @trusted"), vec![2, 3, 8]);
    assert_eq!(selected("ip in @trusted"), vec![2, 3, 8]);
    assert_eq!(selected("host in @trusted"), vec![2, 3, 8]);
    assert_eq!(selected("not ip in @trusted"), vec![0, 1, 4, 5, 6, 7]);
    assert_eq!(selected("dst in @bogons"), vec![6, 8]);
    assert_eq!(selected("src in @bogons"), vec![5, 6]);
    assert_eq!(selected("ip in @feed"), vec![6, 8]);
    assert_eq!(selected("dst ip in @feed"), vec![8]);
    assert_eq!(selected("dst port in @proxy_out"), vec![0, 3, 8]);
    assert_eq!(
        selected("src in @trusted and not dst port in @proxy_out"),
        vec![2]
    );
    assert_eq!(selected("ip in [10.0.0.1, 2001:db8::/32]"), vec![0, 1, 6]);
    assert_eq!(
        selected("src ip in [10.0.0.100-10.0.0.200 192.168.1.x]"),
        vec![4, 7]
    );
    // One list used twice is stored once.
    assert_eq!(f("src in @trusted or dst in @trusted").addrs.len(), 1);
}

#[test]
fn flags_nfdump_all_set_versus_exact_sets() {
    // nfdump: every listed flag set, other flags don't care, TCP implied.
    assert_eq!(selected("flags S"), vec![0, 1, 2, 3]);
    assert_eq!(selected("flags SA"), vec![1]);
    assert_eq!(selected("flags AS"), vec![1]);
    assert_eq!(selected("flags A"), vec![1, 8]);
    assert_eq!(selected("flags S and not flags AFRPU"), vec![0, 3]);
    assert_eq!(selected("flags X"), Vec::<usize>::new());
    // nfdump: a negated letter test means "none of these set" (or not TCP), not the complement of "all set".
    assert_eq!(selected("not flags SA"), vec![4, 5, 6, 7]);
    assert_eq!(selected("not (flags SA)"), vec![4, 5, 6, 7]);
    assert_eq!(selected("not not flags SA"), selected("flags SA"));
    assert_eq!(selected("not (flags SA or dst port 53)"), vec![4, 6, 7]);
    // A single letter is the same either way.
    assert_eq!(selected("not flags S"), vec![4, 5, 6, 7, 8]);
    // Extension: exactly these flags, ECN bits ignored.
    assert_eq!(selected("flags = S"), vec![0, 3]);
    assert_eq!(selected("flags == SR"), vec![2]);
    assert_eq!(selected("flags = S or flags = SR"), vec![0, 2, 3]);
    assert_eq!(selected("flags = FPA"), vec![8]);
    assert_eq!(selected("flags != S"), vec![1, 2, 8]);
    // nfdump's numeric form compares the raw byte (ECN included).
    assert_eq!(selected("flags 2"), vec![0]);
    assert_eq!(selected("flags = 2"), vec![0]);
    assert_eq!(selected("flags > 2"), vec![1, 2, 3, 8]);
    // Non-TCP flows never match a flags test, even `flags = 0`.
    assert_eq!(selected("flags 0"), Vec::<usize>::new());
    assert_eq!(selected("flags s"), selected("flags S"));
}

#[test]
fn counters_with_scales() {
    let r = rec("10.0.0.1", 1, "10.0.0.2", 2, proto::TCP, 0);
    let yes = |t: &str| f(t).matches(&r);
    assert!(
        yes("packets 10") && yes("packets > 9") && !yes("packets > 10") && yes("packets >= 10")
    );
    assert!(
        yes("bytes < 2k")
            && yes("bytes > 1k")
            && !yes("bytes > 2k")
            && yes("bytes > 1499")
            && yes("bytes < 1m")
    );
    assert!(yes("duration 2500") && yes("duration > 2499") && !yes("duration > 2500"));
    assert!(!yes("bytes > 1g"));
    let backwards = FlowRecord {
        first_ms: 5000,
        last_ms: 1000,
        ..r
    };
    assert!(f("duration = 0").matches(&backwards));
}

/// `initiator` and `responder` as direction.rs defines them, on the corpus: SYNs initiate whatever their ports,
/// replies come from service ports or the lower port, ICMP echo requests initiate; equal ports and unknown ICMPv6
/// types are neither, so `not responder` keeps them.
#[test]
fn initiator_and_responder() {
    assert_eq!(selected("initiator"), vec![0, 2, 3, 5, 7]);
    assert_eq!(selected("responder"), vec![1, 8]);
    assert_eq!(selected("not responder"), vec![0, 2, 3, 4, 5, 6, 7]);
    assert_eq!(
        selected("src in @trusted and not responder and not dst port in @proxy_out"),
        vec![2]
    );
    assert_eq!(
        selected("INITIATOR or Responder"),
        vec![0, 1, 2, 3, 5, 7, 8]
    );
    assert!(err("src initiator")
        .message
        .contains("ip, host, net, port or in"));
}

#[test]
fn icmp_type_and_code() {
    assert_eq!(selected("icmp-type 8"), vec![6, 7]);
    assert_eq!(selected("icmp-code 0"), vec![6, 7]);
    assert_eq!(selected("icmp-type 0"), Vec::<usize>::new());
}

#[test]
fn precedence_not_then_and_then_or() {
    // a or b and c == a or (b and c)
    assert_eq!(
        selected("proto udp or proto tcp and dst port 80"),
        vec![0, 4, 5]
    );
    assert_eq!(
        selected("(proto udp or proto tcp) and dst port 80"),
        vec![0]
    );
    // not binds tighter than and
    assert_eq!(selected("not proto tcp and dst port 53"), vec![5]);
    assert_eq!(
        selected("not (proto tcp and dst port 80)"),
        (1..9).collect::<Vec<_>>()
    );
    assert_eq!(
        selected("! proto tcp && dst port 53 || dst port 80"),
        vec![0, 5]
    );
    // The same with words and symbols mixed and keywords in capitals.
    assert_eq!(
        selected("NOT Proto TCP AND DST PORT 53 OR dst port 80"),
        vec![0, 5]
    );
    assert_eq!(selected("((((proto udp))))"), vec![4, 5]);
}

#[test]
fn compiled_program_agrees_with_a_direct_reading_on_random_filters() {
    // Build random trees over a fixed set of primitives; compare the jump program against evaluating the
    // primitives one by one with and/or/not in plain Rust.
    let prims = [
        "proto tcp",
        "dst port 80",
        "src in @trusted",
        "flags S",
        "flags = S",
        "ip in @feed",
        "packets > 5",
        "any",
    ];
    let mut state = 1u64;
    let mut next = |n: u64| {
        state = crate::hash::fmix64(state.wrapping_add(0x9e37_79b9_7f4a_7c15));
        state % n
    };
    let truth: Vec<Vec<bool>> = prims
        .iter()
        .map(|p| corpus().iter().map(|r| f(p).matches(r)).collect())
        .collect();
    for _ in 0..400 {
        fn build(
            depth: u32,
            next: &mut dyn FnMut(u64) -> u64,
            prims: &[&str],
            truth: &[Vec<bool>],
        ) -> (String, Vec<bool>) {
            let k = if depth == 0 { 0 } else { next(4) };
            match k {
                0 => {
                    let i = next(prims.len() as u64) as usize;
                    (prims[i].to_string(), truth[i].clone())
                }
                1 => {
                    let (t, v) = build(depth - 1, next, prims, truth);
                    (format!("not ({t})"), v.iter().map(|b| !b).collect())
                }
                _ => {
                    let (a, va) = build(depth - 1, next, prims, truth);
                    let (b, vb) = build(depth - 1, next, prims, truth);
                    let and = k == 2;
                    let op = if and { "and" } else { "or" };
                    let v = va
                        .iter()
                        .zip(&vb)
                        .map(|(x, y)| if and { *x && *y } else { *x || *y })
                        .collect();
                    (format!("({a}) {op} ({b})"), v)
                }
            }
        }
        let (text, want) = build(4, &mut next, &prims, &truth);
        let got: Vec<bool> = corpus().iter().map(|r| f(&text).matches(r)).collect();
        assert_eq!(got, want, "{text}");
        let long: Vec<bool> = want.iter().copied().cycle().take(9 * 15).collect();
        assert_eq!(verdicts(&f(&text), &long_corpus()), long, "{text}");
    }
}

#[test]
fn errors_point_at_the_offending_token() {
    let cases: &[(&str, usize, &str)] = &[
        (
            "port http",
            5,
            "expected a port number 0-65535, found 'http'",
        ),
        (
            "dst port > 70000",
            11,
            "expected a port number 0-65535, found '70000'",
        ),
        ("proto tcp and", 13, "found the end of the filter"),
        ("proto tcpx", 6, "expected a protocol name"),
        ("proto 256", 6, "expected a protocol name"),
        ("src in @nope", 7, "found unknown '@nope'"),
        (
            "dst port in @trusted",
            12,
            "expected a port list, found address list '@trusted'",
        ),
        (
            "src in @proxy_out",
            7,
            "expected an address list, found port list '@proxy_out'",
        ),
        ("ip 10.0.0.1/8", 3, "use 'net'"),
        (
            "ip 10.0.0",
            3,
            "expected an IPv4 or IPv6 address, found '10.0.0'",
        ),
        (
            "net 10.0.0.0/33",
            13,
            "expected a prefix length 0-32, found '33'",
        ),
        ("net 10.0.0.0 255.0.255.0", 13, "netmask"),
        ("net 10.0.0.0", 12, "found the end of the filter"),
        ("(proto tcp", 10, "expected ')'"),
        (
            "proto tcp)",
            9,
            "expected 'and', 'or' or the end of the filter, found ')'",
        ),
        ("flags SQ", 7, "found 'Q' in 'SQ'"),
        ("flags = SE", 9, "ignores the ECN bits"),
        (
            "flags > S",
            8,
            "expected a number after an ordering comparison",
        ),
        ("flags 300", 6, "flags value 0-255"),
        ("packets > lots", 10, "expected a number"),
        ("bytes > 99999999999999999999", 8, "expected a number"),
        ("src port in []", 13, "expected a port number, found ']'"),
        (
            "port in [80 http]",
            12,
            "expected a port number 0-65535 or a range a-b, found 'http'",
        ),
        ("ip in [10.0.0.1 nope]", 16, "found 'nope'"),
        ("port in [80", 11, "expected a port number, ',' or ']'"),
        (
            "src foo 1",
            4,
            "expected ip, host, net, port or in after the direction, found 'foo'",
        ),
        ("src", 3, "after the direction"),
        ("bogus", 0, "expected a filter primitive"),
        ("proto tcp & port 80", 10, "expected '&&'"),
        ("src in @", 7, "expected a list name after '@'"),
        ("and", 0, "expected a filter primitive"),
        ("", 0, ""),
    ];
    for &(text, pos, msg) in cases {
        if text.is_empty() {
            continue;
        }
        let e = err(text);
        assert_eq!(e.pos, pos, "'{text}': {}", e.render(text));
        assert!(
            e.message.contains(msg),
            "'{text}': '{}' lacks '{msg}'",
            e.message
        );
    }
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let deep = format!("{}any{}", "(".repeat(10_000), ")".repeat(10_000));
    assert!(err(&deep).message.contains("nested"));
    let nots = "not ".repeat(10_000) + "any";
    assert!(err(&nots).message.contains("nested"));
    let ok = format!(
        "{}proto tcp{}",
        "(".repeat(MAX_DEPTH),
        ")".repeat(MAX_DEPTH)
    );
    assert_eq!(selected(&ok), vec![0, 1, 2, 3, 8]);
    // Long flat chains are fine: and/or are n-ary, so the tree stays shallow.
    let chain = vec!["port 1"; 50_000].join(" or ");
    assert!(!f(&chain).matches(&corpus()[0]));
}

#[test]
fn render_shows_line_column_and_caret() {
    let text = "proto tcp and\n  port http";
    let e = err(text);
    assert_eq!(
        e.render(text),
        "2:8: expected a port number 0-65535, found 'http'\n  port http\n       ^"
    );
    let text = "host é";
    let e = err(text);
    assert_eq!(e.render(text).lines().last(), Some("     ^"));
}

#[test]
fn fuzz_body_survives_generated_inputs() {
    // The cargo-fuzz target's body over a deterministic corpus of fragments glued together.
    let frags = [
        "src",
        "dst",
        "ip",
        "host",
        "net",
        "port",
        "in",
        "@trusted",
        "@proxy_out",
        "@nope",
        "[",
        "]",
        ",",
        "(",
        ")",
        "not",
        "!",
        "and",
        "&&",
        "or",
        "||",
        "any",
        "proto",
        "tcp",
        "flags",
        "S",
        "SA",
        "X",
        "=",
        "==",
        "!=",
        ">",
        "<=",
        "80",
        "65536",
        "10.0.0.0/8",
        "2001:db8::/32",
        "10.0.0.1",
        "255.255.0.0",
        "packets",
        "bytes",
        "duration",
        "1k",
        "#",
        "\n",
        "é",
        "10.1.x.1-99",
        "0-65535",
        "icmp-type",
        "8",
        "src and dst",
        "/",
        "-",
    ];
    let mut state = 42u64;
    for _ in 0..20_000 {
        state = crate::hash::fmix64(state.wrapping_add(1));
        let n = (state % 9) as usize;
        let mut s = String::new();
        let mut x = state;
        for _ in 0..n {
            x = crate::hash::fmix64(x);
            s.push_str(frags[(x % frags.len() as u64) as usize]);
            if x & 0x100 != 0 {
                s.push(' ');
            }
        }
        super::fuzz_check(s.as_bytes());
    }
}

#[test]
fn tests_on_empty_lists_fold_away() {
    let mut l = lists();
    l.insert_addrs("none", AddrList::default());
    l.insert_ports("noports", PortList::default());
    let parse = |t: &str| Filter::parse(t, &l).unwrap();
    let r = rec("10.11.12.13", 1234, "192.0.2.1", 80, proto::TCP, tcp::SYN);
    let any = parse("not ip in @none");
    assert!(any.is_any() && any.matches(&r));
    assert!(!parse("src in @none").matches(&r));
    assert!(!parse("dst port in @noports").matches(&r));
    assert!(parse("not dst port in @noports and proto tcp").matches(&r));
    // A list with entries is still tested.
    let trusted = parse("not ip in @trusted");
    assert!(!trusted.is_any());
    assert!(!trusted.matches(&r), "10.11.12.13 is trusted");
}
