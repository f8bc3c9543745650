//! The Linux UAPI of the Xen character devices, from `xen/sys/{evtchn,gntdev,gntalloc}.h`
//! (as Debian's libxen-dev ships them). `tests/layout.rs` compiles a C program against those
//! headers and checks every size, offset and ioctl number here.
//!
//! Only the x86_64/aarch64 (64-bit little-endian) layout is described: the grant-copy
//! segment embeds a user pointer in a union.

#![allow(missing_docs)] // the C headers document these names

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

#[cfg(not(all(
    target_os = "linux",
    target_pointer_width = "64",
    target_endian = "little"
)))]
compile_error!("xen-linux describes the 64-bit little-endian Linux UAPI only");

/// `_IOC(_IOC_NONE, ty, nr, size)`: every Xen device ioctl uses direction "none" and encodes
/// the argument size.
pub const fn ioc_none(ty: u8, nr: u8, size: usize) -> u64 {
    // _IOC_NRSHIFT 0, _IOC_TYPESHIFT 8, _IOC_SIZESHIFT 16, _IOC_DIRSHIFT 30, _IOC_NONE 0.
    ((size as u64) << 16) | ((ty as u64) << 8) | nr as u64
}

// ---- /dev/xen/evtchn (xen/sys/evtchn.h) -------------------------------------------------

/// `struct ioctl_evtchn_bind_virq`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct EvtchnBindVirq {
    pub virq: u32,
}

/// `struct ioctl_evtchn_bind_interdomain`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct EvtchnBindInterdomain {
    pub remote_domain: u32,
    pub remote_port: u32,
}

/// `struct ioctl_evtchn_bind_unbound_port`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct EvtchnBindUnboundPort {
    pub remote_domain: u32,
}

/// `struct ioctl_evtchn_unbind` and `struct ioctl_evtchn_notify` (same layout).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct EvtchnPort {
    pub port: u32,
}

pub const IOCTL_EVTCHN_BIND_VIRQ: u64 = ioc_none(b'E', 0, size_of::<EvtchnBindVirq>());
pub const IOCTL_EVTCHN_BIND_INTERDOMAIN: u64 =
    ioc_none(b'E', 1, size_of::<EvtchnBindInterdomain>());
pub const IOCTL_EVTCHN_BIND_UNBOUND_PORT: u64 =
    ioc_none(b'E', 2, size_of::<EvtchnBindUnboundPort>());
pub const IOCTL_EVTCHN_UNBIND: u64 = ioc_none(b'E', 3, size_of::<EvtchnPort>());
pub const IOCTL_EVTCHN_NOTIFY: u64 = ioc_none(b'E', 4, size_of::<EvtchnPort>());
pub const IOCTL_EVTCHN_RESET: u64 = ioc_none(b'E', 5, 0);

// ---- /dev/xen/gntdev (xen/sys/gntdev.h) --------------------------------------------------

/// `struct ioctl_gntdev_grant_ref`: one (domain, reference) to map.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GntdevGrantRef {
    pub domid: u32,
    pub gref: u32,
}

/// The fixed head of `struct ioctl_gntdev_map_grant_ref`; `count` [`GntdevGrantRef`]s
/// follow it (the C struct declares `refs[1]`, so its `sizeof` includes one of them).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GntdevMapGrantRefHead {
    pub count: u32,
    pub pad: u32,
    /// OUT: the offset to pass to `mmap`.
    pub index: u64,
}

/// `struct ioctl_gntdev_unmap_grant_ref`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GntdevUnmapGrantRef {
    pub index: u64,
    pub count: u32,
    pub pad: u32,
}

/// `struct ioctl_gntdev_unmap_notify` and `struct ioctl_gntalloc_unmap_notify` (same
/// layout, different ioctl numbers).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout,
)]
#[repr(C)]
pub struct UnmapNotify {
    /// Offset in the device file of the byte to clear (mmap offset + byte offset).
    pub index: u64,
    /// `UNMAP_NOTIFY_*` bits.
    pub action: u32,
    pub event_channel_port: u32,
}

/// Clear (set to zero) the byte at `index` when the pages are unmapped / freed.
pub const UNMAP_NOTIFY_CLEAR_BYTE: u32 = 0x1;
/// Notify `event_channel_port` when the pages are unmapped / freed.
pub const UNMAP_NOTIFY_SEND_EVENT: u32 = 0x2;

