//! The vendored burn-flex's batch normalisation (vendor/burn-flex, `ops/batch_norm.rs`: fused
//! per-channel passes for f32, burn-backend's default code otherwise) against a direct
//! computation in f64. Training mode: the output, the batch statistics, and the gradients for the
//! input, gamma and beta, through burn's autodiff on the flex device (the path bma's trainer
//! uses). Inference mode: the output from given statistics.

#![allow(clippy::unwrap_used)]

use burn::tensor::{DType, Tensor, TensorData, module as ops};

const EPS: f64 = 1e-5;

/// Deterministic values in [lo, hi).
fn values(n: usize, seed: u64, lo: f64, hi: f64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (lo + (s >> 40) as f64 / (1u64 << 24) as f64 * (hi - lo)) as f32
        })
        .collect()
}

/// f64 reference for loss = sum(y * r): y, mean, biased variance, dx, dgamma, dbeta.
struct Reference {
    y: Vec<f64>,
    mean: Vec<f64>,
    var: Vec<f64>,
    dx: Vec<f64>,
    dgamma: Vec<f64>,
    dbeta: Vec<f64>,
}

fn reference(shape: &[usize], x: &[f32], gamma: &[f32], beta: &[f32], r: &[f32]) -> Reference {
    let (n, c) = (shape[0], shape[1]);
    let inner: usize = shape[2..].iter().product();
    let m = (n * inner) as f64;
    let at = |b: usize, ch: usize, i: usize| (b * c + ch) * inner + i;
    let mut out = Reference {
        y: vec![0.0; x.len()],
        mean: vec![0.0; c],
        var: vec![0.0; c],
        dx: vec![0.0; x.len()],
        dgamma: vec![0.0; c],
        dbeta: vec![0.0; c],
    };
    for ch in 0..c {
        let idx = || (0..n).flat_map(move |b| (0..inner).map(move |i| at(b, ch, i)));
        let mean = idx().map(|j| f64::from(x[j])).sum::<f64>() / m;
        let var = idx().map(|j| (f64::from(x[j]) - mean).powi(2)).sum::<f64>() / m;
        let inv = 1.0 / (var + EPS).sqrt();
        let xhat = |j: usize| (f64::from(x[j]) - mean) * inv;
        let dbeta: f64 = idx().map(|j| f64::from(r[j])).sum();
        let dgamma: f64 = idx().map(|j| f64::from(r[j]) * xhat(j)).sum();
        for j in idx() {
            out.y[j] = xhat(j) * f64::from(gamma[ch]) + f64::from(beta[ch]);
            out.dx[j] = f64::from(gamma[ch]) * inv * (f64::from(r[j]) - dbeta / m - xhat(j) * dgamma / m);
        }
        (out.mean[ch], out.var[ch], out.dgamma[ch], out.dbeta[ch]) = (mean, var, dgamma, dbeta);
    }
    out
}

fn assert_close(what: &str, shape: &[usize], got: &[f32], want: &[f64], tol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length, {shape:?}");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (f64::from(*g) - w).abs();
        assert!(err <= tol * scale, "{what}[{i}]: got {g}, want {w} (scale {scale}), {shape:?}");
    }
}

fn floats<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_into_vec::<f32>().unwrap()
}

/// Runs batch_norm_train and its backward on `shape` in `dtype` and checks every result.
/// With `transposed`, the input is handed over as a non-contiguous view (axes 0 and 1 swapped).
fn check<const D: usize>(shape: [usize; D], dtype: DType, transposed: bool) {
    let dev = burn::tensor::Device::flex().autodiff();
    let len: usize = shape.iter().product();
    let c = shape[1];
    // Shifted, scaled inputs: a mean far from zero tests the centred variance.
    let xv = values(len, 1, 2.0, 5.0);
    let (gv, bv, rv) = (values(c, 2, 0.5, 1.5), values(c, 3, -1.0, 1.0), values(len, 4, -1.0, 1.0));
    let x = if transposed {
        let mut swapped = shape;
        swapped.swap(0, 1);
        // The data of x^T laid out contiguously, so that swapping back gives x.
        let mut xt = vec![0.0f32; len];
        let inner = len / (shape[0] * c);
        for b in 0..shape[0] {
            for ch in 0..c {
                for i in 0..inner {
                    xt[(ch * shape[0] + b) * inner + i] = xv[(b * c + ch) * inner + i];
                }
            }
        }
        Tensor::<D>::from_data(TensorData::new(xt, swapped), &dev).cast(dtype).require_grad()
    } else {
        Tensor::<D>::from_data(TensorData::new(xv.clone(), shape), &dev).cast(dtype).require_grad()
    };
    let gamma = Tensor::<1>::from_data(TensorData::new(gv.clone(), [c]), &dev).cast(dtype).require_grad();
    let beta = Tensor::<1>::from_data(TensorData::new(bv.clone(), [c]), &dev).cast(dtype).require_grad();
    let r = Tensor::<D>::from_data(TensorData::new(rv.clone(), shape), &dev).cast(dtype);
    let input = if transposed { x.clone().swap_dims(0, 1) } else { x.clone() };
    let out = ops::batch_norm_train(input, gamma.clone(), beta.clone(), EPS);
    assert_eq!(out.output.dims(), shape);
    assert_eq!(out.output.dtype(), dtype);
    let grads = (out.output.clone() * r).sum().backward();
    let want = reference(&shape, &xv, &gv, &bv, &rv);
    let tol = 2e-5;
    assert_close("y", &shape, &floats(out.output), &want.y, tol);
    assert_close("mean", &shape, &floats(out.mean), &want.mean, tol);
    assert_close("variance", &shape, &floats(out.variance), &want.var, tol);
    let mut dx = floats(x.grad(&grads).unwrap());
    if transposed {
        let (n, inner) = (shape[0], len / (shape[0] * c));
        let dxt = dx.clone();
        for b in 0..n {
            for ch in 0..c {
                for i in 0..inner {
                    dx[(b * c + ch) * inner + i] = dxt[(ch * n + b) * inner + i];
                }
            }
        }
    }
    // The input gradient is a difference of nearly equal terms: relative to its largest entry,
    // f32 keeps about 1e-4.
    assert_close("dx", &shape, &dx, &want.dx, 1e-4);
    assert_close("dgamma", &shape, &floats(gamma.grad(&grads).unwrap()), &want.dgamma, tol);
    assert_close("dbeta", &shape, &floats(beta.grad(&grads).unwrap()), &want.dbeta, tol);
}

