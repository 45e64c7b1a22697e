//! Records already in memory, as a [`Decoder`]: for tests, benchmarks, and generated traffic scanned directly.

use super::{ChunkStats, Decoded, Decoder, FormatError, Out, BATCH};
use crate::record::FlowRecord;
use std::sync::Arc;

/// A list of records served in chunks of `chunk` records.
pub struct RecordsDecoder {
    records: Arc<Vec<FlowRecord>>,
    chunk: usize,
}

impl RecordsDecoder {
    pub fn new(records: Vec<FlowRecord>, chunk: usize) -> RecordsDecoder {
        RecordsDecoder::shared(Arc::new(records), chunk)
    }

    /// Serve records shared with others (benchmarks scan the same records many times without copying them).
    pub fn shared(records: Arc<Vec<FlowRecord>>, chunk: usize) -> RecordsDecoder {
        RecordsDecoder {
            records,
            chunk: chunk.max(1),
        }
    }
}

impl Decoder for RecordsDecoder {
    fn format(&self) -> &'static str {
        "memory"
    }

    fn chunks(&self) -> usize {
        self.records.len().div_ceil(self.chunk)
    }

    fn decode_chunk(&self, index: usize, _scratch: &mut Vec<u8>, out: Out) -> Decoded {
        let start = index * self.chunk;
        let end = (start + self.chunk).min(self.records.len());
        let part = self
            .records
            .get(start..end)
            .ok_or_else(|| FormatError::new(0, format!("chunk {index} does not exist")))?;
        for batch in part.chunks(BATCH) {
            out(batch);
        }
        Ok(ChunkStats {
            flows: part.len() as u64,
            ..ChunkStats::default()
        })
    }
}
