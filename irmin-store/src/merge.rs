//! Three-way merge of commits: lowest common ancestors, tree merge, per-value merge
//! functions, explicit conflicts and their resolution.
//!
//! Tree merge is structural: an entry changed on one side only takes that side; a subtree
//! changed on both sides is merged recursively; a value changed on both sides is handed to
//! a [`MergeFn`], which either returns the merged value or a conflict. Conflicts never
//! stop the rest of the merge: they are collected in a [`PendingMerge`] that must be
//! resolved before it can be committed.
//!
//! Several lowest common ancestors (criss-cross histories) are merged pairwise into a
//! virtual base first, as git's recursive strategy does; where the ancestors themselves
//! conflict, the virtual base keeps the first ancestor's value.

use alloc::boxed::Box;
use alloc::collections::{BTreeMap, BTreeSet, BinaryHeap};
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::hash::ObjectId;
use crate::object::{Mode, Tree, TreeEntry};
use crate::path::{Path, branch_ref};
use crate::store::{CommitInfo, Op, Repo};

/// What a merge function is told about the merge it takes part in.
#[derive(Clone, Debug)]
pub struct MergeContext<'a> {
    pub path: &'a str,
    /// Committer times of the two commits being merged.
    pub ours_time: i64,
    pub theirs_time: i64,
}

/// Outcome of merging one value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The merged value (`None`: the key is removed).
    Value(Option<Vec<u8>>),
    /// The two changes cannot be reconciled; the string says why.
    Conflict(String),
}

/// A three-way merge function for values. Called only when both sides changed a value
/// differently; `None` means absent (never existed or removed).
pub trait MergeFn {
    fn merge(
        &self,
        ctx: &MergeContext<'_>,
        base: Option<&[u8]>,
        ours: Option<&[u8]>,
        theirs: Option<&[u8]>,
    ) -> Resolution;
}

