//! The page-frame allocator: one bit per pseudo-physical frame of the guest's free RAM.
//!
//! Portable logic (tested on the host); the PV runtime feeds it the guest's free frames.
//! Allocation is first-fit from a rotating hint, so short-lived single pages do not
//! fragment the low region that multi-page allocations (heap arenas, rings) prefer.

/// A pseudo-physical frame number.
pub type Pfn = u64;

/// Tracks which frames in `[base, base + len)` are free.
pub struct FrameAllocator<'a> {
    /// Bit set = frame in use.
    bitmap: &'a mut [u64],
    base: Pfn,
    len: u64,
    free: u64,
    hint: u64,
}

/// Misuse of the frame allocator; always a bug in the guest, reported with the frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Freeing frames outside the managed range.
    OutOfRange { pfn: Pfn, count: u64 },
    /// Freeing a frame that is not allocated.
    DoubleFree { pfn: Pfn },
}

impl<'a> FrameAllocator<'a> {
    /// Number of `u64` bitmap words needed to manage `len` frames.
    pub const fn bitmap_words(len: u64) -> usize {
        len.div_ceil(64) as usize
    }

    /// Manage frames `[base, base + len)`, all free. `bitmap` must hold
    /// [`Self::bitmap_words`]`(len)` words.
    pub fn new(bitmap: &'a mut [u64], base: Pfn, len: u64) -> Self {
        assert!(
            bitmap.len() >= Self::bitmap_words(len),
            "frame bitmap too small"
        );
        bitmap.fill(0);
        // Frames past `len` in the last word are marked used so they are never handed out.
        let tail = len % 64;
        if tail != 0 {
            let last = Self::bitmap_words(len) - 1;
            bitmap[last] = !0u64 << tail;
        }
        for word in bitmap.iter_mut().skip(Self::bitmap_words(len)) {
            *word = !0;
        }
        FrameAllocator {
            bitmap,
            base,
            len,
            free: len,
            hint: 0,
        }
    }

    /// Frames currently free.
    pub fn free_frames(&self) -> u64 {
        self.free
    }

    /// Frames managed in total.
    pub fn total_frames(&self) -> u64 {
        self.len
    }

