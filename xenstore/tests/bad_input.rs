//! A scripted fake xenstored that misbehaves: the client must answer with typed errors,
//! never panic or hang, and keep the connection usable wherever the framing allows.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;
use xenstore::transport::{TokioTimer, UnixSocketTransport};
use xenstore::wire::{HEADER_LEN, Header, MessageType, Request, WireError};
use xenstore::{Client, ClientConfig, Error};

type TestClient = Client<UnixSocketTransport, TokioTimer>;

fn pair(timeout: Duration) -> (TestClient, UnixStream) {
    let (ours, theirs) = UnixStream::pair().unwrap();
    let config = ClientConfig {
        request_timeout: timeout,
        ..Default::default()
    };
    (
        Client::with_config(UnixSocketTransport::from_stream(ours), TokioTimer, config),
        theirs,
    )
}

async fn next_request(server: &mut UnixStream) -> (Header, Vec<u8>) {
    let mut h = [0u8; HEADER_LEN];
    server.read_exact(&mut h).await.unwrap();
    let header = Header::parse(&h).unwrap();
    let mut payload = vec![0; header.len as usize];
    server.read_exact(&mut payload).await.unwrap();
    (header, payload)
}

async fn send(server: &mut UnixStream, ty: u32, req_id: u32, payload: &[u8]) {
    let mut out = Header {
        msg_type: ty,
        req_id,
        tx_id: 0,
        len: payload.len() as u32,
    }
    .to_bytes()
    .to_vec();
    out.extend_from_slice(payload);
    server.write_all(&out).await.unwrap();
}

const READ: u32 = MessageType::Read as u32;

#[tokio::test]
async fn strays_and_malformed_replies_do_not_poison_the_connection() {
    let (client, mut server) = pair(Duration::from_secs(5));
    let script = async {
        // 1: a reply for an unknown req_id, then the real one.
        let (h, _) = next_request(&mut server).await;
        send(&mut server, READ, h.req_id + 1000, b"stray").await;
        send(
            &mut server,
            MessageType::WatchEvent as u32,
            0,
            b"/x\0nobody\0",
        )
        .await;
        send(&mut server, READ, h.req_id, b"v1").await;
        // 2: a GET_PERMS reply that is not a permission list.
        let (h, _) = next_request(&mut server).await;
        send(&mut server, MessageType::GetPerms as u32, h.req_id, b"zz\0").await;
        // 3: an unknown message type.
        let (h, _) = next_request(&mut server).await;
        send(&mut server, 77, h.req_id, b"?").await;
        // 4: a reply of another known type.
        let (h, _) = next_request(&mut server).await;
        send(&mut server, MessageType::Write as u32, h.req_id, b"OK\0").await;
        // 5: an oversized reply (framing still intact).
        let (h, _) = next_request(&mut server).await;
        send(&mut server, READ, h.req_id, &[b'x'; 5000]).await;
        // 6: an error string nobody knows, then a malformed error.
        let (h, _) = next_request(&mut server).await;
        send(
            &mut server,
            MessageType::Error as u32,
            h.req_id,
            b"EWEIRD\0",
        )
        .await;
        let (h, _) = next_request(&mut server).await;
        send(&mut server, MessageType::Error as u32, h.req_id, b"").await;
        // 7: an ACK that is not OK; a TRANSACTION_START id that is not a number.
        let (h, _) = next_request(&mut server).await;
        send(&mut server, MessageType::Write as u32, h.req_id, b"KO\0").await;
        let (h, _) = next_request(&mut server).await;
        send(
            &mut server,
            MessageType::TransactionStart as u32,
            h.req_id,
            b"x1\0",
        )
        .await;
        // 8: finally a good reply.
        let (h, p) = next_request(&mut server).await;
        assert_eq!(p, b"/fine\0");
        send(&mut server, READ, h.req_id, b"fine").await;
    };
    let checks = async {
        assert_eq!(client.read("/a").await.unwrap(), b"v1");
        assert!(matches!(
            client.get_permissions("/a").await,
            Err(Error::MalformedReply(_))
        ));
        assert_eq!(
            client.read("/a").await,
            Err(Error::UnexpectedReply {
                expected: MessageType::Read,
                got: 77
            })
        );
        assert_eq!(
            client.read("/a").await,
            Err(Error::UnexpectedReply {
                expected: MessageType::Read,
                got: MessageType::Write as u32
            })
        );
        assert_eq!(
            client.read("/a").await,
            Err(Error::MalformedReply(WireError::PayloadTooLong(5000)))
        );
        assert_eq!(
            client.read("/a").await,
            Err(Error::UnknownXenstoreError("EWEIRD".into()))
        );
        assert!(matches!(
            client.read("/a").await,
            Err(Error::MalformedReply(_))
        ));
        assert!(matches!(
            client.write("/a", "v").await,
            Err(Error::MalformedReply(_))
        ));
        assert!(matches!(
            client.transaction_start().await,
            Err(Error::MalformedReply(_))
        ));
        assert_eq!(client.read("/fine").await.unwrap(), b"fine");
    };
    tokio::join!(script, checks);
    let anomalies = client.anomalies();
    assert_eq!(anomalies.unknown_req_id, 1);
    assert_eq!(anomalies.unknown_watch_token, 1);
    assert!(client.closed().is_none());
}

