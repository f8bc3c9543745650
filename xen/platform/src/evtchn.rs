//! Event channels.

use core::future::Future;

use crate::error::Error;
use crate::types::{DomId, Port, Virq};

/// Event channels of the calling domain, with Xen's binding rules.
///
/// Ports are plain numbers, as in Xen and in xenstore (`event-channel`); whoever allocated or
/// bound a port closes it with [`close`](Self::close).
///
/// Events are edge notifications that coalesce, like Xen's pending bit: one or many
/// notifications before a [`wait`](Self::wait) complete that one wait. A notification that
/// arrives while nobody waits is remembered and completes the next wait, so "check the ring,
/// then wait" never loses a wake-up. Waits can complete spuriously; callers re-check their
/// condition (as every ring consumer does anyway).
pub trait EventChannels {
    /// `EVTCHNOP_alloc_unbound`: a new port that `remote` (and only it) may bind to.
    fn alloc_unbound(&self, remote: DomId) -> Result<Port, Error>;

    /// `EVTCHNOP_bind_interdomain`: connects a new local port to `remote_port`, which `remote`
    /// allocated unbound for us (`EINVAL` otherwise, `ESRCH` for an unknown domain).
    fn bind_interdomain(&self, remote: DomId, remote_port: Port) -> Result<Port, Error>;

    /// `EVTCHNOP_bind_virq`: a port for a virtual IRQ (`EEXIST` if already bound).
    fn bind_virq(&self, virq: Virq) -> Result<Port, Error>;

    /// `EVTCHNOP_send`: notifies the other end. Sending on an unbound port is silently
    /// dropped (as in Xen); on a closed port it is `PortNotBound`.
    fn notify(&self, port: Port) -> Result<(), Error>;

    /// Masks the port: events stay pending but wake no waiter until [`unmask`](Self::unmask).
    fn mask(&self, port: Port) -> Result<(), Error>;

    /// Unmasks the port, delivering an event that became pending while masked.
    fn unmask(&self, port: Port) -> Result<(), Error>;

    /// `EVTCHNOP_close`. An interdomain peer's port reverts to unbound (for us).
    fn close(&self, port: Port) -> Result<(), Error>;

    /// Completes when an event arrives on `port` (or arrived since the last completed wait).
    ///
    /// Errors: [`Error::PortNotBound`] if the port is not bound when polled.
    fn wait(&self, port: Port) -> impl Future<Output = Result<(), Error>> + '_;
}
