//! Boots the lab once and runs a list of guests in that boot.
//!
//! The host writes a job disk (ext4 via `mkfs.ext4 -d`, no mount) holding the dom0 runner
//! script and one directory per guest, boots Xen + dom0 in QEMU with that disk as
//! `/dev/vdb`, streams progress from the serial console (lines starting `@@LAB `), and when
//! dom0 has rebooted (QEMU exits: `-no-reboot`) reads the results back with `debugfs`.

use super::image::{LabImage, LabLock, cache_root};
use super::{GuestOutcome, GuestSpec, ScriptMode, ScriptStatus, Shutdown};
use crate::elf;
use crate::progress::{self, say, seconds};
use crate::xlcfg::XlConfig;
use anyhow::{Context, Result, bail};
use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const RUN_SUITE: &str = include_str!("../../lab/run-suite.sh");
/// Seconds a background dom0 script gets to exit after its guest ended.
const SCRIPT_GRACE_SECS: u64 = 10;
/// Lab runs kept under `<cache>/runs`.
const KEPT_RUNS: usize = 6;

const XEN_CMDLINE: &str = "console=com1 com1=115200,8n1 dom0_mem=1024M,max:1024M dom0_max_vcpus=2 \
     loglvl=all guest_loglvl=all smap=0 smep=0";
const DOM0_CMDLINE: &str =
    "console=hvc0 earlyprintk=xen root=/dev/vda rw init=/usr/sbin/lab-init quiet loglevel=4";

#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Print every serial line (Xen, dom0 kernel), not only progress and guest consoles.
    pub verbose: bool,
    /// Limit for QEMU start -> dom0 ready (TCG on a busy 2-core machine can take 70 s).
    pub boot_timeout: Duration,
    pub memory_mib: u32,
}

impl Default for RunOptions {
    /// `XEN_LAB_VERBOSE=1` in the environment turns `verbose` on (e.g. to debug CI).
    fn default() -> Self {
        Self {
            verbose: std::env::var_os("XEN_LAB_VERBOSE").is_some_and(|v| v != "0"),
            boot_timeout: Duration::from_secs(300),
            memory_mib: 2048,
        }
    }
}

/// The results of one lab boot.
#[derive(Debug, Clone)]
pub struct LabRun {
    /// Per guest, in the order given.
    pub guests: Vec<GuestOutcome>,
    /// QEMU start -> dom0 ready.
    pub dom0_ready: Option<Duration>,
    /// QEMU start -> QEMU exit.
    pub total: Duration,
    pub run_dir: PathBuf,
    pub serial_log: PathBuf,
}

impl LabRun {
    pub fn guest(&self, name: &str) -> Option<&GuestOutcome> {
        self.guests.iter().find(|g| g.name == name)
    }
}

/// Checks the specs on the host (names, files, kernels' Xen notes, cfg syntax), so bad input
/// fails before anything boots.
pub fn validate(guests: &[GuestSpec]) -> Result<()> {
    let mut names = HashSet::new();
    for g in guests {
        if g.name.is_empty()
            || !g
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bail!(
                "guest name `{}` must be non-empty and use only A-Z a-z 0-9 - _",
                g.name
            );
        }
        if !names.insert(g.name.as_str()) {
            bail!("guest name `{}` appears twice in one lab run", g.name);
        }
        let kernel = fs::read(&g.kernel).with_context(|| {
            format!(
                "guest `{}`: cannot read kernel {}",
                g.name,
                g.kernel.display()
            )
        })?;
        elf::inspect(&kernel).with_context(|| {
            format!(
                "guest `{}`: {} is not a bootable PV kernel",
                g.name,
                g.kernel.display()
            )
        })?;
        let cfg = fs::read_to_string(&g.cfg).with_context(|| {
            format!(
                "guest `{}`: cannot read xl config {}",
                g.name,
                g.cfg.display()
            )
        })?;
        XlConfig::parse(&cfg)
            .with_context(|| format!("guest `{}`: bad xl config {}", g.name, g.cfg.display()))?;
        if let Some(bad) = g
            .xl_overrides
            .iter()
            .find(|o| !o.contains('=') || o.contains('\n'))
        {
            bail!(
                "guest `{}`: xl override `{bad}` is not one `key=value` setting",
                g.name
            );
        }
        for f in g.ramdisk.iter().chain(&g.extra_files) {
            if !f.is_file() {
                bail!("guest `{}`: no such file {}", g.name, f.display());
            }
        }
    }
    Ok(())
}

