//! The built-in layers: name, arguments with their defaults, doc.
//!
//! `ir::expand` builds each [`Layer`] kind (an exhaustive `match` in its layer table);
//! the checker checks calls against the same signatures.

use super::{Arg, ArgType, Entry, Form, Need, Sig};

/// A built-in layer; `ir::expand` builds each one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layer {
    Dense,
    Conv2d,
    ConvTranspose2d,
    Upsample,
    Conv1d,
    MaxPool,
    MaxPool1d,
    AvgPool1d,
    Transpose,
    AvgPool,
    GlobalAvgPool,
    GlobalMaxPool,
    Embedding,
    Lstm,
    Gru,
    Attention,
    Positional,
    Flatten,
    Reshape,
    BatchNorm,
    LayerNorm,
    GroupNorm,
    RmsNorm,
    Dropout,
    Relu,
    Gelu,
    Tanh,
    Sigmoid,
    Silu,
    LeakyRelu,
    Softmax,
    Add,
    Concat,
    Multiply,
}

const fn req(name: &'static str, ty: ArgType) -> Arg {
    Arg { name, ty, need: Need::Required }
}

const fn def(name: &'static str, ty: ArgType, default: &'static str) -> Arg {
    Arg { name, ty, need: Need::Default(default) }
}

const fn layer(kind: Layer, name: &'static str, args: &'static [Arg], doc: &'static str) -> Entry<Layer> {
    Entry { kind, sig: Sig { name, args, doc, form: Form::Call } }
}

const fn variadic(kind: Layer, name: &'static str, written: &'static str, doc: &'static str) -> Entry<Layer> {
    Entry { kind, sig: Sig { name, args: &[], doc, form: Form::Variadic(written) } }
}

const fn activation(kind: Layer, name: &'static str) -> Entry<Layer> {
    Entry { kind, sig: Sig { name, args: &[], doc: "an activation; keeps the shape", form: Form::Plain } }
}

const POOL: &[Arg] = &[def("kernel", ArgType::Int, "2"), def("stride", ArgType::Int, "kernel")];

const RNN: &[Arg] = &[
    req("units", ArgType::Int),
    def("bidirectional", ArgType::Bool, "false"),
    def("return", ArgType::Syms(&["last", "sequence"]), "last"),
];

