//! The end-to-end suite: every guest the lab runs under `cargo xtask test`, with what its
//! console must show and how it must end. To add a guest: add a `GuestSpec` here and a
//! one-line test in `tests/e2e.rs` that calls `assert_guest("<name>")`.

use crate::guests;
use crate::lab::{self, GuestSpec, LabImage, LabRun, RunOptions, ScriptMode, Shutdown};
use crate::progress::{say, seconds};
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What the suite is built from.
pub struct SuiteContext {
    pub root: PathBuf,
    /// Built guest kernels by guest name.
    pub kernels: BTreeMap<String, PathBuf>,
    pub image: LabImage,
    /// This CLI's own binary, when known (integration tests get it from cargo), to check
    /// `cargo xtask run`'s real-dom0 path inside the lab's dom0.
    pub xtask_binary: Option<PathBuf>,
    /// Programs built on the host to run in dom0 as peers, by name.
    pub dom0_tools: BTreeMap<String, PathBuf>,
}

impl SuiteContext {
    /// A guest of `guests/` with its `xl-configs/<name>.cfg`.
    pub fn guest(&self, name: &str) -> Result<GuestSpec> {
        let kernel = self
            .kernels
            .get(name)
            .with_context(|| format!("guest `{name}` was not built (no guests/{name})"))?;
        let cfg = guests::guest_cfg(&self.root, name);
        if !cfg.is_file() {
            bail!("guest `{name}` has no xl config {}", cfg.display());
        }
        Ok(GuestSpec::new(name, kernel, cfg))
    }

    /// A dom0 peer program built on the host.
    pub fn tool(&self, name: &str) -> Result<&Path> {
        self.dom0_tools
            .get(name)
            .map(PathBuf::as_path)
            .with_context(|| format!("dom0 tool `{name}` was not built"))
    }

    /// A file of the repository (e.g. a guest's dom0 script).
    pub fn read(&self, path: &str) -> Result<String> {
        std::fs::read_to_string(self.root.join(path)).with_context(|| format!("cannot read {path}"))
    }

    /// The Linux baseline: Debian's kernel (the dom0's) booted as a PV domU with a busybox
    /// initramfs that prints one line and powers off.
    pub fn linux_baseline(&self) -> GuestSpec {
        GuestSpec::new(
            "linux",
            &self.image.linux_domu_kernel,
            &self.image.linux_domu_cfg,
        )
        .ramdisk(&self.image.linux_domu_initramfs)
        .timeout(Duration::from_secs(120))
    }
}

