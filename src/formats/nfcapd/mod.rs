//! nfdump's nfcapd files: layout 2 (nfdump 1.7) and layout 1 (nfdump 1.6). STUB: being implemented.

pub mod writer;

use super::{Bytes, ChunkStats, Decoder, FormatError};
use crate::record::FlowRecord;

/// True when `bytes` start with the nfcapd magic (either layout).
pub fn is_nfcapd(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && u16::from_le_bytes([bytes[0], bytes[1]]) == 0xA50C
}

/// An nfcapd file whose header was validated.
pub struct NfcapdFile {
    bytes: Bytes,
}

impl NfcapdFile {
    pub fn open(bytes: Bytes) -> Result<NfcapdFile, FormatError> {
        let n = (*bytes).as_ref().len();
        Err(FormatError::new(
            0,
            format!("nfcapd reader not implemented ({n} bytes)"),
        ))
    }
}

impl Decoder for NfcapdFile {
    fn format(&self) -> &'static str {
        "nfcapd"
    }
    fn chunks(&self) -> usize {
        0
    }
    fn decode_chunk(
        &self,
        _index: usize,
        _scratch: &mut Vec<u8>,
        _out: &mut dyn FnMut(&[FlowRecord]),
    ) -> Result<ChunkStats, FormatError> {
        let _ = &self.bytes;
        Ok(ChunkStats::default())
    }
}
