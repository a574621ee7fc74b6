//! f32 depthwise 2-D convolutions (`groups == c_in == c_out`, weight `[c, 1, kh, kw]`): the
//! forward pass and the gradients for the input and the weight as direct loops over each
//! `(sample, channel)` plane.
//!
//! Added by the bma project (see `VENDORED.md`). Upstream 0.22.1 runs the forward pass of an
//! asymmetrically padded depthwise convolution (TensorFlow's `same` with stride 2) after copying
//! the input into a padded tensor, and inherits burn-backend's default backward passes, which for
//! `groups > 1` compute the weight gradient as one convolution per group (a `[1, batch, h, w]`
//! input against a `[batch, 1, ho, wo]` kernel, plus a slice-assign into the result) and the
//! input gradient as a grouped transposed convolution. Here each pass reads the NCHW planes
//! where they are:
//!
//! * forward: `y[b, c, oy, ox] = bias[c] + sum over (ky, kx) of w[c, ky, kx] * x[b, c, iy, ix]`
//!   with `iy = oy * sh + ky * dh - ph`, `ix = ox * sw + kx * dw - pw`, taps outside the input
//!   skipped (zero padding);
//! * input gradient: the same taps as a scatter, `dx[b, c, iy, ix] += w[c, ky, kx] * dy[b, c, oy, ox]`;
//! * weight gradient: `dw[c, ky, kx] = sum over (b, oy, ox) of dy[b, c, oy, ox] * x[b, c, iy, ix]`.
//!
//! The valid output columns of each kernel column are computed once, so the inner loops run
//! over contiguous output rows without bounds tests. Padding may be asymmetric (only the begin
//! side matters; the end side is implied by the output size); stride and dilation are arbitrary.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_backend::ops::ConvOptions;
use burn_std::{Bytes, Shape};

use crate::{FlexTensor, Layout};

/// Shapes and options of one depthwise convolution.
#[derive(Clone, Copy, Debug)]
struct Geom {
    batch: usize,
    c: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    ph: usize,
    pw: usize,
    dh: usize,
    dw: usize,
    ho: usize,
    wo: usize,
}

impl Geom {
    /// The output columns `ox` whose input column `ox * sw + kx * dw - pw` lies in `0..w`.
    fn cols(&self, kx: usize) -> core::ops::Range<usize> {
        let off = kx * self.dw;
        // ox * sw + off >= pw  <=>  ox >= ceil((pw - off) / sw)
        let lo = if off >= self.pw { 0 } else { (self.pw - off).div_ceil(self.sw) };
        // ox * sw + off - pw <= w - 1  <=>  ox <= (w - 1 + pw - off) / sw
        let hi = if self.w + self.pw > off { ((self.w - 1 + self.pw - off) / self.sw + 1).min(self.wo) } else { 0 };
        lo..hi.max(lo)
    }

    /// The input row of output row `oy` and kernel row `ky`, if inside the input.
    fn row(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.sh + ky * self.dh).checked_sub(self.ph).filter(|r| *r < self.h)
    }
}

fn out_size(input: usize, kernel: usize, stride: usize, pad: (usize, usize), dilation: usize) -> usize {
    let span = dilation * (kernel - 1) + 1;
    let padded = input + pad.0 + pad.1;
    if padded < span { 0 } else { (padded - span) / stride + 1 }
}

