//! Property tests of the io/ring.h ring against a model.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use common::Page;
use proptest::prelude::*;
use xen_ring::sring::{self, REQ_EVENT, REQ_PROD, RSP_EVENT, RSP_PROD};
use xen_ring::{BackRing, FrontRing, RingError};

type Req = [u32; 3]; // 12-byte slots
type Rsp = [u32; 2];

const ENTRY: usize = 12;

fn region_for(slots: usize) -> usize {
    sring::HEADER_SIZE + slots * ENTRY
}

/// Starting indices that exercise wraparound of the free-running u32 indices.
fn start_index() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        (0u32..64).prop_map(|k| u32::MAX - k),
        any::<u32>(),
    ]
}

/// A shared ring already in use at `start` (as after a reconnect).
fn rings(page: &Page, start: u32) -> (FrontRing<'_, Req, Rsp>, BackRing<'_, Req, Rsp>) {
    let mem = page.mem();
    sring::init_shared(&mem).unwrap();
    mem.store_u32(REQ_PROD, start, Ordering::Relaxed).unwrap();
    mem.store_u32(RSP_PROD, start, Ordering::Relaxed).unwrap();
    mem.store_u32(REQ_EVENT, start.wrapping_add(1), Ordering::Relaxed)
        .unwrap();
    mem.store_u32(RSP_EVENT, start.wrapping_add(1), Ordering::Relaxed)
        .unwrap();
    (
        FrontRing::attach(mem, start).unwrap(),
        BackRing::attach(mem, start).unwrap(),
    )
}

#[derive(Clone, Debug)]
enum Op {
    FrontQueue(u8),
    FrontPush,
    BackTake(u8),
    BackRespond(u8),
    BackPush,
    FrontTake(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u8..20).prop_map(Op::FrontQueue),
        Just(Op::FrontPush),
        (1u8..20).prop_map(Op::BackTake),
        (1u8..20).prop_map(Op::BackRespond),
        Just(Op::BackPush),
        (1u8..20).prop_map(Op::FrontTake),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Requests and responses flow in order, never more than the ring holds, across index
    /// wraparound, for any interleaving of the two ends' operations.
    #[test]
    fn matches_model(slots in 1usize..40, start in start_index(), ops in prop::collection::vec(op(), 1..200)) {
        let page = Page::new(region_for(slots));
        let (mut front, mut back) = rings(&page, start);
        let size = front.size() as usize;
        prop_assert!(size.is_power_of_two() && size <= slots && size * 2 > slots);

        let mut next_seq = 0u32;
        let mut queued: VecDeque<u32> = VecDeque::new();     // queued, unpublished requests
        let mut published: VecDeque<u32> = VecDeque::new();  // published, not taken by back
        let mut taken: VecDeque<u32> = VecDeque::new();      // taken by back, not answered
        let mut answered: VecDeque<u32> = VecDeque::new();   // queued responses, unpublished
        let mut responses: VecDeque<u32> = VecDeque::new();  // published responses
        let mut outstanding = 0usize;                        // requests without consumed response

        for op in ops {
            match op {
                Op::FrontQueue(n) => for _ in 0..n {
                    let r = front.queue_request(&[next_seq, !next_seq, 7]);
                    if outstanding == size {
                        prop_assert_eq!(r, Err(RingError::Full));
                        prop_assert!(front.is_full());
                        break;
                    }
                    prop_assert_eq!(r, Ok(()));
                    queued.push_back(next_seq);
                    next_seq += 1;
                    outstanding += 1;
                },
                Op::FrontPush => {
                    front.push_requests_and_check_notify().unwrap();
                    published.extend(queued.drain(..));
                }
                Op::BackTake(n) => for _ in 0..n {
                    match back.take_request().unwrap() {
                        Some(req) => {
                            let want = published.pop_front().expect("back took an unpublished request");
                            prop_assert_eq!(req, [want, !want, 7]);
                            taken.push_back(want);
                        }
                        None => { prop_assert!(published.is_empty()); break; }
                    }
                },
                Op::BackRespond(n) => for _ in 0..n {
                    match taken.pop_front() {
                        Some(seq) => {
                            back.queue_response(&[seq, seq.wrapping_mul(2)]).unwrap();
                            answered.push_back(seq);
                        }
                        None => {
                            prop_assert_eq!(back.queue_response(&[0, 0]), Err(RingError::NoRequestToAnswer));
                            break;
                        }
                    }
                },
                Op::BackPush => {
                    back.push_responses_and_check_notify().unwrap();
                    responses.extend(answered.drain(..));
                }
                Op::FrontTake(n) => for _ in 0..n {
                    match front.take_response().unwrap() {
                        Some(rsp) => {
                            let want = responses.pop_front().expect("front took an unpublished response");
                            prop_assert_eq!(rsp, [want, want.wrapping_mul(2)]);
                            outstanding -= 1;
                        }
                        None => { prop_assert!(responses.is_empty()); break; }
                    }
                },
            }
            prop_assert_eq!(front.free_requests() as usize, size - outstanding);
            prop_assert_eq!(front.unconsumed_responses().unwrap() as usize, responses.len());
            prop_assert_eq!(back.unconsumed_requests().unwrap() as usize, published.len());
            prop_assert!(front.broken().is_none() && back.broken().is_none());
        }
    }

