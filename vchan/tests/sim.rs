//! vchan between two simulated domains (`xen-sim`): both roles, in-page and page rings,
//! bulk transfers with random chunking, packets, close, peer death, connect timeouts, lost
//! and duplicated notifications, and hostile peers (forged control pages, the fault
//! injector scribbling on the live page).

#[path = "support/mem_store.rs"]
mod mem_store;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use mem_store::{MemStore, StoreConn};
use proptest::prelude::*;
use vchan::layout::{self, OrderError};
use vchan::{ClientConfig, Error, PeerError, PeerState, ServerConfig, Vchan, vchan_path};
use xen_platform::{Access, DomId, GrantShare, GrantStatus, Granted, Op, PageMemory, timeout};
use xen_sim::{HostileTarget, Sim, SimDomain, SplitMix64, for_each_seed};

const STEPS: u64 = 20_000_000;
const PORT: &str = "test";

type Chan<'a> = Vchan<'a, SimDomain, &'a StoreConn>;

struct World {
    sim: Sim,
    srv: SimDomain,
    cli: SimDomain,
    store: MemStore,
}

fn world(seed: u64) -> World {
    let mut sim = Sim::new(seed);
    let store = MemStore::default();
    let dom0 = sim.create_domain();
    let srv = sim.create_domain();
    let cli = sim.create_domain();
    for d in [&dom0, &srv, &cli] {
        store.connect(d.domid());
    }
    World {
        sim,
        srv,
        cli,
        store,
    }
}

fn server_config(orders: (u8, u8)) -> ServerConfig {
    ServerConfig {
        orders: Some(orders),
        liveness_interval: Some(Duration::from_millis(10)),
        ..ServerConfig::default()
    }
}

