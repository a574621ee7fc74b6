//! One direction of `lstm` / `gru` over the whole sequence as a single autodiff op on the
//! CPU backend (burn-flex): the forward recurrence on f32 buffers, one GEMM per step for the
//! recurrent product and the gates in one pass, and a hand-written backward through time.
//!
//! Takes the projected input `xp` (`[t, b, G·u]`, time first: `x · W_ih + b_ih` of every
//! step, computed by the caller with ordinary tensor ops, so its gradient flows on through
//! burn), the recurrent weight `W_hh` (`[u, G·u]`), GRU's recurrent bias `b_hh` (`[G·u]`),
//! the direction and, for a reverse pass, the token mask (`[b, t]`). Gives the state after
//! every step, `[t, b, u]` in time order, with gradients for `xp`, `W_hh` and `b_hh`.
//!
//! **Invariants:** the same equations as `rnn::run` (PyTorch's, gate blocks `[i, f, g, o]` /
//! `[r, z, n]`): the state starts at 0; a reverse pass multiplies `h` (and LSTM's `c`) by the
//! step's mask after the step, so it starts afresh at each row's last token; a forward pass
//! takes no mask (the caller picks the states it needs). Only f32 tensors on burn-flex, with
//! or without burn's default autodiff, take this path: [`lstm`] and [`gru`] give `None`
//! otherwise and the caller runs the tensor-op recurrence. The backward pass uses the gate
//! activations saved by the forward one (no transcendental function is recomputed).

// The kernels index several buffers of one layout with the same index.
#![allow(clippy::needless_range_loop)]

use std::sync::Arc;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::NoCheckpointing;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::flex::ops::{matmul::matmul, unary};
use burn::backend::ops::ActivationOps;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Tensor, TensorData};

use crate::ir::RnnCell;

type Ad = Autodiff<Flex>;

/// The shape of one pass.
#[derive(Debug, Clone, Copy)]
struct Dims {
    t: usize,
    b: usize,
    u: usize,
}

/// What a pass keeps for its backward.
#[derive(Debug)]
struct Saved {
    dims: Dims,
    cell: RnnCell,
    reverse: bool,
    /// `[b, t]`, only for a masked reverse pass.
    mask: Option<Vec<f32>>,
    /// `[u, G·u]`.
    w_hh: FlexTensor,
    /// The output, `[t, b, u]`: the state after each step (after the mask).
    h: Vec<f32>,
    /// LSTM: `σ(i), σ(f), σ(o)` per step (`[t, b, 3u]`); GRU: `r, z` (`[t, b, 2u]`).
    sig: Vec<f32>,
    /// LSTM: `tanh(g)`; GRU: `n` (`[t, b, u]`).
    tg: Vec<f32>,
    /// LSTM: `tanh(c)` before the mask; GRU: the recurrent `n` block `h·W_hn + b_hn`.
    aux: Vec<f32>,
    /// LSTM: the cell state after the mask (`[t, b, u]`); GRU: none.
    c: Vec<f32>,
}

/// Where the fused pass can run: the tensor's primitive on burn-flex (with or without autodiff).
enum Prim {
    Tracked(<Ad as burn::backend::BackendTypes>::FloatTensorPrimitive),
    Plain(FlexTensor),
}

fn prim<const D: usize>(t: &Tensor<D>) -> Option<Prim> {
    if t.dtype() != DType::F32 {
        return None;
    }
    if let Ok(p) = t.clone().try_into_primitive::<Ad>() {
        return Some(Prim::Tracked(p));
    }
    t.clone().try_into_primitive::<Flex>().ok().map(Prim::Plain)
}

/// Whether tensors like `t` take the fused path.
#[cfg(test)]
pub(super) fn applies<const D: usize>(t: &Tensor<D>) -> bool {
    prim(t).is_some()
}

/// The LSTM pass, or `None` where it cannot run here (see the module header).
pub(super) fn lstm(xp: &Tensor<3>, w_hh: &Tensor<2>, mask: Option<&Tensor<2>>, reverse: bool) -> Option<Tensor<3>> {
    pass(RnnCell::Lstm, xp, w_hh, None, mask, reverse)
}

