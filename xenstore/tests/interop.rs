//! Interop against Debian's cxenstored and oxenstored (Xen 4.17), checked with
//! xenstore-utils. Each test runs once per daemon; see `support/mod.rs` for how they start.

mod support;

use std::collections::BTreeSet;
use std::time::Duration;

use support::{Daemon, Kind};
use xenstore::wire::{Request, WireError};
use xenstore::{Access, ClientConfig, Error, ErrorCode, Permission};

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

per_daemon!(client_writes_tools_read);
async fn client_writes_tools_read(kind: Kind) {
    let d = Daemon::start(kind);
    let c = d.client().await;
    c.write("/test/hello", "hello world").await.unwrap();
    c.write("/test/bin", b"a\tb\\c\x01").await.unwrap();
    c.mkdir("/test/empty").await.unwrap();
    c.set_permissions(
        "/test/hello",
        &[
            Permission::new(0, Access::Read),
            Permission::new(5, Access::Both),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        d.tool_ok("xenstore-read", &["/test/hello"]),
        "hello world\n"
    );
    // xenstore-read escapes non-printable bytes and backslashes.
    assert_eq!(
        d.tool_ok("xenstore-read", &["/test/bin"]),
        "a\\tb\\\\c\\001\n"
    );
    assert_eq!(d.tool_ok("xenstore-read", &["/test/empty"]), "\n");
    let ls = d.tool_ok("xenstore-ls", &["-f", "-p", "/test"]);
    assert!(
        ls.contains("/test/hello = \"hello world\"   (r0,b5)"),
        "{ls}"
    );
    assert!(ls.contains("/test/empty = \"\""), "{ls}");
    let list: BTreeSet<String> = d
        .tool_ok("xenstore-list", &["/test"])
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(list, ["bin", "empty", "hello"].map(String::from).into());
}

per_daemon!(tools_write_client_reads);
async fn tools_write_client_reads(kind: Kind) {
    let d = Daemon::start(kind);
    d.tool_ok("xenstore-write", &["/t/x", "v1", "/t/y", "with space"]);
    // cxenstored refuses an owner domain that does not exist (ENOENT).
    d.tool_ok("xenstore-chmod", &["/t/x", "w0", "r7"]);
    let c = d.client().await;
    assert_eq!(c.read("/t/x").await.unwrap(), b"v1");
    assert_eq!(c.read_string("/t/y").await.unwrap(), "with space");
    let mut dir = c.directory("/t").await.unwrap();
    dir.sort();
    assert_eq!(dir, ["x", "y"]);
    assert_eq!(
        c.get_permissions("/t/x").await.unwrap(),
        [
            Permission::new(0, Access::Write),
            Permission::new(7, Access::Read)
        ]
    );
    d.tool_ok("xenstore-rm", &["/t/y"]);
    assert_eq!(
        c.read("/t/y").await,
        Err(Error::Xenstore(ErrorCode::ENOENT))
    );
    assert_eq!(c.read_optional("/t/y").await, Ok(None));
}

per_daemon!(errors_and_removal);
async fn errors_and_removal(kind: Kind) {
    let d = Daemon::start(kind);
    let c = d.client().await;
    assert_eq!(
        c.read("/nope").await,
        Err(Error::Xenstore(ErrorCode::ENOENT))
    );
    assert_eq!(
        c.directory("/nope/deeper").await,
        Err(Error::Xenstore(ErrorCode::ENOENT))
    );
    c.write("/r/a/b/c", "1").await.unwrap();
    c.rm("/r/a").await.unwrap();
    assert!(!d.tool("xenstore-exists", &["/r/a/b"]).status.success());
    assert!(d.tool("xenstore-exists", &["/r"]).status.success());
    // Removing something absent under an existing parent is fine.
    c.rm("/r/absent").await.unwrap();
    // Rejected locally, never sent: the connection stays usable.
    assert!(matches!(
        c.read("/bad path").await,
        Err(Error::InvalidRequest(_))
    ));
    assert!(matches!(
        c.write("/x", vec![0u8; 5000]).await,
        Err(Error::InvalidRequest(_))
    ));
    assert_eq!(c.read("/r").await.unwrap(), b"");
    // The 2048-byte limit outside /local/domain/N/ holds for dom0 too: the longest path
    // passes the local check and the daemon; one byte more is refused locally.
    let longest = format!("/long/{}", "x".repeat(2042));
    c.write(&longest, "v").await.unwrap();
    assert_eq!(d.tool_ok("xenstore-read", &[&longest]), "v\n");
    let too_long = format!("/long/{}", "x".repeat(2043));
    assert!(matches!(
        c.write(&too_long, "v").await,
        Err(Error::InvalidRequest(_))
    ));
    // TRANSACTION_END for a transaction that does not exist.
    let reply = c
        .request(&Request::TransactionEnd { commit: true }, 4242)
        .await;
    assert!(matches!(reply, Err(Error::Xenstore(_))), "{reply:?}");
    assert_eq!(c.anomalies(), Default::default());
}

per_daemon!(domain_path_relative_paths_and_special_watches);
async fn domain_path_relative_paths_and_special_watches(kind: Kind) {
    let d = Daemon::start(kind);
    let c = d.client().await;
    assert_eq!(c.get_domain_path(0).await.unwrap(), "/local/domain/0");
    assert_eq!(c.get_domain_path(7).await.unwrap(), "/local/domain/7");
    assert!(c.is_domain_introduced(0).await.unwrap());
    // Relative paths are relative to the connection's domain home (dom0's here).
    c.write("data/rel", "r").await.unwrap();
    assert_eq!(
        d.tool_ok("xenstore-read", &["/local/domain/0/data/rel"]),
        "r\n"
    );
    let mut w = c.watch("@releaseDomain").await.unwrap();
    let first = c
        .with_timeout(Duration::from_secs(5), w.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.path, "@releaseDomain");
}

per_daemon!(large_directory_uses_directory_part);
async fn large_directory_uses_directory_part(kind: Kind) {
    let d = Daemon::start(kind);
    let c = d.client().await;
    let expected: BTreeSet<String> = (0..300)
        .map(|i| format!("a-fairly-long-child-name-{i:04}"))
        .collect();
    c.transaction(async |tx| {
        for name in &expected {
            tx.write(&format!("/big/{name}"), "x").await?;
        }
        Ok(())
    })
    .await
    .unwrap();
    // Over 4096 bytes of names: plain DIRECTORY is refused by cxenstored; oxenstored sends
    // an oversized reply, which fails only that request ...
    let plain = c.request(&Request::Directory { path: "/big" }, 0).await;
    match kind {
        Kind::C => assert_eq!(plain, Err(Error::Xenstore(ErrorCode::E2BIG))),
        Kind::O => assert!(
            matches!(plain, Err(Error::MalformedReply(WireError::PayloadTooLong(n))) if n > 4096),
            "{plain:?}"
        ),
    }
    match kind {
        Kind::C => {
            // ... and the client transparently switches to DIRECTORY_PART.
            let got: BTreeSet<String> = c.directory("/big").await.unwrap().into_iter().collect();
            assert_eq!(got, expected);
            let tool: BTreeSet<String> = d
                .tool_ok("xenstore-list", &["/big"])
                .lines()
                .map(String::from)
                .collect();
            assert_eq!(tool, expected);
        }
        Kind::O => {
            // oxenstored 4.17 answers DIRECTORY_PART with ENOSYS on sockets, so such a
            // directory cannot be listed; libxenstore fails the same way. A typed error,
            // and the connection stays usable.
            let listed = c.directory("/big").await;
            assert!(
                matches!(
                    listed,
                    Err(Error::MalformedReply(WireError::PayloadTooLong(_)))
                ),
                "{listed:?}"
            );
            assert!(!d.tool("xenstore-list", &["/big"]).status.success());
        }
    }
    assert_eq!(
        c.read("/big/a-fairly-long-child-name-0007").await.unwrap(),
        b"x"
    );
}

per_daemon!(transaction_conflict_is_retried);
async fn transaction_conflict_is_retried(kind: Kind) {
    let d = Daemon::start(kind);
    let c = d.client().await;
    let other = d.client().await;
    c.write("/tx/counter", "0").await.unwrap();
    let mut attempts = 0;
    let result = c
        .transaction(async |tx| {
            attempts += 1;
            let v: u32 = String::from_utf8(tx.read("/tx/counter").await?)
                .unwrap()
                .parse()
                .unwrap();
            if attempts == 1 {
                // A concurrent writer changes what this transaction read.
                other.write("/tx/counter", "100").await?;
            }
            tx.write("/tx/counter", (v + 1).to_string()).await?;
            Ok(v)
        })
        .await
        .unwrap();
    assert_eq!(attempts, 2, "the first attempt must have conflicted");
    assert_eq!(result, 100);
    assert_eq!(d.tool_ok("xenstore-read", &["/tx/counter"]), "101\n");

    // A conflict on every attempt exhausts the bounded retries.
    let config = ClientConfig {
        transaction_retries: 2,
        ..Default::default()
    };
    let limited = d.client_with(config).await;
    let mut tries = 0;
    let outcome = limited
        .transaction(async |tx| {
            tries += 1;
            tx.read("/tx/counter").await?;
            other.write("/tx/counter", tries.to_string()).await?;
            tx.write("/tx/counter", "lost").await?;
            Ok(())
        })
        .await;
    assert_eq!(outcome, Err(Error::Xenstore(ErrorCode::EAGAIN)));
    assert_eq!(tries, 3);
    assert_ne!(d.tool_ok("xenstore-read", &["/tx/counter"]), "lost\n");
}

per_daemon!(concurrent_transactions_lose_no_update);
async fn concurrent_transactions_lose_no_update(kind: Kind) {
    let d = Daemon::start(kind);
    let a = d.client().await;
    let b = d.client().await;
    a.write("/inc", "0").await.unwrap();
    let increment = async |c: &xenstore::Client<_, _>| {
        for _ in 0..25 {
            c.transaction(async |tx| {
                let v: u32 = String::from_utf8(tx.read("/inc").await?)
                    .unwrap()
                    .parse()
                    .unwrap();
                tokio::task::yield_now().await;
                tx.write("/inc", (v + 1).to_string()).await
            })
            .await
            .unwrap();
        }
    };
    tokio::join!(increment(&a), increment(&b));
    assert_eq!(a.read("/inc").await.unwrap(), b"50");
}

per_daemon!(watch_events_while_requests_in_flight);
async fn watch_events_while_requests_in_flight(kind: Kind) {
    let d = Daemon::start(kind);
    let c = d.client().await;
    let other = d.client().await;
    c.mkdir("/w").await.unwrap();
    let mut watch = c.watch("/w").await.unwrap();
    let n = 40;
    let writer = async {
        // Requests of this connection interleave with the events they trigger, and with
        // events triggered by another connection.
        for i in 0..n {
            c.write(&format!("/w/mine{i}"), "v").await.unwrap();
            other.write(&format!("/w/theirs{i}"), "v").await.unwrap();
            assert_eq!(c.read(&format!("/w/mine{i}")).await.unwrap(), b"v");
        }
    };
    let reader = async {
        let mut seen = BTreeSet::new();
        while seen.len() < 2 * n + 1 {
            let ev = watch.next().await.unwrap();
            seen.insert(ev.path);
        }
        seen
    };
    let (_, seen) = c
        .with_timeout(Duration::from_secs(20), async {
            tokio::join!(writer, reader)
        })
        .await
        .expect("watch events did not all arrive");
    assert!(seen.contains("/w"));
    for i in 0..n {
        assert!(seen.contains(&format!("/w/mine{i}")));
        assert!(seen.contains(&format!("/w/theirs{i}")));
    }
    // After the watch is dropped, the UNWATCH goes out and no more events are queued.
    drop(watch);
    c.write("/w/after", "v").await.unwrap();
    c.read("/w/after").await.unwrap();
    assert_eq!(c.anomalies().unknown_req_id, 0);
}

per_daemon!(wait_until_sees_later_write);
async fn wait_until_sees_later_write(kind: Kind) {
    let d = Daemon::start(kind);
    let c = d.client().await;
    let other = d.client().await;
    let waiter = c.wait_until("/flag", |v| v == Some(b"go".as_slice()));
    let setter = async {
        tokio::time::sleep(Duration::from_millis(50)).await;
        other.write("/flag", "not yet").await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        other.write("/flag", "go").await.unwrap();
    };
    let (value, ()) = tokio::join!(c.with_timeout(Duration::from_secs(10), waiter), setter);
    assert_eq!(value.unwrap().unwrap(), Some(b"go".to_vec()));
}

per_daemon!(dead_daemon_is_an_error_not_a_hang);
async fn dead_daemon_is_an_error_not_a_hang(kind: Kind) {
    let mut d = Daemon::start(kind);
    let c = d.client().await;
    c.write("/alive", "1").await.unwrap();
    let mut watch = c.watch("/alive").await.unwrap();
    d.kill();
    let started = std::time::Instant::now();
    let err = c.read("/alive").await.unwrap_err();
    assert!(err.is_fatal(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
    // Pending watch streams end with the same error.
    loop {
        match watch.next().await {
            Ok(_) => continue,
            Err(e) => {
                assert!(e.is_fatal(), "{e:?}");
                break;
            }
        }
    }
    assert!(c.write("/alive", "2").await.unwrap_err().is_fatal());
}

per_daemon!(domain_management_requests);
async fn domain_management_requests(kind: Kind) {
    let d = Daemon::start(kind);
    let c = d.client().await;
    assert_eq!(c.is_domain_introduced(7).await, Ok(false));
    assert!(matches!(c.release(7).await, Err(Error::Xenstore(_))));
    assert!(matches!(c.resume(7).await, Err(Error::Xenstore(_))));
    assert_eq!(
        c.set_target(7, 8).await,
        Err(Error::Xenstore(ErrorCode::ENOENT))
    );
    assert_eq!(
        c.get_permissions("/").await.unwrap(),
        [Permission::new(0, Access::None)]
    );
    assert!(!c.control(&[b"help"]).await.unwrap().is_empty());
    c.reset_watches().await.unwrap();
    if kind == Kind::C {
        // The shim lets cxenstored map a fake ring for domain 7, so introduction works and
        // fires the special watches. (oxenstored needs more of libxenctrl than the shim fakes.)
        let mut introduced = c.watch("@introduceDomain").await.unwrap();
        let mut released = c.watch("@releaseDomain").await.unwrap();
        let wait = Duration::from_secs(5);
        assert_eq!(
            c.with_timeout(wait, introduced.next())
                .await
                .unwrap()
                .unwrap()
                .path,
            "@introduceDomain"
        );
        assert_eq!(
            c.with_timeout(wait, released.next())
                .await
                .unwrap()
                .unwrap()
                .path,
            "@releaseDomain"
        );
        c.introduce(7, 1234, 5).await.unwrap();
        assert_eq!(
            c.with_timeout(wait, introduced.next())
                .await
                .unwrap()
                .unwrap()
                .path,
            "@introduceDomain"
        );
        assert_eq!(c.is_domain_introduced(7).await, Ok(true));
        c.release(7).await.unwrap();
        assert_eq!(
            c.with_timeout(wait, released.next())
                .await
                .unwrap()
                .unwrap()
                .path,
            "@releaseDomain"
        );
        assert_eq!(c.is_domain_introduced(7).await, Ok(false));
    }
}

per_daemon!(dropped_transactions_leave_nothing_behind);
async fn dropped_transactions_leave_nothing_behind(kind: Kind) {
    let d = Daemon::start(kind);
    let c = d.client().await;
    // Dropped transactions are aborted (the abort itself is checked in bad_input.rs): their
    // writes never appear, and the connection goes on working.
    for i in 0..30 {
        let tx = c.transaction_start().await.unwrap();
        tx.write("/dropped", i.to_string()).await.unwrap();
        drop(tx);
    }
    assert_eq!(
        c.read("/dropped").await,
        Err(Error::Xenstore(ErrorCode::ENOENT))
    );
    let tx = c.transaction_start().await.unwrap();
    tx.write("/kept", "1").await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(d.tool_ok("xenstore-read", &["/kept"]), "1\n");
}
