//! The vendored burn-flex's 2x2/stride-2 max pooling (vendor/burn-flex, `ops/max_pool2x2.rs`)
//! against burn-flex's generic pooling, exactly: the same inputs as f64 tensors take the generic
//! path (the fast path is f32 only), and every f32 value is exact in f64, so the outputs, the
//! argmax indices and the input gradients (through burn's autodiff on the flex device, the path
//! bma's trainer uses) must agree bit for bit. Inputs drawn from a few values, so windows tie,
//! with NaN and infinities; odd sizes (the last row/column dropped), batch > 1, several
//! channels, ceil mode, a non-contiguous input, and indices that are not the forward pass's
//! (the fall-back to the generic scatter).

#![allow(clippy::unwrap_used)]

use burn::tensor::ops::MaxPoolOptions;
use burn::tensor::{DType, Int, Tensor, TensorData, module as ops};

/// Deterministic values drawn from `pool` (few distinct values: windows tie often).
fn values(n: usize, seed: u64, pool: &[f32]) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            pool[(s >> 33) as usize % pool.len()]
        })
        .collect()
}

const TIES: &[f32] = &[-1.5, 0.0, 0.25, 0.25, 1.0, 2.0, 2.0, -0.0];
const SPECIAL: &[f32] = &[-1.5, 0.25, 1.0, 2.0, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0];

fn floats(t: Tensor<4>) -> Vec<f64> {
    t.into_data().convert::<f64>().try_into_vec::<f64>().unwrap()
}

fn ints(t: Tensor<4, Int>) -> Vec<i64> {
    t.into_data().convert::<i64>().try_into_vec::<i64>().unwrap()
}

/// Equal as f64 values, bit for bit (so `-0.0 != 0.0`), any NaN equal to any NaN.
fn assert_same(what: &str, shape: [usize; 4], fast: &[f64], generic: &[f64]) {
    assert_eq!(fast.len(), generic.len(), "{what}: length, {shape:?}");
    for (i, (f, g)) in fast.iter().zip(generic).enumerate() {
        let same = (f.is_nan() && g.is_nan()) || f.to_bits() == g.to_bits();
        assert!(same, "{what}[{i}]: fast {f}, generic {g}, {shape:?}");
    }
}

fn options(ceil: bool) -> MaxPoolOptions<2> {
    MaxPoolOptions::new([2, 2]).with_stride([2, 2]).with_ceil_mode(ceil)
}

/// Forward (values, indices) and the input gradient of `sum(maxpool(x) * r)` in `dtype`;
/// with `transposed`, x is handed over as a non-contiguous view (axes 0 and 1 swapped).
fn run(shape: [usize; 4], xv: &[f32], dtype: DType, ceil: bool, transposed: bool) -> (Vec<f64>, Vec<i64>, Vec<f64>) {
    let dev = burn::tensor::Device::flex();
    let input = |dev: &burn::tensor::Device| {
        if transposed {
            let [n, c, h, w] = shape;
            let mut xt = vec![0.0f32; xv.len()];
            for b in 0..n {
                for ch in 0..c {
                    let (src, dst) = ((b * c + ch) * h * w, (ch * n + b) * h * w);
                    xt[dst..dst + h * w].copy_from_slice(&xv[src..src + h * w]);
                }
            }
            Tensor::<4>::from_data(TensorData::new(xt, [c, n, h, w]), dev).cast(dtype).swap_dims(0, 1)
        } else {
            Tensor::<4>::from_data(TensorData::new(xv.to_vec(), shape), dev).cast(dtype)
        }
    };
    let (y, idx) = ops::max_pool2d_with_indices(input(&dev), options(ceil));
    assert_eq!(y.dtype(), dtype);
    let ad = dev.autodiff();
    let x = input(&ad).require_grad();
    let y2 = ops::max_pool2d(x.clone(), options(ceil));
    let r = Tensor::<4>::from_data(TensorData::new(values(y2.dims().iter().product(), 9, TIES), y2.dims()), &ad)
        .cast(dtype);
    let grads = (y2 * r).sum().backward();
    (floats(y), ints(idx), floats(x.grad(&grads).unwrap()))
}

fn check(shape: [usize; 4], pool: &[f32], ceil: bool, transposed: bool) {
    let xv = values(shape.iter().product(), shape.iter().sum::<usize>() as u64, pool);
    let (fy, fi, fdx) = run(shape, &xv, DType::F32, ceil, transposed);
    let (gy, gi, gdx) = run(shape, &xv, DType::F64, ceil, transposed);
    let [_, _, h, w] = shape;
    let out = if ceil { h.div_ceil(2) * w.div_ceil(2) } else { (h / 2) * (w / 2) };
    assert_eq!(fy.len(), shape[0] * shape[1] * out, "output size, {shape:?}");
    assert_same("output", shape, &fy, &gy);
    assert_eq!(fi, gi, "indices, {shape:?}");
    assert_same("input gradient", shape, &fdx, &gdx);
}

