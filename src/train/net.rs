//! A sub-model as a burn module built at run time.
//!
//! Takes an [`ir::SubModel`]; gives a [`Plan`] (the graph as plain, serialisable steps)
//! and a [`Net`] (the burn module holding only the trainable and stateful parts).
//! [`forward`] walks the plan in node order, which is topological, so any DAG (residual
//! adds with their projections, parallel concat/add, `let` sharing) runs as written.
//!
//! **Invariant:** `Net`'s parameter count equals the sub-model's static `params`
//! (weights and biases of dense and conv, gamma and beta of the norms; batch-norm
//! running statistics are state, not parameters).

use burn::module::{Module, Param, RunningState};
use burn::nn::{BatchNorm, BatchNormConfig, GroupNorm, LayerNorm, LayerNormConfig, RmsNorm};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use burn::tensor::{Device, Tensor, TensorData, activation, module as ops};
use serde::{Deserialize, Serialize};

pub(super) mod attention;
pub(super) mod fused;
#[cfg(test)]
mod fused_tests;
mod rnn;
mod rnn_fused;
#[cfg(test)]
mod rnn_fused_tests;
#[cfg(test)]
mod rnn_tests;

pub use attention::{Attention, Positions};

use super::config::Init;
use crate::ir::{self, LayerKind};
use crate::rng::Rng;
use seq::Conv1d;

mod seq;

mod convnets;

/// Named tensors: name, shape, row-major values.
pub type Tensors = Vec<(String, Vec<usize>, Vec<f32>)>;

/// What one step computes; `LayerKind` with conv padding resolved to explicit sides.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpKind {
    Input,
    Dense {
        units: usize,
    },
    /// `pad` is (top, bottom, left, right): TensorFlow's `same` puts the odd row below.
    Conv2d {
        filters: usize,
        kernel: usize,
        stride: usize,
        pad: [usize; 4],
        /// The channels split in `groups`; plans saved before groups existed have 1.
        #[serde(default = "convnets::one")]
        groups: usize,
    },
    /// Weight `[c, filters, kernel, kernel]`; `same` crops the full output to `h · stride`.
    ConvTranspose2d {
        filters: usize,
        kernel: usize,
        stride: usize,
        same: bool,
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
    /// `[t, c]` → `[t', filters]` (`net::seq`); `pad` is (before, after).
    Conv1d {
        filters: usize,
        kernel: usize,
        stride: usize,
        pad: [usize; 2],
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
    Transpose,
    /// Token ids → vectors: a table of `vocab` rows of `dim`.
    Embedding {
        vocab: usize,
        dim: usize,
    },
    /// `lstm` / `gru` (`net/rnn.rs`).
    Recurrent {
        cell: ir::RnnCell,
        units: usize,
        bidirectional: bool,
        sequence: bool,
    },
    /// Multi-head self-attention on `[t, d]`.
    Attention {
        heads: usize,
        causal: bool,
        rotary: bool,
    },
    /// A position code added to `[t, d]`: a learnt table, or fixed sines.
    Positional {
        learned: bool,
    },
    Flatten,
    Reshape,
    BatchNorm,
    LayerNorm,
    GroupNorm {
        groups: usize,
    },
    RmsNorm,
    Dropout {
        p: f64,
    },
    Relu,
    Gelu,
    Tanh,
    Sigmoid,
    Silu,
    LeakyRelu {
        a: f64,
    },
    Softmax,
    Add,
    Concat,
    Multiply,
}

/// One node: its computation, inputs (earlier step indices) and output shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    pub name: String,
    pub kind: OpKind,
    pub inputs: Vec<usize>,
    /// Output shape, batch excluded.
    pub shape: Vec<usize>,
    /// Input shape of the first input (batch excluded); empty for the input node.
    pub in_shape: Vec<usize>,
}

/// The sub-model as steps in topological order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub ops: Vec<Op>,
    pub input: usize,
    pub output: usize,
    pub params: u64,
    pub flops: u64,
}

