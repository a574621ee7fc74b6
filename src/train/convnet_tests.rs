//! Grouped and depthwise `conv2d`, `conv_transpose2d`, `upsample`, `groupnorm`, `rmsnorm`
//! and the `multiply` merge: forward and gradients against direct f64 computations
//! (the gradients of the f64 network by central differences), and a convnet with them
//! that trains, saves, reloads and averages.

use std::collections::BTreeMap;

use burn::tensor::{Tensor, TensorData};

use super::net::{Mode, Net, Part, Plan, forward};
use super::*;
use crate::data;

/// The sub-model, data and settings of a digits experiment with `model`.
fn setup(model: &str, train: &str) -> (ir::SubModel, Dataset, TrainConfig) {
    let src = format!(
        "experiment t {{\n data = digits(split: [0.7, 0.15, 0.15], seed: 1)\n model {{ {model} }}\n \
         train {{ {train} }}\n objective {{ maximize accuracy }}\n}}\n"
    );
    super::test_support::setup(&src, 1)
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 40) as f64 / (1u64 << 24) as f64 * 2.0 - 1.0
        })
        .collect()
}

/// A feature map or vector in f64: shape and row-major values, batch excluded.
#[derive(Clone, Debug)]
struct T {
    s: Vec<usize>,
    v: Vec<f64>,
}

type Weights = BTreeMap<String, T>;

fn w<'a>(ws: &'a Weights, name: &str) -> &'a T {
    ws.get(name).unwrap_or_else(|| panic!("no tensor {name}"))
}

/// `conv2d` with explicit padding (top, bottom, left, right) and `groups`; weight `[f, c/g, k, k]`.
fn conv(x: &T, wt: &T, b: &T, stride: usize, pad: [usize; 4], groups: usize) -> T {
    let (c, h, wd) = (x.s[0], x.s[1], x.s[2]);
    let (f, cg, k) = (wt.s[0], wt.s[1], wt.s[2]);
    assert_eq!(cg * groups, c);
    let oh = (h + pad[0] + pad[1] - k) / stride + 1;
    let ow = (wd + pad[2] + pad[3] - k) / stride + 1;
    let fg = f / groups;
    let mut v = vec![0.0; f * oh * ow];
    for o in 0..f {
        let g = o / fg;
        for y in 0..oh {
            for xo in 0..ow {
                let mut acc = b.v[o];
                for ci in 0..cg {
                    for ky in 0..k {
                        for kx in 0..k {
                            let iy = (y * stride + ky) as isize - pad[0] as isize;
                            let ix = (xo * stride + kx) as isize - pad[2] as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                continue;
                            }
                            let xi = ((g * cg + ci) * h + iy as usize) * wd + ix as usize;
                            acc += x.v[xi] * wt.v[((o * cg + ci) * k + ky) * k + kx];
                        }
                    }
                }
                v[(o * oh + y) * ow + xo] = acc;
            }
        }
    }
    T { s: vec![f, oh, ow], v }
}

/// The transposed convolution written as a scatter: every input value adds `x · w[c, f]`
/// to a `k × k` window at `stride` steps; `same` then crops to `h · stride` per the docs.
fn conv_t(x: &T, wt: &T, b: &T, stride: usize, same: bool) -> T {
    let (c, h, wd) = (x.s[0], x.s[1], x.s[2]);
    let (f, k) = (wt.s[1], wt.s[2]);
    let (fh, fw) = ((h - 1) * stride + k.max(stride), (wd - 1) * stride + k.max(stride));
    let (fh, fw) = if same { (fh, fw) } else { ((h - 1) * stride + k, (wd - 1) * stride + k) };
    let mut full = vec![0.0; f * fh * fw];
    for o in 0..f {
        for i in 0..fh * fw {
            full[o * fh * fw + i] = b.v[o];
        }
        for ci in 0..c {
            for y in 0..h {
                for xx in 0..wd {
                    for ky in 0..k {
                        for kx in 0..k {
                            let (oy, ox) = (y * stride + ky, xx * stride + kx);
                            full[(o * fh + oy) * fw + ox] +=
                                x.v[(ci * h + y) * wd + xx] * wt.v[((ci * f + o) * k + ky) * k + kx];
                        }
                    }
                }
            }
        }
    }
    if !same {
        return T { s: vec![f, fh, fw], v: full };
    }
    let (oh, ow, top) = (h * stride, wd * stride, k.saturating_sub(stride) / 2);
    let mut v = vec![0.0; f * oh * ow];
    for o in 0..f {
        for y in 0..oh {
            for xx in 0..ow {
                v[(o * oh + y) * ow + xx] = full[(o * fh + y + top) * fw + xx + top];
            }
        }
    }
    T { s: vec![f, oh, ow], v }
}

