//! Errors that point into a definitions file: `file:line:column`, the line, and a caret under the spot.

use std::fmt;

/// One error in a definitions file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceError {
    /// The file's path as the user gave it, or `built-in`.
    pub origin: String,
    /// 1-based line and column (in characters) of the offending spot.
    pub line: usize,
    pub column: usize,
    /// The whole line, for the caret display.
    pub line_text: String,
    pub message: String,
}

impl SourceError {
    /// An error at byte `offset` of `src`.
    pub fn at(origin: &str, src: &str, offset: usize, message: impl Into<String>) -> SourceError {
        let offset = floor_char_boundary(src, offset.min(src.len()));
        let line_start = src[..offset].rfind('\n').map_or(0, |i| i + 1);
        let line_end = src[offset..].find('\n').map_or(src.len(), |i| offset + i);
        let line = src[..offset].matches('\n').count() + 1;
        let column = src[line_start..offset].chars().count() + 1;
        SourceError {
            origin: origin.to_string(),
            line,
            column,
            line_text: src[line_start..line_end].trim_end_matches('\r').to_string(),
            message: message.into(),
        }
    }

    /// An error about the file as a whole (it could not be read, say).
    pub fn whole_file(origin: &str, message: impl Into<String>) -> SourceError {
        SourceError {
            origin: origin.to_string(),
            line: 0,
            column: 0,
            line_text: String::new(),
            message: message.into(),
        }
    }
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            return write!(f, "{}: {}", self.origin, self.message);
        }
        writeln!(
            f,
            "{}:{}:{}: {}",
            self.origin, self.line, self.column, self.message
        )?;
        let gutter = self.line.to_string();
        let pad = " ".repeat(gutter.len());
        writeln!(f, "{pad} |")?;
        writeln!(f, "{gutter} | {}", self.line_text)?;
        // Tabs stay tabs so the caret lines up under them.
        let lead: String = self
            .line_text
            .chars()
            .take(self.column - 1)
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        write!(f, "{pad} | {lead}^")
    }
}

impl std::error::Error for SourceError {}

/// All the errors found in one definitions file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceErrors(pub Vec<SourceError>);

impl fmt::Display for SourceErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SourceErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caret_points_at_the_column() {
        let src = "version = \"1\"\n[[rule]]\nkey = \"peer\"\n";
        let off = src.find("\"peer").unwrap();
        let e = SourceError::at("site.toml", src, off, "expected src, dst or host");
        assert_eq!((e.line, e.column), (3, 7));
        let shown = e.to_string();
        assert!(shown.starts_with("site.toml:3:7: expected src, dst or host"));
        assert!(
            shown.ends_with("3 | key = \"peer\"\n  |       ^"),
            "{shown}"
        );
    }

    #[test]
    fn offsets_past_the_end_are_clamped() {
        let e = SourceError::at("f", "abc", 99, "x");
        assert_eq!((e.line, e.column), (1, 4));
    }
}