impl Plan {
    pub fn new(sub: &ir::SubModel) -> Plan {
        let layers: Vec<&ir::Layer> = sub.layers().collect();
        let ops = layers
            .iter()
            .map(|l| {
                let in_shape = l.inputs.first().map(|i| layers[*i].shape.clone()).unwrap_or_default();
                let kind = match &l.kind {
                    LayerKind::Input => OpKind::Input,
                    LayerKind::Dense { units } => OpKind::Dense { units: *units },
                    LayerKind::Conv2d { filters, kernel, stride, padding, groups } => {
                        let pad = match padding {
                            ir::Padding::Valid => [0; 4],
                            ir::Padding::Same => {
                                let side = |n: usize| {
                                    let out = n.div_ceil(*stride);
                                    let total = ((out - 1) * stride + kernel).saturating_sub(n);
                                    (total / 2, total - total / 2)
                                };
                                let (h, w) =
                                    (in_shape.get(1).copied().unwrap_or(1), in_shape.get(2).copied().unwrap_or(1));
                                let ((t, b), (le, r)) = (side(h), side(w));
                                [t, b, le, r]
                            }
                        };
                        OpKind::Conv2d { filters: *filters, kernel: *kernel, stride: *stride, pad, groups: *groups }
                    }
                    LayerKind::ConvTranspose2d { filters, kernel, stride, padding } => OpKind::ConvTranspose2d {
                        filters: *filters,
                        kernel: *kernel,
                        stride: *stride,
                        same: *padding == ir::Padding::Same,
                    },
                    LayerKind::Upsample { factor, bilinear } => {
                        OpKind::Upsample { factor: *factor, bilinear: *bilinear }
                    }
                    LayerKind::GroupNorm { groups } => OpKind::GroupNorm { groups: *groups },
                    LayerKind::RmsNorm => OpKind::RmsNorm,
                    LayerKind::Multiply => OpKind::Multiply,
                    LayerKind::MaxPool { kernel, stride } => OpKind::MaxPool { kernel: *kernel, stride: *stride },
                    LayerKind::AvgPool { kernel, stride } => OpKind::AvgPool { kernel: *kernel, stride: *stride },
                    LayerKind::GlobalAvgPool => OpKind::GlobalAvgPool,
                    LayerKind::GlobalMaxPool => OpKind::GlobalMaxPool,
                    LayerKind::Conv1d { filters, kernel, stride, padding, dilation, groups } => {
                        let t = in_shape.first().copied().unwrap_or(1);
                        let (before, after) = ir::conv1d_pad(t, *kernel, *stride, *dilation, *padding);
                        let (filters, kernel, stride, dilation, groups) =
                            (*filters, *kernel, *stride, *dilation, *groups);
                        OpKind::Conv1d { filters, kernel, stride, pad: [before, after], dilation, groups }
                    }
                    LayerKind::MaxPool1d { kernel, stride } => OpKind::MaxPool1d { kernel: *kernel, stride: *stride },
                    LayerKind::AvgPool1d { kernel, stride } => OpKind::AvgPool1d { kernel: *kernel, stride: *stride },
                    LayerKind::Transpose => OpKind::Transpose,
                    LayerKind::Embedding { vocab, dim } => OpKind::Embedding { vocab: *vocab, dim: *dim },
                    LayerKind::Recurrent { cell, units, bidirectional, sequence } => OpKind::Recurrent {
                        cell: *cell,
                        units: *units,
                        bidirectional: *bidirectional,
                        sequence: *sequence,
                    },
                    LayerKind::Attention { heads, causal, rotary } => {
                        OpKind::Attention { heads: *heads, causal: *causal, rotary: *rotary }
                    }
                    LayerKind::Positional(p) => OpKind::Positional { learned: *p == ir::Positional::Learned },
                    LayerKind::Flatten => OpKind::Flatten,
                    LayerKind::Reshape { .. } => OpKind::Reshape,
                    LayerKind::BatchNorm => OpKind::BatchNorm,
                    LayerKind::LayerNorm => OpKind::LayerNorm,
                    LayerKind::Dropout { p } => OpKind::Dropout { p: *p },
                    LayerKind::Activation(a) => match a {
                        ir::Activation::Relu => OpKind::Relu,
                        ir::Activation::Gelu => OpKind::Gelu,
                        ir::Activation::Tanh => OpKind::Tanh,
                        ir::Activation::Sigmoid => OpKind::Sigmoid,
                        ir::Activation::Silu => OpKind::Silu,
                        ir::Activation::LeakyRelu(a) => OpKind::LeakyRelu { a: *a },
                        ir::Activation::Softmax => OpKind::Softmax,
                    },
                    LayerKind::Add => OpKind::Add,
                    LayerKind::Concat => OpKind::Concat,
                };
                Op { name: l.name.clone(), kind, inputs: l.inputs.clone(), shape: l.shape.clone(), in_shape }
            })
            .collect();
        Plan { ops, input: sub.input.index(), output: sub.output.index(), params: sub.params, flops: sub.flops }
    }

    /// Features in, outputs out (flattened).
    pub fn in_features(&self) -> usize {
        self.ops.get(self.input).map_or(0, |o| o.shape.iter().product())
    }

    pub fn out_features(&self) -> usize {
        self.ops.get(self.output).map_or(0, |o| o.shape.iter().product())
    }

    /// The architecture as far as weights are concerned: every op that holds tensors, by
    /// name, kind and shapes. Two plans with the same signature have tensors of the same
    /// names and shapes, drawn in the same order at initialisation.
    pub fn signature(&self) -> String {
        let mut out = String::new();
        for op in &self.ops {
            if matches!(
                op.kind,
                OpKind::Dense { .. }
                    | OpKind::Conv2d { .. }
                    | OpKind::ConvTranspose2d { .. }
                    | OpKind::GroupNorm { .. }
                    | OpKind::RmsNorm
                    | OpKind::Conv1d { .. }
                    | OpKind::BatchNorm
                    | OpKind::LayerNorm
                    | OpKind::Embedding { .. }
                    | OpKind::Recurrent { .. }
                    | OpKind::Attention { .. }
                    | OpKind::Positional { learned: true }
            ) {
                out.push_str(&format!("{}:{:?}:{:?}->{:?};", op.name, op.kind, op.in_shape, op.shape));
            }
        }
        out
    }

    /// Whether the input is token ids (an `embedding` reads it): padding (id 0) is then
    /// masked out of the global pools over the sequence.
    pub fn tokens(&self) -> bool {
        self.ops.iter().any(|o| matches!(o.kind, OpKind::Embedding { .. }))
    }

