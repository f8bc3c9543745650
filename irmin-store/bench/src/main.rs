//! Same workloads on irmin-store, libgit2 (git2) and gix, in one run; prints ratios.
//!
//! 1. commits/s: an empty bare repository, N commits, each changing one key
//!    (`d<i%10>/k<(i/10)%100>`), each commit on top of the branch head read back from
//!    the repository (one writer, no batching: the store's group commit is not used).
//! 2. reads/s: random keys read through the branch (ref lookup, commit, trees, blob).
//! 3. bytes per 1000 commits of the objects directory, before and after packing (our
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
    let st = Command::new("git").args(args).current_dir(dir).env("GIT_CONFIG_NOSYSTEM", "1").status().unwrap();
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
    *seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (*seed >> 33) as usize
}

fn bench_irmin(base: &Path, n: usize, reads: usize, durability: irmin_store::backend::disk::Durability, name: &'static str) -> Row {
    use irmin_store::backend::disk::GitDir;
    use irmin_store::{CommitInfo, Repo, Signature};
    let dir = fresh_repo(base, name);
    let mut repo = Repo::new(GitDir::open(&dir, durability).unwrap());
    let info = CommitInfo::new(Signature::new("bench", "bench@example.com", 1_700_000_000, 0).unwrap(), "bench");
    let t = Instant::now();
    for i in 0..n {
        let (d, k) = key(i);
        repo.set("main", &format!("{d}/{k}"), format!("value {i}").as_bytes(), &info).unwrap();
    }
    let commits_per_s = n as f64 / t.elapsed().as_secs_f64();
    // A fresh handle for reads: no cache carried over from writing.
    let repo = Repo::new(GitDir::open(&dir, durability).unwrap());
    let mut seed = 42;
    let t = Instant::now();
    let mut bytes = 0;
    for _ in 0..reads {
        let (d, k) = key(lcg(&mut seed) % n.min(1000));
        bytes += repo.get("main", &format!("{d}/{k}")).unwrap().unwrap().len();
    }
    let reads_per_s = reads as f64 / t.elapsed().as_secs_f64();
    assert!(bytes > 0);
    let loose = usage(&dir);
    let mut backend = GitDir::open(&dir, durability).unwrap();
    backend.repack().unwrap();
    let packed = usage(&dir);
    Row { name, commits_per_s, reads_per_s, loose, packed }
}

fn bench_git2(base: &Path, n: usize, reads: usize) -> Row {
    let dir = fresh_repo(base, "git2.git");
    let repo = git2::Repository::open_bare(&dir).unwrap();
    let sig = git2::Signature::new("bench", "bench@example.com", &git2::Time::new(1_700_000_000, 0)).unwrap();
    let t = Instant::now();
    for i in 0..n {
        let (d, k) = key(i);
        let parent = repo.find_reference("refs/heads/main").ok().map(|r| r.peel_to_commit().unwrap());
        let root = parent.as_ref().map(|c| c.tree().unwrap());
        let blob = repo.blob(format!("value {i}").as_bytes()).unwrap();
        let sub = root.as_ref().and_then(|t| t.get_name(&d).map(|e| repo.find_tree(e.id()).unwrap()));
        let mut sb = repo.treebuilder(sub.as_ref()).unwrap();
        sb.insert(&k, blob, 0o100644).unwrap();
        let sub_id = sb.write().unwrap();
        let mut rb = repo.treebuilder(root.as_ref()).unwrap();
        rb.insert(&d, sub_id, 0o040000).unwrap();
        let tree = repo.find_tree(rb.write().unwrap()).unwrap();
        let parents: Vec<&git2::Commit> = parent.iter().collect();
        repo.commit(Some("refs/heads/main"), &sig, &sig, "bench", &tree, &parents).unwrap();
    }
    let commits_per_s = n as f64 / t.elapsed().as_secs_f64();
    let repo = git2::Repository::open_bare(&dir).unwrap();
    let mut seed = 42;
    let t = Instant::now();
    let mut bytes = 0;
    for _ in 0..reads {
        let (d, k) = key(lcg(&mut seed) % n.min(1000));
        let tree = repo.find_reference("refs/heads/main").unwrap().peel_to_tree().unwrap();
        let entry = tree.get_path(Path::new(&format!("{d}/{k}"))).unwrap();
        bytes += repo.find_blob(entry.id()).unwrap().content().len();
    }
    let reads_per_s = reads as f64 / t.elapsed().as_secs_f64();
    assert!(bytes > 0);
    let loose = usage(&dir);
    git(&dir, &["gc", "-q", "--prune=now"]);
    let packed = usage(&dir);
    Row { name: "libgit2 (git2)", commits_per_s, reads_per_s, loose, packed }
}

