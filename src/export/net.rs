//! One network (a `train::Plan` and its named tensors) as ONNX nodes, step by step, with
//! the semantics of `train::net::forward` in evaluation mode.
//!
//! Takes the plan, its tensors (`<layer>.weight`, ...) and the name of the graph value
//! holding its input (`[N, features]`, after bma's preprocessing); gives the name of its
//! output `[N, outputs]` (the network's raw outputs, flattened as bma flattens them).
//!
//! Layouts follow bma's: activations are batch first, images `[N, c, h, w]`, sequences
//! `[N, t, d]` (time first, features last); a dense weight is `[in, out]` (so `MatMul`, no
//! transpose); conv weights are PyTorch's (and ONNX's); recurrent weights are
//! `[in, gates·u]` with PyTorch's gate order and are transposed and reordered into ONNX's
//! (`iofc` for LSTM, `zrh` for GRU with `linear_before_reset`). Norm epsilons are burn's
//! defaults (1e-5). A model that reads token ids carries the padding mask (`[N, t]`, 1 on
//! tokens) along the sequence steps exactly as `train::net::seq` does: conv1d zeroes padded
//! inputs, the lengths after conv1d and the 1-D pools follow its rule, the global pools,
//! attention and the recurrent layers (`sequence_lens`) ignore padding.
//!
//! **Invariant:** every `OpKind` maps to nodes that compute what bma computes (checked by
//! onnxruntime in `tests/onnx.rs`); a step that cannot be mapped is an error naming it,
//! never a wrong graph.

use super::graph::{Graph, float, int, ints, string};
use crate::ir::RnnCell;
use crate::train::{OpKind, Plan, Tensors};

/// Added to a hidden attention score (as `train::net::attention`'s `HIDDEN`).
const HIDDEN: f32 = -1.0e30;
/// burn's default epsilon of every norm bma builds.
const EPS: f32 = 1e-5;

/// A padding mask: the graph value (`[N, len]`, float 1/0) and its length.
#[derive(Debug, Clone)]
struct Mask {
    name: String,
    len: usize,
}

struct Weights<'a> {
    tensors: &'a Tensors,
}

impl Weights<'_> {
    fn get(&self, name: &str) -> Result<(&[usize], &[f32]), String> {
        let (_, s, v) =
            self.tensors.iter().find(|t| t.0 == name).ok_or_else(|| format!("the model has no tensor `{name}`"))?;
        if v.len() != s.iter().product::<usize>() {
            return Err(format!("tensor `{name}` has {} values for shape {s:?}", v.len()));
        }
        Ok((s, v))
    }

    /// The tensor `name` as a graph constant.
    fn constant(&self, g: &mut Graph, name: &str) -> Result<String, String> {
        let (s, v) = self.get(name)?;
        Ok(g.floats(name, s, v))
    }
}

fn i(n: usize) -> i64 {
    n as i64
}

