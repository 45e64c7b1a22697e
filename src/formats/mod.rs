//! Flow file readers. Each format turns bytes into [`FlowRecord`]s; none of them sees files, flags or threads.
//!
//! A reader splits its input into chunks that decode independently (nfcapd blocks), so the engine can decode them
//! in parallel; a format that must be read in order (a zlib stream) is one chunk that hands out records in batches.

pub mod csv;
pub mod detect;
pub mod flowtools;
pub mod memory;
pub mod netflow;
pub mod nfcapd;
pub mod pcap;

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

/// What one chunk held besides flows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChunkStats {
    /// Flow records handed to the consumer.
    pub flows: u64,
    /// Records skipped as not being flows (exporter info, extension maps, unknown types).
    pub skipped: u64,
}

/// A file opened by a reader: a header that was validated, and chunks that decode independently.
/// A decoder owns its input ([`Bytes`]), so chunk jobs can outlive the code that opened the file.
pub trait Decoder: Send + Sync {
    /// Short name of the format, as `--input-format` spells it.
    fn format(&self) -> &'static str;
    /// Number of independently decodable chunks.
    fn chunks(&self) -> usize;
    /// Decode chunk `index`, handing records to `out` in batches of at most [`BATCH`].
    /// `scratch` is a reusable buffer for decompression, owned by the calling worker.
    fn decode_chunk(
        &self,
        index: usize,
        scratch: &mut Vec<u8>,
        out: &mut dyn FnMut(&[FlowRecord]),
    ) -> Result<ChunkStats, FormatError>;
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
        let s = decoder.decode_chunk(i, &mut scratch, out)?;
        total.flows += s.flows;
        total.skipped += s.skipped;
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

/// Open a stream (a pipe, stdin) without seeking, with a fresh template cache: see [`Opener::open_stream`].
pub fn open_stream(
    r: Box<dyn Read + Send>,
    format: Option<&str>,
) -> Result<Box<dyn Decoder>, FormatError> {
    Opener::new().open_stream(r, format)
}

impl Opener {
    /// Open a stream (a pipe, stdin) without seeking: flow-tools and CSV are read sequentially as one chunk;
    /// other formats are read fully into memory first and opened with this opener, so NetFlow templates from
    /// the files before the stream decode its data (`flowsketch scan tpl.dat - < data.dat`).
    /// `format` is an `--input-format` name, or None to sniff.
    pub fn open_stream(
        &self,
        mut r: Box<dyn Read + Send>,
        format: Option<&str>,
    ) -> Result<Box<dyn Decoder>, FormatError> {
        let mut head = Vec::with_capacity(SNIFF_LEN);
        (&mut r)
            .take(SNIFF_LEN as u64)
            .read_to_end(&mut head)
            .map_err(|e| FormatError::new(0, format!("stream unreadable: {e}")))?;
        let kind = match format {
            Some(f) => Kind::from_name(f)?,
            None => detect::sniff(&head).ok_or_else(|| detect::unknown(&head))?,
        };
        let chained: Box<dyn Read + Send> = Box::new(std::io::Cursor::new(head).chain(r));
        match kind {
            Kind::FlowTools => Ok(Box::new(flowtools::FlowToolsStream::open(chained)?)),
            Kind::Csv => Ok(Box::new(csv::CsvStream::open(Box::new(
                BufReader::with_capacity(1 << 16, chained),
            ))?)),
            _ => {
                let mut all = Vec::new();
                let mut chained = chained;
                chained
                    .read_to_end(&mut all)
                    .map_err(|e| FormatError::new(0, format!("stream unreadable: {e}")))?;
                self.open(bytes_from_vec(all), "", Some(kind.name()))
            }
        }
    }
}

/// The formats `open` recognises, for error messages and `--help`.
pub const SUPPORTED: &[&str] = &[
    "nfcapd (nfdump 1.6 layout 1 and 1.7 layout 2)",
    "flowtools (flow-tools stream v1/v3, export v1/v5/v7, zlib or uncompressed, either byte order)",
    "netflow (raw NetFlow v5/v9/IPFIX export packets, one UDP payload per file)",
    "pcap (pcap/pcapng captures of NetFlow v5/v9/IPFIX exporter traffic)",
    "csv (nfdump -o csv, flow-tools flow-export -f2)",
];
