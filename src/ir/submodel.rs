//! The sub-model: one concrete network, what expansion gives.
//!
//! A petgraph DAG of [`Layer`]s whose every attribute is a number and every output shape
//! is known, with its parameter and FLOP counts; [`ExpandError`] says why a point's model
//! cannot be built.
//! **Invariant:** an `Ok` sub-model has valid shapes everywhere, and its `params`
//! and `flops` are the exact sums over its nodes.

use std::fmt;

use petgraph::graph::{DiGraph, NodeIndex};
use serde::Serialize;

use super::rnn::RnnCell;
use crate::diagnostic::Code;
use crate::source::Span;

/// A layer's output shape, batch dimension excluded: `[n]` flat, `[c, h, w]` images.
pub type Shape = Vec<usize>;

/// What the data looks like, as far as the model is concerned.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DataInfo {
    pub name: String,
    pub shape: Shape,
    /// Number of classes (1 for regression).
    pub classes: usize,
    pub task: Task,
    /// Token-id inputs (`text(...)`): the embedding table size, pad and unknown included.
    pub vocab: Option<usize>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Classification,
    Regression,
}

impl DataInfo {
    pub fn features(&self) -> usize {
        self.shape.iter().product()
    }

    /// The width the model's last layer must have.
    pub fn outputs(&self) -> usize {
        match self.task {
            Task::Classification => self.classes,
            Task::Regression => 1,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Padding {
    Same,
    Valid,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    Relu,
    Gelu,
    Tanh,
    Sigmoid,
    Silu,
    LeakyRelu(f64),
    Softmax,
}

/// The code `positional` adds to each position of a sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Positional {
    /// Fixed sines and cosines (Vaswani et al., 2017); no parameters.
    Sinusoidal,
    /// A learnt `[t, d]` table.
    Learned,
}

/// What a node computes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerKind {
    Input,
    Dense {
        units: usize,
    },
    Conv2d {
        filters: usize,
        kernel: usize,
        stride: usize,
        padding: Padding,
        /// The channels split in `groups` (1: a full convolution).
        groups: usize,
    },
    /// A transposed convolution; its weight is `[c, filters, kernel, kernel]`.
    ConvTranspose2d {
        filters: usize,
        kernel: usize,
        stride: usize,
        padding: Padding,
    },
    Upsample {
        factor: usize,
        bilinear: bool,
    },
    MaxPool {
        kernel: usize,
        stride: usize,
    },
    AvgPool {
        kernel: usize,
        stride: usize,
    },
    GlobalAvgPool,
    GlobalMaxPool,
    /// `[t, c]` → `[t', filters]` (`ir::seq`).
    Conv1d {
        filters: usize,
        kernel: usize,
        stride: usize,
        padding: Padding,
        dilation: usize,
        groups: usize,
    },
    MaxPool1d {
        kernel: usize,
        stride: usize,
    },
    AvgPool1d {
        kernel: usize,
        stride: usize,
    },
    /// `[a, b]` → `[b, a]`; `[1, h, w]` → `[w, h]`.
    Transpose,
    /// Token ids `[L]` → `[L, dim]`, a table of `vocab` rows.
    Embedding {
        vocab: usize,
        dim: usize,
    },
    /// `lstm` / `gru` on `[t, d]` (`ir::rnn`): `[units · directions]`, or `[t, units ·
    /// directions]` with `sequence`.
    Recurrent {
        cell: RnnCell,
        units: usize,
        bidirectional: bool,
        sequence: bool,
    },
    /// Multi-head self-attention on `[t, d]`; `causal` hides later positions, `rotary`
    /// rotates queries and keys by position.
    Attention {
        heads: usize,
        causal: bool,
        rotary: bool,
    },
    /// A position code added to `[t, d]`.
    Positional(Positional),
    Flatten,
    Reshape {
        shape: Shape,
    },
    BatchNorm,
    LayerNorm,
    GroupNorm {
        groups: usize,
    },
    RmsNorm,
    Dropout {
        p: f64,
    },
    Activation(Activation),
    Add,
    Concat,
    /// The product of its inputs; a `[c]` input scales the channels of `[c, h, w]`.
    Multiply,
}

/// One node of a sub-model.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Layer {
    /// A stable name: the layer kind and its position, `dense_3`.
    pub name: String,
    pub kind: LayerKind,
    /// The output shape.
    pub shape: Shape,
    /// The nodes feeding this one, in order (concat order matters).
    pub inputs: Vec<usize>,
    /// Trainable parameters of this node.
    pub params: u64,
    /// Multiply-adds counted as two FLOPs, per sample.
    pub flops: u64,
    /// Inserted by bma (a residual projection), not written by the user.
    pub inserted: bool,
    #[serde(skip)]
    pub span: Span,
}

