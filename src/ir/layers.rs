//! The layer table: a built-in layer's call, its evaluated arguments and its input shape
//! → the node it makes (kind, output shape, parameters, FLOPs), or why not.
//!
//! The names, signatures and defaults are the catalogue's (`crate::catalogue::LAYERS`);
//! [`builtin_layer`] builds each [`catalogue::Layer`] kind in one exhaustive `match`, so a
//! layer added to the catalogue does not compile until it is built here.

mod attention;

use super::Value;
use super::rnn::RnnCell;
use super::submodel::{Activation, ExpandError, LayerKind, Padding, Shape, fail, fmt_shape};
use crate::catalogue;
use crate::diagnostic::Code;
use crate::source::Span;

mod convnets;

/// An argument after evaluation.
pub(super) struct ArgVal {
    pub(super) name: Option<String>,
    pub(super) value: Value,
    pub(super) span: Span,
}

pub(super) type Built = (LayerKind, Shape, u64, u64);

/// The node a built-in layer called `name` with `args` makes on `input`.
///
/// `tokens` says what the input is when it is token ids: `Some(data.vocab)` when the layer
/// is applied to the model's input and the data is text, else `None` (with `Some(_)` for a
/// text dataset whose ids are already embedded).
pub(super) fn builtin_layer(
    name: &str,
    args: &[ArgVal],
    input: &Shape,
    span: Span,
    tokens: Tokens,
) -> Result<Built, ExpandError> {
    let Some(entry) = catalogue::find(catalogue::LAYERS, name) else {
        return Err(unknown_layer(name, span));
    };
    // The variadic layers read their arguments themselves.
    let bound = match entry.sig.form {
        catalogue::Form::Variadic(_) => Vec::new(),
        catalogue::Form::Call | catalogue::Form::Plain => bind(name, entry.sig.args, args, span)?,
    };
    let call = Call { name, bound, input, span };
    match entry.kind {
        catalogue::Layer::Dense => dense(&call),
        catalogue::Layer::Conv2d => conv2d(&call),
        catalogue::Layer::ConvTranspose2d => convnets::conv_transpose2d(&call),
        catalogue::Layer::Upsample => convnets::upsample(&call),
        catalogue::Layer::GroupNorm => convnets::groupnorm(&call),
        catalogue::Layer::RmsNorm => convnets::rmsnorm(&call),
        catalogue::Layer::MaxPool => pool(&call, true),
        catalogue::Layer::AvgPool => pool(&call, false),
        catalogue::Layer::Conv1d => super::seq::conv1d(&call),
        catalogue::Layer::MaxPool1d => super::seq::pool1d(&call, true),
        catalogue::Layer::AvgPool1d => super::seq::pool1d(&call, false),
        catalogue::Layer::Transpose => super::seq::transpose(&call),
        catalogue::Layer::GlobalAvgPool => global_pool(&call, LayerKind::GlobalAvgPool),
        catalogue::Layer::GlobalMaxPool => global_pool(&call, LayerKind::GlobalMaxPool),
        catalogue::Layer::Embedding => embedding(&call, tokens),
        catalogue::Layer::Lstm => recurrent(&call, RnnCell::Lstm),
        catalogue::Layer::Gru => recurrent(&call, RnnCell::Gru),
        catalogue::Layer::Attention => attention::attention(&call),
        catalogue::Layer::Positional => attention::positional(&call),
        catalogue::Layer::Flatten => Ok((LayerKind::Flatten, vec![call.size() as usize], 0, 0)),
        catalogue::Layer::BatchNorm => {
            let c = input.first().copied().unwrap_or(0) as u64;
            Ok((LayerKind::BatchNorm, input.clone(), 2 * c, 4 * call.size()))
        }
        catalogue::Layer::LayerNorm => {
            let d = input.last().copied().unwrap_or(0) as u64;
            Ok((LayerKind::LayerNorm, input.clone(), 2 * d, 5 * call.size()))
        }
        catalogue::Layer::Dropout => dropout(&call),
        catalogue::Layer::Relu => call.activation(Activation::Relu),
        catalogue::Layer::Gelu => call.activation(Activation::Gelu),
        catalogue::Layer::Tanh => call.activation(Activation::Tanh),
        catalogue::Layer::Sigmoid => call.activation(Activation::Sigmoid),
        catalogue::Layer::Silu => call.activation(Activation::Silu),
        catalogue::Layer::Softmax => call.activation(Activation::Softmax),
        catalogue::Layer::LeakyRelu => leaky_relu(&call),
        catalogue::Layer::Reshape => reshape(args, input, span),
        // `Expander::call` merges these before a layer is built; as a value they are no layer.
        catalogue::Layer::Add | catalogue::Layer::Concat | catalogue::Layer::Multiply => Err(unknown_layer(name, span)),
    }
}

