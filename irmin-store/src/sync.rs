//! Object graph walks shared by repacking and sync (`no_std`): which objects a set of
//! commits needs, minus what the other side already has.

use alloc::collections::BTreeSet;
use alloc::vec::Vec;

use crate::backend::{Backend, RawObject};
use crate::error::{Error, Result};
use crate::hash::ObjectId;
use crate::object::{Commit, Mode, ObjectKind, Tag, Tree};
use crate::path::branch_ref;
use crate::store::Repo;

fn read<B: Backend + ?Sized>(b: &B, id: &ObjectId) -> Result<RawObject> {
    b.read_object(id)?.ok_or(Error::MissingObject(*id))
}

/// FNV-1a of a path: objects at the same path go into the same delta group.
fn path_group(path: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in path {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h | 1
}

/// Every commit reachable from `from` (inclusive) that the backend has.
pub fn ancestors<B: Backend + ?Sized>(b: &B, from: &[ObjectId]) -> Result<BTreeSet<ObjectId>> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<ObjectId> = from.to_vec();
    while let Some(id) = stack.pop() {
        if seen.contains(&id) {
            continue;
        }
        let Some(raw) = b.read_object(&id)? else {
            continue;
        };
        match raw.kind {
            ObjectKind::Commit => {
                let c = Commit::decode(&raw.data).map_err(|e| e.with_id(id))?;
                seen.insert(id);
                stack.extend(c.parents);
            }
            ObjectKind::Tag => {
                stack.push(Tag::decode(&raw.data).map_err(|e| e.with_id(id))?.object)
            }
            _ => {}
        }
    }
    Ok(seen)
}

/// Objects reachable from `roots` that are not reachable from `exclude` (commits the
/// other side has; those not present locally are ignored). Returns each object with a
/// delta-group hint. Trees of excluded edge commits are treated as present too.
pub fn reachable<B: Backend + ?Sized>(
    b: &B,
    roots: &[ObjectId],
    exclude: &BTreeSet<ObjectId>,
) -> Result<Vec<(ObjectId, RawObject, u64)>> {
    let excl: Vec<ObjectId> = exclude.iter().copied().collect();
    let have_commits = ancestors(b, &excl)?;
    let mut have_trees: BTreeSet<ObjectId> = BTreeSet::new();
    for c in have_commits.iter().filter(|c| exclude.contains(c)) {
        let raw = read(b, c)?;
        let commit = Commit::decode(&raw.data).map_err(|e| e.with_id(*c))?;
        mark_tree(b, &commit.tree, &mut have_trees)?;
    }
    let mut seen: BTreeSet<ObjectId> = BTreeSet::new();
    let mut out = Vec::new();
    let mut commits: Vec<ObjectId> = roots.to_vec();
    let mut trees: Vec<(ObjectId, Vec<u8>)> = Vec::new();
    while let Some(id) = commits.pop() {
        if have_commits.contains(&id) || !seen.insert(id) {
            continue;
        }
        let raw = read(b, &id)?;
        match raw.kind {
            ObjectKind::Commit => {
                let c = Commit::decode(&raw.data).map_err(|e| e.with_id(id))?;
                commits.extend(c.parents.iter().copied());
                trees.push((c.tree, Vec::new()));
            }
            ObjectKind::Tag => {
                let t = Tag::decode(&raw.data).map_err(|e| e.with_id(id))?;
                match t.kind {
                    ObjectKind::Commit | ObjectKind::Tag => commits.push(t.object),
                    ObjectKind::Tree => trees.push((t.object, Vec::new())),
                    ObjectKind::Blob => {
                        if seen.insert(t.object) {
                            out.push((t.object, read(b, &t.object)?, 0));
                        }
                    }
                }
            }
            ObjectKind::Tree => trees.push((id, Vec::new())),
            ObjectKind::Blob => {}
        }
        let group = if raw.kind == ObjectKind::Blob { 3 } else { 0 };
        out.push((id, raw, group));
    }
    while let Some((id, path)) = trees.pop() {
        if have_trees.contains(&id) || !seen.insert(id) {
            continue;
        }
        let raw = read(b, &id)?;
        if raw.kind != ObjectKind::Tree {
            return Err(Error::WrongKind {
                id,
                expected: ObjectKind::Tree,
                actual: raw.kind,
            });
        }
        let t = Tree::decode(&raw.data).map_err(|e| e.with_id(id))?;
        for e in t.entries() {
            let mut p = path.clone();
            p.push(b'/');
            p.extend_from_slice(&e.name);
            match e.mode {
                Mode::Tree => trees.push((e.id, p)),
                Mode::Gitlink => {}
                _ => {
                    if !have_trees.contains(&e.id) && seen.insert(e.id) {
                        out.push((e.id, read(b, &e.id)?, path_group(&p)));
                    }
                }
            }
        }
        out.push((id, raw, path_group(&path)));
    }
    Ok(out)
}

