//! Event channels through `/dev/xen/evtchn`, and the demultiplexer behind
//! [`EventChannels::wait`](xen_platform::EventChannels::wait).
//!
//! # How the device behaves
//!
//! Every port bound through one open file of `/dev/xen/evtchn` delivers its events to that
//! file: when an event fires, the kernel masks the port (until user space re-enables it)
//! and queues the port number in a ring that `read()` returns as `u32`s. `write()` of port
//! numbers re-enables them. If the ring overflows, `read()` fails with `EFBIG` until
//! `IOCTL_EVTCHN_RESET`.
//!
//! # The demultiplexer
//!
//! One file per platform instance, one reader task (tokio, via [`AsyncFd`]) that reads fired
//! ports and hands them to per-port state:
//!
//! * each port has a `pending` flag: any number of events before a wait complete that one
//!   wait (Xen's pending-bit coalescing), and an event with nobody waiting is kept for the
//!   next wait, so "check the ring, then wait" loses no wake-up;
//! * a fired port is re-enabled at once unless the caller masked it: then it stays disabled
//!   in the kernel (so events coalesce there) and is re-enabled by `unmask`, which also
//!   delivers what became pending meanwhile;
//! * on ring overflow the reader resets the ring and marks every port pending (waits may
//!   complete spuriously, which the trait allows; none is lost);
//! * if reading fails for good, every waiter gets the error.
//!
//! The demultiplexer is generic over [`EventSource`] so that tests can drive it through a
//! socket pair standing in for the device.

use std::collections::HashMap;
use std::fs::File;
use std::future::Future;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::io::unix::AsyncFd;
use tokio::task::JoinHandle;
use xen_platform::{Error, Op, Port};

use crate::abi::*;
use crate::error::io_error;
use crate::sys;

/// How the demultiplexer reads fired ports from and writes re-enabled ports to its file:
/// the evtchn device, or a stand-in in tests. The file is non-blocking.
pub(crate) trait EventSource: Send + Sync + 'static {
    /// Reads fired port numbers (native-endian `u32`s).
    fn read_ports(&self, file: &File, buf: &mut [u8]) -> io::Result<usize> {
        let mut file = file;
        file.read(buf)
    }

    /// Writes port numbers to re-enable (whole `u32`s).
    fn write_ports(&self, file: &File, buf: &[u8]) -> io::Result<usize> {
        let mut file = file;
        file.write(buf)
    }

    /// Clears the ring after an overflow.
    fn reset(&self, file: &File) -> io::Result<()>;
}

/// The behaviour of `/dev/xen/evtchn`.
#[derive(Debug)]
pub(crate) struct EvtchnDevice;

impl EventSource for EvtchnDevice {
    fn reset(&self, file: &File) -> io::Result<()> {
        sys::ioctl_no_arg(file.as_fd(), IOCTL_EVTCHN_RESET).map(drop)
    }
}

/// The binding ioctls of `/dev/xen/evtchn`; each returns the local port.
pub(crate) mod ioctl {
    use super::*;

    pub(crate) fn bind_unbound_port(file: &File, remote_domain: u16) -> io::Result<u32> {
        let mut arg = EvtchnBindUnboundPort {
            remote_domain: remote_domain.into(),
        };
        sys::ioctl_fixed(file.as_fd(), IOCTL_EVTCHN_BIND_UNBOUND_PORT, &mut arg).map(|p| p as u32)
    }

    pub(crate) fn bind_interdomain(
        file: &File,
        remote_domain: u16,
        remote_port: u32,
    ) -> io::Result<u32> {
        let mut arg = EvtchnBindInterdomain {
            remote_domain: remote_domain.into(),
            remote_port,
        };
        sys::ioctl_fixed(file.as_fd(), IOCTL_EVTCHN_BIND_INTERDOMAIN, &mut arg).map(|p| p as u32)
    }

