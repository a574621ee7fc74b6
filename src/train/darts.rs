//! Differentiable architecture search (DARTS, Liu et al., 2019), first order, for one
//! decision or a chain of them ([`Joint`]).
//!
//! Takes the plans of one decision's choices (the same model expanded once per value of
//! one structural parameter, everything else fixed) and gives a [`Supernet`]: the ops all
//! choices share before the point where their graphs first differ (`prefix`), each
//! choice's own ops (`arms`), and the ops all choices share after the point where they
//! last differ (`suffix`). The supernet computes
//! `suffix(Σ_k softmax(α)_k · arm_k(prefix(x)))`, `α` one trainable logit per choice.
//! [`search`] alternates weight steps (the trial's optimizer and schedule) on train
//! batches with architecture steps (Adam at `arch_lr` on `α`) on valid batches, and reads
//! off the choice of largest `α`.
//!
//! Shared ops are merged as far as the graphs agree: choices `dense(16) relu` and
//! `dense(16) tanh` share the dense layer and mix after the activations. A skip
//! connection around the decision moves the mixing point after the join.
//!
//! **Invariants:** with `α` one-hot (the weights `[0, …, 1, …, 0]`) the supernet's output
//! is exactly the chosen sub-model's with the same weights ([`Supernet::choice_tensors`]);
//! `α` starts at zero (every choice weighted `1/K`), so where it ends comes from the
//! architecture steps alone; with `stop_entropy`, the phase ends after the first epoch
//! that completes `patience` epochs in a row of normalised entropy below it, and
//! [`Outcome::weights`] has exactly the epochs that ran.
//!
//! The usual fix against DARTS' collapse chosen here is the entropy stop, not β-DARTS'
//! regulariser: on bma's small decisions (two to sixteen choices, a few epochs) the failure
//! that costs is the phase going on once α has settled, spending the time budget the
//! sampled search could use, while β-DARTS targets the drift of α towards parameter-free
//! operations over long runs of a large cell, which these supernets do not have (each arm
//! is a user's block, not `skip`/`none`). The stop needs no new term in the loss, so the
//! one-hot invariant and the gradients of α are unchanged, and its threshold reads the same
//! for any number of choices (the entropy over `ln K`).
//!
//! Several decisions: [`Joint`] chains single-decision supernets when the decisions are
//! independent and follow one another (checked on every combination); `study::darts`
//! chooses nested ones in turns. Not done: nested decisions in one supernet, token inputs (an `embedding`'s padding mask does not cross the cut), β-DARTS
//! regularisation; the supernet's weights step without the trial's `hypergradient:`,
//! augmentation, early stopping or SWA (its optimizer, schedule, batch, init and seed
//! apply).

use burn::module::Module;
use burn::optim::GradientsParams;
use burn::tensor::{Tensor, TensorData, activation};

use super::net::{self, Mode, Net, Op, OpKind, Plan, Tensors};
use super::{DeviceKind, TrainConfig, batch_t, batch_x, batches, burn_device, head_of, loss_tensor, optimizer, scalar};
use crate::ast;
use crate::data::Dataset;
use crate::ir::{self, Task};
use crate::rng::Rng;

/// One decision's supernet: shared prefix, one arm per choice, shared suffix.
#[derive(Debug, Clone)]
pub struct Supernet {
    prefix: Plan,
    arms: Vec<Plan>,
    suffix: Plan,
    /// Per choice, the suffix ops' names in that choice's own plan (names count layers of
    /// a kind, so they shift with the arm's length).
    suffix_names: Vec<Vec<String>>,
    /// Per choice, its whole plan (for [`Supernet::choice_tensors`]).
    choices: Vec<Plan>,
}

/// The architecture search's own settings; the weights train with the trial's.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub epochs: usize,
    /// Adam's rate on `α` (DARTS: 3e-4).
    pub arch_lr: f64,
    /// Adam's coupled weight decay on `α` (DARTS: 1e-3).
    pub arch_weight_decay: f64,
    /// Stop the architecture phase once the normalised entropy of softmax(α) (its entropy
    /// over `ln K`, so 1 is uniform and 0 one-hot, whatever `K`) has stayed below this for
    /// `patience` epochs in a row. `None`: run every epoch.
    pub stop_entropy: Option<f64>,
    pub patience: usize,
}

/// What [`search`] gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// softmax(α) before the first step: `1/K` each.
    pub start: Vec<f64>,
    /// softmax(α) after each epoch, one weight per choice.
    pub weights: Vec<Vec<f64>>,
    /// Mean loss of the architecture steps in each epoch (valid batches, before the step).
    pub arch_loss: Vec<f64>,
    /// Mean loss of the weight steps in each epoch (train batches).
    pub train_loss: Vec<f64>,
    /// The epoch after which the entropy stop ended the phase (`None`: it ran every epoch).
    pub stopped_at: Option<usize>,
    /// The choice of largest final weight (the first on a tie).
    pub chosen: usize,
    /// The chosen sub-model's weights as the supernet trained them, named by its own plan
    /// (DARTS retrains the choice from scratch; these are what the supernet learnt).
    pub chosen_tensors: Tensors,
}

/// The trainable weights of a supernet (the prefix's, each arm's, the suffix's).
#[derive(Module, Debug)]
pub(super) struct Weights {
    prefix: Net,
    arms: Vec<Net>,
    suffix: Net,
}

