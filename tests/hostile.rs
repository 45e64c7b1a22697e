//! Hostile input (issue 14): every case through the binary with its exit code, message and flow count, on inputs
//! built here (tests/common/crafted.rs); the memory bounds under `ulimit -v`; and the replay of every fuzz
//! target's committed regression inputs (fuzz/regressions/<target>/).

mod common;
#[path = "common/crafted.rs"]
mod crafted;

use common::{bin, stderr};
use crafted::*;
use flowsketch::formats::nfcapd::{Compression, NfcapdFile};
use flowsketch::formats::{bytes_from_vec, decode_all};
use flowsketch::fuzz;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A scan that has not ended by then is hung: killed, and the test fails (no input may hang the tool).
const HANG: Duration = Duration::from_secs(120);

/// The address space a scan may use in the resource tests (`ulimit -v`): 512 MiB, file maps included.
const MEMORY_BOUND_KIB: u64 = 512 * 1024;

/// Wait for `child`, reading its output; kill it and fail past [`HANG`].
fn finish(mut child: Child, what: &str) -> Output {
    let read = |r: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut v);
            }
            v
        })
    };
    let out = read(child.stdout.take().map(|s| Box::new(s) as _));
    let err = read(child.stderr.take().map(|s| Box::new(s) as _));
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > HANG {
            let _ = child.kill();
            panic!("{what}: still running after {HANG:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    }
}

/// `flowsketch scan -r RULES ARGS`, stdin empty.
fn scan(args: &[&str]) -> Output {
    let child = bin()
        .arg("scan")
        .args(["-r", &rules()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child, &format!("scan {args:?}"))
}

/// `flowsketch scan -r RULES ARGS` with `input` written to its standard input (through a pipe, from a thread:
/// a reader that stops early makes the writer stop on the broken pipe).
fn scan_stdin(args: &[&str], input: impl FnOnce(&mut dyn Write) + Send + 'static) -> Output {
    let mut child = bin()
        .arg("scan")
        .args(["-r", &rules()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut w = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || input(&mut w));
    let o = finish(child, &format!("scan {args:?} < pipe"));
    writer.join().unwrap();
    o
}

/// Rules that fire on everything the crafted inputs hold: flows per source above 0, keyed by source.
fn rules() -> String {
    let p = std::env::temp_dir().join("flowsketch-hostile-rules.toml");
    let text =
        "version = \"hostile-1\"\n\n[[rule]]\nid = \"H1\"\nname = \"any flow\"\nwhere = \"any\"\n\
                key = \"src\"\ncount = \"flows\"\nabove = 0\n";
    if std::fs::read_to_string(&p).ok().as_deref() != Some(text) {
        std::fs::write(&p, text).unwrap();
    }
    p.to_str().unwrap().to_string()
}

/// The flow count of the summary line.
fn flows(o: &Output) -> u64 {
    let err = stderr(o);
    let line = err
        .lines()
        .find(|l| l.contains(" flows, "))
        .unwrap_or_else(|| panic!("no summary: {err}"));
    let before = line.split(" flows, ").next().unwrap();
    before.rsplit(' ').next().unwrap().parse().unwrap()
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

// ---- Hangs and unbounded resources ----

#[test]
fn folders_with_link_loops_are_read_once() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "nfcapd.1",
        &nfcapd(&crafted::flows(512), Compression::Lz4),
    );
    std::os::unix::fs::symlink(".", dir.path().join("a")).unwrap();
    // One loop: the file once (it was read 41 times, then ELOOP).
    let o = scan(&[s(dir.path())]);
    assert_eq!((code(&o), flows(&o)), (1, 512), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("1 folders or files reached again through links"),
        "{}",
        stderr(&o)
    );
    // Two loops (`a -> .`, `b -> .`) ran forever.
    std::os::unix::fs::symlink(".", dir.path().join("b")).unwrap();
    let o = scan(&[s(dir.path())]);
    assert_eq!((code(&o), flows(&o)), (1, 512), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("2 folders or files reached again"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn fifos_in_folders_are_passed_over_and_said_once() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "nfcapd.1",
        &nfcapd(&crafted::flows(10), Compression::None),
    );
    for f in ["fifo1", "fifo2"] {
        let made = Command::new("mkfifo").arg(dir.path().join(f)).status();
        assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    }
    let o = scan(&[s(dir.path())]);
    let err = stderr(&o);
    assert_eq!((code(&o), flows(&o)), (1, 10), "{err}");
    assert_eq!(err.matches("not regular files").count(), 1, "{err}");
    assert!(
        err.contains("2 entries that are not regular files"),
        "{err}"
    );
}

#[test]
fn devices_and_endless_streams_are_refused_after_a_few_bytes() {
    for (args, expect) in [
        // Random bytes may, rarely, start like some format: then that reader refuses them.
        (vec!["/dev/urandom"], "<dev/urandom>"),
        (vec!["--no-mmap", "/dev/zero"], "unknown file format"),
        (vec!["/dev/zero"], "unknown file format"),
        (vec!["--input-format", "nfcapd", "/dev/zero"], "bad magic"),
        (
            vec!["--input-format", "nfcapd", "--no-mmap", "/dev/urandom"],
            "bad magic",
        ),
        (
            vec!["--input-format", "flowtools", "/dev/zero"],
            "flow-tools magic",
        ),
        (
            vec!["--input-format", "csv", "/dev/zero"],
            "longer than 65536 bytes",
        ),
        (
            vec!["--input-format", "netflow", "/dev/zero"],
            "export packet version 0",
        ),
        (vec!["--input-format", "pcap", "/dev/zero"], "pcap magic"),
    ] {
        let o = scan(&args);
        let err = stderr(&o);
        assert_eq!(code(&o), 2, "{args:?}: {err}");
        let expect = match expect {
            "<dev/urandom>" => "/dev/urandom: at offset ",
            e => e,
        };
        assert!(err.contains(expect), "{args:?}: {err}");
        assert_eq!(flows(&o), 0, "{args:?}");
    }
}

#[test]
fn forced_nfcapd_on_stdin_checks_the_magic_before_reading_the_rest() {
    // A gigabyte of text: refused after its first bytes, and the writer is stopped by the closed pipe.
    let o = scan_stdin(&["--input-format", "nfcapd", "-"], |w| {
        let line = [b'x'; 1 << 16];
        for _ in 0..(1 << 14) {
            if w.write_all(&line).is_err() {
                return;
            }
        }
        panic!("the whole gigabyte was read");
    });
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(
        err.contains("<stdin>: at offset 0: bad magic: expected 0xa50c, found 0x7878"),
        "{err}"
    );
}

/// Run `flowsketch scan ARGS` under `ulimit -v` [`MEMORY_BOUND_KIB`].
fn scan_bounded(args: &[&str]) -> Output {
    let cmd = format!(
        "ulimit -v {MEMORY_BOUND_KIB} && exec \"$0\" scan -r {} \"$@\"",
        rules()
    );
    let child = Command::new("sh")
        .args(["-c", &cmd, env!("CARGO_BIN_EXE_flowsketch")])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child, &format!("bounded scan {args:?}"))
}

#[test]
fn template_flood_empty_blocks_and_many_threads_stay_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    // 32 MB of v9 template packets, about 4 million templates: 1 GB in an unbounded cache.
    let flood = write(dir.path(), "flood.pcap", &template_flood(500));
    let o = scan_bounded(&[s(&flood)]);
    let err = stderr(&o);
    assert_eq!((code(&o), flows(&o)), (0, 0), "{err}");
    assert!(err.contains("template cache full"), "{err}");

    // 120 MB of empty blocks before 3,000 flows: took 45-70 s and 365 MB.
    let mut f = with_empty_blocks(
        &nfcapd(&crafted::flows(3000), Compression::None),
        10_000_000,
    );
    let empty = write(dir.path(), "empty-blocks", &f);
    f.clear();
    let start = Instant::now();
    let o = scan_bounded(&["-j", "2", s(&empty)]);
    let err = stderr(&o);
    assert_eq!((code(&o), flows(&o)), (1, 3000), "{err}");
    assert!(err.contains("10000000 empty data blocks"), "{err}");
    // Not a timing test: a hundred times the 0.2 s it takes, against the minute it took.
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
    let o = scan_bounded(&["--no-mmap", s(&empty)]);
    assert_eq!((code(&o), flows(&o)), (1, 3000), "{}", stderr(&o));

    // -j 5000 took 12 GB: capped at 4 per CPU and 256.
    let file = write(
        dir.path(),
        "small",
        &nfcapd(&crafted::flows(500), Compression::Lz4),
    );
    let o = scan_bounded(&["-j", "5000", s(&file)]);
    let err = stderr(&o);
    assert_eq!((code(&o), flows(&o)), (1, 500), "{err}");
    assert!(err.contains("warning: -j 5000 lowered to"), "{err}");
}

// ---- Silent loss and invented flows ----

#[test]
fn nfcapd_block_of_unknown_type_is_reported_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = nfcapd_of_blocks(3, 100);
    let at = nfcapd_blocks(&f)[1];
    f[at + 8] = 7; // block type 7
    let p = write(dir.path(), "unknown-type", &f);
    let o = scan(&[s(&p)]);
    let err = stderr(&o);
    assert_eq!((code(&o), flows(&o)), (2, 200), "{err}");
    assert!(
        err.contains(&format!(
            "unknown-type: at offset {at}: data block of unknown type 7 with 100 records: skipped"
        )),
        "{err}"
    );
    assert!(
        err.contains("flow data not read: 100 records in nfcapd blocks of unknown type"),
        "{err}"
    );
}

