//! The `irmin-store` CLI end to end on a scratch repository.

mod common;

use std::process::Command;

use common::*;

fn cli(repo: &std::path::Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_irmin-store"))
        .arg("--repo")
        .arg(repo)
        .arg("--no-fsync")
        .args(args)
        .env("IRMIN_AUTHOR_NAME", "Cli User")
        .env("IRMIN_AUTHOR_EMAIL", "cli@example.com")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(repo: &std::path::Path, args: &[&str]) -> String {
    let (code, out, err) = cli(repo, args);
    assert_eq!(code, 0, "irmin-store {args:?}: {out}{err}");
    out
}

#[test]
fn cli_end_to_end() {
    let s = Scratch::new("cli");
    let r = s.path().join("store.git");
    ok(&r, &["init"]);
    let c1 = ok(&r, &["set", "a/b", "one", "-m", "first"]);
    ok(&r, &["set", "a/c", "two"]);
    assert_eq!(ok(&r, &["get", "a/b"]), "one");
    assert_eq!(ok(&r, &["ls"]), "a/\n");
    assert_eq!(ok(&r, &["ls", "a"]), "b\nc\n");
    assert_eq!(cli(&r, &["get", "nope"]).0, 1);
    let (code, _, err) = cli(&r, &["set", "../x", "v"]);
    assert_eq!(code, 1);
    assert!(err.contains("invalid path"), "{err}");
    let log = ok(&r, &["log"]);
    assert_eq!(log.lines().count(), 2);
    assert!(log.lines().last().unwrap().ends_with("Cli User first"));
    assert_eq!(ok(&r, &["diff", c1.trim()]), "A\ta/c\n");

    // Branch, diverge, merge with a strategy.
    ok(&r, &["branch", "dev"]);
    ok(&r, &["--branch", "dev", "set", "n", "5"]);
    ok(&r, &["set", "n", "3"]);
    let (code, out, _) = cli(&r, &["merge", "dev"]);
    assert_eq!(code, 1, "strict merge conflicts");
    assert!(out.contains("CONFLICT n"), "{out}");
    ok(&r, &["branch", "base", c1.trim()]);
    let out = ok(&r, &["merge", "dev", "--strategy", "lww"]);
    assert!(out.starts_with("merged: "), "{out}");
    assert!(ok(&r, &["branch"]).contains("* main"));
    ok(&r, &["branch", "-d", "base"]);
    assert!(!ok(&r, &["branch"]).contains("base"));
    ok(&r, &["remove", "a/c"]);
    assert_eq!(ok(&r, &["ls", "a"]), "b\n");
    assert_eq!(ok(&r, &["log", "a/c"]).lines().count(), 2);

    // Push to a bare git repo, pull back into a second store, gc.
    git_ok(s.path(), &["init", "-q", "--bare", "remote.git"]);
    let url = format!("file://{}", s.path().join("remote.git").display());
    ok(&r, &["push", &url]);
    let r2 = s.path().join("second.git");
    ok(&r2, &["init"]);
    let out = ok(&r2, &["pull", &url]);
    assert!(out.starts_with("fast-forward"), "{out}");
    assert_eq!(ok(&r2, &["get", "a/b"]), "one");
    assert!(ok(&r, &["gc"]).starts_with("packed"));
    assert_eq!(ok(&r, &["get", "a/b"]), "one");
    fsck_strict(&r);
    fsck_strict(&r2);
    assert_eq!(cli(&r, &["frobnicate"]).0, 2);
}
