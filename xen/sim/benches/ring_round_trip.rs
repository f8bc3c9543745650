//! Request/response round trips per second: an io/ring.h ring between two simulated domains
//! (event-channel notifications, seeded scheduler, virtual time) against `std::sync::mpsc`
//! between two threads, measured in the same run. Prints the ratios; never fails on timing.
//!
//! `cargo bench -p xen-sim --bench ring_round_trip [-- ROUND_TRIPS]`

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use xen_platform::{
    Access, DomId, EventChannels, GrantMap, GrantRef, GrantShare, Granted, Mapping, PageAlloc,
    PageMemory, Port,
};
use xen_ring::{BackRing, FrontRing};
use xen_sim::{Sim, SimDomain};

type Req = [u64; 4];
type Rsp = [u64; 2];
type Advert = Rc<RefCell<Option<(GrantRef, Port)>>>;

/// Frontend: keeps up to `window` requests in flight; returns a checksum of responses.
async fn frontend(dom: SimDomain, back: DomId, n: u64, window: u64, advert: Advert) -> u64 {
    let granted = dom
        .grant(dom.alloc_pages(1).unwrap(), back, Access::ReadWrite)
        .unwrap();
    let port = dom.alloc_unbound(back).unwrap();
    let mut ring = FrontRing::<Req, Rsp>::init(granted.mem()).unwrap();
    *advert.borrow_mut() = Some((granted.refs()[0], port));
    let (mut sent, mut received, mut sum) = (0u64, 0u64, 0u64);
    while received < n {
        while sent < n && sent - received < window && !ring.is_full() {
            ring.queue_request(&[sent, 1, 2, 3]).unwrap();
            sent += 1;
        }
        if ring.push_requests_and_check_notify().unwrap() {
            dom.notify(port).unwrap();
        }
        while let Some(rsp) = ring.take_response().unwrap() {
            assert_eq!(rsp[0], received);
            sum = sum.wrapping_add(rsp[1]);
            received += 1;
        }
        let can_send = sent < n && sent - received < window && !ring.is_full();
        if received < n && !can_send && !ring.final_check_for_responses().unwrap() {
            dom.wait(port).await.unwrap();
        }
    }
    sum
}

async fn backend(dom: SimDomain, front: DomId, n: u64, advert: Advert) {
    let (gref, fport) = loop {
        if let Some(a) = *advert.borrow() {
            break a;
        }
        xen_platform::sleep(&dom, Duration::from_micros(1)).await;
    };
    let map = dom.map(front, &[gref], Access::ReadWrite).unwrap();
    let port = dom.bind_interdomain(front, fport).unwrap();
    let mut ring = BackRing::<Req, Rsp>::new(map.mem().unwrap()).unwrap();
    let mut handled = 0;
    while handled < n {
        while let Some(req) = ring.take_request().unwrap() {
            ring.queue_response(&[req[0], req[1] + req[2] + req[3]])
                .unwrap();
            handled += 1;
        }
        if ring.push_responses_and_check_notify().unwrap() {
            dom.notify(port).unwrap();
        }
        if handled < n && !ring.final_check_for_requests().unwrap() {
            dom.wait(port).await.unwrap();
        }
    }
}

fn sim_round_trips(n: u64, window: u64) -> Duration {
    let mut sim = Sim::new(1);
    let back = sim.create_domain();
    let front = sim.create_domain();
    let advert: Advert = Rc::new(RefCell::new(None));
    let start = Instant::now();
    let f = sim.spawn(
        front.domid(),
        frontend(front.clone(), back.domid(), n, window, advert.clone()),
    );
    sim.spawn(
        back.domid(),
        backend(back.clone(), front.domid(), n, advert),
    );
    let sum = sim.run_until(&f, u64::MAX).unwrap();
    let elapsed = start.elapsed();
    assert_eq!(sum, 6 * n);
    elapsed
}

fn mpsc_round_trips(n: u64, window: u64) -> Duration {
    let (req_tx, req_rx) = mpsc::channel::<Req>();
    let (rsp_tx, rsp_rx) = mpsc::channel::<Rsp>();
    let start = Instant::now();
    let server = std::thread::spawn(move || {
        for req in req_rx {
            if rsp_tx.send([req[0], req[1] + req[2] + req[3]]).is_err() {
                break;
            }
        }
    });
    let (mut sent, mut received, mut sum) = (0u64, 0u64, 0u64);
    while received < n {
        while sent < n && sent - received < window {
            req_tx.send([sent, 1, 2, 3]).unwrap();
            sent += 1;
        }
        let rsp = rsp_rx.recv().unwrap();
        assert_eq!(rsp[0], received);
        sum = sum.wrapping_add(rsp[1]);
        received += 1;
    }
    drop(req_tx);
    server.join().unwrap();
    let elapsed = start.elapsed();
    assert_eq!(sum, 6 * n);
    elapsed
}

/// The same exchange over mpsc channels on one thread (no OS wake-ups), the closest
/// analogue of the single-threaded sim.
fn mpsc_one_thread(n: u64, window: u64) -> Duration {
    let (req_tx, req_rx) = mpsc::channel::<Req>();
    let (rsp_tx, rsp_rx) = mpsc::channel::<Rsp>();
    let start = Instant::now();
    let (mut sent, mut received, mut sum) = (0u64, 0u64, 0u64);
    while received < n {
        while sent < n && sent - received < window {
            req_tx.send([sent, 1, 2, 3]).unwrap();
            sent += 1;
        }
        while let Ok(req) = req_rx.try_recv() {
            rsp_tx.send([req[0], req[1] + req[2] + req[3]]).unwrap();
        }
        while let Ok(rsp) = rsp_rx.try_recv() {
            assert_eq!(rsp[0], received);
            sum = sum.wrapping_add(rsp[1]);
            received += 1;
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(sum, 6 * n);
    elapsed
}

fn rate(n: u64, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

fn main() {
    // `cargo bench` passes `--bench`; an optional number overrides the round trips.
    let n: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(200_000);
    println!("ring_round_trip: {n} request/response round trips per case (best of 3)");
    println!(
        "{:<26} {:>12} {:>16} {:>10} {:>16} {:>10}",
        "case", "sim rt/s", "mpsc 2thr rt/s", "sim/2thr", "mpsc 1thr rt/s", "sim/1thr"
    );
    for (name, window) in [
        ("ping-pong (1 in flight)", 1),
        ("pipelined (32 in flight)", 32),
    ] {
        let best = |f: &dyn Fn() -> Duration| (0..3).map(|_| f()).min().unwrap();
        let sim = best(&|| sim_round_trips(n, window));
        let chan = best(&|| mpsc_round_trips(n, window));
        let local = best(&|| mpsc_one_thread(n, window));
        let (rs, rc, rl) = (rate(n, sim), rate(n, chan), rate(n, local));
        println!(
            "{name:<26} {rs:>12.0} {rc:>16.0} {:>10.2} {rl:>16.0} {:>10.3}",
            rs / rc,
            rs / rl
        );
    }
    println!(
        "(sim: two simulated domains, one thread, ring over memfd-shared pages, event-channel\n \
         notifications with req_event/rsp_event suppression; mpsc 2thr: client and server\n \
         threads, blocking recv; mpsc 1thr: both ends on one thread, try_recv)"
    );
}