impl Supernet {
    /// The supernet of `choices` (at least two plans of the same input and output).
    pub fn new(choices: &[Plan]) -> Result<Supernet, String> {
        if choices.len() < 2 {
            return Err(format!("a decision needs at least two choices, got {}", choices.len()));
        }
        for (k, plan) in choices.iter().enumerate() {
            if plan.input != 0 || plan.output + 1 != plan.ops.len() {
                return Err(format!("choice {} does not end in its output node", k + 1));
            }
            if plan.tokens() {
                return Err("token inputs (an `embedding`) cannot be mixed yet".into());
            }
        }
        let first = &choices[0];
        let p =
            (0..first.ops.len()).take_while(|&i| choices.iter().all(|c| c.ops.get(i) == Some(&first.ops[i]))).count();
        if choices.iter().all(|c| c.ops.len() == p) {
            return Err("every choice gives the same network: there is nothing to mix".into());
        }
        if p == 0 {
            return Err("the choices do not share their input".into());
        }
        let shortest = choices.iter().map(|c| c.ops.len()).min().unwrap_or(0);
        // The longest suffix of alike ops whose inputs agree and never reach across the arms.
        let alike = |j: usize| {
            let o = &first.ops[first.ops.len() - 1 - j];
            choices.iter().all(|c| {
                let q = &c.ops[c.ops.len() - 1 - j];
                q.kind == o.kind && q.shape == o.shape && q.in_shape == o.in_shape && q.inputs.len() == o.inputs.len()
            })
        };
        let mut s = (0..shortest - p).take_while(|&j| alike(j)).count();
        let split = loop {
            match cut(choices, p, s) {
                Ok(split) => break split,
                Err(e) if s == 0 => return Err(e),
                Err(_) => s -= 1,
            }
        };
        Ok(split)
    }

    /// How many choices the decision has.
    pub fn choices(&self) -> usize {
        self.arms.len()
    }

    /// New weights drawn by `init` from `rng` (prefix, then each arm, then the suffix).
    pub(super) fn init(&self, init: super::Init, rng: &mut Rng, device: &burn::tensor::Device) -> Weights {
        Weights {
            prefix: Net::init(&self.prefix, init, rng, device),
            arms: self.arms.iter().map(|a| Net::init(a, init, rng, device)).collect(),
            suffix: Net::init(&self.suffix, init, rng, device),
        }
    }

    /// Runs `x` (`[batch, features]`) through the supernet with the choices weighted by
    /// `mix` (`[K]`, summing to one); gives `[batch, outputs]`.
    pub(super) fn forward(
        &self,
        w: &Weights,
        x: Tensor<2>,
        mix: Tensor<1>,
        mut rng: Option<&mut Rng>,
    ) -> Result<Tensor<2>, String> {
        let h = net::forward(&w.prefix, &self.prefix, x, mode(&mut rng), None)?;
        let mut ys = Vec::with_capacity(self.arms.len());
        for (arm, weights) in self.arms.iter().zip(&w.arms) {
            ys.push(net::forward(weights, arm, h.clone(), mode(&mut rng), None)?);
        }
        let [batch, n] = ys.first().map(|y| y.dims()).ok_or("a supernet without arms")?;
        let k = ys.len();
        let mixed = (Tensor::stack::<3>(ys, 1) * mix.reshape([1, k, 1])).sum_dim(1).reshape([batch, n]);
        net::forward(&w.suffix, &self.suffix, mixed, mode(&mut rng), None)
    }

    /// The tensors of choice `k`'s own sub-model, named as its plan names them, taken from
    /// the supernet's weights: loaded into that sub-model, it computes what the supernet
    /// computes with the one-hot weight on `k` (what [`search`] reads off goes through
    /// [`Joint::choice_tensors`], the same for a chain of one).
    #[cfg(test)]
    pub(super) fn choice_tensors(&self, k: usize, w: &Weights) -> Result<Tensors, String> {
        let (arm, arm_w) = self.arms.get(k).zip(w.arms.get(k)).ok_or_else(|| format!("no choice {k}"))?;
        let names = self.suffix_names.get(k).ok_or_else(|| format!("no choice {k}"))?;
        let mut suffix = self.suffix.clone();
        for (op, name) in suffix.ops.iter_mut().skip(1).zip(names) {
            op.name.clone_from(name);
        }
        let mut out = w.prefix.tensors(&self.prefix);
        out.extend(arm_w.tensors(arm));
        out.extend(w.suffix.tensors(&suffix));
        Ok(out)
    }

    #[cfg(test)]
    pub(super) fn prefix_ops(&self) -> Vec<Op> {
        self.prefix.ops.clone()
    }

    #[cfg(test)]
    pub(super) fn arm_ops(&self, k: usize) -> Vec<Op> {
        self.arms.get(k).map(|a| a.ops.clone()).unwrap_or_default()
    }

    #[cfg(test)]
    pub(super) fn suffix_ops(&self) -> Vec<Op> {
        self.suffix.ops.clone()
    }

    /// Choice `k`'s whole plan.
    pub fn choice(&self, k: usize) -> Option<&Plan> {
        self.choices.get(k)
    }
}

/// The most choices one decision may have.
pub const MAX_CHOICES: usize = crate::check::darts::MAX_CHOICES;

