//! Moving around a file by its names: references, rename, highlight and the outline.
//!
//! Takes an [`Analysis`] (its resolved names, `ide::resolve`) and an offset; gives spans, all
//! in the analysed file. Rename refuses what would change the program's meaning: a name
//! defined outside the file (an import, the stdlib), a name that is no identifier or a
//! keyword, and a name already used where the renamed one is visible (it would collide with,
//! shadow or be shadowed by another).

use super::{Analysis, Occurrence, SymbolKind, Target};
use crate::ast::{self, Item, SectionBody, SpaceItem};
use crate::source::{FileId, Span};
use crate::syntax::KEYWORDS;
use crate::syntax::lex;

/// Every occurrence of the symbol at `offset` (with its definition when `with_def`), in
/// text order.
pub fn references(a: &Analysis, file: FileId, offset: u32, with_def: bool) -> Vec<Span> {
    let Some(o) = symbol_at(a, file, offset) else { return Vec::new() };
    let mut out: Vec<Span> = a.index.same(o).into_iter().filter(|x| with_def || !x.is_def).map(|x| x.span).collect();
    out.sort_by_key(|s| s.start);
    out
}

/// The occurrences of the symbol at `offset` to highlight, each with whether it is the
/// definition (a write) or a use (a read).
pub fn highlights(a: &Analysis, file: FileId, offset: u32) -> Vec<(Span, bool)> {
    let Some(o) = symbol_at(a, file, offset) else { return Vec::new() };
    a.index.same(o).into_iter().map(|x| (x.span, x.is_def)).collect()
}

/// The name at `offset` that can be renamed, and its span.
pub fn prepare_rename(a: &Analysis, file: FileId, offset: u32) -> Result<Span, String> {
    let o = symbol_at(a, file, offset).ok_or("no symbol to rename here")?;
    let def = definition_of(o).ok_or("no symbol to rename here")?;
    if def.file != file {
        return Err(format!("`{}` is defined in another file", o.name));
    }
    Ok(o.span)
}

/// The spans to replace with `new` to rename the symbol at `offset`, or why not.
pub fn rename(a: &Analysis, file: FileId, offset: u32, new: &str) -> Result<Vec<Span>, String> {
    prepare_rename(a, file, offset)?;
    let o = symbol_at(a, file, offset).ok_or("no symbol to rename here")?;
    if !is_identifier(new) {
        return Err(format!(
            "`{new}` is not a name: names are ASCII letters, digits and `_`, not starting with a digit"
        ));
    }
    if KEYWORDS.contains(&new) {
        return Err(format!("`{new}` is a keyword"));
    }
    if new == o.name {
        return Ok(Vec::new());
    }
    let all = a.index.same(o);
    let def = all.iter().find(|x| x.is_def).map_or(o.scope, |d| d.scope);
    // Items are visible in the whole file (and in the files that import it).
    let file_wide =
        matches!(o.target, Target::Symbol { kind: SymbolKind::Block | SymbolKind::Fn | SymbolKind::Experiment, .. });
    let overlaps = |s: Span| file_wide || (s.start < def.end && def.start < s.end);
    if let Some(clash) = a.index.occurrences.iter().find(|x| x.name == new && (overlaps(x.scope) || overlaps(x.span))) {
        let line =
            a.compiled.sources.get(file).map_or(0, |s| s.text[..clash.span.start as usize].matches('\n').count());
        return Err(format!("`{new}` is already used where `{}` is visible (line {})", o.name, line + 1));
    }
    if file_wide && (a.compiled.program.blocks.contains_key(new) || a.compiled.program.fns.contains_key(new)) {
        return Err(format!("`{new}` is already a block or fn of this program"));
    }
    Ok(all.into_iter().map(|x| x.span).collect())
}

/// The user-defined symbol at `offset` (a named argument of a block stands for the block's
/// parameter).
fn symbol_at(a: &Analysis, file: FileId, offset: u32) -> Option<&Occurrence> {
    let o = a.at(file, offset)?;
    match o.target {
        Target::Symbol { .. } => Some(o),
        Target::Arg { param: Some(def), .. } => a.index.occurrences.iter().find(|x| x.is_def && x.span == def),
        _ => None,
    }
}

