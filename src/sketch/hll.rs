//! Dense HyperLogLog registers for [`super::Compact`]: P=12 (4096 registers), 6 bits each, packed four to three
//! bytes (3 KiB), estimated with Ertl's improved estimator.
//!
//! Hash bits: the top [`P`] bits pick the register; the rank is 1 + the number of leading zeros of the remaining
//! 52 bits. `Compact` forces the lowest hash bit to 1 (it is its inline tag), so the rank sees 51 random bits
//! followed by a 1: ranks are 1..=52, which is exactly Ertl's model with q = 51 (register value q+1 means "all q bits
//! zero"). Six bits hold up to 63, so no clamping is ever needed.
//!
//! Reference: Otmar Ertl, "New cardinality estimation algorithms for HyperLogLog sketches", 2017 (arXiv:1702.01284),
//! algorithm 6 ("improved raw estimator"): no empirical bias tables, no switch to linear counting, nearly unbiased
//! over the whole range.

/// Index bits.
pub const P: u32 = 12;
/// Number of registers.
pub const M: usize = 1 << P;
/// Random rank bits per hash (64 - P - 1: the lowest bit is the forced 1).
pub const Q: u32 = 64 - P - 1;
/// Bytes of packed registers.
pub const BYTES: usize = M * 6 / 8;
/// One-sigma relative standard error of the estimate, 1.04 / sqrt(m).
pub const REL_STD_ERROR: f64 = 1.04 / 64.0;

/// The registers. 8-aligned so that a pointer to them has three free low bits for `Compact`'s tag.
#[repr(C, align(8))]
#[derive(Clone, PartialEq, Eq)]
pub struct Registers {
    bytes: [u8; BYTES],
}

impl Default for Registers {
    fn default() -> Self {
        Registers { bytes: [0; BYTES] }
    }
}

impl std::fmt::Debug for Registers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registers")
            .field("estimate", &self.estimate())
            .finish()
    }
}

/// Register index and rank of a hash whose lowest bit is 1.
#[inline]
fn index_rank(h: u64) -> (usize, u8) {
    let index = (h >> (64 - P)) as usize;
    // `| 1` keeps the rank in 1..=Q+1 even for a hash that skipped canonicalisation.
    let rank = ((h | 1) << P).leading_zeros() + 1;
    (index, rank as u8)
}

impl Registers {
    /// Empty registers, on the heap (they are 3 KiB).
    pub fn boxed() -> Box<Self> {
        Box::default()
    }

    /// Register `i`: four registers share three bytes, register `i % 4` at bit `6 * (i % 4)`.
    #[inline]
    pub fn get(&self, i: usize) -> u8 {
        let g = (i >> 2) * 3;
        let w = u32::from(self.bytes[g])
            | u32::from(self.bytes[g + 1]) << 8
            | u32::from(self.bytes[g + 2]) << 16;
        ((w >> ((i & 3) * 6)) & 63) as u8
    }

    /// Raise register `i` to `v` if it is lower.
    #[inline]
    fn raise(&mut self, i: usize, v: u8) {
        let g = (i >> 2) * 3;
        let b = &mut self.bytes[g..g + 3];
        let w = u32::from(b[0]) | u32::from(b[1]) << 8 | u32::from(b[2]) << 16;
        let shift = (i & 3) * 6;
        if u32::from(v) > (w >> shift) & 63 {
            let w = (w & !(63 << shift)) | u32::from(v) << shift;
            b[0] = w as u8;
            b[1] = (w >> 8) as u8;
            b[2] = (w >> 16) as u8;
        }
    }

    /// The packed registers as stored (saved states write them as they are).
    pub fn as_bytes(&self) -> &[u8; BYTES] {
        &self.bytes
    }

    /// Registers from their packed bytes; `None` when a register holds a value `insert` cannot produce.
    pub fn from_bytes(bytes: &[u8; BYTES]) -> Option<Box<Registers>> {
        let r = Box::new(Registers { bytes: *bytes });
        (0..M).all(|i| r.get(i) <= Q as u8 + 1).then_some(r)
    }

    /// Add a hash (lowest bit set; see the module notes).
    #[inline]
    pub fn insert(&mut self, h: u64) {
        let (i, r) = index_rank(h);
        self.raise(i, r);
    }