/// The supernet of parameter `param`'s choices: `body` expanded at `point` once per value
/// of `param`'s domain (a choice `in {…}`, or an `int` domain of at most [`MAX_CHOICES`]
/// values), every other parameter as `point` has it. Gives the values in domain order
/// beside it. An `int` width is mixed as separate arms (the layers it sizes and those after
/// them up to where the choices agree again), not by masking one shared layer.
pub fn decision(
    program: &ir::Program,
    body: &ast::Body,
    point: &ir::Point,
    data: &ir::DataInfo,
    param: &ir::Param,
) -> Result<(Vec<ir::Value>, Supernet), String> {
    let name = &param.name;
    let values: Vec<ir::Value> = match &param.kind {
        ir::ParamKind::Free(ir::Domain::Choice(values)) => values.clone(),
        ir::ParamKind::Free(ir::Domain::Int { lo, hi, step, .. }) => {
            let step = (*step).max(1);
            let n = if hi < lo { 0 } else { (hi - lo) / step + 1 };
            if n > MAX_CHOICES as i64 {
                return Err(format!("`{name}` has {n} values; a decision mixes at most {MAX_CHOICES}"));
            }
            (0..n).map(|k| ir::Value::Int(lo + k * step)).collect()
        }
        ir::ParamKind::Free(ir::Domain::Float { .. }) => {
            return Err(format!("`{name}` is continuous: only a choice among values can be mixed"));
        }
        ir::ParamKind::Const(_) | ir::ParamKind::Derived(_) => {
            return Err(format!("`{name}` is not searched: there is nothing to choose"));
        }
    };
    if values.len() > MAX_CHOICES {
        return Err(format!("`{name}` has {} values; a decision mixes at most {MAX_CHOICES}", values.len()));
    }
    if !point.contains_key(name) {
        return Err(format!("`{name}` is not active at this point (its `when` does not hold)"));
    }
    let mut plans = Vec::with_capacity(values.len());
    for v in &values {
        let mut at = point.clone();
        at.insert(name.clone(), v.clone());
        let sub = ir::expand(program, body, &at, data).map_err(|e| format!("`{name} = {v}`: {e}"))?;
        plans.push(Plan::new(&sub));
    }
    let net = Supernet::new(&plans).map_err(|e| format!("`{name}`: {e}"))?;
    Ok((values, net))
}

/// The [`Joint`] supernet of `params` (each a decision as [`decision`] reads it), `body`
/// expanded at `point` once per combination of their values; gives each decision's values
/// in domain order beside it.
pub fn joint(
    program: &ir::Program,
    body: &ast::Body,
    point: &ir::Point,
    data: &ir::DataInfo,
    params: &[&ir::Param],
) -> Result<(Vec<Vec<ir::Value>>, Joint), String> {
    let mut values = Vec::with_capacity(params.len());
    for p in params {
        values.push(decision(program, body, point, data, p)?.0);
    }
    let sizes: Vec<usize> = values.iter().map(Vec::len).collect();
    let plan_of = |c: &[usize]| -> Result<Plan, String> {
        let mut at = point.clone();
        for ((p, vs), &k) in params.iter().zip(&values).zip(c) {
            at.insert(p.name.clone(), vs.get(k).cloned().ok_or("no such choice")?);
        }
        let sub = ir::expand(program, body, &at, data).map_err(|e| e.to_string())?;
        Ok(Plan::new(&sub))
    };
    let net = Joint::new(&sizes, &plan_of)?;
    Ok((values, net))
}

/// DARTS on several decisions at once: [`joint`]'s supernet trained by [`search_joint`];
/// one [`Choice`] per decision, in `params`' order (each [`Outcome`] holding that
/// decision's weights and the shared losses; `chosen_tensors` the whole combination's, on
/// the first).
#[allow(clippy::too_many_arguments)]
pub fn choose_joint(
    kind: DeviceKind,
    program: &ir::Program,
    body: &ast::Body,
    point: &ir::Point,
    data: &Dataset,
    cfg: &TrainConfig,
    darts: &Config,
    params: &[&ir::Param],
) -> Result<Vec<Choice>, String> {
    let (values, net) = joint(program, body, point, &data.info, params)?;
    let out = search_joint(kind, &net, cfg, darts, data, |_, _| {})?;
    let mut choices = Vec::with_capacity(values.len());
    for (d, vs) in values.into_iter().enumerate() {
        let chosen = out.chosen.get(d).copied().ok_or("the search chose no value")?;
        let value = vs.get(chosen).cloned().ok_or("the search chose no value")?;
        let outcome = Outcome {
            start: out.start.get(d).cloned().unwrap_or_default(),
            weights: out.weights.iter().map(|w| w.get(d).cloned().unwrap_or_default()).collect(),
            arch_loss: out.arch_loss.clone(),
            train_loss: out.train_loss.clone(),
            stopped_at: out.stopped_at,
            chosen,
            chosen_tensors: if d == 0 { out.chosen_tensors.clone() } else { Vec::new() },
        };
        choices.push(Choice { values: vs, outcome, value });
    }
    Ok(choices)
}

/// What [`choose`] gives.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// The decision's values, in domain order (the order of `outcome`'s weights).
    pub values: Vec<ir::Value>,
    pub outcome: Outcome,
    /// The value read off: `values[outcome.chosen]`.
    pub value: ir::Value,
}

