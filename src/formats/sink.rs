//! Handing decoded flows to the consumer in batches: the one batching every reader uses.

use super::{ChunkStats, BATCH};
use crate::record::FlowRecord;
use std::cell::Cell;

thread_local! {
    /// The batch buffer of this thread's last sink, kept for the next: a chunk of a few records (a file of tiny
    /// blocks has millions) must not allocate and clear 96 KiB.
    static SPARE: Cell<Option<Box<[FlowRecord]>>> = const { Cell::new(None) };
}

/// Collects flows into a batch reused for the whole chunk and hands full batches to the consumer; counts the
/// flows and, in `stats`, what the reader passed over.
pub struct Sink<'o> {
    /// Always `BATCH` slots: a push writes one slot, with no capacity check or length update in a Vec.
    buf: Box<[FlowRecord]>,
    len: usize,
    out: &'o mut dyn FnMut(&[FlowRecord]),
    pub stats: ChunkStats,
}

impl<'o> Sink<'o> {
    pub fn new(out: &'o mut dyn FnMut(&[FlowRecord])) -> Sink<'o> {
        let buf = SPARE
            .take()
            .unwrap_or_else(|| vec![FlowRecord::default(); BATCH].into_boxed_slice());
        Sink {
            buf,
            len: 0,
            out,
            stats: ChunkStats::default(),
        }
    }

    #[inline]
    pub fn push(&mut self, r: FlowRecord) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = r;
            self.len += 1;
        }
        self.stats.flows += 1;
        if self.len >= self.buf.len() {
            self.flush();
        }
    }

    /// Hand out the last partial batch. Readers call it before returning, also on error: flows decoded before
    /// a bad record are the consumer's, as nfdump prints them before it stops.
    pub fn flush(&mut self) {
        if let Some(batch) = self.buf.get(..self.len).filter(|b| !b.is_empty()) {
            (self.out)(batch);
        }
        self.len = 0;
    }

    /// Flush, then the stats with `result`: what a reader's `decode_chunk` returns.
    pub fn finish<E>(mut self, result: Result<(), E>) -> Result<ChunkStats, E> {
        self.flush();
        result.map(|()| self.stats)
    }
}

impl Drop for Sink<'_> {
    fn drop(&mut self) {
        SPARE.set(Some(std::mem::take(&mut self.buf)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_are_full_but_the_last_and_all_are_counted() {
        let mut sizes = Vec::new();
        let mut out = |b: &[FlowRecord]| sizes.push(b.len());
        let mut s = Sink::new(&mut out);
        for _ in 0..2 * BATCH + 5 {
            s.push(FlowRecord::default());
        }
        let stats = s.finish(Ok::<(), ()>(())).unwrap();
        assert_eq!(stats.flows, 2 * BATCH as u64 + 5);
        assert_eq!(sizes, [BATCH, BATCH, 5]);
    }

    #[test]
    fn a_sink_inside_a_sink_gets_its_own_buffer() {
        let mut inner_flows = 0;
        let mut out = |b: &[FlowRecord]| {
            let mut o = |b: &[FlowRecord]| inner_flows += b.len();
            let mut inner = Sink::new(&mut o);
            for r in b {
                inner.push(*r);
            }
            inner.flush();
        };
        let mut s = Sink::new(&mut out);
        for _ in 0..BATCH + 1 {
            s.push(FlowRecord::default());
        }
        s.flush();
        drop(s);
        assert_eq!(inner_flows, BATCH + 1);
    }
}
