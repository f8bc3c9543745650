//! Console output of long-running steps: a status line with the elapsed time and the step's
//! latest output line (redrawn in place on a terminal, a line every 15 s otherwise), the
//! step's full output in a log file, and its tail when it fails.

use anyhow::{Context, Result, bail};
use std::fs::File;
use std::io::{IsTerminal, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Prints one line of the tool's own output.
pub fn say(message: impl AsRef<str>) {
    eprintln!("[xtask] {}", message.as_ref());
}

pub fn seconds(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Runs `command` with stdout+stderr going to `log`, showing progress; on failure prints the
/// log's tail and returns an error naming the step and the log.
pub fn run_step(title: &str, command: &mut Command, log: &Path) -> Result<Duration> {
    let started = Instant::now();
    let file = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(file.try_clone()?)
        .stderr(file)
        .spawn()
        .with_context(|| format!("{title}: cannot start {:?}", command.get_program()))?;
    let tty = std::io::stderr().is_terminal();
    let mut last_report = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        std::thread::sleep(Duration::from_millis(250));
        let every = if tty {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(15)
        };
        if last_report.elapsed() >= every {
            last_report = Instant::now();
            let latest = last_line(log).unwrap_or_default();
            let line = format!(
                "[xtask] {title} ... {:>4}s  {latest}",
                started.elapsed().as_secs()
            );
            if tty {
                let width = terminal_width().saturating_sub(1);
                eprint!("\r\x1b[K{}", line.chars().take(width).collect::<String>());
            } else {
                eprintln!("{line}");
            }
        }
    };
    if tty {
        eprint!("\r\x1b[K");
    }
    let elapsed = started.elapsed();
    if !status.success() {
        eprintln!("---- last lines of {} ----", log.display());
        eprintln!("{}", tail(log, 20).unwrap_or_default());
        bail!(
            "{title} failed ({status}) after {}; full log: {}",
            seconds(elapsed),
            log.display()
        );
    }
    say(format!("{title}: done in {}", seconds(elapsed)));
    Ok(elapsed)
}

/// Runs a short command, capturing its output; an error carries its stderr.
pub fn output(command: &mut Command) -> Result<String> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {:?}", command.get_program()))?;
    if !out.status.success() {
        bail!(
            "{:?} failed ({}): {}",
            command,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The last `n` lines of a file.
pub fn tail(path: &Path, n: usize) -> Result<String> {
    let text = read_end(path, 64 * 1024)?;
    let lines: Vec<&str> = text.lines().collect();
    Ok(lines[lines.len().saturating_sub(n)..].join("\n"))
}

fn last_line(path: &Path) -> Result<String> {
    let text = read_end(path, 4096)?;
    Ok(text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_owned())
}

fn read_end(path: &Path, max: u64) -> Result<String> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    f.seek(SeekFrom::Start(len.saturating_sub(max)))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).replace('\r', "\n"))
}

fn terminal_width() -> usize {
    // SAFETY: TIOCGWINSZ writes a `winsize` into the struct we pass, nothing else.
    unsafe {
        let mut size: libc::winsize = std::mem::zeroed();
        if libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) == 0 && size.ws_col > 0 {
            return usize::from(size.ws_col);
        }
    }
    100
}

/// Flushes stderr (progress lines are written without a newline on a terminal).
pub fn flush() {
    let _ = std::io::stderr().flush();
}
