//! The guest workspace (`guests/`): which guests exist, building them, and where cargo put
//! each kernel.

use crate::progress::say;
use anyhow::{Context, Result, bail};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The repository root (this crate lives in `<root>/xtask`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask has a parent directory")
        .to_owned()
}

/// Names of the guests: the packages directly under `guests/` (each builds one kernel of
/// the same name).
pub fn guest_names(root: &Path) -> Result<Vec<String>> {
    let dir = root.join("guests");
    let mut names = Vec::new();
    for entry in std::fs::read_dir(&dir)
        .with_context(|| format!("no guest workspace at {}", dir.display()))?
    {
        let path = entry?.path();
        if path.join("Cargo.toml").is_file() {
            if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                names.push(name.to_owned());
            }
        }
    }
    names.sort();
    Ok(names)
}

/// The xl config of a guest: `xl-configs/<name>.cfg`.
pub fn guest_cfg(root: &Path, name: &str) -> PathBuf {
    root.join("xl-configs").join(format!("{name}.cfg"))
}

/// Builds guests (`cargo build --release` in `guests/`; all of them, or one) and returns each
/// built kernel's path, as cargo reports it.
pub fn build(root: &Path, only: Option<&str>) -> Result<BTreeMap<String, PathBuf>> {
    say(format!(
        "building guest{}: cargo build --release in guests/",
        only.map(|n| format!(" {n}")).unwrap_or_else(|| "s".into())
    ));
    let packages: Vec<&str> = only.into_iter().collect();
    cargo_build_release(&root.join("guests"), &packages, &[])
        .context("building the guests failed: see the compiler output above")
}

/// Build the dom0-side Linux programs the e2e suite ships into the lab (a normal host
/// build runs there: dom0 is Debian 12 like the host): `xen-linux-check`, `vchan-cat`, `xs`.
pub fn build_dom0_tools(root: &Path) -> Result<BTreeMap<String, PathBuf>> {
    say("building dom0 tools: xen-linux-check, vchan-cat, xs");
    cargo_build_release(root, &["xen-linux", "vchan-cat", "xenstore"], &["--bins"])
        .context("building the dom0 tools failed: see the compiler output above")
}

/// `cargo build --release` in `dir` (for `packages`, or all), returning the executables
/// by target name from cargo's JSON messages.
fn cargo_build_release(
    dir: &Path,
    packages: &[&str],
    extra: &[&str],
) -> Result<BTreeMap<String, PathBuf>> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir)
        .args([
            "build",
            "--release",
            "--message-format=json-render-diagnostics",
        ])
        .args(extra);
    for p in packages {
        cmd.args(["-p", p]);
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot run cargo")?;
    let mut kernels = BTreeMap::new();
    for line in BufReader::new(child.stdout.take().expect("piped")).lines() {
        let line = line?;
        let Ok(message) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact" {
            continue;
        }
        if let (Some(name), Some(exe)) = (
            message["target"]["name"].as_str(),
            message["executable"].as_str(),
        ) {
            kernels.insert(name.to_owned(), PathBuf::from(exe));
        }
    }
    let status = child.wait()?;
    if !status.success() {
        bail!("cargo build exited with {status}");
    }
    Ok(kernels)
}
