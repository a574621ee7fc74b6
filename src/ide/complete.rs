//! Completion by the cursor's context: what may be written there, from the catalogues and
//! the file's own names.
//!
//! Takes an [`Analysis`] and an offset; gives the items and the span they replace (the
//! word typed so far). The context is read from the text before the cursor by a tolerant
//! forward scan (comments and strings skipped, the open braces kept with the keyword that
//! opened them, the open call's name), so it holds while the file does not parse:
//! after `strategy =` the strategies, after `optimizer =` the optimisers (one table per
//! key, `catalogue`), after `maximize`/`minimize` the metrics and the names the program
//! reports, after `data.` its fields, inside a call the named arguments not yet given, in
//! a model the layers, the blocks and the nodes and parameters in scope, in a section its
//! keys not yet set, in an experiment the sections it lacks. **Invariant:** no label twice.

use std::collections::BTreeSet;

use super::{Analysis, Completion, CompletionKind, describe_domain};
use crate::catalogue::{self, Concept, Form, Need};
use crate::ir::{self, ParamKind};
use crate::source::{FileId, Span};
use crate::syntax::lex::{self, Lexeme};

/// Where the cursor is, as far as completion cares.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Context {
    /// After `key =` in a section: an entry of this concept.
    Entry(Concept),
    /// After `maximize` or `minimize` (and `name =`), or in `require`.
    Metric,
    /// After `data.`.
    DataField,
    /// Inside the parentheses of a call of `callee`, where an argument starts; `given` are
    /// the named arguments already written.
    Args {
        callee: String,
        given: Vec<String>,
        in_model: bool,
    },
    /// Where a statement of a model starts.
    Model,
    /// Where a key of a `train`, `search` or `report` section starts.
    Keys(&'static str),
    Objective,
    Space,
    /// In an experiment, between sections.
    Sections,
    /// At the top of the file.
    Items,
    /// A value anywhere else.
    Value,
}

