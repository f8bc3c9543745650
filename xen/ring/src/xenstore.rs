//! The xenstore ring page (`io/xs_wire.h`, `struct xenstore_domain_interface`).
//!
//! ```text
//! 0     req[1024]    client -> xenstored
//! 1024  rsp[1024]    xenstored -> client (replies and watch events)
//! 2048  req_cons, req_prod, rsp_cons, rsp_prod   (u32 each)
//! 2064  server_features, connection, error       (u32 each)
//! ```

use core::sync::atomic::Ordering;

use crate::bytes::{ByteConsumer, ByteProducer};
use crate::error::RingError;
use crate::mem::{OutOfBounds, SharedMem};

/// `XENSTORE_RING_SIZE`.
pub const RING_SIZE: usize = 1024;
/// Offset of `req`.
pub const REQ: usize = 0;
/// Offset of `rsp`.
pub const RSP: usize = 1024;
/// Offset of `req_cons`.
pub const REQ_CONS: usize = 2048;
/// Offset of `req_prod`.
pub const REQ_PROD: usize = 2052;
/// Offset of `rsp_cons`.
pub const RSP_CONS: usize = 2056;
/// Offset of `rsp_prod`.
pub const RSP_PROD: usize = 2060;
/// Offset of `server_features`.
pub const SERVER_FEATURES: usize = 2064;
/// Offset of `connection`.
pub const CONNECTION: usize = 2068;
/// Offset of `error`.
pub const ERROR: usize = 2072;
/// `sizeof(struct xenstore_domain_interface)`.
pub const INTERFACE_SIZE: usize = 2076;

/// `XENSTORE_SERVER_FEATURE_RECONNECTION`.
pub const FEATURE_RECONNECTION: u32 = 1;
/// `XENSTORE_SERVER_FEATURE_ERROR`.
pub const FEATURE_ERROR: u32 = 2;
/// `XENSTORE_CONNECTED`.
pub const CONNECTED: u32 = 0;
/// `XENSTORE_RECONNECT`.
pub const RECONNECT: u32 = 1;
/// `XENSTORE_ERROR_NONE`.
pub const ERROR_NONE: u32 = 0;
/// `XENSTORE_ERROR_COMM`.
pub const ERROR_COMM: u32 = 1;
/// `XENSTORE_ERROR_RINGIDX`.
pub const ERROR_RINGIDX: u32 = 2;
/// `XENSTORE_ERROR_PROTO`.
pub const ERROR_PROTO: u32 = 3;

/// The client's ends (a guest, or dom0 over a ring): writes `req`, reads `rsp`.
pub fn client(page: SharedMem<'_>) -> Result<(ByteProducer<'_>, ByteConsumer<'_>), RingError> {
    let req = ByteProducer::attach(page, REQ_PROD, REQ_CONS, page.sub(REQ, RING_SIZE)?)?;
    let rsp = ByteConsumer::attach(page, RSP_PROD, RSP_CONS, page.sub(RSP, RING_SIZE)?)?;
    Ok((req, rsp))
}

/// xenstored's ends: reads `req`, writes `rsp`.
pub fn server(page: SharedMem<'_>) -> Result<(ByteConsumer<'_>, ByteProducer<'_>), RingError> {
    let req = ByteConsumer::attach(page, REQ_PROD, REQ_CONS, page.sub(REQ, RING_SIZE)?)?;
    let rsp = ByteProducer::attach(page, RSP_PROD, RSP_CONS, page.sub(RSP, RING_SIZE)?)?;
    Ok((req, rsp))
}

/// The control words after the rings (`server_features`, `connection`, `error`). Values
/// are whatever the other side wrote: interpret them, do not trust them.
#[derive(Clone, Copy, Debug)]
pub struct Control<'a> {
    page: SharedMem<'a>,
}

impl<'a> Control<'a> {
    /// The control words of `page` (which must hold the whole interface).
    pub fn new(page: SharedMem<'a>) -> Result<Self, OutOfBounds> {
        page.load_u32(ERROR, Ordering::Relaxed)?;
        Ok(Control { page })
    }

    fn load(&self, offset: usize) -> u32 {
        // In bounds: checked in `new` (ERROR is the last word).
        self.page.load_u32(offset, Ordering::Acquire).unwrap_or(0)
    }

    fn store(&self, offset: usize, value: u32) {
        // In bounds: checked in `new`. A full fence follows so the peer sees the word before
        // any later notification or index read.
        let _ = self.page.store_u32(offset, value, Ordering::Release);
        crate::mem::full_fence();
    }

    /// `server_features` (bits `FEATURE_*`).
    pub fn server_features(&self) -> u32 {
        self.load(SERVER_FEATURES)
    }

    /// Sets `server_features` (server side).
    pub fn set_server_features(&self, value: u32) {
        self.store(SERVER_FEATURES, value)
    }

    /// `connection` ([`CONNECTED`] or [`RECONNECT`]).
    pub fn connection(&self) -> u32 {
        self.load(CONNECTION)
    }

    /// Sets `connection` (the client requests a reconnect; the server acknowledges).
    pub fn set_connection(&self, value: u32) {
        self.store(CONNECTION, value)
    }

    /// `error` (`ERROR_*`).
    pub fn error(&self) -> u32 {
        self.load(ERROR)
    }

    /// Sets `error` (server side).
    pub fn set_error(&self, value: u32) {
        self.store(ERROR, value)
    }
}
