//! `lstm` and `gru` against a direct f64 recurrence: outputs (last and sequence, one and two
//! directions, with and without a padding mask) and the gradients of every weight and of
//! the input (central differences of the f64 recurrence); padding leaves real positions
//! unchanged.

use burn::tensor::{Device, Tensor, TensorData};

use super::Act;
use super::rnn::{Direction, Recurrent, forward};
use crate::ir::RnnCell;
use crate::rng::Rng;
use crate::train::test_support::device;

const B: usize = 3;
const T: usize = 5;
const D: usize = 3;
const U: usize = 4;
/// Real tokens per row: one full row, one with padding, one of a single token.
const LENS: [usize; B] = [5, 3, 1];

/// One direction's weights in f64, row-major as the tensors.
#[derive(Clone)]
struct Dir64 {
    w_ih: Vec<f64>,
    w_hh: Vec<f64>,
    b_ih: Vec<f64>,
    b_hh: Option<Vec<f64>>,
}

/// Moves one weight (of the directions) or one input value by a step.
type Set<'a> = dyn Fn(&mut [Dir64], &mut [f64], usize, f64) + 'a;

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// One step of the cell, PyTorch's equations.
fn step(cell: RnnCell, w: &Dir64, x: &[f64], h: &[f64], c: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let gu = cell.gates() * U;
    let pre = |k: usize, with_h: bool, with_x: bool| -> f64 {
        let mut s = 0.0;
        if with_x {
            s += w.b_ih[k] + (0..D).map(|j| x[j] * w.w_ih[j * gu + k]).sum::<f64>();
        }
        if with_h {
            s += w.b_hh.as_ref().map_or(0.0, |b| b[k]) + (0..U).map(|j| h[j] * w.w_hh[j * gu + k]).sum::<f64>();
        }
        s
    };
    match cell {
        RnnCell::Lstm => {
            let mut hn = vec![0.0; U];
            let mut cn = vec![0.0; U];
            for k in 0..U {
                let i = sigmoid(pre(k, true, true));
                let f = sigmoid(pre(U + k, true, true));
                let g = pre(2 * U + k, true, true).tanh();
                let o = sigmoid(pre(3 * U + k, true, true));
                cn[k] = f * c[k] + i * g;
                hn[k] = o * cn[k].tanh();
            }
            (hn, cn)
        }
        RnnCell::Gru => {
            let hn = (0..U)
                .map(|k| {
                    let r = sigmoid(pre(k, true, true));
                    let z = sigmoid(pre(U + k, true, true));
                    let n = (pre(2 * U + k, false, true) + r * pre(2 * U + k, true, false)).tanh();
                    (1.0 - z) * n + z * h[k]
                })
                .collect();
            (hn, vec![0.0; U])
        }
    }
}

/// The layer's output computed directly: each row run over its `lens` real tokens only.
fn reference(cell: RnnCell, dirs: &[Dir64], x: &[f64], lens: &[usize], sequence: bool) -> Vec<f64> {
    let width = U * dirs.len();
    let mut out = vec![0.0; if sequence { B * T * width } else { B * width }];
    for (b, &len) in lens.iter().enumerate() {
        for (k, w) in dirs.iter().enumerate() {
            let order: Vec<usize> = if k == 0 { (0..len).collect() } else { (0..len).rev().collect() };
            let (mut h, mut c) = (vec![0.0; U], vec![0.0; U]);
            for s in order {
                let xs = &x[(b * T + s) * D..(b * T + s + 1) * D];
                (h, c) = step(cell, w, xs, &h, &c);
                if sequence {
                    let at = (b * T + s) * width + k * U;
                    out[at..at + U].copy_from_slice(&h);
                }
            }
            if !sequence {
                out[b * width + k * U..b * width + (k + 1) * U].copy_from_slice(&h);
            }
        }
    }
    out
}

fn random(rng: &mut Rng, n: usize, scale: f64) -> Vec<f64> {
    (0..n).map(|_| rng.uniform(-scale, scale)).collect()
}

