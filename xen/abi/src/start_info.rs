//! `struct start_info` (`xen.h`): what the domain builder hands a PV kernel in `rsi`.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Length of [`StartInfo::cmd_line`] (`MAX_GUEST_CMDLINE`).
pub const MAX_GUEST_CMDLINE: usize = 1024;
/// Prefix of [`StartInfo::magic`] for every Xen 3.x+ PV guest.
pub const MAGIC_PREFIX: &[u8] = b"xen-3.0-";
/// The full magic for a 64-bit x86 PV guest.
pub const MAGIC_X86_64: &[u8] = b"xen-3.0-x86_64";

/// `SIF_PRIVILEGED`: the domain is privileged.
pub const SIF_PRIVILEGED: u32 = 1 << 0;
/// `SIF_INITDOMAIN`: the domain is dom0.
pub const SIF_INITDOMAIN: u32 = 1 << 1;
/// `SIF_MULTIBOOT_MOD`: `mod_start` is a multiboot module list.
pub const SIF_MULTIBOOT_MOD: u32 = 1 << 2;
/// `SIF_MOD_START_PFN`: `mod_start` is a PFN, not a virtual address.
pub const SIF_MOD_START_PFN: u32 = 1 << 3;
/// `SIF_VIRT_P2M_4TOOLS`: the guest provides a virtual P2M list for tools.
pub const SIF_VIRT_P2M_4TOOLS: u32 = 1 << 4;

/// `struct start_info`, x86_64 layout (domU view of the `console` union).
#[repr(C)]
#[derive(Clone, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct StartInfo {
    /// `"xen-<version>-<platform>"`, NUL-padded.
    pub magic: [u8; 32],
    /// Pages allocated to the domain.
    pub nr_pages: u64,
    /// MACHINE address of the shared-info page.
    pub shared_info: u64,
    /// `SIF_*` flags.
    pub flags: u32,
    pub _pad0: u32,
    /// MACHINE frame of the xenstore ring page.
    pub store_mfn: u64,
    /// Event channel of the xenstore ring.
    pub store_evtchn: u32,
    pub _pad1: u32,
    /// `console.domU.mfn`: MACHINE frame of the console ring page.
    pub console_mfn: u64,
    /// `console.domU.evtchn`: event channel of the console ring.
    pub console_evtchn: u32,
    pub _pad2: u32,
    /// VIRTUAL address of the top-level bootstrap page table.
    pub pt_base: u64,
    /// Number of bootstrap page-table frames.
    pub nr_pt_frames: u64,
    /// VIRTUAL address of the pfn-to-mfn list.
    pub mfn_list: u64,
    /// VIRTUAL address (or PFN, see `SIF_MOD_START_PFN`) of the initial ramdisk.
    pub mod_start: u64,
    /// Size in bytes of the initial ramdisk.
    pub mod_len: u64,
    /// Kernel command line (`extra=` in the xl config), NUL-terminated.
    pub cmd_line: [u8; MAX_GUEST_CMDLINE],
    /// First pfn of the initial P2M table, when placed by `XEN_ELFNOTE_INIT_P2M`.
    pub first_p2m_pfn: u64,
    /// Number of pfns of the initial P2M table.
    pub nr_p2m_frames: u64,
}

impl StartInfo {
    /// The command line up to its first NUL, if it is UTF-8.
    pub fn cmd_line(&self) -> Result<&str, core::str::Utf8Error> {
        core::str::from_utf8(until_nul(&self.cmd_line))
    }

    /// The magic string up to its first NUL.
    pub fn magic(&self) -> &[u8] {
        until_nul(&self.magic)
    }

    /// Whether the magic is the one of a 64-bit x86 PV guest.
    pub fn magic_is_x86_64(&self) -> bool {
        self.magic() == MAGIC_X86_64
    }
}

fn until_nul(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn cmd_line_and_magic_stop_at_nul() {
        let mut si = StartInfo::new_zeroed();
        si.magic[..14].copy_from_slice(MAGIC_X86_64);
        si.cmd_line[..7].copy_from_slice(b"foo=bar");
        assert!(si.magic_is_x86_64());
        assert_eq!(si.cmd_line(), Ok("foo=bar"));
        si.magic[3] = b'4';
        assert!(!si.magic_is_x86_64());
        si.cmd_line[0] = 0xff;
        assert!(si.cmd_line().is_err());
    }
}
