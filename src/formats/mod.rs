//! Flow file readers. Each format turns bytes into [`FlowRecord`]s; none of them sees files, flags or threads.
//!
//! A reader splits its input into chunks that decode independently (nfcapd blocks), so the engine can decode them
//! in parallel; a format that must be read in order (a zlib stream) is one chunk that hands out records in batches.

pub mod bytes;
pub mod csv;
pub mod detect;
pub mod flowtools;
#[doc(hidden)]
pub mod fuzz;
pub mod memory;
pub mod netflow;
pub mod nfcapd;
pub mod pcap;
pub mod prefetch;
pub mod sink;

use crate::record::FlowRecord;
use detect::Kind;
use netflow::templates::TemplateCache;
use std::fmt;
use std::io::{BufReader, Read};
use std::sync::Arc;

/// The bytes of one input, shared by the chunks decoded from it on several threads: a memory map or a buffer.
pub type Bytes = Arc<dyn ByteSource>;

/// Something that holds an input's bytes.
pub trait ByteSource: AsRef<[u8]> + Send + Sync {
    /// A reader is done with `range` for now. A memory map gives those pages back to the page cache, so a scan
    /// of a file larger than memory keeps a small resident set; the bytes stay readable (they fault back in).
    fn release(&self, _range: std::ops::Range<usize>) {}
}

impl ByteSource for Vec<u8> {}

/// Wrap an owned buffer as [`Bytes`].
pub fn bytes_from_vec(v: Vec<u8>) -> Bytes {
    Arc::new(v)
}

/// A decoding error with the byte offset where it was found and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    /// Offset in the file (or, for data inside a compressed block, the offset of that block's header).
    pub offset: u64,
    pub message: String,
}

impl FormatError {
    pub fn new(offset: u64, message: impl Into<String>) -> FormatError {
        FormatError {
            offset,
            message: message.into(),
        }
    }
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at offset {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for FormatError {}

/// Records are handed out in batches of at most this many, so the consumer's per-call cost is amortised. 1024
/// records (96 KiB) stay below glibc's mmap threshold, so a batch buffer is recycled, not faulted in anew.
pub const BATCH: usize = 1024;

/// What one chunk held besides the flows it handed out: records passed over by design, and flow data lost, by
/// reason. Chunks add up (`+=`) to an input's and a scan's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkStats {
    /// Flow records handed to the consumer.
    pub flows: u64,
    /// Records that are not flows, passed over by design: nfcapd extension maps, exporter and sampler records;
    /// NetFlow options data; CSV blank and comment lines.
    pub skipped: u64,
    /// Flow data that could not be read. Any of it makes a scan's exit code 2.
    pub lost: Lost,
}

/// Flow data a reader could not read, by reason; each count says its unit (records, blocks, sets, frames).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Lost {
    /// nfcapd: records in data blocks of a type no reader knows (nfdump: "Unknown block type", skipped).
    pub unknown_block_records: u64,
    /// nfcapd: data blocks that hold bytes but declare no records (nfdump: "Corrupt data file").
    pub blocks_without_records: u64,
    /// nfcapd: records of a type that is neither a flow nor a known non-flow record.
    pub unknown_records: u64,
    /// nfcapd layout 1: flow records whose extension map is nowhere in the file (nfdump skips them).
    pub missing_map: u64,
    /// NetFlow v9/IPFIX: data sets whose template had not been seen (or was evicted) when they came.
    pub no_template: u64,
    /// NetFlow v9/IPFIX: data sets whose template was refused (no bytes per record, or a field no set can hold).
    pub bad_template: u64,
    /// NetFlow v9/IPFIX: records cut short at the end of their data set.
    pub cut_records: u64,
    /// pcap: IP fragments (an export packet split over frames cannot be read from one frame).
    pub fragments: u64,
    /// pcap: export packets cut short (by the capture's snap length) or unreadable, read up to the cut.
    pub bad_packets: u64,
}

