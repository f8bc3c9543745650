//! The libxenevtchn reference loopback (`bench/evtchn_loopback.c`, run next to
//! xen-linux-check in the lab) must keep compiling against Debian's libxen-dev.

use std::path::Path;
use std::process::Command;

#[test]
fn libxenevtchn_reference_loopback_compiles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/evtchn_loopback.c");
    let exe = std::env::temp_dir().join(format!("evtchn-loopback-c-{}", std::process::id()));
    let out = Command::new("gcc")
        .args(["-O2", "-Wall", "-Werror", "-o"])
        .arg(&exe)
        .arg(&src)
        .args([
            "-l:libxenevtchn.a",
            "-l:libxentoolcore.a",
            "-l:libxentoollog.a",
        ])
        .output()
        .expect("gcc must be installed");
    let _ = std::fs::remove_file(&exe);
    assert!(
        out.status.success(),
        "{} does not build against libxen-dev:\n{}",
        src.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}
