//! Bounds-checked little-endian reads: `None` instead of a panic when the slice is too short.

#[inline(always)]
pub fn le_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

#[inline(always)]
pub fn le_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

#[inline(always)]
pub fn le_u64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// Reads from a slice already checked to hold `at + N` bytes; a short slice reads as zeros rather than panicking.
#[inline(always)]
pub fn u16_at(b: &[u8], at: usize) -> u16 {
    le_u16(b, at).unwrap_or(0)
}

#[inline(always)]
pub fn u32_at(b: &[u8], at: usize) -> u32 {
    le_u32(b, at).unwrap_or(0)
}

#[inline(always)]
pub fn u64_at(b: &[u8], at: usize) -> u64 {
    le_u64(b, at).unwrap_or(0)
}

#[inline(always)]
pub fn u8_at(b: &[u8], at: usize) -> u8 {
    b.get(at).copied().unwrap_or(0)
}

/// nfdump stores an IPv6 address as two host-order u64 halves, the high half first.
#[inline(always)]
pub fn ipv6_at(b: &[u8], at: usize) -> u128 {
    (u128::from(u64_at(b, at)) << 64) | u128::from(u64_at(b, at + 8))
}
