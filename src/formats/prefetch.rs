//! The cache hint readers use to run ahead of the hardware prefetcher.

/// Ask for the cache line at `data[at]`. No effect past the end: a prefetch is a hint and never faults.
#[inline(always)]
pub fn prefetch(data: &[u8], at: usize) {
    prefetch_ptr(data.as_ptr().wrapping_add(at));
}

/// Ask for the cache line at `p`, whatever `p` points to (valid or not).
#[inline(always)]
pub fn prefetch_ptr<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch only hints the cache; it does not read the address into the program and cannot fault.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast())
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