    fn is_used(&self, i: u64) -> bool {
        self.bitmap[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    fn set(&mut self, i: u64, used: bool) {
        let word = &mut self.bitmap[(i / 64) as usize];
        if used {
            *word |= 1 << (i % 64);
        } else {
            *word &= !(1 << (i % 64));
        }
    }

    /// Mark `[pfn, pfn + count)` used (frames the boot code took before the allocator existed).
    pub fn reserve(&mut self, pfn: Pfn, count: u64) -> Result<(), FrameError> {
        let start = self.index(pfn, count)?;
        for i in start..start + count {
            if !self.is_used(i) {
                self.set(i, true);
                self.free -= 1;
            }
        }
        Ok(())
    }

    /// Allocate `count` physically contiguous frames.
    pub fn alloc(&mut self, count: u64) -> Option<Pfn> {
        if count == 0 || count > self.free {
            return None;
        }
        let start = self
            .find_run(self.hint, self.len, count)
            .or_else(|| self.find_run(0, self.hint, count))?;
        for i in start..start + count {
            self.set(i, true);
        }
        self.free -= count;
        self.hint = if count == 1 { start + 1 } else { self.hint };
        Some(self.base + start)
    }

    /// Find `count` free frames in a row starting in `[from, to)`.
    fn find_run(&self, from: u64, to: u64, count: u64) -> Option<u64> {
        let mut i = from;
        while i < to {
            // Skip full words quickly.
            if i.is_multiple_of(64) && self.bitmap[(i / 64) as usize] == !0 {
                i += 64;
                continue;
            }
            if self.is_used(i) {
                i += 1;
                continue;
            }
            let run_end = i + count;
            if run_end > self.len {
                return None;
            }
            match (i..run_end).find(|&j| self.is_used(j)) {
                None => return Some(i),
                Some(used) => i = used + 1,
            }
        }
        None
    }

    /// Return `[pfn, pfn + count)` to the allocator.
    pub fn free(&mut self, pfn: Pfn, count: u64) -> Result<(), FrameError> {
        let start = self.index(pfn, count)?;
        if let Some(j) = (start..start + count).find(|&j| !self.is_used(j)) {
            return Err(FrameError::DoubleFree { pfn: self.base + j });
        }
        for i in start..start + count {
            self.set(i, false);
        }
        self.free += count;
        Ok(())
    }

    fn index(&self, pfn: Pfn, count: u64) -> Result<u64, FrameError> {
        let start = pfn
            .checked_sub(self.base)
            .ok_or(FrameError::OutOfRange { pfn, count })?;
        if start.checked_add(count).is_none_or(|end| end > self.len) {
            return Err(FrameError::OutOfRange { pfn, count });
        }
        Ok(start)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    #[test]
    fn allocates_contiguous_runs_and_reuses_freed_frames() {
        let mut bits = vec![0u64; FrameAllocator::bitmap_words(100)];
        let mut fa = FrameAllocator::new(&mut bits, 1000, 100);
        assert_eq!(fa.free_frames(), 100);
        let a = fa.alloc(10).unwrap();
        let b = fa.alloc(1).unwrap();
        assert_eq!(a, 1000);
        assert_eq!(b, 1010);
        fa.free(a, 10).unwrap();
        assert_eq!(fa.alloc(90), None, "only 89 free frames in a row after b");
        assert_eq!(fa.alloc(89), Some(1011));
        assert_eq!(fa.alloc(10), Some(1000));
        assert_eq!(fa.free_frames(), 0);
        assert_eq!(fa.alloc(1), None);
    }

    #[test]
    fn never_hands_out_frames_past_the_end() {
        let mut bits = vec![0u64; 2];
        let mut fa = FrameAllocator::new(&mut bits, 0, 70);
        let mut seen = BTreeSet::new();
        while let Some(p) = fa.alloc(1) {
            assert!(p < 70);
            assert!(seen.insert(p));
        }
        assert_eq!(seen.len(), 70);
    }

    #[test]
    fn rejects_double_free_and_foreign_frames() {
        let mut bits = vec![0u64; 1];
        let mut fa = FrameAllocator::new(&mut bits, 10, 64);
        let p = fa.alloc(2).unwrap();
        fa.free(p, 2).unwrap();
        assert_eq!(fa.free(p, 1), Err(FrameError::DoubleFree { pfn: p }));
        assert_eq!(
            fa.free(9, 1),
            Err(FrameError::OutOfRange { pfn: 9, count: 1 })
        );
        assert_eq!(
            fa.free(70, 5),
            Err(FrameError::OutOfRange { pfn: 70, count: 5 })
        );
        assert_eq!(fa.free_frames(), 64);
    }

    #[test]
    fn reserve_marks_frames_used_once() {
        let mut bits = vec![0u64; 1];
        let mut fa = FrameAllocator::new(&mut bits, 0, 8);
        fa.reserve(0, 3).unwrap();
        fa.reserve(2, 2).unwrap();
        assert_eq!(fa.free_frames(), 4);
        assert_eq!(fa.alloc(4), Some(4));
    }

    proptest::proptest! {
        #[test]
        fn matches_a_model(ops in proptest::collection::vec((0u8..2, 1u64..6), 1..200)) {
            let mut bits = vec![0u64; FrameAllocator::bitmap_words(130)];
            let mut fa = FrameAllocator::new(&mut bits, 5, 130);
            let mut live: Vec<(u64, u64)> = Vec::new();
            let mut used = BTreeSet::new();
            for (op, n) in ops {
                if op == 0 || live.is_empty() {
                    if let Some(p) = fa.alloc(n) {
                        for f in p..p + n {
                            proptest::prop_assert!((5..135).contains(&f));
                            proptest::prop_assert!(used.insert(f), "frame {} handed out twice", f);
                        }
                        live.push((p, n));
                    }
                } else {
                    let (p, n) = live.swap_remove((n as usize) % live.len());
                    fa.free(p, n).unwrap();
                    for f in p..p + n { used.remove(&f); }
                }
                proptest::prop_assert_eq!(fa.free_frames(), 130 - used.len() as u64);
            }
        }
    }
}