/// The network of `plan` on `input`; see the module header.
pub fn network(g: &mut Graph, plan: &Plan, tensors: &Tensors, input: &str) -> Result<String, String> {
    let w = Weights { tensors };
    let mut outs: Vec<String> = Vec::with_capacity(plan.ops.len());
    let mut masks: Vec<Option<Mask>> = Vec::with_capacity(plan.ops.len());
    for op in &plan.ops {
        let n = op.name.as_str();
        let arg = |k: usize| -> Result<String, String> {
            op.inputs.get(k).and_then(|j| outs.get(*j)).cloned().ok_or_else(|| format!("`{n}` has no input"))
        };
        let shape_of = |k: usize| -> Vec<usize> {
            op.inputs.get(k).and_then(|j| plan.ops.get(*j)).map(|o| o.shape.clone()).unwrap_or_default()
        };
        // The mask of the step's input (the token mask for the input step itself).
        let mask_in: Option<Mask> = match op.kind {
            OpKind::Input if plan.tokens() => {
                let zero = g.scalar(0.0);
                let eq = g.node("Equal", &[input, &zero], vec![]);
                let not = g.node("Not", &[&eq], vec![]);
                let name = g.node("Cast", &[&not], vec![int("to", 1)]);
                Some(Mask { name, len: op.shape.first().copied().unwrap_or(0) })
            }
            OpKind::Input => None,
            _ => op.inputs.first().and_then(|j| masks.get(*j).cloned().flatten()),
        };
        // The mask when it covers a `[N, t, d]` input of the step (`t` = its length).
        let seq_mask = |t: usize| mask_in.clone().filter(|m| m.len == t);
        let unsupported = || format!("layer `{n}` ({:?}) cannot be exported to ONNX yet", op.kind);
        let rank_error = || format!("layer `{n}` ({:?}): its input has an unexpected shape {:?}", op.kind, op.in_shape);
        let out = match &op.kind {
            OpKind::Input => match op.shape.len() {
                1 => input.to_string(),
                _ => g.reshape(input, &batch_shape(&op.shape)),
            },
            OpKind::Dense { .. } => {
                let weight = w.constant(g, &format!("{n}.weight"))?;
                let bias = w.constant(g, &format!("{n}.bias"))?;
                let x = arg(0)?;
                match op.in_shape.len() {
                    1 => g.node("Gemm", &[&x, &weight, &bias], vec![]),
                    2 => {
                        let y = g.matmul(&x, &weight);
                        g.add(&y, &bias)
                    }
                    _ => return Err(rank_error()),
                }
            }
            OpKind::Conv2d { stride, pad, groups, .. } => {
                let weight = w.constant(g, &format!("{n}.weight"))?;
                let bias = w.constant(g, &format!("{n}.bias"))?;
                let k = w.get(&format!("{n}.weight"))?.0.get(2..4).map(|s| [i(s[0]), i(s[1])]).unwrap_or([1, 1]);
                let attrs = vec![
                    ints("kernel_shape", &k),
                    ints("strides", &[i(*stride); 2]),
                    // ONNX: [top, left, bottom, right]; bma: (top, bottom, left, right).
                    ints("pads", &[i(pad[0]), i(pad[2]), i(pad[1]), i(pad[3])]),
                    int("group", i(*groups)),
                ];
                g.node("Conv", &[&arg(0)?, &weight, &bias], attrs)
            }
            OpKind::ConvTranspose2d { kernel, stride, same, .. } => {
                let weight = w.constant(g, &format!("{n}.weight"))?;
                let bias = w.constant(g, &format!("{n}.bias"))?;
                let tail = if *same { stride.saturating_sub(*kernel) } else { 0 };
                let attrs = vec![
                    ints("kernel_shape", &[i(*kernel); 2]),
                    ints("strides", &[i(*stride); 2]),
                    ints("output_padding", &[i(tail); 2]),
                ];
                let y = g.node("ConvTranspose", &[&arg(0)?, &weight, &bias], attrs);
                let (h, wd) = (op.in_shape.get(1).copied().unwrap_or(1), op.in_shape.get(2).copied().unwrap_or(1));
                let full = |s: usize| (s.max(1) - 1) * stride + kernel + tail;
                let (oh, ow) = (h * stride, wd * stride);
                if !*same || (full(h), full(wd)) == (oh, ow) {
                    y
                } else {
                    let top = kernel.saturating_sub(*stride) / 2;
                    let y = g.slice(&y, 2, i(top), i(top + oh));
                    g.slice(&y, 3, i(top), i(top + ow))
                }
            }
            OpKind::Upsample { factor, bilinear } => {
                let scales = g.floats("scales", &[4], &[1.0, 1.0, *factor as f32, *factor as f32]);
                let attrs = if *bilinear {
                    vec![string("mode", "linear"), string("coordinate_transformation_mode", "half_pixel")]
                } else {
                    vec![
                        string("mode", "nearest"),
                        string("coordinate_transformation_mode", "asymmetric"),
                        string("nearest_mode", "floor"),
                    ]
                };
                g.node("Resize", &[&arg(0)?, "", &scales], attrs)
            }
            OpKind::MaxPool { kernel, stride } | OpKind::AvgPool { kernel, stride } => {
                let what = if matches!(op.kind, OpKind::MaxPool { .. }) { "MaxPool" } else { "AveragePool" };
                let attrs = vec![ints("kernel_shape", &[i(*kernel); 2]), ints("strides", &[i(*stride); 2])];
                g.node(what, &[&arg(0)?], attrs)
            }
            OpKind::GlobalAvgPool | OpKind::GlobalMaxPool => {
                let max = op.kind == OpKind::GlobalMaxPool;
                let x = arg(0)?;
                match op.in_shape.len() {
                    3 => {
                        let what = if max { "ReduceMax" } else { "ReduceMean" };
                        g.reduce(what, &x, &[2, 3], false)
                    }
                    2 => sequence_pool(g, &x, seq_mask(op.in_shape[0]).as_ref(), max),
                    _ => return Err(rank_error()),
                }
            }
            OpKind::Conv1d { stride, pad, dilation, groups, .. } => {
                let weight = w.constant(g, &format!("{n}.weight"))?;
                let bias = w.constant(g, &format!("{n}.bias"))?;
                let kernel = w.get(&format!("{n}.weight"))?.0.get(2).copied().unwrap_or(1);
                let mut x = arg(0)?;
                if let Some(m) = seq_mask(op.in_shape.first().copied().unwrap_or(0)) {
                    let m3 = g.unsqueeze(&m.name, &[2]);
                    x = g.mul(&x, &m3);
                }
                let xt = g.transpose(&x, &[0, 2, 1]);
                let attrs = vec![
                    ints("kernel_shape", &[i(kernel)]),
                    ints("strides", &[i(*stride)]),
                    ints("pads", &[i(pad[0]), i(pad[1])]),
                    ints("dilations", &[i(*dilation)]),
                    int("group", i(*groups)),
                ];
                let y = g.node("Conv", &[&xt, &weight, &bias], attrs);
                g.transpose(&y, &[0, 2, 1])
            }
            OpKind::MaxPool1d { kernel, stride } | OpKind::AvgPool1d { kernel, stride } => {
                let what = if matches!(op.kind, OpKind::MaxPool1d { .. }) { "MaxPool" } else { "AveragePool" };
                let xt = g.transpose(&arg(0)?, &[0, 2, 1]);
                let y = g.node(what, &[&xt], vec![ints("kernel_shape", &[i(*kernel)]), ints("strides", &[i(*stride)])]);
                g.transpose(&y, &[0, 2, 1])
            }
            OpKind::Transpose => match op.in_shape.as_slice() {
                [_, _] => g.transpose(&arg(0)?, &[0, 2, 1]),
                [1, h, wd] => {
                    let x = g.reshape(&arg(0)?, &[-1, i(*h), i(*wd)]);
                    g.transpose(&x, &[0, 2, 1])
                }
                _ => return Err(rank_error()),
            },
            OpKind::Embedding { .. } => {
                let table = w.constant(g, &format!("{n}.weight"))?;
                let ids = g.node("Cast", &[&arg(0)?], vec![int("to", 7)]);
                g.node("Gather", &[&table, &ids], vec![int("axis", 0)])
            }
            OpKind::Recurrent { cell, units, bidirectional, sequence } => {
                let t = op.in_shape.first().copied().unwrap_or(0);
                recurrent(g, &w, n, &arg(0)?, (*cell, *units, *bidirectional, *sequence), seq_mask(t).as_ref())?
            }
            OpKind::Attention { heads, causal, rotary } => {
                let (t, d) = match op.in_shape.as_slice() {
                    [t, d] => (*t, *d),
                    _ => return Err(rank_error()),
                };
                let spec = AttentionSpec { t, d, heads: (*heads).max(1), causal: *causal, rotary: *rotary };
                attention(g, &w, n, &arg(0)?, spec, seq_mask(t).as_ref())?
            }
            OpKind::Positional { learned } => {
                let code = if *learned {
                    w.constant(g, &format!("{n}.weight"))?
                } else {
                    let (t, d) = match op.shape.as_slice() {
                        [t, d] => (*t, *d),
                        _ => return Err(rank_error()),
                    };
                    g.floats("positions", &[t, d], &sinusoidal(t, d))
                };
                g.add(&arg(0)?, &code)
            }
            OpKind::Flatten | OpKind::Reshape => g.reshape(&arg(0)?, &batch_shape(&op.shape)),
            OpKind::BatchNorm => {
                let (scale, bias) = (w.constant(g, &format!("{n}.weight"))?, w.constant(g, &format!("{n}.bias"))?);
                let mean = w.constant(g, &format!("{n}.running_mean"))?;
                let var = w.constant(g, &format!("{n}.running_var"))?;
                g.node("BatchNormalization", &[&arg(0)?, &scale, &bias, &mean, &var], vec![float("epsilon", EPS)])
            }
            OpKind::LayerNorm => {
                let scale = w.constant(g, &format!("{n}.weight"))?;
                let bias = match w.get(&format!("{n}.bias")) {
                    Ok(_) => w.constant(g, &format!("{n}.bias"))?,
                    Err(_) => String::new(),
                };
                let attrs = vec![int("axis", -1), float("epsilon", EPS)];
                g.node("LayerNormalization", &[&arg(0)?, &scale, &bias], attrs)
            }
            OpKind::GroupNorm { groups } => group_norm(g, &w, n, &arg(0)?, *groups, &op.shape)?,
            OpKind::RmsNorm => {
                let x = arg(0)?;
                let gamma = w.constant(g, &format!("{n}.weight"))?;
                let sq = g.mul(&x, &x);
                let ms = g.reduce("ReduceMean", &sq, &[-1], true);
                let eps = g.scalar(EPS);
                let ms = g.add(&ms, &eps);
                let rms = g.node("Sqrt", &[&ms], vec![]);
                let y = g.node("Div", &[&x, &rms], vec![]);
                g.mul(&y, &gamma)
            }
            OpKind::Dropout { .. } => arg(0)?,
            OpKind::Relu => g.node("Relu", &[&arg(0)?], vec![]),
            OpKind::LeakyRelu { a } => g.node("LeakyRelu", &[&arg(0)?], vec![float("alpha", *a as f32)]),
            OpKind::Gelu => {
                // burn's `gelu` is the exact (erf) form: x · (1 + erf(x / √2)) / 2.
                let x = arg(0)?;
                let r2 = g.scalar(std::f32::consts::SQRT_2);
                let s = g.node("Div", &[&x, &r2], vec![]);
                let e = g.node("Erf", &[&s], vec![]);
                let one = g.scalar(1.0);
                let e1 = g.add(&e, &one);
                let half = g.scalar(0.5);
                let xe = g.mul(&x, &e1);
                g.mul(&xe, &half)
            }
            OpKind::Tanh => g.node("Tanh", &[&arg(0)?], vec![]),
            OpKind::Sigmoid => g.node("Sigmoid", &[&arg(0)?], vec![]),
            OpKind::Silu => {
                let x = arg(0)?;
                let s = g.node("Sigmoid", &[&x], vec![]);
                g.mul(&x, &s)
            }
            // bma's softmax runs along axis 1 whatever the rank.
            OpKind::Softmax => g.node("Softmax", &[&arg(0)?], vec![int("axis", 1)]),
            OpKind::Add => {
                let mut acc = arg(0)?;
                for k in 1..op.inputs.len() {
                    acc = g.add(&acc, &arg(k)?);
                }
                acc
            }
            OpKind::Concat => {
                let all: Vec<String> = (0..op.inputs.len()).map(arg).collect::<Result<_, _>>()?;
                let refs: Vec<&str> = all.iter().map(String::as_str).collect();
                g.node("Concat", &refs, vec![int("axis", 1)])
            }
            OpKind::Multiply => {
                let mut acc: Option<String> = None;
                for k in 0..op.inputs.len() {
                    let mut x = arg(k)?;
                    // A `[N, c]` gate scales the channels of a `[N, c, h, w]` map.
                    if op.shape.len() == 3 && shape_of(k).len() == 1 {
                        x = g.unsqueeze(&x, &[2, 3]);
                    }
                    acc = Some(match acc {
                        Some(a) => g.mul(&a, &x),
                        None => x,
                    });
                }
                acc.ok_or_else(unsupported)?
            }
        };
        // The output's mask, as `train::net::seq::mask_after` gives it.
        let mask_out = match (&op.kind, mask_in) {
            (OpKind::Input, m) => m,
            (_, None) => None,
            (OpKind::Conv1d { kernel, stride, dilation, pad, .. }, Some(m)) => Some(mask_after(
                g,
                &m,
                op.shape.first().copied().unwrap_or(0),
                *kernel,
                *stride,
                *dilation,
                pad[0] + pad[1],
            )),
            (OpKind::MaxPool1d { kernel, stride } | OpKind::AvgPool1d { kernel, stride }, Some(m)) => {
                Some(mask_after(g, &m, op.shape.first().copied().unwrap_or(0), *kernel, *stride, 1, 0))
            }
            (
                OpKind::Transpose
                | OpKind::Flatten
                | OpKind::Reshape
                | OpKind::GlobalAvgPool
                | OpKind::GlobalMaxPool
                | OpKind::Concat,
                _,
            ) => None,
            (_, Some(m)) => (op.shape.len() == 2 && op.shape.first() == Some(&m.len)).then_some(m),
        };
        masks.push(mask_out);
        outs.push(out);
    }
    let last = outs.get(plan.output).ok_or("the model has no output")?.clone();
    Ok(g.node("Flatten", &[&last], vec![int("axis", 1)]))
}