/// The node type of the sub-model graph.
pub type Node = Layer;

/// One concrete network.
#[derive(Debug, Clone)]
pub struct SubModel {
    pub graph: DiGraph<Layer, ()>,
    pub input: NodeIndex,
    pub output: NodeIndex,
    pub params: u64,
    pub flops: u64,
    /// Notes met on the way (residual projections), with where they come from.
    pub notes: Vec<(Span, String)>,
    /// Each statement as it was expanded: the span of a chain's link (a layer or block call)
    /// or of a statement holding others (`repeat`, `match`, ...), and the index of the node
    /// it gave; in expansion order, so a repeated statement is there once per repetition.
    pub steps: Vec<(Span, usize)>,
}

impl SubModel {
    pub fn output_shape(&self) -> &Shape {
        &self.graph[self.output].shape
    }

    /// Nodes in the order they were created, which is a topological order.
    pub fn layers(&self) -> impl Iterator<Item = &Layer> {
        self.graph.node_indices().map(|i| &self.graph[i])
    }

    /// The graph in Graphviz DOT, with shapes.
    pub fn to_dot(&self, title: &str) -> String {
        let mut s = format!(
            "digraph \"{}\" {{\n  rankdir=TB;\n  node [shape=box, fontname=\"monospace\"];\n",
            title.replace('"', "'")
        );
        for i in self.graph.node_indices() {
            let l = &self.graph[i];
            let style = if l.inserted { ", style=dashed" } else { "" };
            s.push_str(&format!(
                "  n{} [label=\"{}\\n{}\\n{}\"{}];\n",
                i.index(),
                l.name,
                describe(&l.kind),
                fmt_shape(&l.shape),
                style
            ));
        }
        for i in self.graph.node_indices() {
            for &j in &self.graph[i].inputs {
                s.push_str(&format!("  n{j} -> n{};\n", i.index()));
            }
        }
        s.push_str(&format!("  label=\"params {}  flops {}\";\n}}\n", self.params, self.flops));
        s
    }
}

/// `[1, 8, 8]`.
pub fn fmt_shape(shape: &[usize]) -> String {
    format!("[{}]", shape.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "))
}

fn describe(kind: &LayerKind) -> String {
    match kind {
        LayerKind::Input => "input".into(),
        LayerKind::Dense { units } => format!("dense({units})"),
        LayerKind::Conv2d { filters, kernel, stride, padding, groups } => {
            let g = if *groups == 1 { String::new() } else { format!(", groups: {groups}") };
            format!(
                "conv2d({filters}, kernel: {kernel}, stride: {stride}, padding: {}{g})",
                if *padding == Padding::Same { "same" } else { "valid" }
            )
        }
        LayerKind::ConvTranspose2d { filters, kernel, stride, padding } => format!(
            "conv_transpose2d({filters}, kernel: {kernel}, stride: {stride}, padding: {})",
            if *padding == Padding::Same { "same" } else { "valid" }
        ),
        LayerKind::Upsample { factor, bilinear } => {
            format!("upsample({factor}, mode: {})", if *bilinear { "bilinear" } else { "nearest" })
        }
        LayerKind::GroupNorm { groups } => format!("groupnorm({groups})"),
        LayerKind::RmsNorm => "rmsnorm".into(),
        LayerKind::Multiply => "multiply".into(),
        LayerKind::MaxPool { kernel, stride } => format!("maxpool({kernel}, stride: {stride})"),
        LayerKind::AvgPool { kernel, stride } => format!("avgpool({kernel}, stride: {stride})"),
        LayerKind::GlobalAvgPool => "global_avgpool".into(),
        LayerKind::GlobalMaxPool => "global_maxpool".into(),
        LayerKind::Conv1d { .. } | LayerKind::MaxPool1d { .. } | LayerKind::AvgPool1d { .. } | LayerKind::Transpose => {
            super::seq::describe(kind)
        }
        LayerKind::Embedding { vocab, dim } => format!("embedding({vocab}, {dim})"),
        LayerKind::Recurrent { cell, units, bidirectional, sequence } => format!(
            "{}({units}, bidirectional: {bidirectional}, return: {})",
            cell.name(),
            if *sequence { "sequence" } else { "last" }
        ),
        LayerKind::Attention { heads, causal, rotary } => {
            format!("attention({heads}, causal: {causal}, rotary: {rotary})")
        }
        LayerKind::Positional(p) => format!("positional({})", format!("{p:?}").to_lowercase()),
        LayerKind::Flatten => "flatten".into(),
        LayerKind::Reshape { shape } => format!("reshape{}", fmt_shape(shape)),
        LayerKind::BatchNorm => "batchnorm".into(),
        LayerKind::LayerNorm => "layernorm".into(),
        LayerKind::Dropout { p } => format!("dropout({p})"),
        LayerKind::Activation(a) => match a {
            Activation::LeakyRelu(x) => format!("leaky_relu({x})"),
            other => format!("{other:?}").to_lowercase(),
        },
        LayerKind::Add => "add".into(),
        LayerKind::Concat => "concat".into(),
    }
}

/// Why a point's model cannot be built.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpandError {
    pub code: Code,
    pub span: Span,
    pub message: String,
    pub label: String,
    pub help: Option<String>,
}