    /// The last op's kind, to know whether outputs are already probabilities.
    pub fn head(&self) -> &OpKind {
        self.ops.get(self.output).map_or(&OpKind::Input, |o| &o.kind)
    }
}

#[derive(Module, Debug)]
pub struct Dense {
    pub w: Param<Tensor<2>>,
    pub b: Param<Tensor<1>>,
}

#[derive(Module, Debug)]
pub struct Embedding {
    /// `[vocab, dim]`: row `i` is token `i`'s vector.
    pub w: Param<Tensor<2>>,
}

#[derive(Module, Debug)]
pub struct Conv {
    pub w: Param<Tensor<4>>,
    pub b: Param<Tensor<1>>,
}

/// A trainable or stateful part; the variant names appear in no file format.
// One part per layer: the size of the largest variants (attention's four projections, a
// recurrent layer's weights) costs nothing, and burn's `Module` has no implementation for
// `Box` to shrink it with.
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum Part {
    Dense(Dense),
    Conv(Conv),
    Conv1d(Conv1d),
    BatchNorm(BatchNorm),
    LayerNorm(LayerNorm),
    Embedding(Embedding),
    GroupNorm(GroupNorm),
    RmsNorm(RmsNorm),
    Recurrent(rnn::Recurrent),
    Attention(Attention),
    Positions(Positions),
}

/// The burn module: one part per dense, conv and norm step, in plan order.
#[derive(Module, Debug)]
pub struct Net {
    pub parts: Vec<Part>,
    /// For each step, its index in `parts` plus one (0: none).
    pub slots: Vec<usize>,
}

impl Net {
    /// A copy whose batch-norm running statistics are its own: `Clone` shares burn's
    /// `RunningState` (an `Arc`), so later training steps would move a clone's statistics too.
    pub fn snapshot(&self) -> Net {
        let mut copy = self.clone();
        for part in &mut copy.parts {
            if let Part::BatchNorm(bn) = part {
                bn.running_mean = RunningState::new(bn.running_mean.value());
                bn.running_var = RunningState::new(bn.running_var.value());
            }
        }
        copy
    }

    /// Builds the parts of `plan` with weights drawn from `rng` by `init`.
    pub fn init(plan: &Plan, init: Init, rng: &mut Rng, device: &Device) -> Net {
        let mut parts = Vec::new();
        let mut slots = Vec::with_capacity(plan.ops.len());
        for op in &plan.ops {
            let part = match &op.kind {
                OpKind::Dense { units } => {
                    // A sequence `[t, n]` shares one `n → units` map over its positions.
                    let n = match op.in_shape.as_slice() {
                        [_, n] => *n,
                        other => other.iter().product::<usize>(),
                    };
                    let (w, b) = draw(init, rng, n * units, *units, n, *units);
                    Some(Part::Dense(Dense { w: param(w, [n, *units], device), b: param(b, [*units], device) }))
                }
                OpKind::Conv2d { filters, kernel, groups, .. } => {
                    // Each filter sees the c / groups channels of its group.
                    let c = op.in_shape.first().copied().unwrap_or(1) / groups.max(&1);
                    let kk = kernel * kernel;
                    let (w, b) = draw(init, rng, filters * c * kk, *filters, c * kk, filters * kk);
                    Some(Part::Conv(Conv {
                        w: param(w, [*filters, c, *kernel, *kernel], device),
                        b: param(b, [*filters], device),
                    }))
                }
                OpKind::ConvTranspose2d { .. } | OpKind::GroupNorm { .. } | OpKind::RmsNorm => {
                    convnets::init(op, init, rng, device)
                }
                OpKind::Conv1d { filters, kernel, groups, .. } => {
                    let cg = op.in_shape.last().copied().unwrap_or(1) / (*groups).max(1);
                    let (w, b) = draw(init, rng, filters * cg * kernel, *filters, cg * kernel, filters * kernel);
                    Some(Part::Conv1d(Conv1d {
                        w: param(w, [*filters, cg, *kernel], device),
                        b: param(b, [*filters], device),
                    }))
                }
                OpKind::Embedding { vocab, dim } => {
                    // PyTorch's and burn's default: N(0, 1); another `init` as for a
                    // [vocab, dim] weight (fan in `dim`, fan out `vocab`).
                    let w = match init {
                        Init::Default => (0..vocab * dim).map(|_| rng.normal() as f32).collect(),
                        other => draw(other, rng, vocab * dim, 0, *dim, *vocab).0,
                    };
                    Some(Part::Embedding(Embedding { w: param(w, [*vocab, *dim], device) }))
                }
                OpKind::Recurrent { cell, units, bidirectional, .. } => {
                    let input = op.in_shape.last().copied().unwrap_or(1);
                    let spec = rnn::Spec { cell: *cell, units: *units, input, bidirectional: *bidirectional };
                    Some(Part::Recurrent(rnn::init(spec, init, rng, device)))
                }
                OpKind::Attention { .. } => {
                    let d = op.shape.last().copied().unwrap_or(1);
                    let mut proj = || {
                        let (w, b) = draw(init, rng, d * d, d, d, d);
                        Dense { w: param(w, [d, d], device), b: param(b, [d], device) }
                    };
                    Some(Part::Attention(Attention { q: proj(), k: proj(), v: proj(), o: proj() }))
                }
                OpKind::Positional { learned: true } => {
                    // BERT's N(0, 0.02) by default; another `init` as for a [t, d] weight.
                    let (t, d) = (op.shape.first().copied().unwrap_or(1), op.shape.last().copied().unwrap_or(1));
                    let w = match init {
                        Init::Default => (0..t * d).map(|_| (0.02 * rng.normal()) as f32).collect(),
                        other => draw(other, rng, t * d, 0, d, t).0,
                    };
                    Some(Part::Positions(Positions { w: param(w, [t, d], device) }))
                }
                OpKind::BatchNorm => {
                    Some(Part::BatchNorm(BatchNormConfig::new(op.shape.first().copied().unwrap_or(1)).init(device)))
                }
                OpKind::LayerNorm => {
                    Some(Part::LayerNorm(LayerNormConfig::new(op.shape.last().copied().unwrap_or(1)).init(device)))
                }
                _ => None,
            };
            match part {
                Some(p) => {
                    parts.push(p);
                    slots.push(parts.len());
                }
                None => slots.push(0),
            }
        }
        Net { parts, slots }
    }