/// `[-1, shape...]`: the batch inferred.
fn batch_shape(shape: &[usize]) -> Vec<i64> {
    std::iter::once(-1).chain(shape.iter().map(|s| i(*s))).collect()
}

/// `train::net::seq::mask_after` for a conv1d or pool: position `j` of the output is real
/// when `j < max(0, ⌊(n + pad − span) / stride⌋ + 1)`, `n` the input's count of real positions.
fn mask_after(g: &mut Graph, m: &Mask, len: usize, kernel: usize, stride: usize, dilation: usize, pad: usize) -> Mask {
    let span = dilation.saturating_mul(kernel.max(1) - 1).saturating_add(1);
    let count = g.reduce_sum(&m.name, &[1], true);
    let shift = g.scalar(pad as f32 - span as f32);
    let room = g.add(&count, &shift);
    let s = g.scalar(stride.max(1) as f32);
    let q = g.node("Div", &[&room, &s], vec![]);
    let q = g.node("Floor", &[&q], vec![]);
    let one = g.scalar(1.0);
    let real = g.add(&q, &one);
    let positions: Vec<f32> = (0..len).map(|j| j as f32).collect();
    let pos = g.floats("positions", &[1, len], &positions);
    // `j < real` (real ≤ 0 keeps none).
    let less = g.node("Less", &[&pos, &real], vec![]);
    let name = g.node("Cast", &[&less], vec![int("to", 1)]);
    Mask { name, len }
}

