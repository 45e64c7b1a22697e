//! The writers on a few findings of every shape: JSON and CSV carry the same fields and values, and each writer's
//! output is the committed golden file in tests/fixtures/report/.

use super::row::COLUMNS;
use super::*;
use crate::engine::evidence::{Evidence, ProtoPort};
use crate::engine::KeyValue;
use crate::record::Addr;

fn meta() -> ReportMeta {
    ReportMeta {
        definitions_version: "2026.11.1".into(),
        definitions_origin: "built-in".into(),
        counter: "compact".into(),
    }
}

/// One finding of each shape: a host, a host and port, a protocol key, an IPv6 pair, an estimate, a window.
fn findings() -> Vec<Finding> {
    let base = Finding {
        rule: "FS1".into(),
        name: "fan-out".into(),
        severity: Severity::Medium,
        key_spec: "src".parse().unwrap(),
        key: KeyParts {
            addr: Addr::v4(0x0a00_0080),
            extra: KeyValue::None,
            window: 0,
        },
        count_spec: "distinct dst".parse().unwrap(),
        count: 256,
        exact: true,
        rel_std_error: 0.0,
        above: 100,
        window_ms: None,
        hops: None,
        first_ms: 1_795_662_000_250,
        last_ms: 1_795_662_299_999,
        flows: 511,
        verified: true,
        missed_at_most: 0,
        about: "talks to more than 100 distinct IP addresses".into(),
        evidence: None,
    };
    let key = |addr: &str, extra: KeyValue, window: u64| KeyParts {
        addr: addr.parse().unwrap(),
        extra,
        window,
    };
    vec![
        base.clone(),
        Finding {
            rule: "FS7".into(),
            name: "horizontal scan".into(),
            severity: Severity::High,
            key_spec: "src,dport".parse().unwrap(),
            key: key("10.0.0.128", KeyValue::Port(80), 0),
            count: 256,
            above: 25,
            evidence: Some(Evidence {
                bytes: 11_264,
                packets: 256,
                peers: vec![(Addr::v4(0x0a00_0001), 2), (Addr::v4(0x0a00_0002), 1)],
                ports: vec![
                    (ProtoPort { proto: 6, port: 80 }, 255),
                    (
                        ProtoPort {
                            proto: 1,
                            port: 8 << 8,
                        },
                        1,
                    ),
                ],
                protocols: vec![(6, 255), (1, 1)],
                complete: true,
                peer_rate: 0.25,
                port_rate: 1.0,
                sample_from: None,
                sampled_flows: 0,
            }),
            ..base.clone()
        },
        Finding {
            rule: "P9".into(),
            // A comma and quotes: CSV must quote the cell.
            name: "odd \"protocols\", per host".into(),
            severity: Severity::Low,
            key_spec: "src,proto".parse().unwrap(),
            key: key("192.0.2.7", KeyValue::Proto(47), 0),
            count_spec: "flows".parse().unwrap(),
            count: 12,
            above: 10,
            flows: 12,
            // One pass, admitted at A = 3: the count may lack up to 2 flows; its evidence is a sample of the flows
            // from when the key reached 5.
            exact: false,
            verified: false,
            missed_at_most: 2,
            evidence: Some(Evidence {
                bytes: 4_800,
                packets: 8,
                peers: vec![(Addr::v4(0xc000_0201), 4), (Addr::v4(0xc000_0202), 3)],
                ports: vec![(ProtoPort { proto: 47, port: 0 }, 7)],
                protocols: vec![(47, 7)],
                complete: false,
                peer_rate: 1.0,
                port_rate: 1.0,
                sample_from: Some(5),
                sampled_flows: 7,
            }),
            ..base.clone()
        },
        Finding {
            rule: "FS6".into(),
            name: "port scan".into(),
            severity: Severity::High,
            key_spec: "src,dst".parse().unwrap(),
            key: key(
                "2001:db8::7",
                KeyValue::Addr("2001:db8:ffff::1".parse().unwrap()),
                0,
            ),
            count_spec: "distinct dport".parse().unwrap(),
            count: 10_230,
            exact: false,
            rel_std_error: 0.01625,
            above: 64,
            flows: 10_004,
            ..base.clone()
        },
        Finding {
            rule: "W1".into(),
            name: "flows per 5 minutes".into(),
            severity: Severity::Info,
            count_spec: "flows".parse().unwrap(),
            count: 40,
            above: 30,
            window_ms: Some(300_000),
            key: key("10.1.2.3", KeyValue::None, 5_985_540),
            flows: 40,
            ..base.clone()
        },
        Finding {
            rule: "H1".into(),
            name: "SYN burst".into(),
            severity: Severity::High,
            count_spec: "flows".parse().unwrap(),
            count: 150,
            above: 100,
            // A burst over three overlapping one-minute windows every 10 s; the best starts at 03:00:30.
            window_ms: Some(60_000),
            hops: Some(Hops {
                step_ms: 10_000,
                windows: 3,
            }),
            key: key("10.1.2.4", KeyValue::None, 179_566_203),
            first_ms: 1_795_662_020_000,
            last_ms: 1_795_662_099_000,
            flows: 150,
            ..base
        },
    ]
}

