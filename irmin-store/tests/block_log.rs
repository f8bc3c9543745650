//! The block-device log backend: same objects as any other backend, recovery to the last
//! valid record, and power cuts at random moments (reordered/torn unflushed writes).

use irmin_store::backend::block::{BlockDevice, BlockLog, MemoryBlockDevice};
use irmin_store::backend::memory::MemoryBackend;
use irmin_store::{CommitInfo, Error, ObjectId, Repo, Signature};

fn info(t: i64) -> CommitInfo {
    CommitInfo::new(Signature::new("Blk", "blk@example.com", t, 0).unwrap(), "c")
}

fn fresh(sector: usize, sectors: u64) -> Repo<BlockLog<MemoryBlockDevice>> {
    Repo::new(BlockLog::format(MemoryBlockDevice::new(sector, sectors), 0xfeed).unwrap())
}

#[test]
fn same_ids_as_memory_and_survives_reopen() {
    let mut blk = fresh(512, 4096);
    let mut mem = Repo::new(MemoryBackend::new());
    let big = vec![7u8; 3000]; // spans several sectors
    let mut ids = Vec::new();
    for t in 0..20 {
        let a = blk
            .set(
                "main",
                &format!("k/{}", t % 4),
                &big[..(t as usize * 100)],
                &info(t),
            )
            .unwrap();
        let b = mem
            .set(
                "main",
                &format!("k/{}", t % 4),
                &big[..(t as usize * 100)],
                &info(t),
            )
            .unwrap();
        assert_eq!(a, b, "same Git objects on every backend");
        ids.push(a);
    }
    blk.set_current_branch("dev").unwrap();
    blk.set_branch("dev", None, Some(ids[5])).unwrap();
    let mut dev = blk.into_backend().into_device();
    dev.reads = 0;
    let mut blk = Repo::new(BlockLog::open(dev).unwrap());
    // ~80 records over 100+ sectors: replay reads in large windows, not per record.
    let used = blk.backend().used_sectors();
    assert!(used > 100, "{used}");
    let reads = blk.backend_mut().device_mut().reads;
    assert!(reads <= 3, "{reads} reads to mount");
    assert_eq!(blk.branch_head("main").unwrap(), Some(ids[19]));
    assert_eq!(blk.current_branch().unwrap().as_deref(), Some("dev"));
    assert_eq!(blk.log(ids[19], 100).unwrap().len(), 20);
    assert_eq!(blk.get("main", "k/3").unwrap().unwrap().len(), 1900);
}

#[test]
fn bad_superblock_and_full_device_are_typed_errors() {
    let dev = MemoryBlockDevice::new(512, 64);
    assert!(matches!(BlockLog::open(dev.clone()), Err(Error::Device(_))));
    let mut small = fresh(512, 8);
    let r = small.set("main", "big", &vec![1u8; 8192], &info(1));
    assert!(matches!(r, Err(Error::Device(_))), "{r:?}");
    assert_eq!(small.branch_head("main").unwrap(), None);
}

type Values = Vec<(String, Vec<u8>)>;

/// Current state of the store as (head, every value) for comparison.
fn state(r: &Repo<BlockLog<MemoryBlockDevice>>) -> Option<(ObjectId, Values)> {
    let head = r.branch_head("main").unwrap()?;
    let tree = r.read_commit(&head).unwrap().tree;
    let values = r
        .walk_values(tree)
        .unwrap()
        .into_iter()
        .map(|(p, _, id)| (p, r.read_blob(&id).unwrap().to_vec()))
        .collect();
    Some((head, values))
}

#[test]
fn power_cuts_at_random_moments() {
    let mut rng: u64 = 0x1234_5678_9abc_def1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut crashes = 0;
    for round in 0..60 {
        let sector = if round % 2 == 0 { 512 } else { 4096 };
        let mut repo = fresh(sector, 2048);
        let mut acked = None;
        let mut t = 0;
        // Several crash/recover cycles on one device: exercises stale tails.
        for _cycle in 0..4 {
            let failed;
            let budget = 1 + next() % 120;
            repo.backend_mut().device_mut().fail_after(budget);
            loop {
                t += 1;
                let mut tx = repo.transaction("main").unwrap();
                tx.set(
                    &format!("d{}/k{}", t % 5, t % 11),
                    vec![b'x'; (next() % 1500) as usize],
                )
                .unwrap();
                tx.set("counter", t.to_string()).unwrap();
                match tx.commit(&mut repo, &info(t)) {
                    Ok(id) => acked = Some(id),
                    Err(Error::Device(_)) => {
                        failed = true;
                        break;
                    }
                    Err(e) => panic!("unexpected {e}"),
                }
            }
            assert!(failed);
            crashes += 1;
            let image = repo.backend_mut().device_mut().power_cut(next());
            repo = Repo::new(BlockLog::open(image).unwrap());
            let head = repo.branch_head("main").unwrap();
            // Acknowledged commits survive; the one in flight may or may not.
            match (head, acked) {
                (Some(h), Some(a)) if h == a => {}
                (Some(h), Some(a)) => {
                    let c = repo.read_commit(&h).unwrap();
                    assert_eq!(c.parents, vec![a], "only the in-flight commit may appear");
                    acked = Some(h);
                }
                (Some(h), None) => {
                    assert!(repo.read_commit(&h).unwrap().parents.is_empty());
                    acked = Some(h);
                }
                (None, a) => assert_eq!(a, None, "acknowledged commit lost"),
            }
            // Everything reachable is intact and hash-checked.
            if let Some((_, values)) = state(&repo) {
                assert!(values.iter().any(|(p, _)| p == "counter"));
            }
        }
    }
    assert_eq!(crashes, 240);
}

