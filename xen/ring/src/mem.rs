//! Access to memory shared with another domain.
//!
//! This is the only module of the crate with `unsafe` code. A page shared with a peer can change
//! under our feet at any time, so Rust references (`&T`, `&[u8]`) into it would be unsound:
//! the compiler may assume the bytes do not change, re-read or cache them. Instead,
//! [`SharedMem`] is a raw pointer plus a length, and every access is either
//!
//! * an atomic load/store of a 32-, 16- or 8-bit word (ring indices, flags), with an explicit
//!   [`Ordering`], or
//! * a volatile copy of bytes in or out (ring payload), which the compiler must perform exactly
//!   once and cannot assume stable.
//!
//! Every access is bounds-checked against the region and returns [`OutOfBounds`] instead of
//! touching memory outside it, so a bad offset computed from peer data can never escape the
//! shared region.

use core::fmt;
use core::marker::PhantomData;
use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, Ordering};

use zerocopy::{FromBytes, IntoBytes};

/// Xen's page size for rings and grants, independent of the guest's own page size.
pub const XEN_PAGE_SIZE: usize = 4096;

/// An access outside a [`SharedMem`] region (or a misaligned atomic access).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutOfBounds {
    /// Offset of the access in the region.
    pub offset: usize,
    /// Length of the access.
    pub len: usize,
    /// Length of the region.
    pub region_len: usize,
}

impl fmt::Display for OutOfBounds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shared memory access at {}+{} outside a {}-byte region (or misaligned)",
            self.offset, self.len, self.region_len
        )
    }
}

/// A view of memory shared with another domain (or the hypervisor).
///
/// It is `Copy`: several views of the same region are fine because every access is atomic or
/// volatile. The lifetime ties the view to whoever owns the mapping (a granted page, a
/// foreign mapping), so the view cannot outlive the memory.
#[derive(Clone, Copy)]
pub struct SharedMem<'a> {
    base: NonNull<u8>,
    len: usize,
    _owner: PhantomData<&'a [AtomicU8]>,
}

// SAFETY: all accesses through a SharedMem are atomic or volatile copies, exactly as for a
// `&[AtomicU8]`, which is Send and Sync.
unsafe impl Send for SharedMem<'_> {}
// SAFETY: see above.
unsafe impl Sync for SharedMem<'_> {}

impl fmt::Debug for SharedMem<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedMem")
            .field("base", &self.base)
            .field("len", &self.len)
            .finish()
    }
}

impl<'a> SharedMem<'a> {
    /// Wraps `len` bytes at `base`.
    ///
    /// # Safety
    ///
    /// For the whole lifetime `'a`, `base..base + len` must be valid for reads and writes
    /// (mapped, not freed), and must not be accessed through Rust references by anyone in this
    /// address space; other parties (the peer domain, other views) may access it concurrently
    /// with atomic or volatile operations. `base` must be at least 4-byte aligned.
    pub unsafe fn from_raw_parts(base: NonNull<u8>, len: usize) -> Self {
        debug_assert!(base.as_ptr() as usize % 4 == 0);
        SharedMem {
            base,
            len,
            _owner: PhantomData,
        }
    }

