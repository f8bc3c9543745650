//! Xen system time (monotonic ns since boot) and wall-clock time.

use core::time::Duration;

use super::shared_info;

/// Nanoseconds of Xen system time (monotonic, since host boot).
pub fn now_ns() -> u64 {
    let info = shared_info::vcpu_time();
    // SAFETY: rdtsc has no memory effects; PV guests may execute it.
    let tsc = unsafe { core::arch::x86_64::_rdtsc() };
    info.system_time_at(tsc)
}

static BOOT_NS: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(0);

pub(crate) fn mark_boot() {
    BOOT_NS.store(now_ns(), core::sync::atomic::Ordering::Relaxed);
}

/// Time since this guest started.
pub fn uptime() -> Duration {
    Duration::from_nanos(
        now_ns().saturating_sub(BOOT_NS.load(core::sync::atomic::Ordering::Relaxed)),
    )
}

/// Wall-clock time as a duration since the Unix epoch.
pub fn wall_clock() -> Duration {
    let (sec, nsec) = shared_info::wall_clock_base();
    Duration::new(sec, nsec) + Duration::from_nanos(now_ns())
}
