//! Git's object model, byte-exact: blobs, trees, commits (and raw tags).
//!
//! Encoders produce exactly what `git` produces; decoders are strict (they reject
//! what `git fsck --strict` rejects) so that anything we accept we can re-encode to the
//! same id.

use alloc::string::String;
use alloc::vec::Vec;
use core::cmp::Ordering;
use core::fmt;

use crate::error::{CorruptKind, Error, Result};
use crate::hash::ObjectId;

/// Object kinds, numbered as in pack files.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ObjectKind {
    Commit = 1,
    Tree = 2,
    Blob = 3,
    Tag = 4,
}

impl ObjectKind {
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Commit => "commit",
            ObjectKind::Tree => "tree",
            ObjectKind::Blob => "blob",
            ObjectKind::Tag => "tag",
        }
    }

    pub fn from_name(name: &[u8]) -> Option<Self> {
        match name {
            b"commit" => Some(ObjectKind::Commit),
            b"tree" => Some(ObjectKind::Tree),
            b"blob" => Some(ObjectKind::Blob),
            b"tag" => Some(ObjectKind::Tag),
            _ => None,
        }
    }

    pub fn from_pack_type(t: u8) -> Option<Self> {
        match t {
            1 => Some(ObjectKind::Commit),
            2 => Some(ObjectKind::Tree),
            3 => Some(ObjectKind::Blob),
            4 => Some(ObjectKind::Tag),
            _ => None,
        }
    }
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parse a loose-object header `<kind> <len>\0`, returning kind, length and header size.
pub fn parse_object_header(data: &[u8]) -> Result<(ObjectKind, usize, usize)> {
    let bad = || Error::corrupt(CorruptKind::BadHeader);
    let space = data
        .iter()
        .take(8)
        .position(|&b| b == b' ')
        .ok_or_else(bad)?;
    let kind = ObjectKind::from_name(&data[..space]).ok_or_else(bad)?;
    let rest = &data[space + 1..];
    let nul = rest.iter().take(21).position(|&b| b == 0).ok_or_else(bad)?;
    let len = parse_decimal(&rest[..nul]).ok_or_else(bad)?;
    Ok((kind, len as usize, space + 1 + nul + 1))
}

fn parse_decimal(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((d - b'0') as u64)?;
    }
    Some(v)
}

/// Tree entry modes git writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `100644`
    File,
    /// `100755`
    Executable,
    /// `40000` (git writes it without the leading zero)
    Tree,
    /// `120000`
    Symlink,
    /// `160000`: a submodule commit
    Gitlink,
}

impl Mode {
    pub fn as_bytes(self) -> &'static [u8] {
        match self {
            Mode::File => b"100644",
            Mode::Executable => b"100755",
            Mode::Tree => b"40000",
            Mode::Symlink => b"120000",
            Mode::Gitlink => b"160000",
        }
    }

    pub fn from_bytes(b: &[u8]) -> Result<Self> {
        match b {
            b"100644" => Ok(Mode::File),
            b"100755" => Ok(Mode::Executable),
            b"40000" => Ok(Mode::Tree),
            b"120000" => Ok(Mode::Symlink),
            b"160000" => Ok(Mode::Gitlink),
            _ => Err(Error::corrupt(CorruptKind::BadMode)),
        }
    }

    pub fn is_tree(self) -> bool {
        self == Mode::Tree
    }

    /// Whether the entry points at a blob (file, executable or symlink).
    pub fn is_blob(self) -> bool {
        matches!(self, Mode::File | Mode::Executable | Mode::Symlink)
    }
}

/// Whether `name` may appear as a tree entry name (what `git fsck --strict` accepts).
pub fn valid_entry_name(name: &[u8]) -> bool {
    !(name.is_empty()
        || name == b"."
        || name == b".."
        || name.eq_ignore_ascii_case(b".git")
        || name.contains(&b'/')
        || name.contains(&0))
}

/// One entry of a tree.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TreeEntry {
    pub mode: Mode,
    pub name: Vec<u8>,
    pub id: ObjectId,
}

/// Git's tree order: byte order of names, where a tree's name sorts as if it ended in `/`.
pub fn entry_order(a: &[u8], a_tree: bool, b: &[u8], b_tree: bool) -> Ordering {
    let n = a.len().min(b.len());
    match a[..n].cmp(&b[..n]) {
        Ordering::Equal => {}
        o => return o,
    }
    let ca = if a.len() > n {
        a[n]
    } else if a_tree {
        b'/'
    } else {
        0
    };
    let cb = if b.len() > n {
        b[n]
    } else if b_tree {
        b'/'
    } else {
        0
    };
    ca.cmp(&cb)
}