#[test]
fn nfcapd_block_with_data_but_no_records_is_reported_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut f = nfcapd_of_blocks(2, 100);
    let at = nfcapd_blocks(&f)[0];
    f[at..at + 4].copy_from_slice(&0u32.to_le_bytes());
    let p = write(dir.path(), "no-records", &f);
    let o = scan(&[s(&p)]);
    let err = stderr(&o);
    assert_eq!((code(&o), flows(&o)), (2, 100), "{err}");
    assert!(
        err.contains("data block declares 0 records but holds"),
        "{err}"
    );
    assert!(
        err.contains("1 nfcapd blocks with data but no records"),
        "{err}"
    );
}

#[test]
fn concatenated_nfcapd_files_are_all_read() {
    let dir = tempfile::tempdir().unwrap();
    let a = nfcapd(&crafted::flows(300), Compression::Lz4);
    let b = nfcapd(&crafted::flows(1000)[500..], Compression::None);
    let both = [a.clone(), b.clone(), a].concat();
    let p = write(dir.path(), "abc", &both);
    for args in [vec![s(&p)], vec!["--no-mmap", s(&p)]] {
        let o = scan(&args);
        assert_eq!((code(&o), flows(&o)), (1, 1100), "{args:?}: {}", stderr(&o));
    }
    let o = scan_stdin(&["-"], move |w| {
        let _ = w.write_all(&both);
    });
    assert_eq!((code(&o), flows(&o)), (1, 1100), "{}", stderr(&o));
    // Not an nfcapd file after the first: an error after its flows.
    let mut junk = b.clone();
    junk.extend_from_slice(b"trailing junk");
    let o = scan_stdin(&["-"], move |w| {
        let _ = w.write_all(&junk);
    });
    let err = stderr(&o);
    assert_eq!((code(&o), flows(&o)), (2, 500), "{err}");
    assert!(
        err.contains(
            "expected another nfcapd file (magic 0c a5) or the end of the input, found 74 72"
        ),
        "{err}"
    );
}

