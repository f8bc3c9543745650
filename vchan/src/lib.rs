//! libxenvchan-compatible inter-domain channels.
//!
//! A vchan is a pair of byte rings in memory one domain (the *server*) grants to another
//! (the *client*), plus an event channel, advertised in xenstore. This crate speaks the
//! exact protocol of Xen's `libxenvchan` (`xen/io/libxenvchan.h`): the same control page,
//! ring placements, notification bits, live flags and xenstore keys, so either side can be
//! a C program linked against libxenvchan.
//!
//! The protocol is written once ([`Vchan`]) against the `xen-platform` traits
//! ([`VchanPlatform`]) and a small xenstore interface ([`VchanStore`], implemented for
//! [`xenstore::Client`]): the same code runs in a PV unikernel, in a Linux domain and in
//! the simulated host of `xen-sim`.
//!
//! ```ignore
//! // Server (e.g. a unikernel), for client domain 7, channel "echo":
//! let mut v = Vchan::server(&platform, &xs, DomId(7), "echo", ServerConfig::default()).await?;
//! v.wait_connected().await?;
//! let n = v.read(&mut buf).await?;          // stream read: >= 1 byte, 0 at end of stream
//! v.write_all(&buf[..n]).await?;
//! v.close().await?;
//! // Client, in domain 7:
//! let mut v = Vchan::client(&platform, &xs, DomId(5), "echo", ClientConfig::default()).await?;
//! v.send(b"one packet").await?;              // all or nothing
//! ```
//!
//! Every value read from the shared page is validated; a peer that writes impossible
//! indices, orders or flags gets the channel closed with a typed [`PeerError`], never a
//! panic, a hang or an access outside the rings.
#![no_std]
#![warn(missing_docs)]

extern crate alloc;

mod channel;
mod error;
pub mod exchange;
pub mod layout;
pub mod store;

pub use channel::{
    ClientConfig, DEFAULT_LIVENESS_INTERVAL, PeerState, Role, ServerConfig, Vchan, VchanPlatform,
};
pub use error::{Error, PeerError};
pub use store::{VchanStore, vchan_path};
