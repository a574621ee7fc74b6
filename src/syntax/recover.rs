//! Error recovery: a file with syntax errors parsed item by item, and a broken experiment
//! section by section, so that the rest of the file is still analysed (by the checker and
//! the editor) and every broken item reports its own error.
//!
//! Takes the text of a file whose whole parse failed; gives the items that parse, one
//! syntax diagnostic per broken item (or section), and where the damage is
//! ([`Recovered::damage`]). The pest grammar stays the only definition of the syntax: a
//! tolerant scanner only decides where items and sections start (an item keyword at brace
//! depth 0, or at the start of a line whatever the depth, so that an unclosed `{` or `(`
//! stops at the next item), and each piece is parsed by the grammar's own rules.
//! **Invariant:** every span refers to the whole text (pieces are parsed at their offset).

use pest::Parser;

use super::{BmaParser, Builder, MAX_NESTING, Rule, deepest, is_trivia, lex, nested_too_deeply, pratt, syntax_error};
use crate::ast::{self, SectionKind};
use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Span};

/// A file parsed around its syntax errors.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// The items that parse; an experiment with broken sections keeps the others.
    pub file: ast::File,
    /// One syntax error per broken item or section, in the order of the text.
    pub errors: Vec<Diagnostic>,
    /// The broken parts: what the checker says inside them, or of the names they would
    /// have defined, is a consequence of the damage ([`Recovered::keeps`]).
    pub damage: Vec<Damage>,
}

/// One broken item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// The whole item, from its keyword to where the next item starts.
    pub span: Span,
    /// The names it would have defined (a block's, a fn's, an experiment's, a `use`'s).
    pub names: Vec<String>,
}

impl Recovered {
    /// Whether `span` lies in a broken item.
    pub fn is_damaged(&self, span: Span) -> bool {
        self.damage.iter().any(|g| g.span.file == span.file && g.span.start <= span.start && span.start < g.span.end)
    }

    /// Whether a diagnostic of the checker on the recovered file stands on its own: not
    /// inside a broken item (a missing section, an unused parameter of a broken model), and
    /// not an unknown name that a broken item would have defined.
    pub fn keeps(&self, d: &Diagnostic, text: &str) -> bool {
        let span = d.primary.span;
        if self.damage.iter().any(|g| g.span.file == span.file && g.span.start <= span.start && span.end <= g.span.end)
        {
            return false;
        }
        let named = text.get(span.start as usize..span.end as usize).unwrap_or("");
        !(d.code.as_str().starts_with("unknown") && self.damage.iter().any(|g| g.names.iter().any(|n| n == named)))
    }
}

/// Parses `text` piece by piece; `first` is the error of the whole parse, reported in place
/// of the piece's own when it falls inside that piece (so that a file with one mistake
/// reads exactly as before).
pub(super) fn recover(file: FileId, text: &str, first: Diagnostic) -> Recovered {
    let mut out = Recovered::default();
    let starts = item_starts(text);
    let mut bounds: Vec<usize> = Vec::with_capacity(starts.len() + 2);
    bounds.push(0);
    bounds.extend(starts.iter().copied().filter(|&s| s > 0));
    bounds.push(text.len());
    for w in bounds.windows(2) {
        let (start, end) = (w[0], w[1]);
        let piece = &text[start..end];
        if is_trivia(piece) {
            continue;
        }
        match parse_items(file, text, start, end) {
            Ok(items) => out.file.items.extend(items),
            Err(own) => {
                let error = pick(&first, own, start, end);
                let names = defined_names(piece);
                let span = Span::new(file, start, start + piece.trim_end().len());
                let (experiment, errors) = recover_experiment(file, text, start, end, &first);
                match experiment {
                    Some(e) => {
                        out.errors.extend(errors);
                        out.file.items.push(ast::Item::Experiment(e));
                    }
                    None => out.errors.push(error),
                }
                out.damage.push(Damage { span, names });
            }
        }
    }
    if out.errors.is_empty() {
        // The pieces all parse on their own but not together: report the whole parse's error.
        out.errors.push(first);
    }
    out
}

/// The piece's error, or the whole parse's when it lies inside the piece.
fn pick(first: &Diagnostic, own: Diagnostic, start: usize, end: usize) -> Diagnostic {
    let at = first.primary.span.start as usize;
    if start <= at && at < end.max(start + 1) { first.clone() } else { own }
}