#[test]
fn truncated_pcap_is_an_error_after_the_frames_before_the_cut() {
    let dir = tempfile::tempdir().unwrap();
    let packet = v9_with(V4_FIELDS, &[v4_record(1), v4_record(2)]);
    let cap = pcap(&[udp_frame(&packet, 1), udp_frame(&packet, 2)]);
    let cut = write(dir.path(), "cut.pcap", &cap[..cap.len() - 10]);
    let o = scan(&[s(&cut)]);
    let err = stderr(&o);
    assert_eq!((code(&o), flows(&o)), (2, 2), "{err}");
    assert!(err.contains("truncated pcap: record 2 holds"), "{err}");
    // Cut inside its first record: said so, not "no NetFlow" nor "raw packets".
    let first = write(dir.path(), "first.pcap", &cap[..24 + 16 + 30]);
    let o = scan(&[s(&first)]);
    let err = stderr(&o);
    assert_eq!((code(&o), flows(&o)), (2, 0), "{err}");
    assert!(
        err.contains("first.pcap: at offset 24: truncated pcap: record 1 holds"),
        "{err}"
    );
}

#[test]
fn truncated_v9_and_ipfix_are_errors_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    // v9: template and one data flowset whole, a second data flowset cut.
    let whole = v9_packet(
        1,
        &[
            set(0, &v9_template(256, V4_FIELDS)),
            set(256, &[v4_record(1), v4_record(2)].concat()),
            set(256, &[v4_record(3), v4_record(4)].concat()),
        ],
    );
    let p = write(dir.path(), "cut.v9", &whole[..whole.len() - 20]);
    let o = scan(&[s(&p)]);
    let err = stderr(&o);
    assert_eq!((code(&o), flows(&o)), (2, 2), "{err}");
    assert!(
        err.contains("truncated NetFlow v9 export packet: flowset 256 of 48 bytes, 28 bytes left"),
        "{err}"
    );
    // Cut inside its first flowset: the same words, not "unknown file format".
    let p = write(dir.path(), "cut0.v9", &whole[..30]);
    let o = scan(&[s(&p)]);
    let err = stderr(&o);
    assert_eq!((code(&o), flows(&o)), (2, 0), "{err}");
    assert!(err.contains("truncated NetFlow v9 export packet"), "{err}");
    assert!(!err.contains("unknown file format"), "{err}");
    // IPFIX: the message header claims more than is there.
    let msg = ipfix_message(
        7,
        &[
            set(
                2,
                &ipfix_template(
                    300,
                    &V4_FIELDS
                        .iter()
                        .map(|&(f, l)| (f, l, None))
                        .collect::<Vec<_>>(),
                ),
            ),
            set(300, &[v4_record(1), v4_record(2)].concat()),
            set(300, &v4_record(3)),
        ],
    );
    let p = write(dir.path(), "cut.ipfix", &msg[..msg.len() - 5]);
    let o = scan(&[s(&p)]);
    let err = stderr(&o);
    assert_eq!((code(&o), flows(&o)), (2, 2), "{err}");
    assert!(err.contains("truncated IPFIX message"), "{err}");
}

