//! Fused softmax and layer norm for the flex CPU backend, each one autodiff node.
//!
//! Takes a float tensor (and for layer norm its `[d]` scale and shift); gives the same
//! result as `activation::softmax(x, last)` and `burn::nn::LayerNorm::forward` up to float
//! reassociation. burn-autodiff 0.22.1 has no node for either: it records softmax as five
//! element-wise/reduction nodes (max, sub, exp, sum, div) and layer norm as about ten,
//! each with a fresh buffer forward and backward. Here, on `Autodiff<Flex>`, each is one
//! node: the forward pass is one pass over each row (softmax through flex's own fused,
//! vectorised kernel) and the backward pass one pass over each row, over plain f32 slices.
//! **Invariant:** tensors on any other backend, or not f32, or empty, take burn's own
//! composite path, so the result never depends on which path ran beyond rounding.

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ActivationOps;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Tensor, TensorData, activation};

/// The autodiff backend whose primitives the fused nodes work on.
type Ad = Autodiff<Flex>;

/// `burn::nn::LayerNormConfig`'s default epsilon, the one every layer norm of a `Net` has.
pub const LAYER_NORM_EPSILON: f64 = 1e-5;

/// Softmax over the last axis of `x`.
pub fn softmax_last<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    match x.clone().try_into_primitive::<Ad>() {
        Ok(p) if p.primitive().dtype() == DType::F32 && !p.primitive().layout().shape().contains(&0) => {
            Tensor::from_primitive::<Ad>(softmax_node(p))
        }
        _ => activation::softmax(x, D - 1),
    }
}

/// `(x - mean) / sqrt(var + eps) * gamma + beta` over the last axis of `x` (`[.., d]`),
/// the biased variance, as `burn::nn::LayerNorm`.
pub fn layer_norm<const D: usize>(x: Tensor<D>, gamma: Tensor<1>, beta: Tensor<1>, epsilon: f64) -> Tensor<D> {
    let d = gamma.dims()[0];
    let fits = x.dims()[D - 1] == d && beta.dims()[0] == d && d > 0 && x.dims().iter().all(|n| *n > 0);
    let parts = (
        x.clone().try_into_primitive::<Ad>(),
        gamma.clone().try_into_primitive::<Ad>(),
        beta.clone().try_into_primitive::<Ad>(),
    );
    match parts {
        (Ok(px), Ok(pg), Ok(pb)) if fits && [&px, &pg, &pb].iter().all(|p| p.primitive().dtype() == DType::F32) => {
            return Tensor::from_primitive::<Ad>(layer_norm_node(px, pg, pb, epsilon as f32));
        }
        (Err(_), Err(_), Err(_)) => {}
        _ => return layer_norm_composite(x, gamma, beta, epsilon),
    }
    // Without autodiff (evaluation): the same forward pass on flex's own tensors.
    let parts = (
        x.clone().try_into_primitive::<Flex>(),
        gamma.clone().try_into_primitive::<Flex>(),
        beta.clone().try_into_primitive::<Flex>(),
    );
    match parts {
        (Ok(px), Ok(pg), Ok(pb)) if fits && [&px, &pg, &pb].iter().all(|p| p.dtype() == DType::F32) => {
            let (px, pg, pb) = (contiguous(px), contiguous(pg), contiguous(pb));
            let (y, _, _) = layer_norm_forward(values(&px), values(&pg), values(&pb), epsilon as f32);
            Tensor::from_primitive::<Flex>(tensor(y, shape_of(&px)))
        }
        _ => layer_norm_composite(x, gamma, beta, epsilon),
    }
}

/// `ln.forward(x)` through [`layer_norm`] (every `Net` layer norm has the default epsilon).
pub fn layer_norm_of<const D: usize>(x: Tensor<D>, ln: &burn::nn::LayerNorm) -> Tensor<D> {
    match &ln.beta {
        Some(beta) => layer_norm(x, ln.gamma.val(), beta.val(), LAYER_NORM_EPSILON),
        None => ln.forward(x),
    }
}

