//! CPU exceptions: a virtual IDT (`set_trap_table`) whose handlers report the fault on the
//! console and crash the domain, instead of Xen killing it silently.
//!
//! Xen delivers a PV exception by pushing `ss, rsp, rflags, cs, rip, [error code], r11,
//! rcx` on the guest kernel stack. The stubs restore `rcx`/`r11`, push a dummy error code
//! where the CPU has none and the vector number, then call [`xen_pv_fatal_trap`] with a
//! pointer to that frame. Handlers never return: a guest fault is a bug, reported once.
//! A stack overflow into the guard page cannot be reported this way (Xen has no stack to
//! push the frame on); Xen then crashes the domain itself.

use core::fmt::Write as _;
use core::sync::atomic::{AtomicBool, Ordering};

use xen_abi::mm::{FLAT_KERNEL_CS, TrapInfo};

use super::console::EmergencyConsole;
use super::runtime::{Shutdown, shutdown};
use super::{hypercall, shared_info};

// One stub per vector: the second word says whether the CPU pushes an error code.
macro_rules! vectors {
    ($($vec:literal $has:ident $name:ident),* $(,)?) => {
        core::arch::global_asm!(
            $(concat!(
                ".section .text.xen_pv_traps, \"ax\", @progbits\n",
                ".globl xen_pv_trap_", $vec, "\n",
                "xen_pv_trap_", $vec, ":\n",
                "    pop %rcx\n",
                "    pop %r11\n",
                vectors!(@errcode $has),
                "    push $", $vec, "\n",
                "    jmp xen_pv_trap_common\n",
            ),)*
            ".section .text.xen_pv_traps, \"ax\", @progbits\n",
            "xen_pv_trap_common:\n",
            "    mov %rsp, %rdi\n",
            "    and $-16, %rsp\n",
            "    call xen_pv_fatal_trap\n",
            "    ud2\n",
            options(att_syntax)
        );

        unsafe extern "C" {
            $(
                #[link_name = concat!("xen_pv_trap_", $vec)]
                safe static $name: u8;
            )*
        }

        fn handlers() -> [(u8, u64); [$($vec),*].len()] {
            [$(($vec, (&raw const $name) as u64)),*]
        }
    };
    (@errcode noerr) => { "    push $0\n" };
    (@errcode err) => { "" };
}

vectors! {
    0 noerr DIVIDE_ERROR,
    1 noerr DEBUG,
    3 noerr BREAKPOINT,
    4 noerr OVERFLOW,
    5 noerr BOUND_RANGE,
    6 noerr INVALID_OPCODE,
    7 noerr DEVICE_NOT_AVAILABLE,
    10 err INVALID_TSS,
    11 err SEGMENT_NOT_PRESENT,
    12 err STACK_FAULT,
    13 err GENERAL_PROTECTION,
    14 err PAGE_FAULT,
    16 noerr X87_FP,
    17 err ALIGNMENT_CHECK,
    19 noerr SIMD_FP,
}

fn name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error (#DE)",
        1 => "debug exception (#DB)",
        3 => "breakpoint (#BP)",
        4 => "overflow (#OF)",
        5 => "bound range exceeded (#BR)",
        6 => "invalid opcode (#UD)",
        7 => "device not available (#NM)",
        10 => "invalid TSS (#TS)",
        11 => "segment not present (#NP)",
        12 => "stack fault (#SS)",
        13 => "general protection fault (#GP)",
        14 => "page fault (#PF)",
        16 => "x87 floating-point error (#MF)",
        17 => "alignment check (#AC)",
        19 => "SIMD floating-point error (#XM)",
        _ => "unknown exception",
    }
}

/// The frame the stubs hand to Rust, lowest address first.
#[repr(C)]
pub struct TrapFrame {
    vector: u64,
    error_code: u64,
    rip: u64,
    cs: u64,
    rflags: u64,
    rsp: u64,
    ss: u64,
}

static TABLE: spin::Once<[TrapInfo; 16]> = spin::Once::new();

/// Register the handlers with Xen.
pub(crate) fn init() -> Result<(), xen_abi::errno::Errno> {
    let table = TABLE.call_once(|| {
        let mut t = [TrapInfo {
            vector: 0,
            flags: 0,
            cs: 0,
            _pad0: 0,
            address: 0,
        }; 16];
        for (slot, (vector, address)) in t.iter_mut().zip(handlers()) {
            // #BP and #OF may be raised by `int3`/`into` from our own (ring 3) code.
            let dpl = if vector == 3 || vector == 4 { 3 } else { 0 };
            *slot = TrapInfo {
                vector,
                flags: dpl,
                cs: FLAT_KERNEL_CS,
                _pad0: 0,
                address,
            };
        }
        t // the unused tail stays zero: address 0 ends the table
    });
    // SAFETY: a live, zero-terminated array of trap_info; Xen copies it.
    let rc = unsafe {
        hypercall::raw::<{ xen_abi::hypercall::SET_TRAP_TABLE }>(table.as_ptr() as u64, 0, 0, 0, 0)
    };
    xen_abi::errno::Errno::result(rc).map(|_| ())
}

static IN_TRAP: AtomicBool = AtomicBool::new(false);

#[unsafe(no_mangle)]
extern "C" fn xen_pv_fatal_trap(frame: *const TrapFrame) -> ! {
    if IN_TRAP.swap(true, Ordering::Relaxed) {
        // A fault while reporting a fault: stop at once.
        shutdown(Shutdown::Crash);
    }
    // SAFETY: the stub passed the address of the frame it built on this stack.
    let f = unsafe { frame.read() };
    let mut out = EmergencyConsole;
    let _ = writeln!(
        out,
        "FATAL: {} at rip {:#x} (error code {:#x}, rsp {:#x}, rflags {:#x})",
        name(f.vector),
        f.rip,
        f.error_code,
        f.rsp,
        f.rflags
    );
    if f.vector == 14 {
        let addr = shared_info::vcpu0_cr2();
        let what = if f.error_code & 2 != 0 {
            "writing"
        } else {
            "reading"
        };
        let hint = if addr < 4096 { " (null pointer)" } else { "" };
        let _ = writeln!(out, "FATAL: page fault {what} address {addr:#x}{hint}");
    }
    let _ = (f.cs, f.ss);
    shutdown(Shutdown::Crash)
}
