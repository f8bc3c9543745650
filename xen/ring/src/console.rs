//! The PV console ring page (`io/console.h`, `struct xencons_interface`).
//!
//! ```text
//! 0     in[1024]     backend -> guest (keyboard)
//! 1024  out[2048]    guest -> backend (screen)
//! 3072  in_cons, in_prod, out_cons, out_prod   (u32 each)
//! ```

use crate::bytes::{ByteConsumer, ByteProducer};
use crate::error::RingError;
use crate::mem::SharedMem;

/// Offset of `in`.
pub const IN: usize = 0;
/// Size of `in`.
pub const IN_SIZE: usize = 1024;
/// Offset of `out`.
pub const OUT: usize = 1024;
/// Size of `out`.
pub const OUT_SIZE: usize = 2048;
/// Offset of `in_cons`.
pub const IN_CONS: usize = 3072;
/// Offset of `in_prod`.
pub const IN_PROD: usize = 3076;
/// Offset of `out_cons`.
pub const OUT_CONS: usize = 3080;
/// Offset of `out_prod`.
pub const OUT_PROD: usize = 3084;
/// `sizeof(struct xencons_interface)`.
pub const INTERFACE_SIZE: usize = 3088;

/// The guest's ends: it writes `out` and reads `in`.
pub fn guest(page: SharedMem<'_>) -> Result<(ByteProducer<'_>, ByteConsumer<'_>), RingError> {
    let out = ByteProducer::attach(page, OUT_PROD, OUT_CONS, page.sub(OUT, OUT_SIZE)?)?;
    let input = ByteConsumer::attach(page, IN_PROD, IN_CONS, page.sub(IN, IN_SIZE)?)?;
    Ok((out, input))
}

/// The console backend's ends (xenconsoled's role): it reads `out` and writes `in`.
pub fn backend(page: SharedMem<'_>) -> Result<(ByteConsumer<'_>, ByteProducer<'_>), RingError> {
    let out = ByteConsumer::attach(page, OUT_PROD, OUT_CONS, page.sub(OUT, OUT_SIZE)?)?;
    let input = ByteProducer::attach(page, IN_PROD, IN_CONS, page.sub(IN, IN_SIZE)?)?;
    Ok((out, input))
}
