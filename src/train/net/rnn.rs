//! `lstm` and `gru` as burn tensor ops: the part that holds their weights, its
//! initialisation, its named tensors, and the recurrence over `[batch, t, d]`.
//!
//! Takes the op's cell, width and direction(s) and the input sequence with the token
//! padding mask (`[batch, t]`, 1 on tokens, padding at the end of each row) when the model
//! reads token ids; gives `[batch, units · directions]` (`last`) or `[batch, t, units ·
//! directions]` (`sequence`).
//!
//! Written here rather than with `burn::nn::Lstm`/`Gru`, which take no mask and run eight
//! (LSTM) small matmuls per step: the input projection of every step is one matmul before
//! the loop, which keeps only the recurrent product inside it. On the CPU backend (burn-flex)
//! the loop itself is one fused op per direction with a hand-written backward
//! (`rnn_fused.rs`); elsewhere it runs step by step with tensor ops.
//!
//! **Invariants:** padding never changes an output at a real position: `last` is the
//! state at each row's last token (0 for a row without any), a `sequence` output is 0 at
//! padded positions, and the backward direction starts from a zero state at each row's
//! last token. The tensors are those `ir::rnn` counts: per direction `weight_ih` `[d, G·u]`,
//! `weight_hh` `[u, G·u]` (gate blocks `[i, f, g, o]` for LSTM, `[r, z, n]` for GRU, as
//! PyTorch's, transposed), then `bias` (LSTM) or `bias_ih` and `bias_hh` (GRU); the backward
//! direction's names end in `_reverse`.

use burn::module::{Module, Param, ParamId};
use burn::tensor::{Device, Tensor, TensorData, activation};

use super::{Act, param};
use crate::ir::RnnCell;
use crate::rng::Rng;
use crate::train::config::Init;

/// One direction's weights.
#[derive(Module, Debug)]
pub struct Direction {
    /// `[d, G·u]`: the input's contribution to every gate.
    pub w_ih: Param<Tensor<2>>,
    /// `[u, G·u]`: the previous state's.
    pub w_hh: Param<Tensor<2>>,
    /// `[G·u]`: LSTM's one bias, GRU's input-side bias.
    pub b_ih: Param<Tensor<1>>,
    /// `[G·u]`: GRU's recurrent-side bias (its `n` block is gated by `r`); none for LSTM.
    pub b_hh: Option<Param<Tensor<1>>>,
}

/// A recurrent layer: the forward direction, and the backward one when bidirectional.
#[derive(Module, Debug)]
pub struct Recurrent {
    pub forward: Direction,
    pub backward: Option<Direction>,
}

/// A tensor by name and shape (from a saved or averaged model).
pub(super) type Lookup<'a> = dyn Fn(String, &[usize]) -> Result<TensorData, String> + 'a;

/// The shape of a recurrent op, as far as its weights go.
#[derive(Debug, Clone, Copy)]
pub(super) struct Spec {
    pub cell: RnnCell,
    pub units: usize,
    /// The input's feature width `d`.
    pub input: usize,
    pub bidirectional: bool,
}

/// Weights drawn from `rng`: by default U(±1/√units) for every weight and bias (PyTorch's
/// and cuDNN's); another `init` draws both matrices with their own fans and zero biases.
pub(super) fn init(spec: Spec, init: Init, rng: &mut Rng, device: &Device) -> Recurrent {
    let direction = |rng: &mut Rng| {
        let (d, u) = (spec.input, spec.units);
        let gu = spec.cell.gates() * u;
        let limit = 1.0 / (u.max(1) as f64).sqrt();
        let mut uni = |n: usize| (0..n).map(|_| rng.uniform(-limit, limit) as f32).collect::<Vec<_>>();
        let (w_ih, w_hh, b_ih, b_hh) = match init {
            Init::Default => (uni(d * gu), uni(u * gu), uni(gu), uni(gu)),
            other => {
                let w_ih = super::draw(other, rng, d * gu, 0, d, gu).0;
                let w_hh = super::draw(other, rng, u * gu, 0, u, gu).0;
                (w_ih, w_hh, vec![0.0; gu], vec![0.0; gu])
            }
        };
        Direction {
            w_ih: param(w_ih, [d, gu], device),
            w_hh: param(w_hh, [u, gu], device),
            b_ih: param(b_ih, [gu], device),
            b_hh: (spec.cell == RnnCell::Gru).then(|| param(b_hh, [gu], device)),
        }
    };
    let forward = direction(rng);
    let backward = spec.bidirectional.then(|| direction(rng));
    Recurrent { forward, backward }
}