fn upsample(x: &T, factor: usize, bilinear: bool) -> T {
    let (c, h, wd) = (x.s[0], x.s[1], x.s[2]);
    let (oh, ow) = (h * factor, wd * factor);
    // Half-pixel centres, clamped at the borders (PyTorch's align_corners=False).
    let tap = |o: usize, n: usize| {
        let src = ((o as f64 + 0.5) / factor as f64 - 0.5).max(0.0);
        let lo = (src.floor() as usize).min(n - 1);
        (lo, (lo + 1).min(n - 1), src - lo as f64)
    };
    let mut v = vec![0.0; c * oh * ow];
    for ch in 0..c {
        let at = |y: usize, xx: usize| x.v[(ch * h + y) * wd + xx];
        for y in 0..oh {
            for xx in 0..ow {
                v[(ch * oh + y) * ow + xx] = if bilinear {
                    let ((y0, y1, ly), (x0, x1, lx)) = (tap(y, h), tap(xx, wd));
                    at(y0, x0) * (1.0 - ly) * (1.0 - lx)
                        + at(y0, x1) * (1.0 - ly) * lx
                        + at(y1, x0) * ly * (1.0 - lx)
                        + at(y1, x1) * ly * lx
                } else {
                    at(y / factor, xx / factor)
                };
            }
        }
    }
    T { s: vec![c, oh, ow], v }
}

fn groupnorm(x: &T, gamma: &T, beta: &T, groups: usize) -> T {
    let c = x.s[0];
    let hw: usize = x.s[1..].iter().product();
    let per = c / groups * hw;
    let mut v = x.v.clone();
    for g in 0..groups {
        let part = &x.v[g * per..(g + 1) * per];
        let mean = part.iter().sum::<f64>() / per as f64;
        let var = part.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / per as f64;
        for i in 0..per {
            let ch = (g * per + i) / hw;
            v[g * per + i] = (part[i] - mean) / (var + 1e-5).sqrt() * gamma.v[ch] + beta.v[ch];
        }
    }
    T { s: x.s.clone(), v }
}

fn rmsnorm(x: &T, gamma: &T) -> T {
    let d = *x.s.last().expect("an axis");
    let mut v = x.v.clone();
    for row in v.chunks_mut(d) {
        let rms = (row.iter().map(|a| a * a).sum::<f64>() / d as f64 + 1e-5).sqrt();
        for (j, a) in row.iter_mut().enumerate() {
            *a = *a / rms * gamma.v[j];
        }
    }
    T { s: x.s.clone(), v }
}

fn dense(x: &T, wt: &T, b: &T) -> T {
    let (n, u) = (wt.s[0], wt.s[1]);
    let v = (0..u).map(|k| b.v[k] + (0..n).map(|j| x.v[j] * wt.v[j * u + k]).sum::<f64>()).collect();
    T { s: vec![u], v }
}

fn reshape(x: &T, s: &[usize]) -> T {
    T { s: s.to_vec(), v: x.v.clone() }
}

