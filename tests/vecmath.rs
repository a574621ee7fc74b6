//! The vendored burn-flex's vectorised f32 `exp`, `tanh`, `sigmoid`, `erf` and GELU
//! (vendor/burn-flex, `ops/vecmath.rs`; the fused softmax's exp too) against f64 references:
//! the same inputs as f64 tensors take burn-flex's untouched f64 code (std's `exp`/`tanh`,
//! libm's full-precision `erf`), and every f32 input is exact in f64. A dense sweep of
//! [-110, 110], a geometric sweep of tiny to huge magnitudes of both signs (subnormals
//! included), and the special values (+-0, +-inf, NaN, the overflow/underflow edges). The
//! error is counted in units in the last place of the f32 nearest the reference (subnormal
//! ulps below the normal range). The gradients through burn's autodiff (the path bma's trainer
//! takes), and the copy paths (a shared tensor, a non-contiguous view) against the in-place
//! one, bit for bit.

#![allow(clippy::unwrap_used)]

use burn::tensor::activation;
use burn::tensor::{DType, Tensor, TensorData};

fn sweep() -> Vec<f32> {
    let mut xs = Vec::new();
    // Dense: 2^21 + 1 points over [-110, 110].
    let n = 1 << 21;
    for i in 0..=n {
        xs.push(-110.0 + 220.0 * (i as f64 / n as f64));
    }
    let mut xs: Vec<f32> = xs.into_iter().map(|x| x as f32).collect();
    // Geometric: 1e-45 .. 1e38, both signs, 64 points per decade.
    let mut m = 1e-45f64;
    while m < 3e38 {
        xs.push(m as f32);
        xs.push(-m as f32);
        m *= 10f64.powf(1.0 / 64.0);
    }
    xs.extend([
        0.0,
        -0.0,
        f32::MIN_POSITIVE,
        -f32::MIN_POSITIVE,
        f32::from_bits(1),
        f32::MAX,
        f32::MIN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::NAN,
        88.72,
        88.7228,
        88.73,
        -87.33,
        -103.97,
        -104.0,
        -104.5,
        0.625,
        -0.625,
        0.921_875,
        -0.921_875,
        3.9,
        4.0,
        4.1,
    ]);
    xs
}

fn vec_f64(t: Tensor<1>) -> Vec<f64> {
    t.into_data().convert::<f64>().try_into_vec::<f64>().unwrap()
}

/// f32 result and f64 reference of `f` over `xs`.
fn both(xs: &[f32], f: impl Fn(Tensor<1>) -> Tensor<1>) -> (Vec<f64>, Vec<f64>) {
    both_on(&burn::tensor::Device::flex(), xs, f)
}

/// The input gradient of `sum(f(x))`, through autodiff.
fn grad_of(f: fn(Tensor<1>) -> Tensor<1>) -> impl Fn(Tensor<1>) -> Tensor<1> {
    move |t| {
        let x = t.require_grad();
        let grads = f(x.clone()).sum().backward();
        x.grad(&grads).unwrap()
    }
}

fn both_on(dev: &burn::tensor::Device, xs: &[f32], f: impl Fn(Tensor<1>) -> Tensor<1>) -> (Vec<f64>, Vec<f64>) {
    let dev = dev.clone();
    let x = Tensor::<1>::from_data(TensorData::new(xs.to_vec(), [xs.len()]), &dev);
    let got = f(x.clone());
    assert_eq!(got.dtype(), DType::F32);
    let want = f(x.cast(DType::F64));
    assert_eq!(want.dtype(), DType::F64);
    (vec_f64(got), vec_f64(want))
}

/// The ulp of the f32 nearest `r` (the subnormal spacing below the normal range).
fn ulp(r: f64) -> f64 {
    let a = (r as f32).abs();
    if !a.is_finite() {
        return f64::INFINITY;
    }
    if a < f32::MIN_POSITIVE {
        return f64::from(f32::from_bits(1));
    }
    let e = (a.to_bits() >> 23) as i32 - 127;
    2f64.powi(e - 23)
}