impl Recurrent {
    fn directions(&self) -> impl Iterator<Item = (&Direction, &'static str)> {
        std::iter::once((&self.forward, "")).chain(self.backward.as_ref().map(|b| (b, "_reverse")))
    }

    /// Trainable values.
    pub(super) fn trainable(&self) -> usize {
        let n = |d: &[usize]| d.iter().product::<usize>();
        self.directions()
            .map(|(d, _)| {
                n(&d.w_ih.dims()) + n(&d.w_hh.dims()) + n(&d.b_ih.dims()) + d.b_hh.as_ref().map_or(0, |b| n(&b.dims()))
            })
            .sum()
    }

    /// The biases (the `bias_decay` group).
    pub(super) fn bias_ids(&self, ids: &mut Vec<ParamId>) {
        for (d, _) in self.directions() {
            ids.push(d.b_ih.id);
            ids.extend(d.b_hh.as_ref().map(|b| b.id));
        }
    }

    /// Every tensor, named after the op `n`.
    pub(super) fn tensors(&self, n: &str, put: &mut dyn FnMut(String, TensorData)) {
        for (d, suffix) in self.directions() {
            put(format!("{n}.weight_ih{suffix}"), d.w_ih.val().into_data());
            put(format!("{n}.weight_hh{suffix}"), d.w_hh.val().into_data());
            match &d.b_hh {
                None => put(format!("{n}.bias{suffix}"), d.b_ih.val().into_data()),
                Some(b_hh) => {
                    put(format!("{n}.bias_ih{suffix}"), d.b_ih.val().into_data());
                    put(format!("{n}.bias_hh{suffix}"), b_hh.val().into_data());
                }
            }
        }
    }

    /// Replaces every tensor with the one `get` finds by name and shape.
    pub(super) fn load(&mut self, n: &str, get: &Lookup<'_>, device: &Device) -> Result<(), String> {
        let directions =
            std::iter::once((&mut self.forward, "")).chain(self.backward.as_mut().map(|b| (b, "_reverse")));
        for (d, suffix) in directions {
            d.w_ih =
                Param::from_tensor(Tensor::from_data(get(format!("{n}.weight_ih{suffix}"), &d.w_ih.dims())?, device));
            d.w_hh =
                Param::from_tensor(Tensor::from_data(get(format!("{n}.weight_hh{suffix}"), &d.w_hh.dims())?, device));
            let bias = if d.b_hh.is_some() { "bias_ih" } else { "bias" };
            d.b_ih = Param::from_tensor(Tensor::from_data(get(format!("{n}.{bias}{suffix}"), &d.b_ih.dims())?, device));
            if let Some(b_hh) = &mut d.b_hh {
                let dims = b_hh.dims();
                *b_hh = Param::from_tensor(Tensor::from_data(get(format!("{n}.bias_hh{suffix}"), &dims)?, device));
            }
        }
        Ok(())
    }
}

/// Runs the layer over `x` (`[b, t, d]`); `mask` is the token mask, used only when it is
/// `[b, t]`.
pub(super) fn forward(
    r: &Recurrent,
    cell: RnnCell,
    units: usize,
    sequence: bool,
    x: Tensor<3>,
    mask: Option<&Tensor<2>>,
) -> Act {
    forward_with(r, cell, units, sequence, x, mask, true)
}