impl Lost {
    /// Every reason with its count and what it counts, in a fixed order (for the summary and JSON).
    pub fn reasons(&self) -> [(&'static str, u64); 9] {
        [
            (
                "records in nfcapd blocks of unknown type",
                self.unknown_block_records,
            ),
            (
                "nfcapd blocks with data but no records",
                self.blocks_without_records,
            ),
            ("nfcapd records of unknown type", self.unknown_records),
            (
                "nfcapd records without their extension map",
                self.missing_map,
            ),
            ("data sets without their template", self.no_template),
            ("data sets of refused templates", self.bad_template),
            ("records cut short in their data set", self.cut_records),
            ("IP fragments", self.fragments),
            (
                "export packets cut short or unreadable in a capture",
                self.bad_packets,
            ),
        ]
    }

    /// Sum over the reasons (of mixed units: zero means nothing was lost).
    pub fn total(&self) -> u64 {
        self.reasons().iter().map(|(_, n)| n).sum()
    }

    /// `"3 data sets without their template, 1 IP fragments"`, or None when nothing was lost.
    pub fn describe(&self) -> Option<String> {
        let parts: Vec<String> = (self.reasons().iter())
            .filter(|(_, n)| *n > 0)
            .map(|(what, n)| format!("{n} {what}"))
            .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

impl std::ops::AddAssign for Lost {
    fn add_assign(&mut self, o: Lost) {
        self.unknown_block_records += o.unknown_block_records;
        self.blocks_without_records += o.blocks_without_records;
        self.unknown_records += o.unknown_records;
        self.missing_map += o.missing_map;
        self.no_template += o.no_template;
        self.bad_template += o.bad_template;
        self.cut_records += o.cut_records;
        self.fragments += o.fragments;
        self.bad_packets += o.bad_packets;
    }
}

impl std::ops::AddAssign for ChunkStats {
    fn add_assign(&mut self, o: ChunkStats) {
        self.flows += o.flows;
        self.skipped += o.skipped;
        self.lost += o.lost;
    }
}

/// What a decoder hands its records to: called with batches of at most [`BATCH`] records.
pub type Out<'a> = &'a mut dyn FnMut(&[FlowRecord]);
/// What decoding one chunk gives: its stats, or the error that stopped it (the flows before it were handed out).
pub type Decoded = Result<ChunkStats, FormatError>;

/// A file opened by a reader: a header that was validated, and chunks that decode independently.
/// A decoder owns its input ([`Bytes`]), so chunk jobs can outlive the code that opened the file.
pub trait Decoder: Send + Sync {
    /// Short name of the format, as `--input-format` spells it.
    fn format(&self) -> &'static str;
    /// Number of independently decodable chunks.
    fn chunks(&self) -> usize;
    /// Decode chunk `index`, handing records to `out` in batches of at most [`BATCH`].
    /// `scratch` is a reusable buffer for decompression, owned by the calling worker.
    fn decode_chunk(&self, index: usize, scratch: &mut Vec<u8>, out: Out) -> Decoded;
    /// Flow count the file's own header or appendix claims, when it has one (for cross-checks).
    fn declared_flows(&self) -> Option<u64> {
        None
    }
    /// Problems found that did not stop decoding (NetFlow data before its template, rejected templates,
    /// truncated captures), each with its offset. Known once the file is opened.
    fn warnings(&self) -> Vec<FormatError> {
        Vec::new()
    }
}

/// A pipe read once, by whichever worker decodes the stream's single chunk.
pub(crate) struct OnceStream<R>(std::sync::Mutex<Option<R>>);

impl<R> OnceStream<R> {
    pub(crate) fn new(r: R) -> OnceStream<R> {
        OnceStream(std::sync::Mutex::new(Some(r)))
    }

    /// The reader, the first time; an error naming `what` after that (a stream cannot be rewound).
    pub(crate) fn take(&self, what: &str) -> Result<R, FormatError> {
        let taken = self.0.lock().map(|mut g| g.take()).unwrap_or(None);
        taken.ok_or_else(|| FormatError::new(0, format!("{what} stream was already read")))
    }
}

/// Decode every chunk of a file in order on this thread; for tests, tools and small inputs.
pub fn decode_all(
    decoder: &dyn Decoder,
    out: &mut dyn FnMut(&[FlowRecord]),
) -> Result<ChunkStats, FormatError> {
    let mut scratch = Vec::new();
    let mut total = ChunkStats::default();
    for i in 0..decoder.chunks() {
        total += decoder.decode_chunk(i, &mut scratch, out)?;
    }
    Ok(total)
}

/// Open `bytes` with the reader its magic or content names (a fresh template cache: use [`Opener`] to read
/// NetFlow v9/IPFIX templates and data from separate files).
pub fn open(bytes: Bytes) -> Result<Box<dyn Decoder>, FormatError> {
    Opener::new().open(bytes, "", None)
}

/// Opens the inputs of one run in order. It holds the NetFlow v9/IPFIX template cache, so templates read from
/// one file (exporters send them apart, `*tpl*` files) decode the data of the files opened after it.
#[derive(Default)]
pub struct Opener {
    templates: Arc<TemplateCache>,
}

impl Opener {
    pub fn new() -> Opener {
        Opener::default()
    }

    /// The template cache shared by the files this opener opened.
    pub fn templates(&self) -> &TemplateCache {
        &self.templates
    }

    /// Open one input. `format_override` is an `--input-format` name; without it the content decides.
    /// `name` (a file name, or empty) only adds a hint to the error for unrecognised content.
    pub fn open(
        &self,
        bytes: Bytes,
        name: &str,
        format_override: Option<&str>,
    ) -> Result<Box<dyn Decoder>, FormatError> {
        let b: &[u8] = (*bytes).as_ref();
        let kind = match format_override {
            Some(f) => Kind::from_name(f)?,
            None => match detect::sniff(b) {
                Some(k) => k,
                None => {
                    let mut e = detect::unknown(b);
                    if !name.is_empty() {
                        e.message = format!("{name}: {}", e.message);
                    }
                    return Err(e);
                }
            },
        };
        Ok(match kind {
            Kind::Nfcapd => Box::new(nfcapd::NfcapdFile::open(bytes)?),
            Kind::FlowTools => Box::new(flowtools::FlowToolsFile::open(bytes)?),
            Kind::Netflow => Box::new(netflow::NetflowDecoder::open_payload(
                bytes,
                &self.templates,
            )?),
            Kind::Pcap => Box::new(pcap::open(bytes, &self.templates)?),
            Kind::Csv => Box::new(csv::CsvFile::open(bytes)?),
        })
    }
}

/// Bytes read to recognise a stream before choosing its reader.
const SNIFF_LEN: usize = 4096;

/// Most bytes read into memory from a stream for the formats that need random access (NetFlow payloads, pcap).
/// Larger inputs are refused with this bound named: give them as file paths, which are memory-mapped.
pub const MAX_BUFFERED: u64 = 256 << 20;

/// Open a stream (a pipe, stdin) without seeking, with a fresh template cache: see [`Opener::open_stream`].
pub fn open_stream(
    r: Box<dyn Read + Send>,
    format: Option<&str>,
) -> Result<Box<dyn Decoder>, FormatError> {
    Opener::new().open_stream(r, format)
}

impl Opener {
    /// Open a stream (a pipe, stdin, a device) without seeking. nfcapd is read block by block (files sent back to
    /// back are all read), flow-tools and CSV record by record; NetFlow payloads and pcap need random access and
    /// are read into memory, at most [`MAX_BUFFERED`] bytes, after their first bytes were checked. They are opened
    /// with this opener, so NetFlow templates from the files before the stream decode its data
    /// (`flowsketch scan tpl.dat - < data.dat`). `format` is an `--input-format` name, or None to sniff.
    pub fn open_stream(
        &self,
        r: Box<dyn Read + Send>,
        format: Option<&str>,
    ) -> Result<Box<dyn Decoder>, FormatError> {
        self.open_reader(r, None, format)
    }

    /// Open a regular file without mapping it (`--no-mmap`): as a stream, except that an uncompressed flow-tools
    /// file is read a chunk at a time with `pread`, in parallel. Memory holds a block or chunk per worker, not the
    /// file (NetFlow payloads and pcap excepted: see [`Opener::open_stream`]).
    pub fn open_unmapped(
        &self,
        file: std::fs::File,
        format: Option<&str>,
    ) -> Result<Box<dyn Decoder>, FormatError> {
        let reader = file
            .try_clone()
            .map_err(|e| FormatError::new(0, format!("cannot read: {e}")))?;
        self.open_reader(Box::new(reader), Some(file), format)
    }

    fn open_reader(
        &self,
        mut r: Box<dyn Read + Send>,
        file: Option<std::fs::File>,
        format: Option<&str>,
    ) -> Result<Box<dyn Decoder>, FormatError> {
        let mut head = Vec::with_capacity(SNIFF_LEN);
        (&mut r)
            .take(SNIFF_LEN as u64)
            .read_to_end(&mut head)
            .map_err(|e| FormatError::new(0, format!("input unreadable: {e}")))?;
        let kind = match format {
            Some(f) => Kind::from_name(f)?,
            None => detect::sniff(&head).ok_or_else(|| detect::unknown(&head))?,
        };
        let chained: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(head.clone()).chain(r));
        Ok(match kind {
            Kind::Nfcapd => Box::new(nfcapd::NfcapdStream::open(chained)?),
            Kind::FlowTools => match (file, flowtools::parse_header(&head)) {
                (Some(f), Ok(h)) if !h.compressed() => {
                    Box::new(flowtools::FlowToolsFile::open_file(f, &head)?)
                }
                _ => Box::new(flowtools::FlowToolsStream::open(chained)?),
            },
            Kind::Csv => Box::new(csv::CsvStream::open(Box::new(BufReader::with_capacity(
                1 << 16,
                chained,
            )))?),
            Kind::Netflow | Kind::Pcap => {
                // Refuse other content before reading it all.
                let fits = match kind {
                    Kind::Pcap => pcap::is_capture(&head),
                    _ => netflow::looks_like_export_packet(&head),
                };
                if !fits {
                    return Err(self
                        .open(bytes_from_vec(head), "", Some(kind.name()))
                        .err()
                        .unwrap_or_else(|| detect::unknown(&[])));
                }
                let all = read_bounded(chained, kind.name())?;
                self.open(bytes_from_vec(all), "", Some(kind.name()))?
            }
        })
    }
}

/// All of `r`, or an error past [`MAX_BUFFERED`] bytes.
fn read_bounded(r: Box<dyn Read + Send>, what: &str) -> Result<Vec<u8>, FormatError> {
    let mut all = Vec::new();
    r.take(MAX_BUFFERED + 1)
        .read_to_end(&mut all)
        .map_err(|e| FormatError::new(all.len() as u64, format!("input unreadable: {e}")))?;
    if all.len() as u64 > MAX_BUFFERED {
        return Err(FormatError::new(
            MAX_BUFFERED,
            format!(
                "{what} input read as a stream is larger than the {} MiB read into memory: give it as a file \
                 path, without --no-mmap (files are memory-mapped)",
                MAX_BUFFERED >> 20
            ),
        ));
    }
    Ok(all)
}

/// The formats `open` recognises, for error messages and `--help`.
pub const SUPPORTED: &[&str] = &[
    "nfcapd (nfdump 1.6 layout 1 and 1.7 layout 2)",
    "flowtools (flow-tools stream v1/v3, export v1/v5/v7, zlib or uncompressed, either byte order)",
    "netflow (raw NetFlow v5/v9/IPFIX export packets, one UDP payload per file)",
    "pcap (pcap/pcapng captures of NetFlow v5/v9/IPFIX exporter traffic)",
    "csv (nfdump -o csv, flow-tools flow-export -f2)",
];
