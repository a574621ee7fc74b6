//! The lexemes a hand-written scanner of `.bma` text must step over whole: comments and
//! strings, by the grammar's own rules (`COMMENT` and `string` in grammar/bma.pest).
//!
//! The parser is pest's, but the formatter ([`crate::fmt`]), error recovery
//! ([`super::recover`]), the checker's reuse key ([`crate::check`]) and the editor features
//! ([`crate::ide`]) scan text that may not parse, byte by byte, looking for braces, words or
//! comments. They all ask [`skip_at`], so a `//` inside a string or a `"` inside a comment
//! means to each of them what it means to the parser.
//!
//! **Invariant:** where the text from a `"` parses as the grammar's `string`, [`skip_at`]
//! ends where that rule ends (pinned by a test against the parser).

/// What [`skip_at`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lexeme {
    /// `//` to the end of its line.
    LineComment,
    /// `/* ... */`.
    BlockComment,
    /// `"..."`.
    String,
}

/// A comment or string: its kind, the offset just past it, and whether it was closed (a
/// block comment by `*/`, a string by `"`; a line comment always is).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skip {
    pub lexeme: Lexeme,
    pub end: usize,
    pub closed: bool,
}

/// The comment or string that starts at byte `i` of `text`, if one does.
/// - `//` runs to its line break (`\n` or `\r`, the grammar's `NEWLINE`), excluded;
/// - `/*` to just past the next `*/`, or to the end of the text when there is none;
/// - `"` to just past the closing `"`. A `\` takes the character after it, whatever it is
///   (the grammar's `"\\" ~ ANY`, a line break included); an unclosed string ends before the
///   line break that ends its line, or at the end of the text.
///
/// `i` must be a character boundary (any byte of ASCII `/` or `"` is one).
pub fn skip_at(text: &str, i: usize) -> Option<Skip> {
    let rest = text.get(i..)?;
    if rest.starts_with("//") {
        let end = rest.find(['\n', '\r']).map_or(text.len(), |n| i + n);
        return Some(Skip { lexeme: Lexeme::LineComment, end, closed: true });
    }
    if let Some(body) = rest.strip_prefix("/*") {
        let (end, closed) = body.find("*/").map_or((text.len(), false), |n| (i + 2 + n + 2, true));
        return Some(Skip { lexeme: Lexeme::BlockComment, end, closed });
    }
    let body = rest.strip_prefix('"')?;
    let string = |end, closed| Some(Skip { lexeme: Lexeme::String, end, closed });
    let mut chars = body.char_indices();
    while let Some((n, ch)) = chars.next() {
        match ch {
            '"' => return string(i + 1 + n + 1, true),
            '\n' | '\r' => return string(i + 1 + n, false),
            '\\' => {
                chars.next();
            }
            _ => {}
        }
    }
    string(text.len(), false)
}

/// The length in bytes of the whitespace and comments that `s` starts with (an unclosed
/// block comment counts to the end).
pub fn trivia_len(s: &str) -> usize {
    let mut i = 0;
    loop {
        i = s.len() - s[i..].trim_start().len();
        match skip_at(s, i) {
            Some(skip) if skip.lexeme != Lexeme::String => i = skip.end,
            _ => return i,
        }
    }
}

#[cfg(test)]
mod tests {
    use pest::Parser;

    use super::*;
    use crate::syntax::{BmaParser, Rule};

    /// Strings that stress the rules: escapes of a quote, of a backslash, of a line break,
    /// of a multi-byte character; comment markers inside; unclosed ones.
    const STRINGS: [&str; 10] = [
        r#""plain" rest"#,
        r#""a \"quoted\" word" rest"#,
        r#""ends in a backslash \\" rest"#,
        "\"an escaped \\\nline break\" rest",
        r#""// not a comment /* nor this */" rest"#,
        "\"\\é multi-byte\" rest",
        "\"unclosed\nnext line\"",
        "\"unclosed at a carriage return\r\n",
        "\"unclosed to the end",
        "\"\"",
    ];

    #[test]
    fn a_string_ends_where_the_grammar_ends_it() {
        for s in STRINGS {
            let skip = skip_at(s, 0).expect("a string");
            assert_eq!(skip.lexeme, Lexeme::String, "{s:?}");
            match BmaParser::parse(Rule::string, s) {
                Ok(pairs) => {
                    let end = pairs.into_iter().next().expect("a pair").as_span().end();
                    assert_eq!((skip.end, skip.closed), (end, true), "{s:?}");
                }
                Err(_) => assert!(!skip.closed, "{s:?}: the parser refuses it, so it is unclosed"),
            }
        }
        let end = |s: &str| skip_at(s, 0).map(|s| s.end);
        assert_eq!(end(STRINGS[6]), Some(9), "before the line break");
        assert_eq!(end(STRINGS[7]), Some(STRINGS[7].len() - 2), "before the carriage return");
        assert_eq!(end(STRINGS[8]), Some(STRINGS[8].len()), "at the end of the text");
    }

    #[test]
    fn comments_end_where_the_grammar_ends_them() {
        for (text, end, closed) in [
            ("// to the line break\nnext", 20, true),
            ("// a \"quote\" inside\r\nnext", 19, true),
            ("// to the end", 13, true),
            ("/* one */ two", 9, true),
            ("/* \"*/\" */", 6, true),
            ("/*/ unclosed", 12, false),
        ] {
            let skip = skip_at(text, 0).expect("a comment");
            assert_eq!((skip.end, skip.closed), (end, closed), "{text:?}");
        }
        assert_eq!(skip_at("a // b", 0), None, "only what starts at `i`");
        assert_eq!(skip_at("a // b", 2).map(|s| s.lexeme), Some(Lexeme::LineComment));
        assert_eq!(skip_at("/", 0), None);
    }

    #[test]
    fn trivia_is_whitespace_and_comments_but_no_string() {
        assert_eq!(trivia_len("  // c\n  /* d */ x"), 17);
        assert_eq!(trivia_len(" \"s\""), 1);
        assert_eq!(trivia_len("/* unclosed"), 11);
        assert_eq!(trivia_len(""), 0);
    }
}
