//! What `vchan-cat` can be checked for without Xen (the lab runs it against the
//! `vchan-echo` guest: guests/vchan-echo/dom0/linux-peers.sh): usage errors and a clear
//! failure when there is no xenstore or no /dev/xen.

use std::process::Command;

const EXE: &str = env!("CARGO_BIN_EXE_vchan-cat");

#[test]
fn usage_errors_exit_2() {
    for args in [
        &[][..],
        &["connect", "0"],
        &["dial", "0", "x"],
        &["-s", "1", "listen", "0", "x"],
        &["connect", "zero", "x"],
    ] {
        let out = Command::new(EXE).args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage") || !out.stderr.is_empty());
    }
}

#[test]
fn without_xenstore_it_fails_with_a_message() {
    if std::path::Path::new("/dev/xen/xenbus").exists() {
        return; // in a Xen domain: nothing to check here
    }
    let out = Command::new(EXE)
        .args(["-t", "0.2", "connect", "0", "echo"])
        .env("XENSTORED_PATH", "/nonexistent/xenstored-socket")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no xenstore"), "{err}");
}
