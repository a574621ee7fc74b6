//! bma: branch-free f32 `exp`, `tanh`, `sigmoid`, `erf` and GELU (forward and backward) that
//! the compiler vectorises.
//!
//! Takes f32 values (one at a time through the `#[inline(always)]` scalar forms, which contain
//! no calls and no data-dependent branches, only selects, so that LLVM vectorises any loop over
//! a slice that uses them), or a contiguous `&mut [f32]` through the `*_slice` kernels, which
//! are compiled once per SIMD level and dispatched at run time (macerator, as burn-flex's other
//! kernels; built for the baseline x86-64 target alone they run 4 lanes wide).
//!
//! Gives, over the whole f32 range (checked against f64 references in bma's `tests/vecmath.rs`):
//! * `exp_f32`: Cephes-style range reduction `x = n ln 2 + r` (Cody-Waite split of `ln 2`),
//!   a degree-5 polynomial on `|r| <= ln 2 / 2`, scaling by `2^n` in two steps (so that
//!   results in the subnormal range are rounded once). Max error 2 ulp (measured 0.97);
//!   `exp(x) = +inf` for `x > 88.72`, `0` below the subnormal range, `-inf -> 0`, NaN
//!   propagates.
//! * `tanh_f32`: `x + x^3 P(x^2)` (Cephes) for `|x| < 0.625`, else `(1 - e) / (1 + e)` with
//!   `e = exp(-2|x|)`, the sign copied from `x` (so `tanh(-0) = -0`). Max error 3 ulp
//!   (measured 1.5).
//! * `sigmoid_f32`: `1 / (1 + e)` for `x >= 0`, `e / (1 + e)` for `x < 0`, `e = exp(-|x|)`
//!   (no overflow, accurate subnormal results). Max error 4 ulp (measured 2.6).
//! * `erf_f32`: `x P(x^2)` (degree 5, fitted to relative error 1.6e-8) for `|x| < 0.921875`,
//!   else `1 - exp(-x^2) G(t)`, `t = 1 / (1 + x/2)`, `G` of degree 6 (fitted to relative
//!   error 3.8e-8 of `erfc(x) exp(x^2)` on [0.921875, 4]), `|x|` clamped to 4 (where erf
//!   rounds to 1 in f32), odd. Max error 4 ulp, a relative error under 4.8e-7 (measured 2.2).
//! * `gelu_f32(x) = x/2 (1 + erf(x/sqrt 2))` and its derivative `gelu_grad_f32`.
//!
//! Invariant: the scalar forms and the slice kernels give the same bits (no fused multiply-add
//! is formed: Rust does not contract `a * b + c`), so a result does not depend on which path
//! or SIMD level computed it.

#[inline(always)]
fn select(c: bool, a: f32, b: f32) -> f32 {
    if c { a } else { b }
}

/// `e^x`.
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = core::f32::consts::LOG2_E;
    // Cody-Waite split of ln 2: C1 has few bits, so n * C1 is exact for |n| <= 2^9.
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    // Round-to-nearest by the 1.5 * 2^23 trick (no call to `roundf` on the baseline target).
    const MAGIC: f32 = 12_582_912.0;
    // Below -104 the result is 0 (under half the smallest subnormal); above 89 it is +inf.
    // Comparisons are false for NaN, which therefore passes through unchanged.
    let xc = select(x < -104.0, -104.0, select(x > 89.0, 89.0, x));
    let shifted = xc * LOG2E + MAGIC;
    let n = shifted - MAGIC;
    let r = xc - n * C1 - n * C2;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 5.000_000_1e-1;
    let y = p * (r * r) + r + 1.0;
    // 2^n as 2^n1 * 2^n2, both factors normal for n in [-150, 128]. n is read from the low
    // bits of `shifted` (no float-to-int conversion, which would not vectorise); for NaN it is
    // garbage, but y is NaN already.
    let ni = (shifted.to_bits() as i32).wrapping_sub(0x4b40_0000);
    let n1 = ni >> 1;
    let n2 = ni.wrapping_sub(n1);
    let s1 = f32::from_bits((n1.wrapping_add(127) as u32) << 23);
    let s2 = f32::from_bits((n2.wrapping_add(127) as u32) << 23);
    y * s1 * s2
}

