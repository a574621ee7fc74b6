//! Multi-head attention's core, `softmax(QKᵀ + hidden)·V` with its head split and merge, as
//! one autodiff node on the flex CPU backend.
//!
//! Takes the fused projection `qkv` (`[b·t, 3d]`: per row the queries, already scaled by
//! 1/√dₕ, then the keys, then the values, each `h` heads of `dₕ` side by side), the padding
//! mask's values (`[b·t]`, 1 on tokens) when the batch has padding, and `causal`; gives
//! `[b·t, d]`, the heads merged, ready for the output projection.
//!
//! burn's composite ops (head split `reshape` + `swap_dims`, `QKᵀ`, the mask additions,
//! softmax, `·V`, the merge) record about a dozen nodes per layer, and the backward pass
//! copies each head-major gradient back to row-major (`reshape` of a swapped view), sums the
//! three projections' input gradients and scales the queries' gradient. Here the queries,
//! keys and values are strided views of `qkv` (flex's matmul reads views without copying),
//! the hidden keys are added in place to the fresh scores, and the backward pass writes
//! the three head-major gradients into one row-major `[b·t, 3d]` buffer in one pass.
//! Without autodiff (evaluation), batches whose `[b, h, t, t]` scores would exceed
//! [`EVAL_SCORES`] values run in chunks of rows, so evaluation's 512-row chunks do not hold
//! hundreds of MiB of scores at once.
//! **Invariant:** the same values as [`composite`] (burn's ops) up to float reassociation
//! (hidden keys add the same `-1e30` terms, in the same order); tensors on another backend,
//! not f32, or empty take [`composite`].

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ActivationOps, FloatTensorOps};
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Shape, Tensor, TensorData};

use super::HIDDEN;
use crate::train::net::fused::{shape_of, tensor, values};

/// The autodiff backend whose primitives the node works on.
type Ad = Autodiff<Flex>;
type AdTensor = burn::backend::tensor::FloatTensor<Ad>;

/// The most score values (`rows · h · t²`) one evaluation pass holds: 16 MiB of f32.
pub const EVAL_SCORES: usize = 1 << 22;

/// The batch's sizes: rows, positions, heads.
#[derive(Debug, Clone, Copy)]
pub struct Dims {
    pub b: usize,
    pub t: usize,
    pub h: usize,
}

/// Which keys a query may not see: padded ones (`pad`, `[b·t]`, 1 on tokens) and, with
/// `causal`, later ones.
#[derive(Debug, Clone, Copy)]
pub struct Hide<'a> {
    pub pad: Option<&'a [f32]>,
    pub causal: bool,
}

/// Attention of `qkv` (`[b·t, 3d]`), heads merged: `[b·t, d]`.
pub fn attend(qkv: Tensor<2>, dims: Dims, hide: Hide) -> Tensor<2> {
    attend_with(qkv, dims, hide, EVAL_SCORES)
}

/// [`attend`] with evaluation chunks of at most `max_scores` score values (at least one row).
pub fn attend_with(qkv: Tensor<2>, dims: Dims, hide: Hide, max_scores: usize) -> Tensor<2> {
    let [n, w] = qkv.dims();
    let fits = n == dims.b * dims.t && dims.h > 0 && w % (3 * dims.h) == 0 && n > 0 && w > 0;
    let fits = fits && hide.pad.is_none_or(|p| p.len() == n);
    if !fits {
        return composite(qkv, dims, hide);
    }
    if let Ok(p) = qkv.clone().try_into_primitive::<Ad>() {
        if p.primitive().dtype() == DType::F32 {
            return Tensor::from_primitive::<Ad>(node(p, dims, hide));
        }
        return composite(qkv, dims, hide);
    }
    match qkv.clone().try_into_primitive::<Flex>() {
        Ok(p) if p.dtype() == DType::F32 => Tensor::from_primitive::<Flex>(chunked(p, dims, hide, max_scores)),
        _ => composite(qkv, dims, hide),
    }
}