/// The items for `offset`, and the span they replace.
pub fn complete(a: &Analysis, file: FileId, offset: u32) -> (Span, Vec<Completion>) {
    let c = &a.compiled;
    let text = c.sources.get(file).map_or("", |s| s.text.as_str());
    let offset = (offset as usize).min(text.len());
    let start = text[..offset]
        .char_indices()
        .rev()
        .take_while(|(_, ch)| ch.is_ascii_alphanumeric() || *ch == '_')
        .last()
        .map_or(offset, |(i, _)| i);
    let replace = Span::new(file, start, offset);
    let context = context(text, start);
    let exp = c
        .program
        .experiments
        .iter()
        .find(|e| e.span.file == file && e.span.start as usize <= offset && offset <= e.span.end as usize);
    let mut out = Items::default();
    let params = |out: &mut Items| {
        if let Some(e) = exp {
            for p in &e.space.params {
                let detail = match &p.kind {
                    ParamKind::Free(d) => describe_domain(d),
                    ParamKind::Const(v) => format!("= {v}"),
                    ParamKind::Derived(_) => "derived".to_string(),
                };
                out.push(&p.name, CompletionKind::Parameter, detail, None, 0);
            }
        }
    };
    let entries = |out: &mut Items, concept: Concept, kind: CompletionKind| {
        for sig in concept.sigs() {
            out.push(sig.name, kind, catalogue::describe(concept, sig), snippet(sig), 2);
        }
    };
    match &context {
        Context::Entry(concept) => entries(&mut out, *concept, kind_of(*concept)),
        Context::Metric => {
            if let Some(trial) = exp.and_then(|e| e.trial.as_ref()) {
                for (name, _) in trial.reports() {
                    out.push(&name, CompletionKind::Metric, "reported by the program".to_string(), None, 0);
                }
            } else {
                entries(&mut out, Concept::Metric, CompletionKind::Metric);
            }
            if exp.is_some_and(|e| e.model.is_none() && e.trial.is_none()) {
                params(&mut out);
            }
        }
        Context::DataField => {
            for f in catalogue::DATA_FIELDS {
                out.push(f.name, CompletionKind::Field, f.doc.to_string(), None, 0);
            }
        }
        Context::Args { callee, given, in_model } => {
            let block = c.program.blocks.get(callee);
            let sig = if *in_model && block.is_none() {
                catalogue::layer_signature(callee)
                    .and_then(|_| Concept::Layer.sigs().into_iter().find(|s| s.name == callee.as_str()))
            } else {
                Concept::ALL.into_iter().flat_map(Concept::sigs).find(|s| s.name == callee.as_str())
            };
            if let Some(b) = block {
                for p in b.params.iter().filter(|p| !given.contains(&p.name.name)) {
                    let detail = c.sources.text(p.span).split_whitespace().collect::<Vec<_>>().join(" ");
                    out.push(&p.name.name, CompletionKind::Argument, detail, Some(format!("{}: $0", p.name.name)), 0);
                }
            } else if let Some(sig) = sig {
                for arg in sig.args.iter().filter(|x| !given.iter().any(|g| g == x.name)) {
                    let detail = match arg.need {
                        Need::Required => "required".to_string(),
                        Need::Optional => "optional".to_string(),
                        Need::Default(d) => format!("default {d}"),
                    };
                    out.push(arg.name, CompletionKind::Argument, detail, Some(format!("{}: $0", arg.name)), 0);
                }
            }
            params(&mut out);
            user_values(a, &mut out);
        }
        Context::Model => {
            params(&mut out);
            for o in a.index.occurrences.iter().filter(|o| {
                o.is_def
                    && matches!(
                        o.target,
                        super::Target::Symbol {
                            kind: super::SymbolKind::Node
                                | super::SymbolKind::BlockParam
                                | super::SymbolKind::RepeatVar,
                            ..
                        }
                    )
                    && o.scope.start as usize <= offset
                    && offset <= o.scope.end as usize
                    && (o.span.start as usize) < offset
            }) {
                out.push(&o.name, CompletionKind::Parameter, "in scope".to_string(), None, 0);
            }
            for (name, b) in c.program.blocks.iter().filter(|(n, _)| !n.contains("::")) {
                let args: Vec<String> = b
                    .params
                    .iter()
                    .filter(|p| p.default.is_none())
                    .enumerate()
                    .map(|(i, p)| format!("${{{}:{}}}", i + 1, p.name.name))
                    .collect();
                let insert = (!args.is_empty()).then(|| format!("{name}({})", args.join(", ")));
                out.push(name, CompletionKind::Block, b.doc.clone().unwrap_or_default(), insert, 1);
            }
            entries(&mut out, Concept::Layer, CompletionKind::Layer);
            for k in ["let", "repeat", "match", "if", "residual", "parallel"] {
                out.push(k, CompletionKind::Keyword, String::new(), None, 3);
            }
        }
        Context::Keys(section) => {
            let given = section_keys_given(a, exp, section);
            for key in crate::check::section_keys(section).iter().filter(|k| !given.contains(**k)) {
                out.push(
                    key,
                    CompletionKind::Setting,
                    format!("a setting of `{section}`"),
                    Some(format!("{key} = $0")),
                    0,
                );
            }
        }
        Context::Objective => {
            for k in ["maximize", "minimize", "require"] {
                out.push(k, CompletionKind::Keyword, String::new(), Some(format!("{k} $0")), 0);
            }
            out.push(
                "rank",
                CompletionKind::Setting,
                "how the trials are ranked".to_string(),
                Some("rank = $0".into()),
                0,
            );
        }
        Context::Space => {
            for k in ["when", "let"] {
                out.push(k, CompletionKind::Keyword, String::new(), None, 0);
            }
        }
        Context::Sections => {
            let present: BTreeSet<&str> = exp.map(|e| e.sections.keys().copied().collect()).unwrap_or_default();
            for kind in crate::ast::SectionKind::ALL {
                let k = kind.as_str();
                if present.contains(k) {
                    continue;
                }
                let insert = if k == "data" { "data = $0".to_string() } else { format!("{k} {{\n  $0\n}}") };
                out.push(k, CompletionKind::Keyword, "a section".to_string(), Some(insert), 0);
            }
        }
        Context::Items => {
            for k in ["use", "block", "fn", "experiment"] {
                out.push(k, CompletionKind::Keyword, String::new(), None, 0);
            }
        }
        Context::Value => {
            params(&mut out);
            user_values(a, &mut out);
            for f in ir::BUILTINS {
                out.push(f, CompletionKind::Function, "builtin".to_string(), None, 2);
            }
        }
    }
    (replace, out.items)
}

/// Local names and fns, for a value.
fn user_values(a: &Analysis, out: &mut Items) {
    for name in a.compiled.program.fns.keys().filter(|n| !n.contains("::")) {
        out.push(name, CompletionKind::Function, "fn".to_string(), Some(format!("{name}($0)")), 1);
    }
}

