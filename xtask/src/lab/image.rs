//! Builds the lab's boot artifacts and caches them outside the repository.
//!
//! Three cached stages under [`cache_root`], each in a directory named by a hash of its
//! inputs and published by an atomic rename, so an interrupted build never leaves a
//! half-built stage that looks finished, and a run with nothing changed takes a second:
//!
//! * `host-<hash>`: QEMU 7.2 and the Xen 4.17 hypervisor, extracted from Debian packages
//!   (not installed: Debian 12's backported qemu-utils 10.x conflicts with
//!   qemu-system-common 7.2), plus busybox-static for the Linux baseline guest.
//! * `rootfs-<hash>`: the dom0 root tree (debootstrap + xen-utils + kernel, pruned).
//! * `image-<hash>`: what QEMU boots: Xen, the dom0 kernel/initrd, the dom0 root disk
//!   (ext4, made with `mkfs.ext4 -d`, no mount needed) with our init, and the Linux
//!   baseline domU (the dom0's kernel + a busybox initramfs).

use crate::progress::{self, run_step, say, seconds};
use crate::setup;
use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Bump when the build steps change in a way the hashed inputs do not show: BUILDER_VERSION
/// rebuilds everything (minutes), IMAGE_VERSION only the last stage (seconds).
const BUILDER_VERSION: &str = "lab-image-1";
const IMAGE_VERSION: &str = "image-2";
const SUITE: &str = "bookworm";
const XEN_VERSION: &str = "4.17";
/// Debian packages extracted (not installed) on the host.
const HOST_DEBS: &[&str] = &[
    "qemu-system-x86",
    "qemu-system-common",
    "qemu-system-data",
    "xen-hypervisor-4.17-amd64",
    "busybox-static",
];
/// Extra packages debootstrap puts in the minbase dom0.
const DEBOOTSTRAP_INCLUDE: &[&str] = &["iproute2", "kmod", "procps"];
/// What the dom0 needs: the Xen toolstack (xl, xenstored, xenconsoled, vchan-socket-proxy,
/// test-xenstore; its dependencies bring libxenctrl, libxenstore, libxenvchan, libxenlight
/// for peers compiled on the host), xenstore-utils, a kernel with the Xen backends, and a
/// few tools for dom0 scripts.
pub const DOM0_PACKAGES: &[&str] = &[
    "xen-utils-4.17",
    "xenstore-utils",
    "linux-image-amd64",
    "busybox",
    "bridge-utils",
];
/// Kernel module trees a dom0 in QEMU never loads (saves ~200 MB of image).
const PRUNED_MODULE_DIRS: &[&str] = &[
    "drivers/gpu",
    "drivers/media",
    "sound",
    "drivers/net/wireless",
    "net/wireless",
    "net/mac80211",
    "drivers/infiniband",
    "drivers/staging",
    "drivers/bluetooth",
    "net/bluetooth",
    "drivers/iio",
    "drivers/hid",
    "drivers/input/touchscreen",
    "drivers/scsi/qla2xxx",
    "drivers/scsi/lpfc",
    "drivers/scsi/mpt3sas",
    "drivers/net/ethernet",
    "drivers/usb",
    "drivers/isdn",
    "fs/ocfs2",
    "fs/btrfs",
    "fs/xfs",
    "fs/gfs2",
    "fs/nfs",
    "fs/ceph",
    "fs/smb",
];

const DOM0_INIT: &str = include_str!("../../lab/dom0-init.sh");
const DOM0_INITRD_INIT: &str = include_str!("../../lab/dom0-initrd-init.sh");
/// Modules the dom0 initramfs loads to mount its root (their dependencies come along).
const DOM0_INITRD_MODULES: &[&str] = &["crc32c_generic", "virtio_pci", "virtio_blk", "ext4"];
const LINUX_DOMU_INIT: &str = include_str!("../../lab/linux-domu-init.sh");
/// xl config of the Linux baseline guest.
pub const LINUX_DOMU_CFG: &str = include_str!("../../lab/linux-domu.cfg");

