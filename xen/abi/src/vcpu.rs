//! `vcpu_op` (`vcpu.h`).

use zerocopy::{Immutable, IntoBytes, KnownLayout};

pub const VCPUOP_IS_UP: u32 = 3;
pub const VCPUOP_SET_PERIODIC_TIMER: u32 = 6;
pub const VCPUOP_STOP_PERIODIC_TIMER: u32 = 7;
pub const VCPUOP_SET_SINGLESHOT_TIMER: u32 = 8;
pub const VCPUOP_STOP_SINGLESHOT_TIMER: u32 = 9;

/// Fail with `-ETIME` when the timeout is already in the past.
pub const VCPU_SSHOTTMR_FUTURE: u32 = 1;

/// `struct vcpu_set_singleshot_timer`.
#[repr(C)]
#[derive(Clone, Copy, Debug, IntoBytes, Immutable, KnownLayout)]
pub struct VcpuSetSingleshotTimer {
    /// Absolute system time in ns.
    pub timeout_abs_ns: u64,
    pub flags: u32,
    pub _pad0: u32,
}