    /// Length of the region in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Address of the first byte (for diagnostics and for handing the region to a platform).
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// The sub-region `offset..offset + len`.
    pub fn sub(&self, offset: usize, len: usize) -> Result<SharedMem<'a>, OutOfBounds> {
        self.check(offset, len, 1)?;
        // SAFETY: in bounds (checked above), so the pointer stays inside the same valid region
        // for the same lifetime.
        let base = unsafe { NonNull::new_unchecked(self.base.as_ptr().add(offset)) };
        Ok(SharedMem {
            base,
            len,
            _owner: PhantomData,
        })
    }

    fn check(&self, offset: usize, len: usize, align: usize) -> Result<(), OutOfBounds> {
        let end = offset.checked_add(len);
        let aligned = (self.base.as_ptr() as usize).wrapping_add(offset) % align == 0;
        match end {
            Some(end) if end <= self.len && aligned => Ok(()),
            _ => Err(OutOfBounds {
                offset,
                len,
                region_len: self.len,
            }),
        }
    }

    fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32, OutOfBounds> {
        self.check(offset, 4, 4)?;
        // SAFETY: in bounds and 4-aligned (checked); the memory is valid for 'a and only ever
        // accessed atomically or volatilely, which is what AtomicU32 requires. A shared
        // reference to an atomic is fine for memory others write: its interior mutability
        // tells the compiler the value may change.
        Ok(unsafe { &*(self.base.as_ptr().add(offset) as *const AtomicU32) })
    }

    fn atomic_u16(&self, offset: usize) -> Result<&AtomicU16, OutOfBounds> {
        self.check(offset, 2, 2)?;
        // SAFETY: as in `atomic_u32`, for a 2-aligned u16.
        Ok(unsafe { &*(self.base.as_ptr().add(offset) as *const AtomicU16) })
    }

    fn atomic_u8(&self, offset: usize) -> Result<&AtomicU8, OutOfBounds> {
        self.check(offset, 1, 1)?;
        // SAFETY: as in `atomic_u32`, for a byte.
        Ok(unsafe { &*(self.base.as_ptr().add(offset) as *const AtomicU8) })
    }

    /// Atomically loads the 32-bit word at `offset` (must be 4-aligned).
    pub fn load_u32(&self, offset: usize, order: Ordering) -> Result<u32, OutOfBounds> {
        Ok(self.atomic_u32(offset)?.load(order))
    }

    /// Atomically stores the 32-bit word at `offset` (must be 4-aligned).
    pub fn store_u32(&self, offset: usize, value: u32, order: Ordering) -> Result<(), OutOfBounds> {
        self.atomic_u32(offset)?.store(value, order);
        Ok(())
    }

    /// Atomically loads the 16-bit word at `offset` (must be 2-aligned).
    pub fn load_u16(&self, offset: usize, order: Ordering) -> Result<u16, OutOfBounds> {
        Ok(self.atomic_u16(offset)?.load(order))
    }

    /// Atomically stores the 16-bit word at `offset` (must be 2-aligned).
    pub fn store_u16(&self, offset: usize, value: u16, order: Ordering) -> Result<(), OutOfBounds> {
        self.atomic_u16(offset)?.store(value, order);
        Ok(())
    }

    /// Atomically loads the byte at `offset`.
    pub fn load_u8(&self, offset: usize, order: Ordering) -> Result<u8, OutOfBounds> {
        Ok(self.atomic_u8(offset)?.load(order))
    }

    /// Atomically stores the byte at `offset`.
    pub fn store_u8(&self, offset: usize, value: u8, order: Ordering) -> Result<(), OutOfBounds> {
        self.atomic_u8(offset)?.store(value, order);
        Ok(())
    }

    /// Atomic OR of `bits` into the byte at `offset`; returns the previous value.
    pub fn fetch_or_u8(&self, offset: usize, bits: u8, order: Ordering) -> Result<u8, OutOfBounds> {
        Ok(self.atomic_u8(offset)?.fetch_or(bits, order))
    }

    /// Atomic AND of `bits` into the byte at `offset`; returns the previous value.
    pub fn fetch_and_u8(
        &self,
        offset: usize,
        bits: u8,
        order: Ordering,
    ) -> Result<u8, OutOfBounds> {
        Ok(self.atomic_u8(offset)?.fetch_and(bits, order))
    }

    /// Copies `dst.len()` bytes starting at `offset` out of the region (volatile reads).
    ///
    /// The bytes may be changed concurrently by the peer; the copy is then some mix of old
    /// and new bytes, which is why callers validate what they copied, never the shared bytes.
    pub fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), OutOfBounds> {
        self.check(offset, dst.len(), 1)?;
        // SAFETY: `offset..offset + dst.len()` is inside the valid region (checked above);
        // `dst` is our own exclusive buffer.
        unsafe { volatile_copy(self.base.as_ptr().add(offset), dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }

    /// Copies `src` into the region at `offset` (volatile writes).
    pub fn write(&self, offset: usize, src: &[u8]) -> Result<(), OutOfBounds> {
        self.check(offset, src.len(), 1)?;
        // SAFETY: destination in bounds (checked above); `src` is our own buffer and cannot
        // overlap shared memory we only access through raw pointers.
        unsafe { volatile_copy(src.as_ptr(), self.base.as_ptr().add(offset), src.len()) };
        Ok(())
    }

    /// Sets `len` bytes at `offset` to `byte` (volatile writes).
    pub fn fill(&self, offset: usize, len: usize, byte: u8) -> Result<(), OutOfBounds> {
        self.check(offset, len, 1)?;
        for i in 0..len {
            // SAFETY: `offset + i` is inside the region (checked above).
            unsafe { core::ptr::write_volatile(self.base.as_ptr().add(offset + i), byte) };
        }
        Ok(())
    }

    /// Reads a plain-old-data value (any bit pattern valid, padding allowed) at `offset`.
    pub fn read_obj<T: FromBytes>(&self, offset: usize) -> Result<T, OutOfBounds> {
        let len = core::mem::size_of::<T>();
        self.check(offset, len, 1)?;
        let mut value = core::mem::MaybeUninit::<T>::uninit();
        // SAFETY: source in bounds (checked above); the destination is our own local of
        // exactly `len` bytes. Every byte of it is written, and `T: FromBytes` makes any
        // byte pattern a valid `T`, so `assume_init` is sound.
        unsafe {
            volatile_copy(
                self.base.as_ptr().add(offset),
                value.as_mut_ptr().cast::<u8>(),
                len,
            );
            Ok(value.assume_init())
        }
    }

    /// Writes a plain-old-data value at `offset`.
    pub fn write_obj<T: IntoBytes + zerocopy::Immutable>(
        &self,
        offset: usize,
        value: &T,
    ) -> Result<(), OutOfBounds> {
        self.write(offset, value.as_bytes())
    }
}

/// Copies `len` bytes with volatile accesses: 8 bytes at a time while both sides are aligned,
/// then bytes. Volatile, because one side is shared memory the peer may be writing: the
/// compiler must neither elide, repeat nor widen these accesses beyond the range.
///
/// # Safety
///
/// `src` must be valid for `len` reads and `dst` for `len` writes, and they must not overlap.
unsafe fn volatile_copy(src: *const u8, dst: *mut u8, len: usize) {
    let mut i = 0;
    if (src as usize) % 8 == (dst as usize) % 8 {
        while i < len && (src as usize + i) % 8 != 0 {
            // SAFETY: i < len, inside both ranges.
            unsafe { dst.add(i).write_volatile(src.add(i).read_volatile()) };
            i += 1;
        }
        while i + 8 <= len {
            // SAFETY: i + 8 <= len and both pointers are 8-aligned at i.
            unsafe {
                (dst.add(i) as *mut u64).write_volatile((src.add(i) as *const u64).read_volatile())
            };
            i += 8;
        }
    }
    while i < len {
        // SAFETY: i < len, inside both ranges.
        unsafe { dst.add(i).write_volatile(src.add(i).read_volatile()) };
        i += 1;
    }
}

/// A read-only view of shared memory: a page the peer granted us read-only access to.
/// Writing to it would fault on real Xen, so the type offers no way to write.
#[derive(Clone, Copy, Debug)]
pub struct ReadOnlyMem<'a>(SharedMem<'a>);