impl<F> MergeFn for F
where
    F: Fn(&MergeContext<'_>, Option<&[u8]>, Option<&[u8]>, Option<&[u8]>) -> Resolution,
{
    fn merge(
        &self,
        ctx: &MergeContext<'_>,
        base: Option<&[u8]>,
        ours: Option<&[u8]>,
        theirs: Option<&[u8]>,
    ) -> Resolution {
        self(ctx, base, ours, theirs)
    }
}

/// Every concurrent change is a conflict.
pub struct Strict;

impl MergeFn for Strict {
    fn merge(
        &self,
        _: &MergeContext<'_>,
        _: Option<&[u8]>,
        _: Option<&[u8]>,
        _: Option<&[u8]>,
    ) -> Resolution {
        Resolution::Conflict("both sides changed the value".to_string())
    }
}

/// The side whose commit is newer wins (ours on a tie).
pub struct LastWriterWins;

impl MergeFn for LastWriterWins {
    fn merge(
        &self,
        ctx: &MergeContext<'_>,
        _: Option<&[u8]>,
        ours: Option<&[u8]>,
        theirs: Option<&[u8]>,
    ) -> Resolution {
        let winner = if ctx.theirs_time > ctx.ours_time {
            theirs
        } else {
            ours
        };
        Resolution::Value(winner.map(<[u8]>::to_vec))
    }
}

/// Values are decimal `i64` counters (absent = 0); both sides' increments are added.
pub struct Counter;

fn parse_counter(v: Option<&[u8]>) -> Option<i64> {
    match v {
        None => Some(0),
        Some(b) => core::str::from_utf8(b).ok()?.trim().parse().ok(),
    }
}

impl MergeFn for Counter {
    fn merge(
        &self,
        _: &MergeContext<'_>,
        base: Option<&[u8]>,
        ours: Option<&[u8]>,
        theirs: Option<&[u8]>,
    ) -> Resolution {
        let (Some(b), Some(o), Some(t)) = (
            parse_counter(base),
            parse_counter(ours),
            parse_counter(theirs),
        ) else {
            return Resolution::Conflict("not a decimal counter".to_string());
        };
        match o.checked_add(t).and_then(|s| s.checked_sub(b)) {
            Some(v) => Resolution::Value(Some(alloc::format!("{v}").into_bytes())),
            None => Resolution::Conflict("counter overflow".to_string()),
        }
    }
}

/// Values are sets of lines: elements added on either side are kept, elements removed on
/// either side are dropped. The result is sorted, one element per line.
pub struct LineSet;

fn lines(v: Option<&[u8]>) -> BTreeSet<&[u8]> {
    v.map(|b| b.split(|&c| c == b'\n').filter(|l| !l.is_empty()).collect())
        .unwrap_or_default()
}

impl MergeFn for LineSet {
    fn merge(
        &self,
        _: &MergeContext<'_>,
        base: Option<&[u8]>,
        ours: Option<&[u8]>,
        theirs: Option<&[u8]>,
    ) -> Resolution {
        let (b, o, t) = (lines(base), lines(ours), lines(theirs));
        let mut out = Vec::new();
        let all: BTreeSet<&[u8]> = o.union(&t).copied().collect();
        for l in all {
            let keep = if b.contains(l) {
                o.contains(l) && t.contains(l)
            } else {
                true
            };
            if keep {
                out.extend_from_slice(l);
                out.push(b'\n');
            }
        }
        Resolution::Value(Some(out))
    }
}

/// Choose a merge function by key prefix (longest prefix wins), with a default.
pub struct ByPath {
    rules: Vec<(Path, Box<dyn MergeFn>)>,
    default: Box<dyn MergeFn>,
}

impl ByPath {
    pub fn new(default: Box<dyn MergeFn>) -> Self {
        ByPath {
            rules: Vec::new(),
            default,
        }
    }

    pub fn with(mut self, prefix: &str, f: Box<dyn MergeFn>) -> Result<Self> {
        self.rules.push((Path::parse(prefix)?, f));
        Ok(self)
    }
}

impl MergeFn for ByPath {
    fn merge(
        &self,
        ctx: &MergeContext<'_>,
        base: Option<&[u8]>,
        ours: Option<&[u8]>,
        theirs: Option<&[u8]>,
    ) -> Resolution {
        let steps: Vec<&str> = ctx.path.split('/').collect();
        let best = self
            .rules
            .iter()
            .filter(|(p, _)| {
                p.len() <= steps.len() && p.steps().iter().zip(&steps).all(|(a, b)| a == b)
            })
            .max_by_key(|(p, _)| p.len());
        match best {
            Some((_, f)) => f.merge(ctx, base, ours, theirs),
            None => self.default.merge(ctx, base, ours, theirs),
        }
    }
}

/// A path both sides changed in ways that could not be merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conflict {
    pub path: String,
    pub base: Option<(Mode, ObjectId)>,
    pub ours: Option<(Mode, ObjectId)>,
    pub theirs: Option<(Mode, ObjectId)>,
    pub reason: String,
}

/// Result of a tree merge: the merged tree (holding our side at conflicting paths) and
/// the conflicts.
#[derive(Clone, Debug)]
pub struct TreeMerge {
    pub tree: ObjectId,
    pub conflicts: Vec<Conflict>,
}

/// What [`Repo::merge_into`] did.
#[derive(Debug)]
pub enum MergeOutcome {
    /// `theirs` was already contained in the branch.
    UpToDate,
    /// The branch was moved forward to `theirs` (no merge commit needed).
    FastForward(ObjectId),
    /// A merge commit with two parents was made.
    Merged(ObjectId),
    /// Conflicts must be resolved, then [`PendingMerge::commit`].
    Conflicts(PendingMerge),
}

/// A merge waiting for its conflicts to be resolved.
#[derive(Clone, Debug)]
pub struct PendingMerge {
    branch_ref: String,
    ours: ObjectId,
    theirs: ObjectId,
    tree: ObjectId,
    conflicts: Vec<Conflict>,
    resolutions: BTreeMap<String, Option<Vec<u8>>>,
}

impl PendingMerge {
    pub fn conflicts(&self) -> &[Conflict] {
        &self.conflicts
    }