#[test]
fn the_digits_layer_batch_64_by_32_channels_of_8x8() {
    check([64, 32, 8, 8], DType::F32, false);
}

#[test]
fn blocks_shorter_than_a_lane_and_with_a_remainder() {
    // 9 pixels (one 8-lane chunk + 1), 3 pixels (remainder only), rank 3.
    check([3, 5, 3, 3], DType::F32, false);
    check([4, 2, 3], DType::F32, false);
    check([2, 3, 17], DType::F32, false);
}

#[test]
fn rank_2_after_a_dense_layer() {
    check([16, 7], DType::F32, false);
    check([1, 4], DType::F32, false);
}

#[test]
fn a_non_contiguous_input_is_read_in_its_logical_order() {
    check([6, 4, 3, 5], DType::F32, true);
    check([5, 3], DType::F32, true);
}

#[test]
fn f64_tensors_fall_back_to_upstream_code() {
    check([4, 3, 5, 5], DType::F64, false);
}

/// Inference-mode `batch_norm` (given statistics) on the plain flex device, as validation, test
/// and latency runs call it, against `(x - mean) / sqrt(var + eps) * gamma + beta` in f64.
fn check_inference<const D: usize>(shape: [usize; D], dtype: DType, transposed: bool) {
    let dev = burn::tensor::Device::flex();
    let len: usize = shape.iter().product();
    let c = shape[1];
    let inner = len / (shape[0] * c);
    let xv = values(len, 5, -3.0, 7.0);
    let (gv, bv) = (values(c, 6, 0.5, 1.5), values(c, 7, -1.0, 1.0));
    let (mv, vv) = (values(c, 8, -2.0, 4.0), values(c, 9, 0.0, 3.0));
    let x = if transposed {
        let mut swapped = shape;
        swapped.swap(0, 1);
        let mut xt = vec![0.0f32; len];
        for b in 0..shape[0] {
            for ch in 0..c {
                for i in 0..inner {
                    xt[(ch * shape[0] + b) * inner + i] = xv[(b * c + ch) * inner + i];
                }
            }
        }
        Tensor::<D>::from_data(TensorData::new(xt, swapped), &dev).cast(dtype).swap_dims(0, 1)
    } else {
        Tensor::<D>::from_data(TensorData::new(xv.clone(), shape), &dev).cast(dtype)
    };
    let per_channel = |v: &[f32]| Tensor::<1>::from_data(TensorData::new(v.to_vec(), [c]), &dev).cast(dtype);
    let y = ops::batch_norm(x, per_channel(&gv), per_channel(&bv), per_channel(&mv), per_channel(&vv), EPS);
    assert_eq!(y.dims(), shape);
    assert_eq!(y.dtype(), dtype);
    let want: Vec<f64> = (0..len)
        .map(|j| {
            let ch = j / inner % c;
            let [g, b, m, v] = [gv[ch], bv[ch], mv[ch], vv[ch]].map(f64::from);
            (f64::from(xv[j]) - m) / (v + EPS).sqrt() * g + b
        })
        .collect();
    assert_close("y (inference)", &shape, &floats(y), &want, 2e-6);
}

#[test]
fn inference_mode_uses_the_given_statistics() {
    check_inference([64, 32, 8, 8], DType::F32, false);
    check_inference([3, 5, 3, 3], DType::F32, false);
    check_inference([16, 7], DType::F32, false);
    check_inference([1, 4, 2, 2], DType::F32, false);
}

#[test]
fn inference_mode_reads_a_non_contiguous_input_in_its_logical_order() {
    check_inference([6, 4, 3, 5], DType::F32, true);
    check_inference([5, 3], DType::F32, true);
}

#[test]
fn inference_mode_f64_falls_back_to_upstream_code() {
    check_inference([4, 3, 5, 5], DType::F64, false);
}
