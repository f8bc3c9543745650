//! Hypercalls through the hypercall page, with typed wrappers for what xen-pv uses.
//!
//! x86_64 PV convention: call `hypercall_page + 32 * nr`, arguments in
//! `rdi, rsi, rdx, r10, r8`, result in `rax`. A debug Xen deliberately clobbers argument
//! registers, so all of them are declared clobbered.

use core::arch::asm;

use xen_abi::errno::Errno;
use xen_abi::hypercall as nr;
use zerocopy::{Immutable, IntoBytes};

use super::boot::xen_pv_hypercall_page;

/// Issue hypercall `NR` with five raw arguments.
///
/// # Safety
/// The arguments must be valid for the hypercall: pointers must point to live memory of
/// the size and type Xen expects for `NR` and the sub-command.
#[inline(always)]
pub unsafe fn raw<const NR: u32>(a1: u64, a2: u64, a3: u64, a4: u64, a5: u64) -> i64 {
    let ret: i64;
    // SAFETY: the stub at this offset is Xen's hypercall trampoline for NR; it preserves
    // the stack and all registers but the declared clobbers. Memory safety of the
    // arguments is the caller's contract.
    unsafe {
        asm!(
            "call {page}+{offset}",
            page = sym xen_pv_hypercall_page,
            offset = const (NR as usize) * nr::STUB_SIZE,
            inlateout("rdi") a1 => _,
            inlateout("rsi") a2 => _,
            inlateout("rdx") a3 => _,
            inlateout("r10") a4 => _,
            inlateout("r8") a5 => _,
            lateout("rax") ret,
            lateout("rcx") _,
            lateout("r11") _,
            options(att_syntax)
        );
    }
    ret
}

/// A hypercall taking `(cmd, &mut arg)`; the argument struct is in/out.
///
/// # Safety
/// `T` must be the argument structure Xen expects for hypercall `NR` with `cmd`.
pub unsafe fn with_arg<const NR: u32, T: IntoBytes + Immutable>(
    cmd: u32,
    arg: &mut T,
) -> Result<i64, Errno> {
    // SAFETY: `arg` is a live, exclusively borrowed struct of the right type (caller).
    Errno::result(unsafe { raw::<NR>(cmd as u64, arg as *mut T as u64, 0, 0, 0) })
}

pub fn sched_op<T: IntoBytes + Immutable>(cmd: u32, arg: &mut T) -> Result<i64, Errno> {
    // SAFETY: sched_op arguments are plain structs; the callers in this crate pass the
    // struct that matches `cmd`.
    unsafe { with_arg::<{ nr::SCHED_OP }, T>(cmd, arg) }
}

pub fn event_channel_op<T: IntoBytes + Immutable>(cmd: u32, arg: &mut T) -> Result<i64, Errno> {
    // SAFETY: as for sched_op: callers pass the struct matching `cmd`.
    unsafe { with_arg::<{ nr::EVENT_CHANNEL_OP }, T>(cmd, arg) }
}

pub fn vcpu_op<T: IntoBytes + Immutable>(cmd: u32, vcpu: u32, arg: &mut T) -> Result<i64, Errno> {
    // SAFETY: vcpu_op(cmd, vcpu, arg); callers pass the struct matching `cmd`.
    Errno::result(unsafe {
        raw::<{ nr::VCPU_OP }>(cmd as u64, vcpu as u64, arg as *mut T as u64, 0, 0)
    })
}

/// `xen_version(cmd, buf)`: `buf` receives the result for commands that return data.
pub fn xen_version(cmd: u32, buf: Option<&mut [u8]>) -> Result<i64, Errno> {
    let ptr = buf.map_or(0, |b| b.as_mut_ptr() as u64);
    // SAFETY: for the XENVER_* commands used here Xen writes at most the size of the
    // fixed buffer type for `cmd`, which callers pass.
    Errno::result(unsafe { raw::<{ nr::XEN_VERSION }>(cmd as u64, ptr, 0, 0, 0) })
}

/// Point the page-table entry for `va` at `pte` (a full entry value).
pub fn update_va_mapping(va: u64, pte: u64, flags: u64) -> Result<(), Errno> {
    // SAFETY: Xen validates the new entry (it must reference a frame we own with a type
    // that allows the mapping); changing our own mappings is the caller's intent.
    Errno::result(unsafe { raw::<{ nr::UPDATE_VA_MAPPING }>(va, pte, flags, 0, 0) }).map(|_| ())
}

/// Apply page-table updates; Xen validates each.
pub fn mmu_update(updates: &[xen_abi::mm::MmuUpdate]) -> Result<(), Errno> {
    let mut done: u32 = 0;
    // SAFETY: `updates` is a live slice; `done` receives the count of applied updates.
    let rc = unsafe {
        raw::<{ nr::MMU_UPDATE }>(
            updates.as_ptr() as u64,
            updates.len() as u64,
            &mut done as *mut u32 as u64,
            xen_abi::mm::DOMID_SELF_FOREIGN,
            0,
        )
    };
    Errno::result(rc).map(|_| ())
}

/// Write to Xen's own console (refused to a domU by a release Xen: EPERM).
pub fn console_io_write(bytes: &[u8]) -> Result<(), Errno> {
    // SAFETY: Xen reads `len` bytes from a live slice.
    Errno::result(unsafe {
        raw::<{ nr::CONSOLE_IO }>(
            nr::CONSOLEIO_WRITE as u64,
            bytes.len() as u64,
            bytes.as_ptr() as u64,
            0,
            0,
        )
    })
    .map(|_| ())
}

/// `grant_table_op(cmd, args, count)`.
///
/// # Safety
/// `args` must point to `count` structures of the type Xen expects for `cmd`.
pub unsafe fn grant_table_op(cmd: u32, args: *mut u8, count: u32) -> Result<i64, Errno> {
    // SAFETY: forwarded contract.
    Errno::result(unsafe {
        raw::<{ nr::GRANT_TABLE_OP }>(cmd as u64, args as u64, count as u64, 0, 0)
    })
}

/// `memory_op(cmd, arg)` for commands whose argument is a domid or null.
pub fn memory_op_domid(cmd: u32, domid: u16) -> Result<i64, Errno> {
    let mut d = domid;
    // SAFETY: the XENMEM_{current,maximum}_reservation commands read one domid_t.
    Errno::result(unsafe {
        raw::<{ nr::MEMORY_OP }>(cmd as u64, &mut d as *mut u16 as u64, 0, 0, 0)
    })
}
