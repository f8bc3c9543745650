//! The only `unsafe` code of the crate: ioctls on the Xen devices, `mmap`/`munmap`, and the
//! monotonic clock, wrapped in functions that are safe to call with any argument.
//!
//! `libc` rather than `nix` or `rustix`: the Xen ioctls are custom (`_IOC(_IOC_NONE, ...)`
//! with variable-length arguments), so both would still need an unsafe call per ioctl and
//! their ioctl macros/traits hide what is passed; plain `libc::ioctl` on an explicit buffer
//! is easier to audit, and std already gives safe `open`/`read`/`write`.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::ptr::NonNull;

use tokio::io::unix::AsyncFd;
use xen_ring::{ReadOnlyMem, SharedMem};
use zerocopy::{FromBytes, Immutable, IntoBytes};

use crate::abi::*;

/// Ioctls whose argument is exactly the struct whose size the request number encodes: the
/// kernel reads and writes nothing beyond it. (`MAP_GRANT_REF` and `ALLOC_GREF` are not in
/// the list: their arguments have variable length, see the dedicated functions.)
const FIXED_SIZE_REQUESTS: [u64; 10] = [
    IOCTL_EVTCHN_BIND_VIRQ,
    IOCTL_EVTCHN_BIND_INTERDOMAIN,
    IOCTL_EVTCHN_BIND_UNBOUND_PORT,
    IOCTL_EVTCHN_UNBIND,
    IOCTL_EVTCHN_NOTIFY,
    IOCTL_GNTDEV_UNMAP_GRANT_REF,
    IOCTL_GNTDEV_SET_UNMAP_NOTIFY,
    IOCTL_GNTALLOC_DEALLOC_GREF,
    IOCTL_GNTALLOC_SET_UNMAP_NOTIFY,
    // Without argument.
    IOCTL_EVTCHN_RESET,
];

fn encoded_size(request: u64) -> usize {
    ((request >> 16) & 0x3fff) as usize
}