/// A model's output for one sample `x` from its tensors, in f64.
type Reference = fn(&Weights, &T) -> T;

/// Every trainable tensor's gradient, by the names of `Net::tensors`.
fn grads(net: &Net, plan: &Plan, g: &burn::tensor::Gradients) -> Weights {
    let mut out = Weights::new();
    let mut put = |name: String, t: Option<Tensor<1>>| {
        if let Some(t) = t {
            let v: Vec<f32> = t.into_data().try_to_vec::<f32>().expect("f32");
            out.insert(name, T { s: vec![v.len()], v: v.into_iter().map(f64::from).collect() });
        }
    };
    for (i, op) in plan.ops.iter().enumerate() {
        let n = &op.name;
        let slot = net.slots[i];
        if slot == 0 {
            continue;
        }
        match &net.parts[slot - 1] {
            Part::Dense(d) => {
                put(format!("{n}.weight"), d.w.val().grad(g).map(|t| t.flatten(0, 1)));
                put(format!("{n}.bias"), d.b.val().grad(g));
            }
            Part::Conv(c) => {
                put(format!("{n}.weight"), c.w.val().grad(g).map(|t| t.flatten(0, 3)));
                put(format!("{n}.bias"), c.b.val().grad(g));
            }
            Part::GroupNorm(gn) => {
                put(format!("{n}.weight"), gn.gamma.as_ref().and_then(|p| p.val().grad(g)));
                put(format!("{n}.bias"), gn.beta.as_ref().and_then(|p| p.val().grad(g)));
            }
            Part::RmsNorm(r) => put(format!("{n}.weight"), r.gamma.val().grad(g)),
            other => panic!("no gradient read for {other:?}"),
        }
    }
    out
}