/// DARTS on one decision: [`decision`]'s supernet trained by [`search`] on `data`, and the
/// value of largest architecture weight. Retraining the chosen sub-model from scratch is
/// the caller's (a normal trial at `point` with `param` set to `value`).
#[allow(clippy::too_many_arguments)]
pub fn choose(
    kind: DeviceKind,
    program: &ir::Program,
    body: &ast::Body,
    point: &ir::Point,
    data: &Dataset,
    cfg: &TrainConfig,
    darts: &Config,
    param: &ir::Param,
    on_epoch: impl FnMut(usize, &[f64]) + Send,
) -> Result<Choice, String> {
    let (values, net) = decision(program, body, point, &data.info, param)?;
    let outcome = search(kind, &net, cfg, darts, data, on_epoch)?;
    let value = values.get(outcome.chosen).cloned().ok_or("the search chose no value")?;
    Ok(Choice { values, outcome, value })
}

/// Trains the supernet of `net` on `data`'s train split (weights, `cfg`'s optimizer,
/// schedule, batch and seed) and its valid split (`α`, `darts`), one architecture step
/// after each weight step, for `darts.epochs` epochs; `on_epoch` sees each epoch's weights.
/// Runs in its own pool of `cfg.threads` threads, as [`super::fit`] does.
pub fn search(
    kind: DeviceKind,
    net: &Supernet,
    cfg: &TrainConfig,
    darts: &Config,
    data: &Dataset,
    on_epoch: impl FnMut(usize, &[f64]) + Send,
) -> Result<Outcome, String> {
    super::in_pool(cfg.threads, || search_here(kind, net, cfg, darts, data, on_epoch))
}

fn search_here(
    kind: DeviceKind,
    net: &Supernet,
    cfg: &TrainConfig,
    darts: &Config,
    data: &Dataset,
    mut on_epoch: impl FnMut(usize, &[f64]),
) -> Result<Outcome, String> {
    let joint = Joint::single(net.clone());
    let out = search_joint_here(kind, &joint, cfg, darts, data, |e, w| {
        if let Some(w) = w.first() {
            on_epoch(e, w)
        }
    })?;
    let first = |v: &Vec<Vec<f64>>| v.first().cloned().unwrap_or_default();
    Ok(Outcome {
        start: first(&out.start),
        weights: out.weights.iter().map(first).collect(),
        arch_loss: out.arch_loss,
        train_loss: out.train_loss,
        stopped_at: out.stopped_at,
        chosen: out.chosen.first().copied().unwrap_or(0),
        chosen_tensors: out.chosen_tensors,
    })
}

/// [`search`] for a [`Joint`] supernet: one `α` per decision, each stepped by its own Adam;
/// the entropy stop waits for every decision. `on_epoch` sees each epoch's weights, per
/// decision in the caller's order.
pub fn search_joint(
    kind: DeviceKind,
    net: &Joint,
    cfg: &TrainConfig,
    darts: &Config,
    data: &Dataset,
    on_epoch: impl FnMut(usize, &[Vec<f64>]) + Send,
) -> Result<JointOutcome, String> {
    super::in_pool(cfg.threads, || search_joint_here(kind, net, cfg, darts, data, on_epoch))
}