/// The keys already set in the section of `exp` named `section`.
fn section_keys_given(a: &Analysis, exp: Option<&ir::Experiment>, section: &str) -> BTreeSet<String> {
    let Some(e) = exp else { return BTreeSet::new() };
    let _ = a;
    let settings = match section {
        "train" => &e.train,
        "search" => &e.search,
        "report" => &e.report,
        _ => return BTreeSet::new(),
    };
    settings.iter().map(|s| s.key.clone()).collect()
}

fn kind_of(concept: Concept) -> CompletionKind {
    match concept {
        Concept::Layer => CompletionKind::Layer,
        Concept::Strategy => CompletionKind::Strategy,
        Concept::Pruner => CompletionKind::Pruner,
        Concept::Metric => CompletionKind::Metric,
        Concept::Dataset | Concept::AudioFeature => CompletionKind::Dataset,
        Concept::Augment => CompletionKind::Augment,
        _ => CompletionKind::Function,
    }
}

/// A snippet with a placeholder for each required argument: `dense(${1:units})`.
fn snippet(sig: &catalogue::Sig) -> Option<String> {
    if sig.form != Form::Call || sig.required() == 0 {
        return None;
    }
    let args: Vec<String> =
        sig.args[..sig.required()].iter().enumerate().map(|(i, a)| format!("${{{}:{}}}", i + 1, a.name)).collect();
    Some(format!("{}({})", sig.name, args.join(", ")))
}

#[derive(Default)]
struct Items {
    items: Vec<Completion>,
    seen: BTreeSet<String>,
}

impl Items {
    fn push(&mut self, label: &str, kind: CompletionKind, detail: String, insert: Option<String>, rank: u8) {
        if self.seen.insert(label.to_string()) {
            self.items.push(Completion { label: label.to_string(), kind, detail, insert, rank });
        }
    }
}

/// The context of a word that starts at `at`, read from the text before it.
fn context(text: &str, at: usize) -> Context {
    let scan = scan(text, at);
    let before = text[..at].trim_end_matches([' ', '\t']);
    if let Some(b) = before.strip_suffix('.')
        && b.trim_end().ends_with("data")
    {
        return Context::DataField;
    }
    let section = scan.blocks.iter().rev().find(|b| SECTIONS.contains(&b.as_str())).cloned();
    let in_model = scan.blocks.iter().any(|b| b == "model" || b == "block");
    let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
    // A call left open on an earlier line of a model (`dense_act(` half typed) does not hold
    // the next statement.
    let stale = |open: usize| in_model && open < line_start && text[line_start..at].trim().is_empty();
    if let Some((callee, given, open)) = scan.call
        && !stale(open)
    {
        return if before.ends_with('(') || before.ends_with(',') {
            Context::Args { callee, given, in_model }
        } else {
            Context::Value
        };
    }
    let line = &text[line_start..at];
    if let Some(key) = assigned_key(line) {
        let top = scan.blocks.last().map(String::as_str);
        return match (section.as_deref(), key.as_str()) {
            (_, "data") if top == Some("experiment") => Context::Entry(Concept::Dataset),
            (Some("train"), "optimizer") => Context::Entry(Concept::Optimizer),
            (Some("train"), "schedule") => Context::Entry(Concept::Schedule),
            (Some("train"), "loss") => Context::Entry(Concept::Loss),
            (Some("train"), "precision") => Context::Entry(Concept::Precision),
            (Some("train"), "init") => Context::Entry(Concept::Init),
            (Some("train"), "early_stop") => Context::Entry(Concept::EarlyStop),
            (Some("train"), "augment") => Context::Entry(Concept::Augment),
            (Some("search"), "strategy") => Context::Entry(Concept::Strategy),
            (Some("search"), "prune") => Context::Entry(Concept::Pruner),
            (Some("objective"), "rank") => Context::Entry(Concept::Rank),
            _ => Context::Value,
        };
    }
    let last_word = before.rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next().unwrap_or("");
    if section.as_deref() == Some("objective") && matches!(last_word, "maximize" | "minimize" | "require") {
        return Context::Metric;
    }
    // After an operator, a value; `->` continues a chain.
    let after_operator =
        !before.ends_with("->") && before.ends_with(['=', '<', '>', '+', '-', '*', '/', '%', '^', '!', '[', ':']);
    let after_value_keyword = matches!(last_word, "when" | "if" | "match" | "in" | "and" | "or" | "not" | "repeat");
    if after_operator || after_value_keyword {
        return Context::Value;
    }
    match (scan.blocks.last().map(String::as_str), section.as_deref()) {
        (None, _) => Context::Items,
        (Some("experiment"), _) => Context::Sections,
        (_, Some("train")) => Context::Keys("train"),
        (_, Some("search")) => Context::Keys("search"),
        (_, Some("report")) => Context::Keys("report"),
        (_, Some("objective")) => Context::Objective,
        (_, Some("space")) => Context::Space,
        _ if in_model => Context::Model,
        _ => Context::Value,
    }
}

