//! The Xen lab: Xen 4.17 and a Debian 12 dom0 booted in QEMU (TCG), for machines that are
//! not a Xen host.
//!
//! [`image`] builds and caches what QEMU boots (outside the repository, keyed by a hash of
//! its inputs); [`runner`] boots it once and runs a list of guests, one after the other, in
//! that single boot. Both the CLI and the end-to-end tests use this module.

pub mod image;
pub mod runner;

use regex::Regex;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

pub use image::{LabImage, ensure_image};
pub use runner::{LabRun, RunOptions, run_guests};

/// One guest for the lab to run.
#[derive(Debug, Clone)]
pub struct GuestSpec {
    /// Domain name (overrides the cfg's `name=`); also names its results. `[A-Za-z0-9_-]+`.
    pub name: String,
    /// Kernel on the host: a PV ELF with Xen notes, or a Linux bzImage.
    pub kernel: PathBuf,
    /// Optional ramdisk on the host (overrides the cfg's `ramdisk=`).
    pub ramdisk: Option<PathBuf>,
    /// The xl config; its `kernel=`/`ramdisk=`/`name=`/`on_*=` are overridden.
    pub cfg: PathBuf,
    /// Copied next to the cfg in dom0, i.e. `/job/g/<name>/<file name>`; the cfg may name
    /// them with that absolute path (e.g. a `disk=` target).
    pub extra_files: Vec<PathBuf>,
    /// `key=value` settings added after the cfg on the `xl create` command line, e.g.
    /// `extra="panic"` to run the same guest with another command line.
    pub xl_overrides: Vec<String>,
    pub dom0_script: Option<Dom0Script>,
    /// How long the guest may run before it is destroyed and reported as timed out.
    pub timeout: Duration,
    /// Regexes the guest's console must match (each anywhere in the log).
    pub expect_console: Vec<String>,
    /// How the guest must end.
    pub expect_shutdown: Shutdown,
    /// Regexes the dom0 script's output must match.
    pub expect_script_output: Vec<String>,
}

impl GuestSpec {
    pub fn new(
        name: impl Into<String>,
        kernel: impl Into<PathBuf>,
        cfg: impl Into<PathBuf>,
    ) -> Self {
        Self {
            name: name.into(),
            kernel: kernel.into(),
            ramdisk: None,
            cfg: cfg.into(),
            extra_files: Vec::new(),
            xl_overrides: Vec::new(),
            dom0_script: None,
            timeout: Duration::from_secs(60),
            expect_console: Vec::new(),
            expect_shutdown: Shutdown::Poweroff,
            expect_script_output: Vec::new(),
        }
    }
    /// The same guest under another name (names must be unique in one lab run).
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    pub fn ramdisk(mut self, path: impl Into<PathBuf>) -> Self {
        self.ramdisk = Some(path.into());
        self
    }
    pub fn extra_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.extra_files.push(path.into());
        self
    }
    pub fn xl_override(mut self, setting: impl Into<String>) -> Self {
        self.xl_overrides.push(setting.into());
        self
    }
    pub fn dom0_script(mut self, mode: ScriptMode, script: impl Into<String>) -> Self {
        self.dom0_script = Some(Dom0Script {
            mode,
            script: script.into(),
        });
        self
    }
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    pub fn expect(mut self, regex: impl Into<String>) -> Self {
        self.expect_console.push(regex.into());
        self
    }
    pub fn expect_script_output(mut self, regex: impl Into<String>) -> Self {
        self.expect_script_output.push(regex.into());
        self
    }
    pub fn expect_shutdown(mut self, shutdown: Shutdown) -> Self {
        self.expect_shutdown = shutdown;
        self
    }
}

/// A bash script run in dom0 for a guest, with the guest's directory as its working
/// directory (its extra files are there) and `GUEST_NAME` set; output and exit status are
/// collected in the guest's results.
#[derive(Debug, Clone)]
pub struct Dom0Script {
    pub mode: ScriptMode,
    /// The script text (a `#!` line is added when missing).
    pub script: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScriptMode {
    /// Runs to completion before `xl create` (e.g. to prepare a disk image); a non-zero exit
    /// skips the guest (`Shutdown::ScriptFailed`). Bounded by the guest's timeout.
    Before,
    /// Starts once the domain exists (paused; `DOMID` is set) and runs while the guest runs,
    /// e.g. a vchan peer or a script that writes xenstore keys the guest waits for. After the
    /// guest ends it gets a grace period (10 s) to exit, then is killed.
    Background,
}

/// How a guest run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shutdown {
    Poweroff,
    Reboot,
    Suspend,
    Crash,
    Watchdog,
    SoftReset,
    /// Still running when its timeout expired (then destroyed).
    Timeout,
    /// The domain disappeared without a shutdown reason (destroyed by something else).
    Vanished,
    /// `xl create` failed (see `xl_create_log`).
    CreateFailed,
    /// The `Before` dom0 script failed, so the guest was not created.
    ScriptFailed,
    /// The lab ended before reaching this guest (see the serial log).
    NotRun,
}

