//! Batch normalisation for f32 as fused per-channel passes over the NCHW data: training mode in
//! two passes each way, inference (given statistics) in one.
//!
//! Added by the bma project (see `VENDORED.md`). burn-backend's default
//! `ModuleOps::batch_norm_train{,_backward}` computes the per-channel statistics by swapping the
//! batch and channel axes (a full copy of the activation), reshaping, reducing and broadcasting:
//! about a dozen tensor operations and several copies per call. Here the forward pass reads the
//! input twice (mean, then centred variance) and writes the output once; the backward pass reads
//! the input and the output gradient once for the two per-channel sums and once more to write the
//! input gradient. Sums are accumulated in f64. Inference-mode `batch_norm` (upstream: five
//! element-wise tensor operations, each allocating its output) reads the input once. Other dtypes
//! keep the upstream code (copied verbatim below).

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

/// One sample's work (its `c * inner` values, channel-major): the per-sample kernels of the
/// forward and backward passes. Every per-channel sum is formed per sample and the samples'
/// sums are then added in sample order, so the result does not depend on the thread count.
#[derive(Clone, Copy)]
enum Kernel<'a> {
    /// `sums[ch] = sum(block)`, or with a non-empty `mean`, `sum((v - mean[ch])^2)`.
    Sums { xs: &'a [f32], mean: &'a [f32] },
    /// `out = (x - mean) * scale + shift`.
    Normalize {
        xs: &'a [f32],
        mean: &'a [f32],
        scale: &'a [f32],
        shift: &'a [f32],
    },
    /// `sums[ch] = sum(dy)`, `sums[c + ch] = sum(dy * (x - mean) * inv_std)`.
    GradSums {
        xs: &'a [f32],
        gs: &'a [f32],
        mean: &'a [f32],
        inv_std: &'a [f32],
    },
    /// `dx = scale * (dy - mean_dy - (x - mean) * inv_std * mean_dy_xhat)`; `coef` holds
    /// `scale`, `mean_dy` and `mean_dy_xhat`, `c` each.
    GradInput {
        xs: &'a [f32],
        gs: &'a [f32],
        mean: &'a [f32],
        inv_std: &'a [f32],
        coef: &'a [f32],
    },
}

#[inline(always)]
fn kernel_body(k: Kernel<'_>, inner: usize, out: &mut [f32], sums: &mut [f64]) {
    match k {
        Kernel::Sums { xs, mean } => {
            for (ch, (blk, s)) in xs.chunks_exact(inner).zip(sums.iter_mut()).enumerate() {
                *s = if mean.is_empty() {
                    block_sum(blk, |_, v| v)
                } else {
                    let m = mean[ch];
                    block_sum(blk, |_, v| (v - m) * (v - m))
                };
            }
        }
        Kernel::Normalize {
            xs,
            mean,
            scale,
            shift,
        } => {
            for (ch, (o, blk)) in out
                .chunks_exact_mut(inner)
                .zip(xs.chunks_exact(inner))
                .enumerate()
            {
                let (m, s, b) = (mean[ch], scale[ch], shift[ch]);
                for (o, &v) in o.iter_mut().zip(blk) {
                    *o = (v - m) * s + b;
                }
            }
        }
        Kernel::GradSums {
            xs,
            gs,
            mean,
            inv_std,
        } => {
            let c = mean.len();
            for ch in 0..c {
                let (blk, g) = (&xs[ch * inner..][..inner], &gs[ch * inner..][..inner]);
                let (m, is) = (mean[ch], inv_std[ch]);
                sums[ch] = block_sum(g, |_, g| g);
                sums[c + ch] = block_sum(g, |j, g| g * (blk[j] - m) * is);
            }
        }
        Kernel::GradInput {
            xs,
            gs,
            mean,
            inv_std,
            coef,
        } => {
            let c = mean.len();
            for (ch, ((o, blk), g)) in out
                .chunks_exact_mut(inner)
                .zip(xs.chunks_exact(inner))
                .zip(gs.chunks_exact(inner))
                .enumerate()
            {
                let (m, is) = (mean[ch], inv_std[ch]);
                let (scale, mean_dy, mean_dy_xhat) = (coef[ch], coef[c + ch], coef[2 * c + ch]);
                for ((o, &v), &g) in o.iter_mut().zip(blk).zip(g) {
                    *o = scale * (g - mean_dy - (v - m) * is * mean_dy_xhat);
                }
            }
        }
    }
}

