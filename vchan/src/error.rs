//! Errors.

use core::fmt;

use xen_platform::DomId;

use crate::layout::OrderError;

/// A protocol violation by the peer. The channel is unusable afterwards: every later
/// operation returns the same error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerError {
    /// The peer's producer or consumer index is impossible: more bytes in flight than the
    /// ring holds (or the index went backwards).
    IndexOutOfRange {
        /// Which ring: `"left"` or `"right"`.
        ring: &'static str,
        /// The producer index.
        prod: u32,
        /// The consumer index.
        cons: u32,
        /// The ring size.
        size: u32,
    },
    /// The ring orders in the control page cannot be used.
    Orders(OrderError),
    /// A live flag holds a value the protocol does not define.
    BadLiveFlag {
        /// `"cli_live"` or `"srv_live"`.
        flag: &'static str,
        /// The value.
        value: u8,
    },
    /// The server's page was not live when the client connected (a stale advertisement).
    ServerNotLive {
        /// `srv_live` as found.
        srv_live: u8,
    },
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerError::IndexOutOfRange {
                ring,
                prod,
                cons,
                size,
            } => write!(
                f,
                "peer wrote an impossible {ring} ring index: prod {prod} cons {cons} size {size}"
            ),
            PeerError::Orders(e) => write!(f, "bad ring orders: {e}"),
            PeerError::BadLiveFlag { flag, value } => {
                write!(f, "{flag} has undefined value {value}")
            }
            PeerError::ServerNotLive { srv_live } => {
                write!(f, "server page not live (srv_live = {srv_live})")
            }
        }
    }
}

/// Everything a vchan operation can fail with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Error {
    /// A grant, mapping or event-channel operation failed (e.g. a grant list that does not
    /// map: `Grant { op: Map, status: BadGntref }`).
    Platform(xen_platform::Error),
    /// Xenstore failed.
    Store(xenstore::Error),
    /// The client gave up waiting for the server's advertisement.
    ConnectTimeout,
    /// The server's xenstore entries are not what libxenvchan writes (not a decimal number,
    /// or zero).
    BadAdvertisement {
        /// The key: `ring-ref` or `event-channel`.
        key: &'static str,
    },
    /// The peer broke the protocol; the channel is closed.
    Peer(PeerError),
    /// The peer closed the channel (its live flag is 0): writes fail, reads return 0 once
    /// the ring is drained, packet reads fail if the packet is not complete.
    Closed,
    /// The peer's domain no longer exists (destroyed or crashed without closing).
    PeerDied {
        /// The peer.
        domid: DomId,
    },
    /// A packet larger than the ring can never be sent or received whole.
    PacketTooLarge {
        /// Requested length.
        len: usize,
        /// Ring size.
        ring_size: u32,
    },
    /// A configuration value libxenvchan could not represent either (ring size over 1 MiB,
    /// an invalid port name).
    InvalidConfig(&'static str),
    /// The echo of a verification exchange ([`crate::exchange`]) differs from what was
    /// sent, first at this byte offset.
    EchoMismatch {
        /// Offset into the exchange of the first differing byte.
        offset: u64,
    },
    /// A shared region is smaller than the layout needs: a platform bug (mappings are
    /// checked against the geometry when the channel is set up).
    Layout(xen_ring::OutOfBounds),
}

impl Error {
    /// Whether the channel is finished (closed, dead or broken) after this error.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            Error::Peer(_) | Error::Closed | Error::PeerDied { .. } | Error::Platform(_)
        )
    }
}

impl From<xen_platform::Error> for Error {
    fn from(e: xen_platform::Error) -> Self {
        Error::Platform(e)
    }
}

impl From<xenstore::Error> for Error {
    fn from(e: xenstore::Error) -> Self {
        Error::Store(e)
    }
}

impl From<PeerError> for Error {
    fn from(e: PeerError) -> Self {
        Error::Peer(e)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Platform(e) => write!(f, "platform: {e}"),
            Error::Store(e) => write!(f, "xenstore: {e}"),
            Error::ConnectTimeout => f.write_str("timed out waiting for the vchan server"),
            Error::BadAdvertisement { key } => write!(f, "server's {key} entry is invalid"),
            Error::Peer(e) => write!(f, "peer protocol violation: {e}"),
            Error::Closed => f.write_str("peer closed the channel"),
            Error::PeerDied { domid } => write!(f, "peer {domid} no longer exists"),
            Error::PacketTooLarge { len, ring_size } => {
                write!(f, "packet of {len} bytes exceeds the {ring_size}-byte ring")
            }
            Error::InvalidConfig(what) => write!(f, "invalid configuration: {what}"),
            Error::EchoMismatch { offset } => {
                write!(f, "echo differs from what was sent at byte {offset}")
            }
            Error::Layout(e) => write!(f, "shared memory layout: {e}"),
        }
    }
}

impl core::error::Error for Error {}

impl From<xen_ring::OutOfBounds> for Error {
    fn from(e: xen_ring::OutOfBounds) -> Self {
        Error::Layout(e)
    }
}
