//! Hypercall numbers (`xen.h`, `__HYPERVISOR_*`) and the x86_64 PV calling convention.
//!
//! A 64-bit PV guest calls hypercall `n` at `hypercall_page + 32 * n` with arguments in
//! `rdi, rsi, rdx, r10, r8` (five at most) and the result in `rax`. Negative results are
//! Xen errno values ([`crate::errno`]).

pub const SET_TRAP_TABLE: u32 = 0;
pub const MMU_UPDATE: u32 = 1;
pub const SET_GDT: u32 = 2;
pub const STACK_SWITCH: u32 = 3;
pub const SET_CALLBACKS: u32 = 4;
pub const FPU_TASKSWITCH: u32 = 5;
pub const PLATFORM_OP: u32 = 7;
pub const MEMORY_OP: u32 = 12;
pub const MULTICALL: u32 = 13;
pub const UPDATE_VA_MAPPING: u32 = 14;
pub const SET_TIMER_OP: u32 = 15;
pub const XEN_VERSION: u32 = 17;
pub const CONSOLE_IO: u32 = 18;
pub const GRANT_TABLE_OP: u32 = 20;
pub const VM_ASSIST: u32 = 21;
pub const VCPU_OP: u32 = 24;
pub const SET_SEGMENT_BASE: u32 = 25;
pub const MMUEXT_OP: u32 = 26;
pub const SCHED_OP: u32 = 29;
pub const CALLBACK_OP: u32 = 30;
pub const EVENT_CHANNEL_OP: u32 = 32;
pub const PHYSDEV_OP: u32 = 33;

/// Size of one stub in the hypercall page.
pub const STUB_SIZE: usize = 32;

/// `console_io` command: write to Xen's own console (refused to a domU on release Xen).
pub const CONSOLEIO_WRITE: u32 = 0;
/// `console_io` command: read from Xen's own console.
pub const CONSOLEIO_READ: u32 = 1;