/// Free space a cold build needs (debs, root tree, apt cache, sparse root image).
const COLD_BUILD_SPACE: u64 = 3 << 30;

/// Where the lab keeps its cache: `$XEN_LAB_CACHE`, else `$XDG_CACHE_HOME/rust-xen-pv/xen-lab`,
/// else `~/.cache/rust-xen-pv/xen-lab`.
pub fn cache_root() -> PathBuf {
    if let Some(dir) = std::env::var_os("XEN_LAB_CACHE") {
        return PathBuf::from(dir);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/var/cache"));
    base.join("rust-xen-pv").join("xen-lab")
}

/// The built artifacts, all inside one `image-<hash>` directory (plus the QEMU tree).
#[derive(Debug, Clone)]
pub struct LabImage {
    pub dir: PathBuf,
    pub qemu: PathBuf,
    /// QEMU's firmware/data directories (`-L`).
    pub qemu_data_dirs: Vec<PathBuf>,
    /// Xen hypervisor, uncompressed multiboot ELF (QEMU `-kernel`).
    pub xen: PathBuf,
    pub dom0_kernel: PathBuf,
    pub dom0_initrd: PathBuf,
    /// ext4 root disk of dom0 (used with `snapshot=on`: every boot starts clean).
    pub dom0_root: PathBuf,
    pub linux_domu_kernel: PathBuf,
    pub linux_domu_initramfs: PathBuf,
    pub linux_domu_cfg: PathBuf,
}

impl LabImage {
    fn at(image_dir: &Path, host_dir: &Path) -> Self {
        Self {
            dir: image_dir.to_owned(),
            qemu: host_dir.join("root/usr/bin/qemu-system-x86_64"),
            qemu_data_dirs: vec![
                host_dir.join("root/usr/share/qemu"),
                PathBuf::from("/usr/share/seabios"),
            ],
            xen: image_dir.join("xen"),
            dom0_kernel: image_dir.join("vmlinux"),
            dom0_initrd: image_dir.join("initrd.img"),
            dom0_root: image_dir.join("dom0-root.ext4"),
            linux_domu_kernel: image_dir.join("linux-domu/vmlinuz"),
            linux_domu_initramfs: image_dir.join("linux-domu/initramfs.cpio"),
            linux_domu_cfg: image_dir.join("linux-domu/linux.cfg"),
        }
    }
}

fn hash_of(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for part in parts {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    h.finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The stage keys, from the inputs each stage is built from.
struct Keys {
    host: String,
    rootfs: String,
    image: String,
}

fn keys() -> Keys {
    let host = hash_of(&[BUILDER_VERSION, XEN_VERSION, &HOST_DEBS.join(",")]);
    let rootfs = hash_of(&[
        BUILDER_VERSION,
        SUITE,
        &DEBOOTSTRAP_INCLUDE.join(","),
        &DOM0_PACKAGES.join(","),
        &PRUNED_MODULE_DIRS.join(","),
    ]);
    let image = hash_of(&[
        BUILDER_VERSION,
        IMAGE_VERSION,
        &host,
        &rootfs,
        DOM0_INIT,
        DOM0_INITRD_INIT,
        &DOM0_INITRD_MODULES.join(","),
        LINUX_DOMU_INIT,
        LINUX_DOMU_CFG,
    ]);
    Keys {
        host,
        rootfs,
        image,
    }
}

/// Makes sure the lab image exists (building what is missing or stale) and returns it.
/// `force` rebuilds every stage from scratch.
pub fn ensure_image(force: bool) -> Result<LabImage> {
    let started = Instant::now();
    let root = cache_root();
    if root.to_string_lossy().contains([',', ' ']) {
        bail!(
            "the lab cache path {} contains ',' or ' ', which QEMU's -initrd cannot take: set XEN_LAB_CACHE to a plain path",
            root.display()
        );
    }
    fs::create_dir_all(&root)
        .with_context(|| format!("cannot create the lab cache {}", root.display()))?;
    let _lock = LabLock::acquire(&root)?;
    ensure_image_locked(&root, force, started)
}

/// [`ensure_image`] for a caller that holds the lab lock.
pub(super) fn ensure_image_locked(root: &Path, force: bool, started: Instant) -> Result<LabImage> {
    let root = root.to_owned();
    let keys = keys();
    let host_dir = root.join(format!("host-{}", keys.host));
    let rootfs_dir = root.join(format!("rootfs-{}", keys.rootfs));
    let image_dir = root.join(format!("image-{}", keys.image));
    let logs = root.join("logs");
    fs::create_dir_all(&logs)?;
    if force {
        for dir in [&host_dir, &rootfs_dir, &image_dir] {
            remove_tree(dir)?;
        }
    }

    setup::ensure_packages(setup::LAB_HOST_PACKAGES, &logs)?;
    let image = LabImage::at(&image_dir, &host_dir);
    let cold = !image_dir.join(".complete").exists();
    if cold {
        setup::require_root("building the lab image")?;
        setup::require_free_space(&root, COLD_BUILD_SPACE, "building the lab image")?;
    }
    ensure_host_tools(&host_dir, &logs)?;
    if cold {
        if !rootfs_dir.join(".complete").exists() {
            build_rootfs(&rootfs_dir, &logs)?;
        }
        build_image(&image_dir, &rootfs_dir, &host_dir, &logs)?;
        say(format!(
            "lab image ready in {}: {}",
            seconds(started.elapsed()),
            image_dir.display()
        ));
    }
    collect_garbage(&root, &[&host_dir, &rootfs_dir, &image_dir])?;
    Ok(image)
}

/// QEMU + Xen + busybox-static, extracted from the archive's packages.
fn ensure_host_tools(dir: &Path, logs: &Path) -> Result<()> {
    let qemu = dir.join("root/usr/bin/qemu-system-x86_64");
    if !dir.join(".complete").exists() {
        setup::require_root("building the lab image")?;
        setup::apt_update(logs)?;
        let partial = partial_of(dir);
        remove_tree(&partial)?;
        let debs = partial.join("debs");
        fs::create_dir_all(&debs)?;
        // apt-get download drops privileges to _apt, which must be able to write there.
        let _ = Command::new("chown")
            .args(["_apt:root"])
            .arg(&debs)
            .status();
        run_step(
            "downloading QEMU 7.2, Xen 4.17 and busybox-static packages",
            Command::new("apt-get")
                .arg("download")
                .args(HOST_DEBS)
                .current_dir(&debs),
            &logs.join("host-debs.log"),
        )
        .context("apt-get download failed: is the Debian archive reachable (apt-get update)?")?;
        let root = partial.join("root");
        for deb in fs::read_dir(&debs)? {
            let deb = deb?.path();
            progress::output(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root))?;
        }
        let xen_gz = root.join(format!("boot/xen-{XEN_VERSION}-amd64.gz"));
        // QEMU's multiboot loader takes an uncompressed ELF32: gunzip Xen.
        let xen = Command::new("gzip").arg("-dc").arg(&xen_gz).output()?;
        if !xen.status.success() || xen.stdout.len() < 4 || &xen.stdout[..4] != b"\x7fELF" {
            bail!("cannot gunzip {} into an ELF", xen_gz.display());
        }
        fs::write(partial.join("xen"), xen.stdout)?;
        fs::remove_dir_all(&debs)?;
        fs::write(partial.join(".complete"), "")?;
        fs::rename(&partial, dir)?;
    }
    // The extracted QEMU uses the host's shared libraries: install the ones it lacks.
    if !Command::new(&qemu)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        setup::apt_update(logs)?;
        let depends = progress::output(Command::new("apt-cache").args([
            "depends",
            "qemu-system-x86",
            "qemu-system-common",
        ]))?;
        let mut libs: Vec<&str> = depends
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Depends: "))
            .filter(|p| !p.starts_with("qemu-system") && !p.starts_with('<'))
            .collect();
        libs.sort_unstable();
        libs.dedup();
        setup::ensure_packages(&libs, logs)?;
        let version = progress::output(Command::new(&qemu).arg("--version"))
            .context("the extracted QEMU does not run even with its dependencies installed")?;
        say(version.lines().next().unwrap_or("qemu"));
    }
    Ok(())
}

fn build_rootfs(dir: &Path, logs: &Path) -> Result<()> {
    let partial = partial_of(dir);
    let mirror = setup::debian_mirror();
    if !partial.join(".debootstrap-done").exists() {
        setup::require_archive_reachable(&mirror, SUITE)?;
        remove_tree(&partial)?;
        run_step(
            &format!("debootstrap {SUITE} (minbase)"),
            Command::new("debootstrap")
                .args([
                    "--variant=minbase",
                    &format!("--include={}", DEBOOTSTRAP_INCLUDE.join(",")),
                ])
                .args([SUITE])
                .arg(&partial)
                .arg(&mirror),
            &logs.join("debootstrap.log"),
        )
        .context(
            "debootstrap failed: check the network to the Debian archive and free disk space",
        )?;
        fs::write(partial.join(".debootstrap-done"), "")?;
    }

    let security = format!("{}-security", mirror.trim_end_matches('/'));
    fs::write(
        partial.join("etc/apt/sources.list"),
        format!(
            "deb {mirror} {SUITE} main\ndeb {mirror} {SUITE}-updates main\ndeb {security} {SUITE}-security main\n"
        ),
    )?;
    // Keep package scripts from starting daemons in the chroot.
    let policy = partial.join("usr/sbin/policy-rc.d");
    fs::write(&policy, "#!/bin/sh\nexit 101\n")?;
    fs::set_permissions(&policy, fs::Permissions::from_mode(0o755))?;
    {
        let _mounts = ChrootMounts::mount(&partial)?;
        let apt = |title: &str, args: &[&str], log: &str| -> Result<()> {
            run_step(
                title,
                Command::new("chroot")
                    .arg(&partial)
                    .arg("apt-get")
                    .args(args)
                    .env("DEBIAN_FRONTEND", "noninteractive")
                    .env("LC_ALL", "C"),
                &logs.join(log),
            )
            .map(drop)
            .with_context(|| {
                format!(
                    "{title} in the dom0 tree failed: see the log; network to the Debian archive?"
                )
            })
        };
        apt("dom0: apt-get update", &["update"], "dom0-apt-update.log")?;
        apt(
            "dom0: apt-get dist-upgrade",
            &["-y", "--no-install-recommends", "dist-upgrade"],
            "dom0-apt-upgrade.log",
        )?;
        let mut install = vec!["-y", "--no-install-recommends", "install"];
        install.extend(DOM0_PACKAGES);
        apt(
            &format!("dom0: apt-get install {}", DOM0_PACKAGES.join(" ")),
            &install,
            "dom0-apt-install.log",
        )?;
        progress::output(
            Command::new("chroot")
                .arg(&partial)
                .args(["apt-get", "clean"]),
        )?;
    }

    say("pruning the dom0 tree (docs, apt lists, unneeded kernel modules)");
    for sub in [
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/locale",
    ] {
        let path = partial.join(sub);
        remove_tree(&path)?;
        fs::create_dir_all(&path)?;
    }
    let kernel_version = kernel_version(&partial)?;
    let modules = partial.join("lib/modules").join(&kernel_version);
    for sub in PRUNED_MODULE_DIRS {
        remove_tree(&modules.join("kernel").join(sub))?;
    }
    progress::output(
        Command::new("chroot")
            .arg(&partial)
            .args(["depmod", &kernel_version]),
    )?;
    fs::write(partial.join(".complete"), "")?;
    fs::rename(&partial, dir)?;
    Ok(())
}

fn build_image(dir: &Path, rootfs: &Path, host: &Path, logs: &Path) -> Result<()> {
    let partial = partial_of(dir);
    remove_tree(&partial)?;
    fs::create_dir_all(partial.join("linux-domu"))?;
    let kernel_version = kernel_version(rootfs)?;
    let boot = rootfs.join("boot");
    fs::copy(host.join("xen"), partial.join("xen"))?;
    // dom0 gets the kernel's uncompressed ELF: Xen would otherwise unpack the xz payload
    // under TCG on every boot (about 10 s).
    let bzimage = fs::read(boot.join(format!("vmlinuz-{kernel_version}")))?;
    fs::write(
        partial.join("vmlinux"),
        extract_vmlinux(&bzimage, &partial)?,
    )?;
    fs::copy(
        boot.join(format!("vmlinuz-{kernel_version}")),
        partial.join("linux-domu/vmlinuz"),
    )?;

    let busybox = fs::read(host.join("root/bin/busybox"))
        .context("busybox-static missing from the host tools")?;
    fs::write(
        partial.join("initrd.img"),
        dom0_initramfs(rootfs, &kernel_version, &busybox)?,
    )?;

    // The Linux baseline domU: busybox-static + /init, an uncompressed newc archive.
    let mut cpio = Newc::default();
    for d in ["bin", "dev", "proc", "sys"] {
        cpio.dir(d);
    }
    cpio.char_device("dev/console", 5, 1);
    cpio.file("bin/busybox", 0o755, &busybox);
    cpio.file("init", 0o755, LINUX_DOMU_INIT.as_bytes());
    fs::write(partial.join("linux-domu/initramfs.cpio"), cpio.finish())?;
    fs::write(partial.join("linux-domu/linux.cfg"), LINUX_DOMU_CFG)?;

    // The dom0 root: a hard-linked copy of the cached tree with our files *replaced* (never
    // written through a link), then one mkfs.ext4 -d.
    let staging = partial.join("staging");
    progress::output(Command::new("cp").arg("-al").arg(rootfs).arg(&staging))?;
    let replace = |rel: &str, contents: &str, mode: u32| -> Result<()> {
        let path = staging.join(rel);
        if path.exists() {
            fs::remove_file(&path)?;
        }
        fs::write(&path, contents)?;
        fs::set_permissions(&path, fs::Permissions::from_mode(mode))?;
        Ok(())
    };
    replace("usr/sbin/lab-init", DOM0_INIT, 0o755)?;
    replace("etc/hostname", "lab-dom0\n", 0o644)?;
    replace(
        "etc/hosts",
        "127.0.0.1 localhost\n127.0.1.1 lab-dom0\n",
        0o644,
    )?;
    // dom0's memory is fixed on Xen's command line: xl must not try to balloon it.
    let xl_conf = fs::read_to_string(staging.join("etc/xen/xl.conf")).unwrap_or_default();
    let mut xl_conf: String = xl_conf
        .lines()
        .filter(|l| {
            !l.trim_start()
                .trim_start_matches('#')
                .starts_with("autoballoon")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    xl_conf.push_str("autoballoon=\"off\"\n");
    replace("etc/xen/xl.conf", &xl_conf, 0o644)?;
    fs::remove_file(staging.join(".complete"))?;
    let _ = fs::remove_file(staging.join(".debootstrap-done"));

    let used_kib: u64 = progress::output(Command::new("du").args(["-sk"]).arg(&staging))?
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .context("cannot measure the dom0 tree")?;
    let size_mib = used_kib * 5 / 4 / 1024 + 512;
    run_step(
        &format!(
            "mkfs.ext4 -d: dom0 root disk ({size_mib} MiB, {} MiB used)",
            used_kib / 1024
        ),
        Command::new("mkfs.ext4")
            .args(["-q", "-F", "-L", "lab-dom0", "-E", "root_owner=0:0", "-d"])
            .arg(&staging)
            .arg(partial.join("dom0-root.ext4"))
            .arg(format!("{size_mib}M")),
        &logs.join("mkfs-dom0.log"),
    )?;
    remove_tree(&staging)?;
    fs::write(partial.join(".complete"), "")?;
    fs::rename(&partial, dir)?;
    Ok(())
}

/// The ELF kernel inside a Linux bzImage (boot protocol >= 2.08: `payload_offset` and
/// `payload_length` locate the compressed kernel after the real-mode setup sectors).
fn extract_vmlinux(bzimage: &[u8], scratch: &Path) -> Result<Vec<u8>> {
    let field = |at: usize, len: usize| -> Result<u64> {
        let bytes = bzimage
            .get(at..at + len)
            .context("bzImage header truncated")?;
        Ok(bytes.iter().rev().fold(0u64, |v, b| v << 8 | u64::from(*b)))
    };
    if bzimage.get(0x202..0x206) != Some(b"HdrS") || field(0x206, 2)? < 0x208 {
        bail!("the dom0 kernel is not a bzImage with boot protocol >= 2.08");
    }
    let setup_sectors = match field(0x1f1, 1)? {
        0 => 4,
        n => n,
    };
    let start = (setup_sectors + 1) * 512 + field(0x248, 4)?;
    let end = start + field(0x24c, 4)?;
    let payload = bzimage
        .get(start as usize..end as usize)
        .context("bzImage payload_offset/payload_length point outside the file")?;
    let decompressor: &[&str] = match payload {
        [0xfd, b'7', b'z', b'X', b'Z', 0, ..] => &["xz", "-dc", "--single-stream"],
        [0x28, 0xb5, 0x2f, 0xfd, ..] => &["zstd", "-dcq"],
        [0x1f, 0x8b, ..] => &["gzip", "-dc"],
        _ => bail!(
            "unknown compression of the dom0 kernel payload (magic {:02x?})",
            &payload[..payload.len().min(6)]
        ),
    };
    let packed = scratch.join("vmlinux.packed");
    fs::write(&packed, payload)?;
    // The kernel appends its uncompressed size after the stream, so a "trailing garbage"
    // warning (gzip: exit 2) is expected; the ELF magic is the real check.
    let out = Command::new(decompressor[0])
        .args(&decompressor[1..])
        .arg(&packed)
        .output()?;
    fs::remove_file(&packed)?;
    if out.stdout.get(..4) != Some(b"\x7fELF") {
        bail!(
            "unpacking the dom0 kernel with {} gave no ELF: {}",
            decompressor[0],
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(out.stdout)
}

/// The dom0 initramfs: busybox, the root disk's modules and an init that mounts the root.
fn dom0_initramfs(rootfs: &Path, kernel_version: &str, busybox: &[u8]) -> Result<Vec<u8>> {
    let modules_dir = rootfs.join("lib/modules").join(kernel_version);
    let deps = parse_modules_dep(&fs::read_to_string(modules_dir.join("modules.dep"))?);
    let mut order = Vec::new();
    for module in DOM0_INITRD_MODULES {
        let path = deps
            .keys()
            .find(|p| module_name(p) == *module)
            .with_context(|| format!("the dom0 kernel has no module {module}"))?;
        load_order(path, &deps, &mut order)?;
    }
    let mut cpio = Newc::default();
    for d in ["bin", "dev", "lib", "lib/modules"] {
        cpio.dir(d);
    }
    cpio.char_device("dev/console", 5, 1);
    cpio.file("bin/busybox", 0o755, busybox);
    cpio.file("init", 0o755, DOM0_INITRD_INIT.as_bytes());
    let mut list = String::new();
    for path in &order {
        let file = format!("{}.ko", module_name(path));
        cpio.file(
            &format!("lib/modules/{file}"),
            0o644,
            &fs::read(modules_dir.join(path))?,
        );
        list += &format!("{file}\n");
    }
    cpio.file("modules", 0o644, list.as_bytes());
    Ok(cpio.finish())
}

/// `modules.dep`: module path -> the modules it needs.
fn parse_modules_dep(text: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(m, deps)| {
            (
                m.trim().to_owned(),
                deps.split_whitespace().map(str::to_owned).collect(),
            )
        })
        .collect()
}

fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.trim_end_matches(".ko").replace('-', "_")
}

/// Appends `module` after its dependencies (depth first, each once).
fn load_order(
    module: &str,
    deps: &std::collections::BTreeMap<String, Vec<String>>,
    order: &mut Vec<String>,
) -> Result<()> {
    if order.iter().any(|m| m == module) {
        return Ok(());
    }
    for dep in deps
        .get(module)
        .with_context(|| format!("{module} is not in modules.dep"))?
    {
        load_order(dep, deps, order)?;
    }
    order.push(module.to_owned());
    Ok(())
}

fn kernel_version(rootfs: &Path) -> Result<String> {
    let mut versions: Vec<String> = fs::read_dir(rootfs.join("lib/modules"))
        .context("the dom0 tree has no kernel (lib/modules)")?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    versions.sort();
    versions
        .pop()
        .context("the dom0 tree has no kernel (lib/modules is empty)")
}

fn partial_of(dir: &Path) -> PathBuf {
    let mut name = dir.file_name().expect("stage dirs have a name").to_owned();
    name.push(".partial");
    dir.with_file_name(name)
}

/// Stages of each kind kept besides the current one: several checkouts (branches,
/// worktrees) of the project share the cache and must not delete each other's stages.
const KEPT_OTHER_STAGES: usize = 2;
/// Other stages unused for this long are removed whatever their number.
const STAGE_MAX_IDLE: Duration = Duration::from_secs(3 * 24 * 3600);

/// Marks the current stages as used and removes old ones: per kind, beyond the
/// KEPT_OTHER_STAGES most recently used others, or idle for STAGE_MAX_IDLE; and
/// interrupted builds (`*.partial`) of other keys. Runs under the lab lock.
fn collect_garbage(root: &Path, current: &[&Path]) -> Result<()> {
    for dir in current {
        fs::write(dir.join(".last-used"), "")?;
    }
    for kind in ["host-", "rootfs-", "image-"] {
        let mut others: Vec<(SystemTime, PathBuf)> = Vec::new();
        for entry in fs::read_dir(root)? {
            let path = entry?.path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if !name.starts_with(kind) || current.iter().any(|c| path.starts_with(c)) {
                continue;
            }
            if name.ends_with(".partial") {
                if !current.iter().any(|c| partial_of(c) == path) {
                    remove_stage(&path)?;
                }
                continue;
            }
            // Stages of older xtask versions have no .last-used: their build time counts.
            let used = fs::metadata(path.join(".last-used"))
                .or_else(|_| fs::metadata(&path))
                .and_then(|m| m.modified())
                .unwrap_or(UNIX_EPOCH);
            others.push((used, path));
        }
        others.sort_by_key(|(used, _)| std::cmp::Reverse(*used)); // most recently used first
        for (index, (used, path)) in others.iter().enumerate() {
            let idle = SystemTime::now().duration_since(*used).unwrap_or_default();
            if index >= KEPT_OTHER_STAGES || idle > STAGE_MAX_IDLE {
                remove_stage(path)?;
            }
        }
    }
    Ok(())
}

fn remove_stage(path: &Path) -> Result<()> {
    say(format!("removing old lab stage {}", path.display()));
    remove_tree(path)
}

/// `rm -rf` that never follows into a mounted file system (a chroot left mounted by a killed
/// build would otherwise lose the host's /dev).
fn remove_tree(path: &Path) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    unmount_below(path);
    progress::output(
        Command::new("rm")
            .args(["-rf", "--one-file-system"])
            .arg(path),
    )?;
    Ok(())
}

fn unmount_below(path: &Path) {
    let Ok(mounts) = fs::read_to_string("/proc/self/mounts") else {
        return;
    };
    let mut points: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        .filter(|m| Path::new(m).starts_with(path))
        .collect();
    points.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for point in points {
        let _ = Command::new("umount").args(["-l", point]).status();
    }
}

/// /proc, /dev and /dev/pts mounted into a chroot for apt; unmounted on drop.
struct ChrootMounts {
    root: PathBuf,
}

impl ChrootMounts {
    fn mount(root: &Path) -> Result<Self> {
        let guard = Self {
            root: root.to_owned(),
        };
        let mount = |args: &[&str], target: &str| -> Result<()> {
            progress::output(Command::new("mount").args(args).arg(root.join(target)))?;
            Ok(())
        };
        mount(&["-t", "proc", "proc"], "proc")?;
        mount(&["--bind", "/dev"], "dev")?;
        mount(&["--bind", "/dev/pts"], "dev/pts")?;
        Ok(guard)
    }
}

impl Drop for ChrootMounts {
    fn drop(&mut self) {
        unmount_below(&self.root);
    }
}

/// An exclusive lock on the lab cache: one image build or lab boot at a time per machine.
pub struct LabLock {
    _file: fs::File,
}

impl LabLock {
    pub fn acquire(root: &Path) -> Result<Self> {
        use std::os::fd::AsRawFd;
        fs::create_dir_all(root)?;
        let path = root.join("lab.lock");
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)?;
        // SAFETY: flock on a file descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            say(format!(
                "another lab build or run holds {}; waiting for it",
                path.display()
            ));
            // SAFETY: as above, blocking this time.
            if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
                return Err(std::io::Error::last_os_error()).context("flock on the lab lock");
            }
        }
        Ok(Self { _file: file })
    }
}

