//! From `_start` to the guest's `main` and back out through `SCHEDOP_shutdown`.

use core::fmt::Write as _;
use core::panic::PanicInfo;
use core::sync::atomic::{AtomicBool, Ordering};

use xen_abi::mm::{PTE_ACCESSED, PTE_DIRTY, PTE_PRESENT, PTE_RW, PTE_USER, UVMF_INVLPG};
use xen_abi::start_info::StartInfo;
use xen_abi::version;

use super::boot::{shared_info_va, stack_guard_va};
use super::console::{self, EmergencyConsole};
use super::{hypercall, mm, sched, shared_info, time};
use crate::cmdline::CmdLine;

/// How a guest ends; `xl` applies the matching `on_poweroff`/`on_reboot`/`on_crash`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shutdown {
    Poweroff,
    Reboot,
    Crash,
}

impl Shutdown {
    fn reason(self) -> u32 {
        use xen_abi::sched::ShutdownReason as R;
        match self {
            Shutdown::Poweroff => R::Poweroff as u32,
            Shutdown::Reboot => R::Reboot as u32,
            Shutdown::Crash => R::Crash as u32,
        }
    }
}

/// What a guest's `main` may return: `()` powers off, a [`Shutdown`] is obeyed, and
/// `Err(e)` prints `error: {e}` and crashes the domain.
pub trait Termination {
    fn report(self) -> Shutdown;
}

impl Termination for () {
    fn report(self) -> Shutdown {
        Shutdown::Poweroff
    }
}

impl Termination for Shutdown {
    fn report(self) -> Shutdown {
        self
    }
}

impl<T: Termination, E: core::fmt::Display> Termination for Result<T, E> {
    fn report(self) -> Shutdown {
        match self {
            Ok(t) => t.report(),
            Err(e) => {
                crate::println!("error: {e}");
                Shutdown::Crash
            }
        }
    }
}

/// The Xen version the guest runs on.
#[derive(Clone, Copy, Debug)]
pub struct XenVersion {
    pub major: u16,
    pub minor: u16,
    extra: version::ExtraVersion,
}

impl XenVersion {
    /// The extra version, e.g. `".7"` or `"-unstable"`.
    pub fn extra(&self) -> &str {
        let end = self
            .extra
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(self.extra.len());
        core::str::from_utf8(&self.extra[..end]).unwrap_or("")
    }
}

impl core::fmt::Display for XenVersion {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{}.{}{}", self.major, self.minor, self.extra())
    }
}

/// What a guest learns at boot.
pub struct Env {
    start_info: &'static StartInfo,
    cmdline: &'static str,
    xen_version: XenVersion,
    memory: mm::MemoryLayout,
}

impl Env {
    /// The command line (`extra=` in the xl config).
    pub fn cmdline(&self) -> CmdLine<'static> {
        CmdLine::new(self.cmdline)
    }

    /// The Xen version.
    pub fn xen_version(&self) -> XenVersion {
        self.xen_version
    }

    /// Bytes of RAM the domain owns (`memory=` in the xl config).
    pub fn memory_bytes(&self) -> u64 {
        self.memory.nr_pages * xen_abi::PAGE_SIZE as u64
    }

    /// How memory was laid out at boot.
    pub fn memory_layout(&self) -> mm::MemoryLayout {
        self.memory
    }

    /// The raw start_info page (xenstore ring and event channel for drivers).
    pub fn start_info(&self) -> &'static StartInfo {
        self.start_info
    }
}

static START_INFO: core::sync::atomic::AtomicPtr<StartInfo> =
    core::sync::atomic::AtomicPtr::new(core::ptr::null_mut());

/// The start_info page (set at boot, never written after).
pub fn start_info() -> &'static StartInfo {
    let p = START_INFO.load(Ordering::Acquire);
    assert!(!p.is_null(), "start_info used before boot finished");
    // SAFETY: set once at boot to Xen's start_info page, which lives and stays unchanged for
    // the guest's lifetime.
    unsafe { &*p }
}

unsafe extern "Rust" {
    /// Defined by the guest with [`crate::entry!`].
    safe fn xen_pv_guest_main(env: &Env) -> Shutdown;
}

fn init_fpu() {
    let mxcsr: u32 = 0x1f80; // all SSE exceptions masked, round to nearest
    // SAFETY: puts x87 and SSE control state into their defined reset values; touches no
    // memory but reads `mxcsr`.
    unsafe {
        core::arch::asm!("fninit", "ldmxcsr [{0}]", in(reg) &mxcsr, options(nostack, readonly))
    };
}

