//! The store: keys/values on branches, commits, history and diffs, over any [`Backend`].
//!
//! Writes only touch the trees on the path from a changed key to the root: a commit that
//! changes one key at depth `d` writes one blob, `d + 1` trees and one commit. Decoded
//! trees and commits are cached (two-generation cache), so a sequence of commits on a
//! branch never re-reads or re-parses what it just wrote.

use alloc::collections::{BTreeMap, BTreeSet, BinaryHeap};
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use alloc::vec::Vec;
use core::cell::RefCell;

use crate::backend::{Backend, RawObject};
use crate::error::{Error, Result};
use crate::hash::{ObjectId, hash_object};
use crate::object::{Commit, Mode, ObjectKind, Signature, Tag, Tree, TreeEntry};
use crate::path::{Path, branch_ref, check_ref_name, tag_ref};

/// Metadata of a commit to be made.
#[derive(Clone, Debug)]
pub struct CommitInfo {
    pub author: Signature,
    /// Defaults to the author.
    pub committer: Option<Signature>,
    pub message: String,
}

impl CommitInfo {
    pub fn new(author: Signature, message: &str) -> Self {
        CommitInfo {
            author,
            committer: None,
            message: message.to_string(),
        }
    }

    fn committer(&self) -> &Signature {
        self.committer.as_ref().unwrap_or(&self.author)
    }

    /// The message as git stores it: ends with exactly one newline.
    fn message_bytes(&self) -> Vec<u8> {
        let mut m = self.message.trim_end_matches('\n').as_bytes().to_vec();
        m.push(b'\n');
        m
    }
}

/// What a path names inside a tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    /// A value (blob, executable or symlink).
    Value,
    /// An inner node (tree).
    Node,
    /// A submodule commit (only found in repositories written by git).
    Gitlink,
}

impl From<Mode> for EntryKind {
    fn from(m: Mode) -> Self {
        match m {
            Mode::Tree => EntryKind::Node,
            Mode::Gitlink => EntryKind::Gitlink,
            _ => EntryKind::Value,
        }
    }
}

/// One pending change in a [`Transaction`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Set(Vec<u8>),
    Remove,
    /// Graft an existing tree (or value, with its mode) at the path.
    SetEntry(Mode, ObjectId),
}

/// A batch of updates on one branch that becomes a single commit (group commit).
#[derive(Clone, Debug)]
pub struct Transaction {
    branch_ref: String,
    base: Option<ObjectId>,
    ops: BTreeMap<Path, Op>,
}

impl Transaction {
    /// The commit this transaction builds on (`None` for a new branch).
    pub fn base(&self) -> Option<ObjectId> {
        self.base
    }

    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    pub fn set(&mut self, key: &str, value: impl Into<Vec<u8>>) -> Result<()> {
        let path = Path::parse(key)?;
        if path.is_root() {
            return Err(Error::InvalidPath(key.to_string()));
        }
        self.push(path, Op::Set(value.into()));
        Ok(())
    }

    pub fn remove(&mut self, key: &str) -> Result<()> {
        let path = Path::parse(key)?;
        self.push(path, Op::Remove);
        Ok(())
    }

    /// Set `path` to an existing object (`Mode::Tree` grafts a whole subtree).
    pub fn set_entry(&mut self, path: Path, mode: Mode, id: ObjectId) {
        self.push(path, Op::SetEntry(mode, id));
    }

    pub(crate) fn push(&mut self, path: Path, op: Op) {
        // Later ops win: an op on `p` overrides earlier ops below `p`...
        let below: Vec<Path> = self
            .ops
            .range(path.clone()..)
            .skip_while(|(k, _)| **k == path)
            .take_while(|(k, _)| k.steps().starts_with(path.steps()))
            .map(|(k, _)| k.clone())
            .collect();
        for k in below {
            self.ops.remove(&k);
        }
        // ...and a value set on an ancestor is replaced by the tree that now holds `p`.
        for n in 0..path.len() {
            let Ok(ancestor) = Path::from_steps(path.steps()[..n].iter().cloned()) else {
                continue;
            };
            if let Some(Op::Set(_)) | Some(Op::SetEntry(Mode::File | Mode::Executable, _)) =
                self.ops.get(&ancestor)
            {
                self.ops.insert(ancestor, Op::Remove);
            }
        }
        self.ops.insert(path, op);
    }

