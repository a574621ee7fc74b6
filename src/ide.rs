//! What an editor asks about a position: hover text, the definition, completions.
//!
//! Takes a [`Compiled`] file and a byte offset in one of its sources, gives
//! plain data; `bma lsp` turns it into protocol messages. Works on a file with
//! errors too, with whatever was lowered.

use crate::Compiled;
use crate::check::MODEL_METRICS;
use crate::ir::{self, Domain, Experiment, ParamKind};
use crate::source::{FileId, Span};

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
}

/// The meaning of each metric, shown on hover.
pub fn metric_doc(name: &str) -> Option<&'static str> {
    Some(match name {
        "accuracy" => "fraction of correctly classified samples on the split (valid by default)",
        "f1" => "macro-averaged F1 score on the split",
        "precision" => "macro-averaged precision on the split",
        "recall" => "macro-averaged recall on the split",
        "loss" => "the training loss measured on the split",
        "mse" => "mean squared error on the split",
        "mae" => "mean absolute error on the split",
        "r2" => "coefficient of determination on the split",
        "latency" => "median inference time per sample at batch 1, after warm-up (µs)",
        "throughput" => "samples per second at inference",
        "params" => "number of trainable parameters (known before training)",
        "flops" => "floating-point operations per sample, multiply-add = 2 (known before training)",
        "train_time" => "wall time spent training the trial (s)",
        "expressivity" => "NASWOT score of the untrained network: log-determinant of the kernel of its ReLU codes",
        _ => return None,
    })
}

fn layer_doc(name: &str) -> Option<&'static str> {
    Some(match name {
        "dense" => "dense(units): a fully connected layer on a flat input",
        "conv2d" => "conv2d(filters, kernel: 3, stride: 1, padding: same|valid): 2-D convolution on [c, h, w]",
        "maxpool" => "maxpool(kernel: 2, stride: kernel): max pooling",
        "avgpool" => "avgpool(kernel: 2, stride: kernel): average pooling",
        "global_avgpool" => "global_avgpool: averages each channel over the feature map: [c, h, w] → [c]",
        "flatten" => "flatten: [c, h, w] → [c·h·w]",
        "reshape" => "reshape(d1, d2, ...): a new shape with the same number of values",
        "batchnorm" => "batchnorm: batch normalisation over the channels",
        "layernorm" => "layernorm: layer normalisation over the last axis",
        "dropout" => "dropout(p): zeroes a fraction p of the values while training",
        "relu" | "gelu" | "tanh" | "sigmoid" | "silu" | "softmax" => "an activation; keeps the shape",
        "leaky_relu" => "leaky_relu(a: 0.01): ReLU with slope a below zero",
        "add" => "add(a, b, ...): the sum of named nodes of one shape",
        "concat" => "concat(a, b, ...): named nodes joined along the first axis",
        _ => return None,
    })
}

const STRATEGIES: [(&str, &str); 6] = [
    ("grid", "grid(limit:): every point of a finite space"),
    ("random", "random: independent uniform samples"),
    ("tpe", "tpe(startup:): tree-structured Parzen estimator"),
    ("nsga2", "nsga2(population:): evolutionary multi-objective search"),
    ("evolution", "evolution(population:, sample:): aging evolution"),
    ("subspace", "subspace(by:, samples:, eta:): partition by structural parameters, keep the best cells"),
];

const PRUNERS: [(&str, &str); 4] = [
    ("none", "no pruning"),
    ("median", "median(warmup:): stop a trial below the median of others at the same epoch"),
    ("asha", "asha(min_epochs:, eta:): asynchronous successive halving"),
    ("hyperband", "hyperband(min_epochs:, max_epochs:, eta:): several ASHA brackets"),
];

const KEYWORDS: [&str; 21] = [
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
    if let Some(d) = layer_doc(&word) {
        return Some((span, format!("layer `{word}`: {d}")));
    }
    if let Some(d) = metric_doc(&word) {
        return Some((span, format!("metric `{word}`: {d}")));
    }
    if let Some((_, d)) = STRATEGIES.iter().find(|(n, _)| *n == word) {
        return Some((span, format!("strategy {d}")));
    }
    if let Some((_, d)) = PRUNERS.iter().find(|(n, _)| *n == word) {
        return Some((span, format!("pruner {d}")));
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
    for l in ir::LAYERS {
        push(&mut out, l, CompletionKind::Layer, layer_doc(l).unwrap_or("").to_string());
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
    for m in MODEL_METRICS {
        push(&mut out, m, CompletionKind::Metric, metric_doc(m).unwrap_or("").to_string());
    }
    for (s, d) in STRATEGIES {
        push(&mut out, s, CompletionKind::Strategy, d.to_string());
    }
    for (p, d) in PRUNERS {
        push(&mut out, p, CompletionKind::Pruner, d.to_string());
    }
    for k in KEYWORDS {
        push(&mut out, k, CompletionKind::Keyword, String::new());
    }
    out
}