/// Runs `model` on two random samples with random weights (norm scales and shifts too),
/// and compares its outputs with `reference` and the gradients of `Σ out · r` (every
/// weight and the input) with central differences of the f64 reference, within 1e-4.
fn check(model: &str, params: u64, flops: u64, reference: Reference) {
    let (sub, _, _) = setup(model, "epochs = 1");
    assert_eq!(sub.params, params, "{model}: params");
    assert_eq!(sub.flops, flops, "{model}: flops");
    let plan = Plan::new(&sub);
    let device = burn_device(DeviceKind::Cpu).expect("device").autodiff();
    let net = Net::init(&plan, Init::Default, &mut crate::rng::Rng::new(3), &device);
    assert_eq!(net.trainable() as u64, sub.params, "{model}: trainable");
    // Random weights everywhere, so a swapped scale and shift or a wrong axis shows.
    let mut tensors = net.tensors(&plan);
    for (i, t) in tensors.iter_mut().enumerate() {
        t.2 = values(t.2.len(), 100 + i as u64).into_iter().map(|v| (v * 0.8) as f32).collect();
    }
    let net = net.load_tensors(&plan, &tensors, &device).expect("loads");
    let ws: Weights = tensors
        .iter()
        .map(|(n, s, v)| (n.clone(), T { s: s.clone(), v: v.iter().map(|a| f64::from(*a)).collect() }))
        .collect();
    let (batch, nin) = (2, 64);
    let xs: Vec<f32> = values(batch * nin, 7).into_iter().map(|v| v as f32).collect();
    let x = Tensor::<2>::from_data(TensorData::new(xs.clone(), [batch, nin]), &device).require_grad();
    let out = forward(&net, &plan, x.clone(), Mode::Eval, None).expect("forward");
    let nout = out.dims()[1];
    let r: Vec<f64> = values(batch * nout, 11);
    let r32: Vec<f32> = r.iter().map(|a| *a as f32).collect();
    let got: Vec<f32> = out.clone().into_data().try_to_vec::<f32>().expect("f32");
    let loss = (out * Tensor::<2>::from_data(TensorData::new(r32, [batch, nout]), &device)).sum();
    let g = loss.backward();

    let sample =
        |ws: &Weights, xv: &[f64], b: usize| reference(ws, &T { s: vec![nin], v: xv[b * nin..(b + 1) * nin].to_vec() });
    let x64: Vec<f64> = xs.iter().map(|a| f64::from(*a)).collect();
    let loss64 = |ws: &Weights, xv: &[f64]| -> f64 {
        (0..batch).map(|b| sample(ws, xv, b).v.iter().zip(&r[b * nout..]).map(|(o, rr)| o * rr).sum::<f64>()).sum()
    };
    for b in 0..batch {
        let want = sample(&ws, &x64, b);
        assert_eq!(want.v.len(), nout, "{model}: output width");
        for (k, wv) in want.v.iter().enumerate() {
            let gv = f64::from(got[b * nout + k]);
            assert!((gv - wv).abs() < 1e-4 * (1.0 + wv.abs()), "{model}: out[{b}, {k}] {gv} vs {wv}");
        }
    }
    let h = 1e-5;
    let close = |what: &str, got: f64, want: f64| {
        assert!((got - want).abs() < 1e-4 * (1.0 + want.abs()), "{model}: d/d{what}: {got} vs {want}");
    };
    let gw = grads(&net, &plan, &g);
    assert_eq!(gw.keys().collect::<Vec<_>>(), ws.keys().collect::<Vec<_>>(), "{model}: every weight has a gradient");
    for (name, t) in &ws {
        for i in 0..t.v.len() {
            let mut up = ws.clone();
            up.get_mut(name).expect("name").v[i] += h;
            let mut down = ws.clone();
            down.get_mut(name).expect("name").v[i] -= h;
            close(&format!("{name}[{i}]"), gw[name].v[i], (loss64(&up, &x64) - loss64(&down, &x64)) / (2.0 * h));
        }
    }
    let gx: Vec<f32> = x.grad(&g).expect("input grad").into_data().try_to_vec::<f32>().expect("f32");
    for i in 0..x64.len() {
        let (mut up, mut down) = (x64.clone(), x64.clone());
        up[i] += h;
        down[i] -= h;
        close(&format!("x[{i}]"), f64::from(gx[i]), (loss64(&ws, &up) - loss64(&ws, &down)) / (2.0 * h));
    }
}

#[test]
fn grouped_and_depthwise_conv2d_match_a_direct_computation() {
    // [4, 4, 4], 8 filters in 2 groups of 2 channels, stride 2, same: [8, 2, 2], the odd
    // padding row below (top 0, bottom 1).
    check(
        "reshape(4, 4, 4) conv2d(8, kernel: 3, stride: 2, groups: 2) flatten dense(data.classes)",
        9 * 2 * 8 + 8 + 32 * 10 + 10,
        2 * 9 * 2 * 8 * 4 + 2 * 32 * 10,
        |ws, x| {
            let y = conv(&reshape(x, &[4, 4, 4]), w(ws, "conv2d_1.weight"), w(ws, "conv2d_1.bias"), 2, [0, 1, 0, 1], 2);
            dense(&reshape(&y, &[32]), w(ws, "dense_1.weight"), w(ws, "dense_1.bias"))
        },
    );
    // Depthwise: one 3x3 filter per channel, valid: [4, 2, 2].
    check(
        "reshape(4, 4, 4) conv2d(4, kernel: 3, padding: valid, groups: 4) flatten dense(data.classes)",
        9 * 4 + 4 + 16 * 10 + 10,
        2 * 9 * 4 * 4 + 2 * 16 * 10,
        |ws, x| {
            let y = conv(&reshape(x, &[4, 4, 4]), w(ws, "conv2d_1.weight"), w(ws, "conv2d_1.bias"), 1, [0; 4], 4);
            dense(&reshape(&y, &[16]), w(ws, "dense_1.weight"), w(ws, "dense_1.bias"))
        },
    );
}