/// The key of `key = ` when the cursor is in its value (the value not finished yet: no
/// whole word followed by a space after the `=`).
fn assigned_key(line: &str) -> Option<String> {
    let eq = line.char_indices().rev().filter(|(_, c)| *c == '=').map(|(i, _)| i).find(|&i| {
        let prev = line[..i].chars().next_back();
        let next = line[i + 1..].chars().next();
        !matches!(prev, Some('=' | '!' | '<' | '>')) && !matches!(next, Some('=' | '>'))
    })?;
    let value = &line[eq + 1..];
    if value.trim_start().contains(char::is_whitespace) {
        return None;
    }
    let key = line[..eq].trim_end().rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).next()?;
    (!key.is_empty()).then(|| key.to_string())
}

const SECTIONS: [&str; 9] = ["data", "space", "model", "train", "objective", "search", "average", "report", "trial"];

/// What is open before the cursor.
#[derive(Default)]
struct Scan {
    /// Each open `{`, with the keyword that opened it (`experiment`, a section, `block`,
    /// `when`...; `{` when none).
    blocks: Vec<String>,
    /// The innermost open call: its name, the named arguments written in it, where its `(` is.
    call: Option<(String, Vec<String>, usize)>,
}

const OPENERS: [&str; 16] = [
    "experiment",
    "block",
    "fn",
    "space",
    "model",
    "train",
    "objective",
    "search",
    "average",
    "report",
    "trial",
    "when",
    "repeat",
    "match",
    "residual",
    "parallel",
];

fn scan(text: &str, to: usize) -> Scan {
    let mut out = Scan::default();
    let mut opener: Option<String> = None;
    // Open parentheses: the word before each (its callee) and its named arguments.
    let mut calls: Vec<(String, Vec<String>, usize)> = Vec::new();
    let mut last_word = String::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < to {
        let rest = &text[i..to];
        if let Some(skip) = lex::skip_at(&text[..to], i) {
            if skip.lexeme == Lexeme::String {
                last_word.clear();
            }
            i = skip.end.max(i + 1);
            continue;
        }
        let b = bytes[i];
        match b {
            b'{' => {
                out.blocks.push(opener.take().unwrap_or_else(|| "{".to_string()));
                calls.clear();
            }
            b'}' => {
                out.blocks.pop();
                calls.clear();
                opener = None;
            }
            b'(' => calls.push((std::mem::take(&mut last_word), Vec::new(), i)),
            b')' => {
                calls.pop();
            }
            b':' if !rest.starts_with("::") && !last_word.is_empty() => {
                if let Some(c) = calls.last_mut() {
                    c.1.push(last_word.clone());
                }
            }
            _ if b.is_ascii_alphanumeric() || b == b'_' => {
                let len = rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len());
                last_word = rest[..len].to_string();
                if OPENERS.contains(&last_word.as_str()) && calls.is_empty() {
                    opener = Some(last_word.clone());
                }
                i += len;
                continue;
            }
            b' ' | b'\t' | b'\n' | b'\r' => {
                i += 1;
                continue;
            }
            _ => {}
        }
        if b != b'(' {
            last_word.clear();
        }
        i += 1;
    }
    out.call = calls.pop();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Context {
        let cursor = text.find('|').expect("a cursor");
        let text = text.replace('|', "");
        let start = text[..cursor]
            .char_indices()
            .rev()
            .take_while(|(_, ch)| ch.is_ascii_alphanumeric() || *ch == '_')
            .last()
            .map_or(cursor, |(i, _)| i);
        context(&text, start)
    }

    #[test]
    fn contexts_are_read_from_the_text_before_the_cursor() {
        let exp = "experiment e {\n  ";
        assert_eq!(at(&format!("{exp}search {{ strategy = t|")), Context::Entry(Concept::Strategy));
        assert_eq!(at(&format!("{exp}search {{\n    prune = |")), Context::Entry(Concept::Pruner));
        assert_eq!(at(&format!("{exp}train {{\n    optimizer = |")), Context::Entry(Concept::Optimizer));
        assert_eq!(at(&format!("{exp}data = d|")), Context::Entry(Concept::Dataset));
        assert_eq!(at(&format!("{exp}objective {{ maximize |")), Context::Metric);
        assert_eq!(at(&format!("{exp}model {{ dense(data.|")), Context::DataField);
        assert_eq!(
            at(&format!("{exp}model {{ conv2d(8, kernel: 3, |")),
            Context::Args { callee: "conv2d".into(), given: vec!["kernel".into()], in_model: true }
        );
        assert_eq!(at(&format!("{exp}model {{\n    dense(4)\n    |")), Context::Model);
        assert_eq!(at(&format!("{exp}model {{ dense(4) -> |")), Context::Model);
        assert_eq!(at(&format!("{exp}train {{\n    epochs = 3\n    |")), Context::Keys("train"));
        assert_eq!(at(&format!("{exp}space {{ x: int in {{1, 2}} }}\n  |")), Context::Sections);
        assert_eq!(at("|"), Context::Items);
        assert_eq!(at(&format!("{exp}// strategy = \n  model {{ | ")), Context::Model);
    }
}

