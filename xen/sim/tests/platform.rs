//! Every platform trait against the simulated host, including Xen's error cases.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use xen_platform::{
    Access, Clock, CopyOp, CopyPtr, DomId, Errno, Error, EventChannels, GrantCopy, GrantMap,
    GrantRef, GrantShare, GrantStatus, Granted, Mapping, Op, PageAlloc, PageMemory, Port, Timers,
    Virq, sleep, timeout,
};
use xen_sim::{HostConfig, PortState, Sim, SimDomain};

const STEPS: u64 = 1_000_000;

fn two_domains(seed: u64) -> (Sim, SimDomain, SimDomain) {
    let mut sim = Sim::new(seed);
    let a = sim.create_domain();
    let b = sim.create_domain();
    (sim, a, b)
}

fn grant_err<T>(r: Result<T, Error>) -> GrantStatus {
    match r {
        Err(Error::Grant { status, .. }) => status,
        Err(e) => panic!("expected a grant status, got {e:?}"),
        Ok(_) => panic!("expected a grant status, got Ok"),
    }
}

// ---- pages -------------------------------------------------------------------------------

#[test]
fn pages_are_zeroed_aligned_and_freed_on_drop() {
    let mut sim = Sim::new(1);
    let a = sim.create_domain();
    let pages = a.alloc_pages(3).unwrap();
    assert_eq!(pages.page_count(), 3);
    let mem = pages.mem();
    assert_eq!(mem.len(), 3 * 4096);
    assert_eq!(mem.as_ptr() as usize % 4096, 0);
    let mut buf = vec![1u8; mem.len()];
    mem.read(0, &mut buf).unwrap();
    assert!(buf.iter().all(|&b| b == 0));
    mem.write(100, b"dirty").unwrap();
    assert_eq!(sim.frames_in_use(), 3);
    drop(pages);
    assert_eq!(sim.frames_in_use(), 0);
    // A reused frame comes back zeroed.
    let again = a.alloc_pages(3).unwrap();
    let mut b = [1u8; 5];
    again.mem().read(100, &mut b).unwrap();
    assert_eq!(b, [0; 5]);
    assert_eq!(
        a.alloc_pages(0).unwrap_err(),
        Error::InvalidArgument { op: Op::AllocPages }
    );
}

#[test]
fn out_of_memory_is_an_error() {
    let mut sim = Sim::with_config(
        1,
        HostConfig {
            max_frames: 4,
            ..HostConfig::default()
        },
    );
    let a = sim.create_domain();
    let _held = a.alloc_pages(3).unwrap();
    let e = a.alloc_pages(2).unwrap_err();
    assert_eq!(e, Error::OutOfMemory);
    assert_eq!(e.errno(), Errno::ENOMEM);
    assert!(a.alloc_pages(1).is_ok());
}

// ---- grants ------------------------------------------------------------------------------

#[test]
fn granted_pages_are_shared_both_ways_through_different_addresses() {
    let (_sim, a, b) = two_domains(1);
    let granted = a
        .grant(a.alloc_pages(1).unwrap(), b.domid(), Access::ReadWrite)
        .unwrap();
    assert_eq!(granted.refs().len(), 1);
    assert!(granted.refs()[0].0 >= xen_sim::FIRST_FREE_GREF);
    let map = b.map(a.domid(), granted.refs(), Access::ReadWrite).unwrap();
    let bm = map.mem().unwrap();
    assert_ne!(bm.as_ptr(), granted.mem().as_ptr());
    granted
        .mem()
        .store_u32(8, 0xdead_beef, Ordering::Release)
        .unwrap();
    assert_eq!(bm.load_u32(8, Ordering::Acquire).unwrap(), 0xdead_beef);
    bm.write(100, b"from b").unwrap();
    let mut buf = [0u8; 6];
    granted.mem().read(100, &mut buf).unwrap();
    assert_eq!(&buf, b"from b");
    assert_eq!(
        a.grant_entry(granted.refs()[0]),
        Some((b.domid(), Access::ReadWrite, 1))
    );
}

