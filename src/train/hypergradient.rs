//! Hypergradient descent (Baydin et al., 2018, "Online learning rate adaptation with
//! hypergradient descent"): `sgd(lr, hypergradient: β)`, `adam(..., hypergradient: β)` and
//! `adamw(..., hypergradient: β)` adapt the learning rate online.
//!
//! Takes the optimizer's settings ([`config::Optimizer`] with `hypergradient = Some(β)`), the
//! network and, at each step, its gradients and the schedule's factor; gives the network after
//! the step and the learning rate it used. The paper's algorithms (SGD-HD, SGDN-HD, Adam-HD),
//! step `t` (1 for the first):
//!
//! ```text
//! g_t = ∇f(θ_{t-1})                      (the loss's gradient, plus w·penalty for a coupled L2 penalty)
//! h_t = g_t · u_{t-1}                    (u_0 = 0, so α_1 = α_0)
//! α_t = α_{t-1} + β h_t
//! θ_t = θ_{t-1} - α_t s_t d_t            (s_t: the schedule's factor, 1 for `constant`)
//! u_t = s_t d_t                          (-∂θ_t/∂α_t)
//! ```
//!
//! with the direction `d_t`: the gradient itself for `sgd` without momentum; burn's velocity
//! `v_t = μ v_{t-1} + g_t` (`v_1 = g_1`) with momentum, `g_t + μ v_t` with Nesterov; for Adam
//! `m̂_t / (√v̂_t + ε)` with the bias-corrected moments, plus `w·decay` for `adamw`'s decoupled
//! decay (`θ(1 - α decay) - α m̂/(√v̂+ε)` is `θ - α (m̂/(√v̂+ε) + decay θ)`). The update is linear
//! in `α_t`, so `u_t` is the exact derivative of the step with respect to it: the dot product
//! is the exact derivative of the loss with respect to the previous learning rate, as in the
//! paper. A schedule multiplies the adapted rate; the hypergradient adapts its base.
//!
//! The step itself is burn's plain SGD with the direction in place of the gradient (exactly
//! `θ - lr·d`), so burn still owns the parameters' autodiff state. The optimizer's state
//! (moments, velocity, the last `u`) is kept here by parameter id; the dot product runs over
//! the parameters in the network's order, in f64, so a trial's result depends only on its seed.
//!
//! **Invariants:** `β ≥ 0` and finite (the checker and `config` refuse others); with `β = 0`
//! the learning rate never changes; a non-finite adapted rate ends the trial with the reason
//! (the caller's [`Status::Failed`](super::Status::Failed)), never a NaN step; the rate may go
//! below zero, as in the paper (the next hypergradient then pushes it back).

use std::collections::{HashMap, HashSet};

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig};
use burn::tensor::{Device, Tensor, TensorData};

use super::config::{Optimizer, OptimizerKind};
use super::net::Net;

/// The metric key of the adapted learning rate at the end of the trial (the trial's metrics).
pub const FINAL: &str = "hyper_lr";
/// The prefix of the per-epoch adapted rates in a trial's metrics: `hyper_lr@1`, `hyper_lr@2`...
pub const EPOCH_PREFIX: &str = "hyper_lr@";

/// The per-epoch adapted learning rates recorded in a trial's `metrics`, by epoch (1-based).
pub fn trajectory(metrics: &std::collections::BTreeMap<String, f64>) -> Vec<(u32, f64)> {
    let mut out: Vec<(u32, f64)> =
        metrics.iter().filter_map(|(k, v)| Some((k.strip_prefix(EPOCH_PREFIX)?.parse::<u32>().ok()?, *v))).collect();
    out.sort_by_key(|(e, _)| *e);
    out
}

/// How the direction `d_t` is computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Rule {
    /// The gradient, or burn's momentum velocity (`dampening` 0).
    Sgd { momentum: f32, nesterov: bool },
    /// Adam's bias-corrected direction; `decoupled`: `adamw`'s weight decay is part of it.
    Adam { beta1: f32, beta2: f32, epsilon: f32, decoupled: bool },
}

/// One parameter's input to a step: its gradient (replaced by the direction `d_t`), its
/// weights (read only when `decay` is not zero) and its weight decay.
pub(crate) struct ParamStep<K> {
    pub key: K,
    pub grad: Vec<f32>,
    pub weights: Vec<f32>,
    pub decay: f32,
}

/// The learning rate and the optimizer state of the hypergradient algorithms.
#[derive(Debug, Clone)]
pub(crate) struct Hypergradient<K> {
    beta: f64,
    /// `α_t`, the adapted base rate.
    alpha: f64,
    rule: Rule,
    time: i32,
    states: HashMap<K, State>,
}

