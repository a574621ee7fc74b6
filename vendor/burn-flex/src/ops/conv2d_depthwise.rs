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
//! Each plane is read through *phase planes* (built per plane in a scratch buffer): for stride
//! `(sh, sw)` the zero-padded input plane is split into `sh * sw` planes of `hs x ws`, phase
//! `(a, b)` holding padded rows `a, a + sh, ...` and columns `b, b + sw, ...` (stride 1: the one
//! padded plane). In a phase plane every tap `(ky, kx)` reads at a constant offset
//! `qy * ws + qx` (`qy = ky * dh / sh`, `qx = kx * dw / sw`, phase `(ky * dh % sh, kx * dw % sw)`)
//! from the *extended* output position `i = oy * ws + ox` (`ox < ws`: the columns from `wo` on
//! are computed and dropped), so each pass is a few long contiguous loops per plane, not short
//! loops per output row (rows are 7 to 14 wide in the benchmark's CNN):
//!
//! * forward: `y_ext[i] = bias + sum over taps of w_t * phase_t[off_t + i]`, in blocks of 32
//!   positions whose accumulators stay in registers across the taps, the taps in `(ky, kx)`
//!   order (as upstream's direct loop; a tap on a padding position adds `w * 0`);
//! * input gradient: per phase plane `dP[j] = sum over its taps of w_t * dy_ext[j - off_t]`
//!   (`dy_ext`: the output gradient in rows of `ws`, zeros in the extra columns and around), then
//!   the phase planes are interleaved back into `dx` (positions no tap reads get 0);
//! * weight gradient: `dw_t += sum over i of dy_ext[i] * phase_t[off_t + i]`, masked to the real
//!   output positions by a select (an inf read at a dropped position cannot turn the sum into
//!   NaN), per plane in 32 lane-wise f32 partial sums, added into f64 per tap in sample order.
//!
//! The block loops are compiled per SIMD level and dispatched at run time (macerator). Padding
//! may be asymmetric (only the begin side matters; the end side is implied by the output size);
//! stride and dilation are arbitrary. Results equal the f64 convolution up to f32 rounding
//! (the summation order of the gradients differs from a scalar loop's).

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
) -> Option<(Geom, Phases)> {
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
    Some((g, Phases::new(&g)?))
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

/// Output positions per block of the tap loops (two AVX-512 or four AVX2 registers of
/// accumulators, which stay in registers across the taps).
const BLOCK: usize = 32;

/// The phase-plane layout of one geometry (see the module header): `sh * sw` phase planes of
/// `hs x ws`, phase `(a, b)` holding the zero-padded input at rows `a, a + sh, ...` and columns
/// `b, b + sw, ...`, so that every tap reads its phase plane at a constant offset from the
/// extended output position `i = oy * ws + ox`.
#[derive(Debug)]
struct Phases {
    ws: usize,
    /// `hs * ws`.
    plane: usize,
    /// `plane` rounded up to [`BLOCK`].
    plane_pad: usize,
    /// The extended output length `(ho - 1) * ws + wo` (the last row without its tail).
    n: usize,
    /// `n` rounded up to [`BLOCK`].
    n_pad: usize,
    /// Per tap `(ky, kx)`, row-major: its phase `a * sw + b` and its offset `qy * ws + qx` in
    /// that phase plane.
    taps: Vec<(usize, usize)>,
    /// Per input row `iy`: its phase row as `(a * sw, r * ws)` (padded row `iy + ph = r * sh + a`),
    /// or `None` when `r >= hs` (a row no tap reads).
    rows: Vec<Option<(usize, usize)>>,
    /// Length of the phase buffer: the `sh * sw` planes, plus the tail every tap's reads of
    /// `n_pad` positions need (zeros).
    len: usize,
}

impl Phases {
    fn new(g: &Geom) -> Option<Phases> {
        let hs = g.ho.checked_add((g.kh - 1) * g.dh / g.sh)?;
        let ws = g.wo.checked_add((g.kw - 1) * g.dw / g.sw)?;
        let plane = hs.checked_mul(ws)?;
        let plane_pad = plane.checked_next_multiple_of(BLOCK)?;
        let n = (g.ho - 1) * ws + g.wo;
        let n_pad = n.checked_next_multiple_of(BLOCK)?;
        let mut taps = Vec::with_capacity(g.kh * g.kw);
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let (ry, rx) = (ky * g.dh, kx * g.dw);
                taps.push(((ry % g.sh) * g.sw + rx % g.sw, (ry / g.sh) * ws + rx / g.sw));
            }
        }
        let phases = plane.checked_mul(g.sh)?.checked_mul(g.sw)?;
        let mut len = phases;
        for &(q, off) in &taps {
            len = len.max(q.checked_mul(plane)?.checked_add(off)?.checked_add(n_pad)?);
        }
        let rows = ws.checked_mul(g.sw)?.max(plane_pad.checked_mul(g.sh)?.checked_mul(g.sw)?);
        if [len, rows, n_pad + plane_pad].iter().any(|&v| v > isize::MAX as usize / 8) {
            return None;
        }
        let rows = (0..g.h)
            .map(|iy| {
                let pr = iy + g.ph;
                let (a, r) = (pr % g.sh, pr / g.sh);
                (r < hs).then_some((a * g.sw, r * ws))
            })
            .collect();
        Some(Phases { ws, plane, plane_pad, n, n_pad, taps, rows, len })
    }

    /// Where tap `t` starts reading in the phase buffer.
    fn start(&self, t: usize) -> usize {
        let (q, off) = self.taps[t];
        q * self.plane + off
    }
}

