//! Simulated machine memory: frames in one memfd.
//!
//! This is the sim's only `unsafe` module. Every simulated page ("frame") is a 4 KiB slot of
//! one sparse memfd. A domain's view of pages (its own allocation, or a grant mapping) is an
//! `mmap` of those slots into one contiguous virtual range, read-write or read-only, so:
//!
//! * two domains really share memory, through different virtual addresses, as on Xen;
//! * a read-only mapping is enforced by the MMU, like `GNTMAP_readonly`;
//! * a multi-page mapping of unrelated frames is virtually contiguous;
//! * a later multi-process sim can hand the memfd to another process (`SCM_RIGHTS`) and map
//!   the same frames there, with grant and event operations over a control channel.
//!
//! Frame contents are accessed by the host (grant copy, hostile writes) with `pread`/`pwrite`
//! on the memfd, never through Rust references.

use std::ffi::CStr;
use std::io;
use std::ptr::NonNull;

use xen_ring::SharedMem;

/// Size of a frame.
pub const FRAME_SIZE: usize = 4096;

/// Index of a frame in the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FrameId(pub u32);

/// The frame store: a memfd, a free list and a reference count per frame.
pub struct FrameStore {
    fd: libc::c_int,
    /// Frames the file currently holds.
    len: u32,
    /// Upper bound on frames (simulated machine memory).
    max: u32,
    refs: Vec<u32>,
    free: Vec<FrameId>,
}

impl FrameStore {
    /// A store of at most `max_frames` frames.
    pub fn new(max_frames: u32) -> io::Result<Self> {
        let name: &CStr = c"xen-sim-frames";
        // SAFETY: valid NUL-terminated name; flags are plain constants.
        let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(FrameStore {
            fd,
            len: 0,
            max: max_frames,
            refs: Vec::new(),
            free: Vec::new(),
        })
    }

    /// The memfd (for handing to another process).
    pub fn fd(&self) -> libc::c_int {
        self.fd
    }

    /// Frames in use (reference count > 0).
    pub fn frames_in_use(&self) -> usize {
        self.refs.iter().filter(|&&r| r > 0).count()
    }

    /// Allocates `count` zeroed frames, each with one reference. `None` when out of memory.
    pub fn alloc(&mut self, count: usize) -> Option<Vec<FrameId>> {
        let reusable = self.free.len();
        let fresh = count.saturating_sub(reusable);
        if fresh > (self.max - self.len) as usize {
            return None;
        }
        if fresh > 0 {
            let new_len = self.len + fresh as u32;
            // SAFETY: our fd; the size is bounded by max * 4096.
            let r = unsafe {
                libc::ftruncate(self.fd, new_len as libc::off_t * FRAME_SIZE as libc::off_t)
            };
            if r != 0 {
                return None;
            }
            for f in self.len..new_len {
                self.free.push(FrameId(f));
                self.refs.push(0);
            }
            self.len = new_len;
        }
        // Hand out lowest-numbered frames first: deterministic across runs.
        self.free.sort_unstable_by(|a, b| b.cmp(a));
        let frames: Vec<FrameId> = (0..count).filter_map(|_| self.free.pop()).collect();
        for f in &frames {
            self.refs[f.0 as usize] = 1;
        }
        Some(frames)
    }

    /// Adds a reference (a mapping) to `frame`.
    pub fn add_ref(&mut self, frame: FrameId) {
        self.refs[frame.0 as usize] += 1;
    }

    /// Drops a reference; a frame without references is zeroed and freed.
    pub fn release(&mut self, frame: FrameId) {
        let r = &mut self.refs[frame.0 as usize];
        debug_assert!(*r > 0, "frame released twice");
        *r = r.saturating_sub(1);
        if *r == 0 {
            // Punching a hole zeroes the frame and returns its memory.
            // SAFETY: our fd, range inside the file.
            unsafe {
                libc::fallocate(
                    self.fd,
                    libc::FALLOC_FL_PUNCH_HOLE | libc::FALLOC_FL_KEEP_SIZE,
                    frame.0 as libc::off_t * FRAME_SIZE as libc::off_t,
                    FRAME_SIZE as libc::off_t,
                )
            };
            self.free.push(frame);
        }
    }