    fn part(&self, step: usize) -> Option<&Part> {
        let s = *self.slots.get(step)?;
        if s == 0 { None } else { self.parts.get(s - 1) }
    }

    /// Trainable parameters (burn's `num_params` also counts batch-norm running statistics).
    pub fn trainable(&self) -> usize {
        let n = |d: &[usize]| d.iter().product::<usize>();
        self.parts
            .iter()
            .map(|p| match p {
                Part::Dense(d) => n(&d.w.dims()) + n(&d.b.dims()),
                Part::Conv(c) => n(&c.w.dims()) + n(&c.b.dims()),
                Part::Conv1d(c) => n(&c.w.dims()) + n(&c.b.dims()),
                Part::BatchNorm(bn) => 2 * n(&bn.gamma.dims()),
                Part::LayerNorm(ln) => n(&ln.gamma.dims()) + ln.beta.as_ref().map_or(0, |b| n(&b.dims())),
                Part::Embedding(e) => n(&e.w.dims()),
                Part::GroupNorm(g) => convnets::group_params(g).iter().map(|p| n(&p.dims())).sum(),
                Part::RmsNorm(r) => n(&r.gamma.dims()),
                Part::Recurrent(r) => r.trainable(),
                Part::Attention(a) => [&a.q, &a.k, &a.v, &a.o].iter().map(|p| n(&p.w.dims()) + n(&p.b.dims())).sum(),
                Part::Positions(p) => n(&p.w.dims()),
            })
            .sum()
    }

    /// Ids of the biases and norm scales/shifts (the `bias_decay` group).
    pub fn bias_ids(&self) -> Vec<burn::module::ParamId> {
        let mut ids = Vec::new();
        for p in &self.parts {
            match p {
                Part::Dense(d) => ids.push(d.b.id),
                Part::Conv(c) => ids.push(c.b.id),
                Part::Conv1d(c) => ids.push(c.b.id),
                Part::BatchNorm(bn) => ids.extend([bn.gamma.id, bn.beta.id]),
                Part::LayerNorm(ln) => {
                    ids.push(ln.gamma.id);
                    ids.extend(ln.beta.as_ref().map(|b| b.id));
                }
                Part::GroupNorm(g) => ids.extend(convnets::group_params(g).iter().map(|p| p.id)),
                Part::RmsNorm(r) => ids.push(r.gamma.id),
                Part::Recurrent(r) => r.bias_ids(&mut ids),
                Part::Attention(a) => ids.extend([a.q.b.id, a.k.b.id, a.v.b.id, a.o.b.id]),
                Part::Embedding(_) | Part::Positions(_) => {}
            }
        }
        ids
    }

    /// Every tensor by name (`dense_1.weight`, `batchnorm_2.running_mean`), in plan order.
    pub fn tensors(&self, plan: &Plan) -> Tensors {
        let mut out = Vec::new();
        let mut put = |name: String, data: TensorData| {
            let shape = data.shape().to_vec();
            out.push((name, shape, data.try_into_vec::<f32>().unwrap_or_default()));
        };
        for (i, op) in plan.ops.iter().enumerate() {
            let n = &op.name;
            match self.part(i) {
                Some(Part::Dense(d)) => {
                    put(format!("{n}.weight"), d.w.val().into_data());
                    put(format!("{n}.bias"), d.b.val().into_data());
                }
                Some(Part::Conv(c)) => {
                    put(format!("{n}.weight"), c.w.val().into_data());
                    put(format!("{n}.bias"), c.b.val().into_data());
                }
                Some(Part::Conv1d(c)) => {
                    put(format!("{n}.weight"), c.w.val().into_data());
                    put(format!("{n}.bias"), c.b.val().into_data());
                }
                Some(Part::BatchNorm(bn)) => {
                    put(format!("{n}.weight"), bn.gamma.val().into_data());
                    put(format!("{n}.bias"), bn.beta.val().into_data());
                    put(format!("{n}.running_mean"), bn.running_mean.value().into_data());
                    put(format!("{n}.running_var"), bn.running_var.value().into_data());
                }
                Some(Part::Embedding(e)) => put(format!("{n}.weight"), e.w.val().into_data()),
                Some(Part::GroupNorm(g)) => {
                    for (p, what) in convnets::group_params(g).into_iter().zip(["weight", "bias"]) {
                        put(format!("{n}.{what}"), p.val().into_data());
                    }
                }
                Some(Part::RmsNorm(r)) => put(format!("{n}.weight"), r.gamma.val().into_data()),
                Some(Part::Recurrent(r)) => r.tensors(n, &mut put),
                Some(Part::Attention(a)) => {
                    for (p, d) in [("q", &a.q), ("k", &a.k), ("v", &a.v), ("o", &a.o)] {
                        put(format!("{n}.{p}.weight"), d.w.val().into_data());
                        put(format!("{n}.{p}.bias"), d.b.val().into_data());
                    }
                }
                Some(Part::Positions(p)) => put(format!("{n}.weight"), p.w.val().into_data()),
                Some(Part::LayerNorm(ln)) => {
                    put(format!("{n}.weight"), ln.gamma.val().into_data());
                    if let Some(b) = &ln.beta {
                        put(format!("{n}.bias"), b.val().into_data());
                    }
                }
                None => {}
            }
        }
        out
    }

