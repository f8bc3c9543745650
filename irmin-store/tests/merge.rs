//! Merge: LCAs, tree merge, built-in and user merge functions, conflicts, laws.

use irmin_store::backend::memory::MemoryBackend;
use irmin_store::merge::{ByPath, Counter, LastWriterWins, LineSet, Strict};
use irmin_store::*;
use proptest::prelude::*;

fn info(t: i64, msg: &str) -> CommitInfo {
    CommitInfo::new(
        Signature::new("Tester", "t@example.com", t, 0).unwrap(),
        msg,
    )
}

#[test]
fn fast_forward_and_up_to_date() {
    let mut r = Repo::new(MemoryBackend::new());
    let c1 = r.set("main", "a", b"1", &info(1, "c1")).unwrap();
    r.set_branch("dev", None, Some(c1)).unwrap();
    let c2 = r.set("dev", "b", b"2", &info(2, "c2")).unwrap();
    assert!(
        matches!(r.merge_into("main", &c2, &Strict, &info(3, "m")).unwrap(), MergeOutcome::FastForward(id) if id == c2)
    );
    assert!(matches!(
        r.merge_into("main", &c1, &Strict, &info(3, "m")).unwrap(),
        MergeOutcome::UpToDate
    ));
}

#[test]
fn disjoint_changes_merge_automatically() {
    let mut r = Repo::new(MemoryBackend::new());
    let base = r.set("main", "x/shared", b"s", &info(1, "base")).unwrap();
    r.set_branch("dev", None, Some(base)).unwrap();
    r.set("main", "x/ours", b"o", &info(2, "ours")).unwrap();
    let theirs = r.set("dev", "x/theirs", b"t", &info(3, "theirs")).unwrap();
    let MergeOutcome::Merged(m) = r
        .merge_into("main", &theirs, &Strict, &info(4, "merge"))
        .unwrap()
    else {
        panic!("expected merge commit")
    };
    assert_eq!(r.read_commit(&m).unwrap().parents.len(), 2);
    for (k, v) in [("x/ours", "o"), ("x/theirs", "t"), ("x/shared", "s")] {
        assert_eq!(&*r.get("main", k).unwrap().unwrap(), v.as_bytes());
    }
}

#[test]
fn conflicts_are_explicit_and_resolvable() {
    let mut r = Repo::new(MemoryBackend::new());
    let base = r.set("main", "k", b"0", &info(1, "base")).unwrap();
    r.set_branch("dev", None, Some(base)).unwrap();
    r.set("main", "k", b"ours", &info(2, "ours")).unwrap();
    r.set("main", "only-ours", b"1", &info(2, "ours2")).unwrap();
    let theirs = r.set("dev", "k", b"theirs", &info(3, "theirs")).unwrap();
    let MergeOutcome::Conflicts(mut p) = r
        .merge_into("main", &theirs, &Strict, &info(4, "m"))
        .unwrap()
    else {
        panic!("expected conflict")
    };
    assert_eq!(p.conflicts().len(), 1);
    assert_eq!(p.conflicts()[0].path, "k");
    assert!(matches!(
        p.commit(&mut r, &info(5, "m")),
        Err(Error::UnresolvedConflicts(1))
    ));
    assert!(p.resolve("not-a-conflict", None).is_err());
    p.resolve("k", Some(b"resolved".to_vec())).unwrap();
    let m = p.commit(&mut r, &info(5, "m")).unwrap();
    assert_eq!(r.branch_head("main").unwrap(), Some(m));
    assert_eq!(&*r.get("main", "k").unwrap().unwrap(), b"resolved");
    assert_eq!(&*r.get("main", "only-ours").unwrap().unwrap(), b"1");
}

#[test]
fn builtin_merge_functions() {
    let mut r = Repo::new(MemoryBackend::new());
    let mut tx = r.transaction("main").unwrap();
    tx.set("count", "10").unwrap();
    tx.set("set", "a\nb\n").unwrap();
    tx.set("lww", "base").unwrap();
    let base = tx.commit(&mut r, &info(1, "base")).unwrap();
    r.set_branch("dev", None, Some(base)).unwrap();
    let mut tx = r.transaction("main").unwrap();
    tx.set("count", "13").unwrap();
    tx.set("set", "a\nb\nc\n").unwrap();
    tx.set("lww", "old").unwrap();
    tx.commit(&mut r, &info(2, "ours")).unwrap();
    let mut tx = r.transaction("dev").unwrap();
    tx.set("count", "15").unwrap();
    tx.set("set", "b\nd\n").unwrap();
    tx.set("lww", "newest").unwrap();
    let theirs = tx.commit(&mut r, &info(3, "theirs")).unwrap();
    let f = ByPath::new(Box::new(LastWriterWins))
        .with("count", Box::new(Counter))
        .unwrap()
        .with("set", Box::new(LineSet))
        .unwrap();
    let MergeOutcome::Merged(_) = r.merge_into("main", &theirs, &f, &info(4, "m")).unwrap() else {
        panic!("expected automatic merge")
    };
    assert_eq!(&*r.get("main", "count").unwrap().unwrap(), b"18");
    assert_eq!(&*r.get("main", "set").unwrap().unwrap(), b"b\nc\nd\n");
    assert_eq!(&*r.get("main", "lww").unwrap().unwrap(), b"newest");
}

