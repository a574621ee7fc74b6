//! Hover and completion inside a `trial { }` section: its settings, and in a command string
//! after an open `{`, the parameters and the built-in placeholders.
//!
//! Takes the compiled file, the experiment around the offset and the offset; gives what
//! `ide::hover` and `ide::completions` show there, or `None` when the offset is not in the
//! section (or is somewhere the general answer serves). The IR keeps only the section's
//! keyword span, so the body is found in the text: its braces, strings and `//` comments
//! skipped. The names and docs are the catalogue's (`catalogue::trial`).

use std::ops::Range;

use super::{Completion, CompletionKind, describe_domain};
use crate::Compiled;
use crate::catalogue::trial::{PLACEHOLDERS, TRIAL_SETTINGS, placeholder, trial_setting};
use crate::ir::{Experiment, ParamKind};
use crate::source::FileId;
use crate::syntax::lex::{self, Lexeme};

/// Where in the section an offset is.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    /// Outside strings: a setting's name goes here.
    Key,
    /// In a string, after an open `{` and the name typed so far (`start..offset`).
    Placeholder(Range<usize>),
    /// In a string, not in a placeholder.
    Text,
}

/// Completions at `offset` when it is in `exp`'s `trial` section: its settings outside
/// strings; in a command string after `{`, the parameters and the built-ins.
pub(super) fn completions(c: &Compiled, exp: &Experiment, file: FileId, offset: u32) -> Option<Vec<Completion>> {
    let item = |label: &str, kind, detail: String| Completion {
        label: label.to_string(),
        kind,
        detail,
        insert: None,
        rank: 0,
    };
    match place(c, exp, file, offset)? {
        Place::Key => {
            Some(TRIAL_SETTINGS.iter().map(|d| item(d.name, CompletionKind::Setting, d.doc.to_string())).collect())
        }
        Place::Placeholder(_) => {
            let params = exp.space.params.iter().map(|p| {
                let detail = match &p.kind {
                    ParamKind::Free(d) => describe_domain(d),
                    ParamKind::Const(v) => format!("= {v}"),
                    ParamKind::Derived(_) => "derived".to_string(),
                };
                item(&p.name, CompletionKind::Parameter, detail)
            });
            let builtins =
                PLACEHOLDERS.iter().map(|d| item(d.name, CompletionKind::Placeholder, format!("built-in: {}", d.doc)));
            Some(params.chain(builtins).collect())
        }
        Place::Text => None,
    }
}

/// Hover for a setting's name or a built-in `{placeholder}` of `exp`'s `trial` section.
pub(super) fn hover(c: &Compiled, exp: &Experiment, file: FileId, offset: u32, word: &str) -> Option<String> {
    match place(c, exp, file, offset)? {
        Place::Key => trial_setting(word).map(|d| format!("trial setting `{}`: {}", d.name, d.doc)),
        Place::Placeholder(_) => placeholder(word).map(|d| format!("placeholder `{{{}}}`: {}", d.name, d.doc)),
        Place::Text => None,
    }
}

/// Whether `offset` is in a `{placeholder}` of one of `exp`'s command strings.
pub(super) fn in_placeholder(c: &Compiled, exp: &Experiment, file: FileId, offset: u32) -> bool {
    matches!(place(c, exp, file, offset), Some(Place::Placeholder(_)))
}

fn place(c: &Compiled, exp: &Experiment, file: FileId, offset: u32) -> Option<Place> {
    let trial = exp.trial.as_ref()?;
    if trial.span.file != file {
        return None;
    }
    let text = &c.sources.get(file)?.text;
    let offset = offset as usize;
    let body = body(text, trial.span.end as usize)?;
    if !(body.start <= offset && offset <= body.end) {
        return None;
    }
    Some(place_in(text, body.start, offset))
}

