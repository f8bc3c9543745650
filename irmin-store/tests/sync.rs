//! Sync: store-to-store (any backend), and with real git remotes: a bare repository over
//! file:// (git upload-pack / receive-pack over pipes) and a `git daemon` on 127.0.0.1.

mod common;

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use irmin_store::backend::disk::{Durability, GitDir};
use irmin_store::backend::memory::MemoryBackend;
use irmin_store::merge::{LastWriterWins, Strict};
use irmin_store::{Backend, Error, MergeOutcome, Repo, remote, sync};

#[test]
fn store_to_store_fetch_push_pull() {
    let mut a = Repo::new(MemoryBackend::new());
    let mut b = Repo::new(MemoryBackend::new());
    let c1 = a
        .set("main", "x/1", b"a1", &info(1_700_000_000, "a1"))
        .unwrap();
    sync::push_to(&a, &mut b, "main", false).unwrap();
    assert_eq!(&*b.get("main", "x/1").unwrap().unwrap(), b"a1");
    b.set("main", "x/2", b"b2", &info(1_700_000_001, "b2"))
        .unwrap();
    a.set("main", "x/3", b"a3", &info(1_700_000_002, "a3"))
        .unwrap();
    // a's push is not a fast-forward any more.
    assert!(matches!(
        sync::push_to(&a, &mut b, "main", false),
        Err(Error::RefChanged { .. })
    ));
    // Pull = fetch + merge.
    sync::fetch_from(&mut a, &b, "b").unwrap();
    let theirs = a
        .backend()
        .read_ref("refs/remotes/b/main")
        .unwrap()
        .unwrap();
    assert!(matches!(
        a.merge_into("main", &theirs, &Strict, &info(1_700_000_003, "merge"))
            .unwrap(),
        MergeOutcome::Merged(_)
    ));
    sync::push_to(&a, &mut b, "main", false).unwrap();
    for k in ["x/1", "x/2", "x/3"] {
        assert!(b.get("main", k).unwrap().is_some());
    }
    assert!(
        b.is_ancestor(&c1, &b.branch_head("main").unwrap().unwrap())
            .unwrap()
    );
}

fn remote_flow(url: &str, remote_dir: &Path, scratch: &Path) {
    // Our store pushes a branch into the (empty) bare remote.
    let ours_dir = scratch.join("ours.git");
    let mut ours = Repo::new(GitDir::init_bare(&ours_dir, Durability::Process).unwrap());
    for i in 0..5 {
        ours.set(
            "main",
            &format!("cfg/{i}"),
            format!("v{i}").as_bytes(),
            &info(1_700_000_000 + i, "ours"),
        )
        .unwrap();
    }
    remote::push(&mut ours, url, "main", false).unwrap();
    assert_eq!(
        git_ok(remote_dir, &["rev-parse", "main"]).trim(),
        ours.branch_head("main").unwrap().unwrap().to_hex()
    );
    fsck_strict(remote_dir);

    // git clones, commits and pushes on top.
    git_ok(
        scratch,
        &["clone", "-q", remote_dir.to_str().unwrap(), "work"],
    );
    let work = scratch.join("work");
    std::fs::create_dir_all(work.join("cfg")).unwrap();
    std::fs::write(work.join("cfg/from-git"), "hello from git").unwrap();
    git_ok(&work, &["add", "-A"]);
    git_ok(&work, &["commit", "-q", "-m", "git side"]);
    git_ok(&work, &["push", "-q", "origin", "main"]);

    // Meanwhile we commit too: pull must merge.
    ours.set(
        "main",
        "cfg/ours-only",
        b"ours",
        &info(1_700_000_100, "ours again"),
    )
    .unwrap();
    let out = remote::pull(
        &mut ours,
        url,
        "origin",
        "main",
        &LastWriterWins,
        &info(1_700_000_200, "merge origin"),
    )
    .unwrap();
    assert!(matches!(out, MergeOutcome::Merged(_)), "{out:?}");
    assert_eq!(
        &*ours.get("main", "cfg/from-git").unwrap().unwrap(),
        b"hello from git"
    );
    assert_eq!(
        &*ours.get("main", "cfg/ours-only").unwrap().unwrap(),
        b"ours"
    );
    fsck_strict(&ours_dir);

    // Push the merge back; git sees both parents.
    remote::push(&mut ours, url, "main", false).unwrap();
    git_ok(&work, &["pull", "-q", "--ff-only", "origin", "main"]);
    assert_eq!(
        std::fs::read_to_string(work.join("cfg/ours-only")).unwrap(),
        "ours"
    );
    assert_eq!(
        git_ok(&work, &["log", "-1", "--format=%P"])
            .split_whitespace()
            .count(),
        2
    );
    fsck_strict(remote_dir);

    // A non-fast-forward push is refused before anything is sent.
    git_ok(&work, &["commit", "-q", "--allow-empty", "-m", "git again"]);
    git_ok(&work, &["push", "-q", "origin", "main"]);
    ours.set(
        "main",
        "cfg/diverged",
        b"1",
        &info(1_700_000_300, "diverge"),
    )
    .unwrap();
    assert!(matches!(
        remote::push(&mut ours, url, "main", false),
        Err(Error::RefChanged { .. })
    ));
    // Fetch into a fresh store reads everything git has.
    let mut fresh = Repo::new(MemoryBackend::new());
    let fetched = remote::fetch(&mut fresh, url, "origin").unwrap();
    assert!(fetched.objects > 10);
    let head = fresh
        .backend()
        .read_ref("refs/remotes/origin/main")
        .unwrap()
        .unwrap();
    assert_eq!(
        head.to_hex(),
        git_ok(remote_dir, &["rev-parse", "main"]).trim()
    );
    assert_eq!(
        &*fresh.get_at(&head, "cfg/from-git").unwrap().unwrap(),
        b"hello from git"
    );
    // Fetching again transfers nothing.
    assert_eq!(remote::fetch(&mut fresh, url, "origin").unwrap().objects, 0);
}

#[test]
fn file_remote() {
    let s = Scratch::new("file-remote");
    let remote_dir = s.path().join("remote.git");
    git_ok(s.path(), &["init", "-q", "--bare", "remote.git"]);
    let url = format!("file://{}", remote_dir.display());
    remote_flow(&url, &remote_dir, s.path());
}

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn git_daemon_remote() {
    let s = Scratch::new("daemon");
    let base = s.path().join("srv");
    std::fs::create_dir_all(&base).unwrap();
    git_ok(&base, &["init", "-q", "--bare", "remote.git"]);
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("git")
        .args([
            "daemon",
            "--reuseaddr",
            "--export-all",
            "--enable=receive-pack",
            "--listen=127.0.0.1",
        ])
        .arg(format!("--port={port}"))
        .arg(format!("--base-path={}", base.display()))
        .arg(&base)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", s.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("git daemon");
    let _daemon = Daemon(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "git daemon did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("git://127.0.0.1:{port}/remote.git");
    assert!(remote::ls_remote(&url).unwrap().is_empty());
    remote_flow(&url, &base.join("remote.git"), s.path());
    assert!(remote::ls_remote(&format!("git://127.0.0.1:{port}/missing.git")).is_err());
}
