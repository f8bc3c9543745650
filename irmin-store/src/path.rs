//! Keys are `/`-separated paths (`local/domain/1/name`); each step becomes a tree entry
//! name, so each step must be a name git accepts.

use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::error::{Error, Result};
use crate::object::valid_entry_name;

/// A validated key: a sequence of non-empty steps. The empty path is the root.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Path {
    steps: Vec<String>,
}

impl Path {
    pub fn root() -> Self {
        Self::default()
    }

    /// Parse `a/b/c`. `""` is the root. Rejects empty steps (`a//b`, leading or trailing
    /// `/`), `.`, `..`, `.git` and NUL.
    pub fn parse(s: &str) -> Result<Self> {
        if s.is_empty() {
            return Ok(Self::root());
        }
        let mut steps = Vec::new();
        for step in s.split('/') {
            if !valid_entry_name(step.as_bytes()) {
                return Err(Error::InvalidPath(s.to_string()));
            }
            steps.push(step.to_string());
        }
        Ok(Path { steps })
    }

    pub fn from_steps<I, S>(steps: I) -> Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let steps: Vec<String> = steps.into_iter().map(Into::into).collect();
        for s in &steps {
            if !valid_entry_name(s.as_bytes()) {
                return Err(Error::InvalidPath(steps.join("/")));
            }
        }
        Ok(Path { steps })
    }

    pub fn steps(&self) -> &[String] {
        &self.steps
    }

    pub fn is_root(&self) -> bool {
        self.steps.is_empty()
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// This path with one more step (the step must be a valid name).
    pub fn child(&self, step: &str) -> Result<Path> {
        if !valid_entry_name(step.as_bytes()) {
            return Err(Error::InvalidPath(step.to_string()));
        }
        let mut steps = self.steps.clone();
        steps.push(step.to_string());
        Ok(Path { steps })
    }
}

impl core::fmt::Display for Path {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        for (i, s) in self.steps.iter().enumerate() {
            if i > 0 {
                f.write_str("/")?;
            }
            f.write_str(s)?;
        }
        Ok(())
    }
}

/// Git's `check-ref-format` rules for a full ref name such as `refs/heads/main`.
pub fn check_ref_name(name: &str) -> Result<()> {
    let bad = || Error::InvalidRefName(name.to_string());
    if name.is_empty() || name == "@" || name.ends_with('/') || name.ends_with('.') {
        return Err(bad());
    }
    if name.contains("..") || name.contains("@{") || name.contains("//") {
        return Err(bad());
    }
    for c in name.chars() {
        if c.is_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\') {
            return Err(bad());
        }
    }
    for comp in name.split('/') {
        if comp.is_empty() || comp.starts_with('.') || comp.ends_with(".lock") {
            return Err(bad());
        }
    }
    Ok(())
}

/// `refs/heads/<branch>` after validating the branch name.
pub fn branch_ref(branch: &str) -> Result<String> {
    let full = alloc::format!("refs/heads/{branch}");
    check_ref_name(&full)?;
    Ok(full)
}

/// `refs/tags/<tag>` after validating the tag name.
pub fn tag_ref(tag: &str) -> Result<String> {
    let full = alloc::format!("refs/tags/{tag}");
    check_ref_name(&full)?;
    Ok(full)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_paths() {
        assert_eq!(Path::parse("a/b").unwrap().steps(), ["a", "b"]);
        assert!(Path::parse("").unwrap().is_root());
        for bad in ["/a", "a/", "a//b", "a/../b", ".", ".git/x", "a\0b"] {
            assert!(
                matches!(Path::parse(bad), Err(Error::InvalidPath(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn ref_names() {
        assert!(branch_ref("main").is_ok());
        assert!(branch_ref("feature/x").is_ok());
        for bad in ["", "a..b", "a b", ".x", "x.lock", "a/", "a@{1", "c:d"] {
            assert!(branch_ref(bad).is_err(), "{bad}");
        }
    }
}