/// A decoded tree: entries in git order, names unique.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tree {
    entries: Vec<TreeEntry>,
}

impl Tree {
    pub fn new() -> Self {
        Self::default()
    }

    /// Build a tree from entries in any order. Rejects invalid or duplicate names.
    pub fn from_entries(mut entries: Vec<TreeEntry>) -> Result<Self> {
        for e in &entries {
            if !valid_entry_name(&e.name) {
                return Err(Error::InvalidPath(
                    String::from_utf8_lossy(&e.name).into_owned(),
                ));
            }
        }
        entries.sort_by(|a, b| entry_order(&a.name, a.mode.is_tree(), &b.name, b.mode.is_tree()));
        // Names must be unique regardless of kind (git fsck: duplicateEntries).
        let mut names: Vec<&[u8]> = entries.iter().map(|e| e.name.as_slice()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(Error::corrupt(CorruptKind::BadEntryOrder));
        }
        Ok(Tree { entries })
    }

    pub fn entries(&self) -> &[TreeEntry] {
        &self.entries
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Find an entry by name (either kind).
    pub fn get(&self, name: &[u8]) -> Option<&TreeEntry> {
        self.position(name).map(|i| &self.entries[i])
    }

    fn position(&self, name: &[u8]) -> Option<usize> {
        // A name can sit at its blob position or its tree position; try both.
        for as_tree in [false, true] {
            if let Ok(i) = self
                .entries
                .binary_search_by(|e| entry_order(&e.name, e.mode.is_tree(), name, as_tree))
            {
                return Some(i);
            }
        }
        None
    }

    /// Insert or replace the entry called `name`, keeping git order. `name` must be valid.
    pub fn upsert(&mut self, entry: TreeEntry) {
        if let Some(i) = self.position(&entry.name) {
            if self.entries[i].mode.is_tree() == entry.mode.is_tree() {
                self.entries[i] = entry;
                return;
            }
            self.entries.remove(i);
        }
        let at = self
            .entries
            .binary_search_by(|e| {
                entry_order(&e.name, e.mode.is_tree(), &entry.name, entry.mode.is_tree())
            })
            .unwrap_or_else(|i| i);
        self.entries.insert(at, entry);
    }

    /// Remove the entry called `name`; returns it if present.
    pub fn remove(&mut self, name: &[u8]) -> Option<TreeEntry> {
        self.position(name).map(|i| self.entries.remove(i))
    }

    pub fn encoded_len(&self) -> usize {
        self.entries
            .iter()
            .map(|e| e.mode.as_bytes().len() + 1 + e.name.len() + 1 + 20)
            .sum()
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        for e in &self.entries {
            out.extend_from_slice(e.mode.as_bytes());
            out.push(b' ');
            out.extend_from_slice(&e.name);
            out.push(0);
            out.extend_from_slice(e.id.as_bytes());
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode_into(&mut v);
        v
    }

    /// Strict decoding: git modes only, valid names, strictly increasing git order.
    pub fn decode(data: &[u8]) -> Result<Self> {
        let mut entries: Vec<TreeEntry> = Vec::new();
        let mut rest = data;
        while !rest.is_empty() {
            let sp = rest
                .iter()
                .take(7)
                .position(|&b| b == b' ')
                .ok_or(Error::corrupt(CorruptKind::BadMode))?;
            let mode = Mode::from_bytes(&rest[..sp])?;
            rest = &rest[sp + 1..];
            let nul = rest
                .iter()
                .position(|&b| b == 0)
                .ok_or(Error::corrupt(CorruptKind::Truncated))?;
            let name = &rest[..nul];
            if !valid_entry_name(name) {
                return Err(Error::corrupt(CorruptKind::BadEntryName));
            }
            rest = &rest[nul + 1..];
            if rest.len() < 20 {
                return Err(Error::corrupt(CorruptKind::Truncated));
            }
            let id = ObjectId::from_bytes(&rest[..20])?;
            rest = &rest[20..];
            if let Some(prev) = entries.last() {
                let ord = entry_order(&prev.name, prev.mode.is_tree(), name, mode.is_tree());
                if ord != Ordering::Less || prev.name == name {
                    return Err(Error::corrupt(CorruptKind::BadEntryOrder));
                }
            }
            entries.push(TreeEntry {
                mode,
                name: name.to_vec(),
                id,
            });
        }
        // A blob "a" and a tree "a" are not adjacent in git order ("a" < "a-" < "a/"),
        // so catch duplicates across kinds too.
        if entries.len() > 1 {
            let mut names: Vec<&[u8]> = entries.iter().map(|e| e.name.as_slice()).collect();
            names.sort_unstable();
            if names.windows(2).any(|w| w[0] == w[1]) {
                return Err(Error::corrupt(CorruptKind::BadEntryOrder));
            }
        }
        Ok(Tree { entries })
    }
}

/// An identity with a timestamp, as in `author Name <email> 1700000000 +0100`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature {
    pub name: String,
    pub email: String,
    /// Seconds since the Unix epoch.
    pub time: i64,
    /// Offset from UTC in minutes (e.g. +60 for `+0100`).
    pub tz_offset_minutes: i32,
}

impl Signature {
    /// Validates what git requires: no `<`, `>` or newlines in name/email, sane offset.
    pub fn new(name: &str, email: &str, time: i64, tz_offset_minutes: i32) -> Result<Self> {
        let bad = |s: &str| s.contains(['<', '>', '\n', '\0']);
        if bad(name) || bad(email) || tz_offset_minutes.abs() >= 100 * 60 || time < 0 {
            return Err(Error::InvalidSignature(alloc::format!("{name} <{email}>")));
        }
        Ok(Signature {
            name: String::from(name.trim()),
            email: String::from(email),
            time,
            tz_offset_minutes,
        })
    }