/// The same attention from burn's tensor operations, on any backend.
pub fn composite(qkv: Tensor<2>, dims: Dims, hide: Hide) -> Tensor<2> {
    let Dims { b, t, h } = dims;
    let d = qkv.dims()[1] / 3;
    let dh = d / h.max(1);
    let device = qkv.device();
    let part = |i: usize| qkv.clone().narrow(1, i * d, d).reshape([b, t, h, dh]).swap_dims(1, 2);
    let (q, k, v) = (part(0), part(1), part(2));
    let mut scores = q.matmul(k.swap_dims(2, 3));
    if let Some(pad) = hide.pad {
        let m = Tensor::<2>::from_data(TensorData::new(pad.to_vec(), [b, t]), &device);
        scores = scores + (m - 1.0).mul_scalar(-HIDDEN).reshape([b, 1, 1, t]);
    }
    if hide.causal {
        let later: Vec<f32> = (0..t * t).map(|i| if i % t > i / t { HIDDEN } else { 0.0 }).collect();
        scores = scores + Tensor::<2>::from_data(TensorData::new(later, [t, t]), &device).reshape([1, 1, t, t]);
    }
    let weights = super::super::fused::softmax_last(scores);
    weights.matmul(v).swap_dims(1, 2).reshape([b * t, d])
}

#[derive(Debug)]
struct AttentionBackward;

/// What the backward pass needs: `qkv`, the softmax weights `[b, h, t, t]`, the sizes.
#[derive(Debug, Clone)]
struct State {
    qkv: FlexTensor,
    weights: FlexTensor,
    dims: Dims,
}

impl Backward<Flex, 1> for AttentionBackward {
    type State = State;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let [parent] = ops.parents;
        if let Some(parent) = parent {
            let s = &ops.state;
            grads.register::<Flex>(parent.id, backward(&s.qkv, &s.weights, grad, s.dims));
        }
    }
}