/// Parses `text[start..end]` as a file: the items in it, with spans that are offsets in `text`.
fn parse_items(file: FileId, text: &str, start: usize, end: usize) -> Result<Vec<ast::Item>, Diagnostic> {
    let piece = &text[start..end];
    let pairs = BmaParser::parse(Rule::file, piece).map_err(|e| shifted(syntax_error(file, piece, e), start))?;
    let (depth, at) = deepest(&pairs);
    if depth > MAX_NESTING {
        return Err(nested_too_deeply(Span::new(file, start + at, start + at + 1)));
    }
    let b = Builder { file, text: piece, full: text, base: start, pratt: pratt() };
    let mut items = Vec::new();
    for p in pairs {
        for item in super::children(p).filter(|p| p.as_rule() != Rule::EOI) {
            items.push(b.item(item));
        }
    }
    Ok(items)
}

/// A broken experiment's sections that parse, and one error per broken section. `None`
/// when the piece is no experiment or its header (`experiment NAME {`) is broken.
fn recover_experiment(
    file: FileId,
    text: &str,
    start: usize,
    end: usize,
    first: &Diagnostic,
) -> (Option<ast::Experiment>, Vec<Diagnostic>) {
    let piece = &text[start..end];
    let Some(header) = experiment_header(piece) else { return (None, Vec::new()) };
    let name = ast::Ident {
        name: piece[header.name.clone()].to_string(),
        span: Span::new(file, start + header.name.start, start + header.name.end),
    };
    let starts = section_starts(piece, header.body);
    let mut sections = Vec::new();
    let mut errors = Vec::new();
    for (k, &(at, kind)) in starts.iter().enumerate() {
        let until = starts.get(k + 1).map_or(piece.len(), |&(next, _)| next);
        let rest = &piece[at..];
        let rule = section_rule(kind);
        let parsed = match BmaParser::parse(rule, rest) {
            Ok(pairs) if deepest(&pairs).0 <= MAX_NESTING => pairs,
            Ok(pairs) => {
                let at2 = at + deepest(&pairs).1;
                errors.push(nested_too_deeply(Span::new(file, start + at2, start + at2 + 1)));
                continue;
            }
            Err(e) => {
                let own = shifted(syntax_error(file, rest, e), start + at);
                errors.push(pick(first, own, start + at, start + until));
                continue;
            }
        };
        let Some(pair) = parsed.into_iter().next() else { continue };
        let b = Builder { file, text: rest, full: text, base: start + at, pratt: pratt() };
        let parsed_end = at + pair.as_span().end();
        // What follows the section before the next one: only trivia, or (after the last)
        // the experiment's closing `}`.
        let gap = piece.get(parsed_end..until.max(parsed_end)).unwrap_or("");
        let closed = &gap[lex::trivia_len(gap)..];
        let gap_ok = is_trivia(gap) || (k + 1 == starts.len() && closed.strip_prefix('}').is_some_and(is_trivia));
        if gap_ok {
            sections.push(b.section(pair));
        } else {
            let junk = parsed_end + lex::trivia_len(gap);
            // At most to the piece's end (an unclosed comment ends there, and `max(1)` must
            // not reach past it).
            let after = piece.get(junk..).unwrap_or("");
            let len = super::token_len(after).max(1).min(after.len());
            let found: String = after[..len].chars().take(24).collect();
            let own = Diagnostic::error(
                crate::diagnostic::Code::SyntaxError,
                format!("expected a section or `}}`, found `{found}`"),
                Span::new(file, start + junk, start + junk + len),
                "expected a section or `}`",
            );
            errors.push(pick(first, own, start + junk, start + until));
            sections.push(b.section(pair));
        }
    }
    if errors.is_empty() {
        // The sections parse but the experiment does not (its `}`, or text before the first
        // section): the whole parse's error, or the piece's own.
        let own = match BmaParser::parse(Rule::file, piece) {
            Err(e) => shifted(syntax_error(file, piece, e), start),
            Ok(_) => first.clone(),
        };
        errors.push(pick(first, own, start, end));
    }
    let doc = super::doc_before(text, start);
    let span = Span::new(file, start, start + piece.trim_end().len());
    (Some(ast::Experiment { name, sections, doc, span }), errors)
}

