//! `xen_version` (`version.h`).

pub const XENVER_VERSION: u32 = 0;
pub const XENVER_EXTRAVERSION: u32 = 1;
pub const XENVER_COMPILE_INFO: u32 = 2;
pub const XENVER_CAPABILITIES: u32 = 3;
pub const XENVER_CHANGESET: u32 = 4;
pub const XENVER_PLATFORM_PARAMETERS: u32 = 5;
pub const XENVER_GET_FEATURES: u32 = 6;
pub const XENVER_PAGESIZE: u32 = 7;

/// `xen_extraversion_t`: e.g. `".7"`, NUL-terminated.
pub type ExtraVersion = [u8; 16];
/// `xen_capabilities_info_t`: e.g. `"xen-3.0-x86_64 hvm-3.0-x86_32 ..."`.
pub type CapabilitiesInfo = [u8; 1024];

/// Split the `XENVER_version` result into (major, minor).
pub fn split(version: u32) -> (u16, u16) {
    ((version >> 16) as u16, version as u16)
}