    pub fn ours(&self) -> ObjectId {
        self.ours
    }

    pub fn theirs(&self) -> ObjectId {
        self.theirs
    }

    /// Number of conflicts without a resolution yet.
    pub fn unresolved(&self) -> usize {
        self.conflicts
            .iter()
            .filter(|c| !self.resolutions.contains_key(&c.path))
            .count()
    }

    /// Resolve the conflict at `path` with a value (`None`: remove the key).
    pub fn resolve(&mut self, path: &str, value: Option<Vec<u8>>) -> Result<()> {
        if !self.conflicts.iter().any(|c| c.path == path) {
            return Err(Error::InvalidPath(path.to_string()));
        }
        self.resolutions.insert(path.to_string(), value);
        Ok(())
    }

    /// Write the merge commit (parents: ours, theirs) and move the branch from `ours` to it
    /// with compare-and-swap.
    pub fn commit<B: Backend>(&self, repo: &mut Repo<B>, info: &CommitInfo) -> Result<ObjectId> {
        let n = self.unresolved();
        if n > 0 {
            return Err(Error::UnresolvedConflicts(n));
        }
        let mut ops = Vec::new();
        for (p, v) in &self.resolutions {
            let op = match v {
                Some(v) => Op::Set(v.clone()),
                None => Op::Remove,
            };
            ops.push((Path::parse(p)?, op));
        }
        ops.sort_by(|a, b| a.0.cmp(&b.0));
        let refs: Vec<(&[String], &Op)> = ops.iter().map(|(p, o)| (p.steps(), o)).collect();
        let tree = repo.apply_ops(Some(self.tree), &refs)?;
        let id = repo.make_commit(tree, alloc::vec![self.ours, self.theirs], info)?;
        repo.update_ref(&self.branch_ref, Some(self.ours), Some(id))?;
        Ok(id)
    }
}

type Entry = Option<(Mode, ObjectId)>;

const P1: u8 = 1;
const P2: u8 = 2;
const STALE: u8 = 4;
const RESULT: u8 = 8;

impl<B: Backend> Repo<B> {
    /// The lowest common ancestors of two commits (several for criss-cross histories).
    pub fn merge_bases(&self, a: &ObjectId, b: &ObjectId) -> Result<Vec<ObjectId>> {
        if a == b {
            return Ok(alloc::vec![*a]);
        }
        // Paint both histories walking newest-first; a commit reached from both sides is a
        // common ancestor and everything below it is stale.
        let mut flags: BTreeMap<ObjectId, u8> = BTreeMap::new();
        let mut queue = BinaryHeap::new();
        flags.insert(*a, P1);
        flags.insert(*b, P2);
        queue.push((self.read_commit(a)?.committer.time, *a));
        queue.push((self.read_commit(b)?.committer.time, *b));
        let mut results = Vec::new();
        while queue
            .iter()
            .any(|(_, id)| flags.get(id).is_some_and(|f| f & STALE == 0))
        {
            let Some((_, id)) = queue.pop() else { break };
            let mut f = flags.get(&id).copied().unwrap_or(0) & (P1 | P2 | STALE);
            if f & (P1 | P2) == (P1 | P2) && f & STALE == 0 {
                let entry = flags.entry(id).or_insert(0);
                if *entry & RESULT == 0 {
                    *entry |= RESULT;
                    results.push(id);
                }
                f |= STALE;
            }
            let c = self.read_commit(&id)?;
            for p in &c.parents {
                let pf = flags.entry(*p).or_insert(0);
                if *pf & f == f {
                    continue;
                }
                *pf |= f;
                queue.push((self.read_commit(p)?.committer.time, *p));
            }
        }
        // Drop results that are ancestors of other results.
        let mut lcas = Vec::new();
        for (i, r) in results.iter().enumerate() {
            let mut redundant = false;
            for (j, s) in results.iter().enumerate() {
                if i != j && self.is_ancestor(r, s)? {
                    redundant = true;
                    break;
                }
            }
            if !redundant {
                lcas.push(*r);
            }
        }
        Ok(lcas)
    }

