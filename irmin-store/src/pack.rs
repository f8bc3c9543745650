//! Git pack files (version 2) and pack indexes (version 2): parsing, delta resolution,
//! writing (with OFS_DELTA compression), in `no_std + alloc`.
//!
//! Entry: a type+size varint header, then for OFS_DELTA a negative base offset, for
//! REF_DELTA a 20-byte base id, then a zlib stream. The pack ends with the SHA-1 of
//! everything before it. Indexes map ids to offsets (with CRC-32 of each raw entry).

use alloc::collections::BTreeMap;
use alloc::vec;
use alloc::vec::Vec;

use crate::backend::RawObject;
use crate::error::{CorruptKind, Error, Result};
use crate::hash::{ObjectId, Sha1Hasher, hash_object};
use crate::object::ObjectKind;
use crate::zlib;

pub const OFS_DELTA: u8 = 6;
pub const REF_DELTA: u8 = 7;

fn bad(what: &'static str) -> Error {
    Error::corrupt(CorruptKind::BadPack(what))
}

/// Parsed entry header: pack type (1-4, 6, 7), inflated size, header length.
pub fn parse_entry_header(data: &[u8]) -> Result<(u8, usize, usize)> {
    let first = *data.first().ok_or(Error::corrupt(CorruptKind::Truncated))?;
    let ty = (first >> 4) & 7;
    let mut size = (first & 15) as u64;
    let mut shift = 4;
    let mut i = 1;
    let mut byte = first;
    while byte & 0x80 != 0 {
        byte = *data.get(i).ok_or(Error::corrupt(CorruptKind::Truncated))?;
        if shift > 60 {
            return Err(bad("size overflow"));
        }
        size |= ((byte & 0x7f) as u64) << shift;
        shift += 7;
        i += 1;
    }
    let size = usize::try_from(size).map_err(|_| bad("size overflow"))?;
    Ok((ty, size, i))
}

fn encode_entry_header(ty: u8, size: usize, out: &mut Vec<u8>) {
    let mut s = size as u64;
    let mut b = (ty << 4) | (s & 15) as u8;
    s >>= 4;
    while s != 0 {
        out.push(b | 0x80);
        b = (s & 0x7f) as u8;
        s >>= 7;
    }
    out.push(b);
}

/// Decode the OFS_DELTA negative offset; returns (distance, bytes used).
pub fn parse_ofs(data: &[u8]) -> Result<(u64, usize)> {
    let mut i = 0;
    let mut b = *data.first().ok_or(Error::corrupt(CorruptKind::Truncated))?;
    let mut v = (b & 0x7f) as u64;
    while b & 0x80 != 0 {
        i += 1;
        b = *data.get(i).ok_or(Error::corrupt(CorruptKind::Truncated))?;
        if v > (u64::MAX >> 8) {
            return Err(bad("offset overflow"));
        }
        v = ((v + 1) << 7) | (b & 0x7f) as u64;
    }
    Ok((v, i + 1))
}

fn encode_ofs(mut v: u64, out: &mut Vec<u8>) {
    let mut buf = [0u8; 10];
    let mut i = 9;
    buf[i] = (v & 0x7f) as u8;
    v >>= 7;
    while v != 0 {
        v -= 1;
        i -= 1;
        buf[i] = 0x80 | (v & 0x7f) as u8;
        v >>= 7;
    }
    out.extend_from_slice(&buf[i..]);
}