#[test]
fn conv_transpose2d_matches_a_direct_computation() {
    let run = |model: &str, params: u64, flops: u64, reference: Reference| check(model, params, flops, reference);
    // Kernel 3, stride 2, same: the full 9x9 output cropped to 8x8 (nothing off the top).
    run(
        "reshape(4, 4, 4) conv_transpose2d(2, kernel: 3, stride: 2) flatten dense(data.classes)",
        4 * 2 * 9 + 2 + 128 * 10 + 10,
        2 * 4 * 2 * 9 * 16 + 2 * 128 * 10,
        |ws, x| {
            let y = conv_t(
                &reshape(x, &[4, 4, 4]),
                w(ws, "conv_transpose2d_1.weight"),
                w(ws, "conv_transpose2d_1.bias"),
                2,
                true,
            );
            assert_eq!(y.s, vec![2, 8, 8]);
            dense(&reshape(&y, &[128]), w(ws, "dense_1.weight"), w(ws, "dense_1.bias"))
        },
    );
    // Kernel 4, stride 2, valid: [3, 10, 10].
    run(
        "reshape(4, 4, 4) conv_transpose2d(3, kernel: 4, stride: 2, padding: valid) flatten dense(data.classes)",
        4 * 3 * 16 + 3 + 300 * 10 + 10,
        2 * 4 * 3 * 16 * 16 + 2 * 300 * 10,
        |ws, x| {
            let y = conv_t(
                &reshape(x, &[4, 4, 4]),
                w(ws, "conv_transpose2d_1.weight"),
                w(ws, "conv_transpose2d_1.bias"),
                2,
                false,
            );
            assert_eq!(y.s, vec![3, 10, 10]);
            dense(&reshape(&y, &[300]), w(ws, "dense_1.weight"), w(ws, "dense_1.bias"))
        },
    );
    // Kernel 5, stride 1, same: 8x8 cropped by 2 at the top and left to 4x4.
    run(
        "reshape(4, 4, 4) conv_transpose2d(2, kernel: 5) flatten dense(data.classes)",
        4 * 2 * 25 + 2 + 32 * 10 + 10,
        2 * 4 * 2 * 25 * 16 + 2 * 32 * 10,
        |ws, x| {
            let y = conv_t(
                &reshape(x, &[4, 4, 4]),
                w(ws, "conv_transpose2d_1.weight"),
                w(ws, "conv_transpose2d_1.bias"),
                1,
                true,
            );
            assert_eq!(y.s, vec![2, 4, 4]);
            dense(&reshape(&y, &[32]), w(ws, "dense_1.weight"), w(ws, "dense_1.bias"))
        },
    );
    // Kernel 1, stride 2, same: the kernel shorter than the stride, the tail is the bias.
    run(
        "reshape(4, 4, 4) conv_transpose2d(2, kernel: 1, stride: 2) flatten dense(data.classes)",
        4 * 2 + 2 + 128 * 10 + 10,
        2 * 4 * 2 * 16 + 2 * 128 * 10,
        |ws, x| {
            let y = conv_t(
                &reshape(x, &[4, 4, 4]),
                w(ws, "conv_transpose2d_1.weight"),
                w(ws, "conv_transpose2d_1.bias"),
                2,
                true,
            );
            assert_eq!(y.s, vec![2, 8, 8]);
            dense(&reshape(&y, &[128]), w(ws, "dense_1.weight"), w(ws, "dense_1.bias"))
        },
    );
}

#[test]
fn upsample_matches_a_direct_computation() {
    check("reshape(4, 4, 4) upsample(2) flatten dense(data.classes)", 256 * 10 + 10, 256 + 2 * 256 * 10, |ws, x| {
        dense(
            &reshape(&upsample(&reshape(x, &[4, 4, 4]), 2, false), &[256]),
            w(ws, "dense_1.weight"),
            w(ws, "dense_1.bias"),
        )
    });
    check(
        "reshape(1, 8, 8) upsample(3, mode: bilinear) flatten dense(data.classes)",
        576 * 10 + 10,
        8 * 576 + 2 * 576 * 10,
        |ws, x| {
            dense(
                &reshape(&upsample(&reshape(x, &[1, 8, 8]), 3, true), &[576]),
                w(ws, "dense_1.weight"),
                w(ws, "dense_1.bias"),
            )
        },
    );
}