#[test]
fn even_sizes_batch_and_channels_with_ties() {
    check([1, 1, 2, 2], TIES, false, false);
    check([2, 3, 4, 6], TIES, false, false);
    check([4, 16, 28, 28], TIES, false, false);
}

#[test]
fn odd_sizes_drop_the_last_row_and_column() {
    check([2, 3, 5, 7], TIES, false, false);
    check([3, 2, 9, 4], TIES, false, false);
    check([1, 5, 6, 3], TIES, false, false);
    check([2, 2, 3, 2], TIES, false, false);
}

#[test]
fn nan_and_infinities_follow_the_generic_rule() {
    check([2, 4, 6, 8], SPECIAL, false, false);
    check([3, 3, 7, 5], SPECIAL, false, false);
    // Windows that are all NaN, all -inf, or all -0.0.
    for v in [f32::NAN, f32::NEG_INFINITY, -0.0] {
        check([1, 2, 4, 4], &[v], false, false);
    }
}

#[test]
fn large_enough_for_the_parallel_paths() {
    // 64 x 16 x 14 x 14 outputs and 64 x 16 x 28 x 28 inputs: past the rayon thresholds.
    check([64, 16, 28, 28], TIES, false, false);
    check([32, 32, 15, 15], SPECIAL, false, false);
}

#[test]
fn ceil_mode_even_sizes_take_the_fast_path_odd_ones_the_generic() {
    check([2, 3, 6, 8], TIES, true, false);
    check([2, 3, 5, 7], TIES, true, false);
}

#[test]
fn a_non_contiguous_input_is_read_in_its_logical_order() {
    check([3, 4, 6, 7], TIES, false, true);
}

#[test]
fn sizes_without_a_window_and_other_kernels_fall_back() {
    // Height or width 1 (no 2x2 window), and a 3x3/stride-2 kernel: the generic path for f32 as
    // for f64, and the same results.
    let dev = burn::tensor::Device::flex();
    let cases = [([2, 2, 1, 6], [2, 2]), ([2, 2, 6, 1], [2, 2]), ([2, 3, 7, 6], [3, 3])];
    for (shape, kernel) in cases {
        let xv = values(shape.iter().product(), 3, TIES);
        let pool = |dtype: DType| {
            let x = Tensor::<4>::from_data(TensorData::new(xv.clone(), shape), &dev).cast(dtype);
            let (y, i) = ops::max_pool2d_with_indices(x, MaxPoolOptions::new(kernel).with_stride([2, 2]));
            (floats(y), ints(i))
        };
        let ((fy, fi), (gy, gi)) = (pool(DType::F32), pool(DType::F64));
        assert_same("output", shape, &fy, &gy);
        assert_eq!(fi, gi, "indices, {shape:?}");
    }
}

#[test]
fn indices_outside_their_window_fall_back_to_the_generic_scatter() {
    // Every gradient sent to position 0 or 5 of its plane: not the forward pass's indices, so
    // the fast backward declines and the generic scatter adds them up.
    let dev = burn::tensor::Device::flex();
    let (shape, out) = ([2, 3, 4, 6], [2, 3, 2, 3]);
    let xv = values(144, 4, TIES);
    let gv = values(36, 5, TIES);
    let iv: Vec<i64> = (0..36).map(|i| if i % 4 == 0 { 5 } else { 0 }).collect();
    let grad_in = |dtype: DType| {
        let x = Tensor::<4>::from_data(TensorData::new(xv.clone(), shape), &dev).cast(dtype);
        let g = Tensor::<4>::from_data(TensorData::new(gv.clone(), out), &dev).cast(dtype);
        let i = Tensor::<4, Int>::from_data(TensorData::new(iv.clone(), out), &dev);
        floats(ops::max_pool2d_with_indices_backward(x, [2, 2], [2, 2], [0, 0], [1, 1], false, g, i))
    };
    let (fast, generic) = (grad_in(DType::F32), grad_in(DType::F64));
    assert_same("input gradient", shape, &fast, &generic);
    // Position 0 of plane 0 got the three gradients with i % 4 != 0 among outputs 0..6.
    let want: f64 = [1, 2, 3, 5].iter().map(|&i| f64::from(gv[i])).sum();
    assert_eq!(fast[0], want);
}
