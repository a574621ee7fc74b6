//! Batch normalisation in training mode for f32 as two fused passes over the NCHW data.
//!
//! Added by the bma project (see `VENDORED.md`). burn-backend's default
//! `ModuleOps::batch_norm_train{,_backward}` computes the per-channel statistics by swapping the
//! batch and channel axes (a full copy of the activation), reshaping, reducing and broadcasting:
//! about a dozen tensor operations and several copies per call. Here the forward pass reads the
//! input twice (mean, then centred variance) and writes the output once; the backward pass reads
//! the input and the output gradient once for the two per-channel sums and once more to write the
//! input gradient. Sums are accumulated in f64. Other dtypes keep the upstream code (copied
//! verbatim below).

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::ops::{BatchNormTrain, BatchNormTrainBackward};
use burn_backend::{Backend, DType, Scalar, TensorMetadata, tensor::FloatTensor};
use burn_std::{Bytes, Shape};

use crate::{Flex, FlexTensor, Layout};

/// `(batch, channels, pixels per channel and sample)` of a rank >= 2 f32 tensor, if the fused
/// path applies to it and to the per-channel tensors (f32, one element per channel).
fn dims(x: &FlexTensor, per_channel: &[&FlexTensor]) -> Option<(usize, usize, usize)> {
    let s = x.layout().shape();
    if x.dtype() != DType::F32 || s.num_dims() < 2 {
        return None;
    }
    let (n, c) = (s[0], s[1]);
    let inner: usize = s.iter().skip(2).product();
    let ok = per_channel
        .iter()
        .all(|t| t.dtype() == DType::F32 && t.layout().num_elements() == c);
    (ok && n * c * inner > 0).then_some((n, c, inner))
}

fn f32_tensor(data: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(shape),
        DType::F32,
    )
}

/// Per-channel sums over batch and pixels of `f(channel, block)` for each `inner`-long block.
#[inline(always)]
fn per_channel_sum(
    data: &[f32],
    (n, c, inner): (usize, usize, usize),
    mut f: impl FnMut(usize, &[f32]) -> f64,
) -> Vec<f64> {
    let mut sums = vec![0.0f64; c];
    for b in 0..n {
        for (ch, sum) in sums.iter_mut().enumerate() {
            *sum += f(ch, &data[(b * c + ch) * inner..][..inner]);
        }
    }
    sums
}

/// Sum of a block in f32 lanes (vectorisable), returned as f64. Blocks are one channel of one
/// sample (64 pixels for an 8x8 map), so f32 partial sums lose nothing measurable.
#[inline(always)]
fn block_sum(block: &[f32], g: impl Fn(usize, f32) -> f32) -> f64 {
    let mut lanes = [0.0f32; 8];
    let mut chunks = block.chunks_exact(8);
    let mut i = 0;
    for chunk in &mut chunks {
        for (lane, (l, v)) in lanes.iter_mut().zip(chunk).enumerate() {
            *l += g(i + lane, *v);
        }
        i += 8;
    }
    let mut total: f64 = lanes.iter().map(|&l| l as f64).sum();
    for (j, v) in chunks.remainder().iter().enumerate() {
        total += g(i + j, *v) as f64;
    }
    total
}

/// The forward kernel: per-channel mean and biased variance of `x` (NCHW-like, `c` channels of
/// `inner` values per sample), and `out = (x - mean) * gamma / sqrt(var + eps) + beta`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn forward_body(
    xd: &[f32],
    gd: &[f32],
    bd: &[f32],
    epsilon: f64,
    c: usize,
    inner: usize,
    out: &mut [f32],
    mean: &mut [f32],
    variance: &mut [f32],
) {
    let d = (xd.len() / (c * inner), c, inner);
    let count = (d.0 * inner) as f64;
    let sums = per_channel_sum(xd, d, |_, blk| block_sum(blk, |_, v| v));
    for (m, s) in mean.iter_mut().zip(sums) {
        *m = (s / count) as f32;
    }
    let sums = per_channel_sum(xd, d, |ch, blk| {
        let m = mean[ch];
        block_sum(blk, |_, v| (v - m) * (v - m))
    });
    for (v, s) in variance.iter_mut().zip(sums) {
        *v = (s / count) as f32;
    }
    for (i, (o, xs)) in out
        .chunks_exact_mut(inner)
        .zip(xd.chunks_exact(inner))
        .enumerate()
    {
        let ch = i % c;
        let scale = gd[ch] / ((variance[ch] as f64 + epsilon).sqrt() as f32);
        let (m, b) = (mean[ch], bd[ch]);
        for (o, &v) in o.iter_mut().zip(xs) {
            *o = (v - m) * scale + b;
        }
    }
}

