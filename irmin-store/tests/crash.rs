//! Durability: a writer process is SIGKILLed at random moments, 200 times. After each
//! kill the repository must be at a committed state (the branch's history is complete
//! and self-consistent) and `git fsck --strict` must be clean.
//!
//! The writer is this test binary re-executed with `IRMIN_CRASH_WRITER` set (it runs the
//! `writer_child` test), so no extra binary is needed.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use irmin_store::Repo;
use irmin_store::backend::disk::{Durability, GitDir};

const ENV: &str = "IRMIN_CRASH_WRITER";

/// Writer mode: commit forever. Each commit increments `counter` and rewrites a few
/// keys; every 64th commit the repository is repacked (so kills also hit repacks).
#[test]
fn writer_child() {
    let Ok(dir) = std::env::var(ENV) else { return };
    let durability = if std::env::var("IRMIN_CRASH_FSYNC").is_ok() {
        Durability::Fsync
    } else {
        Durability::Process
    };
    let backend = GitDir::open(&dir, durability).unwrap();
    // Single writer: whatever a killed predecessor left (locks, temp files) is stale.
    backend.recover().unwrap();
    let mut repo = Repo::new(backend);
    loop {
        let head = repo.branch_head("main").unwrap();
        let n: u64 = match head {
            Some(_) => std::str::from_utf8(&repo.get("main", "counter").unwrap().unwrap())
                .unwrap()
                .parse()
                .unwrap(),
            None => 0,
        } + 1;
        let mut tx = repo.transaction("main").unwrap();
        tx.set("counter", n.to_string()).unwrap();
        tx.set(&format!("keys/{}/{}", n % 7, n % 31), format!("value {n}"))
            .unwrap();
        if n % 5 == 0 {
            tx.remove(&format!("keys/{}", (n / 5) % 7)).unwrap();
        }
        tx.commit(
            &mut repo,
            &info(1_700_000_000 + n as i64, &format!("commit {n}")),
        )
        .unwrap();
        if n % 64 == 0 {
            repo.backend_mut().repack().unwrap();
        }
    }
}

fn check_committed_state(dir: &std::path::Path) -> u64 {
    let backend = GitDir::open(dir, Durability::Process).unwrap();
    let repo = Repo::new(backend);
    let Some(head) = repo.branch_head("main").unwrap() else {
        return 0;
    };
    let log = repo.log(head, usize::MAX).unwrap();
    let counter: u64 = std::str::from_utf8(&repo.get("main", "counter").unwrap().unwrap())
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(counter, log.len() as u64, "history and counter agree");
    // Every value of the head is readable and hash-checked.
    let tree = repo.read_commit(&head).unwrap().tree;
    for (_, _, id) in repo.walk_values(tree).unwrap() {
        repo.read_blob(&id).unwrap();
    }
    counter
}

#[test]
fn sigkill_writer_200_times() {
    let s = Scratch::new("crash");
    let dir = s.path().join("r.git");
    GitDir::init_bare(&dir, Durability::Process).unwrap();
    let exe = std::env::current_exe().unwrap();
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut last = 0;
    let mut progressed = 0;
    for round in 0..200 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut cmd = Command::new(&exe);
        cmd.args(["--exact", "writer_child", "--nocapture", "--test-threads=1"])
            .env(ENV, &dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if round % 10 == 0 {
            cmd.env("IRMIN_CRASH_FSYNC", "1");
        }
        let mut child = cmd.spawn().unwrap();
        std::thread::sleep(Duration::from_micros(2_000 + seed % 25_000));
        // Child::kill sends SIGKILL on Unix.
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert!(
            status.code().is_none(),
            "writer must die by the signal, not exit: {status:?}"
        );
        fsck_strict(&dir);
        let now = check_committed_state(&dir);
        assert!(now >= last, "history never goes back ({last} -> {now})");
        if now > last {
            progressed += 1;
        }
        last = now;
    }
    eprintln!("crash test: {last} commits survived 200 kills, {progressed} rounds made progress");
    // The writer did real work between kills (not all kills hit startup).
    assert!(progressed > 50, "only {progressed} rounds made progress");
    assert!(last > 200, "only {last} commits in 200 rounds");
}
