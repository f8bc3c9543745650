//! Benchmark, not a test: client round trips against cxenstored and oxenstored, compared
//! with libxenstore doing the same work against the same daemon in the same run. Reports
//! ratios; asserts only that the work was done correctly.
//!
//! `cargo test -p xenstore --release --test bench -- --ignored --nocapture`

mod support;

use std::process::Command;
use std::time::Instant;

use support::{Daemon, Kind};

const PAIRS: usize = 5000;

fn libxenstore_peer() -> std::path::PathBuf {
    let out = support::tmp_root().join(format!("libxs_peer-{}", std::process::id()));
    std::fs::create_dir_all(support::tmp_root()).unwrap();
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/libxs_peer.c");
    let status = Command::new("gcc")
        .args(["-O2", "-o"])
        .arg(&out)
        .arg(&src)
        .arg("-lxenstore")
        .status()
        .unwrap();
    assert!(
        status.success(),
        "compiling the libxenstore peer failed (libxen-dev installed?)"
    );
    out
}

async fn ours_sequential(d: &Daemon) -> f64 {
    let c = d.client().await;
    let start = Instant::now();
    for i in 0..PAIRS {
        let path = format!("/bench/r/k{}", i % 100);
        let value = format!("v{i}");
        c.write(&path, &value).await.unwrap();
        assert_eq!(c.read(&path).await.unwrap(), value.as_bytes());
    }
    start.elapsed().as_secs_f64()
}

/// 16 independent write+read chains in flight on one connection.
async fn ours_pipelined(d: &Daemon) -> f64 {
    let c = d.client().await;
    let start = Instant::now();
    let chains = (0..16).map(|chain| {
        let c = &c;
        async move {
            for i in (chain..PAIRS).step_by(16) {
                let path = format!("/bench/p/k{chain}");
                let value = format!("v{i}");
                c.write(&path, &value).await.unwrap();
                assert_eq!(c.read(&path).await.unwrap(), value.as_bytes());
            }
        }
    });
    join_all(chains.collect()).await;
    start.elapsed().as_secs_f64()
}

async fn join_all<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for slot in futures.iter_mut() {
            if let Some(f) = slot {
                if f.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    pending = true;
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await
}

fn peer_seconds(d: &Daemon, peer: &std::path::Path) -> f64 {
    let out = Command::new(peer)
        .arg(PAIRS.to_string())
        .env("XENSTORED_PATH", &d.socket)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test(flavor = "current_thread")]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn round_trips_vs_libxenstore() {
    let peer = libxenstore_peer();
    for kind in [Kind::C, Kind::O] {
        let d = Daemon::start(kind);
        // Warm up both, then measure alternately.
        peer_seconds(&d, &peer);
        ours_sequential(&d).await;
        let theirs = peer_seconds(&d, &peer);
        let ours = ours_sequential(&d).await;
        let piped = ours_pipelined(&d).await;
        let ops = (2 * PAIRS) as f64;
        println!(
            "{kind:?}: libxenstore {:.0} ops/s, ours sequential {:.0} ops/s (ratio {:.2}), \
             ours 16 in flight {:.0} ops/s (ratio {:.2})",
            ops / theirs,
            ops / ours,
            theirs / ours,
            ops / piped,
            theirs / piped
        );
    }
}
