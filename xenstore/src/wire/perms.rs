//! Permission strings: one access letter (`n`, `r`, `w`, `b`) followed by a decimal domid.
//!
//! The first entry of a node's list names its owner (who always has full access) and the
//! access every domain not listed later gets; later entries grant access to one domain each.

use alloc::vec::Vec;
use core::fmt;

use super::WireError;
use super::strings::{StringList, parse_decimal};

/// A Xen domain id (`domid_t`).
pub type DomId = u16;

/// The access one permission entry grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// `n`: no access.
    None,
    /// `r`: read.
    Read,
    /// `w`: write.
    Write,
    /// `b`: both read and write.
    Both,
}

impl Access {
    pub fn letter(self) -> u8 {
        match self {
            Access::None => b'n',
            Access::Read => b'r',
            Access::Write => b'w',
            Access::Both => b'b',
        }
    }
    pub fn from_letter(letter: u8) -> Option<Self> {
        match letter {
            b'n' => Some(Access::None),
            b'r' => Some(Access::Read),
            b'w' => Some(Access::Write),
            b'b' => Some(Access::Both),
            _ => None,
        }
    }
    pub fn can_read(self) -> bool {
        matches!(self, Access::Read | Access::Both)
    }
    pub fn can_write(self) -> bool {
        matches!(self, Access::Write | Access::Both)
    }
}

/// One entry of a permission list, e.g. `r5`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permission {
    pub domid: DomId,
    pub access: Access,
}

impl Permission {
    pub const fn new(domid: DomId, access: Access) -> Self {
        Permission { domid, access }
    }

    /// Parses one entry (without nul), strictly: a letter and a plain decimal domid.
    pub fn parse(s: &[u8]) -> Result<Self, WireError> {
        let (&letter, digits) = s.split_first().ok_or(WireError::InvalidPermission)?;
        let access = Access::from_letter(letter).ok_or(WireError::InvalidPermission)?;
        let domid = parse_decimal(digits).map_err(|_| WireError::InvalidPermission)?;
        let domid = DomId::try_from(domid).map_err(|_| WireError::InvalidPermission)?;
        Ok(Permission { domid, access })
    }

    /// Length of the encoded entry without its nul.
    pub fn encoded_len(&self) -> usize {
        1 + decimal_len(self.domid as u64)
    }

    /// Writes the entry (without nul) into `out`, which must be `encoded_len()` long.
    pub fn write_to(&self, out: &mut [u8]) {
        out[0] = self.access.letter();
        write_decimal(self.domid as u64, &mut out[1..]);
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.access.letter() as char, self.domid)
    }
}

/// A validated, non-empty list of nul-terminated permission strings in a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PermList<'a> {
    strings: StringList<'a>,
}

impl<'a> PermList<'a> {
    /// Validates `bytes` as one or more nul-terminated permission entries.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, WireError> {
        let strings = StringList::parse(bytes)?;
        if strings.is_empty() {
            return Err(WireError::ArgumentCount {
                expected: 1,
                found: 0,
            });
        }
        for s in strings.iter_bytes() {
            Permission::parse(s)?;
        }
        Ok(PermList { strings })
    }

    pub fn iter(&self) -> impl Iterator<Item = Permission> + 'a {
        // Validated in `parse`.
        self.strings
            .iter_bytes()
            .filter_map(|s| Permission::parse(s).ok())
    }

    pub fn to_vec(&self) -> Vec<Permission> {
        self.iter().collect()
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.strings.as_bytes()
    }
}

pub(crate) fn decimal_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 10 {
        v /= 10;
        n += 1;
    }
    n
}

/// Writes `v` in decimal into exactly `decimal_len(v)` bytes of `out`.
pub(crate) fn write_decimal(mut v: u64, out: &mut [u8]) {
    let n = decimal_len(v);
    for i in (0..n).rev() {
        out[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
}
