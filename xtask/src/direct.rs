//! Running a guest on a real Xen host: `cargo xtask run` on a machine that is a dom0.

use crate::lab::Shutdown;
use crate::progress::{say, seconds};
use anyhow::{Context, Result};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// True on a Xen control domain with the toolstack: `xl` on PATH and xenfs mounted with
/// `control_d` capabilities (a Debian machine with xen-utils installed but not booted under
/// Xen has `xl` and no /proc/xen/capabilities).
pub fn is_xen_dom0() -> bool {
    let has_xl = std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join("xl").is_file()));
    let caps = std::fs::read_to_string("/proc/xen/capabilities").unwrap_or_default();
    has_xl && caps.contains("control_d")
}

/// Creates the guest with `xl create` (`overrides`, then kernel, name and `on_*` overridden, so the shutdown reason
/// can be read), streams its console to stdout, waits for it to end (or `timeout`), destroys
/// it and returns how it ended.
pub fn run(
    cfg: &Path,
    kernel: &Path,
    name: &str,
    overrides: &[String],
    timeout: Duration,
) -> Result<Shutdown> {
    let started = Instant::now();
    let create = Command::new("xl")
        .args(["create", "-p"])
        .arg(cfg)
        .args(overrides)
        .arg(format!("kernel=\"{}\"", kernel.display()))
        .arg(format!("name=\"{name}\""))
        .args([
            "on_poweroff=\"preserve\"",
            "on_reboot=\"preserve\"",
            "on_crash=\"preserve\"",
        ])
        .args(["on_watchdog=\"preserve\"", "on_soft_reset=\"preserve\""])
        .output()
        .context("cannot run xl")?;
    if !create.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&create.stderr).trim_end());
        say(format!(
            "xl create {} failed ({})",
            cfg.display(),
            create.status
        ));
        return Ok(Shutdown::CreateFailed);
    }
    say(format!(
        "domain {name} created in {}",
        seconds(started.elapsed())
    ));
    // xenconsole exits when its stdin closes: hold a pipe open for as long as it runs.
    let mut console = Command::new("xl")
        .args(["console", "-t", "pv", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot run xl console")?;
    let stdout = console.stdout.take().expect("piped");
    let printer = std::thread::spawn(move || {
        for line in BufReader::new(stdout).split(b'\n').map_while(Result::ok) {
            println!("{}", String::from_utf8_lossy(&line).trim_end_matches('\r'));
        }
    });
    let unpause = Command::new("xl").args(["unpause", name]).status()?;
    let outcome = if unpause.success() {
        wait_for_shutdown(name, timeout)?
    } else {
        Shutdown::CreateFailed
    };
    std::thread::sleep(Duration::from_millis(500)); // let the console drain
    let _ = Command::new("xl")
        .args(["destroy", name])
        .stderr(Stdio::null())
        .status();
    let _ = console.kill();
    let _ = console.wait();
    let _ = printer.join();
    Ok(outcome)
}

fn wait_for_shutdown(name: &str, timeout: Duration) -> Result<Shutdown> {
    let deadline = Instant::now() + timeout;
    let mut misses = 0;
    while Instant::now() < deadline {
        let list = Command::new("xl").args(["list", "-v", name]).output()?;
        let text = String::from_utf8_lossy(&list.stdout);
        let Some(row) = text
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .find(|r| r.first() == Some(&name))
        else {
            // With on_*=preserve the domain stays until we destroy it: a missing row is a
            // transient xl failure unless it persists.
            misses += 1;
            if misses >= 10 {
                return Ok(Shutdown::Vanished);
            }
            std::thread::sleep(Duration::from_millis(200));
            continue;
        };
        misses = 0;
        if let Some(reason) = shutdown_from_row(&row) {
            return Ok(reason);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(Shutdown::Timeout)
}

/// Reads an `xl list -v` row (Name ID Mem VCPUs State Time UUID Reason ...).
fn shutdown_from_row(row: &[&str]) -> Option<Shutdown> {
    let state = row.get(4)?;
    if !state.contains('s') && !state.contains('c') {
        return None;
    }
    Some(match row.get(7).copied() {
        Some("0") => Shutdown::Poweroff,
        Some("1") => Shutdown::Reboot,
        Some("2") => Shutdown::Suspend,
        Some("4") => Shutdown::Watchdog,
        Some("5") => Shutdown::SoftReset,
        _ => Shutdown::Crash,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xl_list_rows() {
        let row = |s: &'static str| s.split_whitespace().collect::<Vec<_>>();
        assert_eq!(
            shutdown_from_row(&row("hello 3 32 1 ---s-- 0.1 1234-5678 0 -")),
            Some(Shutdown::Poweroff)
        );
        assert_eq!(
            shutdown_from_row(&row("hello 3 32 1 ----c- 0.1 1234-5678 3 -")),
            Some(Shutdown::Crash)
        );
        assert_eq!(
            shutdown_from_row(&row("hello 3 32 1 ---s-- 0.1 1234-5678 1 -")),
            Some(Shutdown::Reboot)
        );
        assert_eq!(
            shutdown_from_row(&row("hello 3 32 1 -b---- 0.1 1234-5678 - -")),
            None
        );
    }
}
