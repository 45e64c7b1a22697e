//! Admission: a key gets a table entry only once a count-min sketch says its measure may have reached a fraction
//! `a` of the rule's threshold `T`. Most keys of real traffic stay far below every threshold (3 of the 5 million
//! sources of the 100 M-flow benchmark talk to one address), so the tables hold the keys that could be reported,
//! not the traffic, and a flood of spoofed sources costs cells that already exist instead of one entry each.
//!
//! The sketch holds, per key, an upper bound of the measure the rule has seen for it: the flows it matched (every
//! distinct peer needs a flow, so this bounds distinct counts too) or the packets or bytes of a sum. Count-min never
//! undercounts, and conservative update (raise only the cells at the minimum) keeps the bound close. A key is
//! admitted at the flow that lifts its bound to `A = ceil(a*T)`; every flow before it lifted the bound less, so the
//! table misses at most `A - 1` of the key's measure. docs/ACCURACY.md has the argument for what a scan then
//! guarantees.
//!
//! Layout: each key's cells lie in one 64-byte line (a blocked count-min), picked by the top bits of a remix of the
//! key's hash, with `ROWS` cells inside the line picked by the bits below. One cache miss per flow instead of one
//! per row, and the line is prefetched [`AHEAD`] updates before it is used, as the tables do. Cells are bytes
//! when the threshold fits in one (every built-in rule but FS8), else 16 bits; a threshold past 65,535 (a byte
//! sum) counts in units of `ceil(T / 65,535)`, rounded up per flow, which keeps the bound an upper bound.
//!
//! The cells are an anonymous map: pages no key touched cost nothing, so a small capture pays for what it uses.

use super::shard::Ref;
use super::table::CompiledRule;
use crate::record::FlowRecord;
use crate::rules::CountSpec;

/// How many updates ahead a line is prefetched.
const AHEAD: usize = 32;
/// Cells per key inside its line.
pub const ROWS: usize = 3;
/// Bytes of a line.
const LINE: usize = 64;
/// The smallest sketch a shard gets, whatever the budget and thread count.
pub const MIN_BYTES: usize = 64 << 10;

/// A cell type: a saturating counter.
trait Cell: Copy + Ord + Default {
    const MAX: u64;
    fn get(self) -> u64;
    fn set(v: u64) -> Self;
}

impl Cell for u8 {
    const MAX: u64 = u8::MAX as u64;
    #[inline]
    fn get(self) -> u64 {
        self as u64
    }
    #[inline]
    fn set(v: u64) -> Self {
        v.min(<Self as Cell>::MAX) as u8
    }
}

impl Cell for u16 {
    const MAX: u64 = u16::MAX as u64;
    #[inline]
    fn get(self) -> u64 {
        self as u64
    }
    #[inline]
    fn set(v: u64) -> Self {
        v.min(<Self as Cell>::MAX) as u16
    }
}

/// The measure a rule's flow adds to its key's bound.
#[inline]
pub fn measure(count: CountSpec, rec: &FlowRecord) -> u64 {
    match count {
        CountSpec::Packets => rec.packets,
        CountSpec::Bytes => rec.bytes,
        // A flow adds one to a flow count, and at most one distinct value.
        CountSpec::Flows | CountSpec::Distinct(_) => 1,
    }
}

/// The admission threshold `A = ceil(a*T)` in the measure's units; 0 or 1 means every key is admitted at once.
pub fn admit_at(fraction: f64, above: u64) -> u64 {
    (fraction * above as f64).ceil() as u64
}

/// One rule's admission sketch in one shard.
pub struct Admission {
    map: memmap2::MmapMut,
    /// Where the cells start in the map: the first 2 MiB boundary, so the kernel can back them with huge pages.
    start: usize,
    bytes: usize,
    /// 64-byte lines: any number, picked by the top 32 bits of the remixed hash times `lines` (so the budget is
    /// used whole, not rounded down to a power of two); the cells within the line by the bits below.
    lines: u64,
    /// 16-bit cells instead of bytes.
    wide: bool,
    /// Measure per cell step, as a power of two (0 unless the threshold is past what a cell holds).
    unit_shift: u32,
    /// The rule's threshold T, and the admission threshold A in measure units and in cell steps.
    above: u64,
    at: u64,
    at_cells: u64,
    /// A when the sketch was made, and how many times it has been doubled since.
    first_at: u64,
    raises: u32,
}

