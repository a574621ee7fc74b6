//! The vendored burn-flex's 2-D convolution (vendor/burn-flex, `ops/conv2d_gemm.rs`: f32,
//! groups == 1 as batched im2col + GEMM; burn-backend's default code otherwise) against a naive
//! direct convolution written here in f64: forward output and the gradients for x, weight and
//! bias, through burn's autodiff on the flex device (the path bma's trainer uses).

#![allow(clippy::unwrap_used, clippy::needless_range_loop)]

use burn::tensor::ops::ConvOptions;
use burn::tensor::{DType, Device, Tensor, TensorData, module as ops};

/// A convolution case: input `[b, ci, h, w]`, weight `[co, ci / groups, kh, kw]`.
#[derive(Clone, Copy, Debug)]
struct Case {
    b: usize,
    ci: usize,
    h: usize,
    w: usize,
    co: usize,
    kh: usize,
    kw: usize,
    stride: [usize; 2],
    /// `(begin, end)` padding for height, then width.
    pad: [(usize, usize); 2],
    dilation: [usize; 2],
    groups: usize,
}

impl Case {
    fn new(b: usize, ci: usize, hw: [usize; 2], co: usize, k: [usize; 2]) -> Case {
        Case {
            b,
            ci,
            h: hw[0],
            w: hw[1],
            co,
            kh: k[0],
            kw: k[1],
            stride: [1, 1],
            pad: [(0, 0); 2],
            dilation: [1, 1],
            groups: 1,
        }
    }
    fn stride(mut self, s: [usize; 2]) -> Case {
        self.stride = s;
        self
    }
    fn pad(mut self, p: [(usize, usize); 2]) -> Case {
        self.pad = p;
        self
    }
    fn dilation(mut self, d: [usize; 2]) -> Case {
        self.dilation = d;
        self
    }
    fn groups(mut self, g: usize) -> Case {
        self.groups = g;
        self
    }
    fn out_hw(&self) -> (usize, usize) {
        let o = |n: usize, k: usize, s: usize, p: (usize, usize), d: usize| (n + p.0 + p.1 - d * (k - 1) - 1) / s + 1;
        (
            o(self.h, self.kh, self.stride[0], self.pad[0], self.dilation[0]),
            o(self.w, self.kw, self.stride[1], self.pad[1], self.dilation[1]),
        )
    }
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0) as f32
        })
        .collect()
}

/// Reference results in f64: (y, dx, dw, db) for loss = sum(y * r).
struct Reference {
    y: Vec<f64>,
    dx: Vec<f64>,
    dw: Vec<f64>,
    db: Vec<f64>,
}

fn naive(c: &Case, x: &[f32], w: &[f32], bias: &[f32], r: &[f32]) -> Reference {
    let (ho, wo) = c.out_hw();
    let cig = c.ci / c.groups;
    let cog = c.co / c.groups;
    let mut out = Reference {
        y: vec![0.0; c.b * c.co * ho * wo],
        dx: vec![0.0; x.len()],
        dw: vec![0.0; w.len()],
        db: vec![0.0; c.co],
    };
    for b in 0..c.b {
        for co in 0..c.co {
            let g = co / cog;
            for oy in 0..ho {
                for ox in 0..wo {
                    let yi = ((b * c.co + co) * ho + oy) * wo + ox;
                    let rv = f64::from(r[yi]);
                    let mut acc = f64::from(bias[co]);
                    for cl in 0..cig {
                        let ci = g * cig + cl;
                        for ky in 0..c.kh {
                            for kx in 0..c.kw {
                                let iy = (oy * c.stride[0] + ky * c.dilation[0]) as isize - c.pad[0].0 as isize;
                                let ix = (ox * c.stride[1] + kx * c.dilation[1]) as isize - c.pad[1].0 as isize;
                                if iy < 0 || ix < 0 || iy >= c.h as isize || ix >= c.w as isize {
                                    continue;
                                }
                                let xi = ((b * c.ci + ci) * c.h + iy as usize) * c.w + ix as usize;
                                let wi = ((co * cig + cl) * c.kh + ky) * c.kw + kx;
                                acc += f64::from(x[xi]) * f64::from(w[wi]);
                                out.dx[xi] += rv * f64::from(w[wi]);
                                out.dw[wi] += rv * f64::from(x[xi]);
                            }
                        }
                    }
                    out.y[yi] = acc;
                    out.db[co] += rv;
                }
            }
        }
    }
    out
}

