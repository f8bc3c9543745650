//! `xenstore-test`: the xenstore client over the guest's ring against the real xenstored.
//!
//! It reads its own `name` and domain path, writes and reads back under `data/`, watches
//! `data/from-dom0` while a dom0 script (dom0/peer.sh) writes it with `xenstore-write`,
//! and runs a transaction that conflicts with a concurrent dom0 writer and must succeed on
//! retry. Prints `ok <name>: ...` / `FAIL <name>: ...`, then a summary; crashes if anything
//! failed.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};
use core::cell::Cell;
use core::time::Duration;

use xen_platform::timeout;
use xen_pv::{Env, PvPlatform, Runtime, println};
use xenstore::transport::{RingClient, ring_client};

xen_pv::entry!(main);

type Check = Result<String, String>;
type Xs<'a> = RingClient<'a, PvPlatform>;

/// How long the dom0 peer gets to do its part.
const PEER_TIMEOUT: Duration = Duration::from_secs(60);

fn main(env: &Env) -> Result<(), String> {
    let mut rt = Runtime::new().map_err(|e| format!("runtime: {e}"))?;
    let p = rt.platform();
    let (page, port) = rt
        .xenstore_ring()
        .map_err(|e| format!("xenstore ring: {e}"))?;
    let me = p.own_domid().map_err(|e| format!("own domid: {e}"))?;
    let expected_name = env
        .cmdline()
        .get("name")
        .unwrap_or("xenstore-test")
        .to_string();
    let (mut passed, mut failed) = (0, 0);
    rt.block_on(async {
        let xs: Xs<'_> = match ring_client(page, &p, port) {
            Ok(xs) => xs,
            Err(e) => {
                println!("FAIL ring: {e:?}");
                failed += 1;
                return;
            }
        };
        let checks: [(&str, Check); 4] = [
            ("identity", identity(&xs, me.0, &expected_name).await),
            ("write-read", write_read(&xs).await),
            ("watch-dom0-write", watch_dom0(&xs, &p).await),
            ("transaction-conflict", transaction_conflict(&xs, &p).await),
        ];
        for (name, outcome) in checks {
            match outcome {
                Ok(detail) => {
                    passed += 1;
                    println!("ok {name}: {detail}");
                }
                Err(reason) => {
                    failed += 1;
                    println!("FAIL {name}: {reason}");
                }
            }
        }
    })
    .map_err(|e| format!("executor: {e}"))?;
    println!("xenstore-test: {passed} passed, {failed} failed");
    if failed > 0 {
        Err(format!("{failed} checks failed"))
    } else {
        Ok(())
    }
}

fn e(what: &str, err: xenstore::Error) -> String {
    format!("{what}: {err:?}")
}

/// Our name (relative path, resolved by xenstored against our home) and domain path.
async fn identity(xs: &Xs<'_>, domid: u16, expected_name: &str) -> Check {
    let name = xs
        .read_string("name")
        .await
        .map_err(|err| e("read name", err))?;
    let home = xs
        .get_domain_path(domid)
        .await
        .map_err(|err| e("get_domain_path", err))?;
    let via_abs = xs
        .read_string(&format!("{home}/name"))
        .await
        .map_err(|err| e("read home/name", err))?;
    if name != expected_name || via_abs != name || home != format!("/local/domain/{domid}") {
        return Err(format!(
            "name {name:?} (absolute {via_abs:?}), home {home:?}"
        ));
    }
    Ok(format!("name {name}, home {home}"))
}

/// Write under data/ and read it back, then list the directory.
async fn write_read(xs: &Xs<'_>) -> Check {
    xs.write("data/greeting", "hello from a Rust unikernel")
        .await
        .map_err(|err| e("write", err))?;
    let back = xs
        .read_string("data/greeting")
        .await
        .map_err(|err| e("read back", err))?;
    let entries = xs
        .directory("data")
        .await
        .map_err(|err| e("directory", err))?;
    if back != "hello from a Rust unikernel" || !entries.iter().any(|n| n == "greeting") {
        return Err(format!("read back {back:?}, data/ has {entries:?}"));
    }
    match xs.read("data/does-not-exist").await {
        Err(xenstore::Error::Xenstore(code)) => Ok(format!("read back; missing key -> {code:?}")),
        other => Err(format!("missing key gave {other:?}")),
    }
}

/// Watch a key, then ask dom0 (through another key) to write it.
async fn watch_dom0(xs: &Xs<'_>, p: &PvPlatform) -> Check {
    let mut watch = xs
        .watch("data/from-dom0")
        .await
        .map_err(|err| e("watch", err))?;
    // The first event fires for the watch registration itself.
    xs.write("data/waiting-for-dom0", "1")
        .await
        .map_err(|err| e("signal dom0", err))?;
    let value = timeout(p, PEER_TIMEOUT, async {
        loop {
            watch.next().await.map_err(|err| e("watch event", err))?;
            if let Some(v) = xs
                .read_optional("data/from-dom0")
                .await
                .map_err(|err| e("read", err))?
            {
                return Ok::<_, String>(v);
            }
        }
    })
    .await
    .map_err(|_| "dom0 never wrote data/from-dom0".to_string())??;
    let value = String::from_utf8(value).map_err(|_| "value not utf-8".to_string())?;
    if value != "dom0-says-hi" {
        return Err(format!("dom0 wrote {value:?}"));
    }
    Ok(format!("watch fired for dom0's xenstore-write: {value:?}"))
}

/// A transaction reads a counter, then dom0 changes it before our commit: the commit
/// fails with EAGAIN, the closure is retried, and the retry sees dom0's value.
async fn transaction_conflict(xs: &Xs<'_>, p: &PvPlatform) -> Check {
    xs.write("data/counter", "1")
        .await
        .map_err(|err| e("init counter", err))?;
    let attempts = Cell::new(0u32);
    let result = timeout(
        p,
        PEER_TIMEOUT,
        xs.transaction(async |tx| {
            attempts.set(attempts.get() + 1);
            let n: u32 = String::from_utf8_lossy(&tx.read("data/counter").await?)
                .parse()
                .unwrap_or(0);
            if attempts.get() == 1 {
                // Outside the transaction: ask dom0 to bump the counter, wait until it did.
                xs.write("data/please-bump", "1").await?;
                xs.wait_until("data/bumped", |v| v == Some(b"1")).await?;
            }
            tx.write("data/counter", (n + 1).to_string()).await?;
            Ok(n + 1)
        }),
    )
    .await
    .map_err(|_| "transaction with dom0 timed out".to_string())?;
    let committed = result.map_err(|err| e("transaction", err))?;
    let stored = xs
        .read_string("data/counter")
        .await
        .map_err(|err| e("read counter", err))?;
    if attempts.get() < 2 || committed != 101 || stored != "101" {
        return Err(format!(
            "{} attempts, committed {committed}, stored {stored:?}",
            attempts.get()
        ));
    }
    Ok(format!(
        "conflict with dom0 detected (EAGAIN), retried: {} attempts, counter {stored}",
        attempts.get()
    ))
}