#[tokio::test]
async fn silent_daemon_times_out_and_late_replies_are_dropped() {
    let (client, mut server) = pair(Duration::from_millis(200));
    let started = std::time::Instant::now();
    assert_eq!(client.read("/slow").await, Err(Error::Timeout));
    assert!(started.elapsed() < Duration::from_secs(3));
    let (late, _) = next_request(&mut server).await;
    let script = async {
        send(&mut server, READ, late.req_id, b"too late").await;
        let (h, _) = next_request(&mut server).await;
        send(&mut server, READ, h.req_id, b"on time").await;
    };
    let (_, value) = tokio::join!(script, client.read("/next"));
    assert_eq!(value.unwrap(), b"on time");
    assert_eq!(client.anomalies().unknown_req_id, 0);
}

#[tokio::test]
async fn broken_framing_and_closed_socket_are_fatal_errors() {
    let (client, mut server) = pair(Duration::from_secs(5));
    let script = async {
        next_request(&mut server).await;
        // A header that is cut off and then the socket closes.
        server.write_all(&[1, 2, 3]).await.unwrap();
        drop(server);
    };
    let (_, result) = tokio::join!(script, client.read("/a"));
    assert_eq!(result, Err(Error::Disconnected));
    assert_eq!(client.read("/b").await, Err(Error::Disconnected));
    let mut watch_err = None;
    if let Err(e) = client.watch("/w").await {
        watch_err = Some(e);
    }
    assert_eq!(watch_err, Some(Error::Disconnected));
}

#[tokio::test]
async fn directory_part_restarts_on_generation_change_and_rejects_no_progress() {
    let (client, mut server) = pair(Duration::from_secs(5));
    const DIR: u32 = MessageType::Directory as u32;
    const PART: u32 = MessageType::DirectoryPart as u32;
    const ERR: u32 = MessageType::Error as u32;
    let script = async {
        // First walk: generation changes between slices -> restart from offset 0.
        let (h, _) = next_request(&mut server).await;
        send(&mut server, ERR, h.req_id, b"E2BIG\0").await;
        let (h, p) = next_request(&mut server).await;
        assert_eq!(p, b"/d\x000\0");
        send(&mut server, PART, h.req_id, b"1\0a\0b\0").await;
        let (h, p) = next_request(&mut server).await;
        assert_eq!(p, b"/d\x004\0");
        send(&mut server, PART, h.req_id, b"2\0c\0\0").await;
        let (h, p) = next_request(&mut server).await;
        assert_eq!(p, b"/d\x000\0");
        send(&mut server, PART, h.req_id, b"2\0a\0").await;
        let (h, p) = next_request(&mut server).await;
        assert_eq!(p, b"/d\x002\0");
        send(&mut server, PART, h.req_id, b"2\0c\0\0").await;
        // Second walk: a slice that neither progresses nor completes.
        let (h, _) = next_request(&mut server).await;
        send(&mut server, DIR, h.req_id, &[b'x'; 4097]).await;
        let (h, _) = next_request(&mut server).await;
        send(&mut server, PART, h.req_id, b"1\0").await;
    };
    let checks = async {
        assert_eq!(client.directory("/d").await.unwrap(), ["a", "c"]);
        assert!(matches!(
            client.directory("/d").await,
            Err(Error::MalformedReply(_))
        ));
    };
    tokio::join!(script, checks);
}

