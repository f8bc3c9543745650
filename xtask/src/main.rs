//! `cargo xtask`: the project's developer CLI. See `cargo xtask --help`.

use anyhow::{Context, Result, bail};
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Duration;
use xtask::lab::{self, GuestSpec, RunOptions, ScriptMode, Shutdown};
use xtask::progress::{say, seconds};
use xtask::{direct, elf, guests, setup, suite};

const HELP: &str = "\
cargo xtask <command>: build and run Xen PV guests, build and boot the Xen lab, run the tests

COMMANDS
  run <guest> [--cmdline STR] [--lab] [--timeout SECS] [-v]
      Build guests/<guest> and boot it with xl-configs/<guest>.cfg: with `xl create` when
      this machine is a Xen dom0 (xl on PATH, /proc/xen/capabilities has control_d), else
      in the Xen lab (Xen 4.17 in QEMU; --lab forces it). Streams the guest console and exits
      with the guest's shutdown reason (below). --cmdline replaces the cfg's extra= (e.g.
      `--cmdline panic`). Default timeout 60 s; -v also shows Xen's and dom0's console.
  xl-run <kernel> <cfg> [--name N] [--cmdline STR] [--timeout SECS]
      On a Xen dom0: run a built kernel with `xl create` (as `run` does there), stream its
      console, exit with its shutdown reason.
  build [<guest>]
      Build all guests (or one): cargo build --release in guests/.
  test
      What CI runs (.ci/run): set-up, every host test (cargo test --workspace), then the
      end-to-end suite (xtask/src/suite.rs) in one lab boot (cargo test -p xtask --test e2e).
  lab build [--force]
      Build the lab image if missing or stale (cached under $XEN_LAB_CACHE, else
      ~/.cache/rust-xen-pv/xen-lab; --force rebuilds it from scratch).
  lab run <kernel> <cfg> [--name N] [--ramdisk F] [--extra F]... [--script F]
          [--script-mode before|background] [--expect REGEX]... [--timeout SECS] [-v]
      Boot the lab and run one guest from explicit files (exit status as for `run`, or 1 when
      an --expect pattern did not match).
  lab shell
      Boot the lab with an interactive root shell on dom0's console (exit the shell to stop).
  check-kernel <file>
      Check that a file is a PV kernel Xen can boot (Xen ELF notes) and list its notes.
  setup
      Install what the project needs: Debian packages and the x86_64-unknown-none target.

EXIT STATUS of `run` and `lab run`
  0 poweroff   10 reboot   11 crash   12 suspend   13 watchdog   14 soft-reset
  20 timeout   21 xl create failed   22 dom0 script failed   23 not run (lab failed)
  24 vanished (the domain was destroyed by something else)
  1 error (bad input, set-up or lab failure; one line says what)   2 usage

