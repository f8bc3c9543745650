//! Errors: errno from the devices mapped to [`xen_platform::Error`], and [`OpenError`] for
//! setting the platform up.

use std::fmt;
use std::io;
use std::path::PathBuf;

use xen_platform::{Errno, Error, Op};

/// Maps an error of a device call to the platform error for `op`.
///
/// The Xen drivers pass Xen's errno through as the Linux errno (they are the same numbers on
/// Linux for every value Xen defines), so the mapping is by number; the few errnos with a
/// dedicated variant get it.
pub(crate) fn io_error(op: Op, e: &io::Error) -> Error {
    let Some(code) = e.raw_os_error() else {
        return Error::Xen {
            op,
            errno: Errno::EIO,
        };
    };
    match (op, code) {
        (_, libc::ENOMEM) => Error::OutOfMemory,
        (Op::Grant, libc::ENOSPC) => Error::GrantTableFull,
        _ => match Errno::from_code(code) {
            Some(errno) => Error::Xen { op, errno },
            None => Error::UnknownErrno { op, code },
        },
    }
}

/// Why [`crate::LinuxPlatform::open`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpenError {
    /// A `/dev/xen/*` device does not exist: this program is not running in a Xen domain,
    /// or the kernel module (`xen-evtchn`, `xen-gntdev`, `xen-gntalloc`) is not loaded.
    NotInXenDomain {
        /// The missing device.
        device: PathBuf,
    },
    /// A device exists but may not be opened (it is usually root-only).
    PermissionDenied {
        /// The device.
        device: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Opening or setting up a device failed otherwise.
    Device {
        /// The device.
        device: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// Not called from within a tokio runtime with I/O and time enabled
    /// (`Runtime::enter`, `#[tokio::main]`, `Builder::enable_all`).
    NoRuntime {
        /// What tokio said.
        source: io::Error,
    },
}

impl OpenError {
    pub(crate) fn device(device: &str, source: io::Error) -> OpenError {
        let device = PathBuf::from(device);
        match source.kind() {
            io::ErrorKind::NotFound => OpenError::NotInXenDomain { device },
            // ENODEV/ENXIO: the node exists but no driver is behind it.
            _ if matches!(source.raw_os_error(), Some(libc::ENODEV | libc::ENXIO)) => {
                OpenError::NotInXenDomain { device }
            }
            io::ErrorKind::PermissionDenied => OpenError::PermissionDenied { device, source },
            _ => OpenError::Device { device, source },
        }
    }
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::NotInXenDomain { device } => write!(
                f,
                "{} is missing: not running in a Xen domain (or the xen-evtchn, xen-gntdev and \
                 xen-gntalloc kernel modules are not loaded)",
                device.display()
            ),
            OpenError::PermissionDenied { device, source } => write!(
                f,
                "cannot open {}: {source} (the Xen devices are usually root-only)",
                device.display()
            ),
            OpenError::Device { device, source } => {
                write!(f, "cannot set up {}: {source}", device.display())
            }
            OpenError::NoRuntime { source } => write!(
                f,
                "the Linux Xen platform must be opened inside a tokio runtime with I/O and \
                 time enabled: {source}"
            ),
        }
    }
}

impl std::error::Error for OpenError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpenError::NotInXenDomain { .. } => None,
            OpenError::PermissionDenied { source, .. }
            | OpenError::Device { source, .. }
            | OpenError::NoRuntime { source } => Some(source),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_maps_to_the_operation() {
        let e = io::Error::from_raw_os_error(libc::ESRCH);
        assert_eq!(
            io_error(Op::BindInterdomain, &e),
            Error::Xen {
                op: Op::BindInterdomain,
                errno: Errno::ESRCH
            }
        );
        let e = io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(io_error(Op::Grant, &e), Error::GrantTableFull);
        let e = io::Error::from_raw_os_error(libc::ENOMEM);
        assert_eq!(io_error(Op::Map, &e), Error::OutOfMemory);
        let e = io::Error::from_raw_os_error(libc::EHWPOISON);
        assert_eq!(
            io_error(Op::Map, &e),
            Error::UnknownErrno {
                op: Op::Map,
                code: libc::EHWPOISON
            }
        );
    }

    #[test]
    fn missing_device_means_not_in_a_xen_domain() {
        let e = OpenError::device("/dev/xen/evtchn", io::ErrorKind::NotFound.into());
        assert!(matches!(e, OpenError::NotInXenDomain { .. }));
        assert!(e.to_string().contains("not running in a Xen domain"));
        let e = OpenError::device(
            "/dev/xen/gntdev",
            io::Error::from_raw_os_error(libc::EACCES),
        );
        assert!(matches!(e, OpenError::PermissionDenied { .. }));
    }
}
