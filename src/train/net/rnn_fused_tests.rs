//! The fused recurrent op (`rnn_fused`) against the tensor-op recurrence of `rnn::run`
//! (itself checked against a direct f64 recurrence in `rnn_tests`, which now runs through
//! the fused op): outputs and the gradients of every weight and of the input, both cells,
//! one and two directions, `last` and `sequence`, with and without a padding mask, on odd
//! sizes; and the op runs on the CPU device, with and without autodiff.

use burn::tensor::{Device, Tensor, TensorData};

use super::Act;
use super::rnn::{Direction, Recurrent, forward_with};
use crate::ir::RnnCell;
use crate::rng::Rng;

const B: usize = 5;
const T: usize = 9;
const D: usize = 7;
const U: usize = 6;
/// Real tokens per row: full, padded, a single token, none, padded.
const LENS: [usize; B] = [9, 4, 1, 0, 8];

fn cpu() -> Device {
    super::super::burn_device(super::super::DeviceKind::Cpu).expect("device")
}

fn tensor<const N: usize>(v: &[f32], shape: [usize; N], device: &Device) -> Tensor<N> {
    Tensor::from_data(TensorData::new(v.to_vec(), shape), device)
}

fn random(rng: &mut Rng, n: usize, scale: f64) -> Vec<f32> {
    (0..n).map(|_| rng.uniform(-scale, scale) as f32).collect()
}

fn part(cell: RnnCell, bidirectional: bool, rng: &mut Rng, device: &Device) -> Recurrent {
    let gu = cell.gates() * U;
    let mut dir = || Direction {
        w_ih: super::param(random(rng, D * gu, 0.7), [D, gu], device),
        w_hh: super::param(random(rng, U * gu, 0.7), [U, gu], device),
        b_ih: super::param(random(rng, gu, 0.4), [gu], device),
        b_hh: (cell == RnnCell::Gru).then(|| super::param(random(rng, gu, 0.4), [gu], device)),
    };
    let forward = dir();
    let backward = bidirectional.then(dir);
    Recurrent { forward, backward }
}

fn flat(a: Act) -> Tensor<1> {
    match a {
        Act::T2(t) => t.reshape([-1]),
        Act::T3(t) => t.reshape([-1]),
        Act::T4(t) => t.reshape([-1]),
    }
}

fn values<const N: usize>(t: Tensor<N>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().expect("f32")
}

fn mask(device: &Device) -> Tensor<2> {
    let m: Vec<f32> = LENS.iter().flat_map(|&l| (0..T).map(move |s| if s < l { 1.0 } else { 0.0 })).collect();
    tensor(&m, [B, T], device)
}

fn close(what: &str, got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: lengths");
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs())).max(1.0);
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite() && (g - w).abs() <= 2e-5 * scale, "{what}[{i}]: fused {g} vs tensor ops {w}");
    }
}

#[test]
fn the_fused_op_runs_on_the_cpu_device_with_and_without_autodiff() {
    for device in [cpu(), cpu().autodiff()] {
        let x = tensor(&[0.5; 8], [2, 4], &device);
        assert!(super::rnn_fused::applies(&x), "{device:?}");
        // On the CPU, `forward` takes the fused path: its `sequence` output is one tensor,
        // the same values as the tensor-op recurrence.
        let xp = tensor(&[0.1; 3 * 2 * 8], [3, 2, 8], &device);
        let w = tensor(&[0.2; 16], [2, 8], &device);
        let bi = tensor(&[0.05; 8], [8], &device);
        let hs = super::rnn_fused::lstm(&xp, &w, &bi, None, false).expect("fused lstm");
        assert_eq!(hs.dims(), [3, 2, 2]);
        let xp = tensor(&[0.1; 3 * 2 * 6], [3, 2, 6], &device);
        let (w, bh) = (tensor(&[0.2; 12], [2, 6], &device), tensor(&[0.3; 6], [6], &device));
        let m = tensor(&[1.0, 1.0, 0.0, 1.0, 0.0, 0.0], [2, 3], &device);
        let bi = tensor(&[0.05; 6], [6], &device);
        let hs = super::rnn_fused::gru(&xp, &w, &bi, &bh, Some(&m), true).expect("fused gru");
        // Reverse with a mask: the padded steps (row 0's last, row 1's last two) stay 0.
        let v = values(hs);
        for (s, row) in [(2, 0), (1, 1), (2, 1)] {
            assert!(v[(s * 2 + row) * 2..(s * 2 + row + 1) * 2].iter().all(|x| *x == 0.0), "step {s} row {row}");
        }
        assert!(v[..2].iter().all(|x| *x != 0.0));
        // Shapes that do not fit are not taken.
        assert!(super::rnn_fused::lstm(&xp, &w, &bi, None, false).is_none());
    }
}

