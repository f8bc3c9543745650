//! Durability: a writer process is SIGKILLed at random moments, 200 times. After each
//! kill the repository must be at a committed state (the branch's history is complete
//! and self-consistent) and `git fsck --strict` must be clean.
//!
//! The writer is this test binary re-executed with `IRMIN_CRASH_WRITER` set (it runs the
//! `writer_child` test), so no extra binary is needed.
#![cfg(feature = "std")]

mod common;

use std::io::Write;
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
    let mut backend = GitDir::open(&dir, durability).unwrap();
    // Single writer: whatever a killed predecessor left (locks, temp files) is stale.
    backend.recover().unwrap();
    // Group commit: flush explicitly every `group` commits (no automatic flush), so the
    // writer knows exactly which commits are acknowledged.
    let group: u64 = match std::env::var("IRMIN_CRASH_GROUP") {
        Ok(n) => {
            backend.set_group_commit(usize::MAX).unwrap();
            n.parse().unwrap()
        }
        Err(_) => 0,
    };
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
        if group > 0 && n % group == 0 {
            repo.backend_mut().flush().unwrap();
        }
        if group == 0 || n % group == 0 {
            // Acknowledged: durable against the process dying from here on.
            let mut out = std::io::stdout().lock();
            // Leading newline: the harness prints "test writer_child ... " without one.
            writeln!(out, "\nACK {n}").unwrap();
            out.flush().unwrap();
        }
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
    let mut acks_checked = 0u64;
    for round in 0..200 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let mut cmd = Command::new(&exe);
        cmd.args(["--exact", "writer_child", "--nocapture", "--test-threads=1"])
            .env(ENV, &dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        if round % 10 == 0 {
            cmd.env("IRMIN_CRASH_FSYNC", "1");
        }
        // Every third round uses group commit (objects as packs, refs held locked).
        if round % 3 == 1 {
            cmd.env("IRMIN_CRASH_GROUP", (2 + seed % 12).to_string());
        }
        let mut child = cmd.spawn().unwrap();
        // Collect the writer's acknowledgements as they come.
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<u64>();
        let reader = std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(n) = line.strip_prefix("ACK ").and_then(|n| n.parse().ok()) {
                    let _ = tx.send(n);
                }
            }
        });
        // Kill only once the writer has acknowledged a commit, at a random moment after
        // that: every round then tests real work, whatever the machine's speed. (Not a
        // timing assertion: the bound only catches a writer that never commits.)
        let first = rx.recv_timeout(Duration::from_secs(120));
        std::thread::sleep(Duration::from_micros(seed % 40_000));
        // Child::kill sends SIGKILL on Unix.
        child.kill().unwrap();
        let status = child.wait().unwrap();
        reader.join().unwrap();
        let first = first
            .unwrap_or_else(|_| panic!("round {round}: the writer never acknowledged a commit"));
        let acked = rx.try_iter().fold(first, u64::max);
        assert!(
            status.code().is_none(),
            "writer must die by the signal, not exit: {status:?}"
        );
        fsck_strict(&dir);
        let now = check_committed_state(&dir);
        assert!(now >= last, "history never goes back ({last} -> {now})");
        assert!(
            now >= acked,
            "round {round}: acknowledged commit {acked} lost (found {now})"
        );
        assert!(
            now > last,
            "round {round}: an acknowledged commit added nothing ({last} -> {now})"
        );
        acks_checked += 1;
        last = now;
    }
    eprintln!(
        "crash test: {last} commits survived 200 kills, every round checked its acknowledged commits"
    );
    assert_eq!(acks_checked, 200);
}