fn delta_varint(data: &[u8], pos: &mut usize) -> Result<usize> {
    let mut v: u64 = 0;
    let mut shift = 0;
    loop {
        let b = *data
            .get(*pos)
            .ok_or(Error::corrupt(CorruptKind::BadDelta))?;
        *pos += 1;
        if shift > 56 {
            return Err(Error::corrupt(CorruptKind::BadDelta));
        }
        v |= ((b & 0x7f) as u64) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    usize::try_from(v).map_err(|_| Error::corrupt(CorruptKind::BadDelta))
}

/// Apply a git delta to `base`. Every copy is bounds-checked.
pub fn apply_delta(base: &[u8], delta: &[u8]) -> Result<Vec<u8>> {
    let bad = || Error::corrupt(CorruptKind::BadDelta);
    let mut pos = 0;
    let base_len = delta_varint(delta, &mut pos)?;
    let result_len = delta_varint(delta, &mut pos)?;
    if base_len != base.len() {
        return Err(bad());
    }
    // Do not trust the declared size for the allocation beyond what the delta can produce.
    let mut out = Vec::with_capacity(result_len.min(delta.len().saturating_mul(128) + base.len()));
    while pos < delta.len() {
        let op = delta[pos];
        pos += 1;
        if op & 0x80 != 0 {
            let mut off: usize = 0;
            let mut size: usize = 0;
            for i in 0..4 {
                if op & (1 << i) != 0 {
                    off |= (*delta.get(pos).ok_or_else(bad)? as usize) << (8 * i);
                    pos += 1;
                }
            }
            for i in 0..3 {
                if op & (0x10 << i) != 0 {
                    size |= (*delta.get(pos).ok_or_else(bad)? as usize) << (8 * i);
                    pos += 1;
                }
            }
            if size == 0 {
                size = 0x10000;
            }
            let end = off.checked_add(size).ok_or_else(bad)?;
            if end > base.len() || out.len() + size > result_len {
                return Err(bad());
            }
            out.extend_from_slice(&base[off..end]);
        } else if op != 0 {
            let n = op as usize;
            let lit = delta.get(pos..pos + n).ok_or_else(bad)?;
            if out.len() + n > result_len {
                return Err(bad());
            }
            out.extend_from_slice(lit);
            pos += n;
        } else {
            return Err(bad());
        }
    }
    if out.len() != result_len {
        return Err(bad());
    }
    Ok(out)
}

/// Compute a delta turning `base` into `target`, or `None` if it would not be smaller
/// than half the target. Greedy matcher over a 16-byte block index of `base`.
pub fn make_delta(base: &[u8], target: &[u8]) -> Option<Vec<u8>> {
    const BLOCK: usize = 16;
    if target.len() < 32 || base.len() < BLOCK {
        return None;
    }
    let mut index: hashbrown::HashMap<&[u8], usize> = hashbrown::HashMap::new();
    let mut i = 0;
    while i + BLOCK <= base.len() {
        index.entry(&base[i..i + BLOCK]).or_insert(i);
        i += BLOCK;
    }
    let mut out = Vec::with_capacity(target.len() / 4);
    for v in [base.len(), target.len()] {
        let mut v = v;
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        }
    }
    let limit = target.len() / 2;
    let mut lit_start = 0;
    let mut j = 0;
    let flush_literal = |out: &mut Vec<u8>, lit: &[u8]| {
        for chunk in lit.chunks(127) {
            out.push(chunk.len() as u8);
            out.extend_from_slice(chunk);
        }
    };
    while j + BLOCK <= target.len() {
        let Some(&bpos) = index.get(&target[j..j + BLOCK]) else {
            j += 1;
            continue;
        };
        // Extend the match forwards.
        let mut len = BLOCK;
        while bpos + len < base.len()
            && j + len < target.len()
            && base[bpos + len] == target[j + len]
        {
            len += 1;
        }
        // And backwards into the pending literal.
        let mut back = 0;
        while back < j - lit_start && back < bpos && base[bpos - back - 1] == target[j - back - 1] {
            back += 1;
        }
        let (mut off, start) = (bpos - back, j - back);
        let mut remaining = len + back;
        flush_literal(&mut out, &target[lit_start..start]);
        while remaining > 0 {
            let n = remaining.min(0xff_ffff);
            let mut op = 0x80u8;
            let mut args = [0u8; 7];
            let mut na = 0;
            for k in 0..4 {
                let byte = ((off >> (8 * k)) & 0xff) as u8;
                if byte != 0 {
                    op |= 1 << k;
                    args[na] = byte;
                    na += 1;
                }
            }
            for k in 0..3 {
                let byte = ((n >> (8 * k)) & 0xff) as u8;
                if byte != 0 {
                    op |= 0x10 << k;
                    args[na] = byte;
                    na += 1;
                }
            }
            out.push(op);
            out.extend_from_slice(&args[..na]);
            off += n;
            remaining -= n;
        }
        j = start + len + back;
        lit_start = j;
        if out.len() > limit {
            return None;
        }
    }
    flush_literal(&mut out, &target[lit_start..]);
    if out.len() > limit { None } else { Some(out) }
}