/// burn's own layer norm, built from tensor operations.
fn layer_norm_composite<const D: usize>(x: Tensor<D>, gamma: Tensor<1>, beta: Tensor<1>, epsilon: f64) -> Tensor<D> {
    burn::tensor::module::layer_norm(x, gamma, Some(beta), epsilon)
}

type AdTensor = burn::backend::tensor::FloatTensor<Ad>;

/// `t` in row-major order (no copy when it already is).
fn contiguous(t: FlexTensor) -> FlexTensor {
    t.to_contiguous()
}

/// The values of a contiguous f32 tensor.
pub(super) fn values(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().unwrap_or(&[])
}

pub(super) fn tensor(v: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape))
}

pub(super) fn shape_of(t: &FlexTensor) -> Vec<usize> {
    t.layout().shape().iter().copied().collect()
}

#[derive(Debug)]
struct SoftmaxBackward;

impl Backward<Flex, 1> for SoftmaxBackward {
    /// The forward output `y`.
    type State = FlexTensor;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = grads.consume::<Flex>(&ops.node);
        let [parent] = ops.parents;
        if let Some(parent) = parent {
            grads.register::<Flex>(parent.id, softmax_backward(&ops.state, grad));
        }
    }
}

fn softmax_node(x: AdTensor) -> AdTensor {
    let prep = SoftmaxBackward.prepare::<NoCheckpointing>([x.node()]).compute_bound().stateful();
    let y =
        contiguous(<Flex as ActivationOps<Flex>>::softmax(x.primitive().clone(), shape_of(x.primitive()).len() - 1));
    match prep {
        OpsKind::Tracked(prep) => prep.finish(y.clone(), y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

/// `dx = y ⊙ (g - Σ g ⊙ y)` per row, written over `g`'s buffer when it is the only owner.
pub(crate) fn softmax_backward(y: &FlexTensor, grad: FlexTensor) -> FlexTensor {
    let shape = shape_of(y);
    let n = shape.last().copied().unwrap_or(1).max(1);
    let ys = values(y);
    let mut g = contiguous(grad);
    let owned = g.is_unique() && g.layout().start_offset() == 0;
    if owned && let Some(gs) = g.try_storage_mut::<f32>() {
        for (gr, yr) in gs[..ys.len()].chunks_exact_mut(n).zip(ys.chunks_exact(n)) {
            softmax_row_backward(yr, gr);
        }
        return g;
    }
    let mut out = values(&g).to_vec();
    for (gr, yr) in out.chunks_exact_mut(n).zip(ys.chunks_exact(n)) {
        softmax_row_backward(yr, gr);
    }
    tensor(out, shape)
}

fn softmax_row_backward(y: &[f32], g: &mut [f32]) {
    let s = dot(y, g);
    for (gi, yi) in g.iter_mut().zip(y) {
        *gi = yi * (*gi - s);
    }
}

/// Σ a ⊙ b in eight lanes (so that the loop vectorises), the lanes then summed in order.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

fn sum(a: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let c = a.chunks_exact(8);
    let tail: f32 = c.remainder().iter().sum();
    for x in c {
        for k in 0..8 {
            lanes[k] += x[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// What layer norm's backward pass needs: the normalised input `x̂`, `1/σ` per row, `γ`.
#[derive(Debug, Clone)]
struct NormState {
    xhat: FlexTensor,
    rstd: Vec<f32>,
    gamma: FlexTensor,
}

#[derive(Debug)]
struct LayerNormBackward;

impl Backward<Flex, 3> for LayerNormBackward {
    type State = NormState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let grad = contiguous(grads.consume::<Flex>(&ops.node));
        let [px, pg, pb] = ops.parents;
        let s = &ops.state;
        let (dx, dgamma, dbeta) = layer_norm_backward(values(&s.xhat), &s.rstd, values(&s.gamma), values(&grad));
        let d = values(&s.gamma).len();
        if let Some(p) = px {
            grads.register::<Flex>(p.id, tensor(dx, shape_of(&s.xhat)));
        }
        if let Some(p) = pg {
            grads.register::<Flex>(p.id, tensor(dgamma, vec![d]));
        }
        if let Some(p) = pb {
            grads.register::<Flex>(p.id, tensor(dbeta, vec![d]));
        }
    }
}

fn layer_norm_node(x: AdTensor, gamma: AdTensor, beta: AdTensor, eps: f32) -> AdTensor {
    let prep =
        LayerNormBackward.prepare::<NoCheckpointing>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful();
    let xs = contiguous(x.primitive().clone());
    let g = contiguous(gamma.primitive().clone());
    let b = contiguous(beta.primitive().clone());
    let shape = shape_of(&xs);
    let (y, xhat, rstd) = layer_norm_forward(values(&xs), values(&g), values(&b), eps);
    let y = tensor(y, shape.clone());
    match prep {
        OpsKind::Tracked(prep) => prep.finish(NormState { xhat: tensor(xhat, shape), rstd, gamma: g }, y),
        OpsKind::UnTracked(prep) => prep.finish(y),
    }
}

/// Per row of `gamma.len()` values: `(y, x̂, 1/σ)`; the mean and the variance in f32 lanes.
pub(crate) fn layer_norm_forward(x: &[f32], gamma: &[f32], beta: &[f32], eps: f32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let d = gamma.len();
    let mut y = vec![0.0f32; x.len()];
    let mut xhat = vec![0.0f32; x.len()];
    let mut rstd = Vec::with_capacity(x.len() / d);
    for ((xr, yr), hr) in x.chunks_exact(d).zip(y.chunks_exact_mut(d)).zip(xhat.chunks_exact_mut(d)) {
        let mean = sum(xr) / d as f32;
        for (h, v) in hr.iter_mut().zip(xr) {
            *h = v - mean;
        }
        let r = 1.0 / (dot(hr, hr) / d as f32 + eps).sqrt();
        for (((h, yv), g), b) in hr.iter_mut().zip(yr.iter_mut()).zip(gamma).zip(beta) {
            *h *= r;
            *yv = *h * g + b;
        }
        rstd.push(r);
    }
    (y, xhat, rstd)
}

/// `(dx, dγ, dβ)` from `x̂`, `1/σ`, `γ` and `dy`:
/// `dx = (1/σ)(ĝ - mean(ĝ) - x̂ · mean(ĝ ⊙ x̂))` with `ĝ = dy ⊙ γ`, `dγ = Σ dy ⊙ x̂`, `dβ = Σ dy`.
pub(crate) fn layer_norm_backward(
    xhat: &[f32],
    rstd: &[f32],
    gamma: &[f32],
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let d = gamma.len();
    let mut dx = vec![0.0f32; xhat.len()];
    let mut dgamma = vec![0.0f32; d];
    let mut dbeta = vec![0.0f32; d];
    let rows = xhat.chunks_exact(d).zip(dy.chunks_exact(d)).zip(dx.chunks_exact_mut(d)).zip(rstd);
    for (((hr, gr), dr), r) in rows {
        for (((g, h), dg), db) in gr.iter().zip(hr).zip(dgamma.iter_mut()).zip(dbeta.iter_mut()) {
            *dg += g * h;
            *db += g;
        }
        for ((o, g), gm) in dr.iter_mut().zip(gr).zip(gamma) {
            *o = g * gm;
        }
        let m1 = sum(dr) / d as f32;
        let m2 = dot(dr, hr) / d as f32;
        for (o, h) in dr.iter_mut().zip(hr) {
            *o = r * (*o - m1 - h * m2);
        }
    }
    (dx, dgamma, dbeta)
}