fn definition_of(o: &Occurrence) -> Option<Span> {
    match o.target {
        Target::Symbol { def, .. } => Some(def),
        _ => None,
    }
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What an entry of the outline is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutlineKind {
    Experiment,
    Section,
    /// A searched parameter of `space`.
    Param,
    /// A pinned parameter (`name = value`).
    Pinned,
    /// `let name = ...` in `space`.
    Derived,
    Block,
    Fn,
    /// A parameter of a block or fn.
    Argument,
    Import,
}

/// One entry of the outline: experiments with their sections and parameters, blocks and
/// fns with their parameters, imports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    pub name: String,
    pub kind: OutlineKind,
    /// The whole entry.
    pub span: Span,
    /// Its name.
    pub selection: Span,
    pub children: Vec<Symbol>,
}

/// The outline of the analysed file.
pub fn symbols(a: &Analysis) -> Vec<Symbol> {
    let leaf = |name: &ast::Ident, kind, span| Symbol {
        name: name.name.clone(),
        kind,
        span,
        selection: name.span,
        children: Vec::new(),
    };
    let params = |ps: &[ast::ParamDecl]| ps.iter().map(|p| leaf(&p.name, OutlineKind::Argument, p.span)).collect();
    a.tree
        .items
        .iter()
        .map(|item| match item {
            Item::Use(u) => {
                let name = u.module.iter().chain(&u.names).map(|i| i.name.as_str()).collect::<Vec<_>>().join("::");
                let selection = u.names.first().or(u.module.first()).map_or(u.span, |i| i.span);
                Symbol { name, kind: OutlineKind::Import, span: u.span, selection, children: Vec::new() }
            }
            Item::Block(b) => Symbol { children: params(&b.params), ..leaf(&b.name, OutlineKind::Block, b.span) },
            Item::Fn(f) => Symbol { children: params(&f.params), ..leaf(&f.name, OutlineKind::Fn, f.span) },
            Item::Experiment(e) => {
                let sections = e
                    .sections
                    .iter()
                    .map(|s| {
                        let mut children = Vec::new();
                        if let SectionBody::Space(items) = &s.body {
                            space_symbols(items, &mut children);
                        }
                        Symbol {
                            name: s.kind.as_str().to_string(),
                            kind: OutlineKind::Section,
                            span: s.span,
                            selection: s.keyword,
                            children,
                        }
                    })
                    .collect();
                Symbol { children: sections, ..leaf(&e.name, OutlineKind::Experiment, e.span) }
            }
        })
        .collect()
}

fn space_symbols(items: &[SpaceItem], out: &mut Vec<Symbol>) {
    for item in items {
        let (name, kind, span) = match item {
            SpaceItem::Param { name, span, .. } => (name, OutlineKind::Param, *span),
            SpaceItem::Const { name, span, .. } => (name, OutlineKind::Pinned, *span),
            SpaceItem::Let { name, span, .. } => (name, OutlineKind::Derived, *span),
            SpaceItem::When { items, .. } => {
                space_symbols(items, out);
                continue;
            }
        };
        out.push(Symbol { name: name.name.clone(), kind, span, selection: name.span, children: Vec::new() });
    }
}

/// A quick fix: the title an editor shows, and the one edit it makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    pub title: String,
    pub span: Span,
    pub new_text: String,
    /// The code of the diagnostic it fixes.
    pub code: &'static str,
    /// Where the diagnostic it fixes points (its primary span).
    pub fixes: Span,
}

