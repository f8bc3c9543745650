//! The PV console ring (`io/console.h`).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Size of the guest-input ring.
pub const IN_RING_SIZE: usize = 1024;
/// Size of the guest-output ring.
pub const OUT_RING_SIZE: usize = 2048;

/// `struct xencons_interface`. Indices are free-running; `prod - cons <= size`.
#[repr(C)]
#[derive(FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct XenconsInterface {
    pub in_: [u8; IN_RING_SIZE],
    pub out: [u8; OUT_RING_SIZE],
    pub in_cons: u32,
    pub in_prod: u32,
    pub out_cons: u32,
    pub out_prod: u32,
}