    /// Register-wise maximum: the sketch of the union.
    pub fn merge(&mut self, other: &Registers) {
        for (mine, theirs) in self
            .bytes
            .chunks_exact_mut(3)
            .zip(other.bytes.chunks_exact(3))
        {
            let a = u32::from(mine[0]) | u32::from(mine[1]) << 8 | u32::from(mine[2]) << 16;
            let b = u32::from(theirs[0]) | u32::from(theirs[1]) << 8 | u32::from(theirs[2]) << 16;
            let mut w = 0;
            for shift in [0, 6, 12, 18] {
                w |= ((a >> shift) & 63).max((b >> shift) & 63) << shift;
            }
            mine[0] = w as u8;
            mine[1] = (w >> 8) as u8;
            mine[2] = (w >> 16) as u8;
        }
    }

    /// Counts of registers per value 0..=Q+1.
    fn histogram(&self) -> [u32; Q as usize + 2] {
        let mut c = [0u32; Q as usize + 2];
        for i in 0..M {
            // Values above Q+1 cannot be produced by `insert`; fold them in rather than index out of bounds.
            c[usize::from(self.get(i)).min(Q as usize + 1)] += 1;
        }
        c
    }

    /// Ertl's improved raw estimator (algorithm 6 of the paper).
    pub fn estimate(&self) -> f64 {
        let c = self.histogram();
        let m = M as f64;
        let q = Q as usize;
        let mut z = m * tau(1.0 - f64::from(c[q + 1]) / m);
        for k in (1..=q).rev() {
            z = 0.5 * (z + f64::from(c[k]));
        }
        z += m * sigma(f64::from(c[0]) / m);
        let alpha_inf = 0.5 / std::f64::consts::LN_2;
        alpha_inf * m * m / z
    }
}

/// sigma(x) = x + sum_{k>=1} x^(2^k) 2^(k-1); infinite at x = 1 (all registers zero: the estimate is 0).
fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let mut y = 1.0;
    let mut z = x;
    loop {
        x *= x;
        let previous = z;
        z += x * y;
        y += y;
        if z == previous {
            return z;
        }
    }
}

/// tau(x) = (1 - x - sum_{k>=1} (1 - x^(2^-k))^2 2^-k) / 3.
fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let mut y = 1.0;
    let mut z = 1.0 - x;
    loop {
        x = x.sqrt();
        let previous = z;
        y *= 0.5;
        z -= (1.0 - x) * (1.0 - x) * y;
        if z == previous {
            return z / 3.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_keeps_neighbours_apart() {
        let mut r = Registers::default();
        for i in 0..M {
            r.raise(i, (i % 53) as u8);
        }
        for i in 0..M {
            assert_eq!(r.get(i), (i % 53) as u8, "register {i}");
        }
        // Lower values never overwrite.
        r.raise(7, 0);
        assert_eq!(r.get(7), 7);
    }

    #[test]
    fn index_and_rank_use_disjoint_bits() {
        // Top 12 bits only move the index; the rest only move the rank.
        assert_eq!(index_rank(0xfff0_0000_0000_0001), (4095, 52));
        assert_eq!(index_rank(0x0008_0000_0000_0001), (0, 1));
        assert_eq!(index_rank(0x0000_0000_0000_1001), (0, 40));
        assert_eq!(index_rank(0x0000_0000_0000_0001), (0, (Q + 1) as u8));
    }

    #[test]
    fn empty_estimates_zero_and_merge_is_max() {
        assert_eq!(Registers::default().estimate(), 0.0);
        let mut a = Registers::default();
        let mut b = Registers::default();
        a.raise(1, 5);
        a.raise(2, 1);
        b.raise(1, 3);
        b.raise(2, 9);
        b.raise(4095, 52);
        a.merge(&b);
        assert_eq!((a.get(1), a.get(2), a.get(4095), a.get(3)), (5, 9, 52, 0));
    }

    #[test]
    fn sigma_and_tau_match_their_series() {
        // Independent evaluation of the defining series with a fixed number of terms.
        let x: f64 = 0.3;
        let s: f64 = x
            + (1..40)
                .map(|k| x.powi(1 << k.min(30)) * 2f64.powi(k - 1))
                .sum::<f64>();
        assert!((sigma(x) - s).abs() < 1e-12);
        let t = (1.0
            - x
            - (1..60)
                .map(|k| (1.0 - x.powf(2f64.powi(-k))).powi(2) * 2f64.powi(-k))
                .sum::<f64>())
            / 3.0;
        assert!((tau(x) - t).abs() < 1e-12);
    }
}
