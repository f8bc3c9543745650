//! The `xs` CLI against both daemons, compared byte for byte with xenstore-utils.

mod support;

use std::process::{Command, Output, Stdio};

use support::{Daemon, Kind};

fn xs(d: &Daemon, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xs"))
        .args(args)
        .env("XENSTORED_PATH", &d.socket)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn xs_ok(d: &Daemon, args: &[&str]) -> String {
    let out = xs(d, args);
    assert!(
        out.status.success(),
        "xs {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn check(kind: Kind) {
    let d = Daemon::start(kind);
    // Written by xs, read by xenstore-read (escapes included), and the other way round.
    xs_ok(
        &d,
        &[
            "write",
            "/cli/a",
            "x\\ty\\001",
            "/cli/sub/deep",
            "a long value that will not fit in eighty columns once indented and tagged",
        ],
    );
    assert_eq!(d.tool_ok("xenstore-read", &["/cli/a"]), "x\\ty\\001\n");
    d.tool_ok(
        "xenstore-write",
        &["/cli/b", "from tools", "/cli/sub/c", ""],
    );
    assert_eq!(xs_ok(&d, &["read", "/cli/b"]), "from tools\n");
    assert_eq!(
        xs_ok(&d, &["read", "-p", "/cli/b", "/cli/a"]),
        d.tool_ok("xenstore-read", &["-p", "/cli/b", "/cli/a"])
    );
    d.tool_ok("xenstore-chmod", &["/cli/b", "r0", "b3"]);
    assert_eq!(xs_ok(&d, &["perms", "/cli/b"]), "r0,b3\n");
    xs_ok(&d, &["chmod", "/cli/a", "w0", "n4"]);
    assert!(
        d.tool_ok("xenstore-ls", &["-p", "/cli"])
            .contains("(w0,n4)")
    );

    // ls output is identical to xenstore-ls in every layout.
    for flags in [&[][..], &["-p"], &["-f"], &["-f", "-p"]] {
        let mut args = vec!["ls"];
        args.extend_from_slice(flags);
        args.push("/cli");
        let ours = xs_ok(&d, &args);
        let theirs = d.tool_ok("xenstore-ls", &args[1..]);
        assert_eq!(ours, theirs, "ls {flags:?}");
    }
    assert_eq!(
        xs_ok(&d, &["list", "/cli/sub"]),
        d.tool_ok("xenstore-list", &["/cli/sub"])
    );
    // On a narrow terminal both truncate values to the width (util-linux `script` provides
    // the pty).
    let on_tty = |cmd: String| {
        let out = Command::new("script")
            .args(["-qc", &format!("stty cols 50; {cmd}"), "/dev/null"])
            .env("XENSTORED_PATH", &d.socket)
            .output()
            .expect("script (util-linux) missing");
        String::from_utf8(out.stdout).unwrap()
    };
    let ours = on_tty(format!("{} ls -p /cli", env!("CARGO_BIN_EXE_xs")));
    assert!(ours.contains("\\...\""), "{ours}");
    assert_eq!(ours, on_tty("xenstore-ls -p /cli".into()));

    // Failures exit non-zero like the tools.
    assert!(!xs(&d, &["read", "-z", "/cli/b"]).status.success());
    assert!(!xs(&d, &["frobnicate"]).status.success());
    assert!(!xs(&d, &["read", "/cli/missing"]).status.success());
    assert!(xs(&d, &["exists", "/cli/a"]).status.success());
    assert!(!xs(&d, &["exists", "/cli/missing"]).status.success());

    // rm -t removes parents left empty.
    xs_ok(&d, &["rm", "-t", "/cli/sub/deep"]);
    assert!(
        d.tool("xenstore-exists", &["/cli/sub"]).status.success(),
        "sub still has c"
    );
    xs_ok(&d, &["rm", "-t", "/cli/sub/c"]);
    assert!(!d.tool("xenstore-exists", &["/cli/sub"]).status.success());
    assert!(d.tool("xenstore-exists", &["/cli"]).status.success());

    // watch prints event paths as they come.
    let watcher = Command::new(env!("CARGO_BIN_EXE_xs"))
        .args(["watch", "-n", "3", "/cli/w"])
        .env("XENSTORED_PATH", &d.socket)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    d.tool_ok("xenstore-write", &["/cli/w/x", "1"]);
    d.tool_ok("xenstore-write", &["/cli/w/y", "2"]);
    let out = watcher.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "/cli/w\n/cli/w/x\n/cli/w/y\n"
    );
}

#[test]
fn xs_cli_matches_xenstore_utils_on_cxenstored() {
    check(Kind::C)
}

#[test]
fn xs_cli_matches_xenstore_utils_on_oxenstored() {
    check(Kind::O)
}