fn assert_close(what: &str, c: &Case, got: &[f32], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length, {c:?}");
    let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (f64::from(*g) - w).abs();
        assert!(err <= 1e-4 * scale, "{what}[{i}]: got {g}, want {w} (scale {scale}), {c:?}");
    }
}

fn check(c: Case) {
    check_input(c, values(c.b * c.ci * c.h * c.w, 1));
}

/// [`check`] with the given input values.
fn check_input(c: Case, xv: Vec<f32>) {
    let dev = Device::flex().autodiff();
    let (ho, wo) = c.out_hw();
    let wv = values(c.co * (c.ci / c.groups) * c.kh * c.kw, 2);
    let bv = values(c.co, 3);
    let rv = values(c.b * c.co * ho * wo, 4);
    let x = Tensor::<4>::from_data(TensorData::new(xv.clone(), [c.b, c.ci, c.h, c.w]), &dev).require_grad();
    let w =
        Tensor::<4>::from_data(TensorData::new(wv.clone(), [c.co, c.ci / c.groups, c.kh, c.kw]), &dev).require_grad();
    let b = Tensor::<1>::from_data(TensorData::new(bv.clone(), [c.co]), &dev).require_grad();
    let r = Tensor::<4>::from_data(TensorData::new(rv.clone(), [c.b, c.co, ho, wo]), &dev);
    let opts = ConvOptions::new_with_padding(c.stride, c.pad, c.dilation, c.groups);
    let y = ops::conv2d(x.clone(), w.clone(), Some(b.clone()), opts);
    assert_eq!(y.dims(), [c.b, c.co, ho, wo], "{c:?}");
    let grads = (y.clone() * r).sum().backward();
    let want = naive(&c, &xv, &wv, &bv, &rv);
    let vec = |t: Tensor<4>| t.into_data().try_into_vec::<f32>().unwrap();
    assert_close("y", &c, &vec(y), &want.y);
    assert_close("dx", &c, &vec(x.grad(&grads).unwrap()), &want.dx);
    assert_close("dw", &c, &vec(w.grad(&grads).unwrap()), &want.dw);
    let db = b.grad(&grads).unwrap().into_data().try_into_vec::<f32>().unwrap();
    assert_close("db", &c, &db, &want.db);
}

#[test]
fn kernel_3_valid_and_same() {
    check(Case::new(4, 3, [8, 8], 5, [3, 3]));
    check(Case::new(4, 3, [8, 8], 5, [3, 3]).pad([(1, 1), (1, 1)]));
}

#[test]
fn the_digits_layer_32_to_32_channels() {
    check(Case::new(64, 32, [8, 8], 32, [3, 3]).pad([(1, 1), (1, 1)]));
}

#[test]
fn kernels_1_and_5() {
    check(Case::new(3, 4, [7, 6], 6, [1, 1]));
    check(Case::new(3, 4, [9, 7], 6, [5, 5]).pad([(2, 2), (2, 2)]));
    check(Case::new(2, 2, [6, 9], 3, [5, 3]).pad([(1, 0), (0, 2)]));
}

#[test]
fn pointwise_convolutions_take_the_direct_per_sample_gemm() {
    // 1x1, stride 1, no padding: one GEMM per sample on the NCHW planes (no im2col).
    // The depthwise-separable benchmark's three pointwise layers (bench/train/epoch.rs).
    check(Case::new(8, 32, [14, 14], 64, [1, 1]));
    check(Case::new(8, 64, [7, 7], 128, [1, 1]));
    check(Case::new(3, 128, [7, 7], 128, [1, 1]));
    // Batch 1, one input or output channel, one pixel, non-square planes, odd sizes.
    check(Case::new(1, 1, [5, 9], 3, [1, 1]));
    check(Case::new(4, 7, [3, 11], 1, [1, 1]));
    check(Case::new(2, 5, [1, 1], 6, [1, 1]));
    // A dilation means nothing to a 1x1 kernel: the same direct path.
    check(Case::new(2, 3, [6, 5], 4, [1, 1]).dilation([2, 3]));
    // Large enough for gemm to use the rayon pool inside one sample (64 x 4096 x 64 >= 192^3).
    check(Case::new(2, 64, [64, 64], 64, [1, 1]));
}