/// The layers built into the language, in the order completion offers them.
pub const LAYERS: &[Entry<Layer>] = &[
    layer(
        Layer::Dense,
        "dense",
        &[req("units", ArgType::Int)],
        "a fully connected layer on a flat input; on a sequence [t, d], on each position: → [t, units]",
    ),
    layer(
        Layer::Conv2d,
        "conv2d",
        &[
            req("filters", ArgType::Int),
            def("kernel", ArgType::Int, "3"),
            def("stride", ArgType::Int, "1"),
            def("padding", ArgType::Syms(&["same", "valid"]), "same"),
            def("groups", ArgType::Int, "1"),
        ],
        "2-D convolution on [c, h, w]; `groups` splits the channels (depthwise when groups = c = filters)",
    ),
    layer(
        Layer::ConvTranspose2d,
        "conv_transpose2d",
        &[
            req("filters", ArgType::Int),
            def("kernel", ArgType::Int, "3"),
            def("stride", ArgType::Int, "1"),
            def("padding", ArgType::Syms(&["same", "valid"]), "same"),
        ],
        "transposed 2-D convolution: [c, h, w] → [filters, h·stride, w·stride] (same) or [filters, (h-1)·stride + kernel, …] (valid)",
    ),
    layer(
        Layer::Upsample,
        "upsample",
        &[def("factor", ArgType::Int, "2"), def("mode", ArgType::Syms(&["nearest", "bilinear"]), "nearest")],
        "enlarges the feature map: [c, h, w] → [c, h·factor, w·factor]",
    ),
    layer(Layer::MaxPool, "maxpool", POOL, "max pooling"),
    layer(Layer::AvgPool, "avgpool", POOL, "average pooling"),
    layer(
        Layer::Conv1d,
        "conv1d",
        &[
            req("filters", ArgType::Int),
            def("kernel", ArgType::Int, "3"),
            def("stride", ArgType::Int, "1"),
            def("padding", ArgType::Syms(&["same", "valid"]), "same"),
            def("dilation", ArgType::Int, "1"),
            def("groups", ArgType::Int, "1"),
        ],
        "1-D convolution along a sequence: [t, c] → [t', filters]; `same` gives t' = ⌈t / stride⌉",
    ),
    layer(Layer::MaxPool1d, "maxpool1d", POOL, "max pooling along a sequence: [t, c] → [(t − kernel) / stride + 1, c]"),
    layer(
        Layer::AvgPool1d,
        "avgpool1d",
        POOL,
        "average pooling along a sequence: [t, c] → [(t − kernel) / stride + 1, c]",
    ),
    layer(
        Layer::Transpose,
        "transpose",
        &[],
        "swaps the two axes of [a, b] → [b, a]; a one-channel map [1, h, w] → [w, h] (audio [1, bins, frames] → [frames, bins])",
    ),
    layer(
        Layer::GlobalAvgPool,
        "global_avgpool",
        &[],
        "averages each channel over the feature map: [c, h, w] → [c]; over a sequence: [t, d] → [d], padding left out",
    ),
    layer(
        Layer::GlobalMaxPool,
        "global_maxpool",
        &[],
        "the largest value of each channel: [c, h, w] → [c]; over a sequence: [t, d] → [d], padding left out",
    ),
    layer(
        Layer::Embedding,
        "embedding",
        &[req("vocab", ArgType::Int), req("dim", ArgType::Int)],
        "a learnt vector per token id: [L] ids → [L, dim]; `vocab` rows, at least `data.vocab`",
    ),
    layer(
        Layer::Lstm,
        "lstm",
        RNN,
        "a long short-term memory layer over [t, d]: [units] (last) or [t, units] (sequence), twice as wide when bidirectional; padding left out",
    ),
    layer(
        Layer::Gru,
        "gru",
        RNN,
        "a gated recurrent unit layer over [t, d]: [units] (last) or [t, units] (sequence), twice as wide when bidirectional; padding left out",
    ),
    layer(
        Layer::Attention,
        "attention",
        &[req("heads", ArgType::Int), def("causal", ArgType::Bool, "false"), def("rotary", ArgType::Bool, "false")],
        "multi-head self-attention on a sequence: [t, d] → [t, d]; padding is never attended to, \
         `causal` hides later positions, `rotary` rotates queries and keys by position",
    ),
    layer(
        Layer::Positional,
        "positional",
        &[def("kind", ArgType::Syms(&["sinusoidal", "learned", "rotary"]), "sinusoidal")],
        "adds a position encoding to a sequence [t, d]: fixed sines (`sinusoidal`) or a learnt [t, d] table \
         (`learned`); `rotary` is refused with the way to write it: `attention(heads, rotary: true)`",
    ),
    layer(Layer::Flatten, "flatten", &[], "[c, h, w] → [c·h·w]"),
    variadic(Layer::Reshape, "reshape", "reshape(d1, d2, ...)", "a new shape with the same number of values"),
    layer(Layer::BatchNorm, "batchnorm", &[], "batch normalisation over the channels"),
    layer(Layer::LayerNorm, "layernorm", &[], "layer normalisation over the last axis"),
    layer(
        Layer::GroupNorm,
        "groupnorm",
        &[req("groups", ArgType::Int)],
        "group normalisation of [c, h, w]: the channels in `groups` groups, each normalised over its channels and positions",
    ),
    layer(Layer::RmsNorm, "rmsnorm", &[], "root-mean-square normalisation over the last axis, with a learnt scale"),
    layer(Layer::Dropout, "dropout", &[req("p", ArgType::Number)], "zeroes a fraction p of the values while training"),
    activation(Layer::Relu, "relu"),
    activation(Layer::Gelu, "gelu"),
    activation(Layer::Tanh, "tanh"),
    activation(Layer::Sigmoid, "sigmoid"),
    activation(Layer::Silu, "silu"),
    layer(Layer::LeakyRelu, "leaky_relu", &[def("a", ArgType::Number, "0.01")], "ReLU with slope a below zero"),
    activation(Layer::Softmax, "softmax"),
    variadic(Layer::Add, "add", "add(a, b, ...)", "the sum of named nodes of one shape"),
    variadic(Layer::Concat, "concat", "concat(a, b, ...)", "named nodes joined along the first axis"),
    variadic(
        Layer::Multiply,
        "multiply",
        "multiply(a, b, ...)",
        "the product of named nodes of one shape; a [c] node scales each channel of a [c, h, w] one",
    ),
];

/// The arguments of a built-in layer called with a fixed signature; `None` for an unknown
/// name and for the variadic `reshape`, `add`, `concat` and `multiply`, which take their own arguments.
pub fn layer_signature(name: &str) -> Option<&'static [Arg]> {
    super::find(LAYERS, name).filter(|e| !matches!(e.sig.form, Form::Variadic(_))).map(|e| e.sig.args)
}

/// Whether `name` is a built-in layer.
pub fn is_layer(name: &str) -> bool {
    super::find(LAYERS, name).is_some()
}
