//! 2-D max pooling with a 2x2 kernel, stride 2, no padding and dilation 1 on f32 NCHW tensors:
//! the forward pass with indices and its backward pass, row by row.
//!
//! Added by the bma project (see `VENDORED.md`). burn-flex's generic pooling (`pool.rs`) runs
//! every 2-D pooling as a 3-D one, one output element at a time through a closure that computes
//! the valid kernel range of each axis, a triple loop and a bounds-checked load per tap; its
//! backward pass scatters each output gradient through its index. For the common `maxpool`
//! layer of a small CNN that was about a third of a training step. Here each pair of input rows
//! gives one output row in a single pass over `chunks_exact(2)` of both rows (no index arithmetic
//! beyond a running base, no bounds checks in the loop), and the backward pass writes every
//! input element of the pair of rows once, selecting the output gradient where the stored index
//! points at it (no scatter, no separate zeroing pass). Both loops are compiled per SIMD level
//! and dispatched at run time through macerator, like the other kernels of this crate.
//!
//! The results are those of the generic path, bit for bit: the maximum is the first of the
//! window's largest values in row-major order, except that a NaN always wins and the last NaN is
//! reported (PyTorch's rule, and the generic code's); the index is the flat position in the
//! input plane; odd heights and widths drop the last row or column (floor mode, or ceil mode with
//! even sizes, which give the same windows). The backward pass adds `+0.0` as the generic
//! scatter-add does (so a `-0.0` gradient comes out as `+0.0`) and, if any index falls outside
//! its window (indices not produced by this forward pass), returns `None` so that the caller
//! runs the generic scatter instead.

use alloc::vec;
use burn_backend::DType;
use burn_std::{Bytes, Shape};

use crate::{FlexTensor, Layout};

/// `(n * c, h, w, out_h, out_w)` when the fast path applies to this call, else `None`.
fn applies(
    x: &FlexTensor,
    kernel_size: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    ceil_mode: bool,
) -> Option<(usize, usize, usize, usize, usize)> {
    let s = x.layout().shape();
    if x.dtype() != DType::F32
        || s.num_dims() != 4
        || kernel_size != [2, 2]
        || stride != [2, 2]
        || padding != [0, 0]
        || dilation != [1, 1]
    {
        return None;
    }
    let (planes, h, w) = (s[0] * s[1], s[2], s[3]);
    // With ceil mode an odd size would add a partial window: the generic path handles it.
    if planes == 0 || h < 2 || w < 2 || (ceil_mode && (h % 2 == 1 || w % 2 == 1)) {
        return None;
    }
    Some((planes, h, w, h / 2, w / 2))
}

/// The forward pass (output, i64 indices into each input plane), or `None` when the call is not
/// the 2x2/stride-2 case over a rank-4 f32 tensor with at least one window.
pub(crate) fn forward(
    x: &FlexTensor,
    kernel_size: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    ceil_mode: bool,
) -> Option<(FlexTensor, FlexTensor)> {
    let (planes, h, w, oh, ow) = applies(x, kernel_size, stride, padding, dilation, ceil_mode)?;
    let x = x.to_contiguous();
    let xd: &[f32] = x.storage();
    let (in_plane, out_plane) = (h * w, oh * ow);
    let mut out = vec![0.0f32; planes * out_plane];
    let mut idx = vec![0i64; planes * out_plane];
    let run = |p: usize, o: &mut [f32], i: &mut [i64]| {
        forward_plane(&xd[p * in_plane..][..in_plane], w, oh, ow, o, i)
    };
    #[cfg(feature = "rayon")]
    if out.len() >= crate::ops::PARALLEL_THRESHOLD / 4 && planes > 1 {
        use rayon::prelude::*;
        out.par_chunks_mut(out_plane)
            .zip(idx.par_chunks_mut(out_plane))
            .enumerate()
            .for_each(|(p, (o, i))| run(p, o, i));
    } else {
        for (p, (o, i)) in out
            .chunks_exact_mut(out_plane)
            .zip(idx.chunks_exact_mut(out_plane))
            .enumerate()
        {
            run(p, o, i);
        }
    }
    #[cfg(not(feature = "rayon"))]
    for (p, (o, i)) in out
        .chunks_exact_mut(out_plane)
        .zip(idx.chunks_exact_mut(out_plane))
        .enumerate()
    {
        run(p, o, i);
    }
    let s = x.layout().shape();
    let shape = Shape::from(vec![s[0], s[1], oh, ow]);
    Some((
        FlexTensor::new(
            Bytes::from_elems(out),
            Layout::contiguous(shape.clone()),
            DType::F32,
        ),
        FlexTensor::new(
            Bytes::from_elems(idx),
            Layout::contiguous(shape),
            DType::I64,
        ),
    ))
}

