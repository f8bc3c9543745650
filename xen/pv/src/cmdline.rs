//! The guest command line (`extra=` in the xl config), as words and `key=value` pairs.

/// A parsed view of the command line. Words are separated by ASCII whitespace;
/// a word `key=value` defines `key` (the last definition wins).
#[derive(Clone, Copy, Debug)]
pub struct CmdLine<'a> {
    raw: &'a str,
}

impl<'a> CmdLine<'a> {
    pub fn new(raw: &'a str) -> Self {
        CmdLine { raw: raw.trim() }
    }

    /// The command line as Xen passed it (trimmed).
    pub fn as_str(&self) -> &'a str {
        self.raw
    }

    /// All words in order.
    pub fn words(&self) -> impl Iterator<Item = &'a str> + 'a {
        self.raw.split_ascii_whitespace()
    }

    /// Whether a bare word (a flag such as `panic`) or a `key=...` with this key is present.
    pub fn has(&self, flag: &str) -> bool {
        self.words()
            .any(|w| w == flag || w.split_once('=').is_some_and(|(k, _)| k == flag))
    }

    /// The value of the last `key=value` for `key`.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.words()
            .filter_map(|w| w.split_once('='))
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .last()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_flags_and_values() {
        let c = CmdLine::new("  greeting=hi  verbose loglevel=info greeting=hello ");
        assert_eq!(
            c.as_str(),
            "greeting=hi  verbose loglevel=info greeting=hello"
        );
        assert_eq!(c.get("greeting"), Some("hello"));
        assert_eq!(c.get("loglevel"), Some("info"));
        assert_eq!(c.get("verbose"), None);
        assert!(c.has("verbose"));
        assert!(c.has("loglevel"));
        assert!(!c.has("panic"));
        assert_eq!(c.words().count(), 4);
        assert_eq!(CmdLine::new("").words().count(), 0);
    }
}