    /// Replaces every tensor with the one of the same name and shape in `tensors`.
    pub fn load_tensors(mut self, plan: &Plan, tensors: &Tensors, device: &Device) -> Result<Net, String> {
        let get = |name: String, shape: &[usize]| -> Result<TensorData, String> {
            let (_, s, v) = tensors.iter().find(|t| t.0 == name).ok_or_else(|| format!("no tensor `{name}`"))?;
            if s != shape || v.len() != shape.iter().product::<usize>() {
                return Err(format!("`{name}` has shape {s:?}, the model needs {shape:?}"));
            }
            Ok(TensorData::new(v.clone(), s.clone()))
        };
        for (i, op) in plan.ops.iter().enumerate() {
            let s = self.slots.get(i).copied().unwrap_or(0);
            let Some(part) = s.checked_sub(1).and_then(|s| self.parts.get_mut(s)) else { continue };
            let n = &op.name;
            match part {
                Part::Dense(d) => {
                    d.w = Param::from_tensor(Tensor::from_data(get(format!("{n}.weight"), &d.w.dims())?, device));
                    d.b = Param::from_tensor(Tensor::from_data(get(format!("{n}.bias"), &d.b.dims())?, device));
                }
                Part::Conv(c) => {
                    c.w = Param::from_tensor(Tensor::from_data(get(format!("{n}.weight"), &c.w.dims())?, device));
                    c.b = Param::from_tensor(Tensor::from_data(get(format!("{n}.bias"), &c.b.dims())?, device));
                }
                Part::Conv1d(c) => {
                    c.w = Param::from_tensor(Tensor::from_data(get(format!("{n}.weight"), &c.w.dims())?, device));
                    c.b = Param::from_tensor(Tensor::from_data(get(format!("{n}.bias"), &c.b.dims())?, device));
                }
                Part::BatchNorm(bn) => {
                    let d = bn.gamma.dims();
                    bn.gamma = Param::from_tensor(Tensor::from_data(get(format!("{n}.weight"), &d)?, device));
                    bn.beta = Param::from_tensor(Tensor::from_data(get(format!("{n}.bias"), &d)?, device));
                    bn.running_mean =
                        RunningState::new(Tensor::from_data(get(format!("{n}.running_mean"), &d)?, device));
                    bn.running_var = RunningState::new(Tensor::from_data(get(format!("{n}.running_var"), &d)?, device));
                }
                Part::Embedding(e) => {
                    e.w = Param::from_tensor(Tensor::from_data(get(format!("{n}.weight"), &e.w.dims())?, device));
                }
                Part::GroupNorm(g) => {
                    if let Some(p) = g.gamma.as_mut() {
                        *p = Param::from_tensor(Tensor::from_data(get(format!("{n}.weight"), &p.dims())?, device));
                    }
                    if let Some(p) = g.beta.as_mut() {
                        *p = Param::from_tensor(Tensor::from_data(get(format!("{n}.bias"), &p.dims())?, device));
                    }
                }
                Part::RmsNorm(r) => {
                    r.gamma =
                        Param::from_tensor(Tensor::from_data(get(format!("{n}.weight"), &r.gamma.dims())?, device));
                }
                Part::Recurrent(r) => r.load(n, &get, device)?,
                Part::Attention(a) => {
                    for (p, d) in [("q", &mut a.q), ("k", &mut a.k), ("v", &mut a.v), ("o", &mut a.o)] {
                        d.w =
                            Param::from_tensor(Tensor::from_data(get(format!("{n}.{p}.weight"), &d.w.dims())?, device));
                        d.b = Param::from_tensor(Tensor::from_data(get(format!("{n}.{p}.bias"), &d.b.dims())?, device));
                    }
                }
                Part::Positions(p) => {
                    p.w = Param::from_tensor(Tensor::from_data(get(format!("{n}.weight"), &p.w.dims())?, device));
                }
                Part::LayerNorm(ln) => {
                    let d = ln.gamma.dims();
                    ln.gamma = Param::from_tensor(Tensor::from_data(get(format!("{n}.weight"), &d)?, device));
                    if ln.beta.is_some() {
                        ln.beta = Some(Param::from_tensor(Tensor::from_data(get(format!("{n}.bias"), &d)?, device)));
                    }
                }
            }
        }
        Ok(self)
    }
}