    pub(crate) fn bind_virq(file: &File, virq: u32) -> io::Result<u32> {
        let mut arg = EvtchnBindVirq { virq };
        sys::ioctl_fixed(file.as_fd(), IOCTL_EVTCHN_BIND_VIRQ, &mut arg).map(|p| p as u32)
    }

    pub(crate) fn unbind(file: &File, port: u32) -> io::Result<()> {
        let mut arg = EvtchnPort { port };
        sys::ioctl_fixed(file.as_fd(), IOCTL_EVTCHN_UNBIND, &mut arg).map(drop)
    }

    pub(crate) fn notify(file: &File, port: u32) -> io::Result<()> {
        let mut arg = EvtchnPort { port };
        sys::ioctl_fixed(file.as_fd(), IOCTL_EVTCHN_NOTIFY, &mut arg).map(drop)
    }
}

#[derive(Default)]
struct PortState {
    /// An event arrived since the last completed wait.
    pending: bool,
    /// Masked by the caller.
    masked: bool,
    /// Delivered by the kernel while masked, so still disabled there.
    held: bool,
    /// Waiters, by wait id.
    waiters: Vec<(u64, Waker)>,
}

impl PortState {
    fn wake_all(&mut self) {
        for (_, w) in self.waiters.drain(..) {
            w.wake();
        }
    }
}

#[derive(Default)]
struct State {
    ports: HashMap<u32, PortState>,
    /// Set when reading the device failed for good (errno).
    failed: Option<i32>,
}

struct Shared<S: EventSource> {
    file: AsyncFd<File>,
    source: S,
    state: Mutex<State>,
    next_wait_id: AtomicU64,
}

