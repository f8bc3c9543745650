//! Grant tables, version 1: share our frames with other domains, map theirs, copy.
//!
//! Entry protocol (grant_table.h): write `domid` and `frame`, then (after a write
//! barrier) `flags`; revoke by atomically swapping `flags` to 0 only while Xen's
//! `GTF_reading`/`GTF_writing` bits show that nobody has the frame mapped.

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU16, AtomicU32, Ordering, fence};

use xen_abi::errno::Errno;
use xen_abi::grant_table::*;
use xen_abi::{DOMID_SELF, DomId, GrantRef};

use xen_platform::{Error, GrantStatus, Op};

use super::{hypercall, mm};

fn xen(op: Op, e: Errno) -> Error {
    Error::Xen { op, errno: e }
}

fn check_status(op: Op, code: i16) -> Result<(), Error> {
    match GrantStatus::from_code(code) {
        Ok(()) => Ok(()),
        Err(Some(status)) => Err(Error::Grant { op, status }),
        Err(None) => Err(Error::UnknownErrno {
            op,
            code: code as i32,
        }),
    }
}

struct Table {
    entries: *mut GrantEntryV1,
    nr_entries: u32,
    free: Vec<GrantRef>,
    in_use: Vec<bool>,
}

// SAFETY: the entries pointer refers to the grant-table frames mapped for the guest's
// lifetime; all access goes through the TABLE mutex.
unsafe impl Send for Table {}

static TABLE: spin::Mutex<Option<Table>> = spin::Mutex::new(None);

impl Table {
    fn flags(&self, r: GrantRef) -> &AtomicU16 {
        // SAFETY: r < nr_entries (checked by callers); `flags` is the 2-aligned first field
        // of the entry, accessed atomically by us and by Xen for the table's lifetime.
        unsafe { AtomicU16::from_ptr(self.entries.add(r as usize) as *mut u16) }
    }

    fn check_ref(&self, op: Op, r: GrantRef) -> Result<(), Error> {
        if r < self.nr_entries && self.in_use[r as usize] {
            Ok(())
        } else {
            Err(Error::InvalidArgument { op })
        }
    }
}

/// Set up the grant table with as many frames as Xen allows us (`query_size`).
pub fn init() -> Result<u32, Error> {
    let mut query = GnttabQuerySize {
        dom: DOMID_SELF,
        _pad0: 0,
        nr_frames: 0,
        max_nr_frames: 0,
        status: 0,
        _pad1: 0,
    };
    // SAFETY: one gnttab_query_size struct.
    unsafe { hypercall::grant_table_op(GNTTABOP_QUERY_SIZE, &mut query as *mut _ as *mut u8, 1) }
        .map_err(|e| xen(Op::Grant, e))?;
    check_status(Op::Grant, query.status)?;
    let nr_frames = query.max_nr_frames.clamp(1, 64);
    let mut frame_list = [0u64; 64];
    let mut setup = GnttabSetupTable {
        dom: DOMID_SELF,
        _pad0: 0,
        nr_frames,
        status: 0,
        _pad1: [0; 6],
        frame_list: frame_list.as_mut_ptr() as u64,
    };
    // SAFETY: one gnttab_setup_table struct whose frame_list has room for nr_frames.
    unsafe { hypercall::grant_table_op(GNTTABOP_SETUP_TABLE, &mut setup as *mut _ as *mut u8, 1) }
        .map_err(|e| xen(Op::Grant, e))?;
    check_status(Op::Grant, setup.status)?;
    let range = mm::reserve_virt(nr_frames as u64).map_err(|_| Error::OutOfMemory)?;
    for (i, &mfn) in frame_list[..nr_frames as usize].iter().enumerate() {
        mm::map_machine_frame(range.page(i as u64), mfn, true).map_err(|e| xen(Op::Grant, e))?;
    }
    let nr_entries = nr_frames * ENTRIES_PER_FRAME_V1 as u32;
    // Hand out low references first (pop from the end).
    let free: Vec<GrantRef> = (NR_RESERVED_ENTRIES..nr_entries).rev().collect();
    let in_use = alloc::vec![false; nr_entries as usize];
    *TABLE.lock() = Some(Table {
        entries: range.addr() as *mut GrantEntryV1,
        nr_entries,
        free,
        in_use,
    });
    Ok(nr_entries)
}

/// Let `domid` map machine frame `mfn` (read-only or writable). Returns the reference to
/// pass to the other domain.
pub fn grant_access(domid: DomId, mfn: u64, readonly: bool) -> Result<GrantRef, Error> {
    // A v1 entry holds a 32-bit frame number.
    let frame = u32::try_from(mfn).map_err(|_| Error::InvalidArgument { op: Op::Grant })?;
    let mut guard = TABLE.lock();
    let table = guard
        .as_mut()
        .ok_or(Error::InvalidArgument { op: Op::Grant })?;
    let r = table.free.pop().ok_or(Error::GrantTableFull)?;
    table.in_use[r as usize] = true;
    // SAFETY: r < nr_entries; the entry is ours (flags 0, so Xen ignores it) until the
    // flags store below publishes it.
    unsafe {
        let entry = table.entries.add(r as usize);
        core::ptr::addr_of_mut!((*entry).domid).write_volatile(domid);
        AtomicU32::from_ptr(core::ptr::addr_of_mut!((*entry).frame))
            .store(frame, Ordering::Relaxed);
    }
    // domid and frame must be visible before the entry becomes valid.
    fence(Ordering::Release);
    let flags = GTF_PERMIT_ACCESS | if readonly { GTF_READONLY } else { 0 };
    table.flags(r).store(flags, Ordering::Release);
    Ok(r)
}