/// The backward kernel's inputs (all f32, contiguous).
#[derive(Clone, Copy)]
struct Inputs<'a> {
    x: &'a [f32],
    dy: &'a [f32],
    gamma: &'a [f32],
    mean: &'a [f32],
    variance: &'a [f32],
}

/// The backward kernel: `dbeta = sum(dy)`, `dgamma = sum(dy * x_hat)` and
/// `dx = gamma * inv_std * (dy - mean(dy) - x_hat * mean(dy * x_hat))`,
/// `x_hat = (x - mean) * inv_std`, `inv_std = 1 / sqrt(var + eps)`.
#[inline(always)]
fn backward_body(
    t: Inputs<'_>,
    epsilon: f64,
    c: usize,
    inner: usize,
    dx: &mut [f32],
    gamma_grad: &mut [f32],
    beta_grad: &mut [f32],
) {
    let n = t.x.len() / (c * inner);
    let count = (n * inner) as f64;
    let inv_std: Vec<f32> = t
        .variance
        .iter()
        .map(|&v| (1.0 / (v as f64 + epsilon).sqrt()) as f32)
        .collect();
    let mut sum_dy = vec![0.0f64; c];
    let mut sum_dy_xhat = vec![0.0f64; c];
    for b in 0..n {
        for ch in 0..c {
            let at = (b * c + ch) * inner;
            let (xs, gs) = (&t.x[at..][..inner], &t.dy[at..][..inner]);
            let (m, is) = (t.mean[ch], inv_std[ch]);
            sum_dy[ch] += block_sum(gs, |_, g| g);
            sum_dy_xhat[ch] += block_sum(gs, |j, g| g * (xs[j] - m) * is);
        }
    }
    for (i, ((o, xs), gs)) in dx
        .chunks_exact_mut(inner)
        .zip(t.x.chunks_exact(inner))
        .zip(t.dy.chunks_exact(inner))
        .enumerate()
    {
        let ch = i % c;
        let (m, is) = (t.mean[ch], inv_std[ch]);
        let mean_dy = (sum_dy[ch] / count) as f32;
        let mean_dy_xhat = (sum_dy_xhat[ch] / count) as f32;
        let scale = t.gamma[ch] * is;
        for ((o, &v), &g) in o.iter_mut().zip(xs).zip(gs) {
            *o = scale * (g - mean_dy - (v - m) * is * mean_dy_xhat);
        }
    }
    for ch in 0..c {
        gamma_grad[ch] = sum_dy_xhat[ch] as f32;
        beta_grad[ch] = sum_dy[ch] as f32;
    }
}

// The kernels compiled once per SIMD level and dispatched at run time (macerator, as
// burn-flex's other kernels); for the baseline x86-64 target alone they run 4 lanes wide.
#[cfg(feature = "simd")]
#[macerator::with_simd]
#[allow(clippy::too_many_arguments)]
fn forward<S: macerator::Simd>(
    xd: &[f32],
    gd: &[f32],
    bd: &[f32],
    epsilon: f64,
    c: usize,
    inner: usize,
    out: &mut [f32],
    mean: &mut [f32],
    variance: &mut [f32],
) {
    forward_body(xd, gd, bd, epsilon, c, inner, out, mean, variance);
}

