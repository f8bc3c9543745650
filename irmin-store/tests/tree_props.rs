//! Property tests: tree and commit encode/decode roundtrip, git order invariants.

use irmin_store::object::{Tree, TreeEntry, entry_order};
use irmin_store::*;
use proptest::prelude::*;

fn arb_mode() -> impl Strategy<Value = Mode> {
    prop_oneof![
        Just(Mode::File),
        Just(Mode::Executable),
        Just(Mode::Tree),
        Just(Mode::Symlink),
        Just(Mode::Gitlink)
    ]
}

fn arb_entries() -> impl Strategy<Value = Vec<TreeEntry>> {
    proptest::collection::btree_map("[a-z0-9._-]{1,6}", (arb_mode(), any::<[u8; 20]>()), 0..20)
        .prop_map(|m| {
            m.into_iter()
                .filter(|(n, _)| n != "." && n != ".." && n != ".git")
                .map(|(n, (mode, id))| TreeEntry {
                    mode,
                    name: n.into_bytes(),
                    id: ObjectId(id),
                })
                .collect()
        })
}

proptest! {
    #[test]
    fn tree_roundtrip(entries in arb_entries()) {
        let t = Tree::from_entries(entries).unwrap();
        let enc = t.encode();
        let dec = Tree::decode(&enc).unwrap();
        prop_assert_eq!(&dec, &t);
        prop_assert_eq!(dec.encode(), enc);
        for w in t.entries().windows(2) {
            prop_assert_eq!(entry_order(&w[0].name, w[0].mode.is_tree(), &w[1].name, w[1].mode.is_tree()), std::cmp::Ordering::Less);
        }
    }

    #[test]
    fn upsert_keeps_order(entries in arb_entries(), extra in arb_entries()) {
        let mut t = Tree::from_entries(entries).unwrap();
        for e in extra {
            t.upsert(e);
        }
        let rebuilt = Tree::from_entries(t.entries().to_vec()).unwrap();
        prop_assert_eq!(rebuilt, t);
    }

    #[test]
    fn decode_never_panics(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Tree::decode(&data);
        let _ = Commit::decode(&data);
        let _ = object::parse_object_header(&data);
    }

    #[test]
    fn commit_roundtrip(msg in "[ -~\n]{0,40}", t in 0i64..4_000_000_000, tz in -720i32..720, np in 0usize..3) {
        let sig = Signature::new("N", "e@x", t, tz).unwrap();
        let c = Commit { tree: ObjectId([1; 20]), parents: vec![ObjectId([2; 20]); np], author: sig.clone(), committer: sig, extra_headers: vec![], message: msg.into_bytes() };
        prop_assert_eq!(Commit::decode(&c.encode()).unwrap(), c);
    }
}
