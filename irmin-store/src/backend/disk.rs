//! A Git repository on disk: loose objects, pack files (read and written), loose and
//! packed refs, symbolic HEAD. What it writes, `git` reads; what `git` writes, it reads.
//!
//! ## Durability protocol
//! Objects are written as loose files via a temporary name and `rename` (never visible
//! half-written). No object is fsynced on its own. Before a ref moves, the store calls
//! [`Backend::sync_objects`]: with [`Durability::Fsync`] that is one `syncfs(2)` for all
//! objects written since the last barrier. The ref itself is updated with git's lock
//! protocol: create `<ref>.lock` exclusively (the CAS lock, which also excludes concurrent
//! `git` processes), check the current value, write the new one, fsync, `rename` over the
//! ref, fsync the directory. A crash at any point leaves the ref at its old or new value,
//! and every object it points to present.
//!
//! [`Durability::Process`] keeps the same ordering without fsyncs: it survives the writer
//! process dying (SIGKILL), not the machine losing power. That is what `git` itself does
//! by default (`core.fsync` unset).

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
}

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

    /// Every object id present (loose and packed).
    pub fn all_object_ids(&self) -> Result<Vec<ObjectId>> {
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
        let tmp_pack = dir.join(format!("tmp_pack_{}", std::process::id()));
        let tmp_idx = dir.join(format!("tmp_idx_{}", std::process::id()));
        let _ = fs::remove_file(&tmp_pack);
        let _ = fs::remove_file(&tmp_idx);
        let fp = write_new(&tmp_pack, data)?;
        let fi = write_new(&tmp_idx, &idx)?;
        if self.durability == Durability::Fsync {
            fp.sync_all()?;
            fi.sync_all()?;
        }
        // Pack first, index last: readers look for the .idx.
        fs::rename(&tmp_pack, base.with_extension("pack"))?;
        fs::rename(&tmp_idx, base.with_extension("idx"))?;
        if self.durability == Durability::Fsync {
            sync_dir(&dir)?;
        }
        self.rescan_packs()?;
        Ok(base.with_extension("pack"))
    }

    /// Repack: write every object reachable from refs and HEAD into one pack (with
    /// deltas), then delete the loose objects and old packs it made redundant (what
    /// `git repack -a -d` + `git prune-packed` do). Unreachable loose objects are kept.
    pub fn repack(&mut self) -> Result<RepackStats> {
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
        // Old packs whose objects are all in the new pack go away.
        let old: Vec<Arc<Pack>> = self.packs.borrow().clone();
        for p in old {
            if p.name != new_pack && p.index.ids().iter().all(|id| packed.contains(id)) {
                let _ = fs::remove_file(p.name.with_extension("idx"));
                let _ = fs::remove_file(&p.name);
            }
        }
        let mut removed = 0;
        for id in &packed {
            if fs::remove_file(self.loose_path(id)).is_ok() {
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
        if let Some(o) = self.read_loose(id)? {
            return Ok(Some(o));
        }
        let found = match self.find_in_packs(id) {
            Some(f) => Some(f),
            None => {
                // Somebody (git gc, a fetch) may have added a pack since we looked.
                self.rescan_packs()?;
                match self.find_in_packs(id) {
                    Some(f) => Some(f),
                    // ...and moved the loose object into it meanwhile.
                    None => return self.read_loose(id),
                }
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
        if self.find_in_packs(id).is_some() || self.loose_path(id).exists() {
            return Ok(true);
        }
        self.rescan_packs()?;
        Ok(self.find_in_packs(id).is_some())
    }

    fn write_object(&mut self, id: &ObjectId, kind: ObjectKind, data: &[u8]) -> Result<()> {
        if self.find_in_packs(id).is_some() {
            return Ok(());
        }
        let mut header = [0u8; 32];
        let hl = object_header(kind, data.len(), &mut header);
        let compressed = zlib::deflate(&[&header[..hl], data], zlib::FAST);
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

    fn sync_objects(&mut self) -> Result<()> {
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
        self.read_ref_inner(name, 0)
    }

    fn update_ref(
        &mut self,
        name: &str,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
    ) -> Result<()> {
        crate::path::check_ref_name(name)?;
        let path = self.ref_path(name);
        let parent = path.parent().map(FsPath::to_path_buf).unwrap_or_default();
        fs::create_dir_all(&parent)?;
        let lock = path.with_file_name(format!(
            "{}.lock",
            path.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default()
        ));
        let content = new.map(|id| format!("{id}\n")).unwrap_or_default();
        let f = match write_new(&lock, content.as_bytes()) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => {
                return Err(Error::RefLocked(name.to_string()));
            }
            Err(e) => return Err(e.into()),
        };
        let result = (|| -> Result<()> {
            let actual = self.read_ref_inner(name, 0)?;
            if actual != expected {
                return Err(Error::RefChanged {
                    name: name.to_string(),
                    expected,
                    actual,
                });
            }
            match new {
                Some(_) => {
                    if self.durability == Durability::Fsync {
                        f.sync_all()?;
                    }
                    fs::rename(&lock, &path)?;
                }
                None => {
                    match fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == ErrorKind::NotFound => {}
                        Err(e) => return Err(e.into()),
                    }
                    self.remove_packed_ref(name)?;
                    fs::remove_file(&lock)?;
                }
            }
            if self.durability == Durability::Fsync {
                sync_dir(&parent)?;
            }
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&lock);
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
