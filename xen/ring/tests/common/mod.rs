//! Helpers shared by the ring tests: a page-aligned buffer standing in for a shared page.

use std::ptr::NonNull;
use xen_ring::SharedMem;

/// Heap memory, 4096-aligned, only ever accessed through `SharedMem`.
pub struct Page {
    ptr: NonNull<u8>,
    len: usize,
}

impl Page {
    pub fn new(len: usize) -> Page {
        let layout = std::alloc::Layout::from_size_align(len.max(1), 4096).unwrap();
        // SAFETY: non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        Page {
            ptr: NonNull::new(ptr).expect("allocation failed"),
            len,
        }
    }

    pub fn mem(&self) -> SharedMem<'_> {
        // SAFETY: the allocation lives as long as the borrow of self and is only accessed
        // through SharedMem views.
        unsafe { SharedMem::from_raw_parts(self.ptr, self.len) }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let layout = std::alloc::Layout::from_size_align(self.len.max(1), 4096).unwrap();
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), layout) };
    }
}
