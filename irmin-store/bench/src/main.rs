//! Same workloads on irmin-store, libgit2 (git2) and gix, in one run; prints ratios.
//!
//! 1. commits/s: an empty bare repository, N commits, each changing one key
//!    (`d<i%10>/k<(i/10)%100>`), each commit on top of the branch head read back from
//!    the repository (one writer, no batching: the store's group commit is not used).
//! 2. reads/s: random keys read through the branch (ref lookup, commit, trees, blob).
//! 3. bytes per 1000 commits of the objects directory as written and after packing (our
//!    repack for irmin-store, `git gc` for the others).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

struct Row {
    name: &'static str,
    commits_per_s: f64,
    reads_per_s: f64,
    loose: (u64, u64),
    packed: (u64, u64),
}

fn key(i: usize) -> (String, String) {
    (format!("d{}", i % 10), format!("k{}", (i / 10) % 100))
}

fn usage(dir: &Path) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    let mut total = (0, 0);
    let mut stack = vec![dir.join("objects")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let m = e.metadata().unwrap();
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total.0 += m.len();
                total.1 += m.blocks() * 512;
            }
        }
    }
    total
}

fn git(dir: &Path, args: &[&str]) {
    let st = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .status()
        .unwrap();
    assert!(st.success(), "git {args:?}");
}

fn fresh_repo(base: &Path, name: &str) -> PathBuf {
    let p = base.join(name);
    let _ = std::fs::remove_dir_all(&p);
    git(base, &["init", "-q", "--bare", "-b", "main", name]);
    std::fs::write(p.join("config"), "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n[user]\n\tname = bench\n\temail = bench@example.com\n").unwrap();
    p
}

fn lcg(seed: &mut u64) -> usize {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (*seed >> 33) as usize
}

fn bench_irmin(
    base: &Path,
    n: usize,
    reads: usize,
    durability: irmin_store::backend::disk::Durability,
    group: usize,
    name: &'static str,
) -> Row {
    use irmin_store::backend::disk::GitDir;
    use irmin_store::{CommitInfo, Repo, Signature};
    let dir = fresh_repo(base, name);
    let mut repo = Repo::new(GitDir::open(&dir, durability).unwrap());
    repo.backend_mut().set_group_commit(group).unwrap();
    let info = CommitInfo::new(
        Signature::new("bench", "bench@example.com", 1_700_000_000, 0).unwrap(),
        "bench",
    );
    let t = Instant::now();
    for i in 0..n {
        let (d, k) = key(i);
        repo.set(
            "main",
            &format!("{d}/{k}"),
            format!("value {i}").as_bytes(),
            &info,
        )
        .unwrap();
    }
    // Group commit: the last group is durable only after the flush; time it too.
    repo.backend_mut().flush().unwrap();
    drop(repo);
    let commits_per_s = n as f64 / t.elapsed().as_secs_f64();
    if reads == 0 {
        return Row {
            name,
            commits_per_s,
            reads_per_s: 0.0,
            loose: (0, 0),
            packed: (0, 0),
        };
    }
    // A fresh handle for reads: no cache carried over from writing.
    let repo = Repo::new(GitDir::open(&dir, durability).unwrap());
    let mut seed = 42;
    let t = Instant::now();
    let mut bytes = 0;
    for _ in 0..reads {
        let (d, k) = key(lcg(&mut seed) % n.min(1000));
        bytes += repo
            .get("main", &format!("{d}/{k}"))
            .unwrap()
            .unwrap()
            .len();
    }
    let reads_per_s = reads as f64 / t.elapsed().as_secs_f64();
    assert!(bytes > 0);
    let loose = usage(&dir);
    let mut backend = GitDir::open(&dir, durability).unwrap();
    backend.repack().unwrap();
    let packed = usage(&dir);
    Row {
        name,
        commits_per_s,
        reads_per_s,
        loose,
        packed,
    }
}

