//! `grant_table_op` (`grant_table.h`), grant table v1.

use crate::{DomId, GrantRef};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

pub const GNTTABOP_MAP_GRANT_REF: u32 = 0;
pub const GNTTABOP_UNMAP_GRANT_REF: u32 = 1;
pub const GNTTABOP_SETUP_TABLE: u32 = 2;
pub const GNTTABOP_DUMP_TABLE: u32 = 3;
pub const GNTTABOP_COPY: u32 = 5;
pub const GNTTABOP_QUERY_SIZE: u32 = 6;
pub const GNTTABOP_SET_VERSION: u32 = 8;
pub const GNTTABOP_GET_VERSION: u32 = 10;

/// `struct grant_entry_v1`: one slot of the guest's grant table. The guest writes
/// `domid` and `frame` first, then `flags` (with a write barrier in between).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct GrantEntryV1 {
    pub flags: u16,
    pub domid: DomId,
    pub frame: u32,
}

/// Entries per 4 KiB grant-table frame (v1).
pub const ENTRIES_PER_FRAME_V1: usize = crate::PAGE_SIZE / core::mem::size_of::<GrantEntryV1>();
/// Grant references below this are reserved for the toolstack (console, xenstore).
pub const NR_RESERVED_ENTRIES: u32 = 8;
/// `GNTTAB_RESERVED_CONSOLE`.
pub const RESERVED_CONSOLE: GrantRef = 0;
/// `GNTTAB_RESERVED_XENSTORE`.
pub const RESERVED_XENSTORE: GrantRef = 1;

pub const GTF_INVALID: u16 = 0;
pub const GTF_PERMIT_ACCESS: u16 = 1;
pub const GTF_ACCEPT_TRANSFER: u16 = 2;
pub const GTF_TYPE_MASK: u16 = 3;
pub const GTF_READONLY: u16 = 1 << 2;
/// Set by Xen while the grantee has the frame mapped for reading.
pub const GTF_READING: u16 = 1 << 3;
/// Set by Xen while the grantee has the frame mapped for writing.
pub const GTF_WRITING: u16 = 1 << 4;

pub const GNTMAP_DEVICE_MAP: u32 = 1 << 0;
pub const GNTMAP_HOST_MAP: u32 = 1 << 1;
pub const GNTMAP_READONLY: u32 = 1 << 2;
pub const GNTMAP_APPLICATION_MAP: u32 = 1 << 3;
pub const GNTMAP_CONTAINS_PTE: u32 = 1 << 4;

pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;

/// Status of one grant-table operation (`GNTST_*` in `public/grant_table.h`). Map, unmap and
/// copy report these per operation, distinct from the hypercall's own errno.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(i16)]
pub enum GrantStatus {
    /// General undefined error.
    GeneralError = -1,
    /// Unrecognised domain id.
    BadDomain = -2,
    /// Unrecognised or inappropriate grant reference.
    BadGntref = -3,
    /// Unrecognised or inappropriate handle.
    BadHandle = -4,
    /// Inappropriate virtual address to map.
    BadVirtAddr = -5,
    /// Inappropriate device address to unmap.
    BadDevAddr = -6,
    /// Out of space in the I/O MMU.
    NoDeviceSpace = -7,
    /// Not enough privilege for the operation.
    PermissionDenied = -8,
    /// Specified page was invalid for the operation.
    BadPage = -9,
    /// Copy arguments cross a page boundary.
    BadCopyArg = -10,
    /// Transfer page address too large.
    AddressTooBig = -11,
    /// Operation not done; try again.
    Eagain = -12,
    /// Out of space (handles etc.).
    NoSpace = -13,
}

