//! One direction of `lstm` / `gru` over the whole sequence as a single autodiff op on the
//! CPU backend (burn-flex): the forward recurrence on f32 buffers, one GEMM per step for the
//! recurrent product and the gates in one pass, and a hand-written backward through time.
//!
//! Takes the input's product with `W_ih` (`xw`, `[t, b, G·u]`, time first, computed by the
//! caller with one burn matmul, so its gradient flows on through burn), the input-side bias
//! `b_ih` (`[G·u]`, added here in the pass over the gates rather than as a separate pass over
//! `xw`), the recurrent weight `W_hh` (`[u, G·u]`), GRU's recurrent bias `b_hh` (`[G·u]`), the
//! direction and, for a reverse pass, the token mask (`[b, t]`). Gives the state after every
//! step, `[t, b, u]` in time order, with gradients for `xw`, `W_hh`, `b_ih` and `b_hh`.
//!
//! Memory: the states, the gate activations and the pre-activations' gradient live in buffers
//! allocated once per call; each step's GEMM reads a view of them (no copy), and `dW_hh` is one
//! GEMM over all steps on views of the state and gradient buffers shifted by one step.
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
use burn::tensor::{DType, Shape, Tensor, TensorData};

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
    /// The output, `[t·b, u]`: the state after each step (after the mask), shared with the
    /// op's output tensor.
    h: FlexTensor,
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

/// The LSTM pass (`b_ih` its one bias), or `None` where it cannot run here.
pub(super) fn lstm(
    xw: &Tensor<3>,
    w_hh: &Tensor<2>,
    b_ih: &Tensor<1>,
    mask: Option<&Tensor<2>>,
    reverse: bool,
) -> Option<Tensor<3>> {
    pass(RnnCell::Lstm, xw, w_hh, b_ih, None, mask, reverse)
}

/// The GRU pass (`b_ih` and `b_hh` its input-side and recurrent biases), or `None` where it
/// cannot run here.
pub(super) fn gru(
    xw: &Tensor<3>,
    w_hh: &Tensor<2>,
    b_ih: &Tensor<1>,
    b_hh: &Tensor<1>,
    mask: Option<&Tensor<2>>,
    reverse: bool,
) -> Option<Tensor<3>> {
    pass(RnnCell::Gru, xw, w_hh, b_ih, Some(b_hh), mask, reverse)
}

fn pass(
    cell: RnnCell,
    xw: &Tensor<3>,
    w_hh: &Tensor<2>,
    b_ih: &Tensor<1>,
    b_hh: Option<&Tensor<1>>,
    mask: Option<&Tensor<2>>,
    reverse: bool,
) -> Option<Tensor<3>> {
    let [t, b, gu] = xw.dims();
    let [u, gu2] = w_hh.dims();
    if t == 0
        || b == 0
        || u == 0
        || gu != cell.gates() * u
        || gu2 != gu
        || b_ih.dims() != [gu]
        || b_hh.is_some_and(|bh| bh.dims() != [gu])
    {
        return None;
    }
    let dims = Dims { t, b, u };
    let mask = match mask.filter(|_| reverse) {
        Some(m) if m.dims() == [b, t] => Some(m.clone().into_data().convert::<f32>().try_to_vec::<f32>().ok()?),
        Some(_) => return None,
        None => None,
    };
    match (prim(xw)?, prim(w_hh)?, prim(b_ih)?, b_hh.map(prim)) {
        (Prim::Tracked(xw), Prim::Tracked(w), Prim::Tracked(bi), bh) => {
            let bh = match bh {
                Some(Some(Prim::Tracked(bh))) => Some(bh),
                None => None,
                Some(_) => return None,
            };
            let x = dense(xw.primitive())?;
            let bias_ih = dense(bi.primitive())?;
            let bias_hh = match &bh {
                Some(bh) => Some(dense(bh.primitive())?),
                None => None,
            };
            let biases = (vals(&bias_ih), bias_hh.as_ref().map(vals));
            let saved = forward(cell, dims, vals(&x), w.primitive().clone(), biases, mask, reverse);
            let out = saved.h.reshape(Shape::from(vec![t, b, u]));
            let out = match bh {
                None => {
                    match LstmOp.prepare::<NoCheckpointing>([xw.node(), w.node(), bi.node()]).compute_bound().stateful()
                    {
                        OpsKind::Tracked(prep) => prep.finish(Arc::new(saved), out),
                        OpsKind::UnTracked(prep) => prep.finish(out),
                    }
                }
                Some(bh) => match GruOp
                    .prepare::<NoCheckpointing>([xw.node(), w.node(), bi.node(), bh.node()])
                    .compute_bound()
                    .stateful()
                {
                    OpsKind::Tracked(prep) => prep.finish(Arc::new(saved), out),
                    OpsKind::UnTracked(prep) => prep.finish(out),
                },
            };
            Some(Tensor::from_primitive::<Ad>(out))
        }
        (Prim::Plain(xw), Prim::Plain(w), Prim::Plain(bi), bh) => {
            let bias_hh = match bh {
                Some(Some(Prim::Plain(bh))) => Some(dense(&bh)?),
                None => None,
                Some(_) => return None,
            };
            let (x, bias_ih) = (dense(&xw)?, dense(&bi)?);
            let biases = (vals(&bias_ih), bias_hh.as_ref().map(vals));
            let saved = forward(cell, dims, vals(&x), w, biases, mask, reverse);
            Some(Tensor::from_primitive::<Flex>(saved.h.reshape(Shape::from(vec![t, b, u]))))
        }
        _ => None,
    }
}

