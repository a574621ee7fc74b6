//! f32 2-D convolutions with `groups == 1` as batched im2col + one GEMM per chunk of the batch.
//!
//! Added by the bma project (see `VENDORED.md`). Upstream 0.22.1 runs the forward convolution as
//! one small GEMM per sample (`[c_out, k] x [k, 512-pixel tile]`), the weight gradient as another
//! convolution with the batch and channel axes swapped (burn-backend's default), and the input
//! gradient as a transposed convolution. For small feature maps (8x8 digits, 32 channels) those
//! are many small GEMMs dominated by packing and call overhead. Here every pass is one large GEMM
//! over the whole batch (or over chunks of it whose column buffer stays under [`MAX_COLS`]):
//!
//! * columns `cols[k, n]`, `k = (ci, ky, kx)` (the weight's own layout, so no weight permutation),
//!   `n = (b, oy, ox)`: each row is filled by contiguous runs of an NCHW input row;
//! * forward: `y[co, n] = W[co, k] x cols[k, n]`, then `HoWo`-long blocks are moved to NCHW;
//! * weight gradient: `dW^T[k, co] = cols[k, n] x dY[co, n]^T` (accumulated over chunks, then
//!   transposed);
//! * input gradient: `dcols[k, n] = W[co, k]^T x dY[co, n]`, then col2im (scatter-add) into dX;
//! * bias gradient: a sum of `dY` over batch and pixels.
//!
//! For stride 1 with `wo == w` (`same` padding), im2col and col2im move each kernel offset's
//! shifted plane in one masked pass per sample, SIMD-dispatched (see [`offset_masks`]).
//!
//! Padding may be asymmetric (begin/end per side); stride and dilation are arbitrary.
//!
//! A pointwise convolution (1x1 kernel, stride 1, no padding) skips the column matrix: an NCHW
//! sample is already the `[c_in, h*w]` matrix, so each pass is one GEMM per sample read and
//! written in place (`Y_b = W x X_b`, `dX_b = W^T x dY_b`, `dW^T += X_b x dY_b^T`, see
//! [`pointwise`]); im2col, `gather_dy`, col2im and the output reordering were about as costly
//! as the GEMMs for the 1x1 layers of a depthwise-separable CNN.

use alloc::vec;
use alloc::vec::Vec;
use burn_backend::DType;
use burn_backend::ops::ConvOptions;
use burn_std::{Bytes, Shape};

use crate::{FlexTensor, Layout};

/// Largest im2col buffer, in f32 elements (8 MiB): larger batches are processed in chunks.
/// A digits batch of 64 with 32 input channels and a 3x3 kernel (1.2 M elements) is one chunk.
const MAX_COLS: usize = 2 * 1024 * 1024;

// Scratch buffers, kept per thread between calls: the column matrices are several MiB, and
// allocating (and zeroing) them afresh for every call cost about 15 % of a convolution. Slot 0
// holds the columns (or their gradient), slot 1 the channel-major output (or its gradient).
// A buffer is kept only up to `MAX_COLS` elements, so at most 2 x 8 MiB stay allocated per thread
// that ran a convolution (a larger output buffer is freed after the call).
#[cfg(feature = "std")]
std::thread_local! {
    static SCRATCH: [core::cell::Cell<Vec<f32>>; 2] =
        const { [core::cell::Cell::new(Vec::new()), core::cell::Cell::new(Vec::new())] };
}

/// A buffer of at least `len` elements with arbitrary (initialised) contents: every user
/// overwrites the whole prefix it reads.
fn take_scratch(slot: usize, len: usize) -> Vec<f32> {
    #[cfg(feature = "std")]
    let mut v = SCRATCH.with(|s| s[slot].take());
    #[cfg(not(feature = "std"))]
    let mut v = {
        let _ = slot;
        Vec::new()
    };
    if v.len() < len {
        v.resize(len, 0.0);
    }
    v
}

fn give_scratch(slot: usize, v: Vec<f32>) {
    #[cfg(feature = "std")]
    if v.capacity() <= MAX_COLS {
        SCRATCH.with(|s| s[slot].set(v));
    }
    #[cfg(not(feature = "std"))]
    let _ = (slot, v);
}