/// Writes `buf[row0 + b * step + s] = src[ix]` (phase `b`'s row) for the input columns `ix` of
/// a row whose padded column `ix + pw = s * sw + b` lands in a phase column `s < ws`; for
/// stride 1 and 2 as a contiguous copy and a pair loop.
#[inline(always)]
fn split_row(src: &[f32], pw: usize, sw: usize, ws: usize, buf: &mut [f32], row0: usize, step: usize) {
    match sw {
        1 => {
            let m = src.len().min(ws.saturating_sub(pw));
            buf[row0 + pw..][..m].copy_from_slice(&src[..m]);
        }
        2 => {
            // The first column if it lands in phase 1, then pairs (phase 0, phase 1), then a
            // last column in phase 0.
            let (lo, hi) = buf.split_at_mut(row0 + step);
            let (d0, d1) = (&mut lo[row0..][..ws], &mut hi[..ws]);
            let mut ix = 0;
            if pw % 2 == 1 {
                if pw / 2 < ws {
                    d1[pw / 2] = src[0];
                }
                ix = 1;
            }
            let s0 = (ix + pw) / 2;
            if s0 >= ws || ix >= src.len() {
                return;
            }
            let pairs = ((src.len() - ix) / 2).min(ws - s0);
            let pairs_src = src[ix..ix + 2 * pairs].chunks_exact(2);
            for ((e, o), pair) in d0[s0..s0 + pairs].iter_mut().zip(&mut d1[s0..s0 + pairs]).zip(pairs_src) {
                *e = pair[0];
                *o = pair[1];
            }
            let last = ix + 2 * pairs;
            if last < src.len() && s0 + pairs < ws {
                d0[s0 + pairs] = src[last];
            }
        }
        _ => {
            for (ix, &v) in src.iter().enumerate() {
                let pc = ix + pw;
                let (b, s) = (pc % sw, pc / sw);
                if s < ws {
                    buf[row0 + b * step + s] = v;
                }
            }
        }
    }
}