fn node(qkv: AdTensor, dims: Dims, hide: Hide) -> AdTensor {
    let prep = AttentionBackward.prepare::<NoCheckpointing>([qkv.node()]).compute_bound().stateful();
    let x = qkv.primitive().to_contiguous();
    let (out, weights) = forward(&x, dims, hide);
    match prep {
        OpsKind::Tracked(prep) => prep.finish(State { qkv: x, weights, dims }, out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

/// [`forward`] over chunks of rows whose scores hold at most `max_scores` values.
fn chunked(qkv: FlexTensor, dims: Dims, hide: Hide, max_scores: usize) -> FlexTensor {
    let x = qkv.to_contiguous();
    let Dims { b, t, h } = dims;
    let per_row = (h * t * t).max(1);
    let rows = (max_scores / per_row).clamp(1, b);
    if rows == b {
        return forward(&x, dims, hide).0;
    }
    let d = x.layout().shape()[1] / 3;
    let mut out = Vec::with_capacity(b * t * d);
    let mut start = 0;
    while start < b {
        let r = rows.min(b - start);
        let part = x.narrow(0, start * t, r * t);
        let pad = hide.pad.map(|p| &p[start * t..(start + r) * t]);
        let (o, _) = forward(&part, Dims { b: r, t, h }, Hide { pad, causal: hide.causal });
        out.extend_from_slice(values(&o));
        start += r;
    }
    tensor(out, vec![b * t, d])
}

/// Queries, keys and values of `qkv` (contiguous `[b·t, 3d]`) as `[b, h, t, dₕ]` views.
fn heads(qkv: &FlexTensor, dims: Dims) -> [FlexTensor; 3] {
    let Dims { b, t, h } = dims;
    let d = qkv.layout().shape()[1] / 3;
    let all = qkv.reshape(Shape::from(vec![b, t, 3 * h, d / h])).transpose(1, 2);
    [all.narrow(1, 0, h), all.narrow(1, h, h), all.narrow(1, 2 * h, h)]
}

fn matmul(a: FlexTensor, b: FlexTensor) -> FlexTensor {
    <Flex as FloatTensorOps<Flex>>::float_matmul(a, b)
}

/// `([b·t, d] merged output, [b, h, t, t] softmax weights)` of contiguous `qkv`.
fn forward(qkv: &FlexTensor, dims: Dims, hide: Hide) -> (FlexTensor, FlexTensor) {
    let [q, k, v] = heads(qkv, dims);
    let mut scores = matmul(q, k.transpose(2, 3));
    if hide.pad.is_some() || hide.causal {
        scores = hidden(scores, dims, hide);
    }
    let weights = <Flex as ActivationOps<Flex>>::softmax(scores, 3).to_contiguous();
    let out = matmul(weights.clone(), v);
    (merge(&[&out], dims), weights)
}

/// `scores` (`[.., t, t]`, contiguous) plus `-1e30` at hidden keys: the padding term
/// `(m - 1)·1e30` of each key first (as the composite ops add it), then the causal one.
fn hidden(mut scores: FlexTensor, dims: Dims, hide: Hide) -> FlexTensor {
    let Dims { t, h, .. } = dims;
    let apply = |s: &mut [f32]| {
        for (plane, block) in s.chunks_exact_mut(t * t).enumerate() {
            if let Some(pad) = hide.pad {
                let row = plane / h;
                let add: Vec<f32> = pad[row * t..(row + 1) * t].iter().map(|m| (m - 1.0) * -HIDDEN).collect();
                for line in block.chunks_exact_mut(t) {
                    for (s, a) in line.iter_mut().zip(&add) {
                        *s += a;
                    }
                }
            }
            if hide.causal {
                for (i, line) in block.chunks_exact_mut(t).enumerate() {
                    for s in &mut line[i + 1..] {
                        *s += HIDDEN;
                    }
                }
            }
        }
    };
    let owned = scores.is_unique() && scores.is_contiguous() && scores.layout().start_offset() == 0;
    if owned && let Some(s) = scores.try_storage_mut::<f32>() {
        apply(s);
        return scores;
    }
    let shape = shape_of(&scores);
    let mut v = values(&scores.to_contiguous()).to_vec();
    apply(&mut v);
    tensor(v, shape)
}

/// `[b·t, parts·d]` row-major from `parts` contiguous `[b, h, t, dₕ]` tensors: row `(b, i)`
/// holds part 0's heads, then part 1's, and so on.
fn merge(parts: &[&FlexTensor], dims: Dims) -> FlexTensor {
    let Dims { b, t, h } = dims;
    let srcs: Vec<FlexTensor> = parts.iter().map(|p| p.to_contiguous()).collect();
    let dh = srcs.first().map_or(0, |s| s.layout().shape()[3]);
    let mut out = Vec::with_capacity(b * t * h * dh * srcs.len());
    for bi in 0..b {
        for i in 0..t {
            for s in &srcs {
                let s = values(s);
                for hi in 0..h {
                    let at = ((bi * h + hi) * t + i) * dh;
                    out.extend_from_slice(&s[at..at + dh]);
                }
            }
        }
    }
    tensor(out, vec![b * t, h * dh * srcs.len()])
}

/// `d qkv` (`[b·t, 3d]`) from the output's gradient `grad` (`[b·t, d]`).
fn backward(qkv: &FlexTensor, weights: &FlexTensor, grad: FlexTensor, dims: Dims) -> FlexTensor {
    let Dims { b, t, h } = dims;
    let d = qkv.layout().shape()[1] / 3;
    let g = grad.to_contiguous().reshape(Shape::from(vec![b, t, h, d / h])).transpose(1, 2);
    let [q, k, v] = heads(qkv, dims);
    let dv = matmul(weights.transpose(2, 3), g.clone());
    let dw = matmul(g, v.transpose(2, 3));
    let ds = super::super::fused::softmax_backward(weights, dw);
    let dq = matmul(ds.clone(), k);
    let dk = matmul(ds.transpose(2, 3), q);
    merge(&[&dq, &dk, &dv], dims)
}