/// The fused op against the tensor ops on `b` rows of `t` steps (`lens`: the real tokens of
/// each row, when masked): the output and the gradients of the input and of every weight.
fn compare(
    cell: RnnCell,
    bidirectional: bool,
    sequence: bool,
    (b, t): (usize, usize),
    lens: Option<&[usize]>,
    seed: u64,
) {
    let device = cpu().autodiff();
    let mut rng = Rng::new(seed);
    let what = format!("{cell:?} bidirectional {bidirectional} sequence {sequence} b {b} t {t} lens {lens:?}");
    let r = part(cell, bidirectional, &mut rng, &device);
    let x = random(&mut rng, b * t * D, 1.5);
    let m = lens.map(|lens| {
        let m: Vec<f32> = lens.iter().flat_map(|&l| (0..t).map(move |s| if s < l { 1.0 } else { 0.0 })).collect();
        tensor(&m, [b, t], &device)
    });
    let mut outs = Vec::new();
    let mut grads_of = Vec::new();
    for fused in [true, false] {
        let xt = tensor(&x, [b, t, D], &device).require_grad();
        let out = flat(forward_with(&r, cell, U, sequence, xt.clone(), m.as_ref(), fused));
        let n = out.dims()[0];
        let weights = {
            let mut w = Rng::new(5);
            random(&mut w, n, 1.0)
        };
        let grads = (out.clone() * tensor(&weights, [n], &device)).sum().backward();
        let mut g = vec![values(xt.grad(&grads).expect("input grad"))];
        for dir in std::iter::once(&r.forward).chain(r.backward.as_ref()) {
            g.push(values(dir.w_ih.val().grad(&grads).expect("w_ih grad")));
            g.push(values(dir.w_hh.val().grad(&grads).expect("w_hh grad")));
            g.push(values(dir.b_ih.val().grad(&grads).expect("b_ih grad")));
            if let Some(b) = &dir.b_hh {
                g.push(values(b.val().grad(&grads).expect("b_hh grad")));
            }
        }
        outs.push(values(out));
        grads_of.push(g);
    }
    close(&format!("{what}: out"), &outs[0], &outs[1]);
    for (k, (f, t)) in grads_of[0].iter().zip(&grads_of[1]).enumerate() {
        close(&format!("{what}: grad {k}"), f, t);
    }
    // A row without any token: a zero `last` state.
    if let Some(lens) = lens.filter(|_| !sequence) {
        let w = U * (1 + usize::from(bidirectional));
        for (row, _) in lens.iter().enumerate().filter(|(_, l)| **l == 0) {
            assert!(outs[0][row * w..(row + 1) * w].iter().all(|v| *v == 0.0), "{what}: row {row}");
        }
    }
}

#[test]
fn fused_recurrence_matches_the_tensor_ops_forward_and_backward() {
    let mut seed = 29;
    for cell in [RnnCell::Lstm, RnnCell::Gru] {
        for bidirectional in [false, true] {
            for sequence in [false, true] {
                for masked in [false, true] {
                    seed += 1;
                    compare(cell, bidirectional, sequence, (B, T), masked.then_some(&LENS[..]), seed);
                }
            }
        }
    }
}

#[test]
fn fused_recurrence_matches_the_tensor_ops_on_one_or_two_steps_and_one_row() {
    // One step (no recurrent product, a zero dW_hh from the op), two steps (one shifted pair
    // of the state and gradient buffers), one row.
    // A mask without padding (the last case) is dropped before the op, the same result.
    type Case<'a> = ((usize, usize), Option<&'a [usize]>);
    let cases: [Case<'_>; 6] = [
        ((3, 1), None),
        ((3, 1), Some(&[1, 0, 1])),
        ((2, 2), Some(&[2, 1])),
        ((1, 5), None),
        ((1, 4), Some(&[3])),
        ((2, 3), Some(&[3, 3])),
    ];
    let mut seed = 70;
    for cell in [RnnCell::Lstm, RnnCell::Gru] {
        for bidirectional in [false, true] {
            for sequence in [false, true] {
                for (dims, lens) in cases {
                    seed += 1;
                    compare(cell, bidirectional, sequence, dims, lens, seed);
                }
            }
        }
    }
}

#[test]
fn fused_forward_without_autodiff_matches_the_tensor_ops() {
    let device = cpu();
    let mut rng = Rng::new(41);
    for cell in [RnnCell::Lstm, RnnCell::Gru] {
        for (bidirectional, sequence) in [(true, false), (true, true), (false, true)] {
            let r = part(cell, bidirectional, &mut rng, &device);
            let x = tensor(&random(&mut rng, B * T * D, 1.5), [B, T, D], &device);
            let m = mask(&device);
            let fused = values(flat(forward_with(&r, cell, U, sequence, x.clone(), Some(&m), true)));
            let plain = values(flat(forward_with(&r, cell, U, sequence, x, Some(&m), false)));
            close(&format!("{cell:?} {bidirectional} {sequence}"), &fused, &plain);
        }
    }
}
