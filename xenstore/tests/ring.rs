//! The guest ring transport against an in-process xenstored stand-in that serves the other
//! end of the same page, on xen-platform's executor with loopback event channels and
//! virtual time. Covers flow control both ways (messages larger than the 1 KiB rings),
//! watch events, a silent daemon (timeout), and a hostile index / error word.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::ptr::NonNull;
use std::rc::Rc;
use std::time::Duration;

use xen_platform::executor::{Executor, Idle, Reactor};
use xen_platform::{
    Clock, DomId, Error as PlatformError, EventChannels, Instant, Op, Port, Timers, Virq, WallTime,
};
use xen_ring::{SharedMem, xenstore as layout};
use xenstore::transport::{PlatformTimer, RingTransport, TransportError};
use xenstore::wire::{
    ErrorCode, ErrorReply, HEADER_LEN, Header, Reply, Request, StringList, frame_len,
};
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

#[derive(Default)]
struct DaemonControl {
    /// Stop answering (a hung xenstored).
    mute: Cell<bool>,
    /// Requests served.
    served: Cell<u32>,
}

/// A minimal xenstored for the other end of the ring: a flat map of nodes, watches that
/// fire on writes below their path, and the reply encoding from this crate's codec.
async fn daemon(page: SharedMem<'_>, events: &Loopback, control: Rc<DaemonControl>) {
    let (mut requests, mut replies) = layout::server(page).unwrap();
    let mut store: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut watches: Vec<(String, Vec<u8>)> = Vec::new();
    let mut inbox = Vec::new();
    let mut outbox: Vec<u8> = Vec::new();
    loop {
        let mut buf = [0u8; 300];
        let n = requests.read(&mut buf).unwrap();
        inbox.extend_from_slice(&buf[..n]);
        if n > 0 {
            events.notify(DAEMON_PORT).unwrap();
        }
        while let Some(len) = frame_len(&inbox).unwrap() {
            let frame: Vec<u8> = inbox.drain(..len).collect();
            if control.mute.get() {
                continue;
            }
            control.served.set(control.served.get() + 1);
            let header = Header::parse(&frame).unwrap();
            let request = Request::parse(header.msg_type, &frame[HEADER_LEN..]).unwrap();
            let mut events_out = Vec::new();
            let reply_bytes;
            let reply = match request {
                Request::Read { path } => match store.get(path) {
                    Some(v) => Reply::Read { value: v },
                    None => Reply::Error(ErrorReply::new(ErrorCode::ENOENT)),
                },
                Request::Write { path, value } => {
                    store.insert(path.to_string(), value.to_vec());
                    for (wpath, token) in &watches {
                        if path == wpath || path.starts_with(&format!("{wpath}/")) {
                            events_out.push((path.to_string(), token.clone()));
                        }
                    }
                    Reply::Ack {
                        msg_type: request.msg_type(),
                    }
                }
                Request::Directory { path } => {
                    let prefix = format!("{path}/");
                    reply_bytes = store
                        .keys()
                        .filter_map(|k| k.strip_prefix(&prefix))
                        .filter(|rest| !rest.contains('/'))
                        .flat_map(|name| name.bytes().chain([0]))
                        .collect::<Vec<u8>>();
                    Reply::Directory {
                        children: StringList::parse(&reply_bytes).unwrap(),
                    }
                }
                Request::Watch { path, token } => {
                    watches.push((path.to_string(), token.to_vec()));
                    events_out.push((path.to_string(), token.to_vec()));
                    Reply::Ack {
                        msg_type: request.msg_type(),
                    }
                }
                Request::Unwatch { path, token } => {
                    watches.retain(|(p, t)| !(p == path && t == token));
                    Reply::Ack {
                        msg_type: request.msg_type(),
                    }
                }
                _ => Reply::Error(ErrorReply::new(ErrorCode::ENOSYS)),
            };
            reply
                .encode(header.req_id, header.tx_id, &mut outbox)
                .unwrap();
            for (path, token) in events_out {
                Reply::WatchEvent {
                    path: &path,
                    token: &token,
                }
                .encode(0, 0, &mut outbox)
                .unwrap();
            }
        }
        // Write out as much as fits; the guest notifies when it has consumed some.
        let written = replies.write(&outbox).unwrap();
        outbox.drain(..written);
        if written > 0 {
            events.notify(DAEMON_PORT).unwrap();
        }
        if n == 0 && written == 0 {
            events.wait(DAEMON_PORT).await.unwrap();
        }
    }
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
fn run<F>(control: Rc<DaemonControl>, test: F)
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
    executor.spawn(async move { daemon(page.mem(), &daemon_events, daemon_control).await });
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
    run(Rc::new(DaemonControl::default()), async |c| {
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
    run(Rc::new(DaemonControl::default()), async |c| {
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
    let control = Rc::new(DaemonControl::default());
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
