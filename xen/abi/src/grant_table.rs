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

/// Grant operation status codes (`GNTST_*`).
pub mod status {
    pub const OKAY: i16 = 0;
    pub const GENERAL_ERROR: i16 = -1;
    pub const BAD_DOMAIN: i16 = -2;
    pub const BAD_GNTREF: i16 = -3;
    pub const BAD_HANDLE: i16 = -4;
    pub const BAD_VIRT_ADDR: i16 = -5;
    pub const BAD_DEV_ADDR: i16 = -6;
    pub const NO_DEVICE_SPACE: i16 = -7;
    pub const PERMISSION_DENIED: i16 = -8;
    pub const BAD_PAGE: i16 = -9;
    pub const BAD_COPY_ARG: i16 = -10;
    pub const ADDRESS_TOO_BIG: i16 = -11;
    pub const EAGAIN: i16 = -12;
    pub const NO_SPACE: i16 = -13;

    /// The text Xen's `GNTTABOP_error_msgs` gives for a status.
    pub fn describe(status: i16) -> &'static str {
        match status {
            OKAY => "okay",
            GENERAL_ERROR => "undefined error",
            BAD_DOMAIN => "unrecognised domain id",
            BAD_GNTREF => "invalid grant reference",
            BAD_HANDLE => "invalid mapping handle",
            BAD_VIRT_ADDR => "invalid virtual address",
            BAD_DEV_ADDR => "invalid device address",
            NO_DEVICE_SPACE => "no spare translation slot in the I/O MMU",
            PERMISSION_DENIED => "permission denied",
            BAD_PAGE => "bad page",
            BAD_COPY_ARG => "copy arguments cross page boundary",
            ADDRESS_TOO_BIG => "page address size too large",
            EAGAIN => "operation not done; try again",
            NO_SPACE => "out of space",
            _ => "unknown grant status",
        }
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