/// The contiguous f32 values of a tensor: the tensor itself where it is already contiguous
/// (no copy), else a contiguous copy.
fn dense(t: &FlexTensor) -> Option<FlexTensor> {
    let t = if t.is_contiguous() && t.layout().start_offset() == 0 { t.clone() } else { t.to_contiguous() };
    (t.dtype() == DType::F32).then_some(t)
}

/// The values of a contiguous f32 tensor (see [`dense`]).
fn vals(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().unwrap_or_default()
}

/// A zero-filled f32 buffer of `shape`, as a tensor, so that GEMMs take views of it in place.
fn zeros(shape: &[usize]) -> FlexTensor {
    flex(vec![0.0; shape.iter().product()], shape)
}

fn flex(v: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape.to_vec()))
}

/// The writable values of a buffer made by [`zeros`] (copied first only if a view of it is
/// still alive, which the passes below never leave).
fn vals_mut(t: &mut FlexTensor) -> &mut [f32] {
    t.storage_mut::<f32>()
}

/// `rows` rows of the `[n, k]` buffer `t` from row `at`, times `w` (`[k, m]`, any layout).
fn mm_rows(t: &FlexTensor, at: usize, rows: usize, w: &FlexTensor) -> FlexTensor {
    matmul(t.narrow(0, at, rows), w.clone())
}

/// `x ← σ(x)` over a scratch buffer (in place: flex's vectorised kernel on a unique tensor).
fn sigmoid_in_place(x: FlexTensor) -> FlexTensor {
    <Flex as ActivationOps<Flex>>::sigmoid(x)
}

/// `x ← tanh(x)` over a scratch buffer, in place.
fn tanh_in_place(x: FlexTensor) -> FlexTensor {
    unary::tanh(x)
}

/// The steps in the order the pass takes them.
fn order(t: usize, reverse: bool) -> Box<dyn Iterator<Item = usize>> {
    if reverse { Box::new((0..t).rev()) } else { Box::new(0..t) }
}

/// The step before `s` in the pass's order, if any.
fn before(s: usize, t: usize, reverse: bool) -> Option<usize> {
    if reverse { (s + 1 < t).then_some(s + 1) } else { s.checked_sub(1) }
}