/// `struct ioctl_gntdev_grant_copy_segment`. `source` and `dest` are the C union of a user
/// pointer (`virt`) and `foreign { uint32_t ref; uint16_t offset; uint16_t domid; }`,
/// stored here as its 8 raw bytes; `flags` says which one each is.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GntdevGrantCopySegment {
    pub source: u64,
    pub dest: u64,
    pub len: u16,
    pub flags: u16,
    /// OUT: `GNTST_*`.
    pub status: i16,
    /// Tail padding of the C struct, made explicit.
    pub pad: u16,
}

impl GntdevGrantCopySegment {
    /// The `foreign` member of the union, as its bytes read as a little-endian `u64`.
    pub const fn foreign(gref: u32, offset: u16, domid: u16) -> u64 {
        gref as u64 | (offset as u64) << 32 | (domid as u64) << 48
    }
}

/// `GNTCOPY_source_gref` (`xen/grant_table.h`): the source is a grant reference.
pub const GNTCOPY_SOURCE_GREF: u16 = 1 << 0;
/// `GNTCOPY_dest_gref`: the destination is a grant reference.
pub const GNTCOPY_DEST_GREF: u16 = 1 << 1;

/// `struct ioctl_gntdev_grant_copy`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GntdevGrantCopy {
    pub count: u32,
    pub pad: u32,
    /// `struct ioctl_gntdev_grant_copy_segment *segments`.
    pub segments: u64,
}

pub const IOCTL_GNTDEV_MAP_GRANT_REF: u64 = ioc_none(
    b'G',
    0,
    size_of::<GntdevMapGrantRefHead>() + size_of::<GntdevGrantRef>(),
);
pub const IOCTL_GNTDEV_UNMAP_GRANT_REF: u64 = ioc_none(b'G', 1, size_of::<GntdevUnmapGrantRef>());
pub const IOCTL_GNTDEV_SET_UNMAP_NOTIFY: u64 = ioc_none(b'G', 7, size_of::<UnmapNotify>());
pub const IOCTL_GNTDEV_GRANT_COPY: u64 = ioc_none(b'G', 8, size_of::<GntdevGrantCopy>());

// ---- /dev/xen/gntalloc (xen/sys/gntalloc.h) ----------------------------------------------

/// The fixed head of `struct ioctl_gntalloc_alloc_gref`; `count` `u32` grant references
/// follow it (OUT). The C struct declares `gref_ids[1]`, so its `sizeof` includes one (and
/// tail padding).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GntallocAllocGrefHead {
    pub domid: u16,
    /// `GNTALLOC_FLAG_*`.
    pub flags: u16,
    pub count: u32,
    /// OUT: the offset to pass to `mmap`.
    pub index: u64,
}

/// Grant the pages writable (else read-only).
pub const GNTALLOC_FLAG_WRITABLE: u16 = 1;

/// `struct ioctl_gntalloc_dealloc_gref`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct GntallocDeallocGref {
    pub index: u64,
    pub count: u32,
    /// Tail padding of the C struct, made explicit.
    pub pad: u32,
}

/// `sizeof(struct ioctl_gntalloc_alloc_gref)`: the head, one `gref_ids` entry, padding.
pub const GNTALLOC_ALLOC_GREF_SIZE: usize =
    (size_of::<GntallocAllocGrefHead>() + size_of::<u32>()).next_multiple_of(8);

pub const IOCTL_GNTALLOC_ALLOC_GREF: u64 = ioc_none(b'G', 5, GNTALLOC_ALLOC_GREF_SIZE);
pub const IOCTL_GNTALLOC_DEALLOC_GREF: u64 = ioc_none(b'G', 6, size_of::<GntallocDeallocGref>());
pub const IOCTL_GNTALLOC_SET_UNMAP_NOTIFY: u64 = ioc_none(b'G', 7, size_of::<UnmapNotify>());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ioctl_numbers_encode_type_number_and_size() {
        // Worked by hand from _IOC(_IOC_NONE, 'E', 1, 8).
        assert_eq!(IOCTL_EVTCHN_BIND_INTERDOMAIN, 0x0008_4501);
        assert_eq!(IOCTL_EVTCHN_RESET, 0x0000_4505);
        // _IOC(_IOC_NONE, 'G', 0, 24)
        assert_eq!(IOCTL_GNTDEV_MAP_GRANT_REF, 0x0018_4700);
    }

    #[test]
    fn foreign_union_member_is_ref_offset_domid_in_memory_order() {
        let raw = GntdevGrantCopySegment::foreign(0x1122_3344, 0x5566, 0x7788);
        assert_eq!(
            raw.to_le_bytes(),
            [0x44, 0x33, 0x22, 0x11, 0x66, 0x55, 0x88, 0x77]
        );
    }
}
