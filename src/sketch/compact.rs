//! [`Compact`]: the default distinct counter. One 8-byte tagged word per key; exact while small, then HyperLogLog.
//!
//! States of the word (the low bits are the tag; heap blocks are 8-aligned, so a pointer's three low bits are 0):
//!
//! | word                  | state                                                              | heap      |
//! |-----------------------|--------------------------------------------------------------------|-----------|
//! | 0                     | empty                                                              | none      |
//! | odd                   | exactly one value: the word *is* its hash (hashes are made odd)    | none      |
//! | pointer, low bits 000 | exact: `[header, hash, hash, ...]`, header = len \| cap << 32      | 8(cap+1) B |
//! | pointer \| 0b010      | estimated: [`Registers`], HLL P=12, 6-bit registers                | 3072 B    |
//!
//! Hashes are canonicalised with `hash | 1` everywhere, so one value fits the word with its tag. That costs one of
//! the 64 hash bits: two values collide with probability 2^-63 instead of 2^-64, and the HLL rank sees 51 random bits
//! instead of 52 (see [`super::hll`]): irrelevant below 2^50 distinct values.
//!
//! The exact array grows by half (2, 3, 4, 6, 9, ... , 316, 383) and is kept sorted, searched from where a uniform hash
//! would sit; it stops at [`MAX_EXACT`] = 383 hashes, where header plus hashes fill exactly the 3072 bytes of the
//! registers. The next distinct value converts it to registers fed from the stored hashes, so the counter never
//! holds more than 3 KiB.
//!
//! Why this is sound (the unsafe code is in the `word` section below and nowhere else):
//! - Ownership: the word owns its block exactly as a `Box` would. Every block is created by `Box::into_raw` in
//!   [`Compact::from_owned`] and released only by `Box::from_raw` in [`Compact::take`], which first nulls the word,
//!   so a block is freed once (Drop calls `take`) and never used after. `Clone` copies the block (no sharing).
//! - Provenance: the word is a `*mut u64`, not an integer, so pointers keep their provenance (strict-provenance
//!   APIs: `map_addr`, `without_provenance_mut`); inline hashes are pointers without provenance and are never
//!   dereferenced, because an odd address is never decoded as a block.
//! - Layout: an exact block is a `Box<[u64]>` of `cap + 1` words whose header records `cap`, so the fat pointer is
//!   rebuilt with the length it was allocated with. Registers are `#[repr(align(8))]`.
//! - Aliasing: `&self` hands out shared views only, `&mut self` mutable views only, both tied to the borrow.
//! - Send/Sync: the word is a uniquely owned box; the referents are plain integers.

use super::hll::{self, Registers};
use super::{DistinctCounter, Estimate};
use std::fmt;
use std::ptr;

#[cfg(not(target_pointer_width = "64"))]
compile_error!(
    "sketch::Compact stores a 64-bit hash in a pointer-sized word and needs a 64-bit target"
);

/// Most hashes the exact array holds: header + 383 hashes = 3072 bytes, the size of the registers.
pub const MAX_EXACT: usize = hll::BYTES / 8 - 1;

/// First capacity of the exact array (it is created holding two hashes).
const FIRST_CAP: usize = 2;

const TAG_MASK: usize = 0b111;
const TAG_HLL: usize = 0b010;

/// Exact while small, then HyperLogLog; 8 bytes, no heap for 0 or 1 values. See the module notes.
pub struct Compact {
    word: *mut u64,
}

/// The owned form of a state, used to build and tear down the word.
enum Owned {
    Empty,
    One(u64),
    Array(Box<[u64]>),
    Hll(Box<Registers>),
}