#[test]
fn torn_record_ends_the_log() {
    let mut repo = fresh(512, 4096);
    let a = repo.set("main", "a", b"1", &info(1)).unwrap();
    let used = repo.backend().region_start() + repo.backend().used_sectors();
    repo.set("main", "b", &vec![2u8; 2000], &info(2)).unwrap();
    let mut dev = repo.into_backend().into_device();
    // Tear the second commit's first record: one sector of garbage.
    dev.write(used, &vec![0xaa; 512]).unwrap();
    let repo = Repo::new(BlockLog::open(dev).unwrap());
    assert_eq!(repo.branch_head("main").unwrap(), Some(a));
    assert!(repo.get("main", "b").unwrap().is_none());
}

#[test]
fn stale_records_beyond_the_tail_are_not_resurrected() {
    // Commit B's records reach the device but the flush fails; its first sector is then
    // lost in the power cut, so B is not in the log. A shorter append after recovery
    // ends exactly where B's old (intact, correctly numbered) records begin: the
    // back-link CRC must stop replay there, or `main` would point at B without its blob.
    let mut repo = fresh(512, 256);
    let a = repo.set("main", "a", b"1", &info(1)).unwrap();
    let b_start = repo.backend().region_start() + repo.backend().used_sectors();
    repo.backend_mut().device_mut().fail_after(4); // blob, tree, commit, ref: 1 sector each
    assert!(matches!(
        repo.set("main", "k", b"2", &info(2)),
        Err(Error::Device(_))
    ));
    // Power cut in which every unflushed sector of B happened to land...
    let mut dev = repo.backend_mut().device_mut().clone();
    dev.restore_power();
    for s in 0..4 {
        let mut buf = vec![0u8; 512];
        dev.read(b_start + s, &mut buf).unwrap();
        assert!(buf.iter().any(|&b| b != 0), "B's records were written");
    }
    // ...except the first one.
    dev.write(b_start, &[0u8; 512]).unwrap();
    let mut repo = Repo::new(BlockLog::open(dev).unwrap());
    assert_eq!(repo.branch_head("main").unwrap(), Some(a));
    repo.set_branch("x", None, Some(a)).unwrap();
    assert_eq!(
        repo.backend().region_start() + repo.backend().used_sectors(),
        b_start + 1
    );
    let repo = Repo::new(BlockLog::open(repo.into_backend().into_device()).unwrap());
    assert_eq!(repo.branch_head("main").unwrap(), Some(a));
    assert_eq!(repo.branch_head("x").unwrap(), Some(a));
    assert_eq!(&*repo.get("main", "a").unwrap().unwrap(), b"1");
}

fn values(r: &Repo<BlockLog<MemoryBlockDevice>>) -> Option<(ObjectId, Values)> {
    state(r)
}