/// Boots the lab and runs `guests` one after the other; returns when QEMU has exited.
/// An error means the lab itself failed (bad input, dom0 never came up); guest failures are
/// in the outcomes.
pub fn run_guests(image: &LabImage, guests: &[GuestSpec], options: &RunOptions) -> Result<LabRun> {
    validate(guests)?;
    let root = cache_root();
    let _lock = LabLock::acquire(&root)?;
    // Between the caller's ensure_image and this lock, another checkout's xtask (an older
    // version sharing the cache) may have removed the image: rebuild it then.
    let rebuilt;
    let image = if image.dir.join(".complete").exists() && image.qemu.exists() {
        image
    } else {
        say(format!(
            "the lab image {} went away; rebuilding it",
            image.dir.display()
        ));
        rebuilt = super::image::ensure_image_locked(&root, false, Instant::now())?;
        &rebuilt
    };
    let run_dir = new_run_dir(&root)?;
    let job = run_dir.join("job");
    stage_job(&job, guests)?;
    let job_img = run_dir.join("job.ext4");
    let staged_kib = progress::output(Command::new("du").arg("-sk").arg(&job))?
        .split_whitespace()
        .next()
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    progress::output(
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "lab-job", "-E", "root_owner=0:0", "-d"])
            .arg(&job)
            .arg(&job_img)
            .arg(format!("{}M", staged_kib * 2 / 1024 + 64)),
    )
    .context("cannot make the job disk (mkfs.ext4 -d)")?;

    let serial_log = run_dir.join("serial.log");
    let hard_limit = options.boot_timeout
        + guests
            .iter()
            .map(|g| g.timeout + Duration::from_secs(SCRIPT_GRACE_SECS + 30))
            .sum::<Duration>();
    let started = Instant::now();
    let mut qemu = QemuGuard(Some(spawn_qemu(image, &job_img, options.memory_mib)?));
    say(format!(
        "booting Xen {} + Debian dom0 in QEMU (TCG), {} guest(s); logs in {}",
        "4.17",
        guests.len(),
        run_dir.display()
    ));

    let stdout = qemu
        .0
        .as_mut()
        .and_then(|c| c.stdout.take())
        .context("QEMU stdout")?;
    let (tx, rx) = mpsc::channel::<Vec<u8>>();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    });

    let mut serial = fs::File::create(&serial_log)?;
    let mut stream = Stream::new(options.verbose, started);
    let mut timed_out = false;
    loop {
        let limit = if stream.dom0_ready.is_none() {
            options.boot_timeout
        } else {
            hard_limit
        };
        let Some(left) = limit.checked_sub(started.elapsed()) else {
            timed_out = true;
            break;
        };
        match rx.recv_timeout(left.min(Duration::from_secs(1))) {
            Ok(raw) => {
                // Host-side time stamps show where a slow boot spends its time.
                write!(serial, "[{:8.3}] ", started.elapsed().as_secs_f64())?;
                serial.write_all(&raw)?;
                stream.line(&String::from_utf8_lossy(&raw));
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let qemu_status = qemu.finish(timed_out)?;
    let total = started.elapsed();
    serial.flush()?;

    // debugfs exits 0 even when a request fails: check that the tree arrived.
    let results = run_dir.join("results");
    fs::create_dir_all(&results)?;
    let dump = progress::output(
        Command::new("debugfs")
            .arg("-R")
            .arg(format!("rdump /out {}", results.display()))
            .arg(&job_img),
    );
    let out = results.join("out");
    if dump.is_err() || !out.is_dir() {
        bail!(
            "cannot read the results off the job disk {} (debugfs rdump /out): {dump:?}",
            job_img.display()
        );
    }
    let _ = fs::remove_file(&job_img);
    let outcomes: Vec<GuestOutcome> = guests
        .iter()
        .map(|g| read_outcome(&out.join(&g.name), g))
        .collect::<Result<_>>()?;

    if stream.dom0_ready.is_none() {
        let why = if timed_out {
            format!(
                "dom0 did not become ready within {}",
                seconds(options.boot_timeout)
            )
        } else {
            format!("QEMU exited ({qemu_status}) before dom0 was ready")
        };
        bail!(
            "the Xen lab did not boot: {why}.\n---- last serial lines ----\n{}\n(full serial log: {})",
            progress::tail(&serial_log, 30).unwrap_or_default(),
            serial_log.display()
        );
    }
    if timed_out {
        say(format!(
            "the lab hit its overall limit of {} and was stopped",
            seconds(hard_limit)
        ));
    }
    Ok(LabRun {
        guests: outcomes,
        dom0_ready: stream.dom0_ready,
        total,
        run_dir,
        serial_log,
    })
}

fn spawn_qemu(image: &LabImage, job_img: &Path, memory_mib: u32) -> Result<Child> {
    let mut cmd = qemu_command(image, "", memory_mib);
    cmd.arg("-drive")
        .arg(format!("file={},if=virtio,format=raw", job_img.display()));
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    cmd.spawn()
        .with_context(|| format!("cannot start {}", image.qemu.display()))
}

/// QEMU with Xen, dom0 and dom0's root disk; the serial console on stdio.
fn qemu_command(image: &LabImage, extra_dom0_args: &str, memory_mib: u32) -> Command {
    let mut cmd = Command::new(&image.qemu);
    cmd.args([
        "-accel",
        "tcg,thread=multi",
        "-cpu",
        "max",
        "-smp",
        "2",
        "-m",
        &memory_mib.to_string(),
    ]);
    cmd.args([
        "-nodefaults",
        "-display",
        "none",
        "-no-reboot",
        "-monitor",
        "none",
    ]);
    cmd.args([
        "-chardev",
        "stdio,id=serial0,signal=off",
        "-serial",
        "chardev:serial0",
    ]);
    for dir in &image.qemu_data_dirs {
        cmd.arg("-L").arg(dir);
    }
    cmd.arg("-kernel")
        .arg(&image.xen)
        .args(["-append", XEN_CMDLINE]);
    // Multiboot modules: "path cmdline" separated by ',' (cache_root() has neither ',' nor ' ').
    cmd.arg("-initrd").arg(format!(
        "{} {DOM0_CMDLINE} {extra_dom0_args},{}",
        image.dom0_kernel.display(),
        image.dom0_initrd.display()
    ));
    cmd.arg("-drive").arg(format!(
        "file={},if=virtio,format=raw,snapshot=on",
        image.dom0_root.display()
    ));
    cmd
}

/// Boots the lab with a root shell on dom0's console, attached to this terminal.
pub fn interactive_shell(image: &LabImage) -> Result<std::process::ExitStatus> {
    let _lock = LabLock::acquire(&cache_root())?;
    let mut cmd = qemu_command(image, "lab.shell=1", 2048);
    cmd.stdin(Stdio::inherit()).stdout(Stdio::inherit());
    say("booting the lab with a dom0 shell (about 30-60 s; `exit` shuts it down)");
    Ok(cmd.status()?)
}

/// Kills QEMU if the run is abandoned (error, panic, timeout).
struct QemuGuard(Option<Child>);

impl QemuGuard {
    fn finish(&mut self, kill: bool) -> Result<std::process::ExitStatus> {
        let mut child = self.0.take().expect("finished once");
        if kill {
            let _ = child.kill();
        }
        Ok(child.wait()?)
    }
}

impl Drop for QemuGuard {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Progress shown while the lab runs.
struct Stream {
    verbose: bool,
    started: Instant,
    dom0_ready: Option<Duration>,
}

impl Stream {
    fn new(verbose: bool, started: Instant) -> Self {
        Self {
            verbose,
            started,
            dom0_ready: None,
        }
    }

    fn lab(&self, message: &str) {
        eprintln!(
            "[lab {:6.1}s] {message}",
            self.started.elapsed().as_secs_f64()
        );
    }

    fn line(&mut self, raw: &str) {
        let line = raw.trim_end_matches(['\n', '\r']);
        let Some(at) = line.find("@@LAB ") else {
            let alarming = [
                "Panic on CPU",
                "Kernel panic",
                "Hardware Dom0 crashed",
                "Oops:",
                "BUG:",
            ];
            if self.verbose {
                eprintln!("  | {line}");
            } else if alarming.iter().any(|a| line.contains(a)) {
                self.lab(line);
            }
            return;
        };
        let message = &line[at + 6..];
        let (event, rest) = message.split_once(' ').unwrap_or((message, ""));
        match event {
            "con" | "script" => {
                let (name, text) = rest.split_once(' ').unwrap_or((rest, ""));
                let tag = if event == "con" {
                    name.to_owned()
                } else {
                    format!("{name} (dom0)")
                };
                eprintln!("{tag}| {text}");
            }
            "dom0-up" => self.lab(&format!("dom0 kernel up ({rest})")),
            "dom0-ready" => {
                let t = self.started.elapsed();
                self.dom0_ready = Some(t);
                self.lab(&format!(
                    "dom0 ready: xenstored, xenconsoled, backends ({} after QEMU start)",
                    seconds(t)
                ));
            }
            "guest-start" => self.lab(&format!("{rest}: xl create")),
            "guest-running" => self.lab(&format!("running {rest}")),
            "guest-end" => self.lab(&format!("ended {rest}")),
            "dom0-done" => self.lab("all guests done; dom0 shutting down"),
            "trace" if !self.verbose => {}
            _ => self.lab(message),
        }
    }
}

fn new_run_dir(root: &Path) -> Result<PathBuf> {
    let runs = root.join("runs");
    fs::create_dir_all(&runs)?;
    let mut old: Vec<PathBuf> = fs::read_dir(&runs)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    old.sort();
    for dir in old.iter().rev().skip(KEPT_RUNS - 1) {
        let _ = fs::remove_dir_all(dir);
    }
    let stamp = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let dir = runs.join(format!("{stamp}-{}", std::process::id()));
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Writes the job tree: the runner, the guest list, and one directory per guest.
fn stage_job(job: &Path, guests: &[GuestSpec]) -> Result<()> {
    fs::create_dir_all(job.join("out"))?;
    write_mode(&job.join("run-suite.sh"), RUN_SUITE.as_bytes(), 0o755)?;
    let list: String = guests.iter().map(|g| format!("{}\n", g.name)).collect();
    fs::write(job.join("suite.list"), list)?;
    for g in guests {
        let dir = job.join("g").join(&g.name);
        fs::create_dir_all(&dir)?;
        link_or_copy(&g.kernel, &dir.join("kernel"))?;
        link_or_copy(&g.cfg, &dir.join("guest.cfg"))?;
        if let Some(ramdisk) = &g.ramdisk {
            link_or_copy(ramdisk, &dir.join("ramdisk"))?;
        }
        for extra in &g.extra_files {
            let name = extra
                .file_name()
                .with_context(|| format!("extra file {} has no name", extra.display()))?;
            if [
                "kernel",
                "guest.cfg",
                "ramdisk",
                "params",
                "dom0.sh",
                "xl-overrides",
            ]
            .iter()
            .any(|r| name == *r)
            {
                bail!("guest `{}`: extra file name {:?} is reserved", g.name, name);
            }
            link_or_copy(extra, &dir.join(name))?;
        }
        let overrides: String = g.xl_overrides.iter().map(|o| format!("{o}\n")).collect();
        fs::write(dir.join("xl-overrides"), overrides)?;
        let mode = match &g.dom0_script {
            None => "none",
            Some(script) => {
                let mut text = script.script.clone();
                if !text.starts_with("#!") {
                    text.insert_str(0, "#!/bin/bash\n");
                }
                write_mode(&dir.join("dom0.sh"), text.as_bytes(), 0o755)?;
                match script.mode {
                    ScriptMode::Before => "before",
                    ScriptMode::Background => "background",
                }
            }
        };
        fs::write(
            dir.join("params"),
            format!(
                "TIMEOUT={}\nSCRIPT_MODE={mode}\nSCRIPT_GRACE={SCRIPT_GRACE_SECS}\n",
                g.timeout.as_secs().max(1)
            ),
        )?;
    }
    Ok(())
}

fn write_mode(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    fs::write(path, data)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))?;
    Ok(())
}

fn link_or_copy(from: &Path, to: &Path) -> Result<()> {
    if fs::hard_link(from, to).is_err() {
        fs::copy(from, to)
            .with_context(|| format!("cannot copy {} to the job disk", from.display()))?;
    }
    Ok(())
}

/// Reads one guest's results directory (absent: the lab never got to it).
fn read_outcome(dir: &Path, spec: &GuestSpec) -> Result<GuestOutcome> {
    let read = |name: &str| {
        fs::read(dir.join(name))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    };
    let result = parse_result(&read("result"));
    let ms = |key: &str| {
        result
            .get(key)
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis)
    };
    let shutdown = match result.get("reason") {
        Some(r) => Shutdown::parse(r)
            .with_context(|| format!("guest `{}`: unknown result reason `{r}`", spec.name))?,
        None => Shutdown::NotRun,
    };
    let script_status = match result.get("script_status").map(String::as_str) {
        None | Some("none") | Some("") => None,
        Some("killed") => Some(ScriptStatus::Killed),
        Some(code) => code.parse().ok().map(ScriptStatus::Exited),
    };
    Ok(GuestOutcome {
        name: spec.name.clone(),
        shutdown,
        domid: result.get("domid").and_then(|d| d.parse().ok()),
        create: ms("create_ms"),
        first_console_line: ms("first_console_ms"),
        console: read("console.log"),
        console_timed: parse_timed(&read("console.timed")),
        script_status,
        script_output: read("dom0-script.log"),
        xl_create_log: read("xl-create.log"),
        xl_dmesg: read("xl-dmesg.log"),
        dir: dir.to_owned(),
    })
}

fn parse_result(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn parse_timed(text: &str) -> Vec<(Duration, String)> {
    text.lines()
        .filter_map(|l| {
            let (ms, line) = l.split_once(' ').unwrap_or((l, ""));
            Some((Duration::from_millis(ms.parse().ok()?), line.to_owned()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn result_files_parse() {
        let r = parse_result("reason=crash\ndomid=3\ncreate_ms=912\nfirst_console_ms=\n");
        assert_eq!(r["reason"], "crash");
        assert_eq!(r["first_console_ms"], "");
        let t = parse_timed("1500 hello world\n1502 \nbad line\n");
        assert_eq!(
            t,
            vec![
                (Duration::from_millis(1500), "hello world".into()),
                (Duration::from_millis(1502), String::new())
            ]
        );
    }

    #[test]
    fn missing_results_mean_not_run() {
        let spec = GuestSpec::new("g", "/nonexistent", "/nonexistent");
        let outcome = read_outcome(Path::new("/nonexistent/results/g"), &spec).unwrap();
        assert_eq!(outcome.shutdown, Shutdown::NotRun);
        assert!(spec.expect_shutdown == Shutdown::Poweroff && outcome.check(&spec).is_err());
    }

    #[test]
    fn bad_specs_are_rejected_before_booting() {
        let dir = std::env::temp_dir().join(format!("xtask-validate-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let cfg = dir.join("g.cfg");
        fs::write(&cfg, "name = \"g\"\n").unwrap();
        let not_pv = dir.join("not-pv");
        fs::write(
            &not_pv,
            b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0",
        )
        .unwrap();
        let err = validate(&[GuestSpec::new("g", &not_pv, &cfg)]).unwrap_err();
        assert!(
            format!("{err:#}").contains("not a bootable PV kernel"),
            "{err:#}"
        );
        let err = validate(&[GuestSpec::new("bad name", &not_pv, &cfg)]).unwrap_err();
        assert!(err.to_string().contains("must be non-empty"));
        let err = validate(&[GuestSpec::new("g", dir.join("missing"), &cfg)]).unwrap_err();
        assert!(err.to_string().contains("cannot read kernel"));
        fs::remove_dir_all(&dir).unwrap();
    }
}
