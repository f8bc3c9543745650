//! Rings over pages shared between two simulated domains, with injected faults.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::Duration;

use xen_platform::{
    Access, Clock, DomId, EventChannels, GrantMap, GrantRef, GrantShare, Granted, Mapping,
    PageAlloc, PageMemory, Port, timeout,
};
use xen_ring::sring::{REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD};
use xen_ring::{BackRing, FrontRing, RingError, xenstore};
use xen_sim::{HostileTarget, Sim, SimDomain, SplitMix64, for_each_seed};

type Req = [u32; 4];
type Rsp = [u32; 2];

const STEPS: u64 = 5_000_000;
const POLL: Duration = Duration::from_micros(500);

/// What the frontend advertises (xenstore's role here).
type Advert = Rc<RefCell<Option<(GrantRef, Port)>>>;

#[derive(Debug, PartialEq)]
enum Outcome {
    Done(u32),
    /// A ring end detected a misbehaving peer.
    PeerFault(RingError),
    /// No progress for a while (the peer is gone).
    PeerGone,
    /// A response with the wrong id or value: what protocol code (netfront's id checks)
    /// catches when a peer lies about indices in a way the ring cannot see.
    BadResponse {
        got: Rsp,
        want: Rsp,
    },
}

fn expected(id: u32) -> Rsp {
    [id, id.wrapping_mul(3).wrapping_add(7)]
}

/// Waits for an event, or `POLL` at most when `poll_fallback` (lost notifications).
async fn wait_event(dom: &SimDomain, port: Port, poll_fallback: bool) {
    if poll_fallback {
        let _ = timeout(dom, POLL, dom.wait(port)).await;
    } else {
        dom.wait(port).await.unwrap();
    }
}

async fn frontend(
    dom: SimDomain,
    back: DomId,
    n: u32,
    advert: Advert,
    poll_fallback: bool,
) -> Outcome {
    let granted = dom
        .grant(dom.alloc_pages(1).unwrap(), back, Access::ReadWrite)
        .unwrap();
    let port = dom.alloc_unbound(back).unwrap();
    let mut ring = FrontRing::<Req, Rsp>::init(granted.mem()).unwrap();
    *advert.borrow_mut() = Some((granted.refs()[0], port));
    let (mut sent, mut received) = (0u32, 0u32);
    let mut last_progress = dom.now();
    let outcome = loop {
        let step: Result<Option<Outcome>, RingError> = (|| {
            while sent < n && !ring.is_full() {
                ring.queue_request(&[sent, sent.wrapping_mul(3), 3, 4])?;
                sent += 1;
            }
            if ring.push_requests_and_check_notify()? {
                dom.notify(port).unwrap();
            }
            while let Some(rsp) = ring.take_response()? {
                if rsp != expected(received) {
                    return Ok(Some(Outcome::BadResponse {
                        got: rsp,
                        want: expected(received),
                    }));
                }
                received += 1;
                last_progress = dom.now();
            }
            Ok(None)
        })();
        match step {
            Err(e) => break Outcome::PeerFault(e),
            Ok(Some(bad)) => break bad,
            Ok(None) => {}
        }
        if received == n {
            break Outcome::Done(received);
        }
        if dom.now().saturating_duration_since(last_progress) > Duration::from_millis(50) {
            break Outcome::PeerGone;
        }
        match ring.final_check_for_responses() {
            Ok(true) => {}
            Ok(false) if sent < n && !ring.is_full() => {}
            Ok(false) => wait_event(&dom, port, poll_fallback).await,
            Err(e) => break Outcome::PeerFault(e),
        }
    };
    dom.close(port).unwrap();
    // Revoke; if the backend still has the page mapped, wait for it to unmap (or die).
    let mut granted = granted;
    for _ in 0..100 {
        match dom.revoke(granted) {
            Ok(_) => return outcome,
            Err(refused) => {
                granted = refused.value;
                xen_platform::sleep(&dom, Duration::from_millis(1)).await;
            }
        }
    }
    panic!("backend never unmapped the ring");
}