/// The activations of one step, batch first.
#[derive(Debug, Clone)]
enum Act {
    T2(Tensor<2>),
    T3(Tensor<3>),
    T4(Tensor<4>),
}

macro_rules! each {
    ($a:expr, $t:ident => $e:expr) => {
        match $a {
            Act::T2($t) => Act::T2($e),
            Act::T3($t) => Act::T3($e),
            Act::T4($t) => Act::T4($e),
        }
    };
}

impl Act {
    fn flat(self, batch: usize) -> Tensor<2> {
        match self {
            Act::T2(t) => t,
            Act::T3(t) => {
                let size = t.dims()[1..].iter().product::<usize>();
                t.reshape([batch, size])
            }
            Act::T4(t) => {
                let size = t.dims()[1..].iter().product::<usize>();
                t.reshape([batch, size])
            }
        }
    }

    fn shaped(self, batch: usize, shape: &[usize]) -> Result<Act, String> {
        let flat = self.flat(batch);
        Ok(match shape {
            [n] => Act::T2(flat.reshape([batch, *n])),
            [a, b] => Act::T3(flat.reshape([batch, *a, *b])),
            [c, h, w] => Act::T4(flat.reshape([batch, *c, *h, *w])),
            other => return Err(format!("tensors of rank {} are not supported", other.len())),
        })
    }
}

/// Whether dropout is live; its masks come from the trial's generator, never from the
/// backend's (which may be global and shared by parallel trials).
#[derive(Debug)]
pub enum Mode<'a> {
    Train(&'a mut Rng),
    Eval,
}