/// `train::net::sequence_pool`: the average or max of `[N, t, d]` over `t`, over the
/// tokens only when `mask` is given (a row without any gives 0).
fn sequence_pool(g: &mut Graph, x: &str, mask: Option<&Mask>, max: bool) -> String {
    match (mask, max) {
        (None, false) => g.reduce("ReduceMean", x, &[1], false),
        (None, true) => g.reduce("ReduceMax", x, &[1], false),
        (Some(m), false) => {
            let m3 = g.unsqueeze(&m.name, &[2]);
            let count = g.reduce_sum(&m3, &[1], false);
            let one = g.scalar(1.0);
            let count = g.node("Max", &[&count, &one], vec![]);
            let xm = g.mul(x, &m3);
            let sum = g.reduce_sum(&xm, &[1], false);
            g.node("Div", &[&sum, &count], vec![])
        }
        (Some(m), true) => {
            let m3 = g.unsqueeze(&m.name, &[2]);
            let one = g.scalar(1.0);
            let off = g.sub(&m3, &one);
            let big = g.scalar(1.0e30);
            let off = g.mul(&off, &big);
            let shifted = g.add(x, &off);
            let top = g.reduce("ReduceMax", &shifted, &[1], false);
            let any = g.reduce("ReduceMax", &m3, &[1], false);
            g.mul(&top, &any)
        }
    }
}

