//! Error strings carried by `XS_ERROR` replies, and the codec's own error type.

use core::fmt;

/// The errno names xenstored sends in `XS_ERROR` payloads (`xsd_errors[]` of xs_wire.h, plus
/// `EQUOTA`, which oxenstored sends when a quota is exceeded).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    EINVAL,
    EACCES,
    EEXIST,
    EISDIR,
    ENOENT,
    ENOMEM,
    ENOSPC,
    EIO,
    ENOTEMPTY,
    ENOSYS,
    EROFS,
    EBUSY,
    EAGAIN,
    EISCONN,
    E2BIG,
    EPERM,
    EQUOTA,
}

impl ErrorCode {
    pub const ALL: [ErrorCode; 17] = [
        Self::EINVAL,
        Self::EACCES,
        Self::EEXIST,
        Self::EISDIR,
        Self::ENOENT,
        Self::ENOMEM,
        Self::ENOSPC,
        Self::EIO,
        Self::ENOTEMPTY,
        Self::ENOSYS,
        Self::EROFS,
        Self::EBUSY,
        Self::EAGAIN,
        Self::EISCONN,
        Self::E2BIG,
        Self::EPERM,
        Self::EQUOTA,
    ];

    /// The string on the wire (without the terminating nul).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EINVAL => "EINVAL",
            Self::EACCES => "EACCES",
            Self::EEXIST => "EEXIST",
            Self::EISDIR => "EISDIR",
            Self::ENOENT => "ENOENT",
            Self::ENOMEM => "ENOMEM",
            Self::ENOSPC => "ENOSPC",
            Self::EIO => "EIO",
            Self::ENOTEMPTY => "ENOTEMPTY",
            Self::ENOSYS => "ENOSYS",
            Self::EROFS => "EROFS",
            Self::EBUSY => "EBUSY",
            Self::EAGAIN => "EAGAIN",
            Self::EISCONN => "EISCONN",
            Self::E2BIG => "E2BIG",
            Self::EPERM => "EPERM",
            Self::EQUOTA => "EQUOTA",
        }
    }

    /// Parses a wire error string (no nul).
    pub fn from_wire(s: &[u8]) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.as_str().as_bytes() == s)
    }

    /// The Linux errno value, for tools that exit with it (EQUOTA maps to EDQUOT).
    pub fn errno(self) -> i32 {
        match self {
            Self::EINVAL => 22,
            Self::EACCES => 13,
            Self::EEXIST => 17,
            Self::EISDIR => 21,
            Self::ENOENT => 2,
            Self::ENOMEM => 12,
            Self::ENOSPC => 28,
            Self::EIO => 5,
            Self::ENOTEMPTY => 39,
            Self::ENOSYS => 38,
            Self::EROFS => 30,
            Self::EBUSY => 16,
            Self::EAGAIN => 11,
            Self::EISCONN => 106,
            Self::E2BIG => 7,
            Self::EPERM => 1,
            Self::EQUOTA => 122,
        }
    }

    /// The `strerror` text, as xenstore-utils prints it.
    pub fn description(self) -> &'static str {
        match self {
            Self::EINVAL => "Invalid argument",
            Self::EACCES => "Permission denied",
            Self::EEXIST => "File exists",
            Self::EISDIR => "Is a directory",
            Self::ENOENT => "No such file or directory",
            Self::ENOMEM => "Cannot allocate memory",
            Self::ENOSPC => "No space left on device",
            Self::EIO => "Input/output error",
            Self::ENOTEMPTY => "Directory not empty",
            Self::ENOSYS => "Function not implemented",
            Self::EROFS => "Read-only file system",
            Self::EBUSY => "Device or resource busy",
            Self::EAGAIN => "Resource temporarily unavailable",
            Self::EISCONN => "Transport endpoint is already connected",
            Self::E2BIG => "Argument list too long",
            Self::EPERM => "Operation not permitted",
            Self::EQUOTA => "Disk quota exceeded",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a path is not acceptable to xenstored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    Empty,
    /// A byte outside `[A-Za-z0-9-/_@]`, at this offset.
    InvalidChar(usize),
    TrailingSlash,
    DoubleSlash,
    /// Longer than `XENSTORE_ABS_PATH_MAX`, or its domain-relative part longer than
    /// `XENSTORE_REL_PATH_MAX`.
    TooLong,
    /// An `@...` special path where only real nodes are allowed.
    SpecialNotAllowed,
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("empty path"),
            Self::InvalidChar(at) => write!(f, "invalid character at offset {at}"),
            Self::TrailingSlash => f.write_str("trailing slash"),
            Self::DoubleSlash => f.write_str("double slash"),
            Self::TooLong => f.write_str("path too long"),
            Self::SpecialNotAllowed => f.write_str("special @ path not allowed here"),
        }
    }
}

/// Malformed bytes, as seen by the codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than the header or its length field require.
    Truncated,
    /// A payload longer than `XENSTORE_PAYLOAD_MAX`.
    PayloadTooLong(usize),
    UnknownMessageType(u32),
    /// A message type that cannot appear in this direction (e.g. a client sending
    /// `WATCH_EVENT`).
    UnexpectedMessageType(u32),
    /// A string argument without its terminating nul.
    MissingNul,
    /// Wrong number of nul-terminated arguments.
    ArgumentCount {
        expected: usize,
        found: usize,
    },
    InvalidPath(PathError),
    /// Not a plain decimal number in range.
    InvalidNumber,
    InvalidPermission,
    /// A string that must be UTF-8 (paths, names) is not.
    NotUtf8,
    /// A token or argument containing a nul byte, or otherwise unusable.
    InvalidArgument,
    /// An acknowledgement other than `OK`, or a boolean other than `T`/`F`.
    UnexpectedValue,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => f.write_str("truncated message"),
            Self::PayloadTooLong(n) => write!(f, "payload of {n} bytes exceeds 4096"),
            Self::UnknownMessageType(t) => write!(f, "unknown message type {t}"),
            Self::UnexpectedMessageType(t) => write!(f, "message type {t} not valid here"),
            Self::MissingNul => f.write_str("string argument not nul-terminated"),
            Self::ArgumentCount { expected, found } => {
                write!(f, "expected {expected} arguments, found {found}")
            }
            Self::InvalidPath(e) => write!(f, "invalid path: {e}"),
            Self::InvalidNumber => f.write_str("invalid decimal number"),
            Self::InvalidPermission => f.write_str("invalid permission string"),
            Self::NotUtf8 => f.write_str("string is not UTF-8"),
            Self::InvalidArgument => f.write_str("invalid argument"),
            Self::UnexpectedValue => f.write_str("unexpected value"),
        }
    }
}

impl From<PathError> for WireError {
    fn from(e: PathError) -> Self {
        WireError::InvalidPath(e)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for WireError {}
#[cfg(feature = "std")]
impl std::error::Error for PathError {}