/// Shapes and options of one convolution, all checked non-zero.
#[derive(Clone, Copy, Debug)]
struct Geom {
    batch: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
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
    /// Rows of the column matrix: `c_in * kh * kw`.
    fn k(&self) -> usize {
        self.c_in * self.kh * self.kw
    }
    fn hw_out(&self) -> usize {
        self.ho * self.wo
    }
    fn hw_in(&self) -> usize {
        self.h * self.w
    }
    /// A 1x1 kernel with stride 1 and no padding on any side (so `ho == h`, `wo == w`):
    /// the convolution is a product of `[c_out, c_in]` with each sample's `[c_in, h*w]`.
    fn is_pointwise(&self) -> bool {
        self.kh == 1
            && self.kw == 1
            && self.sh == 1
            && self.sw == 1
            && self.ph == 0
            && self.pw == 0
            && self.ho == self.h
            && self.wo == self.w
    }
    /// Samples per chunk so that `k * chunk * ho * wo <= MAX_COLS` (at least one sample).
    fn chunk(&self) -> usize {
        (MAX_COLS / (self.k() * self.hw_out()).max(1)).clamp(1, self.batch)
    }
}

fn out_size(
    input: usize,
    kernel: usize,
    stride: usize,
    pad: (usize, usize),
    dilation: usize,
) -> usize {
    let span = dilation * (kernel - 1) + 1;
    let padded = input + pad.0 + pad.1;
    if padded < span {
        0
    } else {
        (padded - span) / stride + 1
    }
}

