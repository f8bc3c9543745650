//! Property tests of the byte rings (console, xenstore, vchan layouts) against a model.

mod common;

use std::collections::VecDeque;
use std::sync::atomic::Ordering;

use common::Page;
use proptest::prelude::*;
use xen_ring::{ByteConsumer, ByteProducer, RingError, console, xenstore};

fn start_index() -> impl Strategy<Value = u32> {
    prop_oneof![
        Just(0u32),
        (0u32..3000).prop_map(|k| u32::MAX - k),
        any::<u32>(),
    ]
}

#[derive(Clone, Debug)]
enum Op {
    Write(Vec<u8>),
    Read(usize),
    Peek(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..700).prop_map(Op::Write),
        (0usize..900).prop_map(Op::Read),
        (0usize..900).prop_map(Op::Peek),
    ]
}

/// Runs `ops` against producer/consumer ends and a VecDeque model of the stream.
fn check_stream(
    mut tx: ByteProducer<'_>,
    mut rx: ByteConsumer<'_>,
    ops: Vec<Op>,
) -> Result<(), TestCaseError> {
    let size = tx.size() as usize;
    let mut model: VecDeque<u8> = VecDeque::new();
    for op in ops {
        match op {
            Op::Write(bytes) => {
                let n = tx.write(&bytes).unwrap();
                prop_assert_eq!(n, bytes.len().min(size - model.len()));
                model.extend(&bytes[..n]);
            }
            Op::Read(len) => {
                let mut buf = vec![0u8; len];
                let n = rx.read(&mut buf).unwrap();
                prop_assert_eq!(n, len.min(model.len()));
                let want: Vec<u8> = model.drain(..n).collect();
                prop_assert_eq!(&buf[..n], &want[..]);
            }
            Op::Peek(len) => {
                let mut buf = vec![0u8; len];
                let n = rx.peek(&mut buf).unwrap();
                prop_assert_eq!(n, len.min(model.len()));
                let want: Vec<u8> = model.iter().take(n).copied().collect();
                prop_assert_eq!(&buf[..n], &want[..]);
            }
        }
        prop_assert_eq!(rx.available().unwrap() as usize, model.len());
        prop_assert_eq!(tx.free_space().unwrap() as usize, size - model.len());
    }
    Ok(())
}

