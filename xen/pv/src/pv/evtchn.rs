//! Event channels (`event_channel_op`, 2-level ABI) for this domain.
//!
//! The runtime keeps event upcalls masked and learns about events from the pending
//! bitmap in `shared_info` (see [`super::sched::poll`]), so "unmask" here means clearing
//! the port's mask bit through Xen (`EVTCHNOP_unmask`), which also re-raises a pending
//! event the way Xen documents.

use xen_abi::errno::Errno;
use xen_abi::event_channel::*;
use xen_abi::{DOMID_SELF, DomId, EvtchnPort};

use super::{hypercall, shared_info};

/// Allocate a port that `remote` may bind to with [`bind_interdomain`].
pub fn alloc_unbound(remote: DomId) -> Result<EvtchnPort, Errno> {
    let mut arg = EvtchnAllocUnbound {
        dom: DOMID_SELF,
        remote_dom: remote,
        port: 0,
    };
    hypercall::event_channel_op(EVTCHNOP_ALLOC_UNBOUND, &mut arg)?;
    Ok(arg.port)
}

/// Connect to `remote_port`, an unbound port `remote` allocated for us.
pub fn bind_interdomain(remote: DomId, remote_port: EvtchnPort) -> Result<EvtchnPort, Errno> {
    let mut arg = EvtchnBindInterdomain {
        remote_dom: remote,
        _pad0: 0,
        remote_port,
        local_port: 0,
    };
    hypercall::event_channel_op(EVTCHNOP_BIND_INTERDOMAIN, &mut arg)?;
    Ok(arg.local_port)
}

/// Bind a virtual interrupt (`VIRQ_*`) of vCPU 0 to a new port.
pub fn bind_virq(virq: u32) -> Result<EvtchnPort, Errno> {
    let mut arg = EvtchnBindVirq {
        virq,
        vcpu: 0,
        port: 0,
    };
    hypercall::event_channel_op(EVTCHNOP_BIND_VIRQ, &mut arg)?;
    Ok(arg.port)
}

/// Notify the other end of `port`.
pub fn send(port: EvtchnPort) -> Result<(), Errno> {
    let mut arg = EvtchnPortArg { port };
    hypercall::event_channel_op(EVTCHNOP_SEND, &mut arg).map(|_| ())
}

/// Close `port`; a pending event on it is discarded.
pub fn close(port: EvtchnPort) -> Result<(), Errno> {
    let mut arg = EvtchnPortArg { port };
    hypercall::event_channel_op(EVTCHNOP_CLOSE, &mut arg)?;
    shared_info::evtchn_test_and_clear_pending(port);
    Ok(())
}

/// Stop `port` from raising events (its pending bit still gets set).
pub fn mask(port: EvtchnPort) {
    shared_info::evtchn_set_mask(port, true);
}

/// Let `port` raise events again.
pub fn unmask(port: EvtchnPort) -> Result<(), Errno> {
    let mut arg = EvtchnPortArg { port };
    hypercall::event_channel_op(EVTCHNOP_UNMASK, &mut arg).map(|_| ())
}

/// What a port is connected to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PortStatus {
    Closed,
    Unbound {
        remote: DomId,
    },
    Interdomain {
        remote: DomId,
        remote_port: EvtchnPort,
    },
    Virq(u32),
    Other(u32),
}

/// Query `port` of this domain.
pub fn status(port: EvtchnPort) -> Result<PortStatus, Errno> {
    let mut arg = EvtchnStatus {
        dom: DOMID_SELF,
        _pad0: 0,
        port,
        status: 0,
        vcpu: 0,
        u: [0; 2],
    };
    hypercall::event_channel_op(EVTCHNOP_STATUS, &mut arg)?;
    Ok(match arg.status {
        EVTCHNSTAT_CLOSED => PortStatus::Closed,
        EVTCHNSTAT_UNBOUND => PortStatus::Unbound {
            remote: arg.u[0] as DomId,
        },
        EVTCHNSTAT_INTERDOMAIN => PortStatus::Interdomain {
            remote: arg.u[0] as DomId,
            remote_port: arg.u[1],
        },
        EVTCHNSTAT_VIRQ => PortStatus::Virq(arg.u[0]),
        other => PortStatus::Other(other),
    })
}