// The kernel compiled once per SIMD level and dispatched at run time (macerator, as
// burn-flex's other kernels); for the baseline x86-64 target alone it runs 4 lanes wide.
#[cfg(feature = "simd")]
#[macerator::with_simd]
fn kernel<'a, S: macerator::Simd>(k: Kernel<'a>, inner: usize, out: &mut [f32], sums: &mut [f64]) {
    kernel_body(k, inner, out, sums);
}

#[cfg(not(feature = "simd"))]
fn kernel(k: Kernel<'_>, inner: usize, out: &mut [f32], sums: &mut [f64]) {
    kernel_body(k, inner, out, sums);
}

/// `f(sample, its chunk of buf)` for each `width`-long chunk of `buf`, on the current rayon
/// pool when there is one.
fn each_sample<T: Send>(buf: &mut [T], width: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        buf.par_chunks_mut(width)
            .enumerate()
            .for_each(|(b, chunk)| f(b, chunk));
    }
    #[cfg(not(feature = "rayon"))]
    for (b, chunk) in buf.chunks_mut(width).enumerate() {
        f(b, chunk);
    }
}

/// Per-channel totals of per-sample sums (`width` per sample, channel `ch` at `offset + ch`),
/// added in sample order.
fn totals(partial: &[f64], width: usize, offset: usize, c: usize) -> Vec<f64> {
    let mut total = vec![0.0f64; c];
    for sample in partial.chunks_exact(width) {
        for (t, s) in total.iter_mut().zip(&sample[offset..offset + c]) {
            *t += *s;
        }
    }
    total
}

/// The forward pass: per-channel mean and biased variance of `x` (NCHW-like, `c` channels of
/// `inner` values per sample), and `out = (x - mean) * gamma / sqrt(var + eps) + beta`.
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
    let sample = c * inner;
    let n = xd.len() / sample;
    let count = (n * inner) as f64;
    let xs = |b: usize| &xd[b * sample..][..sample];
    let mut partial = vec![0.0f64; n * c];
    each_sample(&mut partial, c, |b, p| {
        kernel(
            Kernel::Sums {
                xs: xs(b),
                mean: &[],
            },
            inner,
            &mut [],
            p,
        )
    });
    for (m, s) in mean.iter_mut().zip(totals(&partial, c, 0, c)) {
        *m = (s / count) as f32;
    }
    let mean: &[f32] = mean;
    each_sample(&mut partial, c, |b, p| {
        kernel(Kernel::Sums { xs: xs(b), mean }, inner, &mut [], p)
    });
    for (v, s) in variance.iter_mut().zip(totals(&partial, c, 0, c)) {
        *v = (s / count) as f32;
    }
    let scale: Vec<f32> = variance
        .iter()
        .zip(gd)
        .map(|(&v, &g)| g / ((v as f64 + epsilon).sqrt() as f32))
        .collect();
    each_sample(out, sample, |b, o| {
        let k = Kernel::Normalize {
            xs: xs(b),
            mean,
            scale: &scale,
            shift: bd,
        };
        kernel(k, inner, o, &mut [])
    });
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

