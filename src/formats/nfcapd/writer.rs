//! nfcapd layout-2 writer. STUB: being implemented on another branch.

use crate::record::FlowRecord;
use std::io::{self, Seek, Write};

/// Block compression of a written file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Lz4,
}

pub struct NfcapdWriter<W: Write + Seek> {
    w: W,
}

impl<W: Write + Seek> NfcapdWriter<W> {
    pub fn new(w: W, _compression: Compression, _ident: &str) -> io::Result<Self> {
        Ok(NfcapdWriter { w })
    }
    pub fn write(&mut self, _r: &FlowRecord) -> io::Result<()> {
        Err(io::Error::other("nfcapd writer not implemented"))
    }
    pub fn finish(self) -> io::Result<W> {
        Ok(self.w)
    }
}