    /// Move the transaction onto the branch's current head (after losing a CAS race):
    /// the same path-level updates will be applied to the new head.
    pub fn rebase<B: Backend>(&mut self, repo: &Repo<B>) -> Result<()> {
        self.base = repo.backend.read_ref(&self.branch_ref)?;
        Ok(())
    }

    /// Write the batch as one commit and advance the branch with compare-and-swap.
    pub fn commit<B: Backend>(&self, repo: &mut Repo<B>, info: &CommitInfo) -> Result<ObjectId> {
        let base_tree = match self.base {
            Some(c) => Some(repo.read_commit(&c)?.tree),
            None => None,
        };
        let ops: Vec<(&[String], &Op)> = self.ops.iter().map(|(p, op)| (p.steps(), op)).collect();
        let tree = repo.apply_ops(base_tree, &ops)?;
        let parents: Vec<ObjectId> = self.base.into_iter().collect();
        let id = repo.make_commit(tree, parents, info)?;
        repo.update_ref(&self.branch_ref, self.base, Some(id))?;
        Ok(id)
    }
}

type Entry = Option<(Mode, ObjectId)>;

/// A change between two trees, at the level of values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub path: String,
    pub old: Option<(Mode, ObjectId)>,
    pub new: Option<(Mode, ObjectId)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeKind {
    Added,
    Removed,
    Modified,
}

impl Change {
    pub fn kind(&self) -> ChangeKind {
        match (self.old, self.new) {
            (None, _) => ChangeKind::Added,
            (_, None) => ChangeKind::Removed,
            _ => ChangeKind::Modified,
        }
    }
}

/// A small two-generation cache: cheap to maintain, keeps the working set hot.
struct Cache<V> {
    hot: hashbrown::HashMap<ObjectId, V>,
    cold: hashbrown::HashMap<ObjectId, V>,
    capacity: usize,
}

impl<V: Clone> Cache<V> {
    fn new(capacity: usize) -> Self {
        Cache {
            hot: Default::default(),
            cold: Default::default(),
            capacity,
        }
    }

    fn get(&mut self, id: &ObjectId) -> Option<V> {
        if let Some(v) = self.hot.get(id) {
            return Some(v.clone());
        }
        let v = self.cold.remove(id)?;
        self.insert(*id, v.clone());
        Some(v)
    }

    fn insert(&mut self, id: ObjectId, v: V) {
        if self.hot.len() >= self.capacity {
            self.cold = core::mem::take(&mut self.hot);
        }
        self.hot.insert(id, v);
    }

    fn clear(&mut self) {
        self.hot.clear();
        self.cold.clear();
    }
}

/// Blobs up to this size are cached after the first read.
const BLOB_CACHE_MAX: usize = 4096;

/// A versioned store over a backend.
pub struct Repo<B: Backend> {
    pub(crate) backend: B,
    trees: RefCell<Cache<Arc<Tree>>>,
    commits: RefCell<Cache<Arc<Commit>>>,
    blobs: RefCell<Cache<Arc<[u8]>>>,
}

