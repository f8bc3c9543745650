//! The x86_64 PV guest platform (only built for `target_os = "none"`).

pub mod boot;
pub mod console;
pub mod evtchn;
pub mod gnttab;
pub mod hypercall;
pub mod mm;
pub mod platform;
pub mod runtime;
pub mod sched;
pub mod shared_info;
pub mod time;
pub mod traps;
