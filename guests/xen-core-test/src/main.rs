//! `xen-core-test`: checks the xen core layer against real Xen, from inside a guest.
//!
//! The platform checks shared with the sim (`xen_platform::conformance`: event-channel
//! loopback with 10,000 notify/wake round trips, self-grant mapped back, grant copy, timers
//! in order) run first, then PV-specific checks (closed ports, read-only enforcement, a
//! stale unmap handle, grant exhaustion, timeouts). Each prints `ok <name>: <detail>` or
//! `FAIL <name>: <reason>` as it completes; the guest ends with
//! `xen-core-test: N passed, M failed` and crashes the domain if anything failed.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::String;
use core::time::Duration;

use xen_platform::conformance;
use xen_platform::{
    Access, Clock, CopyOp, CopyPtr, DomId, Error, EventChannels, GrantCopy, GrantMap, GrantShare,
    Granted, Mapping, PageAlloc, timeout,
};
use xen_pv::{Env, PvPlatform, Runtime, println};

xen_pv::entry!(main);

type Check = Result<String, String>;

const ROUND_TRIPS: u32 = 10_000;

struct Tally {
    passed: usize,
    failed: usize,
}

impl Tally {
    fn report(&mut self, name: &str, outcome: Check) {
        match outcome {
            Ok(detail) => {
                self.passed += 1;
                println!("ok {name}: {detail}");
            }
            Err(reason) => {
                self.failed += 1;
                println!("FAIL {name}: {reason}");
            }
        }
    }
}

fn conf<T>(r: Result<T, conformance::Failure>) -> Result<T, String> {
    r.map_err(|f| format!("{f}"))
}

fn main(_env: &Env) -> Result<(), String> {
    let mut rt = Runtime::new().map_err(|e| format!("runtime: {e}"))?;
    let p = rt.platform();
    let me = p.own_domid().map_err(|e| format!("own domid: {e}"))?;
    println!("xen-core-test: running as {me}");
    let mut tally = Tally {
        passed: 0,
        failed: 0,
    };
    rt.block_on(async {
        let report = conf(conformance::event_loopback(&p, ROUND_TRIPS).await);
        let report = report.map(|r| {
            let per_sec = r.round_trips as u128 * 1_000_000_000 / r.elapsed.as_nanos().max(1);
            println!(
                "bench: evtchn notify/wake round trips: {} in {} ms = {per_sec}/s",
                r.round_trips,
                r.elapsed.as_millis()
            );
            format!("{} round trips, {per_sec}/s", r.round_trips)
        });
        tally.report("evtchn-loopback", report);
        tally.report(
            "grant-map-self",
            conf(conformance::grant_self_map(&p, me).await)
                .map(|()| "mapped back, EBUSY while mapped".into()),
        );
        tally.report(
            "grant-copy",
            conf(conformance::grant_copy_self(&p, me).await)
                .map(|()| "GNTTABOP_copy both ways".into()),
        );
        tally.report(
            "timers-in-order",
            conf(conformance::timers_in_order(&p).await).map(|()| "deadline order".into()),
        );
        tally.report("evtchn-closed-port", closed_port(&p, me));
        tally.report("grant-readonly", grant_readonly(&p, me));
        tally.report("grant-double-unmap", double_unmap(&p, me));
        tally.report("grant-copy-crossing", copy_crossing_page(&p, me));
        tally.report("grant-exhaustion", grant_exhaustion(&p, me));
        tally.report("timeout-elapses", timeout_elapses(&p, me).await);
    })
    .map_err(|e| format!("executor: {e}"))?;
    println!(
        "xen-core-test: {} passed, {} failed",
        tally.passed, tally.failed
    );
    if tally.failed > 0 {
        Err(format!("{} checks failed", tally.failed))
    } else {
        Ok(())
    }
}

fn err(what: &str, e: Error) -> String {
    format!("{what}: {e} (errno {:?})", e.errno())
}

/// Operations on closed ports fail with Xen's errno instead of silently succeeding.
fn closed_port(p: &PvPlatform, me: DomId) -> Check {
    let a = p.alloc_unbound(me).map_err(|e| err("alloc_unbound", e))?;
    p.close(a).map_err(|e| err("close", e))?;
    let bind = p.bind_interdomain(me, a);
    let send = p.notify(a);
    match (bind, send) {
        (Err(b), Err(s)) => Ok(format!(
            "bind -> {:?}, notify -> {:?}",
            b.errno(),
            s.errno()
        )),
        (b, s) => Err(format!("closed port accepted: bind {b:?}, notify {s:?}")),
    }
}

const PATTERN: &[u8] = b"grant copy across a page boundary";

