//! What an editor asks about a position: hover text, the definition, completions.
//!
//! Takes a [`Compiled`] file and a byte offset in one of its sources, gives
//! plain data; `bma lsp` turns it into protocol messages. Works on a file with
//! errors too, with whatever was lowered. What it says of built-in layers, metrics,
//! strategies and pruners is the catalogue's (`catalogue`), never its own list.

use crate::Compiled;
use crate::ast;
use crate::catalogue::{self, Concept};
use crate::ir::{self, Domain, Experiment, ParamKind};
use crate::source::{FileId, Span};

mod complete;
mod hints;
mod navigate;
mod resolve;
mod trial;

pub use complete::{Signature, signature};
pub use hints::{InlayHint, inlay_hints};
pub use navigate::{
    Fix, OutlineKind, Symbol, TokenKind, folds, highlights, prepare_rename, quick_fixes, references, rename,
    semantic_tokens, symbols,
};
pub use resolve::{Index, Occurrence, SymbolKind, Target};

/// What completion offers, and how an editor should show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub label: String,
    pub kind: CompletionKind,
    pub detail: String,
    /// A snippet to insert instead of the label (`dense(${1:units})`), in LSP's syntax.
    pub insert: Option<String>,
    /// Where it sorts: lower first (the file's own names before the catalogue's).
    pub rank: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompletionKind {
    Layer,
    Block,
    Parameter,
    Metric,
    Strategy,
    Pruner,
    Keyword,
    Function,
    /// A data source (`images`, `audio`, `text`, ...) or one of its settings (`mel`).
    Dataset,
    /// A `train { augment = [...] }` operation.
    Augment,
    /// A setting of a section (`trial { timeout = }`).
    Setting,
    /// A built-in `{placeholder}` of a command string (`{seed}`).
    Placeholder,
    /// A field of `data` (`classes`).
    Field,
    /// A named argument of a call (`kernel:`).
    Argument,
}

/// The meaning of each metric, shown on hover.
pub fn metric_doc(name: &str) -> Option<&'static str> {
    catalogue::find(catalogue::METRICS, name).map(|m| m.sig.doc)
}

/// The line hover and completion show for the entry of `concept` named `name`.
fn entry_doc(concept: Concept, name: &str) -> Option<String> {
    concept.sigs().into_iter().find(|s| s.name == name).map(|s| catalogue::describe(concept, s))
}

/// The lines of every entry of `concept`, in order.
#[cfg(test)]
fn entry_docs(concept: Concept) -> Vec<(&'static str, String)> {
    concept.sigs().into_iter().map(|s| (s.name, catalogue::describe(concept, s))).collect()
}

/// The identifier (with dots, `data.classes`) around `offset`, and its span.
pub fn word_at(c: &Compiled, file: FileId, offset: u32) -> Option<(String, Span)> {
    let text = &c.sources.get(file)?.text;
    let offset = (offset as usize).min(text.len());
    let is_word = |ch: char| ch.is_ascii_alphanumeric() || ch == '_';
    let start =
        text[..offset].char_indices().rev().take_while(|(_, ch)| is_word(*ch)).last().map_or(offset, |(i, _)| i);
    let end = text[offset..]
        .char_indices()
        .take_while(|(_, ch)| is_word(*ch))
        .last()
        .map_or(offset, |(i, ch)| offset + i + ch.len_utf8());
    if start == end {
        return None;
    }
    Some((text[start..end].to_string(), Span::new(file, start, end)))
}

fn enclosing(c: &Compiled, file: FileId, offset: u32) -> Option<&Experiment> {
    c.program.experiments.iter().find(|e| e.span.file == file && e.span.start <= offset && offset <= e.span.end)
}

