//! Xenstore for Xen PV guests and Linux domains: the wire codec, a runtime-agnostic async
//! client over any byte transport, a xenbus frontend helper, and (with `tokio`) the Unix
//! socket and `/dev/xen/xenbus` transports used by the `xs` CLI.
//!
//! `no_std` + `alloc` without the default features: the codec ([`wire`]), the sans-IO
//! connection core ([`client::Connection`]), the async [`Client`], and [`xenbus`] build for
//! `x86_64-unknown-none`.
#![cfg_attr(not(feature = "std"), no_std)]
// One `unsafe` block: registering the xenbus device fd with tokio (transport/tokio_impl.rs).
#![deny(unsafe_code)]

extern crate alloc;

pub mod client;
pub mod transport;
pub mod wire;
pub mod xenbus;

pub use client::{Client, ClientConfig, Error, Transaction, Watch, WatchEvent};
pub use transport::{Timer, Transport, TransportError};
pub use wire::{Access, DomId, ErrorCode, Permission};
