//! The xenbus frontend helper against an in-process fake backend (its own client
//! connection playing the backend driver), over a real xenstored.

mod support;

use std::time::Duration;

use support::{Daemon, Kind};
use xenstore::transport::{TokioTimer, UnixSocketTransport};
use xenstore::xenbus::{Frontend, XenbusError, XenbusState, list_devices};
use xenstore::{Client, Error};

type TestClient = Client<UnixSocketTransport, TokioTimer>;

const FRONT: &str = "/local/domain/5/device/vif/0";
const BACK: &str = "/local/domain/0/backend/vif/5/0";

/// What the toolstack writes before the frontend starts.
async fn toolstack(c: &TestClient) {
    c.write(&format!("{FRONT}/backend"), BACK).await.unwrap();
    c.write(&format!("{FRONT}/backend-id"), "0").await.unwrap();
    c.write(&format!("{FRONT}/state"), "1").await.unwrap();
    c.write(&format!("{BACK}/frontend"), FRONT).await.unwrap();
    c.write(&format!("{BACK}/state"), "1").await.unwrap();
}

async fn set_backend(c: &TestClient, state: XenbusState) {
    c.write(&format!("{BACK}/state"), state.as_value())
        .await
        .unwrap();
}

async fn wait_frontend(c: &TestClient, state: XenbusState) {
    let want = state.as_value().into_bytes();
    c.with_timeout(
        Duration::from_secs(10),
        c.wait_until(&format!("{FRONT}/state"), |v| v == Some(&want[..])),
    )
    .await
    .expect("frontend state not reached")
    .unwrap();
}

macro_rules! per_daemon {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "current_thread")]
            async fn cxenstored() {
                super::$name(super::Kind::C).await
            }
            #[tokio::test(flavor = "current_thread")]
            async fn oxenstored() {
                super::$name(super::Kind::O).await
            }
        }
    };
}

per_daemon!(full_handshake_and_close);
async fn full_handshake_and_close(kind: Kind) {
    let d = Daemon::start(kind);
    let front_client = d.client().await;
    let back_client = d.client().await;
    toolstack(&back_client).await;

    let backend = async {
        // Hotplug done: wait for the frontend's details.
        set_backend(&back_client, XenbusState::InitWait).await;
        wait_frontend(&back_client, XenbusState::Initialised).await;
        // The keys were published together with the state.
        assert_eq!(
            back_client
                .read(&format!("{FRONT}/tx-ring-ref"))
                .await
                .unwrap(),
            b"8"
        );
        assert_eq!(
            back_client
                .read(&format!("{FRONT}/event-channel"))
                .await
                .unwrap(),
            b"9"
        );
        back_client
            .write(&format!("{BACK}/feature-sg"), "1")
            .await
            .unwrap();
        set_backend(&back_client, XenbusState::Connected).await;
        wait_frontend(&back_client, XenbusState::Connected).await;
        wait_frontend(&back_client, XenbusState::Closing).await;
        set_backend(&back_client, XenbusState::Closing).await;
        wait_frontend(&back_client, XenbusState::Closed).await;
        set_backend(&back_client, XenbusState::Closed).await;
    };
    let frontend = async {
        let devices = list_devices(&front_client, "/local/domain/5", "vif")
            .await
            .unwrap();
        assert_eq!(devices, [FRONT]);
        assert!(
            list_devices(&front_client, "/local/domain/5", "vbd")
                .await
                .unwrap()
                .is_empty()
        );
        let f = Frontend::new(&front_client, FRONT).await.unwrap();
        assert_eq!(f.backend(), BACK);
        assert_eq!(f.backend_id(), 0);
        f.connect(
            &[("tx-ring-ref", b"8"), ("event-channel", b"9")],
            XenbusState::Initialised,
        )
        .await
        .unwrap();
        assert_eq!(f.state().await.unwrap(), XenbusState::Connected);
        assert_eq!(f.backend_state().await.unwrap(), XenbusState::Connected);
        assert_eq!(
            f.read_backend("feature-sg").await.unwrap(),
            Some(b"1".to_vec())
        );
        f.close().await.unwrap();
        assert_eq!(f.state().await.unwrap(), XenbusState::Closed);
    };
    front_client
        .with_timeout(Duration::from_secs(20), async {
            tokio::join!(backend, frontend)
        })
        .await
        .expect("handshake hung");
}