/// What a counter holds, for saved states ([`Compact::parts`]).
#[derive(Debug, Clone, Copy)]
pub enum CompactParts<'a> {
    Empty,
    /// One value's hash (odd).
    One(u64),
    /// The sorted hashes of the exact array (2 to [`MAX_EXACT`]).
    Hashes(&'a [u64]),
    Registers(&'a Registers),
}

/// A borrowed view of a state.
enum View<'a> {
    Empty,
    One(u64),
    /// The stored hashes (without the header).
    Array(&'a [u64]),
    Hll(&'a Registers),
}

#[inline]
fn header(len: usize, cap: usize) -> u64 {
    len as u64 | (cap as u64) << 32
}

#[inline]
fn len_cap(header: u64) -> (usize, usize) {
    ((header & 0xffff_ffff) as usize, (header >> 32) as usize)
}

/// A new exact block with capacity `cap` holding `hashes`.
fn array_block(cap: usize, hashes: &[u64]) -> Box<[u64]> {
    debug_assert!(hashes.len() <= cap && cap <= MAX_EXACT);
    let mut block = vec![0u64; cap + 1].into_boxed_slice();
    block[0] = header(hashes.len(), cap);
    block[1..=hashes.len()].copy_from_slice(hashes);
    block
}

/// Where `h` is in `hashes` (`Ok`), or where it would go (`Err`), as `binary_search` answers.
///
/// The hashes are sorted and uniform, so `h` sits near `len * h / 2^64`: the search starts there and walks, about
/// sqrt(len) / 2 steps on one or two adjacent cache lines. A binary search of a few hundred hashes touches a new
/// line at each of its first steps, and each is a miss that waits for the previous one (the engine prefetches
/// only the block's first line). Hashes chosen to crowd one end make the walk longer, never wrong, and it stays
/// within the 383 hashes of an array.
#[inline]
fn locate(hashes: &[u64], h: u64) -> Result<usize, usize> {
    let n = hashes.len();
    if n == 0 {
        return Err(0);
    }
    // In 0..n, since h < 2^64.
    let mut i = ((u128::from(h) * n as u128) >> 64) as usize;
    if hashes[i] < h {
        i += 1;
        while i < n && hashes[i] < h {
            i += 1;
        }
    } else {
        while i > 0 && hashes[i - 1] >= h {
            i -= 1;
        }
    }
    if i < n && hashes[i] == h {
        Ok(i)
    } else {
        Err(i)
    }
}

// ---- word: the only unsafe code of the module ------------------------------------------------------------------

// SAFETY: `Compact` uniquely owns its block like a `Box<[u64]>` / `Box<Registers>`, which are Send and Sync.
unsafe impl Send for Compact {}
// SAFETY: as above; shared access only reads.
unsafe impl Sync for Compact {}

impl Compact {
    /// Encode an owned state into the word.
    fn from_owned(state: Owned) -> Self {
        let word = match state {
            Owned::Empty => ptr::null_mut(),
            Owned::One(h) => {
                debug_assert!(h & 1 == 1, "inline hashes are odd");
                ptr::without_provenance_mut(h as usize)
            }
            Owned::Array(block) => {
                debug_assert!(block.len() >= 2 && len_cap(block[0]).1 == block.len() - 1);
                let p = Box::into_raw(block).cast::<u64>();
                debug_assert!(p.addr() & TAG_MASK == 0);
                p
            }
            Owned::Hll(regs) => {
                let p = Box::into_raw(regs).cast::<u64>();
                debug_assert!(p.addr() & TAG_MASK == 0);
                p.map_addr(|a| a | TAG_HLL)
            }
        };
        Compact { word }
    }

    /// Move the state out, leaving the counter empty.
    fn take(&mut self) -> Owned {
        let word = std::mem::replace(&mut self.word, ptr::null_mut());
        let addr = word.addr();
        if addr == 0 {
            Owned::Empty
        } else if addr & 1 == 1 {
            Owned::One(addr as u64)
        } else if addr & TAG_MASK == TAG_HLL {
            // SAFETY: made by `Box::into_raw(Box<Registers>)` in `from_owned`, tag removed; the word was nulled, so
            // this box is the block's only owner.
            Owned::Hll(unsafe {
                Box::from_raw(word.map_addr(|a| a & !TAG_MASK).cast::<Registers>())
            })
        } else {
            // SAFETY: made by `Box::into_raw(Box<[u64]>)` of `cap + 1` words; the header (word 0) records `cap`.
            unsafe {
                let (_, cap) = len_cap(*word);
                Owned::Array(Box::from_raw(ptr::slice_from_raw_parts_mut(word, cap + 1)))
            }
        }
    }

    /// The whole exact block (header included), if in exact-array state.
    #[inline]
    fn block(&self) -> Option<&[u64]> {
        let addr = self.word.addr();
        if addr == 0 || addr & TAG_MASK != 0 {
            return None;
        }
        // SAFETY: an untagged non-null word is a live `Box<[u64]>` of `cap + 1` words (see `take`), borrowed
        // shared for the lifetime of `&self`.
        unsafe {
            let (_, cap) = len_cap(*self.word);
            Some(&*ptr::slice_from_raw_parts(self.word, cap + 1))
        }
    }

    /// Mutable form of [`Self::block`].
    #[inline]
    fn block_mut(&mut self) -> Option<&mut [u64]> {
        let addr = self.word.addr();
        if addr == 0 || addr & TAG_MASK != 0 {
            return None;
        }
        // SAFETY: as in `block`; `&mut self` makes the borrow unique.
        unsafe {
            let (_, cap) = len_cap(*self.word);
            Some(&mut *ptr::slice_from_raw_parts_mut(self.word, cap + 1))
        }
    }

    /// The registers, if in HLL state.
    #[inline]
    fn registers(&self) -> Option<&Registers> {
        if self.word.addr() & TAG_MASK != TAG_HLL {
            return None;
        }
        // SAFETY: a word tagged 0b010 is a live `Box<Registers>` with the tag added (see `from_owned`).
        Some(unsafe { &*self.word.map_addr(|a| a & !TAG_MASK).cast::<Registers>() })
    }

    /// Mutable form of [`Self::registers`].
    #[inline]
    fn registers_mut(&mut self) -> Option<&mut Registers> {
        if self.word.addr() & TAG_MASK != TAG_HLL {
            return None;
        }
        // SAFETY: as in `registers`; `&mut self` makes the borrow unique.
        Some(unsafe { &mut *self.word.map_addr(|a| a & !TAG_MASK).cast::<Registers>() })
    }
}

// ---- safe code from here on -------------------------------------------------------------------------------------

impl Drop for Compact {
    fn drop(&mut self) {
        drop(self.take());
    }
}

impl Default for Compact {
    fn default() -> Self {
        Compact::from_owned(Owned::Empty)
    }
}

impl Clone for Compact {
    fn clone(&self) -> Self {
        Compact::from_owned(match self.view() {
            View::Empty => Owned::Empty,
            View::One(h) => Owned::One(h),
            View::Array(_) => Owned::Array(self.block().map(Box::from).unwrap_or_default()),
            View::Hll(r) => Owned::Hll(Box::new(r.clone())),
        })
    }
}

impl fmt::Debug for Compact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.view() {
            View::Empty => f.write_str("Compact::Empty"),
            View::One(h) => write!(f, "Compact::One({h:#x})"),
            View::Array(a) => write!(f, "Compact::Exact(len {})", a.len()),
            View::Hll(r) => write!(f, "Compact::Hll(estimate {:.1})", r.estimate()),
        }
    }
}

