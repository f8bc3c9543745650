//! Entry point, Xen ELF notes, the hypercall page and the boot stack.
//!
//! The domain builder starts vCPU 0 in 64-bit guest-kernel mode (ring 3) at `_start` with
//! `rsi` = start_info, `rsp` = top of a one-page stack, event upcalls masked. We switch to
//! our own stack (with an unmapped guard page below it) and enter Rust.

use core::arch::global_asm;

/// Size of the kernel stack every guest runs on.
pub const STACK_SIZE: usize = 256 * 1024;

global_asm!(
    r#"
    .section .note.Xen, "a", @note
    .macro xen_note type, payload_directive, payload
    .balign 4
    .long 4, 2f - 1f, \type
    .asciz "Xen"
1:  \payload_directive \payload
2:  .balign 4
    .endm
    .macro xen_note_str type, text
    .balign 4
    .long 4, 2f - 1f, \type
    .asciz "Xen"
1:  .asciz "\text"
2:  .balign 4
    .endm
    xen_note_str 6, "RustXenPV"                     /* GUEST_OS */
    xen_note_str 7, "0.1"                           /* GUEST_VERSION */
    xen_note_str 5, "xen-3.0"                       /* XEN_VERSION */
    xen_note_str 8, "generic"                       /* LOADER */
    xen_note 3,  .quad,  0                          /* VIRT_BASE */
    xen_note 4,  .quad,  0                          /* PADDR_OFFSET */
    xen_note 1,  .quad,  _start                     /* ENTRY */
    xen_note 2,  .quad,  xen_pv_hypercall_page      /* HYPERCALL_PAGE */
    xen_note_str 10, "!writable_page_tables"        /* FEATURES */

    .section .text.xen_pv_boot, "ax", @progbits
    .globl _start
    .type _start, @function
_start:
    cld
    mov %rsi, %rdi                       /* arg 0: start_info */
    mov %rsp, %rsi                       /* arg 1: the stack Xen gave us */
    lea xen_pv_stack_top(%rip), %rsp
    xor %ebp, %ebp
    call xen_pv_rust_start
1:  ud2
    jmp 1b
    .size _start, . - _start

    /* Xen fills this page with one 32-byte stub per hypercall. */
    .section .text.xen_pv_hypercall_page, "ax", @progbits
    .balign 4096
    .globl xen_pv_hypercall_page
xen_pv_hypercall_page:
    .fill 4096, 1, 0xcc

    .section .bss.xen_pv_stack, "aw", @nobits
    .balign 4096
    .globl xen_pv_stack_guard, xen_pv_stack_top
xen_pv_stack_guard:
    .skip 4096
    .skip {stack_size}
xen_pv_stack_top:

    /* Its frame is given up: the page is remapped onto Xen's shared_info. */
    .section .bss.xen_pv_shared_info, "aw", @nobits
    .balign 4096
    .globl xen_pv_shared_info_page
xen_pv_shared_info_page:
    .skip 4096
"#,
    stack_size = const STACK_SIZE,
    options(att_syntax)
);

unsafe extern "C" {
    pub static xen_pv_hypercall_page: u8;
    pub static xen_pv_stack_guard: u8;
    pub static xen_pv_shared_info_page: u8;
    pub static _end: u8;
    pub static _text: u8;
    pub static _etext: u8;
}

/// Virtual address of the page remapped onto shared_info.
pub fn shared_info_va() -> u64 {
    (&raw const xen_pv_shared_info_page) as u64
}

/// Virtual address of the unmapped guard page below the stack.
pub fn stack_guard_va() -> u64 {
    (&raw const xen_pv_stack_guard) as u64
}