async fn backend(
    dom: SimDomain,
    front: DomId,
    n: u32,
    advert: Advert,
    poll_fallback: bool,
) -> Outcome {
    let (gref, fport) = loop {
        if let Some(a) = *advert.borrow() {
            break a;
        }
        xen_platform::sleep(&dom, Duration::from_micros(50)).await;
    };
    let map = dom.map(front, &[gref], Access::ReadWrite).unwrap();
    let port = dom.bind_interdomain(front, fport).unwrap();
    let mut ring = BackRing::<Req, Rsp>::new(map.mem().unwrap()).unwrap();
    let mut handled = 0u32;
    let outcome = loop {
        let step: Result<(), RingError> = (|| {
            while let Some(req) = ring.take_request()? {
                ring.queue_response(&[req[0], req[1].wrapping_add(req[2]).wrapping_add(req[3])])?;
                handled += 1;
            }
            if ring.push_responses_and_check_notify()? {
                dom.notify(port).unwrap();
            }
            Ok(())
        })();
        if let Err(e) = step {
            break Outcome::PeerFault(e);
        }
        if handled >= n {
            break Outcome::Done(handled);
        }
        match ring.final_check_for_requests() {
            Ok(true) => {}
            Ok(false) => wait_event(&dom, port, poll_fallback).await,
            Err(e) => break Outcome::PeerFault(e),
        }
    };
    // Disconnect: unmap and close, as a backend does when the ring breaks or ends.
    dom.unmap(map).unwrap();
    let _ = dom.close(port);
    outcome
}

struct Pair {
    sim: Sim,
    front: SimDomain,
    back: SimDomain,
    advert: Advert,
}

fn pair(seed: u64) -> Pair {
    let mut sim = Sim::new(seed);
    let back = sim.create_domain(); // dom0 runs the backend
    let front = sim.create_domain();
    Pair {
        sim,
        front,
        back,
        advert: Rc::new(RefCell::new(None)),
    }
}

#[test]
fn echo_without_faults_needs_no_polling() {
    // Notifications alone drive both ends: a lost wake-up anywhere (ring, executor, sim)
    // would deadlock the backend, which has no polling fallback here.
    for_each_seed(0..10, |seed| {
        let mut p = pair(seed);
        let fh = p.sim.spawn(
            p.front.domid(),
            frontend(
                p.front.clone(),
                p.back.domid(),
                400,
                p.advert.clone(),
                false,
            ),
        );
        let bh = p.sim.spawn(
            p.back.domid(),
            backend(
                p.back.clone(),
                p.front.domid(),
                400,
                p.advert.clone(),
                false,
            ),
        );
        assert_eq!(p.sim.run_until(&fh, STEPS).unwrap(), Outcome::Done(400));
        assert_eq!(p.sim.run_until(&bh, STEPS).unwrap(), Outcome::Done(400));
        p.sim.run(STEPS).unwrap();
        assert_eq!(p.sim.frames_in_use(), 0, "pages leaked");
    });
}

#[test]
fn echo_survives_lost_duplicated_and_delayed_notifications() {
    let mut totals = xen_sim::FaultStats::default();
    for_each_seed(0..12, |seed| {
        let mut p = pair(seed);
        {
            let mut f = p.sim.faults();
            f.drop_notify = 0.2;
            f.duplicate_notify = 0.2;
            f.delay_notify = 0.3;
            f.max_delay = Duration::from_micros(300);
        }
        let fh = p.sim.spawn(
            p.front.domid(),
            frontend(p.front.clone(), p.back.domid(), 300, p.advert.clone(), true),
        );
        let bh = p.sim.spawn(
            p.back.domid(),
            backend(p.back.clone(), p.front.domid(), 300, p.advert.clone(), true),
        );
        assert_eq!(p.sim.run_until(&fh, STEPS).unwrap(), Outcome::Done(300));
        assert_eq!(p.sim.run_until(&bh, STEPS).unwrap(), Outcome::Done(300));
        let s = p.sim.fault_stats();
        totals.dropped += s.dropped;
        totals.duplicated += s.duplicated;
        totals.delayed += s.delayed;
    });
    assert!(
        totals.dropped > 0 && totals.duplicated > 0 && totals.delayed > 0,
        "{totals:?}"
    );
}

#[test]
fn hostile_indices_break_the_ring_without_panicking() {
    let faults_seen = Cell::new(0);
    for_each_seed(0..16, |seed| {
        let mut p = pair(seed);
        let fh = p.sim.spawn(
            p.front.domid(),
            frontend(
                p.front.clone(),
                p.back.domid(),
                20_000,
                p.advert.clone(),
                true,
            ),
        );
        let bh = p.sim.spawn(
            p.back.domid(),
            backend(
                p.back.clone(),
                p.front.domid(),
                20_000,
                p.advert.clone(),
                true,
            ),
        );
        // Let the ring get set up, then a "peer" scribbles on every index of the page.
        while p.advert.borrow().is_none() {
            p.sim.step();
        }
        let (gref, _) = p.advert.borrow().unwrap();
        p.sim.faults().hostile.push(HostileTarget {
            granter: p.front.domid(),
            gref,
            offsets: vec![REQ_PROD, REQ_EVENT, RSP_PROD, RSP_EVENT],
            per_step: 0.2,
        });
        let f = p.sim.run_until(&fh, STEPS).unwrap();
        let b = p.sim.run_until(&bh, STEPS).unwrap();
        // Either side may detect it first; the other then sees its peer stop (or finishes
        // if the scribbles happened to be harmless).
        let detected = [&f, &b].iter().any(|o| {
            matches!(o, Outcome::PeerFault(e) if e.is_peer_fault())
                || matches!(o, Outcome::BadResponse { .. })
        });
        assert!(p.sim.fault_stats().hostile_writes > 0);
        if detected {
            faults_seen.set(faults_seen.get() + 1);
        } else {
            assert!(
                matches!(f, Outcome::Done(_) | Outcome::PeerGone),
                "{f:?} {b:?}"
            );
        }
    });
    assert!(
        faults_seen.get() >= 8,
        "hostile writes were detected in only {} runs",
        faults_seen.get()
    );
}

