//! SHA-1 object ids, as git computes them: `sha1("<kind> <len>\0" ++ body)`.

use alloc::string::String;
use core::fmt;

use sha1::{Digest, Sha1};

use crate::error::{Error, Result};
use crate::object::ObjectKind;

/// A 20-byte SHA-1 object id.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct ObjectId(pub [u8; 20]);

impl ObjectId {
    /// The all-zero id git uses for "no object" on the wire.
    pub const ZERO: ObjectId = ObjectId([0; 20]);
    /// The id of the empty tree.
    pub const EMPTY_TREE: ObjectId = ObjectId([
        0x4b, 0x82, 0x5d, 0xc6, 0x42, 0xcb, 0x6e, 0xb9, 0xa0, 0x60, 0xe5, 0x4b, 0xf8, 0xd6, 0x92,
        0x88, 0xfb, 0xee, 0x49, 0x04,
    ]);

    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; 20] = bytes
            .try_into()
            .map_err(|_| Error::InvalidObjectId(hex_lossy(bytes)))?;
        Ok(ObjectId(arr))
    }

    pub fn from_hex(hex: &str) -> Result<Self> {
        Self::from_hex_bytes(hex.as_bytes())
    }

    pub fn from_hex_bytes(hex: &[u8]) -> Result<Self> {
        let bad = || Error::InvalidObjectId(String::from_utf8_lossy(hex).into_owned());
        if hex.len() != 40 {
            return Err(bad());
        }
        let mut out = [0u8; 20];
        for (i, pair) in hex.chunks_exact(2).enumerate() {
            let hi = hex_val(pair[0]).ok_or_else(bad)?;
            let lo = hex_val(pair[1]).ok_or_else(bad)?;
            out[i] = (hi << 4) | lo;
        }
        Ok(ObjectId(out))
    }

    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    pub fn is_zero(&self) -> bool {
        self.0 == [0; 20]
    }

    /// Lower-case hex, 40 characters.
    pub fn to_hex(&self) -> String {
        let mut s = String::with_capacity(40);
        for b in self.0 {
            s.push(HEX[(b >> 4) as usize] as char);
            s.push(HEX[(b & 15) as usize] as char);
        }
        s
    }

    /// Write the hex form into a fixed buffer (no allocation; used on hot paths).
    pub fn write_hex(&self, out: &mut [u8; 40]) {
        for (i, b) in self.0.iter().enumerate() {
            out[2 * i] = HEX[(b >> 4) as usize];
            out[2 * i + 1] = HEX[(b & 15) as usize];
        }
    }
}

const HEX: &[u8; 16] = b"0123456789abcdef";

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn hex_lossy(bytes: &[u8]) -> String {
    let mut s = String::new();
    for b in bytes {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 15) as usize] as char);
    }
    s
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 40];
        self.write_hex(&mut buf);
        // Hex digits are ASCII.
        f.write_str(core::str::from_utf8(&buf).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({self})")
    }
}

/// Write git's object header `<kind> <len>\0` into `out`, returning its length.
pub fn object_header(kind: ObjectKind, len: usize, out: &mut [u8; 32]) -> usize {
    let name = kind.name().as_bytes();
    out[..name.len()].copy_from_slice(name);
    let mut n = name.len();
    out[n] = b' ';
    n += 1;
    let mut digits = [0u8; 20];
    let mut d = 0;
    let mut v = len;
    loop {
        digits[d] = b'0' + (v % 10) as u8;
        d += 1;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    for i in (0..d).rev() {
        out[n] = digits[i];
        n += 1;
    }
    out[n] = 0;
    n + 1
}

/// The id git gives an object of `kind` with contents `body`.
pub fn hash_object(kind: ObjectKind, body: &[u8]) -> ObjectId {
    let mut header = [0u8; 32];
    let n = object_header(kind, body.len(), &mut header);
    let mut h = Sha1::new();
    h.update(&header[..n]);
    h.update(body);
    ObjectId(h.finalize().into())
}

/// Incremental SHA-1 for pack trailers and index checksums.
#[derive(Clone, Default)]
pub struct Sha1Hasher(Sha1);

impl Sha1Hasher {
    pub fn new() -> Self {
        Self(Sha1::new())
    }
    pub fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }
    pub fn finish(self) -> ObjectId {
        ObjectId(self.0.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_ids() {
        assert_eq!(hash_object(ObjectKind::Tree, b""), ObjectId::EMPTY_TREE);
        // `printf 'hello\n' | git hash-object --stdin`
        assert_eq!(
            hash_object(ObjectKind::Blob, b"hello\n").to_hex(),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn hex_roundtrip_and_errors() {
        let id = hash_object(ObjectKind::Blob, b"x");
        assert_eq!(ObjectId::from_hex(&id.to_hex()).unwrap(), id);
        assert!(matches!(
            ObjectId::from_hex("zz"),
            Err(Error::InvalidObjectId(_))
        ));
        assert!(ObjectId::from_hex(&"g".repeat(40)).is_err());
    }
}