fn search_joint_here(
    kind: DeviceKind,
    net: &Joint,
    cfg: &TrainConfig,
    darts: &Config,
    data: &Dataset,
    mut on_epoch: impl FnMut(usize, &[Vec<f64>]),
) -> Result<JointOutcome, String> {
    let device = burn_device(kind)?;
    let features = data.features();
    let (first, last) = net.levels.first().zip(net.levels.last()).ok_or("a supernet without decisions")?;
    if first.prefix.in_features() != features {
        return Err(format!("the model takes {} features, the data has {features}", first.prefix.in_features()));
    }
    if data.train.n < 2 || data.valid.n < 2 {
        return Err("DARTS needs at least two rows in each of the train and valid splits".into());
    }
    let out_k = last.suffix.out_features();
    let classification = data.info.task == Task::Classification;
    let head = head_of(&last.suffix);
    let ad = device.clone().autodiff();
    let mut rng = Rng::new(cfg.seed);
    let mut w = net.init(cfg.init, &mut rng, &ad);
    // The optimizer's bias groups are found by parameter id over every part.
    let all = Net {
        parts: w
            .levels
            .iter()
            .flat_map(|l| std::iter::once(&l.prefix).chain(&l.arms).chain([&l.suffix]))
            .flat_map(|n| n.parts.clone())
            .collect(),
        slots: Vec::new(),
    };
    let mut opt = optimizer(cfg, &all);
    drop(all);
    let ks: Vec<usize> = net.levels.iter().map(Supernet::choices).collect();
    let mut alpha: Vec<Vec<f32>> = ks.iter().map(|&k| vec![0f32; k]).collect();
    let mut adam: Vec<ArchAdam> = ks.iter().map(|&k| ArchAdam::new(k)).collect();
    let batch = cfg.batch.max(2);
    let steps_per_epoch = data.train.n.div_ceil(batch);
    let mut order: Vec<usize> = (0..data.train.n).collect();
    let mut valid_order: Vec<usize> = (0..data.valid.n).collect();
    let mut valid_at = valid_order.len();
    let weights_of = |alpha: &[Vec<f32>]| net.by_decision(alpha.iter().map(|a| softmax(a)).collect());
    let mut out = JointOutcome {
        start: weights_of(&alpha),
        weights: Vec::new(),
        arch_loss: Vec::new(),
        train_loss: Vec::new(),
        stopped_at: None,
        chosen: Vec::new(),
        chosen_tensors: Vec::new(),
    };
    let mixes = |alpha: &[Vec<f32>]| -> Vec<Tensor<1>> {
        alpha.iter().map(|a| Tensor::<1>::from_data(TensorData::new(a.clone(), [a.len()]), &ad)).collect()
    };
    let mut step = 0usize;
    let mut calm = 0usize;
    for epoch in 1..=darts.epochs {
        rng.shuffle(&mut order);
        let (mut train_sum, mut arch_sum, mut count) = (0.0, 0.0, 0usize);
        for (chunk, values) in batches::batches(&data.train, &order, batch, features) {
            if chunk.len() < 2 {
                continue;
            }
            // Weights: the mixtures at the current α, held constant.
            let v = values.map_err(|e| e.to_string())?;
            let x = Tensor::from_data(TensorData::new(v, [chunk.len(), features]), &ad);
            let t = batch_t(&data.train, chunk, out_k, classification, cfg.loss, data.target, &ad);
            let mix: Vec<Tensor<1>> = mixes(&alpha).into_iter().map(|a| activation::softmax(a, 0)).collect();
            let loss = loss_tensor(net.forward(&w, x, &mix, Some(&mut rng))?, t, cfg.loss, head);
            let value = scalar(loss.clone());
            if !value.is_finite() {
                return Err(format!("the supernet's training loss became {value} at epoch {epoch}"));
            }
            let grads = GradientsParams::from_grads(loss.backward(), &w);
            w = opt.step(cfg.lr_at(step, steps_per_epoch), w, grads);
            step += 1;
            // α: first order, on the next valid batch at the new weights.
            if valid_at + batch > valid_order.len() {
                rng.shuffle(&mut valid_order);
                valid_at = 0;
            }
            let rows = &valid_order[valid_at..(valid_at + batch).min(valid_order.len())];
            valid_at += batch;
            let x = batch_x(&data.valid, rows, features, &ad)?;
            let t = batch_t(&data.valid, rows, out_k, classification, cfg.loss, data.target, &ad);
            let a: Vec<Tensor<1>> = mixes(&alpha).into_iter().map(|a| a.require_grad()).collect();
            let mix: Vec<Tensor<1>> = a.iter().map(|a| activation::softmax(a.clone(), 0)).collect();
            let loss = loss_tensor(net.forward(&w, x, &mix, Some(&mut rng))?, t, cfg.loss, head);
            let arch_value = scalar(loss.clone());
            let grads = loss.backward();
            for ((a, alpha), adam) in a.iter().zip(alpha.iter_mut()).zip(adam.iter_mut()) {
                let g = a
                    .grad(&grads)
                    .ok_or("no gradient reached the architecture weights")?
                    .into_data()
                    .try_into_vec::<f32>()
                    .map_err(|e| format!("{e:?}"))?;
                if !arch_value.is_finite() || g.iter().any(|v| !v.is_finite()) {
                    return Err(format!("the architecture loss became {arch_value} at epoch {epoch}"));
                }
                adam.step(alpha, &g, darts.arch_lr, darts.arch_weight_decay);
            }
            train_sum += value;
            arch_sum += arch_value;
            count += 1;
        }
        let weights = weights_of(&alpha);
        on_epoch(epoch, &weights);
        out.train_loss.push(train_sum / count.max(1) as f64);
        out.arch_loss.push(arch_sum / count.max(1) as f64);
        let settled = weights.iter().all(|p| darts.stop_entropy.is_some_and(|limit| entropy(p) < limit));
        out.weights.push(weights);
        if darts.stop_entropy.is_some() {
            calm = if settled { calm + 1 } else { 0 };
            if calm >= darts.patience.max(1) {
                out.stopped_at = Some(epoch);
                break;
            }
        }
    }
    out.chosen = net.by_decision(alpha.iter().map(|a| argmax(a)).collect());
    out.chosen_tensors = net.choice_tensors(&out.chosen, &w)?;
    Ok(out)
}

/// What [`search_joint`] gives: [`Outcome`]'s fields, per decision in the caller's order.
#[derive(Debug, Clone, PartialEq)]
pub struct JointOutcome {
    pub start: Vec<Vec<f64>>,
    /// Per epoch, per decision, softmax(α).
    pub weights: Vec<Vec<Vec<f64>>>,
    pub arch_loss: Vec<f64>,
    pub train_loss: Vec<f64>,
    pub stopped_at: Option<usize>,
    /// Per decision, the choice of largest final weight.
    pub chosen: Vec<usize>,
    /// The chosen combination's weights, named by its own plan.
    pub chosen_tensors: Tensors,
}

/// The most combinations a [`Joint`] supernet expands (every one is checked against the
/// chain's ops).
pub const MAX_COMBINATIONS: usize = 256;

/// Several decisions in one supernet: a chain of single-decision supernets, outermost (the
/// decision whose choices differ first) first, each mixing its own choices with its own
/// `α` and feeding the next; the last one ends in the shared suffix. Built only when the
/// decisions are independent and in sequence: every combination's network is exactly the
/// chain's prefix, arm and middle ops for its choices (checked for every combination), so
/// a decision nested in another's arm, or whose arms run into the next decision's layers
/// (shapes that agree again only after it), is refused and chosen on its own instead.
#[derive(Debug, Clone)]
pub struct Joint {
    /// One supernet per decision, outermost first; all but the last end in the identity.
    levels: Vec<Supernet>,
    /// Per level, its decision's index in the caller's order.
    order: Vec<usize>,
    /// Every combination's whole plan, by choice per decision in the caller's order.
    plans: std::collections::BTreeMap<Vec<usize>, Plan>,
}

