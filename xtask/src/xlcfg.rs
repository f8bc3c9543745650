//! Just enough of the `xl.cfg(5)` syntax to read the settings the tooling needs (`name`,
//! `kernel`, `ramdisk`...) before handing the file to `xl` itself.
//!
//! The format is a list of `key = value` settings separated by newlines or `;`, where a value
//! is a quoted string, a number or a `[...]` list (which may span lines), and `#` starts a
//! comment outside quotes.

use std::collections::BTreeMap;
use std::fmt;

/// The settings of one config file, with values kept as written (quotes included).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct XlConfig {
    settings: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ParseError {}

impl XlConfig {
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let mut settings = BTreeMap::new();
        let mut statement = String::new();
        let (mut quote, mut depth, mut line, mut start_line) = (None::<char>, 0i32, 1usize, 1usize);
        let mut chars = text.chars().peekable();
        let mut finish = |statement: &mut String, at: usize| -> Result<(), ParseError> {
            let s = statement.trim();
            if !s.is_empty() {
                let (key, value) = s.split_once('=').ok_or_else(|| ParseError {
                    line: at,
                    message: format!("expected `key = value`, found `{s}`"),
                })?;
                let key = key.trim();
                if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                    return Err(ParseError {
                        line: at,
                        message: format!("bad setting name `{key}`"),
                    });
                }
                settings.insert(key.to_owned(), value.trim().to_owned());
            }
            statement.clear();
            Ok(())
        };
        while let Some(c) = chars.next() {
            match (quote, c) {
                (Some(q), _) if c == q => quote = None,
                (Some(_), '\n') => {
                    return Err(ParseError {
                        line,
                        message: "unterminated string".into(),
                    });
                }
                (Some(_), _) => {}
                (None, '"' | '\'') => quote = Some(c),
                (None, '[') => depth += 1,
                (None, ']') => depth -= 1,
                (None, '#') => {
                    while chars.peek().is_some_and(|&n| n != '\n') {
                        chars.next();
                    }
                    continue;
                }
                (None, '\n' | ';') if depth <= 0 => {
                    finish(&mut statement, start_line)?;
                    if c == '\n' {
                        line += 1;
                    }
                    start_line = line;
                    continue;
                }
                _ => {}
            }
            if c == '\n' {
                line += 1;
            }
            statement.push(c);
        }
        if quote.is_some() || depth > 0 {
            return Err(ParseError {
                line,
                message: "unterminated string or list at end of file".into(),
            });
        }
        finish(&mut statement, start_line)?;
        Ok(Self { settings })
    }

    /// The raw value of a setting, as written.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.settings.get(key).map(String::as_str)
    }

    /// A string setting with its quotes removed; `None` if absent or not a quoted string.
    pub fn string(&self, key: &str) -> Option<&str> {
        let v = self.raw(key)?;
        let inner = v.strip_prefix('"').and_then(|v| v.strip_suffix('"'));
        inner.or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_strings_numbers_lists_and_comments() {
        let cfg = XlConfig::parse(
            "# a guest\nname = \"hello\" # trailing\nkernel='k#not-a-comment'\nmemory = 32; vcpus=1\n\
             vif = [ 'bridge=xenbr0',\n  'mac=00:16:3e:00:00:02' ]\nextra = \"a=b; c\"\n",
        )
        .unwrap();
        assert_eq!(cfg.string("name"), Some("hello"));
        assert_eq!(cfg.string("kernel"), Some("k#not-a-comment"));
        assert_eq!(cfg.raw("memory"), Some("32"));
        assert_eq!(cfg.raw("vcpus"), Some("1"));
        assert_eq!(cfg.string("memory"), None);
        assert!(cfg.raw("vif").unwrap().contains("mac=00:16:3e:00:00:02"));
        assert_eq!(cfg.string("extra"), Some("a=b; c"));
        assert_eq!(cfg.raw("ramdisk"), None);
    }

    #[test]
    fn reports_the_line_of_a_bad_statement() {
        let err = XlConfig::parse("name = \"x\"\n\nthis is wrong\n").unwrap_err();
        assert_eq!(err.line, 3);
        assert!(XlConfig::parse("extra = \"open\n").is_err());
        assert!(XlConfig::parse("disk = [ 'a',\n").is_err());
    }
}
