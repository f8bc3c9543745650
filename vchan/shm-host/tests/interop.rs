//! Two processes sharing memory: our vchan against itself and against Xen's own
//! libxenvchan (Debian's `libxenvchan.a`, linked with `interop/fake_xen.c` in place of the
//! Xen device libraries), in both roles, with in-page and page rings; and a peer process
//! killed mid-session.
//!
//! Needs `cc` and Debian's libxen-dev (`/usr/lib/x86_64-linux-gnu/libxenvchan.a`, headers).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use vchan::{ClientConfig, Error, Vchan};
use vchan_shm_host::{FileStore, ShmRuntime, create_host};
use xen_platform::DomId;

const RUST_PEER: &str = env!("CARGO_BIN_EXE_vchan-shm-peer");
const SERVER: u16 = 1;
const CLIENT: u16 = 2;
const PATH: &str = "/local/domain/1/data/vchan/2/interop";

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop")
}

/// The C peer, compiled once per test run against the real libxenvchan.
fn c_peer() -> &'static Path {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| {
        let lib = Path::new("/usr/lib/x86_64-linux-gnu/libxenvchan.a");
        assert!(
            lib.exists(),
            "{} missing: install Debian's libxen-dev",
            lib.display()
        );
        let out = std::env::temp_dir().join(format!("vchan-peer-{}", std::process::id()));
        let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
        let status = Command::new(cc)
            .args(["-O2", "-Wall", "-o"])
            .arg(&out)
            .arg(interop_dir().join("vchan-peer.c"))
            .arg(interop_dir().join("fake_xen.c"))
            .arg(lib)
            .status()
            .expect("running the C compiler");
        assert!(status.success(), "building the libxenvchan peer failed");
        out
    })
}

/// A fresh host directory (short path: it holds Unix sockets).
fn host() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = PathBuf::from(format!(
        "/tmp/vshm-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    create_host(&dir, 8192).unwrap();
    dir
}

#[derive(Clone, Copy, Debug)]
enum Impl {
    Rust,
    Libxenvchan,
}

fn spawn(dir: &Path, who: Impl, domid: u16, args: &[&str]) -> Child {
    let exe = match who {
        Impl::Rust => Path::new(RUST_PEER),
        Impl::Libxenvchan => c_peer(),
    };
    Command::new(exe)
        .args(args)
        .env("FAKE_XEN_DIR", dir)
        .env("FAKE_XEN_DOMID", domid.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning a peer")
}

/// Waits for `child` (killing it after `limit`) and returns (success, stdout + stderr).
fn finish(mut child: Child, limit: Duration) -> (bool, String) {
    let start = Instant::now();
    loop {
        if let Some(_status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return (out.status.success(), text);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            return (
                false,
                format!("timed out: {}", String::from_utf8_lossy(&out.stderr)),
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `server` echoes, `client` sends `bytes` and verifies the echo.
fn pair(server: Impl, client: Impl, sizes: &str, bytes: u64) {
    let dir = host();
    let server_proc = spawn(
        &dir,
        server,
        SERVER,
        &["-s", sizes, "server", &CLIENT.to_string(), PATH, "echo"],
    );
    let client_proc = spawn(
        &dir,
        client,
        CLIENT,
        &[
            "client",
            &SERVER.to_string(),
            PATH,
            "source",
            &bytes.to_string(),
            "9",
        ],
    );
    let (c_ok, c_out) = finish(client_proc, Duration::from_secs(60));
    let (s_ok, s_out) = finish(server_proc, Duration::from_secs(10));
    assert!(c_ok, "{client:?} client failed: {c_out}");
    assert!(s_ok, "{server:?} server failed: {s_out}");
    assert!(
        c_out.contains(&format!("ok sent and verified {bytes} bytes")),
        "{c_out}"
    );
    assert!(
        s_out.contains(&format!("ok echoed {bytes} bytes")),
        "{s_out}"
    );
    // Both implementations remove the advertisement when the server closes.
    let left = std::fs::read_dir(dir.join("xs")).unwrap().count();
    assert_eq!(left, 0, "xenstore entries left behind");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rust_to_rust_in_two_processes() {
    pair(Impl::Rust, Impl::Rust, "1024,2048", 300_000);
    pair(Impl::Rust, Impl::Rust, "70000,9000", 300_000);
}

#[test]
fn libxenvchan_server_rust_client() {
    pair(Impl::Libxenvchan, Impl::Rust, "1024,2048", 300_000);
    pair(Impl::Libxenvchan, Impl::Rust, "2048,1024", 100_000);
    pair(Impl::Libxenvchan, Impl::Rust, "70000,9000", 300_000);
}

#[test]
fn rust_server_libxenvchan_client() {
    pair(Impl::Rust, Impl::Libxenvchan, "1024,2048", 300_000);
    pair(Impl::Rust, Impl::Libxenvchan, "2048,1024", 100_000);
    pair(Impl::Rust, Impl::Libxenvchan, "8192,1048576", 300_000);
}

/// Both implementations advertise with the same permissions: owned by the server, readable
/// by the client.
#[test]
fn advertisement_permissions_match_libxenvchan() {
    for server in [Impl::Libxenvchan, Impl::Rust] {
        let dir = host();
        let proc = spawn(&dir, server, SERVER, &["server", "2", PATH, "echo"]);
        let store = FileStore::open(&dir, DomId(CLIENT)).unwrap();
        let start = Instant::now();
        while store.perms(&format!("{PATH}/event-channel")).is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{server:?} never advertised"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        for key in ["ring-ref", "event-channel"] {
            assert_eq!(
                store.perms(&format!("{PATH}/{key}")).as_deref(),
                Some("n1 r2"),
                "{server:?}"
            );
        }
        // Connect and close so the server exits.
        let mut rt = ShmRuntime::open(&dir).unwrap();
        let p = rt.platform();
        rt.block_on(async {
            let v = Vchan::client_at(&p, &store, DomId(SERVER), PATH, ClientConfig::default())
                .await
                .unwrap();
            v.close().await.unwrap();
        })
        .unwrap();
        let (ok, out) = finish(proc, Duration::from_secs(10));
        assert!(ok, "{out}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A peer process killed mid-session (no close, live flag still 1): our side reads what was
/// sent and then reports `PeerDied`, for either implementation of the peer.
#[test]
fn killed_peer_is_detected() {
    for server in [Impl::Rust, Impl::Libxenvchan] {
        let dir = host();
        let mut proc = spawn(&dir, server, SERVER, &["server", "2", PATH, "echo"]);
        let store = FileStore::open(&dir, DomId(CLIENT)).unwrap();
        let mut rt = ShmRuntime::open(&dir).unwrap();
        let p = rt.platform();
        let config = ClientConfig {
            liveness_interval: Some(Duration::from_millis(50)),
            ..ClientConfig::default()
        };
        let (echoed, error) = rt
            .block_on(async {
                let mut v = Vchan::client_at(&p, &store, DomId(SERVER), PATH, config)
                    .await
                    .unwrap();
                v.write_all(b"ping").await.unwrap();
                let mut b = [0u8; 4];
                v.read_exact(&mut b).await.unwrap();
                proc.kill().unwrap();
                proc.wait().unwrap();
                let mut more = [0u8; 16];
                (b, v.read(&mut more).await)
            })
            .unwrap();
        assert_eq!(&echoed, b"ping");
        assert_eq!(
            error,
            Err(Error::PeerDied {
                domid: DomId(SERVER)
            }),
            "{server:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
