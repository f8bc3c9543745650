//! Xen's errno values, from `xen/include/public/errno.h` (not the host libc's).

use core::fmt;

/// An error number as Xen returns it (negated) from a hypercall.
///
/// The values are Xen's own ABI (`public/errno.h`), which matches Linux on x86 for these
/// names but is defined independently; never convert through the host libc.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(i32)]
#[allow(clippy::upper_case_acronyms)]
pub enum Errno {
    /// Operation not permitted.
    EPERM = 1,
    /// No such file or directory.
    ENOENT = 2,
    /// No such process.
    ESRCH = 3,
    /// Interrupted system call.
    EINTR = 4,
    /// I/O error.
    EIO = 5,
    /// No such device or address.
    ENXIO = 6,
    /// Arg list too long.
    E2BIG = 7,
    /// Exec format error.
    ENOEXEC = 8,
    /// Bad file number.
    EBADF = 9,
    /// No child processes.
    ECHILD = 10,
    /// Try again.
    EAGAIN = 11,
    /// Out of memory.
    ENOMEM = 12,
    /// Permission denied.
    EACCES = 13,
    /// Bad address.
    EFAULT = 14,
    /// Device or resource busy.
    EBUSY = 16,
    /// File exists.
    EEXIST = 17,
    /// Cross-device link.
    EXDEV = 18,
    /// No such device.
    ENODEV = 19,
    /// Not a directory.
    ENOTDIR = 20,
    /// Is a directory.
    EISDIR = 21,
    /// Invalid argument.
    EINVAL = 22,
    /// File table overflow.
    ENFILE = 23,
    /// Too many open files.
    EMFILE = 24,
    /// No space left on device.
    ENOSPC = 28,
    /// Read-only file system.
    EROFS = 30,
    /// Too many links.
    EMLINK = 31,
    /// Math argument out of domain of func.
    EDOM = 33,
    /// Math result not representable.
    ERANGE = 34,
    /// Resource deadlock would occur.
    EDEADLK = 35,
    /// File name too long.
    ENAMETOOLONG = 36,
    /// No record locks available.
    ENOLCK = 37,
    /// Function not implemented.
    ENOSYS = 38,
    /// Directory not empty.
    ENOTEMPTY = 39,
    /// No data available.
    ENODATA = 61,
    /// Timer expired.
    ETIME = 62,
    /// Not a data message.
    EBADMSG = 74,
    /// Value too large for defined data type.
    EOVERFLOW = 75,
    /// Illegal byte sequence.
    EILSEQ = 84,
    /// Interrupted system call should be restarted.
    ERESTART = 85,
    /// Socket operation on non-socket.
    ENOTSOCK = 88,
    /// Message too large..
    EMSGSIZE = 90,
    /// Operation not supported on transport endpoint.
    EOPNOTSUPP = 95,
    /// Address already in use.
    EADDRINUSE = 98,
    /// Cannot assign requested address.
    EADDRNOTAVAIL = 99,
    /// No buffer space available.
    ENOBUFS = 105,
    /// Transport endpoint is already connected.
    EISCONN = 106,
    /// Transport endpoint is not connected.
    ENOTCONN = 107,
    /// Connection timed out.
    ETIMEDOUT = 110,
    /// Connection refused.
    ECONNREFUSED = 111,
}

impl Errno {
    /// Operation would block.  Aliases EAGAIN (same number as [`Errno::EAGAIN`]).
    pub const EWOULDBLOCK: Errno = Errno::EAGAIN;
    /// Resource deadlock would occur. Aliases EDEADLK (same number as [`Errno::EDEADLK`]).
    pub const EDEADLOCK: Errno = Errno::EDEADLK;

