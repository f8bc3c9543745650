//! Platform checks written once against the traits, run on every platform: the sim in
//! `cargo test`, a PV guest in the Xen lab, Linux in dom0. Each check exercises one trait
//! the way drivers use it and fails with a [`Failure`] naming what went wrong.
//!
//! ```ignore
//! let report = conformance::event_loopback(&platform, 10_000).await?;
//! log::info!("{} event round trips in {:?}", report.round_trips, report.elapsed);
//! ```

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::sync::atomic::Ordering;
use core::task::{Context, Poll};
use core::time::Duration;

use crate::error::Error;
use crate::evtchn::EventChannels;
use crate::grant::{CopyOp, CopyPtr, GrantCopy, GrantMap, GrantShare, Granted};
use crate::memory::{Mapping, PAGE_SIZE, PageMemory};
use crate::time::{Timers, sleep};
use crate::types::{Access, DomId};

/// A failed check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// An operation that should succeed failed.
    Op {
        /// What the check was doing.
        step: &'static str,
        /// The error.
        error: Error,
    },
    /// An operation that should fail succeeded, or failed differently.
    Expected {
        /// What the check was doing.
        step: &'static str,
        /// What came back instead (`None`: it succeeded).
        got: Option<Error>,
    },
    /// Data read back differs from what was written.
    Mismatch {
        /// What the check was doing.
        step: &'static str,
        /// Byte offset of the first difference.
        offset: usize,
    },
    /// Timers completed out of deadline order.
    TimerOrder {
        /// Index (in deadline order) of the timer that completed early.
        early: usize,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Op { step, error } => write!(f, "{step}: {error}"),
            Failure::Expected { step, got: None } => write!(f, "{step}: unexpectedly succeeded"),
            Failure::Expected { step, got: Some(e) } => write!(f, "{step}: wrong error {e}"),
            Failure::Mismatch { step, offset } => write!(f, "{step}: data differs at {offset}"),
            Failure::TimerOrder { early } => write!(f, "timer {early} fired out of order"),
        }
    }
}

