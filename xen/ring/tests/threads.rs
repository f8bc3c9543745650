//! The ring between two real threads: the memory ordering (Release/Acquire for the data,
//! full fences for the notify and final checks) must not lose a wake-up or hand out a torn
//! or stale entry when the two ends truly run concurrently.
//!
//! A "sleeping" end spins (yielding) until the other end notifies it by setting a flag, so a
//! lost notification is a hang, which the watchdog turns into a failure.
//!
//! Limits: this is a smoke test of real concurrency, not a proof of the fences. On x86 the
//! store-load reordering the full fences prevent is rare, and the locked `swap` and the
//! `yield` system call on the sleep path are barriers themselves; removing the fences does
//! not make this test fail. The fences are argued in the `sring` module docs.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::thread;
use std::time::Duration;

use common::Page;
use xen_ring::{BackRing, FrontRing, SharedMem};

type Req = [u64; 3];
type Rsp = [u64; 2];

const ROUND_TRIPS: u64 = 200_000;
const WINDOW: u64 = 48;

fn notify(flag: &AtomicBool) {
    flag.store(true, Ordering::Release);
}

fn sleep_until_notified(flag: &AtomicBool) {
    while !flag.swap(false, Ordering::Acquire) {
        thread::yield_now();
    }
}

#[test]
fn two_threads_exchange_without_lost_wakeups() {
    let page: &'static Page = Box::leak(Box::new(Page::new(4096)));
    let mem: SharedMem<'static> = page.mem();
    FrontRing::<Req, Rsp>::init(mem).unwrap();
    let to_front = Arc::new(AtomicBool::new(false));
    let to_back = Arc::new(AtomicBool::new(false));
    let (done_tx, done_rx) = mpsc::channel();

    let (tf, tb) = (to_front.clone(), to_back.clone());
    let back = thread::spawn(move || {
        let mut ring = BackRing::<Req, Rsp>::new(mem).unwrap();
        let mut handled = 0;
        while handled < ROUND_TRIPS {
            while let Some(req) = ring.take_request().unwrap() {
                assert_eq!(req[1], req[0] ^ 0xa5a5, "torn or stale request");
                ring.queue_response(&[req[0], req[2] + 1]).unwrap();
                handled += 1;
            }
            if ring.push_responses_and_check_notify().unwrap() {
                notify(&tf);
            }
            if handled < ROUND_TRIPS && !ring.final_check_for_requests().unwrap() {
                sleep_until_notified(&tb);
            }
        }
    });

    let (tf, tb) = (to_front.clone(), to_back.clone());
    let front = thread::spawn(move || {
        let mut ring = FrontRing::<Req, Rsp>::attach(mem, 0).unwrap();
        let (mut sent, mut received) = (0u64, 0u64);
        while received < ROUND_TRIPS {
            let can_send = |ring: &FrontRing<'_, Req, Rsp>, sent: u64, received: u64| {
                sent < ROUND_TRIPS && !ring.is_full() && sent - received < WINDOW
            };
            while can_send(&ring, sent, received) {
                ring.queue_request(&[sent, sent ^ 0xa5a5, sent * 2])
                    .unwrap();
                sent += 1;
            }
            if ring.push_requests_and_check_notify().unwrap() {
                notify(&tb);
            }
            while let Some(rsp) = ring.take_response().unwrap() {
                assert_eq!(rsp, [received, received * 2 + 1], "response out of order");
                received += 1;
            }
            if received < ROUND_TRIPS
                && !can_send(&ring, sent, received)
                && !ring.final_check_for_responses().unwrap()
            {
                sleep_until_notified(&tf);
            }
        }
        done_tx.send(received).unwrap();
    });

    match done_rx.recv_timeout(Duration::from_secs(120)) {
        Ok(n) => assert_eq!(n, ROUND_TRIPS),
        Err(_) => panic!("no progress for 120 s: a notification was lost"),
    }
    front.join().unwrap();
    back.join().unwrap();
}
