//! A small, fixed, seedable random number generator: the same seed gives the same capture on every machine and
//! every version of every dependency.

/// SplitMix64 (Steele, Lea, Flood 2014): passes BigCrush, one multiply-xorshift per draw.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x5851_f42d_4c95_7f2d)
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        crate::hash::fmix64(self.0)
    }

    /// Uniform in `0..n` (n > 0), by multiply-shift (Lemire); bias below 2^-32 for the sizes used here.
    #[inline]
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() >> 32) * n) >> 32
    }

    /// Uniform in [0, 1).
    #[inline]
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    #[inline]
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A heavy-tailed count >= 1: Pareto with shape `alpha`, capped at `max`.
    pub fn pareto(&mut self, alpha: f64, max: u64) -> u64 {
        let u = 1.0 - self.unit();
        let x = u.powf(-1.0 / alpha);
        (x as u64).clamp(1, max)
    }

    /// Index in `0..n` drawn with Zipf-like weights 1/(i+1)^s, by inverting the continuous approximation.
    pub fn zipf(&mut self, n: u64, s: f64) -> u64 {
        // Continuous density proportional to (x+1)^-s on [0, n), floored: index n-1 is reachable.
        let top = n.max(1) as f64 + 1.0;
        let u = self.unit();
        let i = if (s - 1.0).abs() < 1e-9 {
            top.powf(u) - 1.0
        } else {
            let a = 1.0 - s;
            ((u * (top.powf(a) - 1.0) + 1.0).powf(1.0 / a)) - 1.0
        };
        (i as u64).min(n.max(1) - 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let a: Vec<u64> = (0..5)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let b: Vec<u64> = (0..5)
            .scan(Rng::new(7), |r, _| Some(r.next_u64()))
            .collect();
        let c: Vec<u64> = (0..5)
            .scan(Rng::new(8), |r, _| Some(r.next_u64()))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn below_is_uniform_and_zipf_is_skewed() {
        let mut r = Rng::new(1);
        let mut hist = [0u32; 10];
        for _ in 0..100_000 {
            hist[r.below(10) as usize] += 1;
        }
        assert!(
            hist.iter().all(|&h| (9_400..10_600).contains(&h)),
            "{hist:?}"
        );
        let mut z = [0u32; 100];
        for _ in 0..100_000 {
            z[r.zipf(100, 1.1) as usize] += 1;
        }
        assert!(z[0] > 5 * z[20], "{:?}", &z[..25]);
        assert!(z.iter().all(|&c| c > 0));
    }
}