/// A [`Joint`]'s weights, one [`Weights`] per level.
#[derive(Module, Debug)]
pub(super) struct JointWeights {
    levels: Vec<Weights>,
}

impl Joint {
    /// The supernet of decisions with `sizes[d]` choices each, `plan_of(c)` the network of
    /// the combination `c` (a choice per decision).
    pub fn new(sizes: &[usize], plan_of: &dyn Fn(&[usize]) -> Result<Plan, String>) -> Result<Joint, String> {
        let n = sizes.len();
        if n == 0 {
            return Err("no decision to mix".into());
        }
        let total = sizes.iter().try_fold(1usize, |t, &k| t.checked_mul(k).filter(|t| *t <= MAX_COMBINATIONS));
        let Some(total) = total else {
            return Err(format!("the decisions have more than {MAX_COMBINATIONS} combinations together"));
        };
        let mut plans = std::collections::BTreeMap::new();
        for mut i in 0..total {
            let mut c = vec![0; n];
            for (d, k) in sizes.iter().enumerate() {
                c[d] = i % k;
                i /= k;
            }
            let plan = plan_of(&c)?;
            plans.insert(c, plan);
        }
        let base = vec![0; n];
        let at = |c: &[usize]| plans.get(c).ok_or_else(|| "a combination was not expanded".to_string());
        // Where each decision's choices first differ from the base network.
        let mut first_diff = Vec::with_capacity(n);
        for d in 0..n {
            let b = at(&base)?;
            let mut lowest = usize::MAX;
            for v in 1..sizes[d] {
                let mut c = base.clone();
                c[d] = v;
                let p = at(&c)?;
                let i = (0..b.ops.len().min(p.ops.len())).take_while(|&i| b.ops[i] == p.ops[i]).count();
                lowest = lowest.min(i);
            }
            first_diff.push(lowest);
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&d| first_diff[d]);
        let mut levels: Vec<Supernet> = Vec::with_capacity(n);
        // The network left to the current level, for a combination: the base network's
        // ops after the outer levels' mixing points (rebased onto a new input op).
        let mut cut_at: Vec<usize> = Vec::new();
        let rest = |c: &[usize], cuts: &[usize]| -> Result<Plan, String> {
            let mut plan = at(c)?.clone();
            for &end in cuts {
                plan = rebase(&plan, end)?;
            }
            Ok(plan)
        };
        for (l, &d) in order.iter().enumerate() {
            let choices: Vec<Plan> = (0..sizes[d])
                .map(|v| {
                    let mut c = base.clone();
                    c[d] = v;
                    rest(&c, &cut_at)
                })
                .collect::<Result<_, _>>()?;
            let mut net = Supernet::new(&choices)?;
            if l + 1 < n {
                // The mixing point: after arm 0's ops in choice 0's network.
                let end = net.prefix.ops.len() + net.arms[0].ops.len() - 1;
                let mixed = net.arms[0].ops.last().map(|o| o.shape.clone()).unwrap_or_default();
                net.suffix = Plan { ops: vec![input_op(&mixed)], input: 0, output: 0, params: 0, flops: 0 };
                for names in &mut net.suffix_names {
                    names.clear();
                }
                cut_at.push(end);
            }
            levels.push(net);
        }
        let joint = Joint { levels, order, plans };
        for (c, plan) in &joint.plans {
            let seq = joint.sequence(c)?;
            let same = seq.len() == plan.ops.len()
                && seq.iter().zip(&plan.ops).all(|(a, b)| a.kind == b.kind && a.shape == b.shape);
            if !same {
                return Err(format!(
                    "the decisions are not independent: combination {c:?} is not the chain of their choices"
                ));
            }
        }
        Ok(joint)
    }

    /// One decision's supernet as a chain of one.
    pub fn single(net: Supernet) -> Joint {
        let plans = net.choices.iter().enumerate().map(|(k, p)| (vec![k], p.clone())).collect();
        Joint { levels: vec![net], order: vec![0], plans }
    }

    /// How many decisions it mixes.
    pub fn decisions(&self) -> usize {
        self.levels.len()
    }

    /// Per-level values put in the caller's decision order.
    fn by_decision<T: Clone + Default>(&self, per_level: Vec<T>) -> Vec<T> {
        let mut out = vec![T::default(); per_level.len()];
        for (l, v) in per_level.into_iter().enumerate() {
            if let Some(&d) = self.order.get(l) {
                out[d] = v;
            }
        }
        out
    }

    pub(super) fn init(&self, init: super::Init, rng: &mut Rng, device: &burn::tensor::Device) -> JointWeights {
        JointWeights { levels: self.levels.iter().map(|l| l.init(init, rng, device)).collect() }
    }

    /// Runs `x` through the chain, `mix[l]` weighting level `l`'s choices (levels outermost
    /// first: see [`Joint::mix_order`]).
    pub(super) fn forward(
        &self,
        w: &JointWeights,
        mut x: Tensor<2>,
        mix: &[Tensor<1>],
        mut rng: Option<&mut Rng>,
    ) -> Result<Tensor<2>, String> {
        for ((level, weights), m) in self.levels.iter().zip(&w.levels).zip(mix) {
            x = level.forward(weights, x, m.clone(), rng.as_deref_mut())?;
        }
        Ok(x)
    }