    /// Reads bytes of a frame.
    pub fn read(&self, frame: FrameId, offset: usize, buf: &mut [u8]) -> io::Result<()> {
        if offset + buf.len() > FRAME_SIZE {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let pos = frame.0 as libc::off_t * FRAME_SIZE as libc::off_t + offset as libc::off_t;
        // SAFETY: buf is our own writable buffer of buf.len() bytes.
        let n = unsafe { libc::pread(self.fd, buf.as_mut_ptr().cast(), buf.len(), pos) };
        if n != buf.len() as isize {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Writes bytes of a frame.
    pub fn write(&self, frame: FrameId, offset: usize, buf: &[u8]) -> io::Result<()> {
        if offset + buf.len() > FRAME_SIZE {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        let pos = frame.0 as libc::off_t * FRAME_SIZE as libc::off_t + offset as libc::off_t;
        // SAFETY: buf is our own buffer of buf.len() bytes.
        let n = unsafe { libc::pwrite(self.fd, buf.as_ptr().cast(), buf.len(), pos) };
        if n != buf.len() as isize {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Maps `frames` contiguously, read-write or read-only.
    pub fn map(&self, frames: &[FrameId], writable: bool) -> io::Result<Region> {
        let len = frames.len() * FRAME_SIZE;
        if len == 0 {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        // Reserve the range first, then place each frame at its slot.
        // SAFETY: anonymous PROT_NONE reservation at an address the kernel chooses.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let region = Region {
            base: NonNull::new(base.cast()).expect("mmap returned NULL"),
            len,
        };
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        for (i, f) in frames.iter().enumerate() {
            // SAFETY: the target lies inside the reservation we own; MAP_FIXED replaces only
            // that page of it.
            let p = unsafe {
                libc::mmap(
                    base.cast::<u8>().add(i * FRAME_SIZE).cast(),
                    FRAME_SIZE,
                    prot,
                    libc::MAP_SHARED | libc::MAP_FIXED,
                    self.fd,
                    f.0 as libc::off_t * FRAME_SIZE as libc::off_t,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(io::Error::last_os_error()); // `region` unmaps the reservation
            }
        }
        Ok(region)
    }
}

impl Drop for FrameStore {
    fn drop(&mut self) {
        // SAFETY: our fd, closed once. Existing mappings stay valid after close.
        unsafe { libc::close(self.fd) };
    }
}

/// A virtual range mapping frames; unmapped on drop.
pub struct Region {
    base: NonNull<u8>,
    len: usize,
}

impl Region {
    /// A view of the range.
    ///
    /// For a read-only region the view must only be read (writes fault, as on Xen); the
    /// platform hands such regions out only as `ReadOnlyMem`.
    pub fn mem(&self) -> SharedMem<'_> {
        // SAFETY: the range is mapped for as long as `self` lives, 4096-aligned, and only
        // accessed through SharedMem (atomic/volatile) by anyone.
        unsafe { SharedMem::from_raw_parts(self.base, self.len) }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the range is empty (never: mappings have at least one frame).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Makes the range inaccessible (as after Xen's `unmap_grant_ref`: later accesses fault)
    /// while keeping the address range reserved, so it cannot be reused by another mapping
    /// while a stale view exists.
    ///
    /// # Safety
    ///
    /// No view from [`mem`](Self::mem) may be accessed afterwards (it would fault).
    pub unsafe fn revoke_access(&self) {
        // SAFETY: replaces our own range with an inaccessible anonymous mapping; the caller
        // guarantees no view of it is used any more.
        unsafe {
            libc::mmap(
                self.base.as_ptr().cast(),
                self.len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: our own mapping; no view outlives `self` (SharedMem borrows it).
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

// SAFETY: a Region is an owned address range; moving it between threads is fine.
unsafe impl Send for Region {}