impl<'a> ReadOnlyMem<'a> {
    /// Wraps a view that must only be read.
    pub fn new(mem: SharedMem<'a>) -> Self {
        ReadOnlyMem(mem)
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// See [`SharedMem::load_u32`].
    pub fn load_u32(&self, offset: usize, order: Ordering) -> Result<u32, OutOfBounds> {
        self.0.load_u32(offset, order)
    }

    /// See [`SharedMem::load_u8`].
    pub fn load_u8(&self, offset: usize, order: Ordering) -> Result<u8, OutOfBounds> {
        self.0.load_u8(offset, order)
    }

    /// See [`SharedMem::read`].
    pub fn read(&self, offset: usize, dst: &mut [u8]) -> Result<(), OutOfBounds> {
        self.0.read(offset, dst)
    }

    /// See [`SharedMem::read_obj`].
    pub fn read_obj<T: FromBytes>(&self, offset: usize) -> Result<T, OutOfBounds> {
        self.0.read_obj(offset)
    }
}

/// Full memory barrier: Xen's `mb()`. Orders earlier stores before later loads, which
/// acquire/release alone do not (x86 may reorder a store with a later load to another
/// address); this compiles to `mfence` or a locked instruction.
pub fn full_fence() {
    core::sync::atomic::fence(Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec;

    fn with_mem<R>(len: usize, f: impl FnOnce(SharedMem<'_>) -> R) -> R {
        let mut backing = vec![0u64; len.div_ceil(8)];
        // SAFETY: backing is valid for len bytes, 8-aligned, and only used through the view.
        let mem = unsafe {
            SharedMem::from_raw_parts(NonNull::new(backing.as_mut_ptr() as *mut u8).unwrap(), len)
        };
        f(mem)
    }

    #[test]
    fn bounds_and_alignment_are_checked() {
        with_mem(64, |m| {
            assert!(m.load_u32(60, Ordering::Relaxed).is_ok());
            assert!(m.load_u32(61, Ordering::Relaxed).is_err());
            assert!(m.load_u32(64, Ordering::Relaxed).is_err());
            assert!(m.load_u32(usize::MAX - 1, Ordering::Relaxed).is_err());
            assert!(m.read(60, &mut [0; 5]).is_err());
            assert!(m.write(usize::MAX, &[1]).is_err());
            assert!(m.sub(32, 33).is_err());
            let s = m.sub(32, 32).unwrap();
            s.store_u32(0, 7, Ordering::Relaxed).unwrap();
            assert_eq!(m.load_u32(32, Ordering::Relaxed).unwrap(), 7);
        });
    }

    #[test]
    fn copies_at_any_alignment() {
        with_mem(64, |m| {
            let src: std::vec::Vec<u8> = (0..40).collect();
            for off in 0..20 {
                m.fill(0, 64, 0xee).unwrap();
                m.write(off, &src[..40 - off % 7]).unwrap();
                let mut back = vec![0u8; 40 - off % 7];
                m.read(off, &mut back).unwrap();
                assert_eq!(back, &src[..40 - off % 7]);
                if off > 0 {
                    assert_eq!(m.load_u8(off - 1, Ordering::Relaxed).unwrap(), 0xee);
                }
            }
        });
    }
}
