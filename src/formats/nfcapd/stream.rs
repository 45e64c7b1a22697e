//! nfcapd files read as a stream (standard input, a FIFO, or a file read without a memory map): block by block,
//! so memory holds one block per worker whatever the input's size, and files sent back to back
//! (`cat a b | flowsketch scan -`) are all read, one after the other.
//!
//! Every job reads the next block from the shared reader under a lock and decodes it on its own thread, so the
//! blocks of one layout-2 file decode in parallel. There is one job per data block the first file announces
//! (up to [`MAX_JOBS`]) and a last one that reads whatever follows (appendix, further files) until the input ends.
//! Layout-1 files define extension maps that later blocks use, so their blocks are read in order by that last job.

use super::block::{BlockRef, BLOCK_HEADER_LEN};
use super::codec::MAX_BLOCK;
use super::header::{FileHeader, HEADER_V1_LEN, HEADER_V2_LEN, LAYOUT_1, STAT_V1_LEN};
use super::records::Maps;
use super::{decode_block, is_nfcapd, Codec, MAGIC};
use crate::formats::bytes::hex;
use crate::formats::sink::Sink;
use crate::formats::{Decoded, Decoder, FormatError, Out};
use std::cell::RefCell;
use std::io::{BufReader, Read};
use std::sync::Mutex;

/// Jobs beyond this many blocks of the first file are not queued: the last job reads the rest.
const MAX_JOBS: usize = 1 << 16;
/// An ordinary job reads blocks until it holds this many records (or payload bytes), so a file of tiny blocks
/// is not a job per block.
const JOB_RECORDS: u64 = 8 * 1024;
const JOB_BYTES: u64 = 1 << 20;

/// The reader and where it is; behind the lock.
struct State {
    r: BufReader<Box<dyn Read + Send>>,
    /// Input offset of the next byte.
    pos: u64,
    header: FileHeader,
    /// Which file of the input, from 0, and its data blocks not read yet.
    part: usize,
    blocks_left: u32,
    /// The input ended or broke: nothing more to read.
    done: bool,
    /// A layout-1 file was met: only the last job reads on, in order.
    in_order: bool,
}

/// A block read, with what decoding it needs.
struct Unit {
    block: BlockRef,
    codec: Codec,
    part: usize,
}

impl State {
    fn read(&mut self, buf: &mut [u8], what: &dyn Fn() -> String) -> Result<(), FormatError> {
        let at = self.pos;
        let mut got = 0;
        while got < buf.len() {
            match self.r.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(FormatError::new(
                        at + got as u64,
                        format!("nfcapd input unreadable while reading {}: {e}", what()),
                    ))
                }
            }
        }
        self.pos += got as u64;
        if got < buf.len() {
            return Err(FormatError::new(
                at,
                format!(
                    "truncated nfcapd input: expected {} ({} bytes), the input ends after {got}",
                    what(),
                    buf.len()
                ),
            ));
        }
        Ok(())
    }

    /// Read and drop `n` bytes.
    fn discard(&mut self, n: u64, what: &str) -> Result<(), FormatError> {
        let at = self.pos;
        let got = std::io::copy(&mut (&mut self.r).take(n), &mut std::io::sink()).map_err(|e| {
            FormatError::new(
                at,
                format!("nfcapd input unreadable while reading {what}: {e}"),
            )
        })?;
        self.pos += got;
        if got < n {
            return Err(FormatError::new(
                at,
                format!("truncated nfcapd input: expected {what} ({n} bytes), the input ends after {got}"),
            ));
        }
        Ok(())
    }

    /// A block header at the current position, with its payload read into `raw`. `what` names the block.
    fn block(
        &mut self,
        raw: &mut Vec<u8>,
        what: &dyn Fn() -> String,
    ) -> Result<BlockRef, FormatError> {
        let offset = self.pos;
        let mut head = [0u8; BLOCK_HEADER_LEN];
        self.read(&mut head, &|| format!("the header of {}", what()))?;
        let b = BlockRef::parse(&head, offset);
        let size = b.size as usize;
        if size > MAX_BLOCK {
            return Err(FormatError::new(
                offset,
                format!(
                    "{} of {size} bytes: expected at most nfdump's {MAX_BLOCK}-byte block size",
                    what()
                ),
            ));
        }
        raw.resize(size, 0);
        self.read(raw, &|| format!("the {size}-byte payload of {}", what()))?;
        Ok(b)
    }

    /// Past the data blocks of the current file: read its appendix, then the next file's header. False at the end.
    fn next_file(&mut self, raw: &mut Vec<u8>) -> Result<bool, FormatError> {
        let h = &self.header;
        if h.appendix_blocks > 0 && h.off_appendix >= self.pos {
            let (gap, n) = (h.off_appendix - self.pos, h.appendix_blocks);
            self.discard(gap, "the bytes before the appendix")?;
            for i in 0..n {
                self.block(raw, &|| format!("appendix block {i}"))?;
            }
        }
        let mut magic = [0u8; 2];
        let at = self.pos;
        let got = self.r.read(&mut magic[..1]).unwrap_or(0);
        if got == 0 {
            return Ok(false);
        }
        self.pos += 1;
        self.read(&mut magic[1..], &|| "the next nfcapd file's magic".into())?;
        if !is_nfcapd(&magic) {
            return Err(FormatError::new(
                at,
                format!(
                    "after the end of nfcapd file {}: expected another nfcapd file (magic {}) or the end of \
                     the input, found {}",
                    self.part + 1,
                    hex(&MAGIC.to_le_bytes(), 2),
                    hex(&magic, 2)
                ),
            ));
        }
        self.header = read_header(self, magic, at)?;
        self.part += 1;
        self.blocks_left = self.header.num_blocks;
        Ok(true)
    }

    /// The next data block, read into `raw`; None at the end of the input. Layout-1 files are left to the last
    /// job (`last`), which reads them in order.
    fn next(&mut self, raw: &mut Vec<u8>, last: bool) -> Result<Option<Unit>, FormatError> {
        loop {
            if self.done || (self.in_order && !last) {
                return Ok(None);
            }
            if self.blocks_left > 0 {
                self.blocks_left -= 1;
                let (n, of) = (
                    self.header.num_blocks - self.blocks_left - 1,
                    self.header.num_blocks,
                );
                let block = self.block(raw, &|| format!("data block {n} of {of}"))?;
                return Ok(Some(Unit {
                    block,
                    codec: self.header.codec,
                    part: self.part,
                }));
            }
            if !self.next_file(raw)? {
                self.done = true;
                return Ok(None);
            }
            if self.header.layout == LAYOUT_1 {
                self.in_order = true;
            }
        }
    }
}

