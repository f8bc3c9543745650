//! Event-port and timer wake-ups for the executor.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::rc::Rc;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

use crate::types::{Instant, Port};

/// Who waits for which event port and timer deadline; shared (by cloning) between the
/// executor and a platform's `EventChannels::wait` / `Timers::sleep_until`.
///
/// The reactor knows nothing about Xen: the platform tells it which ports fired
/// ([`wake_port`](Self::wake_port)) and what time it is ([`advance_time`](Self::advance_time)),
/// and asks it what to block on ([`waited_ports`](Self::waited_ports),
/// [`next_deadline`](Self::next_deadline)). That is what lets the PV guest block in
/// `SCHEDOP_poll` and the sim drive the same code deterministically.
#[derive(Clone, Default)]
pub struct Reactor {
    state: Rc<RefCell<State>>,
}

#[derive(Default)]
struct State {
    now: Instant,
    next_id: u64,
    port_waiters: BTreeMap<Port, Vec<(u64, Waker)>>,
    /// Ports that fired since their last completed wait (the coalescing "pending bit").
    fired: BTreeSet<Port>,
    /// Bumped when a port is forgotten (closed): every wait registered before completes.
    epochs: BTreeMap<Port, u64>,
    timers: BTreeMap<(Instant, u64), Waker>,
}

impl core::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let s = self.state.borrow();
        f.debug_struct("Reactor")
            .field("now", &s.now)
            .field("waited_ports", &s.port_waiters.keys().collect::<Vec<_>>())
            .field("fired", &s.fired)
            .field("timers", &s.timers.len())
            .finish()
    }
}

impl Reactor {
    /// A reactor with time at [`Instant::ZERO`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Completes when `port` fires (or fired since the last completed wait on it).
    pub fn wait_port(&self, port: Port) -> PortWait {
        PortWait {
            reactor: self.clone(),
            port,
            id: None,
        }
    }

    /// Completes once the reactor's time reaches `deadline`.
    pub fn sleep_until(&self, deadline: Instant) -> Sleep {
        Sleep {
            reactor: self.clone(),
            deadline,
            key: None,
        }
    }

    /// The time the platform last reported through [`advance_time`](Self::advance_time).
    pub fn now(&self) -> Instant {
        self.state.borrow().now
    }

    /// Records that `port` fired and wakes its waiters. Called by the platform (after
    /// test-and-clearing the pending bit) or by the sim.
    pub fn wake_port(&self, port: Port) {
        let wakers = {
            let mut s = self.state.borrow_mut();
            s.fired.insert(port);
            s.port_waiters.get(&port).cloned().unwrap_or_default()
        };
        // Woken outside the borrow: a waker may run arbitrary code.
        for (_, w) in wakers {
            w.wake();
        }
    }

    /// Forgets a pending event of `port` and completes every current wait on it, so the
    /// waiters notice the port is gone; call when the port is closed.
    pub fn forget_port(&self, port: Port) {
        let wakers = {
            let mut s = self.state.borrow_mut();
            s.fired.remove(&port);
            *s.epochs.entry(port).or_default() += 1;
            s.port_waiters.get(&port).cloned().unwrap_or_default()
        };
        for (_, w) in wakers {
            w.wake();
        }
    }

    /// Appends the ports some future is waiting on (each once, ascending) to `out`.
    pub fn waited_ports(&self, out: &mut Vec<Port>) {
        out.extend(self.state.borrow().port_waiters.keys().copied());
    }

    /// Whether some future waits on `port`.
    pub fn is_waited(&self, port: Port) -> bool {
        self.state.borrow().port_waiters.contains_key(&port)
    }

    /// The earliest pending timer deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.state
            .borrow()
            .timers
            .keys()
            .next()
            .map(|&(deadline, _)| deadline)
    }

    /// Sets the time (never backwards) and wakes every timer whose deadline has passed.
    /// Returns how many timers fired.
    pub fn advance_time(&self, now: Instant) -> usize {
        let expired: Vec<Waker> = {
            let mut s = self.state.borrow_mut();
            if now > s.now {
                s.now = now;
            }
            let now = s.now;
            let mut expired = Vec::new();
            while let Some(entry) = s.timers.first_entry() {
                if entry.key().0 > now {
                    break;
                }
                expired.push(entry.remove());
            }
            expired
        };
        let n = expired.len();
        for w in expired {
            w.wake();
        }
        n
    }
}

/// Future of [`Reactor::wait_port`]. Dropping it withdraws the wait.
#[must_use = "futures do nothing unless polled"]
pub struct PortWait {
    reactor: Reactor,
    port: Port,
    /// Registration id and the port's epoch at registration.
    id: Option<(u64, u64)>,
}

impl PortWait {
    fn unregister(&mut self, s: &mut State) {
        if let Some((id, _)) = self.id.take() {
            if let Some(list) = s.port_waiters.get_mut(&self.port) {
                list.retain(|(i, _)| *i != id);
                if list.is_empty() {
                    s.port_waiters.remove(&self.port);
                }
            }
        }
    }
}

impl Future for PortWait {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let reactor = this.reactor.clone();
        let mut s = reactor.state.borrow_mut();
        let epoch = s.epochs.get(&this.port).copied().unwrap_or(0);
        let forgotten = matches!(this.id, Some((_, e)) if e != epoch);
        if forgotten || s.fired.remove(&this.port) {
            this.unregister(&mut s);
            return Poll::Ready(());
        }
        match this.id {
            Some((id, _)) => {
                if let Some(entry) = s
                    .port_waiters
                    .get_mut(&this.port)
                    .and_then(|l| l.iter_mut().find(|(i, _)| *i == id))
                {
                    entry.1.clone_from(cx.waker());
                }
            }
            None => {
                let id = s.next_id;
                s.next_id += 1;
                s.port_waiters
                    .entry(this.port)
                    .or_default()
                    .push((id, cx.waker().clone()));
                this.id = Some((id, epoch));
            }
        }
        Poll::Pending
    }
}

impl Drop for PortWait {
    fn drop(&mut self) {
        let reactor = self.reactor.clone();
        // A wait dropped while the reactor is borrowed cannot happen: the reactor never
        // drops futures while borrowed. try_borrow_mut keeps Drop panic-free regardless.
        if let Ok(mut s) = reactor.state.try_borrow_mut() {
            self.unregister(&mut s);
        }
    }
}

/// Future of [`Reactor::sleep_until`]. Dropping it cancels the timer, so an abandoned
/// timeout does not make the platform wake up for nothing.
#[must_use = "futures do nothing unless polled"]
pub struct Sleep {
    reactor: Reactor,
    deadline: Instant,
    key: Option<(Instant, u64)>,
}

impl Sleep {
    /// The deadline.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut s = this.reactor.state.borrow_mut();
        if this.deadline <= s.now {
            if let Some(key) = this.key.take() {
                s.timers.remove(&key);
            }
            return Poll::Ready(());
        }
        match this.key {
            Some(key) => {
                // Re-insert if it fired and was removed but time did not reach it (cannot
                // happen with a monotonic clock; cheap to be robust).
                s.timers.insert(key, cx.waker().clone());
            }
            None => {
                let key = (this.deadline, s.next_id);
                s.next_id += 1;
                s.timers.insert(key, cx.waker().clone());
                this.key = Some(key);
            }
        }
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            if let Ok(mut s) = self.reactor.state.try_borrow_mut() {
                s.timers.remove(&key);
            }
        }
    }
}
