//! Flow file readers. Each format turns bytes into [`FlowRecord`]s; none of them sees files, flags or threads.
//!
//! A reader splits its input into chunks that decode independently (nfcapd blocks), so the engine can decode them
//! in parallel; a format that must be read in order (a zlib stream) is one chunk that hands out records in batches.

pub mod memory;
pub mod nfcapd;

use crate::record::FlowRecord;
use std::fmt;
use std::sync::Arc;

/// The bytes of one input, shared by the chunks decoded from it on several threads: a memory map or a buffer.
pub type Bytes = Arc<dyn AsRef<[u8]> + Send + Sync>;

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

/// Records are handed out in batches of at most this many, so the consumer's per-call cost is amortised.
pub const BATCH: usize = 4096;

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

/// Open `bytes` with the reader its magic names.
pub fn open(bytes: Bytes) -> Result<Box<dyn Decoder>, FormatError> {
    let b: &[u8] = (*bytes).as_ref();
    if nfcapd::is_nfcapd(b) {
        return Ok(Box::new(nfcapd::NfcapdFile::open(bytes)?));
    }
    Err(FormatError::new(
        0,
        format!(
            "unknown file format (first bytes {:02x?}); expected one of: {}",
            &b[..b.len().min(4)],
            SUPPORTED.join(", ")
        ),
    ))
}

/// The formats `open` recognises, for error messages and `--help`.
pub const SUPPORTED: &[&str] = &["nfcapd (nfdump 1.6 layout 1 and 1.7 layout 2)"];
