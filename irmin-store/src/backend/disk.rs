//! A Git repository on disk: loose objects, pack files (read and written), loose and
//! packed refs, symbolic HEAD. What it writes, `git` reads; what `git` writes, it reads.
//!
//! ## Durability protocol
//! Objects are buffered in memory (reads see them) until the store calls
//! [`Backend::sync_objects`] before moving a ref. Then they are written together: as one
//! pack + idx (pack renamed into place before its index) or, for a single object, as a
//! loose file; always via a temporary name and `rename`, so nothing is ever visible
//! half-written. No file is fsynced on its own: with [`Durability::Fsync`] the barrier is
//! one `syncfs(2)` for everything written since the last one. The ref itself is updated with git's lock
//! protocol: create `<ref>.lock` exclusively (the CAS lock, which also excludes concurrent
//! `git` processes), check the current value, write the new one, fsync, `rename` over the
//! ref, fsync the directory. A crash at any point leaves the ref at its old or new value,
//! and every object it points to present.
//!
//! [`Durability::Process`] keeps the same ordering without fsyncs: it survives the writer
//! process dying (SIGKILL), not the machine losing power. That is what `git` itself does
//! by default (`core.fsync` unset).
//!
//! With [`GitDir::set_group_commit`] the barrier and the ref updates happen once per group
//! of commits instead of once per commit. `GitDir` is single-threaded (`!Sync`); several
//! processes may share a repository, serialized by the ref locks.

use std::cell::RefCell;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path as FsPath, PathBuf};
use std::string::{String, ToString};
use std::sync::Arc;
use std::vec::Vec;

use super::{Backend, RawObject};
use crate::error::{CorruptKind, Error, Result};
use crate::hash::{ObjectId, hash_object, object_header};
use crate::object::{ObjectKind, parse_object_header};
use crate::pack::{self, PackIndex};
use crate::zlib;

/// How hard the backend works to survive crashes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Survive power loss: one `syncfs` per ref update, fsync of ref file and directory.
    Fsync,
    /// Survive the process dying: ordering only, no fsync (git's default).
    Process,
}

/// Largest loose object we inflate (protects against zlib bombs).
const MAX_OBJECT: usize = 1 << 30;

struct Pack {
    file: File,
    index: PackIndex,
    /// Entry offsets sorted, to find where each entry ends.
    sorted_offsets: Vec<u64>,
    /// Offset of the trailer (end of the last entry).
    data_end: u64,
    name: PathBuf,
}

impl Pack {
    fn open(idx_path: &FsPath) -> Result<Pack> {
        let index = PackIndex::parse(&fs::read(idx_path)?)?;
        let pack_path = idx_path.with_extension("pack");
        let file = File::open(&pack_path)?;
        let len = file.metadata()?.len();
        let mut head = [0u8; 12];
        file.read_exact_at(&mut head, 0)?;
        if &head[..4] != b"PACK" || len < 32 {
            return Err(Error::corrupt(CorruptKind::BadPack("no PACK signature")));
        }
        let count = u32::from_be_bytes([head[8], head[9], head[10], head[11]]) as usize;
        if count != index.len() {
            return Err(Error::corrupt(CorruptKind::BadPack(
                "idx/pack count mismatch",
            )));
        }
        let mut trailer = [0u8; 20];
        file.read_exact_at(&mut trailer, len - 20)?;
        if &trailer != index.pack_checksum.as_bytes() {
            return Err(Error::corrupt(CorruptKind::BadPack(
                "idx does not belong to pack",
            )));
        }
        let mut sorted_offsets: Vec<u64> = index.entries().map(|(_, o, _)| o).collect();
        sorted_offsets.sort_unstable();
        // Every entry must lie inside the pack body, and no two may share an offset.
        let inside = sorted_offsets.first().is_none_or(|&o| o >= 12)
            && sorted_offsets.last().is_none_or(|&o| o < len - 20)
            && sorted_offsets.windows(2).all(|w| w[0] < w[1]);
        if !inside {
            return Err(Error::corrupt(CorruptKind::BadPack(
                "idx offsets outside the pack",
            )));
        }
        Ok(Pack {
            file,
            index,
            sorted_offsets,
            data_end: len - 20,
            name: pack_path,
        })
    }

    /// Raw bytes of the entry at `offset` (header + zlib data).
    fn entry_bytes(&self, offset: u64) -> Result<Vec<u8>> {
        let i = self
            .sorted_offsets
            .binary_search(&offset)
            .map_err(|_| Error::corrupt(CorruptKind::BadPack("offset is not an entry")))?;
        let end = self
            .sorted_offsets
            .get(i + 1)
            .copied()
            .unwrap_or(self.data_end);
        let len = usize::try_from(end - offset)
            .map_err(|_| Error::corrupt(CorruptKind::BadPack("entry too large")))?;
        let mut buf = vec![0u8; len];
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(buf)
    }
}

enum DeltaBase {
    Offset(u64),
    Id(ObjectId),
}

