//! `net::fused`: the one-node softmax and layer norm against direct f64 computations
//! written here, forward and gradients (central differences of the f64 functions), on odd
//! sizes, strided inputs, hidden (-1e30) keys and rows with every key hidden; and against
//! burn's own composite operations on the same tensors.

use burn::tensor::{Device, Tensor, TensorData, activation};

use super::fused;
use crate::train::test_support::{device, numeric_grad};
use crate::train::{DeviceKind, burn_device};

/// Deterministic values in [-2, 2).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = crate::rng::Rng::new(seed);
    (0..n).map(|_| rng.uniform(-2.0, 2.0)).collect()
}

fn tensor<const D: usize>(v: &[f64], shape: [usize; D], device: &Device) -> Tensor<D> {
    let v: Vec<f32> = v.iter().map(|x| *x as f32).collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

fn floats<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data().try_to_vec::<f32>().expect("f32").into_iter().map(f64::from).collect()
}

fn assert_close(got: &[f64], want: &[f64], tol: f64, what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        assert!((a - b).abs() <= tol * (1.0 + b.abs()), "{what}[{i}]: {a} vs {b}");
    }
}

/// Softmax of each row of `n` values, in f64.
fn softmax_f64(x: &[f64], n: usize) -> Vec<f64> {
    x.chunks(n)
        .flat_map(|r| {
            let m = r.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = r.iter().map(|v| (v - m).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(move |v| v / s)
        })
        .collect()
}

/// Layer norm of each row of `gamma.len()` values, in f64 (biased variance).
fn layer_norm_f64(x: &[f64], gamma: &[f64], beta: &[f64], eps: f64) -> Vec<f64> {
    let d = gamma.len();
    x.chunks(d)
        .flat_map(|r| {
            let mean = r.iter().sum::<f64>() / d as f64;
            let var = r.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / d as f64;
            let s = (var + eps).sqrt();
            r.iter().zip(gamma).zip(beta).map(move |((v, g), b)| (v - mean) / s * g + b).collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn softmax_matches_f64_forward_and_gradient_on_odd_sizes() {
    let device = device();
    for (rows, n) in [(1, 1), (3, 5), (7, 13), (2, 130)] {
        let x = values(rows * n, 1 + n as u64);
        let w = values(rows * n, 100 + n as u64);
        let xt = tensor(&x, [rows, n], &device).require_grad();
        let y = fused::softmax_last(xt.clone());
        assert_close(&floats(y.clone()), &softmax_f64(&x, n), 1e-6, "softmax");
        let grads = (y * tensor(&w, [rows, n], &device)).sum().backward();
        let want = numeric_grad(&x, &w, |v| softmax_f64(v, n));
        assert_close(&floats(xt.grad(&grads).expect("grad")), &want, 1e-5, "d softmax");
    }
}

#[test]
fn softmax_of_a_strided_rank4_tensor_matches_burns_composite() {
    let device = device();
    let (b, h, t) = (2, 3, 5);
    let x = values(b * h * t * t, 7);
    let w = values(b * h * t * t, 8);
    let run = |fused: bool| {
        let xt = tensor(&x, [b, h, t, t], &device).require_grad();
        // Swapping the two last axes gives a non-contiguous input.
        let s = xt.clone().swap_dims(2, 3);
        let y = if fused { fused::softmax_last(s) } else { activation::softmax(s, 3) };
        let grads = (y.clone() * tensor(&w, [b, h, t, t], &device)).sum().backward();
        (floats(y), floats(xt.grad(&grads).expect("grad")))
    };
    let (y1, g1) = run(true);
    let (y0, g0) = run(false);
    assert_close(&y1, &y0, 1e-6, "softmax vs composite");
    assert_close(&g1, &g0, 1e-5, "d softmax vs composite");
}

#[test]
fn softmax_gives_hidden_keys_no_weight_and_a_fully_hidden_row_uniform_weights() {
    let device = device();
    let hidden = -1.0e30;
    let x = vec![0.5, hidden, 1.5, hidden, hidden, hidden, hidden, hidden];
    let xt = tensor(&x, [2, 4], &device).require_grad();
    let y = fused::softmax_last(xt.clone());
    let got = floats(y.clone());
    assert_eq!(got[1], 0.0);
    assert_eq!(got[3], 0.0);
    assert_close(
        &got[..4],
        &softmax_f64(&[0.5, 1.5], 2).into_iter().flat_map(|v| [v, 0.0]).collect::<Vec<_>>()[..],
        1e-6,
        "row 0",
    );
    assert_close(&got[4..], &[0.25; 4], 1e-6, "row 1");
    let grads = (y * tensor(&values(8, 3), [2, 4], &device)).sum().backward();
    let g = floats(xt.grad(&grads).expect("grad"));
    assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
    assert_eq!((g[1], g[3]), (0.0, 0.0), "a hidden key gets no gradient");
}

#[test]
fn layer_norm_matches_f64_forward_and_gradients_on_odd_sizes() {
    let device = device();
    let eps = fused::LAYER_NORM_EPSILON;
    for (rows, d) in [(1, 1), (3, 5), (4, 13), (2, 130)] {
        let x = values(rows * d, 20 + d as u64);
        let g = values(d, 30 + d as u64);
        let b = values(d, 40 + d as u64);
        let w = values(rows * d, 50 + d as u64);
        let (xt, gt, bt) = (
            tensor(&x, [1, rows, d], &device).require_grad(),
            tensor(&g, [d], &device).require_grad(),
            tensor(&b, [d], &device).require_grad(),
        );
        let y = fused::layer_norm(xt.clone(), gt.clone(), bt.clone(), eps);
        // With d = 1 every row is constant: its normalised value is 0.
        assert_close(&floats(y.clone()), &layer_norm_f64(&x, &g, &b, eps), 1e-5, "layer norm");
        let grads = (y * tensor(&w, [1, rows, d], &device)).sum().backward();
        let dx = numeric_grad(&x, &w, |v| layer_norm_f64(v, &g, &b, eps));
        let dg = numeric_grad(&g, &w, |v| layer_norm_f64(&x, v, &b, eps));
        let db = numeric_grad(&b, &w, |v| layer_norm_f64(&x, &g, v, eps));
        assert_close(&floats(xt.grad(&grads).expect("dx")), &dx, 2e-4, "d layer norm / dx");
        assert_close(&floats(gt.grad(&grads).expect("dgamma")), &dg, 1e-4, "d layer norm / dgamma");
        assert_close(&floats(bt.grad(&grads).expect("dbeta")), &db, 1e-4, "d layer norm / dbeta");
    }
}

#[test]
fn layer_norm_matches_burns_module_on_a_strided_input() {
    let device = device();
    let (b, t, d) = (3, 4, 6);
    let ln = burn::nn::LayerNormConfig::new(d).init(&device);
    let x = values(b * t * d, 61);
    let w = values(b * t * d, 62);
    let run = |fused: bool| {
        let xt = tensor(&x, [b, d, t], &device).require_grad();
        let s = xt.clone().swap_dims(1, 2);
        let y = if fused { fused::layer_norm_of(s, &ln) } else { ln.forward(s) };
        let grads = (y.clone() * tensor(&w, [b, t, d], &device)).sum().backward();
        let gg = floats(ln.gamma.val().grad(&grads).expect("dgamma"));
        (floats(y), floats(xt.grad(&grads).expect("dx")), gg)
    };
    let (y1, dx1, dg1) = run(true);
    let (y0, dx0, dg0) = run(false);
    assert_close(&y1, &y0, 1e-5, "layer norm vs module");
    assert_close(&dx1, &dx0, 1e-4, "dx vs module");
    assert_close(&dg1, &dg0, 1e-4, "dgamma vs module");
}

#[test]
fn fused_ops_without_autodiff_match_the_tracked_ones() {
    let plain = burn_device(DeviceKind::Cpu).expect("device");
    let tracked = device();
    let x = values(4 * 9, 71);
    let g = values(9, 72);
    let b = values(9, 73);
    let eps = fused::LAYER_NORM_EPSILON;
    for dev in [&plain, &tracked] {
        let y = fused::softmax_last(tensor(&x, [4, 9], dev));
        assert_close(&floats(y), &softmax_f64(&x, 9), 1e-6, "softmax");
        let y = fused::layer_norm(tensor(&x, [4, 9], dev), tensor(&g, [9], dev), tensor(&b, [9], dev), eps);
        assert_close(&floats(y), &layer_norm_f64(&x, &g, &b, eps), 1e-5, "layer norm");
    }
}
