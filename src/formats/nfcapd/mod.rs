//! nfdump's nfcapd files: layout 2 (nfdump 1.7) and layout 1 (nfdump 1.6). STUB: being implemented.

use super::{ChunkStats, Decoder, FormatError};
use crate::record::FlowRecord;

/// True when `bytes` start with the nfcapd magic (either layout).
pub fn is_nfcapd(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && u16::from_le_bytes([bytes[0], bytes[1]]) == 0xA50C
}

/// An nfcapd file whose header was validated.
pub struct NfcapdFile<'a> {
    bytes: &'a [u8],
}

impl<'a> NfcapdFile<'a> {
    pub fn open(bytes: &'a [u8]) -> Result<NfcapdFile<'a>, FormatError> {
        Err(FormatError::new(0, format!("nfcapd reader not implemented ({} bytes)", bytes.len())))
    }
}

impl Decoder for NfcapdFile<'_> {
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
        let _ = self.bytes;
        Ok(ChunkStats::default())
    }
}