/// A Git repository directory (bare, or the `.git` of a working tree).
pub struct GitDir {
    git_dir: PathBuf,
    objects: PathBuf,
    durability: Durability,
    packs: RefCell<Vec<Arc<Pack>>>,
    fanout_made: [bool; 256],
    /// Objects were written since the last durability barrier.
    dirty: bool,
    tmp_counter: u64,
    /// Group commit: flush after this many ref updates (0: write through).
    group_limit: usize,
    group: PendingGroup,
    deflater: zlib::Deflater,
}

/// Objects and ref updates of a group commit not yet flushed. The refs' lock files are
/// held from the first update until the flush, so no other writer (nor `git`) can move
/// them in between: compare-and-swap stays exact.
#[derive(Default)]
struct PendingGroup {
    objects: Vec<(ObjectId, ObjectKind, Vec<u8>)>,
    index: hashbrown::HashMap<ObjectId, usize>,
    refs: std::collections::BTreeMap<String, (RefLock, Option<ObjectId>)>,
    updates: usize,
    /// When the oldest pending ref update was made.
    since: Option<std::time::Instant>,
}

/// A held `<ref>.lock`.
struct RefLock {
    path: PathBuf,
    lock: PathBuf,
    file: File,
}

/// Batches below this many objects are written as loose objects, larger ones as a pack.
const PACK_THRESHOLD: usize = 16;
/// Consolidate a size tier of small packs once it holds this many.
const MAX_SMALL_PACKS: usize = 8;
/// Packs smaller than this count as small.
const SMALL_PACK: u64 = 8 << 20;

fn write_new(path: &FsPath, data: &[u8]) -> std::io::Result<File> {
    let mut f = OpenOptions::new().write(true).create_new(true).open(path)?;
    f.write_all(data)?;
    Ok(f)
}

fn sync_dir(path: &FsPath) -> Result<()> {
    File::open(path)?.sync_all()?;
    Ok(())
}