/// A parsed `.idx` version 2 file.
#[derive(Clone, Debug)]
pub struct PackIndex {
    ids: Vec<ObjectId>,
    offsets: Vec<u64>,
    crcs: Vec<u32>,
    pub pack_checksum: ObjectId,
}

impl PackIndex {
    pub fn parse(data: &[u8]) -> Result<Self> {
        if data.len() < 8 + 1024 + 40 || data[..4] != [0xff, b't', b'O', b'c'] {
            return Err(bad("not an idx v2"));
        }
        if u32::from_be_bytes([data[4], data[5], data[6], data[7]]) != 2 {
            return Err(bad("idx version"));
        }
        let mut h = Sha1Hasher::new();
        h.update(&data[..data.len() - 20]);
        if h.finish().as_bytes() != &data[data.len() - 20..] {
            return Err(Error::corrupt(CorruptKind::BadChecksum));
        }
        let be32 = |o: usize| -> Result<u32> {
            let b = data
                .get(o..o + 4)
                .ok_or(Error::corrupt(CorruptKind::Truncated))?;
            Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        };
        let n = be32(8 + 255 * 4)? as usize;
        let mut prev = 0;
        for i in 0..256 {
            let v = be32(8 + i * 4)?;
            if v < prev {
                return Err(bad("fanout not monotonic"));
            }
            prev = v;
        }
        let ids_at = 8 + 1024;
        let crc_at = ids_at + n * 20;
        let off_at = crc_at + n * 4;
        let large_at = off_at + n * 4;
        if data.len() < large_at + 40 {
            return Err(Error::corrupt(CorruptKind::Truncated));
        }
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            ids.push(ObjectId::from_bytes(
                &data[ids_at + i * 20..ids_at + i * 20 + 20],
            )?);
        }
        if ids.windows(2).any(|w| w[0] >= w[1]) {
            return Err(bad("ids not sorted"));
        }
        let mut crcs = Vec::with_capacity(n);
        let mut offsets = Vec::with_capacity(n);
        for i in 0..n {
            crcs.push(be32(crc_at + i * 4)?);
            let o = be32(off_at + i * 4)?;
            let off = if o & 0x8000_0000 != 0 {
                let k = (o & 0x7fff_ffff) as usize;
                let at = large_at + k * 8;
                let b = data
                    .get(at..at + 8)
                    .ok_or(Error::corrupt(CorruptKind::Truncated))?;
                if at + 8 > data.len() - 40 {
                    return Err(Error::corrupt(CorruptKind::Truncated));
                }
                u64::from_be_bytes(b.try_into().map_err(|_| bad("large offset"))?)
            } else {
                o as u64
            };
            offsets.push(off);
        }
        let pack_checksum = ObjectId::from_bytes(&data[data.len() - 40..data.len() - 20])?;
        Ok(PackIndex {
            ids,
            offsets,
            crcs,
            pack_checksum,
        })
    }

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn lookup(&self, id: &ObjectId) -> Option<u64> {
        self.ids.binary_search(id).ok().map(|i| self.offsets[i])
    }

    pub fn ids(&self) -> &[ObjectId] {
        &self.ids
    }

    /// (id, offset, crc) for every entry.
    pub fn entries(&self) -> impl Iterator<Item = (ObjectId, u64, u32)> + '_ {
        (0..self.ids.len()).map(|i| (self.ids[i], self.offsets[i], self.crcs[i]))
    }
}