#[tokio::test]
async fn directory_that_never_settles_is_reported() {
    let config = ClientConfig {
        directory_retries: 2,
        ..Default::default()
    };
    let (ours, mut server) = UnixStream::pair().unwrap();
    let client = Client::with_config(UnixSocketTransport::from_stream(ours), TokioTimer, config);
    let script = async {
        let (h, _) = next_request(&mut server).await;
        send(&mut server, MessageType::Error as u32, h.req_id, b"E2BIG\0").await;
        for generation in 0..3u32 {
            let (h, _) = next_request(&mut server).await;
            send(
                &mut server,
                MessageType::DirectoryPart as u32,
                h.req_id,
                format!("{}\0a\0", 2 * generation).as_bytes(),
            )
            .await;
            let (h, _) = next_request(&mut server).await;
            send(
                &mut server,
                MessageType::DirectoryPart as u32,
                h.req_id,
                format!("{}\0b\0\0", 2 * generation + 1).as_bytes(),
            )
            .await;
        }
    };
    let (_, result) = tokio::join!(script, client.directory("/d"));
    assert_eq!(result, Err(Error::DirectoryUnstable));
}

#[tokio::test]
async fn requests_in_flight_are_matched_out_of_order() {
    let (client, mut server) = pair(Duration::from_secs(5));
    let script = async {
        let mut reqs = Vec::new();
        for _ in 0..3 {
            reqs.push(next_request(&mut server).await);
        }
        for (h, p) in reqs.iter().rev() {
            let path = std::str::from_utf8(&p[..p.len() - 1]).unwrap();
            send(&mut server, READ, h.req_id, path.as_bytes()).await;
        }
    };
    let (_, a, b, c) = tokio::join!(
        script,
        client.read("/a"),
        client.read("/b"),
        client.read("/c")
    );
    assert_eq!(
        (a.unwrap(), b.unwrap(), c.unwrap()),
        (b"/a".to_vec(), b"/b".to_vec(), b"/c".to_vec())
    );
    // A raw request for something never sent is matched too.
    let raw = Request::Read { path: "/z" };
    let script = async {
        let (h, _) = next_request(&mut server).await;
        send(&mut server, READ, h.req_id, b"z").await;
    };
    let (_, r) = tokio::join!(script, client.request(&raw, 0));
    assert_eq!(r.unwrap().payload, b"z");
}