/// Read the rest of a file header whose magic (read at `at`) is `magic`.
fn read_header(st: &mut State, magic: [u8; 2], at: u64) -> Result<FileHeader, FormatError> {
    let mut head = vec![0u8; HEADER_V1_LEN + STAT_V1_LEN];
    head[..2].copy_from_slice(&magic);
    st.read(&mut head[2..4], &|| "the layout version".into())?;
    let len = if u16::from_le_bytes([head[2], head[3]]) == LAYOUT_1 {
        HEADER_V1_LEN + STAT_V1_LEN
    } else {
        HEADER_V2_LEN
    };
    st.read(&mut head[4..len], &|| "the file header".into())?;
    FileHeader::parse(&head[..len], at)
}

thread_local! {
    /// Each worker's buffer for the blocks it reads (its `scratch` holds what they decompress to).
    static RAW: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// nfcapd files read from a stream: see the module documentation.
pub struct NfcapdStream {
    state: Mutex<State>,
    jobs: usize,
}

impl NfcapdStream {
    /// Read the first file header from `r` (the magic first, so a stream of something else is refused after two
    /// bytes); blocks are read by the jobs.
    pub fn open(r: Box<dyn Read + Send>) -> Result<NfcapdStream, FormatError> {
        let mut st = State {
            r: BufReader::with_capacity(1 << 16, r),
            pos: 0,
            header: empty_header(),
            part: 0,
            blocks_left: 0,
            done: false,
            in_order: false,
        };
        let mut magic = [0u8; 2];
        st.read(&mut magic, &|| "the nfcapd magic".into())?;
        if !is_nfcapd(&magic) {
            // The header parser names what was found (and a byte-swapped magic).
            return Err(FileHeader::parse(&[magic[0], magic[1], 0, 0], 0)
                .err()
                .unwrap_or_else(|| FormatError::new(0, "bad magic")));
        }
        st.header = read_header(&mut st, magic, 0)?;
        st.blocks_left = st.header.num_blocks;
        let jobs = if st.header.layout == LAYOUT_1 {
            st.in_order = true;
            1
        } else {
            (st.header.num_blocks as usize).min(MAX_JOBS) + 1
        };
        Ok(NfcapdStream {
            state: Mutex::new(st),
            jobs,
        })
    }

    fn next(&self, raw: &mut Vec<u8>, last: bool) -> Result<Option<Unit>, FormatError> {
        let mut st = self
            .state
            .lock()
            .map_err(|_| FormatError::new(0, "nfcapd input: a reader failed"))?;
        let unit = st.next(raw, last);
        if unit.is_err() {
            st.done = true;
        }
        unit
    }
}

/// A placeholder until the first header is read.
fn empty_header() -> FileHeader {
    FileHeader {
        layout: 0,
        codec: Codec::None,
        num_blocks: 0,
        first_block: 0,
        off_appendix: 0,
        appendix_blocks: 0,
        ident: None,
        stat: None,
    }
}

impl Decoder for NfcapdStream {
    fn format(&self) -> &'static str {
        "nfcapd"
    }

    fn chunks(&self) -> usize {
        self.jobs
    }

    fn decode_chunk(&self, index: usize, scratch: &mut Vec<u8>, out: Out) -> Decoded {
        let last = index + 1 >= self.jobs;
        let mut raw = RAW.with_borrow_mut(std::mem::take);
        let no_maps = |_: u16| None;
        let mut maps = Maps::new(&no_maps);
        let mut part = None;
        let mut sink = Sink::new(out);
        let (mut records, mut bytes) = (0u64, 0u64);
        let mut first_error = None;
        loop {
            let unit = match self.next(&mut raw, last) {
                Ok(Some(u)) => u,
                Ok(None) => break,
                Err(e) => {
                    first_error.get_or_insert(e);
                    break;
                }
            };
            // Extension maps belong to their file.
            if part != Some(unit.part) {
                maps = Maps::new(&no_maps);
                part = Some(unit.part);
            }
            let b = &unit.block;
            if let Err(e) = decode_block(&raw, b, unit.codec, scratch, &mut maps, &mut sink) {
                first_error.get_or_insert(e);
            }
            records += u64::from(b.num_records);
            bytes += u64::from(b.size);
            if !last && (records >= JOB_RECORDS || bytes >= JOB_BYTES) {
                break;
            }
        }
        RAW.with_borrow_mut(|r| *r = raw);
        sink.finish(first_error.map_or(Ok(()), Err))
    }
}