/// Moves a diagnostic of a piece that starts at byte `base` of the file to the file.
fn shifted(mut d: Diagnostic, base: usize) -> Diagnostic {
    let s = d.primary.span;
    d.primary.span = Span::new(s.file, base + s.start as usize, base + s.end as usize);
    for l in &mut d.secondary {
        l.span = Span::new(l.span.file, base + l.span.start as usize, base + l.span.end as usize);
    }
    d
}

fn section_rule(kind: SectionKind) -> Rule {
    match kind {
        SectionKind::Data => Rule::data_section,
        SectionKind::Space => Rule::space_section,
        SectionKind::Model => Rule::model_section,
        SectionKind::Train => Rule::train_section,
        SectionKind::Objective => Rule::objective_section,
        SectionKind::Search => Rule::search_section,
        SectionKind::Average => Rule::average_section,
        SectionKind::Report => Rule::report_section,
        SectionKind::Trial => Rule::trial_section,
    }
}

fn is_ident_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Calls `f(offset, word, depth)` for every word outside comments and strings, with the
/// brace depth before it; `f` may set the depth (an item start resets it).
fn scan_words(text: &str, from: usize, mut f: impl FnMut(usize, &str, &mut usize)) {
    let bytes = text.as_bytes();
    let mut depth = 0usize;
    let mut i = from;
    while i < bytes.len() {
        if let Some(skip) = lex::skip_at(text, i) {
            i = skip.end.max(i + 1);
            continue;
        }
        match bytes[i] {
            b'{' => depth += 1,
            b'}' => depth = depth.saturating_sub(1),
            b if is_ident_char(b) && (i == 0 || !is_ident_char(bytes[i - 1])) => {
                let end =
                    text[i..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).map_or(text.len(), |n| i + n);
                f(i, &text[i..end], &mut depth);
                i = end;
                continue;
            }
            _ => {}
        }
        i += text[i..].chars().next().map_or(1, char::len_utf8);
    }
}

/// Where top-level items start: an item keyword at brace depth 0, or first on its line with
/// no indentation whatever the depth (`fmt`'s layout: so that an unclosed bracket ends at
/// the next item).
fn item_starts(text: &str) -> Vec<usize> {
    let mut out = Vec::new();
    scan_words(text, 0, |at, word, depth| {
        let line_start = at == 0 || text.as_bytes()[at - 1] == b'\n';
        if matches!(word, "use" | "block" | "fn" | "experiment") && (*depth == 0 || line_start) {
            *depth = 0;
            out.push(at);
        }
    });
    out
}

/// `experiment NAME {`: the name's range and where the body starts (after the `{`).
struct Header {
    name: std::ops::Range<usize>,
    body: usize,
}

fn experiment_header(piece: &str) -> Option<Header> {
    let rest = piece.strip_prefix("experiment")?;
    let after_kw = piece.len() - rest.len();
    let name_at = after_kw + lex::trivia_len(rest);
    let name_len = piece[name_at..].find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(0);
    if name_len == 0 || !piece[name_at..].starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        return None;
    }
    let after_name = name_at + name_len;
    let brace = after_name + lex::trivia_len(&piece[after_name..]);
    piece[brace..].starts_with('{').then_some(Header { name: name_at..after_name, body: brace + 1 })
}

/// Where the sections of an experiment body (from `body`) start, with their kind: a
/// section keyword followed by `{` or `=` at the body's own depth, or first on its line
/// with at most the first section's indentation whatever the depth.
fn section_starts(piece: &str, body: usize) -> Vec<(usize, SectionKind)> {
    let mut out: Vec<(usize, SectionKind)> = Vec::new();
    let mut indent: Option<usize> = None;
    scan_words(piece, body, |at, word, depth| {
        let Some(kind) = SectionKind::ALL.into_iter().find(|k| k.as_str() == word) else { return };
        let after = &piece[at + word.len()..];
        let next = after.trim_start_matches([' ', '\t']);
        let opens = match kind {
            SectionKind::Data => next.starts_with('=') && !next.starts_with("=="),
            _ => next.starts_with('{'),
        };
        if !opens {
            return;
        }
        let line = piece[..at].rfind('\n').map_or(0, |n| n + 1);
        let lead = &piece[line..at];
        let first_on_line = lead.chars().all(|c| c == ' ' || c == '\t');
        let column = lead.len();
        let fits = match indent {
            None => true,
            Some(i) => first_on_line && column <= i,
        };
        if *depth == 0 || (*depth > 0 && fits && indent.is_some()) {
            if indent.is_none() && first_on_line {
                indent = Some(column);
            }
            *depth = 0;
            out.push((at, kind));
        }
    });
    out
}