impl Admission {
    /// A sketch of `bytes` (a multiple of 64, at least [`MIN_BYTES`], below 256 GiB) admitting keys of a rule with threshold `above`
    /// at `at` (`A`, in the measure's units, at least 2 and at most `above`).
    pub fn new(bytes: usize, above: u64, at: u64) -> std::io::Result<Admission> {
        debug_assert!(
            bytes.is_multiple_of(LINE)
                && bytes >= MIN_BYTES
                && bytes / LINE <= u32::MAX as usize
                && at >= 2
        );
        let wide = above > u8::MAX as u64;
        let cell_max = if wide { u16::MAX } else { u8::MAX as u16 } as u64;
        let unit_shift = above
            .div_ceil(cell_max)
            .max(1)
            .next_power_of_two()
            .trailing_zeros();
        // A random line per flow: 4 KiB pages would add a TLB miss to most of them. Mapping a huge page more than
        // needed lets the cells start on a huge-page boundary (the extra address space is never touched).
        const HUGE: usize = 2 << 20;
        let map = memmap2::MmapMut::map_anon(bytes + HUGE)?;
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        let start = (HUGE - map.as_ptr() as usize % HUGE) % HUGE;
        let lines = bytes / LINE;
        let mut a = Admission {
            map,
            start,
            bytes,
            lines: lines as u64,
            wide,
            unit_shift,
            above,
            at: 0,
            at_cells: 0,
            first_at: 0,
            raises: 0,
        };
        a.set_at(at);
        a.first_at = a.at;
        Ok(a)
    }

    fn set_at(&mut self, at: u64) {
        self.at = at.min(self.above.max(2));
        self.at_cells = self.at.div_ceil(1 << self.unit_shift);
    }

    /// The cells as bytes (one or two per cell: [`Self::layout`]).
    pub fn cells(&self) -> &[u8] {
        &self.map[self.start..self.start + self.bytes]
    }

    /// The admission threshold `A` in force, in the measure's units.
    pub fn at(&self) -> u64 {
        self.at
    }

    /// Double `A` (up to `T`), so fewer new keys are admitted; false when it is already `T`.
    pub fn raise(&mut self) -> bool {
        let before = self.at;
        self.set_at(self.at.saturating_mul(2));
        let raised = self.at != before;
        self.raises += raised as u32;
        raised
    }

    /// Times `A` was doubled: the admission epoch of keys admitted from now on.
    pub fn epoch(&self) -> u32 {
        self.raises
    }

    /// `A` in admission epoch `epoch` (`max_epoch`: a stamp that saturated, so the largest `A` of all).
    pub fn at_epoch(&self, epoch: u32, max_epoch: u32) -> u64 {
        if epoch >= max_epoch {
            return self.at;
        }
        let mut at = self.first_at;
        for _ in 0..epoch {
            at = at.saturating_mul(2).min(self.above.max(2));
        }
        at.min(self.at)
    }

    /// What decides where a key's cells are and what they count: two sketches of the same layout add up
    /// cell by cell (saved states merge so).
    pub fn layout(&self) -> Layout {
        Layout {
            bytes: self.bytes,
            wide: self.wide,
            unit_shift: self.unit_shift,
            above: self.above,
        }
    }

    /// `A` when the sketch was made, and how many times it was doubled.
    pub fn first_at(&self) -> (u64, u32) {
        (self.first_at, self.raises)
    }

