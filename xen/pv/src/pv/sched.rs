//! Blocking, yielding and shutting down (`sched_op`).

use xen_abi::errno::Errno;
use xen_abi::sched::{
    SCHED_POLL_MAX_PORTS, SCHEDOP_POLL, SCHEDOP_SHUTDOWN, SCHEDOP_YIELD, SchedPoll, SchedShutdown,
};

use super::hypercall;

/// Block until one of `ports` is pending or Xen system time reaches `deadline_ns`
/// (absolute; 0 = no deadline). Xen checks the ports after marking us as polling, so an
/// event that fires between our last look and this call is not lost. Works with event
/// upcalls masked, which is how this runtime runs.
pub fn poll(ports: &[u32], deadline_ns: u64) -> Result<(), Errno> {
    if ports.len() > SCHED_POLL_MAX_PORTS {
        return Err(Errno::EINVAL);
    }
    let mut arg = SchedPoll {
        ports: ports.as_ptr() as u64,
        nr_ports: ports.len() as u32,
        _pad0: 0,
        timeout: deadline_ns,
    };
    hypercall::sched_op(SCHEDOP_POLL, &mut arg).map(|_| ())
}

/// Give up the CPU to other domains.
pub fn yield_now() {
    let mut none = 0u64;
    let _ = hypercall::sched_op(SCHEDOP_YIELD, &mut none);
}

/// Ask Xen to shut the domain down; returns only if Xen refused.
pub fn request_shutdown(reason: u32) -> Errno {
    let mut arg = SchedShutdown { reason };
    match hypercall::sched_op(SCHEDOP_SHUTDOWN, &mut arg) {
        Ok(_) => Errno::EINVAL,
        Err(e) => e,
    }
}