/// Runs `x` (`[batch, features]`) through the plan; gives `[batch, outputs]`. When `codes`
/// is given, the pre-activations of every ReLU (flattened) are pushed to it.
pub fn forward(
    net: &Net,
    plan: &Plan,
    x: Tensor<2>,
    mut mode: Mode,
    mut codes: Option<&mut Vec<Tensor<2>>>,
) -> Result<Tensor<2>, String> {
    let batch = x.dims()[0];
    // Each step's output mask (`net::seq`): token ids give 1 where a token is, 0 on
    // padding, `[batch, L]`; the sequence steps carry it along.
    let mut masks: Vec<Option<Tensor<2>>> = vec![None; plan.ops.len()];
    let mut acts: Vec<Option<Act>> = vec![None; plan.ops.len()];
    for (i, op) in plan.ops.iter().enumerate() {
        let mask = match op.kind {
            OpKind::Input => plan.tokens().then(|| x.clone().not_equal_elem(0.0).float()),
            _ => op.inputs.first().and_then(|j| masks.get(*j).cloned().flatten()),
        };
        let arg = |k: usize| -> Result<Act, String> {
            op.inputs
                .get(k)
                .and_then(|j| acts.get(*j).cloned().flatten())
                .ok_or_else(|| format!("`{}` has no input", op.name))
        };
        let wrong = || format!("`{}` got a tensor of the wrong rank", op.name);
        let out = match (&op.kind, net.part(i)) {
            (OpKind::Input, _) => Act::T2(x.clone()).shaped(batch, &op.shape)?,
            (OpKind::Dense { .. }, Some(Part::Dense(d))) => match arg(0)? {
                Act::T2(t) => Act::T2(t.matmul(d.w.val()) + d.b.val().unsqueeze::<2>()),
                Act::T3(t) => {
                    let [b, len, n] = t.dims();
                    let y = t.reshape([b * len, n]).matmul(d.w.val()) + d.b.val().unsqueeze::<2>();
                    Act::T3(y.reshape([b, len, d.b.dims()[0]]))
                }
                _ => return Err(wrong()),
            },
            (OpKind::Conv2d { stride, pad, groups, .. }, Some(Part::Conv(c))) => match arg(0)? {
                Act::T4(t) => {
                    let opts = ConvOptions::new_with_padding(
                        [*stride; 2],
                        [(pad[0], pad[1]), (pad[2], pad[3])],
                        [1, 1],
                        *groups,
                    );
                    Act::T4(ops::conv2d(t, c.w.val(), Some(c.b.val()), opts))
                }
                _ => return Err(wrong()),
            },
            (OpKind::ConvTranspose2d { kernel, stride, same, .. }, Some(Part::Conv(c))) => match arg(0)? {
                Act::T4(t) => Act::T4(convnets::conv_transpose2d(t, c, *kernel, *stride, *same)),
                _ => return Err(wrong()),
            },
            (OpKind::Upsample { factor, bilinear }, _) => match arg(0)? {
                Act::T4(t) => Act::T4(convnets::upsample(t, *factor, *bilinear)),
                _ => return Err(wrong()),
            },
            (OpKind::GroupNorm { .. }, Some(Part::GroupNorm(g))) => match arg(0)? {
                Act::T4(t) => Act::T4(g.forward(t)),
                _ => return Err(wrong()),
            },
            (OpKind::RmsNorm, Some(Part::RmsNorm(r))) => each!(arg(0)?, t => r.forward(t)),
            (OpKind::Multiply, _) => {
                let all: Vec<Act> = (0..op.inputs.len()).map(arg).collect::<Result<_, _>>()?;
                convnets::multiply(all, batch, &op.shape).ok_or_else(wrong)?
            }
            (OpKind::MaxPool { kernel, stride }, _) => match arg(0)? {
                Act::T4(t) => Act::T4(ops::max_pool2d(t, MaxPoolOptions::new([*kernel; 2]).with_stride([*stride; 2]))),
                _ => return Err(wrong()),
            },
            (OpKind::AvgPool { kernel, stride }, _) => match arg(0)? {
                Act::T4(t) => Act::T4(ops::avg_pool2d(t, AvgPoolOptions::new([*kernel; 2]).with_stride([*stride; 2]))),
                _ => return Err(wrong()),
            },
            (OpKind::GlobalAvgPool, _) => match arg(0)? {
                Act::T4(t) => {
                    let c = t.dims()[1];
                    Act::T2(t.mean_dim(3).mean_dim(2).reshape([batch, c]))
                }
                Act::T3(t) => Act::T2(sequence_pool(t, mask.as_ref(), false)),
                _ => return Err(wrong()),
            },
            (OpKind::GlobalMaxPool, _) => match arg(0)? {
                Act::T4(t) => {
                    let c = t.dims()[1];
                    Act::T2(t.max_dim(3).max_dim(2).reshape([batch, c]))
                }
                Act::T3(t) => Act::T2(sequence_pool(t, mask.as_ref(), true)),
                _ => return Err(wrong()),
            },
            (OpKind::Conv1d { .. }, Some(Part::Conv1d(c))) => match arg(0)? {
                Act::T3(t) => Act::T3(seq::conv1d(t, c, &op.kind, mask.as_ref())),
                _ => return Err(wrong()),
            },
            (OpKind::MaxPool1d { kernel, stride } | OpKind::AvgPool1d { kernel, stride }, _) => match arg(0)? {
                Act::T3(t) => Act::T3(seq::pool1d(t, *kernel, *stride, matches!(op.kind, OpKind::MaxPool1d { .. }))),
                _ => return Err(wrong()),
            },
            (OpKind::Transpose, _) => match arg(0)? {
                Act::T3(t) => Act::T3(t.swap_dims(1, 2)),
                Act::T4(t) => {
                    let [b, _, h, w] = t.dims();
                    Act::T3(t.reshape([b, h, w]).swap_dims(1, 2))
                }
                _ => return Err(wrong()),
            },
            (OpKind::Embedding { vocab, .. }, Some(Part::Embedding(e))) => match arg(0)? {
                Act::T2(ids) => {
                    // Ids outside the table (data that changed under a saved model) are an
                    // error, not an out-of-bounds read.
                    let top = ids.clone().max().into_scalar::<f32>();
                    if top >= *vocab as f32 || ids.clone().min().into_scalar::<f32>() < 0.0 {
                        return Err(format!("`{}` got token id {top}, its table has {vocab} rows", op.name));
                    }
                    Act::T3(ops::embedding(e.w.val(), ids.int()))
                }
                _ => return Err(wrong()),
            },
            (OpKind::Recurrent { cell, units, sequence, .. }, Some(Part::Recurrent(r))) => match arg(0)? {
                Act::T3(t) => rnn::forward(r, *cell, *units, *sequence, t, mask.as_ref()),
                _ => return Err(wrong()),
            },
            (OpKind::Attention { heads, causal, rotary }, Some(Part::Attention(a))) => match arg(0)? {
                Act::T3(t) => Act::T3(attention::attention(t, a, *heads, *causal, *rotary, mask.as_ref())),
                _ => return Err(wrong()),
            },
            (OpKind::Positional { learned: false }, _) => match arg(0)? {
                Act::T3(t) => Act::T3(attention::sinusoidal(t)),
                _ => return Err(wrong()),
            },
            (OpKind::Positional { learned: true }, Some(Part::Positions(p))) => match arg(0)? {
                Act::T3(t) => Act::T3(attention::learned(t, p)),
                _ => return Err(wrong()),
            },
            (OpKind::Flatten | OpKind::Reshape, _) => arg(0)?.shaped(batch, &op.shape)?,
            (OpKind::BatchNorm, Some(Part::BatchNorm(bn))) => each!(arg(0)?, t => bn.forward(t)),
            (OpKind::LayerNorm, Some(Part::LayerNorm(ln))) => each!(arg(0)?, t => fused::layer_norm_of(t, ln)),
            (OpKind::Dropout { p }, _) => {
                let a = arg(0)?;
                match &mut mode {
                    Mode::Train(rng) if *p > 0.0 => {
                        let keep = 1.0 - p;
                        each!(a, t => {
                            let dims = t.dims();
                            let mask: Vec<f32> = (0..dims.iter().product::<usize>())
                                .map(|_| if rng.f64() < keep { (1.0 / keep) as f32 } else { 0.0 })
                                .collect();
                            t.clone() * Tensor::from_data(TensorData::new(mask, dims), (&t.device(), t.dtype()))
                        })
                    }
                    _ => a,
                }
            }
            (OpKind::Relu, _) => {
                let a = arg(0)?;
                if let Some(c) = codes.as_deref_mut() {
                    c.push(a.clone().flat(batch));
                }
                each!(a, t => activation::relu(t))
            }
            (OpKind::LeakyRelu { a: slope }, _) => {
                let a = arg(0)?;
                if let Some(c) = codes.as_deref_mut() {
                    c.push(a.clone().flat(batch));
                }
                each!(a, t => activation::leaky_relu(t, *slope))
            }
            (OpKind::Gelu, _) => each!(arg(0)?, t => activation::gelu(t)),
            (OpKind::Tanh, _) => each!(arg(0)?, t => activation::tanh(t)),
            (OpKind::Sigmoid, _) => each!(arg(0)?, t => activation::sigmoid(t)),
            (OpKind::Silu, _) => each!(arg(0)?, t => activation::silu(t)),
            (OpKind::Softmax, _) => each!(arg(0)?, t => activation::softmax(t, 1)),
            (OpKind::Add, _) => {
                let mut acc = arg(0)?;
                for k in 1..op.inputs.len() {
                    acc = match (acc, arg(k)?) {
                        (Act::T2(a), Act::T2(b)) => Act::T2(a + b),
                        (Act::T3(a), Act::T3(b)) => Act::T3(a + b),
                        (Act::T4(a), Act::T4(b)) => Act::T4(a + b),
                        _ => return Err(wrong()),
                    };
                }
                acc
            }
            (OpKind::Concat, _) => {
                let all: Vec<Act> = (0..op.inputs.len()).map(arg).collect::<Result<_, _>>()?;
                match all.first() {
                    Some(Act::T2(_)) => Act::T2(Tensor::cat(all.into_iter().map(|a| a.flat(batch)).collect(), 1)),
                    Some(Act::T3(_)) => Act::T3(Tensor::cat(
                        all.into_iter().filter_map(|a| if let Act::T3(t) = a { Some(t) } else { None }).collect(),
                        1,
                    )),
                    Some(Act::T4(_)) => Act::T4(Tensor::cat(
                        all.into_iter().filter_map(|a| if let Act::T4(t) = a { Some(t) } else { None }).collect(),
                        1,
                    )),
                    None => return Err(wrong()),
                }
            }
            (kind, _) => return Err(format!("`{}` ({kind:?}) has no parameters built", op.name)),
        };
        let len = match &out {
            Act::T3(t) => Some(t.dims()[1]),
            _ => None,
        };
        masks[i] = seq::mask_after(&op.kind, mask, len)?;
        acts[i] = Some(out);
    }
    let out = acts.get_mut(plan.output).and_then(Option::take).ok_or("the model has no output")?;
    Ok(out.flat(batch))
}