    /// Notification suppression with the final-check pattern neither loses a wake-up nor
    /// sends a useless one: in a sequential interleaving, a push notifies exactly when the
    /// other end has gone to sleep, and when everything settles no work is left behind.
    #[test]
    fn no_lost_or_spurious_notification(
        slots in 1usize..20,
        start in start_index(),
        steps in prop::collection::vec((0u8..3, 1u8..10), 1..150),
    ) {
        let page = Page::new(region_for(slots));
        let (mut front, mut back) = rings(&page, start);
        // After SHARED_RING_INIT both events are cons + 1: both ends start asleep.
        let mut back_asleep = true;
        let mut front_asleep = true;
        let mut issued = 0u64;
        let mut completed = 0u64;

        let back_run = |back: &mut BackRing<'_, Req, Rsp>, front_asleep: &mut bool| -> Result<bool, TestCaseError> {
            // Consume everything, answer, push; then the final check decides whether to sleep.
            loop {
                while let Some(req) = back.take_request().unwrap() {
                    back.queue_response(&[req[0], 0]).unwrap();
                }
                let notify = back.push_responses_and_check_notify().unwrap();
                prop_assert_eq!(notify, *front_asleep, "back: notify must equal 'front is asleep'");
                if notify { *front_asleep = false; }
                if !back.final_check_for_requests().unwrap() { return Ok(true); }
            }
        };

