//! Run Rust as an x86_64 Xen PV guest kernel.
//!
//! A guest is a `#![no_std] #![no_main]` binary built for `x86_64-unknown-none` that
//! names its main function with [`entry!`]:
//!
//! ```ignore
//! #![no_std]
//! #![no_main]
//! xen_pv::entry!(main);
//! fn main(env: &xen_pv::Env) -> Result<(), &'static str> {
//!     xen_pv::println!("hello from {}", env.cmdline().as_str());
//!     Ok(())
//! }
//! ```
//!
//! `xen-pv` provides the boot path (Xen ELF notes, entry, stack, hypercall page,
//! start_info checks, shared_info), the console ring with flow control and a `log`
//! backend, all RAM mapped 1:1 with a page-frame allocator and a growing
//! `#[global_allocator]`, and the lifecycle (poweroff / reboot / crash, panics crash the
//! domain after printing message and location). See the crate README for the design.
//!
//! Only the portable parts (command line, frame allocator) build on other targets, so the
//! host test suite covers them.
#![cfg_attr(not(test), no_std)]

extern crate alloc;

pub mod cmdline;
pub mod frames;

#[cfg(target_os = "none")]
mod pv;

#[cfg(target_os = "none")]
pub use pv::platform::{PvGranted, PvMapping, PvPages, PvPlatform, Runtime};
#[cfg(target_os = "none")]
pub use pv::runtime::{Env, Shutdown, Termination, XenVersion, shutdown, start_info};
#[cfg(target_os = "none")]
pub use pv::{console, evtchn, gnttab, hypercall, mm, sched, shared_info, time};

/// Re-exported for guests that want the ABI definitions.
pub use xen_abi as abi;

/// Declare the guest's main function: `fn(&Env) -> impl Termination`.
#[macro_export]
macro_rules! entry {
    ($main:path) => {
        #[unsafe(export_name = "xen_pv_guest_main")]
        fn __xen_pv_guest_main(env: &$crate::Env) -> $crate::Shutdown {
            $crate::Termination::report($main(env))
        }
    };
}