/// The GRU pass (`b_hh` its recurrent bias), or `None` where it cannot run here.
pub(super) fn gru(
    xp: &Tensor<3>,
    w_hh: &Tensor<2>,
    b_hh: &Tensor<1>,
    mask: Option<&Tensor<2>>,
    reverse: bool,
) -> Option<Tensor<3>> {
    pass(RnnCell::Gru, xp, w_hh, Some(b_hh), mask, reverse)
}

fn pass(
    cell: RnnCell,
    xp: &Tensor<3>,
    w_hh: &Tensor<2>,
    b_hh: Option<&Tensor<1>>,
    mask: Option<&Tensor<2>>,
    reverse: bool,
) -> Option<Tensor<3>> {
    let [t, b, gu] = xp.dims();
    let [u, gu2] = w_hh.dims();
    if t == 0 || b == 0 || u == 0 || gu != cell.gates() * u || gu2 != gu || b_hh.is_some_and(|bh| bh.dims() != [gu]) {
        return None;
    }
    let dims = Dims { t, b, u };
    let mask = match mask.filter(|_| reverse) {
        Some(m) if m.dims() == [b, t] => Some(m.clone().into_data().convert::<f32>().try_to_vec::<f32>().ok()?),
        Some(_) => return None,
        None => None,
    };
    match (prim(xp)?, prim(w_hh)?, b_hh.map(prim)) {
        (Prim::Tracked(xp), Prim::Tracked(w), bh) => {
            let bh = match bh {
                Some(Some(Prim::Tracked(bh))) => Some(bh),
                None => None,
                Some(_) => return None,
            };
            let x = contiguous(xp.primitive())?;
            let wf = w.primitive().clone();
            let bias = match &bh {
                Some(bh) => Some(contiguous(bh.primitive())?),
                None => None,
            };
            let saved = forward(cell, dims, &x, wf, bias.as_deref(), mask, reverse);
            let out = flex(saved.h.clone(), &[t, b, u]);
            let out = match bh {
                None => match LstmOp.prepare::<NoCheckpointing>([xp.node(), w.node()]).compute_bound().stateful() {
                    OpsKind::Tracked(prep) => prep.finish(Arc::new(saved), out),
                    OpsKind::UnTracked(prep) => prep.finish(out),
                },
                Some(bh) => {
                    match GruOp.prepare::<NoCheckpointing>([xp.node(), w.node(), bh.node()]).compute_bound().stateful()
                    {
                        OpsKind::Tracked(prep) => prep.finish(Arc::new(saved), out),
                        OpsKind::UnTracked(prep) => prep.finish(out),
                    }
                }
            };
            Some(Tensor::from_primitive::<Ad>(out))
        }
        (Prim::Plain(xp), Prim::Plain(w), bh) => {
            let bias = match bh {
                Some(Some(Prim::Plain(bh))) => Some(contiguous(&bh)?),
                None => None,
                Some(_) => return None,
            };
            let x = contiguous(&xp)?;
            let saved = forward(cell, dims, &x, w, bias.as_deref(), mask, reverse);
            Some(Tensor::from_primitive::<Flex>(flex(saved.h, &[t, b, u])))
        }
        _ => None,
    }
}

/// The values of an f32 tensor, row-major.
fn contiguous(t: &FlexTensor) -> Option<Vec<f32>> {
    let t = if t.is_contiguous() { t.clone() } else { t.to_contiguous() };
    t.as_slice::<f32>().map(<[f32]>::to_vec)
}

fn flex(v: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape.to_vec()))
}

/// `a · b` for row-major `a` (`[m, k]`) and the tensor `b` (`[k, n]`, any layout).
fn mm(a: Vec<f32>, m: usize, k: usize, b: &FlexTensor) -> Vec<f32> {
    let out = matmul(flex(a, &[m, k]), b.clone());
    contiguous(&out).unwrap_or_default()
}

fn sigmoid_in_place(v: Vec<f32>, shape: &[usize]) -> Vec<f32> {
    contiguous(&<Flex as ActivationOps<Flex>>::sigmoid(flex(v, shape))).unwrap_or_default()
}