/// The body of the section whose keyword ends at `from`: after its `{`, up to its `}` (the
/// end of the text when it is not closed yet).
fn body(text: &str, from: usize) -> Option<Range<usize>> {
    let open = from + text.get(from..)?.find('{')? + 1;
    if !text.get(from..open - 1)?.trim().is_empty() {
        return None;
    }
    let mut depth = 0usize;
    let mut i = open;
    while i < text.len() {
        if let Some(skip) = lex::skip_at(text, i) {
            i = skip.end.max(i + 1);
            continue;
        }
        match text.as_bytes()[i] {
            b'{' => depth += 1,
            b'}' => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => return Some(open..i),
            },
            _ => {}
        }
        i += text[i..].chars().next().map_or(1, char::len_utf8);
    }
    Some(open..text.len())
}

/// What `offset` is in, reading the body from `start`.
fn place_in(text: &str, start: usize, offset: usize) -> Place {
    let mut i = start;
    while i < offset {
        match lex::skip_at(text, i) {
            // In this string (at its end too while it is still open, being typed).
            Some(skip)
                if skip.lexeme == Lexeme::String && (skip.end > offset || (skip.end == offset && !skip.closed)) =>
            {
                return place_in_string(text, i + 1, offset);
            }
            Some(skip) => i = skip.end.max(i + 1),
            None => i += text[i..].chars().next().map_or(1, char::len_utf8),
        }
    }
    Place::Key
}

/// What `offset` is in, inside a string whose text starts at `start`.
fn place_in_string(text: &str, start: usize, offset: usize) -> Place {
    // Where the name of an open `{` placeholder starts.
    let mut open: Option<usize> = None;
    let mut chars = text[start..offset].char_indices().map(|(i, c)| (start + i, c)).peekable();
    while let Some((i, ch)) = chars.next() {
        match ch {
            '\\' => {
                chars.next();
            }
            '{' if chars.peek().is_some_and(|(_, n)| *n == '{') => {
                chars.next();
            }
            '{' => open = Some(i + 1),
            '}' => open = None,
            _ => {}
        }
    }
    match open {
        Some(name) if text[name..offset].chars().all(|c| c.is_ascii_alphanumeric() || c == '_') => {
            Place::Placeholder(name..offset)
        }
        _ => Place::Text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_in_a_trial_body() {
        let text =
            "trial {\n  command = [\"sh\", \"--lr={lr\", \"{{x\", \"a}\"] // \"{\n  env = { A: \"{t\" }\n}\nrest";
        let found = body(text, 5).expect("a body");
        assert_eq!(&text[found.end..found.end + 1], "}");
        let at = |needle: &str| text.find(needle).expect("in the text") + needle.len();
        assert_eq!(place_in(text, found.start, at("command")), Place::Key);
        assert_eq!(place_in(text, found.start, at("={lr")), Place::Placeholder(at("={")..at("={lr")));
        assert_eq!(place_in(text, found.start, at("{{x")), Place::Text, "`{{` is a literal brace");
        assert_eq!(place_in(text, found.start, at("\"a")), Place::Text);
        assert_eq!(place_in(text, found.start, at("env")), Place::Key, "a comment's quote opens no string");
        assert_eq!(place_in(text, found.start, at("{t")), Place::Placeholder(at("A: \"{")..at("{t")));
        assert_eq!(body(text, text.find("rest").expect("rest")), None);
    }

    #[test]
    fn block_comments_and_escaped_quotes_read_as_the_parser_reads_them() {
        let text = "trial {\n  /* \"{ { */ command = [\"say \\\"{lr\"]\n}\nrest";
        let found = body(text, 5).expect("a body");
        assert_eq!(&text[found.end..], "}\nrest", "the braces in the comment do not count");
        let at = |needle: &str| text.find(needle).expect("in the text") + needle.len();
        assert_eq!(place_in(text, found.start, at("comm")), Place::Key, "the comment's quote opens no string");
        let lr = Place::Placeholder(at("\\\"{")..at("{lr"));
        assert_eq!(place_in(text, found.start, at("{lr")), lr, "an escaped quote does not end the string");
    }
}