#[test]
fn a_backend_that_disappears_is_noticed_and_its_mapping_released() {
    for_each_seed(0..6, |seed| {
        let mut p = pair(seed);
        let fh = p.sim.spawn(
            p.front.domid(),
            frontend(
                p.front.clone(),
                p.back.domid(),
                u32::MAX,
                p.advert.clone(),
                true,
            ),
        );
        p.sim.spawn(
            p.back.domid(),
            backend(
                p.back.clone(),
                p.front.domid(),
                u32::MAX,
                p.advert.clone(),
                true,
            ),
        );
        let mut rng = SplitMix64::new(seed);
        for _ in 0..(200 + rng.below(2_000)) {
            p.sim.step();
        }
        p.sim.destroy_domain(p.back.domid());
        // The frontend times out, then revokes its grant (which works: the dead backend's
        // mapping was released) and returns.
        assert_eq!(p.sim.run_until(&fh, STEPS).unwrap(), Outcome::PeerGone);
        p.sim.run(STEPS).unwrap();
        assert_eq!(p.sim.frames_in_use(), 0);
    });
}

/// A byte stream over the xenstore ring layout between two domains, with lost and delayed
/// notifications: every byte arrives, in order.
#[test]
fn xenstore_byte_ring_stream_with_faults() {
    for_each_seed(0..8, |seed| {
        let mut p = pair(seed);
        {
            let mut f = p.sim.faults();
            f.drop_notify = 0.3;
            f.delay_notify = 0.3;
            f.max_delay = Duration::from_micros(200);
        }
        let mut rng = SplitMix64::new(seed);
        let data: Vec<u8> = (0..20_000).map(|_| rng.next_u64() as u8).collect();
        let expect = data.clone();
        let (client, server) = (p.front.clone(), p.back.clone());
        let advert = p.advert.clone();
        let server_id = server.domid();
        let writer = p.sim.spawn(client.domid(), async move {
            let granted = client
                .grant(client.alloc_pages(1).unwrap(), server_id, Access::ReadWrite)
                .unwrap();
            let port = client.alloc_unbound(server_id).unwrap();
            let (mut req, _rsp) = xenstore::client(granted.mem()).unwrap();
            *advert.borrow_mut() = Some((granted.refs()[0], port));
            let mut rng = SplitMix64::new(seed ^ 1);
            let mut off = 0;
            while off < data.len() {
                let chunk = (1 + rng.below(700) as usize).min(data.len() - off);
                let n = req.write(&data[off..off + chunk]).unwrap();
                off += n;
                client.notify(port).unwrap();
                if n == 0 {
                    let _ = timeout(&client, POLL, client.wait(port)).await;
                }
            }
            // Wait until the server consumed everything before revoking.
            while req.used().unwrap() > 0 {
                let _ = timeout(&client, POLL, client.wait(port)).await;
            }
            granted
        });
        let advert = p.advert.clone();
        let client_id = p.front.domid();
        let reader = p.sim.spawn(server.domid(), async move {
            let (gref, fport) = loop {
                if let Some(a) = *advert.borrow() {
                    break a;
                }
                xen_platform::sleep(&server, Duration::from_micros(50)).await;
            };
            let map = server.map(client_id, &[gref], Access::ReadWrite).unwrap();
            let port = server.bind_interdomain(client_id, fport).unwrap();
            let mem = map.mem().unwrap();
            let (mut req, _rsp) = xenstore::server(mem).unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 333];
            while got.len() < 20_000 {
                let n = req.read(&mut buf).unwrap();
                got.extend_from_slice(&buf[..n]);
                if n > 0 {
                    server.notify(port).unwrap();
                } else {
                    let _ = timeout(&server, POLL, server.wait(port)).await;
                }
            }
            server.notify(port).unwrap();
            server.unmap(map).unwrap();
            got
        });
        assert_eq!(p.sim.run_until(&reader, STEPS).unwrap(), expect);
        let granted = p.sim.run_until(&writer, STEPS).unwrap();
        assert!(p.front.revoke(granted).is_ok());
    });
}