    /// Bytes of the cells.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Count `refs` (all of `rule`) and append those whose bound has reached `A` to `admitted`. After `A` was
    /// raised, a key admitted under a lower `A` may have a bound below the new one: refs whose bound lies between
    /// the first `A` and the present one go to `recheck`, to be counted if their key already has an entry (an
    /// admitted key keeps counting every flow, which is what bounds what its table missed).
    pub fn admit(
        &mut self,
        rule: &CompiledRule,
        records: &[FlowRecord],
        refs: &[Ref],
        admitted: &mut Vec<Ref>,
        recheck: &mut Vec<Ref>,
    ) {
        let sum = matches!(rule.count, CountSpec::Packets | CountSpec::Bytes);
        let out = (admitted, recheck);
        match (self.wide, sum) {
            (false, false) => self.admit_cells::<u8, false>(rule, records, refs, out),
            (false, true) => self.admit_cells::<u8, true>(rule, records, refs, out),
            (true, false) => self.admit_cells::<u16, false>(rule, records, refs, out),
            (true, true) => self.admit_cells::<u16, true>(rule, records, refs, out),
        }
    }

    /// [`Self::admit`] for one cell type; `SUM` when the measure is a record's packets or bytes (else 1 a flow).
    fn admit_cells<C: Cell, const SUM: bool>(
        &mut self,
        rule: &CompiledRule,
        records: &[FlowRecord],
        refs: &[Ref],
        (admitted, recheck): (&mut Vec<Ref>, &mut Vec<Ref>),
    ) {
        let first = self.first_at.div_ceil(1 << self.unit_shift);
        let per_line = LINE / std::mem::size_of::<C>();
        let bits = per_line.trailing_zeros();
        let (lines, at) = (self.lines, self.at_cells);
        let (unit_shift, round) = (self.unit_shift, (1u64 << self.unit_shift) - 1);
        // SAFETY: `start + bytes` is inside the map (it was mapped a huge page longer than `bytes`).
        let base = unsafe { self.map.as_mut_ptr().add(self.start) };
        let line_of = |h: u64| (((h >> 32) * lines) >> 32) as usize;
        for r in refs.iter().take(AHEAD) {
            prefetch(base.wrapping_add(line_of(remix(r.hash)) * LINE));
        }
        for (j, r) in refs.iter().enumerate() {
            if let Some(next) = refs.get(j + AHEAD) {
                prefetch(base.wrapping_add(line_of(remix(next.hash)) * LINE));
            }
            let h = remix(r.hash);
            let line = line_of(h);
            // SAFETY: `line < lines` (a 32-bit fraction of `lines`), so the line lies inside the cells, which start 64-aligned (on a huge page
            // boundary) and hold plain integers for which every bit pattern is valid; `&mut self` makes the access
            // unique.
            let cells: &mut [C] = unsafe {
                std::slice::from_raw_parts_mut(base.add(line * LINE).cast::<C>(), per_line)
            };
            let mut pos = [0usize; ROWS];
            let mut low = C::set(C::MAX);
            for (k, p) in pos.iter_mut().enumerate() {
                *p = (h >> (32 - bits * (k as u32 + 1))) as usize & (per_line - 1);
                low = low.min(cells[*p]);
            }
            let w = if SUM {
                measure(rule.count, &records[r.idx as usize]).saturating_add(round) >> unit_shift
            } else {
                1
            };
            let bound = C::set(low.get().saturating_add(w));
            // Conservative update, branch-free: no cell drops, none rises past the new bound.
            for p in pos {
                cells[p] = cells[p].max(bound);
            }
            let b = bound.get();
            if b >= at {
                admitted.push(*r);
            } else if b >= first {
                recheck.push(*r);
            }
        }
    }

    /// Whether the bound of the key with hash `hash` is below the `A` in force: such a key can leave its table
    /// and be admitted again, with the same guarantee, at the flow that lifts its bound to `A` (see
    /// [`super::shard`]).
    pub fn below_at(&self, hash: u64) -> bool {
        let layout = self.layout();
        let cells = self.cells();
        let low = (layout.positions(hash).iter())
            .map(|&p| {
                if self.wide {
                    u16::from_ne_bytes([cells[2 * p], cells[2 * p + 1]]) as u64
                } else {
                    cells[p] as u64
                }
            })
            .min()
            .unwrap_or(0);
        low < self.at_cells
    }