/// The geometry if this convolution takes the GEMM path: f32 input and weight, `groups == 1`,
/// rank-4 tensors with matching channels, and no zero-sized dimension. `out_hw` is the output
/// size when known (the backward passes read it from the output gradient).
fn geometry(
    x: &FlexTensor,
    weight: &FlexTensor,
    options: &ConvOptions<2>,
    out_hw: Option<(usize, usize)>,
) -> Option<Geom> {
    if x.dtype() != DType::F32 || weight.dtype() != DType::F32 || options.groups != 1 {
        return None;
    }
    let xs = x.layout().shape();
    let ws = weight.layout().shape();
    if xs.num_dims() != 4 || ws.num_dims() != 4 || xs[1] != ws[1] {
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
        c_in: xs[1],
        h: xs[2],
        w: xs[3],
        c_out: ws[0],
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
    let dims = [
        g.batch, g.c_in, g.h, g.w, g.c_out, g.kh, g.kw, g.sh, g.sw, g.dh, g.dw, g.ho, g.wo,
    ];
    if dims.contains(&0) {
        return None;
    }
    // Index arithmetic below is in usize/isize: refuse anything that could overflow.
    let fits = [
        g.batch.checked_mul(g.c_in)?.checked_mul(g.hw_in())?,
        g.batch.checked_mul(g.c_out)?.checked_mul(g.hw_out())?,
        g.k().checked_mul(g.hw_out())?,
    ];
    if fits.iter().any(|&n| n > isize::MAX as usize / 8) {
        return None;
    }
    Some(g)
}

/// The range of output columns `ox` whose input column `ox * stride + off` lies in `[0, len)`.
fn valid_range(len: usize, n_out: usize, stride: usize, off: isize) -> (usize, usize) {
    let lo = if off >= 0 {
        0
    } else {
        ((-off) as usize).div_ceil(stride)
    };
    let room = len as isize - off;
    let hi = if room <= 0 {
        0
    } else {
        (room as usize).div_ceil(stride)
    };
    let hi = hi.min(n_out);
    (lo.min(hi), hi)
}

/// For stride 1 with `wo == w` (e.g. `same` padding), the valid output rows `[lo, hi)` of kernel
/// row `ky` (those whose input row `oy + ky * dh - ph` exists); `None` for other geometries.
fn shifted_rows(g: &Geom, ky: usize) -> Option<(usize, usize)> {
    if g.sh != 1 || g.sw != 1 || g.wo != g.w {
        return None;
    }
    let sy = (ky * g.dh) as isize - g.ph as isize;
    let lo = (-sy).max(0) as usize;
    let hi = (g.h as isize - sy).clamp(0, g.ho as isize) as usize;
    Some((lo.min(hi), hi))
}

/// For the stride-1 `wo == w` geometry of [`shifted_rows`]: for each kernel offset
/// `(ky, kx)`, whether each output pixel `(oy, ox)` reads an input pixel (all ones) or padding
/// (zero), as a bit mask for [`masked_copy_blocks`] and [`col2im_plane`].
/// Row `(ky * kw + kx) * hw_out + oy * wo + ox`. Empty for other geometries.
fn offset_masks(g: &Geom) -> Vec<u32> {
    if shifted_rows(g, 0).is_none() {
        return Vec::new();
    }
    let hw = g.hw_out();
    let mut masks = vec![0u32; g.kh * g.kw * hw];
    for ky in 0..g.kh {
        let Some((oy_lo, oy_hi)) = shifted_rows(g, ky) else {
            return masks;
        };
        for kx in 0..g.kw {
            let off = (kx * g.dw) as isize - g.pw as isize;
            let (lo, hi) = valid_range(g.w, g.wo, 1, off);
            let m = &mut masks[(ky * g.kw + kx) * hw..][..hw];
            for oy in oy_lo..oy_hi {
                m[oy * g.wo + lo..oy * g.wo + hi].fill(u32::MAX);
            }
        }
    }
    masks
}

/// `dst`'s `mask.len()`-long blocks: block `b` is `src[b * step..][..mask.len()]` with the
/// positions whose mask is zero set to `+0.0` (a bitwise select, so an inf or NaN in a masked
/// position cannot leak in, as it would through a multiply by zero).
#[inline(always)]
fn masked_copy_blocks_body(dst: &mut [f32], src: &[f32], step: usize, mask: &[u32]) {
    let len = mask.len();
    for (b, d) in dst.chunks_exact_mut(len).enumerate() {
        let s = &src[b * step..][..len];
        for ((d, &v), &m) in d.iter_mut().zip(s).zip(mask) {
            *d = f32::from_bits(v.to_bits() & m);
        }
    }
}

// The element loops of im2col and col2im are compiled once per SIMD level and dispatched at run
// time (macerator, as burn-flex's other kernels): built for the baseline x86-64 target alone
// they ran 4 lanes wide and cost as much as the GEMMs they feed.
#[cfg(feature = "simd")]
#[macerator::with_simd]
fn masked_copy_blocks<S: macerator::Simd>(dst: &mut [f32], src: &[f32], step: usize, mask: &[u32]) {
    masked_copy_blocks_body(dst, src, step, mask);
}

#[cfg(not(feature = "simd"))]
fn masked_copy_blocks(dst: &mut [f32], src: &[f32], step: usize, mask: &[u32]) {
    masked_copy_blocks_body(dst, src, step, mask);
}

/// One kernel offset's span in the stride-1 `wo == w` geometry: the output pixels `j0..j1` of
/// the offset's column row read (im2col) or add into (col2im) the input plane at `s0..`, the
/// pixels in between that fall in the padding masked out.
#[derive(Clone, Copy, Debug, Default)]
struct Run {
    j0: usize,
    j1: usize,
    s0: usize,
}

/// The plane offset of kernel offset `(ky, kx)` in the stride-1 `wo == w` geometry: output pixel
/// `j` reads input pixel `j + delta`.
fn plane_delta(g: &Geom, ky: usize, kx: usize) -> isize {
    let off = (kx * g.dw) as isize - g.pw as isize;
    ((ky * g.dh) as isize - g.ph as isize) * g.w as isize + off
}

/// The [`Run`] of kernel offset `(ky, kx)`, or `None` when it reads no input pixel (or the
/// geometry is not stride-1 `wo == w`).
fn shifted_run(g: &Geom, ky: usize, kx: usize) -> Option<Run> {
    let (oy_lo, oy_hi) = shifted_rows(g, ky)?;
    let off = (kx * g.dw) as isize - g.pw as isize;
    let (lo, hi) = valid_range(g.w, g.wo, 1, off);
    if oy_lo == oy_hi || lo == hi {
        return None;
    }
    let (j0, j1) = (oy_lo * g.w + lo, (oy_hi - 1) * g.w + hi);
    let s0 = (j0 as isize + plane_delta(g, ky, kx)) as usize;
    Some(Run { j0, j1, s0 })
}

/// `plane += ` the masked runs of the column rows `r0 + t` (`t = ky * kw + kx`), each read from
/// column `col0` on; see [`offset_masks`].
#[inline(always)]
fn col2im_plane_body(
    plane: &mut [f32],
    dcols: &[f32],
    n: usize,
    col0: usize,
    r0: usize,
    runs: &[Run],
    masks: &[u32],
) {
    let hw = masks.len() / runs.len().max(1);
    for (t, run) in runs.iter().enumerate() {
        let len = run.j1 - run.j0;
        let src = &dcols[(r0 + t) * n + col0 + run.j0..][..len];
        let mask = &masks[t * hw + run.j0..][..len];
        for ((d, &v), &m) in plane[run.s0..][..len].iter_mut().zip(src).zip(mask) {
            *d += f32::from_bits(v.to_bits() & m);
        }
    }
}

#[cfg(feature = "simd")]
#[macerator::with_simd]
fn col2im_plane<S: macerator::Simd>(
    plane: &mut [f32],
    dcols: &[f32],
    n: usize,
    col0: usize,
    r0: usize,
    runs: &[Run],
    masks: &[u32],
) {
    col2im_plane_body(plane, dcols, n, col0, r0, runs, masks);
}

#[cfg(not(feature = "simd"))]
fn col2im_plane(
    plane: &mut [f32],
    dcols: &[f32],
    n: usize,
    col0: usize,
    r0: usize,
    runs: &[Run],
    masks: &[u32],
) {
    col2im_plane_body(plane, dcols, n, col0, r0, runs, masks);
}

/// Fills `cols[k, n]` (`n = nb * ho * wo` columns) for samples `b0 .. b0 + nb` of the NCHW `x`.
fn im2col(g: &Geom, x: &[f32], b0: usize, nb: usize, cols: &mut [f32]) {
    let n = nb * g.hw_out();
    let masks = offset_masks(g);
    let fill_row = |r: usize, row: &mut [f32]| {
        let ci = r / (g.kh * g.kw);
        let ky = (r / g.kw) % g.kh;
        let kx = r % g.kw;
        let off = (kx * g.dw) as isize - g.pw as isize;
        let (lo, hi) = valid_range(g.w, g.wo, g.sw, off);
        if let Some((oy_lo, oy_hi)) = shifted_rows(g, ky) {
            // Stride 1 and `wo == w`: a sample's whole row is the input plane shifted by a
            // constant.
            let delta = plane_delta(g, ky, kx);
            let hw = g.hw_out();
            let mask = &masks[(ky * g.kw + kx) * hw..][..hw];
            // The samples whose plane, shifted by `delta`, lies inside `x` are read in one
            // masked pass each (no per-row copies or fills); the few at the ends of the batch
            // whose window leaves `x` take one copy of the valid span, then the rows and
            // columns that fall in the padding are zeroed.
            let step = g.c_in * g.hw_in();
            let first = ((b0 * g.c_in + ci) * g.hw_in()) as isize + delta;
            let inside = |bl: usize| {
                let start = first + (bl * step) as isize;
                start >= 0 && start as usize + hw <= x.len()
            };
            let bl_lo = (0..nb).find(|&bl| inside(bl)).unwrap_or(nb);
            let bl_hi = (bl_lo..nb).find(|&bl| !inside(bl)).unwrap_or(nb);
            if bl_lo < bl_hi {
                let start = (first + (bl_lo * step) as isize) as usize;
                let src_end = start + (bl_hi - 1 - bl_lo) * step + hw;
                masked_copy_blocks(
                    &mut row[bl_lo * hw..bl_hi * hw],
                    &x[start..src_end],
                    step,
                    mask,
                );
            }
            for bl in (0..bl_lo).chain(bl_hi..nb) {
                let dst = &mut row[bl * g.hw_out()..][..g.hw_out()];
                let plane = &x[((b0 + bl) * g.c_in + ci) * g.hw_in()..][..g.hw_in()];
                let Some(Run { j0, j1, s0 }) = shifted_run(g, ky, kx) else {
                    dst.fill(0.0);
                    continue;
                };
                dst[j0..j1].copy_from_slice(&plane[s0..s0 + (j1 - j0)]);
                dst[..oy_lo * g.w].fill(0.0);
                dst[oy_hi * g.w..].fill(0.0);
                for oy in oy_lo..oy_hi {
                    dst[oy * g.w..oy * g.w + lo].fill(0.0);
                    dst[oy * g.w + hi..(oy + 1) * g.w].fill(0.0);
                }
            }
            return;
        }
        for bl in 0..nb {
            let plane = &x[((b0 + bl) * g.c_in + ci) * g.hw_in()..][..g.hw_in()];
            for oy in 0..g.ho {
                let dst = &mut row[(bl * g.ho + oy) * g.wo..][..g.wo];
                let iy = (oy * g.sh + ky * g.dh) as isize - g.ph as isize;
                if iy < 0 || iy >= g.h as isize || lo == hi {
                    dst.fill(0.0);
                    continue;
                }
                let src = &plane[iy as usize * g.w..][..g.w];
                dst[..lo].fill(0.0);
                dst[hi..].fill(0.0);
                let start = (lo * g.sw) as isize + off;
                if g.sw == 1 {
                    let start = start as usize;
                    dst[lo..hi].copy_from_slice(&src[start..start + (hi - lo)]);
                } else {
                    for (i, d) in dst[lo..hi].iter_mut().enumerate() {
                        *d = src[start as usize + i * g.sw];
                    }
                }
            }
        }
    };
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        cols[..g.k() * n]
            .par_chunks_mut(n)
            .enumerate()
            .with_min_len(8)
            .for_each(|(r, row)| fill_row(r, row));
    }
    #[cfg(not(feature = "rayon"))]
    for (r, row) in cols[..g.k() * n].chunks_mut(n).enumerate() {
        fill_row(r, row);
    }
}