#[test]
fn one_by_one_kernels_with_stride_or_padding_keep_the_im2col_path() {
    check(Case::new(3, 4, [7, 6], 5, [1, 1]).stride([2, 2]));
    check(Case::new(3, 4, [7, 6], 5, [1, 1]).stride([1, 2]));
    check(Case::new(3, 4, [7, 6], 5, [1, 1]).pad([(1, 1), (1, 1)]));
    // Padding only at the end of one axis: the output is one row taller than the input.
    check(Case::new(2, 3, [5, 6], 4, [1, 1]).pad([(0, 1), (0, 0)]));
}

#[test]
fn pointwise_convolution_of_a_non_contiguous_input() {
    // A transposed view (h and w swapped) goes through `to_contiguous` first.
    let dev = Device::flex().autodiff();
    let c = Case::new(2, 3, [5, 4], 4, [1, 1]);
    let xv = values(c.b * c.ci * c.w * c.h, 1);
    let x = Tensor::<4>::from_data(TensorData::new(xv, [c.b, c.ci, c.w, c.h]), &dev).require_grad();
    let xt = x.clone().swap_dims(2, 3);
    let contiguous = Tensor::<4>::from_data(xt.clone().into_data(), &dev);
    let wv = values(c.co * c.ci, 2);
    let w = Tensor::<4>::from_data(TensorData::new(wv.clone(), [c.co, c.ci, 1, 1]), &dev);
    let opts = || ConvOptions::new([1, 1], [0, 0], [1, 1], 1);
    let y = ops::conv2d(xt, w.clone(), None, opts());
    let want = ops::conv2d(contiguous, w, None, opts());
    assert_eq!(y.clone().into_data(), want.into_data());
    // d(sum y)/dx at every pixel of input channel ci is the sum of the weights w[.., ci].
    let dx = x.grad(&y.sum().backward()).unwrap();
    assert_eq!(dx.dims(), [c.b, c.ci, c.w, c.h]);
    let dx = dx.into_data().try_into_vec::<f32>().unwrap();
    for (i, g) in dx.iter().enumerate() {
        let ci = (i / (c.w * c.h)) % c.ci;
        let want: f64 = (0..c.co).map(|co| f64::from(wv[co * c.ci + ci])).sum();
        assert!((f64::from(*g) - want).abs() <= 1e-5, "dx[{i}]: {g} vs {want}");
    }
}

#[test]
fn stride_2_with_and_without_padding() {
    check(Case::new(2, 3, [9, 8], 4, [3, 3]).stride([2, 2]));
    check(Case::new(2, 3, [9, 8], 4, [3, 3]).stride([2, 2]).pad([(1, 1), (1, 1)]));
    check(Case::new(2, 3, [10, 7], 4, [3, 2]).stride([2, 3]).pad([(2, 1), (0, 1)]));
}

#[test]
fn dilation() {
    check(Case::new(2, 3, [9, 10], 4, [3, 3]).dilation([2, 2]));
    check(Case::new(2, 3, [9, 10], 4, [3, 3]).dilation([2, 3]).pad([(2, 2), (3, 1)]).stride([2, 1]));
    // Stride 1 with an output as wide as the input: the shifted-plane im2col and col2im.
    check(Case::new(2, 3, [9, 10], 4, [3, 3]).dilation([2, 2]).pad([(2, 2), (2, 2)]));
    check(Case::new(2, 3, [9, 10], 4, [3, 3]).dilation([1, 2]).pad([(0, 0), (1, 3)]));
}

#[test]
fn asymmetric_same_padding_of_an_even_kernel() {
    // bma's `padding: same` with kernel 2 pads (0, 1) on each axis.
    check(Case::new(3, 2, [8, 8], 3, [2, 2]).pad([(0, 1), (0, 1)]));
}

#[test]
fn batch_1_one_input_channel_non_square() {
    check(Case::new(1, 1, [8, 8], 1, [3, 3]));
    check(Case::new(1, 1, [5, 11], 8, [3, 3]).pad([(1, 1), (1, 1)]));
    check(Case::new(5, 1, [8, 8], 32, [3, 3]).pad([(1, 1), (1, 1)]));
}

#[test]
fn kernel_larger_than_the_padded_input_on_one_axis_is_a_one_pixel_output() {
    check(Case::new(2, 2, [3, 6], 2, [3, 3]));
}

