//! Linux transports on tokio: the xenstored Unix socket and the `/dev/xen/xenbus` device
//! (same wire protocol over a character device), plus a tokio [`Timer`].

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::UnixStream;

use super::{Timer, Transport, TransportError};

/// Where xenstored listens unless `XENSTORED_PATH` says otherwise.
pub const DEFAULT_SOCKET_PATH: &str = "/run/xenstored/socket";
/// How long [`UnixSocketTransport::connect`] retries a full listen backlog.
const CONNECT_PATIENCE: Duration = Duration::from_secs(5);

/// The xenbus device of a Linux domain.
pub const XENBUS_DEVICE_PATH: &str = "/dev/xen/xenbus";

/// `XENSTORED_PATH` if set (as libxenstore honours it), else [`DEFAULT_SOCKET_PATH`].
pub fn socket_path_from_env() -> PathBuf {
    std::env::var_os("XENSTORED_PATH")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET_PATH))
}

/// A connection to xenstored's Unix socket.
#[derive(Debug)]
pub struct UnixSocketTransport {
    stream: UnixStream,
}

impl UnixSocketTransport {
    /// Connects to `path`. xenstored listens with a backlog of 1, so a non-blocking
    /// connect can see `EAGAIN` while another client is being accepted: retry for a while,
    /// as libxenstore's blocking connect would wait.
    pub async fn connect(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let path = path.as_ref();
        let mut delay = Duration::from_millis(1);
        let mut waited = Duration::ZERO;
        loop {
            match UnixStream::connect(path).await {
                Ok(stream) => return Ok(UnixSocketTransport { stream }),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock && waited < CONNECT_PATIENCE =>
                {
                    tokio::time::sleep(delay).await;
                    waited += delay;
                    delay = (delay * 2).min(Duration::from_millis(50));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Connects to `XENSTORED_PATH` or the default socket.
    pub async fn connect_default() -> std::io::Result<Self> {
        Self::connect(socket_path_from_env()).await
    }

    pub fn from_stream(stream: UnixStream) -> Self {
        UnixSocketTransport { stream }
    }
}

impl Transport for UnixSocketTransport {
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<usize, TransportError>> {
        let mut read_buf = ReadBuf::new(buf);
        ready!(Pin::new(&mut self.stream).poll_read(cx, &mut read_buf))?;
        Poll::Ready(Ok(read_buf.filled().len()))
    }

    fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<Result<usize, TransportError>> {
        Poll::Ready(Ok(ready!(Pin::new(&mut self.stream).poll_write(cx, buf))?))
    }
}

/// `/dev/xen/xenbus` in a Linux domain: the kernel relays the messages written to it to
/// xenstored over its own ring and queues replies and watch events for reading. The device
/// supports `O_NONBLOCK` and `poll`, so it is driven through tokio's reactor.
#[derive(Debug)]
pub struct XenbusDeviceTransport {
    file: AsyncFd<File>,
}

impl XenbusDeviceTransport {
    pub fn open(path: impl AsRef<Path>) -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)?;
        // SAFETY: `file` is an open descriptor moved into the `AsyncFd`, which owns it until
        // it is dropped; nothing else can close it or make `as_raw_fd` return another fd.
        #[allow(unsafe_code)]
        let file = unsafe { AsyncFd::register(file) }.map_err(|e| e.into_parts().1)?;
        Ok(XenbusDeviceTransport { file })
    }

    pub fn open_default() -> std::io::Result<Self> {
        Self::open(XENBUS_DEVICE_PATH)
    }
}

impl Transport for XenbusDeviceTransport {
    fn poll_read(
        &mut self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<Result<usize, TransportError>> {
        loop {
            let mut guard = ready!(self.file.poll_read_ready(cx))?;
            match guard.try_io(|inner| (&mut inner.get_ref()).read(buf)) {
                Ok(result) => return Poll::Ready(Ok(result?)),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<Result<usize, TransportError>> {
        // Linux's xenbus device never reports EPOLLOUT (its poll only signals queued
        // replies), so waiting for write readiness would wait forever. Its write handler
        // takes the message synchronously and never waits for xenstored: write directly.
        match (&mut self.file.get_ref()).write(buf) {
            Ok(n) => Poll::Ready(Ok(n)),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                // Not produced by the kernel driver; retry on the next poll rather than
                // hang on a readiness event that will not come.
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            Err(e) => Poll::Ready(Err(e.into())),
        }
    }
}

/// [`Timer`] backed by `tokio::time` (needs a runtime with the time driver enabled).
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioTimer;

impl Timer for TokioTimer {
    type Sleep = tokio::time::Sleep;
    fn sleep(&self, duration: Duration) -> Self::Sleep {
        tokio::time::sleep(duration)
    }
}
