//! The memory under a slot table: an array that doubles without copying and without holding old and new at once.
//!
//! A `Vec` grows by allocating the larger array beside the old one and copying: for a moment the table needs three
//! times its old size, and every page of the new array is fresh memory the kernel must zero, though half of it is
//! about to receive the old entries. A table of millions of hosts grows a dozen times in a scan, so this was the
//! kernel's page zeroing seen in profiles (8 % of a two-rule scan, 18 % of twenty rules) and the peak of the growth.
//! Here the array is its own anonymous mapping, and growing asks the kernel to extend it (`mremap`, which moves
//! page tables, never bytes): old entries stay where they are, only the added half is new memory, and the table
//! rehashes in place ([`super::slots`]). Other systems get the copy.

use std::ops::{Deref, DerefMut};

/// `len` initialised values of `T` in an anonymous memory map.
pub struct Region<T> {
    len: usize,
    map: Option<memmap2::MmapMut>,
    _owns: std::marker::PhantomData<T>,
}

impl<T> Default for Region<T> {
    fn default() -> Self {
        Region {
            len: 0,
            map: None,
            _owns: std::marker::PhantomData,
        }
    }
}

/// Out of memory is not something a scan can go on from, as with `Vec`; say how much was asked.
fn out_of_memory(bytes: usize, e: std::io::Error) -> ! {
    panic!("cannot map {bytes} bytes for a table: {e}")
}

impl<T: Default> Region<T> {
    /// Grow to `new_len` values: the first `len` keep their place and value, the rest are `T::default()`.
    pub fn grow_to(&mut self, new_len: usize) {
        assert!(std::mem::size_of::<T>() > 0 && new_len > self.len);
        // Page alignment (of any map) is enough for every `T` a table holds.
        assert!(std::mem::align_of::<T>() <= 4096);
        let bytes = new_len
            .checked_mul(std::mem::size_of::<T>())
            .unwrap_or_else(|| panic!("a table of {new_len} entries does not fit in memory"));
        match self.map.as_mut() {
            None => {
                self.map = Some(
                    memmap2::MmapMut::map_anon(bytes).unwrap_or_else(|e| out_of_memory(bytes, e)),
                )
            }
            #[cfg(target_os = "linux")]
            Some(map) => {
                // SAFETY: an anonymous map has no file to run past, and the values are only reached through
                // `self`, which re-derives its pointers from the map after this.
                let grown =
                    unsafe { map.remap(bytes, memmap2::RemapOptions::new().may_move(true)) };
                grown.unwrap_or_else(|e| out_of_memory(bytes, e));
            }
            #[cfg(not(target_os = "linux"))]
            Some(map) => *map = copied_into_bigger(map, self.len * std::mem::size_of::<T>(), bytes),
        }
        #[cfg(target_os = "linux")]
        if let Some(map) = &self.map {
            // Huge pages where the kernel leaves them to the program (THP "madvise"): a table is read at random,
            // and 4 KiB pages would add a TLB miss to most lookups. Only a hint; failure changes nothing.
            let _ = map.advise(memmap2::Advice::HugePage);
        }
        let Some(map) = self.map.as_mut() else {
            unreachable!("mapped above")
        };
        let base = map.as_mut_ptr().cast::<T>();
        for i in self.len..new_len {
            // SAFETY: `i` is inside the map, which is aligned for `T`; the slot holds no value yet.
            unsafe { base.add(i).write(T::default()) };
        }
        self.len = new_len;
    }
}

/// A new map of `bytes` holding the first `used` bytes of `map`: growth where there is no `mremap`.
#[cfg_attr(all(target_os = "linux", not(test)), allow(dead_code))]
fn copied_into_bigger(map: &memmap2::MmapMut, used: usize, bytes: usize) -> memmap2::MmapMut {
    let mut bigger = memmap2::MmapMut::map_anon(bytes).unwrap_or_else(|e| out_of_memory(bytes, e));
    bigger[..used].copy_from_slice(&map[..used]);
    bigger
}

impl<T> Deref for Region<T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        match &self.map {
            // SAFETY: the map holds `len` initialised values and is aligned for `T`.
            Some(m) => unsafe { std::slice::from_raw_parts(m.as_ptr().cast(), self.len) },
            None => &[],
        }
    }
}

impl<T> DerefMut for Region<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        let len = self.len;
        match &mut self.map {
            // SAFETY: as for `deref`, and `&mut self` makes the borrow unique.
            Some(m) => unsafe { std::slice::from_raw_parts_mut(m.as_mut_ptr().cast(), len) },
            None => &mut [],
        }
    }
}

impl<T> Drop for Region<T> {
    fn drop(&mut self) {
        // SAFETY: the values are initialised and dropped once, before the map goes.
        unsafe { std::ptr::drop_in_place(&mut **self as *mut [T]) };
    }
}

// SAFETY: a `Region<T>` owns its values like a `Vec<T>` does.
unsafe impl<T: Send> Send for Region<T> {}
unsafe impl<T: Sync> Sync for Region<T> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn values_survive_growth_and_new_ones_are_default() {
        let mut r: Region<(u64, Vec<u32>)> = Region::default();
        assert!(r.is_empty());
        r.grow_to(3);
        assert!(r.iter().all(|(a, v)| *a == 0 && v.is_empty()));
        r[2] = (7, vec![1, 2]);
        // Past several pages, so the kernel has to extend (and may move) the map.
        for len in [1_000, 100_000, 1_000_000] {
            r.grow_to(len);
            assert_eq!(r.len(), len);
            assert_eq!(r[2], (7, vec![1, 2]));
            assert_eq!(r[len - 1], (0, vec![]));
            r[len - 1].0 = len as u64;
            r[len - 1].1.push(len as u32);
        }
        assert_eq!(r[999], (1_000, vec![1_000]));
        assert_eq!(r[99_999], (100_000, vec![100_000]));
    }

    /// The growth other systems use (Linux extends the map instead), run here so it stays correct.
    #[test]
    fn growth_by_copy_keeps_the_bytes_and_zeroes_the_rest() {
        let mut small = memmap2::MmapMut::map_anon(100).unwrap();
        small
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = i as u8 + 1);
        let big = copied_into_bigger(&small, 60, 10_000);
        assert_eq!(big.len(), 10_000);
        assert_eq!(&big[..60], &small[..60]);
        assert!(big[60..].iter().all(|&b| b == 0));
    }

    #[test]
    fn dropping_drops_every_value_once() {
        let counted = Rc::new(());
        {
            let mut r: Region<Option<Rc<()>>> = Region::default();
            r.grow_to(10);
            for slot in r.iter_mut().step_by(3) {
                *slot = Some(counted.clone());
            }
            r.grow_to(5_000);
            assert_eq!(Rc::strong_count(&counted), 5);
        }
        assert_eq!(Rc::strong_count(&counted), 1);
    }
}