    /// Three-way merge of trees (`None` = empty).
    pub fn merge_trees(
        &mut self,
        base: Option<ObjectId>,
        ours: ObjectId,
        theirs: ObjectId,
        f: &dyn MergeFn,
        times: (i64, i64),
    ) -> Result<TreeMerge> {
        let mut conflicts = Vec::new();
        let merged = self.merge_entry(
            "",
            base.map(|t| (Mode::Tree, t)),
            Some((Mode::Tree, ours)),
            Some((Mode::Tree, theirs)),
            f,
            times,
            &mut conflicts,
        )?;
        let tree = match merged {
            Some((Mode::Tree, id)) => id,
            _ => self.write_tree(Tree::new())?,
        };
        Ok(TreeMerge { tree, conflicts })
    }

    #[allow(clippy::too_many_arguments)]
    fn merge_entry(
        &mut self,
        path: &str,
        b: Entry,
        o: Entry,
        t: Entry,
        f: &dyn MergeFn,
        times: (i64, i64),
        conflicts: &mut Vec<Conflict>,
    ) -> Result<Entry> {
        if o == t || b == t {
            return Ok(o);
        }
        if b == o {
            return Ok(t);
        }
        let tree_or_none = |e: &Entry| matches!(e, None | Some((Mode::Tree, _)));
        let blob_or_none = |e: &Entry| e.is_none_or(|(m, _)| m.is_blob());
        if tree_or_none(&b) && tree_or_none(&o) && tree_or_none(&t) {
            return self.merge_subtrees(path, b, o, t, f, times, conflicts);
        }
        if blob_or_none(&b) && blob_or_none(&o) && blob_or_none(&t) {
            let read = |repo: &Self, e: &Entry| -> Result<Option<alloc::sync::Arc<[u8]>>> {
                match e {
                    Some((_, id)) => Ok(Some(repo.read_blob(id)?)),
                    None => Ok(None),
                }
            };
            let (bv, ov, tv) = (read(self, &b)?, read(self, &o)?, read(self, &t)?);
            let ctx = MergeContext {
                path,
                ours_time: times.0,
                theirs_time: times.1,
            };
            let same_content = ov == tv;
            let res = if same_content {
                // Only the modes differ: content merge is trivial.
                Resolution::Value(ov.as_deref().map(<[u8]>::to_vec))
            } else {
                f.merge(&ctx, bv.as_deref(), ov.as_deref(), tv.as_deref())
            };
            return match res {
                Resolution::Value(None) => Ok(None),
                Resolution::Value(Some(v)) => {
                    let base_mode = b.map(|e| e.0);
                    let mode = match (o, t) {
                        (Some((om, _)), _) if Some(om) != base_mode => om,
                        (_, Some((tm, _))) => tm,
                        (Some((om, _)), None) => om,
                        (None, None) => Mode::File,
                    };
                    let id = self.write_blob(&v)?;
                    Ok(Some((mode, id)))
                }
                Resolution::Conflict(reason) => {
                    conflicts.push(Conflict {
                        path: path.to_string(),
                        base: b,
                        ours: o,
                        theirs: t,
                        reason,
                    });
                    Ok(o)
                }
            };
        }
        conflicts.push(Conflict {
            path: path.to_string(),
            base: b,
            ours: o,
            theirs: t,
            reason: "a value and a node (or submodule) collide".to_string(),
        });
        Ok(o)
    }