#[cfg(not(feature = "simd"))]
#[allow(clippy::too_many_arguments)]
fn forward(
    xd: &[f32],
    gd: &[f32],
    bd: &[f32],
    epsilon: f64,
    c: usize,
    inner: usize,
    out: &mut [f32],
    mean: &mut [f32],
    variance: &mut [f32],
) {
    forward_body(xd, gd, bd, epsilon, c, inner, out, mean, variance);
}

#[cfg(feature = "simd")]
#[macerator::with_simd]
fn backward<'a, S: macerator::Simd>(
    t: Inputs<'a>,
    epsilon: f64,
    c: usize,
    inner: usize,
    dx: &mut [f32],
    gamma_grad: &mut [f32],
    beta_grad: &mut [f32],
) {
    backward_body(t, epsilon, c, inner, dx, gamma_grad, beta_grad);
}

#[cfg(not(feature = "simd"))]
fn backward(
    t: Inputs<'_>,
    epsilon: f64,
    c: usize,
    inner: usize,
    dx: &mut [f32],
    gamma_grad: &mut [f32],
    beta_grad: &mut [f32],
) {
    backward_body(t, epsilon, c, inner, dx, gamma_grad, beta_grad);
}

pub(crate) fn batch_norm_train(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    epsilon: f64,
) -> BatchNormTrain<Flex> {
    let Some(d) = dims(&x, &[&gamma, &beta]) else {
        return upstream::batch_norm_train::<Flex>(x, gamma, beta, epsilon);
    };
    let (_, c, inner) = d;
    let x = x.to_contiguous();
    let (gamma, beta) = (gamma.to_contiguous(), beta.to_contiguous());
    let xd: &[f32] = x.storage();
    let (gd, bd): (&[f32], &[f32]) = (gamma.storage(), beta.storage());

    let mut out = vec![0.0f32; xd.len()];
    let mut mean = vec![0.0f32; c];
    let mut variance = vec![0.0f32; c];
    forward(
        xd,
        gd,
        bd,
        epsilon,
        c,
        inner,
        &mut out,
        &mut mean,
        &mut variance,
    );
    let shape = x.layout().shape().clone();
    BatchNormTrain::new(
        f32_tensor(out, shape),
        f32_tensor(mean, Shape::new([c])),
        f32_tensor(variance, Shape::new([c])),
    )
}

pub(crate) fn batch_norm_train_backward(
    x: FlexTensor,
    gamma: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
    output_grad: FlexTensor,
) -> BatchNormTrainBackward<Flex> {
    let same_shape =
        output_grad.dtype() == DType::F32 && output_grad.layout().shape() == x.layout().shape();
    let d = dims(&x, &[&gamma, &mean, &variance]).filter(|_| same_shape);
    let Some(d) = d else {
        return upstream::batch_norm_train_backward::<Flex>(
            x,
            gamma,
            mean,
            variance,
            epsilon,
            output_grad,
        );
    };
    let (_, c, inner) = d;
    let x = x.to_contiguous();
    let dy = output_grad.to_contiguous();
    let (gamma, mean, variance) = (
        gamma.to_contiguous(),
        mean.to_contiguous(),
        variance.to_contiguous(),
    );
    let (xd, dyd): (&[f32], &[f32]) = (x.storage(), dy.storage());
    let (gd, md, vd): (&[f32], &[f32], &[f32]) =
        (gamma.storage(), mean.storage(), variance.storage());
    let mut dx = vec![0.0f32; xd.len()];
    let mut gamma_grad = vec![0.0f32; c];
    let mut beta_grad = vec![0.0f32; c];
    backward(
        Inputs {
            x: xd,
            dy: dyd,
            gamma: gd,
            mean: md,
            variance: vd,
        },
        epsilon,
        c,
        inner,
        &mut dx,
        &mut gamma_grad,
        &mut beta_grad,
    );
    let shape = x.layout().shape().clone();
    BatchNormTrainBackward::new(
        f32_tensor(dx, shape),
        f32_tensor(gamma_grad, Shape::new([c])),
        f32_tensor(beta_grad, Shape::new([c])),
    )
}

