//! `sched_op` (`sched.h`).

use zerocopy::{Immutable, IntoBytes, KnownLayout};

pub const SCHEDOP_YIELD: u32 = 0;
pub const SCHEDOP_BLOCK: u32 = 1;
pub const SCHEDOP_SHUTDOWN: u32 = 2;
pub const SCHEDOP_POLL: u32 = 3;
pub const SCHEDOP_REMOTE_SHUTDOWN: u32 = 4;
pub const SCHEDOP_SHUTDOWN_CODE: u32 = 5;
pub const SCHEDOP_WATCHDOG: u32 = 6;

/// Why a domain shut down (`SHUTDOWN_*`); `xl` applies `on_poweroff`/`on_reboot`/`on_crash`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShutdownReason {
    Poweroff = 0,
    Reboot = 1,
    Suspend = 2,
    Crash = 3,
    Watchdog = 4,
    SoftReset = 5,
}

/// `struct sched_shutdown`. Passed by pointer (passing the reason by value is a known
/// bug of some bindings: Xen reads it through the pointer).
#[repr(C)]
#[derive(Clone, Copy, Debug, IntoBytes, Immutable, KnownLayout)]
pub struct SchedShutdown {
    pub reason: u32,
}

/// `struct sched_poll`: block until one of `ports` is pending or system time `timeout`
/// (absolute ns; 0 = none) passes.
#[repr(C)]
#[derive(Clone, Copy, Debug, IntoBytes, Immutable, KnownLayout)]
pub struct SchedPoll {
    /// Guest virtual address of an array of `evtchn_port_t`.
    pub ports: u64,
    pub nr_ports: u32,
    pub _pad0: u32,
    pub timeout: u64,
}

/// Xen refuses a `SCHEDOP_poll` with more ports than this (`-EINVAL`).
pub const SCHED_POLL_MAX_PORTS: usize = 128;