#[test]
fn v9_zero_length_fields_take_no_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut fields = V4_FIELDS.to_vec();
    fields.insert(2, (0, 0));
    fields.push((0, 0));
    let records: Vec<Vec<u8>> = (0..5).map(v4_record).collect();
    let p = write(dir.path(), "zero-len.v9", &v9_with(&fields, &records));
    let o = scan(&["--format", "json", s(&p)]);
    let err = stderr(&o);
    assert_eq!((code(&o), flows(&o)), (1, 5), "{err}");
    assert!(String::from_utf8_lossy(&o.stdout).contains("\"host\":\"10.2.0.4\""));
}

#[test]
fn templates_no_record_can_follow_invent_no_flows() {
    let dir = tempfile::tempdir().unwrap();
    // Every field of length 0: each data byte was a flow from `::`.
    let p = write(
        dir.path(),
        "no-bytes.v9",
        &v9_with(&[(8, 0), (12, 0)], &[vec![0x55; 600]]),
    );
    let o = scan(&[s(&p)]);
    let err = stderr(&o);
    assert_eq!((code(&o), flows(&o)), (2, 0), "{err}");
    assert!(err.contains("refused: its records have no bytes"), "{err}");
    assert!(err.contains("1 data sets of refused templates"), "{err}");
    // v9 has no variable-length fields: 65535 is a length, and no flowset holds such a record.
    let p = write(
        dir.path(),
        "65535.v9",
        &v9_with(&[(8, 4), (82, 65535)], &[vec![1; 40]]),
    );
    let o = scan(&[s(&p)]);
    let err = stderr(&o);
    assert_eq!((code(&o), flows(&o)), (2, 0), "{err}");
    assert!(err.contains("field 82 has length 65535"), "{err}");
}

