//! The sequence steps of [`super::forward`]: `conv1d`, `maxpool1d`, `avgpool1d`,
//! `transpose`, and the padding mask that follows a sequence through them.
//!
//! Takes `[batch, t, c]` activations (time first, channels last) and the mask of the step's
//! input (`[batch, t]`, 1 on real positions, present when the model reads token ids); gives
//! the step's output and the mask of the output.
//!
//! **Mask rule.** Padding is at the end of a sequence (`text(...)` pads after the text), so a
//! mask is its count of real positions `n`. After a `conv1d` or a pool, output position `j`
//! is real when `j < n'`, where `n'` is the length the same layer gives a sequence of
//! exactly `n` positions (`⌊(n + pad − span) / stride⌋ + 1`, 0 when `n + pad < span`; the
//! same rule wav2vec 2.0 uses for its feature lengths). `conv1d` zeroes its input's padded
//! positions first, so a real window that reaches past the text reads zeros, as the
//! convolution's own padding would give. Together: the real positions of the output do not
//! depend on how much padding follows the text, exactly for `valid` padding and for
//! stride 1; with `same` and stride > 1 the split of the padding depends on `t`, so the
//! windows may shift by one position. A sequence too short for any window keeps none, and
//! the masked global pools give 0 for it.
//! Steps that keep the length keep the mask; steps that change the layout (flatten,
//! reshape, transpose, the global pools) end it.
//!
//! `conv1d` runs as burn's `conv2d` on a `[batch, c, 1, t]` map with a `[1, kernel]` kernel:
//! the vendored burn-flex computes that (groups 1) as one im2col GEMM forward and backward,
//! where its own `conv1d` takes burn's generic backward passes.

use burn::module::{Module, Param};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use burn::tensor::{Tensor, TensorData, module as ops};

use super::OpKind;

/// A 1-D convolution's parameters: weight `[filters, c / groups, kernel]` (PyTorch's
/// layout) and bias `[filters]`.
#[derive(Module, Debug)]
pub struct Conv1d {
    pub w: Param<Tensor<3>>,
    pub b: Param<Tensor<1>>,
}

/// `conv1d` of `x` (`[batch, t, c]`) → `[batch, t', filters]`; `mask` (the input's) zeroes
/// padded positions first.
pub(super) fn conv1d(x: Tensor<3>, c: &Conv1d, kind: &OpKind, mask: Option<&Tensor<2>>) -> Tensor<3> {
    let OpKind::Conv1d { stride, pad, dilation, groups, .. } = kind else { return x };
    let [batch, t, ch] = x.dims();
    let [filters, cg, kernel] = c.w.dims();
    let x = match mask.filter(|m| m.dims() == [batch, t]) {
        Some(m) => x * m.clone().reshape([batch, t, 1]),
        None => x,
    };
    let x = x.swap_dims(1, 2).reshape([batch, ch, 1, t]);
    let w = c.w.val().reshape([filters, cg, 1, kernel]);
    let opts = ConvOptions::new_with_padding([1, *stride], [(0, 0), (pad[0], pad[1])], [1, *dilation], *groups);
    let y = ops::conv2d(x, w, Some(c.b.val()), opts);
    let out = y.dims()[3];
    y.reshape([batch, filters, out]).swap_dims(1, 2)
}

/// `maxpool1d` (`max`) or `avgpool1d` of `[batch, t, c]` along `t`.
pub(super) fn pool1d(x: Tensor<3>, kernel: usize, stride: usize, max: bool) -> Tensor<3> {
    let x = x.swap_dims(1, 2);
    let y = if max {
        ops::max_pool1d(x, MaxPoolOptions::new([kernel]).with_stride([stride]))
    } else {
        ops::avg_pool1d(x, AvgPoolOptions::new([kernel]).with_stride([stride]))
    };
    y.swap_dims(1, 2)
}

/// The mask of a sequence step's output, from the mask of its input (see the header).
/// `None` where the output is no sequence of the input's positions.
pub(super) fn mask_after(
    kind: &OpKind,
    mask: Option<Tensor<2>>,
    out_len: Option<usize>,
) -> Result<Option<Tensor<2>>, String> {
    if *kind == OpKind::Input {
        return Ok(mask);
    }
    let (Some(mask), Some(len)) = (mask, out_len) else { return Ok(None) };
    let (kernel, stride, dilation, pad) = match kind {
        OpKind::Conv1d { kernel, stride, dilation, pad, .. } => (*kernel, *stride, *dilation, pad[0] + pad[1]),
        OpKind::MaxPool1d { kernel, stride } | OpKind::AvgPool1d { kernel, stride } => (*kernel, *stride, 1, 0),
        OpKind::Transpose
        | OpKind::Flatten
        | OpKind::Reshape
        | OpKind::GlobalAvgPool
        | OpKind::GlobalMaxPool
        | OpKind::Concat => return Ok(None),
        _ => return Ok(Some(mask).filter(|m| m.dims()[1] == len)),
    };
    let [batch, t] = mask.dims();
    let values = mask.clone().into_data().try_to_vec::<f32>().map_err(|e| format!("the padding mask: {e:?}"))?;
    let span = dilation.saturating_mul(kernel.max(1) - 1).saturating_add(1);
    let mut out = Vec::with_capacity(batch * len);
    for row in values.chunks(t.max(1)).take(batch) {
        let n = row.iter().filter(|v| **v > 0.5).count();
        let real = match (n + pad).checked_sub(span) {
            Some(room) => (room / stride.max(1) + 1).min(len),
            None => 0,
        };
        out.extend((0..len).map(|j| if j < real { 1.0f32 } else { 0.0 }));
    }
    Ok(Some(Tensor::from_data(TensorData::new(out, [batch, len]), &mask.device())))
}