/// Adds `dcols[k, n]` back into the NCHW gradient `dx` of samples `b0 .. b0 + nb`
/// (`dx` is the chunk's own slice, starting at sample `b0`).
fn col2im(g: &Geom, dcols: &[f32], nb: usize, dx: &mut [f32]) {
    let n = nb * g.hw_out();
    let masks = offset_masks(g);
    // Stride 1, `wo == w`: each kernel offset adds one masked run, the same for every plane.
    let runs: Vec<Run> = if masks.is_empty() {
        Vec::new()
    } else {
        (0..g.kh * g.kw)
            .map(|t| shifted_run(g, t / g.kw, t % g.kw).unwrap_or_default())
            .collect()
    };
    let add_plane = |p: usize, plane: &mut [f32]| {
        let bl = p / g.c_in;
        let ci = p % g.c_in;
        if !runs.is_empty() {
            let r0 = ci * g.kh * g.kw;
            col2im_plane(plane, dcols, n, bl * g.hw_out(), r0, &runs, &masks);
            return;
        }
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let r = (ci * g.kh + ky) * g.kw + kx;
                let off = (kx * g.dw) as isize - g.pw as isize;
                let (lo, hi) = valid_range(g.w, g.wo, g.sw, off);
                if lo == hi {
                    continue;
                }
                let row = &dcols[r * n..][..n];
                for oy in 0..g.ho {
                    let iy = (oy * g.sh + ky * g.dh) as isize - g.ph as isize;
                    if iy < 0 || iy >= g.h as isize {
                        continue;
                    }
                    let src = &row[(bl * g.ho + oy) * g.wo..][..g.wo];
                    let dst = &mut plane[iy as usize * g.w..][..g.w];
                    let start = ((lo * g.sw) as isize + off) as usize;
                    if g.sw == 1 {
                        for (d, s) in dst[start..start + (hi - lo)].iter_mut().zip(&src[lo..hi]) {
                            *d += *s;
                        }
                    } else {
                        for (i, s) in src[lo..hi].iter().enumerate() {
                            dst[start + i * g.sw] += *s;
                        }
                    }
                }
            }
        }
    };
    #[cfg(feature = "rayon")]
    {
        use rayon::prelude::*;
        dx[..nb * g.c_in * g.hw_in()]
            .par_chunks_mut(g.hw_in())
            .enumerate()
            .for_each(|(p, plane)| add_plane(p, plane));
    }
    #[cfg(not(feature = "rayon"))]
    for (p, plane) in dx[..nb * g.c_in * g.hw_in()]
        .chunks_mut(g.hw_in())
        .enumerate()
    {
        add_plane(p, plane);
    }
}