/// A tiny writer for the `newc` cpio format the kernel unpacks as an initramfs.
#[derive(Default)]
pub struct Newc {
    out: Vec<u8>,
    inode: u32,
}

impl Newc {
    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        self.inode += 1;
        let fields = [
            self.inode,
            mode,
            0,
            0,
            1,
            0,
            data.len() as u32,
            0,
            0,
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0,
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08x}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad();
        self.out.extend_from_slice(data);
        self.pad();
    }
    fn pad(&mut self) {
        self.out.resize(self.out.len().next_multiple_of(4), 0);
    }
    pub fn dir(&mut self, name: &str) {
        self.entry(name, 0o040755, (0, 0), &[]);
    }
    pub fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, 0o100000 | perm, (0, 0), data);
    }
    pub fn char_device(&mut self, name: &str, major: u32, minor: u32) {
        self.entry(name, 0o020600, (major, minor), &[]);
    }
    pub fn finish(mut self) -> Vec<u8> {
        self.inode = 0;
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_keys_follow_their_inputs() {
        let k = keys();
        assert_eq!(k.image, keys().image, "keys are deterministic");
        assert_eq!(k.host.len(), 16);
        assert_ne!(
            hash_of(&["a", "bc"]),
            hash_of(&["ab", "c"]),
            "parts are length-delimited"
        );
        assert_ne!(k.rootfs, k.image);
    }

    #[test]
    fn modules_load_after_their_dependencies() {
        let deps = parse_modules_dep(
            "kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/jbd2/jbd2.ko\n\
             kernel/fs/jbd2/jbd2.ko: kernel/lib/crc16.ko\nkernel/lib/crc16.ko:\n",
        );
        let mut order = Vec::new();
        load_order("kernel/fs/ext4/ext4.ko", &deps, &mut order).unwrap();
        assert_eq!(
            order,
            [
                "kernel/lib/crc16.ko",
                "kernel/fs/jbd2/jbd2.ko",
                "kernel/fs/ext4/ext4.ko"
            ]
        );
        assert!(load_order("kernel/missing.ko", &deps, &mut order).is_err());
        assert_eq!(
            module_name("kernel/arch/x86/crypto/crc32c-intel.ko"),
            "crc32c_intel"
        );
    }

    #[test]
    fn newc_archive_layout() {
        let mut c = Newc::default();
        c.file("init", 0o755, b"#!/bin/sh\n");
        let out = c.finish();
        assert_eq!(&out[..6], b"070701");
        // mode field (2nd), file size (7th), name size (12th)
        assert_eq!(&out[14..22], b"000081ed");
        assert_eq!(&out[54..62], b"0000000a");
        assert_eq!(&out[94..102], b"00000005");
        assert_eq!(&out[110..115], b"init\0");
        assert_eq!(out.len() % 4, 0);
        assert!(out.windows(10).any(|w| w == b"TRAILER!!!"));
    }
}
