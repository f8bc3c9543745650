//! `struct shared_info`, `struct vcpu_info`, `struct vcpu_time_info` (`xen.h`, x86_64).
//!
//! These types document the layout and back the layout tests. A guest never forms a
//! `&SharedInfo` to the live page (Xen writes it concurrently); it reads fields with
//! volatile/atomic accesses at the offsets these types define.

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `XEN_LEGACY_MAX_VCPUS` on x86.
pub const LEGACY_MAX_VCPUS: usize = 32;
/// Number of event-channel ports of the 2-level ABI on x86_64 (64 * 64).
pub const EVTCHN_2L_NR_CHANNELS: usize = 64 * 64;

/// `struct vcpu_time_info`: Xen's per-vCPU time base, protected by `version`
/// (odd while Xen updates it).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct VcpuTimeInfo {
    pub version: u32,
    pub pad0: u32,
    /// TSC at the last update of the time values.
    pub tsc_timestamp: u64,
    /// System time (ns since boot) at `tsc_timestamp`.
    pub system_time: u64,
    /// `ns = ((tsc - tsc_timestamp) << tsc_shift) * tsc_to_system_mul >> 32`
    /// (a right shift when `tsc_shift` is negative).
    pub tsc_to_system_mul: u32,
    pub tsc_shift: i8,
    /// `XEN_PVCLOCK_*` flags.
    pub flags: u8,
    pub pad1: [u8; 2],
}

/// `struct arch_vcpu_info` (x86_64).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ArchVcpuInfo {
    pub cr2: u64,
    pub pad: u64,
}

/// `struct vcpu_info`: per-vCPU event state and time (64 bytes).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct VcpuInfo {
    /// Set by Xen when an event is pending for this vCPU.
    pub evtchn_upcall_pending: u8,
    /// Set by the guest to stop Xen from delivering upcalls.
    pub evtchn_upcall_mask: u8,
    pub pad0: [u8; 6],
    /// Selector: which words of `evtchn_pending` may have bits set.
    pub evtchn_pending_sel: u64,
    pub arch: ArchVcpuInfo,
    pub time: VcpuTimeInfo,
}

/// `struct arch_shared_info` (x86).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct ArchSharedInfo {
    pub max_pfn: u64,
    pub pfn_to_mfn_frame_list_list: u64,
    pub nmi_reason: u64,
    pub p2m_cr3: u64,
    pub p2m_vaddr: u64,
    pub p2m_generation: u64,
}

/// `struct shared_info` (x86_64).
#[repr(C)]
#[derive(Clone, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct SharedInfo {
    pub vcpu_info: [VcpuInfo; LEGACY_MAX_VCPUS],
    /// One bit per port: set by Xen when the port fires.
    pub evtchn_pending: [u64; 64],
    /// One bit per port: set by the guest to stop a port raising an upcall.
    pub evtchn_mask: [u64; 64],
    /// Wall-clock version counter (odd while Xen updates it).
    pub wc_version: u32,
    /// Wall-clock time of system time 0: seconds (low 32 bits).
    pub wc_sec: u32,
    pub wc_nsec: u32,
    /// High 32 bits of the wall-clock seconds.
    pub wc_sec_hi: u32,
    pub arch: ArchSharedInfo,
}

/// Byte offsets into the shared-info page, for volatile access.
pub mod offsets {
    use super::*;
    use core::mem::offset_of;

    pub const VCPU_INFO_SIZE: usize = core::mem::size_of::<VcpuInfo>();
    pub const UPCALL_PENDING: usize = offset_of!(VcpuInfo, evtchn_upcall_pending);
    pub const UPCALL_MASK: usize = offset_of!(VcpuInfo, evtchn_upcall_mask);
    pub const PENDING_SEL: usize = offset_of!(VcpuInfo, evtchn_pending_sel);
    pub const VCPU_TIME: usize = offset_of!(VcpuInfo, time);
    pub const EVTCHN_PENDING: usize = offset_of!(SharedInfo, evtchn_pending);
    pub const EVTCHN_MASK: usize = offset_of!(SharedInfo, evtchn_mask);
    pub const WC_VERSION: usize = offset_of!(SharedInfo, wc_version);
    pub const WC_SEC: usize = offset_of!(SharedInfo, wc_sec);
    pub const WC_NSEC: usize = offset_of!(SharedInfo, wc_nsec);
    pub const WC_SEC_HI: usize = offset_of!(SharedInfo, wc_sec_hi);
    pub const TIME_VERSION: usize = offset_of!(VcpuTimeInfo, version);
    pub const TIME_TSC_TIMESTAMP: usize = offset_of!(VcpuTimeInfo, tsc_timestamp);
    pub const TIME_SYSTEM_TIME: usize = offset_of!(VcpuTimeInfo, system_time);
    pub const TIME_MUL: usize = offset_of!(VcpuTimeInfo, tsc_to_system_mul);
    pub const TIME_SHIFT: usize = offset_of!(VcpuTimeInfo, tsc_shift);
}

impl VcpuTimeInfo {
    /// Convert a TSC reading into Xen system time (ns), per the pvclock formula.
    /// Pure function over a consistent snapshot; the caller handles `version`.
    pub fn system_time_at(&self, tsc: u64) -> u64 {
        let mut delta = tsc.wrapping_sub(self.tsc_timestamp);
        if self.tsc_shift < 0 {
            delta >>= self.tsc_shift.unsigned_abs().min(63);
        } else {
            delta <<= (self.tsc_shift as u32).min(63);
        }
        let scaled = ((delta as u128 * self.tsc_to_system_mul as u128) >> 32) as u64;
        self.system_time.wrapping_add(scaled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pvclock_scaling() {
        // 2 GHz TSC: 0.5 ns per tick = mul 2^31 with shift 0.
        let t = VcpuTimeInfo {
            tsc_timestamp: 1000,
            system_time: 5_000,
            tsc_to_system_mul: 1 << 31,
            tsc_shift: 0,
            ..Default::default()
        };
        assert_eq!(t.system_time_at(1000), 5_000);
        assert_eq!(t.system_time_at(3000), 6_000);
        let t2 = VcpuTimeInfo { tsc_shift: -1, ..t };
        assert_eq!(t2.system_time_at(5000), 6_000);
        let t3 = VcpuTimeInfo { tsc_shift: 1, ..t };
        assert_eq!(t3.system_time_at(2000), 6_000);
    }
}
