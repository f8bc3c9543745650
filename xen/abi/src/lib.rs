//! The Xen 4.17 public ABI for x86_64 paravirtualised guests, defined by this project.
//!
//! Every type here mirrors a structure of Xen's public headers (`xen/include/public`, as
//! shipped by Debian's `libxen-dev` in `/usr/include/xen`) byte for byte. Padding that C
//! leaves implicit is spelled out as `_pad` fields so the types can derive zerocopy's
//! `IntoBytes`/`FromBytes`. `tests/layout.rs` compiles a C program against the real headers
//! and checks the size and every field offset of every type, so a mistake here cannot hide.
//!
//! Only what the toolkit uses is defined; names follow the C names in Rust case.
//! This crate holds data definitions only: no hypercalls, no `unsafe`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

pub mod console;
pub mod elfnote;
pub mod errno;
pub mod event_channel;
pub mod grant_table;
pub mod hypercall;
pub mod memory;
pub mod mm;
pub mod sched;
pub mod shared_info;
pub mod start_info;
pub mod vcpu;
pub mod version;

/// Size of a guest page (x86 4 KiB pages).
pub const PAGE_SIZE: usize = 4096;
/// log2 of [`PAGE_SIZE`].
pub const PAGE_SHIFT: u32 = 12;

/// A domain id (`domid_t`).
pub type DomId = u16;
/// `DOMID_SELF`: the calling domain.
pub const DOMID_SELF: DomId = 0x7ff0;
/// `DOMID_IO`.
pub const DOMID_IO: DomId = 0x7ff1;
/// `DOMID_XEN`.
pub const DOMID_XEN: DomId = 0x7ff2;

/// An event-channel port (`evtchn_port_t`).
pub type EvtchnPort = u32;
/// A grant reference (`grant_ref_t`).
pub type GrantRef = u32;