/// `burn::nn::GroupNorm` on `[N, c, h, w]`: each group's channels normalised together
/// (biased variance), then the per-channel scale and shift.
fn group_norm(g: &mut Graph, w: &Weights, n: &str, x: &str, groups: usize, shape: &[usize]) -> Result<String, String> {
    let c = shape.first().copied().unwrap_or(1);
    let xg = g.reshape(x, &[0, i(groups.max(1)), -1]);
    let mean = g.reduce("ReduceMean", &xg, &[2], true);
    let centred = g.sub(&xg, &mean);
    let sq = g.mul(&centred, &centred);
    let var = g.reduce("ReduceMean", &sq, &[2], true);
    let eps = g.scalar(EPS);
    let var = g.add(&var, &eps);
    let sd = g.node("Sqrt", &[&var], vec![]);
    let y = g.node("Div", &[&centred, &sd], vec![]);
    let mut full: Vec<i64> = vec![-1];
    full.extend(shape.iter().map(|s| i(*s)));
    let mut y = g.reshape(&y, &full);
    let per_channel = |g: &mut Graph, name: &str| -> Result<String, String> {
        let (_, v) = w.get(name)?;
        let mut dims = vec![c];
        dims.extend(std::iter::repeat_n(1, shape.len().saturating_sub(1)));
        Ok(g.floats(name, &dims, v))
    };
    if w.get(&format!("{n}.weight")).is_ok() {
        let gamma = per_channel(g, &format!("{n}.weight"))?;
        y = g.mul(&y, &gamma);
    }
    if w.get(&format!("{n}.bias")).is_ok() {
        let beta = per_channel(g, &format!("{n}.bias"))?;
        y = g.add(&y, &beta);
    }
    Ok(y)
}