/// `tanh(x)`.
#[inline(always)]
pub fn tanh_f32(x: f32) -> f32 {
    let ax = f32::from_bits(x.to_bits() & 0x7fff_ffff);
    // Small |x|: Cephes tanhf's odd polynomial.
    let z = ax * ax;
    let mut p = -5.704_988_7e-3_f32;
    p = p * z + 2.063_908_9e-2;
    p = p * z - 5.373_971_6e-2;
    p = p * z + 1.333_144_2e-1;
    p = p * z - 3.333_328_2e-1;
    let small = ax + ax * z * p;
    // Large |x|: (1 - e) / (1 + e), e = exp(-2|x|) in (0, 0.287]: no cancellation.
    let e = exp_f32(-2.0 * ax);
    let large = (1.0 - e) / (1.0 + e);
    // NaN fails the comparison and takes `large`, which is NaN.
    let t = select(ax < 0.625, small, large);
    f32::from_bits((t.to_bits() & 0x7fff_ffff) | (x.to_bits() & 0x8000_0000))
}

/// `1 / (1 + e^-x)`.
#[inline(always)]
pub fn sigmoid_f32(x: f32) -> f32 {
    let ax = f32::from_bits(x.to_bits() & 0x7fff_ffff);
    let e = exp_f32(-ax);
    let pos = 1.0 / (1.0 + e);
    // x >= 0 is false for NaN: e * pos is NaN.
    select(x >= 0.0, pos, e * pos)
}

/// `erf(x)`.
#[inline(always)]
pub fn erf_f32(x: f32) -> f32 {
    // Beyond 4, erf(x) rounds to 1 in f32 (erfc(4) = 1.5e-8).
    let ax = f32::from_bits(x.to_bits() & 0x7fff_ffff);
    let ax = select(ax > 4.0, 4.0, ax);
    // |x| < 0.921875: erf(x) / x as a polynomial in x^2.
    let z = ax * ax;
    let mut p = -5.990_856e-4_f32;
    p = p * z + 4.993_182e-3;
    p = p * z - 2.676_661_9e-2;
    p = p * z + 1.128_181_6e-1;
    p = p * z - 3.761_249_4e-1;
    p = p * z + 1.128_379_1;
    let small = ax * p;
    // Otherwise 1 - exp(-x^2) G(1 / (1 + x/2)), G ~ erfc(x) exp(x^2).
    let t = 1.0 / (1.0 + 0.5 * ax);
    let mut g = -5.216_557_5e-2_f32;
    g = g * t - 6.082_769_6e-2;
    g = g * t + 4.073_986_9e-1;
    g = g * t + 9.941_377e-2;
    g = g * t + 3.313_534e-1;
    g = g * t + 2.735_487e-1;
    g = g * t + 6.097_893e-4;
    let large = 1.0 - exp_f32(-z) * g;
    // NaN fails the comparison and takes `large`, which is NaN.
    let r = select(ax < 0.921_875, small, large);
    f32::from_bits((r.to_bits() & 0x7fff_ffff) | (x.to_bits() & 0x8000_0000))
}

/// `x/2 (1 + erf(x / sqrt 2))`.
#[inline(always)]
pub fn gelu_f32(x: f32) -> f32 {
    0.5 * x * (1.0 + erf_f32(x * core::f32::consts::FRAC_1_SQRT_2))
}