/// Revoke a grant. Refuses with [`Error::GrantBusy`] while the grantee has it mapped.
pub fn end_access(r: GrantRef) -> Result<(), Error> {
    let mut guard = TABLE.lock();
    let table = guard
        .as_mut()
        .ok_or(Error::InvalidArgument { op: Op::Revoke })?;
    table.check_ref(Op::Revoke, r)?;
    let flags = table.flags(r);
    let mut current = flags.load(Ordering::Acquire);
    loop {
        if current & (GTF_READING | GTF_WRITING) != 0 {
            return Err(Error::GrantBusy {
                gref: xen_platform::GrantRef(r),
            });
        }
        // Xen sets the reading/writing bits with a cmpxchg too, so this cannot race with
        // a new mapping: either we clear the entry first or we see the bits.
        match flags.compare_exchange(current, 0, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => break,
            Err(now) => current = now,
        }
    }
    table.in_use[r as usize] = false;
    table.free.push(r);
    Ok(())
}

/// Whether the grantee currently has `r` mapped (Xen's `GTF_reading`/`GTF_writing`).
pub fn is_mapped(r: GrantRef) -> Result<bool, Error> {
    let guard = TABLE.lock();
    let table = guard
        .as_ref()
        .ok_or(Error::InvalidArgument { op: Op::Revoke })?;
    table.check_ref(Op::Revoke, r)?;
    Ok(table.flags(r).load(Ordering::Acquire) & (GTF_READING | GTF_WRITING) != 0)
}

/// Grant references still free.
pub fn free_refs() -> usize {
    TABLE.lock().as_ref().map_or(0, |t| t.free.len())
}

/// Map page `r` that domain `dom` granted us at `va` (a reserved, empty page of the map
/// area). Returns Xen's handle for [`unmap_at`].
pub fn map_at(va: u64, dom: DomId, r: GrantRef, readonly: bool) -> Result<u32, Error> {
    let mut op = GnttabMapGrantRef {
        host_addr: va,
        flags: GNTMAP_HOST_MAP | if readonly { GNTMAP_READONLY } else { 0 },
        r#ref: r,
        dom,
        status: 0,
        handle: 0,
        dev_bus_addr: 0,
    };
    // SAFETY: one gnttab_map_grant_ref struct; `va` is a reserved page of the map area
    // whose L1 table exists, as Xen requires for a host mapping.
    unsafe { hypercall::grant_table_op(GNTTABOP_MAP_GRANT_REF, &mut op as *mut _ as *mut u8, 1) }
        .map_err(|e| xen(Op::Map, e))?;
    check_status(Op::Map, op.status)?;
    Ok(op.handle)
}

/// Undo [`map_at`]. A stale or repeated handle fails with Xen's status (`BadHandle`...).
pub fn unmap_at(va: u64, handle: u32) -> Result<(), Error> {
    let mut op = GnttabUnmapGrantRef {
        host_addr: va,
        dev_bus_addr: 0,
        handle,
        status: 0,
        _pad0: 0,
    };
    // SAFETY: one gnttab_unmap_grant_ref struct.
    unsafe { hypercall::grant_table_op(GNTTABOP_UNMAP_GRANT_REF, &mut op as *mut _ as *mut u8, 1) }
        .map_err(|e| xen(Op::Unmap, e))?;
    check_status(Op::Unmap, op.status)
}

/// One side of a grant copy.
#[derive(Clone, Copy, Debug)]
pub enum CopyEnd {
    /// A page another domain (or we) granted, by reference.
    Grant {
        dom: DomId,
        r: GrantRef,
        offset: u16,
    },
    /// A frame of our own, by machine frame number.
    Local { mfn: u64, offset: u16 },
}

impl CopyEnd {
    fn encode(self, gref_flag: u16) -> (GnttabCopyPtr, u16) {
        match self {
            CopyEnd::Grant { dom, r, offset } => (
                GnttabCopyPtr {
                    u: r as u64,
                    domid: dom,
                    offset,
                    _pad0: 0,
                },
                gref_flag,
            ),
            CopyEnd::Local { mfn, offset } => (
                GnttabCopyPtr {
                    u: mfn,
                    domid: DOMID_SELF,
                    offset,
                    _pad0: 0,
                },
                0,
            ),
        }
    }
}

/// Copy `len` bytes from `src` to `dest` through Xen (`GNTTABOP_copy`); neither range may
/// cross a page boundary.
pub fn copy(src: CopyEnd, dest: CopyEnd, len: u16) -> Result<(), Error> {
    let (source, sflag) = src.encode(GNTCOPY_SOURCE_GREF);
    let (dest, dflag) = dest.encode(GNTCOPY_DEST_GREF);
    let mut op = GnttabCopy {
        source,
        dest,
        len,
        flags: sflag | dflag,
        status: 0,
        _pad0: 0,
    };
    // SAFETY: one gnttab_copy struct.
    unsafe { hypercall::grant_table_op(GNTTABOP_COPY, &mut op as *mut _ as *mut u8, 1) }
        .map_err(|e| xen(Op::Copy, e))?;
    check_status(Op::Copy, op.status)
}
