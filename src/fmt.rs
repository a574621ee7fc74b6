//! `bma fmt`: prints a parsed file back in one canonical layout.
//!
//! Takes a [`Source`], gives its text re-laid out: two-space indentation, one
//! statement per line, items and sections in source order, spaces around binary
//! operators, `a..b` ranges, aligned `key = value` and `name: type in` runs, at most
//! one blank line where the source had any, and a trailing newline.
//!
//! The AST holds no comments, so they are lexed from the text with their byte
//! offsets and re-emitted: a comment that stands on its own line goes before the
//! node that follows it, a comment after code on the same line stays after that
//! line. A comment inside a construct printed on one line (`f(/* x */ 1)`) moves to
//! the end of that line.
//!
//! **Invariants:** no comment is dropped and their order is kept; `format` is
//! idempotent; parsing the output gives the same tree as parsing the input, spans
//! aside ([`same_tree`]); literals (`60k`, `1e-4`, `"a\n"`) keep their spelling.

use crate::ast::{
    self, Arg, Assign, BinaryOp, Body, Call, Chain, Domain, Expr, ExprKind, Item, ObjectiveItem, ParamDecl, Pattern,
    PatternAlt, SectionBody, SpaceItem, Stmt, UnaryOp,
};
use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Source};
use crate::syntax::lex::{self, Lexeme};

/// Lines longer than this are not joined into one-line forms (`when c { x }`).
const WIDTH: usize = 100;

/// The canonical text of `source`, or the syntax diagnostic if it does not parse.
pub fn format(source: &Source) -> Result<String, Diagnostic> {
    let file = crate::syntax::parse(FileId(0), &source.text)?;
    let mut p = Printer::new(&source.text);
    p.file(&file);
    Ok(p.finish())
}

/// Whether two trees are equal once every span is ignored.
pub fn same_tree(a: &ast::File, b: &ast::File) -> bool {
    strip_spans(&format!("{a:?}")) == strip_spans(&format!("{b:?}"))
}

/// The comments of `text` in order, each without trailing whitespace.
///
/// Meant for text that parses; strings are skipped so `"//"` is no comment.
pub fn comments(text: &str) -> Vec<&str> {
    lex_comments(text).iter().map(|c| comment_text(text, c)).collect()
}

// ---------------------------------------------------------------- comments

#[derive(Debug, Clone, Copy)]
struct Comment {
    start: u32,
    end: u32,
    /// Only whitespace between the start of its line and it.
    own_line: bool,
    /// A `//` comment, which ends its line.
    line: bool,
}

fn lex_comments(text: &str) -> Vec<Comment> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < text.len() {
        match lex::skip_at(text, i) {
            Some(skip) => {
                if skip.lexeme != Lexeme::String {
                    let line = skip.lexeme == Lexeme::LineComment;
                    out.push(Comment { start: i as u32, end: skip.end as u32, own_line: own_line(text, i), line });
                }
                i = skip.end.max(i + 1);
            }
            None => i += text[i..].chars().next().map_or(1, char::len_utf8),
        }
    }
    out
}

fn comment_text<'t>(text: &'t str, c: &Comment) -> &'t str {
    text.get(c.start as usize..c.end as usize).unwrap_or("").trim_end()
}

fn own_line(text: &str, at: usize) -> bool {
    let before = text.get(..at).unwrap_or("");
    let line_start = before.rfind('\n').map_or(0, |n| n + 1);
    before[line_start..].trim().is_empty()
}

/// Whether an empty line separates `at` from the text before it.
fn blank_before(text: &str, at: u32) -> bool {
    let before = text.get(..at as usize).unwrap_or("");
    let gap = &before[before.trim_end().len()..];
    !before.trim_end().is_empty() && gap.matches('\n').count() >= 2
}

