//! `XenbusDeviceTransport` drives a character-device-like file descriptor through tokio's
//! reactor (no `/dev/xen/xenbus` without Xen). A FIFO opened read-write loops every request
//! back as its own "reply": a READ of `/a` comes back as a READ reply with the same
//! `req_id` whose value is the request payload `/a\0`.

use std::time::Duration;

use xenstore::transport::{TokioTimer, XenbusDeviceTransport};
use xenstore::{Client, ClientConfig};

#[tokio::test]
async fn device_transport_round_trips_through_a_fifo() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("xenbus-fifo-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("xenbus");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(status.success());
    let transport = XenbusDeviceTransport::open(&fifo).unwrap();
    let config = ClientConfig {
        request_timeout: Duration::from_secs(5),
        ..Default::default()
    };
    let client = Client::with_config(transport, TokioTimer, config);
    assert_eq!(client.read("/a").await.unwrap(), b"/a\0");
    // A request near the path limit, several times the client's usual read chunk.
    let path = format!("/{}", "p".repeat(2000));
    let value = client.read(&path).await.unwrap();
    assert_eq!(value.len(), path.len() + 1);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn missing_device_is_an_error() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let err = XenbusDeviceTransport::open("/nonexistent/xen/xenbus").unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    });
}