    /// The identity with the current wall-clock time (UTC).
    #[cfg(feature = "std")]
    pub fn now(name: &str, email: &str) -> Result<Self> {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        Self::new(name, email, t, 0)
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        use core::fmt::Write;
        let mut s = String::new();
        let sign = if self.tz_offset_minutes < 0 { '-' } else { '+' };
        let off = self.tz_offset_minutes.unsigned_abs();
        let _ = write!(
            s,
            "{} <{}> {} {}{:02}{:02}",
            self.name,
            self.email,
            self.time,
            sign,
            off / 60,
            off % 60
        );
        out.extend_from_slice(s.as_bytes());
    }

    pub fn decode(line: &[u8]) -> Result<Self> {
        let bad = || Error::corrupt(CorruptKind::BadSignature);
        let lt = line.iter().position(|&b| b == b'<').ok_or_else(bad)?;
        let gt = line.iter().position(|&b| b == b'>').ok_or_else(bad)?;
        if gt < lt || lt == 0 || line[lt - 1] != b' ' {
            return Err(bad());
        }
        let name = core::str::from_utf8(&line[..lt - 1]).map_err(|_| bad())?;
        let email = core::str::from_utf8(&line[lt + 1..gt]).map_err(|_| bad())?;
        let rest = line.get(gt + 1..).ok_or_else(bad)?;
        let rest = rest.strip_prefix(b" ").ok_or_else(bad)?;
        let sp = rest.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let time = parse_decimal(&rest[..sp]).ok_or_else(bad)?;
        let tz = &rest[sp + 1..];
        if tz.len() != 5 || !(tz[0] == b'+' || tz[0] == b'-') {
            return Err(bad());
        }
        let hh = parse_two(&tz[1..3]).ok_or_else(bad)?;
        let mm = parse_two(&tz[3..5]).ok_or_else(bad)?;
        let mut off = (hh * 60 + mm) as i32;
        if tz[0] == b'-' {
            off = -off;
        }
        Ok(Signature {
            name: String::from(name),
            email: String::from(email),
            time: i64::try_from(time).map_err(|_| bad())?,
            tz_offset_minutes: off,
        })
    }
}

fn parse_two(d: &[u8]) -> Option<u32> {
    if d.len() == 2 && d[0].is_ascii_digit() && d[1].is_ascii_digit() {
        Some(((d[0] - b'0') * 10 + (d[1] - b'0')) as u32)
    } else {
        None
    }
}

/// A commit object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Commit {
    pub tree: ObjectId,
    pub parents: Vec<ObjectId>,
    pub author: Signature,
    pub committer: Signature,
    /// Other headers (`encoding`, `gpgsig`, `mergetag`, ...), kept verbatim; multi-line
    /// values are stored with their continuation lines joined by `\n`.
    pub extra_headers: Vec<(Vec<u8>, Vec<u8>)>,
    pub message: Vec<u8>,
}