fn client_config() -> ClientConfig {
    ClientConfig {
        connect_timeout: Duration::from_secs(1),
        liveness_interval: Some(Duration::from_millis(10)),
    }
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = SplitMix64::new(seed);
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

async fn write_chunks(v: &mut Chan<'_>, data: &[u8], chunks: &[usize]) -> Result<(), Error> {
    let mut off = 0;
    for i in 0.. {
        if off == data.len() {
            break;
        }
        let n = chunks[i % chunks.len()].clamp(1, data.len() - off);
        v.write_all(&data[off..off + n]).await?;
        off += n;
    }
    Ok(())
}

async fn read_chunks(v: &mut Chan<'_>, len: usize, chunks: &[usize]) -> Result<Vec<u8>, Error> {
    let mut out = Vec::with_capacity(len);
    let mut buf = vec![0u8; chunks.iter().copied().max().unwrap_or(1).max(1)];
    for i in 0.. {
        if out.len() == len {
            break;
        }
        let want = chunks[i % chunks.len()].clamp(1, len - out.len());
        match v.read(&mut buf[..want]).await? {
            0 => return Err(Error::Closed),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
    Ok(out)
}

/// Client sends `up` to the server, then the server sends `down` back; both close.
/// Returns what each side received.
#[allow(clippy::too_many_arguments)]
fn transfer(
    w: &mut World,
    orders: (u8, u8),
    up: Vec<u8>,
    down: Vec<u8>,
    write_sizes: Vec<usize>,
    read_sizes: Vec<usize>,
) -> (Result<Vec<u8>, Error>, Result<Vec<u8>, Error>) {
    let (srv, cli) = (w.srv.clone(), w.cli.clone());
    let (srv_id, cli_id) = (srv.domid(), cli.domid());
    let (up_len, down_len) = (up.len(), down.len());
    let (ws, rs) = (write_sizes.clone(), read_sizes.clone());
    let conn = w.store.connect(srv_id);
    let server = w.sim.spawn(srv_id, async move {
        let mut v = Vchan::server(&srv, &conn, cli_id, PORT, server_config(orders)).await?;
        assert_eq!(v.geometry().left_order, orders.0);
        v.wait_connected().await?;
        let got = read_chunks(&mut v, up_len, &rs).await?;
        write_chunks(&mut v, &down, &ws).await?;
        // Drain until the client closes: its close is our end of stream.
        let mut b = [0u8; 16];
        let tail = v.read(&mut b).await?;
        assert_eq!(tail, 0, "client sent more than agreed");
        v.close().await?;
        Ok::<_, Error>(got)
    });
    let conn = w.store.connect(cli_id);
    let client = w.sim.spawn(cli_id, async move {
        let mut v = Vchan::client(&cli, &conn, srv_id, PORT, client_config()).await?;
        write_chunks(&mut v, &up, &write_sizes).await?;
        let got = read_chunks(&mut v, down_len, &read_sizes).await?;
        v.close().await?;
        Ok::<_, Error>(got)
    });
    let c = w.sim.run_until(&client, STEPS).unwrap();
    let s = w.sim.run_until(&server, STEPS).unwrap();
    (s, c)
}

#[test]
fn in_page_rings_both_directions() {
    for_each_seed(0..8, |seed| {
        for orders in [(10, 11), (11, 10)] {
            let mut w = world(seed);
            let frames = w.sim.frames_in_use();
            let up = pattern(seed, 10_000);
            let down = pattern(seed + 100, 7_000);
            let (s, c) = transfer(
                &mut w,
                orders,
                up.clone(),
                down.clone(),
                vec![700, 3, 1500],
                vec![1, 999, 64],
            );
            assert_eq!(s.unwrap(), up);
            assert_eq!(c.unwrap(), down);
            assert!(
                !w.store
                    .exists(&vchan_path(w.srv.domid(), w.cli.domid(), PORT))
            );
            w.sim.run(STEPS).unwrap();
            assert_eq!(w.sim.frames_in_use(), frames, "pages leaked");
        }
    });
}

#[test]
fn page_rings_both_directions() {
    for_each_seed(0..4, |seed| {
        for orders in [(12, 12), (13, 11), (10, 14), (16, 12)] {
            let mut w = world(seed);
            let frames = w.sim.frames_in_use();
            let up = pattern(seed, 150_000);
            let down = pattern(seed + 7, 90_000);
            let (s, c) = transfer(
                &mut w,
                orders,
                up.clone(),
                down.clone(),
                vec![40_000, 5],
                vec![65_536, 17],
            );
            assert_eq!(s.unwrap(), up);
            assert_eq!(c.unwrap(), down);
            w.sim.run(STEPS).unwrap();
            assert_eq!(w.sim.frames_in_use(), frames, "pages leaked");
        }
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Any chunking of writes and reads delivers the stream intact, in order, both ways.
    #[test]
    fn bulk_transfer_random_chunking(
        seed in any::<u64>(),
        orders in prop_oneof![Just((10u8, 11u8)), Just((11, 10)), Just((12, 12)), Just((13, 11)), Just((10, 13))],
        up_len in 0usize..40_000,
        down_len in 0usize..40_000,
        write_sizes in prop::collection::vec(1usize..9000, 1..8),
        read_sizes in prop::collection::vec(1usize..9000, 1..8),
    ) {
        let mut w = world(seed);
        let up = pattern(seed, up_len);
        let down = pattern(!seed, down_len);
        let (s, c) = transfer(&mut w, orders, up.clone(), down.clone(), write_sizes, read_sizes);
        prop_assert_eq!(s.unwrap(), up);
        prop_assert_eq!(c.unwrap(), down);
    }
}

#[test]
fn lost_duplicated_and_delayed_notifications_only_cost_time() {
    for_each_seed(0..6, |seed| {
        let mut w = world(seed);
        {
            let mut f = w.sim.faults();
            f.drop_notify = 0.4;
            f.duplicate_notify = 0.2;
            f.delay_notify = 0.2;
            f.max_delay = Duration::from_millis(3);
        }
        let up = pattern(seed, 20_000);
        let down = pattern(seed + 1, 20_000);
        let (s, c) = transfer(
            &mut w,
            (10, 11),
            up.clone(),
            down.clone(),
            vec![333],
            vec![1024],
        );
        assert_eq!(s.unwrap(), up);
        assert_eq!(c.unwrap(), down);
        let stats = w.sim.fault_stats();
        assert!(stats.dropped > 0 && stats.duplicated > 0, "{stats:?}");
    });
}

/// Packets are all or nothing: `recv` waits for the whole packet, `send` for room for it.
#[test]
fn packets_echo_and_size_limits() {
    for_each_seed(0..6, |seed| {
        let mut w = world(seed);
        let (srv, cli) = (w.srv.clone(), w.cli.clone());
        let (srv_id, cli_id) = (srv.domid(), cli.domid());
        let conn = w.store.connect(srv_id);
        let server = w.sim.spawn(srv_id, async move {
            let mut v = Vchan::server(&srv, &conn, cli_id, PORT, server_config((11, 10))).await?;
            assert_eq!(v.read_ring_size(), 2048);
            assert_eq!(v.write_ring_size(), 1024);
            let mut too_big = vec![0u8; 2049];
            assert_eq!(
                v.recv(&mut too_big).await,
                Err(Error::PacketTooLarge {
                    len: 2049,
                    ring_size: 2048
                })
            );
            // Echo 200 packets of varying size; the length travels in a 2-byte header.
            for _ in 0..200 {
                let mut len = [0u8; 2];
                v.recv(&mut len).await?;
                let mut packet = vec![0u8; u16::from_le_bytes(len) as usize];
                v.recv(&mut packet).await?;
                v.send(&len).await?;
                v.send(&packet).await?;
            }
            v.close().await
        });
        let conn = w.store.connect(cli_id);
        let client = w.sim.spawn(cli_id, async move {
            let mut v = Vchan::client(&cli, &conn, srv_id, PORT, client_config()).await?;
            assert_eq!(
                v.send(&[0u8; 2049]).await,
                Err(Error::PacketTooLarge {
                    len: 2049,
                    ring_size: 2048
                })
            );
            let mut rng = SplitMix64::new(seed);
            for i in 0..200u64 {
                let len = rng.below(1022) as usize;
                let packet = pattern(i, len);
                let header = (len as u16).to_le_bytes();
                // Whole-packet semantics: the server sees it complete or not at all.
                v.send(&header).await?;
                v.send(&packet).await?;
                let mut back_len = [0u8; 2];
                v.recv(&mut back_len).await?;
                assert_eq!(back_len, header);
                let mut back = vec![0u8; len];
                v.recv(&mut back).await?;
                assert_eq!(back, packet);
            }
            // The server closes after the last echo: reads end, writes fail.
            let mut b = [0u8; 1];
            assert_eq!(v.read(&mut b).await, Ok(0));
            assert_eq!(v.peer_state(), Ok(PeerState::Closed));
            assert_eq!(v.write(b"x").await, Err(Error::Closed));
            assert_eq!(v.recv(&mut b).await, Err(Error::Closed));
            v.close().await
        });
        w.sim.run_until(&client, STEPS).unwrap().unwrap();
        w.sim.run_until(&server, STEPS).unwrap().unwrap();
    });
}

/// Non-blocking queries: buffer space and data ready as libxenvchan reports them, and
/// `try_send` refusing (not splitting) a packet that does not fit.
#[test]
fn buffer_space_and_data_ready() {
    let mut w = world(3);
    let (srv, cli) = (w.srv.clone(), w.cli.clone());
    let (srv_id, cli_id) = (srv.domid(), cli.domid());
    let phase = Rc::new(Cell::new(0));
    let conn = w.store.connect(srv_id);
    let ph = phase.clone();
    let server = w.sim.spawn(srv_id, async move {
        let mut v = Vchan::server(&srv, &conn, cli_id, PORT, server_config((10, 11))).await?;
        v.wait_connected().await?;
        while ph.get() < 1 {
            xen_platform::sleep(&srv, Duration::from_micros(50)).await;
        }
        assert_eq!(v.data_ready()?, 1024);
        let mut b = vec![0u8; 600];
        assert!(v.try_recv(&mut b)?);
        assert_eq!(v.data_ready()?, 424);
        assert!(
            !v.try_recv(&mut b)?,
            "a partial packet must not be consumed"
        );
        assert_eq!(v.data_ready()?, 424);
        ph.set(2);
        while ph.get() < 3 {
            xen_platform::sleep(&srv, Duration::from_micros(50)).await;
        }
        let mut rest = vec![0u8; 424];
        v.recv(&mut rest).await?;
        v.close().await
    });
    let conn = w.store.connect(cli_id);
    let ph = phase.clone();
    let client = w.sim.spawn(cli_id, async move {
        let mut v = Vchan::client(&cli, &conn, srv_id, PORT, client_config()).await?;
        assert_eq!(v.buffer_space()?, 1024);
        assert!(v.try_send(&[7u8; 1000])?);
        assert_eq!(v.buffer_space()?, 24);
        assert!(
            !v.try_send(&[7u8; 25])?,
            "a packet that does not fit is refused whole"
        );
        assert_eq!(
            v.try_write(&[7u8; 25])?,
            24,
            "a stream write takes what fits"
        );
        ph.set(1);
        while ph.get() < 2 {
            xen_platform::sleep(&cli, Duration::from_micros(50)).await;
        }
        assert_eq!(v.buffer_space()?, 600);
        ph.set(3);
        let mut b = [0u8; 1];
        assert_eq!(v.read(&mut b).await?, 0);
        v.close().await
    });
    w.sim.run_until(&client, STEPS).unwrap().unwrap();
    w.sim.run_until(&server, STEPS).unwrap().unwrap();
}

#[test]
fn xenstore_advertisement_is_readable_by_the_client_only() {
    let mut w = world(1);
    let (srv, srv_id, cli_id) = (w.srv.clone(), w.srv.domid(), w.cli.domid());
    let conn = w.store.connect(srv_id);
    let server = w.sim.spawn(srv_id, async move {
        let v = Vchan::server(&srv, &conn, cli_id, PORT, ServerConfig::default()).await?;
        let dir = v.xenstore_dir().unwrap().to_string();
        std::mem::forget(v);
        Ok::<_, Error>(dir)
    });
    let dir = w.sim.run_until(&server, STEPS).unwrap().unwrap();
    assert_eq!(
        dir,
        format!("/local/domain/{}/data/vchan/{}/{PORT}", srv_id.0, cli_id.0)
    );
    for key in ["ring-ref", "event-channel"] {
        assert_eq!(
            w.store.perms(&format!("{dir}/{key}")),
            Some((srv_id, Some(cli_id)))
        );
    }
}

#[test]
fn client_waits_for_a_late_server_and_times_out_without_one() {
    let mut w = world(2);
    let (srv, cli) = (w.srv.clone(), w.cli.clone());
    let (srv_id, cli_id) = (srv.domid(), cli.domid());
    // No server at all: a typed timeout after the configured (virtual) time.
    let conn = w.store.connect(cli_id);
    let c2 = cli.clone();
    let lonely = w.sim.spawn(cli_id, async move {
        let start = xen_platform::Clock::now(&c2);
        let r = Vchan::client(&c2, &conn, srv_id, "nobody", client_config()).await;
        (r.map(|_| ()), xen_platform::Clock::now(&c2) - start)
    });
    let (r, waited) = w.sim.run_until(&lonely, STEPS).unwrap();
    assert_eq!(r, Err(Error::ConnectTimeout));
    assert!(
        waited >= Duration::from_secs(1) && waited < Duration::from_millis(1200),
        "{waited:?}"
    );
    // A server that starts 300 ms after the client.
    let conn = w.store.connect(srv_id);
    let server = w.sim.spawn(srv_id, async move {
        xen_platform::sleep(&srv, Duration::from_millis(300)).await;
        let mut v = Vchan::server(&srv, &conn, cli_id, PORT, ServerConfig::default()).await?;
        v.wait_connected().await?;
        v.write_all(b"hello").await?;
        v.close().await
    });
    let conn = w.store.connect(cli_id);
    let client = w.sim.spawn(cli_id, async move {
        let mut v = Vchan::client(&cli, &conn, srv_id, PORT, client_config()).await?;
        let mut b = [0u8; 5];
        v.read_exact(&mut b).await?;
        assert_eq!(&b, b"hello");
        v.close().await
    });
    w.sim.run_until(&client, STEPS).unwrap().unwrap();
    w.sim.run_until(&server, STEPS).unwrap().unwrap();
}

/// A peer domain that dies without closing: the survivor reads what was sent, then gets
/// `PeerDied` (from the liveness check), never a hang.
#[test]
fn peer_death_is_detected_both_ways() {
    for_each_seed(0..4, |seed| {
        for server_dies in [false, true] {
            let mut w = world(seed);
            let (srv, cli) = (w.srv.clone(), w.cli.clone());
            let (srv_id, cli_id) = (srv.domid(), cli.domid());
            let sent = Rc::new(Cell::new(false));
            let conn = w.store.connect(srv_id);
            let s_sent = sent.clone();
            let server = w.sim.spawn(srv_id, async move {
                let mut v =
                    Vchan::server(&srv, &conn, cli_id, PORT, server_config((10, 11))).await?;
                v.wait_connected().await?;
                if server_dies {
                    v.write_all(&[1u8; 100]).await?;
                    s_sent.set(true);
                    // A crash runs no destructors: keep the channel alive forever.
                    let _crashed = std::mem::ManuallyDrop::new(v);
                    std::future::pending::<()>().await;
                    unreachable!()
                }
                let mut got = Vec::new();
                let mut b = [0u8; 64];
                loop {
                    match v.read(&mut b).await {
                        Ok(n) => got.extend_from_slice(&b[..n]),
                        Err(e) => return Ok::<_, Error>((got, e)),
                    }
                }
            });
            let conn = w.store.connect(cli_id);
            let c_sent = sent.clone();
            let client = w.sim.spawn(cli_id, async move {
                let mut v = Vchan::client(&cli, &conn, srv_id, PORT, client_config()).await?;
                if !server_dies {
                    v.write_all(&[2u8; 100]).await?;
                    c_sent.set(true);
                    let _crashed = std::mem::ManuallyDrop::new(v);
                    std::future::pending::<()>().await;
                    unreachable!()
                }
                let mut got = Vec::new();
                let mut b = [0u8; 64];
                loop {
                    match v.read(&mut b).await {
                        Ok(n) => got.extend_from_slice(&b[..n]),
                        Err(e) => return Ok::<_, Error>((got, e)),
                    }
                }
            });
            while !sent.get() {
                assert!(w.sim.step());
            }
            let (victim, survivor) = if server_dies {
                (srv_id, client)
            } else {
                (cli_id, server)
            };
            w.sim.destroy_domain(victim);
            w.store.domain_died(victim);
            let (got, e) = w.sim.run_until(&survivor, STEPS).unwrap().unwrap();
            assert_eq!(got.len(), 100);
            assert_eq!(e, Error::PeerDied { domid: victim });
        }
    });
}

/// The server writes a control page by hand (a hostile or broken server); the client must
/// refuse it with a typed error and leave nothing mapped or bound.
#[test]
fn client_rejects_forged_control_pages() {
    #[derive(Clone, Copy, Debug)]
    enum Forgery {
        Orders(u16, u16),
        UnmappableGrants,
        NotLive,
        Overrun,
        BadRingRef,
    }
    let cases = [
        (
            Forgery::Orders(9, 11),
            Error::Peer(PeerError::Orders(OrderError::OutOfRange { order: 9 })),
        ),
        (
            Forgery::Orders(12, 40),
            Error::Peer(PeerError::Orders(OrderError::OutOfRange { order: 40 })),
        ),
        (
            Forgery::Orders(10, 10),
            Error::Peer(PeerError::Orders(OrderError::SameInPageSlot { order: 10 })),
        ),
        (
            Forgery::Orders(20, 10),
            Error::Peer(PeerError::Orders(OrderError::GrantListTooLong {
                grants: 256,
                limit: 1024,
            })),
        ),
        (
            Forgery::UnmappableGrants,
            Error::Platform(xen_platform::Error::Grant {
                op: Op::Map,
                status: GrantStatus::BadGntref,
            }),
        ),
        (
            Forgery::NotLive,
            Error::Peer(PeerError::ServerNotLive { srv_live: 0 }),
        ),
        (
            Forgery::Overrun,
            Error::Peer(PeerError::IndexOutOfRange {
                ring: "right",
                prod: 5000,
                cons: 0,
                size: 2048,
            }),
        ),
        (
            Forgery::BadRingRef,
            Error::BadAdvertisement { key: "ring-ref" },
        ),
    ];
    for (forgery, expected) in cases {
        let mut w = world(4);
        let (srv, cli) = (w.srv.clone(), w.cli.clone());
        let (srv_id, cli_id) = (srv.domid(), cli.domid());
        let page = srv.share_pages(1, cli_id, Access::ReadWrite).unwrap();
        let m = page.mem();
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        let (lo, ro) = match forgery {
            Forgery::Orders(l, r) => (l, r),
            Forgery::UnmappableGrants => (12, 13),
            _ => (10, 11),
        };
        m.store_u16(layout::LEFT_ORDER, lo, relaxed).unwrap();
        m.store_u16(layout::RIGHT_ORDER, ro, relaxed).unwrap();
        for i in 0..3 {
            m.store_u32(layout::GRANTS + 4 * i, 4000 + i as u32, relaxed)
                .unwrap();
        }
        let live = if matches!(forgery, Forgery::NotLive) {
            0
        } else {
            1
        };
        m.store_u8(layout::SRV_LIVE, live, relaxed).unwrap();
        if matches!(forgery, Forgery::Overrun) {
            m.store_u32(layout::RIGHT + layout::PROD, 5000, relaxed)
                .unwrap();
        }
        let port = xen_platform::EventChannels::alloc_unbound(&srv, cli_id).unwrap();
        let dir = vchan_path(srv_id, cli_id, PORT);
        let ring_ref = match forgery {
            Forgery::BadRingRef => "12abc".to_string(),
            _ => page.refs()[0].0.to_string(),
        };
        w.store.force(&format!("{dir}/ring-ref"), &ring_ref, cli_id);
        w.store
            .force(&format!("{dir}/event-channel"), &port.0.to_string(), cli_id);
        let conn = w.store.connect(cli_id);
        let c2 = cli.clone();
        let client = w.sim.spawn(cli_id, async move {
            Vchan::client(&c2, &conn, srv_id, PORT, client_config())
                .await
                .map(|_| ())
        });
        let r = w.sim.run_until(&client, STEPS).unwrap();
        assert_eq!(r, Err(expected.clone()), "{forgery:?}");
        assert_eq!(
            srv.grant_entry(page.refs()[0]).map(|e| e.2),
            Some(0),
            "{forgery:?}: left mapped"
        );
        assert_eq!(
            srv.port_state(port),
            xen_sim::PortState::Unbound { remote: cli_id },
            "{forgery:?}: client's port left bound"
        );
    }
}

/// The fault injector plays a hostile peer scribbling on the shared control page during a
/// transfer: every run ends (no hang, no panic, no access outside the rings), and
/// impossible indices are reported as `PeerError`s.
#[test]
fn hostile_writes_to_the_control_page_end_in_typed_errors() {
    let mut peer_errors = 0;
    let mut hostile_writes = 0;
    for_each_seed(0..24, |seed| {
        let mut w = world(seed);
        let (srv, cli) = (w.srv.clone(), w.cli.clone());
        let (srv_id, cli_id) = (srv.domid(), cli.domid());
        let conn = w.store.connect(srv_id);
        let server = w.sim.spawn(srv_id, async move {
            let mut v = Vchan::server(&srv, &conn, cli_id, PORT, server_config((12, 11))).await?;
            let r = timeout(&srv, Duration::from_secs(2), async {
                v.wait_connected().await?;
                let mut b = vec![0u8; 3000];
                loop {
                    let n = v.read(&mut b).await?;
                    if n == 0 {
                        return Ok(());
                    }
                    v.write_all(&b[..n]).await?;
                }
            })
            .await;
            r.unwrap_or(Err(Error::ConnectTimeout))
        });
        // Arm the injector once the control page is advertised.
        let dir = vchan_path(srv_id, cli_id, PORT);
        while !w.store.exists(&format!("{dir}/ring-ref")) {
            assert!(w.sim.step());
        }
        let conn0 = w.store.connect(DomId(0));
        let gref = {
            let h = w.sim.spawn(DomId(0), async move {
                vchan::VchanStore::read(&conn0, &format!("{dir}/ring-ref")).await
            });
            let raw = w.sim.run_until(&h, STEPS).unwrap().unwrap().unwrap();
            xen_platform::GrantRef(String::from_utf8(raw).unwrap().parse().unwrap())
        };
        w.sim.faults().hostile.push(HostileTarget {
            granter: srv_id,
            gref,
            offsets: vec![0, 4, 8, 12, 20],
            per_step: 0.005,
        });
        let conn = w.store.connect(cli_id);
        let client = w.sim.spawn(cli_id, async move {
            let r = timeout(&cli, Duration::from_secs(2), async {
                let mut v = Vchan::client(&cli, &conn, srv_id, PORT, client_config()).await?;
                let data = pattern(seed, 60_000);
                let mut back = vec![0u8; 1000];
                for chunk in data.chunks(1000) {
                    v.write_all(chunk).await?;
                    v.read_exact(&mut back[..chunk.len()]).await?;
                }
                v.close().await
            })
            .await;
            r.unwrap_or(Err(Error::ConnectTimeout))
        });
        let c = w.sim.run_until(&client, STEPS).unwrap();
        let s = w.sim.run_until(&server, STEPS).unwrap();
        for r in [c, s] {
            if let Err(Error::Peer(_)) = r {
                peer_errors += 1;
            }
        }
        hostile_writes += w.sim.fault_stats().hostile_writes;
    });
    assert!(hostile_writes > 0);
    assert!(peer_errors > 0, "no run detected the hostile indices");
}