/// `Span { file: FileId(0), start: 1, end: 2 }` → `Span`, for [`same_tree`].
fn strip_spans(debug: &str) -> String {
    let mut out = String::with_capacity(debug.len());
    let mut rest = debug;
    while let Some(i) = rest.find("Span { ") {
        out.push_str(&rest[..i]);
        out.push_str("Span");
        match rest[i..].find(" }") {
            Some(j) => rest = &rest[i + j + 2..],
            None => {
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------- printer

#[derive(Debug)]
struct Line {
    indent: usize,
    /// Empty for a blank line.
    code: String,
    trailing: Option<String>,
    /// Ends in `{` and opens an indented block: no blank line may follow.
    opener: bool,
}

struct Printer<'t> {
    text: &'t str,
    comments: Vec<Comment>,
    /// The first comment not yet printed.
    next: usize,
    lines: Vec<Line>,
    indent: usize,
}

impl<'t> Printer<'t> {
    fn new(text: &'t str) -> Printer<'t> {
        Printer { text, comments: lex_comments(text), next: 0, lines: Vec::new(), indent: 0 }
    }

    fn finish(mut self) -> String {
        self.comments_before(u32::MAX);
        while self.lines.last().is_some_and(|l| l.code.is_empty()) {
            self.lines.pop();
        }
        align_trailing(&mut self.lines);
        let mut out = String::new();
        for l in &self.lines {
            if !l.code.is_empty() {
                out.push_str(&"  ".repeat(l.indent));
                out.push_str(&l.code);
            }
            if let Some(t) = &l.trailing {
                out.push_str(t);
            }
            out.push('\n');
        }
        out
    }

    // ------------------------------------------------------------ lines and comments

    fn src(&self, span: crate::source::Span) -> &'t str {
        self.text.get(span.range()).unwrap_or("")
    }

    fn blank(&mut self) {
        match self.lines.last() {
            None => {}
            Some(l) if l.code.is_empty() || l.opener => {}
            Some(_) => self.lines.push(Line { indent: 0, code: String::new(), trailing: None, opener: false }),
        }
    }

    /// Prints, each on its own line, the comments that start before `pos`.
    fn comments_before(&mut self, pos: u32) {
        while let Some(c) = self.comments.get(self.next).copied().filter(|c| c.start < pos) {
            if blank_before(self.text, c.start) {
                self.blank();
            }
            let code = comment_text(self.text, &c).to_string();
            self.lines.push(Line { indent: self.indent, code, trailing: None, opener: false });
            self.next += 1;
        }
    }

    /// Starts a node at `pos`: the comments above it, then a blank line if it had one.
    fn node_start(&mut self, pos: u32) {
        self.comments_before(pos);
        if blank_before(self.text, pos) {
            self.blank();
        }
    }

    /// Prints one line of code whose source ends at `end`, with the comments inside
    /// it and those after it on the same source line as its trailing comment.
    fn line(&mut self, code: String, end: u32) {
        let opener = code.ends_with('{');
        let mut taken = Vec::new();
        while let Some(c) = self.comments.get(self.next).copied() {
            let same_line =
                c.start >= end && self.text.get(end as usize..c.start as usize).is_some_and(|gap| !gap.contains('\n'));
            if c.start < end || same_line {
                taken.push(c);
                self.next += 1;
            } else {
                break;
            }
        }
        // A `//` comment ends the line: whatever follows it goes on lines of its own.
        let mut trailing: Option<String> = None;
        let mut closed = false;
        let mut overflow = Vec::new();
        for c in taken {
            let t = comment_text(self.text, &c).to_string();
            if closed {
                overflow.push(t);
                continue;
            }
            trailing = Some(match trailing {
                Some(before) => format!("{before} {t}"),
                None => t,
            });
            closed = c.line;
        }
        let opener = opener && overflow.is_empty();
        self.lines.push(Line { indent: self.indent, code, trailing, opener });
        for t in overflow {
            self.lines.push(Line { indent: self.indent, code: t, trailing: None, opener: false });
        }
    }

    fn has_comments(&self, span: crate::source::Span) -> bool {
        self.comments.iter().skip(self.next).any(|c| c.start >= span.start && c.start < span.end)
    }

    /// Whether a comment stands on its own line between `from` and `to`.
    fn own_line_comment_between(&self, from: u32, to: u32) -> bool {
        self.comments.iter().any(|c| c.own_line && c.start >= from && c.start < to)
    }

    fn fits(&self, code: &str) -> bool {
        self.indent * 2 + code.len() <= WIDTH && !code.contains('\n')
    }

    /// The byte offset of the first `{` at or after `pos`, comments and strings skipped.
    fn open_brace(&self, pos: u32) -> u32 {
        let bytes = self.text.as_bytes();
        let mut i = pos as usize;
        while i < bytes.len() {
            match bytes[i] {
                b'{' => return i as u32,
                b'/' if bytes.get(i + 1) == Some(&b'/') => {
                    i = self.text[i..].find('\n').map_or(bytes.len(), |n| i + n);
                }
                b'/' if bytes.get(i + 1) == Some(&b'*') => {
                    i = self.text[i + 2..].find("*/").map_or(bytes.len(), |n| i + 2 + n + 2);
                }
                _ => i += 1,
            }
        }
        pos
    }

    /// `head {`, indented.
    fn open(&mut self, head: &str, open: u32) {
        let code = if head.is_empty() { "{".to_string() } else { format!("{head} {{") };
        self.line(code, open + 1);
        self.indent += 1;
    }

    /// The comments left before `}` at `close`, then `}` (or `} else {`-like `code`).
    fn close_with(&mut self, close: u32, code: &str, end: u32) {
        self.comments_before(close);
        self.indent = self.indent.saturating_sub(1);
        while self.lines.last().is_some_and(|l| l.code.is_empty()) {
            self.lines.pop();
        }
        self.line(code.to_string(), end);
    }

    fn close(&mut self, close: u32) {
        self.close_with(close, "}", close + 1);
    }

    // ------------------------------------------------------------ items

    fn file(&mut self, file: &ast::File) {
        let mut prev: Option<&Item> = None;
        for item in &file.items {
            let start = item_start(item);
            self.comments_before(start);
            let keep_together = matches!((prev, item), (Some(Item::Use(_)), Item::Use(_)));
            if (prev.is_some() && !keep_together) || blank_before(self.text, start) {
                self.blank_before_group(start);
            }
            self.item(item);
            prev = Some(item);
        }
    }

    /// A blank line above an item and the comments directly above it.
    fn blank_before_group(&mut self, start: u32) {
        // Comments already printed directly above the item belong to it: put the
        // blank line above them, unless the source had one between them and it.
        if blank_before(self.text, start) {
            self.blank();
            return;
        }
        let mut at = self.lines.len();
        let printed_comments = self.comments[..self.next].iter().rev();
        let mut pos = start;
        for c in printed_comments {
            let attached = c.own_line
                && self.text.get(c.end as usize..pos as usize).is_some_and(|gap| gap.trim().is_empty())
                && !blank_before(self.text, pos)
                && at > 0
                && self.lines[at - 1].trailing.is_none()
                && self.lines[at - 1].code == comment_text(self.text, c);
            if !attached {
                break;
            }
            at -= 1;
            pos = c.start;
        }
        if at > 0 && !self.lines[at - 1].code.is_empty() && !self.lines[at - 1].opener {
            self.lines.insert(at, Line { indent: 0, code: String::new(), trailing: None, opener: false });
        }
    }

    fn item(&mut self, item: &Item) {
        match item {
            Item::Use(u) => {
                let module = u.module.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join("::");
                let code = match u.names.as_slice() {
                    [] if u.module.len() > 1 => format!("use {module}::{{}}"),
                    [] => format!("use {module}"),
                    names => {
                        let names = names.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ");
                        format!("use {module}::{{{names}}}")
                    }
                };
                self.line(code, u.span.end);
            }
            Item::Fn(f) => {
                let mut code = format!("fn {}({})", f.name.name, self.params(&f.params));
                if let Some((ty, _)) = f.ret {
                    code.push_str(&format!(" -> {}", ty.as_str()));
                }
                code.push_str(" =");
                self.long_line(code, &f.body, f.span.end);
            }
            Item::Block(b) => {
                let head = format!("block {}({})", b.name.name, self.params(&b.params));
                self.open(&head, b.body.span.start);
                self.stmts(&b.body.stmts);
                self.close(b.body.span.end.saturating_sub(1));
            }
            Item::Experiment(e) => {
                let open = self.open_brace(e.name.span.end);
                self.open(&format!("experiment {}", e.name.name), open);
                for (i, s) in e.sections.iter().enumerate() {
                    self.comments_before(s.span.start);
                    if i > 0 {
                        self.blank_before_group(s.span.start);
                    }
                    self.section(s);
                }
                self.close(e.span.end.saturating_sub(1));
            }
        }
    }

    fn params(&self, params: &[ParamDecl]) -> String {
        let each = params.iter().map(|p| {
            let mut s = p.name.name.clone();
            if let Some((ty, _)) = p.ty {
                s.push_str(&format!(": {}", ty.as_str()));
            }
            if let Some(d) = &p.default {
                s.push_str(&format!(" = {}", self.expr(d)));
            }
            s
        });
        each.collect::<Vec<_>>().join(", ")
    }

    fn section(&mut self, s: &ast::Section) {
        let kw = s.kind.as_str();
        let close = s.span.end.saturating_sub(1);
        match &s.body {
            SectionBody::Data(e) => {
                self.long_line(format!("{kw} ="), e, s.span.end);
            }
            SectionBody::Model(body) => {
                self.open(kw, body.span.start);
                self.stmts(&body.stmts);
                self.close(body.span.end.saturating_sub(1));
            }
            SectionBody::Space(items) => {
                self.open(kw, self.open_brace(s.keyword.end));
                self.space_items(items);
                self.close(close);
            }
            SectionBody::Assigns(assigns) => {
                self.open(kw, self.open_brace(s.keyword.end));
                let rows: Vec<_> = assigns.iter().map(|a| (a.span, Row::Assign(a))).collect();
                self.rows(&rows);
                self.close(close);
            }
            SectionBody::Objective(items) => {
                self.open(kw, self.open_brace(s.keyword.end));
                let rows: Vec<_> = items
                    .iter()
                    .map(|i| match i {
                        ObjectiveItem::Assign(a) => (a.span, Row::Assign(a)),
                        ObjectiveItem::Goal { span, .. } | ObjectiveItem::Require { span, .. } => {
                            (*span, Row::Objective(i))
                        }
                    })
                    .collect();
                self.rows(&rows);
                self.close(close);
            }
            SectionBody::Trial(items) => {
                self.open(kw, self.open_brace(s.keyword.end));
                let rows: Vec<_> = items
                    .iter()
                    .map(|i| match i {
                        ast::TrialItem::Assign(a) => (a.span, Row::Assign(a)),
                        ast::TrialItem::Record { span, .. } => (*span, Row::Record(i)),
                    })
                    .collect();
                self.rows(&rows);
                self.close(close);
            }
            SectionBody::Average(exprs) => {
                self.open(kw, self.open_brace(s.keyword.end));
                for e in exprs {
                    self.node_start(e.span.start);
                    self.long_line(String::new(), e, e.span.end);
                }
                self.close(close);
            }
        }
    }

    /// Lines of a section, `key = value` runs aligned on `=`.
    fn rows(&mut self, rows: &[(crate::source::Span, Row<'_>)]) {
        let widths = self.run_widths(rows.iter().map(|(span, row)| match row {
            Row::Assign(a) => (*span, Some(a.key.name.len())),
            Row::Objective(_) => (*span, None),
            Row::Record(ast::TrialItem::Record { key, .. }) => (*span, Some(key.name.len())),
            Row::Record(_) => (*span, None),
        }));
        for ((span, row), width) in rows.iter().zip(widths) {
            self.node_start(span.start);
            let code = match row {
                Row::Assign(a) => {
                    self.long_line(format!("{:<width$} =", a.key.name), &a.value, span.end);
                    continue;
                }
                Row::Objective(ObjectiveItem::Assign(a)) => {
                    self.long_line(format!("{:<width$} =", a.key.name), &a.value, span.end);
                    continue;
                }
                Row::Objective(ObjectiveItem::Goal { direction, name, metric, on, .. }) => {
                    let dir = match direction {
                        ast::Direction::Maximize => "maximize",
                        ast::Direction::Minimize => "minimize",
                    };
                    let name = name.as_ref().map(|n| format!("{} = ", n.name)).unwrap_or_default();
                    let mut code = format!("{dir} {name}{}", self.expr(metric));
                    if let Some(on) = on {
                        code.push_str(&format!(" on {}", on.name));
                    }
                    code
                }
                Row::Objective(ObjectiveItem::Require { expr, .. }) => format!("require {}", self.expr(expr)),
                Row::Record(ast::TrialItem::Record { key, fields, .. }) => {
                    let fields: Vec<String> =
                        fields.iter().map(|(n, v)| format!("{}: {}", n.name, self.expr(v))).collect();
                    format!("{:<width$} = {{ {} }}", key.name, fields.join(", "))
                }
                Row::Record(ast::TrialItem::Assign(a)) => {
                    self.long_line(format!("{:<width$} =", a.key.name), &a.value, span.end);
                    continue;
                }
            };
            self.line(code, span.end);
        }
    }

    /// `head expr` on one line, or, when too long, broken: a call one argument per
    /// line, a match one arm per line, a binary chain one operand per line.
    fn long_line(&mut self, head: String, e: &Expr, end: u32) {
        let sep = if head.is_empty() { "" } else { " " };
        let one = format!("{head}{sep}{}", self.expr(e));
        if self.fits(&one) {
            self.line(one, end);
            return;
        }
        match &e.kind {
            ExprKind::Call(callee, args) if !args.is_empty() => {
                let callee_text = self.operand(callee, prec(callee) < PREC_POSTFIX);
                self.line(format!("{head}{sep}{callee_text}("), callee.span.end);
                self.indent += 1;
                for a in args {
                    let code = match &a.name {
                        Some(n) => format!("{}: {},", n.name, self.expr(&a.value)),
                        None => format!("{},", self.expr(&a.value)),
                    };
                    self.line(code, a.span.end);
                }
                self.indent -= 1;
                self.line(")".to_string(), end);
            }
            ExprKind::Match(scrutinee, arms) if !arms.is_empty() => {
                self.line(format!("{head}{sep}match {} {{", self.expr(scrutinee)), scrutinee.span.end);
                self.indent += 1;
                for a in arms {
                    self.line(format!("{} => {},", self.pattern(&a.pattern), self.expr(&a.value)), a.value.span.end);
                }
                self.indent -= 1;
                self.line("}".to_string(), end);
            }
            ExprKind::Binary(op, ..) if !head.is_empty() => {
                let level = binary_prec(*op);
                let mut operands = Vec::new();
                flatten(e, level, &mut operands);
                self.line(head, operands.first().map_or(e.span.start, |(_, x)| x.span.start));
                self.indent += 1;
                for (op, x) in operands {
                    let paren = if op.is_some() { prec(x) <= level } else { prec(x) < level };
                    let text = self.operand(x, paren);
                    let code = op.map_or(text.clone(), |op| format!("{} {text}", op.as_str()));
                    self.line(code, x.span.end);
                }
                self.indent -= 1;
            }
            _ => self.line(one, end),
        }
    }

    /// For each row that takes part in alignment (`Some(len)`), the widest `len` of
    /// its run: consecutive such rows with no blank line or own-line comment between.
    fn run_widths(&self, rows: impl Iterator<Item = (crate::source::Span, Option<usize>)>) -> Vec<usize> {
        let rows: Vec<_> = rows.collect();
        let mut widths = vec![0; rows.len()];
        let mut i = 0;
        while i < rows.len() {
            let Some(first) = rows[i].1 else {
                i += 1;
                continue;
            };
            let mut j = i + 1;
            let mut max = first;
            while let Some((span, Some(len))) = rows.get(j).copied() {
                let prev_end = rows[j - 1].0.end;
                if blank_before(self.text, span.start) || self.own_line_comment_between(prev_end, span.start) {
                    break;
                }
                max = max.max(len);
                j += 1;
            }
            widths[i..j].iter_mut().for_each(|w| *w = max);
            i = j;
        }
        widths
    }

    // ------------------------------------------------------------ space

    fn space_items(&mut self, items: &[SpaceItem]) {
        let widths = self.run_widths(items.iter().map(|item| match item {
            SpaceItem::Param { name, span, .. } => (*span, Some(name.name.len() + 1)),
            SpaceItem::Const { span, .. } | SpaceItem::Let { span, .. } | SpaceItem::When { span, .. } => (*span, None),
        }));
        // Types are padded within the same runs, so that `in` lines up where all are typed.
        let mut types = vec![0; items.len()];
        let mut i = 0;
        while i < items.len() {
            let mut j = i + 1;
            while j < items.len() && widths[j] == widths[i] && self.same_run(&items[j - 1], &items[j]) {
                j += 1;
            }
            let max = items[i..j].iter().map(|it| param_type(it).map_or(0, str::len)).max().unwrap_or(0);
            types[i..j].iter_mut().for_each(|t| *t = max);
            i = j;
        }
        for ((item, width), ty) in items.iter().zip(widths).zip(types) {
            self.space_item(item, width, ty);
        }
    }

    fn same_run(&self, a: &SpaceItem, b: &SpaceItem) -> bool {
        match (a, b) {
            (SpaceItem::Param { span: a, .. }, SpaceItem::Param { span: b, .. }) => {
                !blank_before(self.text, b.start) && !self.own_line_comment_between(a.end, b.start)
            }
            _ => false,
        }
    }

    fn space_item(&mut self, item: &SpaceItem, width: usize, ty_width: usize) {
        match item {
            SpaceItem::When { cond, items, span } => {
                self.node_start(span.start);
                let head = format!("when {}", self.expr(cond));
                if let [one] = items.as_slice()
                    && !matches!(one, SpaceItem::When { .. })
                    && !self.has_comments(*span)
                {
                    let code = format!("{head} {{ {} }}", self.space_line(one, 0, 0));
                    if self.fits(&code) {
                        self.line(code, span.end);
                        return;
                    }
                }
                self.open(&head, self.open_brace(cond.span.end));
                self.space_items(items);
                self.close(span.end.saturating_sub(1));
            }
            SpaceItem::Param { span, .. } | SpaceItem::Const { span, .. } | SpaceItem::Let { span, .. } => {
                self.node_start(span.start);
                let code = self.space_line(item, width, ty_width);
                self.line(code, span.end);
            }
        }
    }

    /// A one-line space item; `when` only when it holds one item.
    fn space_line(&self, item: &SpaceItem, width: usize, ty_width: usize) -> String {
        match item {
            SpaceItem::Param { name, ty, domain, .. } => {
                let name = format!("{:<width$}", format!("{}:", name.name));
                let ty = ty.map_or(String::new(), |(t, _)| format!("{:<ty_width$} ", t.as_str()));
                format!("{name} {ty}in {}", self.domain(domain))
            }
            SpaceItem::Const { name, value, .. } => format!("{} = {}", name.name, self.expr(value)),
            SpaceItem::Let { name, value, .. } => format!("let {} = {}", name.name, self.expr(value)),
            SpaceItem::When { cond, items, .. } => {
                let inner = items.iter().map(|i| self.space_line(i, 0, 0)).collect::<Vec<_>>().join(" ");
                format!("when {} {{ {inner} }}", self.expr(cond))
            }
        }
    }

    fn domain(&self, d: &Domain) -> String {
        match d {
            Domain::Choice { values, .. } => format!("{{{}}}", self.list(values)),
            Domain::Range { lo, hi, inclusive, log, step, .. } => {
                let op = if *inclusive { "..=" } else { ".." };
                let mut s = format!("{}{op}{}", self.expr(lo), self.expr(hi));
                if log.is_some() {
                    s.push_str(" log");
                }
                if let Some(step) = step {
                    s.push_str(&format!(" step {}", self.expr(step)));
                }
                s
            }
        }
    }

    // ------------------------------------------------------------ model

    fn stmts(&mut self, stmts: &[Stmt]) {
        for s in stmts {
            self.stmt(s);
        }
    }

    fn stmt(&mut self, stmt: &Stmt) {
        self.node_start(stmt_start(stmt));
        match stmt {
            Stmt::Chain(_) | Stmt::Let { .. } => {
                let code = self.simple_stmt(stmt);
                self.line(code, stmt_end(stmt));
            }
            Stmt::Repeat { var, from, count, body, .. } => {
                let head = match (var, from) {
                    (Some(v), Some(from)) => {
                        let (op, hi) = inclusive_end(count);
                        format!("repeat {} in {}{op}{}", v.name, self.expr(from), self.expr(hi))
                    }
                    _ => format!("repeat {}", self.expr(count)),
                };
                self.body(&head, body);
            }
            Stmt::Residual { body, .. } => self.body("residual", body),
            Stmt::Match { scrutinee, arms, span } => {
                self.open(&format!("match {}", self.expr(scrutinee)), self.open_brace(scrutinee.span.end));
                for arm in arms {
                    self.node_start(arm.pattern.span.start);
                    let head = format!("{} =>", self.pattern(&arm.pattern));
                    self.body(&head, &arm.body);
                }
                self.close(span.end.saturating_sub(1));
            }
            Stmt::Parallel { merge, branches, span } => {
                self.open(&format!("parallel({})", merge.name), self.open_brace(merge.span.end));
                for b in branches {
                    self.node_start(b.span.start);
                    self.body("", b);
                }
                self.close(span.end.saturating_sub(1));
            }
            Stmt::If { cond, then, otherwise, span } => {
                let compact = match otherwise {
                    None => self.inline_body(then).map(|t| format!("if {} {t}", self.expr(cond))),
                    Some(o) if else_if(o).is_none() => self
                        .inline_body(then)
                        .zip(self.inline_body(o))
                        .map(|(t, o)| format!("if {} {t} else {o}", self.expr(cond))),
                    Some(_) => None,
                };
                if let Some(code) = compact.filter(|c| self.fits(c) && !self.has_comments(*span)) {
                    self.line(code, span.end);
                    return;
                }
                self.open(&format!("if {}", self.expr(cond)), then.span.start);
                self.stmts(&then.stmts);
                let mut last = then;
                let mut rest = otherwise.as_ref();
                while let Some(o) = rest {
                    let close = last.span.end.saturating_sub(1);
                    match else_if(o) {
                        Some((c, t, more)) => {
                            let code = format!("}} else if {} {{", self.expr(c));
                            self.close_with(close, &code, t.span.start + 1);
                            self.indent += 1;
                            self.stmts(&t.stmts);
                            last = t;
                            rest = more.as_ref();
                        }
                        None => {
                            self.close_with(close, "} else {", o.span.start + 1);
                            self.indent += 1;
                            self.stmts(&o.stmts);
                            last = o;
                            rest = None;
                        }
                    }
                }
                self.close(last.span.end.saturating_sub(1));
            }
        }
    }

    /// `head { ... }`: on one line when it holds one chain and no comment.
    fn body(&mut self, head: &str, body: &Body) {
        if let Some(inline) = self.inline_body(body).filter(|_| !self.has_comments(body.span)) {
            let code = if head.is_empty() { inline } else { format!("{head} {inline}") };
            if self.fits(&code) {
                self.line(code, body.span.end);
                return;
            }
        }
        self.open(head, body.span.start);
        self.stmts(&body.stmts);
        self.close(body.span.end.saturating_sub(1));
    }

    /// `{ stmt }` or `{}` for a body that may stand on one line.
    fn inline_body(&self, body: &Body) -> Option<String> {
        match body.stmts.as_slice() {
            [] => Some("{}".to_string()),
            [s @ (Stmt::Chain(_) | Stmt::Let { .. })] => Some(format!("{{ {} }}", self.simple_stmt(s))),
            _ => None,
        }
    }

    fn simple_stmt(&self, stmt: &Stmt) -> String {
        match stmt {
            Stmt::Chain(c) => self.chain(c),
            Stmt::Let { name, chain, .. } => format!("let {} = {}", name.name, self.chain(chain)),
            _ => String::new(),
        }
    }

    fn chain(&self, chain: &Chain) -> String {
        chain.links.iter().map(|c| self.call(c)).collect::<Vec<_>>().join(" -> ")
    }

    fn call(&self, call: &Call) -> String {
        match &call.args {
            None => call.name.name.clone(),
            Some(args) => format!("{}({})", call.name.name, self.args(args)),
        }
    }

    // ------------------------------------------------------------ expressions

    fn args(&self, args: &[Arg]) -> String {
        let each = args.iter().map(|a| match &a.name {
            Some(n) => format!("{}: {}", n.name, self.expr(&a.value)),
            None => self.expr(&a.value),
        });
        each.collect::<Vec<_>>().join(", ")
    }

    fn list(&self, items: &[Expr]) -> String {
        items.iter().map(|e| self.expr(e)).collect::<Vec<_>>().join(", ")
    }

    fn pattern(&self, p: &Pattern) -> String {
        let alts = p.alts.iter().map(|a| match a {
            PatternAlt::Wildcard(_) => "_".to_string(),
            PatternAlt::Name(i) => i.name.clone(),
            PatternAlt::Bool(b, _) => b.to_string(),
            PatternAlt::Number(v, s) => self.literal(*s, || v.to_string()),
            PatternAlt::Str(v, s) => self.literal(*s, || format!("{v:?}")),
        });
        alts.collect::<Vec<_>>().join(" | ")
    }

    /// A literal as it was written, so `60k` stays `60k`.
    fn literal(&self, span: crate::source::Span, fallback: impl FnOnce() -> String) -> String {
        match self.src(span) {
            "" => fallback(),
            s => s.to_string(),
        }
    }

    fn expr(&self, e: &Expr) -> String {
        match &e.kind {
            ExprKind::Number(v, _) => self.literal(e.span, || v.to_string()),
            ExprKind::Str(s) => self.literal(e.span, || format!("{s:?}")),
            ExprKind::Bool(b) => b.to_string(),
            ExprKind::Name(n) => n.clone(),
            ExprKind::List(items) => format!("[{}]", self.list(items)),
            ExprKind::Unary(op, x) => {
                let (text, p) = match op {
                    UnaryOp::Neg => ("-", PREC_NEG),
                    UnaryOp::Not => ("not ", PREC_NOT),
                };
                format!("{text}{}", self.operand(x, prec(x) < p))
            }
            ExprKind::Binary(op, l, r) => {
                let p = binary_prec(*op);
                let right_assoc = *op == BinaryOp::Pow;
                let paren_l = if right_assoc { prec(l) <= p } else { prec(l) < p };
                let paren_r = if right_assoc { prec(r) < p } else { prec(r) <= p };
                format!("{} {} {}", self.operand(l, paren_l), op.as_str(), self.operand(r, paren_r))
            }
            ExprKind::Call(callee, args) => {
                format!("{}({})", self.operand(callee, prec(callee) < PREC_POSTFIX), self.args(args))
            }
            ExprKind::Field(x, name) => format!("{}.{}", self.operand(x, prec(x) < PREC_POSTFIX), name.name),
            ExprKind::If(c, a, b) => {
                let mut s = format!("if {} {{ {} }} else ", self.expr(c), self.expr(a));
                match &b.kind {
                    ExprKind::If(..) => s.push_str(&self.expr(b)),
                    _ => s.push_str(&format!("{{ {} }}", self.expr(b))),
                }
                s
            }
            ExprKind::Match(s, arms) => {
                let arms = arms.iter().map(|a| format!("{} => {}", self.pattern(&a.pattern), self.expr(&a.value)));
                format!("match {} {{ {} }}", self.expr(s), arms.collect::<Vec<_>>().join(", "))
            }
        }
    }

    fn operand(&self, e: &Expr, paren: bool) -> String {
        if paren { format!("({})", self.expr(e)) } else { self.expr(e) }
    }
}

/// What a line of `train`, `search`, `report` or `objective` holds.
enum Row<'a> {
    Assign(&'a Assign),
    Objective(&'a ObjectiveItem),
    /// A line of `trial { }` (a record: `env = { KEY: "value" }`).
    Record(&'a ast::TrialItem),
}

// ---------------------------------------------------------------- helpers

/// Binding strengths, as in `syntax`'s Pratt table (higher binds tighter).
const PREC_NOT: u8 = 3;
const PREC_NEG: u8 = 7;
const PREC_POSTFIX: u8 = 9;
const PREC_ATOM: u8 = 10;

fn binary_prec(op: BinaryOp) -> u8 {
    match op {
        BinaryOp::Or => 1,
        BinaryOp::And => 2,
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge => 4,
        BinaryOp::Add | BinaryOp::Sub => 5,
        BinaryOp::Mul | BinaryOp::Div | BinaryOp::Rem => 6,
        BinaryOp::Pow => 8,
    }
}

fn prec(e: &Expr) -> u8 {
    match &e.kind {
        ExprKind::Binary(op, ..) => binary_prec(*op),
        ExprKind::Unary(UnaryOp::Neg, _) => PREC_NEG,
        ExprKind::Unary(UnaryOp::Not, _) => PREC_NOT,
        ExprKind::Call(..) | ExprKind::Field(..) => PREC_POSTFIX,
        _ => PREC_ATOM,
    }
}

/// The operands of a left-associative chain of operators as strong as `level`:
/// `a + b - c` gives `[(None, a), (Some(+), b), (Some(-), c)]`. `^` is not split.
fn flatten<'e>(e: &'e Expr, level: u8, out: &mut Vec<(Option<BinaryOp>, &'e Expr)>) {
    match &e.kind {
        ExprKind::Binary(op, l, r) if binary_prec(*op) == level && *op != BinaryOp::Pow => {
            flatten(l, level, out);
            out.push((Some(*op), r));
        }
        _ => out.push((None, e)),
    }
}

fn param_type(item: &SpaceItem) -> Option<&'static str> {
    match item {
        SpaceItem::Param { ty: Some((t, _)), .. } => Some(t.as_str()),
        _ => None,
    }
}

/// `repeat i in a..=b` is parsed as `a..(b + 1)` with the `1` spanning `b`: undo it.
fn inclusive_end(count: &Expr) -> (&'static str, &Expr) {
    match &count.kind {
        ExprKind::Binary(BinaryOp::Add, b, one)
            if one.span == b.span && matches!(one.kind, ExprKind::Number(v, _) if v == 1.0) =>
        {
            ("..=", b)
        }
        _ => ("..", count),
    }
}

/// An `else` body that is an `else if`: its condition, then-body and else.
fn else_if(body: &Body) -> Option<(&Expr, &Body, &Option<Body>)> {
    match body.stmts.as_slice() {
        [Stmt::If { cond, then, otherwise, span }] if span.start == body.span.start => Some((cond, then, otherwise)),
        _ => None,
    }
}

fn item_start(item: &Item) -> u32 {
    match item {
        Item::Use(u) => u.span.start,
        Item::Block(b) => b.span.start,
        Item::Fn(f) => f.span.start,
        Item::Experiment(e) => e.span.start,
    }
}

fn stmt_start(stmt: &Stmt) -> u32 {
    match stmt {
        Stmt::Chain(c) => c.span.start,
        Stmt::Let { span, .. }
        | Stmt::Repeat { span, .. }
        | Stmt::Match { span, .. }
        | Stmt::If { span, .. }
        | Stmt::Residual { span, .. }
        | Stmt::Parallel { span, .. } => span.start,
    }
}

fn stmt_end(stmt: &Stmt) -> u32 {
    match stmt {
        Stmt::Chain(c) => c.span.end,
        Stmt::Let { span, .. }
        | Stmt::Repeat { span, .. }
        | Stmt::Match { span, .. }
        | Stmt::If { span, .. }
        | Stmt::Residual { span, .. }
        | Stmt::Parallel { span, .. } => span.end,
    }
}

/// Aligns the trailing comments of consecutive lines at one indentation.
fn align_trailing(lines: &mut [Line]) {
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trailing.is_none() {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        while j < lines.len() && lines[j].trailing.is_some() && lines[j].indent == lines[i].indent {
            j += 1;
        }
        let col = lines[i..j].iter().map(|l| l.code.len()).max().unwrap_or(0) + 2;
        for l in &mut lines[i..j] {
            if let Some(t) = l.trailing.take() {
                let pad = if l.code.is_empty() { 0 } else { col - l.code.len() };
                l.trailing = Some(format!("{}{t}", " ".repeat(pad)));
            }
        }
        i = j;
    }
}