/// The backward pass: `dbeta = sum(dy)`, `dgamma = sum(dy * x_hat)` and
/// `dx = gamma * inv_std * (dy - mean(dy) - x_hat * mean(dy * x_hat))`,
/// `x_hat = (x - mean) * inv_std`, `inv_std = 1 / sqrt(var + eps)`.
fn backward(
    t: Inputs<'_>,
    epsilon: f64,
    c: usize,
    inner: usize,
    dx: &mut [f32],
    gamma_grad: &mut [f32],
    beta_grad: &mut [f32],
) {
    let sample = c * inner;
    let n = t.x.len() / sample;
    let count = (n * inner) as f64;
    let inv_std: Vec<f32> = t
        .variance
        .iter()
        .map(|&v| (1.0 / (v as f64 + epsilon).sqrt()) as f32)
        .collect();
    let mut partial = vec![0.0f64; n * 2 * c];
    each_sample(&mut partial, 2 * c, |b, p| {
        let k = Kernel::GradSums {
            xs: &t.x[b * sample..][..sample],
            gs: &t.dy[b * sample..][..sample],
            mean: t.mean,
            inv_std: &inv_std,
        };
        kernel(k, inner, &mut [], p)
    });
    let sum_dy = totals(&partial, 2 * c, 0, c);
    let sum_dy_xhat = totals(&partial, 2 * c, c, c);
    let mut coef = vec![0.0f32; 3 * c];
    for ch in 0..c {
        coef[ch] = t.gamma[ch] * inv_std[ch];
        coef[c + ch] = (sum_dy[ch] / count) as f32;
        coef[2 * c + ch] = (sum_dy_xhat[ch] / count) as f32;
        gamma_grad[ch] = sum_dy_xhat[ch] as f32;
        beta_grad[ch] = sum_dy[ch] as f32;
    }
    each_sample(dx, sample, |b, o| {
        let k = Kernel::GradInput {
            xs: &t.x[b * sample..][..sample],
            gs: &t.dy[b * sample..][..sample],
            mean: t.mean,
            inv_std: &inv_std,
            coef: &coef,
        };
        kernel(k, inner, o, &mut [])
    });
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

/// Batch normalisation with given statistics (inference):
/// `out = (x - mean) * gamma / sqrt(variance + eps) + beta`, one pass over the data.
pub(crate) fn batch_norm(
    x: FlexTensor,
    gamma: FlexTensor,
    beta: FlexTensor,
    mean: FlexTensor,
    variance: FlexTensor,
    epsilon: f64,
) -> FlexTensor {
    let Some((_, c, inner)) = dims(&x, &[&gamma, &beta, &mean, &variance]) else {
        return upstream::batch_norm::<Flex>(x, gamma, beta, mean, variance, epsilon);
    };
    let x = x.to_contiguous();
    let (gamma, beta) = (gamma.to_contiguous(), beta.to_contiguous());
    let (mean, variance) = (mean.to_contiguous(), variance.to_contiguous());
    let xd: &[f32] = x.storage();
    let (gd, bd): (&[f32], &[f32]) = (gamma.storage(), beta.storage());
    let (md, vd): (&[f32], &[f32]) = (mean.storage(), variance.storage());
    // As in the training-mode forward pass, so that both modes round alike.
    let scale: Vec<f32> = vd
        .iter()
        .zip(gd)
        .map(|(&v, &g)| g / ((v as f64 + epsilon).sqrt() as f32))
        .collect();
    let sample = c * inner;
    let mut out = vec![0.0f32; xd.len()];
    each_sample(&mut out, sample, |b, o| {
        let k = Kernel::Normalize {
            xs: &xd[b * sample..][..sample],
            mean: md,
            scale: &scale,
            shift: bd,
        };
        kernel(k, inner, o, &mut [])
    });
    f32_tensor(out, x.layout().shape().clone())
}

/// burn-backend 0.22.1's default `ModuleOps::batch_norm{,_train,_train_backward}` (source:
/// burn-backend-0.22.1/src/backend/ops/modules/base.rs), copied verbatim as the fall-back for
/// dtypes other than f32.
mod upstream {
    use super::*;

    pub(crate) fn batch_norm<B: Backend>(
        x: FloatTensor<B>,
        gamma: FloatTensor<B>,
        beta: FloatTensor<B>,
        mean: FloatTensor<B>,
        variance: FloatTensor<B>,
        epsilon: f64,
    ) -> FloatTensor<B> {
        let rank = x.shape().num_dims();
        let channels = x.shape()[1];
        let mut dimensions = alloc::vec![1; rank];
        dimensions[1] = channels;
        let shape = Shape::from(dimensions);
        let gamma = B::float_reshape(gamma, shape.clone());
        let beta = B::float_reshape(beta, shape.clone());
        let mean = B::float_reshape(mean, shape.clone());
        let variance = B::float_reshape(variance, shape);
        let std = B::float_sqrt(B::float_add_scalar(variance, Scalar::Float(epsilon)));
        let normalized = B::float_div(B::float_sub(x, mean), std);
        B::float_add(B::float_mul(normalized, gamma), beta)
    }

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