/// The names a broken item would have defined: its own (`block NAME`), or every name of a
/// broken `use`.
fn defined_names(piece: &str) -> Vec<String> {
    let mut words = Vec::new();
    scan_words(piece, 0, |_, w, _| words.push(w.to_string()));
    match words.first().map(String::as_str) {
        Some("use") => words.into_iter().skip(1).collect(),
        Some("block" | "fn" | "experiment") => words.into_iter().nth(1).into_iter().collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_start_at_keywords_at_depth_zero_or_at_the_margin() {
        let text = "use a::b\nblock x() { dense(\n}\n// experiment not\nexperiment e { data = \"fn\"\nfn f() = 1\n";
        let starts = item_starts(text);
        let words: Vec<&str> = starts.iter().map(|&s| &text[s..s + 3]).collect();
        assert_eq!(words, ["use", "blo", "exp", "fn "]);
    }

    #[test]
    fn sections_start_at_their_keywords() {
        let piece = "experiment e {\n  data = iris()\n  space { model: in {a} }\n  model {\n    dense(\n  objective { maximize accuracy }\n}\n";
        let h = experiment_header(piece).expect("a header");
        assert_eq!(&piece[h.name], "e");
        let kinds: Vec<SectionKind> = section_starts(piece, h.body).into_iter().map(|(_, k)| k).collect();
        assert_eq!(kinds, [SectionKind::Data, SectionKind::Space, SectionKind::Model, SectionKind::Objective]);
    }
}

#[cfg(test)]
mod compile_tests {
    use crate::diagnostic::Code;
    use crate::source::Source;

    const TWO_ERRORS: &str = "block head(n: int) {\n  dense(n,,\n}\n\nexperiment e {\n  data = iris()\n  space {\n    \
                              width: int in {8, 16}\n  }\n  model {\n    head(width)\n    dense(data.classes)\n  }\n  \
                              objective { maximize accuracy }\n  average { ensemble(top: 5,, }\n}\n";

    #[test]
    fn every_broken_item_reports_its_error_and_the_rest_is_lowered() {
        let c = crate::compile(&Source::new("t.bma", TWO_ERRORS));
        let codes: Vec<(Code, u32)> = c.diagnostics.iter().map(|d| (d.code, d.primary.span.start)).collect();
        let syntax: Vec<u32> = codes.iter().filter(|(c, _)| *c == Code::SyntaxError).map(|(_, at)| *at).collect();
        assert_eq!(syntax.len(), 2, "{:#?}", c.diagnostics);
        assert_eq!(&TWO_ERRORS[syntax[0] as usize..syntax[0] as usize + 1], ",");
        assert!(TWO_ERRORS[..syntax[1] as usize].ends_with("ensemble(top: 5,"), "{syntax:?}");
        // The experiment keeps its sections that parse; `head`, whose body is broken, is not
        // reported as unknown.
        let e = c.program.experiment("e").expect("the experiment is lowered");
        let width = e.space.get("width").expect("the space section is kept");
        let (a, b) = (width.name_span.start as usize, width.name_span.end as usize);
        assert_eq!(&TWO_ERRORS[a..b], "width", "spans are offsets in the whole file");
        assert!(codes.iter().all(|(c, _)| *c == Code::SyntaxError), "{:#?}", c.diagnostics);
    }

    #[test]
    fn a_file_with_one_mistake_reads_as_before() {
        let text = "experiment e {\n  space { x: float in 0..1 }\n  objective { minimize x y }\n}\n";
        let c = crate::compile(&Source::new("t.bma", text));
        let whole = crate::syntax::parse(crate::source::FileId(0), text).expect_err("a syntax error");
        assert_eq!(c.diagnostics, vec![whole]);
    }

    #[test]
    fn checks_of_intact_items_are_kept() {
        // `fn f` is broken; the intact block still gets its unknown layer reported.
        let text = "fn f(x: float) -> float = x +\n\nblock b() {\n  dnse(4)\n}\n";
        let c = crate::compile(&Source::new("t.bma", text));
        let codes: Vec<Code> = c.diagnostics.iter().map(|d| d.code).collect();
        assert!(codes.contains(&Code::SyntaxError) && codes.contains(&Code::UnknownLayer), "{codes:?}");
    }
}