/// The same workload on the no_std backends: what the store logic itself costs per
/// commit, without a file system (memory) or over a RAM block device (block log with its
/// per-commit write + flush).
fn bench_core<B: irmin_store::Backend>(
    mut repo: irmin_store::Repo<B>,
    n: usize,
    reads: usize,
    name: &'static str,
) -> Row {
    use irmin_store::{CommitInfo, Signature};
    let info = CommitInfo::new(
        Signature::new("bench", "bench@example.com", 1_700_000_000, 0).unwrap(),
        "bench",
    );
    let t = Instant::now();
    for i in 0..n {
        let (d, k) = key(i);
        repo.set(
            "main",
            &format!("{d}/{k}"),
            format!("value {i}").as_bytes(),
            &info,
        )
        .unwrap();
    }
    let commits_per_s = n as f64 / t.elapsed().as_secs_f64();
    repo.clear_caches();
    let mut seed = 42;
    let t = Instant::now();
    let mut bytes = 0;
    for _ in 0..reads {
        let (d, k) = key(lcg(&mut seed) % n.min(1000));
        bytes += repo
            .get("main", &format!("{d}/{k}"))
            .unwrap()
            .unwrap()
            .len();
    }
    let reads_per_s = reads as f64 / t.elapsed().as_secs_f64().max(1e-9);
    assert!(reads == 0 || bytes > 0);
    Row {
        name,
        commits_per_s,
        reads_per_s,
        loose: (0, 0),
        packed: (0, 0),
    }
}

fn bench_git2(base: &Path, n: usize, reads: usize) -> Row {
    let dir = fresh_repo(base, "git2.git");
    let repo = git2::Repository::open_bare(&dir).unwrap();
    let sig = git2::Signature::new(
        "bench",
        "bench@example.com",
        &git2::Time::new(1_700_000_000, 0),
    )
    .unwrap();
    let t = Instant::now();
    for i in 0..n {
        let (d, k) = key(i);
        let parent = repo
            .find_reference("refs/heads/main")
            .ok()
            .map(|r| r.peel_to_commit().unwrap());
        let root = parent.as_ref().map(|c| c.tree().unwrap());
        let blob = repo.blob(format!("value {i}").as_bytes()).unwrap();
        let sub = root
            .as_ref()
            .and_then(|t| t.get_name(&d).map(|e| repo.find_tree(e.id()).unwrap()));
        let mut sb = repo.treebuilder(sub.as_ref()).unwrap();
        sb.insert(&k, blob, 0o100644).unwrap();
        let sub_id = sb.write().unwrap();
        let mut rb = repo.treebuilder(root.as_ref()).unwrap();
        rb.insert(&d, sub_id, 0o040000).unwrap();
        let tree = repo.find_tree(rb.write().unwrap()).unwrap();
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        repo.commit(
            Some("refs/heads/main"),
            &sig,
            &sig,
            "bench",
            &tree,
            &parents,
        )
        .unwrap();
    }
    let commits_per_s = n as f64 / t.elapsed().as_secs_f64();
    let repo = git2::Repository::open_bare(&dir).unwrap();
    let mut seed = 42;
    let t = Instant::now();
    let mut bytes = 0;
    for _ in 0..reads {
        let (d, k) = key(lcg(&mut seed) % n.min(1000));
        let tree = repo
            .find_reference("refs/heads/main")
            .unwrap()
            .peel_to_tree()
            .unwrap();
        let entry = tree.get_path(Path::new(&format!("{d}/{k}"))).unwrap();
        bytes += repo.find_blob(entry.id()).unwrap().content().len();
    }
    let reads_per_s = reads as f64 / t.elapsed().as_secs_f64();
    assert!(bytes > 0);
    let loose = usage(&dir);
    git(&dir, &["gc", "-q", "--prune=now"]);
    let packed = usage(&dir);
    Row {
        name: "libgit2 (git2)",
        commits_per_s,
        reads_per_s,
        loose,
        packed,
    }
}

