//! Store API over the in-memory backend: values, batches, branches, history, diff, errors.

use irmin_store::backend::memory::MemoryBackend;
use irmin_store::*;

fn info(t: i64, msg: &str) -> CommitInfo {
    CommitInfo::new(
        Signature::new("Tester", "t@example.com", t, 0).unwrap(),
        msg,
    )
}

fn repo() -> Repo<MemoryBackend> {
    Repo::new(MemoryBackend::new())
}

#[test]
fn set_get_list_remove() {
    let mut r = repo();
    assert_eq!(r.get("main", "a/b").unwrap(), None);
    r.set("main", "local/domain/1/name", b"guest1", &info(1, "one"))
        .unwrap();
    r.set("main", "local/domain/2/name", b"guest2", &info(2, "two"))
        .unwrap();
    assert_eq!(
        &*r.get("main", "local/domain/1/name").unwrap().unwrap(),
        b"guest1"
    );
    let ls = r.list("main", "local/domain").unwrap();
    assert_eq!(
        ls,
        vec![("1".into(), EntryKind::Node), ("2".into(), EntryKind::Node)]
    );
    assert!(matches!(
        r.get("main", "local/domain"),
        Err(Error::NotAValue(_))
    ));
    r.remove("main", "local/domain/1", &info(3, "rm")).unwrap();
    assert_eq!(r.get("main", "local/domain/1/name").unwrap(), None);
    assert_eq!(r.list("main", "local/domain").unwrap().len(), 1);
    // Removing the last key leaves the empty tree, not a dangling node.
    r.remove("main", "local", &info(4, "rm all")).unwrap();
    let head = r.branch_head("main").unwrap().unwrap();
    assert_eq!(r.read_commit(&head).unwrap().tree, ObjectId::EMPTY_TREE);
}

#[test]
fn invalid_paths_are_typed_errors() {
    let mut r = repo();
    for bad in ["", "/a", "a//b", "a/../b", ".git/config", "a/"] {
        assert!(
            matches!(
                r.set("main", bad, b"x", &info(1, "x")),
                Err(Error::InvalidPath(_))
            ),
            "{bad}"
        );
    }
    assert!(matches!(
        r.set("bad..branch", "a", b"x", &info(1, "x")),
        Err(Error::InvalidRefName(_))
    ));
    assert!(
        r.branch_head("main").unwrap().is_none(),
        "nothing committed half way"
    );
}

#[test]
fn batch_is_one_commit_and_later_ops_win() {
    let mut r = repo();
    let mut tx = r.transaction("main").unwrap();
    tx.set("a", "value").unwrap();
    tx.set("a/b", "nested replaces value").unwrap();
    tx.set("c/d", "1").unwrap();
    tx.set("c/e", "2").unwrap();
    tx.remove("c/d").unwrap();
    tx.set("x", "1").unwrap();
    tx.remove("x").unwrap();
    let c = tx.commit(&mut r, &info(1, "batch")).unwrap();
    assert_eq!(r.log(c, 10).unwrap().len(), 1);
    assert_eq!(
        &*r.get("main", "a/b").unwrap().unwrap(),
        b"nested replaces value"
    );
    assert_eq!(r.get("main", "c/d").unwrap(), None);
    assert_eq!(&*r.get("main", "c/e").unwrap().unwrap(), b"2");
    assert_eq!(r.get("main", "x").unwrap(), None);
}

#[test]
fn only_changed_path_is_rewritten() {
    let mut r = repo();
    let mut tx = r.transaction("main").unwrap();
    for i in 0..50 {
        tx.set(&format!("d{}/k{i}", i % 5), format!("{i}")).unwrap();
    }
    tx.commit(&mut r, &info(1, "fill")).unwrap();
    let before = r.backend().object_count();
    r.set("main", "d3/k8", b"new", &info(2, "one key")).unwrap();
    // one blob + d3 tree + root tree + commit
    assert_eq!(r.backend().object_count() - before, 4);
}

#[test]
fn cas_lost_to_concurrent_writer_then_rebase() {
    let mut r = repo();
    r.set("main", "a", b"1", &info(1, "base")).unwrap();
    let mut slow = r.transaction("main").unwrap();
    slow.set("b", "slow").unwrap();
    r.set("main", "c", b"fast", &info(2, "fast")).unwrap();
    let err = slow.commit(&mut r, &info(3, "slow")).unwrap_err();
    assert!(matches!(err, Error::RefChanged { .. }), "{err}");
    assert_eq!(r.get("main", "b").unwrap(), None);
    slow.rebase(&r).unwrap();
    slow.commit(&mut r, &info(3, "slow")).unwrap();
    assert_eq!(&*r.get("main", "b").unwrap().unwrap(), b"slow");
    assert_eq!(&*r.get("main", "c").unwrap().unwrap(), b"fast");
}

#[test]
fn branches_tags_history_diff() {
    let mut r = repo();
    let c1 = r.set("main", "k/a", b"1", &info(10, "c1")).unwrap();
    let c2 = r.set("main", "k/b", b"2", &info(20, "c2")).unwrap();
    let c3 = r.set("main", "k/a", b"3", &info(30, "c3")).unwrap();
    r.set_branch("dev", None, Some(c2)).unwrap();
    assert!(matches!(
        r.set_branch("dev", None, Some(c1)),
        Err(Error::RefChanged { .. })
    ));
    assert_eq!(r.branches().unwrap().len(), 2);
    assert_eq!(&*r.get("dev", "k/a").unwrap().unwrap(), b"1");
    r.tag("v1", c1).unwrap();
    assert_eq!(r.resolve("v1").unwrap(), c1);
    assert_eq!(r.resolve("dev").unwrap(), c2);
    assert_eq!(r.resolve(&c3.to_hex()).unwrap(), c3);
    assert!(matches!(r.resolve("nope"), Err(Error::RefNotFound(_))));

    let log: Vec<_> = r
        .log(c3, 100)
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(log, vec![c3, c2, c1]);
    let hist: Vec<_> = r
        .history(c3, "k/a", 100)
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(hist, vec![c3, c1]);
    let d = r.diff(Some(&c1), &c3).unwrap();
    assert_eq!(d.len(), 2);
    assert_eq!(
        (d[0].path.as_str(), d[0].kind()),
        ("k/a", ChangeKind::Modified)
    );
    assert_eq!(
        (d[1].path.as_str(), d[1].kind()),
        ("k/b", ChangeKind::Added)
    );
    let d = r.diff(Some(&c3), &c1).unwrap();
    assert_eq!(d[1].kind(), ChangeKind::Removed);
    assert!(r.is_ancestor(&c1, &c3).unwrap());
    assert!(!r.is_ancestor(&c3, &c1).unwrap());
}

#[test]
fn corrupt_and_missing_objects_are_typed_errors() {
    let mut r = repo();
    let c = r.set("main", "a/b", b"v", &info(1, "x")).unwrap();
    let tree = r.read_commit(&c).unwrap().tree;
    let blob = r
        .find(tree, &Path::parse("a/b").unwrap())
        .unwrap()
        .unwrap()
        .1;
    let mut backend = r.into_backend();
    backend.corrupt_object(&blob, b"evil");
    let r = Repo::new(backend);
    assert!(matches!(
        r.get("main", "a/b"),
        Err(Error::HashMismatch { .. })
    ));
    assert!(matches!(
        r.read_commit(&ObjectId([7; 20])),
        Err(Error::MissingObject(_))
    ));
    assert!(matches!(r.read_tree(&c), Err(Error::WrongKind { .. })));
}