/// The forward recurrence over `xp` (contiguous, `[t·b, G·u]`, time first). Every step's
/// recurrent product is one GEMM on a view of the state buffer (no copy); the gate
/// pre-activations go into two scratch buffers allocated once per call, where flex's
/// vectorised sigmoid and tanh run in place.
fn forward(
    cell: RnnCell,
    dims: Dims,
    xw: &[f32],
    w_hh: FlexTensor,
    (bi, b_hh): (&[f32], Option<&[f32]>),
    mask: Option<Vec<f32>>,
    reverse: bool,
) -> Saved {
    let Dims { t, b, u } = dims;
    let g = cell.gates();
    let gu = g * u;
    let bu = b * u;
    let ns = if cell == RnnCell::Lstm { 3 } else { 2 };
    let mut h = zeros(&[t * b, u]);
    let mut sig = vec![0.0f32; t * b * ns * u];
    let mut tg = vec![0.0f32; t * bu];
    let mut aux = vec![0.0f32; t * bu];
    let mut c = vec![0.0f32; if cell == RnnCell::Lstm { t * bu } else { 0 }];
    // Scratch: the sigmoid gates' pre-activations, and the tanh block's.
    let mut pre_s = zeros(&[b, ns * u]);
    let mut pre_t = zeros(&[b, u]);
    let mut pre_c = zeros(&[b, u]);
    let no_rec = vec![0.0f32; b * gu];
    let no_bias = vec![0.0f32; gu];
    let bh = b_hh.unwrap_or(&no_bias);
    for s in order(t, reverse) {
        let prev = before(s, t, reverse);
        // The recurrent product (0 at the first step); GRU's recurrent bias is added below.
        let rec_t = prev.map(|p| mm_rows(&h, p * b, b, &w_hh));
        let rec = rec_t.as_ref().map_or(&no_rec[..], vals);
        let x = &xw[s * b * gu..(s + 1) * b * gu];
        {
            let ps = vals_mut(&mut pre_s);
            let pt = vals_mut(&mut pre_t);
            for r in 0..b {
                let (xr, rr) = (&x[r * gu..(r + 1) * gu], &rec[r * gu..(r + 1) * gu]);
                let psr = &mut ps[r * ns * u..(r + 1) * ns * u];
                match cell {
                    RnnCell::Lstm => {
                        // σ over i, f and o; tanh over g.
                        for k in 0..2 * u {
                            psr[k] = (xr[k] + bi[k]) + rr[k];
                        }
                        for k in 0..u {
                            psr[2 * u + k] = (xr[3 * u + k] + bi[3 * u + k]) + rr[3 * u + k];
                            pt[r * u + k] = (xr[2 * u + k] + bi[2 * u + k]) + rr[2 * u + k];
                        }
                    }
                    RnnCell::Gru => {
                        for k in 0..2 * u {
                            psr[k] = (xr[k] + bi[k]) + (rr[k] + bh[k]);
                        }
                    }
                }
            }
        }
        pre_s = sigmoid_in_place(pre_s);
        let so = s * bu;
        let act_s = vals(&pre_s);
        match cell {
            RnnCell::Lstm => {
                pre_t = tanh_in_place(pre_t);
                let act_g = vals(&pre_t);
                tg[so..so + bu].copy_from_slice(act_g);
                let pc = vals_mut(&mut pre_c);
                for r in 0..b {
                    let a = &act_s[r * 3 * u..(r + 1) * 3 * u];
                    let m = mask.as_ref().map_or(1.0, |m| m[r * t + s]);
                    for k in 0..u {
                        let i = r * u + k;
                        let c_prev = prev.map_or(0.0, |p| c[p * bu + i]);
                        let cs = a[u + k] * c_prev + a[k] * act_g[i];
                        pc[i] = cs;
                        c[so + i] = cs * m;
                    }
                }
                pre_c = tanh_in_place(pre_c);
                let tc = vals(&pre_c);
                aux[so..so + bu].copy_from_slice(tc);
                drop(rec_t);
                let hv = vals_mut(&mut h);
                for r in 0..b {
                    let m = mask.as_ref().map_or(1.0, |m| m[r * t + s]);
                    let o = &act_s[r * 3 * u + 2 * u..(r + 1) * 3 * u];
                    for k in 0..u {
                        let i = r * u + k;
                        hv[so + i] = o[k] * tc[i] * m;
                    }
                }
            }
            RnnCell::Gru => {
                {
                    let pt = vals_mut(&mut pre_t);
                    for r in 0..b {
                        for k in 0..u {
                            let rn = rec[r * gu + 2 * u + k] + bh[2 * u + k];
                            aux[so + r * u + k] = rn;
                            pt[r * u + k] = (x[r * gu + 2 * u + k] + bi[2 * u + k]) + act_s[r * 2 * u + k] * rn;
                        }
                    }
                }
                pre_t = tanh_in_place(pre_t);
                let n = vals(&pre_t);
                tg[so..so + bu].copy_from_slice(n);
                drop(rec_t);
                let hv = vals_mut(&mut h);
                for r in 0..b {
                    let m = mask.as_ref().map_or(1.0, |m| m[r * t + s]);
                    for k in 0..u {
                        let i = r * u + k;
                        let z = act_s[r * 2 * u + u + k];
                        let h_prev = prev.map_or(0.0, |p| hv[p * bu + i]);
                        hv[so + i] = (n[i] + z * (h_prev - n[i])) * m;
                    }
                }
            }
        }
        sig[s * b * ns * u..(s + 1) * b * ns * u].copy_from_slice(act_s);
    }
    Saved { dims, cell, reverse, mask, w_hh, h, sig, tg, aux, c }
}

