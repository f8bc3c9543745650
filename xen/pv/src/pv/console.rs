//! The PV console: guest output through the `xencons_interface` ring to xenconsoled.
//!
//! Flow control: when the 2 KiB output ring is full we notify the backend and wait on the
//! console event channel (xenconsoled notifies after consuming) instead of dropping
//! output. `flush` waits until the backend has consumed everything, so the last line
//! before a shutdown reaches the log. The backend's index is validated: a `out_cons`
//! that claims more than was produced marks the ring broken, and output falls back to
//! Xen's debug console (which a release Xen refuses to domUs) rather than corrupting
//! memory or spinning forever.

use core::fmt;
use core::ptr::{addr_of, addr_of_mut};
use core::sync::atomic::{Ordering, fence};

use xen_abi::console::{OUT_RING_SIZE, XenconsInterface};

use super::{hypercall, sched, shared_info, time};

/// How long to wait for xenconsoled between re-notifications while the ring is full.
const NOTIFY_INTERVAL_NS: u64 = 100_000_000;
/// Upper bound on how long `flush` waits for a backend that stopped reading.
const FLUSH_TIMEOUT_NS: u64 = 5_000_000_000;

struct Ring {
    intf: *mut XenconsInterface,
    port: u32,
    /// Our producer index (we are the only writer of `out_prod`).
    prod: u32,
    broken: bool,
}

// SAFETY: the ring pointer refers to the console page, valid for the guest's lifetime;
// access is serialised by the CONSOLE mutex.
unsafe impl Send for Ring {}

static CONSOLE: spin::Mutex<Option<Ring>> = spin::Mutex::new(None);

/// Attach the console ring (boot).
pub(crate) fn init(intf: *mut XenconsInterface, port: u32) {
    // SAFETY: `intf` is the console page the domain builder mapped for us.
    let prod = unsafe { addr_of!((*intf).out_prod).read_volatile() };
    *CONSOLE.lock() = Some(Ring {
        intf,
        port,
        prod,
        broken: false,
    });
}

impl Ring {
    fn out_cons(&self) -> u32 {
        // SAFETY: in-page field of the live console page; the backend writes it.
        let cons = unsafe { addr_of!((*self.intf).out_cons).read_volatile() };
        // Read the index before reading what it implies about the data (rmb).
        fence(Ordering::Acquire);
        cons
    }

    /// Bytes the backend has not consumed yet, or None if its index is impossible.
    fn in_flight(&self) -> Option<u32> {
        let used = self.prod.wrapping_sub(self.out_cons());
        (used as usize <= OUT_RING_SIZE).then_some(used)
    }

    fn notify(&self) {
        let mut arg = xen_abi::event_channel::EvtchnPortArg { port: self.port };
        let _ = hypercall::event_channel_op(xen_abi::event_channel::EVTCHNOP_SEND, &mut arg);
    }

    fn wait_for_backend(&self, deadline_ns: u64) {
        self.notify();
        let _ = sched::poll(&[self.port], deadline_ns);
        shared_info::evtchn_test_and_clear_pending(self.port);
    }

    fn write(&mut self, mut data: &[u8]) {
        while !data.is_empty() && !self.broken {
            let Some(used) = self.in_flight() else {
                self.broken = true;
                break;
            };
            let space = OUT_RING_SIZE - used as usize;
            if space == 0 {
                self.wait_for_backend(time::now_ns() + NOTIFY_INTERVAL_NS);
                continue;
            }
            let n = space.min(data.len());
            for (i, &b) in data[..n].iter().enumerate() {
                let idx = (self.prod.wrapping_add(i as u32) as usize) & (OUT_RING_SIZE - 1);
                // SAFETY: idx < OUT_RING_SIZE; the slot is free (not in flight), so the
                // backend does not read it concurrently.
                unsafe { addr_of_mut!((*self.intf).out[idx]).write_volatile(b) };
            }
            self.prod = self.prod.wrapping_add(n as u32);
            // Data before the index that publishes it (wmb).
            fence(Ordering::Release);
            // SAFETY: in-page field; we are its only writer.
            unsafe { addr_of_mut!((*self.intf).out_prod).write_volatile(self.prod) };
            data = &data[n..];
        }
        if self.broken {
            let _ = hypercall::console_io_write(data);
        }
        self.notify();
    }