fn dir64(cell: RnnCell, rng: &mut Rng) -> Dir64 {
    let gu = cell.gates() * U;
    Dir64 {
        w_ih: random(rng, D * gu, 0.6),
        w_hh: random(rng, U * gu, 0.6),
        b_ih: random(rng, gu, 0.3),
        b_hh: (cell == RnnCell::Gru).then(|| random(rng, gu, 0.3)),
    }
}

fn tensor<const N: usize>(v: &[f64], shape: [usize; N], device: &Device) -> Tensor<N> {
    Tensor::from_data(TensorData::new(v.iter().map(|x| *x as f32).collect::<Vec<f32>>(), shape), device)
}

fn part(cell: RnnCell, dirs: &[Dir64], device: &Device) -> Recurrent {
    let gu = cell.gates() * U;
    let build = |w: &Dir64| Direction {
        w_ih: super::param(w.w_ih.iter().map(|x| *x as f32).collect(), [D, gu], device),
        w_hh: super::param(w.w_hh.iter().map(|x| *x as f32).collect(), [U, gu], device),
        b_ih: super::param(w.b_ih.iter().map(|x| *x as f32).collect(), [gu], device),
        b_hh: w.b_hh.as_ref().map(|b| super::param(b.iter().map(|x| *x as f32).collect(), [gu], device)),
    };
    Recurrent { forward: build(&dirs[0]), backward: dirs.get(1).map(build) }
}

fn values<const N: usize>(t: Tensor<N>) -> Vec<f64> {
    t.into_data().try_to_vec::<f32>().expect("f32").iter().map(|x| f64::from(*x)).collect()
}

/// The padding mask of `LENS`, `[B, T]`.
fn mask(device: &Device) -> Tensor<2> {
    let m: Vec<f64> = LENS.iter().flat_map(|&l| (0..T).map(move |s| if s < l { 1.0 } else { 0.0 })).collect();
    tensor(&m, [B, T], device)
}

fn run(r: &Recurrent, cell: RnnCell, sequence: bool, x: Tensor<3>, mask: Option<&Tensor<2>>) -> Tensor<1> {
    match forward(r, cell, U, sequence, x, mask) {
        Act::T2(t) => t.reshape([-1]),
        Act::T3(t) => t.reshape([-1]),
        Act::T4(t) => t.reshape([-1]),
    }
}