/// The inverse of [`split_row`]: `dst[ix] = buf[row0 + b * step + s]` for the input columns whose padded
/// column lands in a phase column `s < ws` (the others are left as they are).
#[inline(always)]
fn join_row(buf: &[f32], row0: usize, step: usize, pw: usize, sw: usize, ws: usize, dst: &mut [f32]) {
    match sw {
        1 => {
            let m = dst.len().min(ws.saturating_sub(pw));
            dst[..m].copy_from_slice(&buf[row0 + pw..][..m]);
        }
        2 => {
            let (d0, d1) = (&buf[row0..][..ws], &buf[row0 + step..][..ws]);
            let mut ix = 0;
            if pw % 2 == 1 {
                if pw / 2 < ws {
                    dst[0] = d1[pw / 2];
                }
                ix = 1;
            }
            let s0 = (ix + pw) / 2;
            if s0 >= ws || ix >= dst.len() {
                return;
            }
            let pairs = ((dst.len() - ix) / 2).min(ws - s0);
            let pairs_dst = dst[ix..ix + 2 * pairs].chunks_exact_mut(2);
            for ((e, o), pair) in d0[s0..s0 + pairs].iter().zip(&d1[s0..s0 + pairs]).zip(pairs_dst) {
                pair[0] = *e;
                pair[1] = *o;
            }
            let last = ix + 2 * pairs;
            if last < dst.len() && s0 + pairs < ws {
                dst[last] = d0[s0 + pairs];
            }
        }
        _ => {
            for (ix, d) in dst.iter_mut().enumerate() {
                let pc = ix + pw;
                let (b, s) = (pc % sw, pc / sw);
                if s < ws {
                    *d = buf[row0 + b * step + s];
                }
            }
        }
    }
}

/// Copies the input plane `xp` (`h x w`) into the phase planes of `buf`. Only the positions of
/// input pixels are written, the same ones for every plane, so the padding positions keep the
/// zeros `buf` was allocated with.
#[inline(always)]
fn fill_phases(g: &Geom, lay: &Phases, xp: &[f32], buf: &mut [f32]) {
    for (xrow, at) in xp.chunks_exact(g.w).zip(&lay.rows) {
        if let Some((a, r)) = *at {
            split_row(xrow, g.pw, g.sw, lay.ws, buf, a * lay.plane + r, lay.plane);
        }
    }
}

/// `out[i] = init + sum over taps (start, w) of w * src[start + i]`, the taps in order, in
/// blocks of [`BLOCK`] positions (`out.len()` is a multiple of it).
#[inline(always)]
fn taps_body(out: &mut [f32], init: f32, src: &[f32], taps: &[(usize, f32)]) {
    let (out, _) = out.as_chunks_mut::<BLOCK>();
    for (k, o) in out.iter_mut().enumerate() {
        let mut acc = [init; BLOCK];
        for &(start, wv) in taps {
            let Some(s) = src[start + k * BLOCK..].first_chunk::<BLOCK>() else {
                continue;
            };
            for j in 0..BLOCK {
                acc[j] += wv * s[j];
            }
        }
        *o = acc;
    }
}

/// `sums[t] = sum over i of dy[i] * src[starts[t] + i]` where `mask[i]` is set (a select, so
/// an inf at a masked position cannot turn the sum into NaN), in [`BLOCK`] lane-wise partial
/// sums added at the end (`dy.len()` is a multiple of [`BLOCK`]).
#[inline(always)]
fn dots_body(dy: &[f32], mask: &[u32], src: &[f32], starts: &[usize], sums: &mut [f32]) {
    let (dy, _) = dy.as_chunks::<BLOCK>();
    let (mask, _) = mask.as_chunks::<BLOCK>();
    for (&start, sum) in starts.iter().zip(sums.iter_mut()) {
        let mut acc = [0.0f32; BLOCK];
        let (s, _) = src[start..start + dy.len() * BLOCK].as_chunks::<BLOCK>();
        for ((d, m), s) in dy.iter().zip(mask).zip(s) {
            for j in 0..BLOCK {
                acc[j] += f32::from_bits((d[j] * s[j]).to_bits() & m[j]);
            }
        }
        // A tree of halves (vector adds), not 31 dependent scalar adds.
        let mut n = BLOCK;
        while n > 1 {
            n /= 2;
            for j in 0..n {
                acc[j] += acc[j + n];
            }
        }
        *sum = acc[0];
    }
}