        for (who, n) in steps {
            match who {
                // The application issues requests (whatever the front's sleep state).
                0 => {
                    let mut queued = 0;
                    for _ in 0..n {
                        if front.queue_request(&[issued as u32, 0, 0]).is_err() { break; }
                        issued += 1;
                        queued += 1;
                    }
                    if queued > 0 {
                        let notify = front.push_requests_and_check_notify().unwrap();
                        prop_assert_eq!(notify, back_asleep, "front: notify must equal 'back is asleep'");
                        if notify { back_asleep = false; }
                    }
                }
                // The back end runs if it is awake.
                1 => if !back_asleep {
                    back_asleep = back_run(&mut back, &mut front_asleep)?;
                },
                // The front end's response handler runs if it is awake.
                _ => if !front_asleep {
                    loop {
                        while front.take_response().unwrap().is_some() { completed += 1; }
                        if !front.final_check_for_responses().unwrap() { front_asleep = true; break; }
                    }
                },
            }
        }
        // Settle: keep running whoever is awake. If a notification had been lost, work would
        // remain with its consumer asleep.
        for _ in 0..4 {
            if !back_asleep { back_asleep = back_run(&mut back, &mut front_asleep)?; }
            if !front_asleep {
                loop {
                    while front.take_response().unwrap().is_some() { completed += 1; }
                    if !front.final_check_for_responses().unwrap() { front_asleep = true; break; }
                }
            }
        }
        prop_assert!(back_asleep && front_asleep);
        prop_assert_eq!(completed, issued, "work left behind: a wake-up was lost");
    }

    /// Whatever the peer writes into the shared header, the front end never panics, never
    /// hands out more responses than requests, and once it reports a peer fault stays broken.
    #[test]
    fn front_survives_hostile_back(
        slots in 1usize..20,
        start in start_index(),
        writes in prop::collection::vec((0usize..4, any::<u32>(), 0u8..4), 1..60),
    ) {
        let page = Page::new(region_for(slots));
        let (mut front, _) = rings(&page, start);
        let mem = page.mem();
        let mut taken = 0u32;
        let mut fault: Option<RingError> = None;
        for (field, value, action) in writes {
            let off = [REQ_PROD, REQ_EVENT, RSP_PROD, RSP_EVENT][field];
            // Values near the valid window are more interesting than random ones.
            let value = if value % 3 == 0 { start.wrapping_add(value % 40) } else { value };
            mem.store_u32(off, value, Ordering::Relaxed).unwrap();
            let result = match action {
                0 => front.queue_request(&[1, 2, 3]).map(|_| ()),
                1 => front.push_requests_and_check_notify().map(|_| ()),
                2 => front.take_response().map(|r| if r.is_some() { taken += 1 }),
                _ => front.final_check_for_responses().map(|_| ()),
            };
            if let Some(f) = fault {
                prop_assert_eq!(result, Err(f), "a broken ring stays broken");
            } else if let Err(e) = result {
                if e.is_peer_fault() { fault = Some(e); prop_assert_eq!(front.broken(), Some(e)); }
                else { prop_assert_eq!(e, RingError::Full); }
            }
            prop_assert!(taken <= front.req_prod_pvt().wrapping_sub(start), "more responses than requests");
        }
    }

    /// Same for the back end: never more requests than the ring can hold beyond the
    /// responses it published.
    #[test]
    fn back_survives_hostile_front(
        slots in 1usize..20,
        start in start_index(),
        writes in prop::collection::vec((0usize..4, any::<u32>(), 0u8..4), 1..60),
    ) {
        let page = Page::new(region_for(slots));
        let (_, mut back) = rings(&page, start);
        let size = back.size();
        let mem = page.mem();
        let mut fault: Option<RingError> = None;
        for (field, value, action) in writes {
            let off = [REQ_PROD, REQ_EVENT, RSP_PROD, RSP_EVENT][field];
            let value = if value % 3 == 0 { start.wrapping_add(value % 40) } else { value };
            mem.store_u32(off, value, Ordering::Relaxed).unwrap();
            let result = match action {
                0 => back.take_request().map(|_| ()),
                1 => back.queue_response(&[0, 0]).map(|_| ()),
                2 => back.push_responses_and_check_notify().map(|_| ()),
                _ => back.final_check_for_requests().map(|_| ()),
            };
            if let Some(f) = fault {
                prop_assert_eq!(result, Err(f));
            } else if let Err(e) = result {
                if e.is_peer_fault() { fault = Some(e); prop_assert_eq!(back.broken(), Some(e)); }
                else { prop_assert_eq!(e, RingError::NoRequestToAnswer); }
            }
            prop_assert!(back.unanswered() <= size, "consumed more requests than the ring holds");
        }
    }
}