/// `sin(p / 10000^(2i/d))` at feature `2i`, `cos` at `2i + 1` (`train::net::attention::sinusoidal`).
fn sinusoidal(t: usize, d: usize) -> Vec<f32> {
    let mut code = Vec::with_capacity(t * d);
    for p in 0..t {
        for j in 0..d {
            let angle = p as f64 / 10000f64.powf((j - j % 2) as f64 / d as f64);
            code.push(if j % 2 == 0 { angle.sin() } else { angle.cos() } as f32);
        }
    }
    code
}

#[derive(Debug, Clone, Copy)]
struct AttentionSpec {
    t: usize,
    d: usize,
    heads: usize,
    causal: bool,
    rotary: bool,
}

/// `train::net::attention::attention` as MatMul/Softmax nodes.
fn attention(
    g: &mut Graph,
    w: &Weights,
    n: &str,
    x: &str,
    s: AttentionSpec,
    mask: Option<&Mask>,
) -> Result<String, String> {
    let dh = s.d / s.heads;
    let proj = |g: &mut Graph, p: &str, x: &str| -> Result<String, String> {
        let weight = w.constant(g, &format!("{n}.{p}.weight"))?;
        let bias = w.constant(g, &format!("{n}.{p}.bias"))?;
        let y = g.matmul(x, &weight);
        Ok(g.add(&y, &bias))
    };
    let split = |g: &mut Graph, y: &str| {
        let y = g.reshape(y, &[0, i(s.t), i(s.heads), i(dh)]);
        g.transpose(&y, &[0, 2, 1, 3])
    };
    let q = proj(g, "q", x)?;
    let mut q = split(g, &q);
    let k = proj(g, "k", x)?;
    let mut k = split(g, &k);
    let v = proj(g, "v", x)?;
    let v = split(g, &v);
    if s.rotary {
        let half = dh / 2;
        let (mut cos, mut sin) = (Vec::with_capacity(s.t * half), Vec::with_capacity(s.t * half));
        for p in 0..s.t {
            for j in 0..half {
                let angle = p as f64 / 10000f64.powf(2.0 * j as f64 / dh as f64);
                cos.push(angle.cos() as f32);
                sin.push(angle.sin() as f32);
            }
        }
        let cos = g.floats("rotary_cos", &[1, 1, s.t, half], &cos);
        let sin = g.floats("rotary_sin", &[1, 1, s.t, half], &sin);
        let rotate = |g: &mut Graph, x: &str| {
            let x1 = g.slice(x, 3, 0, i(half));
            let x2 = g.slice(x, 3, i(half), i(2 * half));
            let (a, b) = (g.mul(&x1, &cos), g.mul(&x2, &sin));
            let r1 = g.sub(&a, &b);
            let (a, b) = (g.mul(&x1, &sin), g.mul(&x2, &cos));
            let r2 = g.add(&a, &b);
            g.node("Concat", &[&r1, &r2], vec![int("axis", 3)])
        };
        q = rotate(g, &q);
        k = rotate(g, &k);
    }
    let scale = g.scalar((1.0 / (dh as f64).sqrt()) as f32);
    let qs = g.mul(&q, &scale);
    let kt = g.transpose(&k, &[0, 1, 3, 2]);
    let mut scores = g.matmul(&qs, &kt);
    if let Some(m) = mask {
        let one = g.scalar(1.0);
        let off = g.sub(&m.name, &one);
        let big = g.scalar(-HIDDEN);
        let off = g.mul(&off, &big);
        let off = g.unsqueeze(&off, &[1, 2]);
        scores = g.add(&scores, &off);
    }
    if s.causal {
        let later: Vec<f32> = (0..s.t * s.t).map(|k| if k % s.t > k / s.t { HIDDEN } else { 0.0 }).collect();
        let c = g.floats("causal", &[1, 1, s.t, s.t], &later);
        scores = g.add(&scores, &c);
    }
    let weights = g.node("Softmax", &[&scores], vec![int("axis", 3)]);
    let out = g.matmul(&weights, &v);
    let out = g.transpose(&out, &[0, 2, 1, 3]);
    let out = g.reshape(&out, &[0, i(s.t), i(s.d)]);
    proj(g, "o", &out)
}