fn bench_gix(base: &Path, n: usize, reads: usize) -> Row {
    let dir = fresh_repo(base, "gix.git");
    let repo = gix::open(&dir).unwrap();
    let t = Instant::now();
    for i in 0..n {
        let (d, k) = key(i);
        let blob = repo
            .write_blob(format!("value {i}").as_bytes())
            .unwrap()
            .detach();
        let parent = repo
            .try_find_reference("refs/heads/main")
            .unwrap()
            .map(|mut r| r.peel_to_commit().unwrap());
        let tree = match &parent {
            Some(c) => c.tree().unwrap(),
            None => repo.empty_tree(),
        };
        let mut ed = tree.edit().unwrap();
        ed.upsert(format!("{d}/{k}"), gix::object::tree::EntryKind::Blob, blob)
            .unwrap();
        let tree_id = ed.write().unwrap();
        let parents: Vec<gix::ObjectId> = parent.iter().map(|c| c.id).collect();
        repo.commit("refs/heads/main", "bench", tree_id, parents)
            .unwrap();
    }
    let commits_per_s = n as f64 / t.elapsed().as_secs_f64();
    let repo = gix::open(&dir).unwrap();
    let mut seed = 42;
    let t = Instant::now();
    let mut bytes = 0;
    for _ in 0..reads {
        let (d, k) = key(lcg(&mut seed) % n.min(1000));
        let tree = repo
            .find_reference("refs/heads/main")
            .unwrap()
            .peel_to_commit()
            .unwrap()
            .tree()
            .unwrap();
        let entry = tree
            .lookup_entry_by_path(format!("{d}/{k}"))
            .unwrap()
            .unwrap();
        bytes += entry.object().unwrap().data.len();
    }
    let reads_per_s = reads as f64 / t.elapsed().as_secs_f64();
    assert!(bytes > 0);
    let loose = usage(&dir);
    git(&dir, &["gc", "-q", "--prune=now"]);
    let packed = usage(&dir);
    Row {
        name: "gix",
        commits_per_s,
        reads_per_s,
        loose,
        packed,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3000);
    let reads: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let base = std::env::temp_dir().join(format!("irmin-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    use irmin_store::backend::disk::Durability;
    if args.get(3).map(String::as_str) == Some("git2-only") {
        let r = bench_git2(&base, n, reads.max(1));
        println!(
            "libgit2: {:.0} commits/s, {:.0} reads/s",
            r.commits_per_s, r.reads_per_s
        );
        let _ = std::fs::remove_dir_all(&base);
        return;
    }
    if args.get(3).map(String::as_str) == Some("irmin-only") {
        let group = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(0);
        let r = bench_irmin(&base, n, reads, Durability::Process, group, "irmin-store");
        println!(
            "irmin-store: {:.0} commits/s, {:.0} reads/s",
            r.commits_per_s, r.reads_per_s
        );
        let _ = std::fs::remove_dir_all(&base);
        return;
    }
    println!(
        "workload: {n} commits (one key changed each, 10 dirs x 100 keys), {reads} random reads"
    );
    // Two rounds in opposite orders, best figure per implementation: the machine is
    // shared, and load spikes should not decide a ratio.
    type Bench = Box<dyn Fn() -> Row>;
    let b = base.clone();
    let mut benches: Vec<Bench> = vec![
        Box::new({
            let b = b.clone();
            move || bench_irmin(&b, n, reads, Durability::Process, 0, "irmin-store")
        }),
        Box::new({
            let b = b.clone();
            move || bench_irmin(&b, n, reads, Durability::Fsync, 0, "irmin-store+fsync")
        }),
        Box::new({
            let b = b.clone();
            move || bench_irmin(&b, n, reads, Durability::Process, 64, "irmin-store group64")
        }),
        Box::new({
            let b = b.clone();
            move || bench_irmin(&b, n, reads, Durability::Fsync, 64, "irmin group64+fsync")
        }),
        Box::new({
            let b = b.clone();
            move || bench_git2(&b, n, reads)
        }),
        Box::new({
            let b = b.clone();
            move || bench_gix(&b, n, reads)
        }),
    ];
    benches.push(Box::new(move || {
        bench_core(
            irmin_store::Repo::new(irmin_store::MemoryBackend::new()),
            n,
            reads,
            "core: memory",
        )
    }));
    benches.push(Box::new(move || {
        use irmin_store::backend::block::{BlockLog, MemoryBlockDevice};
        let dev = MemoryBlockDevice::new(4096, (64 + n as u64 * 16).max(1024));
        bench_core(
            irmin_store::Repo::new(BlockLog::format(dev, 1).unwrap()),
            n,
            reads,
            "core: block log/RAM",
        )
    }));
    let mut rows: Vec<Row> = benches.iter().map(|f| f()).collect();
    benches.reverse();
    let second: Vec<Row> = benches.iter().map(|f| f()).collect();
    for r2 in second {
        let r = rows.iter_mut().find(|r| r.name == r2.name).unwrap();
        r.commits_per_s = r.commits_per_s.max(r2.commits_per_s);
        r.reads_per_s = r.reads_per_s.max(r2.reads_per_s);
    }
    let per_k = |b: u64| b as f64 * 1000.0 / n as f64 / 1024.0;
    println!(
        "{:<20} {:>12} {:>12} {:>22} {:>22}",
        "", "commits/s", "reads/s", "KiB/1000c written (du)", "KiB/1000c packed (du)"
    );
    for r in &rows {
        if r.loose == (0, 0) {
            println!(
                "{:<20} {:>12.0} {:>12.0} {:>22} {:>22}",
                r.name, r.commits_per_s, r.reads_per_s, "-", "-"
            );
            continue;
        }
        println!(
            "{:<20} {:>12.0} {:>12.0} {:>10.0} ({:>9.0}) {:>10.0} ({:>9.0})",
            r.name,
            r.commits_per_s,
            r.reads_per_s,
            per_k(r.loose.0),
            per_k(r.loose.1),
            per_k(r.packed.0),
            per_k(r.packed.1)
        );
    }
    let find = |name: &str| rows.iter().find(|r| r.name == name).unwrap();
    let (ir, ir_sync, grp, grp_sync, g2, gx) = (
        find("irmin-store"),
        find("irmin-store+fsync"),
        find("irmin-store group64"),
        find("irmin group64+fsync"),
        find("libgit2 (git2)"),
        find("gix"),
    );
    println!("ratios (irmin-store / peer; no fsync on either side unless noted):");
    println!(
        "  commits/s  vs gix: {:.1}x   vs libgit2: {:.1}x   (irmin-store+fsync vs gix: {:.1}x)",
        ir.commits_per_s / gx.commits_per_s,
        ir.commits_per_s / g2.commits_per_s,
        ir_sync.commits_per_s / gx.commits_per_s
    );
    println!(
        "  group commit (64 commits per flush; every commit still its own git commit): vs gix {:.1}x, vs libgit2 {:.1}x; with fsync vs gix {:.1}x",
        grp.commits_per_s / gx.commits_per_s,
        grp.commits_per_s / g2.commits_per_s,
        grp_sync.commits_per_s / gx.commits_per_s
    );
    println!(
        "  reads/s    vs libgit2: {:.1}x   vs gix: {:.1}x",
        ir.reads_per_s / g2.reads_per_s,
        ir.reads_per_s / gx.reads_per_s
    );
    println!(
        "  packed bytes vs git gc (libgit2 repo): {:.2}x",
        ir.packed.0 as f64 / g2.packed.0 as f64
    );
    let _ = std::fs::remove_dir_all(&base);
}