per_daemon!(backend_that_goes_away_is_reported);
async fn backend_that_goes_away_is_reported(kind: Kind) {
    let d = Daemon::start(kind);
    let front_client = d.client().await;
    let back_client = d.client().await;
    toolstack(&back_client).await;
    let f = Frontend::new(&front_client, FRONT).await.unwrap();

    // The backend vanishes while the frontend waits for it to connect.
    let vanish = async {
        set_backend(&back_client, XenbusState::InitWait).await;
        wait_frontend(&back_client, XenbusState::Initialised).await;
        back_client.rm(BACK).await.unwrap();
    };
    let (_, result) = tokio::join!(
        vanish,
        f.connect(&[("ring-ref", b"1")], XenbusState::Initialised)
    );
    assert_eq!(result, Err(XenbusError::BackendGone));

    // A backend that closes instead of connecting.
    toolstack(&back_client).await;
    let closing = async {
        set_backend(&back_client, XenbusState::InitWait).await;
        wait_frontend(&back_client, XenbusState::Initialised).await;
        set_backend(&back_client, XenbusState::Closed).await;
    };
    let (_, result) = tokio::join!(
        closing,
        f.connect(&[("ring-ref", b"1")], XenbusState::Initialised)
    );
    assert_eq!(
        result,
        Err(XenbusError::BackendClosing(XenbusState::Closed))
    );

    // A monitor reports later changes and the disappearance.
    set_backend(&back_client, XenbusState::Connected).await;
    let mut monitor = f.watch_backend().await.unwrap();
    let changes = async {
        set_backend(&back_client, XenbusState::Closing).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        back_client.rm(BACK).await.unwrap();
    };
    let watcher = async {
        let next = monitor.next_state(XenbusState::Connected).await;
        assert_eq!(next, Ok(XenbusState::Closing));
        assert_eq!(
            monitor.next_state(XenbusState::Closing).await,
            Err(XenbusError::BackendGone)
        );
    };
    front_client
        .with_timeout(Duration::from_secs(10), async {
            tokio::join!(changes, watcher)
        })
        .await
        .unwrap();
}

per_daemon!(missing_or_bad_toolstack_keys);
async fn missing_or_bad_toolstack_keys(kind: Kind) {
    let d = Daemon::start(kind);
    let c = d.client().await;
    assert_eq!(
        Frontend::new(&c, FRONT).await.err(),
        Some(XenbusError::MissingKey(format!("{FRONT}/backend")))
    );
    c.write(&format!("{FRONT}/backend"), BACK).await.unwrap();
    c.write(&format!("{FRONT}/backend-id"), "zero")
        .await
        .unwrap();
    assert!(matches!(
        Frontend::new(&c, FRONT).await,
        Err(XenbusError::InvalidValue { .. })
    ));
    c.write(&format!("{FRONT}/backend-id"), "0").await.unwrap();
    let f = Frontend::new(&c, FRONT).await.unwrap();
    assert_eq!(f.backend_state().await, Err(XenbusError::BackendGone));
    c.write(&format!("{BACK}/state"), "42").await.unwrap();
    assert!(matches!(
        f.backend_state().await,
        Err(XenbusError::InvalidValue { .. })
    ));
    assert_eq!(
        XenbusError::from(Error::Timeout),
        XenbusError::Store(Error::Timeout)
    );
}

#[test]
fn state_values() {
    for s in XenbusState::ALL {
        assert_eq!(XenbusState::parse(s.as_value().as_bytes()), Some(s));
    }
    assert_eq!(XenbusState::parse(b"4\n"), Some(XenbusState::Connected));
    assert_eq!(XenbusState::parse(b"9"), None);
    assert_eq!(XenbusState::parse(b""), None);
}

per_daemon!(netfront_style_announces_connected_at_once);
async fn netfront_style_announces_connected_at_once(kind: Kind) {
    let d = Daemon::start(kind);
    let front_client = d.client().await;
    let back_client = d.client().await;
    toolstack(&back_client).await;
    let backend = async {
        set_backend(&back_client, XenbusState::InitWait).await;
        // The frontend goes straight to Connected with its keys.
        wait_frontend(&back_client, XenbusState::Connected).await;
        assert_eq!(
            back_client
                .read(&format!("{FRONT}/rx-ring-ref"))
                .await
                .unwrap(),
            b"10"
        );
        set_backend(&back_client, XenbusState::Connected).await;
    };
    let frontend = async {
        let f = Frontend::new(&front_client, FRONT).await.unwrap();
        f.connect(&[("rx-ring-ref", b"10")], XenbusState::Connected)
            .await
            .unwrap();
        assert_eq!(f.state().await.unwrap(), XenbusState::Connected);
    };
    front_client
        .with_timeout(Duration::from_secs(20), async {
            tokio::join!(backend, frontend)
        })
        .await
        .expect("handshake hung");
}