fn written(format: Format, findings: &[Finding]) -> String {
    let mut out = Vec::new();
    write(&mut out, format, &meta(), findings).unwrap();
    String::from_utf8(out).unwrap()
}

/// Split one CSV line (RFC 4180 quoting), independently of the writer.
fn csv_cells(line: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                chars.next();
                out.last_mut().unwrap().push('"');
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(String::new()),
            (c, _) => out.last_mut().unwrap().push(c),
        }
    }
    out
}

/// A CSV cell read as the JSON value of the same field: empty is null, numbers and booleans by their text.
fn same_value(json: &serde_json::Value, csv: &str) -> bool {
    use serde_json::Value;
    match json {
        Value::Null => csv.is_empty(),
        Value::Bool(b) => csv == b.to_string(),
        Value::Number(n) => csv.parse::<f64>().ok() == n.as_f64(),
        Value::String(s) => csv == s,
        // Counts: `[{"<label>": value, "flows": n}, ...]` in JSON, `value=n;...` in CSV.
        Value::Array(items) => {
            let joined: Vec<String> = items
                .iter()
                .map(|o| {
                    let o = o.as_object().unwrap();
                    let (_, v) = o.iter().find(|(k, _)| *k != "flows").unwrap();
                    format!("{}={}", v.as_str().unwrap(), o["flows"])
                })
                .collect();
            csv == joined.join(";")
        }
        _ => false,
    }
}

#[test]
fn json_and_csv_carry_the_same_fields_and_values() {
    let fs = findings();
    let json: Vec<serde_json::Value> = written(Format::Json, &fs)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let csv = written(Format::Csv, &fs);
    let mut lines = csv.lines();
    let header = csv_cells(lines.next().unwrap());
    let rows: Vec<Vec<String>> = lines.map(csv_cells).collect();
    assert_eq!((json.len(), rows.len()), (fs.len(), fs.len()));
    for (i, (j, row)) in json.iter().zip(&rows).enumerate() {
        let object = j.as_object().unwrap();
        // `type` tells a JSON finding from the summary record that ends JSON output; CSV has findings only.
        assert_eq!(object["type"], "finding");
        let mut names: Vec<&str> = object
            .keys()
            .map(String::as_str)
            .filter(|&k| k != "type")
            .collect();
        let mut columns: Vec<&str> = header.iter().map(String::as_str).collect();
        names.sort();
        columns.sort();
        assert_eq!(names, columns, "finding {i}: field names");
        assert_eq!(row.len(), header.len(), "finding {i}: cells");
        for (name, cell) in header.iter().zip(row) {
            assert!(
                same_value(&object[name], cell),
                "finding {i} {name}: JSON {} vs CSV '{cell}'",
                object[name]
            );
        }
    }
    // What the shapes put where: a protocol key in `proto`, not in `port`; a pair's other end in `peer`.
    assert_eq!(
        (&json[2]["proto"], &json[2]["port"]),
        (&47.into(), &serde_json::Value::Null)
    );
    assert_eq!(json[1]["port"], 80);
    assert_eq!(json[3]["peer"], "2001:db8:ffff::1");
    assert_eq!(json[3]["exact"], false);
    assert_eq!(json[4]["window_start"], "2026-11-26T03:00:00.000Z");
    // Merged hopping windows: how many, in both; null for findings without hopping windows.
    assert_eq!(json[5]["windows_merged"], 3);
    assert_eq!(json[5]["window_start"], "2026-11-26T03:00:30.000Z");
    assert_eq!(json[4]["windows_merged"], serde_json::Value::Null);
    let at = header.iter().position(|h| h == "windows_merged").unwrap();
    assert_eq!((rows[5][at].as_str(), rows[4][at].as_str()), ("3", ""));
}

#[test]
fn every_column_has_a_distinct_name() {
    let mut names: Vec<&str> = COLUMNS.iter().map(|c| c.0).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), COLUMNS.len());
}

/// The committed golden output of `format` for [`findings`], with the crate version in place of `{version}`.
fn golden(format: Format, file: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/report")
        .join(file);
    let want = std::fs::read_to_string(&path)
        .unwrap()
        .replace("{version}", env!("CARGO_PKG_VERSION"));
    let got = written(format, &findings());
    assert!(
        got == want,
        "{} differs; the writer now prints:\n{got}",
        path.display()
    );
}

#[test]
fn text_is_the_golden_table() {
    golden(Format::Text, "findings.txt");
}

#[test]
fn json_lines_are_the_golden_objects() {
    golden(Format::Json, "findings.jsonl");
}

#[test]
fn csv_is_the_golden_table() {
    golden(Format::Csv, "findings.csv");
}

#[test]
fn no_findings_is_a_header_only() {
    let text = written(Format::Text, &[]);
    assert_eq!(
        text,
        format!(
            "# flowsketch {}: definitions 2026.11.1 (built-in), counter compact, 0 findings\n",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(written(Format::Json, &[]), "");
    let names: Vec<&str> = COLUMNS.iter().map(|c| c.0).collect();
    assert_eq!(written(Format::Csv, &[]), names.join(",") + "\n");
}
