//! Tokens of a filter expression, each with its byte offset for error carets.

use super::FilterError;

/// Comparison operators, in symbol (`>=`) or word (`ge`) form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
}

impl CmpOp {
    /// nfdump's word forms of the comparators (`eq`, `gt`, ...), plus `ne`.
    pub fn from_word(w: &str) -> Option<CmpOp> {
        Some(match w.to_ascii_lowercase().as_str() {
            "eq" => CmpOp::Eq,
            "ne" => CmpOp::Ne,
            "lt" => CmpOp::Lt,
            "gt" => CmpOp::Gt,
            "le" => CmpOp::Le,
            "ge" => CmpOp::Ge,
            _ => return None,
        })
    }

    #[inline]
    pub fn eval<T: PartialOrd>(self, a: T, b: T) -> bool {
        match self {
            CmpOp::Eq => a == b,
            CmpOp::Ne => a != b,
            CmpOp::Lt => a < b,
            CmpOp::Gt => a > b,
            CmpOp::Le => a <= b,
            CmpOp::Ge => a >= b,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tok<'a> {
    /// Keywords, numbers, addresses, prefixes, flag letters: any run of characters without the specials below.
    Word(&'a str),
    /// `@name`: a reference to a named list.
    ListRef(&'a str),
    LParen,
    RParen,
    LBracket,
    RBracket,
    Comma,
    Cmp(CmpOp),
    AndAnd,
    OrOr,
    Bang,
    End,
}

#[derive(Debug, Clone, Copy)]
pub struct Token<'a> {
    pub tok: Tok<'a>,
    /// Byte offset of the token's first character.
    pub pos: usize,
}

impl Token<'_> {
    /// How the token reads in an error message.
    pub fn describe(&self) -> String {
        match self.tok {
            Tok::Word(w) => format!("'{w}'"),
            Tok::ListRef(n) => format!("'@{n}'"),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::LBracket => "'['".into(),
            Tok::RBracket => "']'".into(),
            Tok::Comma => "','".into(),
            Tok::Cmp(op) => format!(
                "'{}'",
                match op {
                    CmpOp::Eq => "=",
                    CmpOp::Ne => "!=",
                    CmpOp::Lt => "<",
                    CmpOp::Gt => ">",
                    CmpOp::Le => "<=",
                    CmpOp::Ge => ">=",
                }
            ),
            Tok::AndAnd => "'&&'".into(),
            Tok::OrOr => "'||'".into(),
            Tok::Bang => "'!'".into(),
            Tok::End => "the end of the filter".into(),
        }
    }
}

const SPECIAL: &str = "()[],=<>!&|@#";

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Split `text` into tokens; the last one is always `End` at `text.len()`. `#` starts a comment to the line end.
pub fn tokenize(text: &str) -> Result<Vec<Token<'_>>, FilterError> {
    let mut out = Vec::new();
    let mut it = text.char_indices().peekable();
    while let Some((pos, c)) = it.next() {
        let next_is = |it: &mut std::iter::Peekable<std::str::CharIndices>, want: char| {
            if it.peek().map(|&(_, n)| n) == Some(want) {
                it.next();
                true
            } else {
                false
            }
        };
        let tok = match c {
            c if c.is_whitespace() => continue,
            '#' => {
                while it.peek().is_some_and(|&(_, n)| n != '\n') {
                    it.next();
                }
                continue;
            }
            '(' => Tok::LParen,
            ')' => Tok::RParen,
            '[' => Tok::LBracket,
            ']' => Tok::RBracket,
            ',' => Tok::Comma,
            '=' => {
                next_is(&mut it, '=');
                Tok::Cmp(CmpOp::Eq)
            }
            '<' => Tok::Cmp(if next_is(&mut it, '=') {
                CmpOp::Le
            } else {
                CmpOp::Lt
            }),
            '>' => Tok::Cmp(if next_is(&mut it, '=') {
                CmpOp::Ge
            } else {
                CmpOp::Gt
            }),
            '!' => {
                if next_is(&mut it, '=') {
                    Tok::Cmp(CmpOp::Ne)
                } else {
                    Tok::Bang
                }
            }
            '&' | '|' => {
                if !next_is(&mut it, c) {
                    return Err(FilterError::new(
                        pos,
                        format!("expected '{c}{c}', found a single '{c}'"),
                    ));
                }
                if c == '&' {
                    Tok::AndAnd
                } else {
                    Tok::OrOr
                }
            }
            '@' => {
                let start = pos + 1;
                let mut end = start;
                while let Some(&(i, n)) = it.peek() {
                    if !is_name_char(n) {
                        break;
                    }
                    end = i + n.len_utf8();
                    it.next();
                }
                if end == start {
                    return Err(FilterError::new(pos, "expected a list name after '@'"));
                }
                Tok::ListRef(&text[start..end])
            }
            _ => {
                let mut end = pos + c.len_utf8();
                while let Some(&(i, n)) = it.peek() {
                    if n.is_whitespace() || SPECIAL.contains(n) {
                        break;
                    }
                    end = i + n.len_utf8();
                    it.next();
                }
                Tok::Word(&text[pos..end])
            }
        };
        out.push(Token { tok, pos });
    }
    out.push(Token {
        tok: Tok::End,
        pos: text.len(),
    });
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<(Tok<'_>, usize)> {
        tokenize(s)
            .unwrap()
            .into_iter()
            .map(|t| (t.tok, t.pos))
            .collect()
    }

    #[test]
    fn symbols_words_and_positions() {
        assert_eq!(
            toks("port>=1023&&!(src in @x)"),
            vec![
                (Tok::Word("port"), 0),
                (Tok::Cmp(CmpOp::Ge), 4),
                (Tok::Word("1023"), 6),
                (Tok::AndAnd, 10),
                (Tok::Bang, 12),
                (Tok::LParen, 13),
                (Tok::Word("src"), 14),
                (Tok::Word("in"), 18),
                (Tok::ListRef("x"), 21),
                (Tok::RParen, 23),
                (Tok::End, 24),
            ]
        );
        assert_eq!(toks("a != b == c = d")[1].0, Tok::Cmp(CmpOp::Ne));
        assert_eq!(toks("a != b == c = d")[3].0, Tok::Cmp(CmpOp::Eq));
        assert_eq!(
            toks("net 2001:db8::/32 # comment\nor")[1].0,
            Tok::Word("2001:db8::/32")
        );
        assert_eq!(
            toks("net 2001:db8::/32 # comment\nor")[2].0,
            Tok::Word("or")
        );
    }

    #[test]
    fn lone_ampersand_and_empty_list_name_are_errors() {
        assert_eq!(tokenize("a & b").unwrap_err().pos, 2);
        assert_eq!(tokenize("a | b").unwrap_err().pos, 2);
        assert_eq!(tokenize("src in @ x").unwrap_err().pos, 7);
    }

    #[test]
    fn non_ascii_stays_on_char_boundaries() {
        let t = toks("ü é");
        assert_eq!(t[0], (Tok::Word("ü"), 0));
        assert_eq!(t[1], (Tok::Word("é"), 3));
        assert!(tokenize("@é").is_err());
    }
}
