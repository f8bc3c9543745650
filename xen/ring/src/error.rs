//! Ring errors.

use core::fmt;

use crate::mem::OutOfBounds;

/// Why a ring operation failed.
///
/// The `Peer*` variants mean the other domain wrote an impossible index: the ring marks itself
/// broken and every later operation returns the same error, so the driver disconnects instead
/// of trusting anything more from that peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingError {
    /// The peer's producer index claims more unconsumed entries (or bytes) than the ring
    /// can hold, or lies behind our consumer index.
    PeerOverrun {
        /// The producer index.
        prod: u32,
        /// The consumer index.
        cons: u32,
        /// The ring size in entries or bytes.
        size: u32,
    },
    /// The backend published responses to requests the frontend never made:
    /// `rsp_prod - rsp_cons > req_prod - rsp_cons`.
    ResponsesBeyondRequests {
        /// The peer's response producer index.
        rsp_prod: u32,
        /// Our response consumer index.
        rsp_cons: u32,
        /// Our published request producer index.
        req_prod: u32,
    },
    /// The ring is full (front: no free request slot; byte ring: no space). Not a peer fault.
    Full,
    /// The back end tried to respond with no consumed request left to answer. Not a peer
    /// fault: a local bug.
    NoRequestToAnswer,
    /// The shared region is too small or misaligned for the ring layout.
    Layout(OutOfBounds),
}

impl RingError {
    /// Whether this error is the peer's fault (and the ring is now broken).
    pub fn is_peer_fault(&self) -> bool {
        matches!(
            self,
            RingError::PeerOverrun { .. } | RingError::ResponsesBeyondRequests { .. }
        )
    }
}

impl From<OutOfBounds> for RingError {
    fn from(e: OutOfBounds) -> Self {
        RingError::Layout(e)
    }
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RingError::PeerOverrun { prod, cons, size } => write!(
                f,
                "peer wrote an impossible ring index: prod {prod} cons {cons} size {size}"
            ),
            RingError::ResponsesBeyondRequests {
                rsp_prod,
                rsp_cons,
                req_prod,
            } => write!(
                f,
                "peer produced responses beyond requests: rsp_prod {rsp_prod} rsp_cons {rsp_cons} req_prod {req_prod}"
            ),
            RingError::Full => f.write_str("ring full"),
            RingError::NoRequestToAnswer => f.write_str("no consumed request left to answer"),
            RingError::Layout(e) => write!(f, "ring layout: {e}"),
        }
    }
}

impl core::error::Error for RingError {}