impl fmt::Display for ExpandError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.message, self.label)
    }
}

pub(super) fn fail<T>(
    code: Code,
    span: Span,
    message: impl Into<String>,
    label: impl Into<String>,
) -> Result<T, ExpandError> {
    Err(ExpandError { code, span, message: message.into(), label: label.into(), help: None })
}

impl LayerKind {
    /// Whether the layer's forward pass makes float tensors of its own (token masks,
    /// recurrent states, attention masks, positional codes), so that it trains in f32 only:
    /// `train { precision = f16 | bf16 }` refuses it (`train::precision`, the checker).
    pub fn f32_only(&self) -> bool {
        matches!(
            self,
            LayerKind::Embedding { .. }
                | LayerKind::Recurrent { .. }
                | LayerKind::Attention { .. }
                | LayerKind::Positional(_)
        )
    }
}

/// The stem of a node's name: `dense` for `dense_3`.
pub(super) fn kind_name(kind: &LayerKind) -> &'static str {
    match kind {
        LayerKind::Input => "input",
        LayerKind::Dense { .. } => "dense",
        LayerKind::Conv2d { .. } => "conv2d",
        LayerKind::ConvTranspose2d { .. } => "conv_transpose2d",
        LayerKind::Upsample { .. } => "upsample",
        LayerKind::GroupNorm { .. } => "groupnorm",
        LayerKind::RmsNorm => "rmsnorm",
        LayerKind::Multiply => "multiply",
        LayerKind::MaxPool { .. } => "maxpool",
        LayerKind::AvgPool { .. } => "avgpool",
        LayerKind::GlobalAvgPool => "global_avgpool",
        LayerKind::GlobalMaxPool => "global_maxpool",
        LayerKind::Conv1d { .. } => "conv1d",
        LayerKind::MaxPool1d { .. } => "maxpool1d",
        LayerKind::AvgPool1d { .. } => "avgpool1d",
        LayerKind::Transpose => "transpose",
        LayerKind::Embedding { .. } => "embedding",
        LayerKind::Recurrent { cell, .. } => cell.name(),
        LayerKind::Attention { .. } => "attention",
        LayerKind::Positional(_) => "positional",
        LayerKind::Flatten => "flatten",
        LayerKind::Reshape { .. } => "reshape",
        LayerKind::BatchNorm => "batchnorm",
        LayerKind::LayerNorm => "layernorm",
        LayerKind::Dropout { .. } => "dropout",
        LayerKind::Activation(a) => match a {
            Activation::Relu => "relu",
            Activation::Gelu => "gelu",
            Activation::Tanh => "tanh",
            Activation::Sigmoid => "sigmoid",
            Activation::Silu => "silu",
            Activation::LeakyRelu(_) => "leaky_relu",
            Activation::Softmax => "softmax",
        },
        LayerKind::Add => "add",
        LayerKind::Concat => "concat",
    }
}