fn tanh_in_place(v: Vec<f32>, shape: &[usize]) -> Vec<f32> {
    contiguous(&unary::tanh(flex(v, shape))).unwrap_or_default()
}

/// The steps in the order the pass takes them.
fn order(t: usize, reverse: bool) -> Box<dyn Iterator<Item = usize>> {
    if reverse { Box::new((0..t).rev()) } else { Box::new(0..t) }
}

/// The step before `s` in the pass's order, if any.
fn before(s: usize, t: usize, reverse: bool) -> Option<usize> {
    if reverse { (s + 1 < t).then_some(s + 1) } else { s.checked_sub(1) }
}

fn forward(
    cell: RnnCell,
    dims: Dims,
    xp: &[f32],
    w_hh: FlexTensor,
    b_hh: Option<&[f32]>,
    mask: Option<Vec<f32>>,
    reverse: bool,
) -> Saved {
    let Dims { t, b, u } = dims;
    let g = cell.gates();
    let gu = g * u;
    let bu = b * u;
    let ns = if cell == RnnCell::Lstm { 3 } else { 2 };
    let mut h = vec![0.0f32; t * bu];
    let mut sig = vec![0.0f32; t * b * ns * u];
    let mut tg = vec![0.0f32; t * bu];
    let mut aux = vec![0.0f32; t * bu];
    let mut c = vec![0.0f32; if cell == RnnCell::Lstm { t * bu } else { 0 }];
    for s in order(t, reverse) {
        let prev = before(s, t, reverse);
        // The recurrent product (0 at the first step), plus GRU's recurrent bias.
        let mut rec = match prev {
            Some(p) => mm(h[p * bu..(p + 1) * bu].to_vec(), b, u, &w_hh),
            None => vec![0.0; b * gu],
        };
        if let Some(bh) = b_hh {
            for row in rec.chunks_exact_mut(gu) {
                row.iter_mut().zip(bh).for_each(|(r, bv)| *r += bv);
            }
        }
        let x = &xp[s * b * gu..(s + 1) * b * gu];
        let mut pre_s = vec![0.0f32; b * ns * u];
        let mut pre_t = vec![0.0f32; bu];
        for r in 0..b {
            let (xr, rr) = (&x[r * gu..(r + 1) * gu], &rec[r * gu..(r + 1) * gu]);
            let ps = &mut pre_s[r * ns * u..(r + 1) * ns * u];
            match cell {
                RnnCell::Lstm => {
                    // σ over i, f and o; tanh over g.
                    for k in 0..2 * u {
                        ps[k] = xr[k] + rr[k];
                    }
                    for k in 0..u {
                        ps[2 * u + k] = xr[3 * u + k] + rr[3 * u + k];
                        pre_t[r * u + k] = xr[2 * u + k] + rr[2 * u + k];
                    }
                }
                RnnCell::Gru => {
                    for k in 0..2 * u {
                        ps[k] = xr[k] + rr[k];
                    }
                }
            }
        }
        let act_s = sigmoid_in_place(pre_s, &[b, ns * u]);
        let so = s * bu;
        match cell {
            RnnCell::Lstm => {
                let act_g = tanh_in_place(pre_t, &[b, u]);
                let mut cs = vec![0.0f32; bu];
                for r in 0..b {
                    let a = &act_s[r * 3 * u..(r + 1) * 3 * u];
                    for k in 0..u {
                        let c_prev = prev.map_or(0.0, |p| c[p * bu + r * u + k]);
                        cs[r * u + k] = a[u + k] * c_prev + a[k] * act_g[r * u + k];
                    }
                }
                let tc = tanh_in_place(cs.clone(), &[b, u]);
                for r in 0..b {
                    let m = mask.as_ref().map_or(1.0, |m| m[r * t + s]);
                    let o = &act_s[r * 3 * u + 2 * u..(r + 1) * 3 * u];
                    for k in 0..u {
                        let i = r * u + k;
                        h[so + i] = o[k] * tc[i] * m;
                        c[so + i] = cs[i] * m;
                    }
                }
                tg[so..so + bu].copy_from_slice(&act_g);
                aux[so..so + bu].copy_from_slice(&tc);
            }
            RnnCell::Gru => {
                let mut pre_n = vec![0.0f32; bu];
                for r in 0..b {
                    for k in 0..u {
                        let rn = rec[r * gu + 2 * u + k];
                        aux[so + r * u + k] = rn;
                        pre_n[r * u + k] = x[r * gu + 2 * u + k] + act_s[r * 2 * u + k] * rn;
                    }
                }
                let n = tanh_in_place(pre_n, &[b, u]);
                for r in 0..b {
                    let m = mask.as_ref().map_or(1.0, |m| m[r * t + s]);
                    for k in 0..u {
                        let i = r * u + k;
                        let z = act_s[r * 2 * u + u + k];
                        let h_prev = prev.map_or(0.0, |p| h[p * bu + i]);
                        h[so + i] = (n[i] + z * (h_prev - n[i])) * m;
                    }
                }
                tg[so..so + bu].copy_from_slice(&n);
            }
        }
        sig[s * b * ns * u..(s + 1) * b * ns * u].copy_from_slice(&act_s);
    }
    Saved { dims, cell, reverse, mask, w_hh, h, sig, tg, aux, c }
}