/// A read-only grant cannot be mapped writable.
fn grant_readonly(p: &PvPlatform, me: DomId) -> Check {
    let pages = p.alloc_pages(1).map_err(|e| err("alloc", e))?;
    let granted = p
        .grant(pages, me, Access::ReadOnly)
        .map_err(|r| err("grant", r.error))?;
    let writable = p.map(me, granted.refs(), Access::ReadWrite);
    let readonly = p
        .map(me, granted.refs(), Access::ReadOnly)
        .map_err(|e| err("read-only map", e))?;
    if readonly.mem().is_some() {
        return Err("read-only mapping offers a writable view".into());
    }
    drop(readonly);
    p.revoke(granted).map_err(|r| err("revoke", r.error))?;
    match writable {
        Err(e) => Ok(format!("writable map of a read-only grant refused: {e}")),
        Ok(_) => Err("writable mapping of a read-only grant succeeded".into()),
    }
}

/// Unmapping twice with the same handle is refused by Xen.
fn double_unmap(p: &PvPlatform, me: DomId) -> Check {
    let pages = p.alloc_pages(1).map_err(|e| err("alloc", e))?;
    let granted = p
        .grant(pages, me, Access::ReadWrite)
        .map_err(|r| err("grant", r.error))?;
    let range = xen_pv::mm::reserve_virt(1).map_err(|e| format!("reserve: {e}"))?;
    let handle = xen_pv::gnttab::map_at(range.addr(), me.0, granted.refs()[0].0, false)
        .map_err(|e| err("map", e))?;
    xen_pv::gnttab::unmap_at(range.addr(), handle).map_err(|e| err("first unmap", e))?;
    let second = xen_pv::gnttab::unmap_at(range.addr(), handle);
    xen_pv::mm::release_virt(range);
    p.revoke(granted).map_err(|r| err("revoke", r.error))?;
    match second {
        Err(e) => Ok(format!("second unmap refused: {e} ({:?})", e.errno())),
        Ok(()) => Err("second unmap with a stale handle succeeded".into()),
    }
}

/// A grant copy whose destination crosses a page boundary is refused.
fn copy_crossing_page(p: &PvPlatform, me: DomId) -> Check {
    let src = p
        .share_pages(1, me, Access::ReadOnly)
        .map_err(|e| err("share", e))?;
    let dst = p.alloc_pages(1).map_err(|e| err("alloc", e))?;
    let op = CopyOp {
        src: CopyPtr::Foreign {
            domid: me,
            gref: src.refs()[0],
            offset: 0,
        },
        dst: CopyPtr::Local {
            pages: &dst,
            offset: 4090,
        },
        len: PATTERN.len() as u16,
    };
    let crossing = p.copy(&op);
    p.revoke(src).map_err(|r| err("revoke", r.error))?;
    match crossing {
        Err(e) => Ok(format!("refused: {e}")),
        Ok(()) => Err("copy crossing a page boundary succeeded".into()),
    }
}

/// When every grant reference is in use, granting fails cleanly and consumes nothing.
/// The table is filled by granting one frame many times (which Xen allows).
fn grant_exhaustion(p: &PvPlatform, me: DomId) -> Check {
    let page = p.alloc_pages(1).map_err(|e| err("alloc", e))?;
    let mfn = page.mfn(0).ok_or("page without mfn")?;
    let mut held = alloc::vec::Vec::new();
    let exhausted = loop {
        match xen_pv::gnttab::grant_access(me.0, mfn, true) {
            Ok(r) => held.push(r),
            Err(e) => break e,
        }
    };
    let two = p.alloc_pages(2).map_err(|e| err("alloc", e))?;
    let refused = p.grant(two, me, Access::ReadOnly);
    let left = xen_pv::gnttab::free_refs();
    for r in &held {
        xen_pv::gnttab::end_access(*r).map_err(|e| err("end_access", e))?;
    }
    match (exhausted, refused) {
        (Error::GrantTableFull, Err(r))
            if matches!(r.error, Error::GrantTableFull) && left == 0 =>
        {
            Ok(format!(
                "table full after {} refs; trait-level grant refused, nothing consumed",
                held.len()
            ))
        }
        (first, second) => Err(format!(
            "filling the table ended with {first}, then grant gave {:?}, {left} refs left",
            second.err().map(|r| r.error)
        )),
    }
}

/// `timeout` around a wait that never completes elapses at its deadline.
async fn timeout_elapses(p: &PvPlatform, me: DomId) -> Check {
    let a = p.alloc_unbound(me).map_err(|e| err("alloc_unbound", e))?;
    let start = p.now();
    let result = timeout(p, Duration::from_millis(30), p.wait(a)).await;
    let waited = (p.now() - start).as_millis();
    p.close(a).map_err(|e| err("close", e))?;
    match result {
        Err(_) if waited >= 30 => Ok(format!("elapsed after {waited} ms")),
        Err(_) => Err(format!("elapsed early, after {waited} ms")),
        Ok(r) => Err(format!("wait on a silent port completed: {r:?}")),
    }
}