#[inline(always)]
fn forward_body(g: &Geom, lay: &Phases, xd: &[f32], wd: &[f32], bd: &[f32], y: &mut [f32]) {
    let (hw, ohw, kk) = (g.h * g.w, g.ho * g.wo, g.kh * g.kw);
    let mut buf = vec![0.0f32; lay.len];
    let mut ext = vec![0.0f32; lay.n_pad];
    let mut taps: Vec<(usize, f32)> = (0..kk).map(|t| (lay.start(t), 0.0)).collect();
    for (p, out) in y.chunks_exact_mut(ohw).enumerate() {
        let c = p % g.c;
        fill_phases(g, lay, &xd[p * hw..][..hw], &mut buf);
        for (tap, &wv) in taps.iter_mut().zip(&wd[c * kk..][..kk]) {
            tap.1 = wv;
        }
        taps_body(&mut ext, bd.get(c).copied().unwrap_or(0.0), &buf, &taps);
        for (orow, erow) in out.chunks_exact_mut(g.wo).zip(ext.chunks(lay.ws)) {
            orow.copy_from_slice(&erow[..g.wo]);
        }
    }
}

#[inline(always)]
fn x_backward_body(g: &Geom, lay: &Phases, wd: &[f32], dyd: &[f32], dx: &mut [f32]) {
    let (hw, ohw, kk) = (g.h * g.w, g.ho * g.wo, g.kh * g.kw);
    let phases = g.sh * g.sw;
    // dP_q[j] = sum over the taps t of phase q of w_t * dy_ext[j - off_t]: the output gradient
    // extended to rows of `ws` (zeros in the extra columns) behind `shift` zeros.
    let shift = lay.taps.iter().map(|&(_, off)| off).max().unwrap_or(0);
    let mut dy_pad = vec![0.0f32; shift + lay.plane_pad];
    let mut dbuf = vec![0.0f32; phases * lay.plane_pad];
    let mut groups: Vec<Vec<(usize, f32)>> = vec![Vec::new(); phases];
    let mut index: Vec<Vec<usize>> = vec![Vec::new(); phases];
    for (t, &(q, off)) in lay.taps.iter().enumerate() {
        groups[q].push((shift - off, 0.0));
        index[q].push(t);
    }
    for (p, dxp) in dx.chunks_exact_mut(hw).enumerate() {
        let c = p % g.c;
        let wp = &wd[c * kk..][..kk];
        for (oy, grow) in dyd[p * ohw..][..ohw].chunks_exact(g.wo).enumerate() {
            dy_pad[shift + oy * lay.ws..][..g.wo].copy_from_slice(grow);
        }
        for q in 0..phases {
            if groups[q].is_empty() {
                continue;
            }
            for (tap, &t) in groups[q].iter_mut().zip(&index[q]) {
                tap.1 = wp[t];
            }
            taps_body(&mut dbuf[q * lay.plane_pad..][..lay.plane_pad], 0.0, &dy_pad, &groups[q]);
        }
        // Rows past the phase planes, and columns past them (left by join_row), are read by no
        // tap: their gradient is the 0 dx was allocated with.
        for (dxrow, at) in dxp.chunks_exact_mut(g.w).zip(&lay.rows) {
            if let Some((a, r)) = *at {
                join_row(&dbuf, a * lay.plane_pad + r, lay.plane_pad, g.pw, g.sw, lay.ws, dxrow);
            }
        }
    }
}

#[inline(always)]
fn weight_backward_body(g: &Geom, lay: &Phases, xd: &[f32], dyd: &[f32], acc: &mut [f64]) {
    let (hw, ohw, kk) = (g.h * g.w, g.ho * g.wo, g.kh * g.kw);
    let mut buf = vec![0.0f32; lay.len];
    let mut dy_ext = vec![0.0f32; lay.n_pad];
    let mask: Vec<u32> = (0..lay.n_pad).map(|i| if i < lay.n && i % lay.ws < g.wo { u32::MAX } else { 0 }).collect();
    let starts: Vec<usize> = (0..kk).map(|t| lay.start(t)).collect();
    let mut sums = vec![0.0f32; kk];
    for p in 0..g.batch * g.c {
        let c = p % g.c;
        fill_phases(g, lay, &xd[p * hw..][..hw], &mut buf);
        for (oy, grow) in dyd[p * ohw..][..ohw].chunks_exact(g.wo).enumerate() {
            dy_ext[oy * lay.ws..][..g.wo].copy_from_slice(grow);
        }
        dots_body(&dy_ext, &mask, &buf, &starts, &mut sums);
        for (a, &s) in acc[c * kk..][..kk].iter_mut().zip(&sums) {
            *a += f64::from(s);
        }
    }
}

