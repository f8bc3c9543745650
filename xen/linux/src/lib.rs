//! The `xen-platform` traits for Linux programs running in a Xen domain: dom0 services,
//! vchan peers, tools that talk to unikernels.
//!
//! | trait | device |
//! |---|---|
//! | [`PageAlloc`](xen_platform::PageAlloc) | anonymous `mmap` |
//! | [`GrantShare`](xen_platform::GrantShare) | `/dev/xen/gntalloc` (allocates and grants in one step) |
//! | [`GrantMap`](xen_platform::GrantMap) | `/dev/xen/gntdev` (`MAP_GRANT_REF` + `mmap`) |
//! | [`GrantCopy`](xen_platform::GrantCopy) | `/dev/xen/gntdev` (`GRANT_COPY`) |
//! | [`EventChannels`](xen_platform::EventChannels) | `/dev/xen/evtchn`, one reader task per platform |
//! | [`Clock`](xen_platform::Clock), [`Timers`](xen_platform::Timers) | `CLOCK_MONOTONIC`, tokio timers |
//!
//! ```no_run
//! # async fn f() -> Result<(), Box<dyn std::error::Error>> {
//! use xen_platform::{Access, DomId, EventChannels, GrantShare, Granted};
//! let xen = xen_linux::LinuxPlatform::open()?; // inside a tokio runtime
//! let page = xen.share_pages(1, DomId(5), Access::ReadWrite)?;
//! let port = xen.alloc_unbound(DomId(5))?;
//! // advertise page.refs()[0] and port through xenstore, then:
//! xen.wait(port).await?;
//! # Ok(()) }
//! ```
//!
//! Differences from the trait contracts forced by the Linux devices (see the README):
//! [`GrantShare::revoke`](xen_platform::GrantShare::revoke) never reports `GrantBusy`
//! (gntalloc cannot tell), [`GrantShare::grant`](xen_platform::GrantShare::grant) copies,
//! and refused mappings report `EINVAL` rather than Xen's `GNTST_*` status.
//!
//! All `unsafe` code is in one module (`sys`); shared memory is only reachable as
//! [`xen_ring::SharedMem`] views.
#![warn(missing_docs)]

mod abi;
mod error;
mod evtchn;
mod platform;
mod sys;

pub use error::OpenError;
pub use platform::{
    EVTCHN_DEVICE, GNTALLOC_DEVICE, GNTDEV_DEVICE, LinuxGranted, LinuxMapping, LinuxPages,
    LinuxPlatform, UnmapNotify,
};

/// The ioctl ABI this crate speaks, exposed for the layout test against the C headers.
#[doc(hidden)]
pub mod uapi {
    pub use crate::abi::*;
}