#[test]
fn large_inputs_are_processed_in_chunks_of_the_batch() {
    // 144 column rows x 4,096 pixels per sample: the 8 MiB column buffer holds 3 of the 9
    // samples, so the GEMM path runs three chunks and accumulates dW across them.
    check(Case::new(9, 16, [64, 64], 2, [3, 3]).pad([(1, 1), (1, 1)]));
}

#[test]
fn groups_2_falls_back_to_upstream_code() {
    check(Case::new(2, 4, [7, 7], 6, [3, 3]).groups(2));
    check(Case::new(2, 4, [7, 8], 4, [3, 3]).groups(2).stride([2, 2]).pad([(1, 1), (1, 1)]));
}

#[test]
fn depthwise_convolutions_take_the_direct_path() {
    // groups == channels == filters (vendor/burn-flex `ops/conv2d_depthwise.rs`): kernels 1, 3
    // and 5, strides 1 and 2 (TensorFlow's `same` pads the odd row at the end), dilation,
    // non-square inputs, a kernel wider than the input plus padding on one side.
    check(Case::new(2, 3, [5, 5], 3, [3, 3]).groups(3));
    check(Case::new(2, 4, [7, 7], 4, [3, 3]).groups(4).pad([(1, 1), (1, 1)]));
    check(Case::new(3, 4, [8, 8], 4, [3, 3]).groups(4).stride([2, 2]).pad([(0, 1), (0, 1)]));
    check(Case::new(1, 2, [9, 6], 2, [5, 3]).groups(2).stride([2, 1]).pad([(2, 2), (1, 1)]));
    check(Case::new(2, 2, [7, 7], 2, [3, 3]).groups(2).dilation([2, 2]).pad([(2, 2), (2, 2)]));
    check(Case::new(2, 5, [4, 6], 5, [1, 1]).groups(5).stride([2, 2]));
    check(Case::new(1, 2, [3, 3], 2, [3, 3]).groups(2).stride([3, 3]).pad([(1, 1), (1, 1)]));
    // A channel multiplier (filters = 2 x channels) is no depthwise case: the fall-back.
    check(Case::new(2, 3, [5, 5], 6, [3, 3]).groups(3));
}

#[test]
fn depthwise_planes_of_the_benchmark_and_odd_sizes() {
    // The phase-plane loops (blocks of 32 extended output positions, a tail block, several
    // phases): the depthwise-separable CNN's three layers (28x28 stride 2 `same`, 14x14 stride 2,
    // 7x7 stride 1), odd and non-square planes with every phase combination of strides 1-3 and
    // dilation, a 1-pixel output, and kernels wider than their stride.
    check(Case::new(2, 3, [28, 28], 3, [3, 3]).groups(3).stride([2, 2]).pad([(0, 1), (0, 1)]));
    check(Case::new(2, 4, [14, 14], 4, [3, 3]).groups(4).stride([2, 2]).pad([(0, 1), (0, 1)]));
    check(Case::new(3, 5, [7, 7], 5, [3, 3]).groups(5).pad([(1, 1), (1, 1)]));
    check(Case::new(2, 3, [15, 13], 3, [3, 3]).groups(3).stride([2, 2]).pad([(1, 1), (1, 1)]));
    check(Case::new(2, 2, [17, 11], 2, [5, 3]).groups(2).stride([1, 2]).pad([(2, 2), (0, 1)]));
    check(Case::new(1, 3, [19, 16], 3, [3, 5]).groups(3).stride([3, 2]).dilation([2, 1]).pad([(2, 0), (1, 2)]));
    check(Case::new(2, 2, [11, 12], 2, [4, 2]).groups(2).stride([3, 3]).dilation([1, 3]));
    check(Case::new(2, 3, [5, 5], 3, [3, 3]).groups(3).dilation([2, 2]));
    check(Case::new(1, 2, [40, 3], 2, [3, 3]).groups(2).stride([2, 1]).pad([(1, 1), (1, 1)]));
}