/// The geometry if this is an f32 depthwise convolution of rank-4 tensors without a zero-sized
/// dimension; `out_hw` is the output size when known (the backward passes read it from the
/// output gradient).
fn geometry(
    x: &FlexTensor,
    weight: &FlexTensor,
    options: &ConvOptions<2>,
    out_hw: Option<(usize, usize)>,
) -> Option<Geom> {
    if x.dtype() != DType::F32 || weight.dtype() != DType::F32 {
        return None;
    }
    let xs = x.layout().shape();
    let ws = weight.layout().shape();
    if xs.num_dims() != 4 || ws.num_dims() != 4 {
        return None;
    }
    let c = xs[1];
    if options.groups != c || ws[0] != c || ws[1] != 1 {
        return None;
    }
    let (ph, pw) = (options.padding[0], options.padding[1]);
    let (ho, wo) = out_hw.unwrap_or_else(|| {
        (
            out_size(xs[2], ws[2], options.stride[0], ph, options.dilation[0]),
            out_size(xs[3], ws[3], options.stride[1], pw, options.dilation[1]),
        )
    });
    let g = Geom {
        batch: xs[0],
        c,
        h: xs[2],
        w: xs[3],
        kh: ws[2],
        kw: ws[3],
        sh: options.stride[0],
        sw: options.stride[1],
        ph: ph.0,
        pw: pw.0,
        dh: options.dilation[0],
        dw: options.dilation[1],
        ho,
        wo,
    };
    let dims = [g.batch, g.c, g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.ho, g.wo];
    if dims.contains(&0) {
        return None;
    }
    let fits = [
        g.batch.checked_mul(g.c)?.checked_mul(g.h)?.checked_mul(g.w)?,
        g.batch.checked_mul(g.c)?.checked_mul(g.ho)?.checked_mul(g.wo)?,
        (g.ho * g.sh).checked_add(g.kh * g.dh)?,
        (g.wo * g.sw).checked_add(g.kw * g.dw)?,
    ];
    if fits.iter().any(|&n| n > isize::MAX as usize / 8) {
        return None;
    }
    Some(g)
}

fn f32_tensor(data: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::new(Bytes::from_elems(data), Layout::contiguous(shape), DType::F32)
}

/// The output gradient's spatial size, if it is an f32 rank-4 tensor matching `x` and `weight`.
fn grad_hw(x: &FlexTensor, weight: &FlexTensor, output_grad: &FlexTensor) -> Option<(usize, usize)> {
    let s = output_grad.layout().shape();
    if output_grad.dtype() != DType::F32 || s.num_dims() != 4 {
        return None;
    }
    let (xs, ws) = (x.layout().shape(), weight.layout().shape());
    if s[0] != xs[0] || s[1] != ws[0] {
        return None;
    }
    Some((s[2], s[3]))
}

/// Forward convolution, or `Err` with the inputs back when this path does not apply.
pub(crate) fn conv2d(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: &ConvOptions<2>,
) -> Result<FlexTensor, (FlexTensor, FlexTensor, Option<FlexTensor>)> {
    let Some(g) = geometry(&x, &weight, options, None) else {
        return Err((x, weight, bias));
    };
    if let Some(b) = &bias
        && (b.dtype() != DType::F32 || b.layout().num_elements() != g.c)
    {
        return Err((x, weight, bias));
    }
    let x = x.to_contiguous();
    let weight = weight.to_contiguous();
    let bias = bias.map(|b| b.to_contiguous());
    let (xd, wd): (&[f32], &[f32]) = (x.storage(), weight.storage());
    let bd: Option<&[f32]> = bias.as_ref().map(|b| b.storage());
    let (hw, ohw, kk) = (g.h * g.w, g.ho * g.wo, g.kh * g.kw);
    let cols: Vec<_> = (0..g.kw).map(|kx| g.cols(kx)).collect();
    let mut y = vec![0.0f32; g.batch * g.c * ohw];
    for (p, out) in y.chunks_exact_mut(ohw).enumerate() {
        let c = p % g.c;
        let (xp, wp) = (&xd[p * hw..(p + 1) * hw], &wd[c * kk..(c + 1) * kk]);
        out.fill(bd.map_or(0.0, |b| b[c]));
        for oy in 0..g.ho {
            let orow = &mut out[oy * g.wo..(oy + 1) * g.wo];
            for ky in 0..g.kh {
                let Some(iy) = g.row(oy, ky) else { continue };
                let xrow = &xp[iy * g.w..(iy + 1) * g.w];
                for (kx, r) in cols.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
                    let wv = wp[ky * g.kw + kx];
                    let start = r.start * g.sw + kx * g.dw - g.pw;
                    if g.sw == 1 {
                        let xs = &xrow[start..start + r.len()];
                        for (o, xv) in orow[r.clone()].iter_mut().zip(xs) {
                            *o += wv * xv;
                        }
                    } else {
                        for (i, o) in orow[r.clone()].iter_mut().enumerate() {
                            *o += wv * xrow[start + i * g.sw];
                        }
                    }
                }
            }
        }
    }
    Ok(f32_tensor(y, Shape::from(vec![g.batch, g.c, g.ho, g.wo])))
}