#[test]
fn multi_page_mappings_are_contiguous_in_the_order_given() {
    let (_sim, a, b) = two_domains(1);
    let pages = a.alloc_pages(3).unwrap();
    for i in 0..3 {
        pages
            .mem()
            .store_u32(i * 4096, i as u32 + 10, Ordering::Relaxed)
            .unwrap();
    }
    let granted = a.grant(pages, b.domid(), Access::ReadOnly).unwrap();
    let mut refs = granted.refs().to_vec();
    refs.reverse();
    let map = b.map(a.domid(), &refs, Access::ReadOnly).unwrap();
    assert_eq!(map.page_count(), 3);
    assert!(
        map.mem().is_none(),
        "read-only mapping has no writable view"
    );
    let ro = map.mem_ro();
    let seen: Vec<u32> = (0..3)
        .map(|i| ro.load_u32(i * 4096, Ordering::Relaxed).unwrap())
        .collect();
    assert_eq!(seen, vec![12, 11, 10]);
}

#[test]
fn only_the_grantee_may_map_and_only_as_granted() {
    let mut sim = Sim::new(1);
    let a = sim.create_domain();
    let b = sim.create_domain();
    let c = sim.create_domain();
    let ro = a
        .grant(a.alloc_pages(1).unwrap(), b.domid(), Access::ReadOnly)
        .unwrap();
    let r = ro.refs()[0];
    assert_eq!(
        grant_err(b.map(a.domid(), &[r], Access::ReadWrite)),
        GrantStatus::PermissionDenied
    );
    assert_eq!(
        grant_err(c.map(a.domid(), &[r], Access::ReadOnly)),
        GrantStatus::PermissionDenied
    );
    assert_eq!(
        grant_err(b.map(a.domid(), &[GrantRef(3)], Access::ReadOnly)),
        GrantStatus::BadGntref
    );
    assert_eq!(
        grant_err(b.map(a.domid(), &[GrantRef(1 << 30)], Access::ReadOnly)),
        GrantStatus::BadGntref
    );
    assert_eq!(
        grant_err(b.map(DomId(77), &[r], Access::ReadOnly)),
        GrantStatus::BadDomain
    );
    // All or nothing: one bad reference maps nothing.
    assert!(
        b.map(a.domid(), &[r, GrantRef(3)], Access::ReadOnly)
            .is_err()
    );
    assert_eq!(a.grant_entry(r), Some((b.domid(), Access::ReadOnly, 0)));
    assert!(b.map(a.domid(), &[r], Access::ReadOnly).is_ok());
}

#[test]
fn revoke_is_refused_while_mapped_and_gives_the_grant_back() {
    let (_sim, a, b) = two_domains(1);
    let free_before = a.free_grant_refs();
    let granted = a
        .grant(a.alloc_pages(2).unwrap(), b.domid(), Access::ReadWrite)
        .unwrap();
    let refs = granted.refs().to_vec();
    let map = b.map(a.domid(), &refs[1..], Access::ReadWrite).unwrap();
    let refused = a.revoke(granted).unwrap_err();
    assert_eq!(refused.error, Error::GrantBusy { gref: refs[1] });
    assert_eq!(refused.error.errno(), Errno::EBUSY);
    // Nothing changed: still granted, still mapped, still shared.
    let granted = refused.value;
    granted.mem().store_u32(4096, 5, Ordering::Relaxed).unwrap();
    assert_eq!(
        map.mem().unwrap().load_u32(0, Ordering::Relaxed).unwrap(),
        5
    );
    b.unmap(map).unwrap();
    let pages = a.revoke(granted).unwrap();
    assert_eq!(pages.page_count(), 2);
    assert_eq!(a.free_grant_refs(), free_before);
    assert_eq!(
        grant_err(b.map(a.domid(), &refs, Access::ReadOnly)),
        GrantStatus::BadGntref
    );
}

#[test]
fn double_unmap_is_bad_handle() {
    let (_sim, a, b) = two_domains(1);
    let granted = a
        .grant(a.alloc_pages(1).unwrap(), b.domid(), Access::ReadWrite)
        .unwrap();
    let map = b.map(a.domid(), granted.refs(), Access::ReadWrite).unwrap();
    let h = map.handle();
    // SAFETY: the mapping's views are not used afterwards.
    unsafe {
        b.unmap_handle(&map, h).unwrap();
        let e = b.unmap_handle(&map, h).unwrap_err();
        assert_eq!(
            e,
            Error::Grant {
                op: Op::Unmap,
                status: GrantStatus::BadHandle
            }
        );
        assert_eq!(e.errno(), Errno::EINVAL);
    }
    // Unmapped at the host: revocation works even though `map` still exists.
    assert!(a.revoke(granted).is_ok());
    drop(map);
}

