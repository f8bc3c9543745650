//! Access to the shared-info page Xen updates concurrently: vCPU time, event-channel
//! pending/mask bitmaps, wall clock. Only volatile and atomic accesses, never `&T`.

use core::sync::atomic::{AtomicPtr, AtomicU64, Ordering, fence};

use xen_abi::shared_info::{EVTCHN_2L_NR_CHANNELS, VcpuTimeInfo, offsets};

static PAGE: AtomicPtr<u8> = AtomicPtr::new(core::ptr::null_mut());

/// Record where the shared-info page is mapped (boot, once).
pub(crate) fn set_page(va: *mut u8) {
    PAGE.store(va, Ordering::Release);
}

fn page() -> *mut u8 {
    let p = PAGE.load(Ordering::Acquire);
    assert!(!p.is_null(), "shared_info used before it was mapped");
    p
}

fn read_u8(off: usize) -> u8 {
    // SAFETY: `off` is a constant offset inside the 4 KiB shared-info page mapped at boot.
    unsafe { page().add(off).read_volatile() }
}

fn read_u32(off: usize) -> u32 {
    // SAFETY: as above; offsets come from the layout-checked ABI and are 4-aligned.
    unsafe { (page().add(off) as *const u32).read_volatile() }
}

fn read_u64(off: usize) -> u64 {
    // SAFETY: as above; 8-aligned offsets.
    unsafe { (page().add(off) as *const u64).read_volatile() }
}

pub(crate) fn write_u8(off: usize, v: u8) {
    // SAFETY: as above; the guest owns the byte it writes (upcall mask).
    unsafe { page().add(off).write_volatile(v) }
}

/// The faulting address of vCPU 0's last page fault (Xen stores CR2 in `arch.cr2`).
pub fn vcpu0_cr2() -> u64 {
    read_u64(core::mem::offset_of!(xen_abi::shared_info::VcpuInfo, arch))
}

/// vCPU 0's event upcall mask byte (we run with upcalls masked: see `crate::pv::events`).
pub(crate) fn set_upcall_mask(masked: bool) {
    write_u8(offsets::UPCALL_MASK, masked as u8);
}

/// A consistent snapshot of vCPU 0's time info (the version protocol: retry while Xen
/// is updating, i.e. version odd or changed under us).
pub fn vcpu_time() -> VcpuTimeInfo {
    let base = offsets::VCPU_TIME;
    loop {
        let v1 = read_u32(base + offsets::TIME_VERSION);
        fence(Ordering::Acquire);
        let snapshot = VcpuTimeInfo {
            version: v1,
            pad0: 0,
            tsc_timestamp: read_u64(base + offsets::TIME_TSC_TIMESTAMP),
            system_time: read_u64(base + offsets::TIME_SYSTEM_TIME),
            tsc_to_system_mul: read_u32(base + offsets::TIME_MUL),
            tsc_shift: read_u8(base + offsets::TIME_SHIFT) as i8,
            flags: 0,
            pad1: [0; 2],
        };
        fence(Ordering::Acquire);
        let v2 = read_u32(base + offsets::TIME_VERSION);
        if v1 == v2 && v1 & 1 == 0 {
            return snapshot;
        }
        core::hint::spin_loop();
    }
}

/// Wall-clock time (seconds, nanoseconds) at system time 0, with its version protocol.
pub fn wall_clock_base() -> (u64, u32) {
    loop {
        let v1 = read_u32(offsets::WC_VERSION);
        fence(Ordering::Acquire);
        let sec = read_u32(offsets::WC_SEC) as u64 | (read_u32(offsets::WC_SEC_HI) as u64) << 32;
        let nsec = read_u32(offsets::WC_NSEC);
        fence(Ordering::Acquire);
        let v2 = read_u32(offsets::WC_VERSION);
        if v1 == v2 && v1 & 1 == 0 {
            return (sec, nsec);
        }
        core::hint::spin_loop();
    }
}

fn bitmap_word(bitmap_off: usize, port: u32) -> Option<(&'static AtomicU64, u64)> {
    if port as usize >= EVTCHN_2L_NR_CHANNELS {
        return None;
    }
    let off = bitmap_off + (port as usize / 64) * 8;
    // SAFETY: the word lies inside the mapped shared-info page, is 8-aligned, and is only
    // accessed atomically (by us and by Xen's locked bit operations) for the page's lifetime.
    let word = unsafe { AtomicU64::from_ptr(page().add(off) as *mut u64) };
    Some((word, 1u64 << (port % 64)))
}

/// Atomically clear `port`'s pending bit; true if it was set.
pub fn evtchn_test_and_clear_pending(port: u32) -> bool {
    bitmap_word(offsets::EVTCHN_PENDING, port)
        .is_some_and(|(w, bit)| w.fetch_and(!bit, Ordering::AcqRel) & bit != 0)
}

/// Whether `port` is pending.
pub fn evtchn_is_pending(port: u32) -> bool {
    bitmap_word(offsets::EVTCHN_PENDING, port)
        .is_some_and(|(w, bit)| w.load(Ordering::Acquire) & bit != 0)
}

/// Set or clear `port`'s mask bit in the shared page.
pub fn evtchn_set_mask(port: u32, masked: bool) {
    if let Some((w, bit)) = bitmap_word(offsets::EVTCHN_MASK, port) {
        if masked {
            w.fetch_or(bit, Ordering::AcqRel);
        } else {
            w.fetch_and(!bit, Ordering::AcqRel);
        }
    }
}