trait Step<T> {
    fn step(self, step: &'static str) -> Result<T, Failure>;
}

impl<T> Step<T> for Result<T, Error> {
    fn step(self, step: &'static str) -> Result<T, Failure> {
        self.map_err(|error| Failure::Op { step, error })
    }
}

fn pattern(seed: u8, i: usize) -> u8 {
    (i as u8).wrapping_mul(31).wrapping_add(seed)
}

fn fill(mem: &crate::SharedMem<'_>, seed: u8) {
    for i in 0..mem.len() {
        // In bounds by construction.
        let _ = mem.store_u8(i, pattern(seed, i), Ordering::Relaxed);
    }
}

/// Checks that bytes `start..start + len` (as read by `read(offset, buf)`) hold
/// `pattern(seed, offset)`.
fn check(
    step: &'static str,
    read: impl Fn(usize, &mut [u8]),
    start: usize,
    len: usize,
    seed: u8,
) -> Result<(), Failure> {
    let mut buf = [0u8; 256];
    let mut off = start;
    while off < start + len {
        let n = buf.len().min(start + len - off);
        read(off, &mut buf[..n]);
        if let Some(i) = (0..n).find(|&i| buf[i] != pattern(seed, off + i)) {
            return Err(Failure::Mismatch {
                step,
                offset: off + i,
            });
        }
        off += n;
    }
    Ok(())
}

/// Result of [`event_loopback`].
#[derive(Clone, Copy, Debug)]
pub struct LoopbackReport {
    /// Completed notify/wake round trips.
    pub round_trips: u32,
    /// Monotonic time they took.
    pub elapsed: Duration,
}

/// An event channel bound to ourselves (`alloc_unbound(DOMID_SELF)` then
/// `bind_interdomain(DOMID_SELF, port)`), then `rounds` round trips: notify one end, wait
/// on the other, and back. Also checks that closing one end makes the other unbound and that
/// notifying a closed port fails.
pub async fn event_loopback<P: EventChannels + Timers>(
    p: &P,
    rounds: u32,
) -> Result<LoopbackReport, Failure> {
    let a = p.alloc_unbound(DomId::SELF).step("alloc_unbound(self)")?;
    let b = p
        .bind_interdomain(DomId::SELF, a)
        .step("bind_interdomain(self)")?;
    // Drain the event the bind leaves pending, if the platform reports one.
    let _ = crate::time::timeout(p, Duration::from_millis(1), p.wait(b)).await;
    let start = p.now();
    for _ in 0..rounds {
        p.notify(a).step("notify a")?;
        p.wait(b).await.step("wait b")?;
        p.notify(b).step("notify b")?;
        p.wait(a).await.step("wait a")?;
    }
    let elapsed = p.now().saturating_duration_since(start);
    p.close(b).step("close b")?;
    match p.notify(b) {
        Err(Error::PortNotBound { .. }) => {}
        Err(e) if e.errno() == crate::Errno::EINVAL => {}
        other => {
            return Err(Failure::Expected {
                step: "notify closed port",
                got: other.err(),
            });
        }
    }
    p.close(a).step("close a")?;
    Ok(LoopbackReport {
        round_trips: rounds,
        elapsed,
    })
}

/// Grants a page to ourselves, maps it back (`GNTTABOP_map_grant_ref`), checks that writes
/// are visible both ways, that revocation is refused while mapped (`EBUSY`) and allowed
/// after the unmap, and that a read-only grant cannot be mapped writable.
pub async fn grant_self_map<P: GrantShare + GrantMap>(p: &P, me: DomId) -> Result<(), Failure> {
    let granted = p
        .share_pages(1, me, Access::ReadWrite)
        .step("share page with self")?;
    fill(&granted.mem(), 1);
    let map = p
        .map(me, granted.refs(), Access::ReadWrite)
        .step("map own grant")?;
    let mapped = map.mem().ok_or(Failure::Op {
        step: "writable view of writable mapping",
        error: Error::InvalidArgument { op: crate::Op::Map },
    })?;
    check(
        "read through mapping",
        |o, b| {
            let _ = mapped.read(o, b);
        },
        0,
        PAGE_SIZE,
        1,
    )?;
    fill(&mapped, 2);
    let gmem = granted.mem();
    check(
        "read back through grant",
        |o, b| {
            let _ = gmem.read(o, b);
        },
        0,
        PAGE_SIZE,
        2,
    )?;
    let granted = match p.revoke(granted) {
        Err(refused) if refused.error.errno() == crate::Errno::EBUSY => refused.value,
        Err(refused) => {
            return Err(Failure::Expected {
                step: "revoke while mapped",
                got: Some(refused.error),
            });
        }
        Ok(_) => {
            return Err(Failure::Expected {
                step: "revoke while mapped",
                got: None,
            });
        }
    };
    p.unmap(map).step("unmap")?;
    let pages = p.revoke(granted).map_err(|r| Failure::Op {
        step: "revoke after unmap",
        error: r.error,
    })?;
    let ro = p
        .grant(pages, me, Access::ReadOnly)
        .map_err(|r| Failure::Op {
            step: "grant read-only",
            error: r.error,
        })?;
    match p.map(me, ro.refs(), Access::ReadWrite) {
        Err(Error::Grant { .. }) | Err(Error::Xen { .. }) => {}
        Ok(_) => {
            return Err(Failure::Expected {
                step: "writable map of read-only grant",
                got: None,
            });
        }
        Err(e) => {
            return Err(Failure::Expected {
                step: "writable map of read-only grant",
                got: Some(e),
            });
        }
    }
    let ro_map = p
        .map(me, ro.refs(), Access::ReadOnly)
        .step("map read-only")?;
    let view = ro_map.mem_ro();
    check(
        "read-only mapping",
        |o, b| {
            let _ = view.read(o, b);
        },
        0,
        PAGE_SIZE,
        2,
    )?;
    p.unmap(ro_map).step("unmap read-only")?;
    p.revoke(ro).map_err(|r| Failure::Op {
        step: "revoke read-only",
        error: r.error,
    })?;
    Ok(())
}

/// `GNTTABOP_copy` between a page granted to ourselves and a local page, both directions,
/// and a copy crossing a page boundary (must fail).
pub async fn grant_copy_self<P: GrantShare + GrantCopy>(p: &P, me: DomId) -> Result<(), Failure> {
    let granted = p
        .share_pages(1, me, Access::ReadWrite)
        .step("share page with self")?;
    fill(&granted.mem(), 3);
    let local = p.alloc_pages(2).step("alloc local pages")?;
    let gref = granted.refs()[0];
    p.copy(&CopyOp {
        src: CopyPtr::Foreign {
            domid: me,
            gref,
            offset: 0,
        },
        dst: CopyPtr::Local {
            pages: &local,
            offset: PAGE_SIZE,
        },
        len: PAGE_SIZE as u16,
    })
    .step("copy foreign -> local")?;
    let lmem = local.mem();
    check(
        "copied into local page",
        |o, b| {
            let _ = lmem.read(PAGE_SIZE + o, b);
        },
        0,
        PAGE_SIZE,
        3,
    )?;
    fill(&lmem.sub(0, PAGE_SIZE).unwrap_or(lmem), 4);
    p.copy(&CopyOp {
        src: CopyPtr::Local {
            pages: &local,
            offset: 100,
        },
        dst: CopyPtr::Foreign {
            domid: me,
            gref,
            offset: 100,
        },
        len: 1000,
    })
    .step("copy local -> foreign")?;
    let gmem = granted.mem();
    check(
        "copied into granted page",
        |o, b| {
            let _ = gmem.read(o, b);
        },
        100,
        1000,
        4,
    )?;
    // Bytes around the copied range are untouched.
    check(
        "granted page outside the copy",
        |o, b| {
            let _ = gmem.read(o, b);
        },
        1100,
        PAGE_SIZE - 1100,
        3,
    )?;
    let crossing = p.copy(&CopyOp {
        src: CopyPtr::Foreign {
            domid: me,
            gref,
            offset: 4000,
        },
        dst: CopyPtr::Local {
            pages: &local,
            offset: 0,
        },
        len: 200,
    });
    if crossing.is_ok() {
        return Err(Failure::Expected {
            step: "copy crossing a page boundary",
            got: None,
        });
    }
    p.revoke(granted).map_err(|r| Failure::Op {
        step: "revoke",
        error: r.error,
    })?;
    Ok(())
}

/// Sleeps of different lengths, started together (in an order unrelated to their deadlines),
/// complete in deadline order and never before their deadline. Timers that become due
/// together (a late wake-up) may complete together.
pub async fn timers_in_order<P: Timers>(p: &P) -> Result<(), Failure> {
    const MS: [u64; 5] = [40, 10, 30, 20, 50];
    let start = p.now();
    let mut pending: Vec<(usize, BoxedSleep<'_>)> = MS
        .iter()
        .enumerate()
        .map(|(i, &ms)| {
            let f: BoxedSleep<'_> = Box::pin(sleep(p, Duration::from_millis(ms)));
            (i, f)
        })
        .collect();
    // Polled in deadline order: when several are due, the earliest is taken first, so any
    // later timer completing while an earlier one is still pending is a real violation.
    pending.sort_by_key(|&(i, _)| MS[i]);
    while !pending.is_empty() {
        let done = FirstReady(&mut pending).await;
        let (i, _) = pending.remove(done);
        let at = p.now().saturating_duration_since(start);
        if done != 0 || at < Duration::from_millis(MS[i]) {
            return Err(Failure::TimerOrder { early: i });
        }
    }
    Ok(())
}

/// Completes with the position of the first ready future in the list.
struct FirstReady<'a, 'b>(&'a mut Vec<(usize, BoxedSleep<'b>)>);

type BoxedSleep<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

impl Future for FirstReady<'_, '_> {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        for (k, (_, f)) in self.0.iter_mut().enumerate() {
            if f.as_mut().poll(cx).is_ready() {
                return Poll::Ready(k);
            }
        }
        Poll::Pending
    }
}