    fn flush(&self) -> bool {
        let deadline = time::now_ns() + FLUSH_TIMEOUT_NS;
        loop {
            match self.in_flight() {
                Some(0) => return true,
                None => return false,
                Some(_) if time::now_ns() >= deadline => return false,
                Some(_) => {
                    self.wait_for_backend((time::now_ns() + NOTIFY_INTERVAL_NS).min(deadline))
                }
            }
        }
    }
}

/// Write raw bytes to the console (blocking while the ring is full).
pub fn write_bytes(bytes: &[u8]) {
    match CONSOLE.lock().as_mut() {
        Some(ring) => ring.write(bytes),
        None => {
            let _ = hypercall::console_io_write(bytes);
        }
    }
}

/// Wait (up to a few seconds) until xenconsoled has read everything written so far.
/// Returns false if it did not.
pub fn flush() -> bool {
    CONSOLE.lock().as_ref().is_some_and(|ring| ring.flush())
}

/// Write for the panic path: never blocks on the console lock (the panicking code may
/// hold it); if it is held, the ring is used without it, as nothing else can run.
pub(crate) fn write_bytes_emergency(bytes: &[u8]) {
    if let Some(mut guard) = CONSOLE.try_lock() {
        if let Some(ring) = guard.as_mut() {
            ring.write(bytes);
            return;
        }
    } else {
        // SAFETY: single vCPU and no interrupts: the holder is the code that panicked and
        // will never resume, so taking the ring over cannot race with it.
        unsafe { CONSOLE.force_unlock() };
        return write_bytes_emergency(bytes);
    }
    let _ = hypercall::console_io_write(bytes);
}

/// A `fmt::Write` sink on the console that turns `\n` into `\r\n` for terminals.
pub struct Console;

impl fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_with_crlf(s, write_bytes);
        Ok(())
    }
}

pub(crate) struct EmergencyConsole;

impl fmt::Write for EmergencyConsole {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        write_with_crlf(s, write_bytes_emergency);
        Ok(())
    }
}

fn write_with_crlf(s: &str, mut sink: impl FnMut(&[u8])) {
    for (i, line) in s.split('\n').enumerate() {
        if i > 0 {
            sink(b"\r\n");
        }
        if !line.is_empty() {
            sink(line.as_bytes());
        }
    }
}

/// Print to the guest console.
#[macro_export]
macro_rules! print {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = write!($crate::console::Console, $($arg)*);
    }};
}

/// Print a line to the guest console.
#[macro_export]
macro_rules! println {
    () => { $crate::print!("\n") };
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::console::Console, $($arg)*);
    }};
}

/// The `log` backend: `[seconds.micros] LEVEL target: message` on the console.
struct Logger;

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let up = time::uptime();
        // Format into one buffer so the line reaches the ring in one piece.
        let mut line = LineBuf::new();
        use fmt::Write as _;
        let _ = writeln!(
            line,
            "[{:5}.{:06}] {:5} {}: {}",
            up.as_secs(),
            up.subsec_micros(),
            record.level(),
            record.target(),
            record.args()
        );
        let _ = fmt::Write::write_str(&mut Console, line.as_str());
    }

    fn flush(&self) {
        flush();
    }
}

static LOGGER: Logger = Logger;

pub(crate) fn init_logger(level: log::LevelFilter) {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(level);
}

/// A fixed buffer for one log line; longer lines are truncated with a marker.
struct LineBuf {
    buf: [u8; 512],
    len: usize,
    truncated: bool,
}

impl LineBuf {
    fn new() -> Self {
        LineBuf {
            buf: [0; 512],
            len: 0,
            truncated: false,
        }
    }

    fn as_str(&self) -> &str {
        // Only whole `str`s (or whole chars of them) are ever copied in.
        core::str::from_utf8(&self.buf[..self.len]).unwrap_or("<log line not utf-8>\n")
    }
}

impl fmt::Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.truncated {
            return Ok(());
        }
        const MARK: &str = "...[truncated]\n";
        let room = self.buf.len() - MARK.len() - self.len;
        if s.len() <= room {
            self.buf[self.len..self.len + s.len()].copy_from_slice(s.as_bytes());
            self.len += s.len();
        } else {
            let mut cut = room;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            self.buf[self.len..self.len + cut].copy_from_slice(&s.as_bytes()[..cut]);
            self.len += cut;
            self.buf[self.len..self.len + MARK.len()].copy_from_slice(MARK.as_bytes());
            self.len += MARK.len();
            self.truncated = true;
        }
        Ok(())
    }
}