/// Copies the NCHW `dy` of samples `b0 .. b0 + nb` into `dyc[co, n]` (`n = (b, oy, ox)`).
fn gather_dy(g: &Geom, dy: &[f32], b0: usize, nb: usize, dyc: &mut [f32]) {
    let hw = g.hw_out();
    let n = nb * hw;
    for co in 0..g.c_out {
        for bl in 0..nb {
            let src = &dy[((b0 + bl) * g.c_out + co) * hw..][..hw];
            dyc[co * n + bl * hw..][..hw].copy_from_slice(src);
        }
    }
}

/// `dst[m, n] (+)= lhs[m, k] x rhs[k, n]`, each operand given by its row and column strides.
#[allow(clippy::too_many_arguments)]
fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: &[f32],
    lhs_rs: usize,
    lhs_cs: usize,
    rhs: &[f32],
    rhs_rs: usize,
    rhs_cs: usize,
) {
    // Bounds of the strided views, checked once so that the unsafe call below stays in range.
    let extent =
        |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs + 1;
    assert!(dst.len() >= m * n);
    assert!(lhs.len() >= extent(m, k, lhs_rs, lhs_cs));
    assert!(rhs.len() >= extent(k, n, rhs_rs, rhs_cs));
    // Same threading rule as upstream's conv GEMMs: the current rayon pool (bma runs each trial
    // in its own pool) for large products, none for small ones.
    #[cfg(feature = "rayon")]
    let parallelism = if m * n * k >= 192 * 192 * 192 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    #[cfg(not(feature = "rayon"))]
    let parallelism = gemm::Parallelism::None;
    // SAFETY: the three views are in bounds (asserted above); dst does not alias lhs or rhs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            parallelism,
        );
    }
}

