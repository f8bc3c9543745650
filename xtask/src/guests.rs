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
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root.join("guests")).args([
        "build",
        "--release",
        "--message-format=json-render-diagnostics",
    ]);
    if let Some(name) = only {
        cmd.args(["-p", name]);
    }
    say(format!(
        "building guest{}: cargo build --release in guests/",
        only.map(|n| format!(" {n}")).unwrap_or_else(|| "s".into())
    ));
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
        bail!("building the guests failed ({status}): see the compiler output above");
    }
    Ok(kernels)
}
