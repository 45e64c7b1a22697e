//! Fixed-seed hashing shared by shard routing and the distinct counters.
//!
//! The same value must hash the same way in every worker, run and machine, or shards would disagree and merged
//! sketches would double count. `ahash` picks different code paths per CPU, so the mixers here are plain
//! multiply-xorshift functions (the xxh3/murmur3 finalisers), stable by construction and a few cycles each.

/// Seed mixed into value hashes; changing it changes every sketch ever written.
pub const SEED: u64 = 0x9e37_79b9_7f4a_7c15;

/// murmur3's 64-bit finaliser: a bijection with full avalanche.
#[inline]
pub const fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// Hash of a 128-bit value (an address, or an address packed with a port).
#[inline]
pub const fn hash128(x: u128) -> u64 {
    let lo = x as u64;
    let hi = (x >> 64) as u64;
    fmix64(lo ^ fmix64(hi ^ SEED))
}

/// Hash of a 64-bit value.
#[inline]
pub const fn hash64(x: u64) -> u64 {
    fmix64(x ^ SEED.rotate_left(17))
}

/// Combine two hashes (order matters).
#[inline]
pub const fn combine(a: u64, b: u64) -> u64 {
    fmix64(a ^ b.rotate_left(29).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// A `BuildHasher` with fixed seeds, for hash tables whose contents must not depend on the process. It is
/// zero-sized: `ahash::RandomState` is 32 bytes, and `--exact` keeps a set per key, millions of them.
#[derive(Clone, Copy, Debug, Default)]
pub struct TableHasher;

/// The digits of pi, as ahash's own defaults use them: any fixed values would do.
const TABLE_SEEDS: [u64; 4] = [
    0x243f_6a88_85a3_08d3,
    0x1319_8a2e_0370_7344,
    0xa409_3822_299f_31d0,
    0x082e_fa98_ec4e_6c89,
];

impl std::hash::BuildHasher for TableHasher {
    type Hasher = ahash::AHasher;

    #[inline]
    fn build_hasher(&self) -> ahash::AHasher {
        static STATE: std::sync::OnceLock<ahash::RandomState> = std::sync::OnceLock::new();
        STATE
            .get_or_init(|| {
                let [a, b, c, d] = TABLE_SEEDS;
                ahash::RandomState::with_seeds(a, b, c, d)
            })
            .build_hasher()
    }
}

/// FNV-1a over what is written to it: a fingerprint of a description (rules, flags) that stays the same across
/// runs, machines and builds that describe things alike.
pub struct Fingerprint(pub u64);

impl Default for Fingerprint {
    fn default() -> Self {
        Fingerprint(0xcbf2_9ce4_8422_2325)
    }
}

impl std::fmt::Write for Fingerprint {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        for &b in s.as_bytes() {
            self.0 ^= b as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_stable_across_runs() {
        // Pinned values, computed independently (a few lines of Python implementing murmur3's fmix64 and the
        // mixing above): a change here silently invalidates sketches saved or sent between machines, and shards.
        assert_eq!(fmix64(0), 0);
        assert_eq!(fmix64(1), 0xb456_bcfc_34c2_cb2c);
        // 10.0.0.128 and 2001:db8::1 as flowsketch stores them.
        assert_eq!(hash128(0xffff_0a00_0080), 0xb893_72b9_3cce_2578);
        assert_eq!(hash128(0x2001_0db8 << 96 | 1), 0xfd26_d1dd_9984_a4cf);
        assert_ne!(hash128(1 << 64), hash128(1));
    }

    #[test]
    fn the_table_hasher_is_free_to_store_and_hashes_as_the_seeded_state_did() {
        use std::hash::BuildHasher;
        assert_eq!(std::mem::size_of::<TableHasher>(), 0);
        let [a, b, c, d] = TABLE_SEEDS;
        let seeded = ahash::RandomState::with_seeds(a, b, c, d);
        for v in [0u128, 1, 0xffff_0a00_0080, u128::MAX] {
            assert_eq!(TableHasher.hash_one(v), seeded.hash_one(v));
        }
        assert_ne!(TableHasher.hash_one(1u128), TableHasher.hash_one(2u128));
    }

    #[test]
    fn low_bits_are_uniform_for_sequential_keys() {
        // Sharding uses the low bits; sequential IPv4 addresses must spread evenly.
        let mut buckets = [0u32; 16];
        for a in 0..160_000u128 {
            buckets[(hash128(0xffff_0000_0000 | a) & 15) as usize] += 1;
        }
        for b in buckets {
            assert!((9_000..11_000).contains(&b), "bucket {b}");
        }
    }
}
