//! A simulated Xen host for testing protocol code, deterministically, in one process.
//!
//! * Several domains ([`Sim::create_domain`]), each a [`SimDomain`] implementing every
//!   `xen-platform` trait, each with its own executor.
//! * Grant tables per domain that enforce Xen's rules: only the grantee may map or copy, a
//!   read-only grant cannot be mapped writable, revocation is refused while mapped
//!   (`GrantBusy`/`EBUSY`), a double unmap is `GNTST_bad_handle`, exhaustion is an error.
//! * Event channels with Xen's binding rules: `bind_interdomain` only to a port allocated
//!   unbound for you, close reverts the peer to unbound, notify on a closed port is
//!   `EINVAL`, on an unbound one silently dropped.
//! * Memory in a memfd ([`frames`]): two domains really share frames through different
//!   virtual addresses, read-only mappings are enforced by the MMU, and a future
//!   multi-process sim can map the same memfd in another process.
//! * A seeded scheduler ([`Sim::step`]) and fault injector ([`Faults`]): lost, duplicated
//!   and delayed notifications, hostile writes into shared pages, a domain that disappears
//!   ([`Sim::destroy_domain`]). A failing seed is printed; `XEN_SIM_SEED=n` replays it.

pub mod frames;
mod host;
mod platform;
mod rng;
mod sim;

pub use host::{FIRST_FREE_GREF, FaultStats, Faults, HostConfig, HostileTarget, PortState};
pub use platform::{SIM_EPOCH_SECS, SimDomain, SimGranted, SimMapping, SimPages};
pub use rng::SplitMix64;
pub use sim::{SEED_ENV, Sim, SimError, for_each_seed, seed_from_env};