fn f32_tensor(data: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::new(
        Bytes::from_elems(data),
        Layout::contiguous(shape),
        DType::F32,
    )
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
        && (b.dtype() != DType::F32 || b.layout().num_elements() != g.c_out)
    {
        return Err((x, weight, bias));
    }
    let x = x.to_contiguous();
    let weight = weight.to_contiguous();
    let xd: &[f32] = x.storage();
    let wd: &[f32] = weight.storage();
    let bias = bias.map(|b| b.to_contiguous());
    let bd: Option<&[f32]> = bias.as_ref().map(|b| b.storage());
    if g.is_pointwise() {
        return Ok(f32_tensor(
            pointwise::forward(&g, xd, wd, bd),
            Shape::from(vec![g.batch, g.c_out, g.ho, g.wo]),
        ));
    }

    let (k, hw) = (g.k(), g.hw_out());
    let chunk = g.chunk();
    let mut out = Vec::with_capacity(g.batch * g.c_out * hw);
    let mut cols = take_scratch(0, k * chunk * hw);
    let mut yc = take_scratch(1, g.c_out * chunk * hw);
    for b0 in (0..g.batch).step_by(chunk) {
        let nb = chunk.min(g.batch - b0);
        let n = nb * hw;
        im2col(&g, xd, b0, nb, &mut cols);
        // yc[co, n] = W[co, k] x cols[k, n]
        matmul(g.c_out, n, k, &mut yc, false, wd, k, 1, &cols, n, 1);
        // Samples in order, so `out` grows in NCHW order.
        for bl in 0..nb {
            for co in 0..g.c_out {
                let src = &yc[co * n + bl * hw..][..hw];
                match bd {
                    Some(bd) => out.extend(src.iter().map(|v| v + bd[co])),
                    None => out.extend_from_slice(src),
                }
            }
        }
    }
    give_scratch(0, cols);
    give_scratch(1, yc);
    Ok(f32_tensor(
        out,
        Shape::from(vec![g.batch, g.c_out, g.ho, g.wo]),
    ))
}