impl Commit {
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.message.len());
        let mut hex = [0u8; 40];
        out.extend_from_slice(b"tree ");
        self.tree.write_hex(&mut hex);
        out.extend_from_slice(&hex);
        out.push(b'\n');
        for p in &self.parents {
            out.extend_from_slice(b"parent ");
            p.write_hex(&mut hex);
            out.extend_from_slice(&hex);
            out.push(b'\n');
        }
        out.extend_from_slice(b"author ");
        self.author.encode_into(&mut out);
        out.push(b'\n');
        out.extend_from_slice(b"committer ");
        self.committer.encode_into(&mut out);
        out.push(b'\n');
        for (k, v) in &self.extra_headers {
            out.extend_from_slice(k);
            out.push(b' ');
            for (i, line) in v.split(|&b| b == b'\n').enumerate() {
                if i > 0 {
                    out.extend_from_slice(b"\n ");
                }
                out.extend_from_slice(line);
            }
            out.push(b'\n');
        }
        out.push(b'\n');
        out.extend_from_slice(&self.message);
        out
    }

    pub fn decode(data: &[u8]) -> Result<Self> {
        let (headers, message) = split_headers(data)?;
        let mut it = headers.into_iter().peekable();
        let tree = match it.next() {
            Some((k, v)) if k == b"tree" => ObjectId::from_hex_bytes(&v)
                .map_err(|_| Error::corrupt(CorruptKind::BadHeaderLine("tree")))?,
            _ => return Err(Error::corrupt(CorruptKind::BadHeaderLine("tree"))),
        };
        let mut parents = Vec::new();
        while let Some((k, _)) = it.peek() {
            if k != b"parent" {
                break;
            }
            let (_, v) = it.next().ok_or(Error::corrupt(CorruptKind::Truncated))?;
            parents.push(
                ObjectId::from_hex_bytes(&v)
                    .map_err(|_| Error::corrupt(CorruptKind::BadHeaderLine("parent")))?,
            );
        }
        let author = match it.next() {
            Some((k, v)) if k == b"author" => Signature::decode(&v)?,
            _ => return Err(Error::corrupt(CorruptKind::BadHeaderLine("author"))),
        };
        let committer = match it.next() {
            Some((k, v)) if k == b"committer" => Signature::decode(&v)?,
            _ => return Err(Error::corrupt(CorruptKind::BadHeaderLine("committer"))),
        };
        let extra_headers: Vec<_> = it.collect();
        if extra_headers
            .iter()
            .any(|(k, _)| matches!(k.as_slice(), b"tree" | b"parent" | b"author" | b"committer"))
        {
            return Err(Error::corrupt(CorruptKind::BadHeaderLine("duplicate")));
        }
        Ok(Commit {
            tree,
            parents,
            author,
            committer,
            extra_headers,
            message: message.to_vec(),
        })
    }

    /// The message as text (lossy for non-UTF-8 messages).
    pub fn message_str(&self) -> String {
        String::from_utf8_lossy(&self.message).into_owned()
    }
}

type Headers = Vec<(Vec<u8>, Vec<u8>)>;

/// Split `key value\n` headers (with ` `-continuations) from the message after the blank line.
fn split_headers(data: &[u8]) -> Result<(Headers, &[u8])> {
    let mut headers: Headers = Vec::new();
    let mut pos = 0;
    loop {
        let Some(nl) = data[pos..].iter().position(|&b| b == b'\n') else {
            // Header block must end with a newline; a missing blank line is tolerated
            // only at the very end (no message).
            if pos == data.len() {
                return Ok((headers, &data[pos..]));
            }
            return Err(Error::corrupt(CorruptKind::Truncated));
        };
        let line = &data[pos..pos + nl];
        pos += nl + 1;
        if line.is_empty() {
            return Ok((headers, &data[pos..]));
        }
        if line[0] == b' ' {
            let last = headers
                .last_mut()
                .ok_or(Error::corrupt(CorruptKind::BadHeaderLine("continuation")))?;
            last.1.push(b'\n');
            last.1.extend_from_slice(&line[1..]);
            continue;
        }
        let sp = line
            .iter()
            .position(|&b| b == b' ')
            .ok_or(Error::corrupt(CorruptKind::BadHeaderLine("no value")))?;
        headers.push((line[..sp].to_vec(), line[sp + 1..].to_vec()));
    }
}

/// An annotated tag: only the fields needed to follow it to its target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    pub object: ObjectId,
    pub kind: ObjectKind,
    pub name: Vec<u8>,
}