#[test]
fn recurrent_layers_match_a_direct_f64_recurrence_forward_and_backward() {
    let device = device();
    let mut rng = Rng::new(17);
    for cell in [RnnCell::Lstm, RnnCell::Gru] {
        for bidirectional in [false, true] {
            for sequence in [false, true] {
                for masked in [false, true] {
                    let what = format!("{cell:?} bidirectional {bidirectional} sequence {sequence} masked {masked}");
                    let dirs: Vec<Dir64> = (0..1 + usize::from(bidirectional)).map(|_| dir64(cell, &mut rng)).collect();
                    // Padded positions hold values too: the mask alone keeps them out.
                    let x = random(&mut rng, B * T * D, 1.0);
                    let lens = if masked { LENS } else { [T; B] };
                    let want = reference(cell, &dirs, &x, &lens, sequence);
                    let r = part(cell, &dirs, &device);
                    let xt = tensor(&x, [B, T, D], &device).require_grad();
                    let m = masked.then(|| mask(&device));
                    let out = run(&r, cell, sequence, xt.clone(), m.as_ref());
                    let got = values(out.clone());
                    assert_eq!(got.len(), want.len(), "{what}");
                    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                        assert!((g - w).abs() < 1e-5, "{what}: out[{i}] {g} vs {w}");
                    }
                    // Gradients of Σ out·R against central differences of the f64 recurrence.
                    let weights = random(&mut rng, want.len(), 1.0);
                    let loss = |dirs: &[Dir64], x: &[f64]| -> f64 {
                        reference(cell, dirs, x, &lens, sequence).iter().zip(&weights).map(|(a, b)| a * b).sum()
                    };
                    let grads = (out * tensor(&weights, [weights.len()], &device)).sum().backward();
                    let eps = 1e-6;
                    let numeric = |v: &[f64], set: &Set<'_>| -> Vec<f64> {
                        (0..v.len())
                            .map(|i| {
                                let (mut dp, mut xp) = (dirs.clone(), x.clone());
                                set(&mut dp, &mut xp, i, eps);
                                let (mut dm, mut xm) = (dirs.clone(), x.clone());
                                set(&mut dm, &mut xm, i, -eps);
                                (loss(&dp, &xp) - loss(&dm, &xm)) / (2.0 * eps)
                            })
                            .collect()
                    };
                    let close = |name: &str, got: Vec<f64>, want: Vec<f64>| {
                        assert_eq!(got.len(), want.len(), "{what} {name}");
                        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                            assert!((g - w).abs() < 1e-4, "{what}: d{name}[{i}] {g} vs {w}");
                        }
                    };
                    let gx = values(xt.grad(&grads).expect("input grad"));
                    close("x", gx, numeric(&x, &|_, x, i, e| x[i] += e));
                    if masked {
                        // Padded inputs get no gradient: they take no part.
                        for (b, &len) in LENS.iter().enumerate() {
                            let g = values(xt.grad(&grads).expect("input grad"));
                            assert!(g[(b * T + len) * D..(b + 1) * T * D].iter().all(|v| *v == 0.0), "{what}");
                        }
                    }
                    for (k, dir) in std::iter::once(&r.forward).chain(r.backward.as_ref()).enumerate() {
                        let w = &dirs[k];
                        let g = |p: &burn::module::Param<Tensor<2>>| values(p.val().grad(&grads).expect("grad"));
                        let g1 = |p: &burn::module::Param<Tensor<1>>| values(p.val().grad(&grads).expect("grad"));
                        close("w_ih", g(&dir.w_ih), numeric(&w.w_ih, &|d, _, i, e| d[k].w_ih[i] += e));
                        close("w_hh", g(&dir.w_hh), numeric(&w.w_hh, &|d, _, i, e| d[k].w_hh[i] += e));
                        close("b_ih", g1(&dir.b_ih), numeric(&w.b_ih, &|d, _, i, e| d[k].b_ih[i] += e));
                        if let (Some(p), Some(b)) = (&dir.b_hh, &w.b_hh) {
                            close(
                                "b_hh",
                                g1(p),
                                numeric(b, &|d, _, i, e| {
                                    if let Some(b) = d[k].b_hh.as_mut() {
                                        b[i] += e;
                                    }
                                }),
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn padding_leaves_real_positions_and_the_last_state_unchanged() {
    let device = device();
    let mut rng = Rng::new(3);
    for cell in [RnnCell::Lstm, RnnCell::Gru] {
        for sequence in [false, true] {
            let dirs = [dir64(cell, &mut rng), dir64(cell, &mut rng)];
            let r = part(cell, &dirs, &device);
            let x = random(&mut rng, B * T * D, 1.0);
            let padded = values(run(&r, cell, sequence, tensor(&x, [B, T, D], &device), Some(&mask(&device))));
            // Each row alone, cut to its real tokens, no padding and no mask.
            for (b, &len) in LENS.iter().enumerate() {
                let row = tensor(&x[b * T * D..(b * T + len) * D], [1, len, D], &device);
                let alone = values(run(&r, cell, sequence, row, None));
                let w = 2 * U;
                let (from_padded, pad_tail) = if sequence {
                    let row = &padded[b * T * w..(b + 1) * T * w];
                    (row[..len * w].to_vec(), row[len * w..].to_vec())
                } else {
                    (padded[b * w..(b + 1) * w].to_vec(), Vec::new())
                };
                assert_eq!(from_padded.len(), alone.len());
                for (i, (p, a)) in from_padded.iter().zip(&alone).enumerate() {
                    assert!((p - a).abs() < 1e-5, "{cell:?} sequence {sequence} row {b}: [{i}] {p} vs {a}");
                }
                assert!(pad_tail.iter().all(|v| *v == 0.0), "{cell:?} row {b}: padded outputs are 0");
            }
        }
    }
}
