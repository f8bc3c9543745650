//! Xen shared rings, hardened against a misbehaving peer.
//!
//! * [`sring`]: the generic request/response ring of `io/ring.h` ([`FrontRing`],
//!   [`BackRing`]), with `req_event`/`rsp_event` notification suppression and the
//!   final-check pattern, generic over fixed-size request and response types.
//! * [`bytes`]: the byte rings of the PV console and xenstore ([`ByteProducer`],
//!   [`ByteConsumer`]), over any layout of indices and data (libxenvchan reuses them with
//!   its own page layout). [`console`] and [`xenstore`] give those two layouts.
//! * [`mem`]: the only `unsafe` code: a bounds-checked view of shared memory with atomic and
//!   volatile accesses.
//!
//! Every index read from the peer is validated; an impossible one becomes a
//! [`RingError`] and breaks the ring for good, so the driver can disconnect. No panics, no
//! out-of-bounds access, whatever the peer writes.
#![no_std]
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod bytes;
pub mod console;
pub mod error;
pub mod mem;
pub mod sring;
pub mod xenstore;

pub use bytes::{ByteConsumer, ByteProducer};
pub use error::RingError;
pub use mem::{OutOfBounds, ReadOnlyMem, SharedMem, XEN_PAGE_SIZE};
pub use sring::{BackRing, FrontRing};
