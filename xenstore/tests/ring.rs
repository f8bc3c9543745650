//! The guest ring transport against an in-process xenstored stand-in that serves the other
//! end of the same page, on xen-platform's executor with loopback event channels and
//! virtual time. Covers flow control both ways (messages larger than the 1 KiB rings),
//! watch events, a silent daemon (timeout), and a hostile index / error word.

#[path = "support/ring_daemon.rs"]
mod ring_daemon;

use std::cell::Cell;
use std::ptr::NonNull;
use std::rc::Rc;
use std::time::Duration;

use xen_platform::executor::{Executor, Idle, Reactor};
use xen_platform::{
    Clock, DomId, Error as PlatformError, EventChannels, Instant, Op, Port, Timers, Virq, WallTime,
};
use xen_ring::{SharedMem, xenstore as layout};
use xenstore::transport::{PlatformTimer, RingTransport, TransportError};
use xenstore::wire::ErrorCode;
use xenstore::{Client, ClientConfig, Error};

const GUEST_PORT: Port = Port(3);
const DAEMON_PORT: Port = Port(4);

/// A zeroed, page-aligned page only ever accessed through `SharedMem`.
struct Page {
    ptr: NonNull<u8>,
}

impl Page {
    const LAYOUT: std::alloc::Layout = match std::alloc::Layout::from_size_align(4096, 4096) {
        Ok(l) => l,
        Err(_) => panic!(),
    };
    fn new() -> Page {
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(Self::LAYOUT) };
        Page {
            ptr: NonNull::new(ptr).expect("out of memory"),
        }
    }
    fn mem(&self) -> SharedMem<'_> {
        // SAFETY: the allocation outlives the borrow and is accessed only through SharedMem.
        unsafe { SharedMem::from_raw_parts(self.ptr, 4096) }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr.as_ptr(), Self::LAYOUT) };
    }
}

/// Two ends of one interdomain channel: a notify on one port wakes waiters on the other.
struct Loopback {
    reactor: Reactor,
    notifications: Cell<u64>,
}

impl EventChannels for Loopback {
    fn alloc_unbound(&self, _remote: DomId) -> Result<Port, PlatformError> {
        Err(PlatformError::InvalidArgument {
            op: Op::AllocUnbound,
        })
    }
    fn bind_interdomain(&self, _remote: DomId, _remote_port: Port) -> Result<Port, PlatformError> {
        Err(PlatformError::InvalidArgument {
            op: Op::BindInterdomain,
        })
    }
    fn bind_virq(&self, _virq: Virq) -> Result<Port, PlatformError> {
        Err(PlatformError::InvalidArgument { op: Op::BindVirq })
    }
    fn notify(&self, port: Port) -> Result<(), PlatformError> {
        self.notifications.set(self.notifications.get() + 1);
        let other = if port == GUEST_PORT {
            DAEMON_PORT
        } else {
            GUEST_PORT
        };
        self.reactor.wake_port(other);
        Ok(())
    }
    fn mask(&self, _port: Port) -> Result<(), PlatformError> {
        Ok(())
    }
    fn unmask(&self, _port: Port) -> Result<(), PlatformError> {
        Ok(())
    }
    fn close(&self, port: Port) -> Result<(), PlatformError> {
        Err(PlatformError::PortNotBound { port })
    }
    fn wait(
        &self,
        port: Port,
    ) -> impl std::future::Future<Output = Result<(), PlatformError>> + '_ {
        let wait = self.reactor.wait_port(port);
        async move {
            wait.await;
            Ok(())
        }
    }
}

/// Virtual time: the idle step jumps straight to the next deadline.
struct VirtualTime {
    reactor: Reactor,
}

impl Clock for VirtualTime {
    fn now(&self) -> Instant {
        self.reactor.now()
    }
    fn wall_time(&self) -> WallTime {
        WallTime::default()
    }
}

impl Timers for VirtualTime {
    fn sleep_until(&self, deadline: Instant) -> impl std::future::Future<Output = ()> + '_ {
        self.reactor.sleep_until(deadline)
    }
}

struct JumpingIdle {
    now: Instant,
}

impl Idle for JumpingIdle {
    fn now(&mut self) -> Instant {
        self.now
    }
    fn block(&mut self, _ports: &[Port], deadline: Option<Instant>, _fired: &mut dyn FnMut(Port)) {
        if let Some(d) = deadline {
            self.now = self.now.max(d);
        }
    }
    fn poll(&mut self, _ports: &[Port], _fired: &mut dyn FnMut(Port)) {}
}

struct Harness {
    executor: Executor,
    events: Rc<Loopback>,
    time: Rc<VirtualTime>,
}

fn harness() -> Harness {
    let executor = Executor::new();
    let reactor = executor.reactor().clone();
    Harness {
        events: Rc::new(Loopback {
            reactor: reactor.clone(),
            notifications: Cell::new(0),
        }),
        time: Rc::new(VirtualTime { reactor }),
        executor,
    }
}

