//! Xen ELF note types (`elfnote.h`), read by the domain builder from a PT_NOTE segment
//! whose notes are named `"Xen"`.

/// The note name every Xen note carries.
pub const NAME: &[u8] = b"Xen";

pub const INFO: u32 = 0;
pub const ENTRY: u32 = 1;
pub const HYPERCALL_PAGE: u32 = 2;
pub const VIRT_BASE: u32 = 3;
pub const PADDR_OFFSET: u32 = 4;
pub const XEN_VERSION: u32 = 5;
pub const GUEST_OS: u32 = 6;
pub const GUEST_VERSION: u32 = 7;
pub const LOADER: u32 = 8;
pub const PAE_MODE: u32 = 9;
pub const FEATURES: u32 = 10;
pub const BSD_SYMTAB: u32 = 11;
pub const HV_START_LOW: u32 = 12;
pub const L1_MFN_VALID: u32 = 13;
pub const SUSPEND_CANCEL: u32 = 14;
pub const INIT_P2M: u32 = 15;
pub const MOD_START_PFN: u32 = 16;
pub const SUPPORTED_FEATURES: u32 = 17;
pub const PHYS32_ENTRY: u32 = 18;

/// A human name for a note type, for diagnostics.
pub fn name(kind: u32) -> Option<&'static str> {
    Some(match kind {
        INFO => "INFO",
        ENTRY => "ENTRY",
        HYPERCALL_PAGE => "HYPERCALL_PAGE",
        VIRT_BASE => "VIRT_BASE",
        PADDR_OFFSET => "PADDR_OFFSET",
        XEN_VERSION => "XEN_VERSION",
        GUEST_OS => "GUEST_OS",
        GUEST_VERSION => "GUEST_VERSION",
        LOADER => "LOADER",
        PAE_MODE => "PAE_MODE",
        FEATURES => "FEATURES",
        BSD_SYMTAB => "BSD_SYMTAB",
        HV_START_LOW => "HV_START_LOW",
        L1_MFN_VALID => "L1_MFN_VALID",
        SUSPEND_CANCEL => "SUSPEND_CANCEL",
        INIT_P2M => "INIT_P2M",
        MOD_START_PFN => "MOD_START_PFN",
        SUPPORTED_FEATURES => "SUPPORTED_FEATURES",
        PHYS32_ENTRY => "PHYS32_ENTRY",
        _ => return None,
    })
}