/// One `syncfs(2)`: flushes every file and directory change on the filesystem holding
/// `dir`, which is far cheaper than an fsync per object file.
fn syncfs(dir: &FsPath) -> Result<()> {
    use std::os::fd::AsRawFd;
    let f = File::open(dir)?;
    #[allow(unsafe_code)]
    // SAFETY: `f` is an open file descriptor for the duration of the call; syncfs takes
    // only the fd and touches no memory of ours.
    let rc = unsafe { libc::syncfs(f.as_raw_fd()) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

impl GitDir {
    /// Create a new bare repository at `path` (its parent must exist), HEAD -> `main`.
    pub fn init_bare(path: impl AsRef<FsPath>, durability: Durability) -> Result<Self> {
        let dir = path.as_ref();
        fs::create_dir_all(dir)?;
        Self::init_layout(dir, true)?;
        Self::open_git_dir(dir.to_path_buf(), durability)
    }

    /// Create a repository with a working tree at `path` (`path/.git`). The store updates
    /// refs only: the working tree and index are not touched.
    pub fn init(path: impl AsRef<FsPath>, durability: Durability) -> Result<Self> {
        let git = path.as_ref().join(".git");
        fs::create_dir_all(&git)?;
        Self::init_layout(&git, false)?;
        Self::open_git_dir(git, durability)
    }

    fn init_layout(dir: &FsPath, bare: bool) -> Result<()> {
        for sub in ["objects/pack", "objects/info", "refs/heads", "refs/tags"] {
            fs::create_dir_all(dir.join(sub))?;
        }
        if !dir.join("HEAD").exists() {
            fs::write(dir.join("HEAD"), "ref: refs/heads/main\n")?;
        }
        if !dir.join("config").exists() {
            fs::write(
                dir.join("config"),
                format!(
                    "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = {bare}\n"
                ),
            )?;
        }
        Ok(())
    }

    /// Open an existing repository: a bare repository or a directory containing `.git`.
    pub fn open(path: impl AsRef<FsPath>, durability: Durability) -> Result<Self> {
        let p = path.as_ref();
        let git = if p.join(".git").is_dir() {
            p.join(".git")
        } else {
            p.to_path_buf()
        };
        if !git.join("HEAD").is_file() || !git.join("objects").is_dir() {
            return Err(Error::Io(std::io::Error::new(
                ErrorKind::NotFound,
                format!("{} is not a git repository", p.display()),
            )));
        }
        Self::open_git_dir(git, durability)
    }

    fn open_git_dir(git_dir: PathBuf, durability: Durability) -> Result<Self> {
        let objects = git_dir.join("objects");
        let d = GitDir {
            git_dir,
            objects,
            durability,
            packs: RefCell::new(Vec::new()),
            fanout_made: [false; 256],
            dirty: false,
            tmp_counter: 0,
            group_limit: 0,
            group: PendingGroup::default(),
            deflater: zlib::Deflater::new(),
        };
        d.rescan_packs()?;
        Ok(d)
    }

    pub fn git_dir(&self) -> &FsPath {
        &self.git_dir
    }

    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// Remove what a killed writer can leave behind: stale `*.lock` files under `refs/`
    /// and temporary object files. Only call this when no other writer is running.
    pub fn recover(&self) -> Result<usize> {
        let mut removed = 0;
        let mut stack = vec![self.git_dir.join("refs")];
        for f in ["packed-refs.lock", "HEAD.lock"] {
            if fs::remove_file(self.git_dir.join(f)).is_ok() {
                removed += 1;
            }
        }
        while let Some(dir) = stack.pop() {
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                let p = e.path();
                if e.file_type()?.is_dir() {
                    stack.push(p);
                } else if p.extension().is_some_and(|x| x == "lock") {
                    fs::remove_file(&p)?;
                    removed += 1;
                }
            }
        }
        for e in fs::read_dir(&self.objects)?.flatten() {
            if !e.file_type()?.is_dir() {
                continue;
            }
            // objects/xx/tmp_obj_* and objects/pack/tmp_{pack,idx}_*
            for f in fs::read_dir(e.path())?.flatten() {
                if f.file_name().to_string_lossy().starts_with("tmp_") {
                    fs::remove_file(f.path())?;
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    fn rescan_packs(&self) -> Result<()> {
        let dir = self.objects.join("pack");
        let mut packs = Vec::new();
        if let Ok(rd) = fs::read_dir(&dir) {
            let mut names: Vec<PathBuf> = rd
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.extension().is_some_and(|x| x == "idx")
                        && p.file_name()
                            .is_some_and(|n| n.to_string_lossy().starts_with("pack-"))
                })
                .collect();
            names.sort();
            for idx in names {
                let known = self
                    .packs
                    .borrow()
                    .iter()
                    .find(|p| p.name == idx.with_extension("pack"))
                    .cloned();
                match known {
                    Some(p) => packs.push(p),
                    None => match Pack::open(&idx) {
                        Ok(p) => packs.push(Arc::new(p)),
                        // A pack being written by git right now has its .idx renamed in last;
                        // a half-visible pair is skipped, not fatal.
                        Err(Error::Io(e)) if e.kind() == ErrorKind::NotFound => {}
                        // A pack torn by a power cut before its barrier holds only
                        // objects no ref reached; anything else missing from it will be
                        // reported as a missing object when needed.
                        Err(Error::Corrupt { kind, .. }) => {
                            log::warn!(
                                "irmin-store: skipping unreadable pack {}: {kind}",
                                idx.display()
                            );
                        }
                        Err(e) => return Err(e),
                    },
                }
            }
        }
        *self.packs.borrow_mut() = packs;
        Ok(())
    }

    fn loose_path(&self, id: &ObjectId) -> PathBuf {
        let mut hex = [0u8; 40];
        id.write_hex(&mut hex);
        let hex = std::str::from_utf8(&hex).unwrap_or_default().to_string();
        self.objects.join(&hex[..2]).join(&hex[2..])
    }

    fn read_loose(&self, id: &ObjectId) -> Result<Option<RawObject>> {
        let data = match fs::read(self.loose_path(id)) {
            Ok(d) => d,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let full = zlib::inflate_limited(&data, MAX_OBJECT).map_err(|e| e.with_id(*id))?;
        let (kind, len, hl) = parse_object_header(&full).map_err(|e| e.with_id(*id))?;
        if full.len() - hl != len {
            return Err(Error::Corrupt {
                id: Some(*id),
                kind: CorruptKind::LengthMismatch,
            });
        }
        let body = full[hl..].to_vec();
        let actual = hash_object(kind, &body);
        if actual != *id {
            return Err(Error::HashMismatch {
                expected: *id,
                actual,
            });
        }
        Ok(Some(RawObject { kind, data: body }))
    }

    fn find_in_packs(&self, id: &ObjectId) -> Option<(Arc<Pack>, u64)> {
        self.packs
            .borrow()
            .iter()
            .find_map(|p| p.index.lookup(id).map(|o| (p.clone(), o)))
    }

    fn read_packed(&self, pack: &Pack, offset: u64, depth: usize) -> Result<RawObject> {
        // Walk the delta chain down to a full object, then apply deltas back up.
        let mut deltas: Vec<Vec<u8>> = Vec::new();
        let mut off = offset;
        let base = loop {
            if deltas.len() > 10_000 {
                return Err(Error::corrupt(CorruptKind::BadPack("delta chain too long")));
            }
            let entry = pack.entry_bytes(off)?;
            let (ty, size, hl) = pack::parse_entry_header(&entry)?;
            let (base, rest) = match ty {
                1..=4 => {
                    let (data, _) = zlib::inflate_exact(&entry[hl..], size)?;
                    let kind = ObjectKind::from_pack_type(ty)
                        .ok_or(Error::corrupt(CorruptKind::BadPack("type")))?;
                    break RawObject { kind, data };
                }
                pack::OFS_DELTA => {
                    let (dist, used) = pack::parse_ofs(&entry[hl..])?;
                    let b = off
                        .checked_sub(dist)
                        .ok_or(Error::corrupt(CorruptKind::BadPack("ofs base")))?;
                    (DeltaBase::Offset(b), &entry[hl + used..])
                }
                pack::REF_DELTA => {
                    let id = ObjectId::from_bytes(
                        entry
                            .get(hl..hl + 20)
                            .ok_or(Error::corrupt(CorruptKind::Truncated))?,
                    )?;
                    (DeltaBase::Id(id), &entry[hl + 20..])
                }
                _ => return Err(Error::corrupt(CorruptKind::BadPack("entry type"))),
            };
            let (delta, _) = zlib::inflate_exact(rest, size)?;
            deltas.push(delta);
            match base {
                DeltaBase::Offset(b) => off = b,
                DeltaBase::Id(id) => {
                    if depth > 64 {
                        return Err(Error::corrupt(CorruptKind::BadPack("ref-delta loop")));
                    }
                    let obj = match self.find_in_packs(&id) {
                        Some((p, o)) => self.read_packed(&p, o, depth + 1)?,
                        None => self.read_loose(&id)?.ok_or(Error::MissingObject(id))?,
                    };
                    break obj;
                }
            }
        };
        let mut obj = base;
        for d in deltas.iter().rev() {
            obj.data = pack::apply_delta(&obj.data, d)?;
        }
        Ok(obj)
    }

    fn ref_path(&self, name: &str) -> PathBuf {
        self.git_dir.join(name)
    }

    fn packed_refs(&self) -> Result<Vec<(String, ObjectId)>> {
        let text = match fs::read_to_string(self.git_dir.join("packed-refs")) {
            Ok(t) => t,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for line in text.lines() {
            if line.starts_with('#') || line.starts_with('^') || line.is_empty() {
                continue;
            }
            let (hex, name) = line
                .split_once(' ')
                .ok_or_else(|| Error::Protocol(format!("bad packed-refs line {line:?}")))?;
            out.push((name.to_string(), ObjectId::from_hex(hex)?));
        }
        Ok(out)
    }

    fn read_ref_inner(&self, name: &str, depth: usize) -> Result<Option<ObjectId>> {
        if depth > 5 {
            return Err(Error::InvalidRefName(name.to_string()));
        }
        match fs::read_to_string(self.ref_path(name)) {
            Ok(text) => {
                let t = text.trim_end();
                if let Some(target) = t.strip_prefix("ref: ") {
                    // A symbolic ref must name a ref, never a path outside refs/.
                    crate::path::check_ref_name(target)?;
                    if !target.starts_with("refs/") {
                        return Err(Error::InvalidRefName(target.to_string()));
                    }
                    return self.read_ref_inner(target, depth + 1);
                }
                Ok(Some(ObjectId::from_hex(t)?))
            }
            Err(e) if e.kind() == ErrorKind::NotFound || e.kind() == ErrorKind::IsADirectory => {
                Ok(self
                    .packed_refs()?
                    .into_iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, id)| id))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn remove_packed_ref(&self, name: &str) -> Result<()> {
        let refs = self.packed_refs()?;
        if !refs.iter().any(|(n, _)| n == name) {
            return Ok(());
        }
        let lock = self.git_dir.join("packed-refs.lock");
        let mut text = String::from("# pack-refs with: peeled fully-peeled sorted \n");
        for (n, id) in refs.iter().filter(|(n, _)| n != name) {
            text.push_str(&format!("{id} {n}\n"));
        }
        let f = write_new(&lock, text.as_bytes()).map_err(|e| {
            if e.kind() == ErrorKind::AlreadyExists {
                Error::RefLocked("packed-refs".to_string())
            } else {
                e.into()
            }
        })?;
        if self.durability == Durability::Fsync {
            f.sync_all()?;
        }
        fs::rename(&lock, self.git_dir.join("packed-refs"))?;
        Ok(())
    }

    /// Take `<ref>.lock` (git's lock protocol; `Error::RefLocked` if held).
    fn lock_ref(&self, name: &str) -> Result<RefLock> {
        let path = self.ref_path(name);
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let lock = path.with_file_name(format!("{file_name}.lock"));
        let open = || OpenOptions::new().write(true).create_new(true).open(&lock);
        let file = match open() {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // First ref in a new directory (refs/remotes/x/...).
                if let Some(parent) = lock.parent() {
                    fs::create_dir_all(parent)?;
                }
                open()?
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(Error::RefLocked(name.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        Ok(RefLock { path, lock, file })
    }

    /// Publish a held lock as the ref's new value (or delete the ref), durably.
    fn commit_ref(&self, lock: &RefLock, name: &str, new: Option<ObjectId>) -> Result<()> {
        match new {
            Some(id) => {
                let mut f = &lock.file;
                f.write_all(format!("{id}\n").as_bytes())?;
                if self.durability == Durability::Fsync {
                    lock.file.sync_all()?;
                }
                fs::rename(&lock.lock, &lock.path)?;
            }
            None => {
                match fs::remove_file(&lock.path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
                self.remove_packed_ref(name)?;
                fs::remove_file(&lock.lock)?;
            }
        }
        if self.durability == Durability::Fsync {
            if let Some(parent) = lock.path.parent() {
                sync_dir(parent)?;
            }
        }
        Ok(())
    }

    /// Turn on group commit: objects and ref updates are kept in memory and written
    /// together (objects as one pack, one `syncfs`, then the refs) every `max_updates`
    /// ref updates and at [`GitDir::flush`] (also attempted on drop). A commit is durable
    /// and visible to other processes only after its group is flushed; until then the
    /// refs involved stay locked against other writers. `0` turns it off.
    pub fn set_group_commit(&mut self, max_updates: usize) -> Result<()> {
        self.flush()?;
        self.group_limit = max_updates;
        Ok(())
    }

    fn update_ref_grouped(
        &mut self,
        name: &str,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
    ) -> Result<()> {
        let actual = match self.group.refs.get(name) {
            Some((_, pending)) => *pending,
            None => {
                let lock = self.lock_ref(name)?;
                let actual = match self.read_ref_inner(name, 0) {
                    Ok(a) => a,
                    Err(e) => {
                        let _ = fs::remove_file(&lock.lock);
                        return Err(e);
                    }
                };
                if let Err(e) = super::expect_ref(name, expected, actual) {
                    let _ = fs::remove_file(&lock.lock);
                    return Err(e);
                }
                self.group.refs.insert(name.to_string(), (lock, actual));
                actual
            }
        };
        super::expect_ref(name, expected, actual)?;
        if let Some((_, pending)) = self.group.refs.get_mut(name) {
            *pending = new;
        }
        self.group.updates += 1;
        self.group.since.get_or_insert_with(std::time::Instant::now);
        if self.group.updates >= self.group_limit {
            self.flush()?;
        }
        Ok(())
    }

    /// Ref updates waiting in the current group.
    pub fn pending_updates(&self) -> usize {
        self.group.updates
    }

    /// Flush the group if its oldest update has waited `max_delay` or longer: call this
    /// from an event loop's timer to bound how long an acknowledged-in-memory commit can
    /// stay unflushed. Returns whether a flush happened.
    pub fn flush_if_due(&mut self, max_delay: std::time::Duration) -> Result<bool> {
        match self.group.since {
            Some(t) if t.elapsed() >= max_delay => self.flush().map(|()| true),
            _ => Ok(false),
        }
    }

    /// Write the pending group: objects (one pack, or loose files for a few), one
    /// durability barrier, then every pending ref. On error the group is dropped and its
    /// locks released; the repository stays at the previous flushed state.
    pub fn flush(&mut self) -> Result<()> {
        if self.group.objects.is_empty() && self.group.refs.is_empty() {
            return Ok(());
        }
        let group = std::mem::take(&mut self.group);
        let result = self.write_group(&group);
        for (_, (lock, _)) in group.refs.iter() {
            let _ = fs::remove_file(&lock.lock);
        }
        result?;
        self.consolidate_packs()
    }

    fn write_group(&mut self, group: &PendingGroup) -> Result<()> {
        self.write_objects(&group.objects, PACK_THRESHOLD)?;
        for (name, (lock, new)) in &group.refs {
            self.commit_ref(lock, name, *new)?;
        }
        Ok(())
    }

    /// Write `objects` as one pack (at least `pack_min` of them) or as loose files, then
    /// one durability barrier.
    fn write_objects(
        &mut self,
        objects: &[(ObjectId, ObjectKind, Vec<u8>)],
        pack_min: usize,
    ) -> Result<()> {
        if objects.is_empty() {
            return Ok(());
        }
        if objects.len() >= pack_min {
            let inputs = objects
                .iter()
                .map(|(id, kind, data)| pack::PackInput {
                    id: *id,
                    kind: *kind,
                    data: data.clone(),
                    group: 0,
                })
                .collect();
            let written = pack::write_pack(inputs, false);
            let mut entries = written.entries.clone();
            self.install_pack(&written.data, &mut entries, &written.checksum)?;
        } else {
            for (id, kind, data) in objects {
                self.write_loose(id, *kind, data)?;
            }
        }
        if self.durability == Durability::Fsync {
            syncfs(&self.objects)?;
        }
        Ok(())
    }

    /// Merge small packs (commits write one each) so lookups stay fast, size-tiered:
    /// when a tier (sizes within a factor of 4) holds `MAX_SMALL_PACKS` packs, it is
    /// merged with every smaller one. Each object is copied O(log n) times overall.
    fn consolidate_packs(&mut self) -> Result<()> {
        let small: Vec<Arc<Pack>> = self
            .packs
            .borrow()
            .iter()
            .filter(|p| p.data_end < SMALL_PACK)
            .cloned()
            .collect();
        let tier = |p: &Pack| {
            let mut t = 0;
            let mut size = p.data_end / 4096;
            while size >= 4 {
                size /= 4;
                t += 1;
            }
            t
        };
        let mut per_tier = [0usize; 16];
        for p in &small {
            per_tier[tier(p).min(15)] += 1;
        }
        let Some(full) = per_tier.iter().position(|&n| n >= MAX_SMALL_PACKS) else {
            return Ok(());
        };
        let small: Vec<Arc<Pack>> = small.into_iter().filter(|p| tier(p) <= full).collect();
        // Whole (non-delta) entries are copied byte for byte, CRC included: no inflate,
        // no deflate. Delta entries (from packs git wrote) are resolved and stored whole.
        let mut data = Vec::new();
        data.extend_from_slice(b"PACK");
        data.extend_from_slice(&2u32.to_be_bytes());
        data.extend_from_slice(&0u32.to_be_bytes());
        let mut entries: Vec<(ObjectId, u64, u32)> = Vec::new();
        let mut seen = hashbrown::HashSet::new();
        for p in &small {
            let mut raw = vec![0u8; p.data_end as usize];
            p.file.read_exact_at(&mut raw, 0)?;
            let mut by_offset: Vec<(u64, ObjectId, u32)> = p
                .index
                .entries()
                .map(|(id, off, crc)| (off, id, crc))
                .collect();
            by_offset.sort_unstable_by_key(|e| e.0);
            for (i, &(off, id, crc)) in by_offset.iter().enumerate() {
                if !seen.insert(id) {
                    continue;
                }
                let end = by_offset.get(i + 1).map_or(p.data_end, |e| e.0) as usize;
                let entry = raw
                    .get(off as usize..end)
                    .ok_or(Error::corrupt(CorruptKind::BadPack("entry out of range")))?;
                let (ty, _, _) = pack::parse_entry_header(entry)?;
                let new_off = data.len() as u64;
                if (1..=4).contains(&ty) {
                    data.extend_from_slice(entry);
                    entries.push((id, new_off, crc));
                } else {
                    let obj = self.read_packed(p, off, 0)?;
                    pack::encode_entry_header(obj.kind as u8, obj.data.len(), &mut data);
                    self.deflater.deflate_into(&[&obj.data], &mut data);
                    let crc = crc32fast::hash(&data[new_off as usize..]);
                    entries.push((id, new_off, crc));
                }
            }
        }
        let count = entries.len() as u32;
        data[8..12].copy_from_slice(&count.to_be_bytes());
        let mut h = crate::hash::Sha1Hasher::new();
        h.update(&data);
        let checksum = h.finish();
        data.extend_from_slice(checksum.as_bytes());
        let written = pack::WrittenPack {
            data,
            entries,
            checksum,
        };
        let mut entries = written.entries.clone();
        let new_pack = self.install_pack(&written.data, &mut entries, &written.checksum)?;
        if self.durability == Durability::Fsync {
            syncfs(&self.objects)?;
        }
        for p in small {
            if p.name != new_pack {
                let _ = fs::remove_file(p.name.with_extension("idx"));
                let _ = fs::remove_file(&p.name);
            }
        }
        self.rescan_packs()
    }

    fn write_loose(&mut self, id: &ObjectId, kind: ObjectKind, data: &[u8]) -> Result<()> {
        let mut header = [0u8; 32];
        let hl = object_header(kind, data.len(), &mut header);
        let compressed = self.deflater.deflate(&[&header[..hl], data]);
        let fan = id.0[0] as usize;
        let final_path = self.loose_path(id);
        let dir = final_path
            .parent()
            .map(FsPath::to_path_buf)
            .unwrap_or_default();
        if !self.fanout_made[fan] {
            fs::create_dir_all(&dir)?;
            self.fanout_made[fan] = true;
        }
        self.tmp_counter += 1;
        let tmp = dir.join(format!(
            "tmp_obj_{}_{}",
            std::process::id(),
            self.tmp_counter
        ));
        match write_new(&tmp, &compressed) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // The fan-out directory was removed under us (e.g. by git gc): recreate.
                fs::create_dir_all(&dir)?;
                write_new(&tmp, &compressed)?;
            }
            Err(e) => return Err(e.into()),
        }
        // Renaming over an existing copy of the same object is harmless.
        fs::rename(&tmp, &final_path)?;
        self.dirty = true;
        Ok(())
    }

    /// Ids of the loose objects.
    fn loose_ids(&self) -> Result<Vec<ObjectId>> {
        let mut ids = Vec::new();
        for e in fs::read_dir(&self.objects)?.flatten() {
            let dname = e.file_name().to_string_lossy().to_string();
            if dname.len() != 2 || !e.file_type()?.is_dir() {
                continue;
            }
            for f in fs::read_dir(e.path())?.flatten() {
                let fname = f.file_name().to_string_lossy().to_string();
                if let Ok(id) = ObjectId::from_hex(&format!("{dname}{fname}")) {
                    ids.push(id);
                }
            }
        }
        Ok(ids)
    }

    /// Every object id present (loose and packed).
    pub fn all_object_ids(&self) -> Result<Vec<ObjectId>> {
        let mut ids = self.loose_ids()?;
        for p in self.packs.borrow().iter() {
            ids.extend_from_slice(p.index.ids());
        }
        ids.sort_unstable();
        ids.dedup();
        Ok(ids)
    }

    /// Store a received pack (already checked by [`pack::index_pack`]) with its index.
    pub fn install_pack(
        &mut self,
        data: &[u8],
        entries: &mut [(ObjectId, u64, u32)],
        checksum: &ObjectId,
    ) -> Result<PathBuf> {
        let dir = self.objects.join("pack");
        fs::create_dir_all(&dir)?;
        let idx = pack::write_index(entries, checksum);
        let base = dir.join(format!("pack-{checksum}"));
        self.tmp_counter += 1;
        let n = self.tmp_counter;
        let tmp_pack = dir.join(format!("tmp_pack_{}_{n}", std::process::id()));
        let tmp_idx = dir.join(format!("tmp_idx_{}_{n}", std::process::id()));
        write_new(&tmp_pack, data)?;
        write_new(&tmp_idx, &idx)?;
        // Pack first, index last: readers look for the .idx. No fsync here: the next
        // barrier (syncfs) makes both durable before any ref can point into them, and a
        // pair torn by a power cut before that holds nothing referenced (it is skipped).
        fs::rename(&tmp_pack, base.with_extension("pack"))?;
        fs::rename(&tmp_idx, base.with_extension("idx"))?;
        self.dirty = true;
        self.rescan_packs()?;
        Ok(base.with_extension("pack"))
    }

    /// Repack: write every object reachable from refs and HEAD into one pack (with
    /// deltas), then delete the loose objects and old packs it made redundant (what
    /// `git repack -a -d` + `git prune-packed` do). Unreachable loose objects are kept.
    pub fn repack(&mut self) -> Result<RepackStats> {
        self.repack_inner(None)
    }

    /// [`GitDir::repack`], and also drop unreachable objects (loose files and whole old
    /// packs) last modified more than `grace` ago, like `git gc --prune=<grace>`. The
    /// grace period protects objects another process has written but not yet referenced;
    /// use a zero grace only when no other writer can be running.
    pub fn repack_and_prune(&mut self, grace: std::time::Duration) -> Result<RepackStats> {
        self.repack_inner(Some(grace))
    }

    fn repack_inner(&mut self, prune: Option<std::time::Duration>) -> Result<RepackStats> {
        self.flush()?;
        let expired = |path: &FsPath| -> bool {
            let Some(grace) = prune else { return false };
            fs::metadata(path)
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|age| age >= grace)
        };
        let mut roots: Vec<ObjectId> = self.list_refs("")?.into_iter().map(|(_, id)| id).collect();
        if let Some(h) = self.read_ref("HEAD")? {
            roots.push(h);
        }
        let objects = crate::sync::reachable(self, &roots, &Default::default())?;
        let inputs: Vec<pack::PackInput> = objects
            .into_iter()
            .map(|(id, obj, group)| pack::PackInput {
                id,
                kind: obj.kind,
                data: obj.data,
                group,
            })
            .collect();
        let count = inputs.len();
        let written = pack::write_pack(inputs, true);
        let mut entries = written.entries.clone();
        let packed: hashbrown::HashSet<ObjectId> = entries.iter().map(|e| e.0).collect();
        let new_pack = self.install_pack(&written.data, &mut entries, &written.checksum)?;
        if self.durability == Durability::Fsync {
            syncfs(&self.objects)?;
        }
        // Old packs whose objects are all in the new pack go away (and, when pruning,
        // old packs holding only expired unreachable objects besides).
        let old: Vec<Arc<Pack>> = self.packs.borrow().clone();
        for p in old {
            let redundant = p.index.ids().iter().all(|id| packed.contains(id));
            if p.name != new_pack && (redundant || expired(&p.name)) {
                let _ = fs::remove_file(p.name.with_extension("idx"));
                let _ = fs::remove_file(&p.name);
            }
        }
        let mut removed = 0;
        for id in self.loose_ids()? {
            let path = self.loose_path(&id);
            if (packed.contains(&id) || expired(&path)) && fs::remove_file(&path).is_ok() {
                removed += 1;
            }
        }
        self.rescan_packs()?;
        Ok(RepackStats {
            objects: count,
            pack_bytes: written.data.len() as u64,
            loose_removed: removed,
        })
    }

    /// Space used by objects (loose files and packs): file sizes and allocated blocks.
    pub fn object_usage(&self) -> Result<DiskUsage> {
        use std::os::unix::fs::MetadataExt;
        let mut total = DiskUsage::default();
        let mut stack = vec![self.objects.clone()];
        while let Some(d) = stack.pop() {
            for e in fs::read_dir(&d)?.flatten() {
                let m = e.metadata()?;
                if m.is_dir() {
                    stack.push(e.path());
                } else {
                    total.apparent += m.len();
                    total.allocated += m.blocks() * 512;
                }
            }
        }
        Ok(total)
    }
}

impl Drop for GitDir {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            log::error!("irmin-store: group commit lost on drop: {e}");
        }
    }
}

/// Bytes used on disk: `apparent` sums file sizes, `allocated` counts filesystem blocks
/// (what `du` reports; a small loose object still takes a whole block).
#[derive(Clone, Copy, Debug, Default)]
pub struct DiskUsage {
    pub apparent: u64,
    pub allocated: u64,
}

/// What [`GitDir::repack`] did.
#[derive(Clone, Copy, Debug)]
pub struct RepackStats {
    pub objects: usize,
    pub pack_bytes: u64,
    pub loose_removed: usize,
}

impl Backend for GitDir {
    fn read_object(&self, id: &ObjectId) -> Result<Option<RawObject>> {
        if let Some(&i) = self.group.index.get(id) {
            let (_, kind, data) = &self.group.objects[i];
            return Ok(Some(RawObject {
                kind: *kind,
                data: data.clone(),
            }));
        }
        // Pack indexes are in memory: look there before paying for an open().
        let found = match self.find_in_packs(id) {
            Some(f) => Some(f),
            None => {
                if let Some(o) = self.read_loose(id)? {
                    return Ok(Some(o));
                }
                // Somebody (git gc, a fetch) may have added a pack since we looked, and
                // moved the loose object into it meanwhile.
                self.rescan_packs()?;
                self.find_in_packs(id)
            }
        };
        let Some((pack, off)) = found else {
            return Ok(None);
        };
        let obj = self
            .read_packed(&pack, off, 0)
            .map_err(|e| e.with_id(*id))?;
        let actual = hash_object(obj.kind, &obj.data);
        if actual != *id {
            return Err(Error::HashMismatch {
                expected: *id,
                actual,
            });
        }
        Ok(Some(obj))
    }

    fn has_object(&self, id: &ObjectId) -> Result<bool> {
        if self.group.index.contains_key(id)
            || self.find_in_packs(id).is_some()
            || self.loose_path(id).exists()
        {
            return Ok(true);
        }
        self.rescan_packs()?;
        Ok(self.find_in_packs(id).is_some())
    }

    fn write_object(&mut self, id: &ObjectId, kind: ObjectKind, data: &[u8]) -> Result<()> {
        if self.group.index.contains_key(id) || self.find_in_packs(id).is_some() {
            return Ok(());
        }
        // Buffered until the next barrier: a commit's objects reach the disk together,
        // as one pack (two files) instead of one file each.
        self.group.index.insert(*id, self.group.objects.len());
        self.group.objects.push((*id, kind, data.to_vec()));
        Ok(())
    }

    fn sync_objects(&mut self) -> Result<()> {
        // In group mode the flush orders objects before refs.
        if self.group_limit == 0 && !self.group.objects.is_empty() {
            let objects = std::mem::take(&mut self.group.objects);
            self.group.index.clear();
            self.write_objects(&objects, 2)?;
            self.dirty = false;
            return self.consolidate_packs();
        }
        if self.dirty && self.durability == Durability::Fsync {
            syncfs(&self.objects)?;
        }
        self.dirty = false;
        Ok(())
    }

    fn read_ref(&self, name: &str) -> Result<Option<ObjectId>> {
        if name != "HEAD" {
            crate::path::check_ref_name(name)?;
        }
        let target = if name == "HEAD" {
            self.head_target()?
        } else {
            Some(name.to_string())
        };
        if let Some((_, pending)) = target.and_then(|t| self.group.refs.get(&t)) {
            return Ok(*pending);
        }
        self.read_ref_inner(name, 0)
    }

    fn update_ref(
        &mut self,
        name: &str,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
    ) -> Result<()> {
        crate::path::check_ref_name(name)?;
        if self.group_limit > 0 {
            return self.update_ref_grouped(name, expected, new);
        }
        let lock = self.lock_ref(name)?;
        let result = (|| -> Result<()> {
            super::expect_ref(name, expected, self.read_ref_inner(name, 0)?)?;
            self.commit_ref(&lock, name, new)
        })();
        if result.is_err() {
            let _ = fs::remove_file(&lock.lock);
        }
        result
    }

    fn list_refs(&self, prefix: &str) -> Result<Vec<(String, ObjectId)>> {
        let mut out: std::collections::BTreeMap<String, ObjectId> = self
            .packed_refs()?
            .into_iter()
            .filter(|(n, _)| n.starts_with(prefix))
            .collect();
        let mut stack = vec![(self.git_dir.join("refs"), "refs".to_string())];
        while let Some((dir, name)) = stack.pop() {
            let Ok(rd) = fs::read_dir(&dir) else { continue };
            for e in rd.flatten() {
                let fname = e.file_name().to_string_lossy().to_string();
                let full = format!("{name}/{fname}");
                if e.file_type()?.is_dir() {
                    stack.push((e.path(), full));
                } else if !fname.ends_with(".lock") && full.starts_with(prefix) {
                    if let Ok(text) = fs::read_to_string(e.path()) {
                        if let Ok(id) = ObjectId::from_hex(text.trim_end()) {
                            out.insert(full, id);
                        }
                    }
                }
            }
        }
        for (name, (_, pending)) in &self.group.refs {
            if name.starts_with(prefix) {
                match pending {
                    Some(id) => out.insert(name.clone(), *id),
                    None => out.remove(name),
                };
            }
        }
        Ok(out.into_iter().collect())
    }

    fn store_pack(&mut self, data: &[u8], indexed: &pack::IndexedPack) -> Result<()> {
        let mut entries: Vec<(ObjectId, u64, u32)> = indexed
            .objects
            .iter()
            .map(|(id, _, off, crc)| (*id, *off, *crc))
            .collect();
        self.install_pack(data, &mut entries, &indexed.checksum)?;
        Ok(())
    }

    fn head_target(&self) -> Result<Option<String>> {
        let text = fs::read_to_string(self.git_dir.join("HEAD"))?;
        Ok(text.trim_end().strip_prefix("ref: ").map(str::to_string))
    }

    fn set_head_target(&mut self, target: &str) -> Result<()> {
        crate::path::check_ref_name(target)?;
        let lock = self.git_dir.join("HEAD.lock");
        let f = write_new(&lock, format!("ref: {target}\n").as_bytes()).map_err(|e| {
            if e.kind() == ErrorKind::AlreadyExists {
                Error::RefLocked("HEAD".to_string())
            } else {
                Error::Io(e)
            }
        })?;
        if self.durability == Durability::Fsync {
            f.sync_all()?;
        }
        fs::rename(&lock, self.git_dir.join("HEAD"))?;
        Ok(())
    }
}