/// Runs `test` as the guest, with the stand-in daemon spawned beside it.
fn run<F>(control: Rc<ring_daemon::DaemonControl>, test: F)
where
    F: AsyncFnOnce(&Client<RingTransport<'_, Loopback>, PlatformTimer<'_, VirtualTime>>),
{
    let Harness {
        mut executor,
        events,
        time,
    } = harness();
    let page: &'static Page = Box::leak(Box::new(Page::new()));
    let daemon_events = events.clone();
    let daemon_control = control.clone();
    executor.spawn(async move {
        ring_daemon::serve(page.mem(), &*daemon_events, DAEMON_PORT, daemon_control).await
    });
    let config = ClientConfig {
        request_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let transport = RingTransport::new(page.mem(), &*events, GUEST_PORT).unwrap();
    let client = Client::with_config(transport, PlatformTimer::new(&*time), config);
    executor
        .block_on(test(&client), &mut JumpingIdle { now: Instant::ZERO })
        .expect("executor stalled");
}

#[test]
fn requests_and_replies_larger_than_the_ring() {
    run(Rc::new(ring_daemon::DaemonControl::default()), async |c| {
        let big: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
        c.write("/data/big", &big).await.unwrap();
        assert_eq!(c.read("/data/big").await.unwrap(), big);
        c.write("/data/small", "x").await.unwrap();
        let mut dir = c.directory("/data").await.unwrap();
        dir.sort();
        assert_eq!(dir, ["big", "small"]);
        assert_eq!(
            c.read("/data/none").await,
            Err(Error::Xenstore(ErrorCode::ENOENT))
        );
        // Several requests in flight at once.
        let (a, b) = futures_join(c.read("/data/small"), c.read("/data/big")).await;
        assert_eq!((a.unwrap(), b.unwrap().len()), (b"x".to_vec(), 4000));
    });
}

#[test]
fn watch_events_interleave_with_replies() {
    run(Rc::new(ring_daemon::DaemonControl::default()), async |c| {
        let mut w = c.watch("/w").await.unwrap();
        assert_eq!(w.next().await.unwrap().path, "/w");
        for i in 0..20 {
            c.write(&format!("/w/{i}"), vec![b'v'; 300]).await.unwrap();
        }
        for i in 0..20 {
            assert_eq!(w.next().await.unwrap().path, format!("/w/{i}"));
        }
    });
}

#[test]
fn silent_daemon_times_out_in_virtual_time() {
    let control = Rc::new(ring_daemon::DaemonControl::default());
    let c2 = control.clone();
    run(control, async move |c| {
        c.write("/a", "1").await.unwrap();
        c2.mute.set(true);
        assert_eq!(c.read("/a").await, Err(Error::Timeout));
        c2.mute.set(false);
        // The late request was swallowed by the daemon; the connection still works.
        assert_eq!(c.read("/a").await.unwrap(), b"1");
    });
}

#[test]
fn hostile_index_and_error_word_end_the_connection() {
    let Harness {
        mut executor,
        events,
        time,
    } = harness();
    let page = Page::new();
    let mem = page.mem();
    let transport = RingTransport::new(mem, &*events, GUEST_PORT).unwrap();
    let client = Client::new(transport, PlatformTimer::new(&*time));
    // The "daemon" claims 5000 bytes of replies in a 1024-byte ring.
    mem.store_u32(layout::RSP_PROD, 5000, std::sync::atomic::Ordering::Release)
        .unwrap();
    events.notify(DAEMON_PORT).unwrap();
    let result = executor
        .block_on(client.read("/a"), &mut JumpingIdle { now: Instant::ZERO })
        .unwrap();
    assert_eq!(
        result,
        Err(Error::Transport(TransportError::Peer(
            "xenstore ring index out of range"
        )))
    );

    let page = Page::new();
    let mem = page.mem();
    let transport = RingTransport::new(mem, &*events, GUEST_PORT).unwrap();
    let client = Client::new(transport, PlatformTimer::new(&*time));
    mem.store_u32(
        layout::SERVER_FEATURES,
        layout::FEATURE_ERROR,
        std::sync::atomic::Ordering::Release,
    )
    .unwrap();
    mem.store_u32(
        layout::ERROR,
        layout::ERROR_PROTO,
        std::sync::atomic::Ordering::Release,
    )
    .unwrap();
    let result = executor
        .block_on(client.read("/a"), &mut JumpingIdle { now: Instant::ZERO })
        .unwrap();
    assert_eq!(
        result,
        Err(Error::Transport(TransportError::Peer(
            "xenstored flagged the ring as broken"
        )))
    );
}

/// Polls two futures to completion together (no futures crate needed).
async fn futures_join<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    let mut a = std::pin::pin!(a);
    let mut b = std::pin::pin!(b);
    let (mut ra, mut rb) = (None, None);
    std::future::poll_fn(|cx| {
        if ra.is_none() {
            if let std::task::Poll::Ready(v) = a.as_mut().poll(cx) {
                ra = Some(v);
            }
        }
        if rb.is_none() {
            if let std::task::Poll::Ready(v) = b.as_mut().poll(cx) {
                rb = Some(v);
            }
        }
        if ra.is_some() && rb.is_some() {
            std::task::Poll::Ready((ra.take().unwrap(), rb.take().unwrap()))
        } else {
            std::task::Poll::Pending
        }
    })
    .await
}