/// Gradients of `xp`, `W_hh` and (GRU) `b_hh` from the output's gradient `dout` (`[t, b, u]`).
fn backward(sv: &Saved, dout: &[f32]) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let Dims { t, b, u } = sv.dims;
    let gu = sv.cell.gates() * u;
    let bu = b * u;
    let ns = if sv.cell == RnnCell::Lstm { 3 } else { 2 };
    let w_t = sv.w_hh.transpose(0, 1);
    // The gradient of the pre-activations, `[t, b, G·u]`: of `xp`, and (LSTM) of the recurrent
    // product too; GRU's recurrent product has its own (its `n` block is scaled by `r`).
    let mut dxp = vec![0.0f32; t * b * gu];
    let mut drec = vec![0.0f32; if sv.cell == RnnCell::Gru { t * b * gu } else { 0 }];
    // The previous step's state, per step (0 before the first): the left side of dW_hh.
    let mut h_prev_all = vec![0.0f32; t * bu];
    let mut dh = vec![0.0f32; bu];
    let mut dc = vec![0.0f32; bu];
    let mut dh_next = vec![0.0f32; bu];
    let steps: Vec<usize> = order(t, sv.reverse).collect();
    for (idx, &s) in steps.iter().enumerate().rev() {
        let prev = before(s, t, sv.reverse);
        let so = s * bu;
        for i in 0..bu {
            dh[i] = dout[so + i] + dh_next[i];
        }
        if let Some(p) = prev {
            h_prev_all[so..so + bu].copy_from_slice(&sv.h[p * bu..(p + 1) * bu]);
        }
        let a = &sv.sig[s * b * ns * u..(s + 1) * b * ns * u];
        let dg = &mut dxp[s * b * gu..(s + 1) * b * gu];
        for r in 0..b {
            let m = sv.mask.as_ref().map_or(1.0, |m| m[r * t + s]);
            let ar = &a[r * ns * u..(r + 1) * ns * u];
            let dgr = &mut dg[r * gu..(r + 1) * gu];
            match sv.cell {
                RnnCell::Lstm => {
                    for k in 0..u {
                        let i = r * u + k;
                        let (ig, fg, og) = (ar[k], ar[u + k], ar[2 * u + k]);
                        let gg = sv.tg[so + i];
                        let tc = sv.aux[so + i];
                        let dhp = dh[i] * m;
                        let dcp = dc[i] * m + dhp * og * (1.0 - tc * tc);
                        let c_prev = prev.map_or(0.0, |p| sv.c[p * bu + i]);
                        dgr[k] = dcp * gg * ig * (1.0 - ig);
                        dgr[u + k] = dcp * c_prev * fg * (1.0 - fg);
                        dgr[2 * u + k] = dcp * ig * (1.0 - gg * gg);
                        dgr[3 * u + k] = dhp * tc * og * (1.0 - og);
                        dc[i] = dcp * fg;
                    }
                }
                RnnCell::Gru => {
                    let drr = &mut drec[s * b * gu + r * gu..s * b * gu + (r + 1) * gu];
                    for k in 0..u {
                        let i = r * u + k;
                        let (rg, zg) = (ar[k], ar[u + k]);
                        let n = sv.tg[so + i];
                        let rn = sv.aux[so + i];
                        let h_prev = prev.map_or(0.0, |p| sv.h[p * bu + i]);
                        let dhp = dh[i] * m;
                        let dan = dhp * (1.0 - zg) * (1.0 - n * n);
                        let dar = dan * rn * rg * (1.0 - rg);
                        let daz = dhp * (h_prev - n) * zg * (1.0 - zg);
                        dgr[k] = dar;
                        dgr[u + k] = daz;
                        dgr[2 * u + k] = dan;
                        drr[k] = dar;
                        drr[u + k] = daz;
                        drr[2 * u + k] = dan * rg;
                        // The direct path `z · h_prev`; the recurrent one is added below.
                        dc[i] = dhp * zg;
                    }
                }
            }
        }
        // The gradient reaching the previous step's state.
        if idx > 0 {
            let d_rec = match sv.cell {
                RnnCell::Lstm => &dxp[s * b * gu..(s + 1) * b * gu],
                RnnCell::Gru => &drec[s * b * gu..(s + 1) * b * gu],
            };
            let back = mm(d_rec.to_vec(), b, gu, &w_t);
            match sv.cell {
                RnnCell::Lstm => dh_next.copy_from_slice(&back),
                RnnCell::Gru => {
                    for i in 0..bu {
                        dh_next[i] = back[i] + dc[i];
                    }
                }
            }
        }
    }
    let d_rec = match sv.cell {
        RnnCell::Lstm => &dxp,
        RnnCell::Gru => &drec,
    };
    // dW_hh = Σ_steps h_prevᵀ · d_rec, one GEMM over all steps.
    let hp = flex(h_prev_all, &[t * b, u]).transpose(0, 1);
    let dw = contiguous(&matmul(hp, flex(d_rec.clone(), &[t * b, gu]))).unwrap_or_default();
    let mut db = vec![0.0f32; if sv.cell == RnnCell::Gru { gu } else { 0 }];
    if sv.cell == RnnCell::Gru {
        for row in drec.chunks_exact(gu) {
            db.iter_mut().zip(row).for_each(|(d, v)| *d += v);
        }
    }
    (dxp, dw, db)
}