impl Compact {
    fn view(&self) -> View<'_> {
        let addr = self.word.addr();
        if addr == 0 {
            View::Empty
        } else if addr & 1 == 1 {
            View::One(addr as u64)
        } else if let Some(r) = self.registers() {
            View::Hll(r)
        } else if let Some(block) = self.block() {
            let (len, _) = len_cap(block[0]);
            View::Array(&block[1..=len])
        } else {
            unreachable!("a non-null even word is a block or registers")
        }
    }

    /// Start loading the heap block, if any: the engine calls this a few updates ahead, so the miss on a
    /// host's array overlaps with other work instead of stalling the insert.
    #[inline]
    pub fn prefetch_block(&self) {
        let addr = self.word.addr();
        if addr != 0 && addr & 1 == 0 {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: a prefetch never faults and reads nothing into the program; the address is our block's.
            unsafe {
                std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                    self.word.map_addr(|a| a & !TAG_MASK) as *const i8,
                );
            }
        }
    }

    /// The state as saved states write it: nothing, one hash, the sorted hashes, or the registers.
    pub fn parts(&self) -> CompactParts<'_> {
        match self.view() {
            View::Empty => CompactParts::Empty,
            View::One(h) => CompactParts::One(h),
            View::Array(a) => CompactParts::Hashes(a),
            View::Hll(r) => CompactParts::Registers(r),
        }
    }

    /// A counter in the HyperLogLog state with these registers.
    pub fn from_registers(regs: Box<Registers>) -> Compact {
        Compact::from_owned(Owned::Hll(regs))
    }

    /// True while the count is exact (not yet converted to HyperLogLog).
    pub fn is_exact(&self) -> bool {
        self.registers().is_none()
    }

    /// Add a hash (any 64-bit hash; it is made odd here).
    #[inline]
    pub fn insert_hash(&mut self, hash: u64) {
        let h = hash | 1;
        let addr = self.word.addr();
        if addr & 1 == 1 {
            if addr as u64 != h {
                let (a, b) = (addr as u64, h);
                let pair = if a < b { [a, b] } else { [b, a] };
                *self = Compact::from_owned(Owned::Array(array_block(FIRST_CAP, &pair)));
            }
        } else if addr == 0 {
            *self = Compact::from_owned(Owned::One(h));
        } else if let Some(regs) = self.registers_mut() {
            regs.insert(h);
        } else {
            self.array_insert(h);
        }
    }

    /// Insert into the exact array: append, grow, or convert to registers.
    /// The exact array is kept sorted: a repeated value (most inserts: a host talks to the same peers again and
    /// again) costs a search ([`locate`]), not a scan of up to 383 hashes; a new value shifts at most 3 KiB.
    fn array_insert(&mut self, h: u64) {
        let Some(block) = self.block_mut() else {
            return;
        };
        let (len, cap) = len_cap(block[0]);
        let pos = match locate(&block[1..=len], h) {
            Ok(_) => return,
            Err(pos) => pos,
        };
        if len < cap {
            block.copy_within(1 + pos..1 + len, 2 + pos);
            block[1 + pos] = h;
            block[0] = header(len + 1, cap);
            return;
        }
        let hashes = &block[1..=len];
        let next = if cap < MAX_EXACT {
            let mut grown = array_block((cap + cap / 2).min(MAX_EXACT), &hashes[..pos]);
            grown[1 + pos] = h;
            grown[2 + pos..2 + len].copy_from_slice(&hashes[pos..]);
            grown[0] = header(len + 1, (cap + cap / 2).min(MAX_EXACT));
            Owned::Array(grown)
        } else {
            let mut regs = Registers::boxed();
            for &x in hashes {
                regs.insert(x);
            }
            regs.insert(h);
            Owned::Hll(regs)
        };
        *self = Compact::from_owned(next);
    }

    /// Heap bytes for a counter of `n` distinct values inserted one by one (the growth schedule).
    pub fn heap_bytes_for(n: usize) -> usize {
        match n {
            0 | 1 => 0,
            _ if n > MAX_EXACT => hll::BYTES,
            _ => {
                let mut cap = FIRST_CAP;
                while cap < n {
                    cap = (cap + cap / 2).min(MAX_EXACT);
                }
                8 * (cap + 1)
            }
        }
    }
}