// The plane loops are compiled once per SIMD level and dispatched at run time (macerator, as
// burn-flex's other kernels), so that the block loops run as wide as the CPU allows.
#[cfg(feature = "simd")]
#[macerator::with_simd]
fn forward_planes<S: macerator::Simd>(
    g: &Geom,
    lay: &Phases,
    xd: &[f32],
    wd: &[f32],
    bd: &[f32],
    y: &mut [f32],
) {
    forward_body(g, lay, xd, wd, bd, y);
}

#[cfg(not(feature = "simd"))]
fn forward_planes(g: &Geom, lay: &Phases, xd: &[f32], wd: &[f32], bd: &[f32], y: &mut [f32]) {
    forward_body(g, lay, xd, wd, bd, y);
}

#[cfg(feature = "simd")]
#[macerator::with_simd]
fn x_backward_planes<S: macerator::Simd>(g: &Geom, lay: &Phases, wd: &[f32], dyd: &[f32], dx: &mut [f32]) {
    x_backward_body(g, lay, wd, dyd, dx);
}

#[cfg(not(feature = "simd"))]
fn x_backward_planes(g: &Geom, lay: &Phases, wd: &[f32], dyd: &[f32], dx: &mut [f32]) {
    x_backward_body(g, lay, wd, dyd, dx);
}

#[cfg(feature = "simd")]
#[macerator::with_simd]
fn weight_backward_planes<S: macerator::Simd>(g: &Geom, lay: &Phases, xd: &[f32], dyd: &[f32], acc: &mut [f64]) {
    weight_backward_body(g, lay, xd, dyd, acc);
}

#[cfg(not(feature = "simd"))]
fn weight_backward_planes(g: &Geom, lay: &Phases, xd: &[f32], dyd: &[f32], acc: &mut [f64]) {
    weight_backward_body(g, lay, xd, dyd, acc);
}

/// Forward convolution, or `Err` with the inputs back when this path does not apply.
pub(crate) fn conv2d(
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    options: &ConvOptions<2>,
) -> Result<FlexTensor, (FlexTensor, FlexTensor, Option<FlexTensor>)> {
    let Some((g, lay)) = geometry(&x, &weight, options, None) else {
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
    let mut y = vec![0.0f32; g.batch * g.c * g.ho * g.wo];
    let bd: &[f32] = bias.as_ref().map_or(&[], |b| b.storage());
    forward_planes(&g, &lay, x.storage(), weight.storage(), bd, &mut y);
    Ok(f32_tensor(y, Shape::from(vec![g.batch, g.c, g.ho, g.wo])))
}

/// Gradient with respect to the input, or `None` when this path does not apply.
pub(crate) fn conv2d_x_backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    output_grad: &FlexTensor,
    options: &ConvOptions<2>,
) -> Option<FlexTensor> {
    let (g, lay) = geometry(x, weight, options, Some(grad_hw(x, weight, output_grad)?))?;
    let weight = weight.to_contiguous();
    let dy = output_grad.to_contiguous();
    let mut dx = vec![0.0f32; g.batch * g.c * g.h * g.w];
    x_backward_planes(&g, &lay, weight.storage(), dy.storage(), &mut dx);
    Some(f32_tensor(dx, Shape::from(vec![g.batch, g.c, g.h, g.w])))
}

/// Gradient with respect to the weight, or `None` when this path does not apply.
pub(crate) fn conv2d_weight_backward(
    x: &FlexTensor,
    weight: &FlexTensor,
    output_grad: &FlexTensor,
    options: &ConvOptions<2>,
) -> Option<FlexTensor> {
    let (g, lay) = geometry(x, weight, options, Some(grad_hw(x, weight, output_grad)?))?;
    let x = x.to_contiguous();
    let dy = output_grad.to_contiguous();
    // Sums in f64 per tap, over the batch in sample order.
    let mut acc = vec![0.0f64; g.c * g.kh * g.kw];
    weight_backward_planes(&g, &lay, x.storage(), dy.storage(), &mut acc);
    let dw: Vec<f32> = acc.into_iter().map(|v| v as f32).collect();
    Some(f32_tensor(dw, Shape::from(vec![g.c, 1, g.kh, g.kw])))
}