/// The backward pass: the input gradient, or `None` when the call is not the case [`forward`]
/// takes, the indices are neither i64 nor i32, the shapes disagree, or an index lies outside its
/// window (then the caller's generic scatter gives the result).
#[allow(clippy::too_many_arguments)]
pub(crate) fn backward(
    x: &FlexTensor,
    kernel_size: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    ceil_mode: bool,
    grad: &FlexTensor,
    indices: &FlexTensor,
) -> Option<FlexTensor> {
    let (planes, h, w, oh, ow) = applies(x, kernel_size, stride, padding, dilation, ceil_mode)?;
    let s = x.layout().shape();
    let expect = [s[0], s[1], oh, ow];
    if grad.dtype() != DType::F32
        || grad.layout().shape().as_slice() != expect
        || indices.layout().shape().as_slice() != expect
    {
        return None;
    }
    let grad = grad.to_contiguous();
    let gd: &[f32] = grad.storage();
    let indices = indices.to_contiguous();
    let dx = match indices.dtype() {
        DType::I64 => backward_all::<i64>(gd, indices.storage(), planes, h, w, oh, ow)?,
        DType::I32 => backward_all::<i32>(gd, indices.storage(), planes, h, w, oh, ow)?,
        _ => return None,
    };
    Some(FlexTensor::new(
        Bytes::from_elems(dx),
        Layout::contiguous(Shape::from(vec![s[0], s[1], h, w])),
        DType::F32,
    ))
}

fn backward_all<I: Copy + Into<i64> + Sync>(
    gd: &[f32],
    id: &[I],
    planes: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
) -> Option<alloc::vec::Vec<f32>> {
    let (in_plane, out_plane) = (h * w, oh * ow);
    let mut dx = vec![0.0f32; planes * in_plane];
    let run = |p: usize, d: &mut [f32]| {
        let (g, i) = (
            &gd[p * out_plane..][..out_plane],
            &id[p * out_plane..][..out_plane],
        );
        backward_plane(g, i, w, oh, ow, d)
    };
    #[cfg(feature = "rayon")]
    let ok = if dx.len() >= crate::ops::PARALLEL_THRESHOLD && planes > 1 {
        use rayon::prelude::*;
        dx.par_chunks_mut(in_plane)
            .enumerate()
            .map(|(p, d)| run(p, d))
            .reduce(|| true, |a, b| a & b)
    } else {
        dx.chunks_exact_mut(in_plane)
            .enumerate()
            .fold(true, |ok, (p, d)| ok & run(p, d))
    };
    #[cfg(not(feature = "rayon"))]
    let ok = dx
        .chunks_exact_mut(in_plane)
        .enumerate()
        .fold(true, |ok, (p, d)| ok & run(p, d));
    ok.then_some(dx)
}

/// One input plane (`oh * 2` or more rows of width `w`) to its `oh x ow` maxima and indices.
#[inline(always)]
fn forward_plane_body(x: &[f32], w: usize, oh: usize, ow: usize, out: &mut [f32], idx: &mut [i64]) {
    for (r, (o, i)) in out
        .chunks_exact_mut(ow)
        .zip(idx.chunks_exact_mut(ow))
        .enumerate()
        .take(oh)
    {
        let top = &x[2 * r * w..][..2 * ow];
        let bottom = &x[(2 * r + 1) * w..][..2 * ow];
        forward_row_body(top, bottom, (2 * r * w) as i64, w as i64, o, i);
    }
}