impl DistinctCounter for Compact {
    const NAME: &'static str = "compact";

    #[inline]
    fn insert(&mut self, hash: u64, _value: u128) {
        self.insert_hash(hash);
    }

    /// Only a change of form (a first block, a larger one, registers) allocates, and each moves the word: the
    /// common insert looks at the heap once, or not at all while the counter is inline.
    #[inline]
    fn insert_grown(&mut self, hash: u64, _value: u128) -> usize {
        let word = self.word.addr();
        if word & 1 == 1 || word == 0 {
            self.insert_hash(hash);
            return self.heap_bytes();
        }
        let before = self.heap_bytes();
        self.insert_hash(hash);
        if self.word.addr() == word {
            0
        } else {
            self.heap_bytes().saturating_sub(before)
        }
    }

    #[inline]
    fn prefetch(&self) {
        self.prefetch_block();
    }

    fn merge(&mut self, other: &Self) {
        match other.view() {
            View::Empty => {}
            View::One(h) => self.insert_hash(h),
            View::Array(hashes) => {
                for &h in hashes {
                    self.insert_hash(h);
                }
            }
            View::Hll(theirs) => {
                if let Some(mine) = self.registers_mut() {
                    mine.merge(theirs);
                    return;
                }
                let mut regs = Box::new(theirs.clone());
                match self.view() {
                    View::One(h) => regs.insert(h),
                    View::Array(hashes) => hashes.iter().for_each(|&h| regs.insert(h)),
                    View::Empty | View::Hll(_) => {}
                }
                *self = Compact::from_owned(Owned::Hll(regs));
            }
        }
    }

