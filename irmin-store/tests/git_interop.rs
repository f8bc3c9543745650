//! The on-disk backend against the real `git` CLI: what we write git accepts
//! (`fsck --strict`, `log`, `show`), and we read what git writes (loose, packs with
//! OFS and REF deltas).

mod common;

use common::*;
use irmin_store::backend::disk::{Durability, GitDir};
use irmin_store::{Backend, Error, ObjectId, Repo};

#[test]
fn git_reads_what_we_write() {
    let s = Scratch::new("write");
    let repo_dir = s.path().join("r.git");
    let mut r = Repo::new(GitDir::init_bare(&repo_dir, Durability::Fsync).unwrap());
    let mut tx = r.transaction("main").unwrap();
    tx.set("local/domain/1/name", "guest one").unwrap();
    tx.set("local/domain/1/memory", "1024").unwrap();
    tx.set("a.b", "sorts before the tree a").unwrap();
    tx.set("a/x", "in tree a").unwrap();
    tx.set("a0", "after").unwrap();
    tx.commit(&mut r, &info(1_700_000_000, "first\n\nwith a body"))
        .unwrap();
    for i in 0..20 {
        r.set(
            "main",
            &format!("local/domain/{}/counter", i % 3),
            format!("{i}").as_bytes(),
            &info(1_700_000_001 + i, &format!("c{i}")),
        )
        .unwrap();
    }
    let head = r.branch_head("main").unwrap().unwrap();
    r.set_branch("dev", None, Some(head)).unwrap();
    r.tag("v1", head).unwrap();
    fsck_strict(&repo_dir);
    let log = git_ok(&repo_dir, &["log", "--format=%H %s", "main"]);
    assert_eq!(log.lines().count(), 21);
    assert!(log.starts_with(&head.to_hex()));
    assert_eq!(
        git_ok(&repo_dir, &["show", "main:local/domain/1/name"]),
        "guest one"
    );
    assert_eq!(
        git_ok(&repo_dir, &["show", "v1:a.b"]),
        "sorts before the tree a"
    );
    let author = git_ok(
        &repo_dir,
        &[
            "log",
            "-1",
            "--format=%an <%ae> %at %ad",
            "--date=format:%z",
            "main",
        ],
    );
    assert_eq!(
        author.trim(),
        "Irmin Tester <irmin@example.com> 1700000020 +0100"
    );
    assert_eq!(
        git_ok(&repo_dir, &["rev-parse", "dev"]).trim(),
        head.to_hex()
    );
    assert_eq!(
        git_ok(&repo_dir, &["cat-file", "-t", "HEAD"]).trim(),
        "commit"
    );
}

fn pack_idx(git_dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::read_dir(git_dir.join("objects/pack"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "idx"))
        .unwrap()
}

fn build_git_repo(dir: &std::path::Path) {
    git_ok(dir, &["init", "-q", "w"]);
    let w = dir.join("w");
    std::fs::create_dir_all(w.join("dir/sub")).unwrap();
    let big: String = (0..2000).map(|i| format!("line {i}\n")).collect();
    for round in 0..6 {
        std::fs::write(w.join("dir/sub/file.txt"), format!("{big}round {round}\n")).unwrap();
        std::fs::write(w.join(format!("top{round}")), format!("top {round}")).unwrap();
        if round == 0 {
            std::fs::write(w.join("exec.sh"), "#!/bin/sh\n").unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(w.join("exec.sh"), std::fs::Permissions::from_mode(0o755))
                .unwrap();
            std::os::unix::fs::symlink("dir/sub/file.txt", w.join("link")).unwrap();
        }
        git_ok(&w, &["add", "-A"]);
        git_ok(&w, &["commit", "-q", "-m", &format!("round {round}")]);
    }
}

fn check_git_repo(w: &std::path::Path) {
    let r = Repo::new(GitDir::open(w, Durability::Process).unwrap());
    let head = r.resolve("HEAD").unwrap();
    assert_eq!(head.to_hex(), git_ok(w, &["rev-parse", "HEAD"]).trim());
    let v = r.get("main", "dir/sub/file.txt").unwrap().unwrap();
    assert_eq!(
        &*v,
        git_ok(w, &["show", "HEAD:dir/sub/file.txt"]).as_bytes()
    );
    let log = r.log(head, 100).unwrap();
    assert_eq!(log.len(), 6);
    assert_eq!(log[5].1.message_str(), "round 0\n");
    // Old versions come out of deltas.
    let first = log[5].0;
    let old = r.get_at(&first, "dir/sub/file.txt").unwrap().unwrap();
    assert!(old.ends_with(b"round 0\n"));
    let kinds: Vec<_> = r.list("main", "").unwrap();
    assert!(
        kinds
            .iter()
            .any(|(n, k)| n == "dir" && *k == irmin_store::EntryKind::Node)
    );
    let tree = r.read_commit(&head).unwrap().tree;
    let modes: Vec<_> = r
        .walk_values(tree)
        .unwrap()
        .into_iter()
        .map(|(p, m, _)| (p, m))
        .collect();
    assert!(modes.contains(&("exec.sh".into(), irmin_store::Mode::Executable)));
    assert!(modes.contains(&("link".into(), irmin_store::Mode::Symlink)));
    let hist = r.history(head, "dir/sub/file.txt", 100).unwrap();
    assert_eq!(hist.len(), 6);
    let diff = r.diff(Some(&log[1].0), &head).unwrap();
    let paths: Vec<_> = diff.iter().map(|c| c.path.as_str()).collect();
    assert_eq!(paths, vec!["dir/sub/file.txt", "top5"]);
}