#[test]
fn ipfix_variable_length_records_are_decoded() {
    let dir = tempfile::tempdir().unwrap();
    let fields = [
        (8, 4, None),
        (82, 65535, None),
        (12, 4, None),
        (1, 4, Some(29305)),
    ];
    let mut data = Vec::new();
    for (i, name) in [&b"eth0"[..], b"", &[b'x'; 300][..]].iter().enumerate() {
        data.extend_from_slice(&(0x0a03_0000u32 + i as u32).to_be_bytes());
        if name.len() < 255 {
            data.push(name.len() as u8);
        } else {
            data.push(255);
            data.extend_from_slice(&(name.len() as u16).to_be_bytes());
        }
        data.extend_from_slice(name);
        data.extend_from_slice(&0xc0a8_0001u32.to_be_bytes());
        data.extend_from_slice(&500u32.to_be_bytes());
    }
    let msg = ipfix_message(1, &[set(2, &ipfix_template(400, &fields)), set(400, &data)]);
    let p = write(dir.path(), "varlen.ipfix", &msg);
    let o = scan(&["--format", "json", s(&p)]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!((code(&o), flows(&o)), (1, 3), "{}", stderr(&o));
    for host in ["10.3.0.0", "10.3.0.1", "10.3.0.2"] {
        assert!(
            out.contains(&format!("\"host\":\"{host}\"")),
            "{host}: {out}"
        );
    }
}

#[test]
fn flows_without_address_fields_are_from_0_0_0_0() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "noaddr.v9",
        &v9_with(&[(7, 2), (11, 2), (4, 1)], &vec![vec![0, 1, 0, 53, 17]; 4]),
    );
    let o = scan(&["--format", "json", s(&p)]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!((code(&o), flows(&o)), (1, 4), "{}", stderr(&o));
    assert!(out.contains("\"host\":\"0.0.0.0\""), "{out}");
    assert!(!out.contains("\"host\":\"::\""), "{out}");
}

#[test]
fn lost_data_is_counted_by_reason_and_makes_the_exit_code_2() {
    let dir = tempfile::tempdir().unwrap();
    // Data without its template, and a record cut short at the end of its data set.
    let p = write(
        dir.path(),
        "data-only.v9",
        &v9_packet(1, &[set(256, &v4_record(1))]),
    );
    let cut_record = v4_record(2)[..10].to_vec();
    let q = write(
        dir.path(),
        "cut-set.v9",
        &v9_with(V4_FIELDS, &[v4_record(1), cut_record]),
    );
    let o = scan(&[s(&p), s(&q)]);
    let err = stderr(&o);
    assert_eq!((code(&o), flows(&o)), (2, 1), "{err}");
    assert!(
        err.contains("flow data not read: 1 data sets without their template, 1 records cut short in their data set"),
        "{err}"
    );
    // Said with --quiet too: it is why the exit code is 2.
    let o = scan(&["-q", s(&p)]);
    assert_eq!(code(&o), 2);
    assert!(stderr(&o).contains("flow data not read: 1 data sets without their template"));
}

