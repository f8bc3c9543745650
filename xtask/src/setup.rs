//! Machine set-up: the Debian packages and the Rust target the project needs, and the checks
//! that turn a machine that cannot build the lab into one clear line.

use crate::progress::{self, say};
use anyhow::{Context, Result, bail};
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Host packages the host test suites need (headers and peers the tests build against or
/// run). Issues that add host-side peers add their packages here.
pub const HOST_TEST_PACKAGES: &[&str] = &["libxen-dev", "xenstore-utils", "xen-utils-4.17"];

/// Host packages the lab builder and runner use directly. QEMU's shared libraries are added
/// by the image builder (they depend on the QEMU version the archive has).
pub const LAB_HOST_PACKAGES: &[&str] = &[
    "debootstrap",
    "e2fsprogs",
    "seabios",
    "xz-utils",
    "zstd",
    "gzip",
    "ca-certificates",
];

/// The Rust target guests build for.
pub const GUEST_TARGET: &str = "x86_64-unknown-none";

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Fails with one line when not root, naming what needs it.
pub fn require_root(what: &str) -> Result<()> {
    if !is_root() {
        bail!(
            "{what} needs root (apt, debootstrap, chroot): run it as root, e.g. `sudo -E cargo xtask ...`"
        );
    }
    Ok(())
}

/// Free bytes on the file system holding `path` (or its nearest existing ancestor).
pub fn free_bytes(path: &Path) -> Result<u64> {
    let existing = path
        .ancestors()
        .find(|p| p.exists())
        .unwrap_or(Path::new("/"));
    let c_path = std::ffi::CString::new(existing.as_os_str().as_encoded_bytes())?;
    // SAFETY: statvfs only writes the struct we pass; the path is a valid C string.
    let stat = unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(c_path.as_ptr(), &mut stat) != 0 {
            return Err(std::io::Error::last_os_error())
                .context(format!("statvfs {}", existing.display()));
        }
        stat
    };
    Ok(stat.f_bavail as u64 * stat.f_frsize as u64)
}

pub fn require_free_space(path: &Path, needed: u64, what: &str) -> Result<()> {
    let free = free_bytes(path)?;
    if free < needed {
        bail!(
            "not enough disk space for {what}: {} MiB free under {}, {} MiB needed; free some space \
             or point XEN_LAB_CACHE at a larger disk",
            free >> 20,
            path.display(),
            needed >> 20
        );
    }
    Ok(())
}

/// The Debian mirror apt uses on this machine (first `URIs:`/`deb` line naming a `/debian`
/// archive), or deb.debian.org.
pub fn debian_mirror() -> String {
    let candidates = [
        "/etc/apt/sources.list.d/debian.sources",
        "/etc/apt/sources.list",
    ];
    for file in candidates {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
            let words: Vec<&str> = line.split_whitespace().collect();
            let uris: &[&str] = match words.first() {
                Some(&"URIs:") => &words[1..],
                Some(&"deb") => &words[1..words.len().min(2)],
                _ => &[],
            };
            if let Some(uri) = uris
                .iter()
                .find(|u| u.starts_with("http") && u.trim_end_matches('/').ends_with("/debian"))
            {
                return uri.trim_end_matches('/').to_owned();
            }
        }
    }
    "http://deb.debian.org/debian".to_owned()
}

/// Checks that the Debian archive answers, so a machine without network fails with one line
/// instead of deep inside debootstrap.
pub fn require_archive_reachable(mirror: &str, suite: &str) -> Result<()> {
    let fail = |why: String| -> anyhow::Error {
        anyhow::anyhow!(
            "cannot reach the Debian archive at {mirror} ({why}): building the lab image downloads \
             packages from it; check the network/DNS (or the mirror in /etc/apt/sources.list.d)"
        )
    };
    let rest = mirror
        .strip_prefix("http://")
        .map(|r| (r, 80))
        .or(mirror.strip_prefix("https://").map(|r| (r, 443)));
    let Some((rest, default_port)) = rest else {
        return Err(fail("not an http(s) URL".into()));
    };
    let (host_port, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, String::new()));
    let (host, port) = match host_port.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().map_err(|_| fail("bad port".into()))?),
        None => (host_port, default_port),
    };
    let addr = (host, port)
        .to_socket_addrs()
        .map_err(|e| fail(format!("DNS lookup of {host}: {e}")))?
        .next()
        .ok_or_else(|| fail(format!("{host} has no address")))?;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .map_err(|e| fail(format!("connect {addr}: {e}")))?;
    if port != 80 {
        return Ok(()); // TLS: a TCP connection is all we check.
    }
    stream.set_read_timeout(Some(Duration::from_secs(15)))?;
    write!(
        stream,
        "HEAD {path}/dists/{suite}/Release HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| fail(e.to_string()))?;
    let mut reply = [0u8; 64];
    let n = stream
        .read(&mut reply)
        .map_err(|e| fail(format!("no HTTP answer: {e}")))?;
    let status = String::from_utf8_lossy(&reply[..n]);
    let code = status.split_whitespace().nth(1).unwrap_or("");
    if !(code.starts_with('2') || code.starts_with('3')) {
        return Err(fail(format!(
            "HTTP answer `{}`",
            status.lines().next().unwrap_or("")
        )));
    }
    Ok(())
}