impl<B: Backend> Repo<B> {
    pub fn new(backend: B) -> Self {
        Repo {
            backend,
            trees: RefCell::new(Cache::new(16 * 1024)),
            commits: RefCell::new(Cache::new(16 * 1024)),
            blobs: RefCell::new(Cache::new(16 * 1024)),
        }
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Direct access to the backend. Writing refs here bypasses nothing important, but
    /// rewriting objects would make the caches stale: call [`Repo::clear_caches`] then.
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    pub fn into_backend(self) -> B {
        self.backend
    }

    pub fn clear_caches(&self) {
        self.trees.borrow_mut().clear();
        self.commits.borrow_mut().clear();
        self.blobs.borrow_mut().clear();
    }

    // ----- objects -----

    /// Read any object; missing objects are an error.
    pub fn read_raw(&self, id: &ObjectId) -> Result<RawObject> {
        self.backend
            .read_object(id)?
            .ok_or(Error::MissingObject(*id))
    }

    fn read_kind(&self, id: &ObjectId, kind: ObjectKind) -> Result<Vec<u8>> {
        let raw = self.read_raw(id)?;
        if raw.kind != kind {
            return Err(Error::WrongKind {
                id: *id,
                expected: kind,
                actual: raw.kind,
            });
        }
        Ok(raw.data)
    }

    pub fn read_commit(&self, id: &ObjectId) -> Result<Arc<Commit>> {
        if let Some(c) = self.commits.borrow_mut().get(id) {
            return Ok(c);
        }
        let data = self.read_kind(id, ObjectKind::Commit)?;
        let c = Arc::new(Commit::decode(&data).map_err(|e| e.with_id(*id))?);
        self.commits.borrow_mut().insert(*id, c.clone());
        Ok(c)
    }

    pub fn read_tree(&self, id: &ObjectId) -> Result<Arc<Tree>> {
        if let Some(t) = self.trees.borrow_mut().get(id) {
            return Ok(t);
        }
        let data = self.read_kind(id, ObjectKind::Tree)?;
        let t = Arc::new(Tree::decode(&data).map_err(|e| e.with_id(*id))?);
        self.trees.borrow_mut().insert(*id, t.clone());
        Ok(t)
    }

    pub fn read_blob(&self, id: &ObjectId) -> Result<Arc<[u8]>> {
        if let Some(b) = self.blobs.borrow_mut().get(id) {
            return Ok(b);
        }
        let data: Arc<[u8]> = self.read_kind(id, ObjectKind::Blob)?.into();
        if data.len() <= BLOB_CACHE_MAX {
            self.blobs.borrow_mut().insert(*id, data.clone());
        }
        Ok(data)
    }

    pub fn write_blob(&mut self, data: &[u8]) -> Result<ObjectId> {
        let id = hash_object(ObjectKind::Blob, data);
        self.backend.write_object(&id, ObjectKind::Blob, data)?;
        Ok(id)
    }

    pub fn write_tree(&mut self, tree: Tree) -> Result<ObjectId> {
        let data = tree.encode();
        let id = hash_object(ObjectKind::Tree, &data);
        self.backend.write_object(&id, ObjectKind::Tree, &data)?;
        self.trees.borrow_mut().insert(id, Arc::new(tree));
        Ok(id)
    }

    pub fn write_commit(&mut self, commit: Commit) -> Result<ObjectId> {
        let data = commit.encode();
        let id = hash_object(ObjectKind::Commit, &data);
        self.backend.write_object(&id, ObjectKind::Commit, &data)?;
        self.commits.borrow_mut().insert(id, Arc::new(commit));
        Ok(id)
    }

    /// Write a commit of `tree` with `parents` and `info`'s metadata.
    pub fn make_commit(
        &mut self,
        tree: ObjectId,
        parents: Vec<ObjectId>,
        info: &CommitInfo,
    ) -> Result<ObjectId> {
        self.write_commit(Commit {
            tree,
            parents,
            author: info.author.clone(),
            committer: info.committer().clone(),
            extra_headers: Vec::new(),
            message: info.message_bytes(),
        })
    }

    // ----- refs -----

    /// Compare-and-swap a full ref after making every written object durable.
    pub fn update_ref(
        &mut self,
        name: &str,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
    ) -> Result<()> {
        check_ref_name(name)?;
        if let Some(id) = new {
            if !self.backend.has_object(&id)? {
                return Err(Error::MissingObject(id));
            }
        }
        self.backend.sync_objects()?;
        self.backend.update_ref(name, expected, new)
    }

    /// Head commit of a branch, `None` if the branch does not exist.
    pub fn branch_head(&self, branch: &str) -> Result<Option<ObjectId>> {
        self.backend.read_ref(&branch_ref(branch)?)
    }

    /// The branch HEAD names (`main` by default).
    pub fn current_branch(&self) -> Result<Option<String>> {
        Ok(self
            .backend
            .head_target()?
            .and_then(|t| t.strip_prefix("refs/heads/").map(str::to_string)))
    }

    pub fn set_current_branch(&mut self, branch: &str) -> Result<()> {
        let r = branch_ref(branch)?;
        self.backend.set_head_target(&r)
    }

    /// Branch names and heads.
    pub fn branches(&self) -> Result<Vec<(String, ObjectId)>> {
        Ok(self
            .backend
            .list_refs("refs/heads/")?
            .into_iter()
            .map(|(n, id)| (n["refs/heads/".len()..].to_string(), id))
            .collect())
    }

    /// Create or move a branch with compare-and-swap (`expected = None`: must not exist).
    pub fn set_branch(
        &mut self,
        branch: &str,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
    ) -> Result<()> {
        if let Some(id) = new {
            self.read_commit(&id)?;
        }
        self.update_ref(&branch_ref(branch)?, expected, new)
    }

    /// Create a lightweight tag `refs/tags/<name>` (fails if it exists).
    pub fn tag(&mut self, name: &str, target: ObjectId) -> Result<()> {
        self.read_raw(&target)?;
        self.update_ref(&tag_ref(name)?, None, Some(target))
    }

    pub fn tags(&self) -> Result<Vec<(String, ObjectId)>> {
        Ok(self
            .backend
            .list_refs("refs/tags/")?
            .into_iter()
            .map(|(n, id)| (n["refs/tags/".len()..].to_string(), id))
            .collect())
    }

    /// Resolve a revision: `HEAD`, a branch, a tag (annotated tags are peeled), a full
    /// ref or a 40-hex id. The result is a commit id.
    pub fn resolve(&self, rev: &str) -> Result<ObjectId> {
        let id = if rev.len() == 40 && rev.bytes().all(|b| b.is_ascii_hexdigit()) {
            ObjectId::from_hex(rev)?
        } else if rev == "HEAD" {
            self.backend
                .read_ref("HEAD")?
                .ok_or_else(|| Error::RefNotFound(rev.to_string()))?
        } else if rev.starts_with("refs/") {
            self.backend
                .read_ref(rev)?
                .ok_or_else(|| Error::RefNotFound(rev.to_string()))?
        } else {
            let mut found = None;
            for full in [branch_ref(rev), tag_ref(rev)] {
                if let Some(id) = self.backend.read_ref(&full?)? {
                    found = Some(id);
                    break;
                }
            }
            found.ok_or_else(|| Error::RefNotFound(rev.to_string()))?
        };
        self.peel_to_commit(id)
    }

    /// Follow annotated tags until a commit.
    pub fn peel_to_commit(&self, mut id: ObjectId) -> Result<ObjectId> {
        for _ in 0..16 {
            let raw = self.read_raw(&id)?;
            match raw.kind {
                ObjectKind::Commit => return Ok(id),
                ObjectKind::Tag => id = Tag::decode(&raw.data).map_err(|e| e.with_id(id))?.object,
                other => {
                    return Err(Error::WrongKind {
                        id,
                        expected: ObjectKind::Commit,
                        actual: other,
                    });
                }
            }
        }
        Err(Error::WrongKind {
            id,
            expected: ObjectKind::Commit,
            actual: ObjectKind::Tag,
        })
    }

    // ----- reading values -----

    /// The entry at `path` below `tree` (the root path yields the tree itself).
    pub fn find(&self, tree: ObjectId, path: &Path) -> Result<Option<(Mode, ObjectId)>> {
        let mut cur = (Mode::Tree, tree);
        for step in path.steps() {
            if cur.0 != Mode::Tree {
                return Ok(None);
            }
            let t = self.read_tree(&cur.1)?;
            match t.get(step.as_bytes()) {
                Some(e) => cur = (e.mode, e.id),
                None => return Ok(None),
            }
        }
        Ok(Some(cur))
    }

    /// The value at `key` in `tree`; `Error::NotAValue` if `key` is a node.
    pub fn get_in_tree(&self, tree: ObjectId, key: &str) -> Result<Option<Arc<[u8]>>> {
        let path = Path::parse(key)?;
        match self.find(tree, &path)? {
            None => Ok(None),
            Some((m, id)) if m.is_blob() => Ok(Some(self.read_blob(&id)?)),
            Some(_) => Err(Error::NotAValue(key.to_string())),
        }
    }

    /// The value at `key` in the commit `commit`.
    pub fn get_at(&self, commit: &ObjectId, key: &str) -> Result<Option<Arc<[u8]>>> {
        let tree = self.read_commit(commit)?.tree;
        self.get_in_tree(tree, key)
    }

    /// The value at `key` on `branch` (`None` if the branch or key does not exist).
    pub fn get(&self, branch: &str, key: &str) -> Result<Option<Arc<[u8]>>> {
        match self.branch_head(branch)? {
            Some(c) => self.get_at(&c, key),
            None => {
                Path::parse(key)?;
                Ok(None)
            }
        }
    }

    /// Children of the node at `key` in `tree`, in git order.
    pub fn list_in_tree(&self, tree: ObjectId, key: &str) -> Result<Vec<(String, EntryKind)>> {
        let path = Path::parse(key)?;
        match self.find(tree, &path)? {
            Some((Mode::Tree, id)) => Ok(self
                .read_tree(&id)?
                .entries()
                .iter()
                .map(|e| (String::from_utf8_lossy(&e.name).into_owned(), e.mode.into()))
                .collect()),
            _ => Ok(Vec::new()),
        }
    }

    pub fn list(&self, branch: &str, key: &str) -> Result<Vec<(String, EntryKind)>> {
        match self.branch_head(branch)? {
            Some(c) => {
                let tree = self.read_commit(&c)?.tree;
                self.list_in_tree(tree, key)
            }
            None => Ok(Vec::new()),
        }
    }

    /// Every value below `tree`, as (path, mode, id), depth first in git order.
    pub fn walk_values(&self, tree: ObjectId) -> Result<Vec<(String, Mode, ObjectId)>> {
        let mut out = Vec::new();
        self.walk_into(tree, "", &mut out)?;
        Ok(out)
    }

    fn walk_into(
        &self,
        tree: ObjectId,
        prefix: &str,
        out: &mut Vec<(String, Mode, ObjectId)>,
    ) -> Result<()> {
        let t = self.read_tree(&tree)?;
        for e in t.entries() {
            let name = String::from_utf8_lossy(&e.name);
            let p = if prefix.is_empty() {
                name.into_owned()
            } else {
                alloc::format!("{prefix}/{name}")
            };
            if e.mode == Mode::Tree {
                self.walk_into(e.id, &p, out)?;
            } else {
                out.push((p, e.mode, e.id));
            }
        }
        Ok(())
    }

    // ----- writing -----

    /// Start a batch of updates on `branch` based on its current head.
    pub fn transaction(&self, branch: &str) -> Result<Transaction> {
        let branch_ref = branch_ref(branch)?;
        let base = self.backend.read_ref(&branch_ref)?;
        Ok(Transaction {
            branch_ref,
            base,
            ops: BTreeMap::new(),
        })
    }

    /// Set one key and commit.
    pub fn set(
        &mut self,
        branch: &str,
        key: &str,
        value: &[u8],
        info: &CommitInfo,
    ) -> Result<ObjectId> {
        let mut tx = self.transaction(branch)?;
        tx.set(key, value)?;
        tx.commit(self, info)
    }

    /// Remove one key (or a whole node) and commit.
    pub fn remove(&mut self, branch: &str, key: &str, info: &CommitInfo) -> Result<ObjectId> {
        let mut tx = self.transaction(branch)?;
        tx.remove(key)?;
        tx.commit(self, info)
    }

    /// Apply ops (sorted by path, as a `Transaction` keeps them) to `base` and write the
    /// changed trees. Returns the new root tree (the empty tree if nothing is left).
    pub fn apply_ops(
        &mut self,
        base: Option<ObjectId>,
        ops: &[(&[String], &Op)],
    ) -> Result<ObjectId> {
        let root = base.map(|t| (Mode::Tree, t));
        match self.apply_node(root, ops)? {
            Some((Mode::Tree, id)) => Ok(id),
            // The root was replaced by a value or emptied: store the empty tree.
            _ => self.write_tree(Tree::new()),
        }
    }

    fn apply_node(
        &mut self,
        base: Option<(Mode, ObjectId)>,
        ops: &[(&[String], &Op)],
    ) -> Result<Option<(Mode, ObjectId)>> {
        let mut base = base;
        let mut rest = ops;
        if let Some((path, op)) = ops.first() {
            if path.is_empty() {
                base = match op {
                    Op::Set(v) => Some((Mode::File, self.write_blob(v)?)),
                    Op::Remove => None,
                    Op::SetEntry(mode, id) => Some((*mode, *id)),
                };
                rest = &ops[1..];
            }
        }
        if rest.is_empty() {
            return Ok(base);
        }
        let mut tree = match base {
            Some((Mode::Tree, id)) => (*self.read_tree(&id)?).clone(),
            _ => Tree::new(),
        };
        let mut changed = !matches!(base, Some((Mode::Tree, _)));
        let mut i = 0;
        while i < rest.len() {
            let name = &rest[i].0[0];
            let mut j = i + 1;
            while j < rest.len() && rest[j].0[0] == *name {
                j += 1;
            }
            let sub: Vec<(&[String], &Op)> =
                rest[i..j].iter().map(|(p, op)| (&p[1..], *op)).collect();
            let old = tree.get(name.as_bytes()).map(|e| (e.mode, e.id));
            let new = self.apply_node(old, &sub)?;
            if new != old {
                changed = true;
                match new {
                    Some((mode, id)) => tree.upsert(TreeEntry {
                        mode,
                        name: name.as_bytes().to_vec(),
                        id,
                    }),
                    None => {
                        tree.remove(name.as_bytes());
                    }
                }
            }
            i = j;
        }
        if tree.is_empty() {
            return Ok(None);
        }
        if !changed {
            return Ok(base);
        }
        Ok(Some((Mode::Tree, self.write_tree(tree)?)))
    }

    // ----- history -----

    /// Commits reachable from `start`, newest committer time first (like `git log`).
    pub fn log(&self, start: ObjectId, limit: usize) -> Result<Vec<(ObjectId, Arc<Commit>)>> {
        self.log_filtered(start, limit, |_, _| Ok(true))
    }

    fn log_filtered(
        &self,
        start: ObjectId,
        limit: usize,
        mut keep: impl FnMut(&ObjectId, &Commit) -> Result<bool>,
    ) -> Result<Vec<(ObjectId, Arc<Commit>)>> {
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        let mut queue = BinaryHeap::new();
        let c = self.read_commit(&start)?;
        seen.insert(start);
        queue.push((c.committer.time, start));
        while let Some((_, id)) = queue.pop() {
            if out.len() >= limit {
                break;
            }
            let c = self.read_commit(&id)?;
            for p in &c.parents {
                if seen.insert(*p) {
                    let pc = self.read_commit(p)?;
                    queue.push((pc.committer.time, *p));
                }
            }
            if keep(&id, &c)? {
                out.push((id, c));
            }
        }
        Ok(out)
    }

    /// Commits that changed `key` (its value or anything below it), newest first. A merge
    /// is listed only if the path differs from every parent (git's default simplification).
    pub fn history(
        &self,
        start: ObjectId,
        key: &str,
        limit: usize,
    ) -> Result<Vec<(ObjectId, Arc<Commit>)>> {
        let path = Path::parse(key)?;
        self.log_filtered(start, limit, |_, c| {
            let here = self.find(c.tree, &path)?;
            if c.parents.is_empty() {
                return Ok(here.is_some());
            }
            for p in &c.parents {
                let pt = self.read_commit(p)?.tree;
                if self.find(pt, &path)? == here {
                    return Ok(false);
                }
            }
            Ok(true)
        })
    }

    /// Whether `ancestor` is reachable from `descendant` (a commit is its own ancestor).
    pub fn is_ancestor(&self, ancestor: &ObjectId, descendant: &ObjectId) -> Result<bool> {
        let target_time = self.read_commit(ancestor)?.committer.time;
        let mut seen = BTreeSet::new();
        let mut stack = alloc::vec![*descendant];
        while let Some(id) = stack.pop() {
            if id == *ancestor {
                return Ok(true);
            }
            if !seen.insert(id) {
                continue;
            }
            let c = self.read_commit(&id)?;
            // Commits much older than the target cannot reach it (allow a day of skew).
            if c.committer.time + 86_400 < target_time {
                continue;
            }
            stack.extend(c.parents.iter().copied());
        }
        Ok(false)
    }

    // ----- diff -----

    /// Value-level changes from commit `old` (or nothing) to commit `new`.
    pub fn diff(&self, old: Option<&ObjectId>, new: &ObjectId) -> Result<Vec<Change>> {
        let old_tree = match old {
            Some(c) => Some(self.read_commit(c)?.tree),
            None => None,
        };
        let new_tree = self.read_commit(new)?.tree;
        self.diff_trees(old_tree, Some(new_tree))
    }

    /// Value-level changes between two trees, in path order.
    pub fn diff_trees(&self, old: Option<ObjectId>, new: Option<ObjectId>) -> Result<Vec<Change>> {
        let mut out = Vec::new();
        self.diff_entry(
            "",
            old.map(|t| (Mode::Tree, t)),
            new.map(|t| (Mode::Tree, t)),
            &mut out,
        )?;
        Ok(out)
    }

    fn diff_entry(
        &self,
        path: &str,
        old: Option<(Mode, ObjectId)>,
        new: Option<(Mode, ObjectId)>,
        out: &mut Vec<Change>,
    ) -> Result<()> {
        if old == new {
            return Ok(());
        }
        let is_tree = |e: &Option<(Mode, ObjectId)>| matches!(e, Some((Mode::Tree, _)));
        let (old_tree, new_tree) = (is_tree(&old), is_tree(&new));
        if old_tree || new_tree {
            let children = |e: Option<(Mode, ObjectId)>, t: bool| -> Result<Arc<Tree>> {
                match (e, t) {
                    (Some((_, id)), true) => self.read_tree(&id),
                    _ => Ok(Arc::new(Tree::new())),
                }
            };
            let ot = children(old, old_tree)?;
            let nt = children(new, new_tree)?;
            // Values replaced by trees (or the reverse) show as a removal and additions.
            let old_leaf = if old_tree { None } else { old };
            let new_leaf = if new_tree { None } else { new };
            if old_leaf.is_some() || new_leaf.is_some() {
                out.push(Change {
                    path: path.to_string(),
                    old: old_leaf,
                    new: new_leaf,
                });
            }
            let mut names: BTreeMap<&[u8], (Entry, Entry)> = BTreeMap::new();
            for e in ot.entries() {
                names.entry(&e.name).or_default().0 = Some((e.mode, e.id));
            }
            for e in nt.entries() {
                names.entry(&e.name).or_default().1 = Some((e.mode, e.id));
            }
            for (name, (o, n)) in names {
                let name = String::from_utf8_lossy(name);
                let p = if path.is_empty() {
                    name.into_owned()
                } else {
                    alloc::format!("{path}/{name}")
                };
                self.diff_entry(&p, o, n, out)?;
            }
            return Ok(());
        }
        out.push(Change {
            path: path.to_string(),
            old,
            new,
        });
        Ok(())
    }
}