#[test]
fn we_read_what_git_writes_loose_and_packed() {
    let s = Scratch::new("read");
    build_git_repo(s.path());
    let w = s.path().join("w");
    check_git_repo(&w);
    // OFS_DELTA packs (git's default), then REF_DELTA packs.
    git_ok(&w, &["gc", "-q", "--aggressive", "--prune=now"]);
    assert!(
        std::fs::read_dir(w.join(".git/objects/pack"))
            .unwrap()
            .count()
            >= 2
    );
    check_git_repo(&w);
    git_ok(
        &w,
        &[
            "-c",
            "repack.useDeltaBaseOffset=false",
            "repack",
            "-q",
            "-a",
            "-d",
            "-f",
        ],
    );
    let v = git_ok(
        &w,
        &[
            "verify-pack",
            "-v",
            &pack_idx(&w.join(".git")).display().to_string(),
        ],
    );
    assert!(v.contains("chain length"), "REF_DELTA pack has deltas");
    check_git_repo(&w);
    // git pack-refs moves refs to packed-refs: still readable and updatable.
    git_ok(&w, &["pack-refs", "--all"]);
    let mut r = Repo::new(GitDir::open(&w, Durability::Process).unwrap());
    let head = r.resolve("main").unwrap();
    let c = r
        .set("main", "new/key", b"v", &info(1_700_000_100, "ours on top"))
        .unwrap();
    assert_eq!(r.read_commit(&c).unwrap().parents, vec![head]);
    assert_eq!(git_ok(&w, &["show", "main:new/key"]), "v");
    fsck_strict(&w);
}

#[test]
fn our_repack_is_read_by_git_and_by_us() {
    let s = Scratch::new("repack");
    let dir = s.path().join("r.git");
    let mut r = Repo::new(GitDir::init_bare(&dir, Durability::Process).unwrap());
    for i in 0..300 {
        r.set(
            "main",
            &format!("k/{}/{}", i % 7, i % 13),
            format!("value {i}").as_bytes(),
            &info(1_700_000_000 + i, "c"),
        )
        .unwrap();
    }
    let before = r.backend().object_usage().unwrap();
    let stats = r.backend_mut().repack().unwrap();
    let after = r.backend().object_usage().unwrap();
    assert!(stats.loose_removed > 0);
    assert!(
        after.apparent < before.apparent && after.allocated * 10 < before.allocated,
        "packing should shrink {before:?} -> {after:?}"
    );
    fsck_strict(&dir);
    let verify = git(
        &dir,
        &["verify-pack", "-v", &pack_idx(&dir).display().to_string()],
    );
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(
        String::from_utf8_lossy(&verify.stdout).contains("chain length = 1"),
        "pack has deltas"
    );
    r.clear_caches();
    let r = Repo::new(GitDir::open(&dir, Durability::Process).unwrap());
    assert_eq!(&*r.get("main", "k/5/5").unwrap().unwrap(), b"value 278");
    assert_eq!(r.log(r.resolve("main").unwrap(), 1000).unwrap().len(), 300);
    assert_eq!(git_ok(&dir, &["rev-list", "--count", "main"]).trim(), "300");
}

#[test]
fn corruption_missing_objects_and_lost_cas_are_typed() {
    let s = Scratch::new("bad");
    let dir = s.path().join("r.git");
    let mut r = Repo::new(GitDir::init_bare(&dir, Durability::Process).unwrap());
    let c = r
        .set("main", "a/b", b"value", &info(1_700_000_000, "c"))
        .unwrap();
    // Second writer on the same repository loses the CAS.
    let mut other = Repo::new(GitDir::open(&dir, Durability::Process).unwrap());
    let mut tx = other.transaction("main").unwrap();
    tx.set("x", "y").unwrap();
    r.set("main", "a/b", b"newer", &info(1_700_000_001, "c2"))
        .unwrap();
    assert!(matches!(
        tx.commit(&mut other, &info(1_700_000_002, "late")),
        Err(Error::RefChanged { .. })
    ));
    // A held lock is a typed error.
    std::fs::write(dir.join("refs/heads/main.lock"), "").unwrap();
    assert!(matches!(
        r.set("main", "z", b"1", &info(1_700_000_003, "z")),
        Err(Error::RefLocked(_))
    ));
    assert_eq!(r.backend().recover().unwrap(), 1);
    // Corrupt a loose object: same id, other content.
    let tree = r.read_commit(&c).unwrap().tree;
    let hex = tree.to_hex();
    let p = dir.join("objects").join(&hex[..2]).join(&hex[2..]);
    let blob_like = miniz_oxide::deflate::compress_to_vec_zlib(b"tree 3\0abc", 1);
    std::fs::remove_file(&p).unwrap();
    std::fs::write(&p, blob_like).unwrap();
    let fresh = Repo::new(GitDir::open(&dir, Durability::Process).unwrap());
    assert!(matches!(
        fresh.read_tree(&tree),
        Err(Error::HashMismatch { .. })
    ));
    std::fs::write(&p, b"not zlib").unwrap();
    assert!(matches!(fresh.read_tree(&tree), Err(Error::Corrupt { .. })));
    // A ref pointing at a missing object.
    let missing = ObjectId([0xab; 20]);
    std::fs::write(dir.join("refs/heads/broken"), format!("{missing}\n")).unwrap();
    assert!(matches!(fresh.get("broken", "a"), Err(Error::MissingObject(id)) if id == missing));
    assert!(matches!(
        r.set_branch("x", None, Some(missing)),
        Err(Error::MissingObject(_))
    ));
    assert!(fresh.backend().read_ref("refs/heads/../../x").is_err());
}