/// The output gradient's spatial size, when it is a rank-4 f32 tensor matching `x` and `weight`.
fn grad_hw(
    x: &FlexTensor,
    weight: &FlexTensor,
    output_grad: &FlexTensor,
) -> Option<(usize, usize)> {
    let s = output_grad.layout().shape();
    if output_grad.dtype() != DType::F32 || s.num_dims() != 4 {
        return None;
    }
    let (xs, ws) = (x.layout().shape(), weight.layout().shape());
    if xs.num_dims() != 4 || ws.num_dims() != 4 || s[0] != xs[0] || s[1] != ws[0] {
        return None;
    }
    Some((s[2], s[3]))
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
    let xd: &[f32] = x.storage();
    let dyd: &[f32] = dy.storage();
    if g.is_pointwise() {
        return Some(f32_tensor(
            pointwise::weight_backward(&g, xd, dyd),
            Shape::from(vec![g.c_out, g.c_in, g.kh, g.kw]),
        ));
    }

    let (k, hw) = (g.k(), g.hw_out());
    let chunk = g.chunk();
    // The product is formed transposed, `dW^T[k, co] = cols[k, n] x dY[co, n]^T`, then
    // transposed back: with these operand layouts gemm runs the digits shapes (k = 288,
    // co = 32, n = 4096) at about 195 GFLOP/s with its AVX-512 kernels and 120 with AVX2,
    // against 37 and 75 for the same product written as `dY x cols^T`
    // (bench/train/gemm_shapes.sh).
    let mut dwt = vec![0.0f32; k * g.c_out];
    let mut cols = take_scratch(0, k * chunk * hw);
    let mut dyc = take_scratch(1, g.c_out * chunk * hw);
    for b0 in (0..g.batch).step_by(chunk) {
        let nb = chunk.min(g.batch - b0);
        let n = nb * hw;
        im2col(&g, xd, b0, nb, &mut cols);
        gather_dy(&g, dyd, b0, nb, &mut dyc);
        // dW^T[k, co] (+)= cols[k, n] x dY[co, n]^T
        matmul(k, g.c_out, n, &mut dwt, b0 > 0, &cols, n, 1, &dyc, 1, n);
    }
    give_scratch(0, cols);
    give_scratch(1, dyc);
    let mut dw = vec![0.0f32; g.c_out * k];
    for (r, row) in dwt.chunks_exact(g.c_out).enumerate() {
        for (co, v) in row.iter().enumerate() {
            dw[co * k + r] = *v;
        }
    }
    Some(f32_tensor(
        dw,
        Shape::from(vec![g.c_out, g.c_in, g.kh, g.kw]),
    ))
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
    let wd: &[f32] = weight.storage();
    let dyd: &[f32] = dy.storage();
    if g.is_pointwise() {
        return Some(f32_tensor(
            pointwise::x_backward(&g, wd, dyd),
            Shape::from(vec![g.batch, g.c_in, g.h, g.w]),
        ));
    }

    let (k, hw) = (g.k(), g.hw_out());
    let chunk = g.chunk();
    let mut dx = vec![0.0f32; g.batch * g.c_in * g.hw_in()];
    let mut dcols = take_scratch(0, k * chunk * hw);
    let mut dyc = take_scratch(1, g.c_out * chunk * hw);
    for b0 in (0..g.batch).step_by(chunk) {
        let nb = chunk.min(g.batch - b0);
        let n = nb * hw;
        gather_dy(&g, dyd, b0, nb, &mut dyc);
        // dcols[k, n] = W[co, k]^T x dY[co, n]
        matmul(k, n, g.c_out, &mut dcols, false, wd, 1, k, &dyc, n, 1);
        col2im(&g, &dcols, nb, &mut dx[b0 * g.c_in * g.hw_in()..]);
    }
    give_scratch(0, dcols);
    give_scratch(1, dyc);
    Some(f32_tensor(dx, Shape::from(vec![g.batch, g.c_in, g.h, g.w])))
}

/// Gradient with respect to the bias (`output_grad` summed over batch and pixels), or `None`
/// when `output_grad` is not a rank-4 f32 tensor with one channel per bias element.
pub(crate) fn conv2d_bias_backward(
    bias: &FlexTensor,
    output_grad: &FlexTensor,
) -> Option<FlexTensor> {
    let s = output_grad.layout().shape();
    if output_grad.dtype() != DType::F32
        || bias.dtype() != DType::F32
        || s.num_dims() != 4
        || bias.layout().num_elements() != s[1]
    {
        return None;
    }
    let (batch, c_out, hw) = (s[0], s[1], s[2] * s[3]);
    let dy = output_grad.to_contiguous();
    let dyd: &[f32] = dy.storage();
    let mut db = vec![0.0f32; c_out];
    // Eight partial sums per block: a plain `sum()` is one sequential chain of additions that
    // the compiler may not vectorise.
    let block_sum = |block: &[f32]| {
        let mut lanes = [0.0f32; 8];
        let mut chunks = block.chunks_exact(8);
        for chunk in &mut chunks {
            for (l, v) in lanes.iter_mut().zip(chunk) {
                *l += *v;
            }
        }
        lanes.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
    };
    for b in 0..batch {
        for (co, acc) in db.iter_mut().enumerate() {
            *acc += block_sum(&dyd[(b * c_out + co) * hw..][..hw]);
        }
    }
    Some(f32_tensor(db, bias.layout().shape().clone()))
}