#[derive(Debug)]
struct LstmOp;

impl Backward<Flex, 2> for LstmOp {
    type State = Arc<Saved>;

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_xp, node_w] = ops.parents;
        let grad: FlexTensor = grads.consume::<Flex>(&ops.node);
        let Some(dout) = contiguous(&grad) else { return };
        let sv = &ops.state;
        let Dims { t, b, u } = sv.dims;
        let (dxp, dw, _) = backward(sv, &dout);
        if let Some(node) = node_xp {
            grads.register::<Flex>(node.id, flex(dxp, &[t, b, 4 * u]));
        }
        if let Some(node) = node_w {
            grads.register::<Flex>(node.id, flex(dw, &[u, 4 * u]));
        }
    }
}

#[derive(Debug)]
struct GruOp;

impl Backward<Flex, 3> for GruOp {
    type State = Arc<Saved>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_xp, node_w, node_b] = ops.parents;
        let grad: FlexTensor = grads.consume::<Flex>(&ops.node);
        let Some(dout) = contiguous(&grad) else { return };
        let sv = &ops.state;
        let Dims { t, b, u } = sv.dims;
        let (dxp, dw, db) = backward(sv, &dout);
        if let Some(node) = node_xp {
            grads.register::<Flex>(node.id, flex(dxp, &[t, b, 3 * u]));
        }
        if let Some(node) = node_w {
            grads.register::<Flex>(node.id, flex(dw, &[u, 3 * u]));
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node.id, flex(db, &[3 * u]));
        }
    }
}