    /// Per level, the index of its decision in the caller's order.
    pub fn mix_order(&self) -> &[usize] {
        &self.order
    }

    /// The ops of combination `c` as the chain runs them (each segment's input op left out
    /// but the first).
    fn sequence(&self, c: &[usize]) -> Result<Vec<&Op>, String> {
        let mut seq: Vec<&Op> = Vec::new();
        for (l, (level, &d)) in self.levels.iter().zip(&self.order).enumerate() {
            let k = c.get(d).copied().ok_or("a combination without this decision")?;
            let arm = level.arms.get(k).ok_or_else(|| format!("no choice {k}"))?;
            seq.extend(level.prefix.ops.iter().skip(usize::from(l > 0)));
            seq.extend(arm.ops.iter().skip(1));
            if l + 1 == self.levels.len() {
                seq.extend(level.suffix.ops.iter().skip(1));
            }
        }
        Ok(seq)
    }

    /// The tensors of combination `c`'s own sub-model, named as its plan names them.
    pub(super) fn choice_tensors(&self, c: &[usize], w: &JointWeights) -> Result<Tensors, String> {
        let plan = self.plans.get(c).ok_or_else(|| format!("no combination {c:?}"))?;
        let mut at = 0usize;
        let mut out = Tensors::new();
        let mut take = |seg: &Plan, net: &Net, skip_input: bool| {
            let mut named = seg.clone();
            for op in named.ops.iter_mut().skip(usize::from(skip_input)) {
                if let Some(own) = plan.ops.get(at) {
                    op.name.clone_from(&own.name);
                }
                at += 1;
            }
            out.extend(net.tensors(&named));
        };
        for (l, ((level, weights), &d)) in self.levels.iter().zip(&w.levels).zip(&self.order).enumerate() {
            let k = c.get(d).copied().ok_or("a combination without this decision")?;
            let (arm, arm_w) = level.arms.get(k).zip(weights.arms.get(k)).ok_or_else(|| format!("no choice {k}"))?;
            take(&level.prefix, &weights.prefix, l > 0);
            take(arm, arm_w, true);
            if l + 1 == self.levels.len() {
                take(&level.suffix, &weights.suffix, true);
            }
        }
        Ok(out)
    }

    /// Combination `c`'s whole plan.
    pub fn plan(&self, c: &[usize]) -> Option<&Plan> {
        self.plans.get(c)
    }
}

/// `plan` from op `end` on, its op `end - 1` becoming a new input op.
fn rebase(plan: &Plan, end: usize) -> Result<Plan, String> {
    let before = plan.ops.get(end.wrapping_sub(1)).ok_or("a cut outside the network")?;
    let mut ops = vec![input_op(&before.shape)];
    for op in &plan.ops[end..] {
        let mut o = op.clone();
        for i in &mut o.inputs {
            *i = match *i {
                i if i + 1 == end => 0,
                i if i >= end => 1 + i - end,
                _ => return Err(format!("`{}` reads the network across a decision", op.name)),
            };
        }
        ops.push(o);
    }
    let output = ops.len() - 1;
    Ok(Plan { ops, input: 0, output, params: 0, flops: 0 })
}

/// The prefix of the architecture weights in the read-off trial's metrics.
pub const PREFIX: &str = "darts@";
/// The prefix of the epochs each decision's phase ran.
pub const EPOCHS_PREFIX: &str = "darts_epochs@";

/// One decision's architecture weights in a trial's metrics: per value (in the order of
/// the stored names), its weight per epoch from 0.
#[derive(Debug, Clone, PartialEq)]
pub struct Trajectory {
    pub decision: String,
    pub lines: Vec<(String, Vec<(u32, f64)>)>,
}

/// Every decision's [`Trajectory`] in `metrics`, by decision name.
pub fn trajectories(metrics: &std::collections::BTreeMap<String, f64>) -> Vec<Trajectory> {
    let mut out: Vec<Trajectory> = Vec::new();
    for (k, w) in metrics {
        let Some(rest) = k.strip_prefix(PREFIX) else { continue };
        let mut parts = rest.splitn(3, '@');
        let (Some(name), Some(epoch), Some(value)) = (parts.next(), parts.next(), parts.next()) else { continue };
        let Ok(epoch) = epoch.parse::<u32>() else { continue };
        let at = match out.iter().position(|t| t.decision == name) {
            Some(i) => i,
            None => {
                out.push(Trajectory { decision: name.to_string(), lines: Vec::new() });
                out.len() - 1
            }
        };
        let lines = &mut out[at].lines;
        match lines.iter_mut().find(|(v, _)| v == value) {
            Some((_, pts)) => pts.push((epoch, *w)),
            None => lines.push((value.to_string(), vec![(epoch, *w)])),
        }
    }
    for t in &mut out {
        for (_, pts) in &mut t.lines {
            pts.sort_by_key(|p| p.0);
        }
    }
    out
}

/// softmax of `alpha`, in f64.
pub fn softmax(alpha: &[f32]) -> Vec<f64> {
    let m = alpha.iter().fold(f64::NEG_INFINITY, |m, a| m.max(f64::from(*a)));
    let e: Vec<f64> = alpha.iter().map(|a| (f64::from(*a) - m).exp()).collect();
    let sum: f64 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

/// The entropy of the weights `p` over `ln K`: 1 when uniform, 0 when one-hot.
pub fn entropy(p: &[f64]) -> f64 {
    if p.len() < 2 {
        return 0.0;
    }
    let h: f64 = p.iter().filter(|v| **v > 0.0).map(|v| -v * v.ln()).sum();
    h / (p.len() as f64).ln()
}

/// The index of the largest value, the first on a tie.
fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().fold(0, |best, (i, a)| if *a > v[best] { i } else { best })
}