#[test]
fn dropping_a_mapped_grant_quarantines_the_frame_until_unmapped() {
    let (sim, a, b) = two_domains(1);
    let granted = a
        .grant(a.alloc_pages(1).unwrap(), b.domid(), Access::ReadWrite)
        .unwrap();
    let r = granted.refs()[0];
    granted.mem().store_u32(0, 42, Ordering::Relaxed).unwrap();
    let map = b.map(a.domid(), &[r], Access::ReadWrite).unwrap();
    let free = a.free_grant_refs();
    drop(granted);
    // The peer's mapping still works and the frame is not reused.
    assert_eq!(
        map.mem().unwrap().load_u32(0, Ordering::Relaxed).unwrap(),
        42
    );
    assert_eq!(sim.frames_in_use(), 1);
    assert_eq!(
        a.free_grant_refs(),
        free,
        "reference not reusable while mapped"
    );
    let other = a.alloc_pages(1).unwrap();
    assert_eq!(other.mem().load_u32(0, Ordering::Relaxed).unwrap(), 0);
    drop(other);
    drop(map);
    assert_eq!(a.free_grant_refs(), free + 1);
    assert_eq!(sim.frames_in_use(), 0);
}

#[test]
fn share_pages_allocates_and_grants() {
    let (sim, a, b) = two_domains(1);
    let shared = a.share_pages(2, b.domid(), Access::ReadOnly).unwrap();
    assert_eq!(shared.refs().len(), 2);
    assert_eq!(shared.access(), Access::ReadOnly);
    assert_eq!(shared.domid(), b.domid());
    assert!(b.map(a.domid(), shared.refs(), Access::ReadOnly).is_ok());
    assert_eq!(sim.frames_in_use(), 2);
}

#[test]
fn grant_table_exhaustion_consumes_nothing() {
    let mut sim = Sim::with_config(
        1,
        HostConfig {
            grant_entries: xen_sim::FIRST_FREE_GREF + 4,
            ..HostConfig::default()
        },
    );
    let a = sim.create_domain();
    let b = sim.create_domain();
    let g = a
        .grant(a.alloc_pages(3).unwrap(), b.domid(), Access::ReadOnly)
        .unwrap();
    let refused = a
        .grant(a.alloc_pages(2).unwrap(), b.domid(), Access::ReadOnly)
        .unwrap_err();
    assert_eq!(refused.error, Error::GrantTableFull);
    assert_eq!(refused.error.errno(), Errno::ENOSPC);
    assert_eq!(refused.value.page_count(), 2);
    assert_eq!(a.free_grant_refs(), 1);
    a.revoke(g).unwrap();
    assert!(a.grant(refused.value, b.domid(), Access::ReadOnly).is_ok());
}

