//! Typed errors. Every failure mode the store can meet (bad input, corrupt or missing
//! data, a lost race, I/O) has its own variant so callers can react without parsing text.

use alloc::string::String;
use core::fmt;

use crate::hash::ObjectId;
use crate::object::ObjectKind;

/// What went wrong while decoding an object or a pack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorruptKind {
    /// Input ended before the structure was complete.
    Truncated,
    /// The `<kind> <len>\0` header is malformed.
    BadHeader,
    /// Header length disagrees with the body length.
    LengthMismatch,
    /// A tree entry has a mode git does not produce.
    BadMode,
    /// A tree entry name is empty, `.`, `..`, `.git`, or contains `/` or NUL.
    BadEntryName,
    /// Tree entries are not in git's order or are duplicated.
    BadEntryOrder,
    /// A commit/tag header line is malformed or missing.
    BadHeaderLine(&'static str),
    /// An author/committer/tagger identity line is malformed.
    BadSignature,
    /// zlib stream is invalid.
    BadZlib,
    /// A pack or index file is malformed.
    BadPack(&'static str),
    /// A delta instruction refers outside its base or result.
    BadDelta,
    /// A checksum (pack trailer, CRC, block-log record) does not match.
    BadChecksum,
}

impl fmt::Display for CorruptKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CorruptKind::Truncated => f.write_str("truncated"),
            CorruptKind::BadHeader => f.write_str("malformed object header"),
            CorruptKind::LengthMismatch => f.write_str("object length does not match header"),
            CorruptKind::BadMode => f.write_str("invalid tree entry mode"),
            CorruptKind::BadEntryName => f.write_str("invalid tree entry name"),
            CorruptKind::BadEntryOrder => f.write_str("tree entries out of order or duplicated"),
            CorruptKind::BadHeaderLine(what) => write!(f, "malformed header line: {what}"),
            CorruptKind::BadSignature => f.write_str("malformed identity line"),
            CorruptKind::BadZlib => f.write_str("invalid zlib stream"),
            CorruptKind::BadPack(what) => write!(f, "malformed pack: {what}"),
            CorruptKind::BadDelta => f.write_str("invalid delta"),
            CorruptKind::BadChecksum => f.write_str("checksum mismatch"),
        }
    }
}

/// The store's error type.
#[derive(Debug)]
pub enum Error {
    /// A key/path is not acceptable (empty step, `.`/`..`/`.git`, NUL, ...).
    InvalidPath(String),
    /// A ref or branch name is not acceptable (git's check-ref-format rules).
    InvalidRefName(String),
    /// A hex object id could not be parsed.
    InvalidObjectId(String),
    /// Author/committer identity contains characters git forbids.
    InvalidSignature(String),
    /// An object's bytes are not a valid object of its kind.
    Corrupt {
        id: Option<ObjectId>,
        kind: CorruptKind,
    },
    /// The bytes stored under `id` hash to `actual`.
    HashMismatch {
        expected: ObjectId,
        actual: ObjectId,
    },
    /// The object is referenced but not in the store.
    MissingObject(ObjectId),
    /// The object exists but has another kind than required.
    WrongKind {
        id: ObjectId,
        expected: ObjectKind,
        actual: ObjectKind,
    },
    /// A ref points at an object that is not present.
    DanglingRef { name: String, id: ObjectId },
    /// The named branch/ref does not exist.
    RefNotFound(String),
    /// Compare-and-swap on a ref lost: somebody else updated it first.
    RefChanged {
        name: String,
        expected: Option<ObjectId>,
        actual: Option<ObjectId>,
    },
    /// Another process holds the ref's lock file.
    RefLocked(String),
    /// A path names a tree where a value is expected, or the reverse.
    NotAValue(String),
    /// A merge left conflicts that must be resolved first.
    UnresolvedConflicts(usize),
    /// A remote peer violated the protocol or reported an error.
    Protocol(String),
    /// The block device or log layout cannot be used.
    Device(String),
    /// Operating system I/O error.
    #[cfg(feature = "std")]
    Io(std::io::Error),
}

impl Error {
    pub(crate) fn corrupt(kind: CorruptKind) -> Self {
        Error::Corrupt { id: None, kind }
    }

    /// Attach the object id to a `Corrupt` error that lacks one.
    pub(crate) fn with_id(self, id: ObjectId) -> Self {
        match self {
            Error::Corrupt { id: None, kind } => Error::Corrupt { id: Some(id), kind },
            other => other,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidPath(p) => write!(f, "invalid path {p:?}"),
            Error::InvalidRefName(r) => write!(f, "invalid ref name {r:?}"),
            Error::InvalidObjectId(s) => write!(f, "invalid object id {s:?}"),
            Error::InvalidSignature(s) => write!(f, "invalid identity {s:?}"),
            Error::Corrupt { id: Some(id), kind } => write!(f, "corrupt object {id}: {kind}"),
            Error::Corrupt { id: None, kind } => write!(f, "corrupt data: {kind}"),
            Error::HashMismatch { expected, actual } => {
                write!(f, "object {expected} hashes to {actual}")
            }
            Error::MissingObject(id) => write!(f, "missing object {id}"),
            Error::WrongKind {
                id,
                expected,
                actual,
            } => {
                write!(f, "object {id} is a {actual}, expected a {expected}")
            }
            Error::DanglingRef { name, id } => write!(f, "ref {name} points at missing {id}"),
            Error::RefNotFound(r) => write!(f, "ref {r} not found"),
            Error::RefChanged {
                name,
                expected,
                actual,
            } => write!(
                f,
                "ref {name} changed concurrently (expected {}, found {})",
                opt_id(expected),
                opt_id(actual)
            ),
            Error::RefLocked(r) => write!(f, "ref {r} is locked by another writer"),
            Error::NotAValue(p) => write!(f, "{p:?} is not a value"),
            Error::UnresolvedConflicts(n) => write!(f, "{n} unresolved merge conflicts"),
            Error::Protocol(m) => write!(f, "protocol error: {m}"),
            Error::Device(m) => write!(f, "block device: {m}"),
            #[cfg(feature = "std")]
            Error::Io(e) => write!(f, "I/O error: {e}"),
        }
    }
}

fn opt_id(id: &Option<ObjectId>) -> alloc::string::String {
    use alloc::string::ToString;
    match id {
        Some(id) => id.to_string(),
        None => "nothing".to_string(),
    }
}

impl core::error::Error for Error {}

#[cfg(feature = "std")]
impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

pub type Result<T, E = Error> = core::result::Result<T, E>;