#[test]
fn depthwise_infinite_inputs_no_output_reads_stay_out_of_the_gradients() {
    // Dilation 2 on a 5x5 plane: one output pixel, which reads columns and rows 0, 2, 4. The
    // phase-plane loops also compute dropped output columns, which read columns 1 and 3; an inf
    // there must not reach y, dx or dw (as inf * 0 = NaN). An inf the output does read reaches
    // y and dw as inf, as in the f64 reference.
    let c = Case::new(2, 2, [5, 5], 2, [3, 3]).groups(2).dilation([2, 2]);
    let mut xv = values(c.b * c.ci * c.h * c.w, 1);
    let at = |b: usize, ci: usize, y: usize, x: usize| ((b * c.ci + ci) * c.h + y) * c.w + x;
    xv[at(0, 0, 0, 1)] = f32::INFINITY;
    xv[at(0, 1, 3, 3)] = f32::NEG_INFINITY;
    xv[at(1, 1, 4, 1)] = f32::INFINITY;
    check_input(c, xv.clone());
    // And one the output reads (column 2 of row 2 of sample 1, channel 0): y and dw of that
    // channel become infinite, the other channel's stay finite and exact.
    xv[at(1, 0, 2, 2)] = f32::INFINITY;
    let dev = Device::flex().autodiff();
    let wv: Vec<f32> = values(c.co * c.kh * c.kw, 2).iter().map(|v| v.abs() + 0.1).collect();
    let x = Tensor::<4>::from_data(TensorData::new(xv.clone(), [c.b, c.ci, c.h, c.w]), &dev).require_grad();
    let w = Tensor::<4>::from_data(TensorData::new(wv.clone(), [c.co, 1, c.kh, c.kw]), &dev).require_grad();
    let opts = ConvOptions::new_with_padding(c.stride, c.pad, c.dilation, c.groups);
    let y = ops::conv2d(x.clone(), w.clone(), None, opts);
    let grads = y.clone().sum().backward();
    let y = y.into_data().try_into_vec::<f32>().unwrap();
    let want = naive(&c, &xv, &wv, &vec![0.0; c.co], &vec![1.0; c.b * c.co]);
    for (i, (g, w)) in y.iter().zip(&want.y).enumerate() {
        let same = if w.is_infinite() { f64::from(*g) == *w } else { (f64::from(*g) - w).abs() <= 1e-5 };
        assert!(same, "y[{i}]: {g} vs {w}");
    }
    assert_eq!(want.y.iter().filter(|v| v.is_infinite()).count(), 1);
    let dw = w.grad(&grads).unwrap().into_data().try_into_vec::<f32>().unwrap();
    for (i, (g, w)) in dw.iter().zip(&want.dw).enumerate() {
        let same = if w.is_infinite() { f64::from(*g) == *w } else { (f64::from(*g) - w).abs() <= 1e-5 };
        assert!(same, "dw[{i}]: {g} vs {w}");
    }
    assert_eq!(want.dw.iter().filter(|v| v.is_infinite()).count(), 1);
    let dx = x.grad(&grads).unwrap().into_data().try_into_vec::<f32>().unwrap();
    for (i, (g, w)) in dx.iter().zip(&want.dx).enumerate() {
        assert!((f64::from(*g) - w).abs() <= 1e-5, "dx[{i}]: {g} vs {w}");
    }
}

#[test]
fn f64_tensors_fall_back_to_upstream_code() {
    let dev = Device::flex();
    let c = Case::new(2, 3, [6, 6], 4, [3, 3]).pad([(1, 1), (1, 1)]);
    let xv = values(c.b * c.ci * c.h * c.w, 1);
    let wv = values(c.co * c.ci * c.kh * c.kw, 2);
    let bv = vec![0.0f32; c.co];
    let x = Tensor::<4>::from_data(TensorData::new(xv.clone(), [c.b, c.ci, c.h, c.w]), &dev).cast(DType::F64);
    let w = Tensor::<4>::from_data(TensorData::new(wv.clone(), [c.co, c.ci, c.kh, c.kw]), &dev).cast(DType::F64);
    let y = ops::conv2d(x, w, None, ConvOptions::new_with_padding(c.stride, c.pad, c.dilation, 1));
    assert_eq!(y.dtype(), DType::F64);
    let y: Vec<f32> = y.into_data().convert::<f32>().try_into_vec::<f32>().unwrap();
    let (ho, wo) = c.out_hw();
    let want = naive(&c, &xv, &wv, &bv, &vec![0.0; c.b * c.co * ho * wo]);
    assert_close("y (f64)", &c, &y, &want.y);
}

