//! Starts Debian's xenstored (C) or oxenstored (OCaml) of Xen 4.17 without a hypervisor,
//! for interop tests. `fakexen.c` (next to this file) is compiled with gcc on first use and
//! LD_PRELOADed into the daemon; see its header for what it fakes.
//!
//! cxenstored honours `XENSTORED_PATH`, so each test gets its own socket in a temporary
//! directory and tests run in parallel. oxenstored's socket is hard-wired to
//! `/run/xenstored/socket`, so it runs in a private mount namespace (`unshare -m`) with a
//! tmpfs on `/run/xenstored`; the socket is then reached from outside through
//! `/proc/<pid>/root/run/xenstored/socket`. That needs root (or CAP_SYS_ADMIN), as CI has.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use xenstore::transport::{TokioTimer, UnixSocketTransport};
use xenstore::{Client, ClientConfig};

pub const XEN_BIN: &str = "/usr/lib/xen-4.17/bin";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    C,
    O,
}

pub fn tmp_root() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("xenstore-peers")
}

fn shim() -> &'static Path {
    static SHIM: OnceLock<PathBuf> = OnceLock::new();
    SHIM.get_or_init(|| {
        let dir = tmp_root();
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join(format!("fakexen-{}.so", std::process::id()));
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/fakexen.c");
        let status = Command::new("gcc")
            .args(["-shared", "-fPIC", "-O2", "-Wall", "-o"])
            .arg(&out)
            .arg(&src)
            .arg("-ldl")
            .status()
            .expect("gcc not found: install gcc and libxen-dev");
        assert!(
            status.success(),
            "compiling {} failed (is libxen-dev installed?)",
            src.display()
        );
        out
    })
}

pub struct Daemon {
    pub kind: Kind,
    pub dir: PathBuf,
    pub socket: PathBuf,
    child: Child,
}

static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Daemon {
    pub fn start(kind: Kind) -> Daemon {
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Short, because a Unix socket path must fit in 108 bytes wherever the target
        // directory happens to be.
        let dir =
            std::env::temp_dir().join(format!("xs-test-{}-{:?}-{n}", std::process::id(), kind));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
        let shim = shim();
        let (child, socket) = match kind {
            Kind::C => {
                let bin = Path::new(XEN_BIN).join("xenstored");
                assert!(
                    bin.exists(),
                    "{} missing: install xen-utils-4.17",
                    bin.display()
                );
                let socket = dir.join("socket");
                let child = Command::new(bin)
                    .args(["-N", "-F"])
                    .arg(dir.join("pid"))
                    .env("XENSTORED_RUNDIR", &dir)
                    .env("XENSTORED_PATH", &socket)
                    .env("LD_PRELOAD", shim)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .expect("spawn xenstored");
                (child, socket)
            }
            Kind::O => {
                let bin = Path::new(XEN_BIN).join("oxenstored");
                assert!(
                    bin.exists(),
                    "{} missing: install xen-utils-4.17",
                    bin.display()
                );
                let conf = dir.join("oxenstored.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "pid-file = {dir}/pid\nxenstored-log-file = {dir}/oxenstored.log\n\
                         persistent = false\nquota-activate = true\nquota-maxentity = 1000\n\
                         quota-maxwatch = 100\nquota-transaction = 10\n\
                         xenstored-kva = /proc/xen/xsd_kva\nxenstored-port = /proc/xen/xsd_port\n",
                        dir = dir.display()
                    ),
                )
                .unwrap();
                let script = format!(
                    "mkdir -p /run/xenstored && mount -t tmpfs -o size=16m xs-test /run/xenstored \
                     && exec env LD_PRELOAD={shim} {bin} --no-fork --no-access-log --config-file {conf}",
                    shim = shim.display(),
                    bin = bin.display(),
                    conf = conf.display()
                );
                let child = Command::new("unshare")
                    .args(["-m", "--propagation", "private", "sh", "-c", &script])
                    .stdin(Stdio::null())
                    .stdout(log.try_clone().unwrap())
                    .stderr(log)
                    .spawn()
                    .expect("spawn unshare");
                let socket =
                    PathBuf::from(format!("/proc/{}/root/run/xenstored/socket", child.id()));
                (child, socket)
            }
        };
        let mut daemon = Daemon {
            kind,
            dir,
            socket,
            child,
        };
        daemon.wait_ready();
        daemon
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{:?} daemon exited ({status}); log:\n{}",
                    self.kind,
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "{:?} daemon not ready; log:\n{}",
                self.kind,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    pub async fn client(&self) -> Client<UnixSocketTransport, TokioTimer> {
        self.client_with(ClientConfig {
            request_timeout: Duration::from_secs(10),
            ..Default::default()
        })
        .await
    }

    pub async fn client_with(
        &self,
        config: ClientConfig,
    ) -> Client<UnixSocketTransport, TokioTimer> {
        let transport = UnixSocketTransport::connect(&self.socket)
            .await
            .expect("connect");
        Client::with_config(transport, TokioTimer, config)
    }

    /// Runs a xenstore-utils tool (`xenstore-read`, ...) against this daemon.
    pub fn tool(&self, name: &str, args: &[&str]) -> std::process::Output {
        Command::new(name)
            .args(args)
            .env("XENSTORED_PATH", &self.socket)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("{name}: {e} (install xenstore-utils)"))
    }

    /// Runs a tool and returns its stdout, asserting success.
    pub fn tool_ok(&self, name: &str, args: &[&str]) -> String {
        let out = self.tool(name, args);
        assert!(
            out.status.success(),
            "{name} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Kills the daemon (to test a dead xenstored).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn both() -> [Kind; 2] {
    [Kind::C, Kind::O]
}