impl GrantStatus {
    /// Interprets a `GNTST_*` value; `Ok(())` for `GNTST_okay`, `Err(None)` for a value Xen
    /// does not define.
    pub const fn from_code(code: i16) -> Result<(), Option<GrantStatus>> {
        Err(Some(match code {
            0 => return Ok(()),
            -1 => GrantStatus::GeneralError,
            -2 => GrantStatus::BadDomain,
            -3 => GrantStatus::BadGntref,
            -4 => GrantStatus::BadHandle,
            -5 => GrantStatus::BadVirtAddr,
            -6 => GrantStatus::BadDevAddr,
            -7 => GrantStatus::NoDeviceSpace,
            -8 => GrantStatus::PermissionDenied,
            -9 => GrantStatus::BadPage,
            -10 => GrantStatus::BadCopyArg,
            -11 => GrantStatus::AddressTooBig,
            -12 => GrantStatus::Eagain,
            -13 => GrantStatus::NoSpace,
            _ => return Err(None),
        }))
    }

    /// The `GNTST_*` number.
    pub const fn code(self) -> i16 {
        self as i16
    }

    /// The errno Linux's grant drivers report for this status, so every grant failure also
    /// has an [`Errno`](crate::errno::Errno).
    pub const fn errno(self) -> crate::errno::Errno {
        use crate::errno::Errno;
        match self {
            GrantStatus::BadDomain => Errno::ESRCH,
            GrantStatus::BadGntref | GrantStatus::BadHandle | GrantStatus::BadCopyArg => {
                Errno::EINVAL
            }
            GrantStatus::PermissionDenied => Errno::EPERM,
            GrantStatus::Eagain => Errno::EAGAIN,
            GrantStatus::NoSpace | GrantStatus::NoDeviceSpace => Errno::ENOSPC,
            GrantStatus::BadVirtAddr | GrantStatus::BadDevAddr | GrantStatus::BadPage => {
                Errno::EFAULT
            }
            GrantStatus::AddressTooBig => Errno::E2BIG,
            GrantStatus::GeneralError => Errno::EIO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_status_codes() {
        assert_eq!(GrantStatus::from_code(0), Ok(()));
        assert_eq!(
            GrantStatus::from_code(-8),
            Err(Some(GrantStatus::PermissionDenied))
        );
        assert_eq!(GrantStatus::from_code(-14), Err(None));
        assert_eq!(GrantStatus::BadHandle.errno(), crate::errno::Errno::EINVAL);
    }
}

/// `struct gnttab_setup_table`.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct GnttabSetupTable {
    pub dom: DomId,
    pub _pad0: u16,
    pub nr_frames: u32,
    /// OUT.
    pub status: i16,
    pub _pad1: [u8; 6],
    /// Guest address of an array of `nr_frames` `xen_pfn_t` (OUT: the table's frames).
    pub frame_list: u64,
}

/// `struct gnttab_query_size`.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct GnttabQuerySize {
    pub dom: DomId,
    pub _pad0: u16,
    pub nr_frames: u32,
    pub max_nr_frames: u32,
    pub status: i16,
    pub _pad1: u16,
}

/// `struct gnttab_map_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct GnttabMapGrantRef {
    pub host_addr: u64,
    pub flags: u32,
    pub r#ref: GrantRef,
    pub dom: DomId,
    /// OUT.
    pub status: i16,
    /// OUT: the handle to unmap with.
    pub handle: u32,
    /// OUT.
    pub dev_bus_addr: u64,
}

/// `struct gnttab_unmap_grant_ref`.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct GnttabUnmapGrantRef {
    pub host_addr: u64,
    pub dev_bus_addr: u64,
    pub handle: u32,
    /// OUT.
    pub status: i16,
    pub _pad0: u16,
}

/// One side of a `gnttab_copy`: a grant reference or a frame of the caller.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct GnttabCopyPtr {
    /// `ref` (with `GNTCOPY_*_gref`) or `gmfn`.
    pub u: u64,
    pub domid: DomId,
    pub offset: u16,
    pub _pad0: u32,
}

/// `struct gnttab_copy`.
#[repr(C)]
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct GnttabCopy {
    pub source: GnttabCopyPtr,
    pub dest: GnttabCopyPtr,
    pub len: u16,
    pub flags: u16,
    /// OUT.
    pub status: i16,
    pub _pad0: u16,
}