    /// Keys that touched the sketch, by linear counting of its empty cells (each key sets `ROWS` of them);
    /// `None` when too few cells are empty to say.
    pub fn keys_estimate(&self) -> Option<f64> {
        let bytes = self.cells();
        let (cells, zero) = if self.wide {
            let c: &[u16] = bytemuck_u16(bytes);
            (c.len(), c.iter().filter(|&&x| x == 0).count())
        } else {
            (bytes.len(), bytes.iter().filter(|&&x| x == 0).count())
        };
        if zero * 200 < cells {
            return None;
        }
        let z = zero as f64 / cells as f64;
        Some(-(cells as f64 / ROWS as f64) * z.ln())
    }
}

/// The map's bytes as 16-bit cells.
fn bytemuck_u16(b: &[u8]) -> &[u16] {
    // SAFETY: the cells start 64-aligned and their length is a multiple of 64; every bit pattern is a valid u16.
    unsafe { std::slice::from_raw_parts(b.as_ptr().cast::<u16>(), b.len() / 2) }
}

/// Where a sketch's cells are and what they count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Bytes of the cells (a multiple of the 64-byte line).
    pub bytes: usize,
    /// 16-bit cells instead of bytes.
    pub wide: bool,
    /// Measure per cell step, as a power of two.
    pub unit_shift: u32,
    /// The rule's threshold the sketch was sized for.
    pub above: u64,
}

impl Layout {
    /// Cells of the sketch.
    pub fn cells(&self) -> usize {
        self.bytes / if self.wide { 2 } else { 1 }
    }

    /// The largest value a cell holds: a cell at it is saturated (its key's measure may be anything above).
    pub fn cell_max(&self) -> u64 {
        if self.wide {
            u16::MAX as u64
        } else {
            u8::MAX as u64
        }
    }

    /// The indices (in cells) of the [`ROWS`] cells of the key whose hash is `hash`: the cells
    /// [`Admission::admit`] raises for it.
    pub fn positions(&self, hash: u64) -> [usize; ROWS] {
        let lines = (self.bytes / LINE) as u64;
        let per_line = LINE / if self.wide { 2 } else { 1 };
        let bits = per_line.trailing_zeros();
        let h = remix(hash);
        let line = (((h >> 32) * lines) >> 32) as usize;
        let mut pos = [0usize; ROWS];
        for (k, p) in pos.iter_mut().enumerate() {
            *p = line * per_line + ((h >> (32 - bits * (k as u32 + 1))) as usize & (per_line - 1));
        }
        pos
    }
}

/// Bits for the sketch that routing and the tables do not decide: a shard's keys share bits of their hash, and a
/// multiply carries every input bit into the top ones.
#[inline]
fn remix(hash: u64) -> u64 {
    (hash ^ hash >> 31).wrapping_mul(0xbf58_476d_1ce4_e5b9)
}

