//! x86_64 PV memory management: `mmu_update`, `mmuext_op`, `update_va_mapping`, page-table
//! entry bits, and the read-only machine-to-phys table Xen maps into every 64-bit PV guest.

use zerocopy::{Immutable, IntoBytes, KnownLayout};

/// `struct mmu_update`: `ptr` is the machine address of a PTE, low 2 bits the command.
#[repr(C)]
#[derive(Clone, Copy, Debug, IntoBytes, Immutable, KnownLayout)]
pub struct MmuUpdate {
    pub ptr: u64,
    pub val: u64,
}

/// `*ptr = val`, checked by Xen. `ptr` is a machine address.
pub const MMU_NORMAL_PT_UPDATE: u64 = 0;
/// Update the M2P entry of the frame at `ptr`.
pub const MMU_MACHPHYS_UPDATE: u64 = 1;
/// Like `MMU_NORMAL_PT_UPDATE`, preserving accessed/dirty bits.
pub const MMU_PT_UPDATE_PRESERVE_AD: u64 = 2;

/// `struct mmuext_op` (both argument unions are 64-bit on x86_64).
#[repr(C)]
#[derive(Clone, Copy, Debug, IntoBytes, Immutable, KnownLayout)]
pub struct MmuextOp {
    pub cmd: u32,
    pub _pad0: u32,
    /// `mfn` or `linear_addr`.
    pub arg1: u64,
    /// `nr_ents`, `vcpumask` or `src_mfn`.
    pub arg2: u64,
}

pub const MMUEXT_PIN_L1_TABLE: u32 = 0;
pub const MMUEXT_PIN_L2_TABLE: u32 = 1;
pub const MMUEXT_PIN_L3_TABLE: u32 = 2;
pub const MMUEXT_PIN_L4_TABLE: u32 = 3;
pub const MMUEXT_UNPIN_TABLE: u32 = 4;
pub const MMUEXT_NEW_BASEPTR: u32 = 5;
pub const MMUEXT_TLB_FLUSH_LOCAL: u32 = 6;
pub const MMUEXT_INVLPG_LOCAL: u32 = 7;

/// `update_va_mapping` flags.
pub const UVMF_NONE: u64 = 0;
pub const UVMF_TLB_FLUSH: u64 = 1;
pub const UVMF_INVLPG: u64 = 2;
pub const UVMF_LOCAL: u64 = 0;
pub const UVMF_ALL: u64 = 4;

/// `DOMID_SELF` as the `foreigndom` argument of `mmu_update`/`mmuext_op`.
pub const DOMID_SELF_FOREIGN: u64 = crate::DOMID_SELF as u64;

/// Page-table entry bits.
pub const PTE_PRESENT: u64 = 1 << 0;
pub const PTE_RW: u64 = 1 << 1;
pub const PTE_USER: u64 = 1 << 2;
pub const PTE_ACCESSED: u64 = 1 << 5;
pub const PTE_DIRTY: u64 = 1 << 6;
pub const PTE_PSE: u64 = 1 << 7;
pub const PTE_NX: u64 = 1 << 63;
/// Bits 12..=51 of an entry: the machine frame address.
pub const PTE_ADDR_MASK: u64 = 0x000f_ffff_ffff_f000;

/// Entries per page table.
pub const PT_ENTRIES: usize = 512;

/// Start of the read-only machine-to-phys table (`MACH2PHYS_VIRT_START`, x86_64).
pub const MACH2PHYS_VIRT_START: u64 = 0xffff_8000_0000_0000;
/// End of the machine-to-phys table (`MACH2PHYS_VIRT_END`).
pub const MACH2PHYS_VIRT_END: u64 = 0xffff_8040_0000_0000;
/// Start of the area reserved to Xen in a 64-bit PV guest's address space.
pub const HYPERVISOR_VIRT_START: u64 = 0xffff_8000_0000_0000;
/// End of the area reserved to Xen.
pub const HYPERVISOR_VIRT_END: u64 = 0xffff_8800_0000_0000;

/// `INVALID_P2M_ENTRY`.
pub const INVALID_P2M_ENTRY: u64 = !0;

/// `struct trap_info`: one entry of the virtual IDT given to `set_trap_table`; the array
/// ends with an entry whose `address` is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug, IntoBytes, Immutable, KnownLayout)]
pub struct TrapInfo {
    pub vector: u8,
    /// Bits 0-1: the privilege level allowed to raise the vector with `int`; bit 2: mask
    /// event upcalls on entry.
    pub flags: u8,
    pub cs: u16,
    pub _pad0: u32,
    pub address: u64,
}

/// `FLAT_KERNEL_CS` on x86_64 (ring 3, 64-bit).
pub const FLAT_KERNEL_CS: u16 = 0xe033;