/// Adam on the architecture logits (β 0.5, 0.999 as in DARTS), with coupled decay.
#[derive(Debug)]
struct ArchAdam {
    m: Vec<f64>,
    v: Vec<f64>,
    t: i32,
}

impl ArchAdam {
    fn new(k: usize) -> ArchAdam {
        ArchAdam { m: vec![0.0; k], v: vec![0.0; k], t: 0 }
    }

    fn step(&mut self, alpha: &mut [f32], grad: &[f32], lr: f64, decay: f64) {
        const B1: f64 = 0.5;
        const B2: f64 = 0.999;
        self.t += 1;
        for (i, a) in alpha.iter_mut().enumerate() {
            let g = f64::from(grad.get(i).copied().unwrap_or(0.0)) + decay * f64::from(*a);
            self.m[i] = B1 * self.m[i] + (1.0 - B1) * g;
            self.v[i] = B2 * self.v[i] + (1.0 - B2) * g * g;
            let mh = self.m[i] / (1.0 - B1.powi(self.t));
            let vh = self.v[i] / (1.0 - B2.powi(self.t));
            *a -= (lr * mh / (vh.sqrt() + 1e-8)) as f32;
        }
    }
}

/// Where an input of a suffix op points, relative to its plan.
#[derive(Debug, PartialEq)]
enum Ref {
    /// The mixed output (the last op before the suffix).
    Mixed,
    /// Another suffix op, counted from the suffix's start.
    Suffix(usize),
    /// An op before the arms' outputs: a connection across the decision.
    Across,
}

/// The supernet with prefix `0..p` and the last `s` ops of every choice as its suffix.
fn cut(choices: &[Plan], p: usize, s: usize) -> Result<Supernet, String> {
    let mut arms = Vec::with_capacity(choices.len());
    let mut suffix_names = Vec::with_capacity(choices.len());
    let mut refs_first: Option<Vec<Vec<Ref>>> = None;
    let mut mixed_shape: Option<Vec<usize>> = None;
    for c in choices {
        let end = c.ops.len() - s;
        // The arm: its ops read the prefix's last op and each other only.
        let cut_shape = c.ops[p - 1].shape.clone();
        let mut ops = vec![input_op(&cut_shape)];
        for op in &c.ops[p..end] {
            let mut o = op.clone();
            for i in &mut o.inputs {
                *i = match *i {
                    i if i + 1 == p => 0,
                    i if i >= p => 1 + i - p,
                    _ => {
                        return Err(format!("`{}` reads the network before the decision: it cannot be mixed", op.name));
                    }
                };
            }
            ops.push(o);
        }
        let shape = ops.last().map(|o| o.shape.clone()).unwrap_or_default();
        match &mixed_shape {
            None => mixed_shape = Some(shape),
            Some(first) if *first != shape => {
                return Err(format!("the choices give different shapes where they are mixed: {first:?} and {shape:?}"));
            }
            Some(_) => {}
        }
        let output = ops.len() - 1;
        arms.push(Plan { ops, input: 0, output, params: 0, flops: 0 });
        let refs: Vec<Vec<Ref>> = c.ops[end..]
            .iter()
            .map(|op| {
                op.inputs
                    .iter()
                    .map(|&i| match i {
                        i if i >= end => Ref::Suffix(i - end),
                        i if i + 1 == end => Ref::Mixed,
                        _ => Ref::Across,
                    })
                    .collect()
            })
            .collect();
        if refs.iter().flatten().any(|r| *r == Ref::Across) {
            return Err("a connection reaches across the decision".into());
        }
        match &refs_first {
            None => refs_first = Some(refs),
            Some(first) if *first != refs => return Err("the choices' shared tail is wired differently".into()),
            Some(_) => {}
        }
        suffix_names.push(c.ops[end..].iter().map(|o| o.name.clone()).collect());
    }
    let first = &choices[0];
    let end = first.ops.len() - s;
    let mixed = mixed_shape.unwrap_or_default();
    let mut ops = vec![input_op(&mixed)];
    for op in &first.ops[end..] {
        let mut o = op.clone();
        for i in &mut o.inputs {
            *i = if *i >= end { 1 + *i - end } else { 0 };
        }
        ops.push(o);
    }
    let output = ops.len() - 1;
    let suffix = Plan { ops, input: 0, output, params: 0, flops: 0 };
    let prefix = Plan { ops: first.ops[..p].to_vec(), input: 0, output: p - 1, params: 0, flops: 0 };
    Ok(Supernet { prefix, arms, suffix, suffix_names, choices: choices.to_vec() })
}

/// Dropout is live when a generator is given.
fn mode<'a>(rng: &'a mut Option<&mut Rng>) -> Mode<'a> {
    match rng.as_deref_mut() {
        Some(r) => Mode::Train(r),
        None => Mode::Eval,
    }
}

fn input_op(shape: &[usize]) -> Op {
    Op { name: "input".into(), kind: OpKind::Input, inputs: Vec::new(), shape: shape.to_vec(), in_shape: Vec::new() }
}