/// The signature of the call around the cursor, for signature help.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// `conv2d(filters, kernel: 3, ...)`.
    pub label: String,
    /// Each parameter's byte range in `label`.
    pub params: Vec<(usize, usize)>,
    /// The parameter being written (a named argument's own, else by position).
    pub active: usize,
    pub doc: String,
}

/// The signature of the innermost open call at `offset`: a block's, a fn's, or a catalogue
/// entry's (a layer in a model).
pub fn signature(a: &Analysis, file: FileId, offset: u32) -> Option<Signature> {
    let c = &a.compiled;
    let text = c.sources.get(file).map_or("", |s| s.text.as_str());
    let offset = (offset as usize).min(text.len());
    let scan = scan(text, offset);
    let in_model = scan.blocks.iter().any(|b| b == "model" || b == "block");
    let (callee, _, open) = scan.call?;
    let (head, params, doc): (String, Vec<String>, String) = if let Some(b) = c.program.blocks.get(&callee) {
        let params = b.params.iter().map(|p| c.sources.text(p.span).split_whitespace().collect::<Vec<_>>().join(" "));
        (format!("block {callee}"), params.collect(), b.doc.clone().unwrap_or_default())
    } else if let Some(f) = c.program.fns.get(&callee) {
        let params = f.params.iter().map(|p| c.sources.text(p.span).split_whitespace().collect::<Vec<_>>().join(" "));
        (format!("fn {callee}"), params.collect(), f.doc.clone().unwrap_or_default())
    } else {
        let concepts: Vec<Concept> = if in_model { vec![Concept::Layer] } else { Concept::ALL.to_vec() };
        let (concept, sig) =
            concepts.into_iter().find_map(|k| k.sigs().into_iter().find(|s| s.name == callee).map(|s| (k, s)))?;
        let params = sig.args.iter().map(|x| catalogue::written_arg(concept, x)).collect();
        (callee.clone(), params, sig.doc.to_string())
    };
    let mut label = format!("{head}(");
    let mut ranges = Vec::new();
    for (i, p) in params.iter().enumerate() {
        if i > 0 {
            label.push_str(", ");
        }
        ranges.push((label.len(), label.len() + p.len()));
        label.push_str(p);
    }
    label.push(')');
    // The argument being written: its name when it has one, else its position.
    let written = &text[open + 1..offset];
    let mut depth = 0i32;
    let mut commas = 0usize;
    let mut current_start = 0usize;
    for (i, ch) in written.char_indices() {
        match ch {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                commas += 1;
                current_start = i + 1;
            }
            _ => {}
        }
    }
    let current = written[current_start..].trim_start();
    let named = current.split_once(':').map(|(n, _)| n.trim()).filter(|n| is_name(n));
    let active =
        named.and_then(|n| params.iter().position(|p| p.split([':', ' ', '=']).next() == Some(n))).unwrap_or(commas);
    Some(Signature { label, params: ranges, active, doc })
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}