    fn estimate(&mut self) -> Estimate {
        match self.view() {
            View::Empty => Estimate::exact(0),
            View::One(_) => Estimate::exact(1),
            View::Array(hashes) => Estimate::exact(hashes.len() as u64),
            View::Hll(r) => Estimate {
                value: r.estimate().round() as u64,
                exact: false,
                rel_std_error: hll::REL_STD_ERROR,
            },
        }
    }

    #[inline]
    fn known_count(&self) -> Option<u64> {
        match self.view() {
            View::Empty => Some(0),
            View::One(_) => Some(1),
            View::Array(hashes) => Some(hashes.len() as u64),
            View::Hll(_) => None,
        }
    }

    fn heap_bytes(&self) -> usize {
        match self.view() {
            View::Empty | View::One(_) => 0,
            View::Array(_) => self.block().map_or(0, std::mem::size_of_val),
            View::Hll(r) => std::mem::size_of_val(r),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash128;

    /// What `insert_grown` says the heap grew by adds up to the heap the counter holds, through every form.
    #[test]
    fn insert_grown_adds_up_to_the_heap() {
        let mut c = Compact::default();
        let mut grown = 0;
        for i in 0..20_000u128 {
            // Repeats as well as new values, as hosts send.
            let v = i / 3;
            grown += c.insert_grown(hash128(v), v);
            assert_eq!(grown, c.heap_bytes(), "after {i}");
        }
    }

    fn filled(seed: u64, n: u64) -> Compact {
        let mut c = Compact::default();
        for i in 0..n {
            let v = u128::from(seed) << 64 | u128::from(i);
            c.insert(hash128(v), v);
        }
        c
    }

    #[test]
    fn is_one_word() {
        assert_eq!(std::mem::size_of::<Compact>(), 8);
        assert_eq!(std::mem::align_of::<Registers>(), 8);
        assert_eq!(MAX_EXACT, 383);
    }

    #[test]
    fn empty_and_single_allocate_nothing() {
        let mut c = Compact::default();
        assert_eq!((c.heap_bytes(), c.estimate()), (0, Estimate::exact(0)));
        c.insert(hash128(7), 7);
        c.insert(hash128(7), 7);
        assert_eq!((c.heap_bytes(), c.estimate()), (0, Estimate::exact(1)));
        // A hash that is already odd and one that is even are both stored inline.
        let mut d = Compact::default();
        d.insert_hash(2);
        assert_eq!(d.estimate(), Estimate::exact(1));
        d.insert_hash(3); // same canonical hash as 2
        assert_eq!(d.estimate(), Estimate::exact(1));
    }

    #[test]
    fn exact_through_the_switch_point_then_estimated() {
        let mut c = Compact::default();
        for n in 1..=MAX_EXACT as u64 {
            let v = 0xabc0_0000 + u128::from(n);
            c.insert(hash128(v), v);
            c.insert(hash128(v), v); // duplicates never count
            let e = c.estimate();
            assert_eq!(e, Estimate::exact(n), "at {n}");
            assert_eq!(
                c.heap_bytes(),
                Compact::heap_bytes_for(n as usize),
                "at {n}"
            );
            assert!(c.heap_bytes() <= hll::BYTES);
        }
        let v = 0xabc0_0000 + MAX_EXACT as u128 + 1;
        c.insert(hash128(v), v);
        let e = c.estimate();
        assert!(!e.exact && !c.is_exact());
        assert_eq!(e.rel_std_error, 1.04 / 64.0);
        assert_eq!(c.heap_bytes(), hll::BYTES);
        // The registers were fed every stored hash: the estimate is near 384 (small-range error is far below 1.6 %).
        let err = (e.value as f64 - 384.0).abs() / 384.0;
        assert!(
            err < 4.0 * hll::REL_STD_ERROR,
            "estimate {} for 384",
            e.value
        );
    }

    #[test]
    fn locate_answers_as_binary_search_does() {
        // Uniform hashes (the real case) and hashes crowded at either end, probed at random, at every stored hash
        // and just after each.
        let mut state = 0x1234_5678_u64;
        let mut next = || {
            state = crate::hash::fmix64(state.wrapping_add(1));
            state
        };
        for n in [0usize, 1, 2, 3, 7, 8, 50, 383] {
            for shape in 0..3 {
                let mut v: Vec<u64> = (0..n)
                    .map(|_| match shape {
                        0 => next() | 1,
                        1 => (next() >> 40) | 1,
                        _ => !(next() >> 40),
                    })
                    .collect();
                v.sort_unstable();
                v.dedup();
                let mut probes: Vec<u64> = (0..200).map(|_| next()).collect();
                probes.extend(v.iter().copied());
                probes.extend(v.iter().map(|x| x.wrapping_add(1)));
                probes.extend([0, 1, u64::MAX]);
                for h in probes {
                    assert_eq!(
                        locate(&v, h),
                        v.binary_search(&h),
                        "n={n} shape={shape} h={h:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn growth_schedule_stays_under_the_registers() {
        let mut caps = vec![];
        let mut cap = FIRST_CAP;
        while cap < MAX_EXACT {
            caps.push(cap);
            cap = (cap + cap / 2).min(MAX_EXACT);
        }
        assert_eq!(caps.first(), Some(&2));
        assert_eq!(cap, MAX_EXACT);
        assert_eq!(8 * (MAX_EXACT + 1), hll::BYTES);
    }

    #[test]
    fn clone_is_independent_in_every_state() {
        for n in [0, 1, 2, 50, MAX_EXACT as u64, 5000] {
            let original = filled(1, n);
            let mut copy = original.clone();
            assert_eq!(copy.heap_bytes(), original.heap_bytes());
            let mut orig = original;
            let before = orig.estimate();
            assert_eq!(copy.estimate(), before, "n={n}");
            for i in 0..1000u128 {
                copy.insert(hash128(i << 100), i << 100);
            }
            assert_eq!(
                orig.estimate(),
                before,
                "n={n}: the original changed with its clone"
            );
            assert!(copy.estimate().value > before.value);
            drop(copy);
            assert_eq!(orig.estimate(), before);
        }
    }

    #[test]
    fn merge_mixes_states() {
        // Every pair of states, against the same values inserted sequentially.
        // Under miri (the interpreter checks the unsafe word handling) only the state boundaries, to keep it quick.
        let sizes: &[u64] = if cfg!(miri) {
            &[0, 1, 2, 384]
        } else {
            &[0, 1, 3, 200, 383, 384, 3000]
        };
        for &a in sizes {
            for &b in sizes {
                let mut left = filled(9, a);
                // Overlap half of b with a (same seed), the rest distinct.
                let right = {
                    let mut c = Compact::default();
                    for i in 0..b {
                        let v = if i % 2 == 0 {
                            u128::from(9u64) << 64 | u128::from(i)
                        } else {
                            1 << 120 | u128::from(i)
                        };
                        c.insert(hash128(v), v);
                    }
                    c
                };
                let mut seq = left.clone();
                for i in 0..b {
                    let v = if i % 2 == 0 {
                        u128::from(9u64) << 64 | u128::from(i)
                    } else {
                        1 << 120 | u128::from(i)
                    };
                    seq.insert(hash128(v), v);
                }
                left.merge(&right);
                assert_eq!(left.estimate(), seq.estimate(), "a={a} b={b}");
                assert_eq!(left.is_exact(), seq.is_exact(), "a={a} b={b}");
            }
        }
    }
}
