//! The guest ring transport in `xen-sim`: a guest domain grants its xenstore page and
//! allocates the event channel, a stand-in xenstored in dom0 maps the page and binds the
//! channel (as the toolstack and xenstored do), and the client runs over real grant
//! mappings and interdomain event channels, with duplicated and delayed notifications, a
//! hostile peer scribbling on the ring indexes, and a daemon that dies mid-run.

#[path = "support/ring_daemon.rs"]
mod ring_daemon;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use xen_platform::{
    Access, DomId, EventChannels, GrantMap, GrantRef, GrantShare, Granted, Mapping, PageAlloc,
    PageMemory, Port,
};
use xen_ring::xenstore as layout;
use xen_sim::{HostileTarget, Sim, SimDomain, for_each_seed};
use xenstore::transport::{PlatformTimer, RingTransport, TransportError};
use xenstore::xenbus::{Frontend, XenbusState};
use xenstore::{Client, ClientConfig, Error, ErrorCode};

const STEPS: u64 = 20_000_000;

type Advert = Rc<RefCell<Option<(GrantRef, Port)>>>;

fn config() -> ClientConfig {
    ClientConfig {
        request_timeout: Duration::from_millis(200),
        ..Default::default()
    }
}

/// dom0: maps the guest's xenstore page and serves it until told to stop.
async fn xenstored(
    dom: SimDomain,
    guest: DomId,
    advert: Advert,
    control: Rc<ring_daemon::DaemonControl>,
) {
    let (gref, guest_port) = loop {
        if let Some(a) = *advert.borrow() {
            break a;
        }
        xen_platform::sleep(&dom, Duration::from_micros(20)).await;
    };
    let map = dom.map(guest, &[gref], Access::ReadWrite).unwrap();
    let port = dom.bind_interdomain(guest, guest_port).unwrap();
    ring_daemon::serve(map.mem().unwrap(), &dom, port, control).await;
}

/// The guest side: shares a page and a port like the toolstack would have, then runs `body`.
async fn guest<R>(
    dom: SimDomain,
    daemon: DomId,
    advert: Advert,
    body: impl AsyncFnOnce(&Client<RingTransport<'_, SimDomain>, PlatformTimer<'_, SimDomain>>) -> R,
) -> R {
    let granted = dom
        .grant(dom.alloc_pages(1).unwrap(), daemon, Access::ReadWrite)
        .unwrap();
    let port = dom.alloc_unbound(daemon).unwrap();
    *advert.borrow_mut() = Some((granted.refs()[0], port));
    let transport = RingTransport::new(granted.mem(), &dom, port).unwrap();
    let client = Client::with_config(transport, PlatformTimer::new(&dom), config());
    body(&client).await
}

struct World {
    sim: Sim,
    dom0: SimDomain,
    domu: SimDomain,
    advert: Advert,
    control: Rc<ring_daemon::DaemonControl>,
}

fn world(seed: u64) -> World {
    let mut sim = Sim::new(seed);
    let dom0 = sim.create_domain();
    let domu = sim.create_domain();
    let w = World {
        sim,
        dom0,
        domu,
        advert: Rc::default(),
        control: Rc::default(),
    };
    let (d0, du, a, c) = (
        w.dom0.clone(),
        w.domu.domid(),
        w.advert.clone(),
        w.control.clone(),
    );
    let mut w = w;
    w.sim.spawn(w.dom0.domid(), xenstored(d0, du, a, c));
    w
}

/// The guest's side of the lab scenario: its home path, data writes larger than the ring,
/// a watch, a transaction, and the xenbus handshake against a backend in the same store.
async fn scenario(
    c: &Client<RingTransport<'_, SimDomain>, PlatformTimer<'_, SimDomain>>,
) -> Result<(), Error> {
    let home = c.get_domain_path(1).await?;
    assert_eq!(home, "/local/domain/1");
    let big: Vec<u8> = (0..3000u32).map(|i| (i * 7) as u8).collect();
    c.write(&format!("{home}/data/big"), &big).await?;
    assert_eq!(c.read(&format!("{home}/data/big")).await?, big);
    let mut watch = c.watch(&format!("{home}/data")).await?;
    assert_eq!(watch.next().await?.path, format!("{home}/data"));
    c.transaction(async |tx| {
        tx.write(&format!("{home}/data/a"), "1").await?;
        tx.write(&format!("{home}/data/b"), "2").await
    })
    .await?;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        seen.push(watch.next().await?.path);
    }
    assert_eq!(seen, [format!("{home}/data/a"), format!("{home}/data/b")]);
    let mut children = c.directory(&format!("{home}/data")).await?;
    children.sort();
    assert_eq!(children, ["a", "b", "big"]);
    assert_eq!(
        c.read("/nope").await,
        Err(Error::Xenstore(ErrorCode::ENOENT))
    );

    // Toolstack keys and a backend that answers (played by the same connection here).
    let front = format!("{home}/device/vif/0");
    let back = "/local/domain/0/backend/vif/1/0";
    c.write(&format!("{front}/backend"), back).await?;
    c.write(&format!("{front}/backend-id"), "0").await?;
    c.write(&format!("{back}/state"), XenbusState::Connected.as_value())
        .await?;
    let f = Frontend::new(c, &front).await.unwrap();
    f.publish(&[("ring-ref", b"8")], Some(XenbusState::Initialised))
        .await
        .unwrap();
    assert_eq!(
        f.wait_for_backend(|s| s == XenbusState::Connected)
            .await
            .unwrap(),
        XenbusState::Connected
    );
    f.set_state(XenbusState::Connected).await.unwrap();
    assert_eq!(c.read(&format!("{front}/ring-ref")).await?, b"8");
    Ok(())
}