/// The "did you mean" of every diagnostic of `file` that touches `start..end`, as an edit
/// of the misspelt name (the diagnostic's primary span, when it is one name); and for an
/// unknown layer that a stdlib module defines, the `use` that imports it.
pub fn quick_fixes(a: &Analysis, file: FileId, start: u32, end: u32) -> Vec<Fix> {
    let c = &a.compiled;
    let touching = c
        .diagnostics
        .iter()
        .filter(|d| d.primary.span.file == file && d.primary.span.start <= end && start <= d.primary.span.end);
    let imports = touching.clone().filter(|d| d.code == crate::diagnostic::Code::UnknownLayer).filter_map(|d| {
        let name = c.sources.text(d.primary.span);
        let (_, module, _) = crate::stdlib::MODULES.iter().find(|(_, _, text)| {
            text.lines().any(|l| {
                l.strip_prefix("block ").and_then(|r| r.strip_prefix(name)).is_some_and(|r| r.starts_with('('))
            })
        })?;
        Some(Fix {
            title: format!("import `{name}` from `{module}`"),
            span: Span::new(file, 0, 0),
            new_text: format!("use {module}::{{{name}}}\n"),
            code: d.code.as_str(),
            fixes: d.primary.span,
        })
    });
    let mut fixes: Vec<Fix> = touching
        .filter_map(|d| {
            let help = d.help.as_deref()?;
            let rest = &help[help.find("did you mean `")? + "did you mean `".len()..];
            let better = &rest[..rest.find('`')?];
            let wrong = c.sources.text(d.primary.span);
            (is_identifier(wrong) && is_identifier(better)).then(|| Fix {
                title: format!("replace `{wrong}` with `{better}`"),
                span: d.primary.span,
                new_text: better.to_string(),
                code: d.code.as_str(),
                fixes: d.primary.span,
            })
        })
        .collect();
    fixes.extend(imports);
    fixes.extend(
        c.diagnostics
            .iter()
            .filter(|d| d.code == crate::diagnostic::Code::UnusedImport)
            .filter(|d| d.primary.span.file == file && d.primary.span.start <= end && start <= d.primary.span.end)
            .filter_map(|d| remove_import(a, d.primary.span)),
    );
    fixes
}

/// The edit that removes the imported name at `name` from its `use`: the name and the comma
/// beside it, or the whole line when it is the only name.
fn remove_import(a: &Analysis, name: Span) -> Option<Fix> {
    let text = &a.compiled.sources.get(name.file)?.text;
    let u = a.tree.items.iter().find_map(|item| match item {
        ast::Item::Use(u) if u.names.iter().any(|n| n.span == name) => Some(u),
        _ => None,
    })?;
    let i = u.names.iter().position(|n| n.span == name)?;
    let span = if u.names.len() == 1 {
        let line_start = text[..u.span.start as usize].rfind('\n').map_or(0, |p| p + 1);
        let line_end = text[u.span.end as usize..].find('\n').map_or(text.len(), |p| u.span.end as usize + p + 1);
        Span::new(name.file, line_start, line_end)
    } else if let Some(next) = u.names.get(i + 1) {
        Span { end: next.span.start, ..name }
    } else {
        Span { start: u.names[i - 1].span.end, ..name }
    };
    Some(Fix {
        title: format!("remove the unused import `{}`", text.get(name.range())?),
        span,
        new_text: String::new(),
        code: crate::diagnostic::Code::UnusedImport.as_str(),
        fixes: name,
    })
}

/// What an editor may fold: every item, section and model body of the outline's file, and
/// each run of two or more comment lines.
pub fn folds(a: &Analysis) -> Vec<Span> {
    fn body(b: &ast::Body, out: &mut Vec<Span>) {
        out.push(b.span);
        for s in &b.stmts {
            match s {
                ast::Stmt::Repeat { body: inner, .. } | ast::Stmt::Residual { body: inner, .. } => body(inner, out),
                ast::Stmt::Match { arms, .. } => arms.iter().for_each(|arm| body(&arm.body, out)),
                ast::Stmt::If { then, otherwise, .. } => {
                    body(then, out);
                    if let Some(o) = otherwise {
                        body(o, out);
                    }
                }
                ast::Stmt::Parallel { branches, .. } => branches.iter().for_each(|b| body(b, out)),
                ast::Stmt::Chain(_) | ast::Stmt::Let { .. } => {}
            }
        }
    }
    let mut out = Vec::new();
    for item in &a.tree.items {
        match item {
            Item::Use(u) => out.push(u.span),
            Item::Block(b) => {
                out.push(b.span);
                body(&b.body, &mut out);
            }
            Item::Fn(f) => out.push(f.span),
            Item::Experiment(e) => {
                out.push(e.span);
                for s in &e.sections {
                    out.push(s.span);
                    if let SectionBody::Model(b) = &s.body {
                        body(b, &mut out);
                    }
                }
            }
        }
    }
    // Comment runs.
    if let Some(file) = a.index.file
        && let Some(source) = a.compiled.sources.get(file)
    {
        let mut run: Option<(usize, usize)> = None;
        let mut at = 0;
        for line in source.text.split_inclusive('\n') {
            let is_comment = line.trim_start().starts_with("//");
            let end = at + line.trim_end().len();
            run = match (run, is_comment) {
                (Some((s, _)), true) => Some((s, end)),
                (None, true) => Some((at, end)),
                (Some((s, e)), false) => {
                    out.push(Span::new(file, s, e));
                    None
                }
                (None, false) => None,
            };
            at += line.len();
        }
        if let Some((s, e)) = run {
            out.push(Span::new(file, s, e));
        }
    }
    out.sort_by_key(|s| (s.start, std::cmp::Reverse(s.end)));
    out.dedup();
    out
}

