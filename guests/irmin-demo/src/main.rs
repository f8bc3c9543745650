//! `irmin-demo`: irmin-store's `no_std` core inside a unikernel.
//!
//! Builds a small history in the in-memory backend with fixed authors and times: two
//! commits on `main`, a branch `dev` that adds 2 to a counter while `main` adds 4, and a
//! merge with the counter merge function (1 + 4 + 2 = 7). It prints every commit id. The
//! ids are Git's: `git-reference.sh` builds the same history with git plumbing on the host
//! and the end-to-end suite checks that both agree.
#![no_std]
#![no_main]

extern crate alloc;

use alloc::format;
use alloc::string::{String, ToString};

use irmin_store::backend::memory::MemoryBackend;
use irmin_store::merge::{Counter, MergeOutcome};
use irmin_store::{CommitInfo, Repo, Signature};
use xen_pv::{Env, println};

xen_pv::entry!(main);

fn main(_env: &Env) -> Result<(), String> {
    let e = |what: &str, err: irmin_store::Error| format!("{what}: {err}");
    let mut repo = Repo::new(MemoryBackend::new());
    let at = |time: i64, message: &str| -> Result<CommitInfo, String> {
        let who = Signature::new("Rust unikernel", "guest@xen.invalid", time, 0)
            .map_err(|err| e("signature", err))?;
        Ok(CommitInfo::new(who, message))
    };
    let c1 = repo
        .set(
            "main",
            "greeting",
            b"hello from a unikernel\n",
            &at(1_700_000_000, "greeting")?,
        )
        .map_err(|err| e("set greeting", err))?;
    let c2 = repo
        .set("main", "counter", b"1", &at(1_700_000_001, "counter 1")?)
        .map_err(|err| e("set counter", err))?;
    repo.set_branch("dev", None, Some(c2))
        .map_err(|err| e("branch dev", err))?;
    let c3 = repo
        .set("dev", "counter", b"3", &at(1_700_000_002, "dev: +2")?)
        .map_err(|err| e("dev commit", err))?;
    let c4 = repo
        .set("main", "counter", b"5", &at(1_700_000_003, "main: +4")?)
        .map_err(|err| e("main commit", err))?;
    let merged = match repo
        .merge_into("main", &c3, &Counter, &at(1_700_000_004, "merge dev")?)
        .map_err(|err| e("merge", err))?
    {
        MergeOutcome::Merged(id) => id,
        other => return Err(format!("expected a merge commit, got {other:?}")),
    };
    let counter = repo
        .get("main", "counter")
        .map_err(|err| e("get", err))?
        .ok_or("counter missing after the merge")?;
    let counter = String::from_utf8_lossy(&counter).to_string();
    for (name, id) in [
        ("greeting", c1),
        ("counter 1", c2),
        ("dev: +2", c3),
        ("main: +4", c4),
    ] {
        println!("irmin-demo: commit {id} {name}");
    }
    println!("irmin-demo: merged dev into main with the counter merge: counter = {counter}");
    println!("irmin-demo: main at {merged}");
    if counter != "7" {
        return Err(format!("counter merge gave {counter}, expected 7"));
    }
    Ok(())
}