/// Gradient with respect to the input, or `None` when this path does not apply.
pub(crate) fn conv2d_x_backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    output_grad: &FlexTensor,
    options: &ConvOptions<2>,
) -> Option<FlexTensor> {
    let g = geometry(x, weight, options, Some(grad_hw(x, weight, output_grad)?))?;
    let weight = weight.to_contiguous();
    let dy = output_grad.to_contiguous();
    let (wd, dyd): (&[f32], &[f32]) = (weight.storage(), dy.storage());
    let (hw, ohw, kk) = (g.h * g.w, g.ho * g.wo, g.kh * g.kw);
    let cols: Vec<_> = (0..g.kw).map(|kx| g.cols(kx)).collect();
    let mut dx = vec![0.0f32; g.batch * g.c * hw];
    for (p, dxp) in dx.chunks_exact_mut(hw).enumerate() {
        let c = p % g.c;
        let (dyp, wp) = (&dyd[p * ohw..(p + 1) * ohw], &wd[c * kk..(c + 1) * kk]);
        for oy in 0..g.ho {
            let grow = &dyp[oy * g.wo..(oy + 1) * g.wo];
            for ky in 0..g.kh {
                let Some(iy) = g.row(oy, ky) else { continue };
                let xrow = &mut dxp[iy * g.w..(iy + 1) * g.w];
                for (kx, r) in cols.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
                    let wv = wp[ky * g.kw + kx];
                    let start = r.start * g.sw + kx * g.dw - g.pw;
                    if g.sw == 1 {
                        let xs = &mut xrow[start..start + r.len()];
                        for (xv, gv) in xs.iter_mut().zip(&grow[r.clone()]) {
                            *xv += wv * gv;
                        }
                    } else {
                        for (i, gv) in grow[r.clone()].iter().enumerate() {
                            xrow[start + i * g.sw] += wv * gv;
                        }
                    }
                }
            }
        }
    }
    Some(f32_tensor(dx, Shape::from(vec![g.batch, g.c, g.h, g.w])))
}

/// Gradient with respect to the weight, or `None` when this path does not apply.
pub(crate) fn conv2d_weight_backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    output_grad: &FlexTensor,
    options: &ConvOptions<2>,
) -> Option<FlexTensor> {
    let g = geometry(x, weight, options, Some(grad_hw(x, weight, output_grad)?))?;
    let x = x.to_contiguous();
    let dy = output_grad.to_contiguous();
    let (xd, dyd): (&[f32], &[f32]) = (x.storage(), dy.storage());
    let (hw, ohw, kk) = (g.h * g.w, g.ho * g.wo, g.kh * g.kw);
    let cols: Vec<_> = (0..g.kw).map(|kx| g.cols(kx)).collect();
    // Sums in f64 per tap, over the batch in sample order.
    let mut acc = vec![0.0f64; g.c * kk];
    for p in 0..g.batch * g.c {
        let c = p % g.c;
        let (xp, dyp) = (&xd[p * hw..(p + 1) * hw], &dyd[p * ohw..(p + 1) * ohw]);
        let taps = &mut acc[c * kk..(c + 1) * kk];
        for oy in 0..g.ho {
            let grow = &dyp[oy * g.wo..(oy + 1) * g.wo];
            for ky in 0..g.kh {
                let Some(iy) = g.row(oy, ky) else { continue };
                let xrow = &xp[iy * g.w..(iy + 1) * g.w];
                for (kx, r) in cols.iter().enumerate().filter(|(_, r)| !r.is_empty()) {
                    let start = r.start * g.sw + kx * g.dw - g.pw;
                    let mut s = 0.0f32;
                    if g.sw == 1 {
                        for (gv, xv) in grow[r.clone()].iter().zip(&xrow[start..start + r.len()]) {
                            s += gv * xv;
                        }
                    } else {
                        for (i, gv) in grow[r.clone()].iter().enumerate() {
                            s += gv * xrow[start + i * g.sw];
                        }
                    }
                    taps[ky * g.kw + kx] += f64::from(s);
                }
            }
        }
    }
    let dw: Vec<f32> = acc.into_iter().map(|v| v as f32).collect();
    Some(f32_tensor(dw, Shape::from(vec![g.c, 1, g.kh, g.kw])))
}