/// A layer call with its arguments bound to the signature (defaults filled in).
pub(super) struct Call<'a> {
    pub(super) name: &'a str,
    bound: Vec<(&'static str, Value, Span)>,
    pub(super) input: &'a Shape,
    pub(super) span: Span,
}

impl Call<'_> {
    pub(super) fn get(&self, k: &str) -> Option<(Value, Span)> {
        self.bound.iter().find(|(n, _, _)| *n == k).map(|(_, v, s)| (v.clone(), *s))
    }

    /// The number of values of the input.
    pub(super) fn size(&self) -> u64 {
        self.input.iter().product::<usize>() as u64
    }

    pub(super) fn positive(&self, k: &str) -> Result<usize, ExpandError> {
        let name = self.name;
        let (v, s) = self.get(k).unwrap_or((Value::Int(0), self.span));
        match v {
            Value::Int(i) if i >= 1 => Ok(i as usize),
            Value::Int(i) => {
                fail(Code::InvalidValue, s, format!("`{name}` needs a positive `{k}`"), format!("`{k}` is {i} here"))
            }
            other => Err(ExpandError {
                code: Code::TypeMismatch,
                span: s,
                message: format!("`{k}` of `{name}` must be an int"),
                label: format!("this is the {} `{other}`", other.type_name()),
                help: matches!(other, Value::Float(_))
                    .then(|| "use `floor(x)` or `round(x)` to make an int".to_string()),
            }),
        }
    }

    fn image(&self, what: &str) -> Result<(usize, usize, usize), ExpandError> {
        match self.input.as_slice() {
            [c, h, w] => Ok((*c, *h, *w)),
            _ => fail(
                Code::ShapeError,
                self.span,
                format!("`{what}` needs an image input [channels, height, width]"),
                format!("the input here is {}", fmt_shape(self.input)),
            ),
        }
    }

    fn activation(&self, a: Activation) -> Result<Built, ExpandError> {
        Ok((LayerKind::Activation(a), self.input.clone(), 0, self.size()))
    }
}

/// What the input of a layer is, as far as token ids go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tokens {
    /// The data is not text.
    None,
    /// The model's input: token ids with a table of `data.vocab` rows.
    Ids(usize),
    /// Text data, but this input is no longer the ids.
    Later,
}

/// `global_avgpool` / `global_maxpool`: `[c, h, w]` → `[c]`, `[t, d]` → `[d]`; one FLOP
/// (an add or a comparison) per input value.
fn global_pool(call: &Call, kind: LayerKind) -> Result<Built, ExpandError> {
    let what = if kind == LayerKind::GlobalAvgPool { "global_avgpool" } else { "global_maxpool" };
    match call.input.as_slice() {
        [c, _, _] => Ok((kind, vec![*c], 0, call.size())),
        [_, d] => Ok((kind, vec![*d], 0, call.size())),
        _ => fail(
            Code::ShapeError,
            call.span,
            format!("`{what}` needs an image [channels, height, width] or a sequence [length, dim]"),
            format!("the input here is {}", fmt_shape(call.input)),
        ),
    }
}

/// `embedding(vocab, dim)`: the model's token ids `[L]` → `[L, dim]`; `vocab · dim`
/// parameters and one FLOP (a copy) per output value.
fn embedding(call: &Call, tokens: Tokens) -> Result<Built, ExpandError> {
    let vocab = call.positive("vocab")?;
    let dim = call.positive("dim")?;
    let data_vocab = match tokens {
        Tokens::Ids(v) => v,
        Tokens::None => {
            return Err(ExpandError {
                code: Code::ShapeError,
                span: call.span,
                message: "`embedding` needs token ids, and this data has none".into(),
                label: format!("the input here is {} of numbers", fmt_shape(call.input)),
                help: Some(
                    "token ids come from text data: `data = text(\"f.csv\", text: \"t\", target: \"y\")`".into(),
                ),
            });
        }
        Tokens::Later => {
            return Err(ExpandError {
                code: Code::ShapeError,
                span: call.span,
                message: "`embedding` takes the token ids of the model's input".into(),
                label: format!("its input here is {}, not the ids", fmt_shape(call.input)),
                help: Some("put `embedding(data.vocab, dim)` first in the model".into()),
            });
        }
    };
    if vocab < data_vocab {
        let at = call.get("vocab").map_or(call.span, |(_, s)| s);
        return Err(ExpandError {
            code: Code::InvalidValue,
            span: at,
            message: format!("`embedding` has {vocab} rows, but the token ids go up to {}", data_vocab - 1),
            label: format!("`vocab` is {vocab}, `data.vocab` is {data_vocab}"),
            help: Some("use `embedding(data.vocab, dim)`".into()),
        });
    }
    let len = call.input.first().copied().unwrap_or(0);
    Ok((LayerKind::Embedding { vocab, dim }, vec![len, dim], (vocab * dim) as u64, (len * dim) as u64))
}

