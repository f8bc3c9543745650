use alloc::string::String;
use core::fmt;

use crate::transport::TransportError;
use crate::wire::{ErrorCode, MessageType, WireError};

/// Everything a client operation can fail with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// xenstored answered with this error (e.g. `ENOENT`).
    Xenstore(ErrorCode),
    /// xenstored answered with an error string this crate does not know.
    UnknownXenstoreError(String),
    /// The request was rejected before sending (bad path, payload over 4096 bytes, ...).
    InvalidRequest(WireError),
    /// The reply to this request was malformed. The connection stays usable.
    MalformedReply(WireError),
    /// The reply to this request had the wrong type. The connection stays usable.
    UnexpectedReply { expected: MessageType, got: u32 },
    /// The byte stream broke the framing rules (e.g. a length over 4096); the connection
    /// cannot be re-synchronised and is closed.
    Protocol(WireError),
    /// The transport failed; the connection is closed.
    Transport(TransportError),
    /// The connection was closed by xenstored.
    Disconnected,
    /// No reply within the configured timeout. The request is abandoned (a late reply is
    /// discarded) and the connection stays usable.
    Timeout,
    /// A watch's event queue overflowed and this many events were dropped; re-read the
    /// state you are watching.
    WatchLagged { dropped: u64 },
    /// A directory kept changing while it was read in DIRECTORY_PART slices.
    DirectoryUnstable,
}

impl Error {
    /// The xenstored error code, if this is one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Error::Xenstore(code) => Some(*code),
            _ => None,
        }
    }

    /// True when the connection can no longer be used.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Error::Protocol(_) | Error::Transport(_) | Error::Disconnected
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Xenstore(code) => write!(f, "xenstored: {} ({})", code, code.description()),
            Error::UnknownXenstoreError(s) => write!(f, "xenstored: unknown error {s:?}"),
            Error::InvalidRequest(e) => write!(f, "invalid request: {e}"),
            Error::MalformedReply(e) => write!(f, "malformed reply: {e}"),
            Error::UnexpectedReply { expected, got } => {
                write!(f, "expected a {expected} reply, got message type {got}")
            }
            Error::Protocol(e) => write!(f, "protocol violation, connection closed: {e}"),
            Error::Transport(e) => write!(f, "transport: {e}"),
            Error::Disconnected => f.write_str("xenstored closed the connection"),
            Error::Timeout => f.write_str("xenstored did not answer in time"),
            Error::WatchLagged { dropped } => write!(f, "watch lagged, {dropped} events dropped"),
            Error::DirectoryUnstable => f.write_str("directory kept changing while being read"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

impl From<ErrorCode> for Error {
    fn from(code: ErrorCode) -> Self {
        Error::Xenstore(code)
    }
}