/// Gradients of `xp`, `W_hh` and (GRU) `b_hh` from the output's gradient `dout` (`[t, b, u]`),
/// as tensors (`[t·b, G·u]`, `[u, G·u]`, `[G·u]`). The pre-activations' gradient is written
/// once into one buffer, which is also `xp`'s gradient (LSTM); each step's product with
/// `W_hhᵀ` is a GEMM on a view of it, and `dW_hh` one GEMM over all steps on views of the
/// state and gradient buffers, shifted by one step (no copy of either).
fn backward(sv: &Saved, dout: &[f32]) -> Grads {
    let Dims { t, b, u } = sv.dims;
    let gu = sv.cell.gates() * u;
    let bu = b * u;
    let ns = if sv.cell == RnnCell::Lstm { 3 } else { 2 };
    // `W_hhᵀ` copied once into a contiguous `[G·u, u]` buffer: each step's product with the
    // transposed *view* made gemm repack the whole strided `W_hh` (its lhs after gemm's own
    // transposition, with a row stride of `G·u`) at every step (256 KiB for an LSTM of 128
    // units); from the contiguous copy gemm reads the panels in place.
    let w_t = sv.w_hh.transpose(0, 1).to_contiguous();
    let hs = vals(&sv.h);
    // The gradient of the pre-activations, `[t·b, G·u]`: of `xp`, and (LSTM) of the recurrent
    // product too; GRU's recurrent product has its own (its `n` block is scaled by `r`).
    let mut dxp = zeros(&[t * b, gu]);
    let mut drec = zeros(&[if sv.cell == RnnCell::Gru { t * b } else { 0 }, gu]);
    let mut dh = vec![0.0f32; bu];
    let mut dc = vec![0.0f32; bu];
    let mut dh_next = vec![0.0f32; bu];
    // The biases' gradients: the column sums of the pre-activations' gradients, added up
    // step by step while each step's block is in cache.
    let mut db_ih = vec![0.0f32; gu];
    let mut db_hh = vec![0.0f32; if sv.cell == RnnCell::Gru { gu } else { 0 }];
    let steps: Vec<usize> = order(t, sv.reverse).collect();
    for (idx, &s) in steps.iter().enumerate().rev() {
        let prev = before(s, t, sv.reverse);
        let so = s * bu;
        for i in 0..bu {
            dh[i] = dout[so + i] + dh_next[i];
        }
        let a = &sv.sig[s * b * ns * u..(s + 1) * b * ns * u];
        {
            let dg = &mut vals_mut(&mut dxp)[s * b * gu..(s + 1) * b * gu];
            let dr = vals_mut(&mut drec);
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
                        let drr = &mut dr[s * b * gu + r * gu..s * b * gu + (r + 1) * gu];
                        for k in 0..u {
                            let i = r * u + k;
                            let (rg, zg) = (ar[k], ar[u + k]);
                            let n = sv.tg[so + i];
                            let rn = sv.aux[so + i];
                            let h_prev = prev.map_or(0.0, |p| hs[p * bu + i]);
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
            for row in dg.chunks_exact(gu) {
                db_ih.iter_mut().zip(row).for_each(|(d, v)| *d += v);
            }
            if sv.cell == RnnCell::Gru {
                for row in dr[s * b * gu..(s + 1) * b * gu].chunks_exact(gu) {
                    db_hh.iter_mut().zip(row).for_each(|(d, v)| *d += v);
                }
            }
        }
        // The gradient reaching the previous step's state.
        if idx > 0 {
            let d_rec = if sv.cell == RnnCell::Gru { &drec } else { &dxp };
            let back_t = mm_rows(d_rec, s * b, b, &w_t);
            let back = vals(&back_t);
            match sv.cell {
                RnnCell::Lstm => dh_next.copy_from_slice(back),
                RnnCell::Gru => {
                    for i in 0..bu {
                        dh_next[i] = back[i] + dc[i];
                    }
                }
            }
        }
    }
    let d_rec = if sv.cell == RnnCell::Gru { &drec } else { &dxp };
    // dW_hh = Σ_steps h_prevᵀ · d_rec, one GEMM over every step that has a previous one: the
    // state at step `s - 1` (forward) or `s + 1` (reverse) beside the gradient at `s`.
    let dw = if t > 1 {
        let n = (t - 1) * b;
        let (h_at, d_at) = if sv.reverse { (b, 0) } else { (0, b) };
        matmul(sv.h.narrow(0, h_at, n).transpose(0, 1), d_rec.narrow(0, d_at, n))
    } else {
        zeros(&[u, gu])
    };
    Grads {
        xw: dxp.reshape(Shape::from(vec![t, b, gu])),
        w_hh: dw,
        b_ih: flex(db_ih, &[gu]),
        b_hh: flex(db_hh, &[if sv.cell == RnnCell::Gru { gu } else { 0 }]),
    }
}

/// The gradients of one pass's inputs.
struct Grads {
    /// `[t, b, G·u]`.
    xw: FlexTensor,
    /// `[u, G·u]`.
    w_hh: FlexTensor,
    /// `[G·u]`.
    b_ih: FlexTensor,
    /// `[G·u]` for GRU, `[0]` for LSTM (which has no recurrent bias).
    b_hh: FlexTensor,
}

#[derive(Debug)]
struct LstmOp;

impl Backward<Flex, 3> for LstmOp {
    type State = Arc<Saved>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_xw, node_w, node_bi] = ops.parents;
        let grad: FlexTensor = grads.consume::<Flex>(&ops.node);
        let Some(dout) = dense(&grad) else { return };
        let g = backward(&ops.state, vals(&dout));
        for (node, tensor) in [(node_xw, g.xw), (node_w, g.w_hh), (node_bi, g.b_ih)] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, tensor);
            }
        }
    }
}

#[derive(Debug)]
struct GruOp;

impl Backward<Flex, 4> for GruOp {
    type State = Arc<Saved>;

    fn backward(self, ops: Ops<Self::State, 4>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_xw, node_w, node_bi, node_bh] = ops.parents;
        let grad: FlexTensor = grads.consume::<Flex>(&ops.node);
        let Some(dout) = dense(&grad) else { return };
        let g = backward(&ops.state, vals(&dout));
        for (node, tensor) in [(node_xw, g.xw), (node_w, g.w_hh), (node_bi, g.b_ih), (node_bh, g.b_hh)] {
            if let Some(node) = node {
                grads.register::<Flex>(node.id, tensor);
            }
        }
    }
}