/// One parameter's state: the first moment or velocity, the second moment, and `u_{t-1}`.
#[derive(Debug, Clone, Default)]
struct State {
    m: Vec<f32>,
    v: Vec<f32>,
    prev: Vec<f32>,
}

impl<K: std::hash::Hash + Eq + Clone> Hypergradient<K> {
    pub(crate) fn new(rule: Rule, alpha: f64, beta: f64) -> Hypergradient<K> {
        Hypergradient { beta, alpha, rule, time: 0, states: HashMap::new() }
    }

    /// The adapted base rate `α_t` after the last step (`α_0` before the first).
    pub(crate) fn alpha(&self) -> f64 {
        self.alpha
    }

    /// One step: adapts `α` from the gradients and the last directions, replaces each
    /// parameter's gradient by its direction `d_t`, and gives the rate to step with,
    /// `α_t · scale` (then `θ_t = θ_{t-1} - rate · d_t`). An error when `α_t` is not finite.
    pub(crate) fn step(&mut self, params: &mut [ParamStep<K>], scale: f64) -> Result<f64, String> {
        self.time = self.time.saturating_add(1);
        let decoupled = matches!(self.rule, Rule::Adam { decoupled: true, .. });
        // The objective's gradient: the L2 penalty is part of it unless the decay is decoupled.
        if !decoupled {
            for p in params.iter_mut().filter(|p| p.decay != 0.0 && p.weights.len() == p.grad.len()) {
                for (g, w) in p.grad.iter_mut().zip(&p.weights) {
                    *g += *w * p.decay;
                }
            }
        }
        let mut h = 0.0f64;
        for p in params.iter() {
            if let Some(s) = self.states.get(&p.key)
                && s.prev.len() == p.grad.len()
            {
                h += p.grad.iter().zip(&s.prev).map(|(g, u)| f64::from(*g) * f64::from(*u)).sum::<f64>();
            }
        }
        let alpha = self.alpha + self.beta * h;
        if !alpha.is_finite() {
            return Err(format!(
                "the hypergradient learning rate became {alpha} at step {} (hypergradient {h}, β {})",
                self.time, self.beta
            ));
        }
        self.alpha = alpha;
        let (rule, time) = (self.rule, self.time);
        for p in params.iter_mut() {
            let s = self.states.entry(p.key.clone()).or_default();
            direction(rule, time, p, s);
            s.prev.clear();
            s.prev.extend(p.grad.iter().map(|d| (f64::from(*d) * scale) as f32));
        }
        Ok(alpha * scale)
    }
}

/// Replaces `p.grad` (the objective's gradient) by the direction `d_t`, updating `s`.
fn direction<K>(rule: Rule, time: i32, p: &mut ParamStep<K>, s: &mut State) {
    let n = p.grad.len();
    match rule {
        Rule::Sgd { momentum, nesterov } => {
            if momentum == 0.0 {
                return;
            }
            if s.m.len() == n {
                for (v, g) in s.m.iter_mut().zip(&p.grad) {
                    *v = *v * momentum + *g;
                }
            } else {
                s.m = p.grad.clone();
            }
            for (g, v) in p.grad.iter_mut().zip(&s.m) {
                *g = if nesterov { *g + *v * momentum } else { *v };
            }
        }
        Rule::Adam { beta1, beta2, epsilon, decoupled } => {
            if s.m.len() != n {
                s.m = vec![0.0; n];
                s.v = vec![0.0; n];
            }
            let c1 = 1.0 - f64::from(beta1).powi(time);
            let c2 = 1.0 - f64::from(beta2).powi(time);
            let weights = decoupled && p.decay != 0.0 && p.weights.len() == n;
            for i in 0..n {
                let g = p.grad[i];
                let m = beta1 * s.m[i] + (1.0 - beta1) * g;
                let v = beta2 * s.v[i] + (1.0 - beta2) * g * g;
                // Subnormal moments stored as zero, as in `adam.rs` (and for the same reason).
                s.m[i] = if m.abs() < f32::MIN_POSITIVE { 0.0 } else { m };
                s.v[i] = if v.abs() < f32::MIN_POSITIVE { 0.0 } else { v };
                let mhat = f64::from(m) / c1;
                let vhat = f64::from(v) / c2;
                let mut d = (mhat / (vhat.sqrt() + f64::from(epsilon))) as f32;
                if weights {
                    d += p.weights[i] * p.decay;
                }
                p.grad[i] = d;
            }
        }
    }
}

/// The hypergradient optimizer of one training: [`Hypergradient`] over a [`Net`]'s parameters,
/// stepping through burn's plain SGD.
pub(super) struct Runner {
    core: Hypergradient<ParamId>,
    biases: HashSet<ParamId>,
    weight_decay: f32,
    bias_decay: f32,
    plain: ModuleOptimizer,
}

