//! Command templates of `trial { command = [...] }`: the `{name}` placeholders of an
//! argument, read once here for both the checker and the runner.
//!
//! Takes an argument's text; gives its [`Piece`]s (literal text and placeholder names),
//! or the reason it cannot be read (an unclosed `{`). `{{` and `}}` stand for literal
//! braces. [`render`] fills the pieces from a point and the built-ins, and [`arg_text`]
//! writes a value as one argv element: a float in the shortest text that reads back to
//! the same `f64`, a string as itself (no quotes), never through a shell.
//!
//! **Invariant:** `parse` of any text either fails or gives pieces whose literal parts,
//! with the placeholders written back as `{name}`, are the text with `{{`/`}}` unescaped.

use std::collections::BTreeMap;
use std::ops::Range;

use super::{Point, Value};

/// The names a placeholder may take besides the parameters: the trial's number, its
/// seed, its working folder and its device.
pub const BUILTINS: [&str; 4] = ["trial", "seed", "dir", "device"];

/// A part of a command argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    /// `{name}`: the byte range of `name` in the argument's text.
    Name(String, Range<usize>),
}

/// The pieces of one argument's text.
pub fn parse(text: &str) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '{' if chars.peek().is_some_and(|(_, n)| *n == '{') => {
                chars.next();
                lit.push('{');
            }
            '}' if chars.peek().is_some_and(|(_, n)| *n == '}') => {
                chars.next();
                lit.push('}');
            }
            '{' => {
                let start = i + 1;
                let Some(len) = text[start..].find('}') else {
                    return Err(format!("`{{` at byte {i} is never closed (write `{{{{` for a literal brace)"));
                };
                let name = text[start..start + len].trim();
                let ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                if !ok {
                    return Err(format!(
                        "`{{{}}}` is not a placeholder: write `{{name}}` with a parameter's name",
                        name
                    ));
                }
                if !lit.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut lit)));
                }
                out.push(Piece::Name(name.to_string(), start..start + len));
                while chars.peek().is_some_and(|(j, _)| *j <= start + len) {
                    chars.next();
                }
            }
            '}' => return Err(format!("`}}` at byte {i} closes nothing (write `}}}}` for a literal brace)")),
            c => lit.push(c),
        }
    }
    if !lit.is_empty() {
        out.push(Piece::Text(lit));
    }
    Ok(out)
}

/// One argument filled in: each placeholder replaced by the point's value or a built-in's.
/// An error names the placeholder that has no value (a parameter absent at this point).
pub fn render(pieces: &[Piece], point: &Point, builtins: &BTreeMap<&str, String>) -> Result<String, String> {
    let mut out = String::new();
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Name(n, _) => match (point.get(n), builtins.get(n.as_str())) {
                (Some(v), _) => out.push_str(&arg_text(v)),
                (None, Some(b)) => out.push_str(b),
                (None, None) => return Err(format!("`{{{n}}}` has no value at this point")),
            },
        }
    }
    Ok(out)
}

/// A value as program input: round-trip floats, bare strings and symbols.
pub fn arg_text(v: &Value) -> String {
    match v {
        // Rust's `Display` for f64 is the shortest text that parses back to the same value.
        Value::Float(x) => format!("{x}"),
        Value::Str(s) => s.clone(),
        Value::Duration(d) => format!("{}", d.seconds),
        Value::List(items) => items.iter().map(arg_text).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_the_catalogue_placeholders() {
        let documented: Vec<&str> = crate::catalogue::trial::PLACEHOLDERS.iter().map(|d| d.name).collect();
        assert_eq!(documented, BUILTINS);
    }

    #[test]
    fn placeholders_and_escapes() {
        let p = parse("--lr={lr}x{{y}}").expect("parses");
        assert_eq!(p, vec![Piece::Text("--lr=".into()), Piece::Name("lr".into(), 6..8), Piece::Text("x{y}".into())]);
        assert!(parse("{lr").is_err());
        assert!(parse("a}b").is_err());
        assert!(parse("{1x}").is_err());
    }

    #[test]
    fn floats_round_trip() {
        for x in [0.1, 1e-5, 3.0, 0.000_123_456_789_012_345_67, f64::MAX, 2.5e300] {
            let text = arg_text(&Value::Float(x));
            assert_eq!(text.parse::<f64>().expect("reads back"), x, "{text}");
        }
        let point: Point = [("lr".to_string(), Value::Float(0.1))].into_iter().collect();
        let b: BTreeMap<&str, String> = [("trial", "7".to_string())].into_iter().collect();
        let pieces = parse("{lr}/{trial}").expect("parses");
        assert_eq!(render(&pieces, &point, &b).expect("renders"), "0.1/7");
        assert!(render(&parse("{depth}").expect("parses"), &point, &b).is_err());
    }
}
