//! The parts and forward steps of the modern convnet layers: `conv_transpose2d`,
//! `upsample`, `groupnorm`, `rmsnorm` and the `multiply` merge (grouped `conv2d` is
//! burn's `conv2d` with `groups`, in `net::forward`).
//!
//! Takes a plan step and its input activations; gives the part to train (weights drawn
//! like the other layers') or the step's output. **Invariant:** a transposed convolution
//! with `same` padding gives exactly `h · stride` rows and columns: the full output,
//! `(h - 1) · stride + kernel` (or `h · stride` when the kernel is shorter than the
//! stride, the tail zero-padded), cropped by `(kernel - stride) / 2` (rounded down) at
//! the top and left.

use burn::module::Param;
use burn::nn::{GroupNorm, GroupNormConfig, RmsNormConfig};
use burn::tensor::ops::{ConvTransposeOptions, InterpolateMode, InterpolateOptions};
use burn::tensor::{Device, Tensor, module as ops};

use super::{Act, Conv, Op, OpKind, Part, draw, param};
use crate::rng::Rng;
use crate::train::config::Init;

/// The serde default of `groups` in plans saved before grouped convolutions.
pub(super) fn one() -> usize {
    1
}

/// The part of a `conv_transpose2d`, `groupnorm` or `rmsnorm` step.
pub(super) fn init(op: &Op, init: Init, rng: &mut Rng, device: &Device) -> Option<Part> {
    match op.kind {
        OpKind::ConvTranspose2d { filters, kernel, .. } => {
            let c = op.in_shape.first().copied().unwrap_or(1);
            let kk = kernel * kernel;
            // PyTorch's fans for a transposed convolution: weight [c, filters, k, k],
            // fan in filters·k² (its axis 1 times the kernel).
            let (w, b) = draw(init, rng, c * filters * kk, filters, filters * kk, c * kk);
            Some(Part::Conv(Conv { w: param(w, [c, filters, kernel, kernel], device), b: param(b, [filters], device) }))
        }
        OpKind::GroupNorm { groups } => {
            let c = op.shape.first().copied().unwrap_or(1);
            Some(Part::GroupNorm(GroupNormConfig::new(groups, c).init(device)))
        }
        OpKind::RmsNorm => Some(Part::RmsNorm(RmsNormConfig::new(op.shape.last().copied().unwrap_or(1)).init(device))),
        _ => None,
    }
}

/// A group norm's scale and shift (`weight`, `bias`), in that order.
pub(super) fn group_params(g: &GroupNorm) -> Vec<&Param<Tensor<1>>> {
    g.gamma.iter().chain(g.beta.iter()).collect()
}

/// `[b, c, h, w]` → `[b, filters, h', w']` through the weight `[c, filters, k, k]`.
pub(super) fn conv_transpose2d(x: Tensor<4>, c: &Conv, kernel: usize, stride: usize, same: bool) -> Tensor<4> {
    let [b, _, h, w] = x.dims();
    let tail = if same { stride.saturating_sub(kernel) } else { 0 };
    let opts = ConvTransposeOptions::new([stride; 2], [0, 0], [tail; 2], [1, 1], 1);
    let y = ops::conv_transpose2d(x, c.w.val(), Some(c.b.val()), opts);
    if !same {
        return y;
    }
    let [_, f, yh, yw] = y.dims();
    let (oh, ow) = (h * stride, w * stride);
    if (yh, yw) == (oh, ow) {
        return y;
    }
    let top = kernel.saturating_sub(stride) / 2;
    y.slice([0..b, 0..f, top..top + oh, top..top + ow])
}

/// Nearest (a pixel copied into a `factor × factor` square) or bilinear (half-pixel
/// centres, PyTorch's `align_corners=False`) upsampling.
pub(super) fn upsample(x: Tensor<4>, factor: usize, bilinear: bool) -> Tensor<4> {
    let [_, _, h, w] = x.dims();
    let mode = if bilinear { InterpolateMode::Bilinear } else { InterpolateMode::Nearest };
    let opts = InterpolateOptions::new(mode).with_align_corners(false).with_output_size([h * factor, w * factor]);
    ops::interpolate(x, opts)
}

/// The element-wise product of `all`, a `[b, c]` or `[b, c, 1, 1]` input scaling each
/// channel when `shape` is `[c, h, w]`; `None` when the ranks do not fit.
pub(super) fn multiply(all: Vec<Act>, batch: usize, shape: &[usize]) -> Option<Act> {
    if let [c, h, w] = *shape {
        let full = [batch, c, h, w];
        let mut acc: Option<Tensor<4>> = None;
        for a in all {
            let t = match a {
                Act::T4(t) if t.dims() == full => t,
                Act::T4(t) if t.dims() == [batch, c, 1, 1] => t.expand(full),
                Act::T2(t) if t.dims() == [batch, c] => t.reshape([batch, c, 1, 1]).expand(full),
                _ => return None,
            };
            acc = Some(match acc {
                Some(p) => p * t,
                None => t,
            });
        }
        return acc.map(Act::T4);
    }
    let mut it = all.into_iter();
    let mut acc = it.next()?;
    for a in it {
        acc = match (acc, a) {
            (Act::T2(x), Act::T2(y)) => Act::T2(x * y),
            (Act::T3(x), Act::T3(y)) => Act::T3(x * y),
            (Act::T4(x), Act::T4(y)) => Act::T4(x * y),
            _ => return None,
        };
    }
    Some(acc)
}