/// One input plane's gradient from its output gradient and indices; false if an index lies
/// outside its window.
#[inline(always)]
fn backward_plane_body<I: Copy + Into<i64>>(
    g: &[f32],
    id: &[I],
    w: usize,
    oh: usize,
    ow: usize,
    dx: &mut [f32],
) -> bool {
    let mut ok = true;
    for (r, (g, i)) in g
        .chunks_exact(ow)
        .zip(id.chunks_exact(ow))
        .enumerate()
        .take(oh)
    {
        let (top, bottom) = dx[2 * r * w..][..2 * w].split_at_mut(w);
        ok &= backward_row_body(
            g,
            i,
            (2 * r * w) as i64,
            w as i64,
            &mut top[..2 * ow],
            &mut bottom[..2 * ow],
        );
    }
    // Rows and columns past the last window (odd sizes) keep their zeros.
    ok
}

#[inline(always)]
fn forward_row_body(top: &[f32], bottom: &[f32], base: i64, w: i64, o: &mut [f32], i: &mut [i64]) {
    for (j, (((o, i), t), b)) in o
        .iter_mut()
        .zip(i.iter_mut())
        .zip(top.chunks_exact(2))
        .zip(bottom.chunks_exact(2))
        .enumerate()
    {
        let p = base + 2 * j as i64;
        // The generic scan order (row-major), keeping the first maximum; a NaN always wins.
        let (mut m, mut k) = (t[0], p);
        if t[1] > m || t[1].is_nan() {
            (m, k) = (t[1], p + 1);
        }
        if b[0] > m || b[0].is_nan() {
            (m, k) = (b[0], p + w);
        }
        if b[1] > m || b[1].is_nan() {
            (m, k) = (b[1], p + w + 1);
        }
        *o = m;
        *i = k;
    }
}

#[inline(always)]
fn backward_row_body<I: Copy + Into<i64>>(
    g: &[f32],
    id: &[I],
    base: i64,
    w: i64,
    top: &mut [f32],
    bottom: &mut [f32],
) -> bool {
    let mut hits = 0usize;
    for (j, (((&g, &k), t), b)) in g
        .iter()
        .zip(id.iter())
        .zip(top.chunks_exact_mut(2))
        .zip(bottom.chunks_exact_mut(2))
        .enumerate()
    {
        let k: i64 = k.into();
        let k = k - (base + 2 * j as i64);
        // `0.0 + g`, as the generic scatter-add computes it.
        let pick = |at: i64| if k == at { 0.0 + g } else { 0.0 };
        t[0] = pick(0);
        t[1] = pick(1);
        b[0] = pick(w);
        b[1] = pick(w + 1);
        hits += usize::from(k == 0 || k == 1 || k == w || k == w + 1);
    }
    hits == g.len()
}

// The plane loops compiled once per SIMD level and dispatched at run time (macerator, as
// burn-flex's other kernels), once per plane.
#[cfg(feature = "simd")]
#[macerator::with_simd]
fn forward_plane<'a, S: macerator::Simd>(
    x: &'a [f32],
    w: usize,
    oh: usize,
    ow: usize,
    out: &'a mut [f32],
    idx: &'a mut [i64],
) {
    forward_plane_body(x, w, oh, ow, out, idx)
}

#[cfg(not(feature = "simd"))]
fn forward_plane(x: &[f32], w: usize, oh: usize, ow: usize, out: &mut [f32], idx: &mut [i64]) {
    forward_plane_body(x, w, oh, ow, out, idx)
}

#[cfg(feature = "simd")]
#[macerator::with_simd]
fn backward_plane<'a, S: macerator::Simd, I: Copy + Into<i64>>(
    g: &'a [f32],
    id: &'a [I],
    w: usize,
    oh: usize,
    ow: usize,
    dx: &'a mut [f32],
) -> bool {
    backward_plane_body(g, id, w, oh, ow, dx)
}

#[cfg(not(feature = "simd"))]
fn backward_plane<I: Copy + Into<i64>>(
    g: &[f32],
    id: &[I],
    w: usize,
    oh: usize,
    ow: usize,
    dx: &mut [f32],
) -> bool {
    backward_plane_body(g, id, w, oh, ow, dx)
}
