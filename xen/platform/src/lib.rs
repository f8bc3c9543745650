//! The platform boundary of the Xen toolkit, and a small async executor.
//!
//! Protocol code (rings, xenstore, vchan, netfront, blkfront) is written once against the
//! traits here and runs unchanged on three platforms: a PV guest (hypercalls), Linux
//! (`/dev/xen/*`, under tokio) and the simulated host of `xen-sim`.
//!
//! # The traits
//!
//! Small and orthogonal, in the style of rust-vmm's `vm-memory`: a driver asks only for what
//! it uses (`P: GrantShare + EventChannels + Timers`).
//!
//! | trait | what |
//! |---|---|
//! | [`PageAlloc`] | zeroed, page-aligned, shareable pages ([`PageMemory`]) |
//! | [`GrantShare`] | grant our pages to a domain, revoke (refused while mapped) |
//! | [`GrantMap`] | map pages a domain granted us ([`Mapping`], unmapped on drop) |
//! | [`GrantCopy`] | hypervisor-side copy to/from granted pages |
//! | [`EventChannels`] | alloc unbound, bind interdomain / VIRQ, notify, mask, unmask, close, async wait |
//! | [`Clock`], [`Timers`] | monotonic and wall clock, async sleep |
//!
//! [`conformance`] holds checks written against the traits that every platform must pass.
//!
//! Futures in trait signatures are plain `core::future::Future`s, so the Linux platform can
//! implement them on tokio while the PV guest and the sim use [`executor`].
//!
//! # Shared memory
//!
//! Every view of a shared page is a [`SharedMem`] from `xen-ring`: atomic and volatile
//! accesses only, never a Rust reference into memory the peer writes.
//!
//! # Errors
//!
//! One [`Error`] enum with an [`Error::errno`] mapping to Xen's [`Errno`]; grant-table
//! operations carry Xen's per-operation [`GrantStatus`].
#![no_std]
#![warn(missing_docs)]

extern crate alloc;

pub mod conformance;
pub mod errno;
pub mod error;
pub mod evtchn;
pub mod executor;
pub mod grant;
pub mod memory;
pub mod time;
pub mod types;

pub use errno::{Errno, GrantStatus};
pub use error::{Error, Op, Refused};
pub use evtchn::EventChannels;
pub use grant::{CopyOp, CopyPtr, GrantCopy, GrantMap, GrantShare, Granted};
pub use memory::{Mapping, PAGE_SIZE, PageAlloc, PageMemory};
pub use time::{Clock, Elapsed, Timers, sleep, timeout, timeout_at};
pub use types::{Access, DomId, GrantRef, Instant, Port, Virq, WallTime};
pub use xen_ring::{ReadOnlyMem, SharedMem};

/// Everything a typical split driver needs, for `fn f<P: Platform>(p: &P)`.
pub trait Platform: PageAlloc + GrantShare + GrantMap + GrantCopy + EventChannels + Timers {}

impl<T> Platform for T where
    T: PageAlloc + GrantShare + GrantMap + GrantCopy + EventChannels + Timers
{
}