/// The suite, in run order.
pub fn e2e_suite(ctx: &SuiteContext) -> Result<Vec<GuestSpec>> {
    let mut suite = vec![
        ctx.guest("hello")?
            .expect(r"Hello from a Rust unikernel on Xen!")
            .expect(r#"command line: "greeting=Hello""#)
            .expect(r"Xen version: 4\.17")
            .expect(r"Goodbye\.")
            .timeout(Duration::from_secs(60)),
        // A guest that panics must be reported as crashed, with its panic message.
        ctx.guest("hello")?
            .named("hello-panic")
            .xl_override(r#"extra="panic""#)
            .expect(r"PANIC.*panic requested on the command line")
            .expect_shutdown(Shutdown::Crash),
        // Running out of memory is a clear message and a crash, not a hang.
        ctx.guest("hello")?
            .named("hello-oom")
            .xl_override(r#"extra="oom""#)
            .expect(r"out of memory")
            .expect_shutdown(Shutdown::Crash),
        // Same kernel, command line and harness path as hello (no dom0 script), so the
        // summary's start-up ratio compares like with like.
        ctx.linux_baseline().expect(r"linux-domU: up, kernel"),
        // Event channels, grants, timers and the executor against the real hypervisor.
        ctx.guest("xen-core-test")?
            .expect(r"xen-core-test: [1-9][0-9]* passed, 0 failed")
            .timeout(Duration::from_secs(180)),
        // The xenstore client over the guest ring, with a dom0 peer answering through
        // xenstore-write while the guest waits.
        ctx.guest("xenstore-test")?
            .dom0_script(
                ScriptMode::Background,
                // First the runner's contract for background scripts (DOMID and GUEST_NAME
                // name the domain, which exists: this guest waits for its peer).
                "test \"$(xenstore-read /local/domain/$DOMID/name)\" = \"$GUEST_NAME\" || exit 99\n\
                 echo \"dom0 sees domain $DOMID named $GUEST_NAME\"\n"
                    .to_owned() + &ctx.read("guests/xenstore-test/dom0/peer.sh")?,
            )
            .expect_script_output(r"dom0 sees domain [0-9]+ named xenstore-test")
            .expect(r"xenstore-test: [1-9][0-9]* passed, 0 failed")
            .timeout(Duration::from_secs(120)),
    ];
    suite.extend([
        // A guest asking for a reboot is reported as rebooted (on_reboot applies).
        ctx.guest("hello")?
            .named("hello-reboot")
            .xl_override(r#"extra="reboot""#)
            .expect(r"Goodbye\.")
            .expect_shutdown(Shutdown::Reboot),
        // A CPU fault (a write through a null pointer) is reported by xen-pv's trap
        // handlers and crashes the domain.
        ctx.guest("hello")?
            .named("hello-fault")
            .xl_override(r#"extra="fault""#)
            .expect(r"FATAL: page fault writing address 0x8 \(null pointer\)")
            .expect_shutdown(Shutdown::Crash),
        // The Linux platform (xen-linux: /dev/xen/evtchn, gntalloc, gntdev) in dom0 runs the
        // same conformance checks as the PV guest and the sim, next to libxenevtchn's
        // loopback for a ratio. hello is only the vehicle: the checks run in dom0.
        ctx.guest("hello")?
            .named("linux-platform")
            .extra_file(ctx.tool("xen-linux-check")?)
            .extra_file(ctx.tool("evtchn-loopback-c")?)
            .dom0_script(ScriptMode::Before, ctx.read("xen/linux/lab/dom0-check.sh")?)
            .expect_script_output(r"summary: [1-9][0-9]* ok, 0 failed")
            .expect_script_output(r"ok event_loopback: 10000 round trips")
            .expect(r"Goodbye\.")
            .timeout(Duration::from_secs(240)),
        // irmin-store's no_std core in a guest: the commit ids it prints are Git's, as the
        // git CLI (guests/irmin-demo/git-reference.sh, run on the host now) computes them.
        ctx.guest("irmin-demo")?
            .expect(r"counter = 7")
            .expect(format!("irmin-demo: main at {}", git_reference_merge(ctx)?)),
        // The `xs` CLI in dom0 against the real xenstored and xenstore-utils, over the socket
        // and over /dev/xen/xenbus. hello is only the vehicle.
        ctx.guest("hello")?
            .named("xs-dom0")
            .extra_file(ctx.tool("xs")?)
            .dom0_script(
                ScriptMode::Before,
                ctx.read("xenstore/lab/dom0-xs-check.sh")?,
            )
            .expect_script_output(r"xs over /dev/xen/xenbus: write and read agree")
            .expect_script_output(r"matches xenstore-ls -f")
            .expect_script_output(r"xs watch over /dev/xen/xenbus saw")
            .expect_script_output(r"xs rm over /dev/xen/xenbus removed the tree")
            .expect(r"Goodbye\."),
        // vchan against Xen's libxenvchan in both roles and against our Linux stack
        // (vchan-cat on xen-linux): verified echoes, a 3 MB stream compared with cmp, a
        // peer killed mid-session, and vchan-cat serving the guest's client.
        ctx.guest("vchan-echo")?
            .xl_override(r#"extra="peer=0 role=both sessions=4""#)
            .extra_file(ctx.tool("vchan-peer")?)
            .extra_file(ctx.tool("vchan-cat")?)
            .dom0_script(
                ScriptMode::Background,
                ctx.read("guests/vchan-echo/dom0/linux-peers.sh")?,
            )
            .expect(r"vchan-echo: ok server session 1")
            .expect(r"vchan-echo: ok client")
            .expect(r"vchan-echo: done")
            .expect_script_output(r"identical")
            .expect_script_output(r"dom0: killed vchan-cat")
            .expect_script_output(r"dom0: vchan-cat served the guest's client")
            .timeout(Duration::from_secs(300)),
    ]);
    if let Some(xtask) = &ctx.xtask_binary {
        // On a real Xen host `cargo xtask run` uses xl directly (xtask/src/direct.rs): check
        // that path in the lab's dom0, which is one, with this very binary.
        suite.push(
            ctx.guest("hello")?
                .named("hello-xl-run")
                .extra_file(xtask)
                .dom0_script(
                    ScriptMode::Before,
                    "./xtask xl-run ./kernel ./guest.cfg --name hello-direct --timeout 60\n",
                )
                .expect_script_output(r"this machine is a Xen dom0")
                .expect_script_output(r"Hello from a Rust unikernel on Xen!")
                .expect_script_output(r"ended: poweroff \(exit status 0\)"),
        );
    }
    Ok(suite)
}

/// Builds the guests and the lab image, then runs the whole suite in one lab boot. Returns
/// the specs (for the expectations) and the run.
pub fn run_e2e(
    options: &RunOptions,
    xtask_binary: Option<PathBuf>,
) -> Result<(Vec<GuestSpec>, LabRun)> {
    let root = guests::repo_root();
    let kernels = guests::build(&root, None)?;
    let mut dom0_tools = guests::build_dom0_tools(&root)?;
    dom0_tools.extend(build_c_peers(&root)?);
    let image = lab::ensure_image(false)?;
    let ctx = SuiteContext {
        root,
        kernels,
        image,
        xtask_binary,
        dom0_tools,
    };
    let suite = e2e_suite(&ctx)?;
    let run = lab::run_guests(&ctx.image, &suite, options)?;
    print_summary(&run);
    Ok((suite, run))
}

/// The merge commit id `git` computes for the history guests/irmin-demo builds.
fn git_reference_merge(ctx: &SuiteContext) -> Result<String> {
    let script = ctx.root.join("guests/irmin-demo/git-reference.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .output()
        .with_context(|| format!("cannot run {}", script.display()))?;
    let id = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if !out.status.success() || id.len() != 40 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "{} failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(id)
}

/// The C peers built against Xen's own libraries (libxen-dev), so our code is checked
/// against the real implementations in dom0: libxenvchan and libxenevtchn.
fn build_c_peers(root: &Path) -> Result<BTreeMap<String, PathBuf>> {
    let out = root.join("target").join("dom0-peers");
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let peers: [(&str, &str, &[&str]); 2] = [
        ("vchan-peer", "vchan/interop/vchan-peer.c", &["-lxenvchan"]),
        (
            "evtchn-loopback-c",
            "xen/linux/bench/evtchn_loopback.c",
            &[
                "-l:libxenevtchn.a",
                "-l:libxentoolcore.a",
                "-l:libxentoollog.a",
            ],
        ),
    ];
    let mut built = BTreeMap::new();
    for (name, source, libs) in peers {
        let exe = out.join(name);
        say(format!(
            "building dom0 peer {name} from {source} (gcc, libxen-dev)"
        ));
        let status = std::process::Command::new("gcc")
            .args(["-O2", "-Wall", "-o"])
            .arg(&exe)
            .arg(root.join(source))
            .args(libs)
            .status()
            .context("cannot run gcc (apt-get install gcc)")?;
        if !status.success() {
            bail!(
                "building {name} from {source} failed ({status}); is libxen-dev installed? (cargo xtask setup)"
            );
        }
        built.insert(name.to_owned(), exe);
    }
    Ok(built)
}

/// A table of the run, and the Linux / hello start-up ratio when both ran.
pub fn print_summary(run: &LabRun) {
    let opt = |d: Option<Duration>| d.map(seconds).unwrap_or_else(|| "-".into());
    say(format!(
        "lab: dom0 ready {} after QEMU start; whole boot {}; logs {}",
        opt(run.dom0_ready),
        seconds(run.total),
        run.run_dir.display()
    ));
    eprintln!(
        "  {:<16} {:<14} {:>10} {:>20}",
        "guest", "result", "xl create", "first console line"
    );
    for g in &run.guests {
        eprintln!(
            "  {:<16} {:<14} {:>10} {:>20}",
            g.name,
            g.shutdown.as_str(),
            opt(g.create),
            opt(g.first_console_line)
        );
    }
    let first = |name: &str| run.guest(name).and_then(|g| g.first_console_line);
    if let (Some(linux), Some(hello)) = (first("linux"), first("hello")) {
        say(format!(
            "xl create -> first console line: hello {}, Linux {}: Linux takes {:.1}x as long",
            seconds(hello),
            seconds(linux),
            linux.as_secs_f64() / hello.as_secs_f64().max(0.001)
        ));
    }
}

/// Checks an explicit kernel/cfg pair like the suite does (used by `cargo xtask lab run`).
pub fn adhoc(kernel: &Path, cfg: &Path, name: Option<&str>) -> Result<GuestSpec> {
    let name = match name {
        Some(n) => n.to_owned(),
        None => {
            let text = std::fs::read_to_string(cfg)
                .with_context(|| format!("cannot read {}", cfg.display()))?;
            let parsed = crate::xlcfg::XlConfig::parse(&text)
                .with_context(|| format!("bad xl config {}", cfg.display()))?;
            parsed.string("name").unwrap_or("guest").to_owned()
        }
    };
    Ok(GuestSpec::new(name, kernel, cfg))
}