#[test]
fn groupnorm_and_rmsnorm_match_a_direct_computation() {
    check("reshape(4, 4, 4) groupnorm(2) flatten dense(data.classes)", 8 + 640 + 10, 5 * 64 + 2 * 640, |ws, x| {
        let y = groupnorm(&reshape(x, &[4, 4, 4]), w(ws, "groupnorm_1.weight"), w(ws, "groupnorm_1.bias"), 2);
        dense(&reshape(&y, &[64]), w(ws, "dense_1.weight"), w(ws, "dense_1.bias"))
    });
    // A sequence [t, d] = [8, 8]: each position normalised over its 8 features.
    check("reshape(8, 8) rmsnorm flatten dense(data.classes)", 8 + 640 + 10, 4 * 64 + 2 * 640, |ws, x| {
        dense(&rmsnorm(&reshape(x, &[8, 8]), w(ws, "rmsnorm_1.weight")), w(ws, "dense_1.weight"), w(ws, "dense_1.bias"))
    });
    // An image: over its last axis (the width).
    check("reshape(4, 4, 4) rmsnorm flatten dense(data.classes)", 4 + 640 + 10, 4 * 64 + 2 * 640, |ws, x| {
        dense(
            &rmsnorm(&reshape(x, &[4, 4, 4]), w(ws, "rmsnorm_1.weight")),
            w(ws, "dense_1.weight"),
            w(ws, "dense_1.bias"),
        )
    });
}

#[test]
fn multiply_scales_channels_as_a_direct_computation() {
    // A squeeze-and-excitation gate: [4] from the pooled map scales each channel of [4, 4, 4].
    check(
        "reshape(4, 4, 4)\n let m = conv2d(4, kernel: 1)\n let g = m -> global_avgpool -> dense(4) -> sigmoid\n \
         multiply(m, g) flatten dense(data.classes)",
        (4 * 4 + 4) + (4 * 4 + 4) + 640 + 10,
        2 * 4 * 4 * 16 + 64 + 2 * 16 + 4 + 64 + 2 * 640,
        |ws, x| {
            let m = conv(&reshape(x, &[4, 4, 4]), w(ws, "conv2d_1.weight"), w(ws, "conv2d_1.bias"), 1, [0; 4], 1);
            let pooled = T { s: vec![4], v: m.v.chunks(16).map(|c| c.iter().sum::<f64>() / 16.0).collect() };
            let gate = dense(&pooled, w(ws, "dense_1.weight"), w(ws, "dense_1.bias"));
            let v = m.v.iter().enumerate().map(|(i, a)| a / (1.0 + (-gate.v[i / 16]).exp())).collect();
            dense(&T { s: vec![64], v }, w(ws, "dense_2.weight"), w(ws, "dense_2.bias"))
        },
    );
    // Two maps of one shape: their element-wise product.
    check(
        "reshape(4, 4, 4)\n let a = conv2d(2, kernel: 1)\n let b = input -> reshape(4, 4, 4) -> conv2d(2, kernel: 3)\n \
         multiply(a, b) flatten dense(data.classes)",
        (4 * 2 + 2) + (36 * 2 + 2) + 320 + 10,
        2 * 4 * 2 * 16 + 2 * 36 * 2 * 16 + 32 + 2 * 320,
        |ws, x| {
            let xi = reshape(x, &[4, 4, 4]);
            let a = conv(&xi, w(ws, "conv2d_1.weight"), w(ws, "conv2d_1.bias"), 1, [0; 4], 1);
            let b = conv(&xi, w(ws, "conv2d_2.weight"), w(ws, "conv2d_2.bias"), 1, [1; 4], 1);
            let v = a.v.iter().zip(&b.v).map(|(p, q)| p * q).collect();
            dense(&T { s: vec![32], v }, w(ws, "dense_1.weight"), w(ws, "dense_1.bias"))
        },
    );
}