#[test]
fn guest_client_over_a_shared_ring() {
    for_each_seed(0..8, |seed| {
        let mut w = world(seed);
        let g = w.sim.spawn(
            w.domu.domid(),
            guest(
                w.domu.clone(),
                w.dom0.domid(),
                w.advert.clone(),
                async |c| scenario(c).await,
            ),
        );
        w.sim.run_until(&g, STEPS).unwrap().unwrap();
        assert!(w.control.served.get() > 20);
    });
}

#[test]
fn duplicated_and_delayed_notifications_are_harmless() {
    let mut totals = xen_sim::FaultStats::default();
    for_each_seed(0..8, |seed| {
        let mut w = world(seed);
        {
            let mut f = w.sim.faults();
            f.duplicate_notify = 0.3;
            f.delay_notify = 0.3;
            f.max_delay = Duration::from_micros(200);
        }
        let g = w.sim.spawn(
            w.domu.domid(),
            guest(
                w.domu.clone(),
                w.dom0.domid(),
                w.advert.clone(),
                async |c| scenario(c).await,
            ),
        );
        w.sim.run_until(&g, STEPS).unwrap().unwrap();
        let s = w.sim.fault_stats();
        totals.duplicated += s.duplicated;
        totals.delayed += s.delayed;
    });
    assert!(totals.duplicated > 0 && totals.delayed > 0, "{totals:?}");
}

#[test]
fn hostile_ring_indexes_give_errors_not_panics_or_hangs() {
    let peer_detected = std::cell::Cell::new(0);
    for_each_seed(0..8, |seed| {
        let mut w = world(seed);
        let g = w.sim.spawn(
            w.domu.domid(),
            guest(
                w.domu.clone(),
                w.dom0.domid(),
                w.advert.clone(),
                async |c| {
                    let mut outcome = Ok(());
                    for i in 0..200 {
                        if let Err(e) = c.write(&format!("/k{}", i % 10), vec![b'x'; 700]).await {
                            outcome = Err(e);
                            break;
                        }
                    }
                    outcome
                },
            ),
        );
        // Let the guest advertise its page, then let the "daemon" scribble on the indexes
        // it owns (rsp_prod, req_cons).
        while w.advert.borrow().is_none() {
            assert!(w.sim.step());
        }
        let (gref, _) = w.advert.borrow().unwrap();
        w.sim.faults().hostile.push(HostileTarget {
            granter: w.domu.domid(),
            gref,
            offsets: vec![layout::RSP_PROD, layout::REQ_CONS],
            per_step: 0.01,
        });
        let outcome = w.sim.run_until(&g, STEPS).unwrap();
        match outcome {
            // A broken ring ends the connection.
            Err(Error::Transport(TransportError::Peer(_))) => {
                peer_detected.set(peer_detected.get() + 1)
            }
            // Scribbles that keep the indexes plausible corrupt or starve the stream instead:
            // framing errors, replies that fail their request, or timeouts.
            Err(
                Error::Protocol(_)
                | Error::Timeout
                | Error::MalformedReply(_)
                | Error::Disconnected,
            ) => {}
            Err(
                Error::UnexpectedReply { .. } | Error::Xenstore(_) | Error::UnknownXenstoreError(_),
            ) => {}
            Err(other) => panic!("unexpected error {other:?}"),
            Ok(()) => {} // the scribbles happened to land harmlessly
        }
        assert!(w.sim.fault_stats().hostile_writes > 0);
    });
    assert!(
        peer_detected.get() > 0,
        "no seed detected the hostile indexes"
    );
}

#[test]
fn dead_xenstored_times_out() {
    for_each_seed(0..4, |seed| {
        let mut w = world(seed);
        let g = w.sim.spawn(
            w.domu.domid(),
            guest(
                w.domu.clone(),
                w.dom0.domid(),
                w.advert.clone(),
                async |c| {
                    c.write("/before", "1").await.unwrap();
                    // xenstored's domain is destroyed now (see below); every request must fail
                    // within its timeout.
                    let first = c.read("/before").await;
                    let second = c.write("/after", "2").await;
                    (first, second)
                },
            ),
        );
        while w.control.served.get() == 0 {
            assert!(w.sim.step());
        }
        w.sim.destroy_domain(w.dom0.domid());
        let started = w.sim.now();
        let (first, second) = w.sim.run_until(&g, STEPS).unwrap();
        assert_eq!(first, Err(Error::Timeout));
        assert_eq!(second, Err(Error::Timeout));
        let waited = w.sim.now().saturating_duration_since(started);
        assert!(waited < Duration::from_secs(1), "{waited:?}");
    });
}
