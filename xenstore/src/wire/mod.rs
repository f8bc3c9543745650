//! The xenstore wire protocol of Xen 4.17 (`xen/io/xs_wire.h`, `docs/misc/xenstore.txt`).
//!
//! Layers, in smoltcp's style:
//! * [`Header`] and [`Packet`]: the fixed 16-byte header and a view over one message's bytes;
//!   [`frame_len`] finds message boundaries in a byte stream.
//! * [`Request`] and [`Reply`]: typed payload representations that borrow from the bytes,
//!   with `parse` (validating) and `emit_payload`/`encode`. Both directions are covered so the
//!   daemon reuses this codec for the server side.
//! * [`ErrorCode`] for `XS_ERROR` strings, [`Permission`] for permission strings, and the
//!   [`path`] rules.
//!
//! Every decoding error is a [`WireError`]; nothing here panics on hostile bytes.

mod error;
mod header;
mod message;
pub mod path;
mod perms;
mod strings;

pub use error::{ErrorCode, PathError, WireError};
pub use header::{HEADER_LEN, Header, MessageType, PAYLOAD_MAX, Packet, frame_len};
pub use message::{ErrorReply, Perms, Reply, Request};
pub use path::{ABS_PATH_MAX, PathUse, REL_PATH_MAX};
pub use perms::{Access, DomId, PermList, Permission};
pub use strings::{StringList, parse_decimal};