#[test]
fn user_defined_merge_function() {
    let mut r = Repo::new(MemoryBackend::new());
    let base = r.set("main", "v", b"a", &info(1, "base")).unwrap();
    r.set_branch("dev", None, Some(base)).unwrap();
    r.set("main", "v", b"b", &info(2, "o")).unwrap();
    let theirs = r.set("dev", "v", b"c", &info(3, "t")).unwrap();
    let concat =
        |_: &merge::MergeContext<'_>, _: Option<&[u8]>, o: Option<&[u8]>, t: Option<&[u8]>| {
            let mut v = o.unwrap_or_default().to_vec();
            v.extend_from_slice(t.unwrap_or_default());
            Resolution::Value(Some(v))
        };
    r.merge_into("main", &theirs, &concat, &info(4, "m"))
        .unwrap();
    assert_eq!(&*r.get("main", "v").unwrap().unwrap(), b"bc");
}

#[test]
fn criss_cross_has_two_lcas_and_merges() {
    let mut r = Repo::new(MemoryBackend::new());
    let base = r.set("main", "k", b"0", &info(1, "base")).unwrap();
    r.set_branch("dev", None, Some(base)).unwrap();
    let a = r.set("main", "a", b"1", &info(2, "a")).unwrap();
    let b = r.set("dev", "b", b"1", &info(3, "b")).unwrap();
    // Cross-merge both ways.
    let MergeOutcome::Merged(ma) = r.merge_into("main", &b, &Strict, &info(4, "ma")).unwrap()
    else {
        panic!()
    };
    // Merge a into dev with a separately built commit (dev still at b).
    let MergeOutcome::Merged(mb) = r.merge_into("dev", &a, &Strict, &info(5, "mb")).unwrap() else {
        panic!()
    };
    let mut lcas = r.merge_bases(&ma, &mb).unwrap();
    lcas.sort();
    let mut expect = vec![a, b];
    expect.sort();
    assert_eq!(lcas, expect);
    r.set("main", "c", b"main", &info(6, "c")).unwrap();
    let t = r.set("dev", "d", b"dev", &info(7, "d")).unwrap();
    assert!(matches!(
        r.merge_into("main", &t, &Strict, &info(8, "m")).unwrap(),
        MergeOutcome::Merged(_)
    ));
    for k in ["a", "b", "c", "d", "k"] {
        assert!(r.get("main", k).unwrap().is_some(), "{k}");
    }
}

#[test]
fn value_vs_node_is_a_conflict() {
    let mut r = Repo::new(MemoryBackend::new());
    let base = r.set("main", "z", b"0", &info(1, "base")).unwrap();
    r.set_branch("dev", None, Some(base)).unwrap();
    r.set("main", "p", b"value", &info(2, "o")).unwrap();
    let t = r.set("dev", "p/child", b"node", &info(3, "t")).unwrap();
    let MergeOutcome::Conflicts(p) = r
        .merge_into("main", &t, &LastWriterWins, &info(4, "m"))
        .unwrap()
    else {
        panic!()
    };
    assert_eq!(p.conflicts()[0].path, "p");
}

fn arb_map() -> impl Strategy<Value = std::collections::BTreeMap<String, Vec<u8>>> {
    proptest::collection::btree_map(
        "[a-c]{1,2}(/[a-c]{1,2}){0,2}",
        proptest::collection::vec(any::<u8>(), 0..4),
        0..8,
    )
}

fn commit_map(
    r: &mut Repo<MemoryBackend>,
    branch: &str,
    m: &std::collections::BTreeMap<String, Vec<u8>>,
    t: i64,
) -> ObjectId {
    let mut tx = r.transaction(branch).unwrap();
    if let Some(head) = tx.base() {
        let tree = r.read_commit(&head).unwrap().tree;
        for (p, _, _) in r.walk_values(tree).unwrap() {
            tx.remove(&p).unwrap();
        }
    }
    for (k, v) in m {
        tx.set(k, v.clone()).unwrap();
    }
    tx.commit(r, &info(t, "m")).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    // merge(base, x, base) = x, merge(base, x, x) = x, and merge is symmetric in the
    // set of conflicting paths.
    #[test]
    fn merge_laws(base in arb_map(), ours in arb_map(), theirs in arb_map()) {
        let mut r = Repo::new(MemoryBackend::new());
        let b = commit_map(&mut r, "main", &base, 1);
        r.set_branch("o", None, Some(b)).unwrap();
        r.set_branch("t", None, Some(b)).unwrap();
        let o = commit_map(&mut r, "o", &ours, 2);
        let t = commit_map(&mut r, "t", &theirs, 3);
        let (bt, ot, tt) = (r.read_commit(&b).unwrap().tree, r.read_commit(&o).unwrap().tree, r.read_commit(&t).unwrap().tree);
        let m = r.merge_trees(Some(bt), ot, bt, &Strict, (0, 0)).unwrap();
        prop_assert!(m.conflicts.is_empty());
        prop_assert_eq!(m.tree, ot);
        let m = r.merge_trees(Some(bt), ot, ot, &Strict, (0, 0)).unwrap();
        prop_assert_eq!(m.tree, ot);
        let m1 = r.merge_trees(Some(bt), ot, tt, &Strict, (0, 0)).unwrap();
        let m2 = r.merge_trees(Some(bt), tt, ot, &Strict, (0, 0)).unwrap();
        let p1: Vec<_> = m1.conflicts.iter().map(|c| c.path.clone()).collect();
        let p2: Vec<_> = m2.conflicts.iter().map(|c| c.path.clone()).collect();
        prop_assert_eq!(&p1, &p2);
        if p1.is_empty() {
            prop_assert_eq!(m1.tree, m2.tree);
        }
    }
}
