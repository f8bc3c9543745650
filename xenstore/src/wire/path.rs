//! Path rules as cxenstored enforces them (`is_valid_nodename`).
//!
//! * characters: `[A-Za-z0-9-/_@]`;
//! * no `//`, and no trailing `/` except for the root `/` itself;
//! * absolute paths (`/...`) at most `XENSTORE_ABS_PATH_MAX` (3072) bytes, and the part
//!   below `/local/domain/<domid>/` (the whole path elsewhere) at most
//!   `XENSTORE_REL_PATH_MAX` (2048) bytes, for every connection including dom0's (checked
//!   against cxenstored 4.17: `/tool/` + 2042 bytes is accepted, one more is `EINVAL`);
//! * relative paths (no leading `/`) are relative to the connection's domain home
//!   `/local/domain/<domid>` and at most `XENSTORE_REL_PATH_MAX` bytes;
//! * `@`-prefixed special paths (`@introduceDomain`, `@releaseDomain`) are allowed only
//!   where xenstored allows them: watch paths and GET/SET_PERMS.
//!
//! oxenstored applies a lower, configurable limit (`quota-path-max`, 1024 by default) on
//! top; that is a quota of the daemon, not a protocol rule, so it is not checked here.

use super::PathError;

pub const ABS_PATH_MAX: usize = 3072;
pub const REL_PATH_MAX: usize = 2048;

/// `@introduceDomain`: fires when a domain is introduced to xenstored.
pub const INTRODUCE_DOMAIN: &str = "@introduceDomain";
/// `@releaseDomain`: fires when a domain dies or is released.
pub const RELEASE_DOMAIN: &str = "@releaseDomain";

/// Where a path is used; decides whether `@` special paths are acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathUse {
    /// A real node (READ, WRITE, MKDIR, RM, DIRECTORY, DIRECTORY_PART).
    Node,
    /// A watch path or a GET/SET_PERMS target: special `@` paths allowed.
    SpecialAllowed,
}

fn valid_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'/' | b'_' | b'@')
}

/// Checks `path` against the rules above.
pub fn validate(path: &str, usage: PathUse) -> Result<(), PathError> {
    let bytes = path.as_bytes();
    if bytes.is_empty() {
        return Err(PathError::Empty);
    }
    if let Some(at) = bytes.iter().position(|b| !valid_char(*b)) {
        return Err(PathError::InvalidChar(at));
    }
    if bytes[0] == b'@' {
        if usage != PathUse::SpecialAllowed {
            return Err(PathError::SpecialNotAllowed);
        }
        // Special paths are single names; cxenstored only checks characters and length.
        if bytes.len() > ABS_PATH_MAX {
            return Err(PathError::TooLong);
        }
        return Ok(());
    }
    if bytes.len() > 1 && bytes[bytes.len() - 1] == b'/' {
        return Err(PathError::TrailingSlash);
    }
    if bytes.windows(2).any(|w| w == b"//") {
        return Err(PathError::DoubleSlash);
    }
    if bytes[0] == b'/' {
        if bytes.len() > ABS_PATH_MAX {
            return Err(PathError::TooLong);
        }
        if bytes.len() - domain_prefix_len(path) > REL_PATH_MAX {
            return Err(PathError::TooLong);
        }
    } else if bytes.len() > REL_PATH_MAX {
        return Err(PathError::TooLong);
    }
    Ok(())
}

/// Length of a leading `/local/domain/<digits>/`, 0 if there is none.
fn domain_prefix_len(path: &str) -> usize {
    const PREFIX: &str = "/local/domain/";
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return 0;
    };
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    // cxenstored scans the domid with `%5u`.
    if digits == 0 || digits > 5 || rest.as_bytes().get(digits) != Some(&b'/') {
        return 0;
    }
    PREFIX.len() + digits + 1
}

/// True for `@`-prefixed special watch paths.
pub fn is_special(path: &str) -> bool {
    path.starts_with('@')
}

/// Joins a parent path and a child name the way xenstore tools do (`/` + `a` = `/a`).
pub fn join(parent: &str, child: &str) -> alloc::string::String {
    let mut out = alloc::string::String::with_capacity(parent.len() + child.len() + 1);
    out.push_str(parent);
    if !parent.ends_with('/') {
        out.push('/');
    }
    out.push_str(child);
    out
}