#[inline]
fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is a hint; it never faults and reads nothing into the program, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8);
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Addr;
    use crate::rules::{DistinctField, KeySpec};

    fn rule(count: CountSpec) -> CompiledRule {
        CompiledRule::plain(KeySpec::SRC, count, 100)
    }

    /// Feed `keys` (one flow each, in order) and return, per key, the flow index at which it was admitted.
    fn run(a: &mut Admission, rule: &CompiledRule, keys: &[u32]) -> Vec<Option<usize>> {
        let records: Vec<FlowRecord> = keys
            .iter()
            .map(|&k| FlowRecord {
                src: Addr::v4(k),
                packets: 3,
                ..Default::default()
            })
            .collect();
        let refs = Ref::each_record(rule, &records);
        let (mut admitted, mut recheck) = (Vec::new(), Vec::new());
        for chunk in refs.chunks(700) {
            a.admit(rule, &records, chunk, &mut admitted, &mut recheck);
        }
        assert!(
            recheck.is_empty() || a.raises > 0,
            "only a raised A rechecks"
        );
        let max = *keys.iter().max().unwrap_or(&0) as usize;
        let mut first = vec![None; max + 1];
        for r in admitted {
            let k = keys[r.idx as usize] as usize;
            first[k].get_or_insert(r.idx as usize);
        }
        first
    }

    #[test]
    fn a_key_is_admitted_at_its_a_th_flow_when_alone() {
        let r = rule(CountSpec::Distinct(DistinctField::Dst.into()));
        let mut a = Admission::new(MIN_BYTES, 100, 10).unwrap();
        let first = run(&mut a, &r, &[7; 30]);
        assert_eq!(first[7], Some(9), "the 10th flow lifts the bound to A = 10");
    }

    /// The bound never undercounts: with many keys sharing a tiny sketch, no key is admitted later than at its
    /// A-th flow, and every flow after admission is passed on.
    #[test]
    fn admission_is_never_late() {
        let r = rule(CountSpec::Flows);
        let mut a = Admission::new(MIN_BYTES, 100, 10).unwrap();
        let mut keys = Vec::new();
        let mut rng = crate::gen::rng::Rng::new(3);
        for _ in 0..400_000 {
            keys.push(rng.zipf(200_000, 1.0) as u32);
        }
        let first = run(&mut a, &r, &keys);
        let mut seen = vec![0usize; first.len()];
        for (i, &k) in keys.iter().enumerate() {
            seen[k as usize] += 1;
            if seen[k as usize] == 10 {
                let at = first[k as usize].expect("admitted by its 10th flow");
                assert!(
                    at <= i,
                    "key {k} admitted at flow {at}, after its 10th at {i}"
                );
            }
        }
    }

    #[test]
    fn sums_count_their_quantity_and_wide_thresholds_use_units() {
        // Packets, 3 per flow, threshold 1,000,000: 16-bit cells of 16 packets each; each flow rounds up to one.
        let r = rule(CountSpec::Packets);
        let mut a = Admission::new(MIN_BYTES, 1_000_000, 30).unwrap();
        assert!(a.wide && a.unit_shift == 4 && a.at_cells == 2);
        let first = run(&mut a, &r, &[5; 4]);
        assert_eq!(
            first[5],
            Some(1),
            "two flows of 3 packets round up to 2 units = 32 >= 30"
        );
        let mut b = Admission::new(MIN_BYTES, 100, 10).unwrap();
        let first = run(&mut b, &r, &[5; 4]);
        assert_eq!(
            first[5],
            Some(3),
            "3, 6, 9, 12 packets: admitted at 12 >= 10"
        );
    }

    /// The cells `Layout::positions` names for a key are the ones admission raised: alone in a sketch, a key's
    /// flows show in exactly those cells, for byte and 16-bit cells.
    #[test]
    fn positions_name_the_cells_admission_raises() {
        for above in [100, 1_000] {
            let r = CompiledRule {
                above,
                ..rule(CountSpec::Flows)
            };
            for key in [7u32, 1_003, 40_009] {
                let mut a = Admission::new(MIN_BYTES, above, above / 10).unwrap();
                run(&mut a, &r, &[key; 5]);
                let rec = FlowRecord {
                    src: Addr::v4(key),
                    ..Default::default()
                };
                let layout = a.layout();
                let pos = layout.positions(r.key_hash(&rec, 0, 0));
                let cells: Vec<u64> = if layout.wide {
                    bytemuck_u16(a.cells()).iter().map(|&c| c as u64).collect()
                } else {
                    a.cells().iter().map(|&c| c as u64).collect()
                };
                for p in pos {
                    assert_eq!(cells[p], 5, "above {above} key {key}");
                }
                assert_eq!(cells.iter().filter(|&&c| c != 0).count(), {
                    let mut u = pos.to_vec();
                    u.sort_unstable();
                    u.dedup();
                    u.len()
                });
            }
        }
    }

    #[test]
    fn raising_stops_at_the_threshold() {
        let mut a = Admission::new(MIN_BYTES, 100, 10).unwrap();
        assert!(a.raise() && a.at() == 20);
        assert!(a.raise() && a.raise() && a.at() == 80);
        assert!(a.raise() && a.at() == 100);
        assert!(!a.raise());
    }

    #[test]
    fn keys_are_estimated_from_empty_cells() {
        let r = rule(CountSpec::Flows);
        let mut a = Admission::new(1 << 20, 100, 10).unwrap();
        let keys: Vec<u32> = (0..50_000).collect();
        run(&mut a, &r, &keys);
        let est = a.keys_estimate().unwrap();
        assert!((est - 50_000.0).abs() < 2_500.0, "{est}");
    }
}