#[test]
fn a_convnet_with_the_new_layers_trains_saves_reloads_and_averages() {
    let model = "reshape(4, 4, 4)\n conv2d(8, kernel: 1) groupnorm(2) relu\n \
                 let m = conv2d(8, groups: 8) relu\n let g = m -> global_avgpool -> dense(2) -> relu -> dense(8) -> sigmoid\n \
                 multiply(m, g)\n conv_transpose2d(4, kernel: 2, stride: 2) maxpool(2) upsample(2) rmsnorm relu\n \
                 global_avgpool dense(data.classes)";
    let (sub, data, mut cfg) = setup(model, "optimizer = adam(0.01)\n epochs = 12\n batch = 32");
    let out = fit(DeviceKind::Cpu, &sub, &cfg, &data, |_, _| Control::Continue);
    assert_eq!(out.status, Status::Completed, "{:?}", out.status);
    let model = out.model.expect("model");
    assert_eq!(out.metrics["params"] as u64, sub.params);
    // Ten classes: well above chance.
    let valid = model.evaluate(&data.valid, &data.info).expect("evaluates");
    assert!(valid["accuracy"] > 0.3, "{valid:?}");
    let dir = std::env::temp_dir().join(format!("bma-train-convnets-save-{}", std::process::id()));
    let config = SavedConfig {
        experiment: "t".into(),
        data: ir::Value::Call(ir::CallValue {
            name: "digits".into(),
            args: vec![
                (
                    Some("split".into()),
                    ir::Value::List(vec![ir::Value::Float(0.7), ir::Value::Float(0.15), ir::Value::Float(0.15)]),
                ),
                (Some("seed".into()), ir::Value::Int(1)),
            ],
        }),
        base: "/".into(),
        data_files: Vec::new(),
        point: Default::default(),
        train: cfg.clone(),
        tokenizer: None,
        preprocess: None,
    };
    model.save(&dir, &config).expect("saves");
    let (back, _) = load(&dir).expect("loads");
    assert_eq!(back.tensors(), model.tensors());
    let names: Vec<String> = back.tensors().into_iter().map(|t| t.0).collect();
    for n in
        ["conv2d_2.weight", "groupnorm_1.weight", "groupnorm_1.bias", "conv_transpose2d_1.weight", "rmsnorm_1.weight"]
    {
        assert!(names.iter().any(|m| m == n), "{n} saved: {names:?}");
    }
    let test = evaluate_saved(&dir, data::Part::Test).expect("evaluates");
    let direct = model.evaluate(&data.test, &data.info).expect("evaluates");
    assert_eq!(test["accuracy"], direct["accuracy"]);
    assert!((test["loss"] - direct["loss"]).abs() < 1e-9);
    // A soup of two runs: the mean of their tensors loads and evaluates.
    cfg.seed = 9;
    let other = fit(DeviceKind::Cpu, &sub, &cfg, &data, |_, _| Control::Continue).model.expect("model");
    let mean = super::test_support::mean_tensors(&model.tensors(), &other.tensors());
    let soup = model.with_tensors(&mean).expect("loads the mean");
    assert_eq!(soup.tensors(), mean);
    assert!(soup.evaluate(&data.test, &data.info).expect("evaluates")["loss"].is_finite());
    cfg.swa = Some(3);
    let swa = fit(DeviceKind::Cpu, &sub, &cfg, &data, |_, _| Control::Continue);
    assert_eq!(swa.status, Status::Completed, "{:?}", swa.status);
}