    #[allow(clippy::too_many_arguments)]
    fn merge_subtrees(
        &mut self,
        path: &str,
        b: Entry,
        o: Entry,
        t: Entry,
        f: &dyn MergeFn,
        times: (i64, i64),
        conflicts: &mut Vec<Conflict>,
    ) -> Result<Entry> {
        let load = |repo: &Self, e: &Entry| -> Result<alloc::sync::Arc<Tree>> {
            match e {
                Some((_, id)) => repo.read_tree(id),
                None => Ok(alloc::sync::Arc::new(Tree::new())),
            }
        };
        let (bt, ot, tt) = (load(self, &b)?, load(self, &o)?, load(self, &t)?);
        let mut names: BTreeMap<Vec<u8>, [Entry; 3]> = BTreeMap::new();
        for (i, tree) in [&bt, &ot, &tt].into_iter().enumerate() {
            for e in tree.entries() {
                names.entry(e.name.clone()).or_default()[i] = Some((e.mode, e.id));
            }
        }
        let mut out = Vec::new();
        for (name, [cb, co, ct]) in names {
            let name_str = String::from_utf8_lossy(&name);
            let p = if path.is_empty() {
                name_str.into_owned()
            } else {
                alloc::format!("{path}/{name_str}")
            };
            if let Some((mode, id)) = self.merge_entry(&p, cb, co, ct, f, times, conflicts)? {
                out.push(TreeEntry { mode, name, id });
            }
        }
        if out.is_empty() {
            return Ok(None);
        }
        let tree = Tree::from_entries(out)?;
        Ok(Some((Mode::Tree, self.write_tree(tree)?)))
    }

    /// The base tree for merging two commits: the LCA's tree, a virtual merge of several
    /// LCAs, or `None` for unrelated histories.
    fn merge_base_tree(
        &mut self,
        ours: &ObjectId,
        theirs: &ObjectId,
        f: &dyn MergeFn,
        depth: usize,
    ) -> Result<Option<ObjectId>> {
        let lcas = self.merge_bases(ours, theirs)?;
        let Some(first) = lcas.first() else {
            return Ok(None);
        };
        let mut acc_tree = self.read_commit(first)?.tree;
        let acc_commit = *first;
        for other in &lcas[1..] {
            let base = if depth < 8 {
                self.merge_base_tree(&acc_commit, other, f, depth + 1)?
            } else {
                None
            };
            let (ot, tt) = (self.read_commit(&acc_commit)?, self.read_commit(other)?);
            let times = (ot.committer.time, tt.committer.time);
            let other_tree = tt.tree;
            acc_tree = self.merge_trees(base, acc_tree, other_tree, f, times)?.tree;
        }
        Ok(Some(acc_tree))
    }

    /// Merge two commits' trees over their common ancestry.
    pub fn merge_commits(
        &mut self,
        ours: &ObjectId,
        theirs: &ObjectId,
        f: &dyn MergeFn,
    ) -> Result<TreeMerge> {
        let base = self.merge_base_tree(ours, theirs, f, 0)?;
        let (oc, tc) = (self.read_commit(ours)?, self.read_commit(theirs)?);
        let times = (oc.committer.time, tc.committer.time);
        self.merge_trees(base, oc.tree, tc.tree, f, times)
    }

    /// Merge commit `theirs` into `branch`: fast-forward when possible, otherwise a
    /// merge commit, or the conflicts to resolve. The branch moves by compare-and-swap.
    pub fn merge_into(
        &mut self,
        branch: &str,
        theirs: &ObjectId,
        f: &dyn MergeFn,
        info: &CommitInfo,
    ) -> Result<MergeOutcome> {
        let branch_ref = branch_ref(branch)?;
        self.read_commit(theirs)?;
        let Some(ours) = self.backend.read_ref(&branch_ref)? else {
            self.update_ref(&branch_ref, None, Some(*theirs))?;
            return Ok(MergeOutcome::FastForward(*theirs));
        };
        if self.is_ancestor(theirs, &ours)? {
            return Ok(MergeOutcome::UpToDate);
        }
        if self.is_ancestor(&ours, theirs)? {
            self.update_ref(&branch_ref, Some(ours), Some(*theirs))?;
            return Ok(MergeOutcome::FastForward(*theirs));
        }
        let merged = self.merge_commits(&ours, theirs, f)?;
        let pending = PendingMerge {
            branch_ref,
            ours,
            theirs: *theirs,
            tree: merged.tree,
            conflicts: merged.conflicts,
            resolutions: BTreeMap::new(),
        };
        if pending.conflicts.is_empty() {
            return Ok(MergeOutcome::Merged(pending.commit(self, info)?));
        }
        Ok(MergeOutcome::Conflicts(pending))
    }
}
