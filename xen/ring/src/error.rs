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

/// A ring end's record of a misbehaving peer. Once a peer fault is latched, every later
/// operation fails with that same error, so the driver disconnects instead of trusting the
/// peer again; errors that are not the peer's fault pass through unrecorded.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Latch(Option<RingError>);

impl Latch {
    /// The latched error, if any.
    pub(crate) fn get(&self) -> Option<RingError> {
        self.0
    }

    /// `Err` with the latched error once the ring is broken.
    pub(crate) fn check(&self) -> Result<(), RingError> {
        self.0.map_or(Ok(()), Err)
    }

    /// Returns `e`, latching it first if it is a peer fault.
    pub(crate) fn fail(&mut self, e: RingError) -> RingError {
        if e.is_peer_fault() {
            self.0 = Some(e);
        }
        e
    }

    /// `prod - cons` for a ring of `size`, validated: a peer index that puts more than `size`
    /// in flight (or `prod` behind `cons`) latches [`RingError::PeerOverrun`].
    pub(crate) fn in_flight(&mut self, prod: u32, cons: u32, size: u32) -> Result<u32, RingError> {
        self.check()?;
        let distance = prod.wrapping_sub(cons);
        if distance > size {
            return Err(self.fail(RingError::PeerOverrun { prod, cons, size }));
        }
        Ok(distance)
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