pub fn is_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout).contains("install ok installed")
        })
}

static APT_UPDATED: AtomicBool = AtomicBool::new(false);

/// Runs `apt-get update` once per process.
pub fn apt_update(log_dir: &Path) -> Result<()> {
    if APT_UPDATED.swap(true, Ordering::SeqCst) {
        return Ok(());
    }
    require_root("apt-get update")?;
    progress::run_step(
        "apt-get update",
        Command::new("apt-get").args(["update"]),
        &log_dir.join("apt-get-update.log"),
    )
    .context("apt-get update failed: check the network and /etc/apt/sources.list*")?;
    Ok(())
}

/// Installs the packages that are missing (nothing to do, and no root needed, when none is).
pub fn ensure_packages(packages: &[&str], log_dir: &Path) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !is_installed(p))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    require_root(&format!("installing {}", missing.join(" ")))?;
    std::fs::create_dir_all(log_dir)?;
    apt_update(log_dir)?;
    let title = format!("apt-get install {}", missing.join(" "));
    progress::run_step(
        &title,
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        &log_dir.join("apt-get-install.log"),
    )
    .with_context(|| {
        format!("{title} failed: see the log above; fix apt (`apt-get -f install`) and retry")
    })?;
    Ok(())
}

/// Makes sure the guest target is installed for the active toolchain.
pub fn ensure_guest_target() -> Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    match installed {
        Ok(out) if out.status.success() => {
            if String::from_utf8_lossy(&out.stdout)
                .lines()
                .any(|l| l.trim() == GUEST_TARGET)
            {
                return Ok(());
            }
        }
        _ => {
            // No rustup: the target may still be there (distribution toolchains).
            let sysroot = progress::output(Command::new("rustc").args(["--print", "sysroot"]))?;
            if Path::new(sysroot.trim())
                .join("lib/rustlib")
                .join(GUEST_TARGET)
                .is_dir()
            {
                return Ok(());
            }
            bail!(
                "the Rust target {GUEST_TARGET} is not installed and rustup is not available: \
                 install rustup (https://rustup.rs) or your distribution's {GUEST_TARGET} std"
            );
        }
    }
    say(format!("rustup target add {GUEST_TARGET}"));
    let status = Command::new("rustup")
        .args(["target", "add", GUEST_TARGET])
        .status()?;
    if !status.success() {
        bail!(
            "`rustup target add {GUEST_TARGET}` failed ({status}): guests cannot be built without it; \
             check the network to the Rust distribution server and retry"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_archive_is_one_clear_error() {
        // A port that was just free on loopback: connection refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = require_archive_reachable(&format!("http://127.0.0.1:{port}/debian"), "bookworm")
            .unwrap_err();
        let message = err.to_string();
        assert!(
            message.starts_with("cannot reach the Debian archive at http://127.0.0.1:"),
            "{message}"
        );
        assert!(!message.contains('\n'));
        assert!(require_archive_reachable("ftp://example/debian", "bookworm").is_err());
    }

    #[test]
    fn too_little_disk_space_is_one_clear_error() {
        let message = require_free_space(Path::new("/"), u64::MAX, "building the lab image")
            .unwrap_err()
            .to_string();
        assert!(
            message.starts_with("not enough disk space for building the lab image"),
            "{message}"
        );
        assert!(
            require_free_space(Path::new("/nonexistent/dir"), 1, "x").is_ok(),
            "nearest existing ancestor is used"
        );
    }
}