#[test]
fn an_infinite_pixel_reaches_only_the_outputs_whose_window_covers_it() {
    // The stride-1 `same` path reads each kernel offset's shifted plane in one pass and selects
    // padding positions to zero: the pixel next door (the last of the previous row, the first of
    // the next plane) must not leak into them, as inf or as inf * 0 = NaN.
    let dev = Device::flex();
    let c = Case::new(2, 2, [5, 6], 3, [3, 3]).pad([(1, 1), (1, 1)]);
    let mut xv = values(c.b * c.ci * c.h * c.w, 1);
    let at = |b: usize, ci: usize, y: usize, x: usize| ((b * c.ci + ci) * c.h + y) * c.w + x;
    xv[at(0, 1, 2, 5)] = f32::INFINITY; // last column: wraps onto column 0 of the next row
    xv[at(1, 0, 0, 0)] = f32::INFINITY; // first pixel of a plane: wraps back onto the previous one
    let wv: Vec<f32> = values(c.co * c.ci * c.kh * c.kw, 2).iter().map(|v| v.abs() + 0.1).collect();
    let x = Tensor::<4>::from_data(TensorData::new(xv.clone(), [c.b, c.ci, c.h, c.w]), &dev);
    let w = Tensor::<4>::from_data(TensorData::new(wv.clone(), [c.co, c.ci, c.kh, c.kw]), &dev);
    let y = ops::conv2d(x, w, None, ConvOptions::new_with_padding(c.stride, c.pad, c.dilation, 1));
    let got = y.into_data().try_into_vec::<f32>().unwrap();
    let (ho, wo) = c.out_hw();
    let want = naive(&c, &xv, &wv, &vec![0.0; c.co], &vec![0.0; c.b * c.co * ho * wo]).y;
    let infinite = want.iter().filter(|v| v.is_infinite()).count();
    // (2, 5) is covered by output rows 1-3 and columns 4-5, (0, 0) by rows 0-1 and columns 0-1.
    assert_eq!(infinite, (3 * 2 + 2 * 2) * c.co);
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        if w.is_infinite() {
            assert_eq!(f64::from(*g), *w, "y[{i}]");
        } else {
            assert!((f64::from(*g) - w).abs() <= 1e-4 * w.abs().max(1.0), "y[{i}]: got {g}, want {w}");
        }
    }
}

#[test]
fn weight_gradients_of_inputs_sharing_a_geometry_use_each_inputs_own_columns() {
    // The forward pass keeps its column matrix for the weight gradient, matched by geometry and
    // by the input's exact contents. Three forward passes of the same geometry (two in the graph,
    // one outside it in between) must each contribute their own input to dW.
    let dev = Device::flex().autodiff();
    let c = Case::new(4, 3, [8, 8], 5, [3, 3]).pad([(1, 1), (1, 1)]);
    let (ho, wo) = c.out_hw();
    let shape = [c.b, c.ci, c.h, c.w];
    let (x1v, x2v, x3v) = (values(c.b * c.ci * 64, 11), values(c.b * c.ci * 64, 12), values(c.b * c.ci * 64, 13));
    let wv = values(c.co * c.ci * 9, 2);
    let (r1v, r2v) = (values(c.b * c.co * ho * wo, 14), values(c.b * c.co * ho * wo, 15));
    let w = Tensor::<4>::from_data(TensorData::new(wv.clone(), [c.co, c.ci, 3, 3]), &dev).require_grad();
    let opts = || ConvOptions::new_with_padding(c.stride, c.pad, c.dilation, 1);
    let t = |v: &Vec<f32>, s: [usize; 4]| Tensor::<4>::from_data(TensorData::new(v.clone(), s), &dev);
    let y1 = ops::conv2d(t(&x1v, shape), w.clone(), None, opts());
    let _unused = ops::conv2d(t(&x3v, shape), w.clone().detach(), None, opts());
    let y2 = ops::conv2d(t(&x2v, shape), w.clone(), None, opts());
    let out_shape = [c.b, c.co, ho, wo];
    let loss = (y1 * t(&r1v, out_shape)).sum() + (y2 * t(&r2v, out_shape)).sum();
    let grads = loss.backward();
    let bias = vec![0.0; c.co];
    let (a, b) = (naive(&c, &x1v, &wv, &bias, &r1v), naive(&c, &x2v, &wv, &bias, &r2v));
    let want: Vec<f64> = a.dw.iter().zip(&b.dw).map(|(p, q)| p + q).collect();
    let dw = w.grad(&grads).unwrap().into_data().try_into_vec::<f32>().unwrap();
    assert_close("dw", &c, &dw, &want);
}