    /// Every errno Xen defines, in numeric order.
    pub const ALL: &'static [Errno] = &[
        Errno::EPERM,
        Errno::ENOENT,
        Errno::ESRCH,
        Errno::EINTR,
        Errno::EIO,
        Errno::ENXIO,
        Errno::E2BIG,
        Errno::ENOEXEC,
        Errno::EBADF,
        Errno::ECHILD,
        Errno::EAGAIN,
        Errno::ENOMEM,
        Errno::EACCES,
        Errno::EFAULT,
        Errno::EBUSY,
        Errno::EEXIST,
        Errno::EXDEV,
        Errno::ENODEV,
        Errno::ENOTDIR,
        Errno::EISDIR,
        Errno::EINVAL,
        Errno::ENFILE,
        Errno::EMFILE,
        Errno::ENOSPC,
        Errno::EROFS,
        Errno::EMLINK,
        Errno::EDOM,
        Errno::ERANGE,
        Errno::EDEADLK,
        Errno::ENAMETOOLONG,
        Errno::ENOLCK,
        Errno::ENOSYS,
        Errno::ENOTEMPTY,
        Errno::ENODATA,
        Errno::ETIME,
        Errno::EBADMSG,
        Errno::EOVERFLOW,
        Errno::EILSEQ,
        Errno::ERESTART,
        Errno::ENOTSOCK,
        Errno::EMSGSIZE,
        Errno::EOPNOTSUPP,
        Errno::EADDRINUSE,
        Errno::EADDRNOTAVAIL,
        Errno::ENOBUFS,
        Errno::EISCONN,
        Errno::ENOTCONN,
        Errno::ETIMEDOUT,
        Errno::ECONNREFUSED,
    ];

    /// The positive errno number.
    pub const fn code(self) -> i32 {
        self as i32
    }

    /// Looks up a positive errno number; `None` for numbers Xen does not define.
    pub const fn from_code(code: i32) -> Option<Errno> {
        Some(match code {
            1 => Errno::EPERM,
            2 => Errno::ENOENT,
            3 => Errno::ESRCH,
            4 => Errno::EINTR,
            5 => Errno::EIO,
            6 => Errno::ENXIO,
            7 => Errno::E2BIG,
            8 => Errno::ENOEXEC,
            9 => Errno::EBADF,
            10 => Errno::ECHILD,
            11 => Errno::EAGAIN,
            12 => Errno::ENOMEM,
            13 => Errno::EACCES,
            14 => Errno::EFAULT,
            16 => Errno::EBUSY,
            17 => Errno::EEXIST,
            18 => Errno::EXDEV,
            19 => Errno::ENODEV,
            20 => Errno::ENOTDIR,
            21 => Errno::EISDIR,
            22 => Errno::EINVAL,
            23 => Errno::ENFILE,
            24 => Errno::EMFILE,
            28 => Errno::ENOSPC,
            30 => Errno::EROFS,
            31 => Errno::EMLINK,
            33 => Errno::EDOM,
            34 => Errno::ERANGE,
            35 => Errno::EDEADLK,
            36 => Errno::ENAMETOOLONG,
            37 => Errno::ENOLCK,
            38 => Errno::ENOSYS,
            39 => Errno::ENOTEMPTY,
            61 => Errno::ENODATA,
            62 => Errno::ETIME,
            74 => Errno::EBADMSG,
            75 => Errno::EOVERFLOW,
            84 => Errno::EILSEQ,
            85 => Errno::ERESTART,
            88 => Errno::ENOTSOCK,
            90 => Errno::EMSGSIZE,
            95 => Errno::EOPNOTSUPP,
            98 => Errno::EADDRINUSE,
            99 => Errno::EADDRNOTAVAIL,
            105 => Errno::ENOBUFS,
            106 => Errno::EISCONN,
            107 => Errno::ENOTCONN,
            110 => Errno::ETIMEDOUT,
            111 => Errno::ECONNREFUSED,
            _ => return None,
        })
    }

    /// Xen's one-line description.
    pub const fn description(self) -> &'static str {
        match self {
            Errno::EPERM => "Operation not permitted",
            Errno::ENOENT => "No such file or directory",
            Errno::ESRCH => "No such process",
            Errno::EINTR => "Interrupted system call",
            Errno::EIO => "I/O error",
            Errno::ENXIO => "No such device or address",
            Errno::E2BIG => "Arg list too long",
            Errno::ENOEXEC => "Exec format error",
            Errno::EBADF => "Bad file number",
            Errno::ECHILD => "No child processes",
            Errno::EAGAIN => "Try again",
            Errno::ENOMEM => "Out of memory",
            Errno::EACCES => "Permission denied",
            Errno::EFAULT => "Bad address",
            Errno::EBUSY => "Device or resource busy",
            Errno::EEXIST => "File exists",
            Errno::EXDEV => "Cross-device link",
            Errno::ENODEV => "No such device",
            Errno::ENOTDIR => "Not a directory",
            Errno::EISDIR => "Is a directory",
            Errno::EINVAL => "Invalid argument",
            Errno::ENFILE => "File table overflow",
            Errno::EMFILE => "Too many open files",
            Errno::ENOSPC => "No space left on device",
            Errno::EROFS => "Read-only file system",
            Errno::EMLINK => "Too many links",
            Errno::EDOM => "Math argument out of domain of func",
            Errno::ERANGE => "Math result not representable",
            Errno::EDEADLK => "Resource deadlock would occur",
            Errno::ENAMETOOLONG => "File name too long",
            Errno::ENOLCK => "No record locks available",
            Errno::ENOSYS => "Function not implemented",
            Errno::ENOTEMPTY => "Directory not empty",
            Errno::ENODATA => "No data available",
            Errno::ETIME => "Timer expired",
            Errno::EBADMSG => "Not a data message",
            Errno::EOVERFLOW => "Value too large for defined data type",
            Errno::EILSEQ => "Illegal byte sequence",
            Errno::ERESTART => "Interrupted system call should be restarted",
            Errno::ENOTSOCK => "Socket operation on non-socket",
            Errno::EMSGSIZE => "Message too large.",
            Errno::EOPNOTSUPP => "Operation not supported on transport endpoint",
            Errno::EADDRINUSE => "Address already in use",
            Errno::EADDRNOTAVAIL => "Cannot assign requested address",
            Errno::ENOBUFS => "No buffer space available",
            Errno::EISCONN => "Transport endpoint is already connected",
            Errno::ENOTCONN => "Transport endpoint is not connected",
            Errno::ETIMEDOUT => "Connection timed out",
            Errno::ECONNREFUSED => "Connection refused",
        }
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} ({})", self, self.description())
    }
}

