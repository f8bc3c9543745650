//! Xen shared rings, hardened against a misbehaving peer.
#![no_std]
#![forbid(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod mem;

pub use mem::{OutOfBounds, ReadOnlyMem, SharedMem, XEN_PAGE_SIZE};
