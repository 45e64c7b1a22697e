//! Findings' distinct counts as Apache DataSketches HLL sketches (`--export-sketches`), so Spark
//! (`hll_union_agg`, `hll_sketch_estimate`), Druid (`HLLSketchMerge`) or PostgreSQL's datasketches extension can
//! merge them with sketches of their own.
//!
//! The engine's counters hold 64-bit hashes of its own, which no other tool computes; so each sketch is built
//! from the values themselves, which the verify pass holds for every candidate (exactly, up to
//! [`crate::engine::verify::EXACT_LIMIT`] per key). The bytes given to the sketch's `update` are those other tools
//! hash for the same column, so sketches built elsewhere from the same flows estimate the same and union exactly:
//!
//! - an address (`distinct dst`, `src`, `peer`): its text, as UTF-8 bytes, as `update(String)` hashes it in Java,
//!   C++ and Rust and as Spark, Druid and PostgreSQL hash a string column: `10.0.0.1`, IPv6 in RFC 5952 form
//!   (`2001:db8::1`), an IPv4-mapped address as IPv4. A count of networks (`distinct dst/24`) hashes the network
//!   with its length: `10.0.1.0/24`.
//! - a port (`distinct dport`, `sport`): the port as a 64-bit integer (8 bytes, little-endian), as Java's
//!   `update(long)`, C++'s `update(uint16_t)` (sign-extended) and Spark's `hll_sketch_agg` over an integer column.
//!
//! Sketches are HLL_8 with lgConfigK 12 (4,096 registers, 1.6 % relative standard error, as the engine's own),
//! serialised in the DataSketches compact form (MurmurHash3 x64-128, seed 9001).

use crate::engine::KeyParts;
use crate::record::Addr;
use crate::rules::rule::Distinct;
use crate::rules::DistinctField;
use datasketches::hash::value::{raw_bytes, sign_extend};
use datasketches::hll::{HllSketch, HllType};
use serde_json::json;
use std::io::{self, Write};

/// lgConfigK of the exported sketches.
pub const LG_K: u8 = 12;
/// Their relative standard error (one sigma), 1.04 / sqrt(2^LG_K).
pub const REL_STD_ERROR: f64 = 1.04 / 64.0;

/// One finding's distinct values as a DataSketches HLL sketch.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportedSketch {
    pub rule: String,
    pub key: KeyParts,
    /// The key as reports print it.
    pub key_text: String,
    /// The finding's count.
    pub count: u64,
    /// What was hashed: `address text`, `network text` or `port as i64`.
    pub hashed: &'static str,
    /// The serialised sketch.
    pub bytes: Vec<u8>,
}

/// What [`hash_value`] feeds the sketch for a count of `d`.
pub fn hashed(d: Distinct) -> &'static str {
    match d.field {
        DistinctField::Sport | DistinctField::Dport => "port as i64",
        _ if d.prefix.is_whole() => "address text",
        _ => "network text",
    }
}

/// The text an address value is hashed as (see the module notes).
pub fn address_text(d: Distinct, v: u128) -> String {
    let a = Addr(v);
    if d.prefix.is_whole() {
        return a.to_string();
    }
    let len = match a.to_ip() {
        std::net::IpAddr::V4(_) => d.prefix.v4,
        std::net::IpAddr::V6(_) => d.prefix.v6,
    };
    format!("{a}/{len}")
}

/// Add one distinct value of a count of `d` to `sketch`, as other tools hash it.
pub fn hash_value(sketch: &mut HllSketch, d: Distinct, v: u128) {
    match d.field {
        DistinctField::Sport | DistinctField::Dport => {
            sketch.update(sign_extend::from_u16(v as u16));
        }
        _ => sketch.update(raw_bytes::from_str(&address_text(d, v))),
    }
}

/// A sketch of `values` (the distinct values of a count of `d`), serialised. Values go in sorted: a DataSketches
/// HLL also keeps an estimator state (HIP) that depends on the order of updates, so sorting makes the bytes the
/// same whichever pass, thread or merge collected the values.
pub fn sketch_of(d: Distinct, values: impl IntoIterator<Item = u128>) -> Vec<u8> {
    let mut s = HllSketch::new(LG_K, HllType::Hll8).expect("lgConfigK 12 is valid");
    let mut values: Vec<u128> = values.into_iter().collect();
    values.sort_unstable();
    values.dedup();
    for v in values {
        hash_value(&mut s, d, v);
    }
    s.serialize()
}

/// The estimate of a serialised sketch (for tests and checks).
pub fn estimate(bytes: &[u8]) -> Option<f64> {
    HllSketch::deserialize(bytes).ok().map(|s| s.estimate())
}

/// Standard base64 (RFC 4648, with padding), as Spark's `unbase64`, Druid and PostgreSQL's `decode(.., 'base64')`
/// read it.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= c.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Write sketches as JSON lines, one per finding: `rule`, `key`, `count`, `hashed`, `lg_k`, `hll_type`,
/// `estimate` and `sketch` (base64). docs/STATE.md says how Spark, Druid and PostgreSQL read them.
pub fn write_json_lines(out: &mut dyn Write, sketches: &[ExportedSketch]) -> io::Result<()> {
    for s in sketches {
        let line = json!({
            "rule": s.rule,
            "key": s.key_text,
            "count": s.count,
            "hashed": s.hashed,
            "lg_k": LG_K,
            "hll_type": "HLL_8",
            "estimate": estimate(&s.bytes).map(|e| (e * 10.0).round() / 10.0),
            "sketch": base64(&s.bytes),
        });
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    /// Sketches of addresses and ports estimate within their error, and the same values hashed elsewhere in the
    /// documented way union into the same sketch.
    #[test]
    fn sketches_estimate_within_their_error_and_union_with_others() {
        let d: Distinct = DistinctField::Dst.into();
        let values: Vec<u128> = (0..5_000u32).map(|i| Addr::v4(0x0a00_0000 | i).0).collect();
        let bytes = sketch_of(d, values.iter().copied());
        let e = estimate(&bytes).unwrap();
        assert!((e - 5_000.0).abs() < 5_000.0 * 4.0 * REL_STD_ERROR, "{e}");
        // Another tool hashing the text of the same addresses builds the same sketch.
        let mut other = HllSketch::new(LG_K, HllType::Hll8).unwrap();
        for i in 0..5_000u32 {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 | i).to_string();
            other.update(raw_bytes::from_str(&ip));
        }
        assert_eq!(other.serialize(), bytes);
        let ports: Distinct = DistinctField::Dport.into();
        let p = sketch_of(ports, (1..=300u128).chain(1..=300));
        assert!((estimate(&p).unwrap() - 300.0).abs() < 300.0 * 4.0 * REL_STD_ERROR);
        assert_eq!(hashed(ports), "port as i64");
        assert_eq!(address_text(d, Addr::v4(0x0a00_0001).0), "10.0.0.1");
    }
}