/// Mark a tree and everything below it (trees and blobs) as present.
fn mark_tree<B: Backend + ?Sized>(
    b: &B,
    id: &ObjectId,
    marked: &mut BTreeSet<ObjectId>,
) -> Result<()> {
    if !marked.insert(*id) {
        return Ok(());
    }
    let Some(raw) = b.read_object(id)? else {
        return Ok(());
    };
    let t = Tree::decode(&raw.data).map_err(|e| e.with_id(*id))?;
    for e in t.entries() {
        match e.mode {
            Mode::Tree => mark_tree(b, &e.id, marked)?,
            Mode::Gitlink => {}
            _ => {
                marked.insert(e.id);
            }
        }
    }
    Ok(())
}

/// Copy the objects `src` has under `roots` that `dst` lacks (`dst_refs`: what `dst` has).
fn copy_objects<A: Backend, B: Backend>(
    src: &Repo<A>,
    dst: &mut Repo<B>,
    roots: &[ObjectId],
) -> Result<usize> {
    let mut exclude = BTreeSet::new();
    for (_, id) in dst.backend.list_refs("refs/")? {
        if src.backend.has_object(&id)? {
            exclude.insert(id);
        }
    }
    let objects = reachable(&src.backend, roots, &exclude)?;
    let n = objects.len();
    for (id, obj, _) in objects {
        dst.backend.write_object(&id, obj.kind, &obj.data)?;
    }
    Ok(n)
}

/// Store-to-store fetch (any two backends, `no_std`): every branch of `src` lands in
/// `dst` as `refs/remotes/<remote_name>/<branch>`. Returns the branches copied.
pub fn fetch_from<A: Backend, B: Backend>(
    dst: &mut Repo<B>,
    src: &Repo<A>,
    remote_name: &str,
) -> Result<Vec<(alloc::string::String, ObjectId)>> {
    let branches = src.branches()?;
    let roots: Vec<ObjectId> = branches.iter().map(|(_, id)| *id).collect();
    copy_objects(src, dst, &roots)?;
    for (name, id) in &branches {
        let local = alloc::format!("refs/remotes/{remote_name}/{name}");
        let current = dst.backend.read_ref(&local)?;
        if current != Some(*id) {
            dst.update_ref(&local, current, Some(*id))?;
        }
    }
    Ok(branches)
}

/// Store-to-store push of `branch` from `src` into `dst`, fast-forward only unless
/// `force` (`Error::RefChanged` otherwise). The update is a CAS on `dst`'s branch.
pub fn push_to<A: Backend, B: Backend>(
    src: &Repo<A>,
    dst: &mut Repo<B>,
    branch: &str,
    force: bool,
) -> Result<ObjectId> {
    let name = branch_ref(branch)?;
    let new = src
        .backend
        .read_ref(&name)?
        .ok_or(Error::RefNotFound(name.clone()))?;
    let old = dst.backend.read_ref(&name)?;
    if let Some(old) = old {
        if !force && (!src.backend.has_object(&old)? || !src.is_ancestor(&old, &new)?) {
            return Err(Error::RefChanged {
                name,
                expected: Some(old),
                actual: Some(new),
            });
        }
    }
    copy_objects(src, dst, &[new])?;
    dst.update_ref(&name, old, Some(new))?;
    Ok(new)
}