ENVIRONMENT
  XEN_LAB_CACHE    lab cache directory (default ~/.cache/rust-xen-pv/xen-lab)
  XEN_LAB_VERBOSE  1: show Xen's and dom0's whole console in lab runs (as -v)
  CARGO_TARGET_DIR honoured for all builds
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(code) => ExitCode::from(code),
        Err(e) if e.downcast_ref::<Usage>().is_some() => {
            eprintln!("error: {e}\n(see `cargo xtask --help`)");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

#[derive(Debug)]
struct Usage(String);
impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Usage {}

fn usage(message: impl Into<String>) -> anyhow::Error {
    Usage(message.into()).into()
}

/// Options of one command: flags with values, repeatable; the rest are positional.
struct Args {
    positional: Vec<String>,
    flags: Vec<(String, Option<String>)>,
}

impl Args {
    fn parse(args: &[String], with_value: &[&str], switches: &[&str]) -> Result<Self> {
        let mut parsed = Args {
            positional: Vec::new(),
            flags: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            if with_value.contains(&arg.as_str()) {
                let value = it
                    .next()
                    .ok_or_else(|| usage(format!("{arg} needs a value")))?;
                parsed.flags.push((arg.clone(), Some(value.clone())));
            } else if switches.contains(&arg.as_str()) {
                parsed.flags.push((arg.clone(), None));
            } else if arg.starts_with('-') {
                return Err(usage(format!("unknown option {arg}")));
            } else {
                parsed.positional.push(arg.clone());
            }
        }
        Ok(parsed)
    }
    fn has(&self, flag: &str) -> bool {
        self.flags.iter().any(|(f, _)| f == flag)
    }
    fn values(&self, flag: &str) -> Vec<String> {
        self.flags
            .iter()
            .filter(|(f, _)| f == flag)
            .filter_map(|(_, v)| v.clone())
            .collect()
    }
    fn value(&self, flag: &str) -> Option<String> {
        self.values(flag).pop()
    }
    fn timeout(&self) -> Result<Duration> {
        match self.value("--timeout") {
            None => Ok(Duration::from_secs(60)),
            Some(v) => v
                .parse()
                .map(Duration::from_secs)
                .map_err(|_| usage(format!("--timeout {v}: not a number of seconds"))),
        }
    }
}

fn dispatch(args: &[String]) -> Result<u8> {
    let Some(command) = args.first() else {
        print!("{HELP}");
        return Ok(0);
    };
    let rest = &args[1..];
    match command.as_str() {
        "-h" | "--help" | "help" => {
            print!("{HELP}");
            Ok(0)
        }
        "run" => run(rest),
        "build" => {
            let a = Args::parse(rest, &[], &[])?;
            setup::ensure_guest_target()?;
            let kernels = guests::build(
                &guests::repo_root(),
                a.positional.first().map(String::as_str),
            )?;
            for (name, path) in kernels {
                say(format!("{name}: {}", path.display()));
            }
            Ok(0)
        }
        "test" => test(rest),
        "setup" => {
            setup_machine()?;
            Ok(0)
        }
        "check-kernel" => check_kernel(rest),
        "xl-run" => xl_run(rest),
        "lab" => match rest.first().map(String::as_str) {
            Some("build") => {
                let a = Args::parse(&rest[1..], &[], &["--force"])?;
                lab::ensure_image(a.has("--force"))?;
                Ok(0)
            }
            Some("run") => lab_run(&rest[1..]),
            Some("shell") => {
                let image = lab::ensure_image(false)?;
                let status = lab::runner::interactive_shell(&image)?;
                Ok(if status.success() { 0 } else { 1 })
            }
            _ => Err(usage("`cargo xtask lab` needs build, run or shell")),
        },
        other => Err(usage(format!("unknown command `{other}`"))),
    }
}

fn logs_dir() -> PathBuf {
    lab::image::cache_root().join("logs")
}

fn setup_machine() -> Result<()> {
    let mut packages: Vec<&str> = setup::HOST_TEST_PACKAGES.to_vec();
    packages.extend(setup::LAB_HOST_PACKAGES);
    setup::ensure_packages(&packages, &logs_dir())?;
    setup::ensure_guest_target()
}

fn check_kernel(args: &[String]) -> Result<u8> {
    let [file] = args else {
        return Err(usage("check-kernel takes one file"));
    };
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {file}"))?;
    match elf::inspect(&bytes).with_context(|| format!("{file} is not a bootable PV kernel"))? {
        elf::KernelImage::LinuxBzImage => println!("{file}: Linux bzImage"),
        elf::KernelImage::XenElf(notes) => {
            println!("{file}: PV ELF with {} Xen notes", notes.len());
            for n in notes {
                let name = xen_abi::elfnote::name(n.kind).unwrap_or("?");
                match n.as_str().filter(|s| {
                    !s.is_empty() && s.chars().all(|c| c.is_ascii_graphic() || c == ' ')
                }) {
                    Some(s) => println!("  {:>2} {name:<18} {s:?}", n.kind),
                    None => {
                        let mut b = [0u8; 8];
                        let len = n.desc.len().min(8);
                        b[..len].copy_from_slice(&n.desc[..len]);
                        println!("  {:>2} {name:<18} {:#x}", n.kind, u64::from_le_bytes(b))
                    }
                }
            }
        }
    }
    Ok(0)
}

/// `cargo xtask run <guest>`.
fn run(args: &[String]) -> Result<u8> {
    let a = Args::parse(
        args,
        &["--timeout", "--cmdline"],
        &["--lab", "-v", "--verbose"],
    )?;
    let [guest] = a.positional.as_slice() else {
        return Err(usage(
            "run takes one guest name, e.g. `cargo xtask run hello`",
        ));
    };
    let root = guests::repo_root();
    let known = guests::guest_names(&root).unwrap_or_default();
    if !known.contains(guest) {
        bail!(
            "no guest named `{guest}`: the guests are the packages under guests/ ({})",
            if known.is_empty() {
                "none yet".to_owned()
            } else {
                known.join(", ")
            }
        );
    }
    let cfg = guests::guest_cfg(&root, guest);
    if !cfg.is_file() {
        bail!("guest `{guest}` has no xl config: create {}", cfg.display());
    }
    let cfg_text = std::fs::read_to_string(&cfg)?;
    let parsed = xtask::xlcfg::XlConfig::parse(&cfg_text)
        .with_context(|| format!("bad xl config {}", cfg.display()))?;
    if parsed.string("kernel").is_none() {
        bail!(
            "{} has no kernel=\"...\" line: xl cannot create the guest without one",
            cfg.display()
        );
    }
    setup::ensure_guest_target()?;
    let kernels = guests::build(&root, Some(guest))?;
    let kernel = kernels
        .get(guest)
        .with_context(|| format!("cargo built no executable named `{guest}` in guests/{guest}"))?;
    let bytes = std::fs::read(kernel)
        .with_context(|| format!("cannot read the built kernel {}", kernel.display()))?;
    elf::inspect(&bytes)
        .with_context(|| format!("{} is not a bootable PV kernel", kernel.display()))?;
    let timeout = a.timeout()?;
    let overrides = cmdline_override(&a)?;

    let shutdown = if direct::is_xen_dom0() && !a.has("--lab") {
        say(format!(
            "this machine is a Xen dom0: xl create {}",
            cfg.display()
        ));
        direct::run(&cfg, kernel, guest, &overrides, timeout)?
    } else {
        let mut spec = GuestSpec::new(guest.as_str(), kernel, &cfg).timeout(timeout);
        spec.xl_overrides = overrides;
        let image = lab::ensure_image(false)?;
        let options = RunOptions {
            verbose: a.has("-v") || a.has("--verbose") || RunOptions::default().verbose,
            ..RunOptions::default()
        };
        let run = lab::run_guests(&image, &[spec], &options)?;
        let outcome = &run.guests[0];
        report_outcome(outcome);
        say(format!(
            "dom0 ready {} after QEMU start; logs in {}",
            run.dom0_ready.map(seconds).unwrap_or_default(),
            outcome.dir.display()
        ));
        outcome.shutdown
    };
    say(format!(
        "guest `{guest}` ended: {shutdown} (exit status {})",
        shutdown.exit_code()
    ));
    Ok(shutdown.exit_code() as u8)
}

fn report_outcome(outcome: &lab::GuestOutcome) {
    let opt = |d: Option<Duration>| d.map(seconds).unwrap_or_else(|| "-".into());
    say(format!(
        "{}: {} (xl create {}, first console line {} after xl create)",
        outcome.name,
        outcome.shutdown,
        opt(outcome.create),
        opt(outcome.first_console_line)
    ));
    match outcome.shutdown {
        Shutdown::Poweroff => {}
        Shutdown::Crash => {
            say(format!(
                "{} crashed: {}",
                outcome.name,
                outcome
                    .panic_message()
                    .unwrap_or("(no panic message on its console)")
            ));
            eprintln!("---- last console lines ----\n{}", outcome.console_tail(10));
        }
        _ => eprintln!(
            "{}",
            outcome.report(&format!("ended with {}", outcome.shutdown))
        ),
    }
}

/// `cargo xtask xl-run <kernel> <cfg>`: the real-dom0 path without building anything.
fn xl_run(args: &[String]) -> Result<u8> {
    let a = Args::parse(args, &["--name", "--cmdline", "--timeout"], &[])?;
    let [kernel, cfg] = a.positional.as_slice() else {
        return Err(usage("xl-run takes <kernel> <cfg>"));
    };
    if !direct::is_xen_dom0() {
        bail!(
            "xl-run needs a Xen dom0 (xl on PATH and control_d in /proc/xen/capabilities); elsewhere use `cargo xtask lab run`"
        );
    }
    let bytes = std::fs::read(kernel).with_context(|| format!("cannot read kernel {kernel}"))?;
    elf::inspect(&bytes).with_context(|| format!("{kernel} is not a bootable PV kernel"))?;
    let spec = suite::adhoc(kernel.as_ref(), cfg.as_ref(), a.value("--name").as_deref())?;
    let overrides = cmdline_override(&a)?;
    let kernel = std::fs::canonicalize(kernel)?;
    say(format!("this machine is a Xen dom0: xl create {cfg}"));
    let shutdown = direct::run(cfg.as_ref(), &kernel, &spec.name, &overrides, a.timeout()?)?;
    say(format!(
        "guest `{}` ended: {shutdown} (exit status {})",
        spec.name,
        shutdown.exit_code()
    ));
    Ok(shutdown.exit_code() as u8)
}

fn cmdline_override(a: &Args) -> Result<Vec<String>> {
    let mut overrides = Vec::new();
    if let Some(cmdline) = a.value("--cmdline") {
        if cmdline.contains(['"', '\n']) {
            return Err(usage("--cmdline cannot contain '\"' or a newline"));
        }
        overrides.push(format!("extra=\"{cmdline}\""));
    }
    Ok(overrides)
}

/// `cargo xtask lab run <kernel> <cfg> ...`.
fn lab_run(args: &[String]) -> Result<u8> {
    let a = Args::parse(
        args,
        &[
            "--name",
            "--ramdisk",
            "--extra",
            "--script",
            "--script-mode",
            "--expect",
            "--timeout",
        ],
        &["-v", "--verbose"],
    )?;
    let [kernel, cfg] = a.positional.as_slice() else {
        return Err(usage("lab run takes <kernel> <cfg>"));
    };
    let mut spec = suite::adhoc(kernel.as_ref(), cfg.as_ref(), a.value("--name").as_deref())?
        .timeout(a.timeout()?);
    if let Some(r) = a.value("--ramdisk") {
        spec = spec.ramdisk(r);
    }
    for f in a.values("--extra") {
        spec = spec.extra_file(f);
    }
    for e in a.values("--expect") {
        regex::Regex::new(&e).map_err(|err| usage(format!("--expect {e}: {err}")))?;
        spec = spec.expect(e);
    }
    if let Some(path) = a.value("--script") {
        let mode = match a.value("--script-mode").as_deref() {
            None | Some("before") => ScriptMode::Before,
            Some("background") => ScriptMode::Background,
            Some(other) => {
                return Err(usage(format!(
                    "--script-mode {other}: before or background"
                )));
            }
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read dom0 script {path}"))?;
        spec = spec.dom0_script(mode, text);
    }
    lab::runner::validate(std::slice::from_ref(&spec))?;
    let image = lab::ensure_image(false)?;
    let options = RunOptions {
        verbose: a.has("-v") || a.has("--verbose") || RunOptions::default().verbose,
        ..RunOptions::default()
    };
    let run = lab::run_guests(&image, std::slice::from_ref(&spec), &options)?;
    let outcome = &run.guests[0];
    report_outcome(outcome);
    say(format!(
        "dom0 ready {} after QEMU start; whole lab run {}",
        run.dom0_ready.map(seconds).unwrap_or_default(),
        seconds(run.total)
    ));
    if !spec.expect_console.is_empty() && outcome.shutdown == Shutdown::Poweroff {
        if let Err(report) = outcome.check(&spec) {
            eprintln!("{report}");
            return Ok(1);
        }
    }
    Ok(outcome.shutdown.exit_code() as u8)
}

/// `cargo xtask test`: set-up, host tests, then the e2e suite in one lab boot. The last
/// output is cargo's test summary.
fn test(args: &[String]) -> Result<u8> {
    Args::parse(args, &[], &[])?;
    let started = std::time::Instant::now();
    setup_machine()?;
    let root = guests::repo_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    say("host tests: cargo test --workspace --no-fail-fast");
    let host = Command::new(&cargo)
        .current_dir(&root)
        .args(["test", "--workspace", "--no-fail-fast"])
        .status()?;
    if !host.success() {
        // Go on: the e2e results are worth having too; the exit status reports the failure.
        say(format!(
            "host tests FAILED ({host}); running the end-to-end suite anyway"
        ));
    }
    // Build the guests and the lab image here, so their progress is shown live.
    guests::build(&root, None)?;
    lab::ensure_image(false)?;
    say(format!(
        "set-up and host tests took {}; end-to-end suite next (one lab boot)",
        seconds(started.elapsed())
    ));
    let e2e = Command::new(&cargo)
        .current_dir(&root)
        .args([
            "test",
            "-p",
            "xtask",
            "--test",
            "e2e",
            "--",
            "--ignored",
            "--nocapture",
            "--test-threads=4",
        ])
        .env("RUST_BACKTRACE", "0") // a failing guest's report is the useful part
        .status()?;
    if !host.success() {
        say("host tests FAILED (see above)");
    }
    Ok(if e2e.success() && host.success() {
        0
    } else {
        1
    })
}