/// `ioctl(fd, request, buf)`, returning the non-negative result.
///
/// # Safety
///
/// `buf` must be valid for reads and writes of every byte the kernel accesses for
/// `request` on `fd`'s device.
unsafe fn ioctl_raw(fd: BorrowedFd<'_>, request: u64, buf: *mut u8) -> io::Result<i32> {
    loop {
        // SAFETY: the caller guarantees `buf` covers what the kernel touches; `fd` is open
        // for the duration of the call (it is borrowed).
        let r = unsafe { libc::ioctl(fd.as_raw_fd(), request as libc::c_ulong, buf) };
        if r >= 0 {
            return Ok(r);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A fixed-size ioctl: `arg` is passed by pointer and may be updated by the kernel.
/// Requests that are not known to be fixed-size, or whose encoded size is not
/// `size_of::<T>()`, are refused with `EINVAL` before reaching the kernel.
pub(crate) fn ioctl_fixed<T: IntoBytes + FromBytes + Immutable>(
    fd: BorrowedFd<'_>,
    request: u64,
    arg: &mut T,
) -> io::Result<i32> {
    if !FIXED_SIZE_REQUESTS.contains(&request) || encoded_size(request) != size_of::<T>() {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    let buf = arg.as_mut_bytes();
    // SAFETY: `request` is a fixed-size request whose argument is `size_of::<T>()` bytes, and
    // `buf` is exactly those bytes of a `T` that accepts any bit pattern (FromBytes).
    unsafe { ioctl_raw(fd, request, buf.as_mut_ptr()) }
}

/// An ioctl without argument (`IOCTL_EVTCHN_RESET`).
pub(crate) fn ioctl_no_arg(fd: BorrowedFd<'_>, request: u64) -> io::Result<i32> {
    if request != IOCTL_EVTCHN_RESET {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: the kernel reads no argument for this request.
    unsafe { ioctl_raw(fd, request, std::ptr::null_mut()) }
}

/// `IOCTL_GNTDEV_MAP_GRANT_REF`: reserves a range of the gntdev file for `refs`; returns the
/// offset to `mmap` (the mapping itself happens at `mmap`).
pub(crate) fn gntdev_map_grant_ref(fd: BorrowedFd<'_>, refs: &[GntdevGrantRef]) -> io::Result<u64> {
    let count = u32::try_from(refs.len())
        .ok()
        .filter(|&c| c > 0)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let head = size_of::<GntdevMapGrantRefHead>();
    let bytes = head + size_of_val(refs);
    // u64 words keep the buffer 8-byte aligned, as the C struct is.
    let mut words = vec![0u64; bytes.div_ceil(8)];
    let buf = words.as_mut_bytes();
    let h = GntdevMapGrantRefHead {
        count,
        pad: 0,
        index: 0,
    };
    buf[..head].copy_from_slice(h.as_bytes());
    buf[head..bytes].copy_from_slice(refs.as_bytes());
    // SAFETY: the kernel reads the head and `count` grant refs and writes `index`: all within
    // `buf`, which is `bytes` long.
    unsafe { ioctl_raw(fd, IOCTL_GNTDEV_MAP_GRANT_REF, buf.as_mut_ptr())? };
    let (out, _) = GntdevMapGrantRefHead::read_from_prefix(buf)
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    Ok(out.index)
}

/// `IOCTL_GNTALLOC_ALLOC_GREF`: allocates `count` zeroed pages granted to `domid`; returns
/// the offset to `mmap` and one grant reference per page.
pub(crate) fn gntalloc_alloc_gref(
    fd: BorrowedFd<'_>,
    domid: u16,
    flags: u16,
    count: usize,
) -> io::Result<(u64, Vec<u32>)> {
    let count32 = u32::try_from(count)
        .ok()
        .filter(|&c| c > 0)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    let head = size_of::<GntallocAllocGrefHead>();
    let bytes = (head + count * size_of::<u32>()).max(GNTALLOC_ALLOC_GREF_SIZE);
    let mut words = vec![0u64; bytes.div_ceil(8)];
    let buf = words.as_mut_bytes();
    let h = GntallocAllocGrefHead {
        domid,
        flags,
        count: count32,
        index: 0,
    };
    buf[..head].copy_from_slice(h.as_bytes());
    // SAFETY: the kernel reads the head and writes `index` and `count` u32 grant refs after
    // it: all within `buf`, at least `head + 4 * count` bytes long.
    unsafe { ioctl_raw(fd, IOCTL_GNTALLOC_ALLOC_GREF, buf.as_mut_ptr())? };
    let (out, rest) = GntallocAllocGrefHead::read_from_prefix(buf)
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    let refs = rest
        .chunks_exact(4)
        .take(count)
        .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    Ok((out.index, refs))
}

/// One side of a grant copy.
#[derive(Clone, Copy, Debug)]
pub(crate) enum CopyEnd<'a> {
    /// Our memory: the whole view (exactly `len` bytes are used).
    Local(SharedMem<'a>),
    /// A page granted to us.
    Foreign { domid: u16, gref: u32, offset: u16 },
}

/// One grant-copy segment.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CopyRequest<'a> {
    pub src: CopyEnd<'a>,
    pub dst: CopyEnd<'a>,
    pub len: u16,
}

/// `IOCTL_GNTDEV_GRANT_COPY`: performs the segments, writing each `GNTST_*` status into
/// `status`. A local side shorter than `len`, two local sides, or `status` of another length
/// than `reqs` is `EINVAL` before reaching the kernel.
pub(crate) fn gntdev_grant_copy(
    fd: BorrowedFd<'_>,
    reqs: &[CopyRequest<'_>],
    status: &mut [i16],
) -> io::Result<()> {
    let einval = || io::Error::from_raw_os_error(libc::EINVAL);
    if reqs.len() != status.len() {
        return Err(einval());
    }
    if reqs.is_empty() {
        return Ok(());
    }
    let mut segs = Vec::with_capacity(reqs.len());
    for r in reqs {
        let mut flags = 0;
        let mut end = |e: &CopyEnd<'_>, gref_flag: u16| -> io::Result<u64> {
            match *e {
                CopyEnd::Local(mem) if mem.len() >= usize::from(r.len) => Ok(mem.as_ptr() as u64),
                CopyEnd::Local(_) => Err(einval()),
                CopyEnd::Foreign {
                    domid,
                    gref,
                    offset,
                } => {
                    flags |= gref_flag;
                    Ok(GntdevGrantCopySegment::foreign(gref, offset, domid))
                }
            }
        };
        let source = end(&r.src, GNTCOPY_SOURCE_GREF)?;
        let dest = end(&r.dst, GNTCOPY_DEST_GREF)?;
        if flags == 0 {
            return Err(einval());
        }
        segs.push(GntdevGrantCopySegment {
            source,
            dest,
            len: r.len,
            flags,
            status: 0,
            pad: 0,
        });
    }
    let mut arg = GntdevGrantCopy {
        count: u32::try_from(segs.len()).map_err(|_| einval())?,
        pad: 0,
        segments: segs.as_mut_ptr() as u64,
    };
    // SAFETY: the kernel reads `arg`, then `count` segments at `segments` (our vector) and
    // writes their `status`. Each local side points into a `SharedMem` of at least `len`
    // bytes, which its contract makes valid for reads and writes for its lifetime (which
    // outlives this call), accessed by others only atomically/volatilely; the kernel copies
    // through get_user_pages like any other party writing shared memory.
    unsafe { ioctl_raw(fd, IOCTL_GNTDEV_GRANT_COPY, arg.as_mut_bytes().as_mut_ptr())? };
    for (s, seg) in status.iter_mut().zip(&segs) {
        *s = seg.status;
    }
    Ok(())
}

/// A range of our address space from `mmap`, unmapped on drop.
#[derive(Debug)]
pub(crate) struct MappedRegion {
    base: NonNull<u8>,
    len: usize,
    writable: bool,
}

// SAFETY: the region is plain process memory, not tied to a thread; it is only accessed
// through `SharedMem` views (atomic and volatile operations), which are Send and Sync.
unsafe impl Send for MappedRegion {}
// SAFETY: see above.
unsafe impl Sync for MappedRegion {}

impl MappedRegion {
    fn map(
        len: usize,
        writable: bool,
        flags: libc::c_int,
        fd: libc::c_int,
        offset: u64,
    ) -> io::Result<MappedRegion> {
        let einval = || io::Error::from_raw_os_error(libc::EINVAL);
        if len == 0 {
            return Err(einval());
        }
        let offset = libc::off_t::try_from(offset).map_err(|_| einval())?;
        let prot = if writable {
            libc::PROT_READ | libc::PROT_WRITE
        } else {
            libc::PROT_READ
        };
        // SAFETY: a fresh mapping chosen by the kernel (addr NULL, no MAP_FIXED) cannot
        // overlap anything Rust owns; failure is reported as MAP_FAILED.
        let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, fd, offset) };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let base = NonNull::new(p.cast::<u8>()).ok_or_else(einval)?;
        Ok(MappedRegion {
            base,
            len,
            writable,
        })
    }

    /// `len` bytes of zeroed, private, page-aligned anonymous memory.
    pub(crate) fn anonymous(len: usize) -> io::Result<MappedRegion> {
        Self::map(len, true, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
    }

    /// A shared mapping of `len` bytes of a device at `offset` (gntalloc, gntdev).
    pub(crate) fn device(
        fd: BorrowedFd<'_>,
        len: usize,
        offset: u64,
        writable: bool,
    ) -> io::Result<MappedRegion> {
        Self::map(len, writable, libc::MAP_SHARED, fd.as_raw_fd(), offset)
    }

    /// A read-write view; `None` for a read-only mapping.
    pub(crate) fn shared(&self) -> Option<SharedMem<'_>> {
        // SAFETY: the region is mapped readable and writable until `self` is dropped or
        // unmapped (both need `self` by value or exclusively, so not while the view lives),
        // it is page-aligned, and this crate never creates Rust references into it.
        self.writable
            .then(|| unsafe { SharedMem::from_raw_parts(self.base, self.len) })
    }

    /// A read-only view (for both kinds of mapping).
    pub(crate) fn read_only(&self) -> ReadOnlyMem<'_> {
        // SAFETY: as in `shared`, except that a read-only mapping is not writable: the view
        // is wrapped in `ReadOnlyMem` at once, which only ever loads.
        ReadOnlyMem::new(unsafe { SharedMem::from_raw_parts(self.base, self.len) })
    }

    /// Unmaps, reporting an error dropping would swallow.
    pub(crate) fn unmap(self) -> io::Result<()> {
        let (base, len) = (self.base, self.len);
        std::mem::forget(self);
        munmap(base, len)
    }
}

fn munmap(base: NonNull<u8>, len: usize) -> io::Result<()> {
    // SAFETY: `base..base + len` is a mapping this module created and nobody else unmaps;
    // its owner is gone, and views borrow the owner, so none is left.
    if unsafe { libc::munmap(base.as_ptr().cast(), len) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

impl Drop for MappedRegion {
    fn drop(&mut self) {
        let _ = munmap(self.base, self.len);
    }
}

/// Registers `file` with the current tokio runtime's I/O driver (which must exist).
pub(crate) fn register_with_runtime(file: File) -> io::Result<AsyncFd<File>> {
    // SAFETY: a `File` owns its descriptor and `as_raw_fd` always returns it; it stays open
    // until the `File` is dropped, which the `AsyncFd` owns (and we never swap it out).
    unsafe { AsyncFd::register(file) }.map_err(io::Error::from)
}

/// `CLOCK_MONOTONIC` in nanoseconds (the clock `std::time::Instant` and tokio use).
pub(crate) fn monotonic_nanos() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux.
    let r = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    debug_assert_eq!(r, 0);
    (ts.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::Ordering;

    #[test]
    fn anonymous_region_is_zeroed_and_writable() {
        let r = MappedRegion::anonymous(8192).unwrap();
        let m = r.shared().unwrap();
        assert_eq!(m.len(), 8192);
        assert_eq!(m.load_u32(4096, Ordering::Relaxed).unwrap(), 0);
        m.store_u32(8188, 0xdead_beef, Ordering::Relaxed).unwrap();
        assert_eq!(
            r.read_only().load_u32(8188, Ordering::Relaxed).unwrap(),
            0xdead_beef
        );
        assert_eq!(m.as_ptr() as usize % 4096, 0);
        r.unmap().unwrap();
    }

    #[test]
    fn unlisted_or_mis_sized_ioctls_are_refused_before_the_kernel() {
        let f = std::fs::File::open("/dev/null").unwrap();
        let fd = std::os::fd::AsFd::as_fd(&f);
        let mut wrong = GntdevUnmapGrantRef::default();
        let e = ioctl_fixed(fd, IOCTL_EVTCHN_NOTIFY, &mut wrong).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        let mut head = GntdevMapGrantRefHead::default();
        let e = ioctl_fixed(fd, IOCTL_GNTDEV_GRANT_COPY, &mut head).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        // A listed request with the right size reaches the kernel, which refuses it on
        // /dev/null with ENOTTY.
        let mut port = EvtchnPort { port: 1 };
        let e = ioctl_fixed(fd, IOCTL_EVTCHN_NOTIFY, &mut port).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTTY));
    }

    #[test]
    fn grant_copy_rejects_short_local_sides_and_local_to_local() {
        let f = std::fs::File::open("/dev/null").unwrap();
        let fd = std::os::fd::AsFd::as_fd(&f);
        let r = MappedRegion::anonymous(4096).unwrap();
        let m = r.shared().unwrap();
        let foreign = CopyEnd::Foreign {
            domid: 0,
            gref: 8,
            offset: 0,
        };
        let short = CopyRequest {
            src: foreign,
            dst: CopyEnd::Local(m.sub(0, 10).unwrap()),
            len: 11,
        };
        let mut st = [0i16];
        let e = gntdev_grant_copy(fd, &[short], &mut st).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
        let local = CopyRequest {
            src: CopyEnd::Local(m.sub(0, 10).unwrap()),
            dst: CopyEnd::Local(m.sub(10, 10).unwrap()),
            len: 10,
        };
        let e = gntdev_grant_copy(fd, &[local], &mut st).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::EINVAL));
    }

    #[test]
    fn monotonic_clock_advances() {
        let a = monotonic_nanos();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(monotonic_nanos() >= a + 2_000_000);
    }
}