/// burn-backend 0.22.1's default `ModuleOps::batch_norm_train{,_backward}` (source:
/// burn-backend-0.22.1/src/backend/ops/modules/base.rs), copied verbatim as the fall-back for
/// dtypes other than f32; `batch_norm` (inference) is Flex's, as upstream.
mod upstream {
    use super::*;

    pub(crate) fn batch_norm_train<B: Backend>(
        x: FloatTensor<B>,
        gamma: FloatTensor<B>,
        beta: FloatTensor<B>,
        epsilon: f64,
    ) -> BatchNormTrain<B> {
        let shape = x.shape();
        let channels = shape[1];
        let samples_per_channel = shape.num_elements() / channels;
        let flattened = Shape::new([channels, samples_per_channel]);
        let mut per_channel = alloc::vec![1; shape.num_dims()];
        per_channel[1] = channels;

        // Use mean directly to avoid overflowing intermediate sums in f16.
        let mean = B::float_mean_dim(
            B::float_reshape(B::float_swap_dims(x.clone(), 0, 1), flattened.clone()),
            1,
        );
        let mean = B::float_reshape(mean, Shape::from(per_channel));
        let centered = B::float_sub(x.clone(), mean.clone());
        let variance = B::float_mean_dim(
            B::float_reshape(
                B::float_swap_dims(B::float_mul(centered.clone(), centered), 0, 1),
                flattened,
            ),
            1,
        );
        let mean = B::float_reshape(mean, Shape::new([channels]));
        let variance = B::float_reshape(variance, Shape::new([channels]));
        let output = B::batch_norm(x, gamma, beta, mean.clone(), variance.clone(), epsilon);

        BatchNormTrain::new(output, mean, variance)
    }

    pub(crate) fn batch_norm_train_backward<B: Backend>(
        x: FloatTensor<B>,
        gamma: FloatTensor<B>,
        mean: FloatTensor<B>,
        variance: FloatTensor<B>,
        epsilon: f64,
        output_grad: FloatTensor<B>,
    ) -> BatchNormTrainBackward<B> {
        let shape = x.shape();
        let rank = shape.num_dims();
        let channels = shape[1];
        let flattened = Shape::new([channels, shape.num_elements() / channels]);
        let mut per_channel = alloc::vec![1; rank];
        per_channel[1] = channels;
        let per_channel = Shape::from(per_channel);

        let inv_std = B::float_reshape(
            B::float_recip(B::float_sqrt(B::float_add_scalar(
                variance,
                Scalar::Float(epsilon),
            ))),
            per_channel.clone(),
        );
        let normalized = B::float_mul(
            B::float_sub(x, B::float_reshape(mean, per_channel.clone())),
            inv_std.clone(),
        );

        let output_grad_flat = B::float_reshape(
            B::float_swap_dims(output_grad.clone(), 0, 1),
            flattened.clone(),
        );
        let normalized_grad_flat = B::float_reshape(
            B::float_swap_dims(B::float_mul(output_grad.clone(), normalized.clone()), 0, 1),
            flattened,
        );
        let beta_grad = B::float_sum_dim(output_grad_flat.clone(), 1);
        let gamma_grad = B::float_sum_dim(normalized_grad_flat.clone(), 1);

        // Compute means independently: parameter-gradient sums can overflow in f16.
        let mean_grad =
            B::float_reshape(B::float_mean_dim(output_grad_flat, 1), per_channel.clone());
        let mean_normalized_grad = B::float_reshape(
            B::float_mean_dim(normalized_grad_flat, 1),
            per_channel.clone(),
        );
        let centred_grad = B::float_sub(output_grad, mean_grad);
        let projected = B::float_mul(normalized, mean_normalized_grad);
        let scale = B::float_mul(B::float_reshape(gamma, per_channel), inv_std);
        let x_grad = B::float_mul(scale, B::float_sub(centred_grad, projected));

        BatchNormTrainBackward::new(
            x_grad,
            B::float_reshape(gamma_grad, Shape::new([channels])),
            B::float_reshape(beta_grad, Shape::new([channels])),
        )
    }
}