#[test]
fn compaction_reclaims_space_and_flips_regions() {
    let mut repo = fresh(512, 4096);
    for t in 0..150 {
        repo.set("main", &format!("k/{}", t % 5), &vec![b'v'; 700], &info(t))
            .unwrap();
    }
    // Objects no ref reaches: a commit that lost its CAS race.
    let mut late = repo.transaction("main").unwrap();
    late.set("lost", vec![0u8; 3000]).unwrap();
    repo.set("main", "k/0", b"fresh", &info(200)).unwrap();
    assert!(late.commit(&mut repo, &info(201)).is_err());
    let before = values(&repo);
    let used = repo.backend().used_sectors();
    let start = repo.backend().region_start();
    let after_compact = repo.backend_mut().compact().unwrap();
    assert!(after_compact < used, "{after_compact} < {used}");
    assert_ne!(repo.backend().region_start(), start, "switched region");
    assert_eq!(values(&repo), before);
    // History is kept (it is reachable); squashing it makes it reclaimable.
    assert_eq!(
        repo.log(before.as_ref().unwrap().0, 1000).unwrap().len(),
        151
    );
    let squashed = repo.squash("main", &info(300)).unwrap();
    assert_eq!(repo.log(squashed, 10).unwrap().len(), 1);
    let full = repo.backend().used_sectors();
    let small = repo.backend_mut().compact().unwrap();
    assert!(small * 4 < full, "squash + compact: {small} vs {full}");
    assert_eq!(
        repo.backend().region_start(),
        start,
        "back to the first region"
    );
    let now = values(&repo).unwrap();
    assert_eq!(
        now.1,
        before.as_ref().unwrap().1,
        "same values after squash"
    );
    // Appends continue after compaction and everything survives a reopen.
    repo.set("main", "after", b"compaction", &info(400))
        .unwrap();
    let dev = repo.into_backend().into_device();
    let repo = Repo::new(BlockLog::open(dev).unwrap());
    assert_eq!(&*repo.get("main", "after").unwrap().unwrap(), b"compaction");
    assert_eq!(&*repo.get("main", "k/0").unwrap().unwrap(), b"fresh");
}

#[test]
fn power_cut_during_compaction_keeps_the_state() {
    let mut rng: u64 = 0xdead_beef_1234_5678;
    let (mut ok, mut failed) = (0, 0);
    for round in 0..60 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let mut repo = fresh(512, 2048);
        for t in 0..30 {
            repo.set(
                "main",
                &format!("d{}/k{}", t % 3, t % 7),
                &vec![b'x'; (t * 37) as usize % 900],
                &info(t),
            )
            .unwrap();
        }
        if round % 2 == 1 {
            // Start from the second region sometimes.
            repo.backend_mut().compact().unwrap();
        }
        let before = values(&repo);
        // The compaction writes one region-sized batch (a few hundred sectors here) and
        // then one superblock sector: cut anywhere in or after that.
        let need = repo.backend().used_sectors() + 2;
        let budget = rng % (need + 2);
        repo.backend_mut().device_mut().fail_after(budget);
        let compacted = repo.backend_mut().compact().is_ok();
        if compacted {
            ok += 1;
        } else {
            failed += 1;
        }
        let image = repo.backend_mut().device_mut().power_cut(rng);
        let mut repo = Repo::new(BlockLog::open(image).unwrap());
        assert_eq!(
            values(&repo),
            before,
            "round {round} (budget {budget}, compacted {compacted})"
        );
        // The log stays usable.
        repo.set("main", "next", b"1", &info(99)).unwrap();
        let repo = Repo::new(BlockLog::open(repo.into_backend().into_device()).unwrap());
        assert_eq!(&*repo.get("main", "next").unwrap().unwrap(), b"1");
    }
    assert!(ok > 0 && failed > 10, "{ok} completed, {failed} cut");
}

#[test]
fn one_flush_per_commit_and_group_commit_prefixes() {
    let mut repo = fresh(512, 4096);
    let flushes = repo.backend_mut().device_mut().flushes;
    repo.set("main", "a", b"1", &info(1)).unwrap();
    assert_eq!(
        repo.backend_mut().device_mut().flushes,
        flushes + 1,
        "one flush per commit"
    );
    repo.backend_mut().set_group_commit(10).unwrap();
    let mut heads = vec![repo.branch_head("main").unwrap().unwrap()];
    let flushes = repo.backend_mut().device_mut().flushes;
    for t in 0..25 {
        heads.push(
            repo.set(
                "main",
                &format!("k{}", t % 4),
                format!("{t}").as_bytes(),
                &info(2 + t),
            )
            .unwrap(),
        );
    }
    assert_eq!(
        repo.backend_mut().device_mut().flushes,
        flushes + 2,
        "flushed after 10 and 20"
    );
    let mut rng = 77u64;
    for _ in 0..30 {
        rng = rng.wrapping_mul(6364136223846793005).wrapping_add(1);
        let image = repo.backend_mut().device_mut().power_cut(rng >> 11);
        let r = Repo::new(BlockLog::open(image).unwrap());
        let head = r.branch_head("main").unwrap().unwrap();
        let k = heads
            .iter()
            .position(|h| *h == head)
            .expect("a state the writer passed through");
        // States 10 and 20 were flushed; anything from 20 on may be recovered.
        assert!(
            k >= 20,
            "updates up to the last flush survive (got state {k})"
        );
        values(&r).unwrap();
    }
    repo.backend_mut().flush().unwrap();
    let image = repo.backend_mut().device_mut().power_cut(1);
    let r = Repo::new(BlockLog::open(image).unwrap());
    assert_eq!(r.branch_head("main").unwrap(), heads.last().copied());
}