/// Write an idx v2 for `entries` (id, offset, crc) of the pack with trailer `pack_checksum`.
pub fn write_index(entries: &mut [(ObjectId, u64, u32)], pack_checksum: &ObjectId) -> Vec<u8> {
    entries.sort_by_key(|e| e.0);
    let mut out = Vec::with_capacity(1072 + entries.len() * 28);
    out.extend_from_slice(&[0xff, b't', b'O', b'c', 0, 0, 0, 2]);
    let mut fan = [0u32; 256];
    for (id, _, _) in entries.iter() {
        fan[id.0[0] as usize] += 1;
    }
    let mut acc = 0;
    for f in fan {
        acc += f;
        out.extend_from_slice(&acc.to_be_bytes());
    }
    for (id, _, _) in entries.iter() {
        out.extend_from_slice(id.as_bytes());
    }
    for (_, _, crc) in entries.iter() {
        out.extend_from_slice(&crc.to_be_bytes());
    }
    let mut large = Vec::new();
    for (_, off, _) in entries.iter() {
        if *off < 0x8000_0000 {
            out.extend_from_slice(&(*off as u32).to_be_bytes());
        } else {
            out.extend_from_slice(&(0x8000_0000u32 | large.len() as u32).to_be_bytes());
            large.push(*off);
        }
    }
    for off in large {
        out.extend_from_slice(&off.to_be_bytes());
    }
    out.extend_from_slice(pack_checksum.as_bytes());
    let mut h = Sha1Hasher::new();
    h.update(&out);
    let sum = h.finish();
    out.extend_from_slice(sum.as_bytes());
    out
}

/// One object to pack. `group` clusters objects likely to delta well (e.g. same path);
/// objects of one group are written consecutively and may delta against each other.
pub struct PackInput {
    pub id: ObjectId,
    pub kind: ObjectKind,
    pub data: Vec<u8>,
    pub group: u64,
}

/// A written pack: its bytes, the idx entries and the trailer checksum.
pub struct WrittenPack {
    pub data: Vec<u8>,
    pub entries: Vec<(ObjectId, u64, u32)>,
    pub checksum: ObjectId,
}

/// Maximum delta chain length written (git's default `pack.depth` is 50).
const MAX_DEPTH: u32 = 50;

/// Write a pack of `objects`. With `deltas`, an object may be stored as an OFS_DELTA
/// against the previous objects (window of a few) of the same kind and group.
pub fn write_pack(mut objects: Vec<PackInput>, deltas: bool) -> WrittenPack {
    // Group, then larger first: git's heuristic (deltas that remove data are cheap).
    objects.sort_by(|a, b| {
        (a.kind as u8, a.group, core::cmp::Reverse(a.data.len())).cmp(&(
            b.kind as u8,
            b.group,
            core::cmp::Reverse(b.data.len()),
        ))
    });
    let mut out = Vec::new();
    out.extend_from_slice(b"PACK");
    out.extend_from_slice(&2u32.to_be_bytes());
    out.extend_from_slice(&(objects.len() as u32).to_be_bytes());
    let mut entries = Vec::with_capacity(objects.len());
    const WINDOW: usize = 4;
    // (index into objects, offset, depth) of recent objects in the same kind+group.
    let mut window: Vec<(usize, u64, u32)> = Vec::new();
    for i in 0..objects.len() {
        let o = &objects[i];
        if i > 0 && (objects[i - 1].kind != o.kind || objects[i - 1].group != o.group) {
            window.clear();
        }
        let offset = out.len() as u64;
        let start = out.len();
        let mut best: Option<(Vec<u8>, u64, u32)> = None;
        if deltas && o.kind != ObjectKind::Tag {
            for &(bi, boff, bdepth) in window.iter().rev() {
                if bdepth >= MAX_DEPTH {
                    continue;
                }
                if let Some(d) = make_delta(&objects[bi].data, &o.data) {
                    if best.as_ref().is_none_or(|(bd, _, _)| d.len() < bd.len()) {
                        best = Some((d, boff, bdepth + 1));
                    }
                }
            }
        }
        let depth = match best {
            Some((delta, base_off, depth)) => {
                encode_entry_header(OFS_DELTA, delta.len(), &mut out);
                encode_ofs(offset - base_off, &mut out);
                out.extend_from_slice(&zlib::deflate(&[&delta], zlib::FAST));
                depth
            }
            None => {
                encode_entry_header(o.kind as u8, o.data.len(), &mut out);
                out.extend_from_slice(&zlib::deflate(&[&o.data], zlib::FAST));
                0
            }
        };
        let crc = crc32fast::hash(&out[start..]);
        entries.push((o.id, offset, crc));
        window.push((i, offset, depth));
        if window.len() > WINDOW {
            window.remove(0);
        }
    }
    let mut h = Sha1Hasher::new();
    h.update(&out);
    let checksum = h.finish();
    out.extend_from_slice(checksum.as_bytes());
    WrittenPack {
        data: out,
        entries,
        checksum,
    }
}