fn describe_domain(d: &Domain) -> String {
    match d {
        Domain::Int { lo, hi, log, step } => {
            format!(
                "int in {lo}..={hi}{}{}",
                if *step > 1 { format!(" step {step}") } else { String::new() },
                if *log { " log" } else { "" }
            )
        }
        Domain::Float { lo, hi, log, step } => format!(
            "float in {}..{}{}{}",
            ir::Value::Float(*lo),
            ir::Value::Float(*hi),
            step.map(|s| format!(" step {s}")).unwrap_or_default(),
            if *log { " log" } else { "" }
        ),
        Domain::Choice(v) => format!("in {{{}}}", v.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")),
    }
}

/// A compiled file with its names resolved: what every editor request reads.
#[derive(Debug, Clone)]
pub struct Analysis {
    pub compiled: Compiled,
    /// The root file's tree, recovered around syntax errors.
    pub tree: ast::File,
    pub index: Index,
}

impl Analysis {
    /// Resolves the names of `compiled`'s root file.
    pub fn new(compiled: Compiled) -> Analysis {
        let root = FileId(0);
        let tree =
            compiled.sources.get(root).map(|s| crate::syntax::parse_recovering(root, &s.text).file).unwrap_or_default();
        let index = resolve::index(&compiled, root, &tree);
        Analysis { compiled, tree, index }
    }

    /// The occurrence of a name at `offset` of `file`.
    pub fn at(&self, file: FileId, offset: u32) -> Option<&Occurrence> {
        (self.index.file == Some(file)).then(|| self.index.at(offset)).flatten()
    }
}

/// Markdown for the thing at `offset`: what the name there resolves to (nothing in comments
/// and strings, but a command string's `{placeholder}`).
pub fn hover(a: &Analysis, file: FileId, offset: u32) -> Option<(Span, String)> {
    let c = &a.compiled;
    if let Some(exp) = enclosing(c, file, offset)
        && let Some((word, span)) = word_at(c, file, offset)
    {
        if exp.space.get(&word).is_none()
            && let Some(s) = trial::hover(c, exp, file, offset, &word)
        {
            return Some((span, s));
        }
        if trial::in_placeholder(c, exp, file, offset)
            && let Some(p) = exp.space.get(&word)
        {
            return Some((span, param_hover(c, p)));
        }
    }
    let o = a.at(file, offset)?;
    let text = match &o.target {
        Target::Symbol { kind, def } => symbol_hover(a, o, *kind, *def)?,
        Target::Builtin(concept, name) => builtin_hover(*concept, name)?,
        Target::Arg { concept, callee, name, param } => match (concept, param) {
            (_, Some(def)) => {
                let decl = param_decl(c, *def)?;
                format!("```bma\n{}\n```\n\nargument of block `{callee}`", one_line(&source_text(c, decl.span)))
            }
            (Some(concept), None) => {
                let sig = concept.sigs().into_iter().find(|s| s.name == callee)?;
                let arg = sig.args.iter().find(|x| x.name == name)?;
                let need = match arg.need {
                    catalogue::Need::Required => "required".to_string(),
                    catalogue::Need::Optional => "optional".to_string(),
                    catalogue::Need::Default(d) => format!("default `{d}`"),
                };
                format!("argument `{name}:` of `{callee}` ({need})\n\n{}", catalogue::describe(*concept, sig))
            }
            (None, None) => return None,
        },
        Target::DataField(field) => {
            let doc = catalogue::DATA_FIELDS.iter().find(|d| d.name == field)?;
            let mut s = format!("`data.{field}`: {}", doc.doc);
            let info = o.experiment.and_then(|i| c.program.experiments.get(i)).and_then(|e| c.info(&e.name));
            if let Some(data) = info.and_then(|i| i.data.as_ref()) {
                let value = match field.as_str() {
                    "classes" => Some(data.classes.to_string()),
                    "features" => Some(data.features().to_string()),
                    "shape" => Some(format!("{:?}", data.shape)),
                    "vocab" => data.vocab.map(|v| v.to_string()),
                    _ => None,
                };
                if let Some(v) = value {
                    s.push_str(&format!("\n\nhere: `{v}`"));
                }
            }
            s
        }
        Target::Key { .. } => return None,
    };
    Some((o.span, text))
}

/// How a parameter of `space` reads on hover: as declared (the literals as written), with
/// its type, its condition and its doc.
fn param_hover(c: &Compiled, p: &ir::Param) -> String {
    let declared = one_line(&source_text(c, p.span));
    let what = match &p.kind {
        ParamKind::Free(d) => {
            // `units: in {8, 16}` reads `units: int in {8, 16}`.
            let rest = declared.strip_prefix(p.name.as_str()).map(str::trim_start).unwrap_or("");
            let domain = rest.strip_prefix(':').map(str::trim_start).unwrap_or("");
            if domain.starts_with("in ") || domain.starts_with("in{") {
                match domain_type(d) {
                    Some(t) => format!("{}: {t} {domain}", p.name),
                    None => format!("{}: {domain}", p.name),
                }
            } else if domain.is_empty() {
                format!("{}: {}", p.name, describe_domain(d))
            } else {
                format!("{}: {domain}", p.name)
            }
        }
        ParamKind::Const(_) => format!("{declared} (pinned)"),
        ParamKind::Derived(_) => format!("{declared} (derived)"),
    };
    let mut s = format!("```bma\n{what}\n```");
    if !p.guard.is_empty() {
        let cond = p.guard.iter().map(|g| c.sources.text(g.span)).collect::<Vec<_>>().join(" and ");
        s.push_str(&format!("\n\nonly exists when `{cond}`"));
    }
    if let Some(d) = &p.doc {
        s.push_str(&format!("\n\n{d}"));
    }
    s
}

/// The type a domain's values have, when they share one.
fn domain_type(d: &Domain) -> Option<&'static str> {
    match d {
        Domain::Int { .. } => Some("int"),
        Domain::Float { .. } => Some("float"),
        Domain::Choice(values) if !values.is_empty() && values.iter().all(|v| matches!(v, ir::Value::Int(_))) => {
            Some("int")
        }
        Domain::Choice(values) if !values.is_empty() && values.iter().all(|v| matches!(v, ir::Value::Float(_))) => {
            Some("float")
        }
        Domain::Choice(values) if !values.is_empty() && values.iter().all(|v| matches!(v, ir::Value::Bool(_))) => {
            Some("bool")
        }
        _ => None,
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The declaration of a block's or fn's parameter whose name is at `def`.
fn param_decl(c: &Compiled, def: Span) -> Option<&ast::ParamDecl> {
    let blocks = c.program.blocks.values().flat_map(|b| b.params.iter());
    let fns = c.program.fns.values().flat_map(|f| f.params.iter());
    blocks.chain(fns).find(|p| p.name.span == def)
}

fn symbol_hover(a: &Analysis, o: &Occurrence, kind: SymbolKind, def: Span) -> Option<String> {
    let c = &a.compiled;
    Some(match kind {
        SymbolKind::Param => {
            let exp = o.experiment.and_then(|i| c.program.experiments.get(i))?;
            let p = exp.space.params.iter().find(|p| p.name_span == def)?;
            param_hover(c, p)
        }
        SymbolKind::Block => {
            let b = c.program.blocks.values().find(|b| b.name.span == def)?;
            block_hover(c, b)
        }
        SymbolKind::Fn => {
            let f = c.program.fns.values().find(|f| f.name.span == def)?;
            let mut s = format!(
                "```bma\n{}\n```",
                source_text(c, Span { end: f.body.span.start, ..f.span }).trim_end_matches([' ', '='])
            );
            if let Some(d) = &f.doc {
                s.push_str(&format!("\n\n{d}"));
            }
            s
        }
        SymbolKind::BlockParam | SymbolKind::FnParam => {
            let decl = param_decl(c, def)?;
            let owner = if kind == SymbolKind::BlockParam { "block" } else { "fn" };
            let item = c
                .program
                .blocks
                .values()
                .filter(|b| b.params.iter().any(|p| p.name.span == def))
                .map(|b| b.name.name.clone())
                .chain(
                    c.program
                        .fns
                        .values()
                        .filter(|f| f.params.iter().any(|p| p.name.span == def))
                        .map(|f| f.name.name.clone()),
                )
                .next()
                .unwrap_or_default();
            format!("```bma\n{}\n```\n\nparameter of {owner} `{item}`", one_line(&source_text(c, decl.span)))
        }
        SymbolKind::Node | SymbolKind::RepeatVar => {
            let text = c.sources.get(def.file)?.text.as_str();
            let line_start = text[..def.start as usize].rfind('\n').map_or(0, |i| i + 1);
            let line_end = text[def.end as usize..].find('\n').map_or(text.len(), |i| def.end as usize + i);
            let line = text[line_start..line_end].trim().trim_end_matches('{').trim_end();
            let what =
                if kind == SymbolKind::Node { "a node of the model, named with `let`" } else { "a `repeat` index" };
            format!("```bma\n{line}\n```\n\n{what}")
        }
        SymbolKind::Experiment => {
            let e = c.program.experiments.iter().find(|e| e.name_span == def)?;
            match &e.doc {
                Some(d) => format!("experiment `{}`\n\n{d}", e.name),
                None => format!("experiment `{}`", e.name),
            }
        }
    })
}

fn block_hover(c: &Compiled, b: &ast::Block) -> String {
    let params = b
        .params
        .iter()
        .map(|p| {
            let mut s = p.name.name.clone();
            if let Some((t, _)) = p.ty {
                s.push_str(&format!(": {}", t.as_str()));
            }
            if let Some(d) = &p.default {
                s.push_str(&format!(" = {}", source_text(c, d.span)));
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut s = format!("```bma\nblock {}({params})\n```", b.name.name);
    if let Some(d) = &b.doc {
        s.push_str(&format!("\n\n{d}"));
    }
    s
}

/// What hover says of a catalogue entry: its concept, usage and doc.
fn builtin_hover(concept: Concept, name: &str) -> Option<String> {
    let d = entry_doc(concept, name)?;
    Some(match concept {
        Concept::Layer => format!("layer `{name}`: {d}"),
        Concept::Metric => format!("metric `{name}`: {}", metric_doc(name)?),
        Concept::Strategy => format!("strategy {d}"),
        Concept::Pruner => format!("pruner {d}"),
        Concept::Augment => format!("augmentation {d}"),
        Concept::Dataset => format!("dataset {d}"),
        Concept::AudioFeature => format!("audio features {d}"),
        Concept::Optimizer => format!("optimizer {d}"),
        Concept::Schedule => format!("schedule {d}"),
        Concept::Loss => format!("loss {d}"),
        Concept::Init => format!("init {d}"),
        Concept::Precision => format!("precision {d}"),
        Concept::EarlyStop => format!("early stopping {d}"),
        Concept::Weights => format!("ensemble weights {d}"),
        Concept::Average => format!("averaging {d}"),
        Concept::Rank => format!("ranking {d}"),
    })
}

fn source_text(c: &Compiled, span: Span) -> String {
    c.sources.text(span).to_string()
}

/// Where the thing at `offset` is declared: a parameter (of `space`, a block, a fn), a
/// block, a fn, an experiment, a model node, a `repeat` index; a named argument of a block
/// goes to the block's parameter.
pub fn definition(a: &Analysis, file: FileId, offset: u32) -> Option<Span> {
    let c = &a.compiled;
    if let Some(exp) = enclosing(c, file, offset)
        && trial::in_placeholder(c, exp, file, offset)
        && let Some((word, _)) = word_at(c, file, offset)
    {
        return exp.space.get(&word).map(|p| p.name_span);
    }
    match &a.at(file, offset)?.target {
        Target::Symbol { def, .. } => Some(*def),
        Target::Arg { param: Some(def), .. } => Some(*def),
        _ => None,
    }
}

/// What can be written at `offset` (`ide::complete`, or inside a `trial` section its own
/// settings and placeholders), and the span it replaces: the word typed so far.
pub fn completions(a: &Analysis, file: FileId, offset: u32) -> (Span, Vec<Completion>) {
    let c = &a.compiled;
    let (span, items) = complete::complete(a, file, offset);
    if let Some(exp) = enclosing(c, file, offset)
        && let Some(items) = trial::completions(c, exp, file, offset)
    {
        return (span, items);
    }
    (span, items)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hover and completion say what they said before the catalogue: every layer, strategy
    /// and pruner line, word for word.
    #[test]
    fn catalogue_lines_read_as_before() {
        let expected = [
            (
                Concept::Layer,
                "dense",
                "dense(units): a fully connected layer on a flat input; on a sequence [t, d], on each position: → [t, units]",
            ),
            (
                Concept::Layer,
                "conv2d",
                "conv2d(filters, kernel: 3, stride: 1, padding: same|valid, groups: 1): 2-D convolution on [c, h, w]; `groups` splits the channels (depthwise when groups = c = filters)",
            ),
            (Concept::Layer, "maxpool", "maxpool(kernel: 2, stride: kernel): max pooling"),
            (Concept::Layer, "avgpool", "avgpool(kernel: 2, stride: kernel): average pooling"),
            (
                Concept::Layer,
                "global_avgpool",
                "global_avgpool: averages each channel over the feature map: [c, h, w] → [c]; over a sequence: [t, d] → [d], padding left out",
            ),
            (Concept::Layer, "flatten", "flatten: [c, h, w] → [c·h·w]"),
            (Concept::Layer, "reshape", "reshape(d1, d2, ...): a new shape with the same number of values"),
            (Concept::Layer, "batchnorm", "batchnorm: batch normalisation over the channels"),
            (Concept::Layer, "layernorm", "layernorm: layer normalisation over the last axis"),
            (Concept::Layer, "dropout", "dropout(p): zeroes a fraction p of the values while training"),
            (Concept::Layer, "gelu", "an activation; keeps the shape"),
            (Concept::Layer, "softmax", "an activation; keeps the shape"),
            (Concept::Layer, "leaky_relu", "leaky_relu(a: 0.01): ReLU with slope a below zero"),
            (
                Concept::Layer,
                "positional",
                "positional(kind: sinusoidal|learned|rotary): adds a position encoding to a sequence [t, d]: fixed sines \
                 (`sinusoidal`) or a learnt [t, d] table (`learned`); `rotary` is refused with the way to write it: \
                 `attention(heads, rotary: true)`",
            ),
            (Concept::Layer, "add", "add(a, b, ...): the sum of named nodes of one shape"),
            (Concept::Layer, "concat", "concat(a, b, ...): named nodes joined along the first axis"),
            (
                Concept::Layer,
                "rmsnorm",
                "rmsnorm: root-mean-square normalisation over the last axis, with a learnt scale",
            ),
            (
                Concept::Layer,
                "upsample",
                "upsample(factor: 2, mode: nearest|bilinear): enlarges the feature map: [c, h, w] → [c, h·factor, w·factor]",
            ),
            (Concept::Strategy, "grid", "grid(limit:): every point of a finite space"),
            (Concept::Strategy, "random", "random: independent uniform samples"),
            (Concept::Strategy, "tpe", "tpe(startup:): tree-structured Parzen estimator"),
            (Concept::Strategy, "nsga2", "nsga2(population:): evolutionary multi-objective search"),
            (Concept::Strategy, "evolution", "evolution(population:, sample:): aging evolution"),
            (
                Concept::Strategy,
                "subspace",
                "subspace(by:, samples:, eta:): partition by structural parameters, keep the best cells",
            ),
            (Concept::Pruner, "none", "no pruning"),
            (Concept::Pruner, "median", "median(warmup:): stop a trial below the median of others at the same epoch"),
            (Concept::Pruner, "asha", "asha(min_epochs:, eta:): asynchronous successive halving"),
            (Concept::Pruner, "hyperband", "hyperband(min_epochs:, max_epochs:, eta:): several ASHA brackets"),
            (Concept::Augment, "flip", "flip: images: mirror left-right with probability 1/2"),
            (
                Concept::Augment,
                "time_shift",
                "time_shift(frames:): audio: shift along time (the last axis) by up to ±`frames` frames",
            ),
        ];
        for (concept, name, line) in expected {
            assert_eq!(entry_doc(concept, name).as_deref(), Some(line), "{concept:?} `{name}`");
        }
        assert_eq!(entry_docs(Concept::Layer).len(), 34);
        assert_eq!(metric_doc("f1"), Some("macro-averaged F1 score on the split"));
    }

    #[test]
    fn hover_knows_datasets_and_audio_features() {
        let text = "experiment s {\n  data = audio(\"clips\", features: mfcc(n: 13))\n  model { dense(2) }\n  \
                    objective { maximize accuracy }\n}\n";
        let a = Analysis::new(crate::compile(&crate::source::Source::new("s.bma", text)));
        let at = |word: &str| {
            let offset = text.find(word).map(|i| i as u32 + 1).expect("in the text");
            hover(&a, a.compiled.sources.find("s.bma").expect("the root"), offset).map(|(_, s)| s)
        };
        let audio = at("audio").expect("hover on audio");
        assert!(audio.starts_with("dataset audio(dir:, rate:, seconds:, features:, skip_bad:"), "{audio}");
        let mfcc = at("mfcc").expect("hover on mfcc");
        assert_eq!(
            mfcc,
            "audio features mfcc(n:, bins:, win_ms:, hop_ms:): the first n MFCCs (orthonormal DCT-II of the log-mel): \
             [1, n, frames]"
        );
    }
}
