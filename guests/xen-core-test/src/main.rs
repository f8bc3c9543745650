//! `xen-core-test`: checks the xen core layer against real Xen, from inside a guest.
//!
//! Every check prints `ok <name>: <detail>` or `FAIL <name>: <reason>`; the guest ends with
//! `xen-core-test: N passed, M failed` and crashes the domain if anything failed. A
//! benchmark line reports event-channel round trips per second.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::borrow::ToOwned;
use alloc::format;
use alloc::rc::Rc;
use alloc::string::String;
use alloc::vec::Vec;
use core::cell::RefCell;
use core::time::Duration;

use xen_platform::{
    Access, Clock, CopyOp, CopyPtr, DomId, Error, EventChannels, GrantCopy, GrantMap, GrantShare, Granted, Mapping,
    PageAlloc, PageMemory, Port, timeout,
};
use xen_pv::{Env, PvPlatform, Runtime, println};

xen_pv::entry!(main);

type Check = Result<String, String>;

fn main(_env: &Env) -> Result<(), String> {
    let mut rt = Runtime::new().map_err(|e| format!("runtime: {e}"))?;
    let p = rt.platform();
    let domid = p.own_domid().map_err(|e| format!("own domid: {e}"))?;
    println!("xen-core-test: running as {domid}");
    let spawner = rt.spawner();
    let outcomes = rt
        .block_on(async move {
            let mut outcomes: Vec<(&'static str, Check)> = Vec::new();
            outcomes.push(("evtchn-loopback", evtchn_loopback(&p, domid).await));
            outcomes.push(("evtchn-round-trips", round_trips(&p, domid, &spawner, 10_000).await));
            outcomes.push(("evtchn-closed-port", closed_port(&p, domid)));
            outcomes.push(("grant-map-self", grant_map_self(&p, domid)));
            outcomes.push(("grant-readonly", grant_readonly(&p, domid)));
            outcomes.push(("grant-double-unmap", double_unmap(&p, domid)));
            outcomes.push(("grant-copy", grant_copy(&p, domid)));
            outcomes.push(("grant-exhaustion", grant_exhaustion(&p, domid)));
            outcomes.push(("timers-in-order", timers_in_order(&p, &spawner).await));
            outcomes.push(("timeout-elapses", timeout_elapses(&p, domid).await));
            outcomes
        })
        .map_err(|e| format!("executor: {e}"))?;
    let mut failed = 0;
    for (name, outcome) in &outcomes {
        match outcome {
            Ok(detail) => println!("ok {name}: {detail}"),
            Err(reason) => {
                failed += 1;
                println!("FAIL {name}: {reason}");
            }
        }
    }
    println!("xen-core-test: {} passed, {failed} failed", outcomes.len() - failed);
    if failed > 0 { Err(format!("{failed} checks failed")) } else { Ok(()) }
}

fn err(what: &str, e: Error) -> String {
    format!("{what}: {e} (errno {:?})", e.errno())
}

/// A port bound to itself: notifying either end fires the other.
async fn evtchn_loopback(p: &PvPlatform, me: DomId) -> Check {
    let a = p.alloc_unbound(me).map_err(|e| err("alloc_unbound", e))?;
    let b = p.bind_interdomain(me, a).map_err(|e| err("bind_interdomain", e))?;
    p.notify(b).map_err(|e| err("notify b", e))?;
    timeout(p, Duration::from_secs(5), p.wait(a)).await.map_err(|_| "a never fired".to_owned())?.map_err(|e| err("wait a", e))?;
    p.notify(a).map_err(|e| err("notify a", e))?;
    timeout(p, Duration::from_secs(5), p.wait(b)).await.map_err(|_| "b never fired".to_owned())?.map_err(|e| err("wait b", e))?;
    p.close(b).map_err(|e| err("close b", e))?;
    p.close(a).map_err(|e| err("close a", e))?;
    Ok(format!("{a} <-> {b}"))
}

/// Ping-pong between the main task and a spawned echo task over a loopback pair.
async fn round_trips(p: &PvPlatform, me: DomId, spawner: &xen_platform::executor::Spawner, n: u32) -> Check {
    let a = p.alloc_unbound(me).map_err(|e| err("alloc_unbound", e))?;
    let b = p.bind_interdomain(me, a).map_err(|e| err("bind_interdomain", e))?;
    let echo_platform = p.clone();
    let echo = spawner.spawn(async move {
        for _ in 0..n {
            echo_platform.wait(a).await?;
            echo_platform.notify(a)?;
        }
        Ok::<(), Error>(())
    });
    let start = p.now();
    let pings = async {
        for i in 0..n {
            p.notify(b).map_err(|e| err("notify", e))?;
            p.wait(b).await.map_err(|e| err(&format!("wait #{i}"), e))?;
        }
        Ok::<(), String>(())
    };
    timeout(p, Duration::from_secs(120), pings).await.map_err(|_| "round trips stalled".to_owned())??;
    let elapsed = p.now() - start;
    echo.await.map_err(|e| err("echo task", e))?;
    p.close(b).map_err(|e| err("close", e))?;
    p.close(a).map_err(|e| err("close", e))?;
    let per_sec = n as u128 * 1_000_000_000 / elapsed.as_nanos().max(1);
    println!("bench: evtchn round trips: {n} in {} ms = {per_sec}/s", elapsed.as_millis());
    Ok(format!("{n} round trips, {per_sec}/s"))
}

/// Operations on closed ports fail with Xen's errno instead of silently succeeding.
fn closed_port(p: &PvPlatform, me: DomId) -> Check {
    let a = p.alloc_unbound(me).map_err(|e| err("alloc_unbound", e))?;
    p.close(a).map_err(|e| err("close", e))?;
    let bind = p.bind_interdomain(me, a);
    let send = p.notify(a);
    match (bind, send) {
        (Err(b), Err(s)) => Ok(format!("bind -> {:?}, notify -> {:?}", b.errno(), s.errno())),
        (b, s) => Err(format!("closed port accepted: bind {b:?}, notify {s:?}")),
    }
}

const PATTERN: &[u8] = b"grant table v1 self-map check";

/// Grant a page to ourselves, map it back, see writes both ways, and revoke only after
/// unmapping.
fn grant_map_self(p: &PvPlatform, me: DomId) -> Check {
    let pages = p.alloc_pages(1).map_err(|e| err("alloc", e))?;
    pages.mem().write(0, PATTERN).map_err(|_| "write pattern".to_owned())?;
    let granted = p.grant(pages, me, Access::ReadWrite).map_err(|r| err("grant", r.error))?;
    let gref = granted.refs()[0];
    let mapping = p.map(me, granted.refs(), Access::ReadWrite).map_err(|e| err("map", e))?;
    let mut seen = [0u8; PATTERN.len()];
    mapping.mem_ro().read(0, &mut seen).map_err(|_| "read mapping".to_owned())?;
    if seen != PATTERN {
        return Err(format!("mapping shows {seen:?}"));
    }
    mapping.mem().ok_or("writable mapping without mem()")?.write(2048, b"back").map_err(|_| "write".to_owned())?;
    let mut back = [0u8; 4];
    granted.mem().read(2048, &mut back).map_err(|_| "read".to_owned())?;
    if &back != b"back" {
        return Err("write through the mapping not visible in the granted page".into());
    }
    let granted = match p.revoke(granted) {
        Err(refused) if matches!(refused.error, Error::GrantBusy { .. }) => refused.value,
        Err(refused) => return Err(err("revoke while mapped", refused.error)),
        Ok(_) => return Err("revoke succeeded while the page was mapped".into()),
    };
    p.unmap(mapping).map_err(|e| err("unmap", e))?;
    p.revoke(granted).map_err(|r| err("revoke after unmap", r.error))?;
    Ok(format!("{gref} mapped back; revoke refused while mapped (EBUSY), then succeeded"))
}

/// A read-only grant cannot be mapped writable.
fn grant_readonly(p: &PvPlatform, me: DomId) -> Check {
    let pages = p.alloc_pages(1).map_err(|e| err("alloc", e))?;
    let granted = p.grant(pages, me, Access::ReadOnly).map_err(|r| err("grant", r.error))?;
    let writable = p.map(me, granted.refs(), Access::ReadWrite);
    let readonly = p.map(me, granted.refs(), Access::ReadOnly).map_err(|e| err("read-only map", e))?;
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
    let granted = p.grant(pages, me, Access::ReadWrite).map_err(|r| err("grant", r.error))?;
    let range = xen_pv::mm::reserve_virt(1).map_err(|e| format!("reserve: {e}"))?;
    let handle = xen_pv::gnttab::map_at(range.addr(), me.0, granted.refs()[0].0, false).map_err(|e| err("map", e))?;
    xen_pv::gnttab::unmap_at(range.addr(), handle).map_err(|e| err("first unmap", e))?;
    let second = xen_pv::gnttab::unmap_at(range.addr(), handle);
    xen_pv::mm::release_virt(range);
    p.revoke(granted).map_err(|r| err("revoke", r.error))?;
    match second {
        Err(e) => Ok(format!("second unmap refused: {e} ({:?})", e.errno())),
        Ok(()) => Err("second unmap with a stale handle succeeded".into()),
    }
}

/// GNTTABOP_copy from a local frame into a granted page and back.
fn grant_copy(p: &PvPlatform, me: DomId) -> Check {
    let src = p.alloc_pages(1).map_err(|e| err("alloc", e))?;
    src.mem().write(100, PATTERN).map_err(|_| "write".to_owned())?;
    let target = p.alloc_pages(1).map_err(|e| err("alloc", e))?;
    let target = p.grant(target, me, Access::ReadWrite).map_err(|r| err("grant", r.error))?;
    let gref = target.refs()[0];
    let op = CopyOp { src: CopyPtr::Local { pages: &src, offset: 100 }, dst: CopyPtr::Foreign { domid: me, gref, offset: 7 }, len: PATTERN.len() as u16 };
    p.copy(&op).map_err(|e| err("copy to grant", e))?;
    let mut seen = [0u8; PATTERN.len()];
    target.mem().read(7, &mut seen).map_err(|_| "read".to_owned())?;
    if seen != PATTERN {
        return Err("copy into the granted page did not land".into());
    }
    let back = p.alloc_pages(1).map_err(|e| err("alloc", e))?;
    let op = CopyOp { src: CopyPtr::Foreign { domid: me, gref, offset: 7 }, dst: CopyPtr::Local { pages: &back, offset: 4000 }, len: 32 };
    let crossing = p.copy(&op);
    p.revoke(target).map_err(|r| err("revoke", r.error))?;
    match crossing {
        Err(e) => Ok(format!("copied {} bytes both ways; page-crossing copy refused ({e})", PATTERN.len())),
        Ok(()) => Err("copy crossing a page boundary succeeded".into()),
    }
}

/// Granting more pages than there are references fails cleanly, consuming nothing.
fn grant_exhaustion(p: &PvPlatform, me: DomId) -> Check {
    let free = xen_pv::gnttab::free_refs();
    let pages = p.alloc_pages(free + 1).map_err(|e| err("alloc", e))?;
    match p.grant(pages, me, Access::ReadOnly) {
        Err(refused) if matches!(refused.error, Error::GrantTableFull) => {
            let after = xen_pv::gnttab::free_refs();
            if after == free { Ok(format!("{} pages refused with {} refs free; none leaked", free + 1, free)) } else { Err(format!("{free} refs free before, {after} after")) }
        }
        Err(refused) => Err(err("grant", refused.error)),
        Ok(_) => Err("grant beyond the table succeeded".into()),
    }
}

/// Tasks sleeping for different times wake in deadline order, not spawn order.
async fn timers_in_order(p: &PvPlatform, spawner: &xen_platform::executor::Spawner) -> Check {
    let order = Rc::new(RefCell::new(Vec::new()));
    let start = p.now();
    let mut tasks = Vec::new();
    for ms in [50u64, 10, 40, 20, 30] {
        let p = p.clone();
        let order = order.clone();
        tasks.push(spawner.spawn(async move {
            xen_platform::sleep(&p, Duration::from_millis(ms)).await;
            order.borrow_mut().push((ms, (p.now() - start).as_millis() as u64));
        }));
    }
    for t in tasks {
        t.await;
    }
    let order = order.borrow();
    let woke: Vec<u64> = order.iter().map(|&(ms, _)| ms).collect();
    if woke != [10, 20, 30, 40, 50] {
        return Err(format!("woke in order {woke:?}"));
    }
    if let Some(&(ms, at)) = order.iter().find(|&&(ms, at)| at < ms) {
        return Err(format!("{ms} ms timer fired after {at} ms"));
    }
    Ok(format!("woke at {:?} ms", order.iter().map(|&(_, at)| at).collect::<Vec<_>>()))
}

/// `timeout` around a wait that never completes elapses at its deadline.
async fn timeout_elapses(p: &PvPlatform, me: DomId) -> Check {
    let a = p.alloc_unbound(me).map_err(|e| err("alloc_unbound", e))?;
    let start = p.now();
    let result = timeout(p, Duration::from_millis(30), p.wait(a)).await;
    let waited = (p.now() - start).as_millis();
    p.close(a).map_err(|e| err("close", e))?;
    let _: Port = a;
    match result {
        Err(_) if waited >= 30 => Ok(format!("elapsed after {waited} ms")),
        Err(_) => Err(format!("elapsed early, after {waited} ms")),
        Ok(r) => Err(format!("wait on a silent port completed: {r:?}")),
    }
}