/// Checks NaN, infinities and the sign of zero exactly, and returns the largest error in ulps
/// (with the input that gives it) over the rest.
fn max_ulps(what: &str, xs: &[f32], got: &[f64], want: &[f64]) -> (f64, f32) {
    assert_eq!(got.len(), want.len());
    let mut worst = (0.0, 0.0f32);
    for ((&x, &g), &w) in xs.iter().zip(got).zip(want) {
        let w32 = f64::from(w as f32);
        if w.is_nan() || g.is_nan() {
            assert!(w.is_nan() && g.is_nan(), "{what}({x:e}) = {g:e}, reference {w:e}");
            continue;
        }
        if w32.is_infinite() || w32 == 0.0 {
            assert_eq!(g.to_bits(), w32.to_bits(), "{what}({x:e}) = {g:e}, reference {w:e}");
            continue;
        }
        assert!(g.is_finite(), "{what}({x:e}) = {g:e}, reference {w:e}");
        let e = (g - w).abs() / ulp(w);
        if e > worst.0 {
            worst = (e, x);
        }
    }
    worst
}

#[test]
fn exp_within_2_ulps() {
    let xs = sweep();
    let (got, want) = both(&xs, |t| t.exp());
    let (e, at) = max_ulps("exp", &xs, &got, &want);
    assert!(e <= 2.0, "exp: {e} ulps at {at:e}");
    // The edges: overflow to +inf past ln(f32::MAX), 0 past the subnormals.
    let (g, _) = both(&[88.8, 1e30, -110.0, -1e30], |t| t.exp());
    assert_eq!(g, [f64::INFINITY, f64::INFINITY, 0.0, 0.0]);
}

#[test]
fn tanh_within_3_ulps() {
    let xs = sweep();
    let (got, want) = both(&xs, |t| t.tanh());
    let (e, at) = max_ulps("tanh", &xs, &got, &want);
    assert!(e <= 3.0, "tanh: {e} ulps at {at:e}");
}

#[test]
fn sigmoid_within_4_ulps() {
    let xs = sweep();
    let (got, want) = both(&xs, activation::sigmoid);
    let (e, at) = max_ulps("sigmoid", &xs, &got, &want);
    assert!(e <= 4.0, "sigmoid: {e} ulps at {at:e}");
}

#[test]
fn erf_within_4_ulps() {
    let xs = sweep();
    let (got, want) = both(&xs, |t| t.erf());
    let (e, at) = max_ulps("erf", &xs, &got, &want);
    // 4 ulps is a relative error under 4 * 2^-23 = 4.8e-7.
    assert!(e <= 4.0, "erf: {e} ulps at {at:e}");
}

/// GELU forward, and its derivative through autodiff: `x/2 (1 + erf(x/sqrt 2))` loses
/// relative accuracy where `1 + erf` cancels (x below about -3, as in the f64 formula with
/// f32 rounding), so the bound there is absolute: a few ulps of the result plus `|x| 2^-24`
/// (half an ulp of 1, the rounding of `1 + erf`, times `x/2` and twice over).
#[test]
fn gelu_and_its_gradient() {
    let xs = sweep();
    let (got, want) = both(&xs, activation::gelu);
    let bound = |x: f32, w: f64| 4.0 * ulp(w) + f64::from(x.abs()) * 2f64.powi(-24);
    for ((&x, &g), &w) in xs.iter().zip(&got).zip(&want) {
        if w.is_nan() || !(w as f32).is_finite() {
            assert!(
                g.is_nan() == w.is_nan() && (g.is_nan() || g == f64::from(w as f32)),
                "gelu({x:e}) = {g:e}, reference {w:e}"
            );
            continue;
        }
        assert!((g - w).abs() <= bound(x, w), "gelu({x:e}) = {g:e}, reference {w:e}");
    }

    // The derivative on the finite inputs of magnitude up to 20 (beyond that it is 0 or 1).
    let xs: Vec<f32> = xs.into_iter().filter(|x| x.abs() <= 20.0).collect();
    let ad = burn::tensor::Device::flex().autodiff();
    let (got, want) = both_on(&ad, &xs, grad_of(activation::gelu::<1>));
    for ((&x, &g), &w) in xs.iter().zip(&got).zip(&want) {
        let tol = 8.0 * ulp(w) + (1.0 + f64::from(x.abs())) * 2f64.powi(-23);
        assert!((g - w).abs() <= tol, "gelu'({x:e}) = {g:e}, reference {w:e}");
    }
}