/// [`forward`], through the fused whole-sequence op (`rnn_fused`) where it runs when `fused`.
pub(super) fn forward_with(
    r: &Recurrent,
    cell: RnnCell,
    units: usize,
    sequence: bool,
    x: Tensor<3>,
    mask: Option<&Tensor<2>>,
    fused: bool,
) -> Act {
    let [b, t, _] = x.dims();
    // A batch without padding: the mask would change nothing, and skipping it saves the
    // passes that pick each row's last state out of the whole sequence.
    let mask = mask.filter(|m| m.dims() == [b, t] && b * t > 0 && (*m).clone().min().into_scalar::<f32>() < 0.5);
    let masks = Masks { full: mask, fused };
    let fwd = run(&r.forward, cell, units, x.clone(), &masks, false, sequence || mask.is_some());
    let fwd_out = match (sequence, mask) {
        (true, Some(m)) => Out::Seq(fwd.seq() * m.clone().reshape([b, t, 1])),
        (true, None) => Out::Seq(fwd.seq()),
        (false, Some(m)) => {
            // The state at each row's last token: 1 where a token is followed by padding
            // (or ends the row), 0 elsewhere.
            let last = if t > 1 {
                let next = Tensor::cat(vec![m.clone().narrow(1, 1, t - 1), Tensor::zeros([b, 1], &m.device())], 1);
                m.clone() - next
            } else {
                m.clone()
            };
            let last = last.reshape([b, t, 1]);
            Out::Last((fwd.seq() * last).sum_dim(1).reshape([b, units]))
        }
        (false, None) => Out::Last(fwd.last),
    };
    let Some(bwd_dir) = &r.backward else {
        return fwd_out.act();
    };
    // Padding is at the end, so the backward pass meets it first: zeroing the state there
    // makes it start afresh at each row's last token, and leaves padded outputs at 0.
    let bwd = run(bwd_dir, cell, units, x, &masks, true, sequence);
    match fwd_out {
        Out::Seq(f) => Act::T3(Tensor::cat(vec![f, bwd.seq()], 2)),
        Out::Last(f) => Act::T2(Tensor::cat(vec![f, bwd.last], 1)),
    }
}

enum Out {
    Last(Tensor<2>),
    Seq(Tensor<3>),
}

impl Out {
    fn act(self) -> Act {
        match self {
            Out::Last(t) => Act::T2(t),
            Out::Seq(t) => Act::T3(t),
        }
    }
}

/// One direction's pass: the state after the last step it took, and (when kept) the state
/// at every step in time order.
struct Pass {
    last: Tensor<2>,
    states: Vec<Tensor<2>>,
    /// The fused op's states, `[b, t, u]` (then `states` is empty).
    seq: Option<Tensor<3>>,
}

impl Pass {
    /// `[b, t, u]`.
    fn seq(&self) -> Tensor<3> {
        match &self.seq {
            Some(seq) => seq.clone(),
            None => Tensor::stack(self.states.clone(), 1),
        }
    }
}

/// The token mask (`[b, t]`), and whether the fused op may run.
struct Masks<'a> {
    full: Option<&'a Tensor<2>>,
    fused: bool,
}

/// One direction through the fused op (`rnn_fused`), where it runs; `xw` is `x · W_ih`,
/// `[t, b, G·u]` (the op adds the bias).
fn run_fused(dir: &Direction, cell: RnnCell, xw: &Tensor<3>, mask: Option<&Tensor<2>>, reverse: bool) -> Option<Pass> {
    let (w_hh, b_ih) = (dir.w_hh.val(), dir.b_ih.val());
    let hs = match (cell, &dir.b_hh) {
        (RnnCell::Lstm, _) => super::rnn_fused::lstm(xw, &w_hh, &b_ih, mask, reverse)?,
        (RnnCell::Gru, Some(b_hh)) => super::rnn_fused::gru(xw, &w_hh, &b_ih, &b_hh.val(), mask, reverse)?,
        (RnnCell::Gru, None) => return None,
    };
    let [t, b, u] = hs.dims();
    let at = if reverse { 0 } else { t.saturating_sub(1) };
    let last = hs.clone().narrow(0, at, 1).reshape([b, u]);
    Some(Pass { last, states: Vec::new(), seq: Some(hs.swap_dims(0, 1)) })
}