/// What a semantic token is: the same for every editor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// An experiment's name.
    Experiment,
    Block,
    Fn,
    /// A parameter: of `space`, of a block or fn, a `repeat` index.
    Parameter,
    /// A model node named with `let`.
    Node,
    /// A layer of the catalogue.
    Layer,
    /// Another entry of the catalogue: a strategy, an optimiser, a metric, a dataset...
    Entry,
    /// A setting's key, a named argument, a field of `data`.
    Property,
    /// A keyword, or a section's name where it opens the section.
    Keyword,
}

/// Every name of the analysed file by what it is, and its keywords, in text order: the
/// resolved names (`ide::resolve`), and keywords found outside comments and strings.
pub fn semantic_tokens(a: &Analysis) -> Vec<(Span, TokenKind)> {
    let mut out: Vec<(Span, TokenKind)> = a
        .index
        .occurrences
        .iter()
        .map(|o| {
            let kind = match &o.target {
                Target::Symbol { kind, .. } => match kind {
                    SymbolKind::Experiment => TokenKind::Experiment,
                    SymbolKind::Block => TokenKind::Block,
                    SymbolKind::Fn => TokenKind::Fn,
                    SymbolKind::Node => TokenKind::Node,
                    SymbolKind::Param | SymbolKind::BlockParam | SymbolKind::FnParam | SymbolKind::RepeatVar => {
                        TokenKind::Parameter
                    }
                },
                Target::Builtin(crate::catalogue::Concept::Layer, _) => TokenKind::Layer,
                Target::Builtin(..) => TokenKind::Entry,
                Target::Arg { .. } | Target::DataField(_) | Target::Key { .. } => TokenKind::Property,
            };
            (o.span, kind)
        })
        .collect();
    if let Some(file) = a.index.file
        && let Some(source) = a.compiled.sources.get(file)
    {
        let text = source.text.as_str();
        let named: std::collections::BTreeSet<u32> = out.iter().map(|(s, _)| s.start).collect();
        keywords(text, &mut |start, word| {
            let next = text[start + word.len()..].trim_start_matches([' ', '\t']);
            let section = crate::ast::SectionKind::ALL.iter().any(|k| k.as_str() == word)
                && (next.starts_with('{') || (word == "data" && next.starts_with('=') && !next.starts_with("==")));
            if (KEYWORDS.contains(&word) || section || matches!(word, "residual" | "parallel"))
                && !named.contains(&(start as u32))
            {
                out.push((Span::new(file, start, start + word.len()), TokenKind::Keyword));
            }
        });
    }
    out.sort_by_key(|(s, _)| s.start);
    out
}

/// Calls `f` with each word of `text` outside comments and strings.
fn keywords(text: &str, f: &mut dyn FnMut(usize, &str)) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if let Some(skip) = lex::skip_at(text, i) {
            i = skip.end.max(i + 1);
        } else if bytes[i].is_ascii_alphabetic() || bytes[i] == b'_' {
            let len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
            f(i, &rest[..len]);
            i += len;
        } else if bytes[i].is_ascii_digit() {
            // A number with its suffix (`10min`) is no word.
            i += rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.')).unwrap_or(rest.len());
        } else {
            i += rest.chars().next().map_or(1, char::len_utf8);
        }
    }
}
