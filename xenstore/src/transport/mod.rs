//! What the client needs from the outside world: a byte [`Transport`] to xenstored and a
//! [`Timer`] for request timeouts. Both are poll-based and runtime-agnostic; the guest's
//! executor, tokio, and tests each supply their own.

use core::fmt;
use core::future::Future;
use core::task::{Context, Poll};
use core::time::Duration;

#[cfg(feature = "ring")]
mod ring;
#[cfg(feature = "ring")]
pub use ring::{PlatformTimer, RingClient, RingTransport, ring_client};
#[cfg(feature = "tokio")]
mod tokio_impl;
#[cfg(feature = "tokio")]
pub use tokio_impl::{
    DEFAULT_SOCKET_PATH, TokioTimer, UnixSocketTransport, XENBUS_DEVICE_PATH,
    XenbusDeviceTransport, socket_path_from_env,
};

/// A bidirectional byte stream carrying xenstore messages: the guest's shared ring, the
/// xenstored Unix socket, or `/dev/xen/xenbus`.
///
/// Semantics follow `AsyncRead`/`AsyncWrite`: `Pending` means "nothing possible now, `cx`'s
/// waker will be woken when that changes". Only the most recently registered waker per
/// direction has to be kept; the client makes sure some task always re-polls.
pub trait Transport {
    /// Reads up to `buf.len()` bytes. `Ok(0)` means the peer closed the stream.
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<usize, TransportError>>;

    /// Writes a prefix of `buf` (at least one byte unless `buf` is empty) and returns its
    /// length. Messages may be split across calls; the transport need not keep them whole.
    fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<Result<usize, TransportError>>;
}

/// A transport failure. Any of these ends the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportError {
    /// The peer closed the stream or the device went away.
    Closed,
    /// An operating-system error, as an errno value.
    Os(i32),
    /// The peer broke the transport's own rules (e.g. impossible ring indexes).
    Peer(&'static str),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Closed => f.write_str("connection closed"),
            TransportError::Os(errno) => write!(f, "os error {errno}"),
            TransportError::Peer(what) => write!(f, "misbehaving peer: {what}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for TransportError {}

#[cfg(feature = "std")]
impl From<std::io::Error> for TransportError {
    fn from(e: std::io::Error) -> Self {
        match (e.raw_os_error(), e.kind()) {
            (Some(errno), _) => TransportError::Os(errno),
            (None, std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::BrokenPipe) => {
                TransportError::Closed
            }
            (None, _) => TransportError::Peer("i/o error without errno"),
        }
    }
}

/// A source of sleeps, so that every request can time out whatever the runtime.
pub trait Timer {
    type Sleep: Future<Output = ()>;
    /// A future that completes once `duration` has elapsed.
    fn sleep(&self, duration: Duration) -> Self::Sleep;
}

impl<M: Timer + ?Sized> Timer for &M {
    type Sleep = M::Sleep;
    fn sleep(&self, duration: Duration) -> Self::Sleep {
        (**self).sleep(duration)
    }
}

impl<T: Transport + ?Sized> Transport for alloc::boxed::Box<T> {
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<usize, TransportError>> {
        (**self).poll_read(cx, buf)
    }
    fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<Result<usize, TransportError>> {
        (**self).poll_write(cx, buf)
    }
}