/// Global average (`max` false) or max pooling of `[batch, t, d]` over `t`. With a token
/// `mask` (`[batch, t]`, 1 on tokens) of the same length, padded positions take no part:
/// the average is over the tokens only, and the max over the tokens only (a row with no
/// token gives 0).
fn sequence_pool(t: Tensor<3>, mask: Option<&Tensor<2>>, max: bool) -> Tensor<2> {
    let [b, len, d] = t.dims();
    let mask = mask.filter(|m| m.dims() == [b, len]).map(|m| m.clone().reshape([b, len, 1]));
    match (mask, max) {
        (None, false) => t.mean_dim(1).reshape([b, d]),
        (None, true) => t.max_dim(1).reshape([b, d]),
        (Some(m), false) => {
            let count = m.clone().sum_dim(1).clamp_min(1.0);
            (t * m).sum_dim(1).div(count).reshape([b, d])
        }
        (Some(m), true) => {
            // Padding is pushed far below any value, so it is never the max; a row with
            // no token at all is all padding and gives 0.
            let any = m.clone().max_dim(1);
            let shifted = t + (m - 1.0) * 1.0e30;
            (shifted.max_dim(1) * any).reshape([b, d])
        }
    }
}

fn param<const D: usize>(values: Vec<f32>, shape: [usize; D], device: &Device) -> Param<Tensor<D>> {
    Param::from_tensor(Tensor::from_data(TensorData::new(values, shape), device))
}

/// Weights (`nw` values) and biases (`nb`) drawn by `init` for the given fans.
fn draw(init: Init, rng: &mut Rng, nw: usize, nb: usize, fan_in: usize, fan_out: usize) -> (Vec<f32>, Vec<f32>) {
    let fi = fan_in.max(1) as f64;
    let fo = fan_out.max(1) as f64;
    let mut uni = |n: usize, l: f64| (0..n).map(|_| rng.uniform(-l, l) as f32).collect::<Vec<_>>();
    match init {
        Init::Default => {
            let l = 1.0 / fi.sqrt();
            let w = uni(nw, l);
            (w, uni(nb, l))
        }
        Init::Uniform { limit } => (uni(nw, limit), vec![0.0; nb]),
        Init::Xavier => (uni(nw, (6.0 / (fi + fo)).sqrt()), vec![0.0; nb]),
        Init::Normal { mean, std } => ((0..nw).map(|_| (mean + std * rng.normal()) as f32).collect(), vec![0.0; nb]),
        Init::Kaiming => {
            let std = (2.0 / fi).sqrt();
            ((0..nw).map(|_| (std * rng.normal()) as f32).collect(), vec![0.0; nb])
        }
    }
}