/// Every object of a pack stream, resolved: (id, object, offset, crc).
pub struct IndexedPack {
    pub objects: Vec<(ObjectId, RawObject, u64, u32)>,
    pub checksum: ObjectId,
}

/// Parse and resolve a whole pack held in memory (as received over the wire). REF_DELTA
/// bases outside the pack (thin packs) are fetched with `external`.
pub fn index_pack(
    data: &[u8],
    external: &dyn Fn(&ObjectId) -> Result<Option<RawObject>>,
) -> Result<IndexedPack> {
    if data.len() < 32 || &data[..4] != b"PACK" {
        return Err(bad("no PACK signature"));
    }
    let version = u32::from_be_bytes([data[4], data[5], data[6], data[7]]);
    if version != 2 && version != 3 {
        return Err(bad("pack version"));
    }
    let count = u32::from_be_bytes([data[8], data[9], data[10], data[11]]) as usize;
    let body_end = data.len() - 20;
    let mut h = Sha1Hasher::new();
    h.update(&data[..body_end]);
    let checksum = h.finish();
    if checksum.as_bytes() != &data[body_end..] {
        return Err(Error::corrupt(CorruptKind::BadChecksum));
    }
    enum Pending {
        Full(ObjectKind, Vec<u8>),
        Ofs(u64, Vec<u8>),
        Ref(ObjectId, Vec<u8>),
    }
    let mut raw: Vec<(u64, u32, Pending)> = Vec::with_capacity(count.min(1 << 20));
    let mut pos = 12;
    for _ in 0..count {
        if pos >= body_end {
            return Err(Error::corrupt(CorruptKind::Truncated));
        }
        let start = pos;
        let (ty, size, hl) = parse_entry_header(&data[pos..body_end])?;
        pos += hl;
        let pending = match ty {
            1..=4 => {
                let (obj, used) = zlib::inflate_exact(&data[pos..body_end], size)?;
                pos += used;
                let kind = ObjectKind::from_pack_type(ty).ok_or_else(|| bad("type"))?;
                Pending::Full(kind, obj)
            }
            OFS_DELTA => {
                let (dist, used) = parse_ofs(&data[pos..body_end])?;
                pos += used;
                let base = (start as u64)
                    .checked_sub(dist)
                    .ok_or_else(|| bad("ofs base"))?;
                let (d, used) = zlib::inflate_exact(&data[pos..body_end], size)?;
                pos += used;
                Pending::Ofs(base, d)
            }
            REF_DELTA => {
                let id = ObjectId::from_bytes(
                    data.get(pos..pos + 20)
                        .ok_or(Error::corrupt(CorruptKind::Truncated))?,
                )?;
                pos += 20;
                let (d, used) = zlib::inflate_exact(&data[pos..body_end], size)?;
                pos += used;
                Pending::Ref(id, d)
            }
            _ => return Err(bad("entry type")),
        };
        let crc = crc32fast::hash(&data[start..pos]);
        raw.push((start as u64, crc, pending));
    }
    if pos != body_end {
        return Err(bad("trailing data"));
    }
    // Resolve deltas: repeat passes until no progress (bases may come after deltas for
    // REF_DELTA in thin packs).
    let mut by_offset: BTreeMap<u64, usize> = BTreeMap::new();
    for (i, (off, _, _)) in raw.iter().enumerate() {
        by_offset.insert(*off, i);
    }
    let mut resolved: Vec<Option<(ObjectKind, Vec<u8>, ObjectId)>> = vec![None; raw.len()];
    let mut by_id: BTreeMap<ObjectId, usize> = BTreeMap::new();
    for (i, (_, _, p)) in raw.iter().enumerate() {
        if let Pending::Full(kind, d) = p {
            let id = hash_object(*kind, d);
            by_id.insert(id, i);
            resolved[i] = Some((*kind, d.clone(), id));
        }
    }
    loop {
        let mut progress = false;
        let mut missing = false;
        for i in 0..raw.len() {
            if resolved[i].is_some() {
                continue;
            }
            let (base, delta): (Option<(ObjectKind, Vec<u8>)>, &Vec<u8>) = match &raw[i].2 {
                Pending::Full(..) => continue,
                Pending::Ofs(off, d) => {
                    let bi = *by_offset
                        .get(off)
                        .ok_or_else(|| bad("ofs base not an entry"))?;
                    (resolved[bi].as_ref().map(|(k, b, _)| (*k, b.clone())), d)
                }
                Pending::Ref(id, d) => match by_id.get(id) {
                    Some(&bi) => (resolved[bi].as_ref().map(|(k, b, _)| (*k, b.clone())), d),
                    None => (external(id)?.map(|o| (o.kind, o.data)), d),
                },
            };
            match base {
                Some((kind, b)) => {
                    let obj = apply_delta(&b, delta)?;
                    let id = hash_object(kind, &obj);
                    by_id.insert(id, i);
                    resolved[i] = Some((kind, obj, id));
                    progress = true;
                }
                None => missing = true,
            }
        }
        if !missing {
            break;
        }
        if !progress {
            return Err(bad("delta base missing"));
        }
    }
    let mut objects = Vec::with_capacity(raw.len());
    for (i, (off, crc, _)) in raw.into_iter().enumerate() {
        let (kind, data, id) = resolved[i].take().ok_or_else(|| bad("unresolved"))?;
        objects.push((id, RawObject { kind, data }, off, crc));
    }
    Ok(IndexedPack { objects, checksum })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delta_roundtrip() {
        let base: Vec<u8> = (0..2000u32).flat_map(|i| i.to_le_bytes()).collect();
        let mut target = base.clone();
        target[4000..4010].copy_from_slice(b"CHANGED!!!");
        target.extend_from_slice(b"tail");
        let d = make_delta(&base, &target).unwrap();
        assert!(d.len() < 100, "{}", d.len());
        assert_eq!(apply_delta(&base, &d).unwrap(), target);
        assert!(apply_delta(&base[1..], &d).is_err());
        // Copy past the end of the base must fail, not panic.
        assert!(apply_delta(b"abc", &[3, 10, 0x91, 0, 10]).is_err());
    }

    #[test]
    fn ofs_roundtrip() {
        for v in [0u64, 1, 127, 128, 16511, 16512, 1 << 40] {
            let mut out = Vec::new();
            encode_ofs(v, &mut out);
            assert_eq!(parse_ofs(&out).unwrap(), (v, out.len()));
        }
    }

    #[test]
    fn pack_write_index_roundtrip() {
        let mut objs = Vec::new();
        let mut prev = Vec::new();
        for i in 0..20u32 {
            let mut data = prev.clone();
            data.extend_from_slice(alloc::format!("line {i} of a growing file\n").as_bytes());
            prev = data.clone();
            let id = hash_object(ObjectKind::Blob, &data);
            objs.push(PackInput {
                id,
                kind: ObjectKind::Blob,
                data,
                group: 7,
            });
        }
        let expected: BTreeMap<ObjectId, Vec<u8>> =
            objs.iter().map(|o| (o.id, o.data.clone())).collect();
        let packed = write_pack(objs, true);
        let ix = index_pack(&packed.data, &|_| Ok(None)).unwrap();
        assert_eq!(ix.objects.len(), 20);
        for (id, obj, off, crc) in &ix.objects {
            assert_eq!(&obj.data, &expected[id]);
            assert!(packed.entries.contains(&(*id, *off, *crc)));
        }
        let mut entries = packed.entries.clone();
        let idx = PackIndex::parse(&write_index(&mut entries, &packed.checksum)).unwrap();
        assert_eq!(idx.len(), 20);
        let mut corrupt = packed.data.clone();
        corrupt[40] ^= 1;
        assert!(index_pack(&corrupt, &|_| Ok(None)).is_err());
    }
}