/// `lstm` / `gru` as ONNX's `LSTM` / `GRU` on `[N, t, d]`; `sequence_lens` from the mask.
fn recurrent(
    g: &mut Graph,
    w: &Weights,
    n: &str,
    x: &str,
    (cell, u, bidirectional, sequence): (RnnCell, usize, bool, bool),
    mask: Option<&Mask>,
) -> Result<String, String> {
    let gates = cell.gates();
    // ONNX's gate blocks, as indices of bma's (PyTorch's) blocks.
    let order: &[usize] = match cell {
        RnnCell::Lstm => &[0, 3, 1, 2], // i, o, f, c  from  i, f, g, o
        RnnCell::Gru => &[1, 0, 2],     // z, r, h  from  r, z, n
    };
    let suffixes: &[&str] = if bidirectional { &["", "_reverse"] } else { &[""] };
    let dirs = suffixes.len();
    // `[in, G·u]` → `[G·u, in]` with the blocks reordered.
    let reorder = |m: &[f32], rows: usize| -> Vec<f32> {
        let mut out = Vec::with_capacity(m.len());
        for &blk in order {
            for col in blk * u..(blk + 1) * u {
                out.extend((0..rows).map(|r| m[r * gates * u + col]));
            }
        }
        out
    };
    let reorder_bias =
        |b: &[f32]| -> Vec<f32> { order.iter().flat_map(|blk| b[blk * u..(blk + 1) * u].to_vec()).collect() };
    let (mut wx, mut wr, mut bias) = (Vec::new(), Vec::new(), Vec::new());
    let mut input = 0;
    for s in suffixes {
        let (ws, wv) = w.get(&format!("{n}.weight_ih{s}"))?;
        input = ws.first().copied().unwrap_or(0);
        if ws != [input, gates * u] {
            return Err(format!("`{n}.weight_ih{s}` has shape {ws:?}"));
        }
        wx.extend(reorder(wv, input));
        let (_, rv) = w.get(&format!("{n}.weight_hh{s}"))?;
        wr.extend(reorder(rv, u));
        match cell {
            RnnCell::Lstm => {
                bias.extend(reorder_bias(w.get(&format!("{n}.bias{s}"))?.1));
                bias.extend(std::iter::repeat_n(0.0, gates * u));
            }
            RnnCell::Gru => {
                bias.extend(reorder_bias(w.get(&format!("{n}.bias_ih{s}"))?.1));
                bias.extend(reorder_bias(w.get(&format!("{n}.bias_hh{s}"))?.1));
            }
        }
    }
    let wx = g.floats(&format!("{n}.W"), &[dirs, gates * u, input], &wx);
    let wr = g.floats(&format!("{n}.R"), &[dirs, gates * u, u], &wr);
    let b = g.floats(&format!("{n}.B"), &[dirs, 2 * gates * u], &bias);
    let lens = match mask {
        Some(m) => {
            let count = g.reduce_sum(&m.name, &[1], false);
            g.node("Cast", &[&count], vec![int("to", 6)])
        }
        None => String::new(),
    };
    let xt = g.transpose(x, &[1, 0, 2]);
    let mut attrs =
        vec![int("hidden_size", i(u)), string("direction", if bidirectional { "bidirectional" } else { "forward" })];
    if cell == RnnCell::Gru {
        attrs.push(int("linear_before_reset", 1));
    }
    let op = if cell == RnnCell::Lstm { "LSTM" } else { "GRU" };
    let mut inputs = vec![xt.as_str(), &wx, &wr, &b];
    if !lens.is_empty() {
        inputs.push(&lens);
    }
    let outs = g.node_n(op, &inputs, 2, attrs);
    if sequence {
        // Y: [t, dirs, N, u] → [N, t, dirs·u].
        let y = g.transpose(&outs[0], &[2, 0, 1, 3]);
        Ok(g.reshape(&y, &[0, 0, -1]))
    } else {
        // Y_h: [dirs, N, u] → [N, dirs·u].
        let h = g.transpose(&outs[1], &[1, 0, 2]);
        Ok(g.reshape(&h, &[0, -1]))
    }
}