impl Tag {
    pub fn decode(data: &[u8]) -> Result<Self> {
        let (headers, _) = split_headers(data)?;
        let mut object = None;
        let mut kind = None;
        let mut name = None;
        for (k, v) in headers {
            match k.as_slice() {
                b"object" => object = ObjectId::from_hex_bytes(&v).ok(),
                b"type" => kind = ObjectKind::from_name(&v),
                b"tag" => name = Some(v),
                _ => {}
            }
        }
        match (object, kind, name) {
            (Some(object), Some(kind), Some(name)) => Ok(Tag { object, kind, name }),
            _ => Err(Error::corrupt(CorruptKind::BadHeaderLine("tag"))),
        }
    }
}

/// Check that `body` is a well-formed object of `kind` (blobs are always well formed).
pub fn validate(kind: ObjectKind, body: &[u8]) -> Result<()> {
    match kind {
        ObjectKind::Blob => Ok(()),
        ObjectKind::Tree => Tree::decode(body).map(|_| ()),
        ObjectKind::Commit => Commit::decode(body).map(|_| ()),
        ObjectKind::Tag => Tag::decode(body).map(|_| ()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash_object;
    use alloc::vec;

    fn e(name: &str, mode: Mode) -> TreeEntry {
        TreeEntry {
            mode,
            name: name.as_bytes().to_vec(),
            id: ObjectId([1; 20]),
        }
    }

    #[test]
    fn tree_order_trailing_slash_rule() {
        // git sorts "a.b" (blob) < "a" (tree, as "a/") < "a0"
        let t = Tree::from_entries(vec![
            e("a0", Mode::File),
            e("a", Mode::Tree),
            e("a.b", Mode::File),
        ])
        .unwrap();
        let names: Vec<_> = t.entries().iter().map(|e| e.name.clone()).collect();
        assert_eq!(names, vec![b"a.b".to_vec(), b"a".to_vec(), b"a0".to_vec()]);
        // As blob, "a" sorts before "a.b".
        let t = Tree::from_entries(vec![e("a.b", Mode::File), e("a", Mode::File)]).unwrap();
        assert_eq!(t.entries()[0].name, b"a");
        let enc = t.encode();
        assert_eq!(Tree::decode(&enc).unwrap(), t);
    }

    #[test]
    fn tree_decode_rejects_bad_input() {
        let t = Tree::from_entries(vec![e("b", Mode::File), e("a", Mode::File)]).unwrap();
        let mut enc = t.encode();
        // Swap order -> must be rejected.
        let half = enc.len() / 2;
        enc.rotate_left(half);
        assert!(matches!(
            Tree::decode(&enc),
            Err(Error::Corrupt {
                kind: CorruptKind::BadEntryOrder,
                ..
            })
        ));
        assert!(Tree::decode(b"100644 a\0short").is_err());
        assert!(Tree::decode(b"040000 a\0aaaaaaaaaaaaaaaaaaaa").is_err()); // zero padded
        assert!(Tree::decode(b"100644 .git\0aaaaaaaaaaaaaaaaaaaa").is_err());
        assert!(Tree::from_entries(vec![e("x", Mode::File), e("x", Mode::Tree)]).is_err());
    }

    #[test]
    fn empty_tree_hash() {
        assert_eq!(
            hash_object(ObjectKind::Tree, &Tree::new().encode()),
            ObjectId::EMPTY_TREE
        );
    }

    #[test]
    fn commit_roundtrip_with_extra_headers() {
        let sig = Signature::new("A U Thor", "a@example.com", 1_700_000_000, -330).unwrap();
        let c = Commit {
            tree: ObjectId::EMPTY_TREE,
            parents: vec![ObjectId([2; 20]), ObjectId([3; 20])],
            author: sig.clone(),
            committer: sig,
            extra_headers: vec![(b"gpgsig".to_vec(), b"line1\nline2".to_vec())],
            message: b"hello\n\nbody\n".to_vec(),
        };
        let enc = c.encode();
        assert!(enc.windows(6).any(|w| w == b" -0530"));
        assert_eq!(Commit::decode(&enc).unwrap(), c);
        assert!(Commit::decode(b"tree nope\n").is_err());
        assert!(Commit::decode(&enc[..20]).is_err());
    }

    #[test]
    fn signature_rejects_angle_brackets() {
        assert!(Signature::new("a<b", "x", 0, 0).is_err());
        assert!(Signature::decode(b"name <mail> 12 +01").is_err());
    }
}