#[test]
fn the_aggregated_flows_counter_is_read() {
    let mut fl = crafted::flows(3);
    fl[1].flows = 70;
    let bytes = nfcapd(&fl, Compression::Lz4);
    let f = NfcapdFile::open(bytes_from_vec(bytes.clone())).unwrap();
    let mut got = Vec::new();
    decode_all(&f, &mut |b| got.extend_from_slice(b)).unwrap();
    assert_eq!(got.iter().map(|r| r.flows).collect::<Vec<_>>(), [1, 70, 1]);
    // The real nfdump reads the counter the writer wrote, where it is installed.
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "aggregated", &bytes);
    if let Ok(o) = Command::new("nfdump")
        .arg("-r")
        .arg(&p)
        .args(["-q", "-o", "fmt:%fl"])
        .output()
    {
        let counts: Vec<String> = String::from_utf8_lossy(&o.stdout)
            .split_whitespace()
            .map(String::from)
            .collect();
        assert_eq!(counts, ["1", "70", "1"]);
    }
}

// ---- Messages ----

#[test]
fn csv_errors_quote_cut_and_escape_what_they_echo() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = b"sa,da\n10.0.0.1,\x1b]0;owned\x07\x1b[2J".to_vec();
    text.extend(std::iter::repeat_n(b'A', 3 << 20));
    text.push(b'\n');
    let p = write(dir.path(), "long.csv", &text);
    let o = scan(&[s(&p)]);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(err.len() < 2000, "{} bytes of stderr", err.len());
    assert!(!err.contains('\x1b') && !err.contains('\x07'), "{err:?}");
    assert!(
        err.contains("expected an IP address, found '\\u{1b}]0;owned\\u{7}\\u{1b}[2JAAAAA"),
        "{err}"
    );
    assert!(err.contains("(cut: 3145742 bytes in all)"), "{err}");
}

#[test]
fn errors_are_capped_per_input_with_a_count_of_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    // 30 blocks, each with a corrupt first record (size 0): one error per block.
    let mut f = nfcapd_of_blocks(30, 10_000);
    for at in nfcapd_blocks(&f) {
        f[at + 12 + 2..at + 12 + 4].copy_from_slice(&[0, 0]);
    }
    let p = write(dir.path(), "corrupt", &f);
    let o = scan(&[s(&p)]);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    let lines = err
        .lines()
        .filter(|l| l.starts_with(&format!("flowsketch: {}: ", s(&p))));
    assert_eq!(lines.count(), 11, "{err}");
    assert!(
        err.contains("corrupt: 20 more errors in this input not shown"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "corrupt: at offset {}: ",
            nfcapd_blocks(&f)[0] + 12
        )),
        "{err}"
    );
}