#[test]
fn overrun_and_backwards_indices_are_typed_errors() {
    let page = Page::new(region_for(8));
    let (_, mut back) = rings(&page, 10);
    let mem = page.mem();
    mem.store_u32(REQ_PROD, 10 + 9, Ordering::Relaxed).unwrap();
    let e = back.take_request().unwrap_err();
    assert_eq!(
        e,
        RingError::PeerOverrun {
            prod: 19,
            cons: 10,
            size: 8
        }
    );
    // Broken for good, even after the peer "fixes" the index.
    mem.store_u32(REQ_PROD, 11, Ordering::Relaxed).unwrap();
    assert_eq!(back.take_request(), Err(e));

    let (_, mut back) = rings(&page, 10);
    mem.store_u32(REQ_PROD, 9, Ordering::Relaxed).unwrap();
    assert!(matches!(
        back.unconsumed_requests(),
        Err(RingError::PeerOverrun { prod: 9, .. })
    ));

    // The back end holds 8 unanswered requests: the front cannot have produced a 9th.
    let (mut front, mut back) = rings(&page, u32::MAX - 3);
    for _ in 0..8 {
        front.queue_request(&[0; 3]).unwrap();
    }
    front.push_requests().unwrap();
    while back.take_request().unwrap().is_some() {}
    assert_eq!(back.unanswered(), 8);
    mem.store_u32(REQ_PROD, 5, Ordering::Relaxed).unwrap();
    assert_eq!(
        back.take_request(),
        Err(RingError::PeerOverrun {
            prod: 5,
            cons: 4,
            size: 8
        })
    );
    // Answered but unpublished responses do not free slots either.
    let (mut front, mut back) = rings(&page, 0);
    for _ in 0..8 {
        front.queue_request(&[0; 3]).unwrap();
    }
    front.push_requests().unwrap();
    while back.take_request().unwrap().is_some() {}
    back.queue_response(&[0; 2]).unwrap();
    mem.store_u32(REQ_PROD, 9, Ordering::Relaxed).unwrap();
    assert!(back.take_request().is_err());

    let (mut front, _) = rings(&page, u32::MAX);
    front.queue_request(&[0; 3]).unwrap();
    front.push_requests().unwrap();
    // One request outstanding; the peer claims two responses.
    mem.store_u32(RSP_PROD, 1, Ordering::Relaxed).unwrap();
    assert_eq!(
        front.take_response(),
        Err(RingError::ResponsesBeyondRequests {
            rsp_prod: 1,
            rsp_cons: u32::MAX,
            req_prod: 0
        })
    );
}

#[test]
fn too_small_region_is_a_layout_error() {
    let page = Page::new(sring::HEADER_SIZE + ENTRY - 1);
    assert!(matches!(
        FrontRing::<Req, Rsp>::init(page.mem()),
        Err(RingError::Layout(_))
    ));
}

/// blkif-like response with padding (`id`, `operation`, hole, `status`): readable by the
/// front end because reading only needs `FromBytes`; only written types need `IntoBytes`.
#[derive(zerocopy::FromBytes, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
struct PaddedRsp {
    id: u64,
    operation: u8,
    status: i16,
}

#[derive(zerocopy::FromBytes, zerocopy::IntoBytes, zerocopy::Immutable, Clone, Copy)]
#[repr(C)]
struct WireRsp {
    id: u64,
    operation: u8,
    pad: u8,
    status: i16,
    pad2: u32,
}

#[test]
fn responses_with_padding_can_be_read() {
    assert_eq!(size_of::<PaddedRsp>(), 16);
    let page = Page::new(4096);
    let mut front = FrontRing::<[u64; 2], PaddedRsp>::init(page.mem()).unwrap();
    let mut back = BackRing::<[u64; 2], WireRsp>::new(page.mem()).unwrap();
    front.queue_request(&[7, 0]).unwrap();
    front.push_requests().unwrap();
    back.take_request().unwrap().unwrap();
    back.queue_response(&WireRsp {
        id: 7,
        operation: 1,
        pad: 0xff,
        status: -5,
        pad2: 0,
    })
    .unwrap();
    back.push_responses().unwrap();
    let rsp = front.take_response().unwrap().unwrap();
    assert_eq!((rsp.id, rsp.operation, rsp.status), (7, 1, -5));
}
