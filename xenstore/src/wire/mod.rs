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

/// Decodes one complete frame as a request (daemon side).
///
/// `Err` means `frame` does not hold a whole, in-limit message (see [`frame_len`]).
/// `Ok((header, Err(e)))` is a well-framed message with an unknown type or a bad payload:
/// answer it with an `XS_ERROR` of [`WireError::error_code`] under `header.req_id`.
pub fn decode_request(frame: &[u8]) -> Result<(Header, Result<Request<'_>, WireError>), WireError> {
    let header = Packet::new_checked(frame)?.header();
    let payload = &frame[HEADER_LEN..header.total_len()];
    Ok((header, Request::parse(header.msg_type, payload)))
}

impl WireError {
    /// The xenstore error a daemon answers this decoding failure with.
    pub fn error_code(&self) -> ErrorCode {
        match self {
            WireError::PayloadTooLong(_) => ErrorCode::E2BIG,
            _ => ErrorCode::EINVAL,
        }
    }
}