/// Crash with a message before the console exists (best effort: Xen's debug console).
fn early_fail(msg: &str) -> ! {
    let _ = hypercall::console_io_write(msg.as_bytes());
    loop {
        sched::request_shutdown(Shutdown::Crash.reason());
        sched::yield_now();
    }
}

#[unsafe(no_mangle)]
extern "C" fn xen_pv_rust_start(start_info: *const StartInfo, xen_stack_top: u64) -> ! {
    init_fpu();
    // SAFETY: Xen passes a valid start_info page in rsi; nothing writes it after boot.
    let si: &'static StartInfo = unsafe { &*start_info };
    START_INFO.store(start_info as *mut StartInfo, Ordering::Release);
    if !si.magic_is_x86_64() {
        early_fail("xen-pv: start_info magic is not xen-3.0-x86_64\n");
    }

    let shared_va = shared_info_va();
    let pte = si.shared_info | PTE_PRESENT | PTE_RW | PTE_USER | PTE_ACCESSED | PTE_DIRTY;
    if hypercall::update_va_mapping(shared_va, pte, UVMF_INVLPG).is_err() {
        early_fail("xen-pv: cannot map shared_info\n");
    }
    shared_info::set_page(shared_va as *mut u8);
    // This runtime waits for events with SCHEDOP_poll and never takes upcalls.
    shared_info::set_upcall_mask(true);
    time::mark_boot();
    mm::init_p2m(si);

    match mm::mfn_to_pfn(si.console_mfn) {
        Some(pfn) => console::init(mm::pfn_to_virt(pfn) as *mut _, si.console_evtchn),
        None => early_fail("xen-pv: console ring frame is not ours\n"),
    }

    if let Err(e) = super::traps::init() {
        crate::println!("xen-pv: set_trap_table failed ({e}); CPU faults will not be reported");
    }

    let memory = match mm::init(si, xen_stack_top) {
        Ok(layout) => layout,
        Err(e) => {
            crate::println!("xen-pv: memory setup failed: {e:?}");
            shutdown(Shutdown::Crash);
        }
    };
    // Unmap the page below the stack so an overflow faults instead of corrupting memory,
    // and page 0 (only `_start` lives there) so a null pointer faults instead of reading
    // or overwriting code.
    let _ = hypercall::update_va_mapping(stack_guard_va(), 0, UVMF_INVLPG);
    let _ = hypercall::update_va_mapping(0, 0, UVMF_INVLPG);

    let cmdline = si.cmd_line().unwrap_or("");
    let level = CmdLine::new(cmdline)
        .get("loglevel")
        .and_then(|l| l.parse().ok())
        .unwrap_or(log::LevelFilter::Info);
    console::init_logger(level);

    let raw_version = hypercall::xen_version(version::XENVER_VERSION, None).unwrap_or(0) as u32;
    let mut extra = [0u8; 16];
    let _ = hypercall::xen_version(version::XENVER_EXTRAVERSION, Some(&mut extra));
    let (major, minor) = version::split(raw_version);
    let env = Env {
        start_info: si,
        cmdline,
        xen_version: XenVersion {
            major,
            minor,
            extra,
        },
        memory,
    };
    log::debug!(
        "xen-pv: {} pages, first free pfn {:#x}, {} frames of page tables/bitmap",
        memory.nr_pages,
        memory.first_free_pfn,
        memory.overhead_frames
    );
    shutdown(xen_pv_guest_main(&env))
}

/// Flush the console and shut the domain down.
pub fn shutdown(how: Shutdown) -> ! {
    console::flush();
    loop {
        sched::request_shutdown(how.reason());
        // Xen deschedules us for good once the shutdown is under way.
        sched::yield_now();
    }
}

static PANICKING: AtomicBool = AtomicBool::new(false);

#[panic_handler]
fn panic(info: &PanicInfo) -> ! {
    if PANICKING.swap(true, Ordering::Relaxed) {
        // A panic while reporting a panic: stop without touching the console again.
        loop {
            sched::request_shutdown(Shutdown::Crash.reason());
            sched::yield_now();
        }
    }
    let mut out = EmergencyConsole;
    match info.location() {
        Some(loc) => {
            let _ = writeln!(
                out,
                "PANIC at {}:{}:{}: {}",
                loc.file(),
                loc.line(),
                loc.column(),
                info.message()
            );
        }
        None => {
            let _ = writeln!(out, "PANIC: {}", info.message());
        }
    }
    shutdown(Shutdown::Crash)
}