/// One direction over `x` (`[b, t, d]`), backwards in time when `reverse`; with a mask, a
/// reverse pass zeroes its state at padded steps. Through the fused op where it runs (and
/// `masks.fused`), else with tensor ops step by step.
fn run(dir: &Direction, cell: RnnCell, u: usize, x: Tensor<3>, masks: &Masks<'_>, reverse: bool, keep: bool) -> Pass {
    let [b, t, d] = x.dims();
    let gu = cell.gates() * u;
    // Every step's input projection in one matmul, time first so that a step is a
    // contiguous block.
    // The fused op adds the bias itself, in its pass over the gates.
    let xw = x.swap_dims(0, 1).reshape([t * b, d]).matmul(dir.w_ih.val());
    if masks.fused
        && t > 0
        && let Some(pass) = run_fused(dir, cell, &xw.clone().reshape([t, b, gu]), masks.full, reverse)
    {
        return pass;
    }
    let xp = xw + dir.b_ih.val().unsqueeze::<2>();
    // Per step, `[b, 1]`, in time order.
    let steps_mask: Option<Vec<Tensor<2>>> = masks.full.map(|m| (0..t).map(|s| m.clone().narrow(1, s, 1)).collect());
    let mask = steps_mask.as_deref();
    let mut xs = Vec::with_capacity(t);
    split_steps(xp.reshape([t, b, gu]), &mut xs);
    let device = dir.w_hh.device();
    let mut h: Tensor<2> = Tensor::zeros([b, u], &device);
    let mut c: Tensor<2> = Tensor::zeros([b, u], &device);
    let mut states = Vec::with_capacity(if keep { t } else { 0 });
    let order: Box<dyn Iterator<Item = usize>> = if reverse { Box::new((0..t).rev()) } else { Box::new(0..t) };
    for s in order {
        let Some(xt) = xs.get(s).cloned() else { break };
        let rec = h.clone().matmul(dir.w_hh.val());
        match cell {
            RnnCell::Lstm => {
                let gates = xt + rec;
                // The activations are the step's costliest part: each runs on its own blocks only.
                let if_ = activation::sigmoid(gates.clone().narrow(1, 0, 2 * u));
                let (i, f) = (if_.clone().narrow(1, 0, u), if_.narrow(1, u, u));
                let g = activation::tanh(gates.clone().narrow(1, 2 * u, u));
                let o = activation::sigmoid(gates.narrow(1, 3 * u, u));
                c = f * c + i * g;
                h = o * activation::tanh(c.clone());
            }
            RnnCell::Gru => {
                let rec = match &dir.b_hh {
                    Some(bh) => rec + bh.val().unsqueeze::<2>(),
                    None => rec,
                };
                let rz = activation::sigmoid(xt.clone().narrow(1, 0, 2 * u) + rec.clone().narrow(1, 0, 2 * u));
                let (r, z) = (rz.clone().narrow(1, 0, u), rz.narrow(1, u, u));
                let n = activation::tanh(xt.narrow(1, 2 * u, u) + r * rec.narrow(1, 2 * u, u));
                h = n.clone() + z * (h - n);
            }
        }
        if reverse && let Some(m) = mask.and_then(|m| m.get(s)) {
            h = h * m.clone();
            if cell == RnnCell::Lstm {
                c = c * m.clone();
            }
        }
        if keep {
            states.push(h.clone());
        }
    }
    if reverse {
        states.reverse();
    }
    Pass { last: h, states, seq: None }
}

/// `[t, b, f]` → `t` tensors `[b, f]`, by halving: autodiff's slice backward writes a
/// gradient of its input's whole size, so slicing each step off the whole tensor would cost
/// `t` full-size gradients; halving costs `log₂ t`.
fn split_steps(x: Tensor<3>, out: &mut Vec<Tensor<2>>) {
    let [t, b, f] = x.dims();
    if t <= 1 {
        if t == 1 {
            out.push(x.reshape([b, f]));
        }
        return;
    }
    let mid = t / 2;
    split_steps(x.clone().narrow(0, 0, mid), out);
    split_steps(x.narrow(0, mid, t - mid), out);
}