fn set_indices(page: &Page, prod_off: usize, cons_off: usize, start: u32) {
    page.mem()
        .store_u32(prod_off, start, Ordering::Relaxed)
        .unwrap();
    page.mem()
        .store_u32(cons_off, start, Ordering::Relaxed)
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn console_out_ring_matches_model(start in start_index(), ops in prop::collection::vec(op(), 1..80)) {
        let page = Page::new(4096);
        set_indices(&page, console::OUT_PROD, console::OUT_CONS, start);
        let (out, _) = console::guest(page.mem()).unwrap();
        let (out_rx, _) = console::backend(page.mem()).unwrap();
        prop_assert_eq!(out.size(), 2048);
        check_stream(out, out_rx, ops)?;
    }

    #[test]
    fn xenstore_rings_match_model(start in start_index(), ops in prop::collection::vec(op(), 1..80)) {
        let page = Page::new(4096);
        set_indices(&page, xenstore::RSP_PROD, xenstore::RSP_CONS, start);
        let (_, rsp_rx) = xenstore::client(page.mem()).unwrap();
        let (_, rsp_tx) = xenstore::server(page.mem()).unwrap();
        prop_assert_eq!(rsp_tx.size(), 1024);
        check_stream(rsp_tx, rsp_rx, ops)?;
    }

    /// libxenvchan order 12: indices in the control page, data in a separate page.
    #[test]
    fn vchan_layout_with_separate_data_pages(start in start_index(), ops in prop::collection::vec(op(), 1..80)) {
        let ctrl = Page::new(4096);
        let data = Page::new(4096);
        // struct vchan_interface: left {cons @0, prod @4}, right {cons @8, prod @12}.
        set_indices(&ctrl, 4, 0, start);
        let tx = ByteProducer::attach(ctrl.mem(), 4, 0, data.mem()).unwrap();
        let rx = ByteConsumer::attach(ctrl.mem(), 4, 0, data.mem()).unwrap();
        prop_assert_eq!(tx.size(), 4096);
        check_stream(tx, rx, ops)?;
    }

    /// A hostile producer index never makes the consumer read more than the ring holds or
    /// panic; once reported, the fault sticks.
    #[test]
    fn consumer_survives_hostile_prod(start in start_index(), prods in prop::collection::vec(any::<u32>(), 1..40)) {
        let page = Page::new(4096);
        set_indices(&page, xenstore::REQ_PROD, xenstore::REQ_CONS, start);
        let (mut rx, _) = xenstore::server(page.mem()).unwrap();
        let mut fault = None;
        for p in prods {
            let p = if p % 2 == 0 { start.wrapping_add(p % 2100) } else { p };
            page.mem().store_u32(xenstore::REQ_PROD, p, Ordering::Relaxed).unwrap();
            let mut buf = [0u8; 4096];
            let r = rx.read(&mut buf);
            match (fault, r) {
                (Some(f), r) => prop_assert_eq!(r, Err(f)),
                (None, Ok(n)) => prop_assert!(n <= 1024),
                (None, Err(e)) => {
                    prop_assert!(matches!(e, RingError::PeerOverrun { size: 1024, .. }), "{:?}", e);
                    fault = Some(e);
                }
            }
        }
    }

    /// A hostile consumer index never lets the producer overwrite unread data it believes
    /// is there, nor panic.
    #[test]
    fn producer_survives_hostile_cons(start in start_index(), conses in prop::collection::vec(any::<u32>(), 1..40)) {
        let page = Page::new(4096);
        set_indices(&page, xenstore::REQ_PROD, xenstore::REQ_CONS, start);
        let (mut tx, _) = xenstore::client(page.mem()).unwrap();
        let mut fault = None;
        let mut written = 0u32;
        for c in conses {
            let c = if c % 2 == 0 { start.wrapping_add(c % 2100) } else { c };
            page.mem().store_u32(xenstore::REQ_CONS, c, Ordering::Relaxed).unwrap();
            let r = tx.write(&[0x55; 300]);
            match (fault, r) {
                (Some(f), r) => prop_assert_eq!(r, Err(f)),
                (None, Ok(n)) => {
                    written = written.wrapping_add(n as u32);
                    // Never more unconsumed bytes than the ring holds, by the peer's own cons.
                    prop_assert!(start.wrapping_add(written).wrapping_sub(c) <= 1024);
                }
                (None, Err(e)) => {
                    prop_assert!(matches!(e, RingError::PeerOverrun { .. }), "{:?}", e);
                    fault = Some(e);
                }
            }
        }
    }
}

#[test]
fn attach_validates_layout_and_existing_indices() {
    let page = Page::new(4096);
    let mem = page.mem();
    // Data area not a power of two, or index outside the control region.
    assert!(ByteProducer::attach(mem, 0, 4, mem.sub(8, 1000).unwrap()).is_err());
    assert!(ByteProducer::attach(mem, 4096, 4, mem.sub(1024, 1024).unwrap()).is_err());
    assert!(ByteConsumer::attach(mem, 2, 8, mem.sub(1024, 1024).unwrap()).is_err());
    // A page whose indices are already impossible.
    mem.store_u32(console::IN_PROD, 5000, Ordering::Relaxed)
        .unwrap();
    assert!(matches!(
        console::guest(mem),
        Err(RingError::PeerOverrun {
            prod: 5000,
            cons: 0,
            size: 1024
        })
    ));
}

#[test]
fn xenstore_control_words() {
    let page = Page::new(4096);
    let ctl = xenstore::Control::new(page.mem()).unwrap();
    ctl.set_server_features(xenstore::FEATURE_RECONNECTION | xenstore::FEATURE_ERROR);
    ctl.set_connection(xenstore::RECONNECT);
    ctl.set_error(xenstore::ERROR_RINGIDX);
    assert_eq!(page.mem().load_u32(2064, Ordering::Relaxed).unwrap(), 3);
    assert_eq!(ctl.connection(), 1);
    assert_eq!(ctl.error(), 2);
    assert!(xenstore::Control::new(page.mem().sub(0, 2072).unwrap()).is_err());
}