impl Errno {
    /// Interpret a raw hypercall return value: `Ok(value)` when non-negative, else the
    /// errno. Xen only returns codes from its `errno.h`, all of which are listed here; a
    /// code outside it (a broken hypervisor) reads as `EIO` rather than being dropped.
    pub fn result(ret: i64) -> Result<i64, Errno> {
        if ret >= 0 {
            return Ok(ret);
        }
        let code = i32::try_from(ret.unsigned_abs()).unwrap_or(i32::MAX);
        Err(Errno::from_code(code).unwrap_or(Errno::EIO))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_match_xen_errno_h() {
        assert_eq!(Errno::EPERM.code(), 1);
        assert_eq!(Errno::ENOENT.code(), 2);
        assert_eq!(Errno::ESRCH.code(), 3);
        assert_eq!(Errno::EBUSY.code(), 16);
        assert_eq!(Errno::EINVAL.code(), 22);
        assert_eq!(Errno::ENOSPC.code(), 28);
        assert_eq!(Errno::ENOSYS.code(), 38);
        assert_eq!(Errno::ECONNREFUSED.code(), 111);
        assert_eq!(Errno::EWOULDBLOCK, Errno::EAGAIN);
    }

    #[test]
    fn result_maps_negative_returns() {
        assert_eq!(Errno::result(0), Ok(0));
        assert_eq!(Errno::result(7), Ok(7));
        assert_eq!(Errno::result(-22), Err(Errno::EINVAL));
        assert_eq!(Errno::result(-100_000), Err(Errno::EIO));
        assert_eq!(Errno::result(i64::MIN), Err(Errno::EIO));
    }

    #[test]
    fn from_code_round_trips_and_rejects_unknown() {
        for &e in Errno::ALL {
            assert_eq!(Errno::from_code(e.code()), Some(e));
        }
        assert_eq!(Errno::from_code(0), None);
        assert_eq!(Errno::from_code(15), None);
        assert_eq!(Errno::from_code(-1), None);
    }
}