/// Requests and watches of different tasks share one connection: a task that got its watch
/// event and then waits on something else must not strand another task's request.
#[tokio::test(flavor = "current_thread")]
async fn transport_is_handed_over_between_tasks() {
    let local = tokio::task::LocalSet::new();
    local
        .run_until(async {
            let (client, mut server) = pair(Duration::from_secs(3));
            let client = std::rc::Rc::new(client);
            let (got_event_tx, got_event_rx) = tokio::sync::oneshot::channel::<()>();
            let release = std::rc::Rc::new(tokio::sync::Notify::new());

            // The request task sends first and waits.
            let c = client.clone();
            let request = tokio::task::spawn_local(async move { c.read("/r").await });
            let (read_header, _) = next_request(&mut server).await;

            // The watch task registers (acked), then polls last: it holds the transport's waker.
            let c = client.clone();
            let r = release.clone();
            let watcher = tokio::task::spawn_local(async move {
                let mut w = c.watch("/w").await.unwrap();
                let ev = w.next().await.unwrap();
                got_event_tx.send(()).unwrap();
                // Busy with something else, not polling the watch.
                r.notified().await;
                ev.path
            });
            let (watch_header, payload) = next_request(&mut server).await;
            assert!(payload.starts_with(b"/w\0"));
            let token = payload[3..payload.len() - 1].to_vec();
            send(
                &mut server,
                MessageType::Watch as u32,
                watch_header.req_id,
                b"OK\0",
            )
            .await;
            tokio::time::sleep(Duration::from_millis(50)).await;

            let mut event = b"/w\0".to_vec();
            event.extend_from_slice(&token);
            event.push(0);
            send(&mut server, MessageType::WatchEvent as u32, 0, &event).await;
            got_event_rx.await.unwrap();
            send(&mut server, READ, read_header.req_id, b"value").await;

            assert_eq!(request.await.unwrap().unwrap(), b"value");
            release.notify_one();
            assert_eq!(watcher.await.unwrap(), "/w");
        })
        .await;
}

/// Client futures can be spawned on tokio's multi-threaded runtime.
#[tokio::test]
async fn client_and_its_futures_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    fn assert_sync<T: Sync>(_: &T) {}
    let (client, _server) = pair(Duration::from_secs(1));
    assert_send(&client);
    assert_sync(&client);
    assert_send(&client.read("/a"));
    assert_send(&client.write("/a", "v"));
    assert_send(&client.directory("/a"));
    assert_send(&client.watch("/a"));
    assert_send(&client.wait_until("/a", |v| v.is_some()));
    let client = std::sync::Arc::new(client);
    let c = client.clone();
    let task = tokio::spawn(async move { c.read("/spawned").await });
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
}

/// A transaction dropped without commit or abort is aborted with the next I/O.
#[tokio::test]
async fn dropped_transaction_sends_an_abort() {
    let (client, mut server) = pair(Duration::from_secs(5));
    let script = async {
        let (h, _) = next_request(&mut server).await;
        assert_eq!(h.msg_type, MessageType::TransactionStart as u32);
        send(
            &mut server,
            MessageType::TransactionStart as u32,
            h.req_id,
            b"42\0",
        )
        .await;
        // The abort comes first (queued by the drop), then the next request.
        let (h, payload) = next_request(&mut server).await;
        assert_eq!(
            (h.msg_type, h.tx_id, payload.as_slice()),
            (MessageType::TransactionEnd as u32, 42, &b"F\0"[..])
        );
        send(
            &mut server,
            MessageType::TransactionEnd as u32,
            h.req_id,
            b"OK\0",
        )
        .await;
        let (h, _) = next_request(&mut server).await;
        assert_eq!((h.msg_type, h.tx_id), (READ, 0));
        send(&mut server, READ, h.req_id, b"v").await;
        // A committed transaction sends no extra abort.
        let (h, _) = next_request(&mut server).await;
        send(
            &mut server,
            MessageType::TransactionStart as u32,
            h.req_id,
            b"43\0",
        )
        .await;
        let (h, payload) = next_request(&mut server).await;
        assert_eq!((h.tx_id, payload.as_slice()), (43, &b"T\0"[..]));
        send(
            &mut server,
            MessageType::TransactionEnd as u32,
            h.req_id,
            b"OK\0",
        )
        .await;
        let (h, _) = next_request(&mut server).await;
        assert_eq!((h.msg_type, h.tx_id), (READ, 0));
        send(&mut server, READ, h.req_id, b"w").await;
    };
    let checks = async {
        let tx = client.transaction_start().await.unwrap();
        assert_eq!(tx.id(), 42);
        drop(tx);
        assert_eq!(client.read("/a").await.unwrap(), b"v");
        let tx = client.transaction_start().await.unwrap();
        tx.commit().await.unwrap();
        drop(tx);
        assert_eq!(client.read("/b").await.unwrap(), b"w");
    };
    tokio::join!(script, checks);
    assert_eq!(client.anomalies(), Default::default());
}
