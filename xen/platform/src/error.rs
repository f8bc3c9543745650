//! The platform error type.

use core::fmt;

use crate::errno::{Errno, GrantStatus};
use crate::types::{DomId, GrantRef, Port};

/// Which platform operation failed, so a bare errno still says what went wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum Op {
    AllocPages,
    Grant,
    Revoke,
    Map,
    Unmap,
    Copy,
    AllocUnbound,
    BindInterdomain,
    BindVirq,
    Notify,
    Mask,
    Unmask,
    Close,
    Wait,
    Timer,
}

/// Errors of the platform traits. Every variant maps to the Xen errno a hypercall would
/// have returned ([`Error::errno`]), so code that only cares about the number can use that.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Error {
    /// The hypervisor (or the platform standing in for it) refused with an errno.
    Xen {
        /// The operation.
        op: Op,
        /// Xen's errno.
        errno: Errno,
    },
    /// The hypervisor returned a negative number that `public/errno.h` does not define.
    UnknownErrno {
        /// The operation.
        op: Op,
        /// The positive value.
        code: i32,
    },
    /// A grant-table operation returned a `GNTST_*` status other than okay.
    Grant {
        /// The operation.
        op: Op,
        /// The status.
        status: GrantStatus,
    },
    /// No free grant reference in our grant table (`ENOSPC`).
    GrantTableFull,
    /// Revocation refused: the peer still has the page mapped (`EBUSY`). Nothing changed;
    /// retry after the peer unmapped it.
    GrantBusy {
        /// The reference still in use.
        gref: GrantRef,
    },
    /// An argument the platform rejects before asking Xen: a length or offset out of range,
    /// a copy crossing a page boundary, zero pages (`EINVAL`).
    InvalidArgument {
        /// The operation.
        op: Op,
    },
    /// The port is not bound in this domain (closed or never allocated) (`EINVAL`).
    PortNotBound {
        /// The port.
        port: Port,
    },
    /// The domain does not exist (any more) (`ESRCH`).
    NoSuchDomain {
        /// The domain.
        domid: DomId,
    },
    /// Out of memory for shared pages (`ENOMEM`).
    OutOfMemory,
}

impl Error {
    /// The Xen errno equivalent of this error.
    pub fn errno(&self) -> Errno {
        match *self {
            Error::Xen { errno, .. } => errno,
            Error::UnknownErrno { .. } => Errno::EIO,
            Error::Grant { status, .. } => status.errno(),
            Error::GrantTableFull => Errno::ENOSPC,
            Error::GrantBusy { .. } => Errno::EBUSY,
            Error::InvalidArgument { .. } | Error::PortNotBound { .. } => Errno::EINVAL,
            Error::NoSuchDomain { .. } => Errno::ESRCH,
            Error::OutOfMemory => Errno::ENOMEM,
        }
    }

    /// Builds an error from a negative hypercall return value.
    pub fn from_hypercall(op: Op, ret: i64) -> Error {
        let code = i32::try_from(ret.unsigned_abs()).unwrap_or(i32::MAX);
        match Errno::from_code(code) {
            Some(errno) => Error::Xen { op, errno },
            None => Error::UnknownErrno { op, code },
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Xen { op, errno } => write!(f, "{op:?} failed: {errno}"),
            Error::UnknownErrno { op, code } => write!(f, "{op:?} failed: unknown errno {code}"),
            Error::Grant { op, status } => write!(f, "{op:?} failed: grant status {status:?}"),
            Error::GrantTableFull => write!(f, "grant table full"),
            Error::GrantBusy { gref } => write!(f, "{gref} is still mapped by the peer"),
            Error::InvalidArgument { op } => write!(f, "{op:?}: invalid argument"),
            Error::PortNotBound { port } => write!(f, "{port} is not bound"),
            Error::NoSuchDomain { domid } => write!(f, "{domid} does not exist"),
            Error::OutOfMemory => write!(f, "out of memory for shared pages"),
        }
    }
}

impl core::error::Error for Error {}

/// A refused operation that consumed a value gives it back, so nothing is lost or leaked:
/// e.g. [`crate::GrantShare::revoke`] returns the still-granted pages when the peer has
/// them mapped.
#[derive(Debug)]
pub struct Refused<T> {
    /// The value the operation was given back.
    pub value: T,
    /// Why it was refused.
    pub error: Error,
}

impl<T> fmt::Display for Refused<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.error.fmt(f)
    }
}
