//! The sequence parts of the network: multi-head self-attention and position codes on
//! `[batch, t, d]`.
//!
//! Takes the parts' weights and the padding mask of the model's token ids (`[batch, t]`,
//! 1 on tokens); gives `[batch, t, d]`.
//! **Invariant:** a query never attends to a padded key, nor with `causal` to a later
//! position, so appending padding or changing later tokens leaves the real (earlier)
//! positions' outputs as they were; a query with no key left (a row of padding only)
//! attends uniformly instead of giving NaN. Sequence position `p` (0-based) is the same
//! whatever the length, so codes of real positions do not depend on the padding.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};

use super::Dense;

pub(super) mod node;
#[cfg(test)]
mod node_tests;

/// Added to the score of a key a query may not see: far below any real score, yet
/// finite, so a row with every key hidden stays finite (uniform weights).
const HIDDEN: f32 = -1.0e30;

/// The four `d → d` projections of multi-head self-attention.
#[derive(Module, Debug)]
pub struct Attention {
    pub q: Dense,
    pub k: Dense,
    pub v: Dense,
    pub o: Dense,
}

/// A learnt position table, `[t, d]`: row `p` is added at position `p`.
#[derive(Module, Debug)]
pub struct Positions {
    pub w: Param<Tensor<2>>,
}

/// Self-attention of `x` (`[b, t, d]`) with `heads` heads: softmax(QKᵀ/√dₕ + hidden)·V,
/// then the output projection. `mask` (`[b, t]`, 1 on tokens) hides padded keys.
pub fn attention(
    x: Tensor<3>,
    a: &Attention,
    heads: usize,
    causal: bool,
    rotary: bool,
    mask: Option<&Tensor<2>>,
) -> Tensor<3> {
    let [b, t, d] = x.dims();
    let heads = heads.max(1);
    let dh = d / heads;
    let device = x.device();
    let flat = x.reshape([b * t, d]);
    let proj = |p: &Dense, x: Tensor<2>| x.matmul(p.w.val()) + p.b.val().unsqueeze::<2>();
    if !rotary && dh * heads == d && dh > 0 && b * t > 0 {
        // One `[d, 3d]` projection (the 1/√dₕ folded into the queries' weights, d² + d
        // multiplies instead of t·d per row) and the core as one node (`node.rs`).
        let scale = 1.0 / (dh as f64).sqrt();
        let w = Tensor::cat(vec![a.q.w.val().mul_scalar(scale), a.k.w.val(), a.v.w.val()], 1);
        let bias = Tensor::cat(vec![a.q.b.val().mul_scalar(scale), a.k.b.val(), a.v.b.val()], 0);
        let qkv = flat.matmul(w) + bias.unsqueeze::<2>();
        let pad = mask.filter(|m| m.dims() == [b, t]).and_then(|m| m.clone().into_data().try_into_vec::<f32>().ok());
        // A batch without padding needs no pass over the scores to hide it.
        let pad = pad.filter(|p| p.iter().any(|v| *v < 0.5));
        let hide = node::Hide { pad: pad.as_deref(), causal };
        let out = node::attend(qkv, node::Dims { b, t, h: heads }, hide);
        return proj(&a.o, out).reshape([b, t, d]);
    }
    let split = |y: Tensor<2>| y.reshape([b, t, heads, dh]).swap_dims(1, 2);
    let mut q = split(proj(&a.q, flat.clone()));
    let mut k = split(proj(&a.k, flat.clone()));
    let v = split(proj(&a.v, flat));
    if rotary {
        let (cos, sin) = rotary_tables(t, dh, &device);
        q = rotate(q, &cos, &sin);
        k = rotate(k, &cos, &sin);
    }
    // Scaling the queries is t·d multiplies; scaling the scores would be heads·t².
    let mut scores = (q * (1.0 / (dh as f64).sqrt())).matmul(k.swap_dims(2, 3));
    // A batch without padding needs no pass over the scores to hide it.
    let padded = |m: &Tensor<2>| m.clone().min().into_scalar::<f32>() < 0.5;
    if let Some(m) = mask.filter(|m| m.dims() == [b, t] && padded(m)) {
        scores = scores + (m.clone() - 1.0).mul_scalar(-HIDDEN).reshape([b, 1, 1, t]);
    }
    if causal {
        let later: Vec<f32> = (0..t * t).map(|i| if i % t > i / t { HIDDEN } else { 0.0 }).collect();
        scores = scores + Tensor::<2>::from_data(TensorData::new(later, [t, t]), &device).reshape([1, 1, t, t]);
    }
    let weights = super::fused::softmax_last(scores);
    let out = weights.matmul(v).swap_dims(1, 2).reshape([b * t, d]);
    proj(&a.o, out).reshape([b, t, d])
}

/// `x` (`[b, t, d]`) plus the sinusoidal code of each position (Vaswani et al., 2017):
/// `sin(p / 10000^(2i/d))` at feature `2i`, `cos` of the same at `2i + 1`.
pub fn sinusoidal(x: Tensor<3>) -> Tensor<3> {
    let [_, t, d] = x.dims();
    let mut code = Vec::with_capacity(t * d);
    for p in 0..t {
        for j in 0..d {
            let angle = p as f64 / 10000f64.powf((j - j % 2) as f64 / d as f64);
            code.push(if j % 2 == 0 { angle.sin() } else { angle.cos() } as f32);
        }
    }
    let device = x.device();
    x + Tensor::<2>::from_data(TensorData::new(code, [t, d]), &device).unsqueeze::<3>()
}

/// `x` plus a learnt table of the same `[t, d]`.
pub fn learned(x: Tensor<3>, p: &Positions) -> Tensor<3> {
    x + p.w.val().unsqueeze::<3>()
}

/// The rotary angles' cosines and sines, `[1, 1, t, dₕ/2]`: pair `i` of position `p`
/// turns by `p / 10000^(2i/dₕ)`.
fn rotary_tables(t: usize, dh: usize, device: &Device) -> (Tensor<4>, Tensor<4>) {
    let half = dh / 2;
    let (mut cos, mut sin) = (Vec::with_capacity(t * half), Vec::with_capacity(t * half));
    for p in 0..t {
        for i in 0..half {
            let angle = p as f64 / 10000f64.powf(2.0 * i as f64 / dh as f64);
            cos.push(angle.cos() as f32);
            sin.push(angle.sin() as f32);
        }
    }
    let table = |v: Vec<f32>| Tensor::<4>::from_data(TensorData::new(v, [1, 1, t, half]), device);
    (table(cos), table(sin))
}

/// Rotates each pair (`i`, `i + dₕ/2`) of the last axis of `x` (`[b, h, t, dₕ]`) by its angle.
fn rotate(x: Tensor<4>, cos: &Tensor<4>, sin: &Tensor<4>) -> Tensor<4> {
    let half = x.dims()[3] / 2;
    let x1 = x.clone().narrow(3, 0, half);
    let x2 = x.narrow(3, half, half);
    let r1 = x1.clone() * cos.clone() - x2.clone() * sin.clone();
    let r2 = x1 * sin.clone() + x2 * cos.clone();
    Tensor::cat(vec![r1, r2], 3)
}