/// The gradients of sigmoid and tanh through autodiff (burn's own backward formulas over the
/// fast forward values), within a few ulps of the f64 ones.
#[test]
fn sigmoid_and_tanh_gradients() {
    let xs: Vec<f32> = sweep().into_iter().filter(|x| x.abs() <= 30.0).collect();
    for (name, f) in
        [("sigmoid'", activation::sigmoid::<1> as fn(Tensor<1>) -> Tensor<1>), ("tanh'", activation::tanh::<1>)]
    {
        let ad = burn::tensor::Device::flex().autodiff();
        let (got, want) = both_on(&ad, &xs, grad_of(f));
        for ((&x, &g), &w) in xs.iter().zip(&got).zip(&want) {
            // 1 - tanh^2 and s (1 - s) cancel near saturation: absolute bound of a few ulps
            // of 1 there.
            let tol = 8.0 * ulp(w) + 2f64.powi(-22);
            assert!((g - w).abs() <= tol, "{name}({x:e}) = {g:e}, reference {w:e}");
        }
    }
}

/// The fused softmax (its exp is the vectorised one), rows of several lengths (the SIMD body
/// and the scalar tail), against f64. Besides a few ulps, the bound has the rounding of
/// `x - max` in f32 (half an ulp of the difference, at most `|x - max| 2^-24`), which is a
/// relative error of `exp(x - max)` of the same size; upstream's f32 softmax rounds it too.
#[test]
fn softmax_rows() {
    let dev = burn::tensor::Device::flex();
    for len in [1usize, 3, 7, 16, 17, 64, 129] {
        let rows = 5;
        let xs: Vec<f32> = (0..rows * len).map(|i| ((i * 7919) % 211) as f32 * 0.37 - 40.0).collect();
        let x = Tensor::<2>::from_data(TensorData::new(xs.clone(), [rows, len]), &dev);
        let got = activation::softmax(x.clone(), 1).into_data().convert::<f64>().try_into_vec::<f64>().unwrap();
        let want = activation::softmax(x.cast(DType::F64), 1).into_data().try_into_vec::<f64>().unwrap();
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            let row = &xs[i / len * len..][..len];
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let d = f64::from((xs[i] - max).abs());
            let tol = 8.0 * ulp(*w) + w * d * 2f64.powi(-24) + 1e-30;
            assert!((g - w).abs() <= tol, "softmax len {len} [{i}]: {g:e} vs {w:e}");
        }
    }
}

/// The in-place path (a uniquely owned contiguous tensor), the copy path (a shared one) and a
/// non-contiguous view give the same bits.
/// A named tensor function, for tables of them.
type Op2 = (&'static str, fn(Tensor<2>) -> Tensor<2>);

#[test]
fn copy_paths_match_in_place() {
    let dev = burn::tensor::Device::flex();
    let xs: Vec<f32> = (0..6 * 37).map(|i| (i as f32 - 111.0) * 0.173).collect();
    let ops: [Op2; 5] = [
        ("exp", |t| t.exp()),
        ("tanh", |t| t.tanh()),
        ("sigmoid", activation::sigmoid),
        ("erf", |t| t.erf()),
        ("gelu", activation::gelu),
    ];
    for (name, f) in ops {
        let make = || Tensor::<2>::from_data(TensorData::new(xs.clone(), [6, 37]), &dev);
        let bits = |t: Tensor<2>| -> Vec<u32> {
            t.into_data().try_to_vec::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
        };
        let unique = bits(f(make()));
        let shared = make();
        let from_shared = bits(f(shared.clone()));
        drop(shared);
        assert_eq!(unique, from_shared, "{name}: shared input");
        // A transposed view: the result is the transpose of the plain one.
        let mut xt = vec![0.0f32; xs.len()];
        for r in 0..6 {
            for c in 0..37 {
                xt[c * 6 + r] = xs[r * 37 + c];
            }
        }
        let t = Tensor::<2>::from_data(TensorData::new(xt, [37, 6]), &dev);
        let viewed = bits(f(t.transpose()));
        assert_eq!(unique, viewed, "{name}: non-contiguous input");
    }
}
