//! What an editor asks about a position: hover text, the definition, completions.
//!
//! Takes a [`Compiled`] file and a byte offset in one of its sources, gives
//! plain data; `bma lsp` turns it into protocol messages. Works on a file with
//! errors too, with whatever was lowered. What it says of built-in layers, metrics,
//! strategies and pruners is the catalogue's (`catalogue`), never its own list.

use crate::Compiled;
use crate::catalogue::{self, Concept};
use crate::ir::{self, Domain, Experiment, ParamKind};
use crate::source::{FileId, Span};

mod trial;

/// What completion offers, and how an editor should show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub label: String,
    pub kind: CompletionKind,
    pub detail: String,
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
fn entry_docs(concept: Concept) -> Vec<(&'static str, String)> {
    concept.sigs().into_iter().map(|s| (s.name, catalogue::describe(concept, s))).collect()
}

const KEYWORDS: [&str; 22] = [
    "use",
    "block",
    "fn",
    "experiment",
    "data",
    "space",
    "model",
    "train",
    "objective",
    "search",
    "average",
    "report",
    "trial",
    "when",
    "let",
    "repeat",
    "match",
    "if",
    "else",
    "residual",
    "parallel",
    "require",
];

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

/// Markdown for the thing at `offset`.
pub fn hover(c: &Compiled, file: FileId, offset: u32) -> Option<(Span, String)> {
    let (word, span) = word_at(c, file, offset)?;
    if let Some(exp) = enclosing(c, file, offset)
        && exp.space.get(&word).is_none()
        && let Some(s) = trial::hover(c, exp, file, offset, &word)
    {
        return Some((span, s));
    }
    if let Some(exp) = enclosing(c, file, offset)
        && let Some(p) = exp.space.get(&word)
    {
        let what = match &p.kind {
            ParamKind::Free(d) => describe_domain(d),
            ParamKind::Const(v) => format!("= {v} (pinned)"),
            ParamKind::Derived(e) => format!("= {} (derived)", c.sources.text(e.span)),
        };
        let mut s = format!("```bma\n{}: {what}\n```", p.name);
        if !p.guard.is_empty() {
            let cond = p.guard.iter().map(|g| c.sources.text(g.span)).collect::<Vec<_>>().join(" and ");
            s.push_str(&format!("\n\nonly exists when `{cond}`"));
        }
        if let Some(d) = &p.doc {
            s.push_str(&format!("\n\n{d}"));
        }
        return Some((span, s));
    }
    if let Some(b) = c.program.blocks.get(&word) {
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
        return Some((span, s));
    }
    if let Some(f) = c.program.fns.get(&word) {
        let mut s = format!(
            "```bma\n{}\n```",
            source_text(c, Span { end: f.body.span.start, ..f.span }).trim_end_matches([' ', '='])
        );
        if let Some(d) = &f.doc {
            s.push_str(&format!("\n\n{d}"));
        }
        return Some((span, s));
    }
    if let Some(d) = entry_doc(Concept::Layer, &word) {
        return Some((span, format!("layer `{word}`: {d}")));
    }
    if let Some(d) = metric_doc(&word) {
        return Some((span, format!("metric `{word}`: {d}")));
    }
    if let Some(d) = entry_doc(Concept::Strategy, &word) {
        return Some((span, format!("strategy {d}")));
    }
    if let Some(d) = entry_doc(Concept::Pruner, &word) {
        return Some((span, format!("pruner {d}")));
    }
    if let Some(d) = entry_doc(Concept::Augment, &word) {
        return Some((span, format!("augmentation {d}")));
    }
    if let Some(d) = entry_doc(Concept::Dataset, &word) {
        return Some((span, format!("dataset {d}")));
    }
    if let Some(d) = entry_doc(Concept::AudioFeature, &word) {
        return Some((span, format!("audio features {d}")));
    }
    if let Some(e) = c.program.experiment(&word)
        && let Some(d) = &e.doc
    {
        return Some((span, format!("experiment `{word}`\n\n{d}")));
    }
    None
}

fn source_text(c: &Compiled, span: Span) -> String {
    c.sources.text(span).to_string()
}

/// Where the thing at `offset` is declared (a parameter, block, fn or import).
pub fn definition(c: &Compiled, file: FileId, offset: u32) -> Option<Span> {
    let (word, _) = word_at(c, file, offset)?;
    if let Some(exp) = enclosing(c, file, offset)
        && let Some(p) = exp.space.get(&word)
    {
        return Some(p.name_span);
    }
    if let Some(b) = c.program.blocks.get(&word) {
        return Some(b.name.span);
    }
    if let Some(f) = c.program.fns.get(&word) {
        return Some(f.name.span);
    }
    c.program.experiment(&word).map(|e| e.name_span)
}

/// Everything that can be written at `offset`.
pub fn completions(c: &Compiled, file: FileId, offset: u32) -> Vec<Completion> {
    if let Some(exp) = enclosing(c, file, offset)
        && let Some(items) = trial::completions(c, exp, file, offset)
    {
        return items;
    }
    let mut out = Vec::new();
    let push = |out: &mut Vec<Completion>, label: &str, kind, detail: String| {
        out.push(Completion { label: label.to_string(), kind, detail });
    };
    if let Some(exp) = enclosing(c, file, offset) {
        for p in &exp.space.params {
            let detail = match &p.kind {
                ParamKind::Free(d) => describe_domain(d),
                ParamKind::Const(v) => format!("= {v}"),
                ParamKind::Derived(_) => "derived".to_string(),
            };
            push(&mut out, &p.name, CompletionKind::Parameter, detail);
        }
    }
    for (l, d) in entry_docs(Concept::Layer) {
        push(&mut out, l, CompletionKind::Layer, d);
    }
    // Qualified names (`std::blocks::conv_bn`) are the lowering's, not the user's.
    for (name, b) in c.program.blocks.iter().filter(|(n, _)| !n.contains("::")) {
        push(&mut out, name, CompletionKind::Block, b.doc.clone().unwrap_or_default());
    }
    for name in c.program.fns.keys().filter(|n| !n.contains("::")) {
        push(&mut out, name, CompletionKind::Function, "fn".to_string());
    }
    for f in ir::BUILTINS {
        push(&mut out, f, CompletionKind::Function, "builtin".to_string());
    }
    for m in catalogue::METRICS {
        push(&mut out, m.sig.name, CompletionKind::Metric, m.sig.doc.to_string());
    }
    for (s, d) in entry_docs(Concept::Strategy) {
        push(&mut out, s, CompletionKind::Strategy, d);
    }
    for (p, d) in entry_docs(Concept::Pruner) {
        push(&mut out, p, CompletionKind::Pruner, d);
    }
    for (d, doc) in entry_docs(Concept::Dataset).into_iter().chain(entry_docs(Concept::AudioFeature)) {
        push(&mut out, d, CompletionKind::Dataset, doc);
    }
    for (a, doc) in entry_docs(Concept::Augment) {
        push(&mut out, a, CompletionKind::Augment, doc);
    }
    for k in KEYWORDS {
        push(&mut out, k, CompletionKind::Keyword, String::new());
    }
    out
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
        let c = crate::compile(&crate::source::Source::new("s.bma", text));
        let at = |word: &str| {
            let offset = text.find(word).map(|i| i as u32 + 1).expect("in the text");
            hover(&c, c.sources.find("s.bma").expect("the root"), offset).map(|(_, s)| s)
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