impl Shutdown {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "poweroff" => Self::Poweroff,
            "reboot" => Self::Reboot,
            "suspend" => Self::Suspend,
            "crash" => Self::Crash,
            "watchdog" => Self::Watchdog,
            "soft-reset" => Self::SoftReset,
            "timeout" => Self::Timeout,
            "vanished" => Self::Vanished,
            "create-failed" => Self::CreateFailed,
            "script-failed" => Self::ScriptFailed,
            "not-run" => Self::NotRun,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Poweroff => "poweroff",
            Self::Reboot => "reboot",
            Self::Suspend => "suspend",
            Self::Crash => "crash",
            Self::Watchdog => "watchdog",
            Self::SoftReset => "soft-reset",
            Self::Timeout => "timeout",
            Self::Vanished => "vanished",
            Self::CreateFailed => "create-failed",
            Self::ScriptFailed => "script-failed",
            Self::NotRun => "not-run",
        }
    }
    /// The exit status `cargo xtask run` uses for this outcome (documented in its --help).
    pub fn exit_code(self) -> i32 {
        match self {
            Self::Poweroff => 0,
            Self::Reboot => 10,
            Self::Crash => 11,
            Self::Suspend => 12,
            Self::Watchdog => 13,
            Self::SoftReset => 14,
            Self::Timeout => 20,
            Self::CreateFailed => 21,
            Self::ScriptFailed => 22,
            Self::NotRun => 23,
            Self::Vanished => 24,
        }
    }
}

impl fmt::Display for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a dom0 script ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptStatus {
    Exited(i32),
    /// Still running after the grace period: killed.
    Killed,
}

/// What the lab recorded for one guest.
#[derive(Debug, Clone)]
pub struct GuestOutcome {
    pub name: String,
    pub shutdown: Shutdown,
    pub domid: Option<u32>,
    /// Duration of `xl create -p` (domain build, paused).
    pub create: Option<Duration>,
    /// From the start of `xl create` to the first complete console line.
    pub first_console_line: Option<Duration>,
    /// The guest's console, as logged by xenconsoled.
    pub console: String,
    /// Console lines with their time since the start of `xl create`.
    pub console_timed: Vec<(Duration, String)>,
    pub script_status: Option<ScriptStatus>,
    pub script_output: String,
    pub xl_create_log: String,
    /// Xen's log (`xl dmesg`) while this guest ran.
    pub xl_dmesg: String,
    /// Where all of the above lives on the host.
    pub dir: PathBuf,
}

impl GuestOutcome {
    /// The last `n` console lines.
    pub fn console_tail(&self, n: usize) -> String {
        let lines: Vec<&str> = self.console.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// The guest's panic message, if its console shows one.
    pub fn panic_message(&self) -> Option<&str> {
        self.console.lines().rev().find(|l| {
            l.contains("PANIC") || l.contains("panicked at") || l.contains("Kernel panic")
        })
    }

    /// Checks the outcome against the spec's expectations; the error is a readable report
    /// (reason, unmatched patterns, console tail, script output, Xen log tail).
    pub fn check(&self, spec: &GuestSpec) -> Result<(), String> {
        let mut problems = Vec::new();
        if self.shutdown != spec.expect_shutdown {
            problems.push(format!(
                "ended with {}, expected {}",
                self.shutdown, spec.expect_shutdown
            ));
        }
        for pattern in &spec.expect_console {
            match Regex::new(pattern) {
                Ok(re) if re.is_match(&self.console) => {}
                Ok(_) => problems.push(format!("console never matched /{pattern}/")),
                Err(e) => problems.push(format!("bad expectation regex /{pattern}/: {e}")),
            }
        }
        if spec
            .dom0_script
            .as_ref()
            .is_some_and(|s| s.mode == ScriptMode::Background)
            && self.script_status != Some(ScriptStatus::Exited(0))
        {
            problems.push(format!(
                "dom0 script ended with {:?}, expected exit 0",
                self.script_status
            ));
        }
        if problems.is_empty() {
            return Ok(());
        }
        Err(self.report(&problems.join("; ")))
    }

    /// A multi-line report for a failed guest.
    pub fn report(&self, headline: &str) -> String {
        let mut r = format!("guest `{}`: {headline}\n", self.name);
        if let Some(panic) = self.panic_message() {
            r += &format!("panic: {panic}\n");
        }
        r += &format!(
            "---- console (last 25 lines) ----\n{}\n",
            self.console_tail(25)
        );
        if self.shutdown == Shutdown::CreateFailed {
            r += &format!(
                "---- xl create ----\n{}\n",
                last_lines(&self.xl_create_log, 25)
            );
        }
        if !self.script_output.is_empty() {
            r += &format!(
                "---- dom0 script ({:?}) ----\n{}\n",
                self.script_status,
                last_lines(&self.script_output, 25)
            );
        }
        if matches!(
            self.shutdown,
            Shutdown::Crash | Shutdown::CreateFailed | Shutdown::Timeout
        ) {
            r += &format!(
                "---- xl dmesg (last 15 lines) ----\n{}\n",
                last_lines(&self.xl_dmesg, 15)
            );
        }
        r += &format!("(all logs: {})", self.dir.display());
        r
    }
}

fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