fn bench_gix(base: &Path, n: usize, reads: usize) -> Row {
    let dir = fresh_repo(base, "gix.git");
    let repo = gix::open(&dir).unwrap();
    let t = Instant::now();
    for i in 0..n {
        let (d, k) = key(i);
        let blob = repo.write_blob(format!("value {i}").as_bytes()).unwrap().detach();
        let parent = repo.try_find_reference("refs/heads/main").unwrap().map(|mut r| r.peel_to_commit().unwrap());
        let tree = match &parent {
            Some(c) => c.tree().unwrap(),
            None => repo.empty_tree(),
        };
        let mut ed = tree.edit().unwrap();
        ed.upsert(format!("{d}/{k}"), gix::object::tree::EntryKind::Blob, blob).unwrap();
        let tree_id = ed.write().unwrap();
        let parents: Vec<gix::ObjectId> = parent.iter().map(|c| c.id).collect();
        repo.commit("refs/heads/main", "bench", tree_id, parents).unwrap();
    }
    let commits_per_s = n as f64 / t.elapsed().as_secs_f64();
    let repo = gix::open(&dir).unwrap();
    let mut seed = 42;
    let t = Instant::now();
    let mut bytes = 0;
    for _ in 0..reads {
        let (d, k) = key(lcg(&mut seed) % n.min(1000));
        let tree = repo.find_reference("refs/heads/main").unwrap().peel_to_commit().unwrap().tree().unwrap();
        let entry = tree.lookup_entry_by_path(format!("{d}/{k}")).unwrap().unwrap();
        bytes += entry.object().unwrap().data.len();
    }
    let reads_per_s = reads as f64 / t.elapsed().as_secs_f64();
    assert!(bytes > 0);
    let loose = usage(&dir);
    git(&dir, &["gc", "-q", "--prune=now"]);
    let packed = usage(&dir);
    Row { name: "gix", commits_per_s, reads_per_s, loose, packed }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(3000);
    let reads: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let base = std::env::temp_dir().join(format!("irmin-bench-{}", std::process::id()));
    std::fs::create_dir_all(&base).unwrap();
    use irmin_store::backend::disk::Durability;
    println!("workload: {n} commits (one key changed each, 10 dirs x 100 keys), {reads} random reads");
    let rows = vec![
        bench_irmin(&base, n, reads, Durability::Process, "irmin-store"),
        bench_irmin(&base, n, reads, Durability::Fsync, "irmin-store+fsync"),
        bench_git2(&base, n, reads),
        bench_gix(&base, n, reads),
    ];
    let per_k = |b: u64| b as f64 * 1000.0 / n as f64 / 1024.0;
    println!("{:<20} {:>12} {:>12} {:>22} {:>22}", "", "commits/s", "reads/s", "KiB/1000c loose (du)", "KiB/1000c packed (du)");
    for r in &rows {
        println!(
            "{:<20} {:>12.0} {:>12.0} {:>10.0} ({:>9.0}) {:>10.0} ({:>9.0})",
            r.name, r.commits_per_s, r.reads_per_s, per_k(r.loose.0), per_k(r.loose.1), per_k(r.packed.0), per_k(r.packed.1)
        );
    }
    let (ir, ir_sync, g2, gx) = (&rows[0], &rows[1], &rows[2], &rows[3]);
    println!("ratios (irmin-store / peer; no fsync on either side unless noted):");
    println!("  commits/s  vs gix: {:.1}x   vs libgit2: {:.1}x   (irmin-store+fsync vs gix: {:.1}x)", ir.commits_per_s / gx.commits_per_s, ir.commits_per_s / g2.commits_per_s, ir_sync.commits_per_s / gx.commits_per_s);
    println!("  reads/s    vs libgit2: {:.1}x   vs gix: {:.1}x", ir.reads_per_s / g2.reads_per_s, ir.reads_per_s / gx.reads_per_s);
    println!("  packed bytes vs git gc (libgit2 repo): {:.2}x", ir.packed.0 as f64 / g2.packed.0 as f64);
    let _ = std::fs::remove_dir_all(&base);
}