#[test]
fn messages_show_no_rust_debug_output_and_flags_whole() {
    let dir = tempfile::tempdir().unwrap();
    // An export packet of version 0x6865 ("he") after a good one.
    let mut v5 = vec![0u8; 24 + 48];
    v5[1] = 5;
    v5[3] = 1;
    let two = [v5, b"hello".to_vec()].concat();
    let p = write(dir.path(), "two.nf", &two);
    let o = scan(&["--input-format", "netflow", s(&p)]);
    let err = stderr(&o);
    assert_eq!(code(&o), 2, "{err}");
    assert!(
        err.contains("export packet version 26725, expected 5, 9 or 10"),
        "{err}"
    );
    assert!(!err.contains("Some("), "{err}");
    // A layout-1 flags field of 0xffffffff is reported as found.
    let p = write(dir.path(), "flags", &nfcapd_layout1_header(u32::MAX));
    let o = scan(&[s(&p)]);
    let err = stderr(&o);
    assert!(
        err.contains("flags: at offset 4: layout 1 flags 0xffffffff name several codecs"),
        "{err}"
    );
    // Unknown content shows its first bytes in hex, not as a Rust list.
    let p = write(dir.path(), "junk", b"\x01\x02\x03\x04 and more");
    let o = scan(&[s(&p)]);
    assert!(
        stderr(&o).contains("unknown file format (first bytes 01 02 03 04)"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn csv_with_a_byte_order_mark_is_recognised() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(
        dir.path(),
        "bom.csv",
        b"\xef\xbb\xbfsa,da,pr\n10.0.0.1,10.0.0.2,TCP\n10.0.0.3,10.0.0.2,UDP\n",
    );
    let o = scan(&[s(&p)]);
    assert_eq!((code(&o), flows(&o)), (1, 2), "{}", stderr(&o));
}

// ---- Fuzz regressions ----

/// Every file of fuzz/regressions/<target> through the target's body: no panic. The folder must not be empty.
fn replay(target: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let body = fuzz::TARGETS.iter().find(|(t, _)| *t == target).unwrap().1;
    let mut n = 0;
    for e in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let p = e.unwrap().path();
        let data = std::fs::read(&p).unwrap();
        let r = std::panic::catch_unwind(|| body(&data));
        assert!(r.is_ok(), "{target} panics on {}", p.display());
        n += 1;
    }
    assert!(n > 0, "{}: no regression inputs", dir.display());
}

#[test]
fn every_fuzz_target_has_a_regression_corpus_and_a_body() {
    let targets: Vec<String> =
        std::fs::read_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets"))
            .unwrap()
            .map(|e| {
                e.unwrap()
                    .path()
                    .file_stem()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect();
    let mut bodies: Vec<&str> = fuzz::TARGETS.iter().map(|(t, _)| *t).collect();
    let mut targets: Vec<&str> = targets.iter().map(String::as_str).collect();
    bodies.sort();
    targets.sort();
    assert_eq!(bodies, targets);
}

#[test]
fn fuzz_regressions_nfcapd() {
    replay("nfcapd");
}
#[test]
fn fuzz_regressions_flowtools() {
    replay("flowtools");
}
#[test]
fn fuzz_regressions_netflow() {
    replay("netflow");
}
#[test]
fn fuzz_regressions_pcap() {
    replay("pcap");
}
#[test]
fn fuzz_regressions_csv() {
    replay("csv");
}
#[test]
fn fuzz_regressions_detect() {
    replay("detect");
}
#[test]
fn fuzz_regressions_filter() {
    replay("filter");
}
#[test]
fn fuzz_regressions_definitions() {
    replay("definitions");
}
#[test]
fn fuzz_regressions_state() {
    replay("state");
}
#[test]
fn fuzz_regressions_wire() {
    replay("wire");
}

/// Write the reproducers of the cases above into fuzz/regressions (run by hand when they change:
/// `cargo test --release --test hostile write_regressions -- --ignored`).
#[test]
#[ignore]
fn write_regressions() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let put = |target: &str, name: &str, bytes: &[u8]| {
        let d = root.join(target);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(name), bytes).unwrap();
    };
    let plain = nfcapd_of_blocks(3, 20);
    let mut unknown = plain.clone();
    unknown[nfcapd_blocks(&plain)[1] + 8] = 7;
    let mut no_records = plain.clone();
    let at = nfcapd_blocks(&plain)[0];
    no_records[at..at + 4].copy_from_slice(&0u32.to_le_bytes());
    let small = nfcapd(&crafted::flows(20), Compression::Lz4);
    let mut aggregated = crafted::flows(3);
    aggregated[1].flows = 70;
    for (name, bytes) in [
        ("issue14-unknown-block-type", unknown),
        ("issue14-block-without-records", no_records),
        ("issue14-empty-blocks", with_empty_blocks(&small, 1000)),
        (
            "issue14-concatenated",
            [small.clone(), plain.clone()].concat(),
        ),
        (
            "issue14-trailing-junk",
            [small.clone(), b"junk".to_vec()].concat(),
        ),
        ("issue14-truncated", small[..small.len() - 50].to_vec()),
        ("issue14-layout1-flags", nfcapd_layout1_header(u32::MAX)),
        ("issue14-aggregated", nfcapd(&aggregated, Compression::None)),
    ] {
        put("nfcapd", name, &bytes);
        put("detect", name, &bytes);
    }
    let v9 = v9_with(V4_FIELDS, &[v4_record(1), v4_record(2), v4_record(3)]);
    let mut zero = V4_FIELDS.to_vec();
    zero.insert(1, (0, 0));
    let flood = template_flood(2);
    for (name, bytes) in [
        ("issue14-v9-cut", v9[..v9.len() - 7].to_vec()),
        ("issue14-v9-cut-first-flowset", v9[..30].to_vec()),
        (
            "issue14-v9-zero-length-field",
            v9_with(&zero, &[v4_record(1)]),
        ),
        ("issue14-v9-no-bytes", v9_with(&[(8, 0)], &[vec![0x55; 64]])),
        (
            "issue14-v9-65535",
            v9_with(&[(8, 4), (82, 65535)], &[vec![1; 40]]),
        ),
        (
            "issue14-v9-no-addresses",
            v9_with(&[(7, 2), (4, 1)], &vec![vec![0, 1, 17]; 3]),
        ),
        (
            "issue14-ipfix-varlen",
            ipfix_message(
                1,
                &[
                    set(2, &ipfix_template(400, &[(8, 4, None), (82, 65535, None)])),
                    set(400, &[10, 0, 0, 1, 2, b'a', b'b']),
                ],
            ),
        ),
        ("issue14-version-26725", b"\x00\x05\x00\x01hello".to_vec()),
    ] {
        // The netflow body's first byte splits template and data payloads: 0x80, about half.
        put("netflow", name, &[&[0x80][..], &bytes].concat());
        put("detect", name, &bytes);
    }
    let cap = pcap(&[udp_frame(&v9, 1), udp_frame(&v9, 2)]);
    for (name, bytes) in [
        ("issue14-pcap-cut", cap[..cap.len() - 10].to_vec()),
        ("issue14-pcap-cut-first-record", cap[..70].to_vec()),
        (
            "issue14-template-flood",
            flood[..flood.len().min(70_000)].to_vec(),
        ),
    ] {
        put("pcap", name, &bytes);
        put("detect", name, &bytes);
    }
    let ft = flowtools(10);
    for (name, bytes) in [
        ("v5-records", ft.clone()),
        ("cut-record", ft[..ft.len() - 10].to_vec()),
        ("cut-header", ft[..20].to_vec()),
    ] {
        put("flowtools", name, &bytes);
        put("detect", name, &bytes);
    }
    for (name, text) in [
        ("syn-only", "proto tcp and flags S and not flags A"),
        ("lists", "src net 10.0.0.0/8 or dst port in @web"),
        ("unbalanced", "not (ip in @bogons and"),
    ] {
        put("filter", name, text.as_bytes());
    }
    for (name, text) in [
        ("defaults", include_str!("../src/rules/defaults.toml")),
        ("one-rule", "version = \"x\"\n[[rule]]\nid = \"A\"\nname = \"a\"\nwhere = \"any\"\nkey = \"src\"\ncount = \"flows\"\nabove = 1\n"),
        ("bad-window", "version = \"x\"\n[[rule]]\nid = \"A\"\nname = \"a\"\nwhere = \"any\"\nkey = \"src\"\ncount = \"flows\"\nabove = 1\nwindow = \"-5m\"\n"),
        ("list", "10.0.0.0/8\n# comment\n2001:db8::/32\nnot an address\n"),
    ] {
        put("definitions", name, text.as_bytes());
    }
    let mut long = b"sa,da\n10.0.0.1,\x1b[2J".to_vec();
    long.extend(std::iter::repeat_n(b'A', 70_000));
    for (name, bytes) in [
        (
            "issue14-bom",
            b"\xef\xbb\xbfsa,da\n10.0.0.1,10.0.0.2\n".to_vec(),
        ),
        ("issue14-long-line", long),
        ("issue14-no-newline", vec![b'x'; 70_000]),
    ] {
        put("csv", name, &bytes);
        put("detect", name, &bytes);
    }
}
