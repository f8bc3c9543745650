//! The guest's xenstore ring: the page named by `start_info.store_mfn` holding
//! `struct xenstore_domain_interface`, and the event channel `start_info.store_evtchn`.
//!
//! Flow control both ways: a request larger than the free space of the 1 KiB `req` ring is
//! written in pieces as xenstored consumes it, and replies are read as they are produced.
//! Every write and every read that frees space notifies xenstored (as Mini-OS and Linux do),
//! and a blocked direction waits for xenstored's notification. The ring indexes are
//! validated by `xen-ring`; a hostile index, or xenstored flagging the ring broken through
//! the `error` word, ends the connection with [`TransportError::Peer`].
//!
//! Not supported: the reconnection protocol (`connection = XENSTORE_RECONNECT`, used after
//! live-migration by some guests); a reset ring is reported as an error.

use alloc::boxed::Box;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, ready};
use core::time::Duration;

use xen_platform::{EventChannels, Port, Timers};
use xen_ring::xenstore::{self as layout, Control};
use xen_ring::{ByteConsumer, ByteProducer, RingError, SharedMem};

use super::{Timer, Transport, TransportError};

type EventWait<'a> = Pin<Box<dyn Future<Output = Result<(), xen_platform::Error>> + 'a>>;

/// A [`Transport`] over the xenstore ring page and its event channel.
pub struct RingTransport<'a, E: EventChannels> {
    requests: ByteProducer<'a>,
    replies: ByteConsumer<'a>,
    control: Control<'a>,
    events: &'a E,
    port: Port,
    /// The one outstanding wait on `port`, shared by both directions (one port, one
    /// pending bit: two waits could split a notification between them).
    wait: Option<EventWait<'a>>,
}

fn ring_error(e: RingError) -> TransportError {
    match e {
        RingError::PeerOverrun { .. } | RingError::ResponsesBeyondRequests { .. } => {
            TransportError::Peer("xenstore ring index out of range")
        }
        _ => TransportError::Peer("xenstore ring layout"),
    }
}

fn platform_error(e: xen_platform::Error) -> TransportError {
    match e {
        xen_platform::Error::PortNotBound { .. } => TransportError::Closed,
        other => TransportError::Os(other.errno().code()),
    }
}

impl<'a, E: EventChannels> RingTransport<'a, E> {
    /// Attaches to the ring in `page` (at least `sizeof(struct xenstore_domain_interface)`
    /// bytes) and the bound event channel `port`. The indexes already on the page are
    /// validated and taken as the starting point.
    pub fn new(page: SharedMem<'a>, events: &'a E, port: Port) -> Result<Self, TransportError> {
        let (requests, replies) = layout::client(page).map_err(ring_error)?;
        let control =
            Control::new(page).map_err(|_| TransportError::Peer("xenstore ring layout"))?;
        Ok(RingTransport {
            requests,
            replies,
            control,
            events,
            port,
            wait: None,
        })
    }

    /// The event channel port.
    pub fn port(&self) -> Port {
        self.port
    }

    fn check_peer(&self) -> Result<(), TransportError> {
        let features = self.control.server_features();
        if features & layout::FEATURE_ERROR != 0 && self.control.error() != layout::ERROR_NONE {
            return Err(TransportError::Peer("xenstored flagged the ring as broken"));
        }
        if features & layout::FEATURE_RECONNECTION != 0
            && self.control.connection() != layout::CONNECTED
        {
            return Err(TransportError::Peer("xenstore ring reset by xenstored"));
        }
        Ok(())
    }

    fn notify(&self) -> Result<(), TransportError> {
        self.events.notify(self.port).map_err(platform_error)
    }

    /// Waits for a notification from xenstored (registering `cx`).
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), TransportError>> {
        let events: &'a E = self.events;
        let port = self.port;
        let wait = self.wait.get_or_insert_with(|| Box::pin(events.wait(port)));
        let result = ready!(wait.as_mut().poll(cx));
        self.wait = None;
        Poll::Ready(result.map_err(platform_error))
    }
}

impl<E: EventChannels> Transport for RingTransport<'_, E> {
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<usize, TransportError>> {
        loop {
            self.check_peer()?;
            let n = self.replies.read(buf).map_err(ring_error)?;
            if n > 0 {
                // xenstored may be waiting for space to write more.
                self.notify()?;
                return Poll::Ready(Ok(n));
            }
            ready!(self.poll_event(cx))?;
        }
    }

    fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<Result<usize, TransportError>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            self.check_peer()?;
            let n = self.requests.write(buf).map_err(ring_error)?;
            if n > 0 {
                self.notify()?;
                return Poll::Ready(Ok(n));
            }
            ready!(self.poll_event(cx))?;
        }
    }
}

/// A [`Timer`] over the platform's [`Timers`] (the guest's Xen timer, the sim's clock).
pub struct PlatformTimer<'a, T: Timers> {
    timers: &'a T,
}

impl<'a, T: Timers> PlatformTimer<'a, T> {
    pub fn new(timers: &'a T) -> Self {
        PlatformTimer { timers }
    }
}

impl<'a, T: Timers> Timer for PlatformTimer<'a, T> {
    type Sleep = Pin<Box<dyn Future<Output = ()> + 'a>>;
    fn sleep(&self, duration: Duration) -> Self::Sleep {
        Box::pin(xen_platform::sleep(self.timers, duration))
    }
}

/// A client over the guest's xenstore ring, with the platform's timers for its timeouts.
pub type RingClient<'a, P> = crate::Client<RingTransport<'a, P>, PlatformTimer<'a, P>>;

/// Connect a client to the xenstore ring in `page` whose event channel is `port`.
pub fn ring_client<'a, P: EventChannels + Timers>(
    page: SharedMem<'a>,
    platform: &'a P,
    port: Port,
) -> Result<RingClient<'a, P>, TransportError> {
    Ok(crate::Client::new(
        RingTransport::new(page, platform, port)?,
        PlatformTimer::new(platform),
    ))
}