/// `d/dx gelu(x) = (1 + erf(x / sqrt 2)) / 2 + x exp(-x^2 / 2) / sqrt(2 pi)`.
#[inline(always)]
pub fn gelu_grad_f32(x: f32) -> f32 {
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let cdf = 0.5 * (1.0 + erf_f32(x * core::f32::consts::FRAC_1_SQRT_2));
    // -x^2/2 is -inf or NaN only for infinite or NaN x; exp(-inf) = 0 and inf * 0 = NaN for
    // x = +-inf, as the upstream formula gives.
    let pdf = INV_SQRT_2PI * exp_f32(-0.5 * x * x);
    cdf + x * pdf
}

macro_rules! slice_kernel {
    ($(#[$doc:meta])* $name:ident, $simd:ident, $f:ident) => {
        $(#[$doc])*
        pub fn $name(xs: &mut [f32]) {
            #[cfg(feature = "simd")]
            $simd(xs);
            #[cfg(not(feature = "simd"))]
            for x in xs.iter_mut() {
                *x = $f(*x);
            }
        }

        #[cfg(feature = "simd")]
        #[macerator::with_simd]
        fn $simd<'a, S: macerator::Simd>(xs: &'a mut [f32]) {
            for x in xs.iter_mut() {
                *x = $f(*x);
            }
        }
    };
}

slice_kernel!(
    /// `x <- e^x` over a slice.
    exp_slice, exp_slice_simd, exp_f32
);
slice_kernel!(
    /// `x <- tanh(x)` over a slice.
    tanh_slice, tanh_slice_simd, tanh_f32
);
slice_kernel!(
    /// `x <- sigmoid(x)` over a slice.
    sigmoid_slice, sigmoid_slice_simd, sigmoid_f32
);
slice_kernel!(
    /// `x <- erf(x)` over a slice.
    erf_slice, erf_slice_simd, erf_f32
);
slice_kernel!(
    /// `x <- gelu(x)` over a slice.
    gelu_slice, gelu_slice_simd, gelu_f32
);

/// `g <- g * gelu'(x)` over two slices of the same length.
pub fn gelu_backward_slice(x: &[f32], g: &mut [f32]) {
    #[cfg(feature = "simd")]
    gelu_backward_simd(x, g);
    #[cfg(not(feature = "simd"))]
    for (g, &x) in g.iter_mut().zip(x) {
        *g *= gelu_grad_f32(x);
    }
}

#[cfg(feature = "simd")]
#[macerator::with_simd]
fn gelu_backward_simd<'a, S: macerator::Simd>(x: &'a [f32], g: &'a mut [f32]) {
    for (g, &x) in g.iter_mut().zip(x) {
        *g *= gelu_grad_f32(x);
    }
}

/// Applies `kernel` (one of the `*_slice` functions) to an f32 tensor: in place when the tensor
/// is uniquely owned, contiguous and at offset 0, else on a contiguous copy of its elements.
/// `Err(tensor)` for other dtypes (the caller keeps its generic path).
pub fn map_f32(
    tensor: crate::FlexTensor,
    kernel: fn(&mut [f32]),
) -> Result<crate::FlexTensor, crate::FlexTensor> {
    if tensor.dtype() != burn_backend::DType::F32 {
        return Err(tensor);
    }
    let mut tensor = tensor;
    let n = tensor.layout().num_elements();
    if tensor.is_unique() && tensor.layout().is_contiguous() && tensor.layout().start_offset() == 0
    {
        let storage: &mut [f32] = tensor.storage_mut();
        kernel(&mut storage[..n]);
        return Ok(tensor);
    }
    let tensor = tensor.to_contiguous();
    let shape = tensor.layout().shape().clone();
    let start = tensor.layout().start_offset();
    let src: &[f32] = tensor.storage();
    let mut out = alloc::vec::Vec::from(&src[start..start + n]);
    kernel(&mut out);
    Ok(crate::FlexTensor::new(
        burn_std::Bytes::from_elems(out),
        crate::Layout::contiguous(shape),
        burn_backend::DType::F32,
    ))
}