/// `lstm` / `gru`: see `ir::rnn`.
fn recurrent(call: &Call, cell: RnnCell) -> Result<Built, ExpandError> {
    let units = call.positive("units")?;
    super::rnn::recurrent(cell, &|k| call.get(k), units, call.input, call.span)
}

fn dense(call: &Call) -> Result<Built, ExpandError> {
    let units = call.positive("units")?;
    // On a sequence `[t, d]`, the same map is applied at each of the t positions.
    let (positions, n, shape) = match call.input.as_slice() {
        [n] => (1, *n, vec![units]),
        [t, n] => (*t, *n, vec![*t, units]),
        _ => {
            return Err(ExpandError {
                code: Code::ShapeError,
                span: call.span,
                message: "`dense` needs a flat input or a sequence [length, dim]".into(),
                label: format!("the input here is {}", fmt_shape(call.input)),
                help: Some("add `flatten` (or `global_avgpool`) before it".into()),
            });
        }
    };
    let (n, u, t) = (n as u64, units as u64, positions as u64);
    Ok((LayerKind::Dense { units }, shape, n * u + u, 2 * t * n * u))
}

fn conv2d(call: &Call) -> Result<Built, ExpandError> {
    let filters = call.positive("filters")?;
    let kernel = call.positive("kernel")?;
    let stride = call.positive("stride")?;
    let padding = convnets::padding(call)?;
    let (c, h, w) = call.image("conv2d")?;
    let groups = convnets::groups(call, c, filters)?;
    let (oh, ow) = match padding {
        Padding::Same => (h.div_ceil(stride), w.div_ceil(stride)),
        Padding::Valid => {
            if h < kernel || w < kernel {
                return fail(
                    Code::ShapeError,
                    call.span,
                    format!("the feature map is {h}x{w}, smaller than the {kernel}x{kernel} kernel"),
                    "no room for the kernel",
                );
            }
            ((h - kernel) / stride + 1, (w - kernel) / stride + 1)
        }
    };
    let (k, c64, f64_) = (kernel as u64, c as u64, filters as u64);
    // Each filter sees the c / groups channels of its group.
    let per = c64 / groups as u64;
    let params = k * k * per * f64_ + f64_;
    let flops = 2 * k * k * per * f64_ * (oh * ow) as u64;
    Ok((LayerKind::Conv2d { filters, kernel, stride, padding, groups }, vec![filters, oh, ow], params, flops))
}

/// `maxpool` (`max`) or `avgpool`.
fn pool(call: &Call, max: bool) -> Result<Built, ExpandError> {
    let name = call.name;
    let kernel = call.positive("kernel")?;
    let stride = if call.get("stride").is_some_and(|(v, _)| v.as_sym() != Some("kernel")) {
        call.positive("stride")?
    } else {
        kernel
    };
    let (c, h, w) = call.image(name)?;
    if h < kernel || w < kernel {
        return Err(ExpandError {
            code: Code::ShapeError,
            span: call.span,
            message: format!("`{name}({kernel})` shrinks the {h}x{w} feature map to nothing"),
            label: format!("the feature map is {h}x{w} here"),
            help: Some("use fewer pooling layers, or a smaller kernel".into()),
        });
    }
    let (oh, ow) = ((h - kernel) / stride + 1, (w - kernel) / stride + 1);
    let kind = if max { LayerKind::MaxPool { kernel, stride } } else { LayerKind::AvgPool { kernel, stride } };
    Ok((kind, vec![c, oh, ow], 0, (c * oh * ow * kernel * kernel) as u64))
}

fn dropout(call: &Call) -> Result<Built, ExpandError> {
    let (v, s) = call.get("p").unwrap_or((Value::Float(0.0), call.span));
    match v.as_f64() {
        Some(p) if (0.0..1.0).contains(&p) => Ok((LayerKind::Dropout { p }, call.input.clone(), 0, 0)),
        Some(p) => fail(Code::InvalidValue, s, "a dropout rate is in [0, 1)", format!("the rate is {p} here")),
        None => fail(Code::TypeMismatch, s, "a dropout rate must be a number", format!("this is a {}", v.type_name())),
    }
}