impl<S: EventSource> Shared<S> {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves consistent flags behind; keep going.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Re-enables `ports` in the kernel.
    fn reenable(&self, ports: &[u32]) -> io::Result<()> {
        // The device takes at most a page per write.
        for chunk in ports.chunks(1024) {
            let bytes: Vec<u8> = chunk.iter().flat_map(|p| p.to_ne_bytes()).collect();
            let mut done = 0;
            while done < bytes.len() {
                match self.source.write_ports(self.file.get_ref(), &bytes[done..]) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(n) => done += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Records fired ports, wakes their waiters, re-enables the unmasked ones.
    fn dispatch(&self, fired: impl Iterator<Item = u32>) -> io::Result<()> {
        let mut reenable = Vec::new();
        {
            let mut st = self.lock();
            for port in fired {
                // A port closed meanwhile (or never ours) is ignored: nothing to re-enable.
                let Some(p) = st.ports.get_mut(&port) else {
                    continue;
                };
                p.pending = true;
                if p.masked {
                    p.held = true;
                } else {
                    if !reenable.contains(&port) {
                        reenable.push(port);
                    }
                    p.wake_all();
                }
            }
        }
        self.reenable(&reenable)
    }

    /// After a ring overflow: events were lost, so every port is treated as fired.
    fn overflowed(&self) -> io::Result<()> {
        self.source.reset(self.file.get_ref())?;
        let all: Vec<u32> = self.lock().ports.keys().copied().collect();
        self.dispatch(all.into_iter())
    }

    fn fail(&self, e: &io::Error) {
        let mut st = self.lock();
        st.failed = Some(e.raw_os_error().unwrap_or(libc::EIO));
        for p in st.ports.values_mut() {
            p.wake_all();
        }
    }
}

/// The reader task: reads fired ports until the device fails.
async fn read_loop<S: EventSource>(shared: Arc<Shared<S>>) {
    let mut buf = [0u8; 4096];
    // A stand-in source may split a port number across reads; the device never does.
    let mut carry: Vec<u8> = Vec::with_capacity(4);
    loop {
        let mut guard = match shared.file.readable().await {
            Ok(g) => g,
            Err(e) => return shared.fail(&e),
        };
        let mut batches = 0;
        // Read until EAGAIN, even after a short read: the device only wakes pollers when an
        // event lands in an empty ring, and an event that arrives while a read is copying
        // the ring out finds it non-empty, so no new edge would announce it.
        loop {
            let outcome = guard.try_io(|fd| shared.source.read_ports(fd.get_ref(), &mut buf));
            let result = match outcome {
                Err(_would_block) => break,
                Ok(Ok(0)) => return shared.fail(&io::ErrorKind::UnexpectedEof.into()),
                Ok(Ok(n)) => {
                    carry.extend_from_slice(&buf[..n]);
                    let whole = carry.len() / 4 * 4;
                    let fired: Vec<u32> = carry[..whole]
                        .chunks_exact(4)
                        .map(|c| u32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
                        .collect();
                    carry.drain(..whole);
                    shared.dispatch(fired.into_iter())
                }
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EFBIG) => {
                    carry.clear();
                    shared.overflowed()
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
                Ok(Err(e)) => Err(e),
            };
            if let Err(e) = result {
                return shared.fail(&e);
            }
            // Let the woken waiters run under a flood of events.
            batches += 1;
            if batches % 16 == 0 {
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Per-port event state over one event source, fed by a reader task.
pub(crate) struct Demux<S: EventSource> {
    shared: Arc<Shared<S>>,
    reader: JoinHandle<()>,
}

impl<S: EventSource> Drop for Demux<S> {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl<S: EventSource> Demux<S> {
    /// Starts the reader task on the current tokio runtime (which must have I/O enabled).
    pub(crate) fn start(file: File, source: S) -> io::Result<Demux<S>> {
        let handle = tokio::runtime::Handle::try_current()
            .map_err(|e| io::Error::new(io::ErrorKind::Unsupported, e))?;
        let shared = Arc::new(Shared {
            file: {
                let _enter = handle.enter();
                sys::register_with_runtime(file)?
            },
            source,
            state: Mutex::new(State::default()),
            next_wait_id: AtomicU64::new(0),
        });
        let reader = handle.spawn(read_loop(shared.clone()));
        Ok(Demux { shared, reader })
    }

    /// The device file (for the binding ioctls).
    pub(crate) fn file(&self) -> &File {
        self.shared.file.get_ref()
    }

    #[cfg(test)]
    fn source(&self) -> &S {
        &self.shared.source
    }

    /// Binds a port with `bind` (an ioctl on the device file) and starts tracking it. The
    /// state stays locked across the ioctl, so an event that fires at once waits in the
    /// reader until the port is known (otherwise it would be dropped and never re-enabled).
    pub(crate) fn bind(&self, bind: impl FnOnce(&File) -> io::Result<u32>) -> io::Result<u32> {
        let mut st = self.shared.lock();
        let port = bind(self.shared.file.get_ref())?;
        if let Some(mut old) = st.ports.insert(port, PortState::default()) {
            // Cannot happen (the kernel does not bind a port twice); wake stale waiters.
            old.wake_all();
        }
        Ok(port)
    }

    #[cfg(test)]
    fn register(&self, port: u32) {
        self.bind(|_| Ok(port)).unwrap();
    }

    /// Stops tracking a port (closed); its waiters complete with `PortNotBound`.
    pub(crate) fn unregister(&self, port: u32) {
        if let Some(mut p) = self.shared.lock().ports.remove(&port) {
            p.wake_all();
        }
    }

    pub(crate) fn is_registered(&self, port: u32) -> bool {
        self.shared.lock().ports.contains_key(&port)
    }

    pub(crate) fn mask(&self, port: Port) -> Result<(), Error> {
        let mut st = self.shared.lock();
        let p = st
            .ports
            .get_mut(&port.0)
            .ok_or(Error::PortNotBound { port })?;
        p.masked = true;
        Ok(())
    }

    pub(crate) fn unmask(&self, port: Port) -> Result<(), Error> {
        let reenable = {
            let mut st = self.shared.lock();
            let p = st
                .ports
                .get_mut(&port.0)
                .ok_or(Error::PortNotBound { port })?;
            p.masked = false;
            if p.pending {
                p.wake_all();
            }
            std::mem::take(&mut p.held)
        };
        if reenable {
            self.shared
                .reenable(&[port.0])
                .map_err(|e| io_error(Op::Unmask, &e))?;
        }
        Ok(())
    }

    /// Completes at the next event on `port` (or at once if one is pending).
    pub(crate) fn wait(&self, port: Port) -> WaitPort<'_, S> {
        WaitPort {
            demux: self,
            port,
            id: self.shared.next_wait_id.fetch_add(1, Ordering::Relaxed),
        }
    }
}

/// The future of [`Demux::wait`].
pub(crate) struct WaitPort<'a, S: EventSource> {
    demux: &'a Demux<S>,
    port: Port,
    id: u64,
}

impl<S: EventSource> Future for WaitPort<'_, S> {
    type Output = Result<(), Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let mut st = this.demux.shared.lock();
        if let Some(errno) = st.failed {
            return Poll::Ready(Err(io_error(
                Op::Wait,
                &io::Error::from_raw_os_error(errno),
            )));
        }
        let Some(p) = st.ports.get_mut(&this.port.0) else {
            return Poll::Ready(Err(Error::PortNotBound { port: this.port }));
        };
        if p.pending && !p.masked {
            p.pending = false;
            p.waiters.retain(|(id, _)| *id != this.id);
            return Poll::Ready(Ok(()));
        }
        match p.waiters.iter_mut().find(|(id, _)| *id == this.id) {
            Some((_, w)) => w.clone_from(cx.waker()),
            None => p.waiters.push((this.id, cx.waker().clone())),
        }
        Poll::Pending
    }
}

impl<S: EventSource> Drop for WaitPort<'_, S> {
    fn drop(&mut self) {
        let mut st = self.demux.shared.lock();
        if let Some(p) = st.ports.get_mut(&self.port.0) {
            p.waiters.retain(|(id, _)| *id != self.id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;
    use std::sync::atomic::AtomicBool;
    use std::time::Duration;

    /// A socket pair standing in for the device: the test writes fired ports into `kernel`,
    /// and reads back the ports the demultiplexer re-enabled.
    struct FakeEvtchn {
        overflow: AtomicBool,
        resets: AtomicU64,
    }

    impl EventSource for FakeEvtchn {
        fn read_ports(&self, file: &File, buf: &mut [u8]) -> io::Result<usize> {
            if self.overflow.load(Ordering::SeqCst) {
                return Err(io::Error::from_raw_os_error(libc::EFBIG));
            }
            let mut file = file;
            file.read(buf)
        }
        fn reset(&self, file: &File) -> io::Result<()> {
            // Like the device, drop what the ring still holds.
            let mut file = file;
            let mut buf = [0u8; 256];
            while let Ok(n) = file.read(&mut buf) {
                if n == 0 {
                    break;
                }
            }
            self.overflow.store(false, Ordering::SeqCst);
            self.resets.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    struct Kernel {
        sock: UnixStream,
    }

    impl Kernel {
        fn fire(&mut self, ports: &[u32]) {
            let bytes: Vec<u8> = ports.iter().flat_map(|p| p.to_ne_bytes()).collect();
            self.sock.write_all(&bytes).unwrap();
        }
        /// Ports re-enabled so far (non-blocking read of everything written).
        fn reenabled(&mut self) -> Vec<u32> {
            let mut out = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                match self.sock.read(&mut buf) {
                    Ok(n) => {
                        assert_eq!(n % 4, 0);
                        out.extend(
                            buf[..n]
                                .chunks_exact(4)
                                .map(|c| u32::from_ne_bytes(c.try_into().unwrap())),
                        )
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return out,
                    Err(e) => panic!("{e}"),
                }
            }
        }
    }

    fn fake() -> (Demux<FakeEvtchn>, Kernel) {
        let (a, b) = UnixStream::pair().unwrap();
        a.set_nonblocking(true).unwrap();
        b.set_nonblocking(true).unwrap();
        let file = File::from(std::os::fd::OwnedFd::from(a));
        let demux = Demux::start(
            file,
            FakeEvtchn {
                overflow: AtomicBool::new(false),
                resets: AtomicU64::new(0),
            },
        )
        .unwrap();
        (demux, Kernel { sock: b })
    }

    /// Lets the reader task run.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    async fn completes<F: Future>(f: F) -> Option<F::Output> {
        tokio::time::timeout(Duration::from_millis(50), f)
            .await
            .ok()
    }

    #[tokio::test]
    async fn event_before_wait_is_kept_and_coalesces() {
        let (d, mut k) = fake();
        d.register(5);
        k.fire(&[5, 5, 5]);
        settle().await;
        assert_eq!(completes(d.wait(Port(5))).await, Some(Ok(())));
        // Three notifications, one completed wait.
        assert_eq!(completes(d.wait(Port(5))).await, None);
        // The port was re-enabled after delivery.
        assert_eq!(k.reenabled(), vec![5]);
    }

    #[tokio::test]
    async fn events_go_to_their_own_port() {
        let (d, mut k) = fake();
        d.register(5);
        d.register(6);
        let w6 = tokio::spawn(async move {
            let r = completes(d.wait(Port(6))).await;
            (d, r)
        });
        settle().await;
        k.fire(&[5]);
        let (d, r) = w6.await.unwrap();
        assert_eq!(r, None, "an event on port 5 woke the waiter of port 6");
        assert_eq!(completes(d.wait(Port(5))).await, Some(Ok(())));
    }

    #[tokio::test]
    async fn waiter_is_woken_by_a_later_event() {
        let (d, mut k) = fake();
        d.register(9);
        let d = Arc::new(d);
        let d2 = d.clone();
        let waiter = tokio::spawn(async move { d2.wait(Port(9)).await });
        settle().await;
        assert!(!waiter.is_finished());
        k.fire(&[9]);
        let r = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert_eq!(r.unwrap().unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn split_port_numbers_are_reassembled() {
        let (d, mut k) = fake();
        d.register(0x0102_0304);
        let bytes = 0x0102_0304u32.to_ne_bytes();
        k.sock.write_all(&bytes[..1]).unwrap();
        settle().await;
        k.sock.write_all(&bytes[1..]).unwrap();
        settle().await;
        assert_eq!(completes(d.wait(Port(0x0102_0304))).await, Some(Ok(())));
    }

    #[tokio::test]
    async fn masked_port_holds_its_event_until_unmasked() {
        let (d, mut k) = fake();
        d.register(3);
        d.mask(Port(3)).unwrap();
        k.fire(&[3]);
        settle().await;
        assert_eq!(completes(d.wait(Port(3))).await, None);
        // Still disabled in the kernel while masked.
        assert_eq!(k.reenabled(), Vec::<u32>::new());
        d.unmask(Port(3)).unwrap();
        assert_eq!(k.reenabled(), vec![3]);
        assert_eq!(completes(d.wait(Port(3))).await, Some(Ok(())));
    }

    #[tokio::test]
    async fn unmask_wakes_a_blocked_waiter() {
        let (d, mut k) = fake();
        d.register(4);
        d.mask(Port(4)).unwrap();
        let d = Arc::new(d);
        let d2 = d.clone();
        let waiter = tokio::spawn(async move { d2.wait(Port(4)).await });
        k.fire(&[4]);
        settle().await;
        assert!(!waiter.is_finished());
        d.unmask(Port(4)).unwrap();
        let r = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert_eq!(r.unwrap().unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn closing_a_port_fails_its_waiters_and_ignores_stale_events() {
        let (d, mut k) = fake();
        d.register(7);
        let d = Arc::new(d);
        let d2 = d.clone();
        let waiter = tokio::spawn(async move { d2.wait(Port(7)).await });
        settle().await;
        d.unregister(7);
        let r = tokio::time::timeout(Duration::from_secs(5), waiter).await;
        assert_eq!(
            r.unwrap().unwrap(),
            Err(Error::PortNotBound { port: Port(7) })
        );
        k.fire(&[7]);
        settle().await;
        assert_eq!(k.reenabled(), Vec::<u32>::new());
        assert!(d.mask(Port(7)).is_err());
        assert_eq!(
            completes(d.wait(Port(7))).await,
            Some(Err(Error::PortNotBound { port: Port(7) }))
        );
    }

    #[tokio::test]
    async fn overflow_resets_the_ring_and_marks_every_port_pending() {
        let (d, mut k) = fake();
        d.register(1);
        d.register(2);
        d.mask(Port(2)).unwrap();
        d.source().overflow.store(true, Ordering::SeqCst);
        k.fire(&[1]); // makes the fd readable; the read reports EFBIG
        settle().await;
        assert_eq!(d.source().resets.load(Ordering::SeqCst), 1);
        assert_eq!(completes(d.wait(Port(1))).await, Some(Ok(())));
        // The masked port is pending but stays held.
        assert_eq!(k.reenabled(), vec![1]);
        d.unmask(Port(2)).unwrap();
        assert_eq!(completes(d.wait(Port(2))).await, Some(Ok(())));
    }

    #[tokio::test]
    async fn a_dead_source_fails_every_wait() {
        let (d, k) = fake();
        d.register(1);
        drop(k); // EOF on the fake device
        settle().await;
        let r = completes(d.wait(Port(1))).await.unwrap();
        assert!(matches!(r, Err(Error::Xen { op: Op::Wait, .. })), "{r:?}");
    }

    #[tokio::test]
    async fn dropped_waits_leave_no_waker_behind() {
        let (d, _k) = fake();
        d.register(1);
        for _ in 0..10 {
            assert_eq!(completes(d.wait(Port(1))).await, None);
        }
        assert!(d.shared.lock().ports[&1].waiters.is_empty());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_event_firing_during_the_bind_is_not_lost() {
        let (d, k) = fake();
        let k = Mutex::new(k);
        let port = d
            .bind(|_| {
                // The "kernel" fires the new port before the bind returns, and the reader
                // (on another worker) gets to read it meanwhile.
                k.lock().unwrap().fire(&[21]);
                std::thread::sleep(Duration::from_millis(30));
                Ok(21)
            })
            .unwrap();
        assert_eq!(completes(d.wait(Port(port))).await, Some(Ok(())));
        assert_eq!(k.lock().unwrap().reenabled(), vec![21]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn many_round_trips_lose_no_wakeup() {
        // Two tasks ping-pong over two ports; the "kernel" loops every re-enable back as a
        // fresh event only after the port was re-enabled, like the device.
        let (d, mut k) = fake();
        d.register(10);
        d.register(11);
        let d = Arc::new(d);
        let rounds = 2000;
        let d2 = d.clone();
        let pong = tokio::spawn(async move {
            for _ in 0..rounds {
                d2.wait(Port(11)).await.unwrap();
            }
        });
        for i in 0..rounds {
            k.fire(&[11]);
            // Wait until the demux re-enabled port 11 before firing it again.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            let mut seen = Vec::new();
            while !seen.contains(&11) {
                seen = k.reenabled();
                assert!(std::time::Instant::now() < deadline, "round {i} stuck");
                tokio::task::yield_now().await;
            }
            // Wait for the waiter to consume it before the next round, so each event
            // counts once (coalescing would otherwise merge rounds).
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while d.shared.lock().ports[&11].pending {
                assert!(
                    std::time::Instant::now() < deadline,
                    "round {i} not consumed"
                );
                tokio::task::yield_now().await;
            }
        }
        tokio::time::timeout(Duration::from_secs(10), pong)
            .await
            .unwrap()
            .unwrap();
    }
}
