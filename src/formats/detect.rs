//! Which reader a file needs: by magic bytes and content, or by the name the user gave with `--input-format`.

use super::{csv, flowtools, netflow, nfcapd, pcap, FormatError};

/// The input kinds flowsketch reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Nfcapd,
    FlowTools,
    /// One raw NetFlow v5/v9/IPFIX export packet (a UDP payload) per file.
    Netflow,
    /// A pcap or pcapng capture of exporter traffic.
    Pcap,
    Csv,
}

/// Names accepted by `--input-format`, with what each reads.
pub const NAMES: &[(&str, &str)] = &[
    ("nfcapd", "nfdump nfcapd files (layout 1 and 2)"),
    (
        "flowtools",
        "flow-tools files (stream v1/v3, export v1/v5/v7, zlib or not)",
    ),
    (
        "netflow",
        "raw NetFlow v5/v9/IPFIX export packets, one UDP payload per file",
    ),
    (
        "pcap",
        "pcap/pcapng captures of NetFlow v5/v9/IPFIX exporter traffic",
    ),
    ("csv", "nfdump -o csv or flow-tools flow-export -f2 CSV"),
];

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Nfcapd => "nfcapd",
            Kind::FlowTools => "flowtools",
            Kind::Netflow => "netflow",
            Kind::Pcap => "pcap",
            Kind::Csv => "csv",
        }
    }

    /// The kind an `--input-format` name stands for.
    pub fn from_name(name: &str) -> Result<Kind, FormatError> {
        Ok(match name.to_ascii_lowercase().as_str() {
            "nfcapd" | "nfdump" => Kind::Nfcapd,
            "flowtools" | "flow-tools" | "ft" => Kind::FlowTools,
            "netflow" | "ipfix" => Kind::Netflow,
            "pcap" | "pcapng" => Kind::Pcap,
            "csv" => Kind::Csv,
            other => {
                return Err(FormatError::new(
                    0,
                    format!(
                        "unknown input format '{other}'; supported: {}",
                        names_list()
                    ),
                ))
            }
        })
    }
}

fn names_list() -> String {
    NAMES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// The kind whose magic or content `bytes` show, if any. Binary magics are checked before content heuristics.
pub fn sniff(bytes: &[u8]) -> Option<Kind> {
    if nfcapd::is_nfcapd(bytes) {
        Some(Kind::Nfcapd)
    } else if flowtools::is_flowtools(bytes) {
        Some(Kind::FlowTools)
    } else if pcap::is_capture(bytes) {
        Some(Kind::Pcap)
    } else if netflow::looks_like_export_packet(bytes) {
        Some(Kind::Netflow)
    } else if csv::is_csv(bytes) {
        Some(Kind::Csv)
    } else {
        None
    }
}

/// Whether `head`, the first bytes of an input (up to 4 KiB are enough), is something no reader is for: it has
/// no magic or content of a known format (no CSV header naming both addresses either) and does not start like a
/// NetFlow export packet (version 5, 9 or 10), whole or broken. An empty input is foreign too. A folder scan
/// skips foreign files as `nfdump -R` does (the `truth.json` that `flowsketch gen` writes beside its captures, a
/// README); a broken flow file is not foreign, and stays an error.
pub fn foreign(head: &[u8]) -> bool {
    sniff(head).is_none() && !matches!(head, [0, 5 | 9 | 10, ..])
}

/// The error for bytes no reader recognises: what was found and what is supported. Bytes that start like a
/// NetFlow packet whose header does not hold (a broken export) get the NetFlow reader's own reason instead.
pub fn unknown(bytes: &[u8]) -> FormatError {
    if let Some(e) = netflow::reason(bytes) {
        return e;
    }
    FormatError::new(
        0,
        format!(
            "unknown file format (first bytes {}); supported: {} (or name one with --input-format)",
            if bytes.is_empty() {
                "none: the input is empty".to_string()
            } else {
                super::bytes::hex(bytes, 4)
            },
            NAMES
                .iter()
                .map(|(n, what)| format!("{n}: {what}"))
                .collect::<Vec<_>>()
                .join("; ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_lists_supported() {
        for (n, _) in NAMES {
            assert_eq!(Kind::from_name(n).unwrap().name(), *n);
        }
        let e = Kind::from_name("silk").unwrap_err();
        for (n, _) in NAMES {
            assert!(e.message.contains(n), "{e}");
        }
    }

    #[test]
    fn magics_are_recognised() {
        assert_eq!(sniff(&[0x0c, 0xa5, 2, 0]), Some(Kind::Nfcapd));
        assert_eq!(
            sniff(&[0xcf, 0x10, 1, 3, 0, 0, 0, 0]),
            Some(Kind::FlowTools)
        );
        assert_eq!(
            sniff(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0]),
            Some(Kind::Pcap)
        );
        assert_eq!(
            sniff(&[0xa1, 0xb2, 0xc3, 0xd4, 0, 2, 0, 4]),
            Some(Kind::Pcap)
        );
        assert_eq!(
            sniff(&[0x4d, 0x3c, 0xb2, 0xa1, 2, 0, 4, 0]),
            Some(Kind::Pcap)
        );
        assert_eq!(
            sniff(&[0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a]),
            Some(Kind::Pcap)
        );
        assert_eq!(sniff(b"ts,te,td,sa,da,sp,dp,pr,flg\n"), Some(Kind::Csv));
        assert_eq!(sniff(b"hello world"), None);
        // What a folder scan skips: text, JSON, an empty file; not a flow file, whole or broken.
        for text in [
            &b"hello world"[..],
            b"{\"events\": []}\n",
            b"",
            b"a,b,c\n1,2,3\n",
        ] {
            assert!(foreign(text), "{text:?}");
        }
        for flows in [
            &b"ts,te,sa,da\n"[..],
            &[0x0c, 0xa5, 2, 0],
            &[0, 5, 0, 200],
            &[0, 9],
            &[0, 10, 0, 1],
        ] {
            assert!(!foreign(flows), "{flows:?}");
        }
        assert!(unknown(b"hello").message.contains("csv"));
        // A v5 header claiming more records than a packet holds: the v5 reason, at the count's offset.
        let mut v5 = vec![0u8; 24 + 48];
        v5[1] = 5;
        v5[3] = 163;
        let e = unknown(&v5);
        assert_eq!(e.offset, 2, "{e}");
        assert!(e.message.contains("record count 163"), "{e}");
    }
}