impl Runner {
    /// `None` unless the optimizer has a hypergradient.
    pub(super) fn new(o: &Optimizer, net: &Net) -> Option<Runner> {
        let beta = o.hypergradient?;
        let rule = match o.kind {
            OptimizerKind::Sgd { momentum, nesterov } => Rule::Sgd { momentum: momentum.max(0.0) as f32, nesterov },
            OptimizerKind::Adam { beta1, beta2 } => {
                Rule::Adam { beta1: beta1 as f32, beta2: beta2 as f32, epsilon: 1e-8, decoupled: false }
            }
            OptimizerKind::AdamW { beta1, beta2 } => {
                Rule::Adam { beta1: beta1 as f32, beta2: beta2 as f32, epsilon: 1e-8, decoupled: true }
            }
        };
        // burn's coupled penalty is applied only when positive; so here.
        let coupled = |x: f64| if x > 0.0 || matches!(o.kind, OptimizerKind::AdamW { .. }) { x as f32 } else { 0.0 };
        Some(Runner {
            core: Hypergradient::new(rule, o.lr, beta),
            biases: net.bias_ids().into_iter().collect(),
            weight_decay: coupled(o.weight_decay),
            bias_decay: coupled(o.bias_decay),
            plain: ModuleOptimizer::from(SgdConfig::new().build()),
        })
    }

    /// The adapted base rate after the last step.
    pub(super) fn alpha(&self) -> f64 {
        self.core.alpha()
    }

    /// One step of `net` by `grads`, `scale` the schedule's factor at this step; gives the
    /// network and the rate it stepped with.
    pub(super) fn step(&mut self, net: Net, mut grads: GradientsParams, scale: f64) -> Result<(Net, f64), String> {
        let mut collect = Collect {
            grads: &mut grads,
            biases: &self.biases,
            decays: (self.weight_decay, self.bias_decay),
            params: Vec::new(),
            shapes: Vec::new(),
            error: None,
        };
        net.visit(&mut collect);
        let Collect { mut params, shapes, error, .. } = collect;
        if let Some(e) = error {
            return Err(e);
        }
        let lr = self.core.step(&mut params, scale)?;
        let mut directions = GradientsParams::new();
        let params = params.into_iter().zip(shapes).map(|(p, s)| (p.key, (p.grad, s))).collect();
        let mut register = Register { params, out: &mut directions };
        net.visit(&mut register);
        Ok((self.plain.step(lr, net, directions), lr))
    }
}

/// A gradient's shape and device, where its direction goes back.
type Placement = (Vec<usize>, Device);

/// Takes each parameter's gradient (and its weights when it decays) out as f32 values.
struct Collect<'a> {
    grads: &'a mut GradientsParams,
    biases: &'a HashSet<ParamId>,
    decays: (f32, f32),
    params: Vec<ParamStep<ParamId>>,
    shapes: Vec<Placement>,
    error: Option<String>,
}

impl ModuleVisitor for Collect<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some(g) = self.grads.remove::<D>(param.id) else { return };
        let decay = if self.biases.contains(&param.id) { self.decays.1 } else { self.decays.0 };
        let device = g.device();
        let shape = g.dims().to_vec();
        let values = |t: Tensor<D>| t.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| format!("{e:?}"));
        let grad = match values(g) {
            Ok(v) => v,
            Err(e) => {
                self.error.get_or_insert(format!("a gradient cannot be read: {e}"));
                return;
            }
        };
        let weights = if decay != 0.0 {
            match values(param.val()) {
                Ok(v) => v,
                Err(e) => {
                    self.error.get_or_insert(format!("a weight cannot be read: {e}"));
                    return;
                }
            }
        } else {
            Vec::new()
        };
        self.params.push(ParamStep { key: param.id, grad, weights, decay });
        self.shapes.push((shape, device));
    }
}

/// Registers each parameter's direction as its "gradient" for the plain SGD step.
struct Register<'a> {
    params: HashMap<ParamId, (Vec<f32>, Placement)>,
    out: &'a mut GradientsParams,
}

impl ModuleVisitor for Register<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let Some((d, (shape, device))) = self.params.remove(&param.id) else { return };
        let t = Tensor::<D>::from_data(TensorData::new(d, shape), &device);
        self.out.register::<D>(param.id, t);
    }
}

impl<K> From<(K, Vec<f32>)> for ParamStep<K> {
    fn from((key, grad): (K, Vec<f32>)) -> ParamStep<K> {
        ParamStep { key, grad, weights: Vec::new(), decay: 0.0 }
    }
}