/// Pointwise convolutions ([`Geom::is_pointwise`]) as one GEMM per sample on the NCHW data.
mod pointwise {
    use super::{Geom, matmul};
    use alloc::vec;
    use alloc::vec::Vec;

    /// Runs `f(b, plane)` for each sample `b` and its `plane_len`-long slice of `dst`, on the
    /// current rayon pool when there is one. Each call writes its own slice only, so the result
    /// does not depend on the thread count.
    fn per_sample(dst: &mut [f32], plane_len: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            dst.par_chunks_mut(plane_len)
                .enumerate()
                .for_each(|(b, plane)| f(b, plane));
        }
        #[cfg(not(feature = "rayon"))]
        for (b, plane) in dst.chunks_mut(plane_len).enumerate() {
            f(b, plane);
        }
    }

    /// `Y_b[co, p] = W[co, ci] x X_b[ci, p] (+ bias[co])`, the output in NCHW.
    pub(super) fn forward(g: &Geom, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
        let hw = g.hw_in();
        let (x_len, y_len) = (g.c_in * hw, g.c_out * hw);
        let mut out = vec![0.0f32; g.batch * y_len];
        per_sample(&mut out, y_len, |b, y| {
            let xb = &x[b * x_len..][..x_len];
            matmul(g.c_out, hw, g.c_in, y, false, w, g.c_in, 1, xb, hw, 1);
            if let Some(bias) = bias {
                for (plane, &v) in y.chunks_exact_mut(hw).zip(bias) {
                    for o in plane {
                        *o += v;
                    }
                }
            }
        });
        out
    }

    /// `dX_b[ci, p] = W^T[ci, co] x dY_b[co, p]`, in NCHW.
    pub(super) fn x_backward(g: &Geom, w: &[f32], dy: &[f32]) -> Vec<f32> {
        let hw = g.hw_in();
        let (x_len, y_len) = (g.c_in * hw, g.c_out * hw);
        let mut dx = vec![0.0f32; g.batch * x_len];
        per_sample(&mut dx, x_len, |b, dxb| {
            let dyb = &dy[b * y_len..][..y_len];
            // W is `[co, ci]` row-major: W^T[ci, co] has row stride 1, column stride c_in.
            matmul(g.c_in, hw, g.c_out, dxb, false, w, 1, g.c_in, dyb, hw, 1);
        });
        dx
    }

    /// `dW[co, ci] = sum_b dY_b[co, p] x X_b[ci, p]^T`, formed transposed as
    /// `dW^T[ci, co] (+)= X_b[ci, p] x dY_b[co, p]^T` (the operand layout gemm runs fastest, as
    /// in the im2col path), the samples added in order (so the result does not depend on the
    /// thread count), then transposed back to `[co, ci]`.
    pub(super) fn weight_backward(g: &Geom, x: &[f32], dy: &[f32]) -> Vec<f32> {
        let hw = g.hw_in();
        let (x_len, y_len) = (g.c_in * hw, g.c_out * hw);
        let mut dwt = vec![0.0f32; g.c_in * g.c_out];
        for b in 0..g.batch {
            let xb = &x[b * x_len..][..x_len];
            let dyb = &dy[b * y_len..][..y_len];
            matmul(g.c_in, g.c_out, hw, &mut dwt, b > 0, xb, hw, 1, dyb, 1, hw);
        }
        let mut dw = vec![0.0f32; g.c_out * g.c_in];
        for (ci, row) in dwt.chunks_exact(g.c_out).enumerate() {
            for (co, v) in row.iter().enumerate() {
                dw[co * g.c_in + ci] = *v;
            }
        }
        dw
    }
}
