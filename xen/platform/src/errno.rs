//! Xen's error numbers and grant-operation statuses, defined once in `xen-abi` (they are
//! part of Xen's public ABI) and re-exported here for protocol code.

pub use xen_abi::errno::Errno;
pub use xen_abi::grant_table::GrantStatus;