fn leaky_relu(call: &Call) -> Result<Built, ExpandError> {
    let (v, s) = call.get("a").unwrap_or((Value::Float(0.01), call.span));
    match v.as_f64() {
        Some(a) => call.activation(Activation::LeakyRelu(a)),
        None => fail(
            Code::TypeMismatch,
            s,
            "the slope of `leaky_relu` must be a number",
            format!("this is a {}", v.type_name()),
        ),
    }
}

fn reshape(args: &[ArgVal], input: &Shape, span: Span) -> Result<Built, ExpandError> {
    let mut dims = Vec::new();
    let values: Vec<&ArgVal> = args.iter().collect();
    let flat: Vec<(Value, Span)> = match values.as_slice() {
        [one] if matches!(one.value, Value::List(_)) => match &one.value {
            Value::List(items) => items.iter().map(|v| (v.clone(), one.span)).collect(),
            _ => Vec::new(),
        },
        _ => values.iter().map(|a| (a.value.clone(), a.span)).collect(),
    };
    for (v, s) in flat {
        match v {
            Value::Int(i) if i >= 1 => dims.push(i as usize),
            other => {
                return fail(
                    Code::InvalidValue,
                    s,
                    "`reshape` takes positive int dimensions",
                    format!("found `{other}`"),
                );
            }
        }
    }
    let size: usize = input.iter().product();
    if dims.is_empty() || dims.iter().product::<usize>() != size {
        return Err(ExpandError {
            code: Code::ShapeError,
            span,
            message: format!("cannot reshape {} into {}", fmt_shape(input), fmt_shape(&dims)),
            label: format!("{} values in, {} out", size, dims.iter().product::<usize>()),
            help: None,
        });
    }
    Ok((LayerKind::Reshape { shape: dims.clone() }, dims, 0, 0))
}

fn unknown_layer(name: &str, span: Span) -> ExpandError {
    let mut e = ExpandError {
        code: Code::UnknownLayer,
        span,
        message: format!("unknown layer `{name}`"),
        label: "no such layer or block".into(),
        help: None,
    };
    if let Some(b) = crate::diagnostic::did_you_mean(name, catalogue::Concept::Layer.names()) {
        e.help = Some(format!("did you mean `{b}`?"));
    }
    e
}

/// The value of a default written in a signature: `3`, `0.01`, `same`.
fn default_value(d: &str) -> Value {
    if let Ok(b) = d.parse::<bool>() {
        Value::Bool(b)
    } else if let Ok(i) = d.parse::<i64>() {
        Value::Int(i)
    } else if let Ok(f) = d.parse::<f64>() {
        Value::Float(f)
    } else {
        Value::sym(d)
    }
}

/// Matches arguments to a signature: `(name, value, span)` for each parameter given or defaulted.
fn bind(
    layer: &str,
    sig: &'static [catalogue::Arg],
    args: &[ArgVal],
    span: Span,
) -> Result<Vec<(&'static str, Value, Span)>, ExpandError> {
    let mut out: Vec<(&'static str, Value, Span)> = Vec::new();
    let mut positional = args.iter().filter(|a| a.name.is_none());
    for a in args.iter().filter(|a| a.name.is_some()) {
        let n = a.name.as_deref().unwrap_or("");
        if !sig.iter().any(|k| k.name == n) {
            let known: Vec<&str> = sig.iter().map(|k| k.name).collect();
            let help = match crate::diagnostic::did_you_mean(n, known.iter().copied()) {
                Some(b) => format!("did you mean `{b}`?"),
                None if known.is_empty() => format!("`{layer}` takes no arguments"),
                None => {
                    format!("`{layer}` takes {}", known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", "))
                }
            };
            return Err(ExpandError {
                code: Code::BadArguments,
                span: a.span,
                message: format!("`{layer}` has no argument `{n}`"),
                label: "unknown argument".into(),
                help: Some(help),
            });
        }
    }
    for arg in sig {
        let k = arg.name;
        let named = args.iter().find(|a| a.name.as_deref() == Some(k));
        match named.or_else(|| positional.next()) {
            Some(a) => out.push((k, a.value.clone(), a.span)),
            None => match arg.need {
                catalogue::Need::Default(d) => out.push((k, default_value(d), span)),
                catalogue::Need::Optional => {}
                catalogue::Need::Required => {
                    return fail(
                        Code::BadArguments,
                        span,
                        format!("`{layer}` needs `{k}`"),
                        format!("`{k}` is missing"),
                    );
                }
            },
        }
    }
    if let Some(extra) = positional.next() {
        return fail(
            Code::BadArguments,
            extra.span,
            format!("`{layer}` takes at most {} arguments", sig.len()),
            "one too many",
        );
    }
    Ok(out)
}