#[test]
fn grant_copy_checks_access_and_bounds() {
    let (_sim, a, b) = two_domains(1);
    let rw = a
        .grant(a.alloc_pages(1).unwrap(), b.domid(), Access::ReadWrite)
        .unwrap();
    let ro = a
        .grant(a.alloc_pages(1).unwrap(), b.domid(), Access::ReadOnly)
        .unwrap();
    ro.mem().write(10, b"hello").unwrap();
    let local = b.alloc_pages(2).unwrap();
    let fro = |off| CopyPtr::Foreign {
        domid: a.domid(),
        gref: ro.refs()[0],
        offset: off,
    };
    let frw = |off| CopyPtr::Foreign {
        domid: a.domid(),
        gref: rw.refs()[0],
        offset: off,
    };
    let loc = |offset| CopyPtr::Local {
        pages: &local,
        offset,
    };
    // foreign (read-only) -> local second page
    b.copy(&CopyOp {
        src: fro(10),
        dst: loc(4096 + 3),
        len: 5,
    })
    .unwrap();
    let mut buf = [0u8; 5];
    local.mem().read(4096 + 3, &mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    // local -> foreign writable
    b.copy(&CopyOp {
        src: loc(4096 + 3),
        dst: frw(4000),
        len: 5,
    })
    .unwrap();
    rw.mem().read(4000, &mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    // Writing into a read-only grant, crossing a page boundary, or a grant not for us.
    let denied = b.copy(&CopyOp {
        src: loc(0),
        dst: fro(0),
        len: 1,
    });
    assert_eq!(grant_err(denied), GrantStatus::PermissionDenied);
    let crossing = b.copy(&CopyOp {
        src: fro(4090),
        dst: loc(0),
        len: 10,
    });
    assert_eq!(grant_err(crossing), GrantStatus::BadCopyArg);
    let crossing_local = b.copy(&CopyOp {
        src: fro(0),
        dst: loc(4090),
        len: 10,
    });
    assert_eq!(grant_err(crossing_local), GrantStatus::BadCopyArg);
    let mut results = [Ok(()), Ok(())];
    a.copy_batch(
        &[
            CopyOp {
                src: CopyPtr::Foreign {
                    domid: a.domid(),
                    gref: ro.refs()[0],
                    offset: 0,
                },
                dst: CopyPtr::Local {
                    pages: &a.alloc_pages(1).unwrap(),
                    offset: 0,
                },
                len: 4,
            },
            CopyOp {
                src: CopyPtr::Foreign {
                    domid: b.domid(),
                    gref: GrantRef(9),
                    offset: 0,
                },
                dst: CopyPtr::Local {
                    pages: &a.alloc_pages(1).unwrap(),
                    offset: 0,
                },
                len: 4,
            },
        ],
        &mut results,
    )
    .unwrap();
    // a copying from its own grant to b: a is not the grantee.
    assert_eq!(
        results[0],
        Err(Error::Grant {
            op: Op::Copy,
            status: GrantStatus::PermissionDenied
        })
    );
    assert_eq!(
        results[1],
        Err(Error::Grant {
            op: Op::Copy,
            status: GrantStatus::BadGntref
        })
    );
}

// ---- event channels ----------------------------------------------------------------------

fn connect(a: &SimDomain, b: &SimDomain) -> (Port, Port) {
    let pa = a.alloc_unbound(b.domid()).unwrap();
    let pb = b.bind_interdomain(a.domid(), pa).unwrap();
    (pa, pb)
}

#[test]
fn binding_rules_follow_xen() {
    let mut sim = Sim::new(1);
    let a = sim.create_domain();
    let b = sim.create_domain();
    let c = sim.create_domain();
    let pa = a.alloc_unbound(b.domid()).unwrap();
    assert_ne!(pa, Port(0), "port 0 is never allocated");
    assert_eq!(a.port_state(pa), PortState::Unbound { remote: b.domid() });
    // Reserved for b: c may not bind it.
    assert_eq!(
        c.bind_interdomain(a.domid(), pa).unwrap_err(),
        Error::Xen {
            op: Op::BindInterdomain,
            errno: Errno::EINVAL
        }
    );
    assert_eq!(
        b.bind_interdomain(DomId(99), pa).unwrap_err().errno(),
        Errno::ESRCH
    );
    assert_eq!(
        a.alloc_unbound(DomId(99)).unwrap_err().errno(),
        Errno::ESRCH
    );
    let pb = b.bind_interdomain(a.domid(), pa).unwrap();
    assert_eq!(
        a.port_state(pa),
        PortState::Interdomain {
            remote: b.domid(),
            remote_port: pb
        }
    );
    assert!(b.is_pending(pb), "Xen marks a freshly bound port pending");
    // Already bound: cannot bind again.
    assert_eq!(
        b.bind_interdomain(a.domid(), pa).unwrap_err().errno(),
        Errno::EINVAL
    );
    // Closing one end reverts the other to unbound-for-us; it can be bound again.
    b.close(pb).unwrap();
    assert_eq!(a.port_state(pa), PortState::Unbound { remote: b.domid() });
    assert_eq!(b.notify(pb).unwrap_err(), Error::PortNotBound { port: pb });
    assert_eq!(b.notify(pb).unwrap_err().errno(), Errno::EINVAL);
    assert_eq!(b.close(pb).unwrap_err().errno(), Errno::EINVAL);
    // Notify on an unbound port is silently dropped (Xen returns 0).
    assert_eq!(a.notify(pa), Ok(()));
    let pb2 = b.bind_interdomain(a.domid(), pa).unwrap();
    assert!(b.notify(pb2).is_ok());
    // VIRQs: once per domain.
    let t = a.bind_virq(Virq::TIMER).unwrap();
    assert_eq!(a.bind_virq(Virq::TIMER).unwrap_err().errno(), Errno::EEXIST);
    assert_eq!(a.bind_virq(Virq(1000)).unwrap_err().errno(), Errno::EINVAL);
    assert_eq!(a.notify(t).unwrap_err().errno(), Errno::EINVAL);
    // Port exhaustion.
    let mut small = Sim::with_config(
        1,
        HostConfig {
            max_ports: 4,
            ..HostConfig::default()
        },
    );
    let d = small.create_domain();
    for _ in 0..3 {
        d.alloc_unbound(d.domid()).unwrap();
    }
    assert_eq!(
        d.alloc_unbound(d.domid()).unwrap_err().errno(),
        Errno::ENOSPC
    );
}

#[test]
fn notify_wakes_the_waiting_peer_and_events_coalesce() {
    let (mut sim, a, b) = two_domains(7);
    let (pa, pb) = connect(&a, &b);
    let count = Rc::new(RefCell::new(0u32));
    let c = count.clone();
    let b2 = b.clone();
    let waiter = sim.spawn(b.domid(), async move {
        // The bind left pb pending: the first wait completes at once.
        b2.wait(pb).await.unwrap();
        for _ in 0..3 {
            b2.wait(pb).await.unwrap();
            *c.borrow_mut() += 1;
        }
    });
    sim.run(STEPS).unwrap(); // the waiter consumed the bind's event and waits
    let a2 = a.clone();
    sim.spawn(a.domid(), async move {
        for _ in 0..3 {
            a2.notify(pa).unwrap();
            a2.notify(pa).unwrap(); // coalesces with the first
            sleep(&a2, Duration::from_millis(1)).await;
        }
    });
    sim.run_until(&waiter, STEPS).unwrap();
    assert_eq!(*count.borrow(), 3);
}

#[test]
fn masked_ports_hold_events_until_unmasked() {
    let (mut sim, a, b) = two_domains(3);
    let (pa, pb) = connect(&a, &b);
    b.mask(pb).unwrap();
    sim.run(STEPS).unwrap(); // the bind's pending bit stays held
    assert!(b.is_pending(pb));
    a.notify(pa).unwrap();
    let b2 = b.clone();
    let woke = sim.spawn(b.domid(), async move {
        timeout(&b2, Duration::from_millis(5), b2.wait(pb)).await
    });
    assert!(
        sim.run_until(&woke, STEPS).unwrap().is_err(),
        "masked: no wake-up"
    );
    b.unmask(pb).unwrap();
    let b2 = b.clone();
    let woke = sim.spawn(b.domid(), async move { b2.wait(pb).await });
    assert_eq!(sim.run_until(&woke, STEPS).unwrap(), Ok(()));
    assert_eq!(b.mask(Port(500)).unwrap_err().errno(), Errno::EINVAL);
}

#[test]
fn loopback_channel_in_one_domain() {
    let mut sim = Sim::new(5);
    let a = sim.create_domain();
    let p1 = a.alloc_unbound(a.domid()).unwrap();
    let p2 = a.bind_interdomain(a.domid(), p1).unwrap();
    let a2 = a.clone();
    let done = sim.spawn(a.domid(), async move {
        a2.wait(p2).await.unwrap(); // pending from the bind
        let mut n = 0;
        for _ in 0..100 {
            a2.notify(p1).unwrap();
            a2.wait(p2).await.unwrap();
            a2.notify(p2).unwrap();
            a2.wait(p1).await.unwrap();
            n += 1;
        }
        n
    });
    assert_eq!(sim.run_until(&done, STEPS).unwrap(), 100);
}

#[test]
fn waiting_on_a_closed_port_is_an_error() {
    let (mut sim, a, b) = two_domains(2);
    let (_pa, pb) = connect(&a, &b);
    let b2 = b.clone();
    let h = sim.spawn(b.domid(), async move {
        b2.wait(pb).await.unwrap(); // bind's pending bit
        b2.wait(pb).await
    });
    sim.run(STEPS).unwrap();
    assert!(!h.is_finished());
    b.close(pb).unwrap();
    assert_eq!(
        sim.run_until(&h, STEPS).unwrap(),
        Err(Error::PortNotBound { port: pb })
    );
    let b2 = b.clone();
    let h = sim.spawn(b.domid(), async move { b2.wait(Port(77)).await });
    assert_eq!(
        sim.run_until(&h, STEPS).unwrap(),
        Err(Error::PortNotBound { port: Port(77) })
    );
}

#[test]
fn virq_wakes_its_port() {
    let mut sim = Sim::new(4);
    let a = sim.create_domain();
    let p = a.bind_virq(Virq::DOM_EXC).unwrap();
    let a2 = a.clone();
    let h = sim.spawn(a.domid(), async move { a2.wait(p).await });
    sim.run(STEPS).unwrap();
    assert!(!h.is_finished());
    assert!(sim.raise_virq(a.domid(), Virq::DOM_EXC));
    assert_eq!(sim.run_until(&h, STEPS).unwrap(), Ok(()));
    assert!(!sim.raise_virq(a.domid(), Virq::DEBUG), "unbound VIRQ");
}

// ---- time --------------------------------------------------------------------------------

#[test]
fn timers_fire_in_order_in_virtual_time() {
    let mut sim = Sim::new(9);
    let a = sim.create_domain();
    let log = Rc::new(RefCell::new(Vec::new()));
    for (i, ms) in [50u64, 10, 30, 20].into_iter().enumerate() {
        let a2 = a.clone();
        let log = log.clone();
        sim.spawn(a.domid(), async move {
            sleep(&a2, Duration::from_millis(ms)).await;
            log.borrow_mut().push((i, a2.now()));
        });
    }
    sim.run(STEPS).unwrap();
    let order: Vec<usize> = log.borrow().iter().map(|&(i, _)| i).collect();
    assert_eq!(order, vec![1, 3, 2, 0]);
    for &(i, t) in log.borrow().iter() {
        let want = [50u64, 10, 30, 20][i] * 1_000_000;
        // Fired at the deadline, plus at most a few polls of virtual time.
        assert!(
            t.as_nanos() >= want && t.as_nanos() < want + 100_000,
            "{t:?}"
        );
    }
    let wall = a.wall_time();
    assert_eq!(wall.secs, xen_sim::SIM_EPOCH_SECS);
    assert!(sim.now().as_nanos() >= 50_000_000);
}

#[test]
fn sleep_until_in_the_past_completes() {
    let mut sim = Sim::new(9);
    let a = sim.create_domain();
    let a2 = a.clone();
    let h = sim.spawn(a.domid(), async move {
        sleep(&a2, Duration::from_millis(2)).await;
        a2.sleep_until(xen_platform::Instant(5)).await;
        7
    });
    assert_eq!(sim.run_until(&h, STEPS).unwrap(), 7);
}

// ---- determinism and disappearing peers -------------------------------------------------

fn trace(seed: u64) -> Vec<(u32, u64)> {
    let mut sim = Sim::new(seed);
    let a = sim.create_domain();
    let log = Rc::new(RefCell::new(Vec::new()));
    for i in 0..5u32 {
        let a2 = a.clone();
        let log = log.clone();
        sim.spawn(a.domid(), async move {
            for _ in 0..3 {
                log.borrow_mut().push((i, a2.now().as_nanos()));
                sleep(&a2, Duration::ZERO).await;
            }
        });
    }
    sim.run(STEPS).unwrap();
    log.take()
}

#[test]
fn same_seed_same_run_different_seed_different_interleaving() {
    assert_eq!(trace(11), trace(11));
    let distinct: std::collections::BTreeSet<Vec<u32>> = (0..8)
        .map(|s| trace(s).into_iter().map(|(i, _)| i).collect())
        .collect();
    assert!(distinct.len() > 1, "the seed must change the interleaving");
}

#[test]
fn a_destroyed_peer_releases_its_mappings_and_ports() {
    let (mut sim, a, b) = two_domains(13);
    let (pa, _pb) = connect(&a, &b);
    let granted = a
        .grant(a.alloc_pages(1).unwrap(), b.domid(), Access::ReadWrite)
        .unwrap();
    let refs = granted.refs().to_vec();
    let b2 = b.clone();
    let a_dom = a.domid();
    // b maps the page inside a task and holds it forever.
    sim.spawn(b.domid(), async move {
        let _map = b2.map(a_dom, &refs, Access::ReadWrite).unwrap();
        std::future::pending::<()>().await;
    });
    sim.run(STEPS).unwrap();
    let refused = a.revoke(granted).unwrap_err();
    assert!(matches!(refused.error, Error::GrantBusy { .. }));
    sim.destroy_domain(b.domid());
    assert!(!b.is_alive());
    assert_eq!(a.port_state(pa), PortState::Unbound { remote: b.domid() });
    assert_eq!(sim.task_count(b.domid()), 0);
    // b's mapping is gone with it: a can revoke now.
    let pages = a.revoke(refused.value).unwrap();
    drop(pages);
    assert_eq!(sim.frames_in_use(), 0);
    assert_eq!(
        b.alloc_pages(1).unwrap_err(),
        Error::NoSuchDomain { domid: b.domid() }
    );
    // A waiting peer only finds out by timing out (no notification on death, as on Xen).
    let a2 = a.clone();
    let h = sim.spawn(a.domid(), async move {
        timeout(&a2, Duration::from_millis(10), a2.wait(pa)).await
    });
    assert!(sim.run_until(&h, STEPS).unwrap().is_err());
}
